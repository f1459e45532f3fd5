/*
 * conv2d.c -- 2-D convolution and pooling on one NHWC image (channels innermost), the layout
 * TensorFlow.js models use, so their HWIO filters are used as stored.
 *
 * Forward only (the face models are inference-only). Speed matters: these run on every video
 * frame. NHWC makes every inner loop run over contiguous channels: the 3x3 dense and depthwise
 * convolutions work on 16-channel vectors (GCC/Clang vector extensions) with accumulators in
 * registers, several output pixels per weight load; rows of the output are split over the
 * thread pool; 1x1 convolutions are one GEMM (mer_sgemm). Padding follows TensorFlow: explicit top/left pads, bottom/right implied by the
 * output size, padded taps contribute zero (convolution) or are skipped (pooling).
 */
#include "kernels.h"

#include <string.h>

/* Rows per parallel chunk given the work per output pixel: enough work (about 32k units) that
 * a chunk outweighs the cost of waking a thread, so the small deep layers run on one thread. */
static int64_t rows_per_chunk(int64_t ow, int64_t work_per_pixel) {
    int64_t per_row = ow * work_per_pixel > 0 ? ow * work_per_pixel : 1;
    int64_t r = 32768 / per_row;
    return r > 1 ? r : 1;
}

void mer__conv_same_padding(int64_t in, int64_t k, int64_t stride, int64_t *out,
                            int64_t *pad_before) {
    int64_t o = (in + stride - 1) / stride;
    int64_t total = (o - 1) * stride + k - in;
    if (total < 0) total = 0;
    *out = o;
    *pad_before = total / 2;
}

/* ---- dense convolution --------------------------------------------------------------------- */

typedef struct {
    float *y;
    const float *x, *w, *b;
    int64_t h, wd, cin, cout, kh, kw, stride, pad_t, pad_l, oh, ow;
} conv_args;

/* 16 floats as one value: GCC/Clang vector extensions compile to AVX-512 (or two AVX2) ops. */
typedef float v16f __attribute__((vector_size(64)));
static inline v16f ld16(const float *p) {
    v16f v;
    memcpy(&v, p, sizeof v);
    return v;
}
static inline void st16(float *p, v16f v) { memcpy(p, &v, sizeof v); }

/* The kernel-row span [kx0, kx1) of taps inside the image for output column ox. */
static inline void tap_span(const conv_args *a, int64_t ox, int64_t *ix0, int64_t *kx0,
                            int64_t *kx1) {
    *ix0 = ox * a->stride - a->pad_l;
    *kx0 = *ix0 < 0 ? -*ix0 : 0;
    *kx1 = *ix0 + a->kw > a->wd ? a->wd - *ix0 : a->kw;
}

/* cout = 16 * NV (NV = 1 or 2). Interior columns go 4 (NV = 1) or 2 (NV = 2) pixels at a time
 * so each weight vector loaded serves several pixels; the accumulators stay in registers. */
