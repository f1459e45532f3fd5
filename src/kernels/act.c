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
#include <string.h>
#include <immintrin.h>

#define ACT_MIN_CHUNK 16384

typedef struct {
    float *y;
    const float *x;
    const float *dy;
} act_job;

/* ---- exp and erfc for the GELUs --------------------------------------------------------------
 * libm's erff/expf do not vectorise (GCC -O2) and were the cost of the speech and visual encoders'
 * GELUs (~80 M values per 10 s of audio for hubert-large). The math is written twice, once per
 * element and once for 16 AVX-512 lanes, with the same operations in the same order (fmaf <->
 * fmadd, compare-and-select <-> masks, min/max with their NaN rule), so both paths give the
 * same bits (tests/test_isa.c runs both in one process on an AVX-512 CPU).
 *
 * exp: Cephes' expf: x = n ln2 + r with ln2 in two parts, a degree-6 polynomial for e^r,
 *   scaling by 2^n through the exponent bits. Within 2 ulp of expf on [-87.33, 88.37]; 0 below
 *   (where expf is subnormal or 0), +Inf above (expf overflows from 88.72).
 * erfc: the form of Abramowitz & Stegun 7.1.26, erfc(z) = t P(t) e^{-z^2} with t = 1/(1 + a z),
 *   but a degree-7 P (a = 0.59) fitted minimax to erfc's RELATIVE error (2.8e-7 on [0, 10]
 *   with float coefficients; scripts/fit_erfc.py prints them). A&S's own 5 coefficients fit erf's absolute error and lose 4% of
 *   erfc by z = 6; a relative fit keeps GELU's negative tail x Phi(x) accurate where 1 + erff(x)
 *   cancels to 0 (below x = -5.9). P(t) and e^{-z^2} are independent chains, which the
 *   out-of-order core overlaps (putting P inside the exponential, as Numerical Recipes' erfcc
 *   does, chains them and was 1.35x slower); within ~7% of the time of hubert's former A&S
 *   copy. GELU's derivative reuses e^{-z^2} for the density.
 * Measured against double precision over 2^22 points of [-20, 20] (tests/test_act.c checks the
 * bound, also out to +-3e38): |y - ref| / max(1, |ref|) <= 1.4e-7 for GELU (the erff loop this
 * replaced: 1.2e-7), 1.2e-7 for quick GELU (expf: 1.2e-7), 2.7e-7 / 1.8e-7 for their
 * derivatives (erff/expf: 1.3e-7 / 9.8e-7). GELU's tail x < 0 is also within 1.4e-5 relative
 * (the erff form rounds it to 0 below -5.9; hubert's A&S copy was off by up to 4% there).
 * Non-finite inputs behave as torch's: NaN -> NaN, +Inf -> +Inf, -Inf -> NaN (x * 0), and the
 * derivatives at +-Inf are NaN. */

#define EXP_LO (-87.3365447f) /* ln(FLT_MIN) */
#define EXP_HI 89.0f          /* n <= 128, and n = 128 makes the scale +Inf */
#define EXP_MAGIC 12582912.0f /* 1.5 * 2^23: adding it rounds to an integer, kept in the low bits */
#define LOG2E 1.44269504088896341f
#define LN2_HI 0.693359375f
#define LN2_LO (-2.12194440e-4f)
#define EXP_P0 1.9875691500e-4f
#define EXP_P1 1.3981999507e-3f
#define EXP_P2 8.3334519073e-3f
#define EXP_P3 4.1665795894e-2f
#define EXP_P4 1.6666665459e-1f
#define EXP_P5 5.0000001201e-1f
#define SQRT1_2 0.70710678118654752f
#define INV_SQRT_2PI 0.39894228040143268f
#define QG_K 1.702f

#define ERFC_A 0.59f
static const float ERFC_P[8] = {0.332951128f, 0.330962539f, 0.293929666f,  0.0575027876f,
                                0.331584543f, -0.663373709f, 0.403417319f, -0.086974293f};

/* e^c for c already clamped to [EXP_LO, EXP_HI]. n = rint(c log2 e) comes from the magic
 * constant (its float sum keeps n in the low mantissa bits, which also give 2^n); n = 128 (from
 * c = 88.38, where expf is still finite up to 88.72) yields 2^128 = +Inf. */
