/*
 * test_hubert.c -- the speech encoder (src/models/hubert.c), its forward kernels (norm, softmax,
 * attention, conv1d against naive oracles) and `mer extract audio`.
 *
 * The model fixtures (tests/fixtures/hubert/, made by make_hubert_fixture.py) are tiny
 * torchaudio wav2vec2 models with perturbed random weights saved under Hugging Face names; the
 * references are torchaudio's hidden states. Every hidden state must agree within
 * max|diff| <= 1e-4 * max|ref| per layer, the bar the full-size parity run uses too. The opt-in
 * bfloat16 mode (MER_PRECISION_BF16) has the looser documented bar HB_BF16_TOL * max|ref| per
 * layer (measured: ~3e-3 on these fixtures, ~4e-3 at the large size, docs/speech.md).
 */
#include "test.h"
#include "internal.h"
#include "kernels/kernels.h"

#include <math.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#define HFIX "tests/fixtures/hubert/"

/* ---- helpers ----------------------------------------------------------------------------- */

/* 16-bit PCM mono WAV as written by the fixture script -> float32 (x / 32768). */
static float *read_wav16(const char *path, int64_t *n) {
    char *buf;
    size_t size;
    if (mer__read_file(path, &buf, &size) != MER_OK || size < 44) return NULL;
    uint32_t bytes;
    memcpy(&bytes, buf + 40, 4);
    if (44 + (size_t)bytes > size) {
        free(buf);
        return NULL;
    }
    *n = bytes / 2;
    float *x = malloc((size_t)(*n ? *n : 1) * sizeof(float));
    for (int64_t i = 0; i < *n; i++) {
        int16_t v;
        memcpy(&v, buf + 44 + 2 * i, 2);
        x[i] = (float)v / 32768.0f;
    }
    free(buf);
    return x;
}

/* Per-slice comparison: slices of `slice` floats, max|diff| <= 1e-4 * max|ref| each. */
static int compare_slices(const char *what, const float *got, const float *ref, int64_t n_slices,
                          int64_t slice) {
    int ok = 1;
    for (int64_t i = 0; i < n_slices; i++) {
        double mref;
        double md = mer_test_maxdiff(got + i * slice, ref + i * slice, (size_t)slice, &mref);
        if (!(md <= 1e-4 * mref)) {
            printf("  %s slice %lld: max|diff| %.3g > 1e-4 * max|ref| %.3g\n", what, (long long)i, md, mref);
            ok = 0;
        }
    }
    return ok;
}

static float *load_ref(const char *name, int32_t *nd, int64_t sh[MER_MAX_DIMS]) {
    char p[256];
    float *d = NULL;
    snprintf(p, sizeof p, HFIX "%s.npy", name);
    if (mer_npy_read(p, &d, nd, sh) != MER_OK) return NULL;
    return d;
}

/* Encode fixture audio (normalized) with every hidden state and compare to the reference. */
static void check_model_on(const char *model_dir, const char *wav, const char *ref_name) {
    mer_speech_model *m = NULL;
    mer_speech_state *st = NULL;
    REQUIRE_OK(mer_speech_model_load(&m, model_dir, NULL));
    REQUIRE_OK(mer_speech_state_init(&st, m, NULL));
    mer_speech_info info;
    mer_speech_model_info(m, &info);
    int64_t n = 0;
    float *x = read_wav16(wav, &n);
    int32_t nd;
    int64_t sh[MER_MAX_DIMS];
    float *ref = load_ref(ref_name, &nd, sh);
    if (!x || !ref) {
        CHECK(x && ref);
        goto out;
    }
    mer_speech_normalize(x, n);
    const int64_t T = mer_speech_frames(m, n);
    CHECK(nd == 3 && sh[0] == info.n_layers + 1 && sh[1] == T && sh[2] == info.hidden_size);
    if (nd == 3 && sh[1] == T) {
        float *hs = malloc((size_t)(sh[0] * T * sh[2]) * sizeof(float));
        CHECK_OK(mer_speech_encode(st, x, n, 0, info.n_layers, hs));
        CHECK(compare_slices(ref_name, hs, ref, sh[0], T * sh[2]));
        /* a sub-range gives the same numbers, and reusing the state is stable */
        CHECK_OK(mer_speech_encode(st, x, n, 1, 1, hs));
        CHECK(compare_slices(ref_name, hs, ref + T * sh[2], 1, T * sh[2]));
        free(hs);
    }
out:
    free(x);
    free(ref);
    mer_speech_state_free(st);
    mer_speech_model_free(m);
}

/* ---- kernels against naive oracles -------------------------------------------------------- */

static void fill(float *x, int64_t n, uint64_t seed) {
    mer__rng r;
    mer__rng_seed(&r, seed);
    for (int64_t i = 0; i < n; i++) x[i] = (float)mer__rng_normal(&r);
}

MER_TEST(hubert_kernel_conv1d) {
    struct { int64_t cin, tin, cout, k, stride, pad, groups; } cases[] = {
        {1, 1000, 8, 10, 5, 0, 1}, {6, 97, 4, 3, 2, 0, 1}, {8, 50, 8, 16, 1, 8, 4}, {8, 33, 8, 9, 1, 4, 2},
        {4, 3000, 6, 2, 2, 0, 2},
    };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        int64_t cin = cases[c].cin, tin = cases[c].tin, cout = cases[c].cout, k = cases[c].k;
        int64_t s = cases[c].stride, pad = cases[c].pad, g = cases[c].groups;
        int64_t tout = (tin + 2 * pad - k) / s + 1, cg = cin / g, og = cout / g;
        float *x = malloc(sizeof(float) * cin * tin), *w = malloc(sizeof(float) * cout * cg * k);
        float *b = malloc(sizeof(float) * cout), *y = malloc(sizeof(float) * cout * tout);
        float *r = malloc(sizeof(float) * cout * tout);
        fill(x, cin * tin, 1 + c);
        fill(w, cout * cg * k, 2 + c);
        fill(b, cout, 3 + c);
        for (int64_t o = 0; o < cout; o++)
            for (int64_t t = 0; t < tout; t++) {
                double acc = b[o];
                int64_t gi = o / og;
                for (int64_t i = 0; i < cg; i++)
                    for (int64_t kk = 0; kk < k; kk++) {
                        int64_t p = t * s - pad + kk;
                        if (p >= 0 && p < tin) acc += (double)w[(o * cg + i) * k + kk] * x[(gi * cg + i) * tin + p];
                    }
                r[o * tout + t] = (float)acc;
            }
        CHECK_OK(mer__conv1d_fwd(y, x, w, b, cin, tin, cout, k, s, pad, g));
        double mref, md = mer_test_maxdiff(y, r, (size_t)(cout * tout), &mref);
        if (!(md <= 1e-5 * mref)) printf("  conv case %zu: %.3g vs %.3g\n", c, md, mref);
        CHECK(md <= 1e-5 * mref);
        free(x), free(w), free(b), free(y), free(r);
    }
}

