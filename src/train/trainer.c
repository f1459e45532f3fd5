/*
 * trainer.c -- the cross-validation protocol of MERTools on top of the model interface:
 * seeded (grouped) K folds; per fold, epochs of shuffled mini-batches (cross-entropy, Adam/AdamW,
 * optional clipping), held-out weighted F1 after every epoch, the best epoch's weights kept;
 * then out-of-fold and fold-averaged test predictions, metrics, plots. Also random
 * hyper-parameter search and resumable state.
 *
 * Files of a run directory (see mer.h, mer_train_run): config.json + recipe.json first,
 * state-K.safetensors while fold K trains (everything needed to continue bitwise: weights, Adam
 * moments and step, RNG state, best weights, history; one file so it is replaced atomically),
 * fold-K.safetensors then fold-K.json when fold K is done (the .json marks completion),
 * oof.csv, test.csv, confusion.png, curves.png, and metrics.json LAST (marks the run complete).
 */
#include "train/train.h"

#include <inttypes.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <pthread.h>

/* one fold (job) at a time reports progress (a named omp critical would export a symbol) */
static pthread_mutex_t progress_mu = PTHREAD_MUTEX_INITIALIZER;

mer_train_params mer_train_default_params(void) {
    mer_train_params p;
    memset(&p, 0, sizeof p);
    snprintf(p.model, sizeof p.model, "attention");
    p.hidden = 128;
    p.dropout = 0.3f;
    p.heads = 4;
    p.layers = 1;
    p.tokens = 4;
    p.folds = 5;
    p.epochs = 100;
    p.batch = 32;
    p.lr = 1e-3;
    p.l2 = 1e-5;
    p.optimizer = MER_OPT_ADAM;
    p.checkpoint_every = 1;
    p.checkpoint_seconds = 10.0;
    p.plots = 1;
    return p;
}

#define EVAL_BATCH 256
#define MER__MAX_PAR_FOLDS 64

typedef struct {
    const mer_train_params *p;
    const mer_dataset *ds, *test;
    const char *dir;
    int32_t trial, n_trials;
    int64_t done, total;        /* epochs done / to do (updated atomically: folds run in parallel) */
    int halt;                   /* set when a concurrent fold failed or was stopped */
} ctx;

static void path_of(char *buf, size_t n, const char *dir, const char *fmt, int32_t k) {
    char name[64];
    snprintf(name, sizeof name, fmt, k);
    snprintf(buf, n, "%s/%s", dir, name);
}

/* ---- validation and configuration -------------------------------------------------------- */

mer_status mer_train_params_check(const mer_train_params *p) {
    if (!mer__model_lookup(p->model))
        return mer__err(MER_ERR_INVALID_ARG, "unknown model '%s' (known: %s)", p->model,
                        mer__model_names());
    if (p->folds < 1) return mer__err(MER_ERR_INVALID_ARG, "folds %d < 1", p->folds);
    if (p->epochs < 1) return mer__err(MER_ERR_INVALID_ARG, "epochs %d < 1", p->epochs);
    if (p->batch < 1) return mer__err(MER_ERR_INVALID_ARG, "batch %d < 1", p->batch);
    if (p->hidden < 1) return mer__err(MER_ERR_INVALID_ARG, "hidden %d < 1", p->hidden);
    if (!(p->lr > 0) || !isfinite(p->lr)) return mer__err(MER_ERR_INVALID_ARG, "lr %g must be > 0", p->lr);
    if (!(p->l2 >= 0) || !isfinite(p->l2)) return mer__err(MER_ERR_INVALID_ARG, "l2 %g must be >= 0", p->l2);
    if (!(p->dropout >= 0 && p->dropout < 1))
        return mer__err(MER_ERR_INVALID_ARG, "dropout %g not in [0, 1)", p->dropout);
    if (!(p->label_smoothing >= 0 && p->label_smoothing < 1))
        return mer__err(MER_ERR_INVALID_ARG, "label smoothing %g not in [0, 1)", p->label_smoothing);
    if (p->search < 0) return mer__err(MER_ERR_INVALID_ARG, "search %d < 0", p->search);
    return MER_OK;
}

static mer_status validate(const mer_train_params *p, const mer_dataset *ds,
                           const mer_dataset *test) {
    mer_status s = mer_train_params_check(p);
    if (s != MER_OK) return s;
    int64_t n = mer_dataset_count(ds);
    if (n == 0) return mer__err(MER_ERR_INVALID_ARG, "no training clips");
    if (mer_dataset_n_classes(ds) < 2)
        return mer__err(MER_ERR_INVALID_ARG, "need at least 2 classes, got %d", mer_dataset_n_classes(ds));
    int64_t count[MER_MAX_CLASSES] = {0};
    for (int64_t i = 0; i < n; i++) {
        int32_t y = mer_dataset_label(ds, i);
        if (y < 0)
            return mer__err(MER_ERR_INVALID_ARG, "training clip %s has no label", mer_dataset_name(ds, i));
        count[y]++;
    }
    for (int32_t c = 0; c < mer_dataset_n_classes(ds); c++)
        if (!count[c])
            return mer__err(MER_ERR_INVALID_ARG, "class '%s' has no training examples",
                            mer_dataset_class(ds, c));
    if (test) {
        if (mer_dataset_n_modalities(test) != mer_dataset_n_modalities(ds))
            return mer__err(MER_ERR_SHAPE, "test set has %d modalities, training set %d",
                            mer_dataset_n_modalities(test), mer_dataset_n_modalities(ds));
        for (int32_t m = 0; m < mer_dataset_n_modalities(ds); m++)
            if (strcmp(mer_dataset_modality(test, m), mer_dataset_modality(ds, m)) ||
                (mer_dataset_count(test) && mer_dataset_dim(test, m) != mer_dataset_dim(ds, m)))
                return mer__err(MER_ERR_SHAPE, "test modality %s (dim %lld) does not match training %s (dim %lld)",
                                mer_dataset_modality(test, m), (long long)mer_dataset_dim(test, m),
                                mer_dataset_modality(ds, m), (long long)mer_dataset_dim(ds, m));
    }
    return MER_OK;
}