static inline float exp_core1(float c) {
    const float k = fmaf(c, LOG2E, EXP_MAGIC);
    const float n = k - EXP_MAGIC;
    float r = fmaf(-n, LN2_HI, c);
    r = fmaf(-n, LN2_LO, r);
    float p = EXP_P0;
    p = fmaf(p, r, EXP_P1);
    p = fmaf(p, r, EXP_P2);
    p = fmaf(p, r, EXP_P3);
    p = fmaf(p, r, EXP_P4);
    p = fmaf(p, r, EXP_P5);
    p = fmaf(p, r * r, r + 1.0f);
    uint32_t bits;
    memcpy(&bits, &k, sizeof bits);
    bits = (bits + 127u) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

/* Clamps as _mm512_max_ps / _mm512_min_ps do (NaN -> the bound). */
static inline float exp_clamp1(float x) {
    const float c = x > EXP_LO ? x : EXP_LO;
    return c < EXP_HI ? c : EXP_HI;
}

/* e^x, 0 below EXP_LO (no subnormals), +Inf from 88.38. */
static inline float exp1(float x) {
    const float e = exp_core1(exp_clamp1(x));
    return x >= EXP_LO ? e : 0.0f;
}

/* The same for x <= EXP_HI (the GELU's arguments are <= 0): no upper clamp, same bits. */
static inline float exp_neg1(float x) {
    const float e = exp_core1(x > EXP_LO ? x : EXP_LO);
    return x >= EXP_LO ? e : 0.0f;
}

/* erfc(z) for z >= 0 given e = e^{-z^2}. */
static inline float erfc1(float z, float e) {
    const float t = 1.0f / fmaf(z, ERFC_A, 1.0f);
    float p = ERFC_P[7];
    for (int k = 6; k >= 0; k--) p = fmaf(p, t, ERFC_P[k]);
    return (t * p) * e;
}

/* 1 + erf(x / sqrt 2) = 2 Phi(x), from q = erfc(|x| / sqrt 2) */
static inline float two_phi1(float x, float q) { return x < 0.0f ? q : 2.0f - q; }

static inline float gelu1(float x) {
    const float z = fabsf(x) * SQRT1_2;
    const float q = erfc1(z, exp_neg1(-(z * z)));
    return 0.5f * x * two_phi1(x, q);
}

/* d/dx x Phi(x) = Phi(x) + x phi(x), phi(x) = e^{-z^2} / sqrt(2 pi) */
static inline float gelu_grad1(float x) {
    const float z = fabsf(x) * SQRT1_2;
    const float e = exp_neg1(-(z * z));
    return fmaf(x, INV_SQRT_2PI * e, 0.5f * two_phi1(x, erfc1(z, e)));
}

/* Below EXP_LO e^x is FLT_MIN instead of 0, which 1 + e cannot tell apart: no mask needed. */
static inline float qgelu1(float x) { return x / (1.0f + exp_core1(exp_clamp1(-QG_K * x))); }

/* d/dx x s(kx) = s + k x s (1 - s); 1 - s = e s for x > 0 keeps its digits as s -> 1. */
static inline float qgelu_grad1(float x) {
    const float e = exp1(-QG_K * x);
    const float s = 1.0f / (1.0f + e);
    const float oms = x > 0.0f ? e * s : 1.0f - s;
    return fmaf(x, QG_K * (s * oms), s); /* x (k s (1-s)): 0, not Inf * 0, when k x overflows */
}

/* The 16-lane forms, for AVX-512 CPUs only (MER_AVX512; chosen at run time by ACT_PICK below). */
MER_AVX512 static inline __m512 exp_clamp16(__m512 x) {
    return _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(EXP_LO)), _mm512_set1_ps(EXP_HI));
}

/* live: lanes to compute (the others give 0), as the multiply's zero mask */
MER_AVX512 static inline __m512 exp_core16(__m512 c, __mmask16 live) {
    const __m512 magic = _mm512_set1_ps(EXP_MAGIC);
    const __m512 k = _mm512_fmadd_ps(c, _mm512_set1_ps(LOG2E), magic);
    const __m512 n = _mm512_sub_ps(k, magic);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(LN2_HI), c);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(LN2_LO), r);
    __m512 p = _mm512_set1_ps(EXP_P0);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(EXP_P1));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(EXP_P2));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(EXP_P3));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(EXP_P4));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(EXP_P5));
    p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    const __m512i e = _mm512_slli_epi32(_mm512_add_epi32(_mm512_castps_si512(k), _mm512_set1_epi32(127)), 23);
    return _mm512_maskz_mul_ps(live, p, _mm512_castsi512_ps(e));
}

