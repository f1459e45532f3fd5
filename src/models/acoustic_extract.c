/*
 * acoustic_extract.c -- the extraction recipe of the acoustic features (what `mer extract
 * acoustic` did, recorded in a trained run so `mer predict` can extract from raw media on its
 * own) and the one-call file extractor: decode with FFmpeg at params.sample_rate, then frames
 * or functionals.
 */
#include "acoustic_internal.h"

#include <stdio.h>
#include <math.h>
#include <string.h>

mer_acoustic_recipe mer_acoustic_default_recipe(void) {
    mer_acoustic_recipe r;
    memset(&r, 0, sizeof r);
    r.params = mer_acoustic_default_params();
    snprintf(r.pool, sizeof r.pool, "mean");
    return r;
}

static mer_status check_pool(const char *pool) {
    if (strcmp(pool, "mean") && strcmp(pool, "none"))
        return mer__err(MER_ERR_INVALID_ARG, "acoustic: pool '%s' is not 'mean' or 'none'", pool);
    return MER_OK;
}

mer_status mer_acoustic_recipe_to_json(const mer_acoustic_recipe *r, char **json) {
    if (!r || !json) return mer__err(MER_ERR_INVALID_ARG, "acoustic: NULL argument");
    *json = NULL;
    mer_status s = mer__acoustic_check(&r->params);
    if (s || (s = check_pool(r->pool))) return s;
    const mer_acoustic_params *p = &r->params;
    char buf[1024];
    int k = snprintf(buf, sizeof buf,
                     "{\"extractor\": \"acoustic\", \"pool\": \"%s\", \"dim\": %d, \"params\": {"
                     "\"sample_rate\": %d, \"n_fft\": %d, \"win_length\": %d, \"hop_length\": %d, "
                     "\"n_mels\": %d, \"n_mfcc\": %d, \"f_min\": %.9g, \"f_max\": %.9g, "
                     "\"log_offset\": %.9g, \"delta_win\": %d, \"f0_min\": %.9g, \"f0_max\": %.9g, "
                     "\"voicing_threshold\": %.9g, \"lpc_order\": %d%s}}",
                     r->pool,
                     strcmp(r->pool, "mean") ? mer_acoustic_frame_dim(p) : mer_acoustic_functional_dim(p),
                     p->sample_rate, p->n_fft, p->win_length, p->hop_length, p->n_mels, p->n_mfcc,
                     (double)p->f_min, (double)p->f_max, (double)p->log_offset, p->delta_win,
                     (double)p->f0_min, (double)p->f0_max, (double)p->voicing_threshold, p->lpc_order,
                     /* written only when not the default, so older recipes stay byte-identical */
                     p->functionals == MER_ACOUSTIC_EXTENDED ? ", \"functionals\": 1" : "");
    if (k < 0 || (size_t)k >= sizeof buf) return mer__err(MER_ERR_INTERNAL, "acoustic: recipe too long");
    *json = strdup(buf);
    if (!*json) return mer__err(MER_ERR_NOMEM, "acoustic: out of memory");
    return MER_OK;
}

static void join(char *buf, size_t n, const char *key, const char *leaf) {
    if (key && *key)
        snprintf(buf, n, "%s.%s", key, leaf);
    else
        snprintf(buf, n, "%s", leaf);
}

mer_status mer_acoustic_recipe_from_json(const mer_json *j, const char *key, mer_acoustic_recipe *r) {
    if (!j || !r) return mer__err(MER_ERR_INVALID_ARG, "acoustic: NULL argument");
    *r = mer_acoustic_default_recipe();
    char path[256];
    const char *ex = NULL, *pool = NULL;
    mer_status s;
    join(path, sizeof path, key, "extractor");
    if ((s = mer_json_get_string(j, path, &ex))) return s;
    if (strcmp(ex, "acoustic"))
        return mer__err(MER_ERR_FORMAT, "acoustic: recipe extractor is '%s', expected 'acoustic'", ex);
    join(path, sizeof path, key, "pool");
    if ((s = mer_json_string_or(j, path, "mean", &pool))) return s;
    if ((s = check_pool(pool))) return s;
    snprintf(r->pool, sizeof r->pool, "%s", pool);
    mer_acoustic_params *p = &r->params;
    struct {
        const char *name;
        int32_t *v;
    } ints[] = {{"sample_rate", &p->sample_rate}, {"n_fft", &p->n_fft},
                {"win_length", &p->win_length},   {"hop_length", &p->hop_length},
                {"n_mels", &p->n_mels},           {"n_mfcc", &p->n_mfcc},
                {"delta_win", &p->delta_win},     {"lpc_order", &p->lpc_order},
                {"functionals", &p->functionals}};
    struct {
        const char *name;
        float *v;
    } dbl[] = {{"f_min", &p->f_min},   {"f_max", &p->f_max},   {"log_offset", &p->log_offset},
               {"f0_min", &p->f0_min}, {"f0_max", &p->f0_max}, {"voicing_threshold", &p->voicing_threshold}};
    char sub[200];
    join(sub, sizeof sub, key, "params");
    for (size_t i = 0; i < sizeof ints / sizeof *ints; i++) {
        int64_t v;
        snprintf(path, sizeof path, "%s.%s", sub, ints[i].name);
        if ((s = mer_json_int_or(j, path, *ints[i].v, &v))) return s;
        if (v < -(1 << 30) || v > (1 << 30))
            return mer__err(MER_ERR_FORMAT, "acoustic: recipe %s = %lld out of range", path, (long long)v);
        *ints[i].v = (int32_t)v;
    }
    for (size_t i = 0; i < sizeof dbl / sizeof *dbl; i++) {
        double v;
        snprintf(path, sizeof path, "%s.%s", sub, dbl[i].name);
        if ((s = mer_json_double_or(j, path, *dbl[i].v, &v))) return s;
        *dbl[i].v = (float)v;
    }
    return mer__acoustic_check(p);
}

