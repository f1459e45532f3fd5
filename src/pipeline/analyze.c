/*
 * analyze.c -- mer_analyze: the emotion of one clip from its speech (a trained run with a
 * feature recipe), its faces (face-api expressions on sampled frames) and an optional
 * transcript (the lexicon baseline), each mapped onto MER2024's six labels and fused late,
 * with an optional per-second timeline; and the result as the JSON of `mer analyze --json`.
 * Mapping, fusion and timeline arithmetic live in src/models/fusion_late.c, the lexicon in
 * src/models/text_lexicon.c; this file runs the models and collects the results.
 */
#include "internal.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <cJSON.h>

#define K MER_SHARED_CLASSES
enum { M_AUDIO = MER_ANALYZE_AUDIO, M_FACE = MER_ANALYZE_FACE, M_TEXT = MER_ANALYZE_TEXT, N_MOD = MER_ANALYZE_MODALITIES };
static const char *const mod_names[N_MOD] = {"audio", "face", "text"};

/* The default speech model: the committed bundled run (found through mer_data_path, not the
 * working directory), else what `mer demo` leaves in the working directory. */
static const char *const default_audio_models[] = {"models/emodb-acoustic", "out/demo/model"};

#define AUDIO_WINDOW 2.0 /* seconds of audio per timeline row (utterance-level model) */

mer_analyze_params mer_analyze_default_params(void) {
    mer_analyze_params p;
    memset(&p, 0, sizeof p);
    p.weights[M_AUDIO] = 1.0;
    p.weights[M_FACE] = 1.0;
    p.weights[M_TEXT] = 0.5;
    p.fps = 2.0;
    p.max_frames = 300;
    p.adapt = MER_ANALYZE_ADAPT_AUTO;
    p.adapt_min = 5;
    return p;
}

void mer_analysis_free(mer_analysis *a) {
    if (!a) return;
    free(a->path);
    free(a->audio_model);
    free(a->text_model);
    free(a->rows);
    free(a);
}

/* ---- speech ------------------------------------------------------------------------------ */

/* The run's class probabilities (n_seg, C) of the sample ranges seg[2i], seg[2i + 1] of x (n
 * samples at the recipe's rate). Features come from the run's recorded recipe (with its
 * standardisation), as `mer predict --input` extracts them. With ref (adaptation over the
 * clip's own speech), the segments with ref[i] != 0 give the statistics that standardise all
 * of them (mer_dataset_adapt_ref), as `mer predict --adapt all` does for a speaker's clips. */
static mer_status audio_predict(mer_run *run, const float *x, const int64_t *seg, int32_t n_seg,
                                const uint8_t *ref, int32_t adapt_min, float *probs) {
    const char *cls[MER_MAX_CLASSES];
    int32_t C = mer_run_n_classes(run);
    for (int32_t c = 0; c < C; c++) cls[c] = mer_run_class(run, c);
    const char *mname = mer_run_modality(run, 0);
    mer_dataset *ds = NULL;
    const char **groups = NULL;
    mer_status s = mer_dataset_init(&ds, cls, C, &mname, 1);
    for (int32_t w = 0; s == MER_OK && w < n_seg; w++) {
        float *f = NULL;
        int32_t nd = 0;
        int64_t shape[MER_MAX_DIMS];
        mer_tensor t;
        char name[32];
        snprintf(name, sizeof name, "s%d", (int)w);
        s = mer_acoustic_extract_samples(mer_run_recipe(run), x + seg[2 * w], seg[2 * w + 1] - seg[2 * w],
                                         mname, &f, &nd, shape);
        if (s == MER_OK) s = mer_tensor_view(&t, f, MER_DTYPE_F32, nd, shape);
        if (s == MER_OK) s = mer_dataset_add(ds, name, -1, NULL, 0, &t);
        free(f);
    }
    if (s == MER_OK && ref) {
        groups = malloc((size_t)(n_seg > 0 ? n_seg : 1) * sizeof *groups);
        if (!groups) s = mer__err(MER_ERR_NOMEM, "out of memory");
        for (int32_t w = 0; s == MER_OK && w < n_seg; w++) groups[w] = "clip";
        if (s == MER_OK) s = mer_dataset_adapt_ref(ds, groups, ref, adapt_min, NULL);
    }
    if (s == MER_OK) s = mer_run_predict(run, ds, probs);
    free(groups);
    mer_dataset_free(ds);
    return s;
}

