/*
 * test_clip.c -- CLIP ViT vision tower and its preprocessing against the PyTorch reference
 * (tests/parity/clip_ref.py via tests/fixtures/clip/make_clip_fixture.py): PIL-exact bicubic
 * resize, CLIPImageProcessor, embeds / cls / hidden states on two tiny checkpoints (CLIPModel
 * F32 quick_gelu, CLIPVisionModelWithProjection F16 gelu), bad checkpoints, and the
 * `mer extract visual` CLI.
 */
#include "test.h"
#include "kernels/kernels.h"

#include <sys/stat.h>
#include <unistd.h>

#define FX "tests/fixtures/clip/"

static float *load_npy(const char *path, int32_t *ndim, int64_t shape[MER_MAX_DIMS]) {
    float *d = NULL;
    int32_t nd = 0;
    int64_t sh[MER_MAX_DIMS] = {0};
    mer_status s = mer_npy_read(path, &d, &nd, sh);
    if (s != MER_OK) {
        printf("    cannot read %s: %s\n", path, mer_last_error());
        return NULL;
    }
    if (ndim) *ndim = nd;
    if (shape) memcpy(shape, sh, sizeof sh);
    return d;
}

static int64_t numel(int32_t nd, const int64_t *sh) {
    int64_t n = 1;
    for (int i = 0; i < nd; i++) n *= sh[i];
    return n;
}

/* An .npy of 0..255 values (H, W, 3) as an RGB image. */
static int load_image_npy(const char *path, mer_image *img) {
    int32_t nd;
    int64_t sh[MER_MAX_DIMS];
    float *d = load_npy(path, &nd, sh);
    if (!d || nd != 3 || sh[2] != 3) {
        free(d);
        return 0;
    }
    memset(img, 0, sizeof *img);
    img->height = (int32_t)sh[0];
    img->width = (int32_t)sh[1];
    img->rgb = malloc((size_t)sh[0] * sh[1] * 3);
    for (int64_t i = 0; i < sh[0] * sh[1] * 3; i++) img->rgb[i] = (uint8_t)d[i];
    free(d);
    return 1;
}

/* max|got - ref| <= rel * max|ref| over the whole reference file; prints the numbers. */
static void check_close(const char *what, const float *got, const char *ref_path, int64_t n, double rel) {
    int32_t nd;
    int64_t sh[MER_MAX_DIMS];
    float *ref = load_npy(ref_path, &nd, sh);
    REQUIRE(ref);
    CHECK(numel(nd, sh) == n);
    if (numel(nd, sh) == n) {
        double mr;
        double md = mer_test_maxdiff(got, ref, (size_t)n, &mr);
        if (!(md <= rel * mr)) printf("    %s: max|diff| %.3g > %.1g * max|ref| %.3g\n", what, md, rel, mr);
        CHECK(md <= rel * mr);
        CHECK(mr > 0);
    }
    free(ref);
}

/* ---- resize ------------------------------------------------------------------------------ */

MER_TEST(clip_resize_matches_pil) {
    FILE *f = fopen(FX "resize_cases.txt", "r");
    REQUIRE(f);
    mer_image imgs[8] = {{0}}, astro = {0};
    for (int i = 0; i < 8; i++) {
        char p[256];
        snprintf(p, sizeof p, FX "img_%d.npy", i);
        REQUIRE(load_image_npy(p, &imgs[i]));
    }
    REQUIRE_OK(mer_image_load("tests/fixtures/image/astronaut.png", &astro));
    int k, i, w, h, cases = 0, worst = 0;
    int64_t off = 0, total = 0;
    while (fscanf(f, "%d %d %d %d", &k, &i, &w, &h) == 4) {
        const mer_image *src = i < 0 ? &astro : &imgs[i];
        uint8_t *out = malloc((size_t)w * h * 3);
        CHECK_OK(mer__resize_bicubic_u8(out, w, h, src->rgb, src->width, src->height, 3));
        char p[256];
        snprintf(p, sizeof p, FX "resize_%d.npy", k);
        int32_t nd;
        int64_t sh[MER_MAX_DIMS];
        float *ref = load_npy(p, &nd, sh);
        CHECK(ref && nd == 3 && sh[0] == h && sh[1] == w);
        if (ref && nd == 3 && sh[0] == h && sh[1] == w) {
            for (int64_t j = 0; j < (int64_t)w * h * 3; j++) {
                int d = abs((int)out[j] - (int)ref[j]);
                if (d > worst) worst = d;
                off += d != 0;
            }
            total += (int64_t)w * h * 3;
        }
        free(ref);
        free(out);
        cases++;
    }
    fclose(f);
    printf("    %d resize cases, %lld values, %lld differ from PIL, worst %d\n", cases,
           (long long)total, (long long)off, worst);
    CHECK(cases >= 40);
    CHECK(worst <= 1);
    for (int j = 0; j < 8; j++) mer_image_free(&imgs[j]);
    mer_image_free(&astro);
}

