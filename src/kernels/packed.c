/*
 * packed.c -- weights packed once at load for y = x @ W^T + b: the one packed-weight facility of
 * the encoders (speech, visual, text). W is (n, k) row-major as torch.nn.Linear stores it; it is
 * repacked into panels of 16 output columns (k-major inside a panel) in float32, bfloat16 or int8,
 * so the product streams each panel once per block of rows and never repacks weights per call.
 *
 * Kernels (AVX2 + FMA, AVX-512 and AVX512-VNNI chosen at run time through mer_cpu_features(); a
 * plain C loop otherwise):
 *  - fp32: a 6 x 16 register tile (12 ymm accumulators); on AVX-512, 6 x 64 over four panels (24
 *    zmm accumulators, the activation rows read in place, each output the same FMA chain, so the
 *    same bits); BLIS-style blocking: k in blocks of 512
 *    (a 32 KB weight micro-panel, from L1/L2: half as many passes over the output tile as 256,
 *    docs/gemm.md), rows in blocks of 192 (the packed activations of a block, 384 KB, stay in
 *    L2), columns in blocks of 8 panels; work items are (row block, column block).
 *  - bf16: the weights are held in bfloat16 (half the memory). On AVX512-BF16 CPUs each panel
 *    keeps a column's k in pairs and vdpbf16ps multiplies pairs of activations (rounded to
 *    bfloat16 when packed) in 6 x 64 register tiles (24 zmm accumulators), k in blocks of 2048
 *    (until session 9 this went through oneDNN's matmul, mer_sgemm_bf16: HuBERT-large 0.634 s
 *    there, 0.555 s here, Zen 5). Elsewhere the weights are widened to float32 one 256 x 16
 *    micro-panel at a time, activations rounded to bfloat16: the same products as a bf16 GEMM
 *    with float32 accumulation, at the fp32 rate.
 *  - int8 (W8A8 dynamic): weights per output channel symmetric to [-127, 127]; activations per
 *    row (token). On AVX512-VNNI every row is u8 with a zero point over [min(x, 0), max(x, 0)]
 *    (s = range / 255, as ONNX's DynamicQuantizeLinear) and vpdpbusd sums u8 x s8 products of 4
 *    into int32 exactly, in 4 x 64 register tiles. On AVX2, one of two forms chosen per row (the
 *    kernel per group of 4 rows: the one-sided one when all four are; the sign kernel takes a
 *    one-sided row's q >= 0 as it is), so a row's result never
 *    depends on the rows batched with it:
 *    - symmetric to [-127, 127] (s8). vpmaddubsw wants one unsigned operand, so the kernel
 *      multiplies |q_x| (u8, stored beside q_x) by sign(q_x) q_w (s8, vpsignb): the same
 *      products, and a pair sums to at most 2 * 127 * 127 < 32767, so int16 never saturates;
 *    - one-sided, when the row spans at most ONESIDED_SPAN x its max |x| (a
 *      GELU's output, the input of the second FFN product and of most feature convolutions):
 *      u7 with a zero point, q = round(x / s) + z in [0, 127], s = (max - min) / 127. q is the
 *      unsigned operand as it is, no vpsignb (1.34x the sign form's rate on AVX2), a pair
 *      again at most 2 * 127 * 127; its 128 levels over [min, max] step at most ONESIDED_SPAN
 *      (1.125) times as coarsely as the symmetric form's 255 over [-max|x|, max|x|] (measured:
 *      within 10% of its error, test speed_int8_onesided_form).
 *    vpmaddwd widens to int32. y = s_x[row] s_w[col] (acc - z[row] sum_k q_w[col]) + b. (Until
 *    session 5 the activations were stored as q + 128 and the weights kept 7 bits to stay clear
 *    of saturation: twice the weights' rounding error; CLIP-L/14's MERTools feature was at
 *    cosine 0.99898 against fp32, under the 0.9995 bar. docs/gemm.md.)
 * Results are the same at any thread count (each output element is one chain over k in a fixed
 * order; the split only decides which thread computes it).
 */
#include "kernels.h"

#include <immintrin.h>
#include <math.h>
#include <sched.h>
#include <string.h>

#define NR 16   /* output columns per panel */
#define MR 6    /* rows per fp32 register tile */
#define MR8 4   /* rows per int8 register tile */
#define AQ (8 * MR8) /* bytes per k-quad of a row group's int8 activations: q_x, then |q_x| */
#define KC 512  /* k block of the fp32 kernels */
#define KCB 2048 /* k block of the bf16 pair kernels (measured on Zen 5: 256 0.615 s, 1024 0.572, 2048 0.555 for HuBERT-large) */
#define MC 192  /* rows per work item (multiple of MR and MR8) */
#define NCP 8   /* panels per work item */

struct mer_packed {
    mer_pack_type type;
    int64_t n, k;   /* logical shape (n outputs, k inputs) */
    int64_t np, kq; /* panels; int8: k in groups of 4 */
    void *w;        /* fp32 (np, k, 16) | bf16 (np, k, 16) | int8 (np, kq, 16, 4) */
    float *bias;    /* (np * 16) zero-padded, or NULL */
    float *wscale;  /* int8: (np * 16) per-channel scale */
    int dp;         /* bf16 on AVX512-BF16: (np, k2, 16, 2), each column's k in pairs for vdpbf16ps */
    int w7;         /* int8 with 7-bit weights stored as u8 q_w + 64 (mer__packed_init_w7) */
    int32_t *wsum;  /* int8 (8-bit weights): (np * 16) per-channel sum_k q_w, for the one-sided form */
    size_t bytes;
};

static int use_avx2(void) { return (mer_cpu_features() & MER_CPU_AVX2) != 0; }
/* bf16 through vdpbf16ps (AVX512-BF16): the pair layout and kern_bf16_avx512 */
static int use_bf16dp(void) {
    return (mer_cpu_features() & (MER_CPU_AVX2 | MER_CPU_AVX512 | MER_CPU_AVX512_BF16)) ==
           (MER_CPU_AVX2 | MER_CPU_AVX512 | MER_CPU_AVX512_BF16);
}
/* int8 through vpdpbusd (AVX512-VNNI): the u8 activation form and kern_i8x4_avx512vnni */
static int use_vnni(void) {
    return (mer_cpu_features() & (MER_CPU_AVX2 | MER_CPU_AVX512 | MER_CPU_AVX512_VNNI)) ==
           (MER_CPU_AVX2 | MER_CPU_AVX512 | MER_CPU_AVX512_VNNI);
}
#define AQV (4 * MR8) /* bytes per k-quad of a row group's u8 activations (the VNNI form) */

/* ---- packing ----------------------------------------------------------------------------- */