static void model_config(mer__model_config *c, const mer_train_params *p, const mer_dataset *ds) {
    memset(c, 0, sizeof *c);
    snprintf(c->model, sizeof c->model, "%s", p->model);
    c->n_classes = mer_dataset_n_classes(ds);
    c->n_mod = mer_dataset_n_modalities(ds);
    for (int32_t m = 0; m < c->n_mod; m++) {
        c->dim[m] = mer_dataset_dim(ds, m);
        c->is_seq[m] = mer_dataset_is_sequence(ds, m);
        snprintf(c->modality[m], MER_NAME_MAX, "%s", mer_dataset_modality(ds, m));
    }
    c->hidden = p->hidden;
    c->heads = p->heads;
    c->layers = p->layers;
    c->tokens = p->tokens;
    c->dropout = p->dropout;
    snprintf(c->encoder, sizeof c->encoder, "%s", p->encoder ? p->encoder : "");
}

/* Digest of everything training reads from the data set: names, labels, groups, fold masks and
 * every feature value. Recorded in config.json, so --resume refuses data that changed (same
 * shapes, other values) instead of mixing old and new. */
static uint64_t data_digest(const mer_dataset *ds) {
    mer__digest d;
    mer__digest_init(&d);
    for (int64_t i = 0; i < mer_dataset_count(ds); i++) {
        const char *nm = mer_dataset_name(ds, i), *g = mer_dataset_group(ds, i);
        int32_t y = mer_dataset_label(ds, i);
        uint64_t mask = mer__dataset_fold_mask(ds, i);
        mer__digest_add(&d, nm, strlen(nm) + 1);
        mer__digest_add(&d, g ? g : "", g ? strlen(g) + 1 : 1);
        mer__digest_add(&d, &y, sizeof y);
        mer__digest_add(&d, &mask, sizeof mask);
        for (int32_t m = 0; m < mer_dataset_n_modalities(ds); m++) {
            int64_t rows = 0;
            const float *x = mer__dataset_feat(ds, i, m, &rows);
            mer__digest_add(&d, &rows, sizeof rows);
            if (x) mer__digest_add(&d, x, (size_t)(rows * mer_dataset_dim(ds, m)) * sizeof(float));
        }
    }
    return mer__digest_final(&d);
}

/* The config text is a pure function of the parameters and the data set (its shape and the
 * digest of its values), so a resume checks compatibility by comparing it byte for byte with
 * the stored one. */
static void config_json(mer__sb *b, const mer_train_params *p, const mer_dataset *ds) {
    mer__sb_printf(b, "{\n  \"format\": \"mer-run\",\n  \"version\": 1,\n  \"model\": ");
    mer__sb_json_str(b, p->model);
    mer__sb_printf(b, ",\n  \"hidden\": %d,\n  \"dropout\": %.9g,\n  \"heads\": %d,\n  \"layers\": %d,\n",
                   p->hidden, p->dropout, p->heads, p->layers);
    mer__sb_printf(b, "  \"tokens\": %d,\n", p->tokens);
    mer__sb_printf(b, "  \"folds\": %d,\n  \"epochs\": %d,\n  \"batch\": %d,\n  \"lr\": %.17g,\n"
                      "  \"l2\": %.17g,\n  \"optimizer\": \"%s\",\n  \"clip_value\": %.17g,\n"
                      "  \"clip_norm\": %.17g,\n  \"label_smoothing\": %.17g,\n"
                      "  \"balanced_weights\": %d,\n  \"seed\": \"%" PRIu64 "\",\n  \"threads\": %d,\n",
                   p->folds, p->epochs, p->batch, p->lr, p->l2,
                   p->optimizer == MER_OPT_ADAMW ? "adamw" : "adam", p->clip_value, p->clip_norm,
                   p->label_smoothing, p->balanced_weights, p->seed, mer__threads());
    /* written only when set, so runs made before the option can still be resumed */
    if (p->select_last) mer__sb_printf(b, "  \"select\": \"last\",\n");
    mer__sb_printf(b, "  \"n_train\": %lld,\n  \"classes\": [", (long long)mer_dataset_count(ds));
    for (int32_t c = 0; c < mer_dataset_n_classes(ds); c++) {
        mer__sb_printf(b, c ? ", " : "");
        mer__sb_json_str(b, mer_dataset_class(ds, c));
    }
    /* the training prior, for test-prior correction (mer_prior_from_run): a clip counts once,
     * a fold-wise pseudo-label by the share of the folds that train on it */
    mer__sb_printf(b, "],\n  \"class_counts\": [");
    for (int32_t c = 0; c < mer_dataset_n_classes(ds); c++) {
        double k = 0;
        for (int64_t i = 0; i < mer_dataset_count(ds); i++) {
            if (mer_dataset_label(ds, i) != c) continue;
            int32_t in = 0;
            for (int32_t f = 0; f < p->folds; f++) in += mer__dataset_trains_in_fold(ds, i, f);
            k += mer__dataset_fold_mask(ds, i) == MER__ALL_FOLDS ? 1.0 : (double)in / p->folds;
        }
        mer__sb_printf(b, "%s%.17g", c ? ", " : "", k);
    }
    mer__sb_printf(b, "],\n  \"modalities\": [");
    for (int32_t m = 0; m < mer_dataset_n_modalities(ds); m++) {
        mer__sb_printf(b, "%s{\"name\": ", m ? ", " : "");
        mer__sb_json_str(b, mer_dataset_modality(ds, m));
        mer__sb_printf(b, ", \"dim\": %lld, \"sequence\": %s}", (long long)mer_dataset_dim(ds, m),
                       mer_dataset_is_sequence(ds, m) ? "true" : "false");
    }
    mer__sb_printf(b, "],\n  \"data_digest\": \"%016" PRIx64 "\",\n", data_digest(ds));
    if (p->encoder) { /* written only when set: older runs stay resumable */
        mer__sb_printf(b, "  \"encoder\": ");
        mer__sb_json_str(b, p->encoder);
        mer__sb_printf(b, ",\n");
    }
    mer__sb_printf(b, "  \"recipe\": %s\n}\n", p->recipe_json ? p->recipe_json : "null");
}

