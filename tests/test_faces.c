/*
 * test_faces.c -- conv2d kernels against naive loops, the TensorFlow.js weights reader (values,
 * quantisation, every validation error), and the face models against @vladmandic/face-api run
 * in Node on the same pixels (tests/fixtures/faces/expected.json, made by
 * make_faces_fixture.py): boxes within 1 px, scores and expression probabilities within 1e-3.
 * Also the CLI `mer faces` on images and a video, and its errors.
 */
#include "test.h"
#include "kernels/kernels.h"

#include <cJSON.h>
#include <sys/stat.h>

#define FIX "tests/fixtures/faces"
#define MODELS "models/face-api"

/* ---- kernels ------------------------------------------------------------------------------ */

static void fill_random(float *x, int64_t n, uint64_t seed) {
    mer__rng r;
    mer__rng_seed(&r, seed);
    for (int64_t i = 0; i < n; i++) x[i] = (float)(mer__rng_uniform(&r) * 2.0 - 1.0);
}

/* naive NHWC conv with a channel multiplier: depthwise when dw (w (kh, kw, c)), else dense */
static void naive_conv(float *y, const float *x, const float *w, const float *b, int64_t h,
                       int64_t wd, int64_t cin, int64_t cout, int64_t k, int64_t stride,
                       int64_t pt, int64_t pl, int64_t oh, int64_t ow, int dw) {
    for (int64_t oy = 0; oy < oh; oy++)
        for (int64_t ox = 0; ox < ow; ox++)
            for (int64_t co = 0; co < cout; co++) {
                double s = b ? b[co] : 0.0;
                for (int64_t ky = 0; ky < k; ky++)
                    for (int64_t kx = 0; kx < k; kx++) {
                        int64_t iy = oy * stride + ky - pt, ix = ox * stride + kx - pl;
                        if (iy < 0 || iy >= h || ix < 0 || ix >= wd) continue;
                        if (dw) {
                            s += (double)x[(iy * wd + ix) * cin + co] * w[(ky * k + kx) * cin + co];
                        } else {
                            for (int64_t ci = 0; ci < cin; ci++)
                                s += (double)x[(iy * wd + ix) * cin + ci] *
                                     w[((ky * k + kx) * cin + ci) * cout + co];
                        }
                    }
                y[(oy * ow + ox) * cout + co] = (float)s;
            }
}

MER_TEST(faces_conv2d_matches_naive) {
    /* (h, w, cin, cout, k, stride, same) */
    static const int64_t cases[][7] = {{9, 7, 3, 16, 3, 1, 0}, {12, 12, 3, 32, 3, 2, 1},
                                       {11, 13, 5, 7, 3, 2, 1}, {8, 6, 4, 8, 1, 1, 0},
                                       {7, 7, 16, 33, 3, 1, 1}};
    for (size_t t = 0; t < sizeof cases / sizeof *cases; t++) {
        int64_t h = cases[t][0], w = cases[t][1], ci = cases[t][2], co = cases[t][3],
                k = cases[t][4], s = cases[t][5], oh, ow, pt = 0, pl = 0;
        if (cases[t][6]) {
            mer__conv_same_padding(h, k, s, &oh, &pt);
            mer__conv_same_padding(w, k, s, &ow, &pl);
        } else {
            oh = (h - k) / s + 1;
            ow = (w - k) / s + 1;
        }
        float *x = malloc(sizeof(float) * h * w * ci), *wt = malloc(sizeof(float) * k * k * ci * co),
              *b = malloc(sizeof(float) * co), *y = malloc(sizeof(float) * oh * ow * co),
              *r = malloc(sizeof(float) * oh * ow * co);
        fill_random(x, h * w * ci, 1 + t);
        fill_random(wt, k * k * ci * co, 100 + t);
        fill_random(b, co, 200 + t);
        mer__conv2d_nhwc_fwd(y, x, wt, b, h, w, ci, co, k, k, s, pt, pl, oh, ow);
        naive_conv(r, x, wt, b, h, w, ci, co, k, s, pt, pl, oh, ow, 0);
        CHECK(mer_test_maxdiff(y, r, (size_t)(oh * ow * co), NULL) < 1e-4);
        /* depthwise on the same input */
        mer__dwconv2d_nhwc_fwd(y, x, wt, b, h, w, ci, k, k, s, pt, pl, oh, ow);
        naive_conv(r, x, wt, b, h, w, ci, ci, k, s, pt, pl, oh, ow, 1);
        CHECK(mer_test_maxdiff(y, r, (size_t)(oh * ow * ci), NULL) < 1e-5);
        free(x), free(wt), free(b), free(y), free(r);
    }
    /* TF 'same' padding rule */
    int64_t o, p;
    mer__conv_same_padding(112, 3, 2, &o, &p);
    CHECK(o == 56 && p == 0);
    mer__conv_same_padding(207, 2, 2, &o, &p);
    CHECK(o == 104 && p == 0);
    mer__conv_same_padding(13, 3, 1, &o, &p);
    CHECK(o == 13 && p == 1);
}

