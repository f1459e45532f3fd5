/*
 * norm.c -- normalisation kernels: LayerNorm over the last dim (rows split over threads) and the
 * per-channel GroupNorm of the wav2vec2/HuBERT feature extractor's first layer.
 *
 * Statistics use two passes (mean, then centred sum of squares) with 16 independent float
 * accumulators: the compiler vectorises the fixed-width inner loop without -ffast-math, and
 * the summation order depends only on the length, so results are bitwise reproducible.
 */
#include "kernels.h"

#include <immintrin.h>
#include <math.h>

#define NORM_LANES 16

/* Sum of x[0..n) in a fixed lane order (vectorisable, deterministic). */
static float sum_lanes(const float *x, int64_t n) {
    float acc[NORM_LANES] = {0};
    int64_t i = 0;
    for (; i + NORM_LANES <= n; i += NORM_LANES)
        for (int l = 0; l < NORM_LANES; l++) acc[l] += x[i + l];
    float s = 0.0f;
    for (; i < n; i++) s += x[i];
    for (int l = 0; l < NORM_LANES; l++) s += acc[l];
    return s;
}

/* Sum of (x - m)^2 in the same fixed order. */
static float sumsq_centred(const float *x, float m, int64_t n) {
    float acc[NORM_LANES] = {0};
    int64_t i = 0;
    for (; i + NORM_LANES <= n; i += NORM_LANES)
        for (int l = 0; l < NORM_LANES; l++) {
            float d = x[i + l] - m;
            acc[l] += d * d;
        }
    float s = 0.0f;
    for (; i < n; i++) {
        float d = x[i] - m;
        s += d * d;
    }
    for (int l = 0; l < NORM_LANES; l++) s += acc[l];
    return s;
}

/* y = (x - m) * rs * g + b (g, b optional; y is x or does not overlap it). With AVX2 8 lanes at
 * a time (the plain loops stay scalar at -O2 for want of an alias check: 0.86 ns a value on
 * Zen 3, 7x the statistics' cost); separate subtract, multiplies and add (no contraction under
 * -std=c11) in the same order, so the same bits. */
__attribute__((target("avx2"))) static int64_t ln_affine_avx2(float *y, const float *x, float m, float rs,
                                                             const float *g, const float *b, int64_t c) {
    const __m256 vm = _mm256_set1_ps(m), vr = _mm256_set1_ps(rs);
    int64_t i = 0;
    for (; i + 8 <= c; i += 8) {
        __m256 v = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), vm), vr);
        if (g) v = _mm256_mul_ps(v, _mm256_loadu_ps(g + i));
        if (b) v = _mm256_add_ps(v, _mm256_loadu_ps(b + i));
        _mm256_storeu_ps(y + i, v);
    }
    return i;
}

static void ln_affine(float *y, const float *x, float m, float rs, const float *g, const float *b,
                      int64_t c) {
    int64_t i = mer_cpu_features() & MER_CPU_AVX2 ? ln_affine_avx2(y, x, m, rs, g, b, c) : 0;
    for (; i < c; i++) {
        float v = (x[i] - m) * rs;
        if (g) v = v * g[i];
        if (b) v = v + b[i];
        y[i] = v;
    }
}

typedef struct {
    float *y, *mean, *rstd;
    const float *x, *gamma, *beta;
    int64_t c;
    float eps;
} ln_job;

static void ln_rows(void *u, int64_t r0, int64_t r1, int t) {
    (void)t;
    const ln_job *j = u;
    const int64_t c = j->c;
    for (int64_t r = r0; r < r1; r++) {
        const float *x = j->x + r * c;
        float *y = j->y + r * c;
        float m = sum_lanes(x, c) / (float)c;
        float var = sumsq_centred(x, m, c) / (float)c; /* biased, as torch */
        float rs = 1.0f / sqrtf(var + j->eps);
        if (j->mean) j->mean[r] = m;
        if (j->rstd) j->rstd[r] = rs;
        ln_affine(y, x, m, rs, j->gamma, j->beta, c);
    }
}

// ref: torch.nn.functional.layer_norm
void mer__layernorm_fwd(float *y, float *mean, float *rstd, const float *x, const float *gamma,
                        const float *beta, int64_t n, int64_t c, float eps) {
    if (n <= 0 || c <= 0) return;
    ln_job j = {y, mean, rstd, x, gamma, beta, c, eps};
    int64_t min_rows = c >= 4096 ? 1 : 4096 / c;
    mer__parallel_for(n, min_rows, ln_rows, &j);
}

typedef struct {
    float *y;
    const float *x, *gamma, *beta;
    int64_t t;
    float eps;
} gn_job;