MER_TEST(hubert_kernel_norms_softmax) {
    const int64_t n = 37, c = 300;
    float *x = malloc(sizeof(float) * n * c), *y = malloc(sizeof(float) * n * c), *r = malloc(sizeof(float) * n * c);
    float *g = malloc(sizeof(float) * c), *b = malloc(sizeof(float) * c), mean[37], rstd[37];
    fill(x, n * c, 7);
    fill(g, c, 8);
    fill(b, c, 9);
    for (int64_t i = 0; i < n * c; i++) x[i] = 3.0f + 2.0f * x[i];
    /* layer norm: rows of c */
    for (int64_t i = 0; i < n; i++) {
        double m = 0, v = 0;
        for (int64_t j = 0; j < c; j++) m += x[i * c + j];
        m /= c;
        for (int64_t j = 0; j < c; j++) v += (x[i * c + j] - m) * (x[i * c + j] - m);
        v /= c;
        for (int64_t j = 0; j < c; j++) r[i * c + j] = (float)((x[i * c + j] - m) / sqrt(v + 1e-5) * g[j] + b[j]);
    }
    mer__layernorm_fwd(y, mean, rstd, x, g, b, n, c, 1e-5f);
    double mref, md = mer_test_maxdiff(y, r, (size_t)(n * c), &mref);
    CHECK(md <= 1e-5 * mref);
    /* group norm with groups == channels: x as (n channels, c time) */
    for (int64_t i = 0; i < n; i++) {
        double m = 0, v = 0;
        for (int64_t j = 0; j < c; j++) m += x[i * c + j];
        m /= c;
        for (int64_t j = 0; j < c; j++) v += (x[i * c + j] - m) * (x[i * c + j] - m);
        v /= c;
        for (int64_t j = 0; j < c; j++) r[i * c + j] = (float)((x[i * c + j] - m) / sqrt(v + 1e-5) * g[i] + b[i]);
    }
    mer__groupnorm_ct_fwd(y, x, g, b, n, c, 1e-5f);
    md = mer_test_maxdiff(y, r, (size_t)(n * c), &mref);
    CHECK(md <= 1e-5 * mref);
    /* softmax rows, incl. a length that is not a multiple of 16 */
    for (int64_t i = 0; i < n; i++) {
        double mx = -1e30, s = 0;
        for (int64_t j = 0; j < c; j++) mx = x[i * c + j] > mx ? x[i * c + j] : mx;
        for (int64_t j = 0; j < c; j++) s += exp(x[i * c + j] - mx);
        for (int64_t j = 0; j < c; j++) r[i * c + j] = (float)(exp(x[i * c + j] - mx) / s);
    }
    mer__softmax_fwd(y, x, n, c);
    md = mer_test_maxdiff(y, r, (size_t)(n * c), &mref);
    CHECK(md <= 2e-6 * mref);
    free(x), free(y), free(r), free(g), free(b);
}

MER_TEST(hubert_kernel_attention) {
    /* the second shape spans several query blocks (48 rows) and key blocks (128) of the fused
     * kernel, and a value panel (16 columns) cut short */
    static const int64_t shapes[2][4] = {{23, 29, 3, 8}, {53, 140, 2, 24}};
    for (int si = 0; si < 2; si++) {
        const int64_t tq = shapes[si][0], tk = shapes[si][1], h = shapes[si][2], dh = shapes[si][3];
        const int64_t D = h * dh, ld = D + 5;
        float *q = malloc(sizeof(float) * tq * ld), *k = malloc(sizeof(float) * tk * ld);
        float *v = malloc(sizeof(float) * tk * ld), *o = malloc(sizeof(float) * tq * ld);
        float *r = malloc(sizeof(float) * tq * D), *probs = malloc(sizeof(float) * h * tq * tk);
        float *o2 = malloc(sizeof(float) * tq * D);
        uint8_t mask[140];
        for (int i = 0; i < tk; i++) mask[i] = i % 7 != 3;
        fill(q, tq * ld, 11);
        fill(k, tk * ld, 12);
        fill(v, tk * ld, 13);
        const float sc = 1.0f / sqrtf((float)dh);
        for (int pass = 0; pass < 2; pass++) {
            const uint8_t *mk = pass ? mask : NULL;
            for (int64_t hh = 0; hh < h; hh++)
                for (int64_t i = 0; i < tq; i++) {
                    double s[140], mx = -1e30, sum = 0;
                    for (int64_t j = 0; j < tk; j++) {
                        double a = 0;
                        for (int64_t d = 0; d < dh; d++) a += (double)q[i * ld + hh * dh + d] * k[j * ld + hh * dh + d];
                        s[j] = mk && !mk[j] ? -1e300 : a * sc;
                        mx = s[j] > mx ? s[j] : mx;
                    }
                    for (int64_t j = 0; j < tk; j++) sum += (s[j] = exp(s[j] - mx));
                    for (int64_t d = 0; d < dh; d++) {
                        double a = 0;
                        for (int64_t j = 0; j < tk; j++) a += s[j] / sum * v[j * ld + hh * dh + d];
                        r[i * D + hh * dh + d] = (float)a;
                    }
                }
            REQUIRE_OK(mer__attention_fwd(o, ld, pass ? probs : NULL, q, ld, k, ld, v, ld, mk, tq, tk, h, dh, sc, NULL));
            for (int64_t i = 0; i < tq; i++) memcpy(o2 + i * D, o + i * ld, sizeof(float) * D);
            double mref, md = mer_test_maxdiff(o2, r, (size_t)(tq * D), &mref);
            CHECK(md <= 1e-5 * mref);
        }
        CHECK(probs[3] == 0.0f); /* masked key 3 of head 0, row 0 */
        free(q), free(k), free(v), free(o), free(r), free(probs), free(o2);
    }
}

/* ---- model exactness ---------------------------------------------------------------------- */

MER_TEST(hubert_base_post_ln_group_norm) {
    check_model_on(HFIX "base", HFIX "a2.wav", "base_a2");
    check_model_on(HFIX "base", HFIX "a12.wav", "base_a12");
}

MER_TEST(hubert_large_stable_layer_norm) {
    check_model_on(HFIX "large", HFIX "a2.wav", "large_a2");
}

MER_TEST(hubert_f16_bf16_checkpoints) {
    check_model_on(HFIX "base_f16", HFIX "a2.wav", "base_f16_a2");
    check_model_on(HFIX "large_bf16", HFIX "a2.wav", "large_bf16_a2");
}

MER_TEST(hubert_info_and_frames) {
    mer_speech_model *m = NULL;
    REQUIRE_OK(mer_speech_model_load(&m, HFIX "large", NULL));
    mer_speech_info info;
    mer_speech_model_info(m, &info);
    CHECK(!strcmp(info.model_type, "wav2vec2"));
    CHECK(info.n_layers == 3 && info.hidden_size == 48 && info.stable_layer_norm == 1);
    CHECK(info.sample_rate == 16000 && info.do_normalize == 1);
    CHECK(mer_speech_frames(m, 16000) == 49 && mer_speech_frames(m, 400) == 1 && mer_speech_frames(m, 399) == 0);
    mer_speech_model_free(m);
    mer_speech_model_free(NULL);
    mer_speech_state_free(NULL);
}

