/*
 * fusion_agt.c -- two attention fusion models for the trainer (design: docs/agt.md).
 *
 *  agt      Audio-Guided Transformer (after Shi & Gao, arXiv 2409.05007, built from its abstract):
 *           every modality is projected to width W and split into tokens (an utterance vector
 *           into k sub-tokens, a sequence as its frames); L intra-channel self-attention blocks
 *           per modality; for each non-audio modality, L inter-channel blocks whose queries are
 *           the audio tokens and whose keys/values are that modality's tokens; the plain audio
 *           stream and the audio-guided streams are mean-pooled and mixed by a learned softmax
 *           gate; a linear classifier.
 *  afusion  attention fusion after the 4th-place MER2024-SEMI system (arXiv 2409.05015 as
 *           summarised): one token per modality (sequences mean-pooled first), L self-attention
 *           blocks across the modality tokens, mean pooling, a linear classifier.
 *
 * Blocks are post-LayerNorm transformer layers, the semantics of torch.nn.TransformerEncoderLayer
 * (norm_first=False, activation relu, dim_feedforward 2W, dropout only on the input tokens):
 *   h = LN1(q + MHA(q, kv, kv));  y = LN2(h + fc2(relu(fc1(h))))
 * Built from the layer kit (src/nn: mer__mha, mer__ln, mer__ffn, mer__lin, mean pooling). The
 * forward (train=1) also reserves every buffer its backward needs, so backward cannot fail.
 */
#include "models/fusion.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define AGT_MAX_LAYERS 8

/* ---- the transformer block --------------------------------------------------------------- */

typedef struct {
    mer__mha att;
    mer__ln ln1, ln2;
    mer__ffn ffn;
    /* saved by forward */
    const float *xq;
    int64_t rq, rkv;
    mer__ln_saved s1, s2;
    float *h1, *y;
    /* backward scratch, reserved by forward */
    float *du2, *dh1, *du1;
} blk;

static mer_status blk_declare(mer__model *m, blk *b, const char *prefix, int64_t w, int64_t heads) {
    char name[128];
    mer_status s;
    snprintf(name, sizeof name, "%s.attn", prefix);
    if ((s = mer__mha_declare(&m->nn, &b->att, name, w, heads)) != MER_OK) return s;
    snprintf(name, sizeof name, "%s.ln1", prefix);
    if ((s = mer__ln_declare(&m->nn, &b->ln1, name, w)) != MER_OK) return s;
    if ((s = mer__ffn_declare(&m->nn, &b->ffn, prefix, w, 2 * w, MER__ACTFN_RELU)) != MER_OK)
        return s;
    snprintf(name, sizeof name, "%s.ln2", prefix);
    return mer__ln_declare(&m->nn, &b->ln2, name, w);
}

static void blk_init(mer__model *m, const blk *b, mer__rng *rng) {
    mer__mha_init(&m->nn, &b->att, rng);
    mer__ln_init(&m->nn, &b->ln1);
    mer__ffn_init(&m->nn, &b->ffn, rng);
    mer__ln_init(&m->nn, &b->ln2);
}

/* y (rq, w) = block(queries xq (rq, w) per offq, keys/values xkv per offkv), n clips. */
static mer_status blk_fwd(mer__model *m, blk *b, float **y, const float *xq, const int64_t *offq,
                          int64_t rq, const float *xkv, const int64_t *offkv, int64_t rkv,
                          int64_t n, int train) {
    const int64_t w = b->ln1.c;
    float *att = NULL;
    mer_status s = mer__mha_fwd(&m->nn, &b->att, &att, xq, offq, xkv, offkv, NULL, n, train);
    if (s != MER_OK) return s;
    float *u1 = mer__nn_act(&m->nn, rq * w);
    if (!u1) return MER_ERR_NOMEM;
    for (int64_t i = 0; i < rq * w; i++) u1[i] = xq[i] + att[i];
    if ((s = mer__ln_fwd(&m->nn, &b->ln1, &b->s1, &b->h1, u1, rq)) != MER_OK) return s;
    float *u2 = NULL;
    if ((s = mer__ffn_fwd(&m->nn, &b->ffn, &u2, b->h1, rq, train)) != MER_OK) return s;
    for (int64_t i = 0; i < rq * w; i++) u2[i] += b->h1[i];
    if ((s = mer__ln_fwd(&m->nn, &b->ln2, &b->s2, &b->y, u2, rq)) != MER_OK) return s;
    b->xq = xq;
    b->rq = rq;
    b->rkv = rkv;
    if (train) {
        b->du2 = mer__nn_act(&m->nn, rq * w);
        b->dh1 = mer__nn_act(&m->nn, rq * w);
        b->du1 = mer__nn_act(&m->nn, rq * w);
        if (!b->du2 || !b->dh1 || !b->du1) return MER_ERR_NOMEM;
    }
    *y = b->y;
    return MER_OK;
}