static uint16_t bf16_bits(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40u);
    return (uint16_t)((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

static float bf16_round(float f) {
    uint32_t x = (uint32_t)bf16_bits(f) << 16;
    float r;
    memcpy(&r, &x, 4);
    return r;
}

/* int8: max |x| over the first k & ~7 values into *amax (max with its value), *finite cleared
 * when one of them is NaN or infinite; returns how many it looked at */
__attribute__((target("avx2"))) static int64_t wrow_amax_avx2(const float *x, int64_t k, float *amax,
                                                             int *finite) {
    const __m256 sign = _mm256_set1_ps(-0.0f), inf = _mm256_set1_ps(INFINITY);
    __m256 m = _mm256_setzero_ps(), ok = _mm256_castsi256_ps(_mm256_set1_epi32(-1));
    int64_t i = 0;
    for (; i + 8 <= k; i += 8) {
        __m256 a = _mm256_andnot_ps(sign, _mm256_loadu_ps(x + i));
        ok = _mm256_and_ps(ok, _mm256_cmp_ps(a, inf, _CMP_LT_OQ)); /* false for NaN and inf */
        m = _mm256_max_ps(m, a);
    }
    float l[8], r = *amax;
    _mm256_storeu_ps(l, m);
    for (int q = 0; q < 8; q++) r = fmaxf(r, l[q]);
    *amax = r;
    *finite &= _mm256_movemask_ps(ok) == 0xff;
    return i;
}

/* int8: d[(i / 4) * 64 + i % 4] = clamp(round(x[i] / s), -lim, lim) + off for the first k & ~7
 * values; returns how many it wrote. The quotient is IEEE's as in the scalar loop and cvtps
 * rounds it to nearest even as lrintf does, so the bytes are the scalar loop's. */
__attribute__((target("avx2"))) static int64_t wrow_quant_avx2(int8_t *d, const float *x, int64_t k,
                                                              float s, int lim, int off) {
    const __m256 vs = _mm256_set1_ps(s);
    const __m256i lo = _mm256_set1_epi32(-lim), hi = _mm256_set1_epi32(lim), vo = _mm256_set1_epi32(off);
    int64_t i = 0;
    for (; i + 8 <= k; i += 8) {
        __m256i v = _mm256_cvtps_epi32(_mm256_div_ps(_mm256_loadu_ps(x + i), vs));
        v = _mm256_add_epi32(_mm256_min_epi32(_mm256_max_epi32(v, lo), hi), vo);
        __m256i b = _mm256_packs_epi16(_mm256_packs_epi32(v, v), v); /* each half's 4 values: a dword */
        uint32_t g0 = (uint32_t)_mm_cvtsi128_si32(_mm256_castsi256_si128(b)),
                 g1 = (uint32_t)_mm256_extract_epi32(b, 4);
        memcpy(d + (i / 4) * NR * 4, &g0, 4);
        memcpy(d + (i / 4 + 1) * NR * 4, &g1, 4);
    }
    return i;
}

/* int8: one output channel's k weights into its column of a panel (d: its first k-quad, the
 * next 64 bytes on), per channel symmetric: s = max|w| / lim, q = clamp(round(w / s)), lim 127,
 * or 63 stored as q + 64 for the 7-bit form. Returns 0 (nothing written) when the row is not
 * finite. Scalar at load before session 6: ~100 ms per 4096 x 1024 matrix, seconds per model. */
static int quant_w_row(int8_t *d, float *scale, const float *row, int64_t k, int w7) {
    const int avx2 = use_avx2(), lim = w7 ? 63 : 127, off = w7 ? 64 : 0;
    float amax = 0;
    int finite = 1;
    int64_t i = avx2 ? wrow_amax_avx2(row, k, &amax, &finite) : 0;
    for (; i < k; i++) {
        finite &= isfinite(row[i]) != 0;
        amax = fmaxf(amax, fabsf(row[i]));
    }
    if (!finite) return 0;
    const float s = amax > 0 ? amax / (float)lim : 1.0f;
    for (i = avx2 ? wrow_quant_avx2(d, row, k, s, lim, off) : 0; i < k; i++) {
        int q = (int)lrintf(row[i] / s);
        q = q > lim ? lim : q < -lim ? -lim : q;
        d[(i / 4) * NR * 4 + (i % 4)] = (int8_t)(q + off);
    }
    *scale = s;
    return 1;
}

typedef struct {
    mer_packed *p;
    const uint8_t *w;
    mer_dtype wtype;
    const float *bias;
    float *rows; /* one row of k floats per part of the region */
    int64_t bad; /* the first row that is not finite (atomic min), or n */
} pack_w_job;

/* The rows of panels [p0, p1) of the weights into p (every type); a row that is not finite is
 * noted in bad and left unwritten. */
static void pack_w_panels(void *u, int64_t p0, int64_t p1, int t) {
    pack_w_job *j = u;
    mer_packed *p = j->p;
    const int64_t n = p->n, k = p->k, r1 = p1 * NR < n ? p1 * NR : n;
    const size_t srcsz = j->wtype == MER_DTYPE_F32 ? 4 : 2;
    float *row = j->rows + (size_t)t * (size_t)k;
    for (int64_t r = p0 * NR; r < r1; r++) {
        mer_convert_to_f32(row, j->w + (size_t)r * (size_t)k * srcsz, j->wtype, k);
        int64_t pj = r / NR, cj = r % NR;
        if (p->dp) {
            uint16_t *d = (uint16_t *)p->w + pj * ((k + 1) / 2) * NR * 2 + cj * 2;
            for (int64_t i = 0; i < k; i++) d[(i / 2) * NR * 2 + (i & 1)] = bf16_bits(row[i]);
        } else if (p->type == MER_PACK_F32) {
            float *d = (float *)p->w + pj * k * NR + cj;
            for (int64_t i = 0; i < k; i++) d[i * NR] = row[i];
        } else if (p->type == MER_PACK_BF16) {
            uint16_t *d = (uint16_t *)p->w + pj * k * NR + cj;
            for (int64_t i = 0; i < k; i++) d[i * NR] = bf16_bits(row[i]);
        } else {
            const int8_t *d = (const int8_t *)p->w + pj * p->kq * NR * 4 + cj * 4;
            if (!quant_w_row((int8_t *)d, &p->wscale[r], row, k, p->w7)) {
                for (int64_t b = __atomic_load_n(&j->bad, __ATOMIC_RELAXED);
                     r < b && !__atomic_compare_exchange_n(&j->bad, &b, r, 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED);)
                    ;
                continue;
            }
            if (p->wsum) {
                int32_t sum = 0;
                for (int64_t q = 0; q < p->kq; q++) sum += d[q * NR * 4] + d[q * NR * 4 + 1] + d[q * NR * 4 + 2] + d[q * NR * 4 + 3];
                p->wsum[r] = sum;
            }
        }
        if (j->bias) p->bias[r] = j->bias[r];
    }
}

static mer_status packed_init(mer_packed **out, const void *w, mer_dtype wtype, const float *bias,
                              int64_t n, int64_t k, mer_pack_type type, int w7) {
    if (!out) return mer__err(MER_ERR_INVALID_ARG, "packed weights: NULL output");
    *out = NULL;
    if (!w || n <= 0 || k <= 0)
        return mer__err(MER_ERR_INVALID_ARG, "packed weights: empty or missing (%lld x %lld)",
                        (long long)n, (long long)k);
    if (wtype != MER_DTYPE_F32 && wtype != MER_DTYPE_F16 && wtype != MER_DTYPE_BF16)
        return mer__err(MER_ERR_UNSUPPORTED, "packed weights: source dtype %d is not F32/F16/BF16",
                        (int)wtype);
    if (type != MER_PACK_F32 && type != MER_PACK_BF16 && type != MER_PACK_INT8)
        return mer__err(MER_ERR_INVALID_ARG, "packed weights: unknown type %d", (int)type);
    const int dp = type == MER_PACK_BF16 && use_bf16dp();
    int64_t np = (n + NR - 1) / NR, kq = (k + 3) / 4, elems, bytes;
    int64_t esize = type == MER_PACK_F32 ? 4 : type == MER_PACK_BF16 ? 2 : 1;
    int64_t kk = type == MER_PACK_INT8 ? kq * 4 : dp ? (k + 1) / 2 * 2 : k;
    if (!mer__mul_overflow(np * NR, kk, &elems) || !mer__mul_overflow(elems, esize, &bytes))
        return mer__err(MER_ERR_NOMEM, "packed weights: %lld x %lld overflows", (long long)n,
                        (long long)k);
    /* panels are packed in parallel (a HuBERT-large or CLIP-L/14 holds 1.2 GB of fp32 weights to
     * pack at the first use of a precision), each part of the region with its own row buffer */
    const int parts = mer__threads() > 0 ? mer__threads() : 1;
    int64_t rows_n;
    if (!mer__mul_overflow(k, parts, &rows_n))
        return mer__err(MER_ERR_NOMEM, "packed weights: %lld x %lld overflows", (long long)n, (long long)k);
    mer_packed *p = mer__calloc(1, sizeof *p);
    float *row = mer__alloc((size_t)rows_n * sizeof(float));
    if (!p || !row) {
        mer__free(p);
        mer__free(row);
        return MER_ERR_NOMEM;
    }
    p->type = type;
    p->dp = dp;
    /* 7-bit weights exist for AVX2's vpmaddubsw; vpdpbusd multiplies 8-bit weights at the same
     * rate with no saturation, so a VNNI CPU keeps all 8 bits */
    p->w7 = w7 && type == MER_PACK_INT8 && !use_vnni();
    p->n = n;
    p->k = k;
    p->np = np;
    p->kq = kq;
    p->w = mer__calloc((size_t)bytes, 1);
    p->bytes = (size_t)bytes;
    if (bias) p->bias = mer__calloc((size_t)(np * NR), sizeof(float));
    if (type == MER_PACK_INT8) {
        p->wscale = mer__calloc((size_t)(np * NR), sizeof(float));
        if (!p->w7) p->wsum = mer__calloc((size_t)(np * NR), sizeof(int32_t));
    }
    if (!p->w || (bias && !p->bias) || (type == MER_PACK_INT8 && (!p->wscale || (!p->w7 && !p->wsum)))) {
        mer__free(row);
        mer_packed_free(p);
        return MER_ERR_NOMEM;
    }
    pack_w_job job = {p, w, wtype, bias, row, n};
    /* 4 panels at least per part: 64 rows of k */
    mer__parallel_for(np, 4, pack_w_panels, &job);
    mer__free(row);
    if (job.bad < n) {
        mer_packed_free(p);
        return mer__err(MER_ERR_INVALID_ARG, "packed weights: row %lld is not finite", (long long)job.bad);
    }
    *out = p;
    return MER_OK;
}

mer_status mer_packed_init(mer_packed **out, const void *w, mer_dtype wtype, const float *bias,
                            int64_t n, int64_t k, mer_pack_type type) {
    return packed_init(out, w, wtype, bias, n, k, type, 0);
}

mer_status mer__packed_init_w7(mer_packed **out, const void *w, mer_dtype wtype, const float *bias,
                               int64_t n, int64_t k) {
    return packed_init(out, w, wtype, bias, n, k, MER_PACK_INT8, 1);
}

void mer_packed_free(mer_packed *p) {
    if (!p) return;
    mer__free(p->w);
    mer__free(p->bias);
    mer__free(p->wscale);
    mer__free(p->wsum);
    mer__free(p);
}

size_t mer_packed_bytes(const mer_packed *p) {
    if (!p) return 0;
    size_t extra = p->bias ? (size_t)p->np * NR * 4 : 0;
    if (p->wscale) extra += (size_t)p->np * NR * 8;
    if (p->wsum) extra += (size_t)p->np * NR * 4;
    return p->bytes + extra;
}

int mer__packed_i8_u8(const mer_packed *p) { return p && p->type == MER_PACK_INT8 && !p->w7 && use_vnni(); }
int mer__packed_i8_w7(const mer_packed *p) { return p && p->w7; }
int mer__packed_bf16_in_place(void) { return use_bf16dp(); }

int64_t mer_packed_n(const mer_packed *p) { return p ? p->n : 0; }
int64_t mer_packed_k(const mer_packed *p) { return p ? p->k : 0; }
mer_pack_type mer_packed_type(const mer_packed *p) { return p ? p->type : MER_PACK_F32; }

/* ---- fp32 / bf16 kernels ----------------------------------------------------------------- */

/* c (6, 16) [ldc] (+)= A (6, kc) @ b (kc, 16) (+ bias (16) when not NULL: the bits of adding it
 * to the stored sum afterwards), b packed k-major; element (i, p) of A at a + i * si + p * sp:
 * packed activations (si 1, sp 6) or rows read in place (si lda, sp 1). pf: see kern_f32pf_avx2. */
static inline __attribute__((always_inline, target("avx2,fma"))) void
kern_f32_body(int64_t kc, const float *a, int64_t si, int64_t sp, const float *b, float *c,
              int64_t ldc, int load, const float *pf, const float *bias) {
    __m256 acc[MR][2];
#pragma GCC unroll 6
    for (int i = 0; i < MR; i++) {
        acc[i][0] = load ? _mm256_loadu_ps(c + i * ldc) : _mm256_setzero_ps();
        acc[i][1] = load ? _mm256_loadu_ps(c + i * ldc + 8) : _mm256_setzero_ps();
    }
    /* unrolled by 8: the loop's own instructions cost ~15% on Zen 3 at 1 or 2 per k step */
#pragma GCC unroll 8
    for (int64_t p = 0; p < kc; p++) {
        __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
        if (pf) _mm_prefetch((const char *)(pf + p * MR), _MM_HINT_T0);
#pragma GCC unroll 6
        for (int i = 0; i < MR; i++) {
            __m256 ai = _mm256_broadcast_ss(a + i * si);
            acc[i][0] = _mm256_fmadd_ps(ai, b0, acc[i][0]);
            acc[i][1] = _mm256_fmadd_ps(ai, b1, acc[i][1]);
        }
        a += sp;
        b += NR;
    }
    if (bias) {
        const __m256 b0 = _mm256_loadu_ps(bias), b1 = _mm256_loadu_ps(bias + 8);
#pragma GCC unroll 6
        for (int i = 0; i < MR; i++) {
            acc[i][0] = _mm256_add_ps(acc[i][0], b0);
            acc[i][1] = _mm256_add_ps(acc[i][1], b1);
        }
    }
#pragma GCC unroll 6
    for (int i = 0; i < MR; i++) {
        _mm256_storeu_ps(c + i * ldc, acc[i][0]);
        _mm256_storeu_ps(c + i * ldc + 8, acc[i][1]);
    }
}

__attribute__((target("avx2,fma"))) static void kern_f32_avx2(int64_t kc, const float *a,
                                                             const float *b, float *c,
                                                             int64_t ldc, int load, const float *bias) {
    kern_f32_body(kc, a, 1, MR, b, c, ldc, load, NULL, bias);
}
/* the same, and one line of pf (the next row tile's activations) touched per k step, so the
 * first column panel of an item brings the next tile into cache while this one computes */
__attribute__((target("avx2,fma"))) static void kern_f32pf_avx2(int64_t kc, const float *a,
                                                             const float *b, float *c,
                                                             int64_t ldc, int load, const float *pf,
                                                             const float *bias) {
    kern_f32_body(kc, a, 1, MR, b, c, ldc, load, pf, bias);
}

/* A's 6 rows in place, lda apart (the rows may overlap: a strided convolution's input; or the
 * probabilities of attention's P V, attn.c) */
__attribute__((target("avx2,fma"))) void mer__tile6x16_avx2(int64_t kc, const float *a, int64_t lda,
                                                           const float *b, float *c, int64_t ldc,
                                                           int load) {
    kern_f32_body(kc, a, lda, 1, b, c, ldc, load, NULL, NULL);
}

/* AVX-512: 6 rows read in place (lda apart) x np panels (np 2 or 4: 32 or 64 columns, panels bs
 * floats apart) in 6 np zmm accumulators (one panel alone would leave the two FMA pipes 6 chains for a 4-cycle
 * latency). Every output element is the chain of kern_f32_body (one FMA per k in order, then the
 * bias): the same bits as the AVX2 kernel. */
static inline __attribute__((always_inline)) MER_AVX512 void
kern_f32w_body(int64_t kc, const float *a, int64_t lda, const float *b, int64_t bs, float *c, int64_t ldc,
               int load, const float *bias, int np) {
    __m512 acc[MR][4];
#pragma GCC unroll 6
    for (int i = 0; i < MR; i++)
#pragma GCC unroll 4
        for (int q = 0; q < np; q++) acc[i][q] = load ? _mm512_loadu_ps(c + i * ldc + q * NR) : _mm512_setzero_ps();
#pragma GCC unroll 2
    for (int64_t p = 0; p < kc; p++) {
        __m512 w[4];
#pragma GCC unroll 4
        for (int q = 0; q < np; q++) w[q] = _mm512_loadu_ps(b + q * bs);
#pragma GCC unroll 6
        for (int i = 0; i < MR; i++) {
            const __m512 ai = _mm512_set1_ps(a[i * lda]);
#pragma GCC unroll 4
            for (int q = 0; q < np; q++) acc[i][q] = _mm512_fmadd_ps(ai, w[q], acc[i][q]);
        }
        a++;
        b += NR;
    }
#pragma GCC unroll 6
    for (int i = 0; i < MR; i++)
#pragma GCC unroll 4
        for (int q = 0; q < np; q++)
            _mm512_storeu_ps(c + i * ldc + q * NR, bias ? _mm512_add_ps(acc[i][q], _mm512_loadu_ps(bias + q * NR)) : acc[i][q]);
}

/* A's 6 rows read in place, lda apart (linear_dyn: every fp32 product on AVX-512) */
MER_AVX512 __attribute__((noinline)) static void tile6x4_avx512(int64_t kc, const float *a, int64_t lda, const float *b,
                                                                int64_t bs, float *c, int64_t ldc, int load,
                                                                const float *bias) {
    kern_f32w_body(kc, a, lda, b, bs, c, ldc, load, bias, 4);
}
MER_AVX512 __attribute__((noinline)) static void tile6x2_avx512(int64_t kc, const float *a, int64_t lda, const float *b,
                                                                int64_t bs, float *c, int64_t ldc, int load,
                                                                const float *bias) {
    kern_f32w_body(kc, a, lda, b, bs, c, ldc, load, bias, 2);
}

static void kern_f32_c(int64_t kc, const float *a, const float *b, float *c, int64_t ldc,
                       int load) {
    float acc[MR][NR];
    for (int i = 0; i < MR; i++)
        for (int j = 0; j < NR; j++) acc[i][j] = load ? c[i * ldc + j] : 0.0f;
    for (int64_t p = 0; p < kc; p++)
        for (int i = 0; i < MR; i++)
            for (int j = 0; j < NR; j++) acc[i][j] = fmaf(a[p * MR + i], b[p * NR + j], acc[i][j]);
    for (int i = 0; i < MR; i++)
        for (int j = 0; j < NR; j++) c[i * ldc + j] = acc[i][j];
}

__attribute__((target("avx2"))) static void widen_bf16_avx2(float *dst, const uint16_t *src,
                                                            int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(src + i)));
        _mm256_store_ps(dst + i, _mm256_castsi256_ps(_mm256_slli_epi32(v, 16)));
    }
    for (; i < n; i++) {
        uint32_t x = (uint32_t)src[i] << 16;
        memcpy(dst + i, &x, 4);
    }
}

