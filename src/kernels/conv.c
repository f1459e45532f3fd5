/*
 * conv.c -- 1-D convolution as im2col + mer_sgemm, blocked over output time.
 *
 * The column matrix of one group and one block of output frames, (cin/groups * k, blk), is
 * built in a scratch buffer of bounded size (16 MB at most, whatever the input length), then
 * one GEMM writes that block of every output channel of the group straight into y with
 * ldc = tout. This keeps long inputs and the grouped positional convolution of wav2vec2/HuBERT
 * (k = 128) at GEMM speed without a full im2col copy of the input.
 */
#include "kernels.h"

#include <stdlib.h>
#include <string.h>

/* 16 MB of columns per block: the positional convolution of HuBERT-large (64 x 128 rows per
 * group) then runs as one GEMM per group for up to 512 frames (10 s of audio) */
#define CONV_SCRATCH_FLOATS ((int64_t)1 << 22)

typedef struct {
    float *cols;
    const float *x;   /* first input channel of the group */
    int64_t tin, k, stride, pad, t0, blk;
} im2col_job;

static void im2col_rows(void *u, int64_t r0, int64_t r1, int th) {
    (void)th;
    const im2col_job *j = u;
    for (int64_t r = r0; r < r1; r++) {
        const int64_t ci = r / j->k, kk = r % j->k;
        const float *xc = j->x + ci * j->tin;
        float *dst = j->cols + r * j->blk;
        int64_t pos = j->t0 * j->stride - j->pad + kk;
        if (j->stride == 1) {
            /* contiguous source: zero the out-of-range ends, copy the middle */
            int64_t a = 0, b = j->blk;
            if (pos < 0) a = -pos < b ? -pos : b;
            if (pos + b > j->tin) b = j->tin - pos > a ? j->tin - pos : a;
            memset(dst, 0, (size_t)a * sizeof(float));
            if (b > a) memcpy(dst + a, xc + pos + a, (size_t)(b - a) * sizeof(float));
            memset(dst + b, 0, (size_t)(j->blk - b) * sizeof(float));
        } else {
            for (int64_t t = 0; t < j->blk; t++, pos += j->stride)
                dst[t] = (pos >= 0 && pos < j->tin) ? xc[pos] : 0.0f;
        }
    }
}

typedef struct {
    float *y;
    const float *b;
    int64_t tout;
} bias_job;

static void bias_rows(void *u, int64_t r0, int64_t r1, int th) {
    (void)th;
    const bias_job *j = u;
    for (int64_t r = r0; r < r1; r++) {
        float *y = j->y + r * j->tout;
        const float bv = j->b[r];
        for (int64_t t = 0; t < j->tout; t++) y[t] += bv;
    }
}

// ref: torch.nn.functional.conv1d (batch 1, dilation 1, zero padding)
mer_status mer__conv1d_fwd(float *y, const float *x, const float *w, const float *b, int64_t cin,
                           int64_t tin, int64_t cout, int64_t k, int64_t stride, int64_t pad,
                           int64_t groups) {
    if (groups <= 0 || cin % groups || cout % groups || stride <= 0 || k <= 0)
        return mer__err(MER_ERR_INVALID_ARG, "conv1d: %lld groups, stride %lld, kernel %lld for "
                        "%lld -> %lld channels", (long long)groups, (long long)stride,
                        (long long)k, (long long)cin, (long long)cout);
    const int64_t tout = (tin + 2 * pad - k) / stride + 1;
    if (tout <= 0 || cout <= 0) return MER_OK;
    const int64_t cin_g = cin / groups, cout_g = cout / groups, rows = cin_g * k;
    int64_t blk = CONV_SCRATCH_FLOATS / rows;
    if (blk < 64) blk = 64;
    if (blk > tout) blk = tout;
    float *cols = malloc((size_t)rows * (size_t)blk * sizeof(float));
    if (!cols)
        return mer__err(MER_ERR_NOMEM, "conv1d: out of memory for %lld x %lld im2col scratch",
                        (long long)rows, (long long)blk);
    for (int64_t g = 0; g < groups; g++) {
        const float *wg = w + g * cout_g * rows;
        float *yg = y + g * cout_g * tout;
        for (int64_t t0 = 0; t0 < tout; t0 += blk) {
            int64_t nb = tout - t0 < blk ? tout - t0 : blk;
            im2col_job j = {cols, x + g * cin_g * tin, tin, k, stride, pad, t0, nb};
            mer__parallel_for(rows, 8, im2col_rows, &j);
            mer_sgemm(0, 0, cout_g, nb, rows, 1.0f, wg, rows, cols, nb, 0.0f, yg + t0, tout);
        }
    }
    free(cols);
    if (b) {
        bias_job bj = {y, b, tout};
        mer__parallel_for(cout, 4, bias_rows, &bj);
    }
    return MER_OK;
}
