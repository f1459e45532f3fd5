/*
 * cmd_analyze.c -- `mer analyze FILE`: the emotion of one clip from its speech (a trained
 * acoustic run), its faces (face-api expressions on sampled frames) and an optional transcript
 * (the lexicon baseline), each mapped onto MER2024's six labels and fused late; text or JSON,
 * with an optional per-second timeline. Mapping, fusion and timeline arithmetic live in
 * src/models/fusion_late.c, the lexicon in src/models/text_lexicon.c; this file runs the
 * models and formats. docs/analyze.md documents the output keys.
 */
#include "cli.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *CMD = "analyze";

#define K MER_SHARED_CLASSES
enum { M_AUDIO = 0, M_FACE = 1, M_TEXT = 2, N_MOD = 3 };
static const char *const mod_names[N_MOD] = {"audio", "face", "text"};

/* The default speech model: the committed bundled run, else what `mer demo` leaves. */
/* (the bundled one is found through mer_data_path, not the working directory) */
static const char *const default_audio_models[] = {"models/emodb-acoustic", "out/demo/model"};

#define AUDIO_WINDOW 2.0 /* seconds of audio per timeline row (utterance-level model) */

static void usage(FILE *f) {
    fprintf(f,
            "usage: mer analyze FILE [--audio-model RUNDIR] [--faces-models DIR] [--text \"...\"]\n"
            "                   [--json] [--timeline] [--fps F] [--max-frames N]\n"
            "                   [--weights audio=1,face=1,text=0.5] [--threads N]\n"
            "\n"
            "Emotion of one clip: speech (an acoustic run), faces (face-api expressions on\n"
            "frames sampled at F per second) and a transcript (a word-list baseline, not an LLM),\n"
            "each mapped onto neutral, angry, happy, sad, worried, surprise and fused late\n"
            "(weighted mean over the modalities present). docs/analyze.md.\n"
            "  --audio-model RUNDIR  speech emotion run (default models/emodb-acoustic, else\n"
            "                        out/demo/model as left by `mer demo`)\n"
            "  --faces-models DIR    face-api weights (default $MER_FACE_MODELS or models/face-api)\n"
            "  --text \"...\"          transcript (English or German) for the lexicon baseline\n"
            "  --json                machine-readable output (keys in docs/analyze.md)\n"
            "  --timeline            one row per second: speech over a 2 s window centred on it,\n"
            "                        faces averaged over its frames, and their fusion\n"
            "  --fps F               video frames analysed per second (default 2)\n"
            "  --max-frames N        cap on analysed frames; long videos get a lower rate (300)\n"
            "  --weights SPEC        fusion weights (default audio=1,face=1,text=0.5); weight 0\n"
            "                        skips a modality\n");
}

/* ---- results ------------------------------------------------------------------------------ */

typedef struct {
    int present;                 /* a distribution was computed */
    int fused;                   /* it takes part in the fusion */
    char note[192];              /* why absent / not fused, or extra facts */
    float shared[K];
    int32_t n_native;
    char native_names[MER_MAX_CLASSES][MER_NAME_MAX];
    float native[MER_MAX_CLASSES];
} modality;

typedef struct {
    double t0, t1;               /* the second */
    double a0, a1;               /* audio window */
    int has_audio, has_face, has_fused;
    float audio[K], face[K], fused[K];
    mer_faces_summary faces;
} row;

typedef struct {
    const char *path;
    mer_media_info info;
    double duration;
    modality mod[N_MOD];
    double weights[N_MOD];
    int has_fused;
    float fused[K];
    const char *audio_model;     /* run directory used */
    int64_t frames, frames_with_face;
    double fps_used;
    mer_text_scores text;
    int32_t n_rows;
    row *rows;
} analysis;

/* ---- speech ------------------------------------------------------------------------------ */

/* The run's class probabilities (1 + n_win, C): row 0 the whole signal, then each window
 * [win[2w], win[2w + 1]) in seconds. */
