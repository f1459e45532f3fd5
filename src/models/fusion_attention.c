/*
 * fusion_attention.c -- the MERTools `attention` fusion baseline (MERBench
 * toolkit/models/attention.py with modules/encoder.py's MLPEncoder), for any number of
 * modalities:
 *
 *   h_m   = MLPEncoder_m(x_m)                      dropout, 3 x (Linear + ReLU) to hidden
 *   a     = fc_att(attention_mlp([h_1, ..., h_M])) one raw (unnormalised) weight per modality
 *   fused = sum_m a_m * h_m                        (torch.matmul(stack(h, dim=2), a))
 *   logits = fc_out_1(fused)
 *
 * Parameter names are those of the torch module (<modality>_encoder.linear_1.weight, ...,
 * attention_mlp.*, fc_att.*, fc_out_1.*), so MERTools-style state dicts map one to one.
 * MERTools' second head (fc_out_2, valence) does not touch the emotion logits and is omitted.
 * Sequence features (T, D) are mean-pooled over time first (MERTools would use an LSTM
 * encoder for frame-level features; the utterance-level protocol of MER2024 does not).
 */
#include "models/fusion.h"

#include <stdio.h>
#include <string.h>

typedef struct {
    mer__mlp_enc enc[MER_MAX_MODALITIES];
    mer__mlp_enc att_mlp;
    mer__lin fc_att, fc_out;
    /* saved by forward */
    const float *xin[MER_MAX_MODALITIES];
    float *h[MER_MAX_MODALITIES];
    float *cat, *ah, *att, *fused;
    int64_t n;
    /* backward workspace, reserved by forward(train = 1) */
    float *dfused, *datt, *dah, *dcat, *dh[MER_MAX_MODALITIES];
} attn_priv;

static mer_status attn_build(mer__model *m) {
    const mer__model_config *c = &m->cfg;
    if (c->hidden < 1) return mer__err(MER_ERR_INVALID_ARG, "attention: hidden %d < 1", c->hidden);
    if (!(c->dropout >= 0.0f && c->dropout < 1.0f))
        return mer__err(MER_ERR_INVALID_ARG, "attention: dropout %g not in [0, 1)", c->dropout);
    attn_priv *p = calloc(1, sizeof *p);
    if (!p) return mer__err(MER_ERR_NOMEM, "out of memory");
    m->priv = p;
    char name[96];
    mer_status s = MER_OK;
    for (int32_t i = 0; i < c->n_mod && s == MER_OK; i++) {
        snprintf(name, sizeof name, "%s_encoder", c->modality[i]);
        s = mer__mlp_enc_declare(&m->nn, &p->enc[i], name, c->dim[i], c->hidden, c->dropout);
        p->enc[i].input_is_data = 1; /* features get no gradient */
    }
    if (s == MER_OK)
        s = mer__mlp_enc_declare(&m->nn, &p->att_mlp, "attention_mlp", (int64_t)c->hidden * c->n_mod,
                                 c->hidden, c->dropout);
    if (s == MER_OK) s = mer__lin_declare(&m->nn, &p->fc_att, "fc_att", c->hidden, c->n_mod);
    if (s == MER_OK) s = mer__lin_declare(&m->nn, &p->fc_out, "fc_out_1", c->hidden, c->n_classes);
    return s;
}

/* Module construction order of the torch model: encoders, attention_mlp, fc_att, fc_out_1. */
static void attn_init(mer__model *m, mer__rng *rng) {
    attn_priv *p = m->priv;
    for (int32_t i = 0; i < m->cfg.n_mod; i++) mer__mlp_enc_init(&m->nn, &p->enc[i], rng);
    mer__mlp_enc_init(&m->nn, &p->att_mlp, rng);
    mer__lin_init(&m->nn, &p->fc_att, rng);
    mer__lin_init(&m->nn, &p->fc_out, rng);
}