static mer_status prepare_dir(const ctx *c) {
    char path[MER_PATH_CAP];
    mer__sb b = {0};
    config_json(&b, c->p, c->ds);
    snprintf(path, sizeof path, "%s/config.json", c->dir);
    mer_status s = MER_OK;
    if (c->p->resume && mer__file_exists(path)) {
        char *old = NULL;
        size_t n = 0;
        s = mer__read_file(path, &old, &n);
        const char *dk = "\"data_digest\": \"";
        const char *od = s == MER_OK ? strstr(old, dk) : NULL, *nd = b.p ? strstr(b.p, dk) : NULL;
        if (s == MER_OK && od && nd && strncmp(od, nd, strlen(dk) + 16) != 0)
            s = mer__err(MER_ERR_INVALID_ARG,
                         "%s: the features or labels changed since the run started (data digest "
                         "%.16s, now %.16s): resuming would mix old and new data; start a new run "
                         "in another directory", path, od + strlen(dk), nd + strlen(dk));
        else if (s == MER_OK && (b.oom || n != b.len || memcmp(old, b.p, n)))
            s = mer__err(MER_ERR_INVALID_ARG,
                         "%s: the run was started with other parameters, data or thread count; "
                         "resume needs the same ones", path);
        free(old);
    } else {
        if (!c->p->resume && access(c->dir, F_OK) == 0) {
            snprintf(path, sizeof path, "%s/config.json", c->dir);
            if (mer__file_exists(path)) {
                mer__sb_free(&b);
                return mer__err(MER_ERR_INVALID_ARG,
                                "%s: already holds a run (use --resume to continue it, or another directory)",
                                c->dir);
            }
        }
        s = mer_mkdir_made(c->dir);
        if (s == MER_OK && c->p->recipe_json) {
            snprintf(path, sizeof path, "%s/recipe.json", c->dir);
            s = mer__write_file_atomic(path, c->p->recipe_json, strlen(c->p->recipe_json));
        }
        /* where the labels came from, so `predict --out` can refuse to overwrite them */
        const char *src = mer__dataset_source(c->ds);
        if (s == MER_OK && src) {
            mer__sb in = {0};
            mer__sb_printf(&in, "{\"labels\": ");
            mer__sb_json_str(&in, src);
            mer__sb_printf(&in, "}\n");
            snprintf(path, sizeof path, "%s/inputs.json", c->dir);
            s = mer__sb_save(&in, path);
            mer__sb_free(&in);
        }
        snprintf(path, sizeof path, "%s/config.json", c->dir);
        if (s == MER_OK) s = mer__sb_save(&b, path);
    }
    mer__sb_free(&b);
    return s;
}

/* ---- resumable state --------------------------------------------------------------------- */

typedef struct {
    int32_t epoch;         /* epochs completed */
    double best_waf;
    int32_t best_epoch;    /* 1-based; 0 none */
    double *loss, *waf;    /* (epochs) */
} fold_hist;

static mer_status save_state(const char *path, const mer__model *m, const mer__optim *o,
                             const float *best, const fold_hist *h, const mer__rng *rng,
                             int32_t epochs) {
    mer_safetensors_writer *w = NULL;
    mer_status s = mer_safetensors_writer_init(&w);
    int64_t np[1] = {m->nn.n_params}, ne[1] = {epochs};
    if (s == MER_OK) s = mer_safetensors_writer_add(w, "params", MER_DTYPE_F32, 1, np, m->nn.params);
    if (s == MER_OK) s = mer_safetensors_writer_add(w, "adam_m", MER_DTYPE_F32, 1, np, o->m);
    if (s == MER_OK) s = mer_safetensors_writer_add(w, "adam_v", MER_DTYPE_F32, 1, np, o->v);
    if (s == MER_OK) s = mer_safetensors_writer_add(w, "best", MER_DTYPE_F32, 1, np, best);
    if (s == MER_OK) s = mer_safetensors_writer_add(w, "loss", MER_DTYPE_F64, 1, ne, h->loss);
    if (s == MER_OK) s = mer_safetensors_writer_add(w, "waf", MER_DTYPE_F64, 1, ne, h->waf);
    char meta[512];
    snprintf(meta, sizeof meta,
             "{\"epoch\": %d, \"t\": %lld, \"best_waf\": %.17g, \"best_epoch\": %d, "
             "\"rng\": [\"%016" PRIx64 "\", \"%016" PRIx64 "\", \"%016" PRIx64 "\", \"%016" PRIx64 "\"]}",
             h->epoch, (long long)o->t, isfinite(h->best_waf) ? h->best_waf : -1.0, h->best_epoch,
             rng->s[0], rng->s[1], rng->s[2], rng->s[3]);
    if (s == MER_OK) s = mer_safetensors_writer_set_metadata(w, "state", meta);
    if (s == MER_OK) s = mer_safetensors_writer_save(w, path);
    mer_safetensors_writer_free(w);
    return s;
}

static mer_status copy_tensor(mer_safetensors *st, const char *name, mer_dtype dt, int64_t n,
                              void *dst) {
    mer_tensor t;
    mer_status s = mer_safetensors_get(st, name, dt, 1, (int64_t[]){n}, &t);
    if (s == MER_OK) memcpy(dst, t.data, (size_t)n * mer_dtype_size(dt));
    return s;
}

static mer_status load_state(const char *path, mer__model *m, mer__optim *o, float *best,
                             fold_hist *h, mer__rng *rng, int32_t epochs) {
    mer_safetensors *st = NULL;
    mer_status s = mer_safetensors_open(&st, path);
    if (s != MER_OK) return s;
    if (s == MER_OK) s = copy_tensor(st, "params", MER_DTYPE_F32, m->nn.n_params, m->nn.params);
    if (s == MER_OK) s = copy_tensor(st, "adam_m", MER_DTYPE_F32, m->nn.n_params, o->m);
    if (s == MER_OK) s = copy_tensor(st, "adam_v", MER_DTYPE_F32, m->nn.n_params, o->v);
    if (s == MER_OK) s = copy_tensor(st, "best", MER_DTYPE_F32, m->nn.n_params, best);
    if (s == MER_OK) s = copy_tensor(st, "loss", MER_DTYPE_F64, epochs, h->loss);
    if (s == MER_OK) s = copy_tensor(st, "waf", MER_DTYPE_F64, epochs, h->waf);
    const char *meta = mer_safetensors_metadata(st, "state");
    mer_json *j = NULL;
    if (s == MER_OK && !meta) s = mer__err(MER_ERR_FORMAT, "%s: no state metadata", path);
    if (s == MER_OK) s = mer_json_parse(&j, meta, strlen(meta), path);
    int64_t e = 0, t = 0, be = 0;
    double bw = 0;
    if (s == MER_OK) s = mer_json_get_int(j, "epoch", &e);
    if (s == MER_OK) s = mer_json_get_int(j, "t", &t);
    if (s == MER_OK) s = mer_json_get_int(j, "best_epoch", &be);
    if (s == MER_OK) s = mer_json_get_double(j, "best_waf", &bw);
    for (int k = 0; k < 4 && s == MER_OK; k++) {
        char key[16];
        const char *hex = NULL;
        snprintf(key, sizeof key, "rng.%d", k);
        s = mer_json_get_string(j, key, &hex);
        if (s == MER_OK) rng->s[k] = strtoull(hex, NULL, 16);
    }
    if (s == MER_OK && (e < 1 || e > epochs))
        s = mer__err(MER_ERR_FORMAT, "%s: epoch %lld out of range", path, (long long)e);
    if (s == MER_OK) {
        h->epoch = (int32_t)e;
        h->best_epoch = (int32_t)be;
        h->best_waf = be ? bw : -INFINITY;
        o->t = t;
    }
    mer_json_free(j);
    mer_safetensors_free(st);
    return s;
}