MER_TEST(faces_pool_matches_naive) {
    /* c = 5: scalar path only; c = 37: two 16-channel vector blocks and a scalar tail */
    static const int64_t chans[2] = {5, 37};
    for (int t = 0; t < 2; t++) {
        const int64_t h = 7, w = 9, c = chans[t];
        float *x = malloc(sizeof(float) * h * w * c), *y = malloc(sizeof(float) * h * w * c);
        fill_random(x, h * w * c, 7 + t);
        int64_t oh, ow, pt, pl;
        /* max 2x2 stride 2 'same' (odd sizes: the last window hangs over the border) */
        mer__conv_same_padding(h, 2, 2, &oh, &pt);
        mer__conv_same_padding(w, 2, 2, &ow, &pl);
        mer__maxpool2d_nhwc_fwd(y, x, h, w, c, 2, 2, pt, pl, oh, ow);
        int bad = 0;
        for (int64_t oy = 0; oy < oh; oy++)
            for (int64_t ox = 0; ox < ow; ox++)
                for (int64_t ci = 0; ci < c; ci++) {
                    float m = -1e30f;
                    for (int64_t dy = 0; dy < 2; dy++)
                        for (int64_t dx = 0; dx < 2; dx++) {
                            int64_t iy = oy * 2 + dy - pt, ix = ox * 2 + dx - pl;
                            if (iy < h && ix < w && x[(iy * w + ix) * c + ci] > m)
                                m = x[(iy * w + ix) * c + ci];
                        }
                    bad += y[(oy * ow + ox) * c + ci] != m;
                }
        CHECK(bad == 0 && oh == 4 && ow == 5);
        /* max 2x2 stride 1 'same' (the detector's last pool): pad after only */
        mer__conv_same_padding(h, 2, 1, &oh, &pt);
        mer__conv_same_padding(w, 2, 1, &ow, &pl);
        CHECK(oh == h && ow == w && pt == 0 && pl == 0);
        mer__maxpool2d_nhwc_fwd(y, x, h, w, c, 2, 1, pt, pl, oh, ow);
        const int64_t last = ((h - 1) * w + (w - 1)) * c; /* bottom-right: only itself */
        CHECK(!memcmp(y + last, x + last, sizeof(float) * c));
        /* average 7x7 'valid' over a 7x9 map, stride 2: 2 outputs per channel */
        mer__avgpool2d_nhwc_fwd(y, x, h, w, c, 7, 2, 0, 0, 1, 2);
        for (int64_t ox = 0; ox < 2; ox++)
            for (int64_t ci = 0; ci < c; ci++) {
                double s = 0;
                for (int64_t iy = 0; iy < 7; iy++)
                    for (int64_t ix = ox * 2; ix < ox * 2 + 7; ix++) s += x[(iy * w + ix) * c + ci];
                CHECK_NEAR(y[ox * c + ci], s / 49, 1e-6);
            }
        free(x), free(y);
    }
}

/* ---- tfjs weights ------------------------------------------------------------------------- */

static const char *good_manifest =
    "[{\"paths\":[\"a.bin\"],\"weights\":["
    "{\"name\":\"f\",\"shape\":[2],\"dtype\":\"float32\"},"
    "{\"name\":\"q\",\"shape\":[3],\"dtype\":\"float32\",\"quantization\":{\"dtype\":\"uint8\",\"scale\":0.5,\"min\":-1}},"
    "{\"name\":\"h\",\"shape\":[1],\"dtype\":\"float32\",\"quantization\":{\"dtype\":\"float16\"}}]},"
    "{\"paths\":[\"b.bin\",\"c.bin\"],\"weights\":["
    "{\"name\":\"i\",\"shape\":[1,2],\"dtype\":\"int32\"},"
    "{\"name\":\"u\",\"shape\":[1],\"dtype\":\"float32\",\"quantization\":{\"dtype\":\"uint16\",\"scale\":2,\"min\":1}}]}]";

