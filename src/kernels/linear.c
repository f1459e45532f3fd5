/*
 * linear.c -- fully connected layer, forward and backward, on top of the one GEMM entry point.
 *
 * Weights follow torch.nn.Linear's layout, w (out, in), so checkpoints and PyTorch references
 * map one to one. The bias is broadcast into y first and the GEMM accumulates onto it (beta = 1),
 * which saves a pass over y. The bias gradient is a column sum done serially in a fixed order,
 * so results are bitwise reproducible for a fixed thread count.
 */
#include "kernels.h"

#include <string.h>

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
    mer_sgemm(0, 1, n, out, in, 1.0f, x, in, w, in, beta, y, out);
}

// ref: autograd of torch.nn.functional.linear
void mer__linear_bwd(float *dx, float *dw, float *db, const float *dy, const float *x,
                     const float *w, int64_t n, int64_t in, int64_t out) {
    if (n <= 0 || out <= 0) return;
    if (dx && in > 0) mer_sgemm(0, 0, n, in, out, 1.0f, dy, out, w, in, 1.0f, dx, in);
    if (dw && in > 0) mer_sgemm(1, 0, out, in, n, 1.0f, dy, out, x, in, 1.0f, dw, in);
    if (db) {
        for (int64_t i = 0; i < n; i++) {
            const float *r = dy + i * out;
            for (int64_t j = 0; j < out; j++) db[j] += r[j];
        }
    }
}
