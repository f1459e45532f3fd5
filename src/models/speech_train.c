/*
 * speech_train.c -- forward and backward through the transformer layers of a frozen speech
 * encoder with adapters or LoRA and a classification head (speech_train.h has the model),
 * built on the layer kit (src/nn): the trainable tensors are declared in a parameter set
 * (mer__nn: PyTorch / peft names, flat offsets), the LoRA and adapter branches are the kit's
 * mer__lora / mer__adapter, the heads mer__lin, and every activation lives in the set's arena.
 *
 * The frozen weights are read in place through mer__speech_layer_get (no copy, never written)
 * and multiplied by the kernels directly (float32, or bfloat16 with bf16); only the flat
 * trainable buffer given by the caller changes. Clips of a batch are stacked as rows (sum of
 * T_i, D) so every linear product runs once over the batch; attention runs per clip. A training
 * forward keeps, per layer, the tensors its backward needs and reserves the backward's scratch,
 * all in the arena, which grows to the largest batch and is then reused: steady-state steps do
 * not allocate and a backward cannot fail for memory. Per layer that is ~(10 D + 2 I) floats per
 * row plus H T^2 per clip for the attention probabilities (docs/finetune.md has the numbers).
 */
#include "speech_train.h"

#include "kernels/kernels.h"
#include "nn/nn.h"
#include "speech_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { P_Q, P_K, P_V, P_O, P_F1, P_F2, P_N };

typedef struct {
    mer__speech_layer w;
    const uint16_t *w16[P_N];           /* bfloat16 copies of the projections (bf16 only) */
    mer__plin pl[P_N];                  /* the projections packed (float32 / int8; not bf16) */
    int adapted;
    mer__adapter ad;                    /* method adapter */
    mer__lora lora[P_N];                /* method lora: r > 0 where declared */
    /* saved activations (pointers into the arena) */
    const float *x;                     /* input (rows, D) */
    float *n1, *mean1, *rstd1;          /* stable: LN1(x); post: LN1 stats of r1 */
    float *q, *k, *v, *ctx, *probs;
    float *r1, *h1;                     /* x + attn; post: h1 = LN1(r1) / stable: n2 = LN2(r1) */
    float *mean2, *rstd2;
    float *hid, *g;                     /* pre-GELU, GELU (rows, I) */
    float *f;                           /* feed-forward output (rows, D) */
    float *r2;                          /* post: pre-final_layer_norm sum */
    float *out;                         /* layer output (rows, D) */
} sft_layer;

struct mer__sft {
    const mer_speech_model *m;
    mer__sft_config c;
    int64_t D, H, I, L;
    int stable;
    float eps;
    const float *enc_g, *enc_b;
    mer__nn nn;                         /* trainable tensors (the caller owns the buffers) + arena */
    sft_layer *layers;                  /* last - first + 1 */
    mer__lin head, recon;               /* recon.in == 0 when off */
    /* activations of the last forward */
    int64_t rows, n, cap_off;
    int64_t *off;
    float *fin_mean, *fin_rstd, *fin;   /* final encoder LN (stable, last == L) */
    float *hsum, *feat;                 /* head input per row (rows, D), pooled (n, D) */
    float *attn_ws;                     /* attention forward workspace (the largest clip) */
    void *pws;                          /* the packed products' scratch (rows of the batch) */
    int attn_threads;                   /* the threads attn_ws was sized for */
    int64_t *poff;                      /* (n + 1) offsets of each clip's probabilities */
    /* masked reconstruction (training forward with recon_weight > 0) */
    float *xm;                          /* the masked input (rows, D) */
    int64_t *mrows, n_masked;           /* masked row indices (rows) */
    float *hm, *diff;                   /* hidden state adapt_last / recon - x at them (nm, D) */
    float recon_loss;
    float *sbuf;                        /* backward scratch, reserved by a training forward */
    int64_t attn_bwd_ws;
    int trained;                        /* last forward kept activations */
    /* the first layer's memo (c.memo_mb > 0): open addressing on a 128-bit content hash */
    struct memo_ent { uint64_t h1, h2; int64_t T; float *res, *f; } *memo;
    int64_t memo_cap, memo_n, memo_bytes;
    int memo_used;                      /* the last forward took the first layer from the memo */
};