/* ---- one fold ---------------------------------------------------------------------------- */

static uint64_t fold_seed(uint64_t seed, int32_t f) {
    return seed * 0x9E3779B97F4A7C15ULL + 0x632BE59BD9B4E019ULL * (uint64_t)(f + 1);
}

static void fold_json(mer__sb *b, int32_t f, const fold_hist *h, int32_t epochs, int64_t n_train,
                      int64_t n_held) {
    mer__sb_printf(b, "{\n  \"fold\": %d,\n  \"n_train\": %lld,\n  \"n_heldout\": %lld,\n"
                      "  \"best_epoch\": %d,\n  \"best_waf\": ",
                   f, (long long)n_train, (long long)n_held, h->best_epoch);
    if (n_held && h->best_epoch) mer__sb_printf(b, "%.17g", h->best_waf);
    else mer__sb_printf(b, "null");
    mer__sb_printf(b, ",\n  \"loss\": [");
    for (int32_t e = 0; e < epochs; e++) mer__sb_printf(b, "%s%.17g", e ? ", " : "", h->loss[e]);
    mer__sb_printf(b, "],\n  \"waf\": [");
    for (int32_t e = 0; e < epochs; e++) {
        if (isfinite(h->waf[e])) mer__sb_printf(b, "%s%.17g", e ? ", " : "", h->waf[e]);
        else mer__sb_printf(b, "%snull", e ? ", " : "");
    }
    mer__sb_printf(b, "],\n  \"complete\": true\n}\n");
}