/* The run's class probabilities (1 + n_win, C): row 0 the whole signal x (n samples at the
 * recipe's rate), then each window [win[2w], win[2w + 1]) in seconds. Features come from the
 * run's recorded recipe (with its standardisation), as `mer predict --input` extracts them. */
static mer_status audio_predict(mer_run *run, int32_t sr, const float *x, int64_t n,
                                const double *win, int32_t n_win, float *probs) {
    const char *cls[MER_MAX_CLASSES];
    int32_t C = mer_run_n_classes(run);
    for (int32_t c = 0; c < C; c++) cls[c] = mer_run_class(run, c);
    const char *mname = mer_run_modality(run, 0);
    mer_dataset *ds = NULL;
    mer_status s = mer_dataset_init(&ds, cls, C, &mname, 1);
    for (int32_t w = -1; s == MER_OK && w < n_win; w++) {
        int64_t b = 0, e = n;
        if (w >= 0) {
            b = (int64_t)llround(win[2 * w] * sr);
            e = (int64_t)llround(win[2 * w + 1] * sr);
            if (b > n) b = n;
            if (e > n) e = n;
            if (e <= b) { /* a window past the decoded audio: its last sample */
                b = n > 0 ? n - 1 : 0;
                e = n;
            }
        }
        float *f = NULL;
        int32_t nd = 0;
        int64_t shape[MER_MAX_DIMS];
        mer_tensor t;
        char name[32];
        snprintf(name, sizeof name, "w%d", (int)w);
        s = mer_acoustic_extract_samples(mer_run_recipe(run), x + b, e - b, mname, &f, &nd, shape);
        if (s == MER_OK) s = mer_tensor_view(&t, f, MER_DTYPE_F32, nd, shape);
        if (s == MER_OK) s = mer_dataset_add(ds, name, -1, NULL, 0, &t);
        free(f);
    }
    if (s == MER_OK) s = mer_run_predict(run, ds, probs);
    mer_dataset_free(ds);
    return s;
}