/* Does the run's recipe say its model was trained on speaker-standardised features
 * ("adapt": "group", as `mer demo`'s model)? */
static int run_wants_adapt(mer_run *run) {
    const char *r = mer_run_recipe(run);
    cJSON *j = r ? cJSON_Parse(r) : NULL;
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(j, "adapt");
    int yes = cJSON_IsString(a) && !strcmp(a->valuestring, "group");
    cJSON_Delete(j);
    return yes;
}

/* The clip cut into back-to-back tiles of AUDIO_WINDOW seconds (the length the model saw in
 * training); a tile counts as speech when its RMS is at least -60 dBFS and within 40 dB of the
 * loudest tile. Writes the speech tiles' sample ranges to tiles (room for n / len pairs) and
 * returns their number. */
static int32_t speech_tiles(const float *x, int64_t n, int32_t sr, int64_t *tiles) {
    const int64_t len = (int64_t)llround(AUDIO_WINDOW * sr);
    const int64_t nt = len > 0 ? n / len : 0;
    double loudest = 0;
    double *rms = malloc((size_t)(nt > 0 ? nt : 1) * sizeof *rms);
    if (!rms) return -1;
    for (int64_t t = 0; t < nt; t++) {
        double e = 0;
        for (int64_t i = t * len; i < (t + 1) * len; i++) e += (double)x[i] * x[i];
        rms[t] = sqrt(e / (double)len);
        if (rms[t] > loudest) loudest = rms[t];
    }
    int32_t k = 0;
    for (int64_t t = 0; t < nt; t++)
        if (rms[t] >= 1e-3 && rms[t] >= 0.01 * loudest) {
            tiles[2 * k] = t * len;
            tiles[2 * k + 1] = (t + 1) * len;
            k++;
        }
    free(rms);
    return k;
}

