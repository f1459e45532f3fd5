/*
 * gemm_small.c -- matrix products with a small dimension: the layers of a training step, where
 * one side is a mini-batch of a few dozen rows.
 *
 * Why not mer_sgemm: at a batch of 32, a first layer is 32 x 128 x 5120. A general GEMM packs
 * the 2.6 MB weight operand into its own layout on every call and then does only 32
 * multiply-adds per packed element; measured on this machine (Zen 4, one thread) oneDNN ran the
 * forward at ~50 GFLOPS and the weight gradient at ~75, against ~100 for large products. Here the
 * operands are used where they lie, in register tiles of 8 rows x 48 columns (24 zmm
 * accumulators) that broadcast one operand and stream the other:
 *   - NN / TN, C = op(A) B (input and weight gradients): broadcast op(A)[i][k] against
 *     B[k][j .. j + 48), straight from the operands;
 *   - NT, C = A B^T (forward, y = x w^T, M <= 48): computed as C^T = B A^T, broadcasting B's
 *     elements against rows of A^T, which is made 256 columns of K at a time on the stack. (A
 *     dot-product tile over rows of A and B, both contiguous in K, ran at ~32-50 GFLOPS: its 10
 *     row streams 20 KB apart alias in the L1 sets.)
 *   - TN with an epilogue (mer__sgemm_small_tn_apply): blocks of 8 full rows of C handed to a
 *     callback instead of stored (the optimizer step fused into the weight gradient).
 * Every element of C is computed by one tile in a fixed order that does not depend on the
 * thread count or on where a thread's range starts (threads take whole tiles), so results
 * are bitwise the same at any thread count.
 */
#include "kernels.h"

#include <immintrin.h>

#define BC_MR 8
#define BC_NV 3 /* vectors of 16 columns per tile */

/* Products of at least this many multiply-adds are split over threads (see linear.c). */
#define SMALL_PAR_MIN_MACS ((int64_t)4 << 20)

typedef struct {
    int ta;
    int64_t M, N, K, lda, ldb, ldc;
    float beta;
    const float *A, *B;
    float *C;
} small_job;

/* op(A)[i][k] broadcast against B[k][n0 .. n0 + 16 nv) (the last vector masked by mlast). */
MER_AVX512 static inline __attribute__((always_inline)) void bc_tile(const int ta, const int mr, const int nv,
                                                          __mmask16 mlast, int64_t K,
                                                          const float *A, int64_t lda,
                                                          const float *B, int64_t ldb, float beta,
                                                          float *C, int64_t ldc) {
    __m512 acc[BC_MR][BC_NV];
    _Pragma("GCC unroll 8")
    for (int r = 0; r < mr; r++)
        _Pragma("GCC unroll 8")
        for (int v = 0; v < nv; v++) acc[r][v] = _mm512_setzero_ps();
    for (int64_t k = 0; k < K; k++) {
        __m512 b[BC_NV];
        const float *bk = B + k * ldb;
        _Pragma("GCC unroll 8")
        for (int v = 0; v < nv; v++)
            b[v] = v == nv - 1 ? _mm512_maskz_loadu_ps(mlast, bk + 16 * v) : _mm512_loadu_ps(bk + 16 * v);
        _Pragma("GCC unroll 8")
        for (int r = 0; r < mr; r++) {
            __m512 a = _mm512_set1_ps(ta ? A[k * lda + r] : A[r * lda + k]);
            _Pragma("GCC unroll 8")
            for (int v = 0; v < nv; v++) acc[r][v] = _mm512_fmadd_ps(a, b[v], acc[r][v]);
        }
    }
    __m512 vb = _mm512_set1_ps(beta);
    _Pragma("GCC unroll 8")
    for (int r = 0; r < mr; r++)
        _Pragma("GCC unroll 8")
        for (int v = 0; v < nv; v++) {
            float *y = C + r * ldc + 16 * v;
            __mmask16 mk = v == nv - 1 ? mlast : (__mmask16)0xFFFF;
            __m512 out = acc[r][v];
            /* beta = 0 stores 0 + sum: the same bits as beta = 1 onto a zeroed C (-0 -> +0) */
            __m512 c0 = beta != 0.0f ? _mm512_mul_ps(vb, _mm512_maskz_loadu_ps(mk, y)) : _mm512_setzero_ps();
            out = _mm512_add_ps(c0, out);
            _mm512_mask_storeu_ps(y, mk, out);
        }
}