/* dxq (rq, w) += d/dxq, dxkv (rkv, w) += d/dxkv (may alias dxq for self-attention). */
static void blk_bwd(mer__model *m, blk *b, float *dxq, float *dxkv, const float *dy) {
    const int64_t w = b->ln1.c, rq = b->rq;
    memset(b->du2, 0, (size_t)(rq * w) * sizeof(float));
    memset(b->du1, 0, (size_t)(rq * w) * sizeof(float));
    mer__ln_bwd(&m->nn, &b->ln2, &b->s2, b->du2, dy);
    memcpy(b->dh1, b->du2, (size_t)(rq * w) * sizeof(float));
    mer__ffn_bwd(&m->nn, &b->ffn, b->dh1, b->du2);
    mer__ln_bwd(&m->nn, &b->ln1, &b->s1, b->du1, b->dh1);
    for (int64_t i = 0; i < rq * w; i++) dxq[i] += b->du1[i];
    mer__mha_bwd(&m->nn, &b->att, dxq, dxkv, b->du1);
}

/* ---- model state ------------------------------------------------------------------------- */

typedef struct {
    int agt;                         /* 1: agt, 0: afusion */
    int32_t M, guide, k, L, S;       /* modalities, audio index, sub-tokens, layers, streams */
    int64_t W;
    mer__lin proj[MER_MAX_MODALITIES];
    blk intra[MER_MAX_MODALITIES][AGT_MAX_LAYERS];
    blk inter[MER_MAX_MODALITIES][AGT_MAX_LAYERS];
    mer__lin gate, cls;
    /* saved by forward */
    int64_t n;
    int64_t rows[MER_MAX_MODALITIES];        /* token rows of each modality (agt) */
    int64_t *off[MER_MAX_MODALITIES];        /* token offsets (n + 1) */
    float *pin[MER_MAX_MODALITIES];          /* afusion: pooled sequence input (n, D) */
    float *tok0[MER_MAX_MODALITIES], *mask[MER_MAX_MODALITIES], *tok[MER_MAX_MODALITIES];
    float *xin[MER_MAX_MODALITIES][AGT_MAX_LAYERS + 1];  /* intra stream states */
    float *gin[MER_MAX_MODALITIES][AGT_MAX_LAYERS + 1];  /* inter stream states (agt) */
    int32_t stream_mod[MER_MAX_MODALITIES];  /* stream j comes from modality (guide for j=0) */
    float *pooled;                           /* (n, S*W) */
    float *ga;                               /* (n, S) gate softmax */
    float *fused;                            /* (n, W) */
    /* backward scratch */
    float *dfused, *dpooled, *dga, *dgl;
    float *dx[MER_MAX_MODALITIES][AGT_MAX_LAYERS + 1], *dg[MER_MAX_MODALITIES][AGT_MAX_LAYERS + 1];
    float *dtok[MER_MAX_MODALITIES];
} fus;

