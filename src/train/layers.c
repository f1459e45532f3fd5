/*
 * layers.c -- reusable trainable layers beyond linear/MLP (those are in model.c): LayerNorm
 * and multi-head attention (self or cross) over variable-length sequences. Each declares its
 * parameters by PyTorch name, saves what backward needs into the model's activation memory and
 * accumulates parameter gradients into m->grads.
 */
#include "train/train.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* ---- LayerNorm ---------------------------------------------------------------------------- */

mer_status mer__ln_declare(mer__model *m, mer__ln *l, const char *prefix, int64_t c) {
    char name[96];
    l->c = c;
    l->eps = 1e-5f;
    snprintf(name, sizeof name, "%s.weight", prefix);
    l->g = mer__model_param(m, name, 1, (int64_t[]){c});
    snprintf(name, sizeof name, "%s.bias", prefix);
    l->b = mer__model_param(m, name, 1, (int64_t[]){c});
    return (l->g < 0 || l->b < 0) ? MER_ERR_INTERNAL : MER_OK;
}

void mer__ln_init(mer__model *m, const mer__ln *l) {
    for (int64_t i = 0; i < l->c; i++) {
        m->params[l->g + i] = 1.0f;
        m->params[l->b + i] = 0.0f;
    }
}

mer_status mer__ln_fwd(mer__model *m, const mer__ln *l, mer__ln_saved *s, float **y,
                       const float *x, int64_t n) {
    s->x = x;
    s->n = n;
    s->mean = mer__act_f32(m, n);
    s->rstd = mer__act_f32(m, n);
    *y = mer__act_f32(m, n * l->c);
    if (!s->mean || !s->rstd || !*y) return MER_ERR_NOMEM;
    mer__layernorm_fwd(*y, s->mean, s->rstd, x, m->params + l->g, m->params + l->b, n, l->c,
                       l->eps);
    return MER_OK;
}

void mer__ln_bwd(mer__model *m, const mer__ln *l, const mer__ln_saved *s, float *dx,
                 const float *dy) {
    mer__layernorm_bwd(dx, m->grads + l->g, m->grads + l->b, dy, s->x, s->mean, s->rstd,
                       m->params + l->g, s->n, l->c);
}

/* ---- multi-head attention ----------------------------------------------------------------- */

mer_status mer__mha_declare(mer__model *m, mer__mha *a, const char *prefix, int64_t d,
                            int64_t heads) {
    memset(a, 0, sizeof *a);
    if (heads < 1 || d % heads)
        return mer__err(MER_ERR_INVALID_ARG, "%s: dimension %lld is not divisible by %lld heads",
                        prefix, (long long)d, (long long)heads);
    a->d = d;
    a->heads = heads;
    char name[96];
    mer_status s;
    snprintf(name, sizeof name, "%s.q_proj", prefix);
    if ((s = mer__lin_declare(m, &a->q, name, d, d)) != MER_OK) return s;
    snprintf(name, sizeof name, "%s.k_proj", prefix);
    if ((s = mer__lin_declare(m, &a->k, name, d, d)) != MER_OK) return s;
    snprintf(name, sizeof name, "%s.v_proj", prefix);
    if ((s = mer__lin_declare(m, &a->v, name, d, d)) != MER_OK) return s;
    snprintf(name, sizeof name, "%s.out_proj", prefix);
    return mer__lin_declare(m, &a->o, name, d, d);
}

/* As torch.nn.MultiheadAttention._reset_parameters: xavier_uniform over the packed (3d, d)
 * in-projection (q rows, then k, then v), zero in-projection and output biases, output weight
 * with Linear's default bound. */
void mer__mha_init(mer__model *m, const mer__mha *a, mer__rng *rng) {
    const int64_t d = a->d;
    float xb = sqrtf(6.0f / (float)(4 * d));
    mer__init_uniform(m->params + a->q.w, d * d, xb, rng);
    mer__init_uniform(m->params + a->k.w, d * d, xb, rng);
    mer__init_uniform(m->params + a->v.w, d * d, xb, rng);
    mer__init_uniform(m->params + a->o.w, d * d, 1.0f / sqrtf((float)d), rng);
    memset(m->params + a->q.b, 0, (size_t)d * sizeof(float));
    memset(m->params + a->k.b, 0, (size_t)d * sizeof(float));
    memset(m->params + a->v.b, 0, (size_t)d * sizeof(float));
    memset(m->params + a->o.b, 0, (size_t)d * sizeof(float));
}

