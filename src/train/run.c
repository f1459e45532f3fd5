/*
 * run.c -- a finished run directory opened for prediction: its config (model, classes,
 * modalities), the fold models, and the recipe for raw-media prediction. Probabilities are the
 * mean of the fold models' softmax outputs (MERTools' test protocol), computed exactly as the
 * trainer computes test.csv, so `mer predict` reproduces it bitwise.
 */
#include "train/train.h"

#include <stdio.h>
#include <string.h>

struct mer_run {
    char dir[MER_PATH_CAP];
    mer__model_config cfg;
    char classes[MER_MAX_CLASSES][MER_NAME_MAX];
    int32_t folds;
    mer__model **models;
    char *recipe;
    char *labels; /* inputs.json: the labels CSV the run was trained on, or NULL */
};

int32_t mer_run_n_classes(const mer_run *r) { return r->cfg.n_classes; }
const char *mer_run_class(const mer_run *r, int32_t c) { return r->classes[c]; }
int32_t mer_run_n_modalities(const mer_run *r) { return r->cfg.n_mod; }
const char *mer_run_modality(const mer_run *r, int32_t m) { return r->cfg.modality[m]; }
int64_t mer_run_dim(const mer_run *r, int32_t m) { return r->cfg.dim[m]; }
const char *mer_run_recipe(const mer_run *r) { return r->recipe; }
const char *mer_run_labels(const mer_run *r) { return r->labels; }
const char *mer_run_encoder(const mer_run *r) { return r->cfg.encoder[0] ? r->cfg.encoder : NULL; }
const char *mer_run_dir(const mer_run *r) { return r->dir; }

void mer_run_free(mer_run *r) {
    if (!r) return;
    for (int32_t f = 0; f < r->folds && r->models; f++) mer__model_free(r->models[f]);
    free(r->models);
    free(r->recipe);
    free(r->labels);
    free(r);
}

static mer_status read_config(mer_run *r, const char *path) {
    mer_json *j = NULL;
    mer_status s = mer_json_load(&j, path);
    if (s != MER_OK) return s;
    const char *model = NULL;
    int64_t hidden = 0, heads = 0, layers = 0, folds = 0, tokens = 4;
    double dropout = 0;
    s = mer_json_get_string(j, "model", &model);
    if (s == MER_OK) s = mer_json_get_int(j, "hidden", &hidden);
    if (s == MER_OK) s = mer_json_get_double(j, "dropout", &dropout);
    if (s == MER_OK) s = mer_json_int_or(j, "heads", 4, &heads);
    if (s == MER_OK) s = mer_json_int_or(j, "layers", 1, &layers);
    if (s == MER_OK) s = mer_json_int_or(j, "tokens", 4, &tokens);
    if (s == MER_OK) s = mer_json_get_int(j, "folds", &folds);
    if (s == MER_OK && (folds < 1 || folds > 1000 || hidden < 1 || hidden > (1 << 20)))
        s = mer__err(MER_ERR_FORMAT, "%s: folds %lld / hidden %lld out of range", path,
                     (long long)folds, (long long)hidden);
    if (s == MER_OK) {
        snprintf(r->cfg.model, sizeof r->cfg.model, "%s", model);
        r->cfg.hidden = (int32_t)hidden;
        r->cfg.heads = (int32_t)heads;
        r->cfg.layers = (int32_t)layers;
        r->cfg.tokens = (int32_t)tokens;
        r->cfg.dropout = (float)dropout;
        const char *enc = "";
        s = mer_json_string_or(j, "encoder", "", &enc);
        if (s == MER_OK && strlen(enc) >= sizeof r->cfg.encoder)
            s = mer__err(MER_ERR_FORMAT, "%s: encoder spec too long", path);
        if (s == MER_OK) snprintf(r->cfg.encoder, sizeof r->cfg.encoder, "%s", enc);
        r->folds = (int32_t)folds;
    }
    char key[64];
    for (int32_t c = 0; s == MER_OK; c++) {
        snprintf(key, sizeof key, "classes.%d", c);
        if (!mer_json_has(j, key)) break;
        if (c == MER_MAX_CLASSES) {
            s = mer__err(MER_ERR_FORMAT, "%s: more than %d classes", path, MER_MAX_CLASSES);
            break;
        }
        const char *name = NULL;
        s = mer_json_get_string(j, key, &name);
        if (s == MER_OK) snprintf(r->classes[c], MER_NAME_MAX, "%s", name);
        r->cfg.n_classes = c + 1;
    }
    for (int32_t m = 0; s == MER_OK; m++) {
        snprintf(key, sizeof key, "modalities.%d.name", m);
        if (!mer_json_has(j, key)) break;
        if (m == MER_MAX_MODALITIES) {
            s = mer__err(MER_ERR_FORMAT, "%s: more than %d modalities", path, MER_MAX_MODALITIES);
            break;
        }
        const char *name = NULL;
        int64_t dim = 0;
        int seq = 0;
        s = mer_json_get_string(j, key, &name);
        snprintf(key, sizeof key, "modalities.%d.dim", m);
        if (s == MER_OK) s = mer_json_get_int(j, key, &dim);
        snprintf(key, sizeof key, "modalities.%d.sequence", m);
        if (s == MER_OK) s = mer_json_bool_or(j, key, 0, &seq);
        if (s == MER_OK && (dim < 1 || dim > (1 << 24)))
            s = mer__err(MER_ERR_FORMAT, "%s: modality %s: dim %lld out of range", path, name, (long long)dim);
        if (s == MER_OK) {
            snprintf(r->cfg.modality[m], MER_NAME_MAX, "%s", name);
            r->cfg.dim[m] = dim;
            r->cfg.is_seq[m] = seq;
            r->cfg.n_mod = m + 1;
        }
    }
    if (s == MER_OK && (r->cfg.n_classes < 2 || r->cfg.n_mod < 1))
        s = mer__err(MER_ERR_FORMAT, "%s: needs >= 2 classes and >= 1 modality", path);
    mer_json_free(j);
    return s;
}