MER_TEST(clip_resize_identity_and_bad_args) {
    uint8_t src[5 * 4 * 3], dst[5 * 4 * 3];
    for (int i = 0; i < (int)sizeof src; i++) src[i] = (uint8_t)(i * 7);
    CHECK_OK(mer__resize_bicubic_u8(dst, 5, 4, src, 5, 4, 3));
    CHECK(memcmp(src, dst, sizeof src) == 0);
    CHECK_ERR(mer__resize_bicubic_u8(dst, 0, 4, src, 5, 4, 3), MER_ERR_INVALID_ARG, "resize");
    CHECK_ERR(mer__resize_bicubic_u8(dst, 5, 4, src, 5, 4, 5), MER_ERR_INVALID_ARG, NULL);
    /* a constant image stays constant through any resize (weights sum to one) */
    uint8_t flat[7 * 3 * 3], big[40 * 21 * 3];
    memset(flat, 200, sizeof flat);
    CHECK_OK(mer__resize_bicubic_u8(big, 40, 21, flat, 7, 3, 3));
    int ok = 1;
    for (size_t i = 0; i < sizeof big; i++) ok &= big[i] == 200;
    CHECK(ok);
}

MER_TEST(clip_center_crop) {
    /* 4x3 single-channel image, values = index */
    uint8_t src[12], dst[30];
    for (int i = 0; i < 12; i++) src[i] = (uint8_t)(i + 1);
    mer__center_crop_u8(dst, 2, 1, src, 4, 3, 1); /* top = 1, left = 1 */
    CHECK(dst[0] == 6 && dst[1] == 7);
    mer__center_crop_u8(dst, 3, 2, src, 4, 3, 1); /* top = 0, left = 0 (floor) */
    CHECK(dst[0] == 1 && dst[2] == 3 && dst[3] == 5);
    /* larger than the image: zero padding, image placed at ceil(missing / 2) */
    mer__center_crop_u8(dst, 6, 5, src, 4, 3, 1);
    CHECK(dst[0] == 0 && dst[6 + 1] == 1 && dst[6 + 4] == 4 && dst[6 + 5] == 0);
    CHECK(dst[3 * 6 + 1] == 9 && dst[4 * 6 + 1] == 0);
}

/* ---- model ------------------------------------------------------------------------------- */

static mer_clip_model *load_model(const char *name) {
    char p[256];
    snprintf(p, sizeof p, FX "%s", name);
    mer_clip_model *m = NULL;
    mer_status s = mer_clip_model_load(&m, p, NULL);
    if (s != MER_OK) printf("    load %s: %s\n", p, mer_last_error());
    return m;
}

static void check_outputs(const char *name, int threads) {
    mer_set_threads(threads);
    mer_clip_model *m = load_model(name);
    REQUIRE(m);
    char p[256];
    snprintf(p, sizeof p, FX "%s_px.npy", name);
    int32_t nd;
    int64_t sh[MER_MAX_DIMS];
    float *px = load_npy(p, &nd, sh);
    REQUIRE(px && nd == 4);
    int32_t n = (int32_t)sh[0];
    mer_clip_state *st = NULL;
    REQUIRE_OK(mer_clip_state_init(&st, m, NULL));
    const mer_clip_output outs[3] = {MER_CLIP_EMBEDS, MER_CLIP_CLS, MER_CLIP_HIDDEN};
    const char *names[3] = {"embeds", "cls", "hidden"};
    for (int o = 0; o < 3; o++) {
        int64_t sz = mer_clip_output_size(m, outs[o]);
        CHECK(sz > 0);
        float *y = malloc((size_t)(n * sz) * sizeof(float));
        CHECK_OK(mer_clip_forward(st, px, n, outs[o], y));
        snprintf(p, sizeof p, FX "%s_%s.npy", name, names[o]);
        check_close(names[o], y, p, n * sz, 1e-4);
        free(y);
    }
    mer_clip_state_free(st);
    mer_clip_model_free(m);
    free(px);
    mer_set_threads(0);
}

MER_TEST(clip_tiny_clipmodel_outputs) { check_outputs("tiny_clip", 0); }
MER_TEST(clip_tiny_clipmodel_one_thread) { check_outputs("tiny_clip", 1); }
MER_TEST(clip_tiny_vision_f16_gelu_outputs) { check_outputs("tiny_vision", 0); }

/* The bfloat16 speed mode: close to the reference (3 significant digits), and really in use
 * (not bitwise the fp32 result). */
