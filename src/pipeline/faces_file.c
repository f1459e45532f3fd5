/*
 * faces_file.c -- `mer faces` as a library call: the faces (boxes, scores, expressions) of an
 * image or of sampled video frames, optional face crops as PNG, and the clip-level summary.
 * Frames stream through the detector one at a time (memory: one frame whatever the clip
 * length); the result keeps each frame's faces for the caller to report.
 */
#include "internal.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

mer_faces_file_params mer_faces_file_default_params(void) {
    mer_faces_file_params p;
    memset(&p, 0, sizeof p);
    p.detect = mer_faces_default_params();
    return p;
}

void mer_faces_file_result_free(mer_faces_file_result *r) {
    if (!r) return;
    for (int64_t i = 0; r->frames && i < r->n_frames; i++) free(r->frames[i].faces);
    free(r->frames);
    memset(r, 0, sizeof *r);
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

typedef struct {
    const mer_faces *m;
    mer_faces_state *st;
    const mer_faces_file_params *p;
    const char *input;
    char name[256];
    mer_faces_file_result *res;
    int64_t cap, expect;
    int64_t bad_frame; /* the frame whose detection failed, or -1 */
} face_run;

/* Each face's crop as <crops>/<name>_f<frame>_<face>.png (a box with no pixels has none). */
static mer_status write_crops(const face_run *r, const mer_image *img, const mer_face *faces, int32_t n) {
    for (int32_t k = 0; k < n; k++) {
        mer_image c = {0};
        if (mer_faces_crop(img, &faces[k], &c) != MER_OK) {
            mer_clear_error();
            continue;
        }
        char path[MER_PATH_CAP], sfx[64];
        snprintf(sfx, sizeof sfx, "_f%lld_%d.png", (long long)img->index, (int)k);
        mer_status s = mer_name_path(path, sizeof path, r->p->crops, r->name, sfx, r->input, 0);
        if (s == MER_OK) s = mer_image_write_png(path, c.rgb, c.width, c.height, 3);
        mer_image_free(&c);
        if (s) return s;
    }
    return MER_OK;
}

static mer_status face_frame(const mer_image *img, void *user) {
    face_run *r = user;
    mer_faces_file_result *res = r->res;
    const int64_t fi = res->n_frames;
    mer_status s = mer__abort_check(r->p->abort, r->p->abort_user_data, r->input);
    if (s) return s;
    if (fi == r->cap) {
        const int64_t cap = r->cap ? 2 * r->cap : 16;
        mer_faces_frame *f = realloc(res->frames, (size_t)cap * sizeof *f);
        if (!f) return mer__err(MER_ERR_NOMEM, "%s: out of memory at frame %lld", r->input, (long long)fi);
        res->frames = f;
        r->cap = cap;
    }
    mer_faces_frame *fr = &res->frames[fi];
    memset(fr, 0, sizeof *fr);
    fr->index = img->index;
    fr->time = img->time;
    fr->width = img->width;
    fr->height = img->height;
    if ((s = mer_faces_detect(r->m, r->st, img, &r->p->detect, &fr->faces, &fr->n_faces))) {
        r->bad_frame = fi;
        return s;
    }
    res->n_frames++;
    mer_faces_summary_add(&res->summary, fr->faces, fr->n_faces);
    if (r->p->crops && (s = write_crops(r, img, fr->faces, fr->n_faces))) return s;
    if (fi + 1 > r->expect) r->expect = fi + 1;
    if (r->p->progress) r->p->progress(fi + 1, r->expect, r->p->progress_user_data);
    return MER_OK;
}

mer_status mer_faces_detect_file(const mer_faces *m, mer_faces_state *st, const char *input,
                                 const mer_faces_file_params *params, mer_faces_file_result *out) {
    const mer_faces_file_params d = mer_faces_file_default_params();
    const mer_faces_file_params *p = params ? params : &d;
    if (out) memset(out, 0, sizeof *out);
    if (!m || !input || !out) return mer__err(MER_ERR_INVALID_ARG, "mer_faces_detect_file: bad arguments");
    face_run r = {.m = m, .st = st, .p = p, .input = input, .res = out, .bad_frame = -1, .expect = 1};
    stem(r.name, sizeof r.name, input);
    out->video = !is_image_path(input);
    /* the crops are named after the input: the name goes through the one name-to-path check */
    mer_status s = MER_OK;
    if (p->crops && ((s = mer_name_check(r.name, input, 0)) || (s = mer_mkdir_p(p->crops)))) return s;
    const int old = mer__threads_use(p->n_threads);
    if (!out->video) {
        mer_image img = {0};
        s = mer_image_load(input, &img);
        if (s == MER_OK) s = face_frame(&img, &r);
        mer_image_free(&img);
    } else {
        /* the frames to expect, for progress (the sampler decides the exact count) */
        mer_media_info info;
        const mer_frame_sampling *smp = &p->sampling;
        if (mer_media_probe(input, &info) == MER_OK && info.has_video && info.fps > 0 && info.duration > 0)
            r.expect = smp->fps > 0 ? (int64_t)(info.duration * smp->fps) + 1
                                    : (int64_t)(info.duration * info.fps / (smp->every > 0 ? smp->every : 1)) + 1;
        mer_clear_error();
        s = mer_media_each_video_frame(input, smp, face_frame, &r, NULL);
    }
    mer__threads_use(old);
    if (s != MER_OK && r.bad_frame >= 0) mer__err_prefix("%s: frame %lld", input, (long long)r.bad_frame);
    if (s) mer_faces_file_result_free(out);
    return s;
}