/* shard bytes: group 0 = 2 f32 + 3 u8 + 1 f16 (13 bytes); group 1 = 2 i32 + 1 u16 (10 bytes) */
static size_t good_shards(uint8_t *buf) {
    float f[2] = {1.5f, -2.25f};
    memcpy(buf, f, 8);
    buf[8] = 0, buf[9] = 2, buf[10] = 255;
    buf[11] = 0x00, buf[12] = 0x3c;           /* f16 1.0 */
    int32_t iv[2] = {-7, 9};
    memcpy(buf + 13, iv, 8);
    buf[21] = 3, buf[22] = 0;                 /* u16 3 -> 7 */
    return 23;
}

MER_TEST(faces_tfjs_parse_values) {
    uint8_t sh[64];
    size_t n = good_shards(sh);
    mer_tfjs *w = NULL;
    REQUIRE_OK(mer_tfjs_parse(&w, good_manifest, strlen(good_manifest), sh, n, "m.json"));
    CHECK(mer_tfjs_count(w) == 5);
    const float *d;
    int64_t s2[1] = {2}, s3[1] = {3}, s12[2] = {1, 2};
    CHECK_OK(mer_tfjs_get(w, "f", 1, s2, &d));
    CHECK(d[0] == 1.5f && d[1] == -2.25f);
    CHECK_OK(mer_tfjs_get(w, "q", 1, s3, &d));
    CHECK(d[0] == -1.0f && d[1] == 0.0f && d[2] == 126.5f);
    CHECK_OK(mer_tfjs_get(w, "h", -1, NULL, &d));
    CHECK(d[0] == 1.0f);
    CHECK_OK(mer_tfjs_get(w, "i", 2, s12, &d));
    CHECK(d[0] == -7.0f && d[1] == 9.0f);
    CHECK_OK(mer_tfjs_get(w, "u", -1, NULL, &d));
    CHECK(d[0] == 7.0f);
    mer_tfjs_entry e;
    CHECK_OK(mer_tfjs_entry_at(w, 1, &e));
    CHECK(!strcmp(e.name, "q") && e.stored == MER_DTYPE_U8 && e.numel == 3);
    CHECK_ERR(mer_tfjs_get(w, "f", 1, s3, &d), MER_ERR_SHAPE, "expected (3,)");
    CHECK_ERR(mer_tfjs_get(w, "nope", -1, NULL, &d), MER_ERR_NOT_FOUND, "nope");
    mer_tfjs_free(w);
    mer_tfjs_free(NULL);
}

static mer_status parse_str(const char *manifest, size_t shard_bytes) {
    uint8_t sh[64] = {0};
    mer_tfjs *w = NULL;
    mer_status s = mer_tfjs_parse(&w, manifest, strlen(manifest), sh, shard_bytes, "bad.json");
    mer_tfjs_free(w);
    return s;
}

MER_TEST(faces_tfjs_errors) {
    uint8_t sh[64];
    size_t n = good_shards(sh);
    mer_tfjs *w = NULL;
    CHECK_ERR(mer_tfjs_parse(&w, good_manifest, strlen(good_manifest), sh, n - 1, "m.json"),
              MER_ERR_FORMAT, "short shard");
    CHECK(w == NULL);
    CHECK_ERR(mer_tfjs_parse(&w, good_manifest, strlen(good_manifest), sh, n + 1, "m.json"),
              MER_ERR_FORMAT, "not described");
    CHECK_ERR(parse_str("[{\"paths\":[],\"weights\":[{\"name\":\"a\",\"shape\":[1],\"dtype\":\"string\"}]}]", 4),
              MER_ERR_DTYPE, "string");
    CHECK_ERR(parse_str("[{\"paths\":[],\"weights\":[{\"name\":\"a\",\"shape\":[1],\"dtype\":\"float32\","
                        "\"quantization\":{\"dtype\":\"int4\"}}]}]", 4), MER_ERR_DTYPE, "int4");
    CHECK_ERR(parse_str("[{\"paths\":[],\"weights\":[{\"name\":\"a\",\"shape\":[1],\"dtype\":\"float32\","
                        "\"quantization\":{\"dtype\":\"uint8\"}}]}]", 1), MER_ERR_FORMAT, "scale");
    CHECK_ERR(parse_str("[{\"paths\":[],\"weights\":[{\"name\":\"a\",\"shape\":[-1],\"dtype\":\"float32\"}]}]", 0),
              MER_ERR_SHAPE, "dimension");
    CHECK_ERR(parse_str("[{\"paths\":[],\"weights\":[{\"name\":\"a\",\"shape\":[1e12,1e12],\"dtype\":\"float32\"}]}]", 0),
              MER_ERR_NOMEM, "overflow");
    CHECK_ERR(parse_str("[{\"paths\":[],\"weights\":[{\"name\":\"a\",\"shape\":[1],\"dtype\":\"float32\"},"
                        "{\"name\":\"a\",\"shape\":[1],\"dtype\":\"float32\"}]}]", 8), MER_ERR_FORMAT, "twice");
    CHECK_ERR(parse_str("{\"paths\":[]}", 0), MER_ERR_FORMAT, "array of groups");
    CHECK_ERR(parse_str("[{\"paths\":[", 0), MER_ERR_FORMAT, "JSON");
    CHECK_ERR(parse_str("[{\"weights\":[]}]", 0), MER_ERR_FORMAT, "paths");
    /* NaN weights are refused */
    {
        const char *m = "[{\"paths\":[],\"weights\":[{\"name\":\"a\",\"shape\":[1],\"dtype\":\"float32\"}]}]";
        float nan = NAN;
        CHECK_ERR(mer_tfjs_parse(&w, m, strlen(m), &nan, 4, "nan.json"), MER_ERR_NUMERIC, "NaN");
    }
}