MER_TEST(clip_bf16_speed_mode) {
    mer_clip_model *m = load_model("tiny_clip");
    REQUIRE(m);
    float *px = load_npy(FX "tiny_clip_px.npy", NULL, NULL);
    REQUIRE(px);
    mer_clip_state *st = NULL;
    REQUIRE_OK(mer_clip_state_init(&st, m, NULL));
    float fp32[3 * 16], bf[3 * 16];
    CHECK_OK(mer_clip_forward(st, px, 3, MER_CLIP_EMBEDS, fp32));
    CHECK_OK(mer_clip_state_set_precision(st, MER_PRECISION_BF16));
    CHECK_OK(mer_clip_state_set_precision(st, MER_PRECISION_BF16)); /* idempotent */
    CHECK_OK(mer_clip_forward(st, px, 3, MER_CLIP_EMBEDS, bf));
    check_close("bf16 embeds", bf, FX "tiny_clip_embeds.npy", 3 * 16, 3e-2);
    double mr;
    CHECK(mer_test_maxdiff(bf, fp32, 3 * 16, &mr) > 0);
    /* the precision belongs to the state: a second state on the same model stays fp32, and
     * this one returns to it bitwise */
    mer_clip_state *st2 = NULL;
    float again[3 * 16];
    REQUIRE_OK(mer_clip_state_init(&st2, m, NULL));
    CHECK_OK(mer_clip_forward(st2, px, 3, MER_CLIP_EMBEDS, again));
    CHECK(memcmp(again, fp32, sizeof fp32) == 0);
    CHECK_OK(mer_clip_state_set_precision(st, MER_PRECISION_F32));
    CHECK_OK(mer_clip_forward(st, px, 3, MER_CLIP_EMBEDS, again));
    CHECK(memcmp(again, fp32, sizeof fp32) == 0);
    CHECK_ERR(mer_clip_state_set_precision(st, (mer_precision)7), MER_ERR_INVALID_ARG, "precision");
    CHECK_ERR(mer_clip_state_set_precision(NULL, MER_PRECISION_BF16), MER_ERR_INVALID_ARG, NULL);
    free(px);
    mer_clip_state_free(st2);
    mer_clip_state_free(st);
    mer_clip_model_free(m);
}

MER_TEST(clip_config_read) {
    mer_clip_model *m = load_model("tiny_clip");
    REQUIRE(m);
    mer_clip_info c;
    mer_clip_model_info(m, &c);
    CHECK(c.hidden_size == 32 && c.n_layers == 2 && c.n_heads == 4 && c.tokens == 17);
    CHECK(c.projection_dim == 16 && c.quick_gelu == 1 && c.image_size == 32 && c.patch_size == 8);
    CHECK(c.resize_shortest_edge == 32 && c.crop_w == 32 && c.crop_h == 32);
    CHECK_NEAR(c.image_std[2], 0.27577711, 1e-7);
    CHECK(mer_clip_output_size(m, MER_CLIP_HIDDEN) == 3 * 17 * 32);
    mer_clip_model_free(m);
    m = load_model("tiny_vision");
    REQUIRE(m);
    mer_clip_model_info(m, &c);
    CHECK(c.hidden_size == 24 && c.n_layers == 3 && c.quick_gelu == 0 && c.projection_dim == 12);
    CHECK(c.resize_shortest_edge == 28 && c.crop_w == 28 && c.image_mean[0] == 0.5f);
    CHECK_NEAR(c.layer_norm_eps, 1e-6, 1e-12);
    mer_clip_model_free(m);
    mer_clip_model_free(NULL);
    mer_clip_state_free(NULL);
}

static void check_preprocess(const char *name, const int *idx, int n) {
    mer_clip_model *m = load_model(name);
    REQUIRE(m);
    mer_clip_info c;
    mer_clip_model_info(m, &c);
    int64_t px = 3 * (int64_t)c.image_size * c.image_size;
    float *got = malloc((size_t)(n * px) * sizeof(float));
    mer_image imgs[8];
    for (int i = 0; i < n; i++) {
        char p[256];
        snprintf(p, sizeof p, FX "img_%d.npy", idx[i]);
        REQUIRE(load_image_npy(p, &imgs[i]));
        CHECK_OK(mer_clip_preprocess(m, &imgs[i], got + i * px));
    }
    char p[256];
    snprintf(p, sizeof p, FX "%s_px.npy", name);
    check_close("pixels", got, p, n * px, 1e-6);
    /* the whole path from RGB: preprocess + forward == reference embeds */
    mer_clip_state *st = NULL;
    REQUIRE_OK(mer_clip_state_init(&st, m, NULL));
    float *emb = malloc((size_t)n * c.projection_dim * sizeof(float));
    CHECK_OK(mer_clip_encode_images(st, imgs, n, MER_CLIP_EMBEDS, emb));
    snprintf(p, sizeof p, FX "%s_embeds.npy", name);
    check_close("embeds from RGB", emb, p, (int64_t)n * c.projection_dim, 1e-4);
    for (int i = 0; i < n; i++) mer_image_free(&imgs[i]);
    free(emb);
    free(got);
    mer_clip_state_free(st);
    mer_clip_model_free(m);
}

MER_TEST(clip_preprocess_matches_processor) {
    const int a[3] = {0, 1, 2}, b[3] = {3, 4, 7};
    check_preprocess("tiny_clip", a, 3);
    check_preprocess("tiny_vision", b, 3);
}

