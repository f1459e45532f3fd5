/*
 * attn.c -- scaled dot-product attention over heads packed in the feature dim.
 *
 * Forward, AVX-512: heads are split over the thread pool (one synchronisation per call instead
 * of three per head), and each head runs a fused loop over blocks of 48 query rows: scores
 * against all keys (K_h transposed once per head into a (dh, tk) panel, so the key index is
 * the vector lane; 64 keys at a time across the block's 6-row tiles, the slice in L1), the row
 * softmax, then the weighted sum of V_h read in place (128 keys at a time). Session 9 (Zen 5,
 * HuBERT-large 10 s): 0.091 -> 0.070 s per forward, mostly from transposing K in registers.
 * Forward, AVX2 + FMA (chosen at run time, mer_cpu_features; session 6): K and V of every head
 * are packed once per call into 16-wide panels (below, fa_pack), then the work items (head,
 * block of 48 query rows) are claimed from a shared counter, so 16 heads of HuBERT-large at
 * T = 499 make 176 items for the threads instead of 16. Per item: scores (48, tk) one 16-key
 * panel at a time across the block's 8 register tiles (the 4 KB panel stays in L1), the row
 * softmax, then P V in blocks of 128 keys (an 8 KB slice of a value panel in L1), both with
 * 6 x 16 register tiles of 12 accumulators. Scores live in the thread's (48, tk) block, never
 * (tq, tk), unless the caller asks for the probabilities. Otherwise each head is two mer_sgemm
 * calls around a threaded row softmax.
 * Each output row is computed by one thread in a fixed order, so results do not depend on the
 * thread count.
 */
#include "kernels.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <immintrin.h>

static void masked_softmax_row(float *row, const uint8_t *mask, int64_t tk) {
    if (mask)
        for (int64_t c = 0; c < tk; c++)
            if (!mask[c]) row[c] = -INFINITY;
    mer__softmax_row(row, row, tk);
}

typedef struct {
    float *out, *probs;
    const float *q, *k, *v;
    const uint8_t *mask;
    int64_t ldo, ldq, ldk, ldv, tq, tk, dh;
    float scale;
    float *ws;
} attn_job;

#define ATT_R 6 /* query rows per block: 6 x 4 accumulators + 4 operands fit 32 registers (AVX-512),
                  * 6 x 2 of the 16 ymm registers (AVX2) */

#define ATT_QB 48  /* AVX-512: query rows per block (8 tiles) */
#define ATT_KB 128 /* AVX-512: keys per block of P V */

/* Per-head panel floats: K_h^T (dh, tkp), a block of scores (ATT_QB, tkp); on AVX512-BF16 CPUs
 * room for the bfloat16 path's panels too (attn_heads_bf16_avx512: K_h^T pairs (dh / 2, tkp), V_h
 * pairs (tkp / 2, dh), a block of query pairs (ATT_QB, dh / 2) and of probability pairs
 * (ATT_QB, tkp / 2), 32 bits each). */
static int64_t head_ws(int64_t tk, int64_t dh) {
    const int64_t tkp = (tk + 15) & ~(int64_t)15, f32 = dh * tkp + ATT_QB * tkp;
    const int64_t dhe = (dh + 1) / 2 * 2;
    const int64_t b16 = dhe / 2 * tkp + tkp / 2 * dhe + ATT_QB * dhe / 2 + ATT_QB * tkp / 2 + ATT_QB * tkp;
    return (mer_cpu_features() & MER_CPU_AVX512_BF16) && b16 > f32 ? b16 : f32;
}

/* ---- AVX-512 (chosen at run time: mer__use_avx512) ---- */

/* s (R, W) = scale * Q rows (R, dh) @ kt (dh, tkp) columns [j, j + W), W 64 or 16 (4 or 1
 * vectors of keys). Each score is one FMA chain over d in order. */
MER_AVX512 static inline __attribute__((always_inline)) void scores_tile(float *s, int64_t lds, const float *q,
                                                              int64_t ldq, const float *kt, int64_t dh,
                                                              int64_t tkp, int64_t j, float scale, const int R,
                                                              const int NV) {
    const __m512 vs = _mm512_set1_ps(scale);
    __m512 acc[ATT_R][4];
    #pragma GCC unroll 8
    for (int r = 0; r < R; r++)
        #pragma GCC unroll 8
        for (int c = 0; c < NV; c++) acc[r][c] = _mm512_setzero_ps();
    for (int64_t d = 0; d < dh; d++) {
        const float *kr = kt + d * tkp + j;
        __m512 kv[4];
        #pragma GCC unroll 8
        for (int c = 0; c < NV; c++) kv[c] = _mm512_loadu_ps(kr + 16 * c);
        #pragma GCC unroll 8
        for (int r = 0; r < R; r++) {
            const __m512 qb = _mm512_set1_ps(q[r * ldq + d]);
            #pragma GCC unroll 8
            for (int c = 0; c < NV; c++) acc[r][c] = _mm512_fmadd_ps(qb, kv[c], acc[r][c]);
        }
    }
    #pragma GCC unroll 8
    for (int r = 0; r < R; r++)
        #pragma GCC unroll 8
        for (int c = 0; c < NV; c++) _mm512_storeu_ps(s + r * lds + j + 16 * c, _mm512_mul_ps(acc[r][c], vs));
}