/* ---- parameters ---------------------------------------------------------------------------- */

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
    if (c->memo_mb < 0 || (c->memo_mb > 0 && (c->method != MER__SFT_ADAPTER || c->recon_weight > 0.0f)))
        return mer__err(MER_ERR_INVALID_ARG, "the first-layer memo (%d MB) needs adapters and no "
                        "reconstruction loss", (int)c->memo_mb);
    if (c->bf16 && c->int8)
        return mer__err(MER_ERR_INVALID_ARG, "frozen projections: bf16 or int8, not both");
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
    s->stable = info.stable_layer_norm;
    mer__speech_encoder_ln(m, &s->enc_g, &s->enc_b, &s->eps);
    const int32_t nl = c->last - c->first + 1;
    s->layers = mer__calloc((size_t)nl, sizeof *s->layers);
    if (!s->layers) {
        mer__sft_free(s);
        return MER_ERR_NOMEM;
    }
    /* LoRA runs use peft's names, so a fold checkpoint loads into peft unchanged */
    const char *pre = c->method == MER__SFT_LORA ? "base_model.model." : "";
    char name[96];
    const int64_t D = s->D, I = s->I;
    mer_status st = MER_OK;
    for (int32_t j = 0; j < nl && st == MER_OK; j++) {
        sft_layer *ly = &s->layers[j];
        const int32_t l = c->first - 1 + j; /* 0-based layer index, the HF module number */
        st = mer__speech_layer_get(m, l, &ly->w);
        if (st == MER_OK && c->bf16) st = mer__speech_layer_bf16(m, l, ly->w16);
        ly->adapted = c->method != MER__SFT_NONE && c->first + j <= c->adapt_last;
        if (st == MER_OK && !c->bf16) {
            /* packed once (float32 or int8): the forward's W and, where a training backward
             * goes through the layer, W^T for dx (the first layer of an adapter or head-only
             * run stops at its adapter; an input gradient asked there runs mer_sgemm on W) */
            const mer__speech_layer *w = &ly->w;
            const float *W[P_N] = {w->wq, w->wk, w->wv, w->wo, w->w1, w->w2};
            const float *B[P_N] = {w->bq, w->bk, w->bv, w->bo, w->b1, w->b2};
            const int want_dx = j > 0 || c->method == MER__SFT_LORA;
            for (int p = 0; p < P_N && st == MER_OK; p++)
                st = mer__plin_init(&ly->pl[p], W[p], B[p], p == P_F2 ? I : D, p == P_F1 ? I : D,
                                    c->int8 ? MER_PACK_INT8 : MER_PACK_F32, want_dx);
        }
        if (st || !ly->adapted) continue;
        if (c->method == MER__SFT_ADAPTER) {
            snprintf(name, sizeof name, "%sencoder.layers.%d.adapter", pre, (int)l);
            st = mer__adapter_declare(&s->nn, &ly->ad, name, D, c->bottleneck);
            continue;
        }
        for (int p = 0; p < P_N && st == MER_OK; p++) {
            if (p >= P_F1 && !c->lora_ffn) continue;
            snprintf(name, sizeof name, "%sencoder.layers.%d.%s", pre, (int)l, proj_name[p]);
            st = mer__lora_declare(&s->nn, &ly->lora[p], name, p == P_F2 ? I : D,
                                   p == P_F1 ? I : D, c->rank, c->alpha, c->dropout);
        }
    }
    snprintf(name, sizeof name, "%shead", pre);
    if (st == MER_OK) st = mer__lin_declare(&s->nn, &s->head, name, D, c->n_classes);
    snprintf(name, sizeof name, "%srecon", pre);
    if (st == MER_OK && c->recon_weight > 0.0f) st = mer__lin_declare(&s->nn, &s->recon, name, D, D);
    if (st) {
        mer__sft_free(s);
        return st;
    }
    *out = s;
    return MER_OK;
}

void mer__sft_free(mer__sft *s) {
    if (!s) return;
    s->nn.params = s->nn.grads = NULL; /* the caller's */
    mer__nn_free(&s->nn);
    for (int32_t j = 0; s->layers && j < s->c.last - s->c.first + 1; j++)
        for (int p = 0; p < P_N; p++) mer__plin_free(&s->layers[j].pl[p]);
    free(s->layers);
    free(s->off);
    for (int64_t i = 0; i < s->memo_cap; i++) free(s->memo[i].res);
    free(s->memo);
    free(s);
}

int64_t mer__sft_n_params(const mer__sft *s) { return s->nn.n_params; }
int64_t mer__sft_dim(const mer__sft *s) { return s->D; }
size_t mer__sft_act_bytes(const mer__sft *s) { return s->nn.act.cap + s->nn.act.old_bytes; }