static void conv_rows_v(void *user, int64_t r0, int64_t r1, int ti) {
    const conv_args *a = user;
    const int64_t cin = a->cin, cout = a->cout, nv = cout / 16, kw = a->kw;
    const int64_t px = nv == 1 ? 4 : 2; /* pixels per block */
    /* interior columns: every tap of the kernel row inside the image */
    int64_t lo = 0, hi = a->ow;
    while (lo < a->ow && lo * a->stride - a->pad_l < 0) lo++;
    while (hi > lo && (hi - 1) * a->stride - a->pad_l + kw > a->wd) hi--;
    const v16f zero = {0};
    const v16f b0 = a->b ? ld16(a->b) : zero, b1 = a->b && nv == 2 ? ld16(a->b + 16) : zero;
    for (int64_t oy = r0; oy < r1; oy++) {
        const int64_t iy0 = oy * a->stride - a->pad_t;
        const int64_t ky0 = iy0 < 0 ? -iy0 : 0, ky1 = iy0 + a->kh > a->h ? a->h - iy0 : a->kh;
        float *yrow = a->y + oy * a->ow * cout;
        int64_t ox = 0;
        while (ox < a->ow) {
            if (ox >= lo && ox + px <= hi) {
                /* block of px interior pixels */
                v16f c0 = b0, c1 = b0, c2 = b0, c3 = b0;  /* NV=1: pixels 0..3 */
                if (nv == 2) c2 = b1, c3 = b1; /* NV=2: c0, c1 first halves of pixels 0, 1;
                                                * c2, c3 their second halves */
                for (int64_t ky = ky0; ky < ky1; ky++) {
                    const float *xr = a->x + ((iy0 + ky) * a->wd + ox * a->stride - a->pad_l) * cin;
                    const float *wr = a->w + ky * kw * cin * cout;
                    const int64_t nj = kw * cin, step = a->stride * cin;
                    if (nv == 1) {
                        for (int64_t j = 0; j < nj; j++) {
                            const v16f w = ld16(wr + j * 16);
                            c0 += xr[j] * w;
                            c1 += xr[j + step] * w;
                            c2 += xr[j + 2 * step] * w;
                            c3 += xr[j + 3 * step] * w;
                        }
                    } else {
                        for (int64_t j = 0; j < nj; j++) {
                            const v16f w0 = ld16(wr + j * 32), w1 = ld16(wr + j * 32 + 16);
                            c0 += xr[j] * w0;
                            c2 += xr[j] * w1;
                            c1 += xr[j + step] * w0;
                            c3 += xr[j + step] * w1;
                        }
                    }
                }
                float *yp = yrow + ox * cout;
                if (nv == 1) {
                    st16(yp, c0), st16(yp + 16, c1), st16(yp + 32, c2), st16(yp + 48, c3);
                } else {
                    st16(yp, c0), st16(yp + 16, c2), st16(yp + 32, c1), st16(yp + 48, c3);
                }
                ox += px;
                continue;
            }
            /* one pixel, any position */
            int64_t ix0, kx0, kx1;
            tap_span(a, ox, &ix0, &kx0, &kx1);
            v16f c0 = b0, c1 = b1;
            for (int64_t ky = ky0; ky < ky1; ky++) {
                const float *xr = a->x + ((iy0 + ky) * a->wd + ix0 + kx0) * cin;
                const float *wr = a->w + (ky * kw + kx0) * cin * cout;
                const int64_t nj = (kx1 - kx0) * cin;
                for (int64_t j = 0; j < nj; j++) {
                    c0 += xr[j] * ld16(wr + j * cout);
                    if (nv == 2) c1 += xr[j] * ld16(wr + j * cout + 16);
                }
            }
            st16(yrow + ox * cout, c0);
            if (nv == 2) st16(yrow + ox * cout + 16, c1);
            ox++;
        }
    }
}

/* Any cout: blocks of 16 output channels. */
static void conv_rows(void *user, int64_t r0, int64_t r1, int ti) {
    const conv_args *a = user;
    const int64_t cout = a->cout, cin = a->cin;
    for (int64_t oy = r0; oy < r1; oy++) {
        for (int64_t ox = 0; ox < a->ow; ox++) {
            float *yp = a->y + (oy * a->ow + ox) * cout;
            for (int64_t c0 = 0; c0 < cout; c0 += 16) {
                const int64_t nc = cout - c0 < 16 ? cout - c0 : 16;
                float acc[16];
                for (int64_t co = 0; co < nc; co++) acc[co] = a->b ? a->b[c0 + co] : 0.0f;
                for (int64_t ky = 0; ky < a->kh; ky++) {
                    int64_t iy = oy * a->stride + ky - a->pad_t;
                    if (iy < 0 || iy >= a->h) continue;
                    for (int64_t kx = 0; kx < a->kw; kx++) {
                        int64_t ix = ox * a->stride + kx - a->pad_l;
                        if (ix < 0 || ix >= a->wd) continue;
                        const float *xp = a->x + (iy * a->wd + ix) * cin;
                        const float *wp = a->w + (ky * a->kw + kx) * cin * cout + c0;
                        for (int64_t ci = 0; ci < cin; ci++) {
                            const float xv = xp[ci];
                            for (int64_t co = 0; co < nc; co++) acc[co] += xv * wp[ci * cout + co];
                        }
                    }
                }
                for (int64_t co = 0; co < nc; co++) yp[c0 + co] = acc[co];
            }
        }
    }
}