/* bf16 on AVX512-BF16: c (6, np x 16) [ldc] (+)= A (6, 2 kc2) @ B over kc2 pairs of k,
 * vdpbf16ps (c += a[2p] b[2p] + a[2p + 1] b[2p + 1] in float32, bfloat16 operands); a packed
 * pairs (kc2, 6), b np panels (kc2, 16, 2) bs elements apart; bias (np x 16) added before the
 * store. np 4: 24 zmm accumulators, enough chains for the instruction's latency. */
static inline __attribute__((always_inline)) MER_AVX512BF16 void
kern_bf16_body(int64_t kc2, const uint32_t *a, int64_t si, int64_t sp, const uint16_t *b, int64_t bs, float *c,
               int64_t ldc, int load, const float *bias, int np) {
    __m512 acc[MR][4];
#pragma GCC unroll 6
    for (int i = 0; i < MR; i++)
#pragma GCC unroll 4
        for (int q = 0; q < np; q++) acc[i][q] = load ? _mm512_loadu_ps(c + i * ldc + q * NR) : _mm512_setzero_ps();
#pragma GCC unroll 2
    for (int64_t p = 0; p < kc2; p++) {
        __m512bh w[4];
#pragma GCC unroll 4
        for (int q = 0; q < np; q++) w[q] = (__m512bh)_mm512_loadu_si512((const void *)(b + q * bs));
#pragma GCC unroll 6
        for (int i = 0; i < MR; i++) {
            const __m512bh ai = (__m512bh)_mm512_set1_epi32((int)a[i * si]);
#pragma GCC unroll 4
            for (int q = 0; q < np; q++) acc[i][q] = _mm512_dpbf16_ps(acc[i][q], ai, w[q]);
        }
        a += sp;
        b += 2 * NR;
    }
#pragma GCC unroll 6
    for (int i = 0; i < MR; i++)
#pragma GCC unroll 4
        for (int q = 0; q < np; q++) {
            __m512 v = bias ? _mm512_add_ps(acc[i][q], _mm512_loadu_ps(bias + q * NR)) : acc[i][q];
            _mm512_storeu_ps(c + i * ldc + q * NR, v);
        }
}

/* packed pairs (kc2, 6), and (ip) the pairs of 6 rows read in place, lda2 pairs apart (a
 * convolution's overlapping rows, converted to bfloat16 once) */
#define KERN_BF16(NP)                                                                                        \
    MER_AVX512BF16 __attribute__((noinline)) static void kern_bf16x##NP##_avx512(                                \
        int64_t kc2, const uint32_t *a, const uint16_t *b, int64_t bs, float *c, int64_t ldc, int load,      \
        const float *bias) {                                                                                 \
        kern_bf16_body(kc2, a, 1, MR, b, bs, c, ldc, load, bias, NP);                                        \
    }                                                                                                        \
    MER_AVX512BF16 __attribute__((noinline)) static void kern_bf16ipx##NP##_avx512(                              \
        int64_t kc2, const uint32_t *a, int64_t lda2, const uint16_t *b, int64_t bs, float *c, int64_t ldc,  \
        int load, const float *bias) {                                                                       \
        kern_bf16_body(kc2, a, lda2, 1, b, bs, c, ldc, load, bias, NP);                                      \
    }
KERN_BF16(1)
KERN_BF16(2)
KERN_BF16(4)

/* ---- the fp32 / bf16 driver -------------------------------------------------------------- */

typedef struct {
    const mer_packed *w;
    float *y;
    int64_t ldy, m, mc, cblocks, ncp; /* mc: rows per work item (a multiple of MR); ncp panels */
    const float *ap; /* packed activations (ceil(m / 6), k, 6), or NULL: x read in place */
    const float *x;
    int64_t ldx;
    int accumulate;
    mer_epilogue epi;
    int avx2, avx512; /* avx512: rows in place (ap NULL), four or two fp32 panels at a time */
} f32_job;

__attribute__((target("avx2"))) static void add_bias16_avx2(float *y, int64_t ldy, int64_t rows,
                                                            const float *b) {
    const __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
    for (int64_t r = 0; r < rows; r++, y += ldy) {
        _mm256_storeu_ps(y, _mm256_add_ps(_mm256_loadu_ps(y), b0));
        _mm256_storeu_ps(y + 8, _mm256_add_ps(_mm256_loadu_ps(y + 8), b1));
    }
}

/* The epilogue of one finished tile y (rows, cols) [ldy] while it is in L1: bias (b: its 16
 * values, or NULL when the kernel added them or there are none), then GELU. Once per panel over
 * the 192 rows of an item (until session 7), the rows (4 KB apart when n = 1024) came back from
 * L2: the bias pass alone was ~1.2% of a HuBERT-large fp32 forward (perf). */
static void epilogue_tile(float *y, int64_t ldy, int64_t rows, int64_t cols, const float *b,
                          mer_epilogue epi, int avx2) {
    if (b) {
        if (avx2 && cols % NR == 0)
            for (int64_t c = 0; c < cols; c += NR) add_bias16_avx2(y + c, ldy, rows, b + c);
        else
            for (int64_t r = 0; r < rows; r++)
                for (int64_t c = 0; c < cols; c++) y[r * ldy + c] += b[c];
    }
    if (epi == MER_EPI_GELU) mer__gelu_block(y, ldy, rows, cols);
}

/* Packed activations: (k blocks, row tiles, kc, 6), so one k block of a row block (the rows an
 * item multiplies by each column panel) is one contiguous run of memory, which the hardware
 * prefetchers follow from tile to tile. Offset of row tile t's block from k0 (mpt row tiles): */
static inline int64_t a_off(int64_t mpt, int64_t k, int64_t t, int64_t k0) {
    int64_t kc = k - k0 < KC ? k - k0 : KC;
    return k0 * mpt * MR + t * kc * MR;
}

/* the same for bf16 pairs (uint32 each: k and k + 1 of a row), kc2 = ceil(kc / 2) per block */
static inline int64_t a_off2(int64_t mpt, int64_t k, int64_t t, int64_t k0) {
    int64_t kc = k - k0 < KCB ? k - k0 : KCB;
    return k0 / 2 * mpt * MR + t * ((kc + 1) / 2) * MR;
}

static void f32_items(void *u, int64_t i0, int64_t i1, int t) {
    (void)t;
    const f32_job *j = u;
    const mer_packed *w = j->w;
    const int64_t K = w->k, mpt = (j->m + MR - 1) / MR;
    float bbuf[KC * NR] __attribute__((aligned(64)));
    float tile[MR * NR] __attribute__((aligned(64)));
    float atile[KC * MR] __attribute__((aligned(64)));
    for (int64_t it = i0; it < i1; it++) {
        int64_t mb = it / j->cblocks, cb = it % j->cblocks;
        int64_t r0 = mb * j->mc, r1 = r0 + j->mc < j->m ? r0 + j->mc : j->m;
        int64_t p0 = cb * j->ncp, p1 = p0 + j->ncp < w->np ? p0 + j->ncp : w->np;
        for (int64_t k0 = 0; k0 < K; k0 += KC) {
            int64_t kc = K - k0 < KC ? K - k0 : KC;
            int load = k0 > 0 || j->accumulate;
            const int64_t rag = r0 + (r1 - r0) / MR * MR; /* in place: the rows of a last partial tile */
            if (!j->ap && rag < r1) /* are packed here, so no row past m is read */
                for (int64_t p = 0; p < kc; p++)
                    for (int64_t i = 0; i < MR; i++) atile[p * MR + i] = rag + i < r1 ? j->x[(rag + i) * j->ldx + k0 + p] : 0.0f;
            for (int64_t p = p0, step; p < p1; p += step) {
                /* AVX-512 (rows in place): four or two whole fp32 panels at a time where there are */
                const int x4 = j->avx512 && p + 3 < p1 && (p + 4) * NR <= w->n;
                const int x2 = x4 || (j->avx512 && p + 1 < p1 && (p + 2) * NR <= w->n);
                step = x4 ? 4 : x2 ? 2 : 1;
                const float *b;
                if (w->type == MER_PACK_BF16) {
                    const uint16_t *src = (const uint16_t *)w->w + (p * K + k0) * NR;
                    if (j->avx2)
                        widen_bf16_avx2(bbuf, src, kc * NR);
                    else
                        for (int64_t i = 0; i < kc * NR; i++) {
                            uint32_t x = (uint32_t)src[i] << 16;
                            memcpy(bbuf + i, &x, 4);
                        }
                    b = bbuf;
                } else {
                    b = (const float *)w->w + (p * K + k0) * NR;
                }
                const int64_t bs = K * NR; /* fp32: the next panel's same k block, bs floats on */
                int64_t c0 = p * NR, nc = w->n - c0 < NR ? w->n - c0 : NR;
                const int last = k0 + kc == K;
                /* the packed AVX2 kernels and the AVX-512 ones add the bias of the last k block
                 * before their store (the bias is zero-padded to whole panels); the others leave
                 * it to the epilogue */
                const float *kb = last && w->bias && j->ap && j->avx2 ? w->bias + c0 : NULL;
                const float *eb = last && w->bias && !kb ? w->bias + c0 : NULL;
                /* the weights of the next step's panels (or of the item's first panels at the
                 * next k block), a slice per row tile: each panel comes from memory once per row
                 * block (a layer's weights do not stay in cache), and the tile that first reads
                 * it would otherwise wait on every line */
                const size_t es = w->type == MER_PACK_BF16 ? 2 : 4;
                const char *nb = NULL;
                size_t nbytes = 0, nstep = 0, npanel = 0;
                int nnp = 0;
                if (p + step < p1 || k0 + kc < K) {
                    int64_t np_ = p + step < p1 ? p + step : p0, nk0 = p + step < p1 ? k0 : k0 + KC;
                    int64_t nkc = K - nk0 < KC ? K - nk0 : KC;
                    nb = (const char *)w->w + (size_t)((np_ * K + nk0) * NR) * es;
                    npanel = (size_t)(K * NR) * es;
                    nnp = (int)(step < p1 - np_ ? step : p1 - np_);
                    nbytes = (size_t)(nkc * NR) * es;
                    int64_t tiles = (r1 - r0 + MR - 1) / MR;
                    nstep = ((nbytes + (size_t)tiles - 1) / (size_t)tiles + 63) & ~(size_t)63;
                }
                for (int64_t r = r0; r < r1; r += MR) {
                    if (nb) {
                        size_t o0 = (size_t)((r - r0) / MR) * nstep;
                        for (int q = 0; q < nnp; q++)
                            for (size_t o = o0; o < o0 + nstep && o < nbytes; o += 64)
                                _mm_prefetch(nb + q * npanel + o, _MM_HINT_T1);
                    }
                    int64_t mr = r1 - r < MR ? r1 - r : MR;
                    const float *a = !j->ap ? atile : j->ap + a_off(mpt, K, r / MR, k0);
                    float *c = j->y + r * j->ldy + c0;
                    if (x2 && mr == MR) {
                        const float *xr = j->x + r * j->ldx + k0;
                        /* the bias in the kernel (a pass over the finished tile was ~2% of a
                         * CLIP-L/14 forward) */
                        const float *xb = last && w->bias ? w->bias + c0 : NULL;
                        if (x4) tile6x4_avx512(kc, xr, j->ldx, b, bs, c, j->ldy, load, xb);
                        else tile6x2_avx512(kc, xr, j->ldx, b, bs, c, j->ldy, load, xb);
                        if (last && j->epi != MER_EPI_NONE) epilogue_tile(c, j->ldy, mr, step * NR, NULL, j->epi, j->avx2);
                        continue;
                    }
                    for (int64_t q = 0; q < step; q++) { /* one panel at a time */
                        const float *bq = b + q * bs, *kbq = kb ? kb + q * NR : NULL, *ebq = eb ? eb + q * NR : NULL;
                        float *cq = c + q * NR;
                        if (mr == MR && nc == NR) {
                            if (!j->ap)
                                mer__tile6x16_avx2(kc, j->x + r * j->ldx + k0, j->ldx, bq, cq, j->ldy, load);
                            else if (j->avx2 && p == p0 && r + 2 * MR <= r1)
                                kern_f32pf_avx2(kc, a, bq, cq, j->ldy, load, a + kc * MR, kbq);
                            else if (j->avx2)
                                kern_f32_avx2(kc, a, bq, cq, j->ldy, load, kbq);
                            else
                                kern_f32_c(kc, a, bq, cq, j->ldy, load);
                        } else {
                            memset(tile, 0, sizeof tile);
                            if (load)
                                for (int64_t i = 0; i < mr; i++) memcpy(tile + i * NR, cq + i * j->ldy, (size_t)nc * 4);
                            if (!j->ap && mr == MR)
                                mer__tile6x16_avx2(kc, j->x + r * j->ldx + k0, j->ldx, bq, tile, NR, load);
                            else if (j->avx2)
                                kern_f32_avx2(kc, a, bq, tile, NR, load, kbq);
                            else
                                kern_f32_c(kc, a, bq, tile, NR, load);
                            for (int64_t i = 0; i < mr; i++) memcpy(cq + i * j->ldy, tile + i * NR, (size_t)nc * 4);
                        }
                        if (last) epilogue_tile(cq, j->ldy, mr, nc, ebq, j->epi, j->avx2);
                    }
                }
            }
        }
    }
}

