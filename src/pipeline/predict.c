/*
 * predict.c -- predict from media for any run: each modality's recorded recipe (acoustic
 * descriptors, a speech encoder's hidden states, CLIP image features) is replayed on the media
 * file, and the run
 * predicts. The recipe a run records is collected from the feature directories it was trained
 * on (each extractor writes recipe.json beside its features).
 */
#include "internal.h"

#include <cjson/cJSON.h>
#include <regex.h>
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

/* mer_media_dataset with mer_predict's callbacks: progress after each file, abort before each. */
static mer_status media_dataset(const mer_run *run, const char *const *inputs, int32_t n, const mer_predict_params *cb,
                                mer_dataset **out) {
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
        if (cb && (s = mer__abort_check(cb->abort, cb->abort_user_data, inputs[k]))) break;
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
        if (s == MER_OK && cb && cb->progress) cb->progress(k + 1, n, cb->progress_user_data);
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

mer_status mer_media_dataset(const mer_run *run, const char *const *inputs, int32_t n, mer_dataset **out) {
    return media_dataset(run, inputs, n, NULL, out);
}

mer_status mer_predict_media(mer_run *run, const char *const *inputs, int32_t n, float *probs) {
    if (!probs) return mer__err(MER_ERR_INVALID_ARG, "mer_predict_media: NULL probs");
    mer_dataset *ds = NULL;
    mer_status s = mer_media_dataset(run, inputs, n, &ds);
    if (s == MER_OK) s = mer_run_predict(run, ds, probs);
    mer_dataset_free(ds);
    return s;
}

/* ---- `mer predict`: a run's predictions for features or media, written as a CSV ------------- */

mer_predict_params mer_predict_default_params(void) {
    mer_predict_params p;
    memset(&p, 0, sizeof p);
    p.group_col = "speaker";
    p.adapt_min = 5;
    return p;
}

/* One group name per clip of ds for MER_PREDICT_ADAPT_GROUP (owned strings in g[0..n)). */
static mer_status adapt_groups(const mer_dataset *ds, const mer_predict_params *p, char **g) {
    const int64_t n = mer_dataset_count(ds);
    if (p->group_regex) {
        regex_t re;
        int e = regcomp(&re, p->group_regex, REG_EXTENDED);
        if (e) {
            char msg[256];
            regerror(e, &re, msg, sizeof msg);
            return mer__err(MER_ERR_INVALID_ARG, "--group-regex '%s': %s", p->group_regex, msg);
        }
        mer_status s = MER_OK;
        for (int64_t i = 0; i < n && !s; i++) {
            regmatch_t mt[2];
            const char *name = mer_dataset_name(ds, i);
            if (regexec(&re, name, 2, mt, 0)) {
                s = mer__err(MER_ERR_NOT_FOUND, "--group-regex '%s' does not match clip '%s'", p->group_regex, name);
                break;
            }
            const int k = re.re_nsub >= 1 && mt[1].rm_so >= 0 ? 1 : 0;
            g[i] = strndup(name + mt[k].rm_so, (size_t)(mt[k].rm_eo - mt[k].rm_so));
            if (!g[i]) s = mer__err(MER_ERR_NOMEM, "out of memory");
        }
        regfree(&re);
        return s;
    }
    mer_csv *csv = NULL;
    int32_t cn = 0, cg = 0;
    mer_status s = mer_csv_load(&csv, p->groups_csv);
    if (!s) s = mer_csv_col(csv, "name", &cn);
    if (!s) s = mer_csv_col(csv, p->group_col, &cg);
    for (int64_t i = 0; i < n && !s; i++) {
        const char *name = mer_dataset_name(ds, i);
        for (int64_t r = 0; r < mer_csv_rows(csv); r++)
            if (!strcmp(mer_csv_cell(csv, r, cn), name)) {
                g[i] = strdup(mer_csv_cell(csv, r, cg));
                if (!g[i]) s = mer__err(MER_ERR_NOMEM, "out of memory");
                break;
            }
        if (!s && !g[i]) s = mer__err(MER_ERR_NOT_FOUND, "%s: no row for clip '%s'", p->groups_csv, name);
    }
    mer_csv_free(csv);
    return s;
}

/* The run's recipe says it was trained on per-group (speaker) standardised features. */
static int recipe_adapts_groups(const mer_run *run) {
    const char *rec = mer_run_recipe(run), *adapt = NULL;
    mer_json *j = NULL;
    int yes = rec && mer_json_parse(&j, rec, strlen(rec), "recipe") == MER_OK &&
              mer_json_string_or(j, "adapt", "", &adapt) == MER_OK && !strcmp(adapt, "group");
    mer_json_free(j);
    mer_clear_error();
    return yes;
}

/* --out may not replace anything predict reads, nor the labels the run was trained on. */
static mer_status predict_output_check(const mer_predict_params *p, const mer_run *run) {
    char cfg[MER_PATH_CAP], rec[MER_PATH_CAP];
    snprintf(cfg, sizeof cfg, "%s/config.json", p->run);
    snprintf(rec, sizeof rec, "%s/recipe.json", p->run);
    const char *extra[] = {p->list, cfg, rec, mer_run_labels(run)};
    mer_status s = mer_output_check(p->out, extra, 4);
    if (s == MER_OK && p->n_media) s = mer_output_check(p->out, p->media, p->n_media);
    return s;
}

mer_status mer_predict(const mer_predict_params *p, mer_predict_result *res) {
    if (res) memset(res, 0, sizeof *res);
    if (!p || !res || !p->run || !p->out || (!p->n_features == !p->n_media) || (p->n_media && !p->media) ||
        (p->n_features && !p->features) || p->adapt < MER_PREDICT_ADAPT_NONE || p->adapt > MER_PREDICT_ADAPT_GROUP ||
        (p->adapt == MER_PREDICT_ADAPT_GROUP && !p->group_regex == !p->groups_csv))
        return mer__err(MER_ERR_INVALID_ARG, "mer_predict: bad params (a run, an output, features or media, "
                        "and for group adaptation a regex or a groups CSV)");
    mer_run *run = NULL;
    mer_dataset *ds = NULL;
    char **names = NULL, **groups = NULL;
    float *probs = NULL;
    int64_t n = 0;
    const int old = mer__threads_use(p->n_threads);
    mer_status s = mer_run_open(&run, p->run);
    if (s || (s = predict_output_check(p, run))) goto done;
    const char *cls[MER_MAX_CLASSES];
    const int32_t C = mer_run_n_classes(run);
    for (int32_t k = 0; k < C; k++) cls[k] = mer_run_class(run, k);
    if (p->n_media) {
        if ((s = media_dataset(run, p->media, p->n_media, p, &ds))) goto done;
    } else {
        int64_t n_names = 0;
        s = p->list ? mer_read_name_list(p->list, &names, &n_names)
                    : mer_list_feature_names(p->features[0].dir, &names, &n_names);
        if (s) goto done;
        mer_dataset_params dp = mer_dataset_default_params();
        dp.classes = cls;
        dp.n_classes = C;
        dp.names = (const char *const *)names;
        dp.n_names = n_names;
        dp.modalities = p->features;
        dp.n_modalities = p->n_features;
        if ((s = mer_dataset_load(&ds, &dp))) goto done;
    }
    n = mer_dataset_count(ds);
    /* nor any feature file read (checked by name) */
    for (int64_t i = 0; !p->n_media && i < n; i++)
        for (int32_t m = 0; m < p->n_features; m++) {
            char fp[MER_PATH_CAP];
            const char *one[1] = {fp};
            if (mer_name_path(fp, sizeof fp, p->features[m].dir, mer_dataset_name(ds, i), ".npy", NULL, 0) == MER_OK &&
                (s = mer_output_check(p->out, one, 1)))
                goto done;
        }
    mer_clear_error();
    if (p->adapt != MER_PREDICT_ADAPT_NONE) {
        if (!(groups = calloc((size_t)(n > 0 ? n : 1), sizeof *groups))) {
            s = mer__err(MER_ERR_NOMEM, "out of memory");
            goto done;
        }
        for (int64_t i = 0; p->adapt == MER_PREDICT_ADAPT_ALL && i < n && !s; i++)
            if (!(groups[i] = strdup("all"))) s = mer__err(MER_ERR_NOMEM, "out of memory");
        if (!s && p->adapt == MER_PREDICT_ADAPT_GROUP) s = adapt_groups(ds, p, groups);
        if (!s) s = mer_dataset_adapt(ds, (const char *const *)groups, p->adapt_min, &res->n_unadapted);
        if (s) goto done;
    } else {
        res->trained_on_groups = recipe_adapts_groups(run);
    }
    if ((s = mer__abort_check(p->abort, p->abort_user_data, p->run))) goto done;
    if (!(probs = malloc((size_t)(n ? n * C : 1) * sizeof *probs))) {
        s = mer__err(MER_ERR_NOMEM, "out of memory");
        goto done;
    }
    if ((s = mer_run_predict(run, ds, probs)) ||
        (s = mer_prior_apply_run(probs, p->run, cls, C, n, p->prior, p->prior_csv, &res->prior)) ||
        (s = mer_write_predictions(p->out, ds, probs, cls, C, p->mer2024)))
        goto done;
    res->n = n;
    res->n_classes = C;
    for (int32_t k = 0; k < C; k++) snprintf(res->classes[k], sizeof res->classes[k], "%s", cls[k]);
done:
    mer__threads_use(old);
    for (int64_t k = 0; groups && k < n; k++) free(groups[k]);
    free(groups);
    free(names);
    free(probs);
    mer_dataset_free(ds);
    mer_run_free(run);
    if (s) memset(res, 0, sizeof *res);
    return s;
}
