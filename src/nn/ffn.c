/*
 * ffn.c -- activation and dropout layers, the transformer feed-forward block and the MERTools
 * MLP encoder, forward and backward side by side.
 */
#include "nn/nn.h"

#include <stdio.h>
#include <string.h>

/* ---- activations and dropout -------------------------------------------------------------- */

mer_status mer__activation_fwd(mer__nn *nn, mer__actfn k, float **y, const float *x, int64_t n) {
    if (!(*y = mer__nn_act(nn, n))) return MER_ERR_NOMEM;
    switch (k) {
    case MER__ACTFN_RELU: mer__relu_fwd(*y, x, n); break;
    case MER__ACTFN_GELU: mer__gelu_fwd(*y, x, n); break;
    case MER__ACTFN_QUICK_GELU: mer__quick_gelu_fwd(*y, x, n); break;
    default: return mer__err(MER_ERR_INTERNAL, "activation %d unknown", (int)k);
    }
    return MER_OK;
}

void mer__activation_bwd(mer__actfn k, float *dx, const float *dy, const float *x, int64_t n) {
    switch (k) {
    case MER__ACTFN_RELU: mer__relu_bwd(dx, dy, x, n); break;
    case MER__ACTFN_GELU: mer__gelu_bwd(dx, dy, x, n); break;
    case MER__ACTFN_QUICK_GELU: mer__quick_gelu_bwd(dx, dy, x, n); break;
    }
}

mer_status mer__drop_fwd(mer__nn *nn, float p, float **y, float **mask, const float *x,
                         int64_t n, int train, mer__rng *rng) {
    if (mask) *mask = NULL;
    if (!train || p <= 0.0f) {
        *y = (float *)x;
        return MER_OK;
    }
    float *mk = NULL;
    if (mask && !(mk = *mask = mer__nn_act(nn, n))) return MER_ERR_NOMEM;
    if (!(*y = mer__nn_act(nn, n))) return MER_ERR_NOMEM;
    mer__dropout_fwd(*y, mk, x, p, n, rng);
    return MER_OK;
}

void mer__drop_bwd(float *dx, const float *dy, const float *mask, int64_t n) {
    if (mask) {
        mer__dropout_bwd(dx, dy, mask, n);
        return;
    }
    for (int64_t i = 0; i < n; i++) dx[i] += dy[i];
}

/* ---- the transformer feed-forward block --------------------------------------------------- */

mer_status mer__ffn_declare(mer__nn *nn, mer__ffn *f, const char *prefix, int64_t d,
                            int64_t hidden, mer__actfn act) {
    char name[128];
    mer_status s;
    memset(f, 0, sizeof *f);
    f->act = act;
    snprintf(name, sizeof name, "%s.fc1", prefix);
    if ((s = mer__lin_declare(nn, &f->fc1, name, d, hidden)) != MER_OK) return s;
    snprintf(name, sizeof name, "%s.fc2", prefix);
    return mer__lin_declare(nn, &f->fc2, name, hidden, d);
}

void mer__ffn_init(mer__nn *nn, const mer__ffn *f, mer__rng *rng) {
    mer__lin_init(nn, &f->fc1, rng);
    mer__lin_init(nn, &f->fc2, rng);
}

mer_status mer__ffn_fwd(mer__nn *nn, mer__ffn *f, float **y, const float *x, int64_t n,
                        int train) {
    const int64_t h = f->fc1.out, d = f->fc2.out;
    mer_status s;
    f->x = x;
    f->n = n;
    if (!(f->f1 = mer__nn_act(nn, n * h)) || !(*y = mer__nn_act(nn, n * d))) return MER_ERR_NOMEM;
    mer__lin_fwd(nn, &f->fc1, f->f1, x, n);
    if ((s = mer__activation_fwd(nn, f->act, &f->r, f->f1, n * h)) != MER_OK) return s;
    mer__lin_fwd(nn, &f->fc2, *y, f->r, n);
    f->dr = f->df1 = NULL;
    if (train && (!(f->dr = mer__nn_act(nn, n * h)) || !(f->df1 = mer__nn_act(nn, n * h))))
        return MER_ERR_NOMEM;
    return MER_OK;
}

void mer__ffn_bwd(mer__nn *nn, mer__ffn *f, float *dx, const float *dy) {
    const int64_t h = f->fc1.out;
    memset(f->dr, 0, (size_t)(f->n * h) * sizeof(float));
    memset(f->df1, 0, (size_t)(f->n * h) * sizeof(float));
    mer__lin_bwd(nn, &f->fc2, f->dr, dy, f->r, f->n);
    mer__activation_bwd(f->act, f->df1, f->dr, f->f1, f->n * h);
    mer__lin_bwd(nn, &f->fc1, dx, f->df1, f->x, f->n);
}