MER_AVX512 static inline __m512 exp16(__m512 x) {
    const __mmask16 live = _mm512_cmp_ps_mask(x, _mm512_set1_ps(EXP_LO), _CMP_GE_OQ);
    return exp_core16(exp_clamp16(x), live);
}

MER_AVX512 static inline __m512 exp_neg16(__m512 x) {
    const __m512 lo = _mm512_set1_ps(EXP_LO);
    return exp_core16(_mm512_max_ps(x, lo), _mm512_cmp_ps_mask(x, lo, _CMP_GE_OQ));
}

MER_AVX512 static inline __m512 erfc16(__m512 z, __m512 e) {
    const __m512 t = _mm512_div_ps(_mm512_set1_ps(1.0f),
                                   _mm512_fmadd_ps(z, _mm512_set1_ps(ERFC_A), _mm512_set1_ps(1.0f)));
    __m512 p = _mm512_set1_ps(ERFC_P[7]);
    for (int k = 6; k >= 0; k--) p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(ERFC_P[k]));
    return _mm512_mul_ps(_mm512_mul_ps(t, p), e);
}

MER_AVX512 static inline __m512 two_phi16(__m512 x, __m512 q) {
    const __mmask16 neg = _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_LT_OQ);
    return _mm512_mask_blend_ps(neg, _mm512_sub_ps(_mm512_set1_ps(2.0f), q), q);
}

MER_AVX512 static inline __m512 gelu16(__m512 x) {
    const __m512 z = _mm512_mul_ps(_mm512_abs_ps(x), _mm512_set1_ps(SQRT1_2));
    const __m512 e = exp_neg16(_mm512_sub_ps(_mm512_setzero_ps(), _mm512_mul_ps(z, z)));
    const __m512 q = erfc16(z, e);
    return _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(0.5f), x), two_phi16(x, q));
}

MER_AVX512 static inline __m512 gelu_grad16(__m512 x) {
    const __m512 z = _mm512_mul_ps(_mm512_abs_ps(x), _mm512_set1_ps(SQRT1_2));
    const __m512 e = exp_neg16(_mm512_sub_ps(_mm512_setzero_ps(), _mm512_mul_ps(z, z)));
    const __m512 pdf = _mm512_mul_ps(_mm512_set1_ps(INV_SQRT_2PI), e);
    return _mm512_fmadd_ps(x, pdf, _mm512_mul_ps(_mm512_set1_ps(0.5f), two_phi16(x, erfc16(z, e))));
}

MER_AVX512 static inline __m512 qgelu16(__m512 x) {
    const __m512 e = exp_core16(exp_clamp16(_mm512_mul_ps(_mm512_set1_ps(-QG_K), x)), 0xffff);
    return _mm512_div_ps(x, _mm512_add_ps(_mm512_set1_ps(1.0f), e));
}

MER_AVX512 static inline __m512 qgelu_grad16(__m512 x) {
    const __m512 one = _mm512_set1_ps(1.0f);
    const __m512 e = exp16(_mm512_mul_ps(_mm512_set1_ps(-QG_K), x));
    const __m512 s = _mm512_div_ps(one, _mm512_add_ps(one, e));
    const __mmask16 pos = _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_GT_OQ);
    const __m512 oms = _mm512_mask_blend_ps(pos, _mm512_sub_ps(one, s), _mm512_mul_ps(e, s));
    return _mm512_fmadd_ps(x, _mm512_mul_ps(_mm512_set1_ps(QG_K), _mm512_mul_ps(s, oms)), s);
}

MER_AVX512 static inline __mmask16 tail_mask(int64_t left) {
    return left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1u);
}

/* The 8-lane GELU forward and derivative for AVX2 machines (the build's baseline, x86-64-v3),
 * the same operations in the same order as gelu1 / gelu_grad1 (masks as all-ones lanes), so the
 * same bits. The shared core: e = e^{-z^2} (0 below EXP_LO) and 2 Phi(x), z = |x| / sqrt 2. */
