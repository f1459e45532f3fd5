/*
 * train.h -- the training engine's internal interface: models, layers, batches, optimizer,
 * folds, and the pieces the trainer (trainer.c) and prediction (run.c) share. Read this to add a
 * model; the public side (data sets, mer_train_run, mer_run_*) is in include/mer.h, "Training".
 *
 * ---- How a model plugs in (llm.c style) -----------------------------------------------------
 * A model is a table of functions (mer__model_ops) plus private state. The engine owns the
 * memory of the parameters, gradients and optimizer moments: three flat float buffers of
 * m->n_params floats with the same layout, so one loop updates everything.
 *
 *   1. build(m): read m->cfg (dims, classes, hidden, dropout, heads, layers), declare every
 *      parameter tensor with mer__model_param() (it returns the tensor's offset into the flat
 *      buffers; keep the offsets in your private state, m->priv), and allocate private scratch.
 *      Use the PyTorch state_dict name of the equivalent torch module ("fc_out_1.weight"), so a
 *      checkpoint maps 1:1 onto a torch reference and the reference tests can load its weights.
 *      After build() returns, the engine allocates m->params and m->grads (zeroed).
 *   2. init(m, rng): draw the initial weights into m->params (mer__init_linear() reproduces
 *      torch.nn.Linear's default init; draw in a fixed order so seeds reproduce).
 *   3. forward(m, batch, train, rng, logits): logits (batch->n, n_classes). train != 0 enables
 *      dropout (draw masks from rng, serially) and keeps the activations backward needs, in
 *      m->act (mer__act_f32; the engine resets it before every forward). train == 0 must be a pure
 *      function of the inputs (prediction).
 *   4. backward(m, batch, dlogits): ACCUMULATE d(loss)/d(params) into m->grads (+=) using the
 *      activations of the last forward(train=1). Grads are zero on entry (the optimizer step
 *      zeroes them as it consumes them).
 *   5. destroy(m): free m->priv (not params/grads).
 * Then add one line to the registry table in src/train/registry.c.
 *
 * Reusable layers below (mer__lin, mer__mlp_enc, mer__ln, mer__mha) each declare their
 * parameters, run forward saving activations into m->act, and run backward into m->grads; a
 * model composes them. See src/models/fusion_attention.c for a complete example.
 *
 * ---- Batches --------------------------------------------------------------------------------
 * A batch gathers clips into contiguous rows per modality: utterance features (n, D); sequence
 * features as the concatenation of every clip's frames (sum_i T_i, D) with row offsets
 * off[m] (n + 1), off[m][0] = 0 (no padding; use mer__mean_pool / attention kernels per clip).
 *
 * ---- Determinism ----------------------------------------------------------------------------
 * All randomness comes from the mer__rng passed in (init, shuffles, dropout), drawn serially.
 * Kernels split rows over threads with a fixed split, so a run is bitwise reproducible for a
 * fixed seed and thread count.
 */
#ifndef MER_TRAIN_H
#define MER_TRAIN_H

#include "kernels/kernels.h"

#include <stdbool.h>

/* ---- batches ----------------------------------------------------------------------------- */

typedef struct {
    int64_t n;                                     /* clips */
    int32_t n_mod;
    const float *x[MER_MAX_MODALITIES];            /* (n, D) or (sum T_i, D) */
    const int64_t *off[MER_MAX_MODALITIES];        /* sequences: (n + 1) row offsets; else NULL */
    int64_t dim[MER_MAX_MODALITIES];
    const int32_t *y;                              /* (n) labels, NULL when predicting */
} mer__batch;

/* Gathers clips idx[0..n) of a data set into owned, reusable buffers. */
typedef struct {
    mer__batch b;
    float *buf[MER_MAX_MODALITIES];
    int64_t cap[MER_MAX_MODALITIES];
    int64_t *offs[MER_MAX_MODALITIES];
    int32_t *labels;
    int64_t cap_n;
} mer__batcher;
mer_status mer__batcher_fill(mer__batcher *bt, const mer_dataset *ds, const int64_t *idx,
                             int64_t n);
void mer__batcher_free(mer__batcher *bt);

/* ---- models ------------------------------------------------------------------------------ */

typedef struct {
    char model[MER_NAME_MAX];
    int32_t n_classes, n_mod;
    int64_t dim[MER_MAX_MODALITIES];
    int32_t is_seq[MER_MAX_MODALITIES];
    char modality[MER_MAX_MODALITIES][MER_NAME_MAX];
    int32_t hidden, heads, layers;
    float dropout;
    int32_t tokens;             /* agt: sub-tokens per utterance vector (--tokens; 0 = 4) */
    char encoder[1536];         /* speech: the encoder spec (mer_train_params.encoder), or "" */
} mer__model_config;

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
void mer__act_reset(mer__act *a);
void mer__act_release(mer__act *a);