/* chunking, pooling, combining and the MERTools preset, through mer_speech_extract */
MER_TEST(hubert_extract_chunks_and_preset) {
    mer_speech_model *mb = NULL, *ml = NULL;
    mer_speech_state *sb = NULL, *sl = NULL;
    REQUIRE_OK(mer_speech_model_load(&mb, HFIX "base", NULL));
    REQUIRE_OK(mer_speech_model_load(&ml, HFIX "large", NULL));
    REQUIRE_OK(mer_speech_state_init(&sb, mb, NULL));
    REQUIRE_OK(mer_speech_state_init(&sl, ml, NULL));
    int64_t n2 = 0, n12 = 0;
    float *a2 = read_wav16(HFIX "a2.wav", &n2), *a12 = read_wav16(HFIX "a12.wav", &n12);
    REQUIRE(a2 && a12);
    float *out = NULL, *ref;
    int32_t nd, rnd;
    int64_t sh[3], rsh[MER_MAX_DIMS];

    /* base, 1 s chunks of the 2 s clip, stack, no pooling */
    mer_speech_params p = mer_speech_default_params();
    p.chunk_seconds = 1.0;
    CHECK_OK(mer_speech_extract(sb, a2, n2, &p, &out, &nd, sh));
    ref = load_ref("base_a2_chunk1", &rnd, rsh);
    CHECK(ref && out && nd == 3 && sh[0] == rsh[0] && sh[1] == rsh[1] && sh[2] == rsh[2]);
    if (ref && out && sh[1] == rsh[1]) CHECK(compare_slices("chunk1", out, ref, sh[0], sh[1] * sh[2]));
    free(out), free(ref);

    /* sum and mean combine of layers 1..2 without chunking, vs the full reference */
    ref = load_ref("base_a2", &rnd, rsh);
    REQUIRE(ref);
    const int64_t TD = rsh[1] * rsh[2];
    float *want = malloc(sizeof(float) * TD);
    for (int64_t i = 0; i < TD; i++) want[i] = ref[TD + i] + ref[2 * TD + i];
    p = mer_speech_default_params();
    p.layer_first = 1;
    p.layer_last = 2;
    p.combine = MER_SPEECH_SUM;
    CHECK_OK(mer_speech_extract(sb, a2, n2, &p, &out, &nd, sh));
    CHECK(nd == 2 && sh[0] == rsh[1] && sh[1] == rsh[2]);
    if (out) CHECK(compare_slices("sum", out, want, 1, TD));
    free(out);
    p.combine = MER_SPEECH_MEAN;
    CHECK_OK(mer_speech_extract(sb, a2, n2, &p, &out, &nd, sh));
    for (int64_t i = 0; i < TD; i++) want[i] *= 0.5f;
    if (out) CHECK(compare_slices("mean", out, want, 1, TD));
    free(out), free(want), free(ref);

    /* large, 12.3 s: whole utterance pooled per layer; 10 s chunks pooled; MERTools preset */
    p = mer_speech_default_params();
    p.pool_mean = 1;
    CHECK_OK(mer_speech_extract(sl, a12, n12, &p, &out, &nd, sh));
    ref = load_ref("large_a12_full_mean", &rnd, rsh);
    CHECK(ref && nd == 2 && sh[0] == 4 && sh[1] == 48);
    if (ref && out) CHECK(compare_slices("full_mean", out, ref, 4, 48));
    free(out), free(ref);
    p.chunk_seconds = 10.0;
    CHECK_OK(mer_speech_extract(sl, a12, n12, &p, &out, &nd, sh));
    ref = load_ref("large_a12_chunk10_mean", &rnd, rsh);
    if (ref && out) CHECK(compare_slices("chunk10_mean", out, ref, 4, 48));
    free(out), free(ref);
    p = mer_speech_mertools_params();
    CHECK_OK(mer_speech_extract(sl, a12, n12, &p, &out, &nd, sh));
    ref = load_ref("large_a12_mertools", &rnd, rsh);
    CHECK(nd == 1 && sh[0] == 48);
    if (ref && out) CHECK(compare_slices("mertools", out, ref, 1, 48));
    free(out), free(ref);

    free(a2), free(a12);
    mer_speech_state_free(sb), mer_speech_state_free(sl);
    mer_speech_model_free(mb), mer_speech_model_free(ml);
}

/* ---- bad input ---------------------------------------------------------------------------- */

MER_TEST(hubert_bad_audio) {
    mer_speech_model *m = NULL;
    mer_speech_state *st = NULL;
    REQUIRE_OK(mer_speech_model_load(&m, HFIX "base", NULL));
    REQUIRE_OK(mer_speech_state_init(&st, m, NULL));
    mer_speech_params p = mer_speech_default_params();
    float *out = NULL, buf[16000];
    int32_t nd;
    int64_t sh[3];
    CHECK_ERR(mer_speech_extract(st, buf, 0, &p, &out, &nd, sh), MER_ERR_INVALID_ARG, "no audio");
    memset(buf, 0, sizeof buf);
    CHECK_ERR(mer_speech_extract(st, buf, 16000, &p, &out, &nd, sh), MER_ERR_INVALID_ARG, "silent");
    buf[5] = 0.5f;
    CHECK_ERR(mer_speech_extract(st, buf, 300, &p, &out, &nd, sh), MER_ERR_SHAPE, "too short");
    buf[7] = NAN;
    CHECK_ERR(mer_speech_extract(st, buf, 16000, &p, &out, &nd, sh), MER_ERR_NUMERIC, "sample 7");
    CHECK(out == NULL);
    p.layer_first = 0;
    p.layer_last = 9;
    buf[7] = 0.1f;
    CHECK_ERR(mer_speech_extract(st, buf, 16000, &p, &out, &nd, sh), MER_ERR_INVALID_ARG, "0..2");
    mer_speech_state_free(st);
    mer_speech_model_free(m);
}

static void copy_file(const char *src, const char *dst, size_t truncate_to) {
    char *d;
    size_t n;
    if (mer__read_file(src, &d, &n) != MER_OK) return;
    mer_test_write(dst, d, truncate_to && truncate_to < n ? truncate_to : n);
    free(d);
}

/* A checkpoint dir in tmp made from the base fixture, config text optionally replaced. */
static const char *make_ckpt(const char *name, const char *config_text, size_t truncate_to) {
    const char *dir = mer_test_tmpdir(name);
    char a[512], b[512];
    snprintf(b, sizeof b, "%s/model.safetensors", dir);
    copy_file(HFIX "base/model.safetensors", b, truncate_to);
    snprintf(b, sizeof b, "%s/config.json", dir);
    if (config_text) mer_test_write(b, config_text, strlen(config_text));
    else copy_file(HFIX "base/config.json", b, 0);
    snprintf(a, sizeof a, HFIX "base/preprocessor_config.json");
    snprintf(b, sizeof b, "%s/preprocessor_config.json", dir);
    copy_file(a, b, 0);
    return dir;
}

static char *base_config_with(const char *from, const char *to) {
    char *cfg;
    size_t n;
    if (mer__read_file(HFIX "base/config.json", &cfg, &n) != MER_OK) return NULL;
    char *at = strstr(cfg, from);
    if (!at) {
        free(cfg);
        return NULL;
    }
    char *res = malloc(n + strlen(to) + 1);
    size_t pre = (size_t)(at - cfg);
    memcpy(res, cfg, pre);
    strcpy(res + pre, to);
    strcat(res, at + strlen(from));
    free(cfg);
    return res;
}

MER_TEST(hubert_bad_checkpoints) {
    mer_speech_model *m = NULL;
    /* truncated weights */
    const char *dir = make_ckpt("hubert_trunc", NULL, 50000);
    CHECK_ERR(mer_speech_model_load(&m, dir, NULL), MER_ERR_FORMAT, "model.safetensors");
    CHECK(m == NULL);
    /* config that does not match the weights: names the tensor, expected vs got */
    char *cfg = base_config_with("\"hidden_size\": 32", "\"hidden_size\": 64");
    REQUIRE(cfg);
    dir = make_ckpt("hubert_cfg", cfg, 0);
    free(cfg);
    CHECK_ERR(mer_speech_model_load(&m, dir, NULL), MER_ERR_SHAPE, "feature_projection.projection.weight");
    CHECK(strstr(mer_last_error(), "64") && strstr(mer_last_error(), "32"));
    /* fewer layers in the config than in the file: the extra layer is unexpected */
    cfg = base_config_with("\"num_hidden_layers\": 2", "\"num_hidden_layers\": 1");
    REQUIRE(cfg);
    dir = make_ckpt("hubert_layers", cfg, 0);
    free(cfg);
    CHECK_ERR(mer_speech_model_load(&m, dir, NULL), MER_ERR_FORMAT, "unexpected tensor encoder.layers.1.");
    /* more layers in the config than in the file: a missing tensor */
    cfg = base_config_with("\"num_hidden_layers\": 2", "\"num_hidden_layers\": 3");
    dir = make_ckpt("hubert_layers3", cfg, 0);
    free(cfg);
    CHECK_ERR(mer_speech_model_load(&m, dir, NULL), MER_ERR_NOT_FOUND, "encoder.layers.2.");
    /* not a speech model, no directory, broken JSON */
    cfg = base_config_with("\"model_type\": \"hubert\"", "\"model_type\": \"bert\"");
    dir = make_ckpt("hubert_bert", cfg, 0);
    free(cfg);
    CHECK_ERR(mer_speech_model_load(&m, dir, NULL), MER_ERR_UNSUPPORTED, "bert");
    CHECK_ERR(mer_speech_model_load(&m, HFIX "nope", NULL), MER_ERR_IO, "nope");
    dir = make_ckpt("hubert_json", "{\"model_type\": \"hubert\",", 0);
    CHECK_ERR(mer_speech_model_load(&m, dir, NULL), MER_ERR_FORMAT, "config.json");
    CHECK(m == NULL);
}

