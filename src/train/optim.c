/*
 * optim.c -- Adam / AdamW over one flat parameter buffer, and gradient clipping.
 *
 * The update follows torch.optim.Adam / AdamW (single-tensor path) operation by operation in
 * float32, with the bias corrections computed in double as Python does:
 *   g' = g + wd * p                           (Adam: coupled L2)     | p *= 1 - lr * wd (AdamW)
 *   m = b1 m + (1 - b1) g';  v = b2 v + (1 - b2) g'^2
 *   p -= (lr / (1 - b1^t)) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
 * One fused pass reads p, g, m, v once and leaves g zeroed for the next step (the step is memory
 * bound: ~1M parameters per step for MER2024-sized features, so a separate memset pass costs
 * as much as a tenth of the step), split over the thread pool by contiguous ranges.
 */
#include "train/train.h"

#include <math.h>
#include <string.h>
#include <immintrin.h>

mer_status mer__optim_init(mer__optim *o, mer_optimizer type, int64_t n, float lr,
                           float weight_decay) {
    memset(o, 0, sizeof *o);
    o->type = type;
    o->lr = lr;
    o->beta1 = 0.9f;
    o->beta2 = 0.999f;
    o->eps = 1e-8f;
    o->weight_decay = weight_decay;
    o->n = n;
    o->m = mer__calloc((size_t)(n > 0 ? n : 1), sizeof(float));
    o->v = mer__calloc((size_t)(n > 0 ? n : 1), sizeof(float));
    if (!o->m || !o->v) {
        mer__optim_free(o);
        return mer__err(MER_ERR_NOMEM, "optimizer: %lld parameters do not fit", (long long)n);
    }
    return MER_OK;
}

void mer__optim_free(mer__optim *o) {
    if (!o) return;
    mer__free(o->m);
    mer__free(o->v);
    o->m = o->v = NULL;
}

typedef struct {
    const mer__optim *o;
    float *p;
    float *g;
    float step_size, bc2_sqrt, decay_mul;
} step_job;

/* The scalars of step t (1-based), as torch computes them: bias corrections in double. */
static step_job step_scalars(const mer__optim *o, int64_t t, float *params, float *grads) {
    double bc1 = 1.0 - pow((double)o->beta1, (double)t);
    double bc2 = 1.0 - pow((double)o->beta2, (double)t);
    step_job j = {.o = o,
                  .p = params,
                  .g = grads,
                  .step_size = (float)((double)o->lr / bc1),
                  .bc2_sqrt = (float)sqrt(bc2),
                  .decay_mul = 1.0f - o->lr * o->weight_decay};
    return j;
}

/* The update is memory bound only if it vectorises; compilers keep sqrtf scalar because of
 * errno, so the AVX-512 / AVX path is written with intrinsics. Every lane does the same IEEE
 * operations in the same order as the scalar tail (no FMA), so results do not depend on which
 * path ran or on where the thread split falls. */
static inline void step_scalar(float *restrict p, float *restrict m, float *restrict v,
                               const float *restrict g, int64_t b, int64_t e, const step_job *j,
                               int adamw) {
    const mer__optim *o = j->o;
    const float b1 = o->beta1, b2 = o->beta2, ob1 = 1.0f - o->beta1, ob2 = 1.0f - o->beta2;
    const float eps = o->eps, ss = j->step_size, bc = j->bc2_sqrt, wd = o->weight_decay;
    const float dm = j->decay_mul;
    for (int64_t i = b; i < e; i++) {
        float pi = adamw ? p[i] * dm : p[i];
        float gi = adamw ? g[i] : g[i] + wd * p[i];
        float mi = m[i] * b1 + gi * ob1;
        float vi = v[i] * b2 + (gi * gi) * ob2;
        m[i] = mi;
        v[i] = vi;
        p[i] = pi - ss * (mi / (sqrtf(vi) / bc + eps));
    }
}