typedef struct mer__model mer__model;
typedef struct {
    const char *name;
    const char *summary;
    mer_status (*build)(mer__model *m);
    void (*init)(mer__model *m, mer__rng *rng);
    mer_status (*forward)(mer__model *m, const mer__batch *b, int train, mer__rng *rng,
                          float *logits);
    void (*backward)(mer__model *m, const mer__batch *b, const float *dlogits);
    void (*destroy)(mer__model *m);
} mer__model_ops;

struct mer__model {
    const mer__model_ops *ops;
    mer__model_config cfg;
    int64_t n_params;
    float *params, *grads;          /* owned by the engine, (n_params) each */
    mer__param_info *info;          /* declared tensors in declaration order */
    int32_t n_info, cap_info;
    mer__act act;                   /* activations of the last forward; reset per forward */
    void *priv;                     /* the model's own state */
    struct mer__optim_fused *fused; /* set by the trainer for one backward, else NULL */
};

/* The registry (registry.c): NULL when the name is unknown. */
const mer__model_ops *mer__model_lookup(const char *name);
/* Comma-separated names of registered models, for messages. */
const char *mer__model_names(void);

/* Create (build + allocate + init with rng; rng NULL leaves zeros for a checkpoint load). */
mer_status mer__model_create(mer__model **out, const mer__model_config *cfg, mer__rng *rng);
void mer__model_free(mer__model *m);
/* Declare a parameter tensor during build(); returns its offset (or -1 on error, with the
 * last error set; build() should then fail). */
int64_t mer__model_param(mer__model *m, const char *name, int32_t ndim, const int64_t *shape);
/* n floats (64-byte aligned) from m->act, valid until the next forward; NULL with
 * MER_ERR_NOMEM set when memory runs out. The engine resets m->act before each forward. */
float *mer__act_f32(mer__model *m, int64_t n);
/* Checkpoints: every declared tensor by name (F32), plus metadata. */
mer_status mer__model_save(const mer__model *m, const float *params, const char *path,
                           const char *meta_key, const char *meta_json);
mer_status mer__model_load(mer__model *m, const char *path);
/* Softmax probabilities for every clip of ds (n, C), batches of `batch`, eval mode. */
mer_status mer__model_predict(mer__model *m, const mer_dataset *ds, float *probs, int64_t batch);
/* The same for clips idx[0..n) (probs (n, C) in that order). Batches are consecutive runs of
 * idx, so the same idx and batch give bitwise the same probabilities. */
mer_status mer__model_predict_idx(mer__model *m, const mer_dataset *ds, const int64_t *idx,
                                  int64_t n, float *probs, int64_t batch);

/* torch.nn.Linear default init: w ~ U(-1/sqrt(in), 1/sqrt(in)) (kaiming_uniform a=sqrt(5)),
 * b ~ U(-1/sqrt(in), 1/sqrt(in)); w drawn first, row-major, then b. */
void mer__init_uniform(float *p, int64_t n, float bound, mer__rng *rng);

/* ---- layers ------------------------------------------------------------------------------ */

/* Linear(in, out) with bias: offsets of weight (out, in) and bias (out). */
typedef struct {
    int64_t w, b, in, out;
} mer__lin;
mer_status mer__lin_declare(mer__model *m, mer__lin *l, const char *prefix, int64_t in,
                            int64_t out);
void mer__lin_init(mer__model *m, const mer__lin *l, mer__rng *rng);
void mer__lin_fwd(const mer__model *m, const mer__lin *l, float *y, const float *x, int64_t n);
/* dx may be NULL (input needs no gradient). */
void mer__lin_bwd(mer__model *m, const mer__lin *l, float *dx, const float *dy, const float *x,
                  int64_t n);

/* MERTools MLPEncoder: dropout(p) -> Linear(in, h) -> ReLU -> Linear(h, h) -> ReLU ->
 * Linear(h, h) -> ReLU. Parameter names prefix.linear_1 ... linear_3. */
typedef struct {
    mer__lin l[3];
    float p;
    /* set by the model when the input is data (backward always gets dx == NULL): forward then
     * keeps no dropout mask, saving a store of n x in floats per step */
    int input_is_data;
    /* saved by forward (in m->act) */
    const float *x;
    float *mask, *xd, *h[3];
    int64_t n;
} mer__mlp_enc;
mer_status mer__mlp_enc_declare(mer__model *m, mer__mlp_enc *e, const char *prefix, int64_t in,
                                int64_t hidden, float p);