/* exp_core1 on 8 lanes (c already clamped), the same operations in the same order */
__attribute__((target("avx2,fma"))) static inline __m256 exp_core8(__m256 c) {
    const __m256 magic = _mm256_set1_ps(EXP_MAGIC);
    const __m256 k = _mm256_fmadd_ps(c, _mm256_set1_ps(LOG2E), magic);
    const __m256 n = _mm256_sub_ps(k, magic);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_HI), c);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_LO), r);
    __m256 p = _mm256_set1_ps(EXP_P0);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(EXP_P1));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(EXP_P2));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(EXP_P3));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(EXP_P4));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(EXP_P5));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    const __m256i eb = _mm256_slli_epi32(_mm256_add_epi32(_mm256_castps_si256(k), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(eb));
}

__attribute__((target("avx2,fma"))) static inline __m256 gelu_core8(__m256 x, __m256 *e_out) {
    const __m256 z = _mm256_mul_ps(_mm256_andnot_ps(_mm256_set1_ps(-0.0f), x), _mm256_set1_ps(SQRT1_2));
    const __m256 a = _mm256_sub_ps(_mm256_setzero_ps(), _mm256_mul_ps(z, z));
    const __m256 lo = _mm256_set1_ps(EXP_LO);
    const __m256 live = _mm256_cmp_ps(a, lo, _CMP_GE_OQ);
    const __m256 e = _mm256_and_ps(exp_core8(_mm256_max_ps(a, lo)), live);
    const __m256 t = _mm256_div_ps(_mm256_set1_ps(1.0f), _mm256_fmadd_ps(z, _mm256_set1_ps(ERFC_A), _mm256_set1_ps(1.0f)));
    __m256 q = _mm256_set1_ps(ERFC_P[7]);
    for (int i = 6; i >= 0; i--) q = _mm256_fmadd_ps(q, t, _mm256_set1_ps(ERFC_P[i]));
    q = _mm256_mul_ps(_mm256_mul_ps(t, q), e);
    const __m256 neg = _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_LT_OQ);
    *e_out = e;
    return _mm256_blendv_ps(_mm256_sub_ps(_mm256_set1_ps(2.0f), q), q, neg);
}

/* qgelu1 on 8 lanes: the clamp as exp_clamp1 (max_ps / min_ps give the bound for NaN, as the
 * scalar comparisons do), the same bits */
__attribute__((target("avx2,fma"))) static inline __m256 qgelu8(__m256 x) {
    const __m256 a = _mm256_mul_ps(_mm256_set1_ps(-QG_K), x);
    const __m256 c = _mm256_min_ps(_mm256_max_ps(a, _mm256_set1_ps(EXP_LO)), _mm256_set1_ps(EXP_HI));
    return _mm256_div_ps(x, _mm256_add_ps(_mm256_set1_ps(1.0f), exp_core8(c)));
}

__attribute__((target("avx2,fma"))) static inline __m256 gelu8(__m256 x) {
    __m256 e;
    const __m256 tp = gelu_core8(x, &e);
    return _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(0.5f), x), tp);
}

__attribute__((target("avx2,fma"))) static inline __m256 gelu_grad8(__m256 x) {
    __m256 e;
    const __m256 tp = gelu_core8(x, &e);
    return _mm256_fmadd_ps(x, _mm256_mul_ps(_mm256_set1_ps(INV_SQRT_2PI), e),
                           _mm256_mul_ps(_mm256_set1_ps(0.5f), tp));
}

/* One loop shape for the four kernels: two vectors at a time (two independent dependency
 * chains for the out-of-order core: ~4% faster), then 16 lanes at a time, the tail under a mask. */
#define ACT_FWD_LOOP16(vec)                                                                     \
    int64_t i = b;                                                                              \
    for (; i + 32 <= e; i += 32) {                                                              \
        const __m512 v0 = vec(_mm512_loadu_ps(j->x + i));                                       \
        const __m512 v1 = vec(_mm512_loadu_ps(j->x + i + 16));                                  \
        _mm512_storeu_ps(j->y + i, v0);                                                         \
        _mm512_storeu_ps(j->y + i + 16, v1);                                                    \
    }                                                                                           \
    for (; i < e; i += 16) {                                                                    \
        const __mmask16 m = tail_mask(e - i);                                                   \
        _mm512_mask_storeu_ps(j->y + i, m, vec(_mm512_maskz_loadu_ps(m, j->x + i)));            \
    }