/* out rows (R, dh) (+)= p (R, keys [j0, j1)) @ V rows [j0, j1) (row stride ldv): each output one
 * FMA chain over the keys in order, carried through out between key blocks (load). */
MER_AVX512 static inline __attribute__((always_inline)) void pv_tile(float *out, int64_t ldo, const float *p,
                                                          int64_t ldp, const float *v, int64_t ldv, int64_t j0,
                                                          int64_t j1, int64_t dh, int load, const int R) {
    for (int64_t d0 = 0; d0 < dh; d0 += 64) {
        __mmask16 mk[4];
        #pragma GCC unroll 8
        for (int c = 0; c < 4; c++) {
            const int64_t lo = d0 + 16 * c, n = dh - lo;
            mk[c] = n >= 16 ? (__mmask16)0xFFFF : n > 0 ? (__mmask16)((1u << n) - 1u) : (__mmask16)0;
        }
        __m512 acc[ATT_R][4];
        #pragma GCC unroll 8
        for (int r = 0; r < R; r++)
            #pragma GCC unroll 8
            for (int c = 0; c < 4; c++)
                acc[r][c] = load ? _mm512_maskz_loadu_ps(mk[c], out + r * ldo + d0 + 16 * c) : _mm512_setzero_ps();
        for (int64_t j = j0; j < j1; j++) {
            const float *vr = v + j * ldv + d0;
            const __m512 v0 = _mm512_maskz_loadu_ps(mk[0], vr), v1 = _mm512_maskz_loadu_ps(mk[1], vr + 16);
            const __m512 v2 = _mm512_maskz_loadu_ps(mk[2], vr + 32), v3 = _mm512_maskz_loadu_ps(mk[3], vr + 48);
            #pragma GCC unroll 8
            for (int r = 0; r < R; r++) {
                const __m512 pb = _mm512_set1_ps(p[r * ldp + j]);
                acc[r][0] = _mm512_fmadd_ps(pb, v0, acc[r][0]);
                acc[r][1] = _mm512_fmadd_ps(pb, v1, acc[r][1]);
                acc[r][2] = _mm512_fmadd_ps(pb, v2, acc[r][2]);
                acc[r][3] = _mm512_fmadd_ps(pb, v3, acc[r][3]);
            }
        }
        #pragma GCC unroll 8
        for (int r = 0; r < R; r++)
            #pragma GCC unroll 8
            for (int c = 0; c < 4; c++)
                if (mk[c]) _mm512_mask_storeu_ps(out + r * ldo + d0 + 16 * c, mk[c], acc[r][c]);
    }
}

/* R rows (6, or fewer one at a time) x 64 keys (w64) or 16 of scores_tile */
MER_AVX512 __attribute__((noinline)) static void scores_any_avx512(float *s, int64_t lds, const float *q, int64_t ldq,
                                                            const float *kt, int64_t dh, int64_t tkp, int64_t j,
                                                            float scale, int R, int w64) {
    if (R == ATT_R && w64) scores_tile(s, lds, q, ldq, kt, dh, tkp, j, scale, ATT_R, 4);
    else if (R == ATT_R) scores_tile(s, lds, q, ldq, kt, dh, tkp, j, scale, ATT_R, 1);
    else
        for (int r = 0; r < R; r++) {
            if (w64) scores_tile(s + r * lds, lds, q + r * ldq, ldq, kt, dh, tkp, j, scale, 1, 4);
            else scores_tile(s + r * lds, lds, q + r * ldq, ldq, kt, dh, tkp, j, scale, 1, 1);
        }
}
MER_AVX512 __attribute__((noinline)) static void pv_tile6_avx512(float *out, int64_t ldo, const float *p, int64_t ldp,
                                                          const float *v, int64_t ldv, int64_t j0, int64_t j1,
                                                          int64_t dh, int load) {
    pv_tile(out, ldo, p, ldp, v, ldv, j0, j1, dh, load, ATT_R);
}
MER_AVX512 __attribute__((noinline)) static void pv_tile1_avx512(float *out, int64_t ldo, const float *p, int64_t ldp,
                                                          const float *v, int64_t ldv, int64_t j0, int64_t j1,
                                                          int64_t dh, int load) {
    pv_tile(out, ldo, p, ldp, v, ldv, j0, j1, dh, load, 1);
}

/* Per head: blocks of ATT_QB query rows. Scores one block of 64 keys at a time across the
 * block's row tiles (the 16 KB slice of K_h^T stays in L1 while the tiles use it, instead of the
 * whole 128 KB panel streaming from L2 for every 6 rows, until session 9), the row softmax, then
 * P V in blocks of ATT_KB keys (a 32 KB slice of V_h in L1), each output carried through out
 * between blocks: every value is the chain of the unblocked loops, the same bits. */