/* bf16 on AVX512-BF16 (w->dp): the items of f32_items with bfloat16 pairs (packed, or rows read
 * in place) and vdpbf16ps, four panels at a time; a partial tile (rows or columns) through a
 * buffer */
static void bf16_items(void *u, int64_t i0, int64_t i1, int t) {
    (void)t;
    const f32_job *j = u;
    const mer_packed *w = j->w;
    const int64_t K = w->k, K2 = (K + 1) / 2, mpt = (j->m + MR - 1) / MR;
    const uint32_t *ap = (const uint32_t *)j->ap;
    /* in place (ap NULL): x holds the rows as bfloat16, ldx pairs apart (linear_dyn) */
    const uint32_t *xp = (const uint32_t *)j->x;
    float tile[MR * 4 * NR] __attribute__((aligned(64)));
    uint32_t atile[KCB / 2 * MR] __attribute__((aligned(64)));
    for (int64_t it = i0; it < i1; it++) {
        int64_t mb = it / j->cblocks, cb = it % j->cblocks;
        int64_t r0 = mb * j->mc, r1 = r0 + j->mc < j->m ? r0 + j->mc : j->m;
        int64_t p0 = cb * j->ncp, p1 = p0 + j->ncp < w->np ? p0 + j->ncp : w->np;
        for (int64_t k0 = 0; k0 < K; k0 += KCB) {
            const int64_t kc = K - k0 < KCB ? K - k0 : KCB, kc2 = (kc + 1) / 2;
            const int load = k0 > 0 || j->accumulate, last = k0 + kc == K;
            const int64_t rag = r0 + (r1 - r0) / MR * MR; /* in place: a last partial row tile */
            if (!ap && rag < r1) /* is packed here, so no row past m is read */
                for (int64_t p = 0; p < kc2; p++)
                    for (int64_t i = 0; i < MR; i++) atile[p * MR + i] = rag + i < r1 ? xp[(rag + i) * j->ldx + k0 / 2 + p] : 0;
            for (int64_t p = p0, np; p < p1; p += np) {
                np = p + 3 < p1 ? 4 : p + 1 < p1 ? 2 : 1;
                const uint16_t *b = (const uint16_t *)w->w + (p * K2 + k0 / 2) * NR * 2;
                const int64_t bs = K2 * NR * 2;
                const int64_t c0 = p * NR, nc = w->n - c0 < np * NR ? w->n - c0 : np * NR;
                const float *kb = last && w->bias ? w->bias + c0 : NULL;
                for (int64_t r = r0; r < r1; r += MR) {
                    const int64_t mr = r1 - r < MR ? r1 - r : MR;
                    const uint32_t *a = ap ? ap + a_off2(mpt, K, r / MR, k0) : mr < MR ? atile : xp + r * j->ldx + k0 / 2;
                    const int ip = !ap && mr == MR;
                    float *c = j->y + r * j->ldy + c0, *o = c;
                    int64_t ldo = j->ldy;
                    if (mr < MR || nc < np * NR) { /* a partial tile */
                        o = tile;
                        ldo = 4 * NR;
                        if (load)
                            for (int64_t i = 0; i < mr; i++) memcpy(tile + i * ldo, c + i * j->ldy, (size_t)nc * 4);
                    }
                    if (ip && np == 4) kern_bf16ipx4_avx512(kc2, a, j->ldx, b, bs, o, ldo, load, kb);
                    else if (ip && np == 2) kern_bf16ipx2_avx512(kc2, a, j->ldx, b, bs, o, ldo, load, kb);
                    else if (ip) kern_bf16ipx1_avx512(kc2, a, j->ldx, b, bs, o, ldo, load, kb);
                    else if (np == 4) kern_bf16x4_avx512(kc2, a, b, bs, o, ldo, load, kb);
                    else if (np == 2) kern_bf16x2_avx512(kc2, a, b, bs, o, ldo, load, kb);
                    else kern_bf16x1_avx512(kc2, a, b, bs, o, ldo, load, kb);
                    if (o != c)
                        for (int64_t i = 0; i < mr; i++) memcpy(c + i * j->ldy, tile + i * ldo, (size_t)nc * 4);
                    if (last && j->epi != MER_EPI_NONE) epilogue_tile(c, j->ldy, mr, nc, NULL, j->epi, j->avx2);
                }
            }
        }
    }
}

typedef struct {
    float *ap;
    const float *x;
    int64_t ldx, m, k;
    int round_bf16;
    int dp; /* bf16 pairs (uint32) for vdpbf16ps: (k blocks, row tiles, kc2, 6), a_off2 */
} pack_a_job;

/* rows c = 0..7 of d [ldd] = column c of the 8 x 8 block whose row i is s[i][0..8) (NULL: zeros);
 * the first 6 or 8 of each row stored (dcols). Shared with attn.c (its key panels). */
