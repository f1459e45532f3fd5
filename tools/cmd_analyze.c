/*
 * cmd_analyze.c -- `mer analyze FILE`: flags to mer_analyze_params, one mer_analyze call
 * (src/pipeline/analyze.c), then the result as text or as mer_analysis_to_json's JSON.
 * docs/analyze.md documents the output keys; the bundled speech model is found through
 * mer_data_path (not the working directory).
 */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *CMD = "analyze";

#define K MER_SHARED_CLASSES
enum { M_AUDIO = MER_ANALYZE_AUDIO, M_FACE = MER_ANALYZE_FACE, M_TEXT = MER_ANALYZE_TEXT, N_MOD = MER_ANALYZE_MODALITIES };
static const char *const mod_names[N_MOD] = {"audio", "face", "text"};

#define AUDIO_WINDOW 2.0 /* the timeline's speech window, as src/pipeline/analyze.c */

static void usage(FILE *f) {
    fprintf(f,
            "usage: mer analyze FILE [--audio-model RUNDIR] [--faces-models DIR] [--text \"...\"]\n"
            "                   [--text-model RUN]\n"
            "                   [--json] [--timeline] [--fps F] [--max-frames N]\n"
            "                   [--weights audio=1,face=1,text=0.5] [--adapt auto|none]\n"
            "                   [--adapt-min N] [--threads N]\n"
            "\n"
            "Emotion of one clip: speech (an acoustic run), faces (face-api expressions on\n"
            "frames sampled at F per second) and a transcript (a word-list baseline, not an LLM),\n"
            "each mapped onto neutral, angry, happy, sad, worried, surprise and fused late\n"
            "(weighted mean over the modalities present). docs/analyze.md.\n"
            "  --audio-model RUNDIR  speech emotion run, a directory or ORG/NAME in the Hugging Face\n"
            "                        cache (default models/emodb-acoustic, else out/demo/model as\n"
            "                        left by `mer demo`)\n"
            "  --faces-models DIR    face-api weights (default $MER_FACE_MODELS or models/face-api)\n"
            "  --text \"...\"          transcript (English or German) for the lexicon baseline\n"
            "  --text-model RUN      a run trained on `mer extract text` features (with their\n"
            "                        recipe.json, `mer train --recipe`): the transcript goes through\n"
            "                        its text encoder and the run instead of the word lists\n"
            "  --json                machine-readable output (keys in docs/analyze.md)\n"
            "  --timeline            one row per second: speech over a 2 s window centred on it,\n"
            "                        faces averaged over its frames, and their fusion\n"
            "  --fps F               video frames analysed per second (default 2)\n"
            "  --max-frames N        cap on analysed frames; long videos get a lower rate (300)\n"
            "  --weights SPEC        fusion weights (default audio=1,face=1,text=0.5); weight 0\n"
            "                        skips a modality\n"
            "  --adapt auto|none     auto (default): a speech run trained speaker-normalised (as\n"
            "                        `mer demo`'s) adapts to the speaker when the clip has at least\n"
            "                        N 2 s windows of speech (--adapt-min, default 5): every speech\n"
            "                        feature is standardised with those windows' own statistics\n"
            "                        and the clip's speech emotion is their mean; none: the run's\n"
            "                        training statistics, as for a short clip\n");
}

/* ---- text output ------------------------------------------------------------------------- */

static void text_dist_row(FILE *f, const char *label, const float *p, int present, const char *extra) {
    fprintf(f, "%-16s", label);
    if (!present) {
        fprintf(f, " %s\n", extra);
        return;
    }
    for (int k = 0; k < K; k++) fprintf(f, " %8.3f", (double)p[k]);
    fprintf(f, "  %-8s  %s\n", mer_shared_class_name(mer_probs_argmax(p, K)), extra);
}

