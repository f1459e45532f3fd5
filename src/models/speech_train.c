/*
 * speech_train.c -- forward and backward through the transformer layers of a frozen speech
 * encoder with adapters or LoRA and a classification head (speech_train.h has the model).
 *
 * The frozen weights are read in place through mer__speech_layer_get (no copy, never written);
 * only the flat trainable buffer given by the caller changes. Clips of a batch are stacked as
 * rows (sum of T_i, D) so every linear product runs once over the batch; attention runs per clip.
 * The forward keeps, per layer, the tensors its backward needs in one block sized from the rows
 * of the batch: it grows to the largest batch seen and is then reused, so steady-state steps do
 * not allocate. Per layer that is ~(10 D + 2 I) floats per row plus H T^2 per clip for the
 * attention probabilities (docs/finetune.md has the numbers at HuBERT-large).
 */
#include "speech_train.h"

#include "kernels/kernels.h"
#include "speech_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* LoRA on one projection: offsets of A (r, in) and B (out, r), or -1. */
typedef struct {
    int64_t a, b, in, out;
} sft_lora;

enum { P_Q, P_K, P_V, P_O, P_F1, P_F2, P_N };

typedef struct {
    mer__speech_layer w;
    const uint16_t *w16[P_N];           /* bfloat16 copies of the projections (bf16 only) */
    int adapted;
    int64_t ad_dw, ad_db, ad_uw, ad_ub; /* adapter down (B, D), (B); up (D, B), (D) */
    sft_lora lora[P_N];
    /* saved activations (pointers into the state's block) */
    const float *x;                     /* input (rows, D) */
    float *n1, *mean1, *rstd1;          /* stable: LN1(x); post: LN1 stats of r1 */
    float *q, *k, *v, *ctx, *probs;
    float *r1, *h1;                     /* x + attn; post: h1 = LN1(r1) / stable: n2 = LN2(r1) */
    float *mean2, *rstd2;
    float *hid, *g;                     /* pre-GELU, GELU (rows, I) */
    float *f;                           /* feed-forward output (rows, D) */
    float *z, *za;                      /* adapter pre/post ReLU (rows, B) */
    float *r2;                          /* post: pre-final_layer_norm sum */
    float *out;                         /* layer output (rows, D) */
    float *u[P_N];                      /* LoRA A x (rows, r) */
    const float *lin[P_N];              /* the LoRA branch's input after dropout (rows, in) */
    float *dmask[P_N];                  /* its dropout mask (rows, in), NULL without dropout */
} sft_layer;

struct mer__sft {
    const mer_speech_model *m;
    mer__sft_config c;
    int64_t D, H, I, L, B, r;
    int stable;
    float eps, scaling;
    const float *enc_g, *enc_b;
    sft_layer *layers;                  /* last - first + 1 */
    int64_t head_w, head_b;
    int64_t rec_w, rec_b;               /* reconstruction head, or -1 */
    mer__sft_param *params;
    int32_t n_params_t, cap_params_t;
    int64_t n_params;
    /* activations of the last forward */
    float *block;
    size_t block_cap, block_used;
    int64_t rows, n, cap_off;
    int64_t *off;
    float *fin_mean, *fin_rstd, *fin;   /* final encoder LN (stable, last == L) */
    float *hsum, *feat;                 /* head input per row (rows, D), pooled (n, D) */
    float *attn_ws;                     /* attention forward workspace (the largest clip) */
    int64_t attn_bwd_ws;                /* floats of attention backward workspace */
    /* masked reconstruction (training forward with recon_weight > 0) */
    float *xm;                          /* the masked input (rows, D) */
    int64_t *mrows, n_masked;           /* masked row indices (rows) */
    float *hm, *diff;                   /* hidden state adapt_last / recon - x at them (nm, D) */
    float recon_loss;
    /* backward scratch */
    float *sbuf;
    size_t sbuf_cap;
    int trained;                        /* last forward kept activations */
};

/* ---- parameter table --------------------------------------------------------------------- */

static int64_t declare(mer__sft *s, const char *name, int32_t ndim, int64_t d0, int64_t d1) {
    /* LoRA runs use peft's names, so a fold checkpoint loads into peft unchanged */
    const char *pre = s->c.method == MER__SFT_LORA ? "base_model.model." : "";
    if (s->n_params_t == s->cap_params_t) {
        int32_t cap = s->cap_params_t ? 2 * s->cap_params_t : 64;
        mer__sft_param *p = realloc(s->params, (size_t)cap * sizeof *p);
        if (!p) return -1;
        s->params = p;
        s->cap_params_t = cap;
    }
    mer__sft_param *p = &s->params[s->n_params_t++];
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "%s%s", pre, name);
    p->ndim = ndim;
    p->shape[0] = d0;
    p->shape[1] = ndim > 1 ? d1 : 0;
    p->numel = ndim > 1 ? d0 * d1 : d0;
    p->off = s->n_params;
    s->n_params += p->numel;
    return p->off;
}

static const char *proj_name[P_N] = {"attention.q_proj", "attention.k_proj", "attention.v_proj",
                                     "attention.out_proj", "feed_forward.intermediate_dense",
                                     "feed_forward.output_dense"};

