/*
 * cmd_faces.c -- `mer faces INPUT`: faces with boxes, scores and expression probabilities in an
 * image or in sampled video frames, optional face crops as PNG, and a clip-level summary
 * (fraction of frames with a face, mean expression probabilities of the best face per frame).
 * The detection over frames, the crops and the summary are mer_faces_detect_file
 * (src/pipeline/faces_file.c); this file parses flags and prints the result.
 */
#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

static const char *CMD = "faces";

static void help(void) {
    printf("usage: mer faces INPUT [--every N | --fps F] [--min-score S] [--input-size N]\n"
           "                       [--json] [--crops DIR] [--models DIR] [--threads N]\n\n"
           "Detect faces (Tiny Face Detector) and their expressions (neutral, happy, sad, angry,\n"
           "fearful, disgusted, surprised) in an image (PNG, JPEG) or video frames.\n\n"
           "  --every N       video: every N-th frame (default: every frame)\n"
           "  --fps F         video: F frames per second instead\n"
           "  --min-score S   detection threshold in (0, 1) (default 0.5)\n"
           "  --input-size N  detector input side, a multiple of 32 (default 416)\n"
           "  --json          JSON on stdout instead of text\n"
           "  --crops DIR     write each face crop as DIR/<name>_f<frame>_<face>.png\n"
           "  --models DIR    face-api weights (default $MER_FACE_MODELS or models/face-api)\n"
           "  --threads N     worker threads (default: all CPUs)\n");
}

static void json_probs(FILE *o, const float *p) {
    fprintf(o, "{");
    for (int k = 0; k < MER_FACE_EXPRESSIONS; k++)
        fprintf(o, "%s\"%s\": %.6g", k ? ", " : "", mer_face_expression_name(k), (double)p[k]);
    fprintf(o, "}");
}

static void text_probs(FILE *o, const float *p) {
    for (int k = 0; k < MER_FACE_EXPRESSIONS; k++)
        fprintf(o, "%s%s %.3f", k ? " " : "", mer_face_expression_name(k), (double)p[k]);
}

/* One frame's faces, as JSON or text. */
static void print_frame(FILE *o, const mer_faces_frame *fr, int64_t fi, int json, int video, const char *input) {
    const int32_t n = fr->n_faces;
    if (json)
        fprintf(o, "%s\n  {\"index\": %lld, \"time\": %.4f, \"width\": %d, \"height\": %d, \"faces\": [",
                fi ? "," : "", (long long)fr->index, fr->time, fr->width, fr->height);
    else if (video)
        fprintf(o, "frame %lld (t %.2f s): %d face%s\n", (long long)fr->index, fr->time, n, n == 1 ? "" : "s");
    else
        fprintf(o, "%s: %d face%s\n", input, n, n == 1 ? "" : "s");
    for (int32_t k = 0; k < n; k++) {
        const mer_face *f = &fr->faces[k];
        const char *ex = f->expression >= 0 ? mer_face_expression_name(f->expression) : NULL;
        if (json) {
            fprintf(o, "%s\n   {\"x\": %.4f, \"y\": %.4f, \"width\": %.4f, \"height\": %.4f, "
                    "\"score\": %.6f, \"expression\": ", k ? "," : "", (double)f->x, (double)f->y,
                    (double)f->width, (double)f->height, (double)f->score);
            if (ex) fprintf(o, "\"%s\"", ex);
            else fprintf(o, "null");
            fprintf(o, ", \"expressions\": ");
            json_probs(o, f->expressions);
            fprintf(o, "}");
        } else {
            fprintf(o, "  face %d: box %.1f %.1f %.1f %.1f score %.3f %s (", k, (double)f->x, (double)f->y,
                    (double)f->width, (double)f->height, (double)f->score, ex ? ex : "-");
            text_probs(o, f->expressions);
            fprintf(o, ")\n");
        }
    }
    if (json) fprintf(o, "%s]}", n ? "\n  " : "");
}

typedef struct {
    cli_progress bar;
    int started;
} face_prog;

static void on_frame(int64_t done, int64_t total, void *user) {
    face_prog *fp = user;
    if (!fp->started) {
        cli_progress_start(&fp->bar, CMD, total);
        fp->started = 1;
    }
    fp->bar.total = total;
    cli_progress_update(&fp->bar, done, NULL);
}

