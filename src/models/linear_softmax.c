/*
 * linear_softmax.c -- the "linear" trainable model: multinomial logistic regression on the
 * concatenated (sequence features mean-pooled) modality vectors, with dropout on the input:
 *
 *   logits = fc_out(dropout(concat_m x_m))          torch.nn.Linear(sum D_m, C)
 *
 * With the trainer's L2 weight decay it is the regularised linear classifier that suits small
 * data sets of hand-crafted features (EmoDB: 408 clips, 514 acoustic functionals), where it
 * beats the MLP of the attention model; `mer demo` uses it.
 */
#include "models/fusion.h"

#include <string.h>

typedef struct {
    mer__lin fc;
    int64_t in;
    /* saved by forward */
    float *xd;
    int64_t n;
} lin_priv;

static mer_status lin_build(mer__model *m) {
    const mer__model_config *c = &m->cfg;
    if (!(c->dropout >= 0.0f && c->dropout < 1.0f))
        return mer__err(MER_ERR_INVALID_ARG, "linear: dropout %g not in [0, 1)", c->dropout);
    lin_priv *p = calloc(1, sizeof *p);
    if (!p) return mer__err(MER_ERR_NOMEM, "out of memory");
    m->priv = p;
    for (int32_t i = 0; i < c->n_mod; i++) p->in += c->dim[i];
    return mer__lin_declare(&m->nn, &p->fc, "fc_out", p->in, c->n_classes);
}

static void lin_init(mer__model *m, mer__rng *rng) {
    lin_priv *p = m->priv;
    mer__lin_init(&m->nn, &p->fc, rng);
}

static mer_status lin_forward(mer__model *m, const mer__batch *b, int train, mer__rng *rng,
                              float *logits) {
    lin_priv *p = m->priv;
    const int64_t n = b->n, in = p->in;
    p->n = n;
    const int drop = train && m->cfg.dropout > 0.0f;
    float *xc = mer__nn_act(&m->nn, n * in); /* the concatenated inputs */
    p->xd = drop ? mer__nn_act(&m->nn, n * in) : xc;
    if (!xc || !p->xd) return MER_ERR_NOMEM;
    int64_t col = 0;
    for (int32_t i = 0; i < b->n_mod; i++) {
        const int64_t D = b->dim[i];
        for (int64_t k = 0; k < n; k++) {
            float *dst = xc + k * in + col;
            if (b->off[i]) {
                mer__mean_pool_fwd(dst, b->x[i] + b->off[i][k] * D, b->off[i][k + 1] - b->off[i][k], D);
            } else {
                memcpy(dst, b->x[i] + k * D, (size_t)D * sizeof(float));
            }
        }
        col += D;
    }
    /* the kit's counter-based dropout: one rng draw per batch, a vectorised mask (a serial
     * draw per element cost a third of `mer demo`'s training time) */
    if (drop) mer__dropout_fwd(p->xd, NULL, xc, m->cfg.dropout, n * in, rng);
    mer__lin_fwd(&m->nn, &p->fc, logits, p->xd, n);
    return MER_OK;
}

static mer_status lin_backward(mer__model *m, const mer__batch *b, const float *dlogits) {
    (void)b;
    lin_priv *p = m->priv;
    mer__lin_bwd(&m->nn, &p->fc, NULL, dlogits, p->xd, p->n);
    return MER_OK;
}

static void lin_destroy(mer__model *m) {
    free(m->priv);
    m->priv = NULL;
}

const mer__model_ops mer__model_linear = {
    .name = "linear",
    .summary = "multinomial logistic regression on the concatenated features (input dropout)",
    .build = lin_build,
    .init = lin_init,
    .forward = lin_forward,
    .backward = lin_backward,
    .destroy = lin_destroy,
};