const mer__param_info *mer__sft_params(const mer__sft *s, int32_t *n) {
    *n = s->nn.n_info;
    return s->nn.info;
}

void mer__sft_init_params(mer__sft *s, float *params, mer__rng *rng) {
    memset(params, 0, (size_t)s->nn.n_params * sizeof(float));
    s->nn.params = params;
    const int32_t nl = s->c.last - s->c.first + 1;
    for (int32_t j = 0; j < nl; j++) {
        const sft_layer *ly = &s->layers[j];
        if (!ly->adapted) continue;
        if (s->c.method == MER__SFT_ADAPTER) mer__adapter_init(&s->nn, &ly->ad, rng);
        else
            for (int p = 0; p < P_N; p++)
                if (ly->lora[p].r) mer__lora_init(&s->nn, &ly->lora[p], rng);
    }
    mer__lin_init(&s->nn, &s->head, rng);
    if (s->recon.in) mer__lin_init(&s->nn, &s->recon, rng);
    s->nn.params = NULL;
}

float mer__sft_recon_loss(const mer__sft *s) { return s->recon_loss; }
const float *mer__sft_hidden(const mer__sft *s) { return s->hsum; }

/* ---- frozen products ------------------------------------------------------------------------ */

/* The frozen projection p of a layer: y = x W^T + b (+ y when accumulate), packed (float32 or
 * int8), or through the bfloat16 weights. */
static void frozen_fwd(const mer__sft *s, const sft_layer *ly, int p, float *y, const float *x,
                       int64_t rows, int accumulate) {
    if (!s->c.bf16) {
        mer__plin_fwd(&ly->pl[p], y, x, rows, accumulate, MER_EPI_NONE, s->pws);
        return;
    }
    const mer__speech_layer *w = &ly->w;
    const float *b[P_N] = {w->bq, w->bk, w->bv, w->bo, w->b1, w->b2};
    const int64_t in = p == P_F2 ? s->I : s->D, out = p == P_F1 ? s->I : s->D;
    mer_sgemm_bf16(1, rows, out, in, x, in, ly->w16[p], in, accumulate, y, out);
    for (int64_t i = 0; i < rows; i++)
        for (int64_t c = 0; c < out; c++) y[i * out + c] += b[p][c];
}

/* dx (rows, in) = dy W (+ dx when accumulate) for the frozen projection p. */
static void frozen_dx(const mer__sft *s, const sft_layer *ly, int p, float *dx, const float *dy,
                      int64_t rows, int accumulate) {
    if (!s->c.bf16) {
        mer__plin_dx(&ly->pl[p], dx, dy, rows, accumulate, s->pws);
        return;
    }
    const int64_t in = p == P_F2 ? s->I : s->D, out = p == P_F1 ? s->I : s->D;
    mer_sgemm_bf16(0, rows, in, out, dy, out, ly->w16[p], in, accumulate, dx, in);
}

static int has_nonfinite(const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return 1;
    return 0;
}

/* The LoRA branch of projection p, if the layer has one. */
static mer_status lora_fwd(mer__sft *s, sft_layer *ly, int p, float *y, const float *x,
                           int64_t rows, int train, mer__rng *rng) {
    return ly->lora[p].r ? mer__lora_fwd(&s->nn, &ly->lora[p], y, x, rows, train, rng) : MER_OK;
}

static void lora_bwd(mer__sft *s, sft_layer *ly, int p, float *dx, const float *dy) {
    if (ly->lora[p].r) mer__lora_bwd(&s->nn, &ly->lora[p], dx, dy);
}

/* ---- forward ----------------------------------------------------------------------------- */

static float *act(mer__sft *s, int64_t n) { return mer__nn_act(&s->nn, n); }

/* The feed-forward block's output ly->f, through the adapter, onto its residual (stable: r1,
 * post-LN: h1), then post-LN's final_layer_norm: ly->out. */
static mer_status layer_tail(mer__sft *s, sft_layer *ly, int64_t rows, int train) {
    const int64_t D = s->D;
    const mer__speech_layer *w = &ly->w;
    float *sum = s->stable ? ly->out : ly->r2;
    const float *res = s->stable ? ly->r1 : ly->h1;
    for (int64_t i = 0; i < rows * D; i++) sum[i] = res[i] + ly->f[i];
    mer_status st;
    if (ly->adapted && s->c.method == MER__SFT_ADAPTER &&
        (st = mer__adapter_fwd(&s->nn, &ly->ad, sum, ly->f, rows, train)))
        return st;
    if (!s->stable)
        mer__layernorm_fwd(ly->out, ly->mean2, ly->rstd2, ly->r2, w->ln2_g, w->ln2_b, rows, D, s->eps);
    return MER_OK;
}