MER_AVX512 static void attn_heads_avx512(void *u, int64_t h0, int64_t h1, int th) {
    (void)th;
    const attn_job *j = u;
    const int64_t tk = j->tk, dh = j->dh, tkp = (tk + 15) & ~(int64_t)15;
    /* a chunk of heads owns the panel slot of its first head */
    float *kt = j->ws + h0 * head_ws(tk, dh);
    float *s = kt + dh * tkp;
    for (int64_t hh = h0; hh < h1; hh++) {
        /* K_h^T, zero-padded to tkp keys: 8 x 8 blocks transposed in registers (a scalar
         * scatter, one 2 KB stride per element, cost as much as the scores until session 9) */
        if (dh % 8 == 0) {
            for (int64_t c = 0; c < tkp; c += 8)
                for (int64_t d = 0; d < dh; d += 8) {
                    const float *rows[8];
                    for (int i = 0; i < 8; i++) rows[i] = c + i < tk ? j->k + (c + i) * j->ldk + hh * dh + d : NULL;
                    mer__transpose8_avx2(kt + d * tkp + c, tkp, 8, rows);
                }
        } else {
            for (int64_t c = 0; c < tk; c++) {
                const float *kr = j->k + c * j->ldk + hh * dh;
                for (int64_t d = 0; d < dh; d++) kt[d * tkp + c] = kr[d];
            }
            for (int64_t d = 0; d < dh; d++)
                for (int64_t c = tk; c < tkp; c++) kt[d * tkp + c] = 0.0f;
        }
        const float *vh = j->v + hh * dh; /* V_h read in place, ldv apart */
        for (int64_t i0 = 0; i0 < j->tq; i0 += ATT_QB) {
            const int64_t nb = j->tq - i0 < ATT_QB ? j->tq - i0 : ATT_QB, full = nb / ATT_R * ATT_R;
            const float *qb = j->q + i0 * j->ldq + hh * dh;
            for (int64_t c = 0; c < tkp;) { /* scores, a block of 64 keys (or 16) at a time */
                const int w64 = c + 64 <= tkp;
                for (int64_t r = 0; r < nb; r += ATT_R)
                    scores_any_avx512(s + r * tkp, tkp, qb + r * j->ldq, j->ldq, kt, dh, tkp, c, j->scale,
                                      (int)(nb - r < ATT_R ? nb - r : ATT_R), w64);
                c += w64 ? 64 : 16;
            }
            for (int64_t r = 0; r < nb; r++) {
                masked_softmax_row(s + r * tkp, j->mask, tk);
                if (j->probs) memcpy(j->probs + (hh * j->tq + i0 + r) * tk, s + r * tkp, (size_t)tk * sizeof(float));
            }
            float *ob = j->out + i0 * j->ldo + hh * dh;
            for (int64_t c = 0; c < tk; c += ATT_KB) {
                const int64_t c1 = c + ATT_KB < tk ? c + ATT_KB : tk;
                int64_t r = 0;
                for (; r < full; r += ATT_R) pv_tile6_avx512(ob + r * j->ldo, j->ldo, s + r * tkp, tkp, vh, j->ldv, c, c1, dh, c > 0);
                for (; r < nb; r++) pv_tile1_avx512(ob + r * j->ldo, j->ldo, s + r * tkp, tkp, vh, j->ldv, c, c1, dh, c > 0);
            }
        }
    }
}

/* ---- bfloat16 (AVX512-BF16, dh a multiple of 16) ---- */

/* 16 floats -> 16 bfloat16 (round to nearest even) as a 256-bit vector */
MER_AVX512BF16 static inline __m256i bf16x16_avx512(const float *x) { return (__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(x)); }

/* d (dh / 2, tkp) pairs: d[p * tkp + c] = bf16(k_c[2p]) | bf16(k_c[2p + 1]) << 16, zero keys past
 * tk; 8 keys x 8 pairs transposed in registers */
MER_AVX512BF16 static void pack_kt2_avx512(uint32_t *d, const float *k, int64_t ldk, int64_t tk, int64_t tkp, int64_t dh) {
    uint32_t tmp[8][8] __attribute__((aligned(32)));
    for (int64_t c = 0; c < tkp; c += 8)
        for (int64_t d0 = 0; d0 < dh; d0 += 16) {
            const float *rows[8];
            for (int i = 0; i < 8; i++) {
                if (c + i < tk) {
                    _mm256_store_si256((__m256i *)tmp[i], bf16x16_avx512(k + (c + i) * ldk + d0));
                    rows[i] = (const float *)tmp[i];
                } else {
                    rows[i] = NULL;
                }
            }
            mer__transpose8_avx2((float *)(d + d0 / 2 * tkp + c), tkp, 8, rows);
        }
}

/* d (tkp / 2, dh) pairs: d[jp * dh + e] = bf16(v_{2jp}[e]) | bf16(v_{2jp + 1}[e]) << 16, zero rows
 * past tk */
