/*
 * dense.c -- the linear layer of the kit (torch.nn.Linear), trainable or frozen, over the
 * linear kernel (src/kernels/linear.c).
 */
#include "nn/nn.h"

#include <math.h>
#include <stdio.h>

mer_status mer__lin_declare(mer__nn *nn, mer__lin *l, const char *prefix, int64_t in,
                            int64_t out) {
    char name[96];
    l->in = in;
    l->out = out;
    l->wf = l->bf = NULL;
    snprintf(name, sizeof name, "%s.weight", prefix);
    l->w = mer__nn_param(nn, name, 2, (int64_t[]){out, in});
    snprintf(name, sizeof name, "%s.bias", prefix);
    l->b = mer__nn_param(nn, name, 1, (int64_t[]){out});
    return (l->w < 0 || l->b < 0) ? MER_ERR_INTERNAL : MER_OK;
}

void mer__lin_frozen(mer__lin *l, const float *w, const float *b, int64_t in, int64_t out) {
    l->w = l->b = -1;
    l->wf = w;
    l->bf = b;
    l->in = in;
    l->out = out;
}

void mer__lin_init(mer__nn *nn, const mer__lin *l, mer__rng *rng) {
    if (l->wf) return;
    float bound = 1.0f / sqrtf((float)l->in);
    mer__init_uniform(nn->params + l->w, l->out * l->in, bound, rng);
    mer__init_uniform(nn->params + l->b, l->out, bound, rng);
}

void mer__lin_fwd(const mer__nn *nn, const mer__lin *l, float *y, const float *x, int64_t n) {
    mer__linear_fwd(y, x, mer__lin_weight(nn, l), mer__lin_bias(nn, l), n, l->in, l->out);
}

void mer__lin_bwd(mer__nn *nn, const mer__lin *l, float *dx, const float *dy, const float *x,
                  int64_t n) {
    if (l->wf) { /* frozen: the input gradient only */
        mer__linear_bwd(dx, NULL, NULL, dy, x, l->wf, n, l->in, l->out);
        return;
    }
    mer__linear_bwd(dx, nn->grads + l->w, nn->grads + l->b, dy, x, nn->params + l->w, n, l->in,
                    l->out);
}
