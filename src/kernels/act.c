/*
 * act.c -- element-wise activations (GELU, quick GELU, ReLU, sigmoid) and dropout, forward and
 * backward. Forward allows y == x. Backward accumulates into dx (+=) per kernels.h.
 *
 * Large arrays are split over the thread pool; each element is written by exactly one range, so
 * results do not depend on the thread count. Dropout's mask is a counter-based hash keyed by one
 * draw from the caller's RNG, so a seeded run is reproducible whatever the thread count.
 */
#include "kernels.h"

#include <math.h>

#define ACT_MIN_CHUNK 16384

typedef struct {
    float *y;
    const float *x;
    const float *dy;
} act_job;

/* ---- GELU (exact, erf) -------------------------------------------------------------------- */

static void gelu_fwd_range(void *u, int64_t b, int64_t e, int t) {
    act_job *j = u;
    for (int64_t i = b; i < e; i++) {
        float v = j->x[i];
        j->y[i] = 0.5f * v * (1.0f + erff(v * 0.70710678118654752f));
    }
}

// ref: torch.nn.functional.gelu(approximate='none')
void mer__gelu_fwd(float *y, const float *x, int64_t n) {
    act_job j = {y, x, NULL};
    mer__parallel_for(n, ACT_MIN_CHUNK, gelu_fwd_range, &j);
}

static void gelu_bwd_range(void *u, int64_t b, int64_t e, int t) {
    act_job *j = u;
    for (int64_t i = b; i < e; i++) {
        float v = j->x[i];
        float cdf = 0.5f * (1.0f + erff(v * 0.70710678118654752f));
        float pdf = 0.39894228040143268f * expf(-0.5f * v * v);
        j->y[i] += j->dy[i] * (cdf + v * pdf);
    }
}

// ref: autograd of torch.nn.functional.gelu(approximate='none')
void mer__gelu_bwd(float *dx, const float *dy, const float *x, int64_t n) {
    act_job j = {dx, x, dy};
    mer__parallel_for(n, ACT_MIN_CHUNK, gelu_bwd_range, &j);
}

/* ---- quick GELU: x * sigmoid(1.702 x) ----------------------------------------------------- */

static void qgelu_fwd_range(void *u, int64_t b, int64_t e, int t) {
    act_job *j = u;
    for (int64_t i = b; i < e; i++) {
        float v = j->x[i];
        j->y[i] = v / (1.0f + expf(-1.702f * v));
    }
}

// ref: transformers.activations.QuickGELUActivation
void mer__quick_gelu_fwd(float *y, const float *x, int64_t n) {
    act_job j = {y, x, NULL};
    mer__parallel_for(n, ACT_MIN_CHUNK, qgelu_fwd_range, &j);
}

static void qgelu_bwd_range(void *u, int64_t b, int64_t e, int t) {
    act_job *j = u;
    for (int64_t i = b; i < e; i++) {
        float v = j->x[i];
        float s = 1.0f / (1.0f + expf(-1.702f * v));
        j->y[i] += j->dy[i] * (s + 1.702f * v * s * (1.0f - s));
    }
}

void mer__quick_gelu_bwd(float *dx, const float *dy, const float *x, int64_t n) {
    act_job j = {dx, x, dy};
    mer__parallel_for(n, ACT_MIN_CHUNK, qgelu_bwd_range, &j);
}

/* ---- ReLU --------------------------------------------------------------------------------- */

// ref: torch.relu
void mer__relu_fwd(float *y, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

/* x may be the forward input or output (same sign pattern); torch uses output > 0. */
void mer__relu_bwd(float *dx, const float *dy, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (x[i] > 0.0f) dx[i] += dy[i];
}

/* ---- sigmoid ------------------------------------------------------------------------------ */

// ref: torch.sigmoid
void mer__sigmoid_fwd(float *y, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = 1.0f / (1.0f + expf(-x[i]));
}

/* Given the forward OUTPUT y: dx += dy * y * (1 - y). */
void mer__sigmoid_bwd(float *dx, const float *dy, const float *y, int64_t n) {
    for (int64_t i = 0; i < n; i++) dx[i] += dy[i] * y[i] * (1.0f - y[i]);
}

/* ---- dropout ------------------------------------------------------------------------------ */

/* murmur3's 32-bit finaliser: a bijective mix that turns a counter into uniform bits. */
static inline uint32_t fmix32(uint32_t h) {
    h ^= h >> 16;
    h *= 0x85ebca6bu;
    h ^= h >> 13;
    h *= 0xc2b2ae35u;
    h ^= h >> 16;
    return h;
}

// ref: torch.nn.functional.dropout(training=True): keep with prob 1-p, scale kept by 1/(1-p)
// The mask is counter based: one draw from rng gives a key, element i uses the 32 bits
// fmix32(i * golden + key_lo) ^ key_hi as a uniform u and is kept when u >= p * 2^32 (P(keep) =
// 1 - p to 2^-32). No serial dependency, so the loop vectorises (32-bit lanes), and the mask
// depends only on the rng state, not on the thread count.
void mer__dropout_fwd(float *y, float *mask, const float *x, float p, int64_t n, mer__rng *rng) {
    if (p <= 0.0f) {
        for (int64_t i = 0; i < n; i++) {
            if (mask) mask[i] = 1.0f;
            y[i] = x[i];
        }
        return;
    }
    const float scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
    const uint64_t t64 = (uint64_t)((double)p * 4294967296.0);
    const uint32_t thr = t64 > 0xffffffffu ? 0xffffffffu : (uint32_t)t64;
    const uint64_t key = mer__rng_u64(rng);
    const uint32_t k1 = (uint32_t)key, k2 = (uint32_t)(key >> 32);
    float *restrict yr = y;
    const float *restrict xr = x;
    if (mask) {
        float *restrict mr = mask;
#pragma omp simd
        for (int64_t i = 0; i < n; i++) {
            uint32_t u = fmix32((uint32_t)i * 0x9E3779B9u + k1) ^ k2;
            float m = u >= thr ? scale : 0.0f;
            mr[i] = m;
            yr[i] = xr[i] * m;
        }
    } else {
#pragma omp simd
        for (int64_t i = 0; i < n; i++) {
            uint32_t u = fmix32((uint32_t)i * 0x9E3779B9u + k1) ^ k2;
            yr[i] = xr[i] * (u >= thr ? scale : 0.0f);
        }
    }
}

void mer__dropout_bwd(float *dx, const float *dy, const float *mask, int64_t n) {
    for (int64_t i = 0; i < n; i++) dx[i] += dy[i] * mask[i];
}