MER_TEST(faces_tfjs_files) {
    const char *dir = mer_test_tmpdir("faces_tfjs_files");
    char path[1200], bin[1200];
    uint8_t sh[64];
    good_shards(sh);
    snprintf(path, sizeof path, "%s/m.json", dir);
    REQUIRE(mer_test_write(path, good_manifest, strlen(good_manifest)) == 0);
    snprintf(bin, sizeof bin, "%s/a.bin", dir);
    REQUIRE(mer_test_write(bin, sh, 13) == 0);
    snprintf(bin, sizeof bin, "%s/b.bin", dir);
    REQUIRE(mer_test_write(bin, sh + 13, 4) == 0);
    mer_tfjs *w = NULL;
    /* c.bin missing */
    CHECK_ERR(mer_tfjs_load(&w, path), MER_ERR_IO, "c.bin");
    snprintf(bin, sizeof bin, "%s/c.bin", dir);
    REQUIRE(mer_test_write(bin, sh + 17, 5) == 0);
    CHECK_ERR(mer_tfjs_load(&w, path), MER_ERR_FORMAT, "short");
    REQUIRE(mer_test_write(bin, sh + 17, 6) == 0);
    REQUIRE_OK(mer_tfjs_load(&w, path));
    const float *d;
    CHECK_OK(mer_tfjs_get(w, "u", -1, NULL, &d));
    CHECK(d[0] == 7.0f);
    mer_tfjs_free(w);
    CHECK_ERR(mer_tfjs_load(&w, "no/such/manifest.json"), MER_ERR_IO, "manifest.json");
    /* a shard path leaving the directory */
    const char *evil = "[{\"paths\":[\"../x.bin\"],\"weights\":[]}]";
    REQUIRE(mer_test_write(path, evil, strlen(evil)) == 0);
    CHECK_ERR(mer_tfjs_load(&w, path), MER_ERR_FORMAT, "inside the model directory");
}

/* ---- the face models against face-api in Node ---------------------------------------------- */

static mer_faces *models(void) {
    static mer_faces *m;
    if (!m && mer_faces_load(&m, MODELS, NULL) != MER_OK) {
        mer_test_fail(__FILE__, __LINE__, "load: %s", mer_last_error());
        return NULL;
    }
    return m;
}