MER_AVX512BF16 static void pack_v2_avx512(uint32_t *d, const float *v, int64_t ldv, int64_t tk, int64_t tkp, int64_t dh) {
    const __m512i idx = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22, 6,
                                         21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    for (int64_t jp = 0; jp < tkp / 2; jp++)
        for (int64_t e = 0; e < dh; e += 16) {
            const int64_t j = 2 * jp;
            const __m256i a = j < tk ? bf16x16_avx512(v + j * ldv + e) : _mm256_setzero_si256();
            const __m256i b = j + 1 < tk ? bf16x16_avx512(v + (j + 1) * ldv + e) : _mm256_setzero_si256();
            const __m512i ab = _mm512_inserti64x4(_mm512_castsi256_si512(a), b, 1);
            _mm512_storeu_si512((void *)(d + jp * dh + e), _mm512_permutexvar_epi16(idx, ab));
        }
}

/* rows of n floats -> bfloat16, zero-padded to np (a multiple of 16) */
MER_AVX512BF16 static void rows_bf16_avx512(uint16_t *d, int64_t ldd, const float *x, int64_t ldx, int64_t rows, int64_t n,
                               int64_t np) {
    for (int64_t r = 0; r < rows; r++) {
        int64_t c = 0;
        for (; c + 16 <= n; c += 16) _mm256_storeu_si256((__m256i *)(d + r * ldd + c), bf16x16_avx512(x + r * ldx + c));
        if (c < n) {
            const __mmask16 m = (__mmask16)((1u << (n - c)) - 1u);
            _mm256_storeu_si256((__m256i *)(d + r * ldd + c),
                                (__m256i)_mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(m, x + r * ldx + c)));
            c += 16;
        }
        for (; c < np; c += 16) _mm256_storeu_si256((__m256i *)(d + r * ldd + c), _mm256_setzero_si256());
    }
}

/* o (R, 16 NV) = scale * a (R rows lda apart, n bf16 pairs) . b (n rows ldb apart, 16 NV lanes
 * of pairs): vdpbf16ps, R x NV zmm accumulators. The scores (a the queries, b K_h^T from a key
 * block, n = dh / 2) and P V (a the probabilities, b V_h from a column block, n = tk / 2,
 * scale 1) */
MER_AVX512BF16 static inline __attribute__((always_inline)) void dp_tile_bf16(float *o, int64_t ldo, const uint32_t *a,
                                                             int64_t lda, const uint32_t *b, int64_t ldb,
                                                             int64_t n, float scale, const int R, const int NV) {
    __m512 acc[ATT_R][4];
    #pragma GCC unroll 8
    for (int r = 0; r < R; r++)
        #pragma GCC unroll 4
        for (int c = 0; c < NV; c++) acc[r][c] = _mm512_setzero_ps();
    for (int64_t p = 0; p < n; p++) {
        __m512bh bv[4];
        #pragma GCC unroll 4
        for (int c = 0; c < NV; c++) bv[c] = (__m512bh)_mm512_loadu_si512((const void *)(b + p * ldb + 16 * c));
        #pragma GCC unroll 8
        for (int r = 0; r < R; r++) {
            const __m512bh ab = (__m512bh)_mm512_set1_epi32((int)a[r * lda + p]);
            #pragma GCC unroll 4
            for (int c = 0; c < NV; c++) acc[r][c] = _mm512_dpbf16_ps(acc[r][c], ab, bv[c]);
        }
    }
    const __m512 vs = _mm512_set1_ps(scale);
    #pragma GCC unroll 8
    for (int r = 0; r < R; r++)
        #pragma GCC unroll 4
        for (int c = 0; c < NV; c++) _mm512_storeu_ps(o + r * ldo + 16 * c, _mm512_mul_ps(acc[r][c], vs));
}

/* R rows (6, or fewer one at a time) x 64 columns (w64) or 16 of dp_tile_bf16 */
MER_AVX512BF16 __attribute__((noinline)) static void dp_bf16_avx512(float *o, int64_t ldo, const uint32_t *a, int64_t lda,
                                                           const uint32_t *b, int64_t ldb, int64_t n, float scale,
                                                           int R, int w64) {
    if (R == ATT_R && w64) dp_tile_bf16(o, ldo, a, lda, b, ldb, n, scale, ATT_R, 4);
    else if (R == ATT_R) dp_tile_bf16(o, ldo, a, lda, b, ldb, n, scale, ATT_R, 1);
    else
        for (int r = 0; r < R; r++) {
            if (w64) dp_tile_bf16(o + r * ldo, ldo, a + r * lda, lda, b, ldb, n, scale, 1, 4);
            else dp_tile_bf16(o + r * ldo, ldo, a + r * lda, lda, b, ldb, n, scale, 1, 1);
        }
}

/* attn_heads_avx512 in bfloat16 (probs NULL, dh % 16 == 0): per head K_h^T and V_h as bfloat16
 * pairs (along d for the scores, along the keys for P V), per block of ATT_QB query rows the
 * queries as pairs, scores by vdpbf16ps 6 rows x 64 keys at a time, the softmax in float32, the
 * probabilities as pairs, then P V 6 rows x 64 columns. */