static int is_dir_with(const char *dir, const char *file) {
    char p[4096];
    struct stat st;
    snprintf(p, sizeof p, "%s/%s", dir, file);
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* The run's class names into cls (C of them); each must be one the label mapping knows. */
static mer_status run_classes(mer_run *run, const char *model_dir, const char **cls) {
    for (int32_t c = 0; c < mer_run_n_classes(run); c++) {
        float row_[K];
        cls[c] = mer_run_class(run, c);
        mer_status s = mer_label_map_row(cls[c], row_);
        if (s) {
            mer__err_prefix("%s", model_dir);
            return s;
        }
    }
    return MER_OK;
}

/* Speech: decode at the recipe's rate, predict the clip (and the timeline windows), map. */
static mer_status run_audio(mer_analysis *A, const char *model_dir, const mer_analyze_params *p) {
    mer_analysis_modality *m = &A->mod[M_AUDIO];
    mer_run *run = NULL;
    int32_t sr = 0;
    float *x = NULL, *probs = NULL;
    int64_t *seg = NULL;
    uint8_t *ref = NULL;
    int64_t n = 0;
    const char *cls[MER_MAX_CLASSES];
    mer_status s = mer_run_open(&run, model_dir);
    if (s) goto done; /* the message names the directory */
    if (mer_run_n_modalities(run) != 1) {
        s = mer__err(MER_ERR_INVALID_ARG, "%s: a speech model has one modality, this run has %d", model_dir,
                     mer_run_n_modalities(run));
        goto done;
    }
    if (!mer_run_recipe(run)) {
        s = mer__err(MER_ERR_INVALID_ARG,
                     "%s: the run records no feature recipe, so it cannot read raw audio "
                     "(train it on `mer extract acoustic` features with a recipe, as `mer demo` does)",
                     model_dir);
        goto done;
    }
    if ((s = mer_acoustic_recipe_sample_rate(mer_run_recipe(run), mer_run_modality(run, 0), &sr))) {
        mer__err_prefix("%s", model_dir);
        goto done;
    }
    int32_t C = mer_run_n_classes(run);
    if ((s = run_classes(run, model_dir, cls))) goto done;
    if ((s = mer_media_decode_audio(A->path, sr, &x, &n))) goto done;
    if (n == 0) {
        snprintf(m->note, sizeof m->note, "the audio stream has no samples");
        goto done;
    }
    float peak;
    if (mer_audio_is_silent(x, n, &peak)) { /* the model would still name a class for silence */
        snprintf(m->note, sizeof m->note, "no speech: digital silence (%.2f s, peak %.3g)", (double)n / sr,
                 (double)peak);
        goto done;
    }
    int32_t n_win = A->rows ? A->n_rows : 0;
    const int64_t max_tiles = n / (int64_t)llround(AUDIO_WINDOW * sr) + 1;
    /* segments: [the speech tiles (adaptation)], the whole clip or nothing, the timeline windows */
    seg = malloc((size_t)(2 * (max_tiles + 1 + n_win)) * sizeof *seg);
    ref = calloc((size_t)(max_tiles + 1 + n_win), 1);
    probs = malloc((size_t)(max_tiles + 1 + n_win) * (size_t)C * sizeof *probs);
    if (!seg || !ref || !probs) {
        s = mer__err(MER_ERR_NOMEM, "%s: out of memory", A->path);
        goto done;
    }
    int32_t n_tiles = 0, n_seg = 0;
    if (p->adapt != MER_ANALYZE_ADAPT_NONE && run_wants_adapt(run)) {
        n_tiles = speech_tiles(x, n, sr, seg);
        if (n_tiles < 0) {
            s = mer__err(MER_ERR_NOMEM, "%s: out of memory", A->path);
            goto done;
        }
        if (n_tiles < p->adapt_min) n_tiles = 0; /* too little speech for its own statistics */
    }
    for (int32_t t = 0; t < n_tiles; t++) ref[t] = 1;
    n_seg = n_tiles;
    if (!n_tiles) { /* the whole clip, standardised with the run's training statistics */
        seg[2 * n_seg] = 0;
        seg[2 * n_seg + 1] = n;
        n_seg++;
    }
    const int32_t first_win = n_seg;
    for (int32_t r = 0; r < n_win; r++) {
        double a0, a1;
        mer_timeline_window(r, AUDIO_WINDOW, A->duration, &a0, &a1);
        A->rows[r].a0 = a0;
        A->rows[r].a1 = a1;
        int64_t b = (int64_t)llround(a0 * sr), e = (int64_t)llround(a1 * sr);
        if (b > n) b = n;
        if (e > n) e = n;
        if (e <= b) { /* a window past the decoded audio: its last sample */
            b = n > 0 ? n - 1 : 0;
            e = n;
        }
        seg[2 * n_seg] = b;
        seg[2 * n_seg + 1] = e;
        n_seg++;
    }
    if ((s = audio_predict(run, x, seg, n_seg, n_tiles ? ref : NULL, n_tiles ? n_tiles : 2, probs))) {
        mer__err_prefix("%s", A->path);
        goto done;
    }
    float clip[MER_MAX_CLASSES];
    for (int32_t c = 0; c < C; c++) { /* adapted: the mean over the speech tiles */
        double acc = 0;
        for (int32_t t = 0; t < (n_tiles ? n_tiles : 1); t++) acc += probs[(size_t)t * C + c];
        clip[c] = (float)(acc / (n_tiles ? n_tiles : 1));
    }
    A->audio_adapt_tiles = n_tiles;
    m->n_native = C;
    for (int32_t c = 0; c < C; c++) {
        snprintf(m->native_names[c], MER_NAME_MAX, "%s", cls[c]);
        m->native[c] = clip[c];
    }
    if ((s = mer_label_map_probs(cls, C, clip, m->probs))) {
        mer__err_prefix("%s", model_dir);
        goto done;
    }
    for (int32_t r = 0; r < n_win; r++) {
        if ((s = mer_label_map_probs(cls, C, probs + (size_t)(first_win + r) * C, A->rows[r].audio))) {
            mer__err_prefix("%s", model_dir);
            goto done;
        }
        /* a silent stretch of a clip with speech says nothing either */
        const int64_t *sw = seg + 2 * (first_win + r);
        A->rows[r].has_audio = !mer_audio_is_silent(x + sw[0], sw[1] - sw[0], NULL);
    }
    m->present = 1;
    if (n_tiles)
        snprintf(m->note, sizeof m->note, "%.2f s of speech, adapted to the speaker over %d windows of %.0f s",
                 (double)n / sr, (int)n_tiles, AUDIO_WINDOW);
    else
        snprintf(m->note, sizeof m->note, "%.2f s of speech", (double)n / sr);
done:
    free(x);
    free(seg);
    free(ref);
    free(probs);
    mer_run_free(run);
    return s;
}

/* ---- text -------------------------------------------------------------------------------- */

/* A trained text run: the transcript's feature from the run's recipe (its text encoder and
 * tokenizer, mer_text_recipe_extract), the run's fold models, the classes mapped to six. */
static mer_status run_text_model(mer_analysis *A, const char *model_dir, const char *text) {
    mer_analysis_modality *m = &A->mod[M_TEXT];
    mer_run *run = NULL;
    mer_dataset *ds = NULL;
    float *f = NULL, probs[MER_MAX_CLASSES];
    const char *cls[MER_MAX_CLASSES];
    mer_status s = mer_run_open(&run, model_dir);
    if (s) goto done; /* the message names the directory */
    const char *recipe = mer_run_recipe(run);
    mer_json *rj = NULL;
    int is_text = recipe && mer_json_parse(&rj, recipe, strlen(recipe), "recipe") == MER_OK && mer_json_has(rj, "text");
    mer_json_free(rj);
    mer_clear_error();
    if (mer_run_n_modalities(run) != 1 || !is_text) {
        s = mer__err(MER_ERR_INVALID_ARG,
                     "%s: not a text run (one modality trained on `mer extract text` features, with their "
                     "recipe.json given to `mer train --recipe`)",
                     model_dir);
        goto done;
    }
    int32_t C = mer_run_n_classes(run);
    if ((s = run_classes(run, model_dir, cls))) goto done;
    int32_t nd = 0;
    int64_t shape[3];
    mer_tensor t;
    const char *mname = mer_run_modality(run, 0);
    if ((s = mer_text_recipe_extract(recipe, text, &f, &nd, shape)) || (s = mer_tensor_view(&t, f, MER_DTYPE_F32, nd, shape)) ||
        (s = mer_dataset_init(&ds, cls, C, &mname, 1)) || (s = mer_dataset_add(ds, "text", -1, NULL, 0, &t)) ||
        (s = mer_run_predict(run, ds, probs))) {
        mer__err_prefix("%s: --text", model_dir);
        goto done;
    }
    m->n_native = C;
    for (int32_t c = 0; c < C; c++) {
        snprintf(m->native_names[c], MER_NAME_MAX, "%s", cls[c]);
        m->native[c] = probs[c];
    }
    if ((s = mer_label_map_probs(cls, C, probs, m->probs))) {
        mer__err_prefix("%s", model_dir);
        goto done;
    }
    m->present = 1;
    snprintf(m->note, sizeof m->note, "trained text run");
done:
    free(f);
    mer_dataset_free(ds);
    mer_run_free(run);
    return s;
}

/* ---- faces ------------------------------------------------------------------------------- */

static mer_status run_faces(mer_analysis *A, const mer_analyze_params *p) {
    mer_analysis_modality *m = &A->mod[M_FACE];
    mer_faces *fm = NULL;
    mer_faces_state *st = NULL;
    mer_image *frames = NULL;
    int32_t nf = 0;
    mer_status s = mer_faces_load(&fm, p->faces_models, NULL);
    if (s) goto done; /* names the directory */
    if ((s = mer_faces_state_init(&st, NULL))) goto done;
    /* frames are held in memory at native size: long videos get a lower rate, not a cut */
    double f = p->fps;
    if (A->duration > 0 && A->duration * f > (double)p->max_frames) f = (double)p->max_frames / A->duration;
    A->fps_used = f;
    mer_frame_sampling smp = {0};
    smp.fps = f;
    smp.max_frames = p->max_frames;
    if ((s = mer_media_decode_video(A->path, &smp, &frames, &nf))) goto done;
    mer_faces_summary all;
    memset(&all, 0, sizeof all);
    for (int32_t i = 0; i < nf; i++) {
        mer_face *faces = NULL;
        int32_t n = 0;
        if ((s = mer_faces_detect(fm, st, &frames[i], NULL, &faces, &n))) {
            mer__err_prefix("%s", A->path);
            goto done;
        }
        mer_faces_summary_add(&all, faces, n);
        if (A->rows) mer_faces_summary_add(&A->rows[mer_timeline_row(frames[i].time, A->n_rows)].faces, faces, n);
        free(faces);
        if (p->progress) p->progress(i + 1, nf, p->progress_user_data);
        if (i + 1 < nf && (s = mer__abort_check(p->abort, p->abort_user_data, A->path))) goto done;
    }
    A->frames = all.frames;
    A->frames_with_face = all.frames_with_face;
    m->n_native = MER_FACE_EXPRESSIONS;
    float mean[MER_FACE_EXPRESSIONS];
    mer_faces_summary_mean(&all, mean);
    const char *cls[MER_FACE_EXPRESSIONS];
    for (int32_t c = 0; c < MER_FACE_EXPRESSIONS; c++) {
        cls[c] = mer_face_expression_name(c);
        snprintf(m->native_names[c], MER_NAME_MAX, "%s", cls[c]);
        m->native[c] = mean[c];
    }
    if (all.frames_with_face == 0) {
        snprintf(m->note, sizeof m->note, "no face found in %lld frame%s", (long long)all.frames,
                 all.frames == 1 ? "" : "s");
        goto done;
    }
    if ((s = mer_label_map_probs(cls, MER_FACE_EXPRESSIONS, mean, m->probs))) goto done;
    m->present = 1;
    snprintf(m->note, sizeof m->note, "face in %lld of %lld frame%s", (long long)all.frames_with_face,
             (long long)all.frames, all.frames == 1 ? "" : "s");
    for (int32_t r = 0; r < A->n_rows && A->rows; r++) {
        mer_analysis_row *w = &A->rows[r];
        if (!w->faces.frames_with_face) continue;
        mer_faces_summary_mean(&w->faces, mean);
        if ((s = mer_label_map_probs(cls, MER_FACE_EXPRESSIONS, mean, w->face))) goto done;
        w->has_face = 1;
    }
done:
    mer_frames_free(frames, nf);
    mer_faces_state_free(st);
    mer_faces_free(fm);
    return s;
}

/* ---- the pipeline ------------------------------------------------------------------------ */

static mer_status check_params(const mer_analyze_params *p) {
    for (int i = 0; i < N_MOD; i++)
        if (!(p->weights[i] >= 0 && p->weights[i] <= 1e6))
            return mer__err(MER_ERR_INVALID_ARG, "analyze: weight of %s is %g, not in [0, 1e6]", mod_names[i],
                            p->weights[i]);
    if (!(p->fps >= 0.01 && p->fps <= 120))
        return mer__err(MER_ERR_INVALID_ARG, "analyze: fps %g is not in [0.01, 120]", p->fps);
    if (p->max_frames < 1) return mer__err(MER_ERR_INVALID_ARG, "analyze: max_frames %d < 1", (int)p->max_frames);
    if (p->adapt != MER_ANALYZE_ADAPT_AUTO && p->adapt != MER_ANALYZE_ADAPT_NONE)
        return mer__err(MER_ERR_INVALID_ARG, "analyze: adapt %d is neither auto nor none", (int)p->adapt);
    if (p->adapt_min < 2) return mer__err(MER_ERR_INVALID_ARG, "analyze: adapt_min %d < 2", (int)p->adapt_min);
    return MER_OK;
}

static char *dup_str(const char *s) {
    char *d = strdup(s);
    if (!d) mer__err(MER_ERR_NOMEM, "analyze: out of memory");
    return d;
}

mer_status mer_analyze(const char *path, const mer_analyze_params *params, mer_analysis **out) {
    if (!path || !out) return mer__err(MER_ERR_INVALID_ARG, "mer_analyze: NULL argument");
    *out = NULL;
    mer_analyze_params p = params ? *params : mer_analyze_default_params();
    mer_status s = check_params(&p);
    if (s) return s;
    if ((s = mer__abort_check(p.abort, p.abort_user_data, path))) return s;
    mer_analysis *A = calloc(1, sizeof *A);
    if (!A) return mer__err(MER_ERR_NOMEM, "analyze: out of memory");
    const int threads = mer__threads_use(p.n_threads);
    memcpy(A->weights, p.weights, sizeof A->weights);
    if (!(A->path = dup_str(path))) {
        s = MER_ERR_NOMEM;
        goto done;
    }
    if ((s = mer_media_probe(path, &A->info))) goto done;
    if (!A->info.has_audio && !A->info.has_video) {
        s = mer__err(MER_ERR_MEDIA, "%s: no audio or video stream to analyse", path);
        goto done;
    }
    A->duration = A->info.duration;
    if (p.timeline) {
        A->n_rows = mer_timeline_rows(A->duration);
        if (A->n_rows <= 0) {
            s = mer__err(MER_ERR_INVALID_ARG, "%s: no duration (a still image?), so no timeline", path);
            goto done;
        }
        A->rows = calloc((size_t)A->n_rows, sizeof *A->rows);
        if (!A->rows) {
            s = mer__err(MER_ERR_NOMEM, "analyze: out of memory");
            goto done;
        }
        for (int32_t r = 0; r < A->n_rows; r++) {
            A->rows[r].t0 = r;
            A->rows[r].t1 = r + 1 < A->duration ? r + 1 : A->duration;
        }
    }

    /* speech */
    mer_analysis_modality *ma = &A->mod[M_AUDIO];
    if (!A->info.has_audio) snprintf(ma->note, sizeof ma->note, "no audio stream");
    else if (A->weights[M_AUDIO] == 0) snprintf(ma->note, sizeof ma->note, "skipped (weight 0)");
    else {
        const char *model = p.audio_model;
        char *bundled = NULL;
        if (!model && mer_data_path(default_audio_models[0], &bundled) == MER_OK && is_dir_with(bundled, "config.json"))
            model = bundled;
        for (size_t i = 1; !model && i < sizeof default_audio_models / sizeof *default_audio_models; i++)
            if (is_dir_with(default_audio_models[i], "config.json")) model = default_audio_models[i];
        mer_clear_error();
        A->audio_model = model ? dup_str(model) : NULL;
        free(bundled);
        if (!model) {
            s = mer__err(MER_ERR_NOT_FOUND,
                         "%s: no speech emotion model: neither models/emodb-acoustic nor out/demo/model "
                         "exists; run `mer demo` (it trains one into out/demo/model), pass --audio-model "
                         "RUNDIR, or --weights audio=0 to skip speech", path);
            goto done;
        }
        if (!A->audio_model) {
            s = MER_ERR_NOMEM;
            goto done;
        }
        if ((s = run_audio(A, A->audio_model, &p))) goto done;
    }

    /* faces */
    mer_analysis_modality *mf = &A->mod[M_FACE];
    if (!A->info.has_video) snprintf(mf->note, sizeof mf->note, "no video stream");
    else if (A->weights[M_FACE] == 0) snprintf(mf->note, sizeof mf->note, "skipped (weight 0)");
    else if ((s = run_faces(A, &p))) goto done;

    /* text */
    mer_analysis_modality *mt = &A->mod[M_TEXT];
    if (!p.text) snprintf(mt->note, sizeof mt->note, "no --text given");
    else if (A->weights[M_TEXT] == 0) snprintf(mt->note, sizeof mt->note, "skipped (weight 0)");
    else if (p.text_model) {
        if (!(A->text_model = dup_str(p.text_model))) {
            s = MER_ERR_NOMEM;
            goto done;
        }
        if ((s = run_text_model(A, A->text_model, p.text))) goto done;
    } else {
        if ((s = mer_text_lexicon_score(p.text, &A->text))) {
            mer__err_prefix("--text");
            goto done;
        }
        memcpy(mt->probs, A->text.probs, sizeof mt->probs);
        mt->present = 1;
        if (A->text.cues == 0) snprintf(mt->note, sizeof mt->note, "no cue word found: uniform, left out of the fusion");
        else snprintf(mt->note, sizeof mt->note, "lexicon baseline, not Baichuan");
    }

    /* fusion over the modalities present (a cue-less transcript says nothing: not fused) */
    const float *d[N_MOD] = {0};
    for (int i = 0; i < N_MOD; i++)
        if (A->mod[i].present && !(i == M_TEXT && !A->text_model && A->text.cues == 0) && A->weights[i] > 0)
            d[i] = A->mod[i].probs;
    int32_t used = 0;
    s = mer_late_fuse(d, A->weights, N_MOD, K, A->fused, &used);
    if (s == MER_OK) {
        A->has_fused = 1;
        for (int i = 0; i < N_MOD; i++) A->mod[i].fused = d[i] != NULL;
    } else if (s != MER_ERR_NOT_FOUND) {
        mer__err_prefix("fusion");
        goto done;
    }
    s = MER_OK;
    for (int32_t r = 0; r < A->n_rows && A->rows; r++) {
        mer_analysis_row *w = &A->rows[r];
        const float *dr[2] = {w->has_audio ? w->audio : NULL, w->has_face ? w->face : NULL};
        double wr[2] = {A->weights[M_AUDIO], A->weights[M_FACE]};
        s = mer_late_fuse(dr, wr, 2, K, w->fused, NULL);
        if (s == MER_OK) w->has_fused = 1;
        else if (s != MER_ERR_NOT_FOUND) {
            mer__err_prefix("fusion");
            goto done;
        }
        s = MER_OK;
    }
    mer_clear_error();
done:
    mer__threads_use(threads);
    if (s) mer_analysis_free(A);
    else *out = A;
    return s;
}

/* ---- JSON -------------------------------------------------------------------------------- */

/* Probabilities print with 6 decimals, times with 3: what the text output shows. */
static void json_dist(mer__json *w, struct cJSON *parent, const char *key, const float *p, int present) {
    if (!present) {
        mer__json_null(w, parent, key);
        return;
    }
    struct cJSON *o = mer__json_obj(w, parent, key);
    for (int k = 0; k < K; k++) mer__json_fixed(w, o, mer_shared_class_name(k), p[k], 6);
}

static void json_top(mer__json *w, struct cJSON *parent, const char *key, const float *p, int present) {
    mer__json_str(w, parent, key, present ? mer_shared_class_name(mer_probs_argmax(p, K)) : NULL);
}

mer_status mer_analysis_to_json(const mer_analysis *A, char **json) {
    if (!A || !json) return mer__err(MER_ERR_INVALID_ARG, "mer_analysis_to_json: NULL argument");
    *json = NULL;
    mer__json w;
    struct cJSON *root = mer__json_root(&w);
    mer__json_str(&w, root, "file", A->path);
    mer__json_fixed(&w, root, "duration", A->duration, 3);
    mer__json_bool(&w, root, "has_audio", A->info.has_audio);
    mer__json_bool(&w, root, "has_video", A->info.has_video);
    struct cJSON *labels = mer__json_arr(&w, root, "labels");
    for (int k = 0; k < K; k++) mer__json_str(&w, labels, NULL, mer_shared_class_name(k));
    struct cJSON *mods = mer__json_obj(&w, root, "modalities");
    for (int i = 0; i < N_MOD; i++) {
        const mer_analysis_modality *m = &A->mod[i];
        struct cJSON *o = mer__json_obj(&w, mods, mod_names[i]);
        mer__json_bool(&w, o, "present", m->present);
        mer__json_bool(&w, o, "fused", m->fused);
        mer__json_num(&w, o, "weight", A->weights[i]);
        mer__json_str(&w, o, "note", m->note);
        if (i == M_AUDIO && A->audio_model) mer__json_str(&w, o, "model", A->audio_model);
        if (i == M_AUDIO && m->present) mer__json_int(&w, o, "adapted_windows", A->audio_adapt_tiles);
        if (i == M_FACE && A->info.has_video && A->frames) {
            mer__json_int(&w, o, "frames", A->frames);
            mer__json_int(&w, o, "frames_with_face", A->frames_with_face);
            mer__json_fixed(&w, o, "face_fraction", (double)A->frames_with_face / (double)A->frames, 6);
            mer__json_num(&w, o, "fps", A->fps_used);
        }
        if (i == M_TEXT && m->present && A->text_model) {
            mer__json_str(&w, o, "method", "trained text run");
            mer__json_str(&w, o, "model", A->text_model);
        } else if (i == M_TEXT && m->present) {
            mer__json_str(&w, o, "method", "lexicon baseline (not Baichuan)");
            mer__json_int(&w, o, "words", A->text.words);
            mer__json_int(&w, o, "cue_words", A->text.cues);
            mer__json_int(&w, o, "negated", A->text.negated);
        }
        if (m->present) {
            json_dist(&w, o, "probs", m->probs, 1);
            json_top(&w, o, "top", m->probs, 1);
        }
        if (m->n_native && m->present) {
            struct cJSON *nat = mer__json_obj(&w, o, "native");
            for (int32_t c = 0; c < m->n_native; c++) mer__json_fixed(&w, nat, m->native_names[c], m->native[c], 6);
        }
    }
    struct cJSON *fu = mer__json_obj(&w, root, "fused");
    json_dist(&w, fu, "probs", A->fused, A->has_fused);
    json_top(&w, fu, "top", A->fused, A->has_fused);
    struct cJSON *fm = mer__json_arr(&w, fu, "modalities");
    for (int i = 0; i < N_MOD; i++)
        if (A->mod[i].fused) mer__json_str(&w, fm, NULL, mod_names[i]);
    struct cJSON *miss = mer__json_arr(&w, root, "missing");
    for (int i = 0; i < N_MOD; i++)
        if (!A->mod[i].present) mer__json_str(&w, miss, NULL, mod_names[i]);
    if (A->rows) {
        struct cJSON *tl = mer__json_arr(&w, root, "timeline");
        for (int32_t r = 0; r < A->n_rows; r++) {
            const mer_analysis_row *x = &A->rows[r];
            struct cJSON *o = mer__json_obj(&w, tl, NULL);
            mer__json_fixed(&w, o, "t0", x->t0, 3);
            mer__json_fixed(&w, o, "t1", x->t1, 3);
            if (x->has_audio) {
                struct cJSON *aw = mer__json_arr(&w, o, "audio_window");
                mer__json_fixed(&w, aw, NULL, x->a0, 3);
                mer__json_fixed(&w, aw, NULL, x->a1, 3);
            } else {
                mer__json_null(&w, o, "audio_window");
            }
            json_dist(&w, o, "audio", x->audio, x->has_audio);
            json_top(&w, o, "audio_top", x->audio, x->has_audio);
            mer__json_int(&w, o, "frames", x->faces.frames);
            mer__json_int(&w, o, "frames_with_face", x->faces.frames_with_face);
            json_dist(&w, o, "face", x->face, x->has_face);
            json_top(&w, o, "face_top", x->face, x->has_face);
            json_dist(&w, o, "fused", x->fused, x->has_fused);
            json_top(&w, o, "fused_top", x->fused, x->has_fused);
        }
    }
    return mer__json_take(&w, 1, json);
}