static mer_status build(mer__model *m, int agt) {
    const mer__model_config *c = &m->cfg;
    if (c->n_mod < 1 || c->n_mod > MER_MAX_MODALITIES || c->hidden < 1 || c->heads < 1 ||
        c->hidden % c->heads != 0)
        return mer__err(MER_ERR_INVALID_ARG, "%s: hidden %d must be a positive multiple of heads %d",
                        c->model, c->hidden, c->heads);
    if (c->layers < 1 || c->layers > AGT_MAX_LAYERS)
        return mer__err(MER_ERR_INVALID_ARG, "%s: layers %d not in [1, %d]", c->model, c->layers,
                        AGT_MAX_LAYERS);
    int32_t k = c->tokens > 0 ? c->tokens : 4;
    if (k > 64) return mer__err(MER_ERR_INVALID_ARG, "%s: tokens %d not in [1, 64]", c->model, k);
    fus *f = mer__calloc(1, sizeof *f);
    if (!f) return MER_ERR_NOMEM;
    m->priv = f;
    f->agt = agt;
    f->M = c->n_mod;
    f->k = k;
    f->L = c->layers;
    f->W = c->hidden;
    /* The guide is the modality named "audio", else the first one. */
    f->guide = 0;
    for (int32_t i = 0; i < f->M; i++)
        if (!strcmp(c->modality[i], "audio")) {
            f->guide = i;
            break;
        }
    char name[128];
    mer_status s = MER_OK;
    for (int32_t i = 0; i < f->M && s == MER_OK; i++) {
        int64_t out = (agt && !c->is_seq[i]) ? (int64_t)k * f->W : f->W;
        snprintf(name, sizeof name, "proj.%s", c->modality[i]);
        s = mer__lin_declare(&m->nn, &f->proj[i], name, c->dim[i], out);
    }
    if (agt) {
        for (int32_t i = 0; i < f->M && s == MER_OK; i++)
            for (int32_t l = 0; l < f->L && s == MER_OK; l++) {
                snprintf(name, sizeof name, "intra.%s.%d", c->modality[i], l);
                s = blk_declare(m, &f->intra[i][l], name, f->W, c->heads);
            }
        f->S = 0;
        f->stream_mod[f->S++] = f->guide;
        for (int32_t i = 0; i < f->M && s == MER_OK; i++) {
            if (i == f->guide) continue;
            f->stream_mod[f->S++] = i;
            for (int32_t l = 0; l < f->L && s == MER_OK; l++) {
                snprintf(name, sizeof name, "inter.%s.%d", c->modality[i], l);
                s = blk_declare(m, &f->inter[i][l], name, f->W, c->heads);
            }
        }
        if (s == MER_OK) s = mer__lin_declare(&m->nn, &f->gate, "gate", (int64_t)f->S * f->W, f->S);
    } else {
        for (int32_t l = 0; l < f->L && s == MER_OK; l++) {
            snprintf(name, sizeof name, "fusion.%d", l);
            s = blk_declare(m, &f->intra[0][l], name, f->W, c->heads);
        }
    }
    if (s == MER_OK) s = mer__lin_declare(&m->nn, &f->cls, "classifier", f->W, c->n_classes);
    return s;
}

static mer_status build_agt(mer__model *m) { return build(m, 1); }
static mer_status build_afusion(mer__model *m) { return build(m, 0); }

static void init(mer__model *m, mer__rng *rng) {
    fus *f = m->priv;
    for (int32_t i = 0; i < f->M; i++) mer__lin_init(&m->nn, &f->proj[i], rng);
    if (f->agt) {
        for (int32_t i = 0; i < f->M; i++)
            for (int32_t l = 0; l < f->L; l++) blk_init(m, &f->intra[i][l], rng);
        for (int32_t i = 0; i < f->M; i++)
            if (i != f->guide)
                for (int32_t l = 0; l < f->L; l++) blk_init(m, &f->inter[i][l], rng);
        mer__lin_init(&m->nn, &f->gate, rng);
    } else {
        for (int32_t l = 0; l < f->L; l++) blk_init(m, &f->intra[0][l], rng);
    }
    mer__lin_init(&m->nn, &f->cls, rng);
}