MER_AVX512BF16 static void attn_heads_bf16_avx512(void *u, int64_t h0, int64_t h1, int th) {
    (void)th;
    const attn_job *j = u;
    const int64_t tk = j->tk, dh = j->dh, dh2 = dh / 2, tkp = (tk + 15) & ~(int64_t)15, tp2 = tkp / 2;
    uint32_t *kt2 = (uint32_t *)(j->ws + h0 * head_ws(tk, dh));
    uint32_t *v2 = kt2 + dh2 * tkp, *q2 = v2 + tp2 * dh, *p2 = q2 + ATT_QB * dh2;
    float *s = (float *)(p2 + ATT_QB * tp2);
    for (int64_t hh = h0; hh < h1; hh++) {
        pack_kt2_avx512(kt2, j->k + hh * dh, j->ldk, tk, tkp, dh);
        pack_v2_avx512(v2, j->v + hh * dh, j->ldv, tk, tkp, dh);
        for (int64_t i0 = 0; i0 < j->tq; i0 += ATT_QB) {
            const int64_t nb = j->tq - i0 < ATT_QB ? j->tq - i0 : ATT_QB;
            rows_bf16_avx512((uint16_t *)q2, 2 * dh2, j->q + i0 * j->ldq + hh * dh, j->ldq, nb, dh, dh);
            for (int64_t c = 0; c < tkp;) { /* scores, a block of 64 keys (or 16) at a time */
                const int w64 = c + 64 <= tkp;
                for (int64_t r = 0; r < nb; r += ATT_R)
                    dp_bf16_avx512(s + r * tkp + c, tkp, q2 + r * dh2, dh2, kt2 + c, tkp, dh2, j->scale,
                                (int)(nb - r < ATT_R ? nb - r : ATT_R), w64);
                c += w64 ? 64 : 16;
            }
            for (int64_t r = 0; r < nb; r++) masked_softmax_row(s + r * tkp, j->mask, tk);
            rows_bf16_avx512((uint16_t *)p2, 2 * tp2, s, tkp, nb, tk, tkp);
            float *ob = j->out + i0 * j->ldo + hh * dh;
            for (int64_t e = 0; e < dh;) { /* P V, 64 columns (or 16) at a time */
                const int w64 = e + 64 <= dh;
                for (int64_t r = 0; r < nb; r += ATT_R)
                    dp_bf16_avx512(ob + r * j->ldo + e, j->ldo, p2 + r * tp2, tp2, v2 + e, dh, tp2, 1.0f,
                                (int)(nb - r < ATT_R ? nb - r : ATT_R), w64);
                e += w64 ? 64 : 16;
            }
        }
    }
}

/* ---- AVX2 + FMA (chosen at run time), else two GEMMs ---- */

/* K and V of every head are packed once per call: K_h in panels of 16 keys, d-major inside
 * (kp (h, tkp / 16, dh, 16), zero keys past tk), V_h in panels of 16 value columns, key-major
 * inside (vp (h, dhp / 16, tk, 16), zero columns past dh). The work items are (head, block of
 * AQ query rows), claimed from a shared counter: scores S (AQ, tk) = scale Q K_h^T one 16-key
 * panel at a time (the 4 KB panel stays in L1 across the block's 8 register tiles of 6 rows),
 * the row softmax, then O = P V_h in blocks of AV keys (an 8 KB slice of a V panel in L1), all
 * in the thread's own buffers: S is (AQ, tk) of one head, never (tq, tk). */
#define AQ 48  /* query rows per work item: 8 tiles of ATT_R */
#define AV 128 /* keys per block of the P V product */

typedef struct {
    float *out, *probs;
    const float *q, *k, *v;
    const uint8_t *mask;
    float *kp, *vp;
    int64_t ldo, ldq, ldk, ldv, tq, tk, tkp, dh, dhp, h, nqb;
    float scale;
    int64_t next; /* next item to claim (atomic) */
    int nomem;    /* a thread could not get its buffers (atomic) */
    float *tb;    /* the threads' buffers (mer__attention_fwd_all), or NULL: each allocates */
} fa_job;

__attribute__((target("avx2"))) static void copy16(float *d, const float *s) {
    _mm256_storeu_ps(d, _mm256_loadu_ps(s));
    _mm256_storeu_ps(d + 8, _mm256_loadu_ps(s + 8));
}

/* y (n) = x * a */
__attribute__((target("avx2"))) static void scale_row(float *y, const float *x, float a, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), _mm256_set1_ps(a)));
    for (; i < n; i++) y[i] = x[i] * a;
}