int cmd_faces(int argc, char **argv) {
    const char *input = NULL, *models = NULL, *crops = NULL;
    long every = 0, input_size = 416, threads = 0;
    double fps = 0, min_score = 0.5;
    int json_out = 0;
    for (int i = 1; i < argc; i++) {
        const char *v;
        if (cli_flag(argv[i], "--help") || cli_flag(argv[i], "-h")) {
            help();
            return 0;
        } else if (cli_opt(argc, argv, &i, "--every", &v)) {
            if (!cli_parse_int(v, 1, 1000000, &every))
                return cli_usage(CMD, "--every needs a positive integer, got '%s'", v);
        } else if (cli_opt(argc, argv, &i, "--fps", &v)) {
            if (!cli_parse_double(v, 1e-3, 1000, &fps))
                return cli_usage(CMD, "--fps needs a number in (0, 1000], got '%s'", v);
        } else if (cli_opt(argc, argv, &i, "--min-score", &v)) {
            if (!cli_parse_double(v, 1e-6, 0.999999, &min_score))
                return cli_usage(CMD, "--min-score needs a number in (0, 1), got '%s'", v);
        } else if (cli_opt(argc, argv, &i, "--input-size", &v)) {
            if (!cli_parse_int(v, 32, 4096, &input_size) || input_size % 32)
                return cli_usage(CMD, "--input-size needs a multiple of 32 in [32, 4096], got '%s'", v);
        } else if (cli_opt(argc, argv, &i, "--threads", &v)) {
            if (!cli_parse_int(v, 0, 1024, &threads))
                return cli_usage(CMD, "--threads needs an integer >= 0, got '%s'", v);
        } else if (cli_opt(argc, argv, &i, "--crops", &v)) {
            crops = v;
        } else if (cli_opt(argc, argv, &i, "--models", &v)) {
            models = v;
        } else if (cli_flag(argv[i], "--json")) {
            json_out = 1;
        } else if (cli_is_option(argv[i])) {
            return cli_usage(CMD, "unknown option %s", argv[i]);
        } else if (input) {
            return cli_usage(CMD, "one INPUT only (got '%s' and '%s')", input, argv[i]);
        } else {
            input = argv[i];
        }
    }
    if (cli_error()) return cli_usage(CMD, "%s", cli_error());
    if (!input) return cli_usage(CMD, "needs an INPUT image or video");
    if (every > 0 && fps > 0) return cli_usage(CMD, "--every and --fps exclude each other");
    cli_set_threads(threads);

    mer_faces *m = NULL;
    mer_status s = mer_faces_load(&m, models, NULL);
    if (s != MER_OK) return cli_fail(CMD, "%s", mer_last_error());

    mer_faces_file_params p = mer_faces_file_default_params();
    p.detect.input_size = (int32_t)input_size;
    p.detect.min_score = (float)min_score;
    p.sampling.fps = fps;
    p.sampling.every = (int32_t)every;
    p.crops = crops;
    face_prog fp = {0};
    p.progress = on_frame;
    p.progress_user_data = &fp;
    p.abort = cli_interrupted;
    mer_faces_state *st = NULL;
    if ((s = mer_faces_state_init(&st, NULL)) != MER_OK) {
        mer_faces_free(m);
        return cli_fail(CMD, "%s", mer_last_error());
    }
    mer_faces_file_result r;
    cli_catch_sigint(1);
    s = mer_faces_detect_file(m, st, input, &p, &r);
    cli_catch_sigint(0);
    if (fp.started) cli_progress_end(&fp.bar);
    mer_faces_state_free(st);
    mer_faces_free(m);
    if (s != MER_OK) return cli_fail(CMD, "%s", mer_last_error());
    /* the report, printed only when every frame succeeded */
    FILE *o = stdout;
    const int json = json_out, video = r.video;
    const mer_faces_summary sum = r.summary;
    if (json) {
        fprintf(o, "{\n \"input\": ");
        cli_json_str(o, input);
        fprintf(o, ",\n \"input_size\": %ld,\n \"min_score\": %.6g,\n \"frames\": [", input_size, min_score);
    }
    for (int64_t fi = 0; fi < r.n_frames; fi++) print_frame(o, &r.frames[fi], fi, json, video, input);
    float mean[MER_FACE_EXPRESSIONS];
    mer_faces_summary_mean(&sum, mean);
    const int top = mer_faces_summary_top(&sum);
    if (json) {
        fprintf(o, "\n ],\n \"summary\": {\"frames\": %lld, \"frames_with_face\": %lld, "
                "\"fraction_with_face\": %.6g, \"mean_expressions\": ",
                (long long)sum.frames, (long long)sum.frames_with_face, mer_faces_summary_fraction(&sum));
        json_probs(o, mean);
        fprintf(o, ", \"top_expression\": ");
        if (top >= 0) fprintf(o, "\"%s\"}\n}\n", mer_face_expression_name(top));
        else fprintf(o, "null}\n}\n");
    } else if (video) {
        fprintf(o, "summary: %lld frames, %lld with a face (%.3f)", (long long)sum.frames,
                (long long)sum.frames_with_face, mer_faces_summary_fraction(&sum));
        if (top >= 0) {
            fprintf(o, "; mean expression: ");
            text_probs(o, mean);
            fprintf(o, "; top %s", mer_face_expression_name(top));
        }
        fprintf(o, "\n");
    }
    mer_faces_file_result_free(&r);
    return 0;
}