/* The base fixture split into two shards with a model.safetensors.index.json gives the same
 * hidden states. */
MER_TEST(hubert_sharded_checkpoint) {
    mer_safetensors *st = NULL;
    REQUIRE_OK(mer_safetensors_open(&st, HFIX "base/model.safetensors"));
    const char *dir = mer_test_tmpdir("hubert_sharded");
    mer_safetensors_writer *w[2] = {NULL, NULL};
    REQUIRE_OK(mer_safetensors_writer_init(&w[0]));
    REQUIRE_OK(mer_safetensors_writer_init(&w[1]));
    const int64_t n = mer_safetensors_count(st);
    size_t cap = 256 * (size_t)n + 64, len = 0; /* names are < 128 chars */
    char *idx = malloc(cap);
    len += (size_t)snprintf(idx + len, cap - len, "{\"metadata\": {}, \"weight_map\": {");
    for (int64_t i = 0; i < n; i++) {
        mer_safetensors_entry e;
        REQUIRE_OK(mer_safetensors_entry_at(st, i, &e));
        const int part = i >= n / 2;
        CHECK_OK(mer_safetensors_writer_add(w[part], e.name, e.dtype, e.ndim, e.shape, e.data));
        len += (size_t)snprintf(idx + len, cap - len, "%s\"%s\": \"model-0000%d-of-00002.safetensors\"",
                                i ? ", " : "", e.name, part + 1);
    }
    snprintf(idx + len, cap - len, "}}");
    char p[512];
    for (int part = 0; part < 2; part++) {
        snprintf(p, sizeof p, "%s/model-0000%d-of-00002.safetensors", dir, part + 1);
        CHECK_OK(mer_safetensors_writer_save(w[part], p));
        mer_safetensors_writer_free(w[part]);
    }
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", dir);
    mer_test_write(p, idx, strlen(idx));
    free(idx);
    mer_safetensors_free(st);
    snprintf(p, sizeof p, "%s/config.json", dir);
    copy_file(HFIX "base/config.json", p, 0);
    check_model_on(dir, HFIX "a2.wav", "base_a2");
}

/* ---- bfloat16 mode -------------------------------------------------------------------------- */

#define HB_BF16_TOL 3e-2

/* Weights (elements) of a fixture that bf16 mode runs in bfloat16: linear layers (feature
 * projection + 6 per layer) into *lin, feature-encoder convolutions with cin > 1 into *conv. */
static void bf16_weights(const char *dir, int64_t *lin, int64_t *conv) {
    char p[256];
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    mer_safetensors *st = NULL;
    *lin = *conv = -1;
    if (mer_safetensors_open(&st, p)) return;
    *lin = *conv = 0;
    for (int64_t i = 0; i < mer_safetensors_count(st); i++) {
        mer_safetensors_entry e;
        if (mer_safetensors_entry_at(st, i, &e)) break;
        if (strstr(e.name, ".weight") && e.ndim == 2 &&
            (strstr(e.name, "feature_projection.projection") || strstr(e.name, "attention.") ||
             strstr(e.name, "feed_forward.")))
            *lin += e.shape[0] * e.shape[1];
        if (strstr(e.name, "feature_extractor.conv_layers.") && strstr(e.name, "conv.weight") && e.ndim == 3 &&
            e.shape[1] > 1)
            *conv += e.shape[0] * e.shape[1] * e.shape[2];
    }
    mer_safetensors_free(st);
}

/* Every hidden state in bf16 mode: within HB_BF16_TOL of the torchaudio reference, and not
 * equal to the fp32 output (the bf16 path was taken). The model holds the linear and conv
 * weights packed in bfloat16 (mer_packed): 2 bytes a weight, plus the padding of the panels to 16
 * outputs and the float32 biases, less than another byte a weight at these sizes. */
static void check_bf16_on(const char *model_dir, const char *ref_name) {
    mer_speech_model *m = NULL;
    mer_speech_state *st = NULL;
    REQUIRE_OK(mer_speech_model_load(&m, model_dir, NULL));
    REQUIRE_OK(mer_speech_state_init(&st, m, NULL));
    mer_speech_info info;
    mer_speech_model_info(m, &info);
    CHECK(info.bf16_ready == 0 && info.bf16_bytes == 0); /* nothing made before first use */
    CHECK_OK(mer_speech_state_set_precision(st, MER_PRECISION_BF16));
    mer_speech_model_info(m, &info);
    CHECK(info.bf16_ready == 1);
    int64_t lin, conv;
    bf16_weights(model_dir, &lin, &conv);
    CHECK(lin > 0 && conv > 0);
    CHECK(info.bf16_bytes >= 2 * (lin + conv) && info.bf16_bytes < 3 * (lin + conv));

    int64_t n = 0;
    float *x = read_wav16(HFIX "a2.wav", &n);
    int32_t nd;
    int64_t sh[MER_MAX_DIMS];
    float *ref = load_ref(ref_name, &nd, sh);
    const int64_t T = mer_speech_frames(m, n), TD = T * info.hidden_size, K = info.n_layers + 1;
    float *h16 = malloc(sizeof(float) * (size_t)(K * TD)), *h32 = malloc(sizeof(float) * (size_t)(K * TD));
    if (!x || !ref || !h16 || !h32 || nd != 3 || sh[0] != K || sh[1] * sh[2] != TD) {
        CHECK(!"bf16 fixture inputs");
        goto out;
    }
    mer_speech_normalize(x, n);
    CHECK_OK(mer_speech_encode(st, x, n, 0, info.n_layers, h16));
    CHECK_OK(mer_speech_state_set_precision(st, MER_PRECISION_F32));
    CHECK_OK(mer_speech_encode(st, x, n, 0, info.n_layers, h32));
    for (int64_t i = 0; i < K; i++) {
        double mref, d16 = mer_test_maxdiff(h16 + i * TD, ref + i * TD, (size_t)TD, &mref);
        double d32 = mer_test_maxdiff(h16 + i * TD, h32 + i * TD, (size_t)TD, NULL);
        if (!(d16 <= HB_BF16_TOL * mref) || !(d32 > 1e-5 * mref)) {
            printf("  %s bf16 layer %lld: max|diff| vs ref %.3g (bar %.3g), vs fp32 %.3g (must be > %.3g)\n",
                   ref_name, (long long)i, d16, HB_BF16_TOL * mref, d32, 1e-5 * mref);
            CHECK(!"bf16 hidden state");
        }
    }
out:
    free(x), free(ref), free(h16), free(h32);
    mer_speech_state_free(st);
    mer_speech_model_free(m);
}

