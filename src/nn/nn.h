/*
 * nn.h -- the layer kit: trainable (or frozen) layers over flat parameter buffers, forward and
 * backward side by side, llm.c style. Between the kernels (src/kernels, the math of one op) and
 * the models (src/models, architectures): a layer owns no memory, it declares its parameters in
 * a parameter set (mer__nn), saves what its backward needs in the set's activation arena, and
 * accumulates its gradients into the set's flat gradient buffer.
 *
 * ---- The parameter set ----------------------------------------------------------------------
 *   1. declare: each layer's *_declare() calls mer__nn_param() for every tensor it trains, under
 *      the PyTorch state_dict name of the equivalent torch module ("fc_out_1.weight"); the call
 *      returns the tensor's offset into the flat buffers.
 *   2. mer__nn_alloc(): params and grads, n_params floats each, zeroed, same layout, so one loop
 *      (the optimizer) updates every parameter.
 *   3. *_init() draws the initial weights as torch does (fixed order, so seeds reproduce).
 *   4. per step: mer__nn_act_reset(), forward (train = 1 keeps the activations and reserves
 *      every buffer backward needs), backward (+= into grads). After the first step the arena
 *      holds one block big enough for a step: steady-state steps do not allocate, and a
 *      backward cannot fail (it touches only memory its forward reserved).
 *
 * ---- Frozen weights -------------------------------------------------------------------------
 * A layer may instead point at weights held elsewhere (an mmapped checkpoint, a pretrained
 * encoder): mer__lin_frozen() / mer__ln_frozen() take external pointers, declare nothing, and
 * their backward computes dx only (no weight gradient). That is how an adapter or LoRA branch
 * trains beside a frozen base layer: the base is a frozen mer__lin, the branch trainable ones.
 *
 * ---- Conventions ----------------------------------------------------------------------------
 * Row-major float32, rows = tokens (n, features). Outputs first, then inputs. Backward ACCUMULATES
 * (+=) into dx and into the gradients; a NULL dx means the input needs no gradient. Sequences of
 * a batch are concatenated (sum_i T_i rows) with offsets off (n + 1), off[0] = 0: no padding.
 * Pointers returned by a forward point into the arena and live until the next mer__nn_act_reset.
 * All randomness (init, dropout) comes from the mer__rng passed in, drawn serially.
 *
 * File map: nn.c (parameter set, arena, init) | dense.c (linear) | layernorm.c (LayerNorm,
 * RMSNorm) | mha.c (multi-head attention, self/cross, key-padding and causal masks) | ffn.c
 * (feed-forward block, the MERTools MLP encoder, activations, dropout) | peft.c (LoRA and the
 * bottleneck adapter beside frozen layers) | frozen.c (packed frozen linear, forward and dx) | pooling.c (mean pooling per clip).
 * Tests: tests/test_grad.c (finite differences of every layer), tests/test_nn.c.
 */
#ifndef MER_NN_H
#define MER_NN_H

#include "kernels/kernels.h"

/* ---- the parameter set (nn.c) ------------------------------------------------------------ */

typedef struct {
    char name[96];
    int32_t ndim;
    int64_t shape[4];
    int64_t offset, numel;
} mer__param_info;

/* Activation memory: a bump allocator that grows by chaining blocks during a forward and
 * consolidates into one block at the next reset, so pointers stay valid for the whole
 * forward + backward and steady-state steps do not allocate. */
typedef struct {
    uint8_t *cur;
    size_t cap, used;
    void **old;
    int32_t n_old, cap_old;
    size_t old_bytes;
} mer__act;

/* A hook that consumes a weight gradient as it is produced (the trainer's optimizer step fused
 * into the backward, see train.h): dW = dy^T x for the weight at w_off, (out, in). Returns 1 when
 * it took the gradient (the weights are already updated), 0 when the layer must accumulate the
 * gradient itself. Only a first layer whose input is data may call it. */
typedef int (*mer__nn_wgrad_fn)(void *user, float *params, int64_t w_off, const float *dy,
                                const float *x, int64_t n, int64_t in, int64_t out);