__attribute__((target("avx2"))) void mer__transpose8_avx2(float *d, int64_t ldd, int dcols,
                                                          const float *const *s) {
    __m256 r[8], t[8];
    for (int i = 0; i < 8; i++) r[i] = s[i] ? _mm256_loadu_ps(s[i]) : _mm256_setzero_ps();
    for (int i = 0; i < 8; i += 2) {
        t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 8; i += 4) {
        r[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
        r[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xEE);
        r[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
        r[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
    }
    for (int c = 0; c < 4; c++) {
        const __m256 lo = _mm256_permute2f128_ps(r[c], r[c + 4], 0x20); /* column c */
        const __m256 hi = _mm256_permute2f128_ps(r[c], r[c + 4], 0x31); /* column c + 4 */
        float *o = d + c * ldd, *o4 = d + (c + 4) * ldd;
        if (dcols == 8) {
            _mm256_storeu_ps(o, lo);
            _mm256_storeu_ps(o4, hi);
        } else { /* 6 */
            _mm_storeu_ps(o, _mm256_castps256_ps128(lo));
            _mm_storel_pi((__m64 *)(o + 4), _mm256_extractf128_ps(lo, 1));
            _mm_storeu_ps(o4, _mm256_castps256_ps128(hi));
            _mm_storel_pi((__m64 *)(o4 + 4), _mm256_extractf128_ps(hi, 1));
        }
    }
}

/* 8 floats rounded to bfloat16 (kept as float32), bf16_round's bits: to nearest even, NaN quieted */
__attribute__((target("avx2"))) static __m256 bf16_round8(__m256 v) {
    const __m256i u = _mm256_castps_si256(v), hi = _mm256_set1_epi32((int)0xffff0000u);
    __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
    __m256i r = _mm256_and_si256(_mm256_add_epi32(_mm256_add_epi32(u, _mm256_set1_epi32(0x7fff)), lsb), hi);
    __m256i q = _mm256_or_si256(_mm256_and_si256(u, hi), _mm256_set1_epi32(0x400000));
    return _mm256_blendv_ps(_mm256_castsi256_ps(r), _mm256_castsi256_ps(q), _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
}

/* d (k, 6) = the 6 rows s[0..6) (k) transposed, 8 columns at a time, rounded to bfloat16 when
 * round (the bf16 path: a scalar loop until session 7); the same bits as the scalar loops */
__attribute__((target("avx2"))) static void pack6_avx2(float *d, const float *const *s, int64_t k, int round) {
    float tmp[MR][8] __attribute__((aligned(32)));
    int64_t q = 0;
    for (; q + 8 <= k; q += 8) {
        const float *b[8] = {s[0] + q, s[1] + q, s[2] + q, s[3] + q, s[4] + q, s[5] + q, NULL, NULL};
        if (round)
            for (int i = 0; i < MR; i++) {
                _mm256_store_ps(tmp[i], bf16_round8(_mm256_loadu_ps(b[i])));
                b[i] = tmp[i];
            }
        mer__transpose8_avx2(d + q * MR, MR, MR, b);
    }
    for (; q < k; q++)
        for (int i = 0; i < MR; i++) d[q * MR + i] = round ? bf16_round(s[i][q]) : s[i][q];
}

/* bf16 pairs of 6 rows: d (kc2, 6) uint32 = (bf16(s[i][2p + 1]) << 16) | bf16(s[i][2p]), 16 k
 * at a time (vcvtneps2bf16 rounds to nearest even, as bf16_bits), the rest one by one */
MER_AVX512BF16 static void pack6_pairs_avx512(uint32_t *d, const float *const *s, int64_t kc) {
    float tmp[MR][8] __attribute__((aligned(32)));
    int64_t q = 0;
    for (; q + 16 <= kc; q += 16) {
        const float *b[8] = {tmp[0], tmp[1], tmp[2], tmp[3], tmp[4], tmp[5], NULL, NULL};
        for (int i = 0; i < MR; i++)
            _mm256_store_si256((__m256i *)tmp[i], (__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(s[i] + q)));
        mer__transpose8_avx2((float *)(d + q / 2 * MR), MR, MR, b);
    }
    for (; q < kc; q += 2)
        for (int i = 0; i < MR; i++)
            d[q / 2 * MR + i] = bf16_bits(s[i][q]) | (q + 1 < kc ? (uint32_t)bf16_bits(s[i][q + 1]) << 16 : 0u);
}

static void pack_a_pairs(const pack_a_job *j, int64_t mp) {
    const int64_t mpt = (j->m + MR - 1) / MR;
    for (int64_t k0 = 0; k0 < j->k; k0 += KCB) {
        const int64_t kc = j->k - k0 < KCB ? j->k - k0 : KCB;
        uint32_t *d = (uint32_t *)j->ap + a_off2(mpt, j->k, mp, k0);
        const float *s[MR];
        float zeros[KCB];
        if ((mp + 1) * MR > j->m) memset(zeros, 0, sizeof zeros);
        for (int i = 0; i < MR; i++) s[i] = mp * MR + i < j->m ? j->x + (mp * MR + i) * j->ldx + k0 : zeros;
        pack6_pairs_avx512(d, s, kc);
    }
}

static void pack_a_rows(void *u, int64_t b, int64_t e, int t) {
    (void)t;
    const pack_a_job *j = u;
    if (j->dp) {
        for (int64_t mp = b; mp < e; mp++) pack_a_pairs(j, mp);
        return;
    }
    const int64_t mpt = (j->m + MR - 1) / MR;
    const int avx2 = use_avx2();
    for (int64_t mp = b; mp < e; mp++)
        for (int64_t k0 = 0; k0 < j->k; k0 += KC) {
            int64_t kc = j->k - k0 < KC ? j->k - k0 : KC;
            float *d = j->ap + a_off(mpt, j->k, mp, k0);
            if (avx2 && (mp + 1) * MR <= j->m) {
                const float *s[MR];
                for (int i = 0; i < MR; i++) s[i] = j->x + (mp * MR + i) * j->ldx + k0;
                pack6_avx2(d, s, kc, j->round_bf16);
                continue;
            }
            for (int i = 0; i < MR; i++) {
                int64_t r = mp * MR + i;
                if (r >= j->m) {
                    for (int64_t q = 0; q < kc; q++) d[q * MR + i] = 0.0f;
                    continue;
                }
                const float *s = j->x + r * j->ldx + k0;
                if (j->round_bf16)
                    for (int64_t q = 0; q < kc; q++) d[q * MR + i] = bf16_round(s[q]);
                else
                    for (int64_t q = 0; q < kc; q++) d[q * MR + i] = s[q];
            }
        }
}

/* ---- int8 kernels ------------------------------------------------------------------------ */

/* The int8 register tile: 4 rows x 16 columns in 8 ymm accumulators (6 x 16 spills two of them
 * and measured slower, as did 5 x 16: docs/gemm.md). The activations of a row group come as
 * (kq, AQ): per k-quad the 4 bytes of each row (q_x, or the one-sided form's q_x + z_x), then
 * in the sign form their absolute values, computed once when quantising instead of once per
 * column panel (a vpabsb per row and k-quad: 1.07x the kernel's rate, 1.04x CLIP-L/14's). */

/* acc (4, 16) int32 = a . b (kq, 16 cols, 4 s8), as |q_x| (u8) . sign(q_x) q_w (s8, vpsignb) */
__attribute__((target("avx2"), noinline)) static void kern_i8_avx2(int64_t kq, const int8_t *a,
                                                        const int8_t *b, int32_t *acc_out) {
    __m256i acc[MR8][2], one = _mm256_set1_epi16(1);
#pragma GCC unroll 4
    for (int i = 0; i < MR8; i++) acc[i][0] = acc[i][1] = _mm256_setzero_si256();
    for (int64_t q = 0; q < kq; q++) {
        __m256i b0 = _mm256_load_si256((const __m256i *)b), b1 = _mm256_load_si256((const __m256i *)(b + 32));
#pragma GCC unroll 4
        for (int i = 0; i < MR8; i++) {
            int32_t v, u;
            memcpy(&v, a + 4 * i, 4);
            memcpy(&u, a + 4 * MR8 + 4 * i, 4);
            __m256i ai = _mm256_set1_epi32(v), aa = _mm256_set1_epi32(u);
            acc[i][0] = _mm256_add_epi32(acc[i][0],
                                         _mm256_madd_epi16(_mm256_maddubs_epi16(aa, _mm256_sign_epi8(b0, ai)), one));
            acc[i][1] = _mm256_add_epi32(acc[i][1],
                                         _mm256_madd_epi16(_mm256_maddubs_epi16(aa, _mm256_sign_epi8(b1, ai)), one));
        }
        a += AQ;
        b += 4 * NR;
    }
#pragma GCC unroll 4
    for (int i = 0; i < MR8; i++) {
        _mm256_storeu_si256((__m256i *)(acc_out + i * NR), acc[i][0]);
        _mm256_storeu_si256((__m256i *)(acc_out + i * NR + 8), acc[i][1]);
    }
}

/* The 7-bit weights' form: b holds q_w + 64 (u8, <= 127), so vpmaddubsw takes b as its unsigned
 * operand and a as the signed one, no sign instructions: a pair sums to at most 2 * 127 * 127.
 * acc = a . (q_w + 64); the caller removes 64 * sum_k a per row.
 * The one-sided form (uw 1): a holds q_x + z_x in [0, 127] (u8, the activations of a row group
 * that keeps to one side of zero, as a GELU's output), b the 8-bit weights (s8): a is the
 * unsigned operand, a pair again sums to at most 2 * 127 * 127; the caller removes
 * z_x * sum_k q_w per row and column. */
static inline __attribute__((always_inline, target("avx2"))) void
kern_i8u_body(int64_t kq, const int8_t *a, const int8_t *b, int32_t *acc_out, int ua) {
    __m256i acc[MR8][2], one = _mm256_set1_epi16(1);
#pragma GCC unroll 4
    for (int i = 0; i < MR8; i++) acc[i][0] = acc[i][1] = _mm256_setzero_si256();
    for (int64_t q = 0; q < kq; q++) {
        __m256i b0 = _mm256_load_si256((const __m256i *)b), b1 = _mm256_load_si256((const __m256i *)(b + 32));
#pragma GCC unroll 4
        for (int i = 0; i < MR8; i++) {
            int32_t v;
            memcpy(&v, a + 4 * i, 4);
            __m256i ai = _mm256_set1_epi32(v);
            __m256i p0 = ua ? _mm256_maddubs_epi16(ai, b0) : _mm256_maddubs_epi16(b0, ai),
                    p1 = ua ? _mm256_maddubs_epi16(ai, b1) : _mm256_maddubs_epi16(b1, ai);
            acc[i][0] = _mm256_add_epi32(acc[i][0], _mm256_madd_epi16(p0, one));
            acc[i][1] = _mm256_add_epi32(acc[i][1], _mm256_madd_epi16(p1, one));
        }
        a += AQ;
        b += 4 * NR;
    }
#pragma GCC unroll 4
    for (int i = 0; i < MR8; i++) {
        _mm256_storeu_si256((__m256i *)(acc_out + i * NR), acc[i][0]);
        _mm256_storeu_si256((__m256i *)(acc_out + i * NR + 8), acc[i][1]);
    }
}

__attribute__((target("avx2"), noinline)) static void kern_i8w7_avx2(int64_t kq, const int8_t *a, const int8_t *b,
                                                          int32_t *acc) {
    kern_i8u_body(kq, a, b, acc, 0);
}

__attribute__((target("avx2"), noinline)) static void kern_i8u_avx2(int64_t kq, const int8_t *a, const int8_t *b,
                                                         int32_t *acc) {
    kern_i8u_body(kq, a, b, acc, 1);
}

/* w7: b holds q_w + 64 as u8 (the one-sided form's a holds 0..127: the same as int8) */
static void kern_i8_c(int64_t kq, const int8_t *a, const int8_t *b, int32_t *acc, int w7) {
    for (int i = 0; i < MR8 * NR; i++) acc[i] = 0;
    for (int64_t q = 0; q < kq; q++)
        for (int i = 0; i < MR8; i++)
            for (int j = 0; j < NR; j++)
                for (int t = 0; t < 4; t++) {
                    int8_t bv = b[q * 64 + j * 4 + t];
                    acc[i * NR + j] += (int32_t)a[q * AQ + i * 4 + t] * (w7 ? (int32_t)(uint8_t)bv : (int32_t)bv);
                }
}

/* VNNI: acc (4 rows, np x 16 columns) int32 = a . b over kq k-quads, np (1 or 4) panels bs
 * bytes apart: a holds u8 activations (AQV bytes per k-quad: 4 of each row), b the 8-bit
 * weights (s8, 64 bytes per k-quad: 4 of each column). vpdpbusd sums the four u8 x s8 products
 * of a k-quad into int32 without saturating: the exact dot product, which vpmaddubsw's int16
 * pairs could not give 8-bit weights and u8 activations. 16 zmm accumulators at np 4. */
static inline __attribute__((always_inline)) MER_AVX512VNNI void
kern_i8v_body(int64_t kq, const uint8_t *a, const int8_t *b, int64_t bs, int32_t *acc_out, int np) {
    __m512i acc[MR8][4];
#pragma GCC unroll 4
    for (int i = 0; i < MR8; i++)
#pragma GCC unroll 4
        for (int q = 0; q < np; q++) acc[i][q] = _mm512_setzero_si512();
    for (int64_t k = 0; k < kq; k++) {
        __m512i w[4];
#pragma GCC unroll 4
        for (int q = 0; q < np; q++) w[q] = _mm512_load_si512((const void *)(b + q * bs));
#pragma GCC unroll 4
        for (int i = 0; i < MR8; i++) {
            int32_t v;
            memcpy(&v, a + 4 * i, 4);
            const __m512i ai = _mm512_set1_epi32(v);
#pragma GCC unroll 4
            for (int q = 0; q < np; q++) acc[i][q] = _mm512_dpbusd_epi32(acc[i][q], ai, w[q]);
        }
        a += AQV;
        b += 4 * NR;
    }
#pragma GCC unroll 4
    for (int i = 0; i < MR8; i++)
#pragma GCC unroll 4
        for (int q = 0; q < np; q++) _mm512_store_si512((void *)(acc_out + (i * 4 + q) * NR), acc[i][q]);
}

MER_AVX512VNNI __attribute__((noinline)) static void kern_i8x4_avx512vnni(int64_t kq, const uint8_t *a, const int8_t *b,
                                                              int64_t bs, int32_t *acc) {
    kern_i8v_body(kq, a, b, bs, acc, 4);
}

MER_AVX512VNNI __attribute__((noinline)) static void kern_i8x1_avx512vnni(int64_t kq, const uint8_t *a, const int8_t *b,
                                                              int32_t *acc) {
    kern_i8v_body(kq, a, b, 0, acc, 1);
}

typedef struct {
    const mer_packed *w;
    float *y;
    int64_t ldy, m, mblocks, cblocks;
    const int8_t *ap; /* (ceil(m / MR8), kq, AQ) */
    const float *ascale;
    const int32_t *asum; /* w7: per row 64 * sum_k q_x; else per row the zero point z_x */
    const uint8_t *onesided; /* per row group: 1 when its activations are in the one-sided form */
    int accumulate;
    mer_epilogue epi;
    int avx2, vnni; /* vnni: every row group in the u8 form, products by vpdpbusd */
} i8_job;

/* Row i of a finished 4 x 16 tile: o = s_x s_w (acc - corr) (+ c) + b (corr: the 7-bit weights'
 * 64 * sum_k q_x; the one-sided form's z_x * sum_k q_w of the column (wsum not NULL); else 0).
 * The AVX2 form does the same operations in the same order as the scalar one. */
__attribute__((target("avx2"))) static void dequant16_avx2(float *o, const float *c, const int32_t *acc, int32_t corr,
                                                          const int32_t *wsum, float sa, const float *ws,
                                                          const float *bias, int accumulate) {
    const __m256 va = _mm256_set1_ps(sa);
    for (int h = 0; h < 2; h++) {
        __m256i cv = wsum ? _mm256_mullo_epi32(_mm256_set1_epi32(corr), _mm256_loadu_si256((const __m256i *)(wsum + 8 * h)))
                          : _mm256_set1_epi32(corr);
        __m256i a = _mm256_sub_epi32(_mm256_load_si256((const __m256i *)(acc + 8 * h)), cv);
        __m256 v = _mm256_mul_ps(_mm256_mul_ps(va, _mm256_loadu_ps(ws + 8 * h)), _mm256_cvtepi32_ps(a));
        if (accumulate) v = _mm256_add_ps(_mm256_loadu_ps(c + 8 * h), v);
        if (bias) v = _mm256_add_ps(v, _mm256_loadu_ps(bias + 8 * h));
        _mm256_store_ps(o + 8 * h, v);
    }
}

/* dequant16_avx2's operations one column at a time, n columns (a last partial panel) */
static void dequant_c(float *o, const float *c, const int32_t *acc, int32_t corr, const int32_t *wsum, float sa,
                      const float *ws, const float *bias, int64_t n, int accumulate) {
    for (int64_t q = 0; q < n; q++) {
        float v = sa * ws[q] * (float)(acc[q] - (wsum ? corr * wsum[q] : corr));
        v = accumulate ? c[q] + v : v;
        o[q] = bias ? v + bias[q] : v;
    }
}

/* GELU over a finished tile buffer: rows of n of its ld columns */
static void gelu_tile(float *out, int64_t ld, int64_t rows, int64_t n) {
    if (n == ld) mer__gelu_fwd(out, out, rows * ld);
    else
        for (int64_t i = 0; i < rows; i++) mer__gelu_fwd(out + i * ld, out + i * ld, n);
}

/* rows of 16 floats from the tile buffer into y (a 64-byte memcpy was a libc call per row) */
__attribute__((target("avx2"))) static void store_rows16_avx2(float *y, int64_t ldy, const float *t,
                                                             int64_t rows) {
    for (int64_t i = 0; i < rows; i++) {
        _mm256_storeu_ps(y + i * ldy, _mm256_load_ps(t + i * NR));
        _mm256_storeu_ps(y + i * ldy + 8, _mm256_load_ps(t + i * NR + 8));
    }
}

static void i8_items(void *u, int64_t i0, int64_t i1, int t) {
    (void)t;
    const i8_job *j = u;
    const mer_packed *w = j->w;
    int32_t acc[MR8 * NR] __attribute__((aligned(64)));
    float out[MR8 * NR] __attribute__((aligned(64)));
    for (int64_t it = i0; it < i1; it++) {
        int64_t mb = it / j->cblocks, cb = it % j->cblocks;
        int64_t r0 = mb * MC, r1 = r0 + MC < j->m ? r0 + MC : j->m;
        int64_t p0 = cb * NCP, p1 = p0 + NCP < w->np ? p0 + NCP : w->np;
        for (int64_t p = p0; p < p1; p++) {
            const int8_t *b = (const int8_t *)w->w + p * w->kq * NR * 4;
            int64_t c0 = p * NR, nc = w->n - c0 < NR ? w->n - c0 : NR;
            const float *ws = w->wscale + c0, *bias = w->bias ? w->bias + c0 : NULL;
            for (int64_t r = r0; r < r1; r += MR8) {
                int64_t mr = r1 - r < MR8 ? r1 - r : MR8;
                const int8_t *a = j->ap + (r / MR8) * w->kq * AQ;
                const int onesided = j->onesided[r / MR8];
                const int32_t *wsum = w->w7 ? NULL : w->wsum + c0; /* z_x 0 in a symmetric row */
                if (j->avx2 && onesided) kern_i8u_avx2(w->kq, a, b, acc);
                else if (j->avx2 && w->w7) kern_i8w7_avx2(w->kq, a, b, acc);
                else if (j->avx2) kern_i8_avx2(w->kq, a, b, acc);
                else kern_i8_c(w->kq, a, b, acc, w->w7);
                /* the finished tile goes through a buffer in L1: GELU runs there, and each row
                 * of y is written once (a GELU on y itself waited on its just-written lines) */
                for (int64_t i = 0; i < mr; i++) {
                    float sa = j->ascale[r + i], *c = j->y + (r + i) * j->ldy + c0, *o = out + i * NR;
                    const int32_t corr = j->asum[r + i];
                    if (j->avx2 && nc == NR) dequant16_avx2(o, c, acc + i * NR, corr, wsum, sa, ws, bias, j->accumulate);
                    else dequant_c(o, c, acc + i * NR, corr, wsum, sa, ws, bias, nc, j->accumulate);
                }
                if (j->epi == MER_EPI_GELU) gelu_tile(out, NR, mr, nc);
                if (j->avx2 && nc == NR) store_rows16_avx2(j->y + r * j->ldy + c0, j->ldy, out, mr);
                else
                    for (int64_t i = 0; i < mr; i++)
                        memcpy(j->y + (r + i) * j->ldy + c0, out + i * NR, (size_t)nc * sizeof(float));
            }
        }
    }
}

/* A finished VNNI tile, rows x 64 columns (the acc layout of kern_i8x4_avx512vnni): o = s_x s_w
 * (acc - z_x wsum) (+ c) + b, the operations of dequant16_avx2 in the same order (the same bits),
 * 16 lanes at a time */
MER_AVX512 static void dequant_tile_avx512(float *out, const float *y, int64_t ldy, const int32_t *acc,
                                           const int32_t *z, const float *sa, const int32_t *wsum, const float *ws,
                                           const float *bias, int64_t rows, int accumulate) {
    for (int64_t i = 0; i < rows; i++) {
        const __m512 va = _mm512_set1_ps(sa[i]);
        const __m512i vz = _mm512_set1_epi32(z[i]);
        for (int q = 0; q < 4; q++) {
            const __m512i cv = _mm512_mullo_epi32(vz, _mm512_loadu_si512((const void *)(wsum + q * NR)));
            const __m512i a = _mm512_sub_epi32(_mm512_load_si512((const void *)(acc + (i * 4 + q) * NR)), cv);
            __m512 v = _mm512_mul_ps(_mm512_mul_ps(va, _mm512_loadu_ps(ws + q * NR)), _mm512_cvtepi32_ps(a));
            if (accumulate) v = _mm512_add_ps(_mm512_loadu_ps(y + i * ldy + q * NR), v);
            if (bias) v = _mm512_add_ps(v, _mm512_loadu_ps(bias + q * NR));
            _mm512_store_ps(out + i * 4 * NR + q * NR, v);
        }
    }
}

/* rows x (cols16 x 16) floats from the tile buffer t [ldt] into y [ldy] */
MER_AVX512 static void store_rows_avx512(float *y, int64_t ldy, const float *t, int64_t ldt, int64_t rows,
                                         int64_t cols16) {
    for (int64_t i = 0; i < rows; i++)
        for (int64_t q = 0; q < cols16; q++) _mm512_storeu_ps(y + i * ldy + q * NR, _mm512_load_ps(t + i * ldt + q * NR));
}

/* The VNNI items: register tiles of 4 rows x 4 panels (64 columns; the last panels of a
 * product one at a time), every row group in the u8 form (y = s_x s_w (acc - z_x sum_k q_w) + b) */
static void i8_items_vnni(void *u, int64_t i0, int64_t i1, int t) {
    (void)t;
    const i8_job *j = u;
    const mer_packed *w = j->w;
    enum { TW = 4 * NR }; /* tile width */
    int32_t acc[MR8 * TW] __attribute__((aligned(64)));
    float out[MR8 * TW] __attribute__((aligned(64)));
    const int64_t bs = w->kq * NR * 4; /* bytes per panel */
    for (int64_t it = i0; it < i1; it++) {
        int64_t mb = it / j->cblocks, cb = it % j->cblocks;
        int64_t r0 = mb * MC, r1 = r0 + MC < j->m ? r0 + MC : j->m;
        int64_t p0 = cb * NCP, p1 = p0 + NCP < w->np ? p0 + NCP : w->np;
        for (int64_t p = p0, np; p < p1; p += np) {
            np = p + 4 <= p1 && (p + 4) * NR <= w->n ? 4 : 1;
            const int8_t *b = (const int8_t *)w->w + p * bs;
            const int64_t c0 = p * NR, nc = np == 4 ? TW : (w->n - c0 < NR ? w->n - c0 : NR);
            for (int64_t r = r0; r < r1; r += MR8) {
                const int64_t mr = r1 - r < MR8 ? r1 - r : MR8;
                const uint8_t *a = (const uint8_t *)j->ap + (r / MR8) * w->kq * AQV;
                if (np == 4) {
                    kern_i8x4_avx512vnni(w->kq, a, b, bs, acc);
                    dequant_tile_avx512(out, j->y + r * j->ldy + c0, j->ldy, acc, j->asum + r, j->ascale + r,
                                        w->wsum + c0, w->wscale + c0, w->bias ? w->bias + c0 : NULL, mr, j->accumulate);
                } else { /* one panel, nc <= 16 columns */
                    kern_i8x1_avx512vnni(w->kq, a, b, acc);
                    for (int64_t i = 0; i < mr; i++) {
                        const int32_t *aq = acc + i * 4 * NR, *wsum = w->wsum + c0;
                        const float *ws = w->wscale + c0, *bias = w->bias ? w->bias + c0 : NULL;
                        float *o = out + i * TW, *c = j->y + (r + i) * j->ldy + c0;
                        if (nc == NR) dequant16_avx2(o, c, aq, j->asum[r + i], wsum, j->ascale[r + i], ws, bias, j->accumulate);
                        else dequant_c(o, c, aq, j->asum[r + i], wsum, j->ascale[r + i], ws, bias, nc, j->accumulate);
                    }
                }
                if (j->epi == MER_EPI_GELU) gelu_tile(out, TW, mr, nc);
                if (nc % NR == 0) store_rows_avx512(j->y + r * j->ldy + c0, j->ldy, out, TW, mr, nc / NR);
                else
                    for (int64_t i = 0; i < mr; i++)
                        memcpy(j->y + (r + i) * j->ldy + c0, out + i * TW, (size_t)nc * sizeof(float));
            }
        }
    }
}

typedef struct {
    int8_t *ap;
    float *ascale;
    int32_t *asum;     /* w7: per row 64 * sum_k q; else per row the zero point (0: symmetric) */
    uint8_t *onesided; /* per row group: the one-sided form (never with w7) */
    const float *x;
    int64_t ldx, m, k, kq;
    int w7, vnni; /* vnni: the u8 form for every row group, AQV bytes per k-quad */
} quant_a_job;

/* min and max of the lanes l, h and the n values of x, and 0 (NaN ignored) */
static void minmax_finish(const float *l, const float *h, int lanes, const float *x, int64_t n, float *mn, float *mx) {
    float a = 0, b = 0;
    for (int k = 0; k < lanes; k++) {
        a = fminf(a, l[k]);
        b = fmaxf(b, h[k]);
    }
    for (int64_t i = 0; i < n; i++) {
        a = fminf(a, x[i]);
        b = fmaxf(b, x[i]);
    }
    *mn = a;
    *mx = b;
}

/* min and max over n values (NaN ignored, as fminf / fmaxf do: min_ps / max_ps return their
 * second operand when either is NaN) */
__attribute__((target("avx2"))) static void minmax_avx2(const float *x, int64_t n, float *mn, float *mx) {
    __m256 lo = _mm256_setzero_ps(), hi = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        lo = _mm256_min_ps(v, lo);
        hi = _mm256_max_ps(v, hi);
    }
    float l[8], h[8];
    _mm256_storeu_ps(l, lo);
    _mm256_storeu_ps(h, hi);
    minmax_finish(l, h, 8, x + i, n - i, mn, mx);
}

/* d[q * AQ + 0..3] = clamp(round(x[4q..4q+3] * inv) + off, lo, hi) for q < n / 4 (n a multiple
 * of 4), and with abs their absolute values at d[q * AQ + 4 * MR8 + 0..3]; cvtps rounds to
 * nearest even, as lrintf in the default rounding mode. */
__attribute__((target("avx2"))) static void quant4_avx2(int8_t *d, const float *x, int64_t n,
                                                       float inv, int off, int lo_, int hi_, int abs) {
    const __m256 vi = _mm256_set1_ps(inv);
    const __m256i lo = _mm256_set1_epi32(lo_), hi = _mm256_set1_epi32(hi_), vo = _mm256_set1_epi32(off);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256i v = _mm256_add_epi32(_mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + i), vi)), vo);
        v = _mm256_min_epi32(_mm256_max_epi32(v, lo), hi);
        /* -127..127 in each int32 lane -> bytes; the 4 values of each 128-bit half are one group */
        __m256i b = _mm256_packs_epi16(_mm256_packs_epi32(v, v), v);
        uint32_t g0 = (uint32_t)_mm_cvtsi128_si32(_mm256_castsi256_si128(b)),
                 g1 = (uint32_t)_mm256_extract_epi32(b, 4);
        memcpy(d + (i / 4) * AQ, &g0, 4);
        memcpy(d + (i / 4 + 1) * AQ, &g1, 4);
        if (abs) {
            b = _mm256_abs_epi8(b);
            g0 = (uint32_t)_mm_cvtsi128_si32(_mm256_castsi256_si128(b));
            g1 = (uint32_t)_mm256_extract_epi32(b, 4);
            memcpy(d + (i / 4) * AQ + 4 * MR8, &g0, 4);
            memcpy(d + (i / 4 + 1) * AQ + 4 * MR8, &g1, 4);
        }
    }
    for (; i < n; i++) {
        int v = (int)lrintf(x[i] * inv) + off;
        v = v > hi_ ? hi_ : v < lo_ ? lo_ : v;
        d[(i / 4) * AQ + (i & 3)] = (int8_t)v;
        if (abs) d[(i / 4) * AQ + 4 * MR8 + (i & 3)] = (int8_t)(v < 0 ? -v : v);
    }
}