static void fa_pack(void *u, int64_t h0, int64_t h1, int th) {
    (void)th;
    const fa_job *j = u;
    const int64_t tk = j->tk, tkp = j->tkp, dh = j->dh, dhp = j->dhp;
    for (int64_t hh = h0; hh < h1; hh++) {
        float *kp = j->kp + hh * tkp * dh, *vp = j->vp + hh * dhp * tk;
        for (int64_t c = 0; c < tkp; c += 8) {
            float *d = kp + (c / 16) * dh * 16 + c % 16;
            const float *kr = j->k + c * j->ldk + hh * dh;
            int64_t e = 0;
            if (c + 8 <= tk)
                for (; e + 8 <= dh; e += 8) {
                    const float *rows[8];
                    for (int i = 0; i < 8; i++) rows[i] = kr + i * j->ldk + e;
                    mer__transpose8_avx2(d + e * 16, 16, 8, rows);
                }
            for (; e < dh; e++)
                for (int64_t i = 0; i < 8; i++) d[e * 16 + i] = c + i < tk ? kr[i * j->ldk + e] : 0.0f;
        }
        for (int64_t p = 0; p < dhp; p += 16) {
            const int64_t n = dh - p < 16 ? dh - p : 16;
            float *d = vp + (p / 16) * tk * 16;
            for (int64_t c = 0; c < tk; c++, d += 16) {
                const float *vr = j->v + c * j->ldv + hh * dh + p;
                if (n == 16)
                    copy16(d, vr);
                else
                    for (int e = 0; e < 16; e++) d[e] = e < n ? vr[e] : 0.0f;
            }
        }
    }
}

/* s (6, 16) [lds] = scale * Q rows qr[0..6) (dh) @ kp (dh, 16) */
__attribute__((target("avx2,fma"))) static void qk_tile(float *s, int64_t lds, const float *const *qr,
                                                       const float *kp, int64_t dh, float scale) {
    __m256 acc[ATT_R][2];
#pragma GCC unroll 6
    for (int r = 0; r < ATT_R; r++) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
#pragma GCC unroll 4
    for (int64_t d = 0; d < dh; d++) {
        const __m256 k0 = _mm256_loadu_ps(kp + d * 16), k1 = _mm256_loadu_ps(kp + d * 16 + 8);
#pragma GCC unroll 6
        for (int r = 0; r < ATT_R; r++) {
            const __m256 qb = _mm256_broadcast_ss(qr[r] + d);
            acc[r][0] = _mm256_fmadd_ps(qb, k0, acc[r][0]);
            acc[r][1] = _mm256_fmadd_ps(qb, k1, acc[r][1]);
        }
    }
    const __m256 vs = _mm256_set1_ps(scale);
#pragma GCC unroll 6
    for (int r = 0; r < ATT_R; r++) {
        _mm256_storeu_ps(s + r * lds, _mm256_mul_ps(acc[r][0], vs));
        _mm256_storeu_ps(s + r * lds + 8, _mm256_mul_ps(acc[r][1], vs));
    }
}

static void fa_items(void *u, int64_t b, int64_t e, int th) {
    (void)b;
    (void)e;
    fa_job *j = u;
    const int64_t tk = j->tk, tkp = j->tkp, dh = j->dh, dhp = j->dhp, items = j->h * j->nqb;
    /* this thread's scores (AQ, tkp) and outputs (AQ, dhp) */
    float *s = j->tb ? j->tb + (int64_t)th * AQ * (tkp + dhp)
                     : mer__alloc((size_t)(AQ * (tkp + dhp)) * sizeof(float));
    if (!s) {
        __atomic_store_n(&j->nomem, 1, __ATOMIC_RELAXED);
        return;
    }
    float *o = s + AQ * tkp;
    for (int64_t it; (it = __atomic_fetch_add(&j->next, 1, __ATOMIC_RELAXED)) < items;) {
        const int64_t hh = it / j->nqb, i0 = (it % j->nqb) * AQ;
        const int64_t nr = j->tq - i0 < AQ ? j->tq - i0 : AQ, tiles = (nr + ATT_R - 1) / ATT_R;
        const float *kp = j->kp + hh * tkp * dh, *vp = j->vp + hh * dhp * tk;
        const float *qr[AQ];
        for (int64_t r = 0; r < tiles * ATT_R; r++) /* rows past the end repeat the last one */
            qr[r] = j->q + (i0 + (r < nr ? r : nr - 1)) * j->ldq + hh * dh;
        for (int64_t c = 0; c < tkp; c += 16)
            for (int64_t t = 0; t < tiles; t++)
                qk_tile(s + t * ATT_R * tkp + c, tkp, qr + t * ATT_R, kp + c * dh, dh, j->scale);
        float inv[AQ];
        for (int64_t r = 0; r < nr; r++) {
            if (j->probs || j->mask) {
                masked_softmax_row(s + r * tkp, j->mask, tk);
                if (j->probs) memcpy(j->probs + (hh * j->tq + i0 + r) * tk, s + r * tkp, (size_t)tk * sizeof(float));
                inv[r] = 1.0f;
            } else { /* exp only: the division by the sum is folded into the output */
                inv[r] = 1.0f / mer__exp_sum_row(s + r * tkp, s + r * tkp, tk);
            }
        }
        for (int64_t c0 = 0; c0 < tk; c0 += AV) {
            const int64_t n = tk - c0 < AV ? tk - c0 : AV;
            for (int64_t p = 0; p < dhp; p += 16)
                for (int64_t t = 0; t < tiles; t++)
                    mer__tile6x16_avx2(n, s + t * ATT_R * tkp + c0, tkp, vp + (p / 16) * tk * 16 + c0 * 16,
                                       o + t * ATT_R * dhp + p, dhp, c0 > 0);
        }
        for (int64_t r = 0; r < nr; r++)
            scale_row(j->out + (i0 + r) * j->ldo + hh * dh, o + r * dhp, inv[r], dh);
    }
    if (!j->tb) mer__free(s);
}