mer_status mer__sft_init(mer__sft **out, const mer_speech_model *m, const mer__sft_config *c) {
    *out = NULL;
    mer_speech_info info;
    mer_speech_model_info(m, &info);
    const int32_t L = info.n_layers;
    if (c->first < 1 || c->last > L || c->first > c->last)
        return mer__err(MER_ERR_INVALID_ARG,
                        "layers %d-%d outside the model (it has layers 1-%d)", (int)c->first,
                        (int)c->last, (int)L);
    if (c->method != MER__SFT_NONE && (c->adapt_last < c->first || c->adapt_last > c->last))
        return mer__err(MER_ERR_INVALID_ARG, "adapted layers %d-%d outside the trained layers %d-%d",
                        (int)c->first, (int)c->adapt_last, (int)c->first, (int)c->last);
    if (c->head_first < c->first || c->head_first > c->last)
        return mer__err(MER_ERR_INVALID_ARG, "head layers %d-%d outside the trained layers %d-%d",
                        (int)c->head_first, (int)c->last, (int)c->first, (int)c->last);
    if (c->n_classes < 2 || c->n_classes > 4096)
        return mer__err(MER_ERR_INVALID_ARG, "%d classes (need 2..4096)", (int)c->n_classes);
    if (c->method == MER__SFT_ADAPTER && (c->bottleneck < 1 || c->bottleneck > 65536))
        return mer__err(MER_ERR_INVALID_ARG, "adapter bottleneck %d (need 1..65536)",
                        (int)c->bottleneck);
    if (c->method == MER__SFT_LORA && (c->rank < 1 || c->rank > 4096 || !(c->alpha > 0.0f)))
        return mer__err(MER_ERR_INVALID_ARG, "LoRA rank %d alpha %g (need rank 1..4096, alpha > 0)",
                        (int)c->rank, (double)c->alpha);
    if (c->method < MER__SFT_NONE || c->method > MER__SFT_LORA)
        return mer__err(MER_ERR_INVALID_ARG, "unknown fine-tuning method %d", (int)c->method);
    if (!(c->dropout >= 0.0f && c->dropout < 1.0f))
        return mer__err(MER_ERR_INVALID_ARG, "LoRA dropout %g (need 0 <= p < 1)", (double)c->dropout);
    if (!(c->recon_weight >= 0.0f && c->recon_weight <= 1e6f))
        return mer__err(MER_ERR_INVALID_ARG, "reconstruction weight %g (need 0..1e6)",
                        (double)c->recon_weight);
    if (c->recon_weight > 0.0f &&
        (c->method == MER__SFT_NONE || !(c->mask_prob > 0.0f && c->mask_prob <= 1.0f) ||
         c->mask_len < 1 || c->mask_len > 1 << 20))
        return mer__err(MER_ERR_INVALID_ARG, "reconstruction loss: needs adapted layers, mask "
                        "probability in (0, 1] and span length >= 1 (got %g, %d)",
                        (double)c->mask_prob, (int)c->mask_len);
    mer__sft *s = mer__calloc(1, sizeof *s);
    if (!s) return MER_ERR_NOMEM;
    s->m = m;
    s->c = *c;
    s->D = info.hidden_size;
    s->H = info.n_heads;
    s->I = info.intermediate_size;
    s->L = L;
    s->B = c->bottleneck;
    s->r = c->rank;
    s->stable = info.stable_layer_norm;
    s->scaling = c->method == MER__SFT_LORA ? c->alpha / (float)c->rank : 0.0f;
    mer__speech_encoder_ln(m, &s->enc_g, &s->enc_b, &s->eps);
    const int32_t nl = c->last - c->first + 1;
    s->layers = mer__calloc((size_t)nl, sizeof *s->layers);
    if (!s->layers) {
        mer__sft_free(s);
        return MER_ERR_NOMEM;
    }
    char name[96];
    const int64_t D = s->D, I = s->I;
    for (int32_t j = 0; j < nl; j++) {
        sft_layer *ly = &s->layers[j];
        const int32_t l = c->first - 1 + j; /* 0-based layer index, the HF module number */
        mer_status st = mer__speech_layer_get(m, l, &ly->w);
        if (st == MER_OK && c->bf16) st = mer__speech_layer_bf16(m, l, ly->w16);
        if (st) {
            mer__sft_free(s);
            return st;
        }
        for (int p = 0; p < P_N; p++) ly->lora[p].a = ly->lora[p].b = -1;
        ly->ad_dw = ly->ad_db = ly->ad_uw = ly->ad_ub = -1;
        ly->adapted = c->method != MER__SFT_NONE && c->first + j <= c->adapt_last;
        if (!ly->adapted) continue;
        if (c->method == MER__SFT_ADAPTER) {
            snprintf(name, sizeof name, "encoder.layers.%d.adapter.down.weight", (int)l);
            ly->ad_dw = declare(s, name, 2, s->B, D);
            snprintf(name, sizeof name, "encoder.layers.%d.adapter.down.bias", (int)l);
            ly->ad_db = declare(s, name, 1, s->B, 0);
            snprintf(name, sizeof name, "encoder.layers.%d.adapter.up.weight", (int)l);
            ly->ad_uw = declare(s, name, 2, D, s->B);
            snprintf(name, sizeof name, "encoder.layers.%d.adapter.up.bias", (int)l);
            ly->ad_ub = declare(s, name, 1, D, 0);
        } else {
            for (int p = 0; p < P_N; p++) {
                if (p >= P_F1 && !c->lora_ffn) continue;
                const int64_t in = p == P_F2 ? I : D, o = p == P_F1 ? I : D;
                snprintf(name, sizeof name, "encoder.layers.%d.%s.lora_A.weight", (int)l, proj_name[p]);
                ly->lora[p].a = declare(s, name, 2, s->r, in);
                snprintf(name, sizeof name, "encoder.layers.%d.%s.lora_B.weight", (int)l, proj_name[p]);
                ly->lora[p].b = declare(s, name, 2, o, s->r);
                ly->lora[p].in = in;
                ly->lora[p].out = o;
            }
        }
    }
    s->head_w = declare(s, "head.weight", 2, c->n_classes, D);
    s->head_b = declare(s, "head.bias", 1, c->n_classes, 0);
    s->rec_w = s->rec_b = -1;
    if (c->recon_weight > 0.0f) {
        s->rec_w = declare(s, "recon.weight", 2, D, D);
        s->rec_b = declare(s, "recon.bias", 1, D, 0);
    }
    for (int32_t i = 0; i < s->n_params_t; i++)
        if (s->params[i].off < 0) {
            mer__sft_free(s);
            return MER_ERR_NOMEM;
        }
    if (s->head_w < 0 || s->head_b < 0) {
        mer__sft_free(s);
        return MER_ERR_NOMEM;
    }
    *out = s;
    return MER_OK;
}

void mer__sft_free(mer__sft *s) {
    if (!s) return;
    free(s->layers);
    free(s->params);
    free(s->block);
    free(s->off);
    free(s->sbuf);
    free(s);
}

int64_t mer__sft_n_params(const mer__sft *s) { return s->n_params; }
int64_t mer__sft_dim(const mer__sft *s) { return s->D; }
size_t mer__sft_act_bytes(const mer__sft *s) { return s->block_cap + s->sbuf_cap; }

const mer__sft_param *mer__sft_params(const mer__sft *s, int32_t *n) {
    *n = s->n_params_t;
    return s->params;
}

