/*
 * peft.c -- parameter-efficient branches of the layer kit, attached beside frozen layers: LoRA
 * (peft's LoraLayer) on a projection and the bottleneck adapter (Houlsby). Each declares its
 * trainable tensors in the set, keeps what its backward needs in the set's arena and reserves
 * its backward workspace there too (nn.h). The speech encoder's fine-tuning
 * (src/models/speech_train.c) is built from them; tests/test_grad.c checks both by finite
 * differences, tests/test_speech_train.c against torch / peft semantics.
 */
#include "nn/nn.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* ---- LoRA ---------------------------------------------------------------------------------- */

mer_status mer__lora_declare(mer__nn *nn, mer__lora *l, const char *prefix, int64_t in,
                             int64_t out, int64_t r, float alpha, float p) {
    char name[96];
    memset(l, 0, sizeof *l);
    l->in = in;
    l->out = out;
    l->r = r;
    l->scaling = alpha / (float)r;
    l->p = p;
    snprintf(name, sizeof name, "%s.lora_A.weight", prefix);
    l->a = mer__nn_param(nn, name, 2, (int64_t[]){r, in});
    snprintf(name, sizeof name, "%s.lora_B.weight", prefix);
    l->b = mer__nn_param(nn, name, 2, (int64_t[]){out, r});
    return (l->a < 0 || l->b < 0) ? MER_ERR_INTERNAL : MER_OK;
}

void mer__lora_init(mer__nn *nn, const mer__lora *l, mer__rng *rng) {
    /* peft: A as nn.Linear's kaiming_uniform(a=sqrt(5)) = U(-1/sqrt(in), 1/sqrt(in)), B zero */
    mer__init_uniform(nn->params + l->a, l->r * l->in, 1.0f / sqrtf((float)l->in), rng);
    memset(nn->params + l->b, 0, (size_t)(l->out * l->r) * sizeof(float));
}

// ref: peft LoraLayer (Linear.forward): result + lora_B(lora_A(lora_dropout(x))) * scaling
mer_status mer__lora_fwd(mer__nn *nn, mer__lora *l, float *y, const float *x, int64_t n,
                         int train, mer__rng *rng) {
    const int64_t r = l->r;
    l->n = n;
    l->mask = NULL;
    l->x = x;
    if (train && l->p > 0.0f) {
        float *xd = mer__nn_act(nn, n * l->in);
        if (!xd || !(l->mask = mer__nn_act(nn, n * l->in))) return MER_ERR_NOMEM;
        mer__dropout_fwd(xd, l->mask, x, l->p, n * l->in, rng);
        l->x = xd;
    }
    if (!(l->u = mer__nn_act(nn, n * r))) return MER_ERR_NOMEM;
    if (train) {
        l->du = mer__nn_act(nn, n * r);
        l->dxd = l->mask ? mer__nn_act(nn, n * l->in) : NULL;
        if (!l->du || (l->mask && !l->dxd)) return MER_ERR_NOMEM;
    }
    mer__linear_fwd(l->u, l->x, nn->params + l->a, NULL, n, l->in, r);
    mer_sgemm(0, 1, n, l->out, r, l->scaling, l->u, r, nn->params + l->b, r, 1.0f, y, l->out);
    return MER_OK;
}

void mer__lora_bwd(mer__nn *nn, mer__lora *l, float *dx, const float *dy) {
    const int64_t r = l->r, n = l->n, in = l->in, out = l->out;
    const float *A = nn->params + l->a, *B = nn->params + l->b;
    mer_sgemm(1, 0, out, r, n, l->scaling, dy, out, l->u, r, 1.0f, nn->grads + l->b, r);
    mer_sgemm(0, 0, n, r, out, l->scaling, dy, out, B, r, 0.0f, l->du, r);
    mer_sgemm(1, 0, r, in, n, 1.0f, l->du, r, l->x, in, 1.0f, nn->grads + l->a, in);
    if (!dx) return;
    if (l->mask) {
        mer_sgemm(0, 0, n, in, r, 1.0f, l->du, r, A, in, 0.0f, l->dxd, in);
        mer__dropout_bwd(dx, l->dxd, l->mask, n * in);
    } else {
        mer_sgemm(0, 0, n, in, r, 1.0f, l->du, r, A, in, 1.0f, dx, in);
    }
}

/* ---- bottleneck adapter ------------------------------------------------------------------- */

mer_status mer__adapter_declare(mer__nn *nn, mer__adapter *a, const char *prefix, int64_t d,
                                int64_t bottleneck) {
    char name[96];
    memset(a, 0, sizeof *a);
    snprintf(name, sizeof name, "%s.down", prefix);
    mer_status s = mer__lin_declare(nn, &a->down, name, d, bottleneck);
    snprintf(name, sizeof name, "%s.up", prefix);
    if (s == MER_OK) s = mer__lin_declare(nn, &a->up, name, bottleneck, d);
    return s;
}

void mer__adapter_init(mer__nn *nn, const mer__adapter *a, mer__rng *rng) {
    /* down as torch.nn.Linear, up zero: the adapter starts as the identity */
    mer__lin_init(nn, &a->down, rng);
    memset(nn->params + a->up.w, 0, (size_t)(a->up.out * a->up.in) * sizeof(float));
    memset(nn->params + a->up.b, 0, (size_t)a->up.out * sizeof(float));
}

// ref: h + up(relu(down(h))) (Houlsby et al. 2019), the residual being the caller's
mer_status mer__adapter_fwd(mer__nn *nn, mer__adapter *a, float *y, const float *h, int64_t n,
                            int train) {
    const int64_t B = a->down.out, d = a->down.in;
    a->h = h;
    a->n = n;
    if (!(a->z = mer__nn_act(nn, n * B)) || !(a->za = mer__nn_act(nn, n * B))) return MER_ERR_NOMEM;
    if (train && (!(a->dza = mer__nn_act(nn, n * B)) || !(a->dz = mer__nn_act(nn, n * B))))
        return MER_ERR_NOMEM;
    mer__lin_fwd(nn, &a->down, a->z, h, n);
    mer__relu_fwd(a->za, a->z, n * B);
    const float *bu = nn->params + a->up.b;
    for (int64_t i = 0; i < n; i++)
        for (int64_t c = 0; c < d; c++) y[i * d + c] += bu[c];
    mer_sgemm(0, 1, n, d, B, 1.0f, a->za, B, nn->params + a->up.w, B, 1.0f, y, d);
    return MER_OK;
}

void mer__adapter_bwd(mer__nn *nn, mer__adapter *a, float *dh, const float *dy) {
    const int64_t B = a->down.out, n = a->n;
    mer__linear_bwd(NULL, nn->grads + a->up.w, nn->grads + a->up.b, dy, a->za,
                    nn->params + a->up.w, n, B, a->up.out);
    mer_sgemm(0, 0, n, B, a->up.out, 1.0f, dy, a->up.out, nn->params + a->up.w, B, 0.0f, a->dza, B);
    memset(a->dz, 0, (size_t)(n * B) * sizeof(float));
    mer__relu_bwd(a->dz, a->dza, a->z, n * B);
    mer__lin_bwd(nn, &a->down, dh, a->dz, a->h, n);
}
