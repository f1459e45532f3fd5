/*
 * faces.c -- face detection (Tiny Face Detector) and facial expression recognition
 * (FaceExpressionNet) with the pretrained weights of face-api.js / @vladmandic/face-api 1.7.15.
 *
 * Each step mirrors the package's TypeScript source (src/tinyYolov2/TinyYolov2Base.ts,
 * src/faceFeatureExtractor/FaceFeatureExtractor.ts, src/dom/NetInput.ts, ...) so that results
 * agree with the original run by TensorFlow.js on the same pixels:
 *   detector:   pad the image to a square with zeros at the right/bottom, bilinear resize to
 *               input_size (TF legacy sampling: src = dst * in / out, no half-pixel offset),
 *               subtract the mean RGB, divide by 255; conv 3x3 valid + leaky(0.1), then five
 *               [maxpool 2x2 + (pad 1, depthwise 3x3, pointwise, bias, leaky)], the last pool
 *               with stride 1, and a 1x1 conv to 5 anchors x (x, y, w, h, score); sigmoid
 *               decoding on the grid, score threshold, NMS by IoU, boxes scaled to the image.
 *   expression: crop the box (clipped, floored), pad to a centred square, resize to 112,
 *               subtract another mean RGB, /255; four dense blocks (conv/separable-conv
 *               stride 2 then three separable convs with dense sums and ReLUs), 7x7 average
 *               pool, linear 256 -> 7, softmax.
 * Box arithmetic is done in double as JavaScript does; tensors are float32 as in TF.js.
 */
#include "kernels/kernels.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define DET_MANIFEST "tiny_face_detector_model-weights_manifest.json"
#define EXP_MANIFEST "face_expression_model-weights_manifest.json"
#define N_ANCHORS 5
#define EXP_SIZE 112

static const double det_anchors[N_ANCHORS][2] = {
    {1.603231, 2.094468}, {6.041143, 7.080126}, {2.882459, 3.518061},
    {4.266906, 5.178857}, {9.041765, 10.66308}};
static const float det_mean[3] = {117.001f, 114.697f, 97.404f};
static const float exp_mean[3] = {122.782f, 117.001f, 104.298f};
static const char *const expression_names[MER_FACE_EXPRESSIONS] = {
    "neutral", "happy", "sad", "angry", "fearful", "disgusted", "surprised"};

/* ---- weights ------------------------------------------------------------------------------ */

typedef struct {
    const float *dw;     /* (3, 3, cin) */
    const float *pw;     /* (cin, cout) */
    const float *b;      /* (cout) */
    int64_t cin, cout;
} sep_conv;

struct mer_faces {
    mer_tfjs *det_w, *exp_w;
    /* detector */
    const float *conv0_w, *conv0_b;   /* (3, 3, 3, 16), (16) */
    sep_conv det_sep[5];              /* conv1..conv5: 16->32->64->128->256->512 */
    const float *conv8_w, *conv8_b;   /* (512, 25), (25) */
    /* expression */
    const float *d0_w, *d0_b;         /* dense0/conv0: (3, 3, 3, 32), (32) */
    sep_conv dense[4][4];             /* dense[b][0] unused for b == 0 */
    const float *fc_w, *fc_b;         /* (256, 7), (7) */
};

const char *mer_face_expression_name(int32_t i) {
    return i >= 0 && i < MER_FACE_EXPRESSIONS ? expression_names[i] : "?";
}

mer_faces_params mer_faces_default_params(void) {
    mer_faces_params p;
    memset(&p, 0, sizeof p);
    p.input_size = 416;
    p.min_score = 0.5f;
    p.iou_threshold = 0.4f;
    p.expressions = 1;
    return p;
}

mer_faces_model_params mer_faces_model_default_params(void) {
    mer_faces_model_params p;
    memset(&p, 0, sizeof p);
    p.expressions = 1;
    return p;
}

mer_faces_state_params mer_faces_state_default_params(void) {
    mer_faces_state_params p;
    memset(&p, 0, sizeof p);
    return p;
}

static mer_status get_w(const mer_tfjs *w, const char *name, int32_t ndim, int64_t a, int64_t b,
                        int64_t c, int64_t d, const float **out) {
    const int64_t shape[4] = {a, b, c, d};
    return mer_tfjs_get(w, name, ndim, shape, out);
}

static mer_status load_sep(const mer_tfjs *w, const char *prefix, int64_t cin, int64_t cout,
                           sep_conv *s) {
    char name[96];
    mer_status st;
    s->cin = cin;
    s->cout = cout;
    snprintf(name, sizeof name, "%s/depthwise_filter", prefix);
    if ((st = get_w(w, name, 4, 3, 3, cin, 1, &s->dw)) != MER_OK) return st;
    snprintf(name, sizeof name, "%s/pointwise_filter", prefix);
    if ((st = get_w(w, name, 4, 1, 1, cin, cout, &s->pw)) != MER_OK) return st;
    snprintf(name, sizeof name, "%s/bias", prefix);
    return get_w(w, name, 1, cout, 0, 0, 0, &s->b);
}