mer_status mer_acoustic_extract_file(const mer_acoustic_recipe *r, const char *path, float **out,
                                     int32_t *ndim, int64_t shape[2]) {
    return mer_acoustic_extract_file_speed(r, path, 1.0, out, ndim, shape);
}

/* Speed perturbation (Ko et al. 2015, Kaldi's and sox's `speed`): the signal is resampled to
 * sample_rate / speed and then read as if it were at sample_rate, so it plays `speed` times
 * faster with every frequency (pitch, formants) scaled by `speed`. FFmpeg's resampler does the
 * work at decode time. */
mer_status mer_acoustic_extract_file_speed(const mer_acoustic_recipe *r, const char *path,
                                           double speed, float **out, int32_t *ndim,
                                           int64_t shape[2]) {
    if (!r || !path || !out || !ndim || !shape)
        return mer__err(MER_ERR_INVALID_ARG, "acoustic: NULL argument");
    *out = NULL;
    if (!(speed >= 0.5 && speed <= 2.0))
        return mer__err(MER_ERR_INVALID_ARG, "acoustic: speed factor %g outside [0.5, 2]", speed);
    mer_status s = mer__acoustic_check(&r->params);
    if (s || (s = check_pool(r->pool))) return s;
    float *x = NULL;
    int64_t n = 0;
    int32_t rate = speed == 1.0 ? r->params.sample_rate
                                : (int32_t)lround((double)r->params.sample_rate / speed);
    if ((s = mer_media_decode_audio(path, rate, &x, &n))) return s;
    if (n == 0) {
        free(x);
        return mer__err(MER_ERR_MEDIA, "%s: the audio stream has no samples", path);
    }
    float *fr = NULL;
    int64_t T = 0;
    s = mer_acoustic_frames(x, n, &r->params, &fr, &T);
    free(x);
    if (s) {
        mer__err_prefix("%s", path);
        return s;
    }
    if (!strcmp(r->pool, "none")) {
        *out = fr;
        *ndim = 2;
        shape[0] = T;
        shape[1] = mer_acoustic_frame_dim(&r->params);
        return MER_OK;
    }
    int32_t D = mer_acoustic_functional_dim(&r->params);
    float *f = malloc((size_t)D * sizeof(float));
    if (!f) {
        free(fr);
        return mer__err(MER_ERR_NOMEM, "acoustic: out of memory");
    }
    s = mer_acoustic_functionals_from_frames(fr, T, &r->params, f);
    free(fr);
    if (s) {
        free(f);
        return s;
    }
    *out = f;
    *ndim = 1;
    shape[0] = D;
    shape[1] = 0;
    return MER_OK;
}

/* Parse recipe_json (one recipe, or an object keyed by modality) into *r; *key is the prefix of
 * the recipe inside the document ("" or the modality). */
static mer_status recipe_open(const char *recipe_json, const char *modality, mer_json **j,
                              mer_acoustic_recipe *r, const char **key) {
    mer_status s = mer_json_parse(j, recipe_json, strlen(recipe_json), "recipe");
    if (s) return s;
    *key = NULL;
    if (!mer_json_has(*j, "extractor")) {
        if (!modality || !mer_json_has(*j, modality)) {
            mer_json_free(*j);
            *j = NULL;
            return mer__err(MER_ERR_NOT_FOUND, "recipe: no \"extractor\" and no entry for modality '%s'",
                            modality ? modality : "(none)");
        }
        *key = modality;
    }
    if ((s = mer_acoustic_recipe_from_json(*j, *key, r))) {
        mer_json_free(*j);
        *j = NULL;
    }
    return s;
}