MER_TEST(hubert_bf16_precision) {
    check_bf16_on(HFIX "base", "base_a2");
    check_bf16_on(HFIX "large", "large_a2");
    check_bf16_on(HFIX "large_bf16", "large_bf16_a2");

    /* through mer_speech_extract: the MERTools feature in bf16 vs the fp32 reference */
    mer_speech_model *m = NULL;
    mer_speech_state *st = NULL;
    REQUIRE_OK(mer_speech_model_load(&m, HFIX "large", NULL));
    REQUIRE_OK(mer_speech_state_init(&st, m, NULL));
    int64_t n = 0;
    float *x = read_wav16(HFIX "a12.wav", &n), *out = NULL;
    int32_t nd, rnd;
    int64_t sh[3], rsh[MER_MAX_DIMS];
    float *ref = load_ref("large_a12_mertools", &rnd, rsh);
    mer_speech_params p = mer_speech_mertools_params();
    p.precision = MER_PRECISION_BF16;
    CHECK_OK(mer_speech_extract(st, x, n, &p, &out, &nd, sh));
    if (x && ref && out && nd == 1 && sh[0] == 48) {
        double dot = 0, na = 0, nb = 0, mref, md = mer_test_maxdiff(out, ref, 48, &mref);
        for (int i = 0; i < 48; i++) dot += (double)out[i] * ref[i], na += (double)out[i] * out[i], nb += (double)ref[i] * ref[i];
        const double cosv = dot / sqrt(na * nb);
        if (!(cosv > 0.999) || !(md <= HB_BF16_TOL * mref) || !(md > 0)) {
            printf("  mertools bf16: cosine %.6f, max|diff| %.3g (max|ref| %.3g)\n", cosv, md, mref);
            CHECK(!"mertools bf16 feature");
        }
    } else {
        CHECK(!"mertools bf16 output");
    }
    free(out);
    out = NULL;
    /* an unknown precision is refused */
    p.precision = (mer_precision)7;
    CHECK_ERR(mer_speech_extract(st, x, n, &p, &out, &nd, sh), MER_ERR_INVALID_ARG, "precision");
    CHECK(out == NULL);
    CHECK_ERR(mer_speech_state_set_precision(st, (mer_precision)-1), MER_ERR_INVALID_ARG, "precision");
    CHECK_ERR(mer_speech_state_set_precision(NULL, MER_PRECISION_BF16), MER_ERR_INVALID_ARG, NULL);
    free(x), free(ref);
    mer_speech_state_free(st);
    mer_speech_model_free(m);
}

/* int8 W8A8 linear layers (MER_PRECISION_INT8): every hidden state within HB_INT8_TOL * max|ref|
 * of the torchaudio reference and different from fp32 (the int8 path ran); the MERTools feature
 * with cosine >= 0.9995 to the reference (the bar; tests/parity/hubert_int8.py checks it
 * at the real sizes). */
#define HB_INT8_TOL 3e-2
static void check_int8_on(const char *model_dir, const char *ref_name) {
    mer_speech_model *m = NULL;
    mer_speech_state *st = NULL;
    REQUIRE_OK(mer_speech_model_load(&m, model_dir, NULL));
    REQUIRE_OK(mer_speech_state_init(&st, m, NULL));
    mer_speech_info info;
    mer_speech_model_info(m, &info);
    int64_t n = 0;
    float *x = read_wav16(HFIX "a2.wav", &n);
    int32_t nd;
    int64_t sh[MER_MAX_DIMS];
    float *ref = load_ref(ref_name, &nd, sh);
    const int64_t T = mer_speech_frames(m, n), TD = T * info.hidden_size, K = info.n_layers + 1;
    float *h8 = malloc(sizeof(float) * (size_t)(K * TD)), *h32 = malloc(sizeof(float) * (size_t)(K * TD));
    if (!x || !ref || !h8 || !h32 || nd != 3 || sh[0] != K || sh[1] * sh[2] != TD) {
        CHECK(!"int8 fixture inputs");
        goto out;
    }
    mer_speech_normalize(x, n);
    CHECK_OK(mer_speech_state_set_precision(st, MER_PRECISION_INT8));
    CHECK_OK(mer_speech_encode(st, x, n, 0, info.n_layers, h8));
    CHECK_OK(mer_speech_state_set_precision(st, MER_PRECISION_F32));
    CHECK_OK(mer_speech_encode(st, x, n, 0, info.n_layers, h32));
    double worst = 0;
    for (int64_t i = 0; i < K; i++) {
        double mref, d8 = mer_test_maxdiff(h8 + i * TD, ref + i * TD, (size_t)TD, &mref);
        double d32 = mer_test_maxdiff(h8 + i * TD, h32 + i * TD, (size_t)TD, NULL);
        if (d8 / mref > worst) worst = d8 / mref;
        /* layer 0 is the feature encoder + projection: the projection is already int8 */
        if (!(d8 <= HB_INT8_TOL * mref) || !(d32 > 1e-5 * mref)) {
            printf("  %s int8 layer %lld: max|diff| vs ref %.3g (bar %.3g), vs fp32 %.3g (must be > %.3g)\n",
                   ref_name, (long long)i, d8, HB_INT8_TOL * mref, d32, 1e-5 * mref);
            CHECK(!"int8 hidden state");
        }
    }
    printf("    %s int8: worst max|diff| / max|ref| over the hidden states %.3g\n", ref_name, worst);
out:
    free(x), free(ref), free(h8), free(h32);
    mer_speech_state_free(st);
    mer_speech_model_free(m);
}

MER_TEST(hubert_int8_precision) {
    check_int8_on(HFIX "base", "base_a2");
    check_int8_on(HFIX "large", "large_a2");
    mer_speech_model *m = NULL;
    mer_speech_state *st = NULL;
    REQUIRE_OK(mer_speech_model_load(&m, HFIX "large", NULL));
    REQUIRE_OK(mer_speech_state_init(&st, m, NULL));
    int64_t n = 0;
    float *x = read_wav16(HFIX "a12.wav", &n), *out = NULL;
    int32_t nd, rnd;
    int64_t sh[3], rsh[MER_MAX_DIMS];
    float *ref = load_ref("large_a12_mertools", &rnd, rsh);
    mer_speech_params p = mer_speech_mertools_params();
    p.precision = MER_PRECISION_INT8;
    CHECK_OK(mer_speech_extract(st, x, n, &p, &out, &nd, sh));
    if (x && ref && out && nd == 1 && sh[0] == 48) {
        double dot = 0, na = 0, nb = 0, mref, md = mer_test_maxdiff(out, ref, 48, &mref);
        for (int i = 0; i < 48; i++) dot += (double)out[i] * ref[i], na += (double)out[i] * out[i], nb += (double)ref[i] * ref[i];
        const double cosv = dot / sqrt(na * nb);
        printf("    mertools int8: cosine %.6f, max|diff| %.3g (max|ref| %.3g)\n", cosv, md, mref);
        CHECK(cosv >= 0.9995 && md <= HB_INT8_TOL * mref && md > 0);
    } else {
        CHECK(!"mertools int8 output");
    }
    free(out);
    free(x), free(ref);
    mer_speech_state_free(st);
    mer_speech_model_free(m);
}

/* The bf16 weights are made lazily on a model shared by threads: racing first uses must make
 * them once and agree. */
typedef struct {
    const mer_speech_model *m;
    mer_status s;
} bf16_race;

static void *bf16_race_run(void *u) {
    bf16_race *r = u;
    mer_speech_state *st = NULL;
    r->s = mer_speech_state_init(&st, r->m, NULL);
    if (!r->s) r->s = mer_speech_state_set_precision(st, MER_PRECISION_BF16);
    mer_speech_state_free(st);
    return NULL;
}