MER_TEST(clip_astronaut_png) {
    mer_clip_model *m = load_model("tiny_clip");
    REQUIRE(m);
    mer_image img = {0};
    REQUIRE_OK(mer_image_load("tests/fixtures/image/astronaut.png", &img));
    float px[3 * 32 * 32], emb[16];
    CHECK_OK(mer_clip_preprocess(m, &img, px));
    check_close("astronaut pixels", px, FX "astro_px.npy", 3 * 32 * 32, 1e-6);
    mer_clip_state *st = NULL;
    REQUIRE_OK(mer_clip_state_init(&st, m, NULL));
    CHECK_OK(mer_clip_encode_images(st, &img, 1, MER_CLIP_EMBEDS, emb));
    check_close("astronaut embeds", emb, FX "astro_embeds.npy", 16, 1e-4);
    mer_image_free(&img);
    mer_clip_state_free(st);
    mer_clip_model_free(m);
}

MER_TEST(clip_missing_tensor_is_named) {
    mer_clip_model *m = NULL;
    CHECK_ERR(mer_clip_model_load(&m, FX "tiny_missing", NULL), MER_ERR_NOT_FOUND,
              "vision_model.encoder.layers.1.mlp.fc2.weight");
    CHECK(m == NULL);
    CHECK_ERR(mer_clip_model_load(&m, FX "no_such_dir", NULL), MER_ERR_IO, "no_such_dir");
}

/* Copy tiny_clip into dir with an edited config and, optionally, without one tensor. */
static void make_variant(const char *dir, const char *config_json, const char *drop) {
    char p[512];
    snprintf(p, sizeof p, "%s/config.json", dir);
    mer_test_write(p, config_json, strlen(config_json));
    mer_safetensors *st = NULL;
    mer_safetensors_writer *w = NULL;
    if (mer_safetensors_open(&st, FX "tiny_clip") != MER_OK || mer_safetensors_writer_init(&w) != MER_OK) {
        printf("    cannot copy tiny_clip: %s\n", mer_last_error());
        mer_safetensors_free(st);
        return;
    }
    for (int64_t i = 0; i < mer_safetensors_count(st); i++) {
        mer_safetensors_entry e;
        if (mer_safetensors_entry_at(st, i, &e) != MER_OK) continue;
        if (drop && !strcmp(e.name, drop)) continue;
        mer_safetensors_writer_add(w, e.name, e.dtype, e.ndim, e.shape, e.data);
    }
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    if (mer_safetensors_writer_save(w, p) != MER_OK) printf("    save: %s\n", mer_last_error());
    mer_safetensors_writer_free(w);
    mer_safetensors_free(st);
}

static const char *VISION_CFG =
    "{\"model_type\": \"clip_vision_model\", \"hidden_size\": 32, \"intermediate_size\": 64,"
    " \"num_hidden_layers\": 2, \"num_attention_heads\": 4, \"image_size\": 32, \"patch_size\": 8,"
    " \"hidden_act\": \"%s\"}";

MER_TEST(clip_vision_model_without_projection) {
    const char *dir = mer_test_tmpdir("clip_noproj");
    char cfg[512];
    snprintf(cfg, sizeof cfg, VISION_CFG, "quick_gelu");
    make_variant(dir, cfg, "visual_projection.weight");
    mer_clip_model *m = NULL;
    REQUIRE_OK(mer_clip_model_load(&m, dir, NULL)); /* no preprocessor_config: defaults + warning */
    mer_clip_info c;
    mer_clip_model_info(m, &c);
    CHECK(c.projection_dim == 0 && c.resize_shortest_edge == 32);
    CHECK(mer_clip_output_size(m, MER_CLIP_EMBEDS) == 0);
    float *px = load_npy(FX "tiny_clip_px.npy", NULL, NULL);
    REQUIRE(px);
    mer_clip_state *st = NULL;
    REQUIRE_OK(mer_clip_state_init(&st, m, NULL));
    float cls[3 * 32];
    CHECK_ERR(mer_clip_forward(st, px, 3, MER_CLIP_EMBEDS, cls), MER_ERR_UNSUPPORTED, "visual_projection");
    CHECK_OK(mer_clip_forward(st, px, 3, MER_CLIP_CLS, cls));
    check_close("cls without projection", cls, FX "tiny_clip_cls.npy", 3 * 32, 1e-4);
    px[5] = NAN;
    CHECK_ERR(mer_clip_forward(st, px, 3, MER_CLIP_CLS, cls), MER_ERR_NUMERIC, "pixel");
    free(px);
    mer_clip_state_free(st);
    mer_clip_model_free(m);
}