static mer_status train_fold(ctx *c, int32_t f, const int32_t *fold) {
    const mer_train_params *p = c->p;
    const mer_dataset *ds = c->ds;
    const int64_t n = mer_dataset_count(ds);
    const int32_t C = mer_dataset_n_classes(ds), E = p->epochs;
    char path[MER_PATH_CAP], state_path[MER_PATH_CAP];
    path_of(path, sizeof path, c->dir, "fold-%d.json", f);
    if (p->resume && mer__file_exists(path)) {
#pragma omp atomic
        c->done += E;
        return MER_OK;
    }
    path_of(state_path, sizeof state_path, c->dir, "state-%d.safetensors", f);

    mer__model_config cfg;
    model_config(&cfg, p, ds);
    mer__rng rng;
    mer__rng_seed(&rng, fold_seed(p->seed, f));
    mer__model *m = NULL;
    mer_status s = mer__model_create(&m, &cfg, &rng);
    if (s != MER_OK) return s;
    mer__optim opt;
    memset(&opt, 0, sizeof opt);
    fold_hist h = {.best_waf = -INFINITY};
    int64_t *tr = malloc((size_t)n * sizeof *tr), *held = malloc((size_t)n * sizeof *held);
    int64_t n_tr = 0, n_held = 0;
    float *best = mer__alloc((size_t)m->nn.n_params * sizeof(float));
    float *logits = malloc((size_t)p->batch * C * sizeof(float));
    float *probs = malloc((size_t)p->batch * C * sizeof(float));
    float *dlogits = malloc((size_t)p->batch * C * sizeof(float));
    float *hprobs = malloc((size_t)(n ? n : 1) * C * sizeof(float));
    int32_t *hpred = malloc((size_t)(n ? n : 1) * sizeof(int32_t));
    int32_t *htrue = malloc((size_t)(n ? n : 1) * sizeof(int32_t));
    h.loss = calloc((size_t)E, sizeof(double));
    h.waf = calloc((size_t)E, sizeof(double));
    mer__batcher bt;
    memset(&bt, 0, sizeof bt);
    if (!tr || !held || !best || !logits || !probs || !dlogits || !hprobs || !hpred || !htrue ||
        !h.loss || !h.waf)
        s = mer__err(MER_ERR_NOMEM, "out of memory");
    if (s == MER_OK) s = mer__optim_init(&opt, p->optimizer, m->nn.n_params, (float)p->lr, (float)p->l2);
    for (int64_t i = 0; s == MER_OK && i < n; i++) {
        if (p->folds > 1 && fold[i] == f) {
            held[n_held] = i;
            htrue[n_held++] = mer_dataset_label(ds, i);
        } else if (mer__dataset_trains_in_fold(ds, i, f)) { /* fold-wise pseudo-labels */
            tr[n_tr++] = i;
        }
    }
    for (int32_t e = 0; h.waf && e < E; e++) h.waf[e] = NAN;
    if (s == MER_OK) memcpy(best, m->nn.params, (size_t)m->nn.n_params * sizeof(float));
    /* class weights over this fold's training part */
    float cw[MER_MAX_CLASSES];
    if (p->balanced_weights) {
        int64_t cnt[MER_MAX_CLASSES] = {0};
        for (int64_t i = 0; i < n_tr; i++) cnt[mer_dataset_label(ds, tr[i])]++;
        for (int32_t k = 0; k < C; k++)
            cw[k] = cnt[k] ? (float)((double)n_tr / ((double)C * (double)cnt[k])) : 0.0f;
    }
    if (s == MER_OK && p->resume && mer__file_exists(state_path)) {
        s = load_state(state_path, m, &opt, best, &h, &rng, E);
        if (s == MER_OK) MER_LOG_I("fold %d: resuming after epoch %d", f, h.epoch);
        /* a state cut short (killed mid-write by an older mer, or a full disk) cannot resume */
        else if (s != MER_ERR_NOMEM)
            s = mer__err(s, "%s; delete %s to restart fold %d from its first epoch", mer_last_error(),
                         state_path, f);
    }
#pragma omp atomic
    c->done += h.epoch;
    int64_t *perm = malloc((size_t)(n_tr ? n_tr : 1) * sizeof *perm);
    if (s == MER_OK && !perm) s = mer__err(MER_ERR_NOMEM, "out of memory");

    double last_save = mer__now();
    for (int32_t e = h.epoch; s == MER_OK && e < E; e++) {
        /* a fresh permutation of the training clips per epoch (the DataLoader's shuffle) */
        memcpy(perm, tr, (size_t)n_tr * sizeof *perm);
        for (int64_t i = n_tr - 1; i > 0; i--) {
            int64_t j = (int64_t)(mer__rng_u64(&rng) % (uint64_t)(i + 1));
            int64_t t = perm[i]; perm[i] = perm[j]; perm[j] = t;
        }
        double loss_sum = 0.0;
        for (int64_t b0 = 0; s == MER_OK && b0 < n_tr; b0 += p->batch) {
            int64_t nb = n_tr - b0 < p->batch ? n_tr - b0 : p->batch;
            s = mer__batcher_fill(&bt, ds, perm + b0, nb);
            if (s != MER_OK) break;
            /* m->nn.grads is zero here: calloc'd, then zeroed by every optimizer step */
            mer__act_reset(&m->nn.act);
            s = m->ops->forward(m, &bt.b, 1, &rng, logits);
            if (s != MER_OK) break;
            const float *w = p->balanced_weights ? cw : NULL;
            float loss = mer__cross_entropy_fwd(probs, logits, bt.b.y, w,
                                                (float)p->label_smoothing, nb, C);
            if (!isfinite(loss)) {
                s = mer__err(MER_ERR_NUMERIC, "fold %d epoch %d: the loss became %g (lower --lr?)",
                             f, e + 1, loss);
                break;
            }
            loss_sum += (double)loss * (double)nb;
            memset(dlogits, 0, (size_t)(nb * C) * sizeof(float));
            mer__cross_entropy_bwd(dlogits, probs, bt.b.y, w, (float)p->label_smoothing, nb, C);
            /* without clipping, first-layer weights are stepped inside backward (optim.c) */
            int fuse = !(p->clip_value > 0) && !(p->clip_norm > 0);
            mer__optim_fused fz;
            if (fuse) {
                mer__optim_fused_begin(&opt, &fz);
                m->nn.wgrad = mer__optim_fused_hook;
                m->nn.wgrad_user = &fz;
            }
            s = m->ops->backward(m, &bt.b, dlogits);
            m->nn.wgrad = NULL;
            m->nn.wgrad_user = NULL;
            if (s != MER_OK) break;
            if (p->clip_value > 0) mer__clip_grad_value(m->nn.grads, m->nn.n_params, (float)p->clip_value);
            if (p->clip_norm > 0) mer__clip_grad_norm(m->nn.grads, m->nn.n_params, (float)p->clip_norm);
            if (fuse) mer__optim_step_fused(&opt, m->nn.params, m->nn.grads, &fz);
            else mer__optim_step(&opt, m->nn.params, m->nn.grads);
        }
        if (s != MER_OK) break;
        h.loss[e] = n_tr ? loss_sum / (double)n_tr : 0.0;
        if (n_held) {
            s = mer__model_predict_idx(m, ds, held, n_held, hprobs, EVAL_BATCH);
            if (s != MER_OK) break;
            mer_argmax_rows(hprobs, n_held, C, hpred);
            mer_metrics mm;
            mer_metrics_compute(htrue, hpred, n_held, C, &mm);
            h.waf[e] = mm.waf;
            if (mm.waf > h.best_waf || p->select_last) {
                h.best_waf = mm.waf;
                h.best_epoch = e + 1;
                memcpy(best, m->nn.params, (size_t)m->nn.n_params * sizeof(float));
            }
        } else {
            /* no held-out part (folds == 1): the final epoch's weights */
            h.best_epoch = e + 1;
            memcpy(best, m->nn.params, (size_t)m->nn.n_params * sizeof(float));
        }
        h.epoch = e + 1;
        int stop = 0;
        /* one fold at a time reports; a concurrent fold that failed or was stopped stops this
         * one too, at the same kind of boundary (its state saved, resumable) */
        pthread_mutex_lock(&progress_mu);
        c->done++;
        if (p->progress) {
            mer_train_progress pr = {.trial = c->trial, .n_trials = c->n_trials, .fold = f,
                                     .n_folds = p->folds, .epoch = e + 1, .n_epochs = E,
                                     .train_loss = h.loss[e], .heldout_waf = h.waf[e],
                                     .best_waf = n_held ? h.best_waf : NAN, .done = c->done,
                                     .total = c->total};
            p->progress(&pr, p->progress_user_data);
        }
        stop = p->abort && p->abort(p->abort_user_data);
        if (stop) c->halt = 1;
        else if (c->halt) stop = 1;
        pthread_mutex_unlock(&progress_mu);
        int due = p->checkpoint_every > 0 && (e + 1) % p->checkpoint_every == 0 &&
                  mer__now() - last_save >= p->checkpoint_seconds;
        if (e + 1 < E && (stop || due)) {
            s = save_state(state_path, m, &opt, best, &h, &rng, E);
            last_save = mer__now();
        }
        if (s == MER_OK && stop) s = mer__err(MER_ERR_ABORTED, "stopped by the caller after fold %d epoch %d", f, e + 1);
    }
    if (s == MER_OK) {
        char meta[256];
        snprintf(meta, sizeof meta, "{\"fold\": %d, \"best_epoch\": %d}", f, h.best_epoch);
        path_of(path, sizeof path, c->dir, "fold-%d.safetensors", f);
        s = mer__model_save(m, best, path, "mer_fold", meta);
    }
    if (s == MER_OK) {
        mer__sb b = {0};
        fold_json(&b, f, &h, E, n_tr, n_held);
        path_of(path, sizeof path, c->dir, "fold-%d.json", f);
        s = mer__sb_save(&b, path);
        mer__sb_free(&b);
        if (s == MER_OK) unlink(state_path);
    }
    mer__batcher_free(&bt);
    mer__optim_free(&opt);
    mer__model_free(m);
    free(perm);
    free(tr);
    free(held);
    mer__free(best);
    free(logits);
    free(probs);
    free(dlogits);
    free(hprobs);
    free(hpred);
    free(htrue);
    free(h.loss);
    free(h.waf);
    return s;
}

/* ---- results ----------------------------------------------------------------------------- */

