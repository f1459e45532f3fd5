/*
 * layernorm.c -- LayerNorm and RMSNorm layers of the kit, trainable or frozen, over the norm
 * kernels (src/kernels/norm.c).
 */
#include "nn/nn.h"

#include <stdio.h>

/* ---- LayerNorm ---------------------------------------------------------------------------- */

mer_status mer__ln_declare(mer__nn *nn, mer__ln *l, const char *prefix, int64_t c) {
    char name[96];
    l->c = c;
    l->eps = 1e-5f;
    l->gf = l->bf = NULL;
    snprintf(name, sizeof name, "%s.weight", prefix);
    l->g = mer__nn_param(nn, name, 1, (int64_t[]){c});
    snprintf(name, sizeof name, "%s.bias", prefix);
    l->b = mer__nn_param(nn, name, 1, (int64_t[]){c});
    return (l->g < 0 || l->b < 0) ? MER_ERR_INTERNAL : MER_OK;
}

void mer__ln_frozen(mer__ln *l, const float *gamma, const float *beta, int64_t c, float eps) {
    l->g = l->b = -1;
    l->gf = gamma;
    l->bf = beta;
    l->c = c;
    l->eps = eps;
}

void mer__ln_init(mer__nn *nn, const mer__ln *l) {
    if (l->gf) return;
    for (int64_t i = 0; i < l->c; i++) {
        nn->params[l->g + i] = 1.0f;
        nn->params[l->b + i] = 0.0f;
    }
}

mer_status mer__ln_fwd(mer__nn *nn, const mer__ln *l, mer__ln_saved *s, float **y,
                       const float *x, int64_t n) {
    s->x = x;
    s->n = n;
    s->mean = mer__nn_act(nn, n);
    s->rstd = mer__nn_act(nn, n);
    *y = mer__nn_act(nn, n * l->c);
    if (!s->mean || !s->rstd || !*y) return MER_ERR_NOMEM;
    const float *g = l->gf ? l->gf : nn->params + l->g;
    const float *b = l->gf ? l->bf : nn->params + l->b;
    mer__layernorm_fwd(*y, s->mean, s->rstd, x, g, b, n, l->c, l->eps);
    return MER_OK;
}

void mer__ln_bwd(mer__nn *nn, const mer__ln *l, const mer__ln_saved *s, float *dx,
                 const float *dy) {
    if (l->gf) {
        if (dx) mer__layernorm_bwd(dx, NULL, NULL, dy, s->x, s->mean, s->rstd, l->gf, s->n, l->c);
        return;
    }
    mer__layernorm_bwd(dx, nn->grads + l->g, nn->grads + l->b, dy, s->x, s->mean, s->rstd,
                       nn->params + l->g, s->n, l->c);
}

/* ---- RMSNorm ------------------------------------------------------------------------------ */

mer_status mer__rms_declare(mer__nn *nn, mer__rms *l, const char *prefix, int64_t c, float eps) {
    char name[96];
    l->c = c;
    l->eps = eps;
    l->gf = NULL;
    snprintf(name, sizeof name, "%s.weight", prefix);
    l->g = mer__nn_param(nn, name, 1, (int64_t[]){c});
    return l->g < 0 ? MER_ERR_INTERNAL : MER_OK;
}

void mer__rms_frozen(mer__rms *l, const float *gamma, int64_t c, float eps) {
    l->g = -1;
    l->gf = gamma;
    l->c = c;
    l->eps = eps;
}

void mer__rms_init(mer__nn *nn, const mer__rms *l) {
    if (l->gf) return;
    for (int64_t i = 0; i < l->c; i++) nn->params[l->g + i] = 1.0f;
}

mer_status mer__rms_fwd(mer__nn *nn, const mer__rms *l, mer__rms_saved *s, float **y,
                        const float *x, int64_t n) {
    s->x = x;
    s->n = n;
    s->rstd = mer__nn_act(nn, n);
    *y = mer__nn_act(nn, n * l->c);
    if (!s->rstd || !*y) return MER_ERR_NOMEM;
    mer__rmsnorm_fwd(*y, s->rstd, x, l->gf ? l->gf : nn->params + l->g, n, l->c, l->eps);
    return MER_OK;
}

void mer__rms_bwd(mer__nn *nn, const mer__rms *l, const mer__rms_saved *s, float *dx,
                  const float *dy) {
    if (l->gf) {
        if (dx) mer__rmsnorm_bwd(dx, NULL, dy, s->x, s->rstd, l->gf, s->n, l->c);
        return;
    }
    mer__rmsnorm_bwd(dx, nn->grads + l->g, dy, s->x, s->rstd, nn->params + l->g, s->n, l->c);
}