#define ACT_BWD_LOOP16(vec)                                                                     \
    for (int64_t i = b; i < e; i += 16) {                                                       \
        const __mmask16 m = tail_mask(e - i);                                                   \
        const __m512 g = vec(_mm512_maskz_loadu_ps(m, j->x + i));                               \
        _mm512_mask_storeu_ps(j->y + i, m, _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, j->dy + i), \
                                                           g, _mm512_maskz_loadu_ps(m, j->y + i))); \
    }
#define ACT_FWD_LOOP1(one) \
    for (int64_t i = b; i < e; i++) j->y[i] = one(j->x[i]);
#define ACT_BWD_LOOP1(one) \
    for (int64_t i = b; i < e; i++) j->y[i] = fmaf(j->dy[i], one(j->x[i]), j->y[i]);

/* A range function in two forms, NAME_avx512 (16 lanes) and NAME (one element at a time, the
 * same bits), and the one chosen at run time. */
#define ACT_RANGE(name, LOOP, vec, one)                                                         \
    MER_AVX512 static void name##_avx512(void *u, int64_t b, int64_t e, int t) {                \
        const act_job *j = u;                                                                   \
        LOOP##16(vec)                                                                           \
    }                                                                                           \
    static void name(void *u, int64_t b, int64_t e, int t) {                                    \
        const act_job *j = u;                                                                   \
        LOOP##1(one)                                                                            \
    }
#define ACT_PICK(name) (mer__use_avx512() ? name##_avx512 : name)

/* ---- GELU (exact, erf) -------------------------------------------------------------------- */

ACT_RANGE(gelu_fwd_range, ACT_FWD_LOOP, gelu16, gelu1)

__attribute__((target("avx2,fma"))) static void gelu_fwd_range_avx2(void *u, int64_t b, int64_t e, int t) {
    const act_job *j = u;
    int64_t i = b;
    for (; i + 32 <= e; i += 32) { /* four independent chains for the out-of-order core */
        const __m256 v0 = gelu8(_mm256_loadu_ps(j->x + i)), v1 = gelu8(_mm256_loadu_ps(j->x + i + 8));
        const __m256 v2 = gelu8(_mm256_loadu_ps(j->x + i + 16)), v3 = gelu8(_mm256_loadu_ps(j->x + i + 24));
        _mm256_storeu_ps(j->y + i, v0);
        _mm256_storeu_ps(j->y + i + 8, v1);
        _mm256_storeu_ps(j->y + i + 16, v2);
        _mm256_storeu_ps(j->y + i + 24, v3);
    }
    for (; i + 8 <= e; i += 8) _mm256_storeu_ps(j->y + i, gelu8(_mm256_loadu_ps(j->x + i)));
    for (; i < e; i++) j->y[i] = gelu1(j->x[i]);
}

// ref: torch.nn.functional.gelu(approximate='none')
void mer__gelu_fwd(float *y, const float *x, int64_t n) {
    act_job j = {y, x, NULL};
    mer__range_fn fn = mer__use_avx512()                                ? gelu_fwd_range_avx512
                       : (mer_cpu_features() & MER_CPU_AVX2) ? gelu_fwd_range_avx2
                                                                        : gelu_fwd_range;
    mer__parallel_for(n, ACT_MIN_CHUNK, fn, &j);
}

/* The 8-wide vectors of a block of rows, four at a time (independent chains), whichever rows
 * they are in: a packed product's epilogue hands GELU one 6 x 16 tile at a time, whose 16-value
 * rows alone never reached the four-vector loop. Row tails (cols % 8) one value at a time. */
__attribute__((target("avx2,fma"))) static void gelu_block_avx2(float *y, int64_t ldy, int64_t rows,
                                                               int64_t cols) {
    const int64_t w = cols / 8 * 8, nv = rows * (cols / 8);
    int64_t v = 0, r = 0, c = 0; /* vector v starts at y[r * ldy + c] */
    float *p[4];
    for (; v + 4 <= nv; v += 4) {
        for (int q = 0; q < 4; q++) {
            p[q] = y + r * ldy + c;
            if ((c += 8) == w) c = 0, r++;
        }
        const __m256 g0 = gelu8(_mm256_loadu_ps(p[0])), g1 = gelu8(_mm256_loadu_ps(p[1]));
        const __m256 g2 = gelu8(_mm256_loadu_ps(p[2])), g3 = gelu8(_mm256_loadu_ps(p[3]));
        _mm256_storeu_ps(p[0], g0);
        _mm256_storeu_ps(p[1], g1);
        _mm256_storeu_ps(p[2], g2);
        _mm256_storeu_ps(p[3], g3);
    }
    for (; v < nv; v++) {
        float *q = y + r * ldy + c;
        _mm256_storeu_ps(q, gelu8(_mm256_loadu_ps(q)));
        if ((c += 8) == w) c = 0, r++;
    }
    for (r = 0; r < rows; r++)
        for (c = w; c < cols; c++) y[r * ldy + c] = gelu1(y[r * ldy + c]);
}