static void destroy(mer__model *m) {
    mer__free(m->priv);
    m->priv = NULL;
}

/* ---- forward ----------------------------------------------------------------------------- */

static mer_status forward(mer__model *m, const mer__batch *b, int train, mer__rng *rng,
                          float *logits) {
    fus *f = m->priv;
    const mer__model_config *c = &m->cfg;
    const int64_t n = b->n, W = f->W;
    if (b->n_mod != f->M)
        return mer__err(MER_ERR_SHAPE, "%s: batch has %d modalities, model %d", c->model,
                        b->n_mod, f->M);
    float p = train ? c->dropout : 0.0f;
    mer_status s;
    f->n = n;

    if (!f->agt) {
        /* afusion: one token per modality, token i*M + mod */
        const int32_t M = f->M;
        float *tok = mer__nn_act(&m->nn, n * M * W);
        float *tmp = mer__nn_act(&m->nn, n * W);
        int64_t *off = f->off[0] = mer__nn_act_off(&m->nn, n);
        if (!tok || !tmp || !off) return MER_ERR_NOMEM;
        for (int64_t i = 0; i <= n; i++) off[i] = i * M;
        for (int32_t mi = 0; mi < M; mi++) {
            const float *x = b->x[mi];
            int64_t D = b->dim[mi];
            if (b->off[mi]) {
                float *pin = f->pin[mi] = mer__nn_act(&m->nn, n * D);
                if (!pin) return MER_ERR_NOMEM;
                mer__mean_rows(pin, D, x, b->off[mi], n, D);
                x = pin;
            } else {
                f->pin[mi] = NULL;
            }
            float *t0 = f->tok0[mi] = mer__nn_act(&m->nn, n * W);
            float *mk = f->mask[mi] = train ? mer__nn_act(&m->nn, n * W) : NULL;
            if (!t0 || (train && !mk)) return MER_ERR_NOMEM;
            mer__lin_fwd(&m->nn, &f->proj[mi], t0, x, n);
            mer__dropout_fwd(tmp, mk, t0, p, n * W, rng);
            for (int64_t i = 0; i < n; i++)
                memcpy(tok + (i * M + mi) * W, tmp + i * W, (size_t)W * sizeof(float));
        }
        f->xin[0][0] = tok;
        for (int32_t l = 0; l < f->L; l++)
            if ((s = blk_fwd(m, &f->intra[0][l], &f->xin[0][l + 1], f->xin[0][l], off, n * M,
                             f->xin[0][l], off, n * M, n, train)) != MER_OK)
                return s;
        f->fused = mer__nn_act(&m->nn, n * W);
        if (!f->fused) return MER_ERR_NOMEM;
        mer__mean_rows(f->fused, W, f->xin[0][f->L], off, n, W);
        mer__lin_fwd(&m->nn, &f->cls, logits, f->fused, n);
        if (train) {
            f->dfused = mer__nn_act0(&m->nn, n * W);
            f->dtok[0] = mer__nn_act0(&m->nn, n * M * W);
            f->dx[0][f->L] = mer__nn_act0(&m->nn, n * M * W);
            if (!f->dfused || !f->dtok[0] || !f->dx[0][f->L]) return MER_ERR_NOMEM;
            for (int32_t l = 0; l < f->L; l++)
                if (!(f->dx[0][l] = mer__nn_act0(&m->nn, n * M * W))) return MER_ERR_NOMEM;
        }
        return MER_OK;
    }

    /* agt: tokens per modality */
    for (int32_t mi = 0; mi < f->M; mi++) {
        int64_t rows;
        int64_t *off = f->off[mi] = mer__nn_act_off(&m->nn, n);
        if (!off) return MER_ERR_NOMEM;
        if (b->off[mi]) {
            rows = b->off[mi][n];
            memcpy(off, b->off[mi], (size_t)(n + 1) * sizeof *off);
        } else {
            rows = n * f->k;
            for (int64_t i = 0; i <= n; i++) off[i] = i * f->k;
        }
        f->rows[mi] = rows;
        float *t0 = f->tok0[mi] = mer__nn_act(&m->nn, rows * W);
        float *tk = f->tok[mi] = mer__nn_act(&m->nn, rows * W);
        float *mk = f->mask[mi] = train ? mer__nn_act(&m->nn, rows * W) : NULL;
        if (!t0 || !tk || (train && !mk)) return MER_ERR_NOMEM;
        /* (n, k*W) row-major is (n*k, W): the sub-tokens need no copy */
        mer__lin_fwd(&m->nn, &f->proj[mi], t0, b->x[mi], b->off[mi] ? rows : n);
        mer__dropout_fwd(tk, mk, t0, p, rows * W, rng);
        f->xin[mi][0] = tk;
        for (int32_t l = 0; l < f->L; l++)
            if ((s = blk_fwd(m, &f->intra[mi][l], &f->xin[mi][l + 1], f->xin[mi][l], off, rows,
                             f->xin[mi][l], off, rows, n, train)) != MER_OK)
                return s;
    }
    const int32_t g = f->guide;
    const float *A = f->xin[g][f->L];
    const int64_t ra = f->rows[g];
    for (int32_t j = 1; j < f->S; j++) {
        int32_t mi = f->stream_mod[j];
        f->gin[mi][0] = (float *)A;
        for (int32_t l = 0; l < f->L; l++)
            if ((s = blk_fwd(m, &f->inter[mi][l], &f->gin[mi][l + 1], f->gin[mi][l], f->off[g], ra,
                             f->xin[mi][f->L], f->off[mi], f->rows[mi], n, train)) != MER_OK)
                return s;
    }
    const int32_t S = f->S;
    f->pooled = mer__nn_act(&m->nn, n * S * W);
    float *gl = mer__nn_act(&m->nn, n * S);
    f->ga = mer__nn_act(&m->nn, n * S);
    f->fused = mer__nn_act(&m->nn, n * W);
    if (!f->pooled || !gl || !f->ga || !f->fused) return MER_ERR_NOMEM;
    for (int32_t j = 0; j < S; j++) {
        const float *src = j == 0 ? A : f->gin[f->stream_mod[j]][f->L];
        mer__mean_rows(f->pooled + j * W, S * W, src, f->off[g], n, W);
    }
    mer__lin_fwd(&m->nn, &f->gate, gl, f->pooled, n);
    mer__softmax_fwd(f->ga, gl, n, S);
    for (int64_t i = 0; i < n; i++) {
        float *o = f->fused + i * W;
        memset(o, 0, (size_t)W * sizeof *o);
        for (int32_t j = 0; j < S; j++) {
            float a = f->ga[i * S + j];
            const float *sj = f->pooled + i * S * W + j * W;
            for (int64_t q = 0; q < W; q++) o[q] += a * sj[q];
        }
    }
    mer__lin_fwd(&m->nn, &f->cls, logits, f->fused, n);
    if (train) {
        f->dfused = mer__nn_act0(&m->nn, n * W);
        f->dpooled = mer__nn_act0(&m->nn, n * S * W);
        f->dga = mer__nn_act0(&m->nn, n * S);
        f->dgl = mer__nn_act0(&m->nn, n * S);
        if (!f->dfused || !f->dpooled || !f->dga || !f->dgl) return MER_ERR_NOMEM;
        for (int32_t mi = 0; mi < f->M; mi++)
            for (int32_t l = 0; l <= f->L; l++) {
                if (!(f->dx[mi][l] = mer__nn_act0(&m->nn, f->rows[mi] * W))) return MER_ERR_NOMEM;
                if (mi != g && !(f->dg[mi][l] = mer__nn_act0(&m->nn, ra * W))) return MER_ERR_NOMEM;
            }
    }
    return MER_OK;
}