MER_TEST(clip_bad_configs) {
    const char *dir = mer_test_tmpdir("clip_badcfg");
    char cfg[512];
    mer_clip_model *m = NULL;
    snprintf(cfg, sizeof cfg, VISION_CFG, "relu");
    make_variant(dir, cfg, NULL);
    CHECK_ERR(mer_clip_model_load(&m, dir, NULL), MER_ERR_UNSUPPORTED, "relu");
    snprintf(cfg, sizeof cfg, "{\"model_type\": \"bert\"}");
    make_variant(dir, cfg, NULL);
    CHECK_ERR(mer_clip_model_load(&m, dir, NULL), MER_ERR_UNSUPPORTED, "bert");
    /* a config with a wider model than the tensors: shape error naming the tensor */
    snprintf(cfg, sizeof cfg, "{\"model_type\": \"clip_vision_model\", \"hidden_size\": 64,"
                              " \"intermediate_size\": 64, \"num_hidden_layers\": 2,"
                              " \"num_attention_heads\": 4, \"image_size\": 32, \"patch_size\": 8}");
    make_variant(dir, cfg, NULL);
    CHECK_ERR(mer_clip_model_load(&m, dir, NULL), MER_ERR_SHAPE, "class_embedding");
    /* a stated projection_dim must match the tensor */
    snprintf(cfg, sizeof cfg, "{\"model_type\": \"clip\", \"projection_dim\": 512, \"vision_config\":"
                              " {\"hidden_size\": 32, \"intermediate_size\": 64, \"num_hidden_layers\": 2,"
                              " \"num_attention_heads\": 4, \"image_size\": 32, \"patch_size\": 8}}");
    make_variant(dir, cfg, NULL);
    CHECK_ERR(mer_clip_model_load(&m, dir, NULL), MER_ERR_SHAPE, "visual_projection.weight");
    /* fewer layers in the config than in the checkpoint */
    snprintf(cfg, sizeof cfg, "{\"model_type\": \"clip_vision_model\", \"hidden_size\": 32,"
                              " \"intermediate_size\": 64, \"num_hidden_layers\": 1,"
                              " \"num_attention_heads\": 4, \"image_size\": 32, \"patch_size\": 8}");
    make_variant(dir, cfg, NULL);
    CHECK_ERR(mer_clip_model_load(&m, dir, NULL), MER_ERR_SHAPE, "num_hidden_layers");
    /* preprocessing that does not end at image_size */
    snprintf(cfg, sizeof cfg, VISION_CFG, "gelu");
    make_variant(dir, cfg, NULL);
    char p[512];
    snprintf(p, sizeof p, "%s/preprocessor_config.json", dir);
    const char *pp = "{\"size\": {\"shortest_edge\": 40}, \"crop_size\": {\"height\": 40, \"width\": 40}}";
    mer_test_write(p, pp, strlen(pp));
    REQUIRE_OK(mer_clip_model_load(&m, dir, NULL));
    mer_image img = {0};
    REQUIRE(load_image_npy(FX "img_0.npy", &img));
    float px[3 * 32 * 32];
    CHECK_ERR(mer_clip_preprocess(m, &img, px), MER_ERR_SHAPE, "40x40");
    mer_image_free(&img);
    mer_clip_model_free(m);
    CHECK(m != NULL);
}

/* ---- CLI: mer extract visual --------------------------------------------------------------- */

static int file_exists(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0;
}

MER_TEST(clip_cli_image_and_video) {
    const char *dir = mer_test_tmpdir("clip_cli");
    char out[8192], p[600];
    /* one image -> a .npy equal to the reference get_image_features */
    snprintf(p, sizeof p, "%s/astro.npy", dir);
    int rc = mer_test_run(out, sizeof out, "%s extract visual --model " FX "tiny_clip --out %s tests/fixtures/image/astronaut.png",
                          mer_test_bin(), p);
    if (rc != 0) printf("    %s", out);
    CHECK(rc == 0);
    int32_t nd;
    int64_t sh[MER_MAX_DIMS];
    float *e = load_npy(p, &nd, sh);
    REQUIRE(e);
    CHECK(nd == 1 && sh[0] == 16);
    check_close("cli embeds", e, FX "astro_embeds.npy", 16, 1e-4);
    free(e);
    /* a video, frames kept, then pooled: the mean of the rows */
    snprintf(p, sizeof p, "%s/frames.npy", dir);
    rc = mer_test_run(out, sizeof out, "%s extract visual --model " FX "tiny_clip --frames 4 --pool none --output cls --out %s " FX "clip.mp4",
                      mer_test_bin(), p);
    CHECK(rc == 0);
    float *fr = load_npy(p, &nd, sh);
    REQUIRE(fr);
    CHECK(nd == 2 && sh[0] == 4 && sh[1] == 32);
    snprintf(p, sizeof p, "%s/mean.npy", dir);
    rc = mer_test_run(out, sizeof out, "%s extract visual --model " FX "tiny_clip --frames 4 --output cls --threads 1 --out %s " FX "clip.mp4",
                      mer_test_bin(), p);
    CHECK(rc == 0);
    float *mn = load_npy(p, &nd, sh);
    REQUIRE(mn);
    CHECK(nd == 1 && sh[0] == 32);
    double worst = 0;
    for (int k = 0; k < 32; k++) {
        double m = (fr[k] + fr[32 + k] + fr[64 + k] + fr[96 + k]) / 4;
        if (fabs(m - mn[k]) > worst) worst = fabs(m - mn[k]);
    }
    CHECK(worst < 1e-4);
    free(fr);
    free(mn);
    /* hidden states of an image: (L+1, T, D) */
    snprintf(p, sizeof p, "%s/hidden.npy", dir);
    rc = mer_test_run(out, sizeof out, "%s extract visual --model " FX "tiny_vision --output hidden --out %s " FX "../image/small.jpg",
                      mer_test_bin(), p);
    CHECK(rc == 0);
    float *hs = load_npy(p, &nd, sh);
    CHECK(hs && nd == 3 && sh[0] == 4 && sh[1] == 17 && sh[2] == 24);
    free(hs);
}