// ref: tf.conv2d (NHWC input, HWIO filter, dilation 1) + bias
void mer__conv2d_nhwc_fwd(float *y, const float *x, const float *w, const float *b, int64_t h,
                          int64_t wd, int64_t cin, int64_t cout, int64_t kh, int64_t kw,
                          int64_t stride, int64_t pad_t, int64_t pad_l, int64_t oh, int64_t ow) {
    if (kh == 1 && kw == 1 && stride == 1 && pad_t == 0 && pad_l == 0 && oh == h && ow == wd) {
        mer__pwconv_fwd(y, x, w, b, h * wd, cin, cout);
        return;
    }
    conv_args a = {y, x, w, b, h, wd, cin, cout, kh, kw, stride, pad_t, pad_l, oh, ow};
    mer__parallel_for(oh, rows_per_chunk(ow, cout * cin * kh * kw / 4 + 1),
                      cout == 16 || cout == 32 ? conv_rows_v : conv_rows, &a);
}

/* ---- pointwise (1x1) convolution: one GEMM ----------------------------------------------- */

// ref: tf.conv2d with a (1, 1, cin, cout) filter, i.e. torch.nn.functional.linear on rows
void mer__pwconv_fwd(float *y, const float *x, const float *w, const float *b, int64_t p,
                     int64_t cin, int64_t cout) {
    if (b) {
        for (int64_t i = 0; i < p; i++) memcpy(y + i * cout, b, (size_t)cout * sizeof(float));
    }
    mer_sgemm(0, 0, p, cout, cin, 1.0f, x, cin, w, cout, b ? 1.0f : 0.0f, y, cout);
}

/* ---- depthwise convolution (channel multiplier 1) ----------------------------------------- */

typedef struct {
    float *y;
    const float *x, *w, *b;
    int64_t h, wd, c, kh, kw, stride, pad_t, pad_l, oh, ow;
} dw_args;

static void dw_rows(void *user, int64_t r0, int64_t r1, int ti) {
    const dw_args *a = user;
    const int64_t c = a->c, cv = c - c % 16;
    const v16f zero = {0};
    for (int64_t oy = r0; oy < r1; oy++) {
        const int64_t iy0 = oy * a->stride - a->pad_t;
        const int64_t ky0 = iy0 < 0 ? -iy0 : 0, ky1 = iy0 + a->kh > a->h ? a->h - iy0 : a->kh;
        for (int64_t ox = 0; ox < a->ow; ox++) {
            float *yp = a->y + (oy * a->ow + ox) * c;
            const int64_t ix0 = ox * a->stride - a->pad_l;
            const int64_t kx0 = ix0 < 0 ? -ix0 : 0, kx1 = ix0 + a->kw > a->wd ? a->wd - ix0 : a->kw;
            /* 16 channels at a time, accumulator in a register */
            for (int64_t c0 = 0; c0 < cv; c0 += 16) {
                v16f acc = a->b ? ld16(a->b + c0) : zero;
                for (int64_t ky = ky0; ky < ky1; ky++) {
                    const float *xp = a->x + ((iy0 + ky) * a->wd + ix0) * c + c0;
                    const float *wp = a->w + ky * a->kw * c + c0;
                    for (int64_t kx = kx0; kx < kx1; kx++) acc += ld16(xp + kx * c) * ld16(wp + kx * c);
                }
                st16(yp + c0, acc);
            }
            for (int64_t ci = cv; ci < c; ci++) {
                float acc = a->b ? a->b[ci] : 0.0f;
                for (int64_t ky = ky0; ky < ky1; ky++)
                    for (int64_t kx = kx0; kx < kx1; kx++)
                        acc += a->x[((iy0 + ky) * a->wd + ix0 + kx) * c + ci] *
                               a->w[(ky * a->kw + kx) * c + ci];
                yp[ci] = acc;
            }
        }
    }
}

