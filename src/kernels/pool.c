/*
 * pool.c -- pooling over time of one sequence x (t, d) into a vector (d): mean pooling and
 * attention pooling (a learned score per frame, softmax over time, weighted sum), forward and
 * backward. Backward accumulates (+=).
 */
#include "kernels.h"

#include <math.h>
#include <string.h>

// ref: torch.mean(x, dim=0)
void mer__mean_pool_fwd(float *y, const float *x, int64_t t, int64_t d) {
    memset(y, 0, (size_t)d * sizeof(float));
    if (t <= 0) return;
    for (int64_t i = 0; i < t; i++)
        for (int64_t j = 0; j < d; j++) y[j] += x[i * d + j];
    float s = 1.0f / (float)t;
    for (int64_t j = 0; j < d; j++) y[j] *= s;
}

void mer__mean_pool_bwd(float *dx, const float *dy, int64_t t, int64_t d) {
    if (t <= 0) return;
    float s = 1.0f / (float)t;
    for (int64_t i = 0; i < t; i++)
        for (int64_t j = 0; j < d; j++) dx[i * d + j] += dy[j] * s;
}

// ref: a = softmax(nn.Linear(d, 1)(x).squeeze(-1), dim=0); y = a @ x
void mer__attn_pool_fwd(float *y, float *a, const float *x, const float *w, float b, int64_t t,
                        int64_t d) {
    memset(y, 0, (size_t)d * sizeof(float));
    if (t <= 0) return;
    float mx = -INFINITY;
    for (int64_t i = 0; i < t; i++) {
        float s = b;
        for (int64_t j = 0; j < d; j++) s += x[i * d + j] * w[j];
        a[i] = s;
        mx = s > mx ? s : mx;
    }
    double sum = 0.0;
    for (int64_t i = 0; i < t; i++) {
        a[i] = expf(a[i] - mx);
        sum += a[i];
    }
    float inv = (float)(1.0 / sum);
    for (int64_t i = 0; i < t; i++) {
        a[i] *= inv;
        for (int64_t j = 0; j < d; j++) y[j] += a[i] * x[i * d + j];
    }
}

void mer__attn_pool_bwd(float *dx, float *dw, float *db, const float *dy, const float *a,
                        const float *x, const float *w, int64_t t, int64_t d) {
    if (t <= 0) return;
    /* da_i = dy . x_i; ds_i = a_i (da_i - sum_j a_j da_j) */
    double dot = 0.0;
    for (int64_t i = 0; i < t; i++) {
        double da = 0.0;
        for (int64_t j = 0; j < d; j++) da += (double)dy[j] * x[i * d + j];
        dot += a[i] * da;
    }
    for (int64_t i = 0; i < t; i++) {
        double da = 0.0;
        for (int64_t j = 0; j < d; j++) da += (double)dy[j] * x[i * d + j];
        float ds = (float)(a[i] * (da - dot));
        for (int64_t j = 0; j < d; j++) {
            if (dx) dx[i * d + j] += a[i] * dy[j] + ds * w[j];
            if (dw) dw[j] += ds * x[i * d + j];
        }
        if (db) *db += ds;
    }
}