/* The same on the lanes of mask k of p, m, v[0..16), gradient gv (AVX-512, chosen at run time). */
MER_AVX512 static inline void step_vec(float *p, float *m, float *v, __m512 gi, __mmask16 k,
                            const step_job *j, int adamw) {
    const mer__optim *o = j->o;
    const __m512 b1 = _mm512_set1_ps(o->beta1), b2 = _mm512_set1_ps(o->beta2);
    const __m512 ob1 = _mm512_set1_ps(1.0f - o->beta1), ob2 = _mm512_set1_ps(1.0f - o->beta2);
    const __m512 eps = _mm512_set1_ps(o->eps), ss = _mm512_set1_ps(j->step_size);
    const __m512 bc = _mm512_set1_ps(j->bc2_sqrt), wd = _mm512_set1_ps(o->weight_decay);
    const __m512 dm = _mm512_set1_ps(j->decay_mul);
    __m512 pi = _mm512_maskz_loadu_ps(k, p);
    if (adamw) pi = _mm512_mul_ps(pi, dm);
    else gi = _mm512_add_ps(gi, _mm512_mul_ps(wd, pi));
    __m512 mi = _mm512_add_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(k, m), b1), _mm512_mul_ps(gi, ob1));
    __m512 vi = _mm512_add_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(k, v), b2),
                              _mm512_mul_ps(_mm512_mul_ps(gi, gi), ob2));
    _mm512_mask_storeu_ps(m, k, mi);
    _mm512_mask_storeu_ps(v, k, vi);
    __m512 den = _mm512_add_ps(_mm512_div_ps(_mm512_sqrt_ps(vi), bc), eps);
    _mm512_mask_storeu_ps(p, k, _mm512_sub_ps(pi, _mm512_mul_ps(ss, _mm512_div_ps(mi, den))));
}

/* One row of w elements of p, m, v with gradient g (the gradient left as it is). */
MER_AVX512 static void step_row_avx512(float *p, float *m, float *v, const float *g, int64_t w,
                                       const step_job *j, int adamw) {
    for (int64_t c = 0; c < w; c += 16) {
        __mmask16 k = w - c >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (w - c)) - 1u);
        step_vec(p + c, m + c, v + c, _mm512_maskz_loadu_ps(k, g + c), k, j, adamw);
    }
}

MER_AVX512 static void step_range_avx512(const step_job *j, int64_t b, int64_t e) {
    const mer__optim *o = j->o;
    float *p = j->p, *m = o->m, *v = o->v, *g = j->g;
    const int adamw = o->type == MER_OPT_ADAMW;
    for (; b < e; b += 16) {
        __mmask16 k = e - b >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (e - b)) - 1u);
        step_vec(p + b, m + b, v + b, _mm512_maskz_loadu_ps(k, g + b), k, j, adamw);
        _mm512_mask_storeu_ps(g + b, k, _mm512_setzero_ps());
    }
}

/* Steps [b, e) and zeroes the gradient there. */
static void step_range(void *u, int64_t b, int64_t e, int t) {
    (void)t;
    const step_job *j = u;
    if (mer__use_avx512()) {
        step_range_avx512(j, b, e);
        return;
    }
    const mer__optim *o = j->o;
    float *p = j->p, *m = o->m, *v = o->v, *g = j->g;
    const int adamw = o->type == MER_OPT_ADAMW;
#if defined(__AVX__)
    const __m256 b1 = _mm256_set1_ps(o->beta1), b2 = _mm256_set1_ps(o->beta2);
    const __m256 ob1 = _mm256_set1_ps(1.0f - o->beta1), ob2 = _mm256_set1_ps(1.0f - o->beta2);
    const __m256 eps = _mm256_set1_ps(o->eps), ss = _mm256_set1_ps(j->step_size);
    const __m256 bc = _mm256_set1_ps(j->bc2_sqrt), wd = _mm256_set1_ps(o->weight_decay);
    const __m256 dm = _mm256_set1_ps(j->decay_mul);
    for (; b + 8 <= e; b += 8) {
        __m256 pi = _mm256_loadu_ps(p + b), gi = _mm256_loadu_ps(g + b);
        if (adamw) pi = _mm256_mul_ps(pi, dm);
        else gi = _mm256_add_ps(gi, _mm256_mul_ps(wd, pi));
        __m256 mi = _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(m + b), b1), _mm256_mul_ps(gi, ob1));
        __m256 vi = _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(v + b), b2),
                                  _mm256_mul_ps(_mm256_mul_ps(gi, gi), ob2));
        _mm256_storeu_ps(m + b, mi);
        _mm256_storeu_ps(v + b, vi);
        _mm256_storeu_ps(g + b, _mm256_setzero_ps());
        __m256 den = _mm256_add_ps(_mm256_div_ps(_mm256_sqrt_ps(vi), bc), eps);
        _mm256_storeu_ps(p + b, _mm256_sub_ps(pi, _mm256_mul_ps(ss, _mm256_div_ps(mi, den))));
    }
#endif
    if (b < e) {
        step_scalar(p, m, v, g, b, e, j, adamw);
        memset(g + b, 0, (size_t)(e - b) * sizeof(float));
    }
}

