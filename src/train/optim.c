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
#if defined(__AVX512F__) || defined(__AVX__)
#include <immintrin.h>
#endif

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

/* The update is memory bound only if it vectorises; compilers keep sqrtf scalar because of
 * errno, so the AVX-512 / AVX path is written with intrinsics. Every lane does the same IEEE
 * operations in the same order as the scalar tail (no FMA), so results do not depend on which
 * path ran or on where the thread split falls. */
static inline void step_scalar(float *restrict p, float *restrict m, float *restrict v,
                               float *restrict g, int64_t b, int64_t e, const step_job *j,
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
        g[i] = 0.0f;
        p[i] = pi - ss * (mi / (sqrtf(vi) / bc + eps));
    }
}

static void step_range(void *u, int64_t b, int64_t e, int t) {
    const step_job *j = u;
    const mer__optim *o = j->o;
    float *p = j->p, *m = o->m, *v = o->v, *g = j->g;
    const int adamw = o->type == MER_OPT_ADAMW;
#if defined(__AVX512F__)
    const __m512 b1 = _mm512_set1_ps(o->beta1), b2 = _mm512_set1_ps(o->beta2);
    const __m512 ob1 = _mm512_set1_ps(1.0f - o->beta1), ob2 = _mm512_set1_ps(1.0f - o->beta2);
    const __m512 eps = _mm512_set1_ps(o->eps), ss = _mm512_set1_ps(j->step_size);
    const __m512 bc = _mm512_set1_ps(j->bc2_sqrt), wd = _mm512_set1_ps(o->weight_decay);
    const __m512 dm = _mm512_set1_ps(j->decay_mul);
    for (; b + 16 <= e; b += 16) {
        __m512 pi = _mm512_loadu_ps(p + b), gi = _mm512_loadu_ps(g + b);
        if (adamw) pi = _mm512_mul_ps(pi, dm);
        else gi = _mm512_add_ps(gi, _mm512_mul_ps(wd, pi));
        __m512 mi = _mm512_add_ps(_mm512_mul_ps(_mm512_loadu_ps(m + b), b1), _mm512_mul_ps(gi, ob1));
        __m512 vi = _mm512_add_ps(_mm512_mul_ps(_mm512_loadu_ps(v + b), b2),
                                  _mm512_mul_ps(_mm512_mul_ps(gi, gi), ob2));
        _mm512_storeu_ps(m + b, mi);
        _mm512_storeu_ps(v + b, vi);
        _mm512_storeu_ps(g + b, _mm512_setzero_ps());
        __m512 den = _mm512_add_ps(_mm512_div_ps(_mm512_sqrt_ps(vi), bc), eps);
        _mm512_storeu_ps(p + b, _mm512_sub_ps(pi, _mm512_mul_ps(ss, _mm512_div_ps(mi, den))));
    }
#elif defined(__AVX__)
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
    step_scalar(p, m, v, g, b, e, j, adamw);
}

// ref: torch.optim.Adam / torch.optim.AdamW (foreach=False, maximize=False, amsgrad=False)
void mer__optim_step(mer__optim *o, float *params, float *grads) {
    o->t++;
    double bc1 = 1.0 - pow((double)o->beta1, (double)o->t);
    double bc2 = 1.0 - pow((double)o->beta2, (double)o->t);
    step_job j = {.o = o,
                  .p = params,
                  .g = grads,
                  .step_size = (float)((double)o->lr / bc1),
                  .bc2_sqrt = (float)sqrt(bc2),
                  .decay_mul = 1.0f - o->lr * o->weight_decay};
    mer__parallel_for(o->n, 1 << 15, step_range, &j);
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