typedef struct {
    int64_t n_params;
    float *params, *grads;          /* (n_params) each, owned; NULL until mer__nn_alloc */
    mer__param_info *info;          /* declared tensors in declaration order */
    int32_t n_info, cap_info;
    mer__act act;                   /* activations of the last forward */
    mer__nn_wgrad_fn wgrad;         /* set for one backward by a trainer, else NULL */
    void *wgrad_user;
} mer__nn;

/* Declares a tensor; returns its offset (-1 on error, with the last error set). */
int64_t mer__nn_param(mer__nn *nn, const char *name, int32_t ndim, const int64_t *shape);
/* Allocates params and grads (zeroed) for what was declared. */
mer_status mer__nn_alloc(mer__nn *nn);
/* Frees everything the set owns (the struct itself is the caller's); NULL-safe. */
void mer__nn_free(mer__nn *nn);
/* The declared tensor named `name`, or NULL. */
const mer__param_info *mer__nn_find(const mer__nn *nn, const char *name);
/* n floats (64-byte aligned) from the arena, valid until the next reset; NULL with
 * MER_ERR_NOMEM set when memory runs out. mer__nn_act0 also zeroes them. */
float *mer__nn_act(mer__nn *nn, int64_t n);
float *mer__nn_act0(mer__nn *nn, int64_t n);
/* (n + 1) int64 offsets from the arena. */
int64_t *mer__nn_act_off(mer__nn *nn, int64_t n);
void mer__act_reset(mer__act *a);
void mer__act_release(mer__act *a);
/* w ~ U(-bound, bound), drawn in order. */
void mer__init_uniform(float *p, int64_t n, float bound, mer__rng *rng);

/* ---- linear (dense.c) ---------------------------------------------------------------------- */

/* y = x w^T + b, torch.nn.Linear(in, out) with bias. Trainable: offsets w (out, in), b (out)
 * into the set; frozen: wf, bf point at external weights (w = b = -1). */
typedef struct {
    int64_t w, b, in, out;
    const float *wf, *bf;
} mer__lin;
/* Names prefix.weight and prefix.bias. */
mer_status mer__lin_declare(mer__nn *nn, mer__lin *l, const char *prefix, int64_t in,
                            int64_t out);
/* A frozen layer over external weights w (out, in) and bias b (out, or NULL). */
void mer__lin_frozen(mer__lin *l, const float *w, const float *b, int64_t in, int64_t out);
/* torch.nn.Linear's default init: w then b ~ U(-1/sqrt(in), 1/sqrt(in)) (kaiming_uniform
 * a=sqrt(5)). No-op for a frozen layer. */
void mer__lin_init(mer__nn *nn, const mer__lin *l, mer__rng *rng);
static inline const float *mer__lin_weight(const mer__nn *nn, const mer__lin *l) {
    return l->wf ? l->wf : nn->params + l->w;
}
static inline const float *mer__lin_bias(const mer__nn *nn, const mer__lin *l) {
    return l->wf ? l->bf : nn->params + l->b;
}
/* y (n, out) = x (n, in) w^T + b */
void mer__lin_fwd(const mer__nn *nn, const mer__lin *l, float *y, const float *x, int64_t n);
/* dx (n, in) += dy w (dx may be NULL); dw, db += (trainable layers only). */
void mer__lin_bwd(mer__nn *nn, const mer__lin *l, float *dx, const float *dy, const float *x,
                  int64_t n);

/* ---- packed frozen linear (frozen.c) ------------------------------------------------------ */

/* A frozen torch.nn.Linear (w (out, in), b (out) or NULL, both external and kept unchanged)
 * packed once for the packed kernels as `type` (MER_PACK_F32 exact, MER_PACK_INT8 W8A8 dynamic:
 * per-channel weights, activations per row): w for the forward and, with want_dx, w^T for
 * dx = dy w (int8: dy quantised per row, w^T per input channel of w). Holds
 * mer__plin_bytes(); the scratch of a product of `rows` rows is the caller's
 * (mer__plin_ws_bytes), so the products never allocate. Read only after init: threads may share
 * it. */
