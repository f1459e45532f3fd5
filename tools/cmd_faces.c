/*
 * cmd_faces.c -- `mer faces INPUT`: faces with boxes, scores and expression probabilities in an
 * image or in sampled video frames, optional face crops as PNG, and a clip-level summary
 * (fraction of frames with a face, mean expression probabilities of the best face per frame).
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

static int is_image_path(const char *p) {
    const char *dot = strrchr(p, '.');
    if (!dot || strchr(dot, '/')) return 0;
    static const char *ext[] = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"};
    for (size_t i = 0; i < sizeof ext / sizeof *ext; i++)
        if (!strcasecmp(dot, ext[i])) return 1;
    return 0;
}

/* File name without directory and extension, for crop names. */
static void stem(char *out, size_t n, const char *path) {
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    snprintf(out, n, "%s", b);
    char *dot = strrchr(out, '.');
    if (dot && dot != out) *dot = '\0';
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

/* One frame (or the image) through detection, the report and the crops. */
typedef struct {
    const mer_faces *m;
    mer_faces_state *st;
    const mer_faces_params *p;
    FILE *o;
    int json, video;
    const char *crops, *name, *input;
    mer_faces_summary *sum;
    cli_progress *prog;
    int fi;
    int bad_frame; /* the frame whose detection failed, or -1 */
} face_run;

static mer_status face_frame(const mer_image *img, void *user) {
    face_run *r = user;
    FILE *o = r->o;
    const int json = r->json, video = r->video, fi = r->fi++;
    const char *crops = r->crops, *name = r->name, *input = r->input;
    mer_status s;
    {
        mer_face *faces = NULL;
        int32_t n = 0;
        s = mer_faces_detect(r->m, r->st, img, r->p, &faces, &n);
        if (s != MER_OK) {
            r->bad_frame = fi;
            return s;
        }
        mer_faces_summary_add(r->sum, faces, n);
        if (json) {
            fprintf(o, "%s\n  {\"index\": %lld, \"time\": %.4f, \"width\": %d, \"height\": %d, \"faces\": [",
                   fi ? "," : "", (long long)img->index, img->time, img->width, img->height);
        } else if (video) {
            fprintf(o, "frame %lld (t %.2f s): %d face%s\n", (long long)img->index, img->time, n,
                   n == 1 ? "" : "s");
        } else {
            fprintf(o, "%s: %d face%s\n", input, n, n == 1 ? "" : "s");
        }
        for (int32_t k = 0; k < n; k++) {
            const mer_face *f = &faces[k];
            const char *ex = f->expression >= 0 ? mer_face_expression_name(f->expression) : NULL;
            if (json) {
                fprintf(o, "%s\n   {\"x\": %.4f, \"y\": %.4f, \"width\": %.4f, \"height\": %.4f, "
                       "\"score\": %.6f, \"expression\": ", k ? "," : "", (double)f->x,
                       (double)f->y, (double)f->width, (double)f->height, (double)f->score);
                if (ex) fprintf(o, "\"%s\"", ex);
                else fprintf(o, "null");
                fprintf(o, ", \"expressions\": ");
                json_probs(o, f->expressions);
                fprintf(o, "}");
            } else {
                fprintf(o, "  face %d: box %.1f %.1f %.1f %.1f score %.3f %s (", k, (double)f->x,
                       (double)f->y, (double)f->width, (double)f->height, (double)f->score,
                       ex ? ex : "-");
                text_probs(o, f->expressions);
                fprintf(o, ")\n");
            }
            if (crops) {
                mer_image c = {0};
                s = mer_faces_crop(img, f, &c);
                if (s == MER_OK) {
                    char path[2048], sfx[64];
                    snprintf(sfx, sizeof sfx, "_f%lld_%d.png", (long long)img->index, k);
                    s = mer_name_path(path, sizeof path, crops, name, sfx, input, 0);
                    if (s == MER_OK) s = mer_image_write_png(path, c.rgb, c.width, c.height, 3);
                    mer_image_free(&c);
                    if (s != MER_OK) {
                        free(faces);
                        return s;
                    }
                } else {
                    mer_clear_error(); /* a box with no pixels on the image has no crop */
                }
            }
        }
        if (json) fprintf(o, "%s]}", n ? "\n  " : "");
        free(faces);
        if (fi + 1 > r->prog->total) r->prog->total = fi + 1;
        cli_progress_update(r->prog, fi + 1, NULL);
    }
    return MER_OK;
}

int cmd_faces(int argc, char **argv) {
    const char *input = NULL, *models = NULL, *crops = NULL;
    long every = 0, input_size = 416, threads = 0;
    double fps = 0, min_score = 0.5;
    int json = 0;
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
            json = 1;
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

    int video = !is_image_path(input);
    char name[256];
    stem(name, sizeof name, input);
    /* the crops are named after the input: the name goes through the one name-to-path check,
     * and a --crops that is a file is named as such (not the temporary inside it) */
    if (crops && ((s = mer_name_check(name, input, 0)) != MER_OK || (s = mer_mkdir_p(crops)) != MER_OK)) {
        int rc = cli_fail(CMD, "%s", mer_last_error());
        mer_faces_free(m);
        return rc;
    }

    mer_faces_params p = mer_faces_default_params();
    p.input_size = (int32_t)input_size;
    p.min_score = (float)min_score;
    mer_faces_state *st = NULL;
    if ((s = mer_faces_state_init(&st, NULL)) != MER_OK) {
        mer_faces_free(m);
        return cli_fail(CMD, "%s", mer_last_error());
    }
    /* the report is collected and printed only when everything succeeded */
    char *obuf = NULL;
    size_t olen = 0;
    FILE *o = open_memstream(&obuf, &olen);
    if (!o) {
        mer_faces_state_free(st);
        mer_faces_free(m);
        return cli_fail(CMD, "out of memory");
    }
    mer_faces_summary sum = {0};
    int rc = 0;
    cli_progress prog;
    mer_media_info info;
    int64_t expect = 1;
    if (video && mer_media_probe(input, &info) == MER_OK && info.has_video && info.fps > 0 && info.duration > 0)
        expect = fps > 0 ? (int64_t)(info.duration * fps) + 1 : (int64_t)(info.duration * info.fps / (every > 0 ? every : 1)) + 1;
    cli_progress_start(&prog, "faces", expect);
    if (json) {
        fprintf(o, "{\n \"input\": ");
        cli_json_str(o, input);
        fprintf(o, ",\n \"input_size\": %ld,\n \"min_score\": %.6g,\n \"frames\": [",
                input_size, min_score);
    }
    /* frames stream through detection one at a time (memory: one frame, whatever the clip
     * length); the report is printed only when every frame succeeded */
    face_run fr = {.m = m, .st = st, .p = &p, .o = o, .json = json, .video = video, .crops = crops,
                   .name = name, .input = input, .sum = &sum, .prog = &prog, .bad_frame = -1};
    if (!video) {
        mer_image img = {0};
        s = mer_image_load(input, &img);
        if (s == MER_OK) s = face_frame(&img, &fr);
        mer_image_free(&img);
    } else {
        mer_frame_sampling smp = {0};
        smp.fps = fps;
        smp.every = (int32_t)every;
        s = mer_media_each_video_frame(input, &smp, face_frame, &fr, NULL);
    }
    if (s != MER_OK && fr.bad_frame >= 0)
        rc = cli_fail(CMD, "%s: frame %d: %s", input, fr.bad_frame, mer_last_error());
    else if (s != MER_OK)
        rc = cli_fail(CMD, "%s", mer_last_error());
    cli_progress_end(&prog);
    if (rc == 0) {
        float mean[MER_FACE_EXPRESSIONS];
        mer_faces_summary_mean(&sum, mean);
        const int top = mer_faces_summary_top(&sum);
        if (json) {
            fprintf(o, "\n ],\n \"summary\": {\"frames\": %lld, \"frames_with_face\": %lld, "
                   "\"fraction_with_face\": %.6g, \"mean_expressions\": ",
                   (long long)sum.frames, (long long)sum.frames_with_face,
                   mer_faces_summary_fraction(&sum));
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
    }
    fclose(o);
    if (rc == 0) fwrite(obuf, 1, olen, stdout);
    free(obuf);
    mer_faces_state_free(st);
    mer_faces_free(m);
    return rc;
}