/* Standardise the rows of f (rows, D) with the recipe's "norm" (if any). */
static mer_status apply_norm(const mer_json *j, const char *key, float *f, int64_t rows, int64_t D) {
    char pm[256], ps[256];
    snprintf(pm, sizeof pm, "%s%snorm.mean", key ? key : "", key ? "." : "");
    snprintf(ps, sizeof ps, "%s%snorm.std", key ? key : "", key ? "." : "");
    if (!mer_json_has(j, pm)) return MER_OK;
    mer_status s = MER_OK;
    double *mu = malloc((size_t)D * sizeof(double)), *sd = malloc((size_t)D * sizeof(double));
    int32_t n1 = 0, n2 = 0;
    if (!mu || !sd) s = mer__err(MER_ERR_NOMEM, "acoustic: out of memory");
    if (!s) s = mer_json_get_double_array(j, pm, mu, (int32_t)D, &n1);
    if (!s) s = mer_json_get_double_array(j, ps, sd, (int32_t)D, &n2);
    if (!s && (n1 != D || n2 != D))
        s = mer__err(MER_ERR_SHAPE, "recipe: norm has %d/%d values, features have %lld", n1, n2,
                     (long long)D);
    for (int64_t i = 0; !s && i < rows; i++)
        for (int64_t d = 0; d < D; d++)
            f[i * D + d] = (float)((f[i * D + d] - mu[d]) / (sd[d] > 0 ? sd[d] : 1.0));
    free(mu);
    free(sd);
    return s;
}

mer_status mer_acoustic_extract_samples(const char *recipe_json, const float *x, int64_t n,
                                        const char *modality, float **data, int32_t *ndim,
                                        int64_t shape[MER_MAX_DIMS]) {
    if (!recipe_json || !x || !data || !ndim || !shape)
        return mer__err(MER_ERR_INVALID_ARG, "acoustic: NULL argument");
    *data = NULL;
    mer_json *j = NULL;
    mer_acoustic_recipe r;
    const char *key;
    mer_status s = recipe_open(recipe_json, modality, &j, &r, &key);
    if (s) return s;
    float *fr = NULL, *f = NULL;
    int64_t T = 0, D;
    if ((s = mer_acoustic_frames(x, n, &r.params, &fr, &T))) goto done;
    if (!strcmp(r.pool, "none")) {
        f = fr;
        fr = NULL;
        D = mer_acoustic_frame_dim(&r.params);
        *ndim = 2;
        shape[0] = T;
        shape[1] = D;
    } else {
        D = mer_acoustic_functional_dim(&r.params);
        f = malloc((size_t)D * sizeof(float));
        if (!f) {
            s = mer__err(MER_ERR_NOMEM, "acoustic: out of memory");
            goto done;
        }
        if ((s = mer_acoustic_functionals_from_frames(fr, T, &r.params, f))) goto done;
        *ndim = 1;
        shape[0] = D;
    }
    s = apply_norm(j, key, f, *ndim == 1 ? 1 : T, D);
done:
    mer_json_free(j);
    free(fr);
    if (s)
        free(f);
    else
        *data = f;
    return s;
}

/* The hook `mer predict --input` calls (declared in mer.h, "feature extraction for raw media").
 * recipe_json is either one acoustic recipe object or an object keyed by modality name whose
 * values are recipes. An optional "norm": {"mean": [D], "std": [D]} in the recipe standardises
 * each feature column the way the run's training features were (mer demo records the training
 * set's statistics there). */
mer_status mer_acoustic_extract(const char *recipe_json, const char *media_path,
                                const char *modality, float **data, int32_t *ndim,
                                int64_t shape[MER_MAX_DIMS]) {
    if (!recipe_json || !media_path || !data || !ndim || !shape)
        return mer__err(MER_ERR_INVALID_ARG, "acoustic: NULL argument");
    *data = NULL;
    mer_json *j = NULL;
    mer_acoustic_recipe r;
    const char *key;
    mer_status s = recipe_open(recipe_json, modality, &j, &r, &key);
    if (s) return s;
    mer_json_free(j);
    float *x = NULL;
    int64_t n = 0;
    if ((s = mer_media_decode_audio(media_path, r.params.sample_rate, &x, &n))) return s;
    if (n == 0) {
        free(x);
        return mer__err(MER_ERR_MEDIA, "%s: the audio stream has no samples", media_path);
    }
    float peak;
    if (mer_audio_is_silent(x, n, &peak)) { /* the descriptors of silence would still get a class */
        free(x);
        return mer__err(MER_ERR_INVALID_ARG, "%s: digital silence (%.2f s, peak %.3g): no speech to predict from",
                        media_path, (double)n / r.params.sample_rate, (double)peak);
    }
    s = mer_acoustic_extract_samples(recipe_json, x, n, modality, data, ndim, shape);
    free(x);
    if (s) mer__err_prefix("%s", media_path);
    return s;
}

mer_status mer_acoustic_recipe_sample_rate(const char *recipe_json, const char *modality,
                                           int32_t *sample_rate) {
    if (!recipe_json || !sample_rate) return mer__err(MER_ERR_INVALID_ARG, "acoustic: NULL argument");
    mer_json *j = NULL;
    mer_acoustic_recipe r;
    const char *key;
    mer_status s = recipe_open(recipe_json, modality, &j, &r, &key);
    if (s) return s;
    mer_json_free(j);
    *sample_rate = r.params.sample_rate;
    return MER_OK;
}