static mer_status layer_fwd(mer__sft *s, sft_layer *ly, const float *x, int train, int64_t rows,
                            mer__rng *rng) {
    const int64_t D = s->D, I = s->I, H = s->H, dh = D / H;
    const mer__speech_layer *w = &ly->w;
    const float scale = 1.0f / sqrtf((float)dh);
    int64_t probs = 0;
    for (int64_t i = 0; i < s->n; i++) probs += H * (s->off[i + 1] - s->off[i]) * (s->off[i + 1] - s->off[i]);
    ly->n1 = s->stable ? act(s, rows * D) : NULL;
    ly->mean1 = act(s, rows);
    ly->rstd1 = act(s, rows);
    ly->q = act(s, rows * D);
    ly->k = act(s, rows * D);
    ly->v = act(s, rows * D);
    ly->ctx = act(s, rows * D);
    ly->probs = train ? act(s, probs) : NULL;
    ly->r1 = act(s, rows * D);
    ly->h1 = act(s, rows * D);
    ly->mean2 = act(s, rows);
    ly->rstd2 = act(s, rows);
    ly->hid = act(s, rows * I);
    ly->g = act(s, rows * I);
    ly->f = act(s, rows * D);
    ly->r2 = s->stable ? NULL : act(s, rows * D);
    ly->out = act(s, rows * D);
    if ((s->stable && !ly->n1) || !ly->mean1 || !ly->rstd1 || !ly->q || !ly->k || !ly->v ||
        !ly->ctx || (train && !ly->probs) || !ly->r1 || !ly->h1 || !ly->mean2 || !ly->rstd2 ||
        !ly->hid || !ly->g || !ly->f || (!s->stable && !ly->r2) || !ly->out)
        return MER_ERR_NOMEM;
    ly->x = x;
    const float *a_in = x;
    mer_status st = MER_OK;
    if (s->stable) {
        mer__layernorm_fwd(ly->n1, ly->mean1, ly->rstd1, x, w->ln1_g, w->ln1_b, rows, D, s->eps);
        a_in = ly->n1;
    }
    frozen_fwd(s, ly, P_Q, ly->q, a_in, rows, 0);
    frozen_fwd(s, ly, P_K, ly->k, a_in, rows, 0);
    frozen_fwd(s, ly, P_V, ly->v, a_in, rows, 0);
    if ((st = lora_fwd(s, ly, P_Q, ly->q, a_in, rows, train, rng)) ||
        (st = lora_fwd(s, ly, P_K, ly->k, a_in, rows, train, rng)) ||
        (st = lora_fwd(s, ly, P_V, ly->v, a_in, rows, train, rng)))
        return st;
    int64_t poff = 0;
    for (int64_t i = 0; i < s->n; i++) {
        const int64_t o = s->off[i], T = s->off[i + 1] - o;
        st = mer__attention_fwd_all(ly->ctx + o * D, D, train ? ly->probs + poff : NULL,
                                    ly->q + o * D, D, ly->k + o * D, D, ly->v + o * D, D, NULL, T,
                                    T, H, dh, scale, s->attn_ws, s->attn_threads);
        if (st != MER_OK) return st;
        poff += H * T * T;
    }
    /* r1 = x + ctx Wo^T + bo (+ LoRA) */
    memcpy(ly->r1, x, (size_t)(rows * D) * sizeof(float));
    frozen_fwd(s, ly, P_O, ly->r1, ly->ctx, rows, 1);
    if ((st = lora_fwd(s, ly, P_O, ly->r1, ly->ctx, rows, train, rng))) return st;
    /* post-LN: h1 = LN1(r1), the feed-forward input and residual; stable: h1 = LN2(r1) */
    if (s->stable)
        mer__layernorm_fwd(ly->h1, ly->mean2, ly->rstd2, ly->r1, w->ln2_g, w->ln2_b, rows, D, s->eps);
    else
        mer__layernorm_fwd(ly->h1, ly->mean1, ly->rstd1, ly->r1, w->ln1_g, w->ln1_b, rows, D, s->eps);
    frozen_fwd(s, ly, P_F1, ly->hid, ly->h1, rows, 0);
    if ((st = lora_fwd(s, ly, P_F1, ly->hid, ly->h1, rows, train, rng))) return st;
    mer__gelu_fwd(ly->g, ly->hid, rows * I);
    frozen_fwd(s, ly, P_F2, ly->f, ly->g, rows, 0);
    if ((st = lora_fwd(s, ly, P_F2, ly->f, ly->g, rows, train, rng))) return st;
    return layer_tail(s, ly, rows, train);
}

