/*
 * test_isa.c -- the portable build's run-time dispatch (src/core/cpu.c, MER_AVX512 in
 * src/core/internal.h): each instruction-set level the CPU offers gives the results of the
 * level below it, in one process (mer__cpu_features_limit). Levels: everything detected; AVX2 +
 * FMA only (what MER_NO_AVX512=1 leaves); plain C (no AVX2: packed.c's and attn.c's 8-lane
 * kernels off). On a CPU without AVX-512 the first two are the same level and the AVX2 kernels
 * are compared with plain C; on an AVX-512 CPU the AVX-512 kernels are compared as well.
 * Bitwise where the code promises the same bits (GELUs, Adam), else within the kernel's
 * rounding. scripts/check-isa.sh checks the other half: no AVX-512 instruction outside the
 * dispatched functions.
 */
#include "test.h"
#include "internal.h"
#include "kernels/kernels.h"
#include "train/train.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const uint32_t LEVELS[3] = {~0u, MER_CPU_AVX2, 0};
static const char *const LEVEL_NAMES[3] = {"all detected", "avx2+fma", "plain C"};

/* Sets dispatch level l; returns 0 when it adds nothing to compare (the same features as the
 * level before it). */
static int set_level(int l) {
    mer__cpu_features_limit(~0u);
    uint32_t prev = l ? mer_cpu_features() & LEVELS[l - 1] : ~0u;
    mer__cpu_features_limit(LEVELS[l]);
    return l == 0 || mer_cpu_features() != prev;
}

static void fill(float *x, int64_t n, uint64_t seed, double scale) {
    mer__rng r;
    mer__rng_seed(&r, seed);
    for (int64_t i = 0; i < n; i++) x[i] = (float)(scale * mer__rng_normal(&r));
}

/* max|a - b| <= tol * max(1, max|a|) */
static int close_to(const char *what, int l, const float *a, const float *b, int64_t n, double tol) {
    double ma = 1.0, md = 0.0;
    for (int64_t i = 0; i < n; i++) {
        ma = fmax(ma, fabs(a[i]));
        md = fmax(md, fabs((double)a[i] - b[i]));
    }
    if (!(md <= tol * ma)) {
        printf("  %s at %s: max|diff| %.3g > %.3g\n", what, LEVEL_NAMES[l], md, tol * ma);
        return 0;
    }
    return 1;
}

static int same_bits(const char *what, int l, const float *a, const float *b, int64_t n) {
    if (memcmp(a, b, (size_t)n * sizeof(float)) == 0) return 1;
    printf("  %s at %s: not bitwise the same as the level above\n", what, LEVEL_NAMES[l]);
    return 0;
}