MER_TEST(clip_cli_directory_and_failures) {
    const char *dir = mer_test_tmpdir("clip_cli_dir");
    char out[8192];
    /* several inputs -> a directory; the audio-only file fails alone, nothing half-written */
    int rc = mer_test_run(out, sizeof out, "%s extract visual --model " FX "tiny_clip --fps 2 --out %s/feat "
                          "tests/fixtures/image/astronaut.png " FX "novideo.wav " FX "clip.mp4",
                          mer_test_bin(), dir);
    CHECK(rc == 1);
    CHECK(strstr(out, "novideo.wav") && strstr(out, "video"));
    char p[600];
    snprintf(p, sizeof p, "%s/feat/astronaut.npy", dir);
    CHECK(file_exists(p));
    snprintf(p, sizeof p, "%s/feat/clip.npy", dir);
    CHECK(file_exists(p));
    snprintf(p, sizeof p, "%s/feat/novideo.npy", dir);
    CHECK(!file_exists(p));
    /* a checkpoint with a missing vision tensor: one line naming it, nothing written */
    rc = mer_test_run(out, sizeof out, "%s extract visual --model " FX "tiny_missing --out %s/x.npy tests/fixtures/image/astronaut.png",
                      mer_test_bin(), dir);
    CHECK(rc == 1);
    CHECK(strstr(out, "layers.1.mlp.fc2.weight") != NULL);
    snprintf(p, sizeof p, "%s/x.npy", dir);
    CHECK(!file_exists(p));
    /* usage errors */
    CHECK(mer_test_run(out, sizeof out, "%s extract visual --out %s/y.npy x.png", mer_test_bin(), dir) == 2);
    CHECK(mer_test_run(out, sizeof out, "%s extract visual --model " FX "tiny_clip --frames 2 --fps 1 --out %s/y.npy x.mp4",
                       mer_test_bin(), dir) == 2);
    CHECK(mer_test_run(out, sizeof out, "%s extract visual --model " FX "tiny_clip --output logits --out %s/y.npy x.png",
                       mer_test_bin(), dir) == 2);
    CHECK(mer_test_run(out, sizeof out, "%s extract visual --model " FX "tiny_clip --pool max --out %s/y.npy x.png",
                       mer_test_bin(), dir) == 2);
}

MER_TEST(clip_cli_faces) {
    const char *dir = mer_test_tmpdir("clip_cli_faces");
    char out[8192], p[600];
    /* a video without any face: a clear error and no output */
    snprintf(p, sizeof p, "%s/noface.npy", dir);
    int rc = mer_test_run(out, sizeof out, "%s extract visual --model " FX "tiny_clip --faces --frames 3 --out %s " FX "clip.mp4",
                          mer_test_bin(), p);
    CHECK(rc == 1);
    CHECK(strstr(out, "no face") != NULL);
    CHECK(!file_exists(p));
    /* the astronaut portrait has one face: features of the crop, not of the whole image */
    snprintf(p, sizeof p, "%s/face.npy", dir);
    rc = mer_test_run(out, sizeof out, "%s extract visual --model " FX "tiny_clip --faces --out %s tests/fixtures/image/astronaut.png",
                      mer_test_bin(), p);
    if (rc != 0) printf("    %s", out);
    CHECK(rc == 0);
    float *f = load_npy(p, NULL, NULL), *whole = load_npy(FX "astro_embeds.npy", NULL, NULL);
    REQUIRE(f && whole);
    double mr;
    CHECK(mer_test_maxdiff(f, whole, 16, &mr) > 1e-3);
    for (int k = 0; k < 16; k++) CHECK(isfinite(f[k]));
    free(f);
    free(whole);
}