/* min and max over n values and 0 (NaN ignored, as minmax_avx2) */
MER_AVX512 static void minmax_avx512(const float *x, int64_t n, float *mn, float *mx) {
    __m512 lo = _mm512_setzero_ps(), hi = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m512 v = _mm512_loadu_ps(x + i);
        lo = _mm512_min_ps(v, lo);
        hi = _mm512_max_ps(v, hi);
    }
    float l[16], h[16];
    _mm512_storeu_ps(l, lo);
    _mm512_storeu_ps(h, hi);
    minmax_finish(l, h, 16, x + i, n - i, mn, mx);
}

/* The u8 form of 4 rows, 16 k at a time: each row's 16 bytes (4 k-quads) made in a zmm, then
 * the 4 x 4 dwords transposed so the 4 k-quads of the group are one contiguous 64-byte store
 * (q = clamp(round(x * inv) + z, 0, 255), cvtps rounding to nearest even as lrintf); returns
 * how many k it did (a multiple of 16) */
MER_AVX512 static int64_t quant_u8_group_avx512(uint8_t *d, const float *const *x, const float *inv, const int *z,
                                                int64_t k) {
    int64_t q = 0;
    for (; q + 16 <= k; q += 16) {
        __m128i b[MR8];
        for (int i = 0; i < MR8; i++) {
            if (!x[i]) {
                b[i] = _mm_setzero_si128();
                continue;
            }
            __m512i v = _mm512_add_epi32(_mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(x[i] + q), _mm512_set1_ps(inv[i]))),
                                         _mm512_set1_epi32(z[i]));
            v = _mm512_min_epi32(_mm512_max_epi32(v, _mm512_setzero_si512()), _mm512_set1_epi32(255));
            b[i] = _mm512_cvtepi32_epi8(v);
        }
        const __m128i t0 = _mm_unpacklo_epi32(b[0], b[1]), t1 = _mm_unpackhi_epi32(b[0], b[1]);
        const __m128i t2 = _mm_unpacklo_epi32(b[2], b[3]), t3 = _mm_unpackhi_epi32(b[2], b[3]);
        uint8_t *o = d + q / 4 * AQV;
        _mm_storeu_si128((__m128i *)o, _mm_unpacklo_epi64(t0, t2));
        _mm_storeu_si128((__m128i *)(o + AQV), _mm_unpackhi_epi64(t0, t2));
        _mm_storeu_si128((__m128i *)(o + 2 * AQV), _mm_unpacklo_epi64(t1, t3));
        _mm_storeu_si128((__m128i *)(o + 3 * AQV), _mm_unpackhi_epi64(t1, t3));
    }
    return q;
}