/* ---- the first layer's memo ---------------------------------------------------------------- */

static void memo_hash(const float *x, int64_t n, uint64_t *h1, uint64_t *h2) {
    uint64_t a = 1469598103934665603ull, b = 0x9e3779b97f4a7c15ull;
    uint32_t u;
    for (int64_t i = 0; i < n; i++) {
        memcpy(&u, &x[i], 4);
        a = (a ^ u) * 1099511628211ull;
        b = (b + u) * 0xff51afd7ed558ccdull;
        b ^= b >> 29;
    }
    *h1 = a;
    *h2 = b ^ (uint64_t)n;
}

/* The slot of (h1, h2, T): the entry, or the empty slot where it goes. */
static struct memo_ent *memo_slot(mer__sft *s, uint64_t h1, uint64_t h2, int64_t T) {
    for (int64_t i = (int64_t)(h1 & (uint64_t)(s->memo_cap - 1));; i = (i + 1) & (s->memo_cap - 1)) {
        struct memo_ent *e = &s->memo[i];
        if (!e->res || (e->h1 == h1 && e->h2 == h2 && e->T == T)) return e;
    }
}

static mer_status memo_grow(mer__sft *s) {
    const int64_t cap = s->memo_cap ? 2 * s->memo_cap : 1024;
    struct memo_ent *old = s->memo, *m = calloc((size_t)cap, sizeof *m);
    if (!m) return MER_ERR_NOMEM;
    const int64_t oc = s->memo_cap;
    s->memo = m;
    s->memo_cap = cap;
    for (int64_t i = 0; i < oc; i++)
        if (old[i].res) *memo_slot(s, old[i].h1, old[i].h2, old[i].T) = old[i];
    free(old);
    return MER_OK;
}

/* The first layer of the batch from the memo: per clip the frozen residual (post-LN: LN1 output;
 * stable: x + attention) and feed-forward output, computed for the clip alone on a miss; then
 * the adapter and the rest of the layer over the batch. */
