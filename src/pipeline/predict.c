/*
 * predict.c -- predict from media for any run: each modality's recorded recipe (acoustic
 * descriptors, a speech encoder's hidden states, CLIP image features) is replayed on the media
 * file, and the run
 * predicts. The recipe a run records is collected from the feature directories it was trained
 * on (each extractor writes recipe.json beside its features).
 */
#include "internal.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>

/* ---- the recipe a run records --------------------------------------------------------------- */

mer_status mer_recipe_from_features(const mer_modality_spec *mods, int32_t n, char **json) {
    if (!mods || n < 1 || !json) return mer__err(MER_ERR_INVALID_ARG, "mer_recipe_from_features: bad arguments");
    *json = NULL;
    mer__json w = {0};
    struct cJSON *root = mer__json_root(&w);
    mer_status s = MER_OK;
    int all = 1;
    for (int32_t m = 0; m < n && all && s == MER_OK; m++) {
        char path[4200], *text = NULL;
        size_t len = 0;
        if (snprintf(path, sizeof path, "%s/recipe.json", mods[m].dir) >= (int)sizeof path) {
            all = 0;
            break;
        }
        if (mer__read_file(path, &text, &len) != MER_OK) {
            mer_clear_error(); /* no recipe for this modality: the run records none */
            all = 0;
            break;
        }
        struct cJSON *r = cJSON_Parse(text);
        free(text);
        if (!r || !cJSON_IsObject(r)) {
            cJSON_Delete(r);
            s = mer__err(MER_ERR_FORMAT, "%s: not a JSON object", path);
            break;
        }
        if (root) cJSON_AddItemToObject(root, mods[m].name, r);
        else cJSON_Delete(r);
    }
    if (s != MER_OK || !all) {
        mer__json_discard(&w);
        return s;
    }
    s = mer__json_take(&w, 0, json);
    if (s == MER_OK) (*json)[strcspn(*json, "\n")] = '\0';
    return s;
}

/* ---- media to features ------------------------------------------------------------------------ */

static int is_recipe(const cJSON *o) {
    return cJSON_IsObject(o) && (cJSON_GetObjectItem(o, "extractor") || cJSON_GetObjectItem(o, "speech") ||
                                 cJSON_GetObjectItem(o, "visual") || cJSON_GetObjectItem(o, "text"));
}

/* The feature of modality `name` for one media file, by the run's recipe root: the modality's
 * own entry when the recipe is keyed by modality, else the whole recipe. */
static mer_status extract_modality(const cJSON *root, const char *name, const char *media, float **data,
                                   int32_t *ndim, int64_t shape[MER_MAX_DIMS]) {
    const cJSON *sub = cJSON_GetObjectItem(root, name);
    if (!is_recipe(sub)) sub = root;
    if (!is_recipe(sub))
        return mer__err(MER_ERR_FORMAT, "the run's recipe has no extraction for modality '%s'", name);
    char *text = cJSON_PrintUnformatted(sub);
    if (!text) return mer__err(MER_ERR_NOMEM, "recipe: out of memory");
    mer_status s;
    if (cJSON_GetObjectItem(sub, "speech"))
        s = mer_speech_recipe_extract(text, media, data, ndim, shape);
    else if (cJSON_GetObjectItem(sub, "visual"))
        s = mer_clip_recipe_extract(text, media, data, ndim, shape);
    else if (cJSON_GetObjectItem(sub, "text"))
        s = mer__err(MER_ERR_UNSUPPORTED, "modality '%s' was made from transcripts (a text recipe), "
                     "not from media; give its features instead", name);
    else
        s = mer_acoustic_extract(text, media, name, data, ndim, shape);
    cJSON_free(text);
    return s;
}

/* The clip name of a media file: its file name without directory and extension. */
static void clip_name(char *name, size_t cap, const char *input) {
    const char *base = strrchr(input, '/');
    snprintf(name, cap, "%s", base ? base + 1 : input);
    char *dot = strrchr(name, '.');
    if (dot && dot != name) *dot = '\0';
}