static void print_text(FILE *f, const mer_analysis *A) {
    fprintf(f, "%s: %.2f s", A->path, A->duration);
    if (A->info.has_audio) fprintf(f, ", audio %d Hz", A->info.sample_rate);
    if (A->info.has_video) fprintf(f, ", video %dx%d %.3g fps", A->info.width, A->info.height, A->info.fps);
    fputs("\n\n", f);
    fprintf(f, "%-16s", "");
    for (int k = 0; k < K; k++) fprintf(f, " %8s", mer_shared_class_name(k));
    fprintf(f, "  %-8s  %s\n", "top", "notes");
    const char *const labels[N_MOD] = {"speech (audio)", "face (video)", A->text_model ? "text (run)" : "text (lexicon)"};
    for (int i = 0; i < N_MOD; i++) {
        const mer_analysis_modality *m = &A->mod[i];
        char extra[320];
        if (m->present && !m->fused)
            snprintf(extra, sizeof extra, "%s; not fused", m->note);
        else if (m->present)
            snprintf(extra, sizeof extra, "%s", m->note);
        else
            snprintf(extra, sizeof extra, "missing: %s", m->note);
        text_dist_row(f, labels[i], m->probs, m->present, extra);
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
    if (A->mod[M_TEXT].present && A->text_model) {
        fprintf(f, "text run (%s):", A->text_model);
        for (int32_t c = 0; c < A->mod[M_TEXT].n_native; c++)
            fprintf(f, " %s %.3f", A->mod[M_TEXT].native_names[c], (double)A->mod[M_TEXT].native[c]);
        fputc('\n', f);
    } else if (A->mod[M_TEXT].present)
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
            const mer_analysis_row *w = &A->rows[r];
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
    const char *file = NULL;
    int json = 0, rc = 0;
    long max_frames = 300, threads = 0, adapt_min = 5;
    mer_analyze_params ap = mer_analyze_default_params();
    for (int i = 1; i < argc; i++) {
        const char *v;
        if (cli_flag(argv[i], "--help") || cli_flag(argv[i], "-h")) {
            usage(stdout);
            return 0;
        } else if (cli_opt(argc, argv, &i, "--audio-model", &v)) ap.audio_model = v;
        else if (cli_opt(argc, argv, &i, "--faces-models", &v)) ap.faces_models = v;
        else if (cli_opt(argc, argv, &i, "--text", &v)) ap.text = v;
        else if (cli_opt(argc, argv, &i, "--text-model", &v)) ap.text_model = v;
        else if (cli_flag(argv[i], "--json")) json = 1;
        else if (cli_flag(argv[i], "--timeline")) ap.timeline = 1;
        else if (cli_opt(argc, argv, &i, "--fps", &v)) {
            if (!cli_parse_double(v, 0.01, 120, &ap.fps)) return cli_usage(CMD, "--fps wants a number in [0.01, 120], got '%s'", v);
        } else if (cli_opt(argc, argv, &i, "--max-frames", &v)) {
            if (!cli_parse_int(v, 1, 100000, &max_frames)) return cli_usage(CMD, "--max-frames wants an integer in [1, 100000], got '%s'", v);
        } else if (cli_opt(argc, argv, &i, "--threads", &v)) {
            if (!cli_parse_int(v, 0, 1024, &threads)) return cli_usage(CMD, "--threads wants an integer in [0, 1024], got '%s'", v);
        } else if (cli_opt(argc, argv, &i, "--adapt", &v)) {
            if (!strcmp(v, "auto")) ap.adapt = MER_ANALYZE_ADAPT_AUTO;
            else if (!strcmp(v, "none")) ap.adapt = MER_ANALYZE_ADAPT_NONE;
            else return cli_usage(CMD, "--adapt wants auto or none, got '%s'", v);
        } else if (cli_opt(argc, argv, &i, "--adapt-min", &v)) {
            if (!cli_parse_int(v, 2, 100000, &adapt_min)) return cli_usage(CMD, "--adapt-min wants an integer in [2, 100000], got '%s'", v);
        } else if (cli_opt(argc, argv, &i, "--weights", &v)) {
            int u = parse_weights(v, ap.weights);
            if (u) return u;
        } else if (cli_is_option(argv[i])) return cli_usage(CMD, "unknown option %s", argv[i]);
        else if (file) return cli_usage(CMD, "one FILE at a time (got '%s' and '%s')", file, argv[i]);
        else file = argv[i];
    }
    if (cli_error()) return cli_usage(CMD, "%s", cli_error());
    if (!file) return cli_usage(CMD, "FILE is required");
    if (ap.text_model && !ap.text) return cli_usage(CMD, "--text-model needs --text \"...\" (the transcript)");
    ap.max_frames = (int32_t)max_frames;
    ap.adapt_min = (int32_t)adapt_min;
    cli_set_threads(threads);

    /* a run (or its directory) may be ORG/NAME in the Hugging Face cache, as every --model */
    char *resolved = NULL, *resolved_text = NULL;
    if (ap.audio_model) {
        mer_status rs = mer_model_resolve(ap.audio_model, &resolved);
        if (rs) return cli_fail_status(CMD, rs, NULL);
        ap.audio_model = resolved;
    }
    if (ap.text_model) {
        mer_status rs = mer_model_resolve(ap.text_model, &resolved_text);
        if (rs) {
            free(resolved);
            return cli_fail_status(CMD, rs, NULL);
        }
        ap.text_model = resolved_text;
    }
    mer_analysis *A = NULL;
    mer_status s = mer_analyze(file, &ap, &A);
    free(resolved);
    free(resolved_text);
    if (s) return cli_fail_status(CMD, s, NULL); /* the message names the file or model */
    if (json) {
        char *text = NULL;
        if ((s = mer_analysis_to_json(A, &text))) rc = cli_fail_status(CMD, s, NULL);
        else fputs(text, stdout);
        free(text);
    } else {
        print_text(stdout, A);
    }
    if (!rc && (fflush(stdout) || ferror(stdout))) rc = cli_fail(CMD, "writing the output failed");
    mer_analysis_free(A);
    return rc;
}
