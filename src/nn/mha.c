/*
 * mha.c -- multi-head attention layer of the kit (self or cross, key-padding and causal masks)
 * over batches of variable-length sequences, forward and backward. The unmasked case runs the
 * fused attention kernel (src/kernels/attn.c); a masked one computes scores, mask and softmax
 * per head here and shares the kernel's backward (masked probabilities are 0, so they pass no
 * gradient).
 */
#include "nn/nn.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

mer_status mer__mha_declare(mer__nn *nn, mer__mha *a, const char *prefix, int64_t d,
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
    if ((s = mer__lin_declare(nn, &a->q, name, d, d)) != MER_OK) return s;
    snprintf(name, sizeof name, "%s.k_proj", prefix);
    if ((s = mer__lin_declare(nn, &a->k, name, d, d)) != MER_OK) return s;
    snprintf(name, sizeof name, "%s.v_proj", prefix);
    if ((s = mer__lin_declare(nn, &a->v, name, d, d)) != MER_OK) return s;
    snprintf(name, sizeof name, "%s.out_proj", prefix);
    return mer__lin_declare(nn, &a->o, name, d, d);
}

void mer__mha_init(mer__nn *nn, const mer__mha *a, mer__rng *rng) {
    const int64_t d = a->d;
    float xb = sqrtf(6.0f / (float)(4 * d));
    mer__init_uniform(nn->params + a->q.w, d * d, xb, rng);
    mer__init_uniform(nn->params + a->k.w, d * d, xb, rng);
    mer__init_uniform(nn->params + a->v.w, d * d, xb, rng);
    mer__init_uniform(nn->params + a->o.w, d * d, 1.0f / sqrtf((float)d), rng);
    memset(nn->params + a->q.b, 0, (size_t)d * sizeof(float));
    memset(nn->params + a->k.b, 0, (size_t)d * sizeof(float));
    memset(nn->params + a->v.b, 0, (size_t)d * sizeof(float));
    memset(nn->params + a->o.b, 0, (size_t)d * sizeof(float));
}

/* One clip, masked: per head, probs (tq, tk) = softmax(scale Q_h K_h^T + mask), ctx_h = P V_h.
 * A query with no visible key gets zero probabilities and zero output. */
static void masked_attention(float *ctx, float *probs, const float *Q, const float *K,
                             const float *V, const uint8_t *km, int causal, int64_t tq,
                             int64_t tk, int64_t H, int64_t dh, float scale) {
    const int64_t d = H * dh;
    for (int64_t h = 0; h < H; h++) {
        float *P = probs + h * tq * tk;
        mer_sgemm(0, 1, tq, tk, dh, scale, Q + h * dh, d, K + h * dh, d, 0.0f, P, tk);
        for (int64_t i = 0; i < tq; i++) {
            float *row = P + i * tk;
            int64_t seen = 0;
            for (int64_t j = 0; j < tk; j++) {
                if ((km && !km[j]) || (causal && j > i)) row[j] = -INFINITY;
                else seen++;
            }
            if (seen) mer__softmax_row(row, row, tk);
            else memset(row, 0, (size_t)tk * sizeof *row);
        }
        mer_sgemm(0, 0, tq, dh, tk, 1.0f, P, tk, V + h * dh, d, 0.0f, ctx + h * dh, d);
    }
}