static int is_dir_with(const char *dir, const char *file) {
    char p[4096];
    struct stat st;
    snprintf(p, sizeof p, "%s/%s", dir, file);
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* Speech: decode at the recipe's rate, predict the clip (and the timeline windows), map. */
static int run_audio(analysis *A, const char *model_dir) {
    modality *m = &A->mod[M_AUDIO];
    mer_run *run = NULL;
    int32_t sr = 0;
    float *x = NULL, *probs = NULL;
    double *win = NULL;
    int rc = 0;
    int64_t n = 0;
    mer_status s = mer_run_open(&run, model_dir);
    if (s) {
        rc = cli_fail_status(CMD, s, NULL); /* the message names the directory */
        goto done;
    }
    if (mer_run_n_modalities(run) != 1) {
        rc = cli_fail(CMD, "%s: a speech model has one modality, this run has %d", model_dir,
                      mer_run_n_modalities(run));
        goto done;
    }
    if (!mer_run_recipe(run)) {
        rc = cli_fail(CMD, "%s: the run records no feature recipe, so it cannot read raw audio "
                      "(train it on `mer extract acoustic` features with a recipe, as `mer demo` does)",
                      model_dir);
        goto done;
    }
    if ((s = mer_acoustic_recipe_sample_rate(mer_run_recipe(run), mer_run_modality(run, 0), &sr))) {
        rc = cli_fail_status(CMD, s, model_dir);
        goto done;
    }
    int32_t C = mer_run_n_classes(run);
    for (int32_t c = 0; c < C; c++) {
        float row_[K];
        if ((s = mer_label_map_row(mer_run_class(run, c), row_))) {
            rc = cli_fail_status(CMD, s, model_dir);
            goto done;
        }
    }
    if ((s = mer_media_decode_audio(A->path, sr, &x, &n))) {
        rc = cli_fail_status(CMD, s, NULL);
        goto done;
    }
    if (n == 0) {
        snprintf(m->note, sizeof m->note, "the audio stream has no samples");
        goto done;
    }
    int32_t n_win = A->rows ? A->n_rows : 0;
    win = malloc((size_t)(2 * n_win + 1) * sizeof *win);
    probs = malloc((size_t)(1 + n_win) * (size_t)C * sizeof *probs);
    if (!win || !probs) {
        rc = cli_fail(CMD, "out of memory");
        goto done;
    }
    for (int32_t r = 0; r < n_win; r++) {
        mer_timeline_window(r, AUDIO_WINDOW, A->duration, &win[2 * r], &win[2 * r + 1]);
        A->rows[r].a0 = win[2 * r];
        A->rows[r].a1 = win[2 * r + 1];
    }
    if ((s = audio_predict(run, sr, x, n, win, n_win, probs))) {
        rc = cli_fail_status(CMD, s, A->path);
        goto done;
    }
    const char *cls[MER_MAX_CLASSES];
    for (int32_t c = 0; c < C; c++) cls[c] = mer_run_class(run, c);
    m->n_native = C;
    for (int32_t c = 0; c < C; c++) {
        snprintf(m->native_names[c], MER_NAME_MAX, "%s", cls[c]);
        m->native[c] = probs[c];
    }
    if ((s = mer_label_map_probs(cls, C, probs, m->shared))) {
        rc = cli_fail_status(CMD, s, model_dir);
        goto done;
    }
    for (int32_t r = 0; r < n_win; r++) {
        if ((s = mer_label_map_probs(cls, C, probs + (size_t)(1 + r) * C, A->rows[r].audio))) {
            rc = cli_fail_status(CMD, s, model_dir);
            goto done;
        }
        A->rows[r].has_audio = 1;
    }
    m->present = 1;
    snprintf(m->note, sizeof m->note, "%.2f s of speech", (double)n / sr);
done:
    free(x);
    free(win);
    free(probs);
    mer_run_free(run);
    return rc;
}

/* ---- faces ------------------------------------------------------------------------------- */

static int run_faces(analysis *A, const char *faces_dir, double fps, long max_frames) {
    modality *m = &A->mod[M_FACE];
    mer_faces *fm = NULL;
    mer_faces_state *st = NULL;
    mer_image *frames = NULL;
    int32_t nf = 0;
    int rc = 0;
    mer_status s = mer_faces_load(&fm, faces_dir);
    if (s) {
        rc = cli_fail_status(CMD, s, NULL); /* names the directory */
        goto done;
    }
    if ((s = mer_faces_state_init(&st))) {
        rc = cli_fail_status(CMD, s, NULL);
        goto done;
    }
    /* frames are held in memory at native size: long videos get a lower rate, not a cut */
    double f = fps;
    if (A->duration > 0 && A->duration * f > (double)max_frames) f = (double)max_frames / A->duration;
    A->fps_used = f;
    mer_frame_sampling smp = {0};
    smp.fps = f;
    smp.max_frames = (int32_t)max_frames;
    if ((s = mer_media_decode_video(A->path, &smp, &frames, &nf))) {
        rc = cli_fail_status(CMD, s, NULL);
        goto done;
    }
    mer_faces_summary all;
    memset(&all, 0, sizeof all);
    for (int32_t i = 0; i < nf; i++) {
        mer_face *faces = NULL;
        int32_t n = 0;
        if ((s = mer_faces_detect(fm, st, &frames[i], NULL, &faces, &n))) {
            rc = cli_fail_status(CMD, s, A->path);
            goto done;
        }
        mer_faces_summary_add(&all, faces, n);
        if (A->rows) mer_faces_summary_add(&A->rows[mer_timeline_row(frames[i].time, A->n_rows)].faces, faces, n);
        free(faces);
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
    if ((s = mer_label_map_probs(cls, MER_FACE_EXPRESSIONS, mean, m->shared))) {
        rc = cli_fail_status(CMD, s, NULL);
        goto done;
    }
    m->present = 1;
    snprintf(m->note, sizeof m->note, "face in %lld of %lld frame%s", (long long)all.frames_with_face,
             (long long)all.frames, all.frames == 1 ? "" : "s");
    for (int32_t r = 0; r < A->n_rows && A->rows; r++) {
        row *w = &A->rows[r];
        if (!w->faces.frames_with_face) continue;
        mer_faces_summary_mean(&w->faces, mean);
        if ((s = mer_label_map_probs(cls, MER_FACE_EXPRESSIONS, mean, w->face))) {
            rc = cli_fail_status(CMD, s, NULL);
            goto done;
        }
        w->has_face = 1;
    }
done:
    mer_frames_free(frames, nf);
    mer_faces_state_free(st);
    mer_faces_free(fm);
    return rc;
}

/* ---- output ------------------------------------------------------------------------------ */

static void json_str(FILE *f, const char *s) {
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') fprintf(f, "\\%c", *p);
        else if (*p == '\n') fputs("\\n", f);
        else if (*p == '\t') fputs("\\t", f);
        else if (*p < 0x20) fprintf(f, "\\u%04x", *p);
        else fputc(*p, f);
    }
    fputc('"', f);
}

static void json_dist(FILE *f, const float *p) {
    fputc('{', f);
    for (int k = 0; k < K; k++) fprintf(f, "%s\"%s\": %.6f", k ? ", " : "", mer_shared_class_name(k), (double)p[k]);
    fputc('}', f);
}

static void json_top(FILE *f, const float *p, int present) {
    if (!present) {
        fputs("null", f);
        return;
    }
    json_str(f, mer_shared_class_name(mer_probs_argmax(p, K)));
}

static void print_json(FILE *f, const analysis *A) {
    fputs("{\n  \"file\": ", f);
    json_str(f, A->path);
    fprintf(f, ",\n  \"duration\": %.3f,\n  \"has_audio\": %s,\n  \"has_video\": %s,\n", A->duration,
            A->info.has_audio ? "true" : "false", A->info.has_video ? "true" : "false");
    fputs("  \"labels\": [", f);
    for (int k = 0; k < K; k++) fprintf(f, "%s\"%s\"", k ? ", " : "", mer_shared_class_name(k));
    fputs("],\n  \"modalities\": {\n", f);
    for (int i = 0; i < N_MOD; i++) {
        const modality *m = &A->mod[i];
        fprintf(f, "    \"%s\": {\"present\": %s, \"fused\": %s, \"weight\": %g, \"note\": ", mod_names[i],
                m->present ? "true" : "false", m->fused ? "true" : "false", A->weights[i]);
        json_str(f, m->note);
        if (i == M_AUDIO && A->audio_model) {
            fputs(", \"model\": ", f);
            json_str(f, A->audio_model);
        }
        if (i == M_FACE && A->info.has_video && A->frames)
            fprintf(f, ", \"frames\": %lld, \"frames_with_face\": %lld, \"face_fraction\": %.6f, \"fps\": %.6g",
                    (long long)A->frames, (long long)A->frames_with_face,
                    (double)A->frames_with_face / (double)A->frames, A->fps_used);
        if (i == M_TEXT && m->present)
            fprintf(f, ", \"method\": \"lexicon baseline (not Baichuan)\", \"words\": %d, \"cue_words\": %d, \"negated\": %d",
                    A->text.words, A->text.cues, A->text.negated);
        if (m->present) {
            fputs(", \"probs\": ", f);
            json_dist(f, m->shared);
            fputs(", \"top\": ", f);
            json_top(f, m->shared, 1);
        }
        if (m->n_native && m->present) {
            fputs(", \"native\": {", f);
            for (int32_t c = 0; c < m->n_native; c++) {
                fprintf(f, "%s", c ? ", " : "");
                json_str(f, m->native_names[c]);
                fprintf(f, ": %.6f", (double)m->native[c]);
            }
            fputc('}', f);
        }
        fprintf(f, "}%s\n", i + 1 < N_MOD ? "," : "");
    }
    fputs("  },\n  \"fused\": {\"probs\": ", f);
    if (A->has_fused) json_dist(f, A->fused);
    else fputs("null", f);
    fputs(", \"top\": ", f);
    json_top(f, A->fused, A->has_fused);
    fputs(", \"modalities\": [", f);
    for (int i = 0, first = 1; i < N_MOD; i++)
        if (A->mod[i].fused) {
            fprintf(f, "%s\"%s\"", first ? "" : ", ", mod_names[i]);
            first = 0;
        }
    fputs("]},\n  \"missing\": [", f);
    for (int i = 0, first = 1; i < N_MOD; i++)
        if (!A->mod[i].present) {
            fprintf(f, "%s\"%s\"", first ? "" : ", ", mod_names[i]);
            first = 0;
        }
    fputc(']', f);
    if (A->rows) {
        fputs(",\n  \"timeline\": [", f);
        for (int32_t r = 0; r < A->n_rows; r++) {
            const row *w = &A->rows[r];
            fprintf(f, "%s\n    {\"t0\": %.3f, \"t1\": %.3f, \"audio_window\": ", r ? "," : "", w->t0, w->t1);
            if (w->has_audio) fprintf(f, "[%.3f, %.3f]", w->a0, w->a1);
            else fputs("null", f);
            fputs(", \"audio\": ", f);
            if (w->has_audio) json_dist(f, w->audio);
            else fputs("null", f);
            fputs(", \"audio_top\": ", f);
            json_top(f, w->audio, w->has_audio);
            fprintf(f, ", \"frames\": %lld, \"frames_with_face\": %lld, \"face\": ", (long long)w->faces.frames,
                    (long long)w->faces.frames_with_face);
            if (w->has_face) json_dist(f, w->face);
            else fputs("null", f);
            fputs(", \"face_top\": ", f);
            json_top(f, w->face, w->has_face);
            fputs(", \"fused\": ", f);
            if (w->has_fused) json_dist(f, w->fused);
            else fputs("null", f);
            fputs(", \"fused_top\": ", f);
            json_top(f, w->fused, w->has_fused);
            fputc('}', f);
        }
        fputs("\n  ]", f);
    }
    fputs("\n}\n", f);
}

static void text_dist_row(FILE *f, const char *label, const float *p, int present, const char *extra) {
    fprintf(f, "%-16s", label);
    if (!present) {
        fprintf(f, " %s\n", extra);
        return;
    }
    for (int k = 0; k < K; k++) fprintf(f, " %8.3f", (double)p[k]);
    fprintf(f, "  %-8s  %s\n", mer_shared_class_name(mer_probs_argmax(p, K)), extra);
}

static void print_text(FILE *f, const analysis *A) {
    fprintf(f, "%s: %.2f s", A->path, A->duration);
    if (A->info.has_audio) fprintf(f, ", audio %d Hz", A->info.sample_rate);
    if (A->info.has_video) fprintf(f, ", video %dx%d %.3g fps", A->info.width, A->info.height, A->info.fps);
    fputs("\n\n", f);
    fprintf(f, "%-16s", "");
    for (int k = 0; k < K; k++) fprintf(f, " %8s", mer_shared_class_name(k));
    fprintf(f, "  %-8s  %s\n", "top", "notes");
    static const char *const labels[N_MOD] = {"speech (audio)", "face (video)", "text (lexicon)"};
    for (int i = 0; i < N_MOD; i++) {
        const modality *m = &A->mod[i];
        char extra[320];
        if (m->present && !m->fused)
            snprintf(extra, sizeof extra, "%s; not fused", m->note);
        else if (m->present)
            snprintf(extra, sizeof extra, "%s", m->note);
        else
            snprintf(extra, sizeof extra, "missing: %s", m->note);
        text_dist_row(f, labels[i], m->shared, m->present, extra);
    }
    char wbuf[128];
    snprintf(wbuf, sizeof wbuf, "weights audio=%g face=%g text=%g", A->weights[M_AUDIO], A->weights[M_FACE],
             A->weights[M_TEXT]);
    text_dist_row(f, "fused", A->fused, A->has_fused, A->has_fused ? wbuf : "nothing to fuse");
    fputc('\n', f);
    if (A->mod[M_AUDIO].present) {
        fprintf(f, "speech model (%s):", A->audio_model);
        for (int32_t c = 0; c < A->mod[M_AUDIO].n_native; c++)
            fprintf(f, " %s %.3f", A->mod[M_AUDIO].native_names[c], (double)A->mod[M_AUDIO].native[c]);
        fputc('\n', f);
    }
    if (A->mod[M_FACE].present) {
        fprintf(f, "face expressions (mean over %lld frame%s with a face, %.3g fps):", (long long)A->frames_with_face,
                A->frames_with_face == 1 ? "" : "s", A->fps_used);
        for (int32_t c = 0; c < A->mod[M_FACE].n_native; c++)
            fprintf(f, " %s %.3f", A->mod[M_FACE].native_names[c], (double)A->mod[M_FACE].native[c]);
        fputc('\n', f);
    }
    if (A->mod[M_TEXT].present)
        fprintf(f, "text: lexicon baseline (word lists, not Baichuan): %d cue word%s in %d words, %d negated\n",
                A->text.cues, A->text.cues == 1 ? "" : "s", A->text.words, A->text.negated);
    if (A->has_fused)
        fprintf(f, "verdict: %s (%.2f)\n", mer_shared_class_name(mer_probs_argmax(A->fused, K)),
                (double)A->fused[mer_probs_argmax(A->fused, K)]);
    else
        fprintf(f, "verdict: none (no modality could be analysed)\n");
    if (A->rows) {
        fprintf(f, "\ntimeline (speech: %.0f s window centred on each second; face: mean over the second's frames;\n"
                   "fused: speech and face, the transcript has no timing)\n", AUDIO_WINDOW);
        fprintf(f, "%-13s %-16s %-22s %-16s\n", "second", "speech", "face", "fused");
        for (int32_t r = 0; r < A->n_rows; r++) {
            const row *w = &A->rows[r];
            char sec[32], a[32], fc[48], fu[32];
            snprintf(sec, sizeof sec, "%.1f-%.1f", w->t0, w->t1);
            if (w->has_audio) {
                int32_t k = mer_probs_argmax(w->audio, K);
                snprintf(a, sizeof a, "%s %.2f", mer_shared_class_name(k), (double)w->audio[k]);
            } else snprintf(a, sizeof a, "-");
            if (w->has_face) {
                int32_t k = mer_probs_argmax(w->face, K);
                snprintf(fc, sizeof fc, "%s %.2f (%lld/%lld)", mer_shared_class_name(k), (double)w->face[k],
                         (long long)w->faces.frames_with_face, (long long)w->faces.frames);
            } else if (w->faces.frames) {
                snprintf(fc, sizeof fc, "no face (0/%lld)", (long long)w->faces.frames);
            } else snprintf(fc, sizeof fc, "-");
            if (w->has_fused) {
                int32_t k = mer_probs_argmax(w->fused, K);
                snprintf(fu, sizeof fu, "%s %.2f", mer_shared_class_name(k), (double)w->fused[k]);
            } else snprintf(fu, sizeof fu, "-");
            fprintf(f, "%-13s %-16s %-22s %-16s\n", sec, a, fc, fu);
        }
    }
}

/* ---- main -------------------------------------------------------------------------------- */

static int parse_weights(const char *spec, double *w) {
    char buf[256];
    snprintf(buf, sizeof buf, "%s", spec);
    if (strlen(spec) >= sizeof buf) return cli_usage(CMD, "--weights: too long");
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(tok, '=');
        if (!eq) return cli_usage(CMD, "--weights wants NAME=W,... (audio, face, text), got '%s'", tok);
        *eq = '\0';
        int i = 0;
        while (i < N_MOD && strcmp(tok, mod_names[i])) i++;
        if (i == N_MOD) return cli_usage(CMD, "--weights: unknown modality '%s' (audio, face, text)", tok);
        if (!cli_parse_double(eq + 1, 0, 1e6, &w[i]))
            return cli_usage(CMD, "--weights: %s wants a number in [0, 1e6], got '%s'", tok, eq + 1);
    }
    return 0;
}

