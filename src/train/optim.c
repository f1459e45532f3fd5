/*
 * optim.c -- Adam / AdamW over one flat parameter buffer, and gradient clipping.
 *
 * The update follows torch.optim.Adam / AdamW (single-tensor path) operation by operation in
 * float32, with the bias corrections computed in double as Python does:
 *   g' = g + wd * p                           (Adam: coupled L2)     | p *= 1 - lr * wd (AdamW)
 *   m = b1 m + (1 - b1) g';  v = b2 v + (1 - b2) g'^2
 *   p -= (lr / (1 - b1^t)) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
 * One fused pass reads p, g, m, v once (the step is memory bound: ~1M parameters per step for
 * MER2024-sized features), split over the thread pool by contiguous ranges.
 */
/* The update is memory bound only if it vectorises; sqrtf must not set errno for that. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-math-errno")
#endif
#include "train/train.h"

#include <math.h>
#include <string.h>

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
    const float *g;
    float step_size, bc2_sqrt, decay_mul;
} step_job;

static void step_range(void *u, int64_t b, int64_t e, int t) {
    const step_job *j = u;
    const mer__optim *o = j->o;
    float *restrict p = j->p, *restrict m = o->m, *restrict v = o->v;
    const float *restrict g = j->g;
    const float b1 = o->beta1, b2 = o->beta2, ob1 = 1.0f - o->beta1, ob2 = 1.0f - o->beta2;
    const float eps = o->eps, ss = j->step_size, bc = j->bc2_sqrt, wd = o->weight_decay;
    if (o->type == MER_OPT_ADAMW) {
        const float dm = j->decay_mul;
        for (int64_t i = b; i < e; i++) {
            float pi = p[i] * dm, gi = g[i];
            float mi = m[i] * b1 + gi * ob1;
            float vi = v[i] * b2 + gi * gi * ob2;
            m[i] = mi;
            v[i] = vi;
            p[i] = pi - ss * (mi / (sqrtf(vi) / bc + eps));
        }
    } else {
        for (int64_t i = b; i < e; i++) {
            float gi = g[i] + wd * p[i];
            float mi = m[i] * b1 + gi * ob1;
            float vi = v[i] * b2 + gi * gi * ob2;
            m[i] = mi;
            v[i] = vi;
            p[i] = p[i] - ss * (mi / (sqrtf(vi) / bc + eps));
        }
    }
}

// ref: torch.optim.Adam / torch.optim.AdamW (foreach=False, maximize=False, amsgrad=False)
void mer__optim_step(mer__optim *o, float *params, const float *grads) {
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