void mer__sft_init_params(const mer__sft *s, float *params, mer__rng *rng) {
    memset(params, 0, (size_t)s->n_params * sizeof(float));
    const int64_t D = s->D;
    const int32_t nl = s->c.last - s->c.first + 1;
    for (int32_t j = 0; j < nl; j++) {
        const sft_layer *ly = &s->layers[j];
        if (!ly->adapted) continue;
        if (s->c.method == MER__SFT_ADAPTER) {
            const float bd = 1.0f / sqrtf((float)D);
            for (int64_t i = 0; i < s->B * D; i++)
                params[ly->ad_dw + i] = (float)((2.0 * mer__rng_uniform(rng) - 1.0) * bd);
            for (int64_t i = 0; i < s->B; i++)
                params[ly->ad_db + i] = (float)((2.0 * mer__rng_uniform(rng) - 1.0) * bd);
        } else {
            for (int p = 0; p < P_N; p++) {
                if (ly->lora[p].a < 0) continue;
                const float bd = 1.0f / sqrtf((float)ly->lora[p].in);
                for (int64_t i = 0; i < s->r * ly->lora[p].in; i++)
                    params[ly->lora[p].a + i] = (float)((2.0 * mer__rng_uniform(rng) - 1.0) * bd);
            }
        }
    }
    const float bh = 1.0f / sqrtf((float)D);
    for (int64_t i = 0; i < (int64_t)s->c.n_classes * D; i++)
        params[s->head_w + i] = (float)((2.0 * mer__rng_uniform(rng) - 1.0) * bh);
    for (int64_t i = 0; i < s->c.n_classes; i++)
        params[s->head_b + i] = (float)((2.0 * mer__rng_uniform(rng) - 1.0) * bh);
    if (s->rec_w >= 0) {
        for (int64_t i = 0; i < D * D; i++)
            params[s->rec_w + i] = (float)((2.0 * mer__rng_uniform(rng) - 1.0) * bh);
        for (int64_t i = 0; i < D; i++)
            params[s->rec_b + i] = (float)((2.0 * mer__rng_uniform(rng) - 1.0) * bh);
    }
}

float mer__sft_recon_loss(const mer__sft *s) { return s->recon_loss; }
const float *mer__sft_hidden(const mer__sft *s) { return s->hsum; }

/* ---- activation block -------------------------------------------------------------------- */

static float *take(mer__sft *s, int64_t n) {
    size_t bytes = ((size_t)n * sizeof(float) + 63) & ~(size_t)63;
    if (s->block_used + bytes > s->block_cap) return NULL;
    float *p = (float *)((char *)s->block + s->block_used);
    s->block_used += bytes;
    return p;
}

/* Floats (with 64-byte rounding slack) a forward over rows/n clips needs. */
static size_t block_bytes(const mer__sft *s, int64_t rows, int64_t probs, int64_t attn_ws,
                          int train) {
    const int64_t D = s->D, I = s->I, B = s->B, r = s->r;
    int64_t per = 0, nbuf = 0;
    per += 2 * rows * D + 2 * rows;       /* n1, mean1, rstd1 */
    per += 4 * rows * D + probs;          /* q k v ctx probs */
    per += 2 * rows * D + 2 * rows;       /* r1 h1 mean2 rstd2 */
    per += 2 * rows * I + 3 * rows * D;   /* hid g f r2 out */
    per += 2 * rows * B;                  /* z za */
    per += P_N * rows * r;                /* u */
    if (train && s->c.dropout > 0.0f) per += 2 * rows * (4 * D + (s->c.lora_ffn ? D + I : 0));
    nbuf = 22 + 3 * P_N;
    int64_t nl = s->c.last - s->c.first + 1;
    int64_t total = nl * per + 2 * rows * D + 2 * rows + rows * D + (int64_t)s->n * D + 8 * D;
    total += attn_ws;
    if (train && s->rec_w >= 0) total += 3 * rows * D + 2 * rows; /* xm hm diff, mrows */
    return (size_t)total * sizeof(float) + (size_t)(nl * nbuf + 24) * 64;
}

/* y += s B A dropout(x), as peft's LoraLayer (lora_B(lora_A(lora_dropout(x))) * scaling). With
 * dropout in training the dropped input and the mask are kept in the block for backward. */
static void lora_fwd(const mer__sft *s, sft_layer *ly, int p, float *y, const float *x,
                     const float *params, int64_t rows, mer__rng *rng) {
    const sft_lora *lo = &ly->lora[p];
    if (lo->a < 0) return;
    const float *xin = x;
    if (ly->dmask[p]) {
        float *xd = (float *)ly->lin[p];
        mer__dropout_fwd(xd, ly->dmask[p], x, s->c.dropout, rows * lo->in, rng);
        xin = xd;
    } else {
        ly->lin[p] = x;
    }
    mer__linear_fwd(ly->u[p], xin, params + lo->a, NULL, rows, lo->in, s->r);
    mer_sgemm(0, 1, rows, lo->out, s->r, s->scaling, ly->u[p], s->r, params + lo->b, s->r, 1.0f, y,
              lo->out);
}

/* dy (rows, out) of y += s B A dropout(x): grads of A and B, and dx += mask * s A^T B^T dy;
 * du scratch (rows, r), dxd scratch (rows, in) used with dropout. */
static void lora_bwd(const mer__sft *s, const sft_layer *ly, int p, float *dx, float *grads,
                     float *du, float *dxd, const float *dy, const float *params, int64_t rows) {
    const sft_lora *lo = &ly->lora[p];
    if (lo->a < 0) return;
    const int64_t r = s->r;
    const float scaling = s->scaling;
    mer_sgemm(1, 0, lo->out, r, rows, scaling, dy, lo->out, ly->u[p], r, 1.0f, grads + lo->b, r);
    mer_sgemm(0, 0, rows, r, lo->out, scaling, dy, lo->out, params + lo->b, r, 0.0f, du, r);
    mer_sgemm(1, 0, r, lo->in, rows, 1.0f, du, r, ly->lin[p], lo->in, 1.0f, grads + lo->a, lo->in);
    if (ly->dmask[p]) {
        mer_sgemm(0, 0, rows, lo->in, r, 1.0f, du, r, params + lo->a, lo->in, 0.0f, dxd, lo->in);
        mer__dropout_bwd(dx, dxd, ly->dmask[p], rows * lo->in);
    } else {
        mer_sgemm(0, 0, rows, lo->in, r, 1.0f, du, r, params + lo->a, lo->in, 1.0f, dx, lo->in);
    }
}