static mer_status bind_weights(mer_faces *m) {
    mer_status st;
    const mer_tfjs *w = m->det_w;
    if ((st = get_w(w, "conv0/filters", 4, 3, 3, 3, 16, &m->conv0_w)) != MER_OK) return st;
    if ((st = get_w(w, "conv0/bias", 1, 16, 0, 0, 0, &m->conv0_b)) != MER_OK) return st;
    static const int64_t ch[6] = {16, 32, 64, 128, 256, 512};
    for (int i = 0; i < 5; i++) {
        char prefix[16];
        snprintf(prefix, sizeof prefix, "conv%d", i + 1);
        if ((st = load_sep(w, prefix, ch[i], ch[i + 1], &m->det_sep[i])) != MER_OK) return st;
    }
    if ((st = get_w(w, "conv8/filters", 4, 1, 1, 512, 25, &m->conv8_w)) != MER_OK) return st;
    if ((st = get_w(w, "conv8/bias", 1, 25, 0, 0, 0, &m->conv8_b)) != MER_OK) return st;

    if (!m->exp_w) return MER_OK; /* the detector only */
    w = m->exp_w;
    if ((st = get_w(w, "dense0/conv0/filters", 4, 3, 3, 3, 32, &m->d0_w)) != MER_OK) return st;
    if ((st = get_w(w, "dense0/conv0/bias", 1, 32, 0, 0, 0, &m->d0_b)) != MER_OK) return st;
    static const int64_t dch[5] = {32, 32, 64, 128, 256}; /* block b: in dch[b], out dch[b+1] */
    for (int b = 0; b < 4; b++) {
        for (int c = b == 0 ? 1 : 0; c < 4; c++) {
            char prefix[32];
            snprintf(prefix, sizeof prefix, "dense%d/conv%d", b, c);
            int64_t cin = c == 0 ? dch[b] : dch[b + 1];
            if ((st = load_sep(w, prefix, cin, dch[b + 1], &m->dense[b][c])) != MER_OK) return st;
        }
    }
    if ((st = get_w(w, "fc/weights", 2, 256, 7, 0, 0, &m->fc_w)) != MER_OK) return st;
    return get_w(w, "fc/bias", 1, 7, 0, 0, 0, &m->fc_b);
}

mer_status mer_faces_load(mer_faces **out, const char *dir, const mer_faces_model_params *p) {
    if (!out) return mer__err(MER_ERR_INVALID_ARG, "mer_faces_load: NULL argument");
    *out = NULL;
    const mer_faces_model_params par = p ? *p : mer_faces_model_default_params();
    if (!dir) dir = getenv("MER_FACE_MODELS");
    char *bundled = NULL; /* the installed or source-tree copy, never the working directory */
    if (!dir || !dir[0]) {
        mer_status ds = mer_data_path("models/face-api", &bundled);
        if (ds != MER_OK) return ds;
        dir = bundled;
    }
    mer_faces *m = calloc(1, sizeof *m);
    if (!m) {
        free(bundled);
        return mer__err(MER_ERR_NOMEM, "out of memory");
    }
    size_t n = strlen(dir) + sizeof(DET_MANIFEST) + sizeof(EXP_MANIFEST) + 2;
    char *path = malloc(n);
    if (!path) {
        free(m);
        free(bundled);
        return mer__err(MER_ERR_NOMEM, "out of memory");
    }
    mer_status st;
    snprintf(path, n, "%s/%s", dir, DET_MANIFEST);
    st = mer_tfjs_load(&m->det_w, path);
    if (st == MER_OK && par.expressions) {
        snprintf(path, n, "%s/%s", dir, EXP_MANIFEST);
        st = mer_tfjs_load(&m->exp_w, path);
    }
    free(path);
    if (st == MER_OK) st = bind_weights(m);
    if (st != MER_OK) {
        mer__err_prefix("face models in %s", dir);
        mer_faces_free(m);
        free(bundled);
        return st;
    }
    free(bundled);
    *out = m;
    return MER_OK;
}

void mer_faces_free(mer_faces *m) {
    if (!m) return;
    mer_tfjs_free(m->det_w);
    mer_tfjs_free(m->exp_w);
    free(m);
}

/* ---- per-thread scratch ------------------------------------------------------------------- */

struct mer_faces_state {
    float *buf;
    size_t cap;   /* floats */
    mer_faces_state_params par;
};