mer_status mer__mha_fwd(mer__nn *nn, mer__mha *a, float **y, const float *xq,
                        const int64_t *offq, const float *xkv, const int64_t *offkv,
                        const uint8_t *key_mask, int64_t n, int train) {
    const int64_t d = a->d, H = a->heads, dh = d / H;
    a->xq = xq;
    a->xkv = xkv;
    a->offq = offq;
    a->offkv = offkv;
    a->n = n;
    a->rq = offq[n];
    a->rkv = offkv[n];
    a->Q = mer__nn_act(nn, a->rq * d);
    a->K = mer__nn_act(nn, a->rkv * d);
    a->V = mer__nn_act(nn, a->rkv * d);
    a->ctx = mer__nn_act(nn, a->rq * d);
    a->poff = mer__nn_act_off(nn, n);
    *y = mer__nn_act(nn, a->rq * d);
    if (!a->Q || !a->K || !a->V || !a->ctx || !a->poff || !*y) return MER_ERR_NOMEM;
    const int masked = a->causal || key_mask;
    int64_t ws = 0, smax = 0;
    a->poff[0] = 0;
    for (int64_t i = 0; i < n; i++) {
        int64_t tq = offq[i + 1] - offq[i], tk = offkv[i + 1] - offkv[i];
        if (a->causal && tq != tk)
            return mer__err(MER_ERR_SHAPE, "causal attention: clip %lld has %lld queries and "
                            "%lld keys", (long long)i, (long long)tq, (long long)tk);
        a->poff[i + 1] = a->poff[i] + H * tq * tk;
        int64_t w = masked ? 0 : mer__attention_ws_floats(tq, tk, H, dh);
        if (w > ws) ws = w;
        if (tq * tk > smax) smax = tq * tk;
    }
    a->probs = mer__nn_act(nn, a->poff[n]);
    float *work = mer__nn_act(nn, ws);
    if (!a->probs || !work) return MER_ERR_NOMEM;
    if (train) { /* everything backward needs, so that it cannot fail */
        a->dctx = mer__nn_act(nn, a->rq * d);
        a->dQ = mer__nn_act(nn, a->rq * d);
        a->dK = mer__nn_act(nn, a->rkv * d);
        a->dV = mer__nn_act(nn, a->rkv * d);
        a->ds = mer__nn_act(nn, smax);
        if (!a->dctx || !a->dQ || !a->dK || !a->dV || !a->ds) return MER_ERR_NOMEM;
    } else {
        a->dctx = a->dQ = a->dK = a->dV = a->ds = NULL;
    }
    mer__lin_fwd(nn, &a->q, a->Q, xq, a->rq);
    mer__lin_fwd(nn, &a->k, a->K, xkv, a->rkv);
    mer__lin_fwd(nn, &a->v, a->V, xkv, a->rkv);
    const float scale = 1.0f / sqrtf((float)dh);
    for (int64_t i = 0; i < n; i++) {
        int64_t tq = offq[i + 1] - offq[i], tk = offkv[i + 1] - offkv[i];
        if (tq <= 0) continue;
        if (tk <= 0) {
            memset(a->ctx + offq[i] * d, 0, (size_t)(tq * d) * sizeof(float));
            continue;
        }
        float *ctx = a->ctx + offq[i] * d, *P = a->probs + a->poff[i];
        const float *Q = a->Q + offq[i] * d, *K = a->K + offkv[i] * d, *V = a->V + offkv[i] * d;
        if (masked) {
            masked_attention(ctx, P, Q, K, V, key_mask ? key_mask + offkv[i] : NULL, a->causal,
                             tq, tk, H, dh, scale);
        } else {
            mer_status s = mer__attention_fwd(ctx, d, P, Q, d, K, d, V, d, NULL, tq, tk, H, dh,
                                              scale, work);
            if (s != MER_OK) return s;
        }
    }
    mer__lin_fwd(nn, &a->o, *y, a->ctx, a->rq);
    return MER_OK;
}

void mer__mha_bwd(mer__nn *nn, mer__mha *a, float *dxq, float *dxkv, const float *dy) {
    const int64_t d = a->d, H = a->heads, dh = d / H;
    memset(a->dctx, 0, (size_t)(a->rq * d) * sizeof(float));
    memset(a->dQ, 0, (size_t)(a->rq * d) * sizeof(float));
    memset(a->dK, 0, (size_t)(a->rkv * d) * sizeof(float));
    memset(a->dV, 0, (size_t)(a->rkv * d) * sizeof(float));
    mer__lin_bwd(nn, &a->o, a->dctx, dy, a->ctx, a->rq);
    const float scale = 1.0f / sqrtf((float)dh);
    for (int64_t i = 0; i < a->n; i++) {
        int64_t q0 = a->offq[i], k0 = a->offkv[i];
        int64_t tq = a->offq[i + 1] - q0, tk = a->offkv[i + 1] - k0;
        if (tq <= 0 || tk <= 0) continue;
        /* cannot fail: the workspace was reserved by the forward */
        (void)mer__attention_bwd(a->dQ + q0 * d, a->dK + k0 * d, a->dV + k0 * d, a->dctx + q0 * d,
                                 d, a->probs + a->poff[i], a->Q + q0 * d, d, a->K + k0 * d, d,
                                 a->V + k0 * d, d, tq, tk, H, dh, scale, a->ds);
    }
    mer__lin_bwd(nn, &a->q, dxq, a->dQ, a->xq, a->rq);
    mer__lin_bwd(nn, &a->k, dxkv, a->dK, a->xkv, a->rkv);
    mer__lin_bwd(nn, &a->v, dxkv, a->dV, a->xkv, a->rkv);
}