/* The frozen projection p of a layer: y = x W^T (+ b when b; beta 1 adds onto y) in float32, or
 * through the bfloat16 weights. */
static void frozen_fwd(const mer__sft *s, const sft_layer *ly, int p, const float *W,
                       const float *b, float *y, const float *x, int64_t rows, int64_t in,
                       int64_t out, float beta) {
    if (s->c.bf16) {
        mer_sgemm_bf16(1, rows, out, in, x, in, ly->w16[p], in, beta != 0.0f, y, out);
        if (b)
            for (int64_t i = 0; i < rows; i++)
                for (int64_t c = 0; c < out; c++) y[i * out + c] += b[c];
    } else if (b && beta == 0.0f) {
        mer__linear_fwd(y, x, W, b, rows, in, out);
    } else {
        if (b)
            for (int64_t i = 0; i < rows; i++)
                for (int64_t c = 0; c < out; c++) y[i * out + c] += b[c];
        mer_sgemm(0, 1, rows, out, in, 1.0f, x, in, W, in, beta != 0.0f || b ? 1.0f : 0.0f, y, out);
    }
}

/* dx (rows, in) = dy W (+ dx when beta 1) for the frozen projection p. */
static void frozen_dx(const mer__sft *s, const sft_layer *ly, int p, const float *W, float *dx,
                      const float *dy, int64_t rows, int64_t in, int64_t out, float beta) {
    if (s->c.bf16)
        mer_sgemm_bf16(0, rows, in, out, dy, out, ly->w16[p], in, beta != 0.0f, dx, in);
    else
        mer_sgemm(0, 0, rows, in, out, 1.0f, dy, out, W, in, beta, dx, in);
}

static int has_nonfinite(const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return 1;
    return 0;
}

/* ---- forward ----------------------------------------------------------------------------- */

static mer_status layer_fwd(mer__sft *s, sft_layer *ly, const float *params, const float *x, int train,
                      int64_t rows, mer__rng *rng) {
    const int64_t D = s->D, I = s->I, H = s->H, dh = D / H, B = s->B;
    const mer__speech_layer *w = &ly->w;
    const float scale = 1.0f / sqrtf((float)dh);
    ly->x = x;
    const float *a_in = x;
    if (s->stable) {
        mer__layernorm_fwd(ly->n1, ly->mean1, ly->rstd1, x, w->ln1_g, w->ln1_b, rows, D, s->eps);
        a_in = ly->n1;
    }
    frozen_fwd(s, ly, P_Q, w->wq, w->bq, ly->q, a_in, rows, D, D, 0.0f);
    frozen_fwd(s, ly, P_K, w->wk, w->bk, ly->k, a_in, rows, D, D, 0.0f);
    frozen_fwd(s, ly, P_V, w->wv, w->bv, ly->v, a_in, rows, D, D, 0.0f);
    lora_fwd(s, ly, P_Q, ly->q, a_in, params, rows, rng);
    lora_fwd(s, ly, P_K, ly->k, a_in, params, rows, rng);
    lora_fwd(s, ly, P_V, ly->v, a_in, params, rows, rng);
    int64_t poff = 0;
    for (int64_t i = 0; i < s->n; i++) {
        const int64_t o = s->off[i], T = s->off[i + 1] - o;
        mer_status st = mer__attention_fwd(ly->ctx + o * D, D, train ? ly->probs + poff : NULL,
                                           ly->q + o * D, D, ly->k + o * D, D, ly->v + o * D, D,
                                           NULL, T, T, H, dh, scale, s->attn_ws);
        if (st != MER_OK) return st;
        poff += H * T * T;
    }
    /* r1 = x + ctx Wo^T + bo (+ LoRA) */
    memcpy(ly->r1, x, (size_t)(rows * D) * sizeof(float));
    for (int64_t i = 0; i < rows; i++)
        for (int64_t c = 0; c < D; c++) ly->r1[i * D + c] += w->bo[c];
    frozen_fwd(s, ly, P_O, w->wo, NULL, ly->r1, ly->ctx, rows, D, D, 1.0f);
    lora_fwd(s, ly, P_O, ly->r1, ly->ctx, params, rows, rng);
    /* post-LN: h1 = LN1(r1), the feed-forward input and residual; stable: h1 = LN2(r1) */
    if (s->stable)
        mer__layernorm_fwd(ly->h1, ly->mean2, ly->rstd2, ly->r1, w->ln2_g, w->ln2_b, rows, D, s->eps);
    else
        mer__layernorm_fwd(ly->h1, ly->mean1, ly->rstd1, ly->r1, w->ln1_g, w->ln1_b, rows, D, s->eps);
    frozen_fwd(s, ly, P_F1, w->w1, w->b1, ly->hid, ly->h1, rows, D, I, 0.0f);
    lora_fwd(s, ly, P_F1, ly->hid, ly->h1, params, rows, rng);
    mer__gelu_fwd(ly->g, ly->hid, rows * I);
    frozen_fwd(s, ly, P_F2, w->w2, w->b2, ly->f, ly->g, rows, I, D, 0.0f);
    lora_fwd(s, ly, P_F2, ly->f, ly->g, params, rows, rng);
    /* the feed-forward block's output, through the adapter, onto its residual */
    float *sum = s->stable ? ly->out : ly->r2;
    const float *res = s->stable ? ly->r1 : ly->h1;
    for (int64_t i = 0; i < rows * D; i++) sum[i] = res[i] + ly->f[i];
    if (ly->adapted && s->c.method == MER__SFT_ADAPTER) {
        mer__linear_fwd(ly->z, ly->f, params + ly->ad_dw, params + ly->ad_db, rows, D, B);
        mer__relu_fwd(ly->za, ly->z, rows * B);
        for (int64_t i = 0; i < rows; i++)
            for (int64_t c = 0; c < D; c++) sum[i * D + c] += params[ly->ad_ub + c];
        mer_sgemm(0, 1, rows, D, B, 1.0f, ly->za, B, params + ly->ad_uw, B, 1.0f, sum, D);
    }
    if (!s->stable)
        mer__layernorm_fwd(ly->out, ly->mean2, ly->rstd2, ly->r2, w->ln2_g, w->ln2_b, rows, D, s->eps);
    return MER_OK;
}