void mer__mlp_enc_init(mer__model *m, const mer__mlp_enc *e, mer__rng *rng);
/* y (n, hidden) points into m->act and is valid until the next forward. */
mer_status mer__mlp_enc_fwd(mer__model *m, mer__mlp_enc *e, float **y, const float *x,
                            int64_t n, int train, mer__rng *rng);
/* dy (n, hidden) is modified (used as scratch); dx (n, in) += or NULL. */
void mer__mlp_enc_bwd(mer__model *m, mer__mlp_enc *e, float *dx, float *dy);

/* LayerNorm(c) with affine weight/bias (names prefix.weight, prefix.bias), eps 1e-5. */
typedef struct {
    int64_t g, b, c;
    float eps;
} mer__ln;
mer_status mer__ln_declare(mer__model *m, mer__ln *l, const char *prefix, int64_t c);
void mer__ln_init(mer__model *m, const mer__ln *l);   /* weight 1, bias 0 */
/* y (n, c) = LayerNorm(x); y points into m->act. Saves x, mean, rstd in l's state. */
typedef struct {
    const float *x;
    float *mean, *rstd;
    int64_t n;
} mer__ln_saved;
mer_status mer__ln_fwd(mer__model *m, const mer__ln *l, mer__ln_saved *s, float **y,
                       const float *x, int64_t n);
void mer__ln_bwd(mer__model *m, const mer__ln *l, const mer__ln_saved *s, float *dx,
                 const float *dy);

/* Multi-head attention, self or cross, over a batch of variable-length sequences (no padding):
 * queries xq (sum_i Tq_i, d) with offsets offq (n + 1), keys/values xkv (sum_i Tk_i, d) with
 * offkv (n + 1); self-attention passes the same rows twice. Separate q_proj/k_proj/v_proj/
 * out_proj Linear(d, d) with biases (names prefix.q_proj.weight ...), scale 1/sqrt(d/heads),
 * no dropout on the probabilities. ref: torch.nn.MultiheadAttention with the in_proj split. */
typedef struct {
    mer__lin q, k, v, o;
    int64_t d, heads;
    /* saved by forward */
    const float *xq, *xkv;
    const int64_t *offq, *offkv;
    int64_t n, rq, rkv;
    float *Q, *K, *V, *ctx, *probs;
    int64_t *poff;  /* (n + 1) offsets of each clip's probs block (heads * Tq * Tk) */
} mer__mha;
mer_status mer__mha_declare(mer__model *m, mer__mha *a, const char *prefix, int64_t d,
                            int64_t heads);
void mer__mha_init(mer__model *m, const mer__mha *a, mer__rng *rng);
/* y (rows of xq, d) points into m->act. */
mer_status mer__mha_fwd(mer__model *m, mer__mha *a, float **y, const float *xq,
                        const int64_t *offq, const float *xkv, const int64_t *offkv, int64_t n);
/* dxq and dxkv (+=) may alias (self-attention) or be NULL. */
void mer__mha_bwd(mer__model *m, mer__mha *a, float *dxq, float *dxkv, const float *dy);

/* ---- optimizer --------------------------------------------------------------------------- */

typedef struct {
    mer_optimizer type;
    float lr, beta1, beta2, eps, weight_decay;
    int64_t n, t;            /* parameter count, steps taken */
    float *m, *v;            /* (n) moments, owned */
} mer__optim;
mer_status mer__optim_init(mer__optim *o, mer_optimizer type, int64_t n, float lr,
                           float weight_decay);
/* One step, then grads are zeroed (consumed) for the next accumulation. ref: torch.optim.Adam
 * (weight_decay added to the gradient, bias-corrected, eps after the sqrt) /
 * torch.optim.AdamW (decoupled decay p *= 1 - lr*wd first). */
void mer__optim_step(mer__optim *o, float *params, float *grads);
void mer__optim_free(mer__optim *o);
/* The step fused into the backward pass (optim.c): the trainer calls _begin before backward and
 * sets m->fused; a layer whose weight gradient feeds nothing but the optimizer (a first layer fed
 * with features) calls mer__optim_fused_wgrad, which computes dW = dy^T x tile by tile and steps
 * those weights at once (returns 0, doing nothing, when it cannot: then take the plain path);
 * mer__optim_step_fused then steps every other parameter. The bits are those of
 * mer__optim_step. Only without gradient clipping (clipping needs every gradient first). */
#define MER__FUSED_MAX 16
typedef struct mer__optim_fused {
    mer__optim *o;
    int32_t n_done;
    int64_t off[MER__FUSED_MAX], len[MER__FUSED_MAX];  /* ranges already stepped */
} mer__optim_fused;
void mer__optim_fused_begin(mer__optim *o, mer__optim_fused *f);
int mer__optim_fused_wgrad(mer__optim_fused *f, float *params, int64_t w_off, const float *dy,
                           const float *x, int64_t n, int64_t in, int64_t out);