mer_status mer_faces_state_init(mer_faces_state **out, const mer_faces_state_params *p) {
    if (!out) return mer__err(MER_ERR_INVALID_ARG, "mer_faces_state_init: NULL argument");
    *out = calloc(1, sizeof **out);
    if (!*out) return mer__err(MER_ERR_NOMEM, "out of memory");
    (*out)->par = p ? *p : mer_faces_state_default_params();
    return MER_OK;
}

void mer_faces_state_free(mer_faces_state *s) {
    if (!s) return;
    mer__free(s->buf);
    free(s);
}

static float *state_floats(mer_faces_state *s, size_t n) {
    if (n > s->cap) {
        mer__free(s->buf);
        s->cap = 0;
        s->buf = mer__alloc(n * sizeof(float));
        if (!s->buf) return NULL;
        s->cap = n;
    }
    return s->buf;
}

/* ---- small ops ---------------------------------------------------------------------------- */

/* leaky(x) as the package writes it: relu(x - 0.1x) + 0.1x (equal to max(x, 0.1x) up to one
 * rounding, which we keep for faithfulness). */
static void leaky_inplace(float *x, int64_t n) {
    const float a = 0.10000000149011612f;
#pragma omp simd
    for (int64_t i = 0; i < n; i++) {
        float mn = x[i] * a, d = x[i] - mn;
        x[i] = (d > 0.0f ? d : 0.0f) + mn;
    }
}

