/*
 * speech_recipe.c -- how speech-encoder features were made, as JSON, and the same extraction
 * applied to a new media file: `mer extract audio` writes the recipe beside its features, a run
 * trained on them records it, and `mer predict --input` (mer_predict_media) replays it.
 */
#include "internal.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>

static const char *combine_name(mer_speech_combine c) {
    return c == MER_SPEECH_SUM ? "sum" : c == MER_SPEECH_MEAN ? "mean" : "stack";
}

static const char *precision_name(mer_precision p) {
    return p == MER_PRECISION_BF16 ? "bf16" : p == MER_PRECISION_INT8 ? "int8" : "f32";
}

mer_status mer_speech_recipe_to_json(const char *model_dir, const mer_speech_params *p, char **json) {
    if (!model_dir || !p || !json) return mer__err(MER_ERR_INVALID_ARG, "mer_speech_recipe_to_json: NULL argument");
    *json = NULL;
    char *abs = realpath(model_dir, NULL);
    if (!abs) return mer__err(MER_ERR_IO, "%s: cannot resolve the path", model_dir);
    mer__json w = {0};
    struct cJSON *sp = mer__json_obj(&w, mer__json_root(&w), "speech");
    mer__json_str(&w, sp, "model", abs);
    mer__json_int(&w, sp, "layer_first", p->layer_first);
    mer__json_int(&w, sp, "layer_last", p->layer_last);
    mer__json_str(&w, sp, "combine", combine_name(p->combine));
    mer__json_int(&w, sp, "pool_mean", p->pool_mean);
    mer__json_num(&w, sp, "chunk_seconds", p->chunk_seconds);
    mer__json_int(&w, sp, "normalize", p->normalize);
    mer__json_str(&w, sp, "precision", precision_name(p->precision));
    free(abs);
    return mer__json_take(&w, 1, json);
}

mer_status mer_speech_recipe_extract(const char *recipe_json, const char *media_path, float **data,
                                     int32_t *ndim, int64_t shape[MER_MAX_DIMS]) {
    if (!recipe_json || !media_path || !data || !ndim || !shape)
        return mer__err(MER_ERR_INVALID_ARG, "mer_speech_recipe_extract: NULL argument");
    *data = NULL;
    mer_json *j = NULL;
    mer_status s = mer_json_parse(&j, recipe_json, strlen(recipe_json), "recipe");
    if (s) return s;
    mer_speech_params p = mer_speech_default_params();
    const char *model = NULL, *comb = NULL, *prec = NULL;
    int64_t lf, ll, pm, nz;
    if ((s = mer_json_get_string(j, "speech.model", &model)) ||
        (s = mer_json_int_or(j, "speech.layer_first", p.layer_first, &lf)) ||
        (s = mer_json_int_or(j, "speech.layer_last", p.layer_last, &ll)) ||
        (s = mer_json_string_or(j, "speech.combine", "stack", &comb)) ||
        (s = mer_json_int_or(j, "speech.pool_mean", p.pool_mean, &pm)) ||
        (s = mer_json_double_or(j, "speech.chunk_seconds", p.chunk_seconds, &p.chunk_seconds)) ||
        (s = mer_json_int_or(j, "speech.normalize", p.normalize, &nz)) ||
        (s = mer_json_string_or(j, "speech.precision", "f32", &prec))) {
        mer_json_free(j);
        return s;
    }
    p.layer_first = (int32_t)lf;
    p.layer_last = (int32_t)ll;
    p.pool_mean = (int32_t)pm;
    p.normalize = (int32_t)nz;
    if (!strcmp(comb, "sum")) p.combine = MER_SPEECH_SUM;
    else if (!strcmp(comb, "mean")) p.combine = MER_SPEECH_MEAN;
    else if (!strcmp(comb, "stack")) p.combine = MER_SPEECH_STACK;
    else s = mer__err(MER_ERR_FORMAT, "recipe: speech combine '%s' is not stack, sum or mean", comb);
    if (!strcmp(prec, "bf16")) p.precision = MER_PRECISION_BF16;
    else if (!strcmp(prec, "int8")) p.precision = MER_PRECISION_INT8;
    else if (!strcmp(prec, "f32")) p.precision = MER_PRECISION_F32;
    else if (!s) s = mer__err(MER_ERR_FORMAT, "recipe: speech precision '%s' is not f32, bf16 or int8", prec);
    mer_speech_model *m = NULL;
    mer_speech_state *st = NULL;
    float *x = NULL;
    int64_t n = 0, sh[3] = {0};
    if (!s) s = mer_speech_model_load(&m, model, NULL);
    mer_json_free(j); /* model pointed into it: used above only */
    if (!s) s = mer_speech_state_init(&st, m, NULL);
    if (!s) {
        mer_speech_info info;
        mer_speech_model_info(m, &info);
        s = mer_media_decode_audio(media_path, info.sample_rate, &x, &n);
    }
    if (!s) {
        s = mer_speech_extract(st, x, n, &p, data, ndim, sh);
        if (s) mer__err_prefix("%s", media_path);
    }
    if (!s)
        for (int32_t i = 0; i < *ndim; i++) shape[i] = sh[i];
    free(x);
    mer_speech_state_free(st);
    mer_speech_model_free(m);
    return s;
}