static int fused_avx2(void) { return (mer_cpu_features() & MER_CPU_AVX2) != 0; }

/* two GEMMs per head around a threaded softmax */

typedef struct {
    float *s;
    const uint8_t *mask;
    int64_t tk;
} attn_sm_job;

static void attn_softmax_rows(void *u, int64_t r0, int64_t r1, int t) {
    (void)t;
    const attn_sm_job *j = u;
    for (int64_t r = r0; r < r1; r++) masked_softmax_row(j->s + r * j->tk, j->mask, j->tk);
}

int64_t mer__attention_ws_floats(int64_t tq, int64_t tk, int64_t h, int64_t dh) {
    if (tq <= 0 || tk <= 0 || h <= 0 || dh <= 0) return 0;
    if (mer__use_avx512()) return h * head_ws(tk, dh);
    if (fused_avx2()) return h * (((tk + 15) & ~(int64_t)15) * dh + ((dh + 15) & ~(int64_t)15) * tk);
    return tq * tk;
}

/* The fused AVX2 path's per-thread buffers for `threads` threads (0 on the other paths, which
 * take everything from ws). */
static int64_t thread_bufs(int64_t tk, int64_t dh, int threads) {
    if (mer__use_avx512() || !fused_avx2()) return 0;
    return (int64_t)threads * AQ * (((tk + 15) & ~(int64_t)15) + ((dh + 15) & ~(int64_t)15));
}

int64_t mer__attention_ws_floats_all(int64_t tq, int64_t tk, int64_t h, int64_t dh, int threads) {
    const int64_t base = mer__attention_ws_floats(tq, tk, h, dh);
    return base ? base + thread_bufs(tk, dh, threads) : 0;
}

static mer_status attention_fwd(float *out, int64_t ldo, float *probs, const float *q, int64_t ldq,
                                const float *k, int64_t ldk, const float *v, int64_t ldv,
                                const uint8_t *key_mask, int64_t tq, int64_t tk, int64_t h,
                                int64_t dh, float scale, float *ws, float *tb, int bf16);

mer_status mer__attention_fwd_all(float *out, int64_t ldo, float *probs, const float *q,
                                  int64_t ldq, const float *k, int64_t ldk, const float *v,
                                  int64_t ldv, const uint8_t *key_mask, int64_t tq, int64_t tk,
                                  int64_t h, int64_t dh, float scale, float *ws, int threads) {
    if (tq <= 0 || tk <= 0 || h <= 0 || dh <= 0) return MER_OK;
    if (threads < 1 || !ws) return mer__err(MER_ERR_INVALID_ARG, "attention: no scratch");
    const int old = threads < mer__threads() ? mer__threads_use(threads) : -1;
    mer_status st = attention_fwd(out, ldo, probs, q, ldq, k, ldk, v, ldv, key_mask, tq, tk, h, dh,
                                  scale, ws, ws + mer__attention_ws_floats(tq, tk, h, dh), 0);
    if (old >= 0) mer__threads_use(old);
    return st;
}

// ref: torch.nn.functional.scaled_dot_product_attention (no dropout, no causal mask)
mer_status mer__attention_fwd(float *out, int64_t ldo, float *probs, const float *q, int64_t ldq,
                              const float *k, int64_t ldk, const float *v, int64_t ldv,
                              const uint8_t *key_mask, int64_t tq, int64_t tk, int64_t h,
                              int64_t dh, float scale, float *ws) {
    return attention_fwd(out, ldo, probs, q, ldq, k, ldk, v, ldv, key_mask, tq, tk, h, dh, scale,
                         ws, NULL, 0);
}

mer_status mer__attention_fwd_bf16(float *out, int64_t ldo, float *probs, const float *q, int64_t ldq,
                                   const float *k, int64_t ldk, const float *v, int64_t ldv,
                                   const uint8_t *key_mask, int64_t tq, int64_t tk, int64_t h,
                                   int64_t dh, float scale, float *ws) {
    return attention_fwd(out, ldo, probs, q, ldq, k, ldk, v, ldv, key_mask, tq, tk, h, dh, scale,
                         ws, NULL, 1);
}