// ref: torch.nn.functional.gelu(approximate='none'), in place on a block of rows
void mer__gelu_block(float *y, int64_t ldy, int64_t rows, int64_t cols) {
    if (!mer__use_avx512() && (mer_cpu_features() & MER_CPU_AVX2) && cols < 64) {
        gelu_block_avx2(y, ldy, rows, cols);
        return;
    }
    mer__range_fn fn = mer__use_avx512()                                ? gelu_fwd_range_avx512
                       : (mer_cpu_features() & MER_CPU_AVX2) ? gelu_fwd_range_avx2
                                                                        : gelu_fwd_range;
    for (int64_t r = 0; r < rows; r++) {
        act_job j = {y + r * ldy, y + r * ldy, NULL};
        fn(&j, 0, cols, 0);
    }
}

ACT_RANGE(gelu_bwd_range, ACT_BWD_LOOP, gelu_grad16, gelu_grad1)

__attribute__((target("avx2,fma"))) static void gelu_bwd_range_avx2(void *u, int64_t b, int64_t e, int t) {
    const act_job *j = u;
    int64_t i = b;
    for (; i + 8 <= e; i += 8)
        _mm256_storeu_ps(j->y + i, _mm256_fmadd_ps(_mm256_loadu_ps(j->dy + i),
                                                   gelu_grad8(_mm256_loadu_ps(j->x + i)),
                                                   _mm256_loadu_ps(j->y + i)));
    for (; i < e; i++) j->y[i] = fmaf(j->dy[i], gelu_grad1(j->x[i]), j->y[i]);
}

// ref: autograd of torch.nn.functional.gelu(approximate='none')
void mer__gelu_bwd(float *dx, const float *dy, const float *x, int64_t n) {
    act_job j = {dx, x, dy};
    mer__range_fn fn = mer__use_avx512()                                ? gelu_bwd_range_avx512
                       : (mer_cpu_features() & MER_CPU_AVX2) ? gelu_bwd_range_avx2
                                                                        : gelu_bwd_range;
    mer__parallel_for(n, ACT_MIN_CHUNK, fn, &j);
}

/* ---- quick GELU: x * sigmoid(1.702 x) ----------------------------------------------------- */

ACT_RANGE(qgelu_fwd_range, ACT_FWD_LOOP, qgelu16, qgelu1)

/* the scalar loop spent ~5% of a CLIP-L/14 int8 forward on this machine (perf) */
__attribute__((target("avx2,fma"))) static void qgelu_fwd_range_avx2(void *u, int64_t b, int64_t e, int t) {
    const act_job *j = u;
    int64_t i = b;
    for (; i + 8 <= e; i += 8) _mm256_storeu_ps(j->y + i, qgelu8(_mm256_loadu_ps(j->x + i)));
    for (; i < e; i++) j->y[i] = qgelu1(j->x[i]);
}

// ref: transformers.activations.QuickGELUActivation
void mer__quick_gelu_fwd(float *y, const float *x, int64_t n) {
    act_job j = {y, x, NULL};
    mer__range_fn fn = mer__use_avx512()                                ? qgelu_fwd_range_avx512
                       : (mer_cpu_features() & MER_CPU_AVX2) ? qgelu_fwd_range_avx2
                                                                        : qgelu_fwd_range;
    mer__parallel_for(n, ACT_MIN_CHUNK, fn, &j);
}

ACT_RANGE(qgelu_bwd_range, ACT_BWD_LOOP, qgelu_grad16, qgelu_grad1)

// ref: autograd of transformers.activations.QuickGELUActivation
void mer__quick_gelu_bwd(float *dx, const float *dy, const float *x, int64_t n) {
    act_job j = {dx, x, dy};
    mer__parallel_for(n, ACT_MIN_CHUNK, ACT_PICK(qgelu_bwd_range), &j);
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
