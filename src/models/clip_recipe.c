/*
 * clip_recipe.c -- how CLIP visual features were made, as JSON, and the same extraction applied
 * to a new image or video: `mer extract visual` writes the recipe beside its features, a run
 * trained on them records it, and `mer predict --input` (mer_predict_media) replays it, as
 * speech_recipe.c does for the speech encoders.
 */
#include "internal.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>

static const char *const output_names[3] = {"embeds", "cls", "hidden"};
static const char *const precision_names[3] = {"f32", "bf16", "int8"};

mer_status mer_clip_recipe_to_json(const char *model_dir, const mer_clip_extract_params *p, mer_precision precision,
                                   int faces, const char *face_models, char **json) {
    if (!model_dir || !p || !json) return mer__err(MER_ERR_INVALID_ARG, "mer_clip_recipe_to_json: NULL argument");
    *json = NULL;
    if ((unsigned)p->what > MER_CLIP_HIDDEN || (unsigned)precision > MER_PRECISION_INT8)
        return mer__err(MER_ERR_INVALID_ARG, "mer_clip_recipe_to_json: unknown output or precision");
    char *abs = realpath(model_dir, NULL);
    if (!abs) return mer__err(MER_ERR_IO, "%s: cannot resolve the path", model_dir);
    char *fabs = NULL;
    if (faces && face_models && !(fabs = realpath(face_models, NULL))) {
        free(abs);
        return mer__err(MER_ERR_IO, "%s: cannot resolve the path", face_models);
    }
    mer__json w = {0};
    struct cJSON *v = mer__json_obj(&w, mer__json_root(&w), "visual");
    mer__json_str(&w, v, "model", abs);
    mer__json_str(&w, v, "output", output_names[p->what]);
    mer__json_int(&w, v, "pool_mean", p->pool_mean);
    mer__json_int(&w, v, "frames", p->sampling.count);
    mer__json_num(&w, v, "fps", p->sampling.fps);
    mer__json_int(&w, v, "faces", faces ? 1 : 0);
    if (fabs) mer__json_str(&w, v, "face_models", fabs); /* absent: the default face-api weights */
    mer__json_str(&w, v, "precision", precision_names[precision]);
    free(abs);
    free(fabs);
    return mer__json_take(&w, 1, json);
}

/* index of s in names[0..n), or -1 */
static int name_index(const char *s, const char *const *names, int n) {
    for (int i = 0; i < n; i++)
        if (!strcmp(s, names[i])) return i;
    return -1;
}

mer_status mer_clip_recipe_extract(const char *recipe_json, const char *media_path, float **data, int32_t *ndim,
                                   int64_t shape[MER_MAX_DIMS]) {
    if (!recipe_json || !media_path || !data || !ndim || !shape)
        return mer__err(MER_ERR_INVALID_ARG, "mer_clip_recipe_extract: NULL argument");
    *data = NULL;
    mer_json *j = NULL;
    mer_status s = mer_json_parse(&j, recipe_json, strlen(recipe_json), "recipe");
    if (s) return s;
    mer_clip_extract_params p = mer_clip_default_extract_params();
    const char *model = NULL, *out = NULL, *prec = NULL, *fm_dir = NULL;
    int64_t pm, frames, faces;
    if ((s = mer_json_get_string(j, "visual.model", &model)) ||
        (s = mer_json_string_or(j, "visual.output", "embeds", &out)) ||
        (s = mer_json_int_or(j, "visual.pool_mean", 1, &pm)) ||
        (s = mer_json_int_or(j, "visual.frames", 0, &frames)) ||
        (s = mer_json_double_or(j, "visual.fps", 0.0, &p.sampling.fps)) ||
        (s = mer_json_int_or(j, "visual.faces", 0, &faces)) ||
        (s = mer_json_string_or(j, "visual.face_models", NULL, &fm_dir)) ||
        (s = mer_json_string_or(j, "visual.precision", "f32", &prec))) {
        mer_json_free(j);
        return s;
    }
    const int what = name_index(out, output_names, 3), pi = name_index(prec, precision_names, 3);
    if (what < 0) s = mer__err(MER_ERR_FORMAT, "recipe: visual output '%s' is not embeds, cls or hidden", out);
    else if (pi < 0) s = mer__err(MER_ERR_FORMAT, "recipe: visual precision '%s' is not f32, bf16 or int8", prec);
    else if (frames < 0 || frames > INT32_MAX || !(p.sampling.fps >= 0))
        s = mer__err(MER_ERR_FORMAT, "recipe: visual frames %lld / fps %g out of range", (long long)frames, p.sampling.fps);
    p.what = (mer_clip_output)(what < 0 ? 0 : what);
    p.pool_mean = pm != 0;
    p.sampling.count = (int32_t)(s ? 0 : frames);
    mer_clip_model *m = NULL;
    mer_clip_state *st = NULL;
    mer_faces *fm = NULL;
    mer_faces_state *fst = NULL;
    mer_clip_state_params sp = mer_clip_state_default_params();
    sp.precision = (mer_precision)(pi < 0 ? 0 : pi);
    if (!s) s = mer_clip_model_load(&m, model, NULL);
    mer_faces_model_params fmp = mer_faces_model_default_params();
    fmp.expressions = 0; /* the crops need the detector only */
    if (!s && faces && !(s = mer_faces_load(&fm, fm_dir, &fmp)) && !(s = mer_faces_state_init(&fst, NULL))) {
        p.faces = fm;
        p.faces_state = fst;
    }
    mer_json_free(j); /* model and fm_dir pointed into it: used above only */
    if (!s) s = mer_clip_state_init(&st, m, &sp);
    int64_t sh[4] = {0};
    if (!s) s = mer_clip_extract_file(st, media_path, &p, data, ndim, sh, NULL);
    if (!s)
        for (int32_t i = 0; i < *ndim; i++) shape[i] = sh[i];
    mer_clip_state_free(st);
    mer_clip_model_free(m);
    mer_faces_state_free(fst);
    mer_faces_free(fm);
    return s;
}