/* Zero spans of frames of each clip in s->xm (a copy of x) and list the masked rows; draws from
 * rng in the order speech_train.h states. */
static void recon_mask(mer__sft *s, const float *x, mer__rng *rng) {
    const int64_t D = s->D;
    memcpy(s->xm, x, (size_t)(s->rows * D) * sizeof(float));
    uint8_t *hit = (uint8_t *)s->hm; /* scratch: hm is written only after the masks */
    memset(hit, 0, (size_t)s->rows);
    for (int64_t i = 0; i < s->n; i++) {
        const int64_t o = s->off[i], T = s->off[i + 1] - o;
        const int64_t len = s->c.mask_len < T ? s->c.mask_len : T;
        const double want = (double)s->c.mask_prob * (double)T / (double)len + mer__rng_uniform(rng);
        const int64_t ns = (int64_t)want;
        for (int64_t k = 0; k < ns; k++) {
            const int64_t st = (int64_t)(mer__rng_uniform(rng) * (double)(T - len + 1));
            memset(hit + o + st, 1, (size_t)len);
        }
    }
    s->n_masked = 0;
    for (int64_t t = 0; t < s->rows; t++)
        if (hit[t]) {
            s->mrows[s->n_masked++] = t;
            memset(s->xm + t * D, 0, (size_t)D * sizeof(float));
        }
}

/* recon(h) at the masked rows against x there: keeps hm and diff, returns W * MSE. */
static float recon_fwd(mer__sft *s, const float *params, const float *h, const float *x) {
    const int64_t D = s->D, nm = s->n_masked;
    if (nm == 0) return 0.0f;
    for (int64_t k = 0; k < nm; k++)
        memcpy(s->hm + k * D, h + s->mrows[k] * D, (size_t)D * sizeof(float));
    mer__linear_fwd(s->diff, s->hm, params + s->rec_w, params + s->rec_b, nm, D, D);
    double sum = 0.0;
    for (int64_t k = 0; k < nm; k++) {
        float *d = s->diff + k * D;
        const float *t = x + s->mrows[k] * D;
        for (int64_t c = 0; c < D; c++) {
            d[c] -= t[c];
            sum += (double)d[c] * d[c];
        }
    }
    return (float)((double)s->c.recon_weight * sum / (double)(nm * D));
}

mer_status mer__sft_forward(mer__sft *s, const float *params, const float *x, const int64_t *off,
                            int64_t n, int train, mer__rng *rng, float *logits, float *feat) {
    const int64_t D = s->D, H = s->H, C = s->c.n_classes;
    if (n < 1 || off[0] != 0)
        return mer__err(MER_ERR_INVALID_ARG, "speech fine-tuning: empty batch");
    int64_t probs = 0, ws = 0;
    for (int64_t i = 0; i < n; i++) {
        const int64_t T = off[i + 1] - off[i];
        if (T < 1) return mer__err(MER_ERR_SHAPE, "speech fine-tuning: clip %lld has no frame", (long long)i);
        probs += H * T * T;
        const int64_t w = mer__attention_ws_floats(T, T, H, D / H);
        if (w > ws) ws = w;
        if (T * T > s->attn_bwd_ws) s->attn_bwd_ws = T * T;
    }
    const int64_t rows = off[n];
    if (has_nonfinite(x, rows * D))
        return mer__err(MER_ERR_NUMERIC, "speech fine-tuning: NaN or Inf in the cached activations");
    const int drop = train && s->c.dropout > 0.0f && s->c.method == MER__SFT_LORA;
    const int recon = train && s->rec_w >= 0;
    if ((drop || recon) && !rng)
        return mer__err(MER_ERR_INVALID_ARG, "speech fine-tuning: dropout or masking needs an rng");
    if (n + 1 > s->cap_off) {
        int64_t *o = realloc(s->off, (size_t)(n + 1) * sizeof *o);
        if (!o) return MER_ERR_NOMEM;
        s->off = o;
        s->cap_off = n + 1;
    }
    memcpy(s->off, off, (size_t)(n + 1) * sizeof *off);
    s->n = n;
    s->rows = rows;
    /* eval keeps no probabilities */
    const size_t need = block_bytes(s, rows, train ? probs : 0, ws, train);
    if (need > s->block_cap) {
        free(s->block);
        s->block = NULL;
        s->block_cap = 0;
        if (posix_memalign((void **)&s->block, 64, need)) {
            s->block = NULL;
            return mer__err(MER_ERR_NOMEM, "speech fine-tuning: %zu MB of activations do not fit",
                            need >> 20);
        }
        s->block_cap = need;
    }
    s->block_used = 0;
    const int32_t nl = s->c.last - s->c.first + 1;
    const int64_t I = s->I, B = s->B, r = s->r;
    for (int32_t j = 0; j < nl; j++) {
        sft_layer *ly = &s->layers[j];
        ly->n1 = s->stable ? take(s, rows * D) : NULL;
        ly->mean1 = take(s, rows);
        ly->rstd1 = take(s, rows);
        ly->q = take(s, rows * D);
        ly->k = take(s, rows * D);
        ly->v = take(s, rows * D);
        ly->ctx = take(s, rows * D);
        ly->probs = train ? take(s, probs) : NULL;
        ly->r1 = take(s, rows * D);
        ly->h1 = take(s, rows * D);
        ly->mean2 = take(s, rows);
        ly->rstd2 = take(s, rows);
        ly->hid = take(s, rows * I);
        ly->g = take(s, rows * I);
        ly->f = take(s, rows * D);
        ly->r2 = s->stable ? NULL : take(s, rows * D);
        ly->out = take(s, rows * D);
        const int ad = ly->adapted && s->c.method == MER__SFT_ADAPTER;
        ly->z = ad ? take(s, rows * B) : NULL;
        ly->za = ad ? take(s, rows * B) : NULL;
        for (int p = 0; p < P_N; p++) {
            const int on = ly->lora[p].a >= 0;
            ly->u[p] = on ? take(s, rows * r) : NULL;
            ly->dmask[p] = on && drop ? take(s, rows * ly->lora[p].in) : NULL;
            ly->lin[p] = on && drop ? take(s, rows * ly->lora[p].in) : NULL;
        }
    }
    const int fin = s->stable && s->c.last == s->L;
    s->fin = fin ? take(s, rows * D) : NULL;
    s->fin_mean = fin ? take(s, rows) : NULL;
    s->fin_rstd = fin ? take(s, rows) : NULL;
    s->hsum = take(s, rows * D);
    s->feat = take(s, n * D);
    s->attn_ws = take(s, ws);
    s->xm = recon ? take(s, rows * D) : NULL;
    s->hm = recon ? take(s, rows * D) : NULL;
    s->diff = recon ? take(s, rows * D) : NULL;
    s->mrows = recon ? (int64_t *)take(s, 2 * rows) : NULL;
    if (!s->hsum || !s->feat || !s->attn_ws || (recon && !s->mrows))
        return mer__err(MER_ERR_INTERNAL, "speech fine-tuning: block too small");

    s->recon_loss = 0.0f;
    s->n_masked = 0;
    const float *in = x;
    if (recon) {
        recon_mask(s, x, rng);
        in = s->xm;
    }
    memset(s->hsum, 0, (size_t)(rows * D) * sizeof(float));
    for (int32_t j = 0; j < nl; j++) {
        sft_layer *ly = &s->layers[j];
        mer_status ls = layer_fwd(s, ly, params, in, train, rows, rng);
        if (ls != MER_OK) return ls;
        in = ly->out;
        const int32_t hs = s->c.first + j;
        if (recon && hs == s->c.adapt_last) s->recon_loss = recon_fwd(s, params, ly->out, x);
        if (hs < s->c.head_first) continue;
        const float *h = ly->out;
        if (fin && hs == s->L) {
            mer__layernorm_fwd(s->fin, s->fin_mean, s->fin_rstd, ly->out, s->enc_g, s->enc_b, rows,
                               D, s->eps);
            h = s->fin;
        }
        for (int64_t i = 0; i < rows * D; i++) s->hsum[i] += h[i];
    }
    for (int64_t i = 0; i < n; i++)
        mer__mean_pool_fwd(s->feat + i * D, s->hsum + off[i] * D, off[i + 1] - off[i], D);
    if (feat) memcpy(feat, s->feat, (size_t)(n * D) * sizeof(float));
    if (logits) mer__linear_fwd(logits, s->feat, params + s->head_w, params + s->head_b, n, D, C);
    s->trained = train;
    return MER_OK;
}