MER_TEST(isa_levels_agree_kernels) {
    printf("    dispatch: %s\n", mer_cpu_features_str());
    /* ---- GELU, quick GELU and their derivatives: bitwise (act.c writes the math once per lane
     * width with the same operations) */
    const int64_t n = 40000 + 13; /* over the parallel chunk, and a tail */
    float *x = malloc(sizeof(float) * n), *dy = malloc(sizeof(float) * n);
    float *ref = malloc(sizeof(float) * n * 4), *got = malloc(sizeof(float) * n * 4);
    REQUIRE(x && dy && ref && got);
    fill(x, n, 1, 4.0);
    fill(dy, n, 2, 1.0);
    x[0] = 3e38f, x[1] = -3e38f, x[2] = -20.0f, x[3] = 20.0f, x[4] = 0.0f, x[5] = -0.0f;
    int compared = 0;
    for (int l = 0; l < 3; l++) {
        if (!set_level(l)) continue;
        float *o = l ? got : ref;
        mer__gelu_fwd(o, x, n);
        mer__quick_gelu_fwd(o + n, x, n);
        memset(o + 2 * n, 0, sizeof(float) * 2 * n);
        mer__gelu_bwd(o + 2 * n, dy, x, n);
        mer__quick_gelu_bwd(o + 3 * n, dy, x, n);
        if (l) {
            CHECK(same_bits("gelu", l, ref, got, n) && same_bits("quick_gelu", l, ref + n, got + n, n));
            CHECK(same_bits("gelu_bwd", l, ref + 2 * n, got + 2 * n, n) &&
                  same_bits("quick_gelu_bwd", l, ref + 3 * n, got + 3 * n, n));
            compared++;
        }
    }
    CHECK(compared >= 1); /* at least AVX2 against plain C */

    /* ---- softmax rows: a polynomial exp (AVX-512, AVX2) or expf (plain C), each level against
     * a double-precision reference (two levels' float sums may each be off by ~1e-6) */
    for (int64_t r = 0; r < 40; r++) {
        const float *xr = x + r * 997;
        double mx = -INFINITY, s = 0.0;
        for (int64_t c = 0; c < 997; c++) mx = fmax(mx, xr[c]);
        for (int64_t c = 0; c < 997; c++) s += exp((double)xr[c] - mx);
        for (int64_t c = 0; c < 997; c++) ref[r * 997 + c] = (float)(exp((double)xr[c] - mx) / s);
    }
    for (int l = 0; l < 3; l++) {
        if (!set_level(l)) continue;
        for (int64_t r = 0; r < 40; r++) mer__softmax_row(got + r * 997, x + r * 997, 997);
        CHECK(close_to("softmax", l, ref, got, 40 * 997, 1e-6));
    }

    /* ---- attention: fused heads (AVX-512 / AVX2, dh % 8 == 0) against two GEMMs, with a key
     * mask and the probabilities returned */
    const int64_t tq = 37, tk = 53, h = 3;
    uint8_t mask[53];
    for (int i = 0; i < tk; i++) mask[i] = i % 7 != 3;
    for (int64_t dh = 12; dh <= 16; dh += 4) { /* 12: the GEMM path below AVX-512 */
        const int64_t D = h * dh;
        float *q = malloc(sizeof(float) * tq * D), *k = malloc(sizeof(float) * tk * D);
        float *v = malloc(sizeof(float) * tk * D);
        float *out[2] = {malloc(sizeof(float) * tq * D), malloc(sizeof(float) * tq * D)};
        float *pr[2] = {malloc(sizeof(float) * h * tq * tk), malloc(sizeof(float) * h * tq * tk)};
        REQUIRE(q && k && v && out[0] && out[1] && pr[0] && pr[1]);
        fill(q, tq * D, 3, 1.0);
        fill(k, tk * D, 4, 1.0);
        fill(v, tk * D, 5, 1.0);
        for (int l = 0; l < 3; l++) {
            if (!set_level(l)) continue;
            const int s = l ? 1 : 0;
            /* the workspace size depends on the path, so it is asked for at each level */
            CHECK_OK(mer__attention_fwd(out[s], D, pr[s], q, D, k, D, v, D, mask, tq, tk, h, dh,
                                        1.0f / sqrtf((float)dh), NULL));
            if (l) {
                CHECK(close_to("attention out", l, out[0], out[1], tq * D, 1e-5));
                CHECK(close_to("attention probs", l, pr[0], pr[1], h * tq * tk, 1e-6));
            }
        }
        free(q); free(k); free(v); free(out[0]); free(out[1]); free(pr[0]); free(pr[1]);
    }

    /* ---- linear forward and backward at a batch size (gemm_small.c with AVX-512, else
     * mer_sgemm) */
    {
        const int64_t B = 32, in = 300, out = 72;
        float *xb = malloc(sizeof(float) * B * in), *w = malloc(sizeof(float) * out * in);
        float *bias = malloc(sizeof(float) * out), *g = malloc(sizeof(float) * B * out);
        float *res[2];
        const int64_t per = B * out + B * in + out * in + out;
        res[0] = malloc(sizeof(float) * per);
        res[1] = malloc(sizeof(float) * per);
        REQUIRE(xb && w && bias && g && res[0] && res[1]);
        fill(xb, B * in, 6, 1.0);
        fill(w, out * in, 7, 0.1);
        fill(bias, out, 8, 0.1);
        fill(g, B * out, 9, 1.0);
        for (int l = 0; l < 3; l++) {
            if (!set_level(l)) continue;
            float *o = res[l ? 1 : 0];
            memset(o, 0, sizeof(float) * per);
            mer__linear_fwd(o, xb, w, bias, B, in, out);
            mer__linear_bwd(o + B * out, o + B * out + B * in, o + B * out + B * in + out * in, g, xb, w, B, in,
                            out);
            if (l) CHECK(close_to("linear fwd+bwd", l, res[0], res[1], per, 1e-5));
        }
        free(xb); free(w); free(bias); free(g); free(res[0]); free(res[1]);
    }

    /* ---- Adam and AdamW: the same IEEE operations in every lane width, so the same bits */
    for (int type = 0; type < 2; type++) {
        const int64_t N = 1000 + 7;
        float *p0 = malloc(sizeof(float) * N), *g0 = malloc(sizeof(float) * N);
        float *pr2[2] = {malloc(sizeof(float) * N), malloc(sizeof(float) * N)};
        float *gr = malloc(sizeof(float) * N);
        REQUIRE(p0 && g0 && pr2[0] && pr2[1] && gr);
        fill(p0, N, 10, 1.0);
        fill(g0, N, 11, 0.01);
        for (int l = 0; l < 3; l++) {
            if (!set_level(l)) continue;
            float *p = pr2[l ? 1 : 0];
            memcpy(p, p0, sizeof(float) * N);
            mer__optim o;
            REQUIRE_OK(mer__optim_init(&o, type ? MER_OPT_ADAMW : MER_OPT_ADAM, N, 1e-3f, 1e-2f));
            for (int step = 0; step < 3; step++) {
                for (int64_t i = 0; i < N; i++) gr[i] = g0[i] * (float)(step + 1);
                mer__optim_step(&o, p, gr);
            }
            mer__optim_free(&o);
            if (l) CHECK(same_bits(type ? "adamw" : "adam", l, pr2[0], pr2[1], N));
        }
        free(p0); free(g0); free(pr2[0]); free(pr2[1]); free(gr);
    }
    mer__cpu_features_limit(~0u);
    free(x); free(dy); free(ref); free(got);
}