/* ---- backward ---------------------------------------------------------------------------- */

static mer_status backward(mer__model *m, const mer__batch *b, const float *dlogits) {
    fus *f = m->priv;
    const int64_t n = f->n, W = f->W;
    mer__lin_bwd(&m->nn, &f->cls, f->dfused, dlogits, f->fused, n);

    if (!f->agt) {
        const int32_t M = f->M;
        float *dtop = f->dx[0][f->L];
        mer__mean_rows_bwd(dtop, f->dfused, W, f->off[0], n, W);
        for (int32_t l = f->L - 1; l >= 0; l--)
            blk_bwd(m, &f->intra[0][l], f->dx[0][l], f->dx[0][l], f->dx[0][l + 1]);
        /* tokens back to each modality's projection (the input needs no gradient) */
        float *dt = f->dtok[0];
        for (int32_t mi = 0; mi < M; mi++) {
            memset(dt, 0, (size_t)(n * W) * sizeof *dt);
            for (int64_t i = 0; i < n; i++) {
                const float *src = f->dx[0][0] + (i * M + mi) * W;
                const float *mk = f->mask[mi] + i * W;
                for (int64_t q = 0; q < W; q++) dt[i * W + q] = src[q] * mk[q];
            }
            const float *x = f->pin[mi] ? f->pin[mi] : b->x[mi];
            mer__lin_bwd(&m->nn, &f->proj[mi], NULL, dt, x, n);
        }
        return MER_OK;
    }

    const int32_t S = f->S, g = f->guide;
    /* fused = sum_j a_j s_j */
    for (int64_t i = 0; i < n; i++) {
        const float *df = f->dfused + i * W;
        for (int32_t j = 0; j < S; j++) {
            const float *sj = f->pooled + i * S * W + j * W;
            float *dsj = f->dpooled + i * S * W + j * W;
            float a = f->ga[i * S + j], dot = 0;
            for (int64_t q = 0; q < W; q++) {
                dot += df[q] * sj[q];
                dsj[q] += a * df[q];
            }
            f->dga[i * S + j] = dot;
        }
    }
    mer__softmax_bwd(f->dgl, f->dga, f->ga, n, S);
    mer__lin_bwd(&m->nn, &f->gate, f->dpooled, f->dgl, f->pooled, n);
    /* pooled streams back to their token rows */
    float *dA = f->dx[g][f->L];
    mer__mean_rows_bwd(dA, f->dpooled, S * W, f->off[g], n, W);
    for (int32_t j = 1; j < S; j++) {
        int32_t mi = f->stream_mod[j];
        mer__mean_rows_bwd(f->dg[mi][f->L], f->dpooled + j * W, S * W, f->off[g], n, W);
        for (int32_t l = f->L - 1; l >= 0; l--) {
            /* layer 0's queries are the audio stream itself */
            float *dq = l == 0 ? dA : f->dg[mi][l];
            blk_bwd(m, &f->inter[mi][l], dq, f->dx[mi][f->L], f->dg[mi][l + 1]);
        }
    }
    for (int32_t mi = 0; mi < f->M; mi++) {
        for (int32_t l = f->L - 1; l >= 0; l--)
            blk_bwd(m, &f->intra[mi][l], f->dx[mi][l], f->dx[mi][l], f->dx[mi][l + 1]);
        int64_t rows = f->rows[mi];
        float *dt = f->dx[mi][0];
        for (int64_t q = 0; q < rows * W; q++) dt[q] *= f->mask[mi][q];
        mer__lin_bwd(&m->nn, &f->proj[mi], NULL, dt, b->x[mi], b->off[mi] ? rows : n);
    }
    return MER_OK;
}

const mer__model_ops mer__model_agt = {
    .name = "agt",
    .summary = "Audio-Guided Transformer: intra-channel self-attention, audio-queried "
               "cross-attention, gated streams (docs/agt.md)",
    .build = build_agt,
    .init = init,
    .forward = forward,
    .backward = backward,
    .destroy = destroy,
};

const mer__model_ops mer__model_afusion = {
    .name = "afusion",
    .summary = "attention fusion: self-attention over one token per modality (docs/agt.md)",
    .build = build_afusion,
    .init = init,
    .forward = forward,
    .backward = backward,
    .destroy = destroy,
};