static void metrics_json(mer__sb *b, const mer_metrics *m, const mer_dataset *ds, int full) {
    mer__sb_printf(b, "{\"n\": %lld, \"waf\": %.17g, \"accuracy\": %.17g, \"macro_f1\": %.17g, \"uar\": %.17g",
                   (long long)m->n, m->waf, m->accuracy, m->macro_f1, m->uar);
    if (full) {
        mer__sb_printf(b, ",\n    \"per_class\": {");
        for (int32_t k = 0; k < m->n_classes; k++) {
            mer__sb_printf(b, "%s", k ? ", " : "");
            mer__sb_json_str(b, mer_dataset_class(ds, k));
            mer__sb_printf(b, ": {\"precision\": %.17g, \"recall\": %.17g, \"f1\": %.17g, \"support\": %lld}",
                           m->precision[k], m->recall[k], m->f1[k], (long long)m->support[k]);
        }
        mer__sb_printf(b, "}");
    }
    mer__sb_printf(b, ",\n    \"confusion\": [");
    for (int32_t t = 0; t < m->n_classes; t++) {
        mer__sb_printf(b, "%s[", t ? ", " : "");
        for (int32_t q = 0; q < m->n_classes; q++)
            mer__sb_printf(b, "%s%lld", q ? ", " : "", (long long)m->confusion[t * m->n_classes + q]);
        mer__sb_printf(b, "]");
    }
    mer__sb_printf(b, "]}");
}

static mer_status read_history(const char *path, double *loss, double *waf, int32_t E,
                               int32_t *best_epoch) {
    mer_json *j = NULL;
    mer_status s = mer_json_load(&j, path);
    if (s != MER_OK) return s;
    int64_t be = 0;
    s = mer_json_get_int(j, "best_epoch", &be);
    *best_epoch = (int32_t)be;
    for (int32_t e = 0; e < E && s == MER_OK; e++) {
        char key[64];
        snprintf(key, sizeof key, "loss.%d", e);
        s = mer_json_get_double(j, key, &loss[e]);
        snprintf(key, sizeof key, "waf.%d", e);
        if (s == MER_OK) s = mer_json_double_or(j, key, NAN, &waf[e]);
    }
    mer_json_free(j);
    return s;
}

static mer_status finish(ctx *c, const int32_t *fold, mer_metrics *out) {
    const mer_train_params *p = c->p;
    const mer_dataset *ds = c->ds;
    const int64_t n = mer_dataset_count(ds);
    const int32_t C = mer_dataset_n_classes(ds), K = p->folds, E = p->epochs;
    const int64_t nt = c->test ? mer_dataset_count(c->test) : 0;
    char path[MER_PATH_CAP];
    const char *cls[MER_MAX_CLASSES];
    for (int32_t k = 0; k < C; k++) cls[k] = mer_dataset_class(ds, k);
    float *oof = calloc((size_t)(n * C), sizeof(float));
    float *tsum = calloc((size_t)(nt ? nt * C : 1), sizeof(float));
    float *tp = malloc((size_t)(nt ? nt * C : 1) * sizeof(float));
    int64_t *idx = malloc((size_t)n * sizeof *idx), *tidx = malloc((size_t)(nt ? nt : 1) * sizeof *tidx);
    int32_t *truth = malloc((size_t)n * sizeof(int32_t)), *pred = malloc((size_t)n * sizeof(int32_t));
    float *fp = malloc((size_t)(n * C) * sizeof(float));
    double *loss = calloc((size_t)K * E, sizeof(double)), *waf = calloc((size_t)K * E, sizeof(double));
    mer_metrics *fm = calloc((size_t)K, sizeof *fm);
    int32_t *best_epoch = calloc((size_t)K, sizeof(int32_t));
    mer_metrics pooled;
    memset(&pooled, 0, sizeof pooled);
    mer_status s = (oof && tsum && tp && idx && tidx && truth && pred && fp && loss && waf && fm && best_epoch)
                       ? MER_OK : mer__err(MER_ERR_NOMEM, "out of memory");
    for (int64_t i = 0; i < nt; i++) tidx[i] = i;
    mer__model_config cfg;
    model_config(&cfg, p, ds);
    for (int32_t f = 0; f < K && s == MER_OK; f++) {
        mer__model *m = NULL;
        s = mer__model_create(&m, &cfg, NULL);
        path_of(path, sizeof path, c->dir, "fold-%d.safetensors", f);
        if (s == MER_OK) s = mer__model_load(m, path);
        path_of(path, sizeof path, c->dir, "fold-%d.json", f);
        if (s == MER_OK) s = read_history(path, loss + (int64_t)f * E, waf + (int64_t)f * E, E, &best_epoch[f]);
        int64_t nh = 0;
        for (int64_t i = 0; i < n; i++)
            if (K > 1 && fold[i] == f) idx[nh++] = i;
        if (s == MER_OK && nh) s = mer__model_predict_idx(m, ds, idx, nh, fp, EVAL_BATCH);
        if (s == MER_OK && nh) {
            for (int64_t a = 0; a < nh; a++) {
                memcpy(oof + idx[a] * C, fp + a * C, (size_t)C * sizeof(float));
                truth[a] = mer_dataset_label(ds, idx[a]);
            }
            mer_argmax_rows(fp, nh, C, pred);
            mer_metrics_compute(truth, pred, nh, C, &fm[f]);
        }
        if (s == MER_OK && nt) {
            s = mer__model_predict_idx(m, c->test, tidx, nt, tp, EVAL_BATCH);
            for (int64_t i = 0; s == MER_OK && i < nt * C; i++) tsum[i] += tp[i];
        }
        mer__model_free(m);
    }
    /* pooled out-of-fold metrics over every held-out clip */
    int64_t no = 0;
    for (int64_t i = 0; s == MER_OK && i < n; i++)
        if (K > 1 && fold[i] >= 0) {
            truth[no] = mer_dataset_label(ds, i);
            mer_argmax_rows(oof + i * C, 1, C, &pred[no]);
            no++;
        }
    if (s == MER_OK) mer_metrics_compute(truth, pred, no, C, &pooled);
    if (s == MER_OK && K > 1) {
        mer__sb b = {0};
        mer__sb_printf(&b, "name");
        for (int32_t k = 0; k < C; k++) {
            mer__sb_printf(&b, ",");
            mer__sb_csv_field(&b, cls[k]);
        }
        mer__sb_printf(&b, ",pred,label,fold\n");
        for (int64_t i = 0; i < n; i++) {
            if (fold[i] < 0) continue;
            int32_t pk;
            mer_argmax_rows(oof + i * C, 1, C, &pk);
            mer__sb_csv_field(&b, mer_dataset_name(ds, i));
            for (int32_t k = 0; k < C; k++) mer__sb_printf(&b, ",%.8g", oof[i * C + k]);
            mer__sb_printf(&b, ",");
            mer__sb_csv_field(&b, cls[pk]);
            mer__sb_printf(&b, ",");
            mer__sb_csv_field(&b, cls[mer_dataset_label(ds, i)]);
            mer__sb_printf(&b, ",%d\n", fold[i]);
        }
        snprintf(path, sizeof path, "%s/oof.csv", c->dir);
        s = mer__sb_save(&b, path);
        mer__sb_free(&b);
    }
    if (s == MER_OK && nt) {
        for (int64_t i = 0; i < nt * C; i++) tsum[i] /= (float)K;
        snprintf(path, sizeof path, "%s/test.csv", c->dir);
        s = mer_write_predictions(path, c->test, tsum, cls, C, 0);
    }
    if (s == MER_OK && p->plots) {
        char title[256];
        snprintf(title, sizeof title, "%s: out-of-fold confusion (WAF %.4f)", p->model, pooled.waf);
        snprintf(path, sizeof path, "%s/confusion.png", c->dir);
        if (K > 1) s = mer__plot_confusion(path, pooled.confusion, C, cls, title);
        snprintf(title, sizeof title, "%s: training loss and held-out WAF per fold", p->model);
        snprintf(path, sizeof path, "%s/curves.png", c->dir);
        if (s == MER_OK) s = mer__plot_curves(path, loss, waf, K, E, title);
    }
    if (s == MER_OK) {
        mer__sb b = {0};
        double mw = 0, ma = 0, mf = 0, mu = 0;
        for (int32_t f = 0; f < K; f++) {
            mw += fm[f].waf; ma += fm[f].accuracy; mf += fm[f].macro_f1; mu += fm[f].uar;
        }
        mer__sb_printf(&b, "{\n  \"complete\": true,\n  \"model\": ");
        mer__sb_json_str(&b, p->model);
        mer__sb_printf(&b, ",\n  \"classes\": [");
        for (int32_t k = 0; k < C; k++) {
            mer__sb_printf(&b, k ? ", " : "");
            mer__sb_json_str(&b, cls[k]);
        }
        mer__sb_printf(&b, "],\n  \"n_folds\": %d,\n", K);
        if (K > 1) {
            mer__sb_printf(&b, "  \"mean\": {\"waf\": %.17g, \"accuracy\": %.17g, \"macro_f1\": %.17g, \"uar\": %.17g},\n",
                           mw / K, ma / K, mf / K, mu / K);
            mer__sb_printf(&b, "  \"oof\": ");
            metrics_json(&b, &pooled, ds, 1);
            mer__sb_printf(&b, ",\n  \"folds\": [");
            for (int32_t f = 0; f < K; f++) {
                mer__sb_printf(&b, "%s\n    {\"fold\": %d, \"best_epoch\": %d, \"metrics\": ", f ? "," : "", f, best_epoch[f]);
                metrics_json(&b, &fm[f], ds, 0);
                mer__sb_printf(&b, "}");
            }
            mer__sb_printf(&b, "]\n}\n");
        } else {
            mer__sb_printf(&b, "  \"mean\": null,\n  \"final_epoch\": %d,\n  \"final_loss\": %.17g\n}\n",
                           best_epoch[0], loss[E - 1]);
        }
        snprintf(path, sizeof path, "%s/metrics.json", c->dir);
        s = mer__sb_save(&b, path);
        mer__sb_free(&b);
    }
    if (s == MER_OK && out) {
        *out = pooled;
        if (K > 1) {
            /* the headline numbers are the mean over folds (MERTools reports fold means) */
            double mw = 0, ma = 0, mf = 0, mu = 0;
            for (int32_t f = 0; f < K; f++) {
                mw += fm[f].waf; ma += fm[f].accuracy; mf += fm[f].macro_f1; mu += fm[f].uar;
            }
            out->waf = mw / K; out->accuracy = ma / K; out->macro_f1 = mf / K; out->uar = mu / K;
        }
    }
    free(oof); free(tsum); free(tp); free(idx); free(tidx); free(truth); free(pred); free(fp);
    free(loss); free(waf); free(fm); free(best_epoch);
    return s;
}