/* A whole encoder (the tiny HuBERT fixture): conv feature encoder, packed GEMMs, attention,
 * GELU and layer norms at each level, every hidden state within 1e-4 * max|ref| (the bar the
 * fixtures hold against torchaudio). */
MER_TEST(isa_levels_agree_speech_encoder) {
    const int64_t n = 16000;
    float *wav = malloc(sizeof(float) * n);
    REQUIRE(wav);
    fill(wav, n, 12, 0.3);
    float *hs[2] = {NULL, NULL};
    int64_t per = 0;
    int32_t L = 0;
    for (int l = 0; l < 3; l++) {
        if (!set_level(l)) continue;
        mer_speech_model *m = NULL;
        mer_speech_state *st = NULL;
        /* loaded at each level: packed weight layouts may depend on the kernels chosen */
        REQUIRE_OK(mer_speech_model_load(&m, "tests/fixtures/hubert/base", NULL));
        REQUIRE_OK(mer_speech_state_init(&st, m, NULL));
        mer_speech_info info;
        mer_speech_model_info(m, &info);
        L = info.n_layers;
        per = mer_speech_frames(m, n) * info.hidden_size;
        const int s = l ? 1 : 0;
        free(hs[s]);
        hs[s] = malloc(sizeof(float) * per * (L + 1));
        REQUIRE(hs[s]);
        CHECK_OK(mer_speech_encode(st, wav, n, 0, L, hs[s]));
        mer_speech_state_free(st);
        mer_speech_model_free(m);
        if (l)
            for (int32_t k = 0; k <= L; k++) CHECK(close_to("hidden state", l, hs[0] + k * per, hs[1] + k * per, per, 1e-4));
    }
    mer__cpu_features_limit(~0u);
    free(wav);
    free(hs[0]);
    free(hs[1]);
}

/* MER_NO_AVX512=1 reaches the CLI's dispatch (the variable is read once, at the first query). */
MER_TEST(isa_env_hides_avx512_cli) {
    char out[512];
    REQUIRE(mer_test_run(out, sizeof out, "MER_NO_AVX512=1 %s --version", mer_test_bin()) == 0);
    CHECK(strstr(out, "cpu: ") != NULL);
    CHECK(strstr(out, "avx512") == NULL);
    REQUIRE(mer_test_run(out, sizeof out, "%s --version", mer_test_bin()) == 0);
    CHECK(strstr(out, mer_cpu_features_str()) != NULL);
}

/* ... and reaches the BLAS: oneDNN is capped at AVX2 whenever mer's own dispatch has no AVX-512
 * (each test runs in its own process, so the cap, which oneDNN takes once, is set by this
 * test's first GEMM). */
MER_TEST(isa_env_caps_onednn) {
    float a[4] = {1, 2, 3, 4}, c[4];
    mer_sgemm(0, 0, 2, 2, 2, 1.0f, a, 2, a, 2, 0.0f, c, 2);
    CHECK(c[0] == 7.0f && c[3] == 22.0f);
    const int blas = mer__gemm_blas_avx512();
    printf("    gemm backend %s, AVX-512 in the BLAS: %s\n", mer_gemm_backend_name(mer_gemm_get_backend()),
           blas < 0 ? "unknown" : blas ? "yes" : "no");
    if (!mer__use_avx512()) CHECK(blas <= 0);
}