MER_TEST(hubert_bf16_shared_model) {
    mer_speech_model *m = NULL;
    REQUIRE_OK(mer_speech_model_load(&m, HFIX "large", NULL));
    bf16_race r[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        r[i] = (bf16_race){m, MER_ERR_INTERNAL};
        CHECK(pthread_create(&th[i], NULL, bf16_race_run, &r[i]) == 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        CHECK(r[i].s == MER_OK);
    }
    mer_speech_info info;
    mer_speech_model_info(m, &info);
    /* packed once: the bytes of one packing, as a model packed by one thread holds */
    mer_speech_model *m1 = NULL;
    mer_speech_state *s1 = NULL;
    mer_speech_info info1;
    REQUIRE_OK(mer_speech_model_load(&m1, HFIX "large", NULL));
    REQUIRE_OK(mer_speech_state_init(&s1, m1, NULL));
    CHECK_OK(mer_speech_state_set_precision(s1, MER_PRECISION_BF16));
    mer_speech_model_info(m1, &info1);
    int64_t lin, conv;
    bf16_weights(HFIX "large", &lin, &conv);
    CHECK(info.bf16_ready == 1 && info.bf16_bytes == info1.bf16_bytes && info.bf16_bytes >= 2 * (lin + conv) &&
          info.bf16_bytes < 3 * (lin + conv));
    mer_speech_state_free(s1);
    mer_speech_model_free(m1);
    mer_speech_model_free(m);
}

/* ---- batches ------------------------------------------------------------------------------ */

/* mer_speech_encode_batch on three utterances of different lengths (cut from a12.wav) against
 * one mer_speech_encode each: every precision, both fixtures, a layer range not starting at 0.
 * Every precision's products are packed ones (fp32 too, since session 5), row-independent:
 * the same bits. */
MER_TEST(hubert_encode_batch_matches_single) {
    int64_t n = 0;
    float *wav = read_wav16(HFIX "a12.wav", &n);
    REQUIRE(wav && n > 40000);
    mer_speech_normalize(wav, n);
    const int64_t len[3] = {7000, 32000, 12345};
    const float *xs[3] = {wav, wav + 9000, wav + 20000};
    const char *dirs[2] = {HFIX "base", HFIX "large"};
    for (int f = 0; f < 2; f++) {
        mer_speech_model *m = NULL;
        mer_speech_state *st = NULL;
        REQUIRE_OK(mer_speech_model_load(&m, dirs[f], NULL));
        REQUIRE_OK(mer_speech_state_init(&st, m, NULL));
        mer_speech_info info;
        mer_speech_model_info(m, &info);
        const int32_t lf = 1, ll = info.n_layers, K = ll - lf + 1;
        for (int p = 0; p < 3; p++) {
            CHECK_OK(mer_speech_state_set_precision(st, (mer_precision)p));
            float *outs[3], *ref[3];
            for (int i = 0; i < 3; i++) {
                size_t sz = (size_t)(K * mer_speech_frames(m, len[i]) * info.hidden_size);
                outs[i] = malloc(sz * sizeof(float));
                ref[i] = malloc(sz * sizeof(float));
                REQUIRE(outs[i] && ref[i]);
                CHECK_OK(mer_speech_encode(st, xs[i], len[i], lf, ll, ref[i]));
            }
            CHECK_OK(mer_speech_encode_batch(st, 3, xs, len, lf, ll, outs));
            for (int i = 0; i < 3; i++) {
                size_t sz = (size_t)(K * mer_speech_frames(m, len[i]) * info.hidden_size);
                double mref, md = mer_test_maxdiff(outs[i], ref[i], sz, &mref);
                if (md != 0.0) {
                    printf("  %s precision %d utterance %d: max|diff| %.3g (max|ref| %.3g)\n", dirs[f], p, i, md, mref);
                    CHECK(!"batch differs from one at a time");
                }
                free(outs[i]);
                free(ref[i]);
            }
        }
        /* bad input names the utterance */
        float *o[2] = {NULL, NULL};
        const float *bad[2] = {wav, wav};
        const int64_t blen[2] = {16000, 100};
        float buf[1];
        o[0] = o[1] = buf;
        CHECK_ERR(mer_speech_encode_batch(st, 2, bad, blen, 0, 1, o), MER_ERR_SHAPE, "utterance 1");
        CHECK_ERR(mer_speech_encode_batch(st, 0, bad, blen, 0, 1, o), MER_ERR_INVALID_ARG, "no utterance");
        mer_speech_state_free(st);
        mer_speech_model_free(m);
    }
    free(wav);
}

/* The profile is charged by the op helpers around the forward, not inside it: its FLOP counts
 * must be exactly the model's (per layer 2 R D (4D + 2I) in products, 4 T^2 D in attention; the
 * layers after the last wanted state are not run), a batch must count what its utterances
 * count one at a time, and "other" is the rest of the total. */
MER_TEST(hubert_profile_counts) {
    int64_t n = 0;
    float *wav = read_wav16(HFIX "a12.wav", &n);
    REQUIRE(wav && n > 40000);
    mer_speech_model *m = NULL;
    mer_speech_state *st = NULL;
    REQUIRE_OK(mer_speech_model_load(&m, HFIX "base", NULL));
    REQUIRE_OK(mer_speech_state_init(&st, m, NULL));
    mer_speech_info info;
    mer_speech_model_info(m, &info);
    const double C = 16; /* conv_dim of the base fixture */
    const double D = info.hidden_size, I = info.intermediate_size;
    const int64_t len[2] = {7000, 12345};
    const float *xs[2] = {wav, wav + 9000};
    mer_speech_profile pf, sum = {0};
    for (int32_t ll = 1; ll <= info.n_layers; ll++) {
        memset(&sum, 0, sizeof sum);
        for (int i = 0; i < 2; i++) {
            const double T = (double)mer_speech_frames(m, len[i]);
            float *out = malloc((size_t)((ll + 1) * T * D) * sizeof(float));
            REQUIRE(out);
            CHECK_OK(mer_speech_encode(st, xs[i], len[i], 0, ll, out));
            free(out);
            mer_speech_state_profile(st, &pf);
            CHECK(pf.linear_flop == 2.0 * T * (C * D + ll * D * (4 * D + 2 * I)));
            CHECK(pf.attention_flop == ll * 4.0 * T * T * D);
            CHECK(pf.feature_flop > 0 && pf.pos_conv_flop > 0);
            CHECK(pf.feature_s > 0 && pf.linear_s > 0 && pf.attention_s > 0 && pf.pos_conv_s > 0);
            const double ops = pf.feature_s + pf.linear_s + pf.attention_s + pf.pos_conv_s;
            CHECK(pf.other_s >= 0 && pf.total_s >= ops && fabs(pf.total_s - ops - pf.other_s) < 1e-9);
            sum.feature_flop += pf.feature_flop;
            sum.linear_flop += pf.linear_flop;
            sum.attention_flop += pf.attention_flop;
            sum.pos_conv_flop += pf.pos_conv_flop;
        }
        float *outs[2];
        for (int i = 0; i < 2; i++) {
            outs[i] = malloc((size_t)((ll + 1) * mer_speech_frames(m, len[i]) * info.hidden_size) * sizeof(float));
            REQUIRE(outs[i]);
        }
        CHECK_OK(mer_speech_encode_batch(st, 2, xs, len, 0, ll, outs));
        free(outs[0]);
        free(outs[1]);
        mer_speech_state_profile(st, &pf);
        CHECK(pf.feature_flop == sum.feature_flop && pf.linear_flop == sum.linear_flop);
        CHECK(pf.attention_flop == sum.attention_flop && pf.pos_conv_flop == sum.pos_conv_flop);
        CHECK(pf.total_s >= pf.feature_s + pf.linear_s + pf.attention_s + pf.pos_conv_s);
    }
    mer_speech_profile z;
    mer_speech_state_profile(NULL, &z);
    CHECK(z.total_s == 0 && z.linear_flop == 0);
    mer_speech_state_free(st);
    mer_speech_model_free(m);
    free(wav);
}


/* State params: progress after each layer, abort before each layer stops encode, batch and
 * extract with MER_ERR_ABORTED and nothing returned (the sanitizer leg checks for leaks), and
 * the state works as new afterwards. Loader params: BF16 packs at load. */
MER_TEST(hubert_params_abort_progress) {
    int64_t n = 0;
    float *wav = read_wav16(HFIX "a12.wav", &n);
    REQUIRE(wav && n > 40000);
    mer_speech_normalize(wav, n);
    mer_speech_model *m = NULL;
    mer_speech_model_params mp = mer_speech_model_default_params();
    CHECK(mp.precision == MER_PRECISION_F32);
    mp.precision = (mer_precision)7;
    CHECK_ERR(mer_speech_model_load(&m, HFIX "base", &mp), MER_ERR_INVALID_ARG, "precision");
    CHECK(m == NULL);
    mp.precision = MER_PRECISION_BF16;
    REQUIRE_OK(mer_speech_model_load(&m, HFIX "base", &mp));
    mer_speech_info info;
    mer_speech_model_info(m, &info);
    CHECK(info.bf16_ready == 1); /* packed at load, not on first use */
    const int32_t L = info.n_layers, D = info.hidden_size;
    const int64_t len = 16000, T = mer_speech_frames(m, len);
    const size_t sz = (size_t)((L + 1) * T * D);
    float *ref = malloc(sz * sizeof(float)), *y = malloc(sz * sizeof(float));
    REQUIRE(ref && y);
    mer_speech_state *plain = NULL, *st = NULL;
    REQUIRE_OK(mer_speech_state_init(&plain, m, NULL));
    REQUIRE_OK(mer_speech_encode(plain, wav, len, 0, L, ref));

    mer_test_calls cc = {0};
    mer_speech_state_params sp = mer_speech_state_default_params();
    sp.progress = mer_test_progress;
    sp.progress_user_data = &cc;
    sp.abort = mer_test_abort;
    sp.abort_user_data = &cc;
    sp.n_threads = 1;
    REQUIRE_OK(mer_speech_state_init(&st, m, &sp));
    CHECK_OK(mer_speech_encode(st, wav, len, 0, L, y));
    CHECK(cc.progress_calls == L && cc.last_done == L && cc.last_total == L);
    CHECK(memcmp(y, ref, sz * sizeof(float)) == 0); /* fp32 products on 1 thread: same bits */
    /* stop before the second layer: one layer reported, then MER_ERR_ABORTED */
    memset(&cc, 0, sizeof cc);
    cc.stop_at = 2;
    CHECK_ERR(mer_speech_encode(st, wav, len, 0, L, y), MER_ERR_ABORTED, "stopped by the caller");
    CHECK(cc.progress_calls == 1 && cc.polls == 2);
    const float *xs[2] = {wav, wav + 9000};
    const int64_t lens[2] = {len, len};
    float *outs[2] = {y, malloc(sz * sizeof(float))};
    REQUIRE(outs[1]);
    memset(&cc, 0, sizeof cc);
    cc.stop_at = 1;
    CHECK_ERR(mer_speech_encode_batch(st, 2, xs, lens, 0, L, outs), MER_ERR_ABORTED, "stopped by the caller");
    free(outs[1]);
    /* the state is whole afterwards */
    cc.stop_at = 0;
    CHECK_OK(mer_speech_encode(st, wav, len, 0, L, y));
    CHECK(memcmp(y, ref, sz * sizeof(float)) == 0);
    /* extract: its own params' abort (per chunk and layer) and progress (per chunk) */
    mer_speech_params ep = mer_speech_default_params(); /* all hidden states: L layers a chunk */
    ep.pool_mean = 1;
    ep.chunk_seconds = 0.5;
    mer_test_calls ec = {0};
    ep.progress = mer_test_progress;
    ep.progress_user_data = &ec;
    ep.abort = mer_test_abort;
    ep.abort_user_data = &ec;
    float *feat = NULL;
    int32_t nd = 0;
    int64_t shape[3];
    CHECK_OK(mer_speech_extract(plain, wav, 24000, &ep, &feat, &nd, shape));
    CHECK(ec.progress_calls == 3 && ec.last_done == 3 && ec.last_total == 3);
    free(feat);
    feat = NULL;
    memset(&ec, 0, sizeof ec);
    ec.stop_at = 4; /* chunk 1 (poll 1), its 2 layers (2, 3), chunk 2 (4) */
    CHECK_ERR(mer_speech_extract(plain, wav, 24000, &ep, &feat, &nd, shape), MER_ERR_ABORTED, "stopped by the caller");
    CHECK(feat == NULL && ec.progress_calls == 1);
    /* bad state params */
    mer_speech_state *bad = NULL;
    sp.precision = (mer_precision)9;
    CHECK_ERR(mer_speech_state_init(&bad, m, &sp), MER_ERR_INVALID_ARG, "precision");
    CHECK(bad == NULL);
    mer_speech_state_free(st);
    mer_speech_state_free(plain);
    mer_speech_model_free(m);
    free(ref);
    free(y);
    free(wav);
}

/* ---- CLI ---------------------------------------------------------------------------------- */

MER_TEST(hubert_cli_extract_audio) {
    char out[8192], p[512];
    const char *bin = mer_test_bin();
    const char *dir = mer_test_tmpdir("hubert_cli");
    float *d = NULL, *ref;
    int32_t nd, rnd;
    int64_t sh[MER_MAX_DIMS], rsh[MER_MAX_DIMS];

    /* one input: all hidden states stacked, (3, T, D), equal to the reference */
    snprintf(p, sizeof p, "%s/a2.npy", dir);
    int rc = mer_test_run(out, sizeof out, "%s extract audio --model " HFIX "base --out %s " HFIX "a2.wav",
                          bin, p);
    CHECK(rc == 0);
    if (rc) printf("%s\n", out);
    ref = load_ref("base_a2", &rnd, rsh);
    if (mer_npy_read(p, &d, &nd, sh) == MER_OK && ref) {
        CHECK(nd == 3 && sh[0] == 3 && sh[1] == rsh[1] && sh[2] == 32);
        if (sh[1] == rsh[1]) CHECK(compare_slices("cli", d, ref, 3, sh[1] * 32));
    } else {
        CHECK(!"cli output readable");
    }
    free(d), free(ref);

    /* MERTools preset on the 12.3 s clip */
    snprintf(p, sizeof p, "%s/m.npy", dir);
    rc = mer_test_run(out, sizeof out, "%s extract audio --model " HFIX "large --preset mertools --threads 1 --out %s "
                      HFIX "a12.wav", bin, p);
    CHECK(rc == 0);
    ref = load_ref("large_a12_mertools", &rnd, rsh);
    if (mer_npy_read(p, &d, &nd, sh) == MER_OK && ref) {
        CHECK(nd == 1 && sh[0] == 48);
        CHECK(compare_slices("cli mertools", d, ref, 1, 48));
    } else {
        CHECK(!"mertools output readable");
    }
    free(d), free(ref);

    /* --precision bf16: near the reference, not equal to it */
    snprintf(p, sizeof p, "%s/a2_bf16.npy", dir);
    rc = mer_test_run(out, sizeof out, "%s extract audio --model " HFIX "base --precision bf16 --out %s " HFIX "a2.wav",
                      bin, p);
    CHECK(rc == 0);
    ref = load_ref("base_a2", &rnd, rsh);
    if (mer_npy_read(p, &d, &nd, sh) == MER_OK && ref && nd == 3 && sh[0] == 3 && sh[1] == rsh[1] && sh[2] == 32) {
        double mref, md = mer_test_maxdiff(d, ref, (size_t)(3 * sh[1] * 32), &mref);
        CHECK(md <= HB_BF16_TOL * mref && md > 1e-5 * mref);
    } else {
        CHECK(!"cli bf16 output readable");
    }
    free(d), free(ref);

    /* --layers N-M --combine mean --pool mean: (D,) */
    snprintf(p, sizeof p, "%s/lm.npy", dir);
    rc = mer_test_run(out, sizeof out, "%s extract audio --model " HFIX "base --layers 1-2 --combine mean --pool mean --out %s "
                      HFIX "a2.wav", bin, p);
    CHECK(rc == 0);
    if (mer_npy_read(p, &d, &nd, sh) == MER_OK) {
        CHECK(nd == 1 && sh[0] == 32);
        free(d);
    }

    /* batch: two good inputs, an undecodable one and a file with no audio stream */
    snprintf(p, sizeof p, "%s/junk.wav", dir);
    mer_test_write(p, "this is not audio at all", 24);
    char empty_wav[44] = "RIFF";
    {   /* a valid WAV header with zero samples */
        uint32_t u;
        uint16_t s;
        u = 36; memcpy(empty_wav + 4, &u, 4);
        memcpy(empty_wav + 8, "WAVEfmt ", 8);
        u = 16; memcpy(empty_wav + 16, &u, 4);
        s = 1; memcpy(empty_wav + 20, &s, 2); memcpy(empty_wav + 22, &s, 2);
        u = 16000; memcpy(empty_wav + 24, &u, 4);
        u = 32000; memcpy(empty_wav + 28, &u, 4);
        s = 2; memcpy(empty_wav + 32, &s, 2);
        s = 16; memcpy(empty_wav + 34, &s, 2);
        memcpy(empty_wav + 36, "data", 4);
        u = 0; memcpy(empty_wav + 40, &u, 4);
    }
    snprintf(p, sizeof p, "%s/empty.wav", dir);
    mer_test_write(p, empty_wav, 44);
    snprintf(p, sizeof p, "%s/list.txt", dir);
    char list[1024];
    char b2[512];
    snprintf(b2, sizeof b2, "%s/b2.wav", dir);
    copy_file(HFIX "a2.wav", b2, 0);
    snprintf(list, sizeof list, "# clips\n" HFIX "a2.wav\n%s/junk.wav\n\n%s/empty.wav\n%s\n", dir, dir, b2);
    mer_test_write(p, list, strlen(list));
    rc = mer_test_run(out, sizeof out, "%s extract audio --model " HFIX "base --pool mean --out %s/feats --list %s",
                      bin, dir, p);
    CHECK(rc == 1);
    CHECK(strstr(out, "junk.wav") != NULL);
    CHECK(strstr(out, "empty.wav") != NULL);
    CHECK(strstr(out, "2 of 4 inputs failed") != NULL);
    struct stat sb;
    snprintf(p, sizeof p, "%s/feats/a2.npy", dir);
    CHECK(stat(p, &sb) == 0);
    snprintf(p, sizeof p, "%s/feats/b2.npy", dir);
    CHECK(stat(p, &sb) == 0);
    snprintf(p, sizeof p, "%s/feats/junk.npy", dir);
    CHECK(stat(p, &sb) != 0);
    snprintf(p, sizeof p, "%s/feats/empty.npy", dir);
    CHECK(stat(p, &sb) != 0);

    /* rerun: existing outputs are skipped (mtime unchanged) unless --overwrite */
    snprintf(p, sizeof p, "%s/feats/a2.npy", dir);
    stat(p, &sb);
    time_t before = sb.st_mtime;
    sleep(1);
    rc = mer_test_run(out, sizeof out, "%s extract audio --model " HFIX "base --pool mean --out %s/feats "
                      HFIX "a2.wav %s", bin, dir, b2);
    CHECK(rc == 0 && strstr(out, "skipped"));
    stat(p, &sb);
    CHECK(sb.st_mtime == before);
    rc = mer_test_run(out, sizeof out, "%s extract audio --model " HFIX "base --pool mean --overwrite --out %s/feats "
                      HFIX "a2.wav", bin, dir);
    CHECK(rc == 0);

    /* single bad input: one line naming the file, exit 1, nothing written */
    snprintf(p, sizeof p, "%s/bad.npy", dir);
    rc = mer_test_run(out, sizeof out, "%s extract audio --model " HFIX "base --out %s %s/empty.wav", bin, p, dir);
    CHECK(rc == 1 && strstr(out, "empty.wav"));
    CHECK(stat(p, &sb) != 0);
    /* an image: no audio stream */
    rc = mer_test_run(out, sizeof out, "%s extract audio --model " HFIX "base --out %s tests/fixtures/image/astronaut.png",
                      bin, p);
    CHECK(rc == 1 && strstr(out, "astronaut.png") && strstr(out, "no audio stream"));
    CHECK(stat(p, &sb) != 0);
    /* usage errors exit 2 */
    rc = mer_test_run(out, sizeof out, "%s extract audio --model " HFIX "base --layers 7 --out %s " HFIX "a2.wav", bin, p);
    CHECK(rc == 2);
    rc = mer_test_run(out, sizeof out, "%s extract audio --model " HFIX "base --combine max --out %s " HFIX "a2.wav", bin, p);
    CHECK(rc == 2);
    rc = mer_test_run(out, sizeof out, "%s extract audio --out %s " HFIX "a2.wav", bin, p);
    CHECK(rc == 2);
    rc = mer_test_run(out, sizeof out, "%s extract audio --model " HFIX "base --precision f16 --out %s " HFIX "a2.wav", bin, p);
    CHECK(rc == 2 && strstr(out, "--precision"));
    /* a bad model directory: exit 1, one line */
    rc = mer_test_run(out, sizeof out, "%s extract audio --model %s --out %s " HFIX "a2.wav", bin, dir, p);
    CHECK(rc == 1 && strstr(out, "config.json"));
    CHECK(stat(p, &sb) != 0);
}

/* Predict from media for a run trained on speech-encoder features: `mer extract audio` writes
 * recipe.json beside the features, `mer train` records it, and `mer predict --input` on the
 * clips gives the same CSV as `mer predict --feature` on the extracted features (issue 12). */
MER_TEST(hubert_predict_media_through_recipe) {
    static const char *clips[8] = {"03a01Nc", "03a01Wa", "03a02Nc", "03a02Wb",
                                   "03a02Wc", "03a04Nc", "03a04Wc", "03a05Nd"};
    char d[600], out[8192], path[800], inputs[1200] = "";
    snprintf(d, sizeof d, "%s", mer_test_tmpdir("predict_media"));
    const char *mer = mer_test_bin();
    char labels[400] = "name,emotion\n";
    for (int k = 0; k < 8; k++) {
        snprintf(labels + strlen(labels), sizeof labels - strlen(labels), "%s,%s\n", clips[k],
                 strchr(clips[k], 'W') ? "anger" : "neutral");
        snprintf(inputs + strlen(inputs), sizeof inputs - strlen(inputs), " data/emodb/flac/%s.flac", clips[k]);
    }
    snprintf(path, sizeof path, "%s/labels.csv", d);
    REQUIRE(mer_test_write(path, labels, strlen(labels)) == 0);
    int rc = mer_test_run(out, sizeof out, "%s extract audio --model tests/fixtures/hubert/base --layers 1-2 --combine sum "
                          "--pool mean --chunk-seconds 1 --threads 2 --out %s/feat%s", mer, d, inputs);
    if (rc) printf("    %s\n", out);
    REQUIRE(rc == 0);
    rc = mer_test_run(out, sizeof out, "%s train --labels %s/labels.csv --feature audio=%s/feat --model linear "
                      "--folds 2 --epochs 3 --threads 2 --no-plots --out %s/run", mer, d, d, d);
    if (rc) printf("    %s\n", out);
    REQUIRE(rc == 0);
    mer_run *run = NULL;
    snprintf(path, sizeof path, "%s/run", d);
    REQUIRE_OK(mer_run_open(&run, path));
    CHECK(mer_run_recipe(run) && strstr(mer_run_recipe(run), "\"speech\""));
    mer_run_free(run);
    rc = mer_test_run(out, sizeof out, "%s predict --run %s/run --feature audio=%s/feat --threads 2 --out %s/a.csv",
                      mer, d, d, d);
    CHECK(rc == 0);
    rc = mer_test_run(out, sizeof out, "%s predict --run %s/run --input%s --threads 2 --out %s/b.csv && cmp %s/a.csv %s/b.csv",
                      mer, d, inputs, d, d, d);
    if (rc) printf("    %s\n", out);
    CHECK(rc == 0);
    /* a feature directory without recipe.json: the run records none, and --input says why */
    snprintf(path, sizeof path, "%s/feat/recipe.json", d);
    CHECK(unlink(path) == 0);
    rc = mer_test_run(out, sizeof out, "%s train --labels %s/labels.csv --feature audio=%s/feat --model linear "
                      "--folds 2 --epochs 1 --threads 2 --no-plots --out %s/run2 && %s predict --run %s/run2 "
                      "--input data/emodb/flac/03a01Nc.flac --out %s/c.csv", mer, d, d, d, mer, d, d);
    CHECK(rc == 1 && strstr(out, "no feature recipe"));
}