#define BC_CASE(TA, MR, NV) \
    case (TA) * 64 + (MR) * 4 + (NV): bc_tile(TA, MR, NV, mlast, K, A, lda, B, ldb, beta, C, ldc); break
#define BC_CASES(TA, MR) BC_CASE(TA, MR, 3); BC_CASE(TA, MR, 2); BC_CASE(TA, MR, 1)

MER_AVX512 static void bc_dispatch_avx512(int ta, int mr, int nv, __mmask16 mlast, int64_t K, const float *A,
                        int64_t lda, const float *B, int64_t ldb, float beta, float *C,
                        int64_t ldc) {
    switch (ta * 64 + mr * 4 + nv) {
        BC_CASES(0, 8); BC_CASES(0, 7); BC_CASES(0, 6); BC_CASES(0, 5);
        BC_CASES(0, 4); BC_CASES(0, 3); BC_CASES(0, 2); BC_CASES(0, 1);
        BC_CASES(1, 8); BC_CASES(1, 7); BC_CASES(1, 6); BC_CASES(1, 5);
        BC_CASES(1, 4); BC_CASES(1, 3); BC_CASES(1, 2); BC_CASES(1, 1);
    default: break;
    }
}

/* Strips [s0, s1) of 16 * BC_NV columns of C. */
MER_AVX512 static void bc_strips_avx512(void *u, int64_t s0, int64_t s1, int t) {
    (void)t;
    const small_job *j = u;
    const int64_t W = 16 * BC_NV;
    for (int64_t s = s0; s < s1; s++) {
        int64_t n0 = s * W, w = j->N - n0 < W ? j->N - n0 : W;
        int nv = (int)((w + 15) / 16);
        int rem = (int)(w - 16 * (nv - 1));
        __mmask16 mlast = (__mmask16)(rem == 16 ? 0xFFFFu : (1u << rem) - 1u);
        for (int64_t m0 = 0; m0 < j->M; m0 += BC_MR) {
            int mr = (int)(j->M - m0 < BC_MR ? j->M - m0 : BC_MR);
            const float *a = j->ta ? j->A + m0 : j->A + m0 * j->lda;
            bc_dispatch_avx512(j->ta, mr, nv, mlast, j->K, a, j->lda, j->B + n0, j->ldb, j->beta,
                        j->C + m0 * j->ldc + n0, j->ldc);
        }
    }
}

/* ---- TN with an epilogue: each tile of C = A^T B handed to a callback instead of stored ---- */

#define NB_APPLY 4096 /* columns per panel handed to the callback */

typedef struct {
    int64_t M, N, K, lda, ldb;
    const float *A, *B;
    mer__tile_fn fn;
    void *user;
} apply_job;

/* Row blocks [s0, s1) of BC_MR rows of C. A block is computed NB_APPLY columns at a time into a
 * stack panel and handed over whole: the callback then walks BC_MR rows of up to NB_APPLY
 * contiguous elements (a column-strip tile would make it hop between rows 4 KB apart). */