mer_status mer_media_dataset(const mer_run *run, const char *const *inputs, int32_t n, mer_dataset **out) {
    if (!run || !inputs || n < 1 || !out) return mer__err(MER_ERR_INVALID_ARG, "mer_media_dataset: bad arguments");
    *out = NULL;
    mer_speech_adapter *adapter = NULL; /* a `mer finetune speech` run: its encoder's input */
    if (!mer_run_recipe(run) && mer_run_encoder(run)) {
        mer_status as = mer_speech_adapter_open(&adapter, mer_run_dir(run), NULL, -1);
        if (as != MER_OK) return as;
    } else if (!mer_run_recipe(run)) {
        return mer__err(MER_ERR_NOT_FOUND, "%s: the run has no feature recipe (its feature directories had "
                        "no recipe.json and no --recipe was given), so it cannot take media; give features",
                        mer_run_dir(run));
    }
    /* one row per clip name: two inputs with the same name would give rows no one can tell apart */
    for (int32_t k = 0; k < n; k++) {
        char nk[256];
        clip_name(nk, sizeof nk, inputs[k]);
        for (int32_t q = 0; q < k; q++) {
            char nq[256];
            clip_name(nq, sizeof nq, inputs[q]);
            if (!strcmp(nk, nq)) {
                mer_speech_adapter_free(adapter);
                return mer__err(MER_ERR_INVALID_ARG, "%s and %s have the same clip name '%s'; rename one "
                                "(each clip gets one row named after its file)", inputs[q], inputs[k], nk);
            }
        }
    }
    cJSON *root = adapter ? NULL : cJSON_Parse(mer_run_recipe(run));
    if (!adapter && !root) return mer__err(MER_ERR_FORMAT, "%s: the run's recipe is not JSON", mer_run_dir(run));
    const char *cls[MER_MAX_CLASSES], *mnames[MER_MAX_MODALITIES];
    const int32_t C = mer_run_n_classes(run), M = mer_run_n_modalities(run);
    for (int32_t c = 0; c < C; c++) cls[c] = mer_run_class(run, c);
    for (int32_t m = 0; m < M; m++) mnames[m] = mer_run_modality(run, m);
    mer_dataset *ds = NULL;
    mer_status s = mer_dataset_init(&ds, cls, C, mnames, M);
    for (int32_t k = 0; s == MER_OK && k < n; k++) {
        mer_tensor t[MER_MAX_MODALITIES];
        float *data[MER_MAX_MODALITIES] = {0};
        for (int32_t m = 0; s == MER_OK && m < M; m++) {
            int32_t nd = 0;
            int64_t shape[MER_MAX_DIMS];
            s = adapter ? mer_speech_adapter_input(adapter, inputs[k], &data[m], &nd, shape)
                        : extract_modality(root, mnames[m], inputs[k], &data[m], &nd, shape);
            if (s == MER_OK) s = mer_tensor_view(&t[m], data[m], MER_DTYPE_F32, nd, shape);
        }
        char name[256];
        clip_name(name, sizeof name, inputs[k]);
        if (s == MER_OK) s = mer_dataset_add(ds, name, -1, NULL, 0, t);
        for (int32_t m = 0; m < M; m++) free(data[m]);
    }
    cJSON_Delete(root);
    mer_speech_adapter_free(adapter);
    if (s != MER_OK) {
        mer_dataset_free(ds);
        return s;
    }
    *out = ds;
    return MER_OK;
}

mer_status mer_predict_media(mer_run *run, const char *const *inputs, int32_t n, float *probs) {
    if (!probs) return mer__err(MER_ERR_INVALID_ARG, "mer_predict_media: NULL probs");
    mer_dataset *ds = NULL;
    mer_status s = mer_media_dataset(run, inputs, n, &ds);
    if (s == MER_OK) s = mer_run_predict(run, ds, probs);
    mer_dataset_free(ds);
    return s;
}