mer_status mer_run_open(mer_run **out, const char *rundir) {
    *out = NULL;
    mer_run *r = calloc(1, sizeof *r);
    if (!r) return mer__err(MER_ERR_NOMEM, "out of memory");
    snprintf(r->dir, sizeof r->dir, "%s", rundir);
    char path[MER_PATH_CAP];
    mer_status s = MER_OK;
    snprintf(path, sizeof path, "%s/metrics.json", rundir);
    if (!mer__file_exists(path)) {
        snprintf(path, sizeof path, "%s/config.json", rundir);
        s = mer__file_exists(path)
                ? mer__err(MER_ERR_NOT_FOUND, "%s: the run is not complete (no metrics.json); finish it with `mer train --resume`", rundir)
                : mer__err(MER_ERR_NOT_FOUND, "%s: not a run directory (no config.json)", rundir);
    }
    snprintf(path, sizeof path, "%s/config.json", rundir);
    if (s == MER_OK) s = read_config(r, path);
    if (s == MER_OK) {
        r->models = calloc((size_t)r->folds, sizeof *r->models);
        if (!r->models) s = mer__err(MER_ERR_NOMEM, "out of memory");
    }
    for (int32_t f = 0; s == MER_OK && f < r->folds; f++) {
        s = mer__model_create(&r->models[f], &r->cfg, NULL);
        snprintf(path, sizeof path, "%s/fold-%d.safetensors", rundir, f);
        if (s == MER_OK) s = mer__model_load(r->models[f], path);
    }
    snprintf(path, sizeof path, "%s/recipe.json", rundir);
    if (s == MER_OK && mer__file_exists(path)) {
        size_t n = 0;
        s = mer__read_file(path, &r->recipe, &n);
    }
    snprintf(path, sizeof path, "%s/inputs.json", rundir);
    if (s == MER_OK && mer__file_exists(path)) {
        mer_json *j = NULL;
        const char *lab = NULL;
        s = mer_json_load(&j, path);
        if (s == MER_OK && mer_json_get_string(j, "labels", &lab) == MER_OK && lab &&
            !(r->labels = strdup(lab)))
            s = mer__err(MER_ERR_NOMEM, "out of memory");
        if (s == MER_OK) mer_clear_error(); /* a run without the key is fine */
        mer_json_free(j);
    }
    if (s != MER_OK) {
        mer_run_free(r);
        return s;
    }
    *out = r;
    return MER_OK;
}

int32_t mer__run_n_folds(const mer_run *r) { return r->folds; }

/* fold < 0: the mean over the fold models (mer_run_predict); else fold `fold`'s model alone
 * (fold-wise pseudo-labels, pseudo.c). */
mer_status mer__run_predict_fold(mer_run *r, int32_t fold, const mer_dataset *ds, float *probs) {
    if (fold >= r->folds)
        return mer__err(MER_ERR_INVALID_ARG, "%s: fold %d of %d", r->dir, fold, r->folds);
    int32_t map[MER_MAX_MODALITIES];
    for (int32_t m = 0; m < r->cfg.n_mod; m++) {
        map[m] = -1;
        for (int32_t k = 0; k < mer_dataset_n_modalities(ds); k++)
            if (!strcmp(mer_dataset_modality(ds, k), r->cfg.modality[m])) map[m] = k;
        if (map[m] < 0)
            return mer__err(MER_ERR_NOT_FOUND, "%s: the run needs modality '%s', which is not given",
                            r->dir, r->cfg.modality[m]);
        if (mer_dataset_count(ds) && mer_dataset_dim(ds, map[m]) != r->cfg.dim[m])
            return mer__err(MER_ERR_SHAPE, "modality %s: the run was trained on dimension %lld, got %lld",
                            r->cfg.modality[m], (long long)r->cfg.dim[m],
                            (long long)mer_dataset_dim(ds, map[m]));
    }
    int identity = mer_dataset_n_modalities(ds) == r->cfg.n_mod;
    for (int32_t m = 0; m < r->cfg.n_mod; m++) identity &= map[m] == m;
    mer_dataset *sel = NULL;
    const mer_dataset *use = ds;
    mer_status s = MER_OK;
    if (!identity) {
        s = mer__dataset_select(&sel, ds, map, r->cfg.n_mod);
        use = sel;
    }
    int64_t n = mer_dataset_count(ds);
    int32_t C = r->cfg.n_classes;
    float *tmp = malloc((size_t)(n ? n * C : 1) * sizeof(float));
    if (s == MER_OK && !tmp) s = mer__err(MER_ERR_NOMEM, "out of memory");
    if (s == MER_OK) memset(probs, 0, (size_t)(n * C) * sizeof(float));
    const int32_t f0 = fold < 0 ? 0 : fold, f1 = fold < 0 ? r->folds : fold + 1;
    for (int32_t f = f0; s == MER_OK && f < f1; f++) {
        s = mer__model_predict(r->models[f], use, tmp, 256);
        for (int64_t i = 0; s == MER_OK && i < n * C; i++) probs[i] += tmp[i];
    }
    if (s == MER_OK)
        for (int64_t i = 0; i < n * C; i++) probs[i] /= (float)(f1 - f0);
    free(tmp);
    mer_dataset_free(sel);
    return s;
}

mer_status mer_run_predict(mer_run *r, const mer_dataset *ds, float *probs) {
    return mer__run_predict_fold(r, -1, ds, probs);
}