typedef struct {
    mer_packed *fwd, *bwd;   /* bwd NULL without want_dx: dx then runs mer_sgemm on w */
    const float *w;
    int64_t in, out;
} mer__plin;
mer_status mer__plin_init(mer__plin *l, const float *w, const float *b, int64_t in, int64_t out,
                          mer_pack_type type, int want_dx);
void mer__plin_free(mer__plin *l);   /* NULL members ok */
size_t mer__plin_bytes(const mer__plin *l);
size_t mer__plin_ws_bytes(const mer__plin *l, int64_t rows);
/* y (rows, out) = epi(x (rows, in) w^T + b (+ y when accumulate)); ws: mer__plin_ws_bytes. */
void mer__plin_fwd(const mer__plin *l, float *y, const float *x, int64_t rows, int accumulate,
                   mer_epilogue epi, void *ws);
/* dx (rows, in) = dy (rows, out) w (+ dx when accumulate). */
void mer__plin_dx(const mer__plin *l, float *dx, const float *dy, int64_t rows, int accumulate,
                  void *ws);

/* ---- norms (layernorm.c) ------------------------------------------------------------------- */

/* LayerNorm(c) with affine weight/bias (names prefix.weight, prefix.bias), eps 1e-5; or frozen
 * (gf, bf external). ref: torch.nn.LayerNorm */
typedef struct {
    int64_t g, b, c;
    float eps;
    const float *gf, *bf;
} mer__ln;
typedef struct {       /* what backward needs, saved by forward */
    const float *x;
    float *mean, *rstd;
    int64_t n;
} mer__ln_saved;
mer_status mer__ln_declare(mer__nn *nn, mer__ln *l, const char *prefix, int64_t c);
void mer__ln_frozen(mer__ln *l, const float *gamma, const float *beta, int64_t c, float eps);
void mer__ln_init(mer__nn *nn, const mer__ln *l);   /* weight 1, bias 0 */
/* y (n, c) = LayerNorm(x); *y points into the arena. */
mer_status mer__ln_fwd(mer__nn *nn, const mer__ln *l, mer__ln_saved *s, float **y,
                       const float *x, int64_t n);
/* dx (n, c) += (may be NULL: parameter gradients only). */
void mer__ln_bwd(mer__nn *nn, const mer__ln *l, const mer__ln_saved *s, float *dx,
                 const float *dy);

/* RMSNorm(c): y = x / sqrt(mean(x^2) + eps) * weight (name prefix.weight), no bias; or frozen.
 * ref: transformers LlamaRMSNorm (float32 throughout) */
typedef struct {
    int64_t g, c;
    float eps;
    const float *gf;
} mer__rms;
typedef struct {
    const float *x;
    float *rstd;
    int64_t n;
} mer__rms_saved;
mer_status mer__rms_declare(mer__nn *nn, mer__rms *l, const char *prefix, int64_t c, float eps);
void mer__rms_frozen(mer__rms *l, const float *gamma, int64_t c, float eps);
void mer__rms_init(mer__nn *nn, const mer__rms *l);   /* weight 1 */
mer_status mer__rms_fwd(mer__nn *nn, const mer__rms *l, mer__rms_saved *s, float **y,
                        const float *x, int64_t n);
void mer__rms_bwd(mer__nn *nn, const mer__rms *l, const mer__rms_saved *s, float *dx,
                  const float *dy);

/* ---- multi-head attention (mha.c) ---------------------------------------------------------- */

/* Self or cross attention over a batch of variable-length sequences (no padding): queries xq
 * (sum_i Tq_i, d) with offsets offq (n + 1), keys/values xkv (sum_i Tk_i, d) with offkv
 * (n + 1); self-attention passes the same rows twice. q_proj/k_proj/v_proj/out_proj
 * Linear(d, d) with biases (names prefix.q_proj.weight ...), scale 1/sqrt(d/heads), no dropout
 * on the probabilities. Masks (both optional):
 *   causal    query t of a clip sees keys 0..t of the same clip (Tq == Tk per clip);
 *   key_mask  (sum_i Tk_i) bytes, 0 = padded key, ignored; a query whose keys are all masked
 *             gets zero output (torch gives NaN there).
 * ref: torch.nn.MultiheadAttention with the in_proj split (key_padding_mask, attn_mask = the
 * upper triangle). */