static void relu_inplace(float *x, int64_t n) {
#pragma omp simd
    for (int64_t i = 0; i < n; i++) x[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

/* Pad the RGB8 image to a square side s with zeros (before: pad_t rows / pad_l cols, the rest
 * after), then resize bilinearly to out x out with TensorFlow's legacy sampling
 * (alignCorners = false, halfPixelCenters = false), then (v - mean) / 255. out_img (out, out, 3);
 * work holds 6 * out floats. out <= 4096 (checked by the callers). The interpolation is
 * horizontal first, top = tl + (tr - tl) * fx, then vertical, as TensorFlow computes it, so a
 * horizontally interpolated source row is computed once and reused by the output rows that
 * need it. */
static void prep_square(float *out_img, int32_t out, const uint8_t *rgb, int32_t w, int32_t h,
                        int32_t s, int32_t pad_t, int32_t pad_l, const float mean[3],
                        float *work) {
    const float scale = (float)s / (float)out;
    int32_t cx0[4096], cx1[4096];   /* source columns, -1 inside the zero padding */
    float cfx[4096];
    for (int32_t ox = 0; ox < out; ox++) {
        float sx = out == s ? (float)ox : (float)ox * scale;
        int32_t x0 = (int32_t)floorf(sx);
        int32_t x1 = x0 + 1 < s ? x0 + 1 : s - 1;
        cfx[ox] = sx - (float)x0;
        x0 -= pad_l, x1 -= pad_l;
        cx0[ox] = x0 >= 0 && x0 < w ? x0 : -1;
        cx1[ox] = x1 >= 0 && x1 < w ? x1 : -1;
    }
    float *rows[2] = {work, work + 3 * out};
    int32_t have[2] = {-2, -2};   /* which padded-square row each buffer holds */
    for (int32_t oy = 0; oy < out; oy++) {
        float sy = out == s ? (float)oy : (float)oy * scale;
        int32_t y0 = (int32_t)floorf(sy);
        int32_t y1 = y0 + 1 < s ? y0 + 1 : s - 1;
        float fy = sy - (float)y0;
        const float *r[2];
        const int32_t ys[2] = {y0, y1};
        for (int k = 0; k < 2; k++) {
            int slot = have[0] == ys[k] ? 0 : have[1] == ys[k] ? 1 : -1;
            if (slot < 0) {
                /* reuse the buffer not holding the other row this output row needs */
                slot = have[0] == ys[1 - k] ? 1 : 0;
                float *d = rows[slot];
                const int32_t sy0 = ys[k] - pad_t;
                const uint8_t *src = sy0 >= 0 && sy0 < h ? rgb + (int64_t)sy0 * w * 3 : NULL;
                for (int32_t ox = 0; ox < out; ox++) {
                    const int32_t a = cx0[ox], b = cx1[ox];
                    for (int c = 0; c < 3; c++) {
                        float tl = src && a >= 0 ? src[a * 3 + c] : 0.0f;
                        float tr = src && b >= 0 ? src[b * 3 + c] : 0.0f;
                        d[ox * 3 + c] = tl + (tr - tl) * cfx[ox];
                    }
                }
                have[slot] = ys[k];
            }
            r[k] = rows[slot];
        }
        float *o = out_img + (int64_t)oy * out * 3;
        const float m0 = mean[0], m1 = mean[1], m2 = mean[2];
        for (int32_t i = 0; i < out; i++) {
            o[3 * i + 0] = ((r[0][3 * i + 0] + (r[1][3 * i + 0] - r[0][3 * i + 0]) * fy) - m0) / 255.0f;
            o[3 * i + 1] = ((r[0][3 * i + 1] + (r[1][3 * i + 1] - r[0][3 * i + 1]) * fy) - m1) / 255.0f;
            o[3 * i + 2] = ((r[0][3 * i + 2] + (r[1][3 * i + 2] - r[0][3 * i + 2]) * fy) - m2) / 255.0f;
        }
    }
}

/* y = separable conv of x (h, w, cin) with padding 'same' (stride 1 or 2), + bias.
 * tmp holds the depthwise output (oh, ow, cin). Returns the output side via *oh, *ow. */
static void sep_conv_fwd(float *y, float *tmp, const float *x, const sep_conv *s, int64_t h,
                         int64_t w, int64_t stride, int64_t *oh, int64_t *ow) {
    int64_t pt, pl;
    mer__conv_same_padding(h, 3, stride, oh, &pt);
    mer__conv_same_padding(w, 3, stride, ow, &pl);
    mer__dwconv2d_nhwc_fwd(tmp, x, s->dw, NULL, h, w, s->cin, 3, 3, stride, pt, pl, *oh, *ow);
    mer__pwconv_fwd(y, tmp, s->pw, s->b, *oh * *ow, s->cin, s->cout);
}

static void maxpool2(float *y, const float *x, int64_t h, int64_t w, int64_t c, int64_t stride,
                     int64_t *oh, int64_t *ow) {
    int64_t pt, pl;
    mer__conv_same_padding(h, 2, stride, oh, &pt);
    mer__conv_same_padding(w, 2, stride, ow, &pl);
    mer__maxpool2d_nhwc_fwd(y, x, h, w, c, 2, stride, pt, pl, *oh, *ow);
}

/* ---- detector ----------------------------------------------------------------------------- */

typedef struct {
    double x0, y0, x1, y1;   /* relative box (fractions of the image) */
    double score;
} cand;

static double sigmoid_d(double x) { return 1.0 / (1.0 + exp(-x)); }

static double iou_d(const cand *a, const cand *b, double s) {
    double ax0 = a->x0 * s, ay0 = a->y0 * s, aw = (a->x1 - a->x0) * s, ah = (a->y1 - a->y0) * s;
    double bx0 = b->x0 * s, by0 = b->y0 * s, bw = (b->x1 - b->x0) * s, bh = (b->y1 - b->y0) * s;
    double iw = fmin(ax0 + aw, bx0 + bw) - fmax(ax0, bx0);
    double ih = fmin(ay0 + ah, by0 + bh) - fmax(ay0, by0);
    if (iw < 0) iw = 0;
    if (ih < 0) ih = 0;
    double inter = iw * ih;
    return inter / (aw * ah + bw * bh - inter);
}

/* Forward of the detector: returns the raw (cells, cells, 25) output in *out (inside the
 * state buffer) and the grid size. */
static mer_status detector_forward(const mer_faces *m, mer_faces_state *st, const mer_image *img,
                                   int32_t S, const float **out, int64_t *cells) {
    const int32_t side = img->width > img->height ? img->width : img->height;
    /* largest activation: conv0 output (S-2)^2 x 16; the separable layers stay below it */
    const int64_t s0 = S - 2;
    const size_t act = (size_t)(s0 * s0 * 16 > (int64_t)S * S * 3 ? s0 * s0 * 16 : (int64_t)S * S * 3);
    float *buf = state_floats(st, 3 * act);
    if (!buf) return mer__err(MER_ERR_NOMEM, "faces: out of memory for a %dx%d input", S, S);
    float *a = buf, *b = buf + act, *t = buf + 2 * act;

    prep_square(a, S, img->rgb, img->width, img->height, side, 0, 0, det_mean, t);
    /* conv0 (3x3 valid) and its 2x2 max pool in bands of 16 conv rows, so the conv output is
     * pooled while still in cache instead of going through memory as one (S-2)^2 x 16 map.
     * s0 = S - 2 is even (S is a multiple of 32): the 'same' pool needs no padding and bands
     * of even height pool independently. Leaky ReLU is increasing, so it commutes with max
     * pooling: it is applied after the pool to 4x fewer values (bit-identical result). */
    const int64_t band = 16;
    for (int64_t r0 = 0; r0 < s0; r0 += band) {
        const int64_t rows = s0 - r0 < band ? s0 - r0 : band;
        mer__conv2d_nhwc_fwd(t, a + r0 * S * 3, m->conv0_w, m->conv0_b, rows + 2, S, 3, 16, 3, 3,
                             1, 0, 0, rows, s0);
        mer__maxpool2d_nhwc_fwd(b + (r0 / 2) * (s0 / 2) * 16, t, rows, s0, 16, 2, 2, 0, 0,
                                rows / 2, s0 / 2);
    }
    int64_t h = s0 / 2, w = s0 / 2, oh, ow;
    leaky_inplace(b, h * w * 16);
    float *cur = b, *oth = a;   /* cur: the current activation; oth: free for the next one */
    for (int i = 0; i < 5; i++) {
        const sep_conv *s = &m->det_sep[i];
        /* explicit pad 1 then 'valid' 3x3 == zero padding 1 on every side */
        mer__dwconv2d_nhwc_fwd(t, cur, s->dw, NULL, h, w, s->cin, 3, 3, 1, 1, 1, h, w);
        mer__pwconv_fwd(oth, t, s->pw, s->b, h * w, s->cin, s->cout);
        maxpool2(cur, oth, h, w, s->cout, i < 4 ? 2 : 1, &oh, &ow);
        h = oh, w = ow;
        leaky_inplace(cur, h * w * s->cout);
    }
    a = cur, b = oth;
    mer__pwconv_fwd(b, a, m->conv8_w, m->conv8_b, h * w, 512, 25);
    *out = b;
    *cells = h;
    return MER_OK;
}

static mer_status check_image(const mer_image *img, const char *what) {
    if (!img || !img->rgb || img->width <= 0 || img->height <= 0)
        return mer__err(MER_ERR_INVALID_ARG, "faces: %s is empty", what);
    if ((int64_t)img->width * img->height > ((int64_t)1 << 31) / 3)
        return mer__err(MER_ERR_SHAPE, "faces: %s of %dx%d pixels is too large", what,
                        img->width, img->height);
    return MER_OK;
}

static int cmp_cand_score(const void *pa, const void *pb) {
    const cand *a = pa, *b = pb;
    return a->score < b->score ? -1 : a->score > b->score ? 1 : 0;
}

mer_status mer_faces_detect(const mer_faces *m, mer_faces_state *st_in, const mer_image *img,
                            const mer_faces_params *p_in, mer_face **faces, int32_t *n) {
    if (!m || !faces || !n) return mer__err(MER_ERR_INVALID_ARG, "mer_faces_detect: NULL argument");
    *faces = NULL;
    *n = 0;
    mer_status rc = check_image(img, "image");
    if (rc != MER_OK) return rc;
    const mer_faces_params p = p_in ? *p_in : mer_faces_default_params();
    if (p.input_size < 32 || p.input_size > 4096 || p.input_size % 32)
        return mer__err(MER_ERR_INVALID_ARG, "faces: input size %d is not a multiple of 32 in "
                        "[32, 4096]", p.input_size);
    if (!(p.min_score > 0.0f && p.min_score < 1.0f))
        return mer__err(MER_ERR_INVALID_ARG, "faces: min score %g is not in (0, 1)",
                        (double)p.min_score);
    if (!(p.iou_threshold >= 0.0f && p.iou_threshold <= 1.0f))
        return mer__err(MER_ERR_INVALID_ARG, "faces: IoU threshold %g is not in [0, 1]",
                        (double)p.iou_threshold);
    if (p.expressions && !m->exp_w)
        return mer__err(MER_ERR_INVALID_ARG, "faces: expressions asked for, but the expression net was not "
                        "loaded (mer_faces_model_params.expressions = 0)");
    mer_faces_state *st = st_in;
    if (!st && (rc = mer_faces_state_init(&st, NULL)) != MER_OK) return rc;
    const mer_faces_state_params *sp = &st->par;
    const int threads = mer__threads_use(sp->n_threads);

    const float *out = NULL;
    int64_t cells = 0;
    cand *c = NULL;
    int64_t nc = 0;
    mer_face *res = NULL;
    int32_t nres = 0;
    if ((rc = mer__abort_check(sp->abort, sp->abort_user_data, "faces")) != MER_OK) goto done;
    rc = detector_forward(m, st, img, p.input_size, &out, &cells);
    if (rc != MER_OK) goto done;

    /* decode (TinyYolov2Base.extractBoxes); the correction factors undo the zero padding */
    const int32_t S = p.input_size;
    const double scale = (double)S / (img->width > img->height ? img->width : img->height);
    const double rw = round(img->width * scale), rh = round(img->height * scale);
    const double in_side = rw > rh ? rw : rh;
    const double cx = in_side / rw, cy = in_side / rh;
    c = malloc((size_t)(cells * cells * N_ANCHORS) * sizeof *c);
    if (!c) {
        rc = mer__err(MER_ERR_NOMEM, "faces: out of memory");
        goto done;
    }
    for (int64_t row = 0; row < cells; row++)
        for (int64_t col = 0; col < cells; col++)
            for (int a = 0; a < N_ANCHORS; a++) {
                const float *e = out + (row * cells + col) * 25 + a * 5;
                double score = sigmoid_d(e[4]);
                if (!(score > p.min_score)) continue;
                double ctx = ((col + sigmoid_d(e[0])) / cells) * cx;
                double cty = ((row + sigmoid_d(e[1])) / cells) * cy;
                double bw = ((exp(e[2]) * det_anchors[a][0]) / cells) * cx;
                double bh = ((exp(e[3]) * det_anchors[a][1]) / cells) * cy;
                double x = ctx - bw / 2, y = cty - bh / 2;
                c[nc++] = (cand){x, y, x + bw, y + bh, score};
            }

    /* NMS (ops/nonMaxSuppression.ts): stable ascending sort, take from the end */
    for (int64_t i = 1; i < nc; i++) { /* insertion sort: stable, and nc is small */
        cand v = c[i];
        int64_t j = i;
        while (j > 0 && cmp_cand_score(&c[j - 1], &v) > 0) {
            c[j] = c[j - 1];
            j--;
        }
        c[j] = v;
    }
    res = calloc(nc > 0 ? (size_t)nc : 1, sizeof *res);
    if (!res) {
        rc = mer__err(MER_ERR_NOMEM, "faces: out of memory");
        goto done;
    }
    int64_t left = nc;
    while (left > 0) {
        cand cur = c[--left];
        int64_t k = 0;
        for (int64_t i = 0; i < left; i++)
            if (iou_d(&cur, &c[i], S) <= p.iou_threshold) c[k++] = c[i];
        left = k;
        mer_face *f = &res[nres++];
        f->x = (float)(cur.x0 * img->width);
        f->y = (float)(cur.y0 * img->height);
        f->width = (float)((cur.x1 - cur.x0) * img->width);
        f->height = (float)((cur.y1 - cur.y0) * img->height);
        f->score = (float)cur.score;
        f->expression = -1;
    }

    if (p.expressions) {
        for (int32_t i = 0; i < nres; i++) {
            if ((rc = mer__abort_check(sp->abort, sp->abort_user_data, "faces")) != MER_OK) goto done;
            mer_image crop = {0};
            mer_status cs = mer_faces_crop(img, &res[i], &crop);
            if (cs != MER_OK && cs != MER_ERR_NOT_FOUND) {
                rc = cs;
                goto done;
            }
            if (cs == MER_OK) { /* NOT_FOUND: empty after clipping, no expression */
                rc = mer_faces_expression(m, st, &crop, res[i].expressions);
                mer_image_free(&crop);
                if (rc != MER_OK) goto done;
                int32_t best = 0;
                for (int32_t k = 1; k < MER_FACE_EXPRESSIONS; k++)
                    if (res[i].expressions[k] > res[i].expressions[best]) best = k;
                res[i].expression = best;
            }
            if (sp->progress) sp->progress(i + 1, nres, sp->progress_user_data);
        }
    }
done:
    mer__threads_use(threads);
    free(c);
    if (!st_in) mer_faces_state_free(st);
    if (rc != MER_OK) {
        free(res);
        return rc;
    }
    if (nres == 0) {
        free(res);
        res = NULL;
    }
    *faces = res;
    *n = nres;
    return MER_OK;
}

/* ---- crop and expression ------------------------------------------------------------------ */

mer_status mer_faces_crop(const mer_image *img, const mer_face *face, mer_image *out) {
    if (!out || !face) return mer__err(MER_ERR_INVALID_ARG, "mer_faces_crop: NULL argument");
    memset(out, 0, sizeof *out);
    mer_status rc = check_image(img, "image");
    if (rc != MER_OK) return rc;
    /* Box.clipAtImageBorders then floor, as dom/extractFaceTensors.ts */
    double x = face->x, y = face->y, r = (double)face->x + face->width,
           b = (double)face->y + face->height;
    double cxx = fmax(x, 0), cyy = fmax(y, 0);
    double cw = fmin(r - cxx, img->width - cxx), ch = fmin(b - cyy, img->height - cyy);
    if (!isfinite(cw) || !isfinite(ch))
        return mer__err(MER_ERR_INVALID_ARG, "faces: the box is not finite");
    int64_t ix = (int64_t)floor(cxx), iy = (int64_t)floor(cyy);
    int64_t iw = (int64_t)floor(cw), ih = (int64_t)floor(ch);
    if (iw <= 0 || ih <= 0 || ix >= img->width || iy >= img->height)
        return mer__err(MER_ERR_NOT_FOUND, "faces: the box (%.1f, %.1f, %.1f, %.1f) lies outside "
                        "the %dx%d image", face->x, face->y, face->width, face->height,
                        img->width, img->height);
    if (ix + iw > img->width) iw = img->width - ix;
    if (iy + ih > img->height) ih = img->height - iy;
    out->rgb = malloc((size_t)(iw * ih * 3));
    if (!out->rgb) return mer__err(MER_ERR_NOMEM, "faces: out of memory for a crop");
    for (int64_t r0 = 0; r0 < ih; r0++)
        memcpy(out->rgb + r0 * iw * 3, img->rgb + ((iy + r0) * img->width + ix) * 3,
               (size_t)(iw * 3));
    out->width = (int32_t)iw;
    out->height = (int32_t)ih;
    out->time = img->time;
    out->index = img->index;
    return MER_OK;
}

/* One dense block (faceFeatureExtractor/denseBlock.ts, denseBlock4). x (h, w, cin) -> out
 * (h/2, w/2, cout). s holds 5 buffers of the output size plus one for the depthwise temp. */
static void dense_block(const mer_faces *m, int bi, const float *x, int64_t h, int64_t w,
                        float *const bufs[6], int64_t *oh, int64_t *ow) {
    float *o1 = bufs[0], *o2 = bufs[1], *o3 = bufs[2], *o4 = bufs[3], *in = bufs[4],
          *tmp = bufs[5];
    int64_t cout;
    if (bi == 0) {
        int64_t pt, pl;
        mer__conv_same_padding(h, 3, 2, oh, &pt);
        mer__conv_same_padding(w, 3, 2, ow, &pl);
        cout = 32;
        mer__conv2d_nhwc_fwd(o1, x, m->d0_w, m->d0_b, h, w, 3, cout, 3, 3, 2, pt, pl, *oh, *ow);
    } else {
        cout = m->dense[bi][0].cout;
        sep_conv_fwd(o1, tmp, x, &m->dense[bi][0], h, w, 2, oh, ow);
    }
    const int64_t n = *oh * *ow * cout;
    int64_t sh, sw;
    relu_inplace(o1, n);
    sep_conv_fwd(o2, tmp, o1, &m->dense[bi][1], *oh, *ow, 1, &sh, &sw);
    for (int64_t i = 0; i < n; i++) {
        float v = o1[i] + o2[i];
        in[i] = v > 0.0f ? v : 0.0f;
    }
    sep_conv_fwd(o3, tmp, in, &m->dense[bi][2], *oh, *ow, 1, &sh, &sw);
    for (int64_t i = 0; i < n; i++) {
        float v = o1[i] + (o2[i] + o3[i]);
        in[i] = v > 0.0f ? v : 0.0f;
    }
    sep_conv_fwd(o4, tmp, in, &m->dense[bi][3], *oh, *ow, 1, &sh, &sw);
    for (int64_t i = 0; i < n; i++) {
        float v = o1[i] + (o2[i] + (o3[i] + o4[i]));
        in[i] = v > 0.0f ? v : 0.0f;
    }
}

static mer_status expression(const mer_faces *m, mer_faces_state *st_in, const mer_image *crop,
                             float probs[MER_FACE_EXPRESSIONS]);

mer_status mer_faces_expression(const mer_faces *m, mer_faces_state *st, const mer_image *crop,
                                float probs[MER_FACE_EXPRESSIONS]) {
    if (!m || !probs) return mer__err(MER_ERR_INVALID_ARG, "mer_faces_expression: NULL argument");
    const int threads = mer__threads_use(st ? st->par.n_threads : 0);
    mer_status rc = expression(m, st, crop, probs);
    mer__threads_use(threads);
    return rc;
}

static mer_status expression(const mer_faces *m, mer_faces_state *st_in, const mer_image *crop,
                             float probs[MER_FACE_EXPRESSIONS]) {
    mer_status rc = check_image(crop, "face crop");
    if (rc != MER_OK) return rc;
    if (!m->exp_w)
        return mer__err(MER_ERR_INVALID_ARG, "faces: the expression net was not loaded "
                        "(mer_faces_model_params.expressions = 0)");
    mer_faces_state *st = st_in;
    if (!st && (rc = mer_faces_state_init(&st, NULL)) != MER_OK) return rc;

    /* buffers: input 112^2 x 3, then per block 6 buffers of at most 56^2 x 32 floats, and the
     * block output ping-pongs between two regions */
    const size_t blk = 56 * 56 * 32;
    float *buf = state_floats(st, (size_t)EXP_SIZE * EXP_SIZE * 3 + 6 * blk + 2 * blk);
    if (!buf) {
        if (!st_in) mer_faces_state_free(st);
        return mer__err(MER_ERR_NOMEM, "faces: out of memory");
    }
    float *x = buf;
    float *bufs[6];
    for (int i = 0; i < 6; i++) bufs[i] = buf + EXP_SIZE * EXP_SIZE * 3 + i * blk;
    float *pong[2] = {buf + EXP_SIZE * EXP_SIZE * 3 + 6 * blk, buf + EXP_SIZE * EXP_SIZE * 3 + 7 * blk};

    /* padToSquare(isCenterImage = true): round(diff / 2) after, the rest before */
    const int32_t w = crop->width, h = crop->height;
    const int32_t side = w > h ? w : h, diff = w > h ? w - h : h - w;
    const int32_t after = (int32_t)floor(diff * 0.5 + 0.5), before = diff - after;
    prep_square(x, EXP_SIZE, crop->rgb, w, h, side, h < w ? before : 0, w < h ? before : 0,
                exp_mean, bufs[5]);

    const float *cur = x;
    int64_t ch = EXP_SIZE, cw = EXP_SIZE, oh, ow, c = 3;
    for (int bi = 0; bi < 4; bi++) {
        dense_block(m, bi, cur, ch, cw, bufs, &oh, &ow);
        c = bi == 0 ? 32 : m->dense[bi][0].cout;
        memcpy(pong[bi & 1], bufs[4], (size_t)(oh * ow * c) * sizeof(float));
        cur = pong[bi & 1];
        ch = oh, cw = ow;
    }
    /* avgPool 7x7 stride 2 'valid' on the 7x7 map: one mean per channel */
    float feat[256];
    int64_t ph = (ch - 7) / 2 + 1, pw = (cw - 7) / 2 + 1;
    if (ph != 1 || pw != 1 || c != 256) {
        if (!st_in) mer_faces_state_free(st);
        return mer__err(MER_ERR_INTERNAL, "faces: unexpected feature map %lldx%lldx%lld",
                        (long long)ch, (long long)cw, (long long)c);
    }
    mer__avgpool2d_nhwc_fwd(feat, cur, ch, cw, c, 7, 2, 0, 0, 1, 1);
    float logits[MER_FACE_EXPRESSIONS];
    for (int k = 0; k < MER_FACE_EXPRESSIONS; k++) {
        float s = 0.0f;
        for (int i = 0; i < 256; i++) s += feat[i] * m->fc_w[i * MER_FACE_EXPRESSIONS + k];
        logits[k] = s + m->fc_b[k];
    }
    float mx = logits[0];
    for (int k = 1; k < MER_FACE_EXPRESSIONS; k++) mx = logits[k] > mx ? logits[k] : mx;
    float sum = 0.0f;
    for (int k = 0; k < MER_FACE_EXPRESSIONS; k++) sum += (probs[k] = expf(logits[k] - mx));
    for (int k = 0; k < MER_FACE_EXPRESSIONS; k++) probs[k] /= sum;
    if (!st_in) mer_faces_state_free(st);
    return MER_OK;
}

/* ---- clip summary ------------------------------------------------------------------------- */

void mer_faces_summary_add(mer_faces_summary *s, const mer_face *faces, int32_t n) {
    if (!s) return;
    s->frames++;
    if (!faces || n <= 0) return;
    int32_t best = 0;   /* the detector's order is best first, but do not rely on it */
    for (int32_t i = 1; i < n; i++)
        if (faces[i].score > faces[best].score) best = i;
    s->frames_with_face++;
    for (int k = 0; k < MER_FACE_EXPRESSIONS; k++) s->sum[k] += faces[best].expressions[k];
}

double mer_faces_summary_fraction(const mer_faces_summary *s) {
    return s && s->frames > 0 ? (double)s->frames_with_face / (double)s->frames : 0.0;
}

void mer_faces_summary_mean(const mer_faces_summary *s, float out[MER_FACE_EXPRESSIONS]) {
    for (int k = 0; k < MER_FACE_EXPRESSIONS; k++)
        out[k] = s && s->frames_with_face > 0 ? (float)(s->sum[k] / (double)s->frames_with_face)
                                              : 0.0f;
}

int32_t mer_faces_summary_top(const mer_faces_summary *s) {
    if (!s || s->frames_with_face <= 0) return -1;
    float mean[MER_FACE_EXPRESSIONS];
    mer_faces_summary_mean(s, mean);
    int32_t top = 0;
    for (int32_t k = 1; k < MER_FACE_EXPRESSIONS; k++)
        if (mean[k] > mean[top]) top = k;
    return top;
}