int cmd_analyze(int argc, char **argv) {
    const char *file = NULL, *audio_model = NULL, *faces_dir = NULL, *text = NULL;
    char *bundled_audio = NULL;
    int json = 0, timeline = 0, rc = 0;
    double fps = 2.0;
    long max_frames = 300, threads = 0;
    analysis A;
    memset(&A, 0, sizeof A);
    A.weights[M_AUDIO] = 1.0;
    A.weights[M_FACE] = 1.0;
    A.weights[M_TEXT] = 0.5;
    for (int i = 1; i < argc; i++) {
        const char *v;
        if (cli_flag(argv[i], "--help") || cli_flag(argv[i], "-h")) {
            usage(stdout);
            return 0;
        } else if (cli_opt(argc, argv, &i, "--audio-model", &v)) audio_model = v;
        else if (cli_opt(argc, argv, &i, "--faces-models", &v)) faces_dir = v;
        else if (cli_opt(argc, argv, &i, "--text", &v)) text = v;
        else if (cli_flag(argv[i], "--json")) json = 1;
        else if (cli_flag(argv[i], "--timeline")) timeline = 1;
        else if (cli_opt(argc, argv, &i, "--fps", &v)) {
            if (!cli_parse_double(v, 0.01, 120, &fps)) return cli_usage(CMD, "--fps wants a number in [0.01, 120], got '%s'", v);
        } else if (cli_opt(argc, argv, &i, "--max-frames", &v)) {
            if (!cli_parse_int(v, 1, 100000, &max_frames)) return cli_usage(CMD, "--max-frames wants an integer in [1, 100000], got '%s'", v);
        } else if (cli_opt(argc, argv, &i, "--threads", &v)) {
            if (!cli_parse_int(v, 0, 1024, &threads)) return cli_usage(CMD, "--threads wants an integer in [0, 1024], got '%s'", v);
        } else if (cli_opt(argc, argv, &i, "--weights", &v)) {
            int u = parse_weights(v, A.weights);
            if (u) return u;
        } else if (cli_is_option(argv[i])) return cli_usage(CMD, "unknown option %s", argv[i]);
        else if (file) return cli_usage(CMD, "one FILE at a time (got '%s' and '%s')", file, argv[i]);
        else file = argv[i];
    }
    if (cli_error()) return cli_usage(CMD, "%s", cli_error());
    if (!file) return cli_usage(CMD, "FILE is required");
    cli_set_threads(threads);
    A.path = file;

    mer_status s = mer_media_probe(file, &A.info);
    if (s) return cli_fail_status(CMD, s, NULL);
    if (!A.info.has_audio && !A.info.has_video)
        return cli_fail(CMD, "%s: no audio or video stream to analyse", file);
    A.duration = A.info.duration;
    if (timeline) {
        A.n_rows = mer_timeline_rows(A.duration);
        if (A.n_rows <= 0) return cli_fail(CMD, "%s: no duration (a still image?), so no --timeline", file);
        A.rows = calloc((size_t)A.n_rows, sizeof *A.rows);
        if (!A.rows) return cli_fail(CMD, "out of memory");
        for (int32_t r = 0; r < A.n_rows; r++) {
            A.rows[r].t0 = r;
            A.rows[r].t1 = r + 1 < A.duration ? r + 1 : A.duration;
        }
    }

    /* speech */
    modality *ma = &A.mod[M_AUDIO];
    if (!A.info.has_audio) snprintf(ma->note, sizeof ma->note, "no audio stream");
    else if (A.weights[M_AUDIO] == 0) snprintf(ma->note, sizeof ma->note, "skipped (weight 0)");
    else {
        if (!audio_model) {
            if (mer_data_path(default_audio_models[0], &bundled_audio) == MER_OK &&
                is_dir_with(bundled_audio, "config.json"))
                audio_model = bundled_audio;
            for (size_t i = 1; i < sizeof default_audio_models / sizeof *default_audio_models && !audio_model; i++)
                if (is_dir_with(default_audio_models[i], "config.json")) audio_model = default_audio_models[i];
            if (!audio_model) {
                rc = cli_fail(CMD, "%s: no speech emotion model: neither models/emodb-acoustic nor out/demo/model "
                              "exists; run `mer demo` (it trains one into out/demo/model), pass --audio-model "
                              "RUNDIR, or --weights audio=0 to skip speech", file);
                goto done;
            }
        }
        A.audio_model = audio_model;
        if ((rc = run_audio(&A, audio_model))) goto done;
    }

    /* faces */
    modality *mf = &A.mod[M_FACE];
    if (!A.info.has_video) snprintf(mf->note, sizeof mf->note, "no video stream");
    else if (A.weights[M_FACE] == 0) snprintf(mf->note, sizeof mf->note, "skipped (weight 0)");
    else if ((rc = run_faces(&A, faces_dir, fps, max_frames))) goto done;

    /* text */
    modality *mt = &A.mod[M_TEXT];
    if (!text) snprintf(mt->note, sizeof mt->note, "no --text given");
    else {
        if ((s = mer_text_lexicon_score(text, &A.text))) {
            rc = cli_fail_status(CMD, s, "--text");
            goto done;
        }
        memcpy(mt->shared, A.text.probs, sizeof mt->shared);
        mt->present = 1;
        if (A.text.cues == 0) snprintf(mt->note, sizeof mt->note, "no cue word found: uniform, left out of the fusion");
        else snprintf(mt->note, sizeof mt->note, "lexicon baseline, not Baichuan");
    }

    /* fusion over the modalities present (a cue-less transcript says nothing: not fused) */
    const float *d[N_MOD] = {0};
    for (int i = 0; i < N_MOD; i++)
        if (A.mod[i].present && !(i == M_TEXT && A.text.cues == 0) && A.weights[i] > 0) d[i] = A.mod[i].shared;
    int32_t used = 0;
    s = mer_late_fuse(d, A.weights, N_MOD, K, A.fused, &used);
    if (s == MER_OK) {
        A.has_fused = 1;
        for (int i = 0; i < N_MOD; i++) A.mod[i].fused = d[i] != NULL;
    } else if (s != MER_ERR_NOT_FOUND) {
        rc = cli_fail_status(CMD, s, "fusion");
        goto done;
    }
    for (int32_t r = 0; r < A.n_rows && A.rows; r++) {
        row *w = &A.rows[r];
        const float *dr[2] = {w->has_audio ? w->audio : NULL, w->has_face ? w->face : NULL};
        double wr[2] = {A.weights[M_AUDIO], A.weights[M_FACE]};
        s = mer_late_fuse(dr, wr, 2, K, w->fused, NULL);
        if (s == MER_OK) w->has_fused = 1;
        else if (s != MER_ERR_NOT_FOUND) {
            rc = cli_fail_status(CMD, s, "fusion");
            goto done;
        }
    }
    mer_clear_error();

    if (json) print_json(stdout, &A);
    else print_text(stdout, &A);
    if (fflush(stdout) || ferror(stdout)) rc = cli_fail(CMD, "writing the output failed");
done:
    free(A.rows);
    free(bundled_audio);
    return rc;
}
