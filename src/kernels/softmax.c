/*
 * softmax.c -- row softmax (rows split over threads).
 *
 * The exponential is the cost of attention's softmax (h * T^2 per layer), so with AVX-512 it is
 * evaluated 16 lanes at a time by a range-reduced polynomial (about 1 ulp on the range that
 * softmax uses, inputs <= 0 after the max is subtracted), with AVX2 + FMA 8 lanes at a time by
 * the same polynomial (the scalar expf loop was half of HuBERT-large's fused attention time on
 * Zen 3); without AVX2 the scalar fallback calls expf.
 */
#include "kernels.h"

#include <float.h>
#include <math.h>

#include <immintrin.h>

/* exp(x) for x <= 0 (0 below -87.3, where expf underflows): x = k ln2 + r, |r| <= ln2/2, exp(r) by a degree-6 polynomial
 * (Cephes expf coefficients), then scaled by 2^k through the exponent bits. */
MER_AVX512 static inline __m512 exp512(__m512 x) {
    const __m512 lo = _mm512_set1_ps(-87.3f);
    const __mmask16 live = _mm512_cmp_ps_mask(x, lo, _CMP_GE_OQ); /* below: underflow to 0 */
    x = _mm512_max_ps(x, lo);
    const __m512 log2e = _mm512_set1_ps(1.44269504088896341f);
    const __m512 ln2_hi = _mm512_set1_ps(0.693359375f);
    const __m512 ln2_lo = _mm512_set1_ps(-2.12194440e-4f);
    __m512 k = _mm512_roundscale_ps(_mm512_mul_ps(x, log2e), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(k, ln2_hi, x);
    r = _mm512_fnmadd_ps(k, ln2_lo, r);
    __m512 p = _mm512_set1_ps(1.9875691500E-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507E-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073E-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894E-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459E-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201E-1f));
    __m512 r2 = _mm512_mul_ps(r, r);
    p = _mm512_fmadd_ps(p, r2, _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    __m512i e = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(k), _mm512_set1_epi32(127)), 23);
    return _mm512_maskz_mul_ps(live, p, _mm512_castsi512_ps(e));
}

MER_AVX512 static void softmax_row_avx512(float *y, const float *x, int64_t n) {
    int64_t i = 0;
    __m512 vmax = _mm512_set1_ps(-FLT_MAX);
    for (; i + 16 <= n; i += 16) vmax = _mm512_max_ps(vmax, _mm512_loadu_ps(x + i));
    float mx = _mm512_reduce_max_ps(vmax);
    for (; i < n; i++) mx = x[i] > mx ? x[i] : mx;
    __m512 vm = _mm512_set1_ps(mx), vsum = _mm512_setzero_ps();
    for (i = 0; i + 16 <= n; i += 16) {
        __m512 e = exp512(_mm512_sub_ps(_mm512_loadu_ps(x + i), vm));
        _mm512_storeu_ps(y + i, e);
        vsum = _mm512_add_ps(vsum, e);
    }
    if (i < n) {
        __mmask16 mk = (__mmask16)((1u << (n - i)) - 1u);
        __m512 e = exp512(_mm512_sub_ps(_mm512_maskz_loadu_ps(mk, x + i), vm));
        e = _mm512_maskz_mov_ps(mk, e);
        _mm512_mask_storeu_ps(y + i, mk, e);
        vsum = _mm512_add_ps(vsum, e);
    }
    float s = _mm512_reduce_add_ps(vsum);
    __m512 inv = _mm512_set1_ps(1.0f / s);
    for (i = 0; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, _mm512_mul_ps(_mm512_loadu_ps(y + i), inv));
    if (i < n) {
        __mmask16 mk = (__mmask16)((1u << (n - i)) - 1u);
        _mm512_mask_storeu_ps(y + i, mk, _mm512_mul_ps(_mm512_maskz_loadu_ps(mk, y + i), inv));
    }
}

/* exp256: exp512's reduction and polynomial on 8 lanes (AVX2 + FMA, chosen at run time). */
__attribute__((target("avx2,fma"))) static inline __m256 exp256(__m256 x) {
    const __m256 lo = _mm256_set1_ps(-87.3f);
    const __m256 live = _mm256_cmp_ps(x, lo, _CMP_GE_OQ); /* below (or NaN): 0 */
    x = _mm256_max_ps(x, lo);
    const __m256 log2e = _mm256_set1_ps(1.44269504088896341f);
    const __m256 ln2_hi = _mm256_set1_ps(0.693359375f);
    const __m256 ln2_lo = _mm256_set1_ps(-2.12194440e-4f);
    __m256 k = _mm256_round_ps(_mm256_mul_ps(x, log2e), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(k, ln2_hi, x);
    r = _mm256_fnmadd_ps(k, ln2_lo, r);
    __m256 p = _mm256_set1_ps(1.9875691500E-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507E-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073E-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894E-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459E-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201E-1f));
    __m256 r2 = _mm256_mul_ps(r, r);
    p = _mm256_fmadd_ps(p, r2, _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(k), _mm256_set1_epi32(127)), 23);
    return _mm256_and_ps(live, _mm256_mul_ps(p, _mm256_castsi256_ps(e)));
}