typedef struct {
    mer__lin q, k, v, o;
    int64_t d, heads;
    int causal;
    /* saved by forward */
    const float *xq, *xkv;
    const int64_t *offq, *offkv;
    int64_t n, rq, rkv;
    float *Q, *K, *V, *ctx, *probs;
    int64_t *poff;  /* (n + 1) offsets of each clip's probs block (heads * Tq * Tk) */
    /* backward workspace, reserved by forward(train = 1) */
    float *dctx, *dQ, *dK, *dV, *ds;
} mer__mha;
mer_status mer__mha_declare(mer__nn *nn, mer__mha *a, const char *prefix, int64_t d,
                            int64_t heads);
/* As torch.nn.MultiheadAttention._reset_parameters: xavier_uniform over the packed (3d, d)
 * in-projection (q rows, then k, then v), zero in-projection and output biases, output weight
 * with Linear's default bound. */
void mer__mha_init(mer__nn *nn, const mer__mha *a, mer__rng *rng);
/* y (rows of xq, d) points into the arena. key_mask may be NULL. */
mer_status mer__mha_fwd(mer__nn *nn, mer__mha *a, float **y, const float *xq,
                        const int64_t *offq, const float *xkv, const int64_t *offkv,
                        const uint8_t *key_mask, int64_t n, int train);
/* dxq and dxkv (+=) may alias (self-attention) or be NULL. Needs forward(train = 1). */
void mer__mha_bwd(mer__nn *nn, mer__mha *a, float *dxq, float *dxkv, const float *dy);

/* ---- feed-forward, activations, dropout (ffn.c) ------------------------------------------- */

typedef enum { MER__ACTFN_RELU, MER__ACTFN_GELU, MER__ACTFN_QUICK_GELU } mer__actfn;

/* Activation layer: *y = f(x) in a fresh arena buffer (x is kept by the caller for backward). */
mer_status mer__activation_fwd(mer__nn *nn, mer__actfn k, float **y, const float *x, int64_t n);
/* dx += f'(x) dy (x: the forward's input). */
void mer__activation_bwd(mer__actfn k, float *dx, const float *dy, const float *x, int64_t n);

/* Inverted dropout as a layer: *y = x when p == 0 or not training (no copy), else a fresh
 * buffer; *mask (or NULL) for backward. */
mer_status mer__drop_fwd(mer__nn *nn, float p, float **y, float **mask, const float *x,
                         int64_t n, int train, mer__rng *rng);
/* dx += dy * mask, or dx += dy when mask is NULL (nothing was dropped). */
void mer__drop_bwd(float *dx, const float *dy, const float *mask, int64_t n);

/* Transformer feed-forward: y = fc2(act(fc1(x))), fc1 (d -> hidden), fc2 (hidden -> d).
 * Names prefix.fc1.*, prefix.fc2.*. */
typedef struct {
    mer__lin fc1, fc2;
    mer__actfn act;
    /* saved by forward */
    const float *x;
    float *f1, *r;
    int64_t n;
    float *dr, *df1;   /* backward workspace */
} mer__ffn;
mer_status mer__ffn_declare(mer__nn *nn, mer__ffn *f, const char *prefix, int64_t d,
                            int64_t hidden, mer__actfn act);
void mer__ffn_init(mer__nn *nn, const mer__ffn *f, mer__rng *rng);
mer_status mer__ffn_fwd(mer__nn *nn, mer__ffn *f, float **y, const float *x, int64_t n,
                        int train);
void mer__ffn_bwd(mer__nn *nn, mer__ffn *f, float *dx, const float *dy);

/* MERTools MLPEncoder: dropout(p) -> Linear(in, h) -> ReLU -> Linear(h, h) -> ReLU ->
 * Linear(h, h) -> ReLU. Names prefix.linear_1 ... linear_3. */