/* ---- backward ---------------------------------------------------------------------------- */

/* dout (rows, D) -> dx (rows, D) += d/dx; scratch holds 5 (rows, D) + 2 (rows, I) + ... */
static mer_status layer_bwd(mer__sft *s, sft_layer *ly, const float *params, float *grads,
                      const float *dout, float *dx, float *sc) {
    const int64_t D = s->D, I = s->I, H = s->H, dh = D / H, B = s->B, r = s->r, rows = s->rows;
    const mer__speech_layer *w = &ly->w;
    const float scale = 1.0f / sqrtf((float)dh);
    const size_t RD = (size_t)(rows * D) * sizeof(float);
    float *dsum = sc;                     /* d(residual sum) (rows, D) */
    float *df = dsum + rows * D;          /* d(feed-forward output) */
    float *dh1 = df + rows * D;           /* d(feed-forward input) */
    float *dr1 = dh1 + rows * D;
    float *dctx = dr1 + rows * D;
    float *dqkv = dctx + rows * D;        /* (3, rows, D) */
    float *dg = dqkv + 3 * rows * D;      /* (rows, I), then d hid */
    float *dhid = dg + rows * I;
    float *du = dhid + rows * I;          /* (rows, max(r, B)) */
    float *dz = du + rows * (r > B ? r : B);
    float *dxd = dz + rows * (r > B ? r : B); /* (rows, I): LoRA dropout's input gradient */
    float *aws = dxd + rows * I;          /* attention backward (the largest clip's T^2) */

    if (s->stable) {
        memcpy(dsum, dout, RD);
    } else {
        memset(dsum, 0, RD);
        mer__layernorm_bwd(dsum, NULL, NULL, dout, ly->r2, ly->mean2, ly->rstd2, w->ln2_g, rows, D);
    }
    memcpy(df, dsum, RD);
    if (ly->adapted && s->c.method == MER__SFT_ADAPTER) {
        /* sum += up(relu(down(f))) */
        mer__linear_bwd(NULL, grads + ly->ad_uw, grads + ly->ad_ub, dsum, ly->za, params + ly->ad_uw,
                        rows, B, D);
        memset(du, 0, (size_t)(rows * B) * sizeof(float));
        mer_sgemm(0, 0, rows, B, D, 1.0f, dsum, D, params + ly->ad_uw, B, 0.0f, du, B);
        memset(dz, 0, (size_t)(rows * B) * sizeof(float));
        mer__relu_bwd(dz, du, ly->z, rows * B);
        mer__linear_bwd(df, grads + ly->ad_dw, grads + ly->ad_db, dz, ly->f, params + ly->ad_dw,
                        rows, D, B);
    }
    /* f = W2 gelu(W1 h1 + b1) + b2 (+ LoRA) */
    memset(dg, 0, (size_t)(rows * I) * sizeof(float));
    frozen_dx(s, ly, P_F2, w->w2, dg, df, rows, I, D, 0.0f);
    lora_bwd(s, ly, P_F2, dg, grads, du, dxd, df, params, rows);
    memset(dhid, 0, (size_t)(rows * I) * sizeof(float));
    mer__gelu_bwd(dhid, dg, ly->hid, rows * I);
    /* the feed-forward input: post-LN its residual too (h1), stable the residual is r1 */
    if (s->stable) memset(dh1, 0, RD);
    else memcpy(dh1, dsum, RD);
    frozen_dx(s, ly, P_F1, w->w1, dh1, dhid, rows, D, I, 1.0f);
    lora_bwd(s, ly, P_F1, dh1, grads, du, dxd, dhid, params, rows);
    /* back to r1 = x + attn */
    if (s->stable) {
        memcpy(dr1, dsum, RD);
        mer__layernorm_bwd(dr1, NULL, NULL, dh1, ly->r1, ly->mean2, ly->rstd2, w->ln2_g, rows, D);
    } else {
        memset(dr1, 0, RD);
        mer__layernorm_bwd(dr1, NULL, NULL, dh1, ly->r1, ly->mean1, ly->rstd1, w->ln1_g, rows, D);
    }
    /* attention branch */
    frozen_dx(s, ly, P_O, w->wo, dctx, dr1, rows, D, D, 0.0f);
    lora_bwd(s, ly, P_O, dctx, grads, du, dxd, dr1, params, rows);
    float *dq = dqkv, *dk = dqkv + rows * D, *dv = dqkv + 2 * rows * D;
    memset(dqkv, 0, 3 * RD);
    int64_t poff = 0;
    for (int64_t i = 0; i < s->n; i++) {
        const int64_t o = s->off[i], T = s->off[i + 1] - o;
        mer_status st = mer__attention_bwd(dq + o * D, dk + o * D, dv + o * D, dctx + o * D, D,
                                           ly->probs + poff, ly->q + o * D, D, ly->k + o * D, D,
                                           ly->v + o * D, D, T, T, H, dh, scale, aws);
        if (st != MER_OK) return st;
        poff += H * T * T;
    }
    /* d(attention input): reuse dctx */
    float *dain = dctx;
    frozen_dx(s, ly, P_Q, w->wq, dain, dq, rows, D, D, 0.0f);
    frozen_dx(s, ly, P_K, w->wk, dain, dk, rows, D, D, 1.0f);
    frozen_dx(s, ly, P_V, w->wv, dain, dv, rows, D, D, 1.0f);
    lora_bwd(s, ly, P_Q, dain, grads, du, dxd, dq, params, rows);
    lora_bwd(s, ly, P_K, dain, grads, du, dxd, dk, params, rows);
    lora_bwd(s, ly, P_V, dain, grads, du, dxd, dv, params, rows);
    /* the residual and the attention input */
    for (int64_t i = 0; i < rows * D; i++) dx[i] += dr1[i];
    if (s->stable)
        mer__layernorm_bwd(dx, NULL, NULL, dain, ly->x, ly->mean1, ly->rstd1, w->ln1_g, rows, D);
    else
        for (int64_t i = 0; i < rows * D; i++) dx[i] += dain[i];
    return MER_OK;
}

