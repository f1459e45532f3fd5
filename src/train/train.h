/*
 * train.h -- the training engine's internal interface: batches, model creation and checkpoints,
 * optimizer, folds, and the pieces the trainer (trainer.c) and prediction (run.c) share. The
 * public side (data sets, mer_train_run, mer_run_*) is in include/mer.h, "Training". Models are
 * defined in src/models (interface: models/fusion.h) from the layer kit (nn/nn.h); the registry
 * (registry.c) names them.
 *
 * ---- Determinism ----------------------------------------------------------------------------
 * All randomness comes from the mer__rng passed in (init, shuffles, dropout), drawn serially.
 * Kernels split rows over threads with a fixed split, so a run is bitwise reproducible for a
 * fixed seed and thread count.
 */
#ifndef MER_TRAIN_H
#define MER_TRAIN_H

#include "models/fusion.h"

#include <stdbool.h>

/* ---- batches ----------------------------------------------------------------------------- */

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

/* The registry (registry.c): NULL when the name is unknown. */
const mer__model_ops *mer__model_lookup(const char *name);
/* Comma-separated names of registered models, for messages. */
const char *mer__model_names(void);

/* Create (build + allocate + init with rng; rng NULL leaves zeros for a checkpoint load). */
mer_status mer__model_create(mer__model **out, const mer__model_config *cfg, mer__rng *rng);
void mer__model_free(mer__model *m);
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
 * installs mer__optim_fused_hook as the model's weight-gradient hook (m->nn.wgrad); a layer whose weight gradient feeds nothing but the optimizer (a first layer fed
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
/* mer__optim_fused_wgrad in the shape of the layer kit's hook (user: the mer__optim_fused). */
int mer__optim_fused_hook(void *user, float *params, int64_t w_off, const float *dy,
                          const float *x, int64_t n, int64_t in, int64_t out);
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
/* The labels CSV the data set was loaded from (absolute path), or NULL. */
const char *mer__dataset_source(const mer_dataset *ds);
/* Features of clip i for modality m: rows (T for sequences, 1 for vectors) of dim D. */
const float *mer__dataset_feat(const mer_dataset *ds, int64_t i, int32_t m, int64_t *rows);

/* ---- prediction CSV (util.c) ------------------------------------------------------------- */

/* The string builder mer__sb and mer__mkdir are in core (internal.h). */

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