/* The u8 form of one row group (VNNI): per row over its range with 0, lo = min(x, 0),
 * hi = max(x, 0): s = (hi - lo) / 255, z = round(-lo / s), q = clamp(round(x / s) + z, 0, 255)
 * (ONNX's DynamicQuantizeLinear); 255 levels over a range at most 2 max|x| wide, never coarser
 * than the symmetric form's. */
static void quant_a_group_u8(const quant_a_job *j, int64_t mp) {
    uint8_t *d = (uint8_t *)j->ap + mp * j->kq * AQV;
    j->onesided[mp] = 1;
    const float *rows[MR8];
    float inv[MR8];
    int z[MR8];
    for (int i = 0; i < MR8; i++) {
        const int64_t r = mp * MR8 + i;
        rows[i] = r < j->m ? j->x + r * j->ldx : NULL;
        inv[i] = 1.0f;
        z[i] = 0;
        if (!rows[i]) continue;
        float mn, mx;
        minmax_avx512(rows[i], j->k, &mn, &mx);
        const float sc = mx > mn ? (mx - mn) / 255.0f : 1.0f;
        inv[i] = 1.0f / sc;
        z[i] = (int)lrintf(-mn * inv[i]);
        z[i] = z[i] > 255 ? 255 : z[i];
        j->ascale[r] = sc;
        j->asum[r] = z[i];
    }
    const int64_t q0 = quant_u8_group_avx512(d, rows, inv, z, j->k);
    for (int i = 0; i < MR8; i++)
        for (int64_t q = q0; q < j->kq * 4; q++) {
            int v = !rows[i] ? 0 : q < j->k ? (int)lrintf(rows[i][q] * inv[i]) + z[i] : z[i];
            v = v > 255 ? 255 : v < 0 ? 0 : v;
            d[(q / 4) * AQV + i * 4 + q % 4] = (uint8_t)v;
        }
}

/* The one-sided form (AVX2) is taken for a row when its range [min(x, 0), max(x, 0)] is at most
 * ONESIDED_SPAN times its max |x|: then 128 levels over the range (u7,
 * with a zero point) step at most that much more coarsely than the symmetric form's 255 levels
 * over [-max|x|, max|x|], and the product needs no vpsignb (docs/gemm.md). A GELU's output
 * (min -0.17) qualifies once its max passes 1.4. */
#define ONESIDED_SPAN 1.125f

/* Per row, symmetric: s = max|x| / 127, q = round(x / s) in [-127, 127]; one-sided (the row
 * qualifies): s = (max - min) / 127 over the range with 0, z = round(-min / s),
 * q = clamp(round(x / s) + z, 0, 127). */
static void quant_a_rows(void *u, int64_t b, int64_t e, int t) {
    (void)t;
    const quant_a_job *j = u;
    const int avx2 = use_avx2();
    for (int64_t mp = b; mp < e; mp++) {
        if (j->vnni) {
            quant_a_group_u8(j, mp);
            continue;
        }
        int8_t *d = j->ap + mp * j->kq * AQ;
        float mn[MR8], mx[MR8];
        int onesided = !j->w7, os[MR8] = {0}; /* the kernel's form: one-sided when every row is */
        for (int i = 0; i < MR8; i++) {
            int64_t r = mp * MR8 + i;
            mn[i] = mx[i] = 0;
            if (r >= j->m) continue;
            const float *s = j->x + r * j->ldx;
            if (avx2) minmax_avx2(s, j->k, &mn[i], &mx[i]);
            else
                for (int64_t q = 0; q < j->k; q++) {
                    mn[i] = fminf(mn[i], s[q]);
                    mx[i] = fmaxf(mx[i], s[q]);
                }
            float amax = fmaxf(-mn[i], mx[i]);
            os[i] = !j->w7 && amax > 0 && mx[i] - mn[i] <= ONESIDED_SPAN * amax;
            onesided &= r >= j->m || os[i];
        }
        j->onesided[mp] = (uint8_t)onesided;
        for (int i = 0; i < MR8; i++) {
            int64_t r = mp * MR8 + i;
            if (r >= j->m) {
                for (int64_t q = 0; q < j->kq * 4; q++) d[(q / 4) * AQ + i * 4 + q % 4] = d[(q / 4) * AQ + 4 * MR8 + i * 4 + q % 4] = 0;
                continue;
            }
            const float *s = j->x + r * j->ldx;
            float amax = fmaxf(-mn[i], mx[i]);
            float sc, inv;
            int z = 0, lo = -127;
            if (os[i]) {
                sc = (mx[i] - mn[i]) / 127.0f;
                inv = 1.0f / sc;
                z = (int)lrintf(-mn[i] * inv);
                z = z > 127 ? 127 : z;
                lo = 0;
            } else {
                sc = amax > 0 ? amax / 127.0f : 1.0f;
                inv = 1.0f / sc;
            }
            j->ascale[r] = sc;
            int64_t q0 = 0;
            if (avx2) {
                q0 = j->k & ~(int64_t)3;
                quant4_avx2(d + i * 4, s, q0, inv, z, lo, 127, !onesided);
            }
            for (int64_t q = q0; q < j->kq * 4; q++) {
                int v = q < j->k ? (int)lrintf(s[q] * inv) + z : 0;
                v = v > 127 ? 127 : v < lo ? lo : v;
                d[(q / 4) * AQ + i * 4 + q % 4] = (int8_t)v;
                d[(q / 4) * AQ + 4 * MR8 + i * 4 + q % 4] = (int8_t)(v < 0 ? -v : v);
            }
            if (j->w7) {
                int32_t sum = 0;
                for (int64_t q = 0; q < j->kq; q++)
                    sum += d[q * AQ + i * 4] + d[q * AQ + i * 4 + 1] + d[q * AQ + i * 4 + 2] + d[q * AQ + i * 4 + 3];
                j->asum[r] = 64 * sum;
            } else {
                j->asum[r] = z;
            }
        }
    }
}

/* ---- one parallel region per product: activations, products, finished row blocks ------------ */

/* The activations are prepared (quantised, or packed for the fp32 kernel) in units of PREP_GROUPS
 * register-tile row groups, then the work items (row block x column block) run; both are taken
 * from shared counters, so a thread that the machine holds back does not hold up the others at
 * a barrier, and nothing but the claims is shared (the result of every output is the same
 * whichever thread computes it). Units are claimed one row block ahead of the items (before
 * session 7: all of them first); an item waits for the units of its row block; the thread that
 * finishes the last item of a row block hands it to done. */
#define PREP_GROUPS 8

typedef struct {
    mer__range_fn prep, item, done;
    void *prep_job, *item_job, *user;
    int64_t m, groups, group_rows, mblocks, cblocks;
    int64_t next_unit, next_item; /* claims (atomic) */
    int32_t *prepped, *finished;  /* per row block: units prepared, items finished (atomic) */
} dyn_job;