/* Folds are independent, and one fold's step (batch 32) is too small to keep two cores busy:
 * with T threads, folds run T at a time, each on one thread (nested kernels run serially), in
 * fixed groups 0..T-1, T..2T-1, ...; a last group of one fold runs on one thread as well. A fold's
 * thread count therefore depends only on (fold, folds, threads), never on which folds a resumed
 * run still has to do, so results stay bitwise reproducible for a fixed thread count. A fold
 * that fails or is stopped halts the others of its group after their current epoch (state
 * saved); the error reported is the lowest failing fold's. */
static mer_status train_folds(ctx *c, const int32_t *fold) {
    const int32_t F = c->p->folds;
    int T = mer__threads();
    if (omp_in_parallel()) T = 1; /* already one job of a parallel caller (LOSO) */
    if (T > MER__MAX_PAR_FOLDS) T = MER__MAX_PAR_FOLDS;
    mer_status s = MER_OK;
    for (int32_t g0 = 0; g0 < F && s == MER_OK; g0 += T) {
        int32_t gs = F - g0 < T ? F - g0 : T;
        if (gs == 1 && g0 == 0) { /* one thread, or a single fold: it gets every thread */
            s = train_fold(c, g0, fold);
            continue;
        }
        if (gs == 1) {
            /* A lone last fold stays on one thread too: measured on the MER2024-shaped bench
             * (batch 32, OMP_WAIT_POLICY=PASSIVE) it took 5.0 s on 2 threads against 4.2 s on
             * one, the wake-ups of ~10 parallel regions per 3 ms step costing more than they
             * save (with spinning threads 3.9 s: not worth the cores it burns). */
            int old = mer__threads_use(1);
            s = train_fold(c, g0, fold);
            mer__threads_use(old);
            continue;
        }
        mer_status st[MER__MAX_PAR_FOLDS];
        char msg[MER__MAX_PAR_FOLDS][256];
#pragma omp parallel for schedule(static, 1) num_threads(gs)
        for (int32_t i = 0; i < gs; i++) {
            omp_set_num_threads(1); /* this fold's kernels (oneDNN included) on this thread */
            st[i] = train_fold(c, g0 + i, fold);
            msg[i][0] = 0;
            if (st[i] != MER_OK) {
                mer__err_copy(msg[i], sizeof msg[i]);
#pragma omp atomic write
                c->halt = 1;
            }
        }
        /* the cause first: a fold's own failure before the folds it halted */
        int32_t bad = -1;
        for (int32_t i = 0; i < gs; i++)
            if (st[i] != MER_OK && (bad < 0 || (st[bad] == MER_ERR_ABORTED && st[i] != MER_ERR_ABORTED)))
                bad = i;
        if (bad >= 0) s = mer__err(st[bad], "%s", msg[bad]);
    }
    return s;
}