// ref: torch.optim.Adam / torch.optim.AdamW (foreach=False, maximize=False, amsgrad=False)
void mer__optim_step(mer__optim *o, float *params, float *grads) {
    o->t++;
    step_job j = step_scalars(o, o->t, params, grads);
    mer__parallel_for(o->n, 1 << 15, step_range, &j);
}

/* ---- the step fused into weight gradients ---------------------------------------------------
 * A first layer fed with features owns ~85% of the parameters of a MERTools-style model and its
 * weight gradient is used by nothing but the optimizer. Stepping those weights tile by tile as
 * the gradient GEMM produces them (mer__sgemm_small_tn_apply) saves writing the gradient, reading
 * it back and zeroing it: a quarter of the step's memory traffic. The arithmetic per element is
 * step_vec / step_scalar, so a fused step gives the same bits as the plain one. */

void mer__optim_fused_begin(mer__optim *o, mer__optim_fused *f) {
    memset(f, 0, sizeof *f);
    f->o = o;
}

typedef struct {
    const step_job *j;
    float *w; /* the weight (out, in) */
    int64_t in;
} fused_job;

static void fused_tile(void *u, int64_t i0, int64_t j0, int mr, int64_t w, const float *tile,
                       int64_t ldt) {
    const fused_job *fj = u;
    const step_job *j = fj->j;
    const mer__optim *o = j->o;
    const int adamw = o->type == MER_OPT_ADAMW;
    const int64_t base = fj->w - j->p; /* offset of the weight in the flat buffers */
    for (int r = 0; r < mr; r++) {
        int64_t off = base + (i0 + r) * fj->in + j0;
        float *p = j->p + off, *m = o->m + off, *v = o->v + off;
        const float *g = tile + r * ldt;
        if (mer__use_avx512()) step_row_avx512(p, m, v, g, w, j, adamw);
        else step_scalar(p, m, v, g, 0, w, j, adamw);
    }
}

int mer__optim_fused_wgrad(mer__optim_fused *f, float *params, int64_t w_off, const float *dy,
                           const float *x, int64_t n, int64_t in, int64_t out) {
    if (!f || f->n_done >= MER__FUSED_MAX) return 0;
    mer__optim *o = f->o;
    step_job j = step_scalars(o, o->t + 1, params, NULL);
    fused_job fj = {&j, params + w_off, in};
    /* dW (out, in) = dy^T (out, n) x (n, in) */
    if (!mer__sgemm_small_tn_apply(out, in, n, dy, out, x, in, fused_tile, &fj)) return 0;
    f->off[f->n_done] = w_off;
    f->len[f->n_done++] = out * in;
    return 1;
}

typedef struct {
    const step_job *j;
    int64_t base;
} range_job;

static void step_range_at(void *u, int64_t b, int64_t e, int t) {
    const range_job *r = u;
    step_range((void *)r->j, r->base + b, r->base + e, t);
}

void mer__optim_step_fused(mer__optim *o, float *params, float *grads, const mer__optim_fused *f) {
    o->t++;
    step_job j = step_scalars(o, o->t, params, grads);
    /* the ranges not stepped yet, in order */
    int64_t b = 0;
    for (;;) {
        int64_t next = o->n, len = 0;
        for (int32_t i = 0; i < f->n_done; i++)
            if (f->off[i] >= b && f->off[i] < next) {
                next = f->off[i];
                len = f->len[i];
            }
        if (next > b) mer__parallel_for(next - b, 1 << 15, step_range_at, &(range_job){&j, b});
        if (next >= o->n) break;
        b = next + len;
    }
}

// ref: torch.nn.utils.clip_grad_value_
void mer__clip_grad_value(float *g, int64_t n, float v) {
    for (int64_t i = 0; i < n; i++) g[i] = g[i] > v ? v : (g[i] < -v ? -v : g[i]);
}

// ref: torch.nn.utils.clip_grad_norm_(norm_type=2)
float mer__clip_grad_norm(float *g, int64_t n, float max_norm) {
    double ss = 0.0;
    for (int64_t i = 0; i < n; i++) ss += (double)g[i] * g[i];
    float norm = (float)sqrt(ss);
    float coef = max_norm / (norm + 1e-6f);
    if (coef < 1.0f)
        for (int64_t i = 0; i < n; i++) g[i] *= coef;
    return norm;
}

int mer__optim_fused_hook(void *user, float *params, int64_t w_off, const float *dy,
                          const float *x, int64_t n, int64_t in, int64_t out) {
    return mer__optim_fused_wgrad(user, params, w_off, dy, x, n, in, out);
}