static void gn_channels(void *u, int64_t c0, int64_t c1, int th) {
    (void)th;
    const gn_job *j = u;
    const int64_t t = j->t;
    for (int64_t ch = c0; ch < c1; ch++) {
        const float *x = j->x + ch * t;
        float *y = j->y + ch * t;
        float m = sum_lanes(x, t) / (float)t;
        float var = sumsq_centred(x, m, t) / (float)t;
        float rs = 1.0f / sqrtf(var + j->eps);
        float g = j->gamma ? j->gamma[ch] * rs : rs;
        float b = (j->beta ? j->beta[ch] : 0.0f) - m * g;
        for (int64_t i = 0; i < t; i++) y[i] = x[i] * g + b;
    }
}

// ref: torch.nn.GroupNorm(num_groups=c, num_channels=c) on (1, c, t)
void mer__groupnorm_ct_fwd(float *y, const float *x, const float *gamma, const float *beta,
                           int64_t c, int64_t t, float eps) {
    if (c <= 0 || t <= 0) return;
    gn_job j = {y, x, gamma, beta, t, eps};
    mer__parallel_for(c, 1, gn_channels, &j);
}

/* ---- backward (training) ------------------------------------------------------------------ */

// ref: autograd of torch.nn.functional.layer_norm
// dx += rstd * (g - mean(g) - xhat * mean(g * xhat)) with g = dy * gamma; dgamma += dy * xhat,
// dbeta += dy summed over rows serially (fixed order: reproducible).
void mer__layernorm_bwd(float *dx, float *dgamma, float *dbeta, const float *dy, const float *x,
                        const float *mean, const float *rstd, const float *gamma, int64_t n,
                        int64_t c) {
    for (int64_t r = 0; r < n; r++) {
        const float *xr = x + r * c, *dyr = dy + r * c;
        const float m = mean[r], rs = rstd[r];
        double sg = 0.0, sgx = 0.0;
        for (int64_t i = 0; i < c; i++) {
            float xh = (xr[i] - m) * rs;
            float g = gamma ? dyr[i] * gamma[i] : dyr[i];
            sg += g;
            sgx += (double)g * xh;
            if (dgamma) dgamma[i] += dyr[i] * xh;
            if (dbeta) dbeta[i] += dyr[i];
        }
        if (!dx) continue;
        float mg = (float)(sg / (double)c), mgx = (float)(sgx / (double)c);
        float *dxr = dx + r * c;
        for (int64_t i = 0; i < c; i++) {
            float xh = (xr[i] - m) * rs;
            float g = gamma ? dyr[i] * gamma[i] : dyr[i];
            dxr[i] += rs * (g - mg - xh * mgx);
        }
    }
}

/* ---- RMSNorm ------------------------------------------------------------------------------- */

// ref: transformers LlamaRMSNorm in float32: x * rsqrt(mean(x^2) + eps) * weight
void mer__rmsnorm_fwd(float *y, float *rstd, const float *x, const float *gamma, int64_t n,
                      int64_t c, float eps) {
    for (int64_t r = 0; r < n; r++) {
        const float *xr = x + r * c;
        double ss = 0.0;
        for (int64_t i = 0; i < c; i++) ss += (double)xr[i] * xr[i];
        float rs = (float)(1.0 / sqrt(ss / (double)c + (double)eps));
        if (rstd) rstd[r] = rs;
        float *yr = y + r * c;
        for (int64_t i = 0; i < c; i++) yr[i] = gamma ? xr[i] * rs * gamma[i] : xr[i] * rs;
    }
}

// ref: autograd of the above: with g = dy * gamma, dx += rs * g - x * rs^3 * mean(g * x);
// dgamma += dy * x * rs summed over rows serially.
void mer__rmsnorm_bwd(float *dx, float *dgamma, const float *dy, const float *x,
                      const float *rstd, const float *gamma, int64_t n, int64_t c) {
    for (int64_t r = 0; r < n; r++) {
        const float *xr = x + r * c, *dyr = dy + r * c;
        const float rs = rstd[r];
        double sgx = 0.0;
        for (int64_t i = 0; i < c; i++) {
            float g = gamma ? dyr[i] * gamma[i] : dyr[i];
            sgx += (double)g * xr[i];
            if (dgamma) dgamma[i] += dyr[i] * xr[i] * rs;
        }
        if (!dx) continue;
        float k = (float)(sgx / (double)c) * rs * rs * rs;
        float *dxr = dx + r * c;
        for (int64_t i = 0; i < c; i++) {
            float g = gamma ? dyr[i] * gamma[i] : dyr[i];
            dxr[i] += rs * g - xr[i] * k;
        }
    }
}