static mer_status run_cv(ctx *c, mer_metrics *out) {
    char path[MER_PATH_CAP];
    snprintf(path, sizeof path, "%s/metrics.json", c->dir);
    mer_status s = prepare_dir(c);
    if (s != MER_OK) return s;
    const int64_t n = mer_dataset_count(c->ds);
    int32_t *fold = malloc((size_t)n * sizeof *fold);
    if (!fold) return mer__err(MER_ERR_NOMEM, "out of memory");
    if (c->p->folds > 1) {
        s = mer__make_folds(fold, c->ds, c->p->folds, c->p->seed);
    } else {
        for (int64_t i = 0; i < n; i++) fold[i] = -1;
    }
    /* a complete run is not redone on resume: only re-read */
    unlink(path);
    if (s == MER_OK) s = train_folds(c, fold);
    if (s == MER_OK) s = finish(c, fold, out);
    free(fold);
    return s;
}

/* ---- hyper-parameter search -------------------------------------------------------------- */


/* MERTools' grid: hidden {64, 128, 256}, dropout {0.2, 0.3, 0.4, 0.5}, lr {1e-3, 1e-4}. */
static const int32_t grid_hidden[] = {64, 128, 256};
static const float grid_dropout[] = {0.2f, 0.3f, 0.4f, 0.5f};
static const double grid_lr[] = {1e-3, 1e-4};

static mer_status run_search(const mer_train_params *p, const mer_dataset *ds,
                             const mer_dataset *test, const char *dir, mer_metrics *out) {
    char sub[MER_PATH_CAP], from[MER_PATH_CAP], to[MER_PATH_CAP];
    mer_status s = MER_OK;
    if (!p->resume) {
        snprintf(sub, sizeof sub, "%s/search.json", dir);
        if (mer__file_exists(sub))
            return mer__err(MER_ERR_INVALID_ARG, "%s: already holds a search (use --resume or another directory)", dir);
    }
    s = mer_mkdir_made(dir);
    snprintf(sub, sizeof sub, "%s/trials", dir);
    if (s == MER_OK) s = mer_mkdir_made(sub);
    snprintf(from, sizeof from, "%s/metrics.json", dir);
    unlink(from);
    mer__rng rng;
    mer__rng_seed(&rng, p->seed ^ 0x5EA2C4ULL);
    int32_t best_t = -1;
    double best_w = -1;
    mer_metrics best_m;
    mer__sb js = {0};
    mer__sb_printf(&js, "{\n  \"trials\": [");
    int64_t total = (int64_t)p->search * p->folds * p->epochs, done = 0;
    for (int32_t t = 0; t < p->search && s == MER_OK; t++) {
        mer_train_params q = *p;
        q.search = 0;
        q.hidden = grid_hidden[mer__rng_u64(&rng) % 3];
        q.dropout = grid_dropout[mer__rng_u64(&rng) % 4];
        q.lr = grid_lr[mer__rng_u64(&rng) % 2];
        snprintf(sub, sizeof sub, "%s/trials/trial-%02d", dir, t);
        ctx c = {.p = &q, .ds = ds, .test = test, .dir = sub, .trial = t, .n_trials = p->search,
                 .done = done, .total = total};
        mer_metrics m;
        snprintf(from, sizeof from, "%s/metrics.json", sub);
        if (p->resume && mer__file_exists(from)) {
            /* finished before the interruption: re-derive its metrics without training */
            q.resume = 1;
        }
        s = run_cv(&c, &m);
        done += (int64_t)p->folds * p->epochs;
        if (s != MER_OK) break;
        mer__sb_printf(&js, "%s\n    {\"trial\": %d, \"hidden\": %d, \"dropout\": %.9g, \"lr\": %.17g, \"waf\": %.17g}",
                       t ? "," : "", t, q.hidden, q.dropout, q.lr, m.waf);
        if (m.waf > best_w) {
            best_w = m.waf;
            best_t = t;
            best_m = m;
        }
    }
    mer__sb_printf(&js, "],\n  \"best_trial\": %d\n}\n", best_t);
    static const char *files[] = {"config.json", "recipe.json", "oof.csv", "test.csv",
                                  "confusion.png", "curves.png"};
    for (size_t k = 0; s == MER_OK && k < sizeof files / sizeof *files; k++) {
        snprintf(from, sizeof from, "%s/trials/trial-%02d/%s", dir, best_t, files[k]);
        snprintf(to, sizeof to, "%s/%s", dir, files[k]);
        if (mer__file_exists(from)) s = mer__copy_file_atomic(from, to);
    }
    for (int32_t f = 0; s == MER_OK && f < p->folds; f++) {
        const char *ext[] = {"safetensors", "json"};
        for (int k = 0; k < 2 && s == MER_OK; k++) {
            snprintf(from, sizeof from, "%s/trials/trial-%02d/fold-%d.%s", dir, best_t, f, ext[k]);
            snprintf(to, sizeof to, "%s/fold-%d.%s", dir, f, ext[k]);
            s = mer__copy_file_atomic(from, to);
        }
    }
    snprintf(to, sizeof to, "%s/search.json", dir);
    if (s == MER_OK) s = mer__sb_save(&js, to);
    mer__sb_free(&js);
    snprintf(from, sizeof from, "%s/trials/trial-%02d/metrics.json", dir, best_t);
    snprintf(to, sizeof to, "%s/metrics.json", dir);
    if (s == MER_OK) s = mer__copy_file_atomic(from, to);
    if (s == MER_OK && out) *out = best_m;
    return s;
}

mer_status mer_train_run(const mer_dataset *train, const mer_dataset *test,
                         const mer_train_params *p, const char *rundir, mer_metrics *out) {
    if (!p || !train || !rundir) return mer__err(MER_ERR_INVALID_ARG, "train: NULL argument");
    mer_status s = validate(p, train, test);
    if (s != MER_OK) return s;
    const int threads = mer__threads_use(p->n_threads);
    if (p->search > 0) {
        s = run_search(p, train, test, rundir, out);
    } else {
        ctx c = {.p = p, .ds = train, .test = test, .dir = rundir, .trial = 0, .n_trials = 1,
                 .done = 0, .total = (int64_t)p->folds * p->epochs};
        s = run_cv(&c, out);
    }
    mer__threads_use(threads);
    return s;
}
