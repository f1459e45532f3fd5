/*
 * attn_bwd.c -- the backward of self-attention over a batch of clips (training), given the
 * probabilities its forward saved: (clip, head) pairs are split over the threads, and each
 * pair runs on one thread from start to end: dV_h += P^T dO_h, dP = dO_h V_h^T, the softmax
 * backward dS = P * (dP - rowsum(dP * P)) fused row by row in the thread's scratch, then
 * dQ_h += scale dS K_h and dK_h += scale dS^T Q_h. The four products are single-threaded calls
 * of the one GEMM entry point (inside a parallel region the backend runs on the calling thread),
 * so a step has one parallel region per layer instead of four per head, and the softmax backward
 * no longer runs on one thread. Each output column block (a head of a clip) is written by one
 * thread in a fixed order: results do not depend on the thread count.
 */
#include "kernels.h"

#include <immintrin.h>

typedef struct {
    float *dq, *dk, *dv;
    const float *dout, *probs, *q, *k, *v;
    const int64_t *off, *poff;
    int64_t ld, h, dh, ws_per_thread;
    float scale;
    float *ws;
    int avx2;
} bwd_job;

/* r (n) = p * (r - sum(r * p)), the sum in double as torch's CPU softmax backward accumulates
 * in a wider type; four double lanes then a fixed fold. */
__attribute__((target("avx2,fma"))) static void softmax_bwd_row_avx2(float *r, const float *p,
                                                                    int64_t n) {
    __m256d a0 = _mm256_setzero_pd(), a1 = _mm256_setzero_pd();
    int64_t j = 0;
    for (; j + 8 <= n; j += 8) {
        __m256 rv = _mm256_loadu_ps(r + j), pv = _mm256_loadu_ps(p + j);
        a0 = _mm256_fmadd_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(rv)),
                             _mm256_cvtps_pd(_mm256_castps256_ps128(pv)), a0);
        a1 = _mm256_fmadd_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(rv, 1)),
                             _mm256_cvtps_pd(_mm256_extractf128_ps(pv, 1)), a1);
    }
    double l[4];
    _mm256_storeu_pd(l, _mm256_add_pd(a0, a1));
    double dot = (l[0] + l[1]) + (l[2] + l[3]);
    for (; j < n; j++) dot += (double)r[j] * p[j];
    const float d = (float)dot;
    const __m256 vd = _mm256_set1_ps(d);
    j = 0;
    for (; j + 8 <= n; j += 8)
        _mm256_storeu_ps(r + j, _mm256_mul_ps(_mm256_loadu_ps(p + j),
                                              _mm256_sub_ps(_mm256_loadu_ps(r + j), vd)));
    for (; j < n; j++) r[j] = p[j] * (r[j] - d);
}

static void softmax_bwd_row(float *r, const float *p, int64_t n) {
    double dot = 0.0;
    for (int64_t j = 0; j < n; j++) dot += (double)r[j] * p[j];
    const float d = (float)dot;
    for (int64_t j = 0; j < n; j++) r[j] = p[j] * (r[j] - d);
}

static void bwd_pairs(void *u, int64_t i0, int64_t i1, int t) {
    const bwd_job *j = u;
    float *ds = j->ws + (int64_t)t * j->ws_per_thread;
    for (int64_t it = i0; it < i1; it++) {
        const int64_t c = it / j->h, hh = it % j->h, o = j->off[c], T = j->off[c + 1] - o;
        const float *p = j->probs + j->poff[c] + hh * T * T;
        const int64_t col = o * j->ld + hh * j->dh;
        const float *doh = j->dout + col;
        mer_sgemm(1, 0, T, j->dh, T, 1.0f, p, T, doh, j->ld, 1.0f, j->dv + col, j->ld);
        mer_sgemm(0, 1, T, T, j->dh, 1.0f, doh, j->ld, j->v + col, j->ld, 0.0f, ds, T);
        for (int64_t i = 0; i < T; i++) {
            if (j->avx2) softmax_bwd_row_avx2(ds + i * T, p + i * T, T);
            else softmax_bwd_row(ds + i * T, p + i * T, T);
        }
        mer_sgemm(0, 0, T, j->dh, T, j->scale, ds, T, j->k + col, j->ld, 1.0f, j->dq + col, j->ld);
        mer_sgemm(1, 0, T, j->dh, T, j->scale, ds, T, j->q + col, j->ld, 1.0f, j->dk + col, j->ld);
    }
}

int64_t mer__attention_bwd_batch_ws_floats(int64_t tmax) {
    return (int64_t)mer__threads() * tmax * tmax;
}

// ref: autograd of torch.nn.functional.scaled_dot_product_attention (per clip, no mask)
void mer__attention_bwd_batch(float *dq, float *dk, float *dv, const float *dout,
                              const float *probs, const int64_t *poff, const float *q,
                              const float *k, const float *v, int64_t ld, const int64_t *off,
                              int64_t n, int64_t h, int64_t dh, float scale, float *ws,
                              int64_t ws_floats) {
    int64_t tmax = 0;
    for (int64_t c = 0; c < n; c++)
        if (off[c + 1] - off[c] > tmax) tmax = off[c + 1] - off[c];
    bwd_job j = {dq, dk, dv, dout, probs, q, k, v, off, poff, ld, h, dh, tmax * tmax, scale, ws,
                 (mer_cpu_features() & MER_CPU_AVX2) != 0};
    /* no more threads than the scratch was sized for (the count may have changed since) */
    const int64_t fit = tmax > 0 ? ws_floats / (tmax * tmax) : 0;
    if (fit < 1) return;
    const int old = fit < mer__threads() ? mer__threads_use((int)fit) : -1;
    mer__parallel_for(n * h, 1, bwd_pairs, &j);
    if (old >= 0) mer__threads_use(old);
}