mer_status mer__mha_fwd(mer__model *m, mer__mha *a, float **y, const float *xq,
                        const int64_t *offq, const float *xkv, const int64_t *offkv, int64_t n) {
    const int64_t d = a->d, H = a->heads, dh = d / H;
    a->xq = xq;
    a->xkv = xkv;
    a->offq = offq;
    a->offkv = offkv;
    a->n = n;
    a->rq = offq[n];
    a->rkv = offkv[n];
    a->Q = mer__act_f32(m, a->rq * d);
    a->K = mer__act_f32(m, a->rkv * d);
    a->V = mer__act_f32(m, a->rkv * d);
    a->ctx = mer__act_f32(m, a->rq * d);
    a->poff = (int64_t *)mer__act_f32(m, 2 * (n + 1));
    *y = mer__act_f32(m, a->rq * d);
    if (!a->Q || !a->K || !a->V || !a->ctx || !a->poff || !*y) return MER_ERR_NOMEM;
    a->poff[0] = 0;
    for (int64_t i = 0; i < n; i++)
        a->poff[i + 1] = a->poff[i] + H * (offq[i + 1] - offq[i]) * (offkv[i + 1] - offkv[i]);
    a->probs = mer__act_f32(m, a->poff[n]);
    if (!a->probs) return MER_ERR_NOMEM;
    mer__lin_fwd(m, &a->q, a->Q, xq, a->rq);
    mer__lin_fwd(m, &a->k, a->K, xkv, a->rkv);
    mer__lin_fwd(m, &a->v, a->V, xkv, a->rkv);
    const float scale = 1.0f / sqrtf((float)dh);
    for (int64_t i = 0; i < n; i++) {
        int64_t tq = offq[i + 1] - offq[i], tk = offkv[i + 1] - offkv[i];
        if (tq <= 0) continue;
        if (tk <= 0) {
            memset(a->ctx + offq[i] * d, 0, (size_t)(tq * d) * sizeof(float));
            continue;
        }
        mer__attention_fwd(a->ctx + offq[i] * d, d, a->probs + a->poff[i], a->Q + offq[i] * d, d,
                           a->K + offkv[i] * d, d, a->V + offkv[i] * d, d, NULL, tq, tk, H, dh,
                           scale);
    }
    mer__lin_fwd(m, &a->o, *y, a->ctx, a->rq);
    return MER_OK;
}

void mer__mha_bwd(mer__model *m, mer__mha *a, float *dxq, float *dxkv, const float *dy) {
    const int64_t d = a->d, H = a->heads, dh = d / H;
    float *dctx = mer__act_f32(m, a->rq * d);
    float *dQ = mer__act_f32(m, a->rq * d);
    float *dK = mer__act_f32(m, a->rkv * d);
    float *dV = mer__act_f32(m, a->rkv * d);
    if (!dctx || !dQ || !dK || !dV) return;
    memset(dctx, 0, (size_t)(a->rq * d) * sizeof(float));
    memset(dQ, 0, (size_t)(a->rq * d) * sizeof(float));
    memset(dK, 0, (size_t)(a->rkv * d) * sizeof(float));
    memset(dV, 0, (size_t)(a->rkv * d) * sizeof(float));
    mer__lin_bwd(m, &a->o, dctx, dy, a->ctx, a->rq);
    const float scale = 1.0f / sqrtf((float)dh);
    for (int64_t i = 0; i < a->n; i++) {
        int64_t q0 = a->offq[i], k0 = a->offkv[i];
        int64_t tq = a->offq[i + 1] - q0, tk = a->offkv[i + 1] - k0;
        if (tq <= 0 || tk <= 0) continue;
        mer__attention_bwd(dQ + q0 * d, dK + k0 * d, dV + k0 * d, dctx + q0 * d, d,
                           a->probs + a->poff[i], a->Q + q0 * d, d, a->K + k0 * d, d,
                           a->V + k0 * d, d, tq, tk, H, dh, scale);
    }
    mer__lin_bwd(m, &a->q, dxq, dQ, a->xq, a->rq);
    mer__lin_bwd(m, &a->k, dxkv, dK, a->xkv, a->rkv);
    mer__lin_bwd(m, &a->v, dxkv, dV, a->xkv, a->rkv);
}