static mer_status attention_fwd(float *out, int64_t ldo, float *probs, const float *q, int64_t ldq,
                                const float *k, int64_t ldk, const float *v, int64_t ldv,
                                const uint8_t *key_mask, int64_t tq, int64_t tk, int64_t h,
                                int64_t dh, float scale, float *ws, float *tb, int bf16) {
    if (tq <= 0 || tk <= 0 || h <= 0 || dh <= 0) return MER_OK;
    float *own = NULL;
    if (!ws) {
        own = mer__alloc((size_t)mer__attention_ws_floats(tq, tk, h, dh) * sizeof(float));
        if (!own) return mer__err(MER_ERR_NOMEM, "attention: out of memory for %lld x %lld scores",
                                  (long long)tq, (long long)tk);
        ws = own;
    }
    /* a small call (the fusion models' few rows) stays on this thread: a parallel region costs
     * more than its ~4 h tq tk dh flops */
    const int one = 4 * h * tq * tk * dh < ((int64_t)1 << 21);
    if (mer__use_avx512()) {
        attn_job j = {out, probs, q, k, v, key_mask, ldo, ldq, ldk, ldv, tq, tk, dh, scale, ws};
        const int b16 = bf16 && !probs && dh % 16 == 0 && (mer_cpu_features() & MER_CPU_AVX512_BF16);
        mer__parallel_for(h, one ? h : 1, b16 ? attn_heads_bf16_avx512 : attn_heads_avx512, &j);
        mer__free(own);
        return MER_OK;
    }
    if (fused_avx2()) {
        const int64_t tkp = (tk + 15) & ~(int64_t)15, dhp = (dh + 15) & ~(int64_t)15, nqb = (tq + AQ - 1) / AQ;
        fa_job j = {out, probs, q, k, v, key_mask, ws, ws + h * tkp * dh, ldo, ldq, ldk, ldv, tq, tk, tkp,
                    dh, dhp, h, nqb, scale, 0, 0, tb};
        mer__parallel_for(h, one ? h : 1, fa_pack, &j);
        mer__parallel_for(h * nqb, one ? h * nqb : 1, fa_items, &j);
        mer__free(own);
        return j.nomem ? mer__err(MER_ERR_NOMEM, "attention: out of memory for %d x %lld scores", AQ, (long long)tk)
                       : MER_OK;
    }
    for (int64_t hh = 0; hh < h; hh++) {
        float *s = probs ? probs + hh * tq * tk : ws;
        mer_sgemm(0, 1, tq, tk, dh, scale, q + hh * dh, ldq, k + hh * dh, ldk, 0.0f, s, tk);
        attn_sm_job j = {s, key_mask, tk};
        int64_t min_rows = tk >= 2048 ? 1 : 2048 / tk;
        mer__parallel_for(tq, min_rows, attn_softmax_rows, &j);
        mer_sgemm(0, 0, tq, dh, tk, 1.0f, s, tk, v + hh * dh, ldv, 0.0f, out + hh * dh, ldo);
    }
    mer__free(own);
    return MER_OK;
}

/* ---- backward (training) ------------------------------------------------------------------ */

// ref: autograd of torch.nn.functional.scaled_dot_product_attention (no dropout)
// Per head, with P the saved probabilities: dV += P^T dO; dP = dO V^T; dS = P * (dP - rowsum(dP * P));
// dQ += scale dS K; dK += scale dS^T Q. dq, dk, dv use the row strides of q, k, v.
mer_status mer__attention_bwd(float *dq, float *dk, float *dv, const float *dout, int64_t ldo,
                              const float *probs, const float *q, int64_t ldq, const float *k,
                              int64_t ldk, const float *v, int64_t ldv, int64_t tq, int64_t tk,
                              int64_t h, int64_t dh, float scale, float *ws) {
    if (tq <= 0 || tk <= 0 || h <= 0 || dh <= 0) return MER_OK;
    float *own = NULL, *ds = ws;
    if (!ds) {
        ds = own = mer__alloc((size_t)tq * (size_t)tk * sizeof(float));
        if (!ds) return mer__err(MER_ERR_NOMEM, "attention backward: out of memory");
    }
    for (int64_t hh = 0; hh < h; hh++) {
        const float *p = probs + hh * tq * tk;
        const float *doh = dout + hh * dh;
        if (dv) mer_sgemm(1, 0, tk, dh, tq, 1.0f, p, tk, doh, ldo, 1.0f, dv + hh * dh, ldv);
        mer_sgemm(0, 1, tq, tk, dh, 1.0f, doh, ldo, v + hh * dh, ldv, 0.0f, ds, tk);
        for (int64_t i = 0; i < tq; i++) {
            float *r = ds + i * tk;
            const float *pr = p + i * tk;
            double dot = 0.0;
            for (int64_t j = 0; j < tk; j++) dot += (double)r[j] * pr[j];
            float d = (float)dot;
            for (int64_t j = 0; j < tk; j++) r[j] = pr[j] * (r[j] - d);
        }
        if (dq) mer_sgemm(0, 0, tq, dh, tk, scale, ds, tk, k + hh * dh, ldk, 1.0f, dq + hh * dh, ldq);
        if (dk) mer_sgemm(1, 0, tk, dh, tq, scale, ds, tk, q + hh * dh, ldq, 1.0f, dk + hh * dh, ldk);
    }
    mer__free(own);
    return MER_OK;
}