MER_AVX512 static void apply_rows_avx512(void *u, int64_t s0, int64_t s1, int t) {
    (void)t;
    const apply_job *j = u;
    const int64_t W = 16 * BC_NV;
    _Alignas(64) float panel[BC_MR * NB_APPLY];
    for (int64_t s = s0; s < s1; s++) {
        int64_t m0 = s * BC_MR;
        int mr = (int)(j->M - m0 < BC_MR ? j->M - m0 : BC_MR);
        for (int64_t c0 = 0; c0 < j->N; c0 += NB_APPLY) {
            int64_t cw = j->N - c0 < NB_APPLY ? j->N - c0 : NB_APPLY;
            for (int64_t n0 = c0; n0 < c0 + cw; n0 += W) {
                int64_t w = c0 + cw - n0 < W ? c0 + cw - n0 : W;
                int nv = (int)((w + 15) / 16);
                int rem = (int)(w - 16 * (nv - 1));
                __mmask16 mlast = (__mmask16)(rem == 16 ? 0xFFFFu : (1u << rem) - 1u);
                bc_dispatch_avx512(1, mr, nv, mlast, j->K, j->A + m0, j->lda, j->B + n0, j->ldb, 0.0f,
                            panel + (n0 - c0), NB_APPLY);
            }
            j->fn(j->user, m0, c0, mr, cw, panel, NB_APPLY);
        }
    }
}

int mer__sgemm_small_tn_apply(int64_t M, int64_t N, int64_t K, const float *A, int64_t lda,
                              const float *B, int64_t ldb, mer__tile_fn fn, void *user) {
    if (M <= 0 || N <= 0 || K <= 0 || !mer__use_avx512()) return 0;
    apply_job j = {M, N, K, lda, ldb, A, B, fn, user};
    int64_t blocks = (M + BC_MR - 1) / BC_MR;
    if (M * N * K >= SMALL_PAR_MIN_MACS) mer__parallel_for(blocks, 1, apply_rows_avx512, &j);
    else apply_rows_avx512(&j, 0, blocks, 0);
    return 1;
}

/* ---- NT: C (M, N) = beta C + A (M, K) B (N, K)^T, M <= NT_MAX_M ----
 * Computed transposed, C^T = B A^T, as broadcast tiles: 8 rows of B (each a stream along K)
 * times the whole batch (M <= 48 columns of A^T, three vectors). A is transposed chunk by chunk
 * (NT_KC columns of K at a time) into a stack buffer, and the 16-lane partial sums of C^T carry
 * over from chunk to chunk in another, so each element is one fused multiply-add chain over k
 * in order, whatever the chunking. */
#define NT_MAX_M 48
#define NT_KC 256
#define NT_NB 128 /* rows of B (columns of C) per block: C^T block NT_NB x NT_MAX_M */

MER_AVX512 static inline __attribute__((always_inline)) void nt_tile(const int mr, const int nv, int64_t kc,
                                                          int first, const float *B, int64_t ldb,
                                                          const float *at, float *ct) {
    __m512 acc[BC_MR][BC_NV];
    _Pragma("GCC unroll 8")
    for (int r = 0; r < mr; r++)
        _Pragma("GCC unroll 8")
        for (int v = 0; v < nv; v++)
            acc[r][v] = first ? _mm512_setzero_ps() : _mm512_load_ps(ct + r * NT_MAX_M + 16 * v);
    for (int64_t k = 0; k < kc; k++) {
        __m512 a[BC_NV];
        _Pragma("GCC unroll 8")
        for (int v = 0; v < nv; v++) a[v] = _mm512_load_ps(at + k * NT_MAX_M + 16 * v);
        _Pragma("GCC unroll 8")
        for (int r = 0; r < mr; r++) {
            __m512 b = _mm512_set1_ps(B[r * ldb + k]);
            _Pragma("GCC unroll 8")
            for (int v = 0; v < nv; v++) acc[r][v] = _mm512_fmadd_ps(b, a[v], acc[r][v]);
        }
    }
    _Pragma("GCC unroll 8")
    for (int r = 0; r < mr; r++)
        _Pragma("GCC unroll 8")
        for (int v = 0; v < nv; v++) _mm512_store_ps(ct + r * NT_MAX_M + 16 * v, acc[r][v]);
}