void mer__optim_step_fused(mer__optim *o, float *params, float *grads, const mer__optim_fused *f);
/* ref: torch.nn.utils.clip_grad_value_ */
void mer__clip_grad_value(float *g, int64_t n, float v);
/* ref: torch.nn.utils.clip_grad_norm_ (scale by max_norm / (norm + 1e-6) when norm > max);
 * returns the norm before clipping. */
float mer__clip_grad_norm(float *g, int64_t n, float max_norm);

/* ---- folds ------------------------------------------------------------------------------- */

/* fold[i] in [0, k) for clips that can be held out, -1 for train-only clips (always trained
 * on). Seeded random; with groups (non-NULL group names), whole groups per fold. Fails when a
 * fold would be empty (k > number of clips or of groups). */
mer_status mer__make_folds(int32_t *fold, const mer_dataset *ds, int32_t k, uint64_t seed);

/* ---- data set internals used by the engine ---------------------------------------------- */

int mer__dataset_train_only(const mer_dataset *ds, int64_t i);
/* Fold-wise pseudo-labels (pseudo.c): a train-only clip may be restricted to the training parts
 * of some folds, bit f of its mask for fold f (its label came from fold f's model, which never
 * saw fold f's held-out clips; one row serves every fold that gave the clip the same label).
 * MER__ALL_FOLDS, the default, trains in every fold. The trainer asks
 * mer__dataset_trains_in_fold(ds, i, f) for every clip outside fold f's held-out part. */
#define MER__ALL_FOLDS UINT64_MAX
uint64_t mer__dataset_fold_mask(const mer_dataset *ds, int64_t i);
int mer__dataset_trains_in_fold(const mer_dataset *ds, int64_t i, int32_t f);
mer_status mer__dataset_set_fold_mask(mer_dataset *ds, int64_t i, uint64_t mask);

/* ---- runs (run.c) ------------------------------------------------------------------------ */

int32_t mer__run_n_folds(const mer_run *r);
/* Probabilities of fold `fold`'s model alone (fold < 0: the fold mean, as mer_run_predict). */
mer_status mer__run_predict_fold(mer_run *r, int32_t fold, const mer_dataset *ds, float *probs);
/* A new data set holding modalities map[0..n_map) of ds (in that order), clips copied. */
mer_status mer__dataset_select(mer_dataset **out, const mer_dataset *ds, const int32_t *map,
                               int32_t n_map);
/* Features of clip i for modality m: rows (T for sequences, 1 for vectors) of dim D. */
const float *mer__dataset_feat(const mer_dataset *ds, int64_t i, int32_t m, int64_t *rows);

/* ---- text output helpers (util.c) -------------------------------------------------------- */

/* A growable string; on allocation failure `oom` is set and further appends are dropped. */
typedef struct {
    char *p;
    size_t len, cap;
    int oom;
} mer__sb;
void mer__sb_printf(mer__sb *b, const char *fmt, ...) MER__PRINTF(2, 3);
void mer__sb_json_str(mer__sb *b, const char *s);   /* a quoted, escaped JSON string */
void mer__sb_csv_field(mer__sb *b, const char *s);  /* a CSV field, quoted when needed */
void mer__sb_free(mer__sb *b);
/* Atomic write of the buffer (MER_ERR_NOMEM if it overflowed). */
mer_status mer__sb_save(const mer__sb *b, const char *path);

/* ---- plots (plot.c) ---------------------------------------------------------------------- */

/* Confusion matrix as a PNG: counts and row-normalised shading, class names on both axes. */
mer_status mer__plot_confusion(const char *path, const int64_t *conf, int32_t c,
                               const char *const *classes, const char *title);
/* Training curves: per fold (series), train loss and held-out WAF over epochs. loss and waf
 * are (n_series, n_epochs) row-major; NaN entries are skipped. */
mer_status mer__plot_curves(const char *path, const double *loss, const double *waf,
                            int32_t n_series, int32_t n_epochs, const char *title);
/* Line plot of ns series over ne points (v (ns, ne) row-major, NaN skipped), x axis numbered
 * from xfirst, values clamped to [0, 1] for the axis range (metrics), a legend of names. */
mer_status mer__plot_series(const char *path, const double *v, int32_t ns, int32_t ne,
                            const char *const *names, const char *xlabel, int32_t xfirst,
                            const char *ylabel, const char *title);

#endif /* MER_TRAIN_H */