typedef struct {
    mer__lin l[3];
    float p;
    /* set when the input is data (backward always gets dx == NULL): forward then keeps no
     * dropout mask, saving a store of n x in floats per step, and the first layer's weight
     * gradient may go to the set's wgrad hook */
    int input_is_data;
    /* saved by forward */
    const float *x;
    float *mask, *xd, *h[3];
    int64_t n;
    float *g[2], *dxd;  /* backward workspace */
} mer__mlp_enc;
mer_status mer__mlp_enc_declare(mer__nn *nn, mer__mlp_enc *e, const char *prefix, int64_t in,
                                int64_t hidden, float p);
void mer__mlp_enc_init(mer__nn *nn, const mer__mlp_enc *e, mer__rng *rng);
/* y (n, hidden) points into the arena. */
mer_status mer__mlp_enc_fwd(mer__nn *nn, mer__mlp_enc *e, float **y, const float *x,
                            int64_t n, int train, mer__rng *rng);
/* dy (n, hidden) is modified (used as scratch); dx (n, in) += or NULL. */
void mer__mlp_enc_bwd(mer__nn *nn, mer__mlp_enc *e, float *dx, float *dy);

/* ---- parameter-efficient branches (peft.c) ------------------------------------------------ */

/* LoRA beside a frozen projection W (out, in): y += (alpha / r) B A dropout(x), A (r, in) and
 * B (out, r) named prefix.lora_A.weight / prefix.lora_B.weight (peft's names under the
 * caller's prefix); dropout p on the branch input in training only (peft's lora_dropout). */
typedef struct {
    int64_t a, b, in, out, r;
    float scaling, p;
    /* saved by forward */
    const float *x;          /* the branch input after dropout */
    float *mask, *u;         /* dropout mask (NULL: none), A x (n, r) */
    int64_t n;
    float *du, *dxd;         /* backward workspace */
} mer__lora;
mer_status mer__lora_declare(mer__nn *nn, mer__lora *l, const char *prefix, int64_t in,
                             int64_t out, int64_t r, float alpha, float p);
/* A ~ U(-1/sqrt(in), 1/sqrt(in)) (kaiming_uniform a=sqrt(5)), B = 0, as peft. */
void mer__lora_init(mer__nn *nn, const mer__lora *l, mer__rng *rng);
/* y (n, out) += the branch of x (n, in), kept for backward; one rng word per dropout mask. */
mer_status mer__lora_fwd(mer__nn *nn, mer__lora *l, float *y, const float *x, int64_t n,
                         int train, mer__rng *rng);
/* grads of A and B +=, dx (n, in) += (may be NULL). Needs forward(train = 1). */
void mer__lora_bwd(mer__nn *nn, mer__lora *l, float *dx, const float *dy);

/* Bottleneck adapter (Houlsby): y += up(relu(down(h))), down Linear(d, B) and up Linear(B, d)
 * named prefix.down.* / prefix.up.*; the residual (y = h + ...) is the caller's. */
typedef struct {
    mer__lin down, up;
    /* saved by forward */
    const float *h;
    float *z, *za;
    int64_t n;
    float *dza, *dz;         /* backward workspace */
} mer__adapter;
mer_status mer__adapter_declare(mer__nn *nn, mer__adapter *a, const char *prefix, int64_t d,
                                int64_t bottleneck);
/* down as torch.nn.Linear, up zero (the adapter starts as the identity). */
void mer__adapter_init(mer__nn *nn, const mer__adapter *a, mer__rng *rng);
mer_status mer__adapter_fwd(mer__nn *nn, mer__adapter *a, float *y, const float *h, int64_t n,
                            int train);
/* grads +=, dh (n, d) += (may be NULL). */
void mer__adapter_bwd(mer__nn *nn, mer__adapter *a, float *dh, const float *dy);

/* ---- pooling (pooling.c) ------------------------------------------------------------------- */

/* out (n, w) with row stride ld: the mean of each clip's rows of x (sum T_i, w) per off (n + 1);
 * an empty clip gives zeros. ref: torch.mean(x_i, dim=0) per clip */
void mer__mean_rows(float *out, int64_t ld, const float *x, const int64_t *off, int64_t n,
                    int64_t w);
/* dx rows += dout (row stride ld) / T_i. */
void mer__mean_rows_bwd(float *dx, const float *dout, int64_t ld, const int64_t *off, int64_t n,
                        int64_t w);

#endif /* MER_NN_H */