/* ---- the MERTools MLP encoder ------------------------------------------------------------- */

mer_status mer__mlp_enc_declare(mer__nn *nn, mer__mlp_enc *e, const char *prefix, int64_t in,
                                int64_t hidden, float p) {
    char name[96];
    memset(e, 0, sizeof *e);
    e->p = p;
    mer_status s = MER_OK;
    for (int k = 0; k < 3 && s == MER_OK; k++) {
        snprintf(name, sizeof name, "%s.linear_%d", prefix, k + 1);
        s = mer__lin_declare(nn, &e->l[k], name, k == 0 ? in : hidden, hidden);
    }
    return s;
}

void mer__mlp_enc_init(mer__nn *nn, const mer__mlp_enc *e, mer__rng *rng) {
    for (int k = 0; k < 3; k++) mer__lin_init(nn, &e->l[k], rng);
}

mer_status mer__mlp_enc_fwd(mer__nn *nn, mer__mlp_enc *e, float **y, const float *x,
                            int64_t n, int train, mer__rng *rng) {
    int64_t in = e->l[0].in, h = e->l[0].out;
    e->n = n;
    e->x = x;
    e->mask = NULL;
    e->xd = (float *)x;
    if (train && e->p > 0.0f) {
        /* the mask is only needed for dx; the dropped values come out the same without it */
        if (!e->input_is_data && !(e->mask = mer__nn_act(nn, n * in))) return MER_ERR_NOMEM;
        e->xd = mer__nn_act(nn, n * in);
        if (!e->xd) return MER_ERR_NOMEM;
        mer__dropout_fwd(e->xd, e->mask, x, e->p, n * in, rng);
    }
    const float *cur = e->xd;
    for (int k = 0; k < 3; k++) {
        e->h[k] = mer__nn_act(nn, n * h);
        if (!e->h[k]) return MER_ERR_NOMEM;
        mer__lin_fwd(nn, &e->l[k], e->h[k], cur, n);
        mer__relu_fwd(e->h[k], e->h[k], n * h);
        cur = e->h[k];
    }
    e->g[0] = e->g[1] = e->dxd = NULL;
    if (train) {
        if (!(e->g[0] = mer__nn_act(nn, n * h)) || !(e->g[1] = mer__nn_act(nn, n * h)))
            return MER_ERR_NOMEM;
        if (e->mask && !(e->dxd = mer__nn_act(nn, n * in))) return MER_ERR_NOMEM;
    }
    *y = e->h[2];
    return MER_OK;
}

void mer__mlp_enc_bwd(mer__nn *nn, mer__mlp_enc *e, float *dx, float *dy) {
    int64_t n = e->n, in = e->l[0].in, h = e->l[0].out;
    /* dy is reused: ReLU mask applied in place, then the linear backward writes the gradient of
     * the layer input into a workspace buffer. Activations are the post-ReLU outputs (same sign
     * pattern as the pre-activations, which is what torch's relu backward uses). */
    float *g = dy;
    for (int k = 2; k >= 0; k--) {
        /* branch-free select so the mask pass vectorises */
        const float *restrict hk = e->h[k];
        float *restrict gr = g;
#pragma omp simd
        for (int64_t i = 0; i < n * h; i++) gr[i] = hk[i] > 0.0f ? gr[i] : 0.0f;
        const float *xin = k ? e->h[k - 1] : e->xd;
        if (k == 0) {
            if (!dx || e->input_is_data) { /* data input: no dx (forward kept no mask) */
                const mer__lin *l = &e->l[0];
                if (nn->wgrad && !l->wf &&
                    nn->wgrad(nn->wgrad_user, nn->params, l->w, g, xin, n, l->in, l->out))
                    mer__linear_bwd(NULL, NULL, nn->grads + l->b, g, xin, NULL, n, l->in, l->out);
                else
                    mer__lin_bwd(nn, l, NULL, g, xin, n);
            } else if (!e->mask) {
                mer__lin_bwd(nn, &e->l[0], dx, g, xin, n);
            } else {
                memset(e->dxd, 0, (size_t)(n * in) * sizeof(float));
                mer__lin_bwd(nn, &e->l[0], e->dxd, g, xin, n);
                mer__dropout_bwd(dx, e->dxd, e->mask, n * in);
            }
        } else {
            float *gp = e->g[2 - k];
            memset(gp, 0, (size_t)(n * h) * sizeof(float));
            mer__lin_bwd(nn, &e->l[k], gp, g, xin, n);
            g = gp;
        }
    }
}