MER_TEST(faces_match_faceapi) {
    mer_faces *m = models();
    REQUIRE(m);
    char *text = NULL;
    size_t len = 0;
    /* make parity points this at a fresh run of the original (tests/parity/run.sh) */
    const char *expected = getenv("MER_FACES_EXPECTED");
    FILE *f = fopen(expected && *expected ? expected : FIX "/expected.json", "rb");
    REQUIRE(f);
    fseek(f, 0, SEEK_END);
    len = (size_t)ftell(f);
    rewind(f);
    text = malloc(len + 1);
    REQUIRE(fread(text, 1, len, f) == len);
    fclose(f);
    cJSON *root = cJSON_ParseWithLength(text, len);
    free(text);
    REQUIRE(root);
    const cJSON *runs = cJSON_GetObjectItem(root, "runs");
    int nruns = cJSON_GetArraySize(runs), nfaces = 0, nimages = 0, nchecked = 0;
    double worst_box = 0, worst_score = 0, worst_prob = 0;
    mer_faces_state *st = NULL;
    REQUIRE_OK(mer_faces_state_init(&st, NULL));
    const char *last = "";
    /* under the sanitizers (10x slower) only the input-320 runs: every image, half the work */
    const int sanitize = getenv("MER_SANITIZE") != NULL;
    for (int r = 0; r < nruns; r++) {
        const cJSON *run = cJSON_GetArrayItem(runs, r);
        if (sanitize && cJSON_GetObjectItem(run, "input_size")->valueint != 320) continue;
        nchecked++;
        const char *png = cJSON_GetObjectItem(run, "image")->valuestring;
        char path[512];
        snprintf(path, sizeof path, FIX "/%s", png);
        if (strcmp(last, png)) nimages++;
        last = png;
        mer_image img = {0};
        CHECK_OK(mer_image_load(path, &img));
        if (!img.rgb) continue;
        CHECK(img.width == cJSON_GetObjectItem(run, "width")->valueint);
        mer_faces_params p = mer_faces_default_params();
        p.input_size = cJSON_GetObjectItem(run, "input_size")->valueint;
        p.min_score = (float)cJSON_GetObjectItem(run, "score_threshold")->valuedouble;
        mer_face *got = NULL;
        int32_t n = 0;
        CHECK_OK(mer_faces_detect(m, st, &img, &p, &got, &n));
        const cJSON *want = cJSON_GetObjectItem(run, "faces");
        int nw = cJSON_GetArraySize(want);
        if (n != nw)
            mer_test_fail(__FILE__, __LINE__, "%s at %d/%.2f: %d faces, face-api found %d", png,
                          p.input_size, (double)p.min_score, n, nw);
        for (int i = 0; i < n && i < nw; i++) {
            const cJSON *wf = cJSON_GetArrayItem(want, i);
            double box[4] = {got[i].x, got[i].y, got[i].width, got[i].height};
            const char *keys[4] = {"x", "y", "width", "height"};
            for (int k = 0; k < 4; k++) {
                double d = fabs(box[k] - cJSON_GetObjectItem(wf, keys[k])->valuedouble);
                worst_box = d > worst_box ? d : worst_box;
                if (d > 1.0)
                    mer_test_fail(__FILE__, __LINE__, "%s face %d %s: %.3f vs %.3f", png, i,
                                  keys[k], box[k], cJSON_GetObjectItem(wf, keys[k])->valuedouble);
            }
            double ds = fabs(got[i].score - cJSON_GetObjectItem(wf, "score")->valuedouble);
            worst_score = ds > worst_score ? ds : worst_score;
            if (ds > 1e-3) mer_test_fail(__FILE__, __LINE__, "%s face %d score off by %g", png, i, ds);
            const cJSON *ex = cJSON_GetObjectItem(wf, "expressions");
            for (int k = 0; k < MER_FACE_EXPRESSIONS; k++) {
                double dp = fabs(got[i].expressions[k] - cJSON_GetArrayItem(ex, k)->valuedouble);
                worst_prob = dp > worst_prob ? dp : worst_prob;
                if (dp > 1e-3)
                    mer_test_fail(__FILE__, __LINE__, "%s face %d p(%s) off by %g", png, i,
                                  mer_face_expression_name(k), dp);
            }
            nfaces++;
        }
        free(got);
        mer_image_free(&img);
    }
    mer_faces_state_free(st);
    cJSON_Delete(root);
    CHECK(nimages >= 5 && nfaces >= (sanitize ? 5 : 10));
    printf("  faces: %d runs on %d images, %d faces; worst |box| %.2g px, |score| %.2g, |p| %.2g\n",
           nchecked, nimages, nfaces, worst_box, worst_score, worst_prob);
}

