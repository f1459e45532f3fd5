/*
 * resize.c -- image resampling that reproduces Pillow's Image.resize(BICUBIC) to the pixel, and
 * the center crop of Hugging Face image processors.
 *
 * Why exact: CLIP checkpoints were trained on images resized by PIL, and the feature extractors
 * of MERTools run transformers' CLIPImageProcessor, which resizes through PIL. Any other bicubic
 * (OpenCV, swscale, torchvision tensors) differs by several levels near edges and, when
 * shrinking, by the absence of antialiasing.
 *
 * Pillow's algorithm (libImaging/Resample.c, ImagingResample for 8-bit images), followed here:
 *  - separable: a horizontal pass into an 8-bit intermediate (clipped), then a vertical pass;
 *    a pass whose size does not change is skipped;
 *  - for each output index xx: center = (xx + 0.5) * scale with scale = in / out; the filter is
 *    stretched by max(scale, 1) (antialiasing when shrinking): support = 2 * max(scale, 1);
 *    taps x in [int(center - support + 0.5), int(center + support + 0.5)) clamped to the image,
 *    weight = bicubic((x - center + 0.5) / max(scale, 1)) with a = -0.5, weights normalised to
 *    sum 1 (in double);
 *  - weights go to fixed point with PRECISION_BITS = 22 (rounded half away from zero), sums
 *    start at 1 << 21 (rounding), result = clamp(sum >> 22, 0, 255).
 * ref: PIL.Image.Image.resize(size, resample=PIL.Image.BICUBIC)
 */
#include "kernels.h"

#include <limits.h>
#include <math.h>
#include <string.h>

#define PRECISION_BITS (32 - 8 - 2)

static double bicubic(double x) {
    const double a = -0.5;
    if (x < 0.0) x = -x;
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
    if (x < 2.0) return (((x - 5.0) * x + 8.0) * x - 4.0) * a;
    return 0.0;
}

/* Taps of one pass: for output i, source indices bounds[2i] .. bounds[2i] + bounds[2i+1] - 1
 * with fixed-point weights kk[i * ksize + j]. */
typedef struct {
    int ksize;
    int *bounds;
    int32_t *kk;
} taps;

static void taps_free(taps *t) {
    mer__free(t->bounds);
    mer__free(t->kk);
    t->bounds = NULL;
    t->kk = NULL;
}

static mer_status taps_init(taps *t, int in_size, int out_size) {
    double scale = (double)in_size / out_size;
    double filterscale = scale < 1.0 ? 1.0 : scale;
    double support = 2.0 * filterscale;
    int ksize = (int)ceil(support) * 2 + 1;
    t->ksize = ksize;
    t->bounds = mer__alloc((size_t)out_size * 2 * sizeof(int));
    t->kk = mer__alloc((size_t)out_size * (size_t)ksize * sizeof(int32_t));
    double *w = mer__alloc((size_t)ksize * sizeof(double));
    if (!t->bounds || !t->kk || !w) {
        mer__free(w);
        taps_free(t);
        return mer__err(MER_ERR_NOMEM, "resize: no memory for %d x %d filter taps", out_size, ksize);
    }
    double ss = 1.0 / filterscale;
    for (int xx = 0; xx < out_size; xx++) {
        double center = (xx + 0.5) * scale;
        /* (int) truncates toward zero as in Pillow; negatives are clamped to 0 right after */
        int xmin = (int)(center - support + 0.5);
        if (xmin < 0) xmin = 0;
        int xmax = (int)(center + support + 0.5);
        if (xmax > in_size) xmax = in_size;
        xmax -= xmin;
        double ww = 0.0;
        for (int x = 0; x < xmax; x++) {
            w[x] = bicubic((x + xmin - center + 0.5) * ss);
            ww += w[x];
        }
        int32_t *k = &t->kk[(size_t)xx * ksize];
        for (int x = 0; x < ksize; x++) {
            double v = x < xmax ? (ww != 0.0 ? w[x] / ww : w[x]) : 0.0;
            k[x] = v < 0 ? (int32_t)(-0.5 + v * (1 << PRECISION_BITS))
                         : (int32_t)(0.5 + v * (1 << PRECISION_BITS));
        }
        t->bounds[2 * xx] = xmin;
        t->bounds[2 * xx + 1] = xmax;
    }
    mer__free(w);
    return MER_OK;
}