// ref: tf.depthwiseConv2d (NHWC, filter (kh, kw, c, 1)) + bias
void mer__dwconv2d_nhwc_fwd(float *y, const float *x, const float *w, const float *b, int64_t h,
                            int64_t wd, int64_t c, int64_t kh, int64_t kw, int64_t stride,
                            int64_t pad_t, int64_t pad_l, int64_t oh, int64_t ow) {
    dw_args a = {y, x, w, b, h, wd, c, kh, kw, stride, pad_t, pad_l, oh, ow};
    mer__parallel_for(oh, rows_per_chunk(ow, c * kh * kw / 4 + 1), dw_rows, &a);
}

/* ---- pooling ------------------------------------------------------------------------------ */

typedef struct {
    float *y;
    const float *x;
    int64_t h, wd, c, k, stride, pad_t, pad_l, oh, ow;
    int avg;
} pool_args;

static void pool_rows(void *user, int64_t r0, int64_t r1, int ti) {
    const pool_args *a = user;
    const int64_t c = a->c, cv = a->avg ? 0 : c - c % 16;
    for (int64_t oy = r0; oy < r1; oy++) {
        const int64_t iy0 = oy * a->stride - a->pad_t;
        const int64_t ky0 = iy0 < 0 ? -iy0 : 0, ky1 = iy0 + a->k > a->h ? a->h - iy0 : a->k;
        for (int64_t ox = 0; ox < a->ow; ox++) {
            const int64_t ix0 = ox * a->stride - a->pad_l;
            const int64_t kx0 = ix0 < 0 ? -ix0 : 0, kx1 = ix0 + a->k > a->wd ? a->wd - ix0 : a->k;
            float *yp = a->y + (oy * a->ow + ox) * c;
            const int64_t count = (ky1 - ky0) * (kx1 - kx0);
            if (count <= 0) {
                memset(yp, 0, (size_t)c * sizeof(float));
                continue;
            }
            const float *first = a->x + ((iy0 + ky0) * a->wd + ix0 + kx0) * c;
            /* max: 16 channels at a time in a local block the compiler keeps in a register */
            for (int64_t c0 = 0; c0 < cv; c0 += 16) {
                float m[16];
                memcpy(m, first + c0, sizeof m);
                for (int64_t ky = ky0; ky < ky1; ky++)
                    for (int64_t kx = kx0; kx < kx1; kx++) {
                        const float *xp = a->x + ((iy0 + ky) * a->wd + ix0 + kx) * c + c0;
#pragma omp simd
                        for (int i = 0; i < 16; i++) m[i] = xp[i] > m[i] ? xp[i] : m[i];
                    }
                memcpy(yp + c0, m, sizeof m);
            }
            for (int64_t ci = cv; ci < c; ci++) {
                float v = first[ci];
                for (int64_t ky = ky0; ky < ky1; ky++)
                    for (int64_t kx = kx0; kx < kx1; kx++) {
                        if (ky == ky0 && kx == kx0) continue;
                        const float x = a->x[((iy0 + ky) * a->wd + ix0 + kx) * c + ci];
                        if (a->avg) v += x;
                        else v = x > v ? x : v;
                    }
                yp[ci] = a->avg ? v / (float)count : v;
            }
        }
    }
}

// ref: tf.maxPool (NHWC; padded taps never win)
void mer__maxpool2d_nhwc_fwd(float *y, const float *x, int64_t h, int64_t wd, int64_t c,
                             int64_t k, int64_t stride, int64_t pad_t, int64_t pad_l, int64_t oh,
                             int64_t ow) {
    pool_args a = {y, x, h, wd, c, k, stride, pad_t, pad_l, oh, ow, 0};
    mer__parallel_for(oh, rows_per_chunk(ow, c * k * k / 4 + 1), pool_rows, &a);
}

// ref: tf.avgPool (NHWC; the mean over the taps inside the image)
void mer__avgpool2d_nhwc_fwd(float *y, const float *x, int64_t h, int64_t wd, int64_t c,
                             int64_t k, int64_t stride, int64_t pad_t, int64_t pad_l, int64_t oh,
                             int64_t ow) {
    pool_args a = {y, x, h, wd, c, k, stride, pad_t, pad_l, oh, ow, 1};
    mer__parallel_for(oh, rows_per_chunk(ow, c * k * k / 4 + 1), pool_rows, &a);
}