MER_TEST(faces_astronaut_happy) {
    mer_faces *m = models();
    REQUIRE(m);
    mer_image img = {0};
    REQUIRE_OK(mer_image_load("tests/fixtures/image/astronaut.png", &img));
    mer_face *faces = NULL;
    int32_t n = 0;
    REQUIRE_OK(mer_faces_detect(m, NULL, &img, NULL, &faces, &n));
    REQUIRE(n == 1);
    /* REFERENCES.md: x 163.3, y 75.7, w 116.0, h 111.0, score 0.976, happy */
    CHECK_NEAR(faces[0].x, 163.3, 0.5);
    CHECK_NEAR(faces[0].y, 75.7, 0.5);
    CHECK_NEAR(faces[0].width, 116.0, 0.5);
    CHECK_NEAR(faces[0].height, 111.0, 0.5);
    CHECK(faces[0].score > 0.97f);
    CHECK(faces[0].expression == 1 && !strcmp(mer_face_expression_name(1), "happy"));
    CHECK(faces[0].expressions[1] > 0.99f);
    /* the crop is the box clipped and floored */
    mer_image crop = {0};
    REQUIRE_OK(mer_faces_crop(&img, &faces[0], &crop));
    CHECK(crop.width == 116 && crop.height == 110); /* 110.98 floors to 110 */
    CHECK(!memcmp(crop.rgb, img.rgb + (75 * 512 + 163) * 3, 116 * 3));
    float p[MER_FACE_EXPRESSIONS];
    REQUIRE_OK(mer_faces_expression(m, NULL, &crop, p));
    CHECK(fabsf(p[1] - faces[0].expressions[1]) < 1e-6f);
    mer_image_free(&crop);
    /* a box entirely outside: no crop */
    mer_face off = faces[0];
    off.x = 600;
    CHECK_ERR(mer_faces_crop(&img, &off, &crop), MER_ERR_NOT_FOUND, "outside");
    /* summary: one frame with the face, one without */
    mer_faces_summary s = {0};
    mer_faces_summary_add(&s, faces, n);
    mer_faces_summary_add(&s, NULL, 0);
    CHECK_NEAR(mer_faces_summary_fraction(&s), 0.5, 1e-12);
    float mean[MER_FACE_EXPRESSIONS];
    mer_faces_summary_mean(&s, mean);
    CHECK_NEAR(mean[1], faces[0].expressions[1], 1e-6);
    CHECK(mer_faces_summary_top(&s) == 1); /* happy */
    mer_faces_summary none = {0};
    mer_faces_summary_add(&none, NULL, 0);
    CHECK(mer_faces_summary_top(&none) == -1 && mer_faces_summary_top(NULL) == -1);
    free(faces);
    /* bad parameters */
    mer_faces_params bad = mer_faces_default_params();
    bad.input_size = 100;
    CHECK_ERR(mer_faces_detect(m, NULL, &img, &bad, &faces, &n), MER_ERR_INVALID_ARG, "multiple of 32");
    mer_image_free(&img);
    mer_image empty = {0};
    CHECK_ERR(mer_faces_detect(m, NULL, &empty, NULL, &faces, &n), MER_ERR_INVALID_ARG, "empty");
}

MER_TEST(faces_no_face_is_empty) {
    mer_faces *m = models();
    REQUIRE(m);
    mer_image img = {0};
    REQUIRE_OK(mer_image_load(FIX "/coffee.png", &img));
    mer_face *faces = (mer_face *)1;
    int32_t n = -1;
    CHECK_OK(mer_faces_detect(m, NULL, &img, NULL, &faces, &n));
    CHECK(n == 0 && faces == NULL);
    mer_image_free(&img);
    /* tiny and very elongated images are valid input */
    uint8_t px[3 * 40] = {0};
    mer_image strip = {40, 1, px, 0, 0};
    CHECK_OK(mer_faces_detect(m, NULL, &strip, NULL, &faces, &n));
    CHECK(n == 0);
    free(faces);
    /* the smallest detector input (a 1x1 grid) and degenerate crops for the expression net */
    mer_faces_params p = mer_faces_default_params();
    p.input_size = 32;
    p.min_score = 0.01f;
    CHECK_OK(mer_faces_detect(m, NULL, &strip, &p, &faces, &n));
    free(faces);
    float probs[MER_FACE_EXPRESSIONS];
    mer_image one = {1, 1, px, 0, 0}, tall = {1, 40, px, 0, 0};
    CHECK_OK(mer_faces_expression(m, NULL, &one, probs));
    float sum = 0;
    for (int k = 0; k < MER_FACE_EXPRESSIONS; k++) sum += probs[k];
    CHECK_NEAR(sum, 1.0, 1e-5);
    CHECK_OK(mer_faces_expression(m, NULL, &tall, probs));
}

/* Loader and state params: a detector-only load, the state's abort polled before the detector
 * and before each face's expression net, progress per face, a reusable state after a stop. */