static mer_status layer_fwd_memo(mer__sft *s, sft_layer *ly, const float *x, int train,
                                 int64_t rows) {
    const int64_t D = s->D, n = s->n;
    float *res = act(s, rows * D), *f = act(s, rows * D);
    if (!res || !f) return MER_ERR_NOMEM;
    int64_t *off = s->off, one[2] = {0, 0};
    mer_status st = MER_OK;
    for (int64_t i = 0; i < n && st == MER_OK; i++) {
        const int64_t o = off[i], T = off[i + 1] - o;
        const size_t bytes = (size_t)(T * D) * sizeof(float);
        uint64_t h1, h2;
        memo_hash(x + o * D, T * D, &h1, &h2);
        if (s->memo_n + 1 > s->memo_cap / 2 && (st = memo_grow(s))) break;
        struct memo_ent *e = memo_slot(s, h1, h2, T);
        if (!e->res) { /* a miss: the layer on this clip alone (its tail's output is dropped) */
            one[1] = T;
            s->off = one;
            s->n = 1;
            st = layer_fwd(s, ly, x + o * D, 0, T, NULL);
            s->off = off;
            s->n = n;
            if (st) break;
            const float *r = s->stable ? ly->r1 : ly->h1;
            memcpy(res + o * D, r, bytes);
            memcpy(f + o * D, ly->f, bytes);
            if (s->memo_bytes + 2 * (int64_t)bytes > (int64_t)s->c.memo_mb << 20) continue;
            if (!(e->res = malloc(2 * bytes))) continue; /* no memory: computed again next time */
            e->f = e->res + T * D;
            memcpy(e->res, r, bytes);
            memcpy(e->f, ly->f, bytes);
            e->h1 = h1, e->h2 = h2, e->T = T;
            s->memo_n++;
            s->memo_bytes += 2 * (int64_t)bytes;
        } else {
            memcpy(res + o * D, e->res, bytes);
            memcpy(f + o * D, e->f, bytes);
        }
    }
    if (st) return st;
    ly->x = x;
    if (s->stable) ly->r1 = res;
    else ly->h1 = res;
    ly->f = f;
    ly->r2 = s->stable ? NULL : act(s, rows * D);
    ly->mean2 = act(s, rows);
    ly->rstd2 = act(s, rows);
    ly->out = act(s, rows * D);
    if ((!s->stable && !ly->r2) || !ly->mean2 || !ly->rstd2 || !ly->out) return MER_ERR_NOMEM;
    return layer_tail(s, ly, rows, train);
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
static float recon_fwd(mer__sft *s, const float *h, const float *x) {
    const int64_t D = s->D, nm = s->n_masked;
    if (nm == 0) return 0.0f;
    for (int64_t k = 0; k < nm; k++)
        memcpy(s->hm + k * D, h + s->mrows[k] * D, (size_t)D * sizeof(float));
    mer__lin_fwd(&s->nn, &s->recon, s->diff, s->hm, nm);
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

/* Floats of backward scratch: layer_bwd's 8 (rows, D) + 2 (rows, I) + the attention's; dfeat
 * (n, D); dhs, dcur, dnext (rows, D); the reconstruction's d(hidden state) (rows, D). */
static int64_t bwd_floats(const mer__sft *s, int64_t *layer_part) {
    *layer_part = s->rows * (8 * s->D + 2 * s->I) + s->attn_bwd_ws;
    return *layer_part + s->rows * 4 * s->D + s->n * s->D;
}

mer_status mer__sft_forward(mer__sft *s, const float *params, const float *x, const int64_t *off,
                            int64_t n, int train, mer__rng *rng, float *logits, float *feat) {
    const int64_t D = s->D, H = s->H;
    s->trained = 0;
    if (n < 1 || off[0] != 0)
        return mer__err(MER_ERR_INVALID_ARG, "speech fine-tuning: empty batch");
    int64_t ws = 0;
    for (int64_t i = 0; i < n; i++) {
        const int64_t T = off[i + 1] - off[i];
        if (T < 1) return mer__err(MER_ERR_SHAPE, "speech fine-tuning: clip %lld has no frame", (long long)i);
        const int64_t w = mer__attention_ws_floats_all(T, T, H, D / H, mer__threads());
        if (w > ws) ws = w;
        const int64_t b = mer__attention_bwd_batch_ws_floats(T);
        if (b > s->attn_bwd_ws) s->attn_bwd_ws = b;
    }
    const int64_t rows = off[n];
    if (has_nonfinite(x, rows * D))
        return mer__err(MER_ERR_NUMERIC, "speech fine-tuning: NaN or Inf in the cached activations");
    const int drop = train && s->c.dropout > 0.0f && s->c.method == MER__SFT_LORA;
    const int recon = train && s->recon.in;
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
    s->nn.params = (float *)params; /* read only here: the kit's layers take a parameter set */
    mer__act_reset(&s->nn.act);
    const int32_t nl = s->c.last - s->c.first + 1;
    const int fin = s->stable && s->c.last == s->L;
    s->fin = fin ? act(s, rows * D) : NULL;
    s->fin_mean = fin ? act(s, rows) : NULL;
    s->fin_rstd = fin ? act(s, rows) : NULL;
    s->hsum = act(s, rows * D);
    s->feat = act(s, n * D);
    s->attn_ws = act(s, ws);
    s->attn_threads = mer__threads();
    s->poff = mer__nn_act_off(&s->nn, n);
    size_t pws = 0;
    for (int32_t j = 0; j < nl && !s->c.bf16; j++)
        for (int p = 0; p < P_N; p++) {
            const size_t b = mer__plin_ws_bytes(&s->layers[j].pl[p], rows);
            if (b > pws) pws = b;
        }
    s->pws = act(s, (int64_t)(pws / sizeof(float)) + 1);
    if (s->poff) {
        s->poff[0] = 0;
        for (int64_t i = 0; i < n; i++)
            s->poff[i + 1] = s->poff[i] + H * (off[i + 1] - off[i]) * (off[i + 1] - off[i]);
    }
    s->xm = recon ? act(s, rows * D) : NULL;
    s->hm = recon ? act(s, rows * D) : NULL;
    s->diff = recon ? act(s, rows * D) : NULL;
    s->mrows = recon ? (int64_t *)act(s, 2 * rows) : NULL;
    if ((fin && (!s->fin || !s->fin_mean || !s->fin_rstd)) || !s->hsum || !s->feat ||
        !s->attn_ws || !s->poff || !s->pws || (recon && (!s->xm || !s->hm || !s->diff || !s->mrows)))
        return mer__err(MER_ERR_NOMEM, "speech fine-tuning: activations do not fit in memory");

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
        mer_status ls = j == 0 && s->c.memo_mb > 0 ? layer_fwd_memo(s, ly, in, train, rows)
                                                   : layer_fwd(s, ly, in, train, rows, rng);
        if (ls == MER_ERR_NOMEM)
            return mer__err(MER_ERR_NOMEM, "speech fine-tuning: activations do not fit in memory");
        if (ls != MER_OK) return ls;
        in = ly->out;
        const int32_t hs = s->c.first + j;
        if (recon && hs == s->c.adapt_last) s->recon_loss = recon_fwd(s, ly->out, x);
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
    if (logits) mer__lin_fwd(&s->nn, &s->head, logits, s->feat, n);
    if (train) { /* reserve the backward's scratch: it must not fail for memory */
        int64_t lw;
        if (!(s->sbuf = act(s, bwd_floats(s, &lw))))
            return mer__err(MER_ERR_NOMEM, "speech fine-tuning: activations do not fit in memory");
    }
    s->nn.params = NULL;
    s->trained = train;
    s->memo_used = s->c.memo_mb > 0;
    return MER_OK;
}

/* ---- backward ---------------------------------------------------------------------------- */

/* dout (rows, D) -> dx (rows, D) += d/dx; sc: the layer part of the scratch. dx NULL: only the
 * adapter's gradients (nothing trainable lies below it in the layer; the caller checks). */
static mer_status layer_bwd(mer__sft *s, sft_layer *ly, const float *dout, float *dx, float *sc) {
    const int64_t D = s->D, I = s->I, H = s->H, dh = D / H, rows = s->rows;
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
    float *aws = dhid + rows * I;         /* attention backward (the largest clip's T^2) */

    if (s->stable) {
        memcpy(dsum, dout, RD);
    } else {
        memset(dsum, 0, RD);
        mer__layernorm_bwd(dsum, NULL, NULL, dout, ly->r2, ly->mean2, ly->rstd2, w->ln2_g, rows, D);
    }
    memcpy(df, dsum, RD);
    if (ly->adapted && s->c.method == MER__SFT_ADAPTER) mer__adapter_bwd(&s->nn, &ly->ad, df, dsum);
    if (!dx) return MER_OK;
    /* f = W2 gelu(W1 h1 + b1) + b2 (+ LoRA) */
    frozen_dx(s, ly, P_F2, dg, df, rows, 0);
    lora_bwd(s, ly, P_F2, dg, df);
    memset(dhid, 0, (size_t)(rows * I) * sizeof(float));
    mer__gelu_bwd(dhid, dg, ly->hid, rows * I);
    /* the feed-forward input: post-LN its residual too (h1), stable the residual is r1 */
    if (s->stable) memset(dh1, 0, RD);
    else memcpy(dh1, dsum, RD);
    frozen_dx(s, ly, P_F1, dh1, dhid, rows, 1);
    lora_bwd(s, ly, P_F1, dh1, dhid);
    /* back to r1 = x + attn */
    if (s->stable) {
        memcpy(dr1, dsum, RD);
        mer__layernorm_bwd(dr1, NULL, NULL, dh1, ly->r1, ly->mean2, ly->rstd2, w->ln2_g, rows, D);
    } else {
        memset(dr1, 0, RD);
        mer__layernorm_bwd(dr1, NULL, NULL, dh1, ly->r1, ly->mean1, ly->rstd1, w->ln1_g, rows, D);
    }
    /* attention branch */
    frozen_dx(s, ly, P_O, dctx, dr1, rows, 0);
    lora_bwd(s, ly, P_O, dctx, dr1);
    float *dq = dqkv, *dk = dqkv + rows * D, *dv = dqkv + 2 * rows * D;
    memset(dqkv, 0, 3 * RD);
    mer__attention_bwd_batch(dq, dk, dv, dctx, ly->probs, s->poff, ly->q, ly->k, ly->v, D, s->off,
                             s->n, H, dh, scale, aws, s->attn_bwd_ws);
    /* d(attention input): reuse dctx */
    float *dain = dctx;
    frozen_dx(s, ly, P_Q, dain, dq, rows, 0);
    frozen_dx(s, ly, P_K, dain, dk, rows, 1);
    frozen_dx(s, ly, P_V, dain, dv, rows, 1);
    lora_bwd(s, ly, P_Q, dain, dq);
    lora_bwd(s, ly, P_K, dain, dk);
    lora_bwd(s, ly, P_V, dain, dv);
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
    if (dx && s->memo_used)
        return mer__err(MER_ERR_INVALID_ARG, "speech fine-tuning: no input gradient with the memo on");
    const int64_t D = s->D, rows = s->rows, n = s->n;
    s->nn.params = (float *)params;
    s->nn.grads = grads;
    int64_t lw;
    bwd_floats(s, &lw);
    float *sc = s->sbuf;
    float *dfeat = sc + lw;
    float *dhs = dfeat + n * D, *dcur = dhs + rows * D, *dnext = dcur + rows * D;
    float *dhm = dnext + rows * D;
    const int64_t nm = s->recon.in ? s->n_masked : 0;
    if (nm > 0) {
        /* loss W mean(diff^2): d diff = 2 W diff / (nm D), in place; then recon's gradients */
        const float k = 2.0f * s->c.recon_weight / (float)(nm * D);
        for (int64_t i = 0; i < nm * D; i++) s->diff[i] *= k;
        memset(dhm, 0, (size_t)(nm * D) * sizeof(float));
        mer__lin_bwd(&s->nn, &s->recon, dhm, s->diff, s->hm, nm);
    }
    memset(dfeat, 0, (size_t)(n * D) * sizeof(float));
    mer__lin_bwd(&s->nn, &s->head, dfeat, dlogits, s->feat, n);
    memset(dhs, 0, (size_t)(rows * D) * sizeof(float));
    for (int64_t i = 0; i < n; i++)
        mer__mean_pool_bwd(dhs + s->off[i] * D, dfeat + i * D, s->off[i + 1] - s->off[i], D);
    const int32_t nl = s->c.last - s->c.first + 1;
    memset(dcur, 0, (size_t)(rows * D) * sizeof(float));
    mer_status ls = MER_OK;
    for (int32_t j = nl - 1; j >= 0 && ls == MER_OK; j--) {
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
        /* the first layer's input gradient is not asked for: an adapter layer stops after its
         * adapter (as autograd does: nothing below it needs a gradient) */
        const int skip = j == 0 && !dx && s->c.method == MER__SFT_ADAPTER;
        float *din = direct ? dx : skip ? NULL : dnext;
        if (!direct && !skip) memset(din, 0, (size_t)(rows * D) * sizeof(float));
        ls = layer_bwd(s, &s->layers[j], dcur, din, sc);
        if (ls == MER_OK && j == 0 && dx && nm > 0) {
            for (int64_t k = 0; k < nm; k++)
                memset(din + s->mrows[k] * D, 0, (size_t)D * sizeof(float));
            for (int64_t i = 0; i < rows * D; i++) dx[i] += din[i];
        }
        float *t = dcur;
        dcur = dnext;
        dnext = t;
    }
    s->nn.params = s->nn.grads = NULL;
    s->trained = 0; /* one backward per training forward (the reconstruction scaled in place) */
    return ls;
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
    char memo[48] = ""; /* only when on, so the specs of runs without them stay as they were */
    if (c->memo_mb > 0) snprintf(memo, sizeof memo, ";memo=%d", (int)c->memo_mb);
    if (c->int8) snprintf(memo + strlen(memo), sizeof memo - strlen(memo), ";int8=1");
    snprintf(out, cap,
             "model=%s;digest=%s;first=%d;last=%d;adapt_last=%d;head_first=%d;method=%s;"
             "bottleneck=%d;rank=%d;alpha=%.9g;lora_ffn=%d;dropout=%.9g;recon=%.9g;mask_prob=%.9g;"
             "mask_len=%d;bf16=%d%s",
             model, digest, (int)c->first, (int)c->last, (int)c->adapt_last, (int)c->head_first,
             meth[c->method >= 0 && c->method <= 2 ? c->method : 0], (int)c->bottleneck,
             (int)c->rank, (double)c->alpha, (int)c->lora_ffn, (double)c->dropout,
             (double)c->recon_weight, (double)c->mask_prob, (int)c->mask_len, (int)c->bf16, memo);
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
        else if (KEY("memo")) c->memo_mb = (int32_t)iv;
        else if (KEY("int8")) c->int8 = iv != 0;
        else if (KEY("classes")) c->n_classes = (int32_t)iv;
        else return mer__err(MER_ERR_FORMAT, "encoder spec: unknown field '%.*s'", (int)kl, p);
#undef KEY
        p = *end ? end + 1 : end;
    }
    if (!model[0] || seen != 3)
        return mer__err(MER_ERR_FORMAT, "encoder spec: needs model, first and last");
    return MER_OK;
}