static inline uint8_t clip8(int32_t ss) {
    int32_t v = ss >> PRECISION_BITS; /* arithmetic shift, as Pillow's lookup index */
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

typedef struct {
    const taps *t;
    const uint8_t *src;
    uint8_t *dst;
    int src_w, dst_w, channels;
    int row_offset; /* first source row used (horizontal pass) */
} pass_job;

static void horizontal_rows(void *u, int64_t y0, int64_t y1, int ti) {
    (void)ti;
    const pass_job *j = u;
    const int c = j->channels, ks = j->t->ksize;
    for (int64_t y = y0; y < y1; y++) {
        const uint8_t *in = j->src + (size_t)(y + j->row_offset) * j->src_w * c;
        uint8_t *out = j->dst + (size_t)y * j->dst_w * c;
        for (int xx = 0; xx < j->dst_w; xx++) {
            int xmin = j->t->bounds[2 * xx], xmax = j->t->bounds[2 * xx + 1];
            const int32_t *k = &j->t->kk[(size_t)xx * ks];
            for (int ch = 0; ch < c; ch++) {
                int32_t ss = 1 << (PRECISION_BITS - 1);
                for (int x = 0; x < xmax; x++) ss += (int32_t)in[(x + xmin) * c + ch] * k[x];
                out[xx * c + ch] = clip8(ss);
            }
        }
    }
}

static void vertical_rows(void *u, int64_t y0, int64_t y1, int ti) {
    (void)ti;
    const pass_job *j = u;
    const int ks = j->t->ksize;
    const int64_t row = (int64_t)j->dst_w * j->channels; /* same width in and out */
    for (int64_t yy = y0; yy < y1; yy++) {
        int ymin = j->t->bounds[2 * yy], ymax = j->t->bounds[2 * yy + 1];
        const int32_t *k = &j->t->kk[(size_t)yy * ks];
        uint8_t *out = j->dst + yy * row;
        for (int64_t i = 0; i < row; i++) {
            int32_t ss = 1 << (PRECISION_BITS - 1);
            for (int y = 0; y < ymax; y++) ss += (int32_t)j->src[(int64_t)(y + ymin) * row + i] * k[y];
            out[i] = clip8(ss);
        }
    }
}

// ref: PIL.Image.Image.resize((dw, dh), resample=PIL.Image.BICUBIC) on an 8-bit image
mer_status mer__resize_bicubic_u8(uint8_t *dst, int32_t dw, int32_t dh, const uint8_t *src,
                                  int32_t sw, int32_t sh, int32_t channels) {
    if (!dst || !src || dw <= 0 || dh <= 0 || sw <= 0 || sh <= 0 || channels <= 0 || channels > 4)
        return mer__err(MER_ERR_INVALID_ARG, "resize: bad sizes %dx%d -> %dx%d (channels %d)", sw,
                        sh, dw, dh, channels);
    /* Pillow keeps sizes in int and tap tables in int; stay far below its overflow limits */
    if ((int64_t)dw * channels > INT_MAX / 4 || (int64_t)sw * channels > INT_MAX / 4 ||
        dh > INT_MAX / 64 || sh > INT_MAX / 64)
        return mer__err(MER_ERR_NOMEM, "resize: image too large (%dx%d -> %dx%d)", sw, sh, dw, dh);
    const int need_h = dw != sw, need_v = dh != sh;
    if (!need_h && !need_v) {
        memcpy(dst, src, (size_t)sw * sh * channels);
        return MER_OK;
    }
    taps tv = {0}, th = {0};
    mer_status s;
    int ybox_first = 0, ybox_last = sh;
    if (need_v) {
        if ((s = taps_init(&tv, sh, dh)) != MER_OK) return s;
        ybox_first = tv.bounds[0];
        ybox_last = tv.bounds[2 * dh - 2] + tv.bounds[2 * dh - 1];
    }
    uint8_t *tmp = NULL;
    const uint8_t *vin = src; /* input of the vertical pass */
    if (need_h) {
        if ((s = taps_init(&th, sw, dw)) != MER_OK) {
            taps_free(&tv);
            return s;
        }
        int rows = ybox_last - ybox_first;
        uint8_t *hout = dst;
        if (need_v) {
            tmp = mer__alloc((size_t)dw * rows * channels);
            if (!tmp) {
                taps_free(&tv);
                taps_free(&th);
                return mer__err(MER_ERR_NOMEM, "resize: no memory for a %dx%d intermediate", dw, rows);
            }
            hout = tmp;
            for (int i = 0; i < dh; i++) tv.bounds[2 * i] -= ybox_first;
        }
        pass_job j = {&th, src, hout, sw, dw, channels, need_v ? ybox_first : 0};
        mer__parallel_for(rows, 16, horizontal_rows, &j);
        taps_free(&th);
        vin = tmp;
    }
    if (need_v) {
        pass_job j = {&tv, vin, dst, dw, dw, channels, 0};
        mer__parallel_for(dh, 16, vertical_rows, &j);
    }
    mer__free(tmp);
    taps_free(&tv);
    return MER_OK;
}

// ref: transformers.image_transforms.center_crop (zero padding when the image is smaller)
void mer__center_crop_u8(uint8_t *dst, int32_t cw, int32_t chh, const uint8_t *src, int32_t sw,
                         int32_t sh, int32_t channels) {
    /* Python's floor division: negative offsets (image smaller than the crop) pad with zeros
     * centred the way transformers pads (ceil of half the missing size before the image). */
    int64_t top = (int64_t)sh - chh, left = (int64_t)sw - cw;
    top = top >= 0 ? top / 2 : -((-top + 1) / 2);
    left = left >= 0 ? left / 2 : -((-left + 1) / 2);
    for (int64_t y = 0; y < chh; y++) {
        int64_t sy = y + top;
        uint8_t *out = dst + (size_t)y * cw * channels;
        if (sy < 0 || sy >= sh) {
            memset(out, 0, (size_t)cw * channels);
            continue;
        }
        for (int64_t x = 0; x < cw; x++) {
            int64_t sx = x + left;
            for (int c = 0; c < channels; c++)
                out[x * channels + c] =
                    (sx < 0 || sx >= sw) ? 0 : src[((size_t)sy * sw + sx) * channels + c];
        }
    }
}