#define NT_CASE(MR, NV) \
    case (MR) * 4 + (NV): nt_tile(MR, NV, kc, first, B, ldb, at, ct); break
#define NT_CASES(MR) NT_CASE(MR, 3); NT_CASE(MR, 2); NT_CASE(MR, 1)

MER_AVX512 static void nt_dispatch_avx512(int mr, int nv, int64_t kc, int first, const float *B, int64_t ldb,
                        const float *at, float *ct) {
    switch (mr * 4 + nv) {
        NT_CASES(8); NT_CASES(7); NT_CASES(6); NT_CASES(5);
        NT_CASES(4); NT_CASES(3); NT_CASES(2); NT_CASES(1);
    default: break;
    }
}

/* Rows [s0, s1) of B in strips of BC_MR, i.e. columns of C. */
MER_AVX512 static void nt_strips_avx512(void *u, int64_t s0, int64_t s1, int t) {
    (void)t;
    const small_job *j = u;
    const int64_t M = j->M, K = j->K;
    const int nv = (int)((M + 15) / 16);
    _Alignas(64) float at[NT_KC * NT_MAX_M];
    _Alignas(64) float ct[NT_NB * NT_MAX_M];
    for (int64_t nb0 = s0 * BC_MR; nb0 < s1 * BC_MR && nb0 < j->N; nb0 += NT_NB) {
        int64_t nb1 = nb0 + NT_NB;
        if (nb1 > s1 * BC_MR) nb1 = s1 * BC_MR;
        if (nb1 > j->N) nb1 = j->N;
        for (int64_t k0 = 0; k0 < K; k0 += NT_KC) {
            int64_t kc = K - k0 < NT_KC ? K - k0 : NT_KC;
            /* A[:, k0 .. k0 + kc) transposed, zero-padded to nv vectors per row */
            for (int64_t i = 0; i < M; i++) {
                const float *a = j->A + i * j->lda + k0;
                for (int64_t k = 0; k < kc; k++) at[k * NT_MAX_M + i] = a[k];
            }
            for (int64_t k = 0; k < kc; k++)
                for (int64_t i = M; i < 16 * nv; i++) at[k * NT_MAX_M + i] = 0.0f;
            for (int64_t n0 = nb0; n0 < nb1; n0 += BC_MR) {
                int mr = (int)(nb1 - n0 < BC_MR ? nb1 - n0 : BC_MR);
                nt_dispatch_avx512(mr, nv, kc, k0 == 0, j->B + n0 * j->ldb + k0, j->ldb, at,
                            ct + (n0 - nb0) * NT_MAX_M);
            }
        }
        for (int64_t i = 0; i < M; i++) {
            float *y = j->C + i * j->ldc;
            for (int64_t n = nb0; n < nb1; n++) {
                float s = ct[(n - nb0) * NT_MAX_M + i];
                y[n] = j->beta == 0.0f ? s : j->beta * y[n] + s;
            }
        }
    }
}

int mer__sgemm_small(int ta, int tb, int64_t M, int64_t N, int64_t K, const float *A, int64_t lda,
                     const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
    if (M <= 0 || N <= 0 || K <= 0 || (ta && tb) || (tb && M > NT_MAX_M) || !mer__use_avx512()) return 0;
    small_job j = {ta, M, N, K, lda, ldb, ldc, beta, A, B, C};
    int par = M * N * K >= SMALL_PAR_MIN_MACS;
    if (tb) {
        int64_t strips = (N + BC_MR - 1) / BC_MR;
        if (par) mer__parallel_for(strips, 1, nt_strips_avx512, &j);
        else nt_strips_avx512(&j, 0, strips, 0);
    } else {
        int64_t strips = (N + 16 * BC_NV - 1) / (16 * BC_NV);
        if (par) mer__parallel_for(strips, 1, bc_strips_avx512, &j);
        else bc_strips_avx512(&j, 0, strips, 0);
    }
    return 1;
}