static mer_status attn_forward(mer__model *m, const mer__batch *b, int train, mer__rng *rng,
                               float *logits) {
    attn_priv *p = m->priv;
    const int64_t n = b->n, H = m->cfg.hidden;
    const int32_t M = m->cfg.n_mod;
    mer_status s;
    p->n = n;
    for (int32_t i = 0; i < M; i++) {
        const float *x = b->x[i];
        if (b->off[i]) {
            float *pooled = mer__nn_act(&m->nn, n * b->dim[i]);
            if (!pooled) return MER_ERR_NOMEM;
            for (int64_t k = 0; k < n; k++)
                mer__mean_pool_fwd(pooled + k * b->dim[i], x + b->off[i][k] * b->dim[i],
                                   b->off[i][k + 1] - b->off[i][k], b->dim[i]);
            x = pooled;
        }
        p->xin[i] = x;
        s = mer__mlp_enc_fwd(&m->nn, &p->enc[i], &p->h[i], x, n, train, rng);
        if (s != MER_OK) return s;
    }
    p->cat = mer__nn_act(&m->nn, n * M * H);
    p->att = mer__nn_act(&m->nn, n * M);
    p->fused = mer__nn_act(&m->nn, n * H);
    if (!p->cat || !p->att || !p->fused) return MER_ERR_NOMEM;
    for (int64_t k = 0; k < n; k++)
        for (int32_t i = 0; i < M; i++)
            memcpy(p->cat + (k * M + i) * H, p->h[i] + k * H, (size_t)H * sizeof(float));
    s = mer__mlp_enc_fwd(&m->nn, &p->att_mlp, &p->ah, p->cat, n, train, rng);
    if (s != MER_OK) return s;
    mer__lin_fwd(&m->nn, &p->fc_att, p->att, p->ah, n);
    for (int64_t k = 0; k < n; k++) {
        float *f = p->fused + k * H;
        for (int64_t j = 0; j < H; j++) {
            float acc = 0.0f;
            for (int32_t i = 0; i < M; i++) acc += p->h[i][k * H + j] * p->att[k * M + i];
            f[j] = acc;
        }
    }
    mer__lin_fwd(&m->nn, &p->fc_out, logits, p->fused, n);
    if (train) {
        p->dfused = mer__nn_act(&m->nn, n * H);
        p->datt = mer__nn_act(&m->nn, n * M);
        p->dah = mer__nn_act(&m->nn, n * H);
        p->dcat = mer__nn_act(&m->nn, n * M * H);
        if (!p->dfused || !p->datt || !p->dah || !p->dcat) return MER_ERR_NOMEM;
        for (int32_t i = 0; i < M; i++)
            if (!(p->dh[i] = mer__nn_act(&m->nn, n * H))) return MER_ERR_NOMEM;
    }
    return MER_OK;
}

static mer_status attn_backward(mer__model *m, const mer__batch *b, const float *dlogits) {
    attn_priv *p = m->priv;
    const int64_t n = p->n, H = m->cfg.hidden;
    const int32_t M = m->cfg.n_mod;
    memset(p->dfused, 0, (size_t)(n * H) * sizeof(float));
    memset(p->dah, 0, (size_t)(n * H) * sizeof(float));
    memset(p->dcat, 0, (size_t)(n * M * H) * sizeof(float));
    mer__lin_bwd(&m->nn, &p->fc_out, p->dfused, dlogits, p->fused, n);
    for (int64_t k = 0; k < n; k++) {
        const float *df = p->dfused + k * H;
        for (int32_t i = 0; i < M; i++) {
            const float *h = p->h[i] + k * H;
            float a = p->att[k * M + i], acc = 0.0f;
            for (int64_t j = 0; j < H; j++) {
                acc += df[j] * h[j];
                p->dh[i][k * H + j] = df[j] * a;
            }
            p->datt[k * M + i] = acc;
        }
    }
    mer__lin_bwd(&m->nn, &p->fc_att, p->dah, p->datt, p->ah, n);
    mer__mlp_enc_bwd(&m->nn, &p->att_mlp, p->dcat, p->dah);
    for (int64_t k = 0; k < n; k++)
        for (int32_t i = 0; i < M; i++) {
            const float *dc = p->dcat + (k * M + i) * H;
            for (int64_t j = 0; j < H; j++) p->dh[i][k * H + j] += dc[j];
        }
    for (int32_t i = 0; i < M; i++) mer__mlp_enc_bwd(&m->nn, &p->enc[i], NULL, p->dh[i]);
    return MER_OK;
}

static void attn_destroy(mer__model *m) {
    free(m->priv);
    m->priv = NULL;
}

const mer__model_ops mer__model_attention = {
    .name = "attention",
    .summary = "MERTools baseline: per-modality MLP encoders, learned raw modality weights",
    .build = attn_build,
    .init = attn_init,
    .forward = attn_forward,
    .backward = attn_backward,
    .destroy = attn_destroy,
};