MER_TEST(faces_params_abort_progress) {
    mer_faces *full = models();
    REQUIRE(full);
    mer_image img = {0};
    REQUIRE_OK(mer_image_load("tests/fixtures/image/astronaut.png", &img));
    mer_faces_model_params mp = mer_faces_model_default_params();
    CHECK(mp.expressions == 1);
    mp.expressions = 0;
    mer_faces *det = NULL;
    REQUIRE_OK(mer_faces_load(&det, MODELS, &mp));
    mer_face *faces = NULL, *ref = NULL;
    int32_t n = 0, nref = 0;
    CHECK_ERR(mer_faces_detect(det, NULL, &img, NULL, &faces, &n), MER_ERR_INVALID_ARG, "expression net");
    float probs[MER_FACE_EXPRESSIONS];
    CHECK_ERR(mer_faces_expression(det, NULL, &img, probs), MER_ERR_INVALID_ARG, "expression net");
    mer_faces_params fp = mer_faces_default_params();
    CHECK(fp.input_size == 416 && fp.expressions == 1);
    fp.input_size = 224; /* small and fast; the face is still found */
    fp.expressions = 0;
    mer_faces_params ep = fp;
    ep.expressions = 1;
    CHECK_OK(mer_faces_detect(det, NULL, &img, &fp, &faces, &n));
    CHECK_OK(mer_faces_detect(full, NULL, &img, &fp, &ref, &nref));
    CHECK(n == 1 && nref == 1 && faces && ref && !memcmp(faces, ref, sizeof *faces));
    free(faces);
    free(ref);
    faces = ref = NULL;
    mer_faces_free(det);

    mer_faces_state_params sp = mer_faces_state_default_params();
    CHECK(sp.n_threads == 0 && !sp.progress && !sp.abort);
    mer_test_calls cc = {0};
    sp.n_threads = 1;
    sp.progress = mer_test_progress;
    sp.progress_user_data = &cc;
    sp.abort = mer_test_abort;
    sp.abort_user_data = &cc;
    mer_faces_state *st = NULL;
    REQUIRE_OK(mer_faces_state_init(&st, &sp));
    REQUIRE_OK(mer_faces_detect(full, st, &img, &ep, &ref, &nref));
    CHECK(nref == 1 && cc.progress_calls == 1 && cc.last_done == 1 && cc.last_total == 1);
    for (int stop = 1; stop <= 2; stop++) { /* before the detector; before the face's expressions */
        memset(&cc, 0, sizeof cc);
        cc.stop_at = stop;
        faces = (mer_face *)1;
        n = -1;
        CHECK_ERR(mer_faces_detect(full, st, &img, &ep, &faces, &n), MER_ERR_ABORTED, "stopped by the caller");
        CHECK(faces == NULL && n == 0 && cc.polls == stop && cc.progress_calls == 0);
    }
    cc.stop_at = 0;
    CHECK_OK(mer_faces_detect(full, st, &img, &ep, &faces, &n));
    CHECK(n == 1 && faces && ref && !memcmp(faces, ref, sizeof *faces));
    free(faces);
    free(ref);
    mer_faces_state_free(st);
    mer_image_free(&img);
}

static void copy_file(const char *from, const char *to, long truncate_to) {
    FILE *a = fopen(from, "rb");
    if (!a) return;
    fseek(a, 0, SEEK_END);
    long n = ftell(a);
    rewind(a);
    char *buf = malloc((size_t)n);
    if (fread(buf, 1, (size_t)n, a) != (size_t)n) n = 0;
    fclose(a);
    mer_test_write(to, buf, (size_t)(truncate_to >= 0 && truncate_to < n ? truncate_to : n));
    free(buf);
}