mer_status mer__sft_backward(mer__sft *s, const float *params, float *grads, const float *dlogits,
                             float *dx) {
    if (!s->trained)
        return mer__err(MER_ERR_INTERNAL, "speech fine-tuning: backward without a training forward");
    const int64_t D = s->D, I = s->I, C = s->c.n_classes, rows = s->rows, n = s->n;
    const int64_t w = s->r > s->B ? s->r : s->B;
    /* scratch: layer_bwd's 8 (rows, D) + 3 (rows, I) + 2 (rows, w) + the attention's; dfeat
     * (n, D); dhs, dcur, dnext (rows, D); the reconstruction's d(hidden state) (rows, D) */
    const int64_t lw = rows * (8 * D + 3 * I + 2 * w) + s->attn_bwd_ws;
    const size_t need = (size_t)(lw + rows * 4 * D + n * D) * sizeof(float);
    if (need > s->sbuf_cap) {
        free(s->sbuf);
        s->sbuf = malloc(need);
        s->sbuf_cap = s->sbuf ? need : 0;
        if (!s->sbuf) return mer__err(MER_ERR_NOMEM, "speech fine-tuning: backward scratch");
    }
    float *sc = s->sbuf;
    float *dfeat = sc + lw;
    float *dhs = dfeat + n * D, *dcur = dhs + rows * D, *dnext = dcur + rows * D;
    float *dhm = dnext + rows * D;
    const int64_t nm = s->rec_w >= 0 ? s->n_masked : 0;
    if (nm > 0) {
        /* loss W mean(diff^2): d diff = 2 W diff / (nm D), in place; then recon's gradients */
        const float k = 2.0f * s->c.recon_weight / (float)(nm * D);
        for (int64_t i = 0; i < nm * D; i++) s->diff[i] *= k;
        memset(dhm, 0, (size_t)(nm * D) * sizeof(float));
        mer__linear_bwd(dhm, grads + s->rec_w, grads + s->rec_b, s->diff, s->hm, params + s->rec_w,
                        nm, D, D);
    }
    mer__linear_bwd(NULL, grads + s->head_w, grads + s->head_b, dlogits, s->feat,
                    params + s->head_w, n, D, C);
    memset(dfeat, 0, (size_t)(n * D) * sizeof(float));
    mer_sgemm(0, 0, n, D, C, 1.0f, dlogits, C, params + s->head_w, D, 0.0f, dfeat, D);
    memset(dhs, 0, (size_t)(rows * D) * sizeof(float));
    for (int64_t i = 0; i < n; i++)
        mer__mean_pool_bwd(dhs + s->off[i] * D, dfeat + i * D, s->off[i + 1] - s->off[i], D);
    const int32_t nl = s->c.last - s->c.first + 1;
    memset(dcur, 0, (size_t)(rows * D) * sizeof(float));
    for (int32_t j = nl - 1; j >= 0; j--) {
        if (!dx && s->c.method == MER__SFT_NONE) break; /* only the head trains */
        const int32_t hs = s->c.first + j;
        if (hs >= s->c.head_first) {
            if (s->stable && hs == s->L)
                mer__layernorm_bwd(dcur, NULL, NULL, dhs, s->layers[j].out, s->fin_mean,
                                   s->fin_rstd, s->enc_g, rows, D);
            else
                for (int64_t i = 0; i < rows * D; i++) dcur[i] += dhs[i];
        }
        if (nm > 0 && hs == s->c.adapt_last)
            for (int64_t k = 0; k < nm; k++) {
                float *d = dcur + s->mrows[k] * D;
                const float *e = dhm + k * D;
                for (int64_t c = 0; c < D; c++) d[c] += e[c];
            }
        /* the first layer writes into dx directly, unless frames were masked: their input was
         * a constant zero, so they get no gradient */
        const int direct = j == 0 && dx && nm == 0;
        float *din = direct ? dx : dnext;
        if (!direct) memset(din, 0, (size_t)(rows * D) * sizeof(float));
        mer_status ls = layer_bwd(s, &s->layers[j], params, grads, dcur, din, sc);
        if (ls != MER_OK) return ls;
        if (j == 0 && dx && nm > 0) {
            for (int64_t k = 0; k < nm; k++)
                memset(din + s->mrows[k] * D, 0, (size_t)D * sizeof(float));
            for (int64_t i = 0; i < rows * D; i++) dx[i] += din[i];
        }
        float *t = dcur;
        dcur = dnext;
        dnext = t;
    }
    s->trained = 0; /* one backward per training forward (the reconstruction scaled in place) */
    return MER_OK;
}

