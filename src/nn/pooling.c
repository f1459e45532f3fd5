/*
 * pooling.c -- mean pooling of each clip's rows in a batch of concatenated sequences.
 */
#include "nn/nn.h"

#include <string.h>

// ref: torch.mean(x_i, dim=0) for each clip i
void mer__mean_rows(float *out, int64_t ld, const float *x, const int64_t *off, int64_t n,
                    int64_t w) {
    for (int64_t i = 0; i < n; i++) {
        float *o = out + i * ld;
        memset(o, 0, (size_t)w * sizeof *o);
        int64_t t = off[i + 1] - off[i];
        for (int64_t r = off[i]; r < off[i + 1]; r++)
            for (int64_t j = 0; j < w; j++) o[j] += x[r * w + j];
        if (t > 0)
            for (int64_t j = 0; j < w; j++) o[j] /= (float)t;
    }
}

void mer__mean_rows_bwd(float *dx, const float *dout, int64_t ld, const int64_t *off, int64_t n,
                        int64_t w) {
    for (int64_t i = 0; i < n; i++) {
        int64_t t = off[i + 1] - off[i];
        if (t <= 0) continue;
        float s = 1.0f / (float)t;
        for (int64_t r = off[i]; r < off[i + 1]; r++)
            for (int64_t j = 0; j < w; j++) dx[r * w + j] += dout[i * ld + j] * s;
    }
}
