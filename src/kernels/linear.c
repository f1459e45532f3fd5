/*
 * linear.c -- fully connected layer, forward and backward, on top of the one GEMM entry point.
 *
 * Weights follow torch.nn.Linear's layout, w (out, in), so checkpoints and PyTorch references
 * map one to one. The bias is broadcast into y first and the GEMM accumulates onto it (beta = 1),
 * which saves a pass over y. The bias gradient is a column sum done serially in a fixed order,
 * so results are bitwise reproducible for a fixed thread count.
 */
#include "kernels.h"

#include <omp.h>
#include <string.h>

/* Below this many multiply-adds a GEMM runs on the calling thread: the per-step layers of a
 * small model (32 x 128 x 128 is 0.5 M) take ~15 us, less than waking a second thread costs
 * (measured on a loaded 2-core machine with OMP_WAIT_POLICY=PASSIVE: a 32 x 128 x 128 GEMM took
 * 156 us wall / 59 us CPU on 2 threads vs 30 us / 14 us on one). A training step has ~30 such
 * calls. The choice depends only on the shape, so runs stay reproducible per thread count. */
#define LIN_PAR_MIN_MACS ((int64_t)4 << 20)

/* Mini-batch products (gemm_small.c) where they beat the general GEMM, measured on one Zen 4
 * core at batch 32, out 128: the forward x w^T at in >= 512, batch <= 48 (88-97 GFLOPS vs 52-85
 * for oneDNN, which packs all of w on every call), the weight and input gradients at batch <= 64
 * (on par, 92-106 vs 90-107, and bitwise independent of the thread count). */
#define LIN_SMALL_BATCH 64
#define LIN_SMALL_FWD_MIN_IN 512

static void lin_sgemm(int ta, int tb, int64_t M, int64_t N, int64_t K, const float *A,
                      int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
    int nt = omp_get_max_threads();
    int serial = nt > 1 && M * N * K < LIN_PAR_MIN_MACS;
    if (serial) omp_set_num_threads(1);
    mer_sgemm(ta, tb, M, N, K, 1.0f, A, lda, B, ldb, beta, C, ldc);
    if (serial) omp_set_num_threads(nt);
}

// ref: torch.nn.functional.linear
void mer__linear_fwd(float *y, const float *x, const float *w, const float *b, int64_t n,
                     int64_t in, int64_t out) {
    if (n <= 0 || out <= 0) return;
    float beta = 0.0f;
    if (b) {
        for (int64_t i = 0; i < n; i++) memcpy(y + i * out, b, (size_t)out * sizeof(float));
        beta = 1.0f;
    }
    if (in <= 0) {
        if (!b) memset(y, 0, (size_t)(n * out) * sizeof(float));
        return;
    }
    if (n <= LIN_SMALL_BATCH && in >= LIN_SMALL_FWD_MIN_IN &&
        mer__sgemm_small(0, 1, n, out, in, x, in, w, in, beta, y, out))
        return;
    lin_sgemm(0, 1, n, out, in, x, in, w, in, beta, y, out);
}

// ref: autograd of torch.nn.functional.linear
void mer__linear_bwd(float *dx, float *dw, float *db, const float *dy, const float *x,
                     const float *w, int64_t n, int64_t in, int64_t out) {
    if (n <= 0 || out <= 0) return;
    int small = n <= LIN_SMALL_BATCH;
    if (dx && in > 0 && !(small && mer__sgemm_small(0, 0, n, in, out, dy, out, w, in, 1.0f, dx, in)))
        lin_sgemm(0, 0, n, in, out, dy, out, w, in, 1.0f, dx, in);
    if (dw && in > 0 && !(small && mer__sgemm_small(1, 0, out, in, n, dy, out, x, in, 1.0f, dw, in)))
        lin_sgemm(1, 0, out, in, n, dy, out, x, in, 1.0f, dw, in);
    if (db) {
        for (int64_t i = 0; i < n; i++) {
            const float *r = dy + i * out;
            for (int64_t j = 0; j < out; j++) db[j] += r[j];
        }
    }
}