/* ---- identity of a model and the run's encoder spec -------------------------------------- */

static uint64_t fnv(uint64_t h, const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

void mer__speech_digest(const mer_speech_model *m, char out[17]) {
    mer_speech_info info;
    mer_speech_model_info(m, &info);
    uint64_t h = 1469598103934665603ull;
    h = fnv(h, info.model_type, strnlen(info.model_type, sizeof info.model_type));
    const int64_t v[] = {info.n_layers, info.hidden_size, info.n_heads, info.intermediate_size,
                         info.conv_layers, info.stable_layer_norm, info.n_params};
    h = fnv(h, v, sizeof v);
    const int64_t D = info.hidden_size;
    for (int32_t l = 0; l < info.n_layers; l++) {
        mer__speech_layer w;
        if (mer__speech_layer_get(m, l, &w)) continue;
        /* a strided sample: cheap at any size, different for any two random initialisations */
        const float *t[] = {w.wq, w.wo, w.w1, w.w2, w.ln1_g, w.bq};
        const int64_t n[] = {D * D, D * D, D * info.intermediate_size, D * info.intermediate_size, D, D};
        for (int k = 0; k < 6; k++)
            for (int64_t i = 0; i < n[k]; i += n[k] / 61 + 1) h = fnv(h, &t[k][i], sizeof(float));
    }
    snprintf(out, 17, "%016llx", (unsigned long long)h);
}

void mer__sft_spec_format(char *out, size_t cap, const char *model, const char *digest,
                          const mer__sft_config *c) {
    static const char *meth[] = {"none", "adapter", "lora"};
    snprintf(out, cap,
             "model=%s;digest=%s;first=%d;last=%d;adapt_last=%d;head_first=%d;method=%s;"
             "bottleneck=%d;rank=%d;alpha=%.9g;lora_ffn=%d;dropout=%.9g;recon=%.9g;mask_prob=%.9g;"
             "mask_len=%d;bf16=%d",
             model, digest, (int)c->first, (int)c->last, (int)c->adapt_last, (int)c->head_first,
             meth[c->method >= 0 && c->method <= 2 ? c->method : 0], (int)c->bottleneck,
             (int)c->rank, (double)c->alpha, (int)c->lora_ffn, (double)c->dropout,
             (double)c->recon_weight, (double)c->mask_prob, (int)c->mask_len, (int)c->bf16);
}

mer_status mer__sft_spec_parse(const char *spec, mer__sft_config *c, char *model, size_t cap,
                               char digest[17]) {
    memset(c, 0, sizeof *c);
    c->mask_prob = 0.05f; /* runs made before the reconstruction loss lack these fields */
    c->mask_len = 10;
    model[0] = digest[0] = '\0';
    const char *p = spec;
    int seen = 0;
    while (*p) {
        const char *eq = strchr(p, '='), *end = strchr(p, ';');
        if (!end) end = p + strlen(p);
        if (!eq || eq > end) return mer__err(MER_ERR_FORMAT, "encoder spec: field '%.*s' lacks '='", (int)(end - p), p);
        const size_t kl = (size_t)(eq - p), vl = (size_t)(end - eq - 1);
        char val[1024];
        if (vl >= sizeof val) return mer__err(MER_ERR_FORMAT, "encoder spec: value of '%.*s' too long", (int)kl, p);
        memcpy(val, eq + 1, vl);
        val[vl] = '\0';
#define KEY(k) (kl == strlen(k) && !strncmp(p, k, kl))
        char *e = NULL;
        long iv = strtol(val, &e, 10);
        int isint = e && e != val && !*e;
        if (KEY("model")) {
            if (vl >= cap) return mer__err(MER_ERR_FORMAT, "encoder spec: model path too long");
            memcpy(model, val, vl + 1);
        } else if (KEY("digest")) {
            if (vl != 16) return mer__err(MER_ERR_FORMAT, "encoder spec: bad digest '%s'", val);
            memcpy(digest, val, 17);
        } else if (KEY("method")) {
            c->method = !strcmp(val, "adapter") ? MER__SFT_ADAPTER : !strcmp(val, "lora") ? MER__SFT_LORA
                        : !strcmp(val, "none") ? MER__SFT_NONE : -1;
            if (c->method < 0) return mer__err(MER_ERR_FORMAT, "encoder spec: unknown method '%s'", val);
        } else if (KEY("alpha") || KEY("dropout") || KEY("recon") || KEY("mask_prob")) {
            const float f = strtof(val, &e);
            if (e == val || *e || !isfinite(f))
                return mer__err(MER_ERR_FORMAT, "encoder spec: bad %.*s '%s'", (int)kl, p, val);
            *(KEY("alpha") ? &c->alpha : KEY("dropout") ? &c->dropout : KEY("recon")
              ? &c->recon_weight : &c->mask_prob) = f;
        } else if (!isint || iv < 0 || iv > 1 << 20) {
            return mer__err(MER_ERR_FORMAT, "encoder spec: bad field '%.*s=%s'", (int)kl, p, val);
        } else if (KEY("first")) c->first = (int32_t)iv, seen |= 1;
        else if (KEY("last")) c->last = (int32_t)iv, seen |= 2;
        else if (KEY("adapt_last")) c->adapt_last = (int32_t)iv;
        else if (KEY("head_first")) c->head_first = (int32_t)iv;
        else if (KEY("bottleneck")) c->bottleneck = (int32_t)iv;
        else if (KEY("rank")) c->rank = (int32_t)iv;
        else if (KEY("lora_ffn")) c->lora_ffn = (int32_t)iv;
        else if (KEY("mask_len")) c->mask_len = (int32_t)iv;
        else if (KEY("bf16")) c->bf16 = iv != 0;
        else if (KEY("classes")) c->n_classes = (int32_t)iv;
        else return mer__err(MER_ERR_FORMAT, "encoder spec: unknown field '%.*s'", (int)kl, p);
#undef KEY
        p = *end ? end + 1 : end;
    }
    if (!model[0] || seen != 3)
        return mer__err(MER_ERR_FORMAT, "encoder spec: needs model, first and last");
    return MER_OK;
}