MER_TEST(faces_damaged_weights) {
    const char *dir = mer_test_tmpdir("faces_damaged_weights");
    char d[1024], a[1200], b[1200];
    snprintf(d, sizeof d, "%s", dir);
    const char *files[4] = {"tiny_face_detector_model-weights_manifest.json",
                            "tiny_face_detector_model.bin",
                            "face_expression_model-weights_manifest.json",
                            "face_expression_model.bin"};
    mer_faces *m = NULL;
    CHECK_ERR(mer_faces_load(&m, d, NULL), MER_ERR_IO, "tiny_face_detector_model-weights_manifest.json");
    for (int i = 0; i < 4; i++) {
        snprintf(a, sizeof a, MODELS "/%s", files[i]);
        snprintf(b, sizeof b, "%s/%s", d, files[i]);
        copy_file(a, b, i == 3 ? 1000 : -1);   /* the expression shard is truncated */
    }
    CHECK_ERR(mer_faces_load(&m, d, NULL), MER_ERR_FORMAT, "face_expression_model");
    CHECK(m == NULL);
    snprintf(b, sizeof b, "%s/%s", d, files[3]);
    remove(b);
    CHECK_ERR(mer_faces_load(&m, d, NULL), MER_ERR_IO, "face_expression_model.bin");
    /* a manifest whose shapes do not fit the network */
    snprintf(a, sizeof a, MODELS "/%s", files[3]);
    copy_file(a, b, -1);
    snprintf(b, sizeof b, "%s/%s", d, files[0]);
    const char *wrong = "[{\"paths\":[\"tiny_face_detector_model.bin\"],\"weights\":["
                        "{\"name\":\"conv0/filters\",\"shape\":[193321],\"dtype\":\"float32\","
                        "\"quantization\":{\"dtype\":\"uint8\",\"scale\":1,\"min\":0}}]}]";
    mer_test_write(b, wrong, strlen(wrong));
    CHECK_ERR(mer_faces_load(&m, d, NULL), MER_ERR_SHAPE, "conv0/filters");
    mer_faces_free(NULL);
}

/* ---- CLI ---------------------------------------------------------------------------------- */

MER_TEST(faces_cli) {
    char out[8192];
    const char *bin = mer_test_bin();
    const char *dir = mer_test_tmpdir("faces_cli");
    int rc = mer_test_run(out, sizeof out, "%s faces tests/fixtures/image/astronaut.png --json "
                          "--crops %s/crops", bin, dir);
    CHECK(rc == 0);
    CHECK(strstr(out, "\"happy\"") != NULL);
    CHECK(strstr(out, "\"fraction_with_face\": 1") != NULL);
    char crop[1200];
    snprintf(crop, sizeof crop, "%s/crops/astronaut_f0_0.png", dir);
    struct stat sb;
    CHECK(stat(crop, &sb) == 0 && sb.st_size > 1000);
    /* plain text, no face */
    rc = mer_test_run(out, sizeof out, "%s faces " FIX "/coffee.png", bin);
    CHECK(rc == 0 && strstr(out, "0 faces") != NULL);
    /* video: 4 of 6 frames show the astronaut */
    rc = mer_test_run(out, sizeof out, "%s faces " FIX "/talk.mp4 --every 1 --json", bin);
    CHECK(rc == 0);
    CHECK(strstr(out, "\"frames\": 6") != NULL);
    CHECK(strstr(out, "\"frames_with_face\": 4") != NULL);
    CHECK(strstr(out, "\"top_expression\": \"happy\"") != NULL);
    /* errors: corrupt image, audio-only media, missing models, usage */
    char bad[1200];
    snprintf(bad, sizeof bad, "%s/corrupt.png", dir);
    mer_test_write(bad, "\x89PNG\r\n\x1a\n garbage", 17);
    rc = mer_test_run(out, sizeof out, "%s faces %s", bin, bad);
    CHECK(rc == 1 && strstr(out, "mer faces: ") == out && strstr(out, "corrupt.png"));
    CHECK(strchr(out, '\n') == out + strlen(out) - 1);
    char wav[1200];
    snprintf(wav, sizeof wav, "%s/novideo.wav", dir);
    static const int16_t silence[1600]; /* 0.1 s of 16-bit silence: audio and no video */
    REQUIRE(mer_test_write_wav(wav, silence, 1600, 16000, 0) == 0);
    rc = mer_test_run(out, sizeof out, "%s faces %s", bin, wav);
    CHECK(rc == 1 && strstr(out, "novideo.wav") != NULL && strstr(out, "video") != NULL);
    rc = mer_test_run(out, sizeof out, "%s faces " FIX "/coffee.png --models %s/none", bin, dir);
    CHECK(rc == 1 && strstr(out, "tiny_face_detector_model") != NULL);
    rc = mer_test_run(out, sizeof out, "%s faces " FIX "/coffee.png --min-score 2", bin);
    CHECK(rc == 2);
    rc = mer_test_run(out, sizeof out, "%s faces " FIX "/talk.mp4 --every 2 --fps 1", bin);
    CHECK(rc == 2);
    rc = mer_test_run(out, sizeof out, "%s faces", bin);
    CHECK(rc == 2);
}