/* Claims and runs the prep units whose rows start before row lim. */
static void dyn_prep_upto(dyn_job *d, int64_t lim, int t) {
    const int64_t unit_rows = PREP_GROUPS * d->group_rows;
    const int64_t units = (d->groups + PREP_GROUPS - 1) / PREP_GROUPS;
    for (;;) {
        int64_t q = __atomic_load_n(&d->next_unit, __ATOMIC_RELAXED);
        if (q >= units || q * unit_rows >= lim) return;
        if (!__atomic_compare_exchange_n(&d->next_unit, &q, q + 1, 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
            continue;
        int64_t g1 = (q + 1) * PREP_GROUPS < d->groups ? (q + 1) * PREP_GROUPS : d->groups;
        d->prep(d->prep_job, q * PREP_GROUPS, g1, t);
        __atomic_fetch_add(&d->prepped[q * unit_rows / MC], 1, __ATOMIC_RELEASE);
    }
}

static void dyn_worker(void *u, int64_t b, int64_t e, int t) {
    (void)b;
    (void)e;
    dyn_job *d = u;
    const int64_t unit_rows = PREP_GROUPS * d->group_rows, items = d->mblocks * d->cblocks;
    for (int64_t it; (it = __atomic_fetch_add(&d->next_item, 1, __ATOMIC_RELAXED)) < items;) {
        int64_t mb = it / d->cblocks, r0 = mb * MC, r1 = r0 + MC < d->m ? r0 + MC : d->m;
        int32_t need = d->prep ? (int32_t)((r1 - r0 + unit_rows - 1) / unit_rows) : 0;
        /* the activations are prepared one row block ahead of the items, not all first: a
         * CLIP-L/14 batch's fc2 input packs to 33 MB, more than the L3 holds, and its items
         * read every row block 8 times */
        if (d->prep) dyn_prep_upto(d, (mb + 2) * MC, t);
        for (int spin = 0; __atomic_load_n(&d->prepped[mb], __ATOMIC_ACQUIRE) < need; spin++) {
            if (spin < 4096) _mm_pause();
            else sched_yield(); /* its unit is with a thread the machine has descheduled */
        }
        d->item(d->item_job, it, it + 1, t);
        if (d->done && __atomic_add_fetch(&d->finished[mb], 1, __ATOMIC_ACQ_REL) == d->cblocks)
            d->done(d->user, r0, r1, t);
    }
}

/* Runs prep over the groups of rows (row tiles) and item over the (row block, column block)
 * items in one region; done (or NULL) on each finished row block. */
static mer_status dyn_run(mer__range_fn prep, void *prep_job, int64_t groups, int64_t group_rows,
                          mer__range_fn item, void *item_job, int64_t m, int64_t cblocks,
                          mer__range_fn done, void *user, int32_t *ws_cnt) {
    const int64_t mblocks = (m + MC - 1) / MC;
    int32_t *cnt = ws_cnt ? ws_cnt : mer__alloc((size_t)(2 * mblocks) * sizeof(int32_t));
    if (!cnt) return MER_ERR_NOMEM;
    memset(cnt, 0, (size_t)(2 * mblocks) * sizeof(int32_t));
    dyn_job d = {prep, item, done, prep_job, item_job, user, m, groups, group_rows, mblocks, cblocks,
                 0, 0, cnt, cnt + mblocks};
    mer__parallel_for(mblocks * cblocks, 1, dyn_worker, &d);
    if (!ws_cnt) mer__free(cnt);
    return MER_OK;
}

/* bf16 in place: n floats -> bfloat16 (round to nearest even, vcvtneps2bf16) in chunks */
typedef struct {
    uint16_t *d;
    const float *x;
    int64_t n;
} cvt_job;

MER_AVX512BF16 static void cvt_bf16_range_avx512(void *u, int64_t b, int64_t e, int t) {
    (void)t;
    const cvt_job *j = u;
    const int64_t i0 = b * 4096, i1 = e * 4096 < j->n ? e * 4096 : j->n;
    int64_t i = i0;
    for (; i + 16 <= i1; i += 16) _mm256_storeu_si256((__m256i *)(j->d + i), (__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(j->x + i)));
    for (; i < i1; i++) j->d[i] = bf16_bits(j->x[i]);
}

/* The scratch of linear_dyn in one block (mer__packed_ws_bytes): the packed or quantised
 * activations, then (int8) the row scales and sums, then the region's counters. */
typedef struct {
    void *ap;
    float *as;
    int32_t *sums, *cnt;
    uint8_t *onesided;
} dyn_ws;

static size_t dyn_ws_layout(const mer_packed *w, int64_t m, uint8_t *base, dyn_ws *o) {
    const int64_t mblocks = (m + MC - 1) / MC;
    size_t a = w->type == MER_PACK_INT8 ? (size_t)(((m + MR8 - 1) / MR8) * w->kq * AQ)
                                        : (size_t)(((m + MR - 1) / MR) * w->k * MR) * sizeof(float);
    a = (a + 63) & ~(size_t)63;
    size_t sc = w->type == MER_PACK_INT8 ? ((size_t)m * sizeof(float) + 63) & ~(size_t)63 : 0;
    size_t su = w->type == MER_PACK_INT8 ? ((size_t)m * sizeof(int32_t) + 63) & ~(size_t)63 : 0;
    size_t fl = w->type == MER_PACK_INT8 ? ((size_t)((m + MR8 - 1) / MR8) + 63) & ~(size_t)63 : 0;
    if (base) {
        o->ap = base;
        o->as = sc ? (float *)(base + a) : NULL;
        o->sums = su ? (int32_t *)(base + a + sc) : NULL;
        o->onesided = fl ? base + a + sc + su : NULL;
        o->cnt = (int32_t *)(base + a + sc + su + fl);
    }
    return a + sc + su + fl + (size_t)(2 * mblocks) * sizeof(int32_t);
}

/* ws: the caller's scratch of mer__packed_ws_bytes(w, m) bytes, or NULL to allocate it here */
static mer_status linear_dyn(float *y, int64_t ldy, const float *x, int64_t ldx, int64_t m,
                             const mer_packed *w, int accumulate, mer_epilogue epi,
                             mer__range_fn done, void *user, void *ws) {
    const int avx2 = use_avx2();
    int64_t mblocks = (m + MC - 1) / MC, cblocks = (w->np + NCP - 1) / NCP;
    uint8_t *own = NULL;
    if (!ws && !(ws = own = mer__alloc(dyn_ws_layout(w, m, NULL, NULL)))) return MER_ERR_NOMEM;
    dyn_ws b;
    dyn_ws_layout(w, m, ws, &b);
    mer_status s;
    /* fp32: half-width items when there would be few (a 499 x 1024 product: 48 instead of 24),
     * so the last items leave less of the threads idle at the end of the region */
    int64_t ncp = NCP;
    if (w->type != MER_PACK_INT8 && mblocks * cblocks < 32) {
        ncp = NCP / 2;
        cblocks = (w->np + ncp - 1) / ncp;
    }
    if (w->type == MER_PACK_INT8) {
        int64_t mp = (m + MR8 - 1) / MR8;
        const int vnni = !w->w7 && use_vnni();
        quant_a_job qj = {b.ap, b.as, b.sums, b.onesided, x, ldx, m, w->k, w->kq, w->w7, vnni};
        i8_job j = {w, y, ldy, m, mblocks, cblocks, b.ap, b.as, b.sums, b.onesided, accumulate, epi, avx2, vnni};
        s = dyn_run(quant_a_rows, &qj, mp, MR8, vnni ? i8_items_vnni : i8_items, &j, m, cblocks, done, user, b.cnt);
    } else if (w->dp && ldx < w->k && ldx % 2 == 0) {
        /* bf16 with overlapping rows (a strided convolution, the positional convolution): the
         * input region converted to bfloat16 once (at most the packed activations' size), then
         * read in place, ldx / 2 pairs a row; packing would copy it k / ldx times over */
        const int64_t n = (m - 1) * ldx + w->k;
        uint16_t *xb = b.ap;
        cvt_job cj = {xb, x, n};
        mer__parallel_for((n + 4095) / 4096, 16, cvt_bf16_range_avx512, &cj);
        if (n % 2) xb[n] = 0; /* the last row's last pair */
        f32_job j = {w, y, ldy, m, MC, cblocks, ncp, NULL, (const float *)xb, ldx / 2, accumulate, epi, avx2, 1};
        s = dyn_run(NULL, NULL, 0, MR, bf16_items, &j, m, cblocks, done, user, b.cnt);
    } else if (avx2 && w->type == MER_PACK_F32 && (ldx < w->k || mer__use_avx512())) {
        /* fp32 with overlapping rows (a strided convolution: ldx < k): the kernel reads x in
         * place; packing would copy the input k / ldx times over. With AVX-512 every fp32
         * product reads its rows in place: the 6 x 64 tile broadcasts from 6 rows, each 64-byte
         * line serving 16 k steps from L1, and packing (a pass over x, ~1/n of the product)
         * cost up to 13% on CLIP's n = 1024 shapes (mer bench gemm, Zen 5: 78-83% -> 86-91% of
         * the fp32 peak there; the same bits) */
        f32_job j = {w, y, ldy, m, MC, cblocks, ncp, NULL, x, ldx, accumulate, epi, avx2, avx2 && mer__use_avx512()};
        s = dyn_run(NULL, NULL, 0, MR, f32_items, &j, m, cblocks, done, user, b.cnt);
    } else {
        int64_t mp = (m + MR - 1) / MR;
        pack_a_job pj = {b.ap, x, ldx, m, w->k, w->type == MER_PACK_BF16 && !w->dp, w->dp};
        f32_job j = {w, y, ldy, m, MC, cblocks, ncp, b.ap, x, ldx, accumulate, epi, avx2, 0};
        s = dyn_run(pack_a_rows, &pj, mp, MR, w->dp ? bf16_items : f32_items, &j, m, cblocks, done, user, b.cnt);
    }
    mer__free(own);
    return s;
}

/* ---- entry ------------------------------------------------------------------------------- */

mer_status mer_packed_linear(float *y, int64_t ldy, const float *x, int64_t ldx, int64_t m,
                              const mer_packed *w, int accumulate, mer_epilogue epi) {
    if (!w || !y || !x) return mer__err(MER_ERR_INVALID_ARG, "packed linear: NULL argument");
    /* ldx < k is allowed: overlapping rows of x, as a strided convolution's unfolded input
     * (row t = x + t * stride * cin, k = taps * cin) */
    if (m < 0 || ldx < 1 || ldy < w->n)
        return mer__err(MER_ERR_INVALID_ARG, "packed linear: bad shape (m %lld, ldx %lld, ldy %lld for %lld x %lld)",
                        (long long)m, (long long)ldx, (long long)ldy, (long long)w->n, (long long)w->k);
    if (m == 0) return MER_OK;
    return linear_dyn(y, ldy, x, ldx, m, w, accumulate, epi, NULL, NULL, NULL);
}

/* linear_dyn after the argument checks of the entries below (w not NULL) */
static mer_status linear_checked(float *y, int64_t ldy, const float *x, int64_t ldx, int64_t m,
                                 const mer_packed *w, int accumulate, mer_epilogue epi,
                                 mer__range_fn done, void *user, void *ws) {
    if (!y || !x) return mer__err(MER_ERR_INVALID_ARG, "packed linear: NULL argument");
    if (m < 0 || ldx < 1 || ldy < w->n)
        return mer__err(MER_ERR_INVALID_ARG, "packed linear: bad shape (m %lld, ldx %lld, ldy %lld for %lld x %lld)",
                        (long long)m, (long long)ldx, (long long)ldy, (long long)w->n, (long long)w->k);
    if (m == 0) return MER_OK;
    return linear_dyn(y, ldy, x, ldx, m, w, accumulate, epi, done, user, ws);
}

mer_status mer__packed_linear_rows(float *y, int64_t ldy, const float *x, int64_t ldx, int64_t m,
                                   const mer_packed *w, int accumulate, mer_epilogue epi,
                                   mer__range_fn done, void *user) {
    if (!done || !w) {
        mer_status s = mer_packed_linear(y, ldy, x, ldx, m, w, accumulate, epi);
        if (s == MER_OK && done && m > 0) mer__parallel_for(m, 16, done, user);
        return s;
    }
    return linear_checked(y, ldy, x, ldx, m, w, accumulate, epi, done, user, NULL);
}

mer_status mer__packed_linear_kept(float *y, int64_t ldy, const float *x, int64_t ldx, int64_t m,
                                   const mer_packed *w, int accumulate, mer_epilogue epi, void **ws,
                                   size_t *cap) {
    const size_t need = mer__packed_ws_bytes(w, m);
    if (need > *cap) {
        mer__free(*ws);
        *cap = 0;
        if (!(*ws = mer__alloc(need))) return MER_ERR_NOMEM;
        *cap = need;
    }
    return mer__packed_linear_ws(y, ldy, x, ldx, m, w, accumulate, epi, need ? *ws : NULL);
}

size_t mer__packed_ws_bytes(const mer_packed *w, int64_t m) {
    return w && m > 0 ? dyn_ws_layout(w, m, NULL, NULL) : 0;
}

mer_status mer__packed_linear_ws(float *y, int64_t ldy, const float *x, int64_t ldx, int64_t m,
                                 const mer_packed *w, int accumulate, mer_epilogue epi, void *ws) {
    if (!ws || !w) return mer_packed_linear(y, ldy, x, ldx, m, w, accumulate, epi);
    return linear_checked(y, ldy, x, ldx, m, w, accumulate, epi, NULL, NULL, ws);
}

mer_status mer__packed_concat(mer_packed **out, mer_packed *const *parts, int n) {
    if (!out || !parts || n < 1) return mer__err(MER_ERR_INVALID_ARG, "packed concat: no parts");
    *out = NULL;
    const mer_packed *p0 = parts[0];
    int64_t rows = 0, bytes = 0;
    int bias = 0;
    for (int i = 0; i < n; i++) {
        const mer_packed *p = parts[i];
        if (!p || p->type != p0->type || p->k != p0->k || p->dp != p0->dp || p->w7 != p0->w7 ||
            (i + 1 < n && p->n % NR))
            return mer__err(MER_ERR_UNSUPPORTED, "packed concat: part %d does not match", i);
        rows += p->n;
        bytes += (int64_t)p->bytes;
        bias |= p->bias != NULL;
    }
    mer_packed *c = mer__calloc(1, sizeof *c);
    if (!c) return MER_ERR_NOMEM;
    *c = *p0;
    c->n = rows;
    c->np = (rows + NR - 1) / NR;
    c->bytes = (size_t)bytes;
    c->w = mer__alloc((size_t)bytes);
    c->bias = bias ? mer__calloc((size_t)(c->np * NR), sizeof(float)) : NULL;
    c->wscale = p0->wscale ? mer__calloc((size_t)(c->np * NR), sizeof(float)) : NULL;
    c->wsum = p0->wsum ? mer__calloc((size_t)(c->np * NR), sizeof(int32_t)) : NULL;
    if (!c->w || (bias && !c->bias) || (p0->wscale && !c->wscale) || (p0->wsum && !c->wsum)) {
        mer_packed_free(c);
        return MER_ERR_NOMEM;
    }
    /* panels are whole per part, so the parts follow one another */
    size_t off = 0;
    int64_t col = 0;
    for (int i = 0; i < n; i++) {
        const mer_packed *p = parts[i];
        memcpy((uint8_t *)c->w + off, p->w, p->bytes);
        off += p->bytes;
        if (p->bias) memcpy(c->bias + col, p->bias, (size_t)p->n * sizeof(float));
        if (p->wscale) memcpy(c->wscale + col, p->wscale, (size_t)p->n * sizeof(float));
        if (p->wsum) memcpy(c->wsum + col, p->wsum, (size_t)p->n * sizeof(int32_t));
        col += p->n;
    }
    *out = c;
    return MER_OK;
}