/* y = exp(x - max x); returns the sum of y (the lanes' sums added in a fixed order) */
__attribute__((target("avx2,fma"))) static float exp_sum_row_avx2(float *y, const float *x, int64_t n) {
    int64_t i = 0;
    __m256 vmax = _mm256_set1_ps(-FLT_MAX);
    for (; i + 8 <= n; i += 8) vmax = _mm256_max_ps(vmax, _mm256_loadu_ps(x + i));
    float l[8], mx = -FLT_MAX;
    _mm256_storeu_ps(l, vmax);
    for (int c = 0; c < 8; c++) mx = l[c] > mx ? l[c] : mx;
    for (; i < n; i++) mx = x[i] > mx ? x[i] : mx;
    const __m256 vm = _mm256_set1_ps(mx);
    __m256 vsum = _mm256_setzero_ps();
    for (i = 0; i + 8 <= n; i += 8) {
        __m256 e = exp256(_mm256_sub_ps(_mm256_loadu_ps(x + i), vm));
        _mm256_storeu_ps(y + i, e);
        vsum = _mm256_add_ps(vsum, e);
    }
    if (i < n) { /* the tail through a zero-padded lane block: the same polynomial */
        float t[8] = {0};
        const int64_t m = n - i;
        for (int64_t c = 0; c < m; c++) t[c] = x[i + c] - mx;
        for (int64_t c = m; c < 8; c++) t[c] = -INFINITY;
        _mm256_storeu_ps(t, exp256(_mm256_loadu_ps(t)));
        for (int64_t c = 0; c < m; c++) y[i + c] = t[c];
        vsum = _mm256_add_ps(vsum, _mm256_loadu_ps(t));
    }
    _mm256_storeu_ps(l, vsum);
    return ((l[0] + l[4]) + (l[1] + l[5])) + ((l[2] + l[6]) + (l[3] + l[7]));
}

__attribute__((target("avx2,fma"))) static void softmax_row_avx2(float *y, const float *x, int64_t n) {
    const float s = exp_sum_row_avx2(y, x, n);
    int64_t i;
    const __m256 inv = _mm256_set1_ps(1.0f / s);
    for (i = 0; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_loadu_ps(y + i), inv));
    for (; i < n; i++) y[i] *= 1.0f / s;
}

/* y = exp(x - max x), the row's sum returned: a softmax left to the caller to normalise. */
float mer__exp_sum_row(float *y, const float *x, int64_t n) {
    if (mer_cpu_features() & MER_CPU_AVX2) return exp_sum_row_avx2(y, x, n);
    float mx = -FLT_MAX;
    for (int64_t i = 0; i < n; i++) mx = x[i] > mx ? x[i] : mx;
    double s = 0.0;
    for (int64_t i = 0; i < n; i++) {
        y[i] = expf(x[i] - mx);
        s += y[i];
    }
    return (float)s;
}

/* One row: y = softmax(x). y may alias x. */
void mer__softmax_row(float *y, const float *x, int64_t n) {
    if (mer__use_avx512()) {
        softmax_row_avx512(y, x, n);
        return;
    }
    if (mer_cpu_features() & MER_CPU_AVX2) {
        softmax_row_avx2(y, x, n);
        return;
    }
    int64_t i = 0;
    float mx = -FLT_MAX;
    for (; i < n; i++) mx = x[i] > mx ? x[i] : mx;
    double s = 0.0; /* a float running sum over ~1000 keys drifts ~1e-6 off (test_isa) */
    for (i = 0; i < n; i++) {
        y[i] = expf(x[i] - mx);
        s += y[i];
    }
    float inv = (float)(1.0 / s);
    for (i = 0; i < n; i++) y[i] *= inv;
}

typedef struct {
    float *y;
    const float *x;
    int64_t cols;
} sm_job;

static void sm_rows(void *u, int64_t r0, int64_t r1, int t) {
    (void)t;
    const sm_job *j = u;
    for (int64_t r = r0; r < r1; r++) mer__softmax_row(j->y + r * j->cols, j->x + r * j->cols, j->cols);
}

// ref: torch.softmax(x, dim=-1)
void mer__softmax_fwd(float *y, const float *x, int64_t rows, int64_t cols) {
    if (rows <= 0 || cols <= 0) return;
    sm_job j = {y, x, cols};
    int64_t min_rows = cols >= 4096 ? 1 : 4096 / cols;
    mer__parallel_for(rows, min_rows, sm_rows, &j);
}

/* ---- backward (training) ------------------------------------------------------------------ */

// ref: autograd of torch.softmax(dim=-1): dx += y * (dy - sum(dy * y))
void mer__softmax_bwd(float *dx, const float *dy, const float *y, int64_t rows, int64_t cols) {
    for (int64_t r = 0; r < rows; r++) {
        const float *yr = y + r * cols, *dyr = dy + r * cols;
        double dot = 0.0;
        for (int64_t c = 0; c < cols; c++) dot += (double)dyr[c] * yr[c];
        float d = (float)dot;
        float *dxr = dx + r * cols;
        for (int64_t c = 0; c < cols; c++) dxr[c] += yr[c] * (dyr[c] - d);
    }
}