/* int8 W8A8 linear products (MER_PRECISION_INT8): close to the reference and really in use. */
MER_TEST(clip_int8_precision) {
    mer_clip_model *m = load_model("tiny_clip");
    REQUIRE(m);
    float *px = load_npy(FX "tiny_clip_px.npy", NULL, NULL);
    REQUIRE(px);
    mer_clip_state *st = NULL;
    REQUIRE_OK(mer_clip_state_init(&st, m, NULL));
    float fp32[3 * 16], q8[3 * 16];
    CHECK_OK(mer_clip_forward(st, px, 3, MER_CLIP_EMBEDS, fp32));
    CHECK_OK(mer_clip_state_set_precision(st, MER_PRECISION_INT8));
    CHECK_OK(mer_clip_forward(st, px, 3, MER_CLIP_EMBEDS, q8));
    /* a tiny model (width 32) quantises coarser than a real one (k = 32 products per output,
     * 7-bit weights): 6e-2 of max|ref| and cosine >= 0.999 per image here; the real-size
     * figures are in docs/gemm.md */
    check_close("int8 embeds", q8, FX "tiny_clip_embeds.npy", 3 * 16, 6e-2);
    float *ref = load_npy(FX "tiny_clip_embeds.npy", NULL, NULL);
    REQUIRE(ref);
    for (int b = 0; b < 3; b++) {
        double dot = 0, na = 0, nb = 0;
        for (int i = 0; i < 16; i++) {
            dot += (double)q8[b * 16 + i] * ref[b * 16 + i];
            na += (double)q8[b * 16 + i] * q8[b * 16 + i];
            nb += (double)ref[b * 16 + i] * ref[b * 16 + i];
        }
        printf("    image %d int8 embeds cosine %.6f\n", b, dot / sqrt(na * nb));
        CHECK(dot / sqrt(na * nb) >= 0.999);
    }
    free(ref);
    double mr;
    CHECK(mer_test_maxdiff(q8, fp32, 3 * 16, &mr) > 0);
    CHECK_OK(mer_clip_state_set_precision(st, MER_PRECISION_F32));
    float again[3 * 16];
    CHECK_OK(mer_clip_forward(st, px, 3, MER_CLIP_EMBEDS, again));
    CHECK(memcmp(again, fp32, sizeof fp32) == 0);
    free(px);
    mer_clip_state_free(st);
    mer_clip_model_free(m);
}


/* State params: progress after each batch, abort before each layer stops a forward with
 * MER_ERR_ABORTED (the sanitizer leg checks for leaks); the state works as new afterwards.
 * Loader params: an unknown precision is refused. */
MER_TEST(clip_params_abort_progress) {
    mer_clip_model *m = NULL;
    mer_clip_model_params mp = mer_clip_model_default_params();
    mp.precision = (mer_precision)7;
    CHECK_ERR(mer_clip_model_load(&m, FX "tiny_clip", &mp), MER_ERR_INVALID_ARG, "precision");
    CHECK(m == NULL);
    mp.precision = MER_PRECISION_INT8;
    REQUIRE_OK(mer_clip_model_load(&m, FX "tiny_clip", &mp));
    float *px = load_npy(FX "tiny_clip_px.npy", NULL, NULL);
    REQUIRE(px);
    mer_clip_state *plain = NULL, *st = NULL;
    REQUIRE_OK(mer_clip_state_init(&plain, m, NULL));
    float ref[3 * 16], y[3 * 16];
    CHECK_OK(mer_clip_forward(plain, px, 3, MER_CLIP_EMBEDS, ref));
    mer_test_calls cc = {0};
    mer_clip_state_params sp = mer_clip_state_default_params();
    sp.progress = mer_test_progress;
    sp.progress_user_data = &cc;
    sp.abort = mer_test_abort;
    sp.abort_user_data = &cc;
    sp.n_threads = 2;
    REQUIRE_OK(mer_clip_state_init(&st, m, &sp));
    CHECK_OK(mer_clip_forward(st, px, 3, MER_CLIP_EMBEDS, y));
    CHECK(cc.progress_calls == 1 && cc.last_done == 3 && cc.last_total == 3);
    mer_clip_info info;
    mer_clip_model_info(m, &info);
    CHECK(cc.polls == 0 && info.n_layers >= 2);
    check_close("embeds (state params)", y, FX "tiny_clip_embeds.npy", 3 * 16, 1e-4);
    memset(&cc, 0, sizeof cc);
    cc.stop_at = 2;
    CHECK_ERR(mer_clip_forward(st, px, 3, MER_CLIP_EMBEDS, y), MER_ERR_ABORTED, "stopped by the caller");
    CHECK(cc.progress_calls == 0 && cc.polls == 2);
    memset(&cc, 0, sizeof cc);
    cc.stop_at = info.n_layers; /* the class-row pass of the last layer polls too */
    CHECK_ERR(mer_clip_forward(st, px, 3, MER_CLIP_EMBEDS, y), MER_ERR_ABORTED, "stopped by the caller");
    cc.stop_at = 0;
    CHECK_OK(mer_clip_forward(st, px, 3, MER_CLIP_EMBEDS, y));
    CHECK(memcmp(y, ref, sizeof ref) == 0);
    sp.precision = (mer_precision)9;
    mer_clip_state *bad = NULL;
    CHECK_ERR(mer_clip_state_init(&bad, m, &sp), MER_ERR_INVALID_ARG, "precision");
    CHECK(bad == NULL);
    free(px);
    mer_clip_state_free(st);
    mer_clip_state_free(plain);
    mer_clip_model_free(m);
}

