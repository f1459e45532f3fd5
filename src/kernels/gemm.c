/*
 * gemm.c -- the one GEMM entry point (mer_sgemm) and the only file that talks to a BLAS.
 *
 * Backends: oneDNN (dnnl_sgemm) and OpenBLAS (cblas_sgemm), each compiled in when the build
 * finds it (MER_HAVE_DNNL, MER_HAVE_OPENBLAS), plus naive reference loops. The default is chosen
 * by measurement on the target machine (see docs/gemm.md and `mer bench gemm`).
 */
#include "internal.h"

#ifdef MER_HAVE_OPENBLAS
#include <cblas.h>
#endif
#ifdef MER_HAVE_DNNL
#include <dnnl.h>
#endif
#ifdef _OPENMP
#include <omp.h>
#endif

#if defined(MER_HAVE_DNNL)
#define MER__GEMM_BUILD_DEFAULT MER_GEMM_DNNL
#elif defined(MER_HAVE_OPENBLAS)
#define MER__GEMM_BUILD_DEFAULT MER_GEMM_OPENBLAS
#else
#define MER__GEMM_BUILD_DEFAULT MER_GEMM_NAIVE
#endif

#ifdef MER_GEMM_FORCE_OPENBLAS
#undef MER__GEMM_BUILD_DEFAULT
#define MER__GEMM_BUILD_DEFAULT MER_GEMM_OPENBLAS
#endif

static mer_gemm_backend current = MER__GEMM_BUILD_DEFAULT;

int mer_gemm_backend_available(mer_gemm_backend b) {
    switch (b) {
    case MER_GEMM_DEFAULT: case MER_GEMM_NAIVE: return 1;
#ifdef MER_HAVE_OPENBLAS
    case MER_GEMM_OPENBLAS: return 1;
#endif
#ifdef MER_HAVE_DNNL
    case MER_GEMM_DNNL: return 1;
#endif
    default: return 0;
    }
}

mer_status mer_gemm_set_backend(mer_gemm_backend b) {
    if (!mer_gemm_backend_available(b))
        return mer__err(MER_ERR_UNSUPPORTED, "gemm backend %s is not compiled in",
                        mer_gemm_backend_name(b));
    current = b == MER_GEMM_DEFAULT ? MER__GEMM_BUILD_DEFAULT : b;
    return MER_OK;
}

mer_gemm_backend mer_gemm_get_backend(void) { return current; }

const char *mer_gemm_backend_name(mer_gemm_backend b) {
    switch (b) {
    case MER_GEMM_DEFAULT: return "default";
    case MER_GEMM_OPENBLAS: return "openblas";
    case MER_GEMM_DNNL: return "onednn";
    case MER_GEMM_NAIVE: return "naive";
    }
    return "?";
}

void mer__gemm_set_threads(int n) {
#ifdef MER_HAVE_OPENBLAS
    openblas_set_num_threads(n);
#endif
#ifdef _OPENMP
    omp_set_num_threads(n);
#endif
    (void)n;
}

typedef struct {
    int ta, tb;
    int64_t M, N, K, lda, ldb, ldc;
    float alpha, beta;
    const float *A, *B;
    float *C;
} naive_job;

static void naive_rows(void *u, int64_t r0, int64_t r1, int t) {
    (void)t;
    const naive_job *j = u;
    for (int64_t i = r0; i < r1; i++) {
        for (int64_t n = 0; n < j->N; n++) {
            double acc = 0;
            for (int64_t k = 0; k < j->K; k++) {
                float a = j->ta ? j->A[k * j->lda + i] : j->A[i * j->lda + k];
                float b = j->tb ? j->B[n * j->ldb + k] : j->B[k * j->ldb + n];
                acc += (double)a * b;
            }
            float *c = &j->C[i * j->ldc + n];
            *c = j->alpha * (float)acc + (j->beta == 0.0f ? 0.0f : j->beta * *c);
        }
    }
}

void mer_sgemm(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha,
               const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C,
               int64_t ldc) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0) { /* C = beta * C, with beta == 0 overwriting (NaN-safe) */
        for (int64_t i = 0; i < M; i++)
            for (int64_t n = 0; n < N; n++) C[i * ldc + n] = beta == 0.0f ? 0.0f : beta * C[i * ldc + n];
        return;
    }
    switch (current) {
#ifdef MER_HAVE_DNNL
    case MER_GEMM_DNNL:
        dnnl_sgemm(trans_a ? 'T' : 'N', trans_b ? 'T' : 'N', M, N, K, alpha, A, lda, B, ldb, beta,
                   C, ldc);
        return;
#endif
#ifdef MER_HAVE_OPENBLAS
    case MER_GEMM_OPENBLAS:
        cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                    trans_b ? CblasTrans : CblasNoTrans, (blasint)M, (blasint)N, (blasint)K, alpha,
                    A, (blasint)lda, B, (blasint)ldb, beta, C, (blasint)ldc);
        return;
#endif
    default: {
        naive_job j = {trans_a, trans_b, M, N, K, lda, ldb, ldc, alpha, beta, A, B, C};
        mer__parallel_for(M, 4, naive_rows, &j);
        return;
    }
    }
}