/* A run trained on CLIP features predicts from media: `mer extract visual` writes recipe.json
 * (checkpoint, output, pooling, frame sampling, faces, precision), `mer train` records it, and
 * `predict --input` replays it: the same CSV, byte for byte, as extract + `predict --feature`.
 * Six images and a video (two frames sampled), through the tiny CLIP fixture in int8. */
MER_TEST(clip_predict_media_through_recipe) {
    static const char *src[7] = {"image/astronaut.png", "image/small.jpg", "image/grey.png", "image/la.png",
                                 "image/rgba.png", "image/palette.png", "clip/clip.mp4"};
    char d[600], out[8192], path[900], target[900], inputs[2000] = "";
    snprintf(d, sizeof d, "%s", mer_test_tmpdir("clip_predict_media"));
    const char *mer = mer_test_bin();
    char labels[400] = "name,emotion\n";
    char cwd[600];
    REQUIRE(getcwd(cwd, sizeof cwd));
    for (int k = 0; k < 7; k++) {
        const char *ext = strrchr(src[k], '.');
        snprintf(path, sizeof path, "%s/c%d%s", d, k, ext);
        snprintf(target, sizeof target, "%s/tests/fixtures/%s", cwd, src[k]);
        unlink(path);
        REQUIRE(symlink(target, path) == 0);
        snprintf(labels + strlen(labels), sizeof labels - strlen(labels), "c%d,%s\n", k, k % 2 ? "happy" : "sad");
        snprintf(inputs + strlen(inputs), sizeof inputs - strlen(inputs), " %s", path);
    }
    snprintf(path, sizeof path, "%s/labels.csv", d);
    REQUIRE(mer_test_write(path, labels, strlen(labels)) == 0);
    int rc = mer_test_run(out, sizeof out, "%s extract visual --model " FX "tiny_clip --frames 2 --precision int8 "
                          "--threads 2 --out %s/feat%s", mer, d, inputs);
    if (rc) printf("    %s\n", out);
    REQUIRE(rc == 0);
    rc = mer_test_run(out, sizeof out, "%s train --labels %s/labels.csv --feature visual=%s/feat --model linear "
                      "--folds 2 --epochs 3 --threads 2 --no-plots --out %s/run", mer, d, d, d);
    if (rc) printf("    %s\n", out);
    REQUIRE(rc == 0);
    mer_run *run = NULL;
    snprintf(path, sizeof path, "%s/run", d);
    REQUIRE_OK(mer_run_open(&run, path));
    CHECK(mer_run_recipe(run) && strstr(mer_run_recipe(run), "\"visual\"") && strstr(mer_run_recipe(run), "\"int8\""));
    mer_run_free(run);
    rc = mer_test_run(out, sizeof out, "%s predict --run %s/run --feature visual=%s/feat --threads 2 --out %s/a.csv",
                      mer, d, d, d);
    CHECK(rc == 0);
    rc = mer_test_run(out, sizeof out, "%s predict --run %s/run --input%s --threads 2 --out %s/b.csv && cmp %s/a.csv %s/b.csv",
                      mer, d, inputs, d, d, d);
    if (rc) printf("    %s\n", out);
    CHECK(rc == 0);
    /* a rerun into the directory with another recipe is refused, naming the difference */
    rc = mer_test_run(out, sizeof out, "%s extract visual --model " FX "tiny_clip --frames 3 --precision int8 "
                      "--out %s/feat%s", mer, d, inputs);
    CHECK(rc == 1 && strstr(out, "another recipe") && strstr(out, "frames"));
    /* a recipe that names no model is a clean error */
    char *json = NULL;
    float *data = NULL;
    int32_t nd = 0;
    int64_t sh[MER_MAX_DIMS];
    CHECK_ERR(mer_clip_recipe_extract("{\"visual\": {\"output\": \"cls\"}}", inputs + 1, &data, &nd, sh),
              MER_ERR_NOT_FOUND, "visual.model");
    CHECK_ERR(mer_clip_recipe_extract("{\"visual\": {\"model\": \"" FX "tiny_clip\", \"output\": \"pixels\"}}",
                                      inputs + 1, &data, &nd, sh), MER_ERR_FORMAT, "pixels");
    CHECK(data == NULL);
    mer_clip_extract_params ep = mer_clip_default_extract_params();
    REQUIRE_OK(mer_clip_recipe_to_json(FX "tiny_clip", &ep, MER_PRECISION_F32, 0, NULL, &json));
    CHECK(strstr(json, "\"embeds\"") && !strstr(json, "face_models"));
    free(json);
}
