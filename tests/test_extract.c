/*
 * test_extract.c -- the library's extraction over many inputs (src/pipeline/extract.c) through the
 * public API: per-input outcomes and counts with a bad file and a name clash among good ones,
 * skipping on a rerun, the output equal to the single-file extractor, progress once per input
 * with its item final, abort mid-folder (MER_ERR_ABORTED, nothing half-written), the one-file
 * layout and the run-level errors. Inputs are 0.25 s tones written here (acoustic descriptors:
 * no model, a few ms each).
 */
#include "test.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

/* A 0.25 s tone at f Hz, 16 kHz float wav. */
static void tone(const char *path, double f) {
    float x[4000];
    for (int i = 0; i < 4000; i++) x[i] = (float)(0.3 * sin(2.0 * M_PI * f * i / 16000.0) + 0.01 * sin(i * 1.7));
    if (mer_test_write_wav(path, x, 4000, 16000, 1) != 0) mer_test_fail(__FILE__, __LINE__, "cannot write %s", path);
}

static int exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0;
}

/* Files in dir whose name contains ".tmp." (a half-written output). */
static int temporaries(const char *dir) {
    DIR *d = opendir(dir);
    int n = 0;
    if (!d) return 0;
    for (struct dirent *e; (e = readdir(d));) n += strstr(e->d_name, ".tmp.") != NULL;
    closedir(d);
    return n;
}

typedef struct {
    const mer_extract_result *res;
    int calls, bad, seen[8];
    int abort_after; /* abort polls answered false before true (0: never abort) */
    int polls;
} watch;

static void on_progress(int64_t done, int64_t total, void *u) {
    watch *w = u;
    w->calls++;
    if (done < 1 || done > w->res->n || total != w->res->n || w->res->items[done - 1].outcome == MER_EXTRACT_PENDING) {
        w->bad++;
        return;
    }
    w->seen[done - 1]++;
}

static bool on_abort(void *u) {
    watch *w = u;
    return w->abort_after > 0 && ++w->polls > w->abort_after;
}

MER_TEST(extract_files_outcomes_counts_progress) {
    const char *dir = mer_test_tmpdir("extract_files");
    char g1[600], g2[600], bad[600], sub[600], clash[600], out[600], p[800];
    snprintf(g1, sizeof g1, "%s/g1.wav", dir);
    snprintf(g2, sizeof g2, "%s/g2.wav", dir);
    snprintf(bad, sizeof bad, "%s/bad.wav", dir);
    snprintf(sub, sizeof sub, "%s/sub", dir);
    snprintf(clash, sizeof clash, "%s/sub/g1.flac", dir);
    snprintf(out, sizeof out, "%s/feats", dir);
    REQUIRE(mkdir(sub, 0755) == 0);
    tone(g1, 220);
    tone(g2, 330);
    tone(clash, 440);
    REQUIRE(mer_test_write(bad, "RIFF, but not audio", 19) == 0);
    const char *in[4] = {g1, bad, clash, g2};
    mer_acoustic_recipe r = mer_acoustic_default_recipe();
    char *recipe = NULL;
    REQUIRE_OK(mer_acoustic_recipe_to_json(&r, &recipe));
    mer_extract_result res;
    watch w = {.res = &res};
    mer_extract_params ep = mer_extract_default_params();
    ep.recipe = recipe;
    ep.progress = on_progress;
    ep.progress_user_data = &w;
    CHECK_OK(mer_extract_acoustic_files(&r, in, 4, out, &ep, &res));
    REQUIRE(res.n == 4);
    CHECK(res.written == 2 && res.failed == 2 && res.skipped == 0);
    CHECK(res.items[0].outcome == MER_EXTRACT_WRITTEN && res.items[3].outcome == MER_EXTRACT_WRITTEN);
    CHECK(res.items[1].outcome == MER_EXTRACT_FAILED && res.items[1].status != MER_OK && res.items[1].error &&
          strstr(res.items[1].error, "bad.wav"));
    CHECK(res.items[2].outcome == MER_EXTRACT_FAILED && res.items[2].error &&
          strstr(res.items[2].error, "g1.npy is already used by another input"));
    CHECK(!res.items[0].error && !strcmp(res.items[0].name, "g1") && res.items[0].input == g1);
    CHECK(w.calls == 4 && w.bad == 0);
    for (int i = 0; i < 4; i++) CHECK(w.seen[i] == 1);
    mer_extract_result_free(&res);
    mer_extract_result_free(&res); /* zeroed: a no-op */
    snprintf(p, sizeof p, "%s/recipe.json", out);
    CHECK(exists(p));
    snprintf(p, sizeof p, "%s/bad.npy", out);
    CHECK(!exists(p));
    CHECK(temporaries(out) == 0);
    /* the file is what the single-file extractor gives, bit for bit */
    float *a = NULL, *b = NULL;
    int32_t na = 0, nb = 0;
    int64_t sa[MER_MAX_DIMS], sb[2];
    snprintf(p, sizeof p, "%s/g1.npy", out);
    REQUIRE_OK(mer_npy_read(p, &a, &na, sa));
    REQUIRE_OK(mer_acoustic_extract_file(&r, g1, &b, &nb, sb));
    CHECK(na == 1 && nb == 1 && sa[0] == sb[0] && !memcmp(a, b, (size_t)sa[0] * sizeof *a));
    free(a);
    free(b);
    /* a rerun skips what exists; the failures stay failures */
    memset(&w, 0, sizeof w);
    w.res = &res;
    CHECK_OK(mer_extract_acoustic_files(&r, in, 4, out, &ep, &res));
    CHECK(res.written == 0 && res.skipped == 2 && res.failed == 2 && w.calls == 4 && w.bad == 0);
    CHECK(res.items[0].outcome == MER_EXTRACT_SKIPPED && res.items[3].outcome == MER_EXTRACT_SKIPPED);
    mer_extract_result_free(&res);
    /* another recipe over these files is refused (the run as a whole) */
    mer_acoustic_recipe r2 = r;
    snprintf(r2.pool, sizeof r2.pool, "none");
    char *recipe2 = NULL;
    REQUIRE_OK(mer_acoustic_recipe_to_json(&r2, &recipe2));
    ep.recipe = recipe2;
    ep.progress = NULL;
    CHECK_ERR(mer_extract_acoustic_files(&r2, in, 4, out, &ep, &res), MER_ERR_INVALID_ARG, "another recipe");
    mer_extract_result_free(&res);
    free(recipe2);
    free(recipe);
}

MER_TEST(extract_files_abort_layout_errors) {
    const char *dir = mer_test_tmpdir("extract_files_abort");
    char g[3][600], out[600], p[800], list[600];
    const char *in[3];
    for (int i = 0; i < 3; i++) {
        snprintf(g[i], sizeof g[i], "%s/g%d.wav", dir, i);
        tone(g[i], 200 + 50 * i);
        in[i] = g[i];
    }
    snprintf(out, sizeof out, "%s/feats", dir);
    mer_acoustic_recipe r = mer_acoustic_default_recipe();
    mer_extract_result res;
    watch w = {.res = &res, .abort_after = 1};
    mer_extract_params ep = mer_extract_default_params();
    ep.abort = on_abort;
    ep.abort_user_data = &w;
    ep.progress = on_progress;
    ep.progress_user_data = &w;
    /* the second input's poll stops the run: the first is written, the others never start */
    CHECK_ERR(mer_extract_acoustic_files(&r, in, 3, out, &ep, &res), MER_ERR_ABORTED, "stopped by the caller");
    REQUIRE(res.n == 3);
    CHECK(res.items[0].outcome == MER_EXTRACT_WRITTEN && res.items[1].outcome == MER_EXTRACT_PENDING &&
          res.items[2].outcome == MER_EXTRACT_PENDING && res.written == 1 && w.calls == 1 && w.bad == 0);
    mer_extract_result_free(&res);
    snprintf(p, sizeof p, "%s/g0.npy", out);
    CHECK(exists(p));
    snprintf(p, sizeof p, "%s/g1.npy", out);
    CHECK(!exists(p));
    CHECK(temporaries(out) == 0);
    /* one input, out not a directory: out is the .npy itself */
    snprintf(p, sizeof p, "%s/one.npy", dir);
    ep = mer_extract_default_params();
    CHECK_OK(mer_extract_acoustic_files(&r, in, 1, p, &ep, &res));
    CHECK(res.written == 1 && exists(p));
    mer_extract_result_free(&res);
    /* several inputs need a directory; the one file stays as it was */
    CHECK_ERR(mer_extract_acoustic_files(&r, in, 2, p, &ep, &res), MER_ERR_INVALID_ARG, "is not a directory");
    mer_extract_result_free(&res);
    /* an output may not replace an input */
    CHECK_ERR(mer_extract_acoustic_files(&r, in, 1, g[0], &ep, &res), MER_ERR_INVALID_ARG, NULL);
    mer_extract_result_free(&res);
    /* a list: its inputs follow the array's; an empty list names no input */
    snprintf(list, sizeof list, "%s/list.txt", dir);
    char text[2000];
    snprintf(text, sizeof text, "# clips\n%s\n\n%s\n", g[1], g[2]);
    REQUIRE(mer_test_write(list, text, strlen(text)) == 0);
    ep.list = list;
    snprintf(out, sizeof out, "%s/listed", dir);
    CHECK_OK(mer_extract_acoustic_files(&r, in, 1, out, &ep, &res));
    CHECK(res.n == 3 && res.written == 3 && !strcmp(res.items[2].input, g[2]));
    mer_extract_result_free(&res);
    REQUIRE(mer_test_write(list, "# none\n", 7) == 0);
    CHECK_ERR(mer_extract_acoustic_files(&r, NULL, 0, out, &ep, &res), MER_ERR_INVALID_ARG, "names no input");
    mer_extract_result_free(&res);
    CHECK_ERR(mer_extract_acoustic_files(NULL, in, 1, out, NULL, &res), MER_ERR_INVALID_ARG, NULL);
    mer_extract_result_free(NULL);
}

/* mer_eval_csv by value: 5 labels, 4 predictions (one clip unlabelled), classes the sorted union
 * (a predicted class without support included); a repeated clip is refused naming both rows. */
MER_TEST(eval_csv_by_value) {
    const char *dir = mer_test_tmpdir("eval_csv");
    char lab[600], pred[600], dup[600];
    snprintf(lab, sizeof lab, "%s/labels.csv", dir);
    snprintf(pred, sizeof pred, "%s/pred.csv", dir);
    snprintf(dup, sizeof dup, "%s/dup.csv", dir);
    const char *l = "name,emotion\na,happy\nb,sad\nc,happy\nd,sad\ne,happy\n";
    const char *p = "name,discrete\na,happy\nb,happy\nc,happy\nx,sad\nd,angry\n";
    REQUIRE(mer_test_write(lab, l, strlen(l)) == 0);
    REQUIRE(mer_test_write(pred, p, strlen(p)) == 0);
    mer_eval_result r;
    REQUIRE_OK(mer_eval_csv(lab, pred, NULL, &r));
    CHECK(r.n == 4 && r.unlabeled == 1 && r.labels == 5 && r.n_classes == 3);
    CHECK(!strcmp(r.classes[0], "angry") && !strcmp(r.classes[1], "happy") && !strcmp(r.classes[2], "sad"));
    /* truth happy,sad,happy,sad; predicted happy,happy,happy,angry: accuracy 2/4 */
    CHECK_NEAR(r.metrics.accuracy, 0.5, 1e-12);
    CHECK(r.metrics.confusion[1 * 3 + 1] == 2 && r.metrics.confusion[2 * 3 + 1] == 1 && r.metrics.confusion[2 * 3 + 0] == 1);
    /* happy: precision 2/3, recall 1 -> f1 0.8 (support 2); sad f1 0; WAF = 0.8 * 2/4 */
    CHECK_NEAR(r.metrics.waf, 0.4, 1e-12);
    mer_eval_result_free(&r);
    const char *d2 = "name,pred\na,happy\nb,sad\na,sad\n";
    REQUIRE(mer_test_write(dup, d2, strlen(d2)) == 0);
    CHECK_ERR(mer_eval_csv(lab, dup, NULL, &r), MER_ERR_FORMAT, "rows 2 and 4");
    CHECK(r.n_classes == 0 && r.classes[0] == NULL);
    mer_eval_params ep = mer_eval_default_params();
    ep.pred_col = "nope";
    CHECK_ERR(mer_eval_csv(lab, pred, &ep, &r), MER_ERR_NOT_FOUND, "nope");
}

static bool stop_now(void *u) {
    (void)u;
    return true;
}

/* mer_faces_detect_file on an image: one frame, its faces, the summary, a crop per face; abort
 * before the first frame stops with MER_ERR_ABORTED and an empty result. */
MER_TEST(faces_detect_file_image) {
    mer_faces *m = NULL;
    REQUIRE_OK(mer_faces_load(&m, "models/face-api", NULL));
    const char *dir = mer_test_tmpdir("faces_detect_file");
    char crops[600], crop[800];
    snprintf(crops, sizeof crops, "%s/crops", dir);
    mer_faces_file_params p = mer_faces_file_default_params();
    p.crops = crops;
    mer_faces_file_result r;
    CHECK_OK(mer_faces_detect_file(m, NULL, "tests/fixtures/image/astronaut.png", &p, &r));
    CHECK(r.video == 0 && r.n_frames == 1 && r.summary.frames == 1 && r.summary.frames_with_face == 1);
    CHECK(r.n_frames == 1 && r.frames[0].n_faces >= 1 && r.frames[0].faces[0].score > 0.5f);
    CHECK(mer_faces_summary_top(&r.summary) >= 0);
    snprintf(crop, sizeof crop, "%s/astronaut_f0_0.png", crops);
    struct stat st;
    CHECK(stat(crop, &st) == 0 && st.st_size > 1000);
    mer_faces_file_result_free(&r);
    p.crops = NULL;
    p.abort = stop_now;
    CHECK_ERR(mer_faces_detect_file(m, NULL, "tests/fixtures/image/astronaut.png", &p, &r), MER_ERR_ABORTED,
              "stopped by the caller");
    CHECK(r.n_frames == 0 && r.frames == NULL);
    mer_faces_free(m);
}

typedef struct {
    int progress, polls, stop_at;
} predict_watch;

static void predict_progress(int64_t done, int64_t total, void *u) {
    predict_watch *w = u;
    if (done == w->progress + 1 && total == 2) w->progress++;
}

static bool predict_abort(void *u) {
    predict_watch *w = u;
    return ++w->polls == w->stop_at;
}

/* mer_predict on media through the bundled acoustic run: the CSV written, one progress call per
 * file; abort before the second file: MER_ERR_ABORTED and no CSV. */
MER_TEST(predict_media_progress_abort) {
    char *run = NULL;
    REQUIRE_OK(mer_data_path("models/emodb-acoustic", &run));
    const char *dir = mer_test_tmpdir("predict_media_lib");
    char out[600];
    snprintf(out, sizeof out, "%s/p.csv", dir);
    const char *clips[2] = {"data/emodb/flac/03a01Fa.flac", "data/emodb/flac/03a01Nc.flac"};
    predict_watch w = {0, 0, 0};
    mer_predict_params p = mer_predict_default_params();
    p.run = run;
    p.media = clips;
    p.n_media = 2;
    p.out = out;
    p.progress = predict_progress;
    p.progress_user_data = &w;
    p.abort = predict_abort;
    p.abort_user_data = &w;
    mer_predict_result r;
    CHECK_OK(mer_predict(&p, &r));
    CHECK(r.n == 2 && r.n_classes >= 2 && w.progress == 2 && w.polls == 3);
    struct stat st;
    CHECK(stat(out, &st) == 0 && st.st_size > 20);
    snprintf(out, sizeof out, "%s/q.csv", dir);
    w = (predict_watch){0, 0, 2};
    CHECK_ERR(mer_predict(&p, &r), MER_ERR_ABORTED, "03a01Nc.flac");
    CHECK(w.progress == 1 && r.n == 0 && stat(out, &st) != 0);
    p.n_features = 1; /* features and media: one or the other */
    CHECK_ERR(mer_predict(&p, &r), MER_ERR_INVALID_ARG, NULL);
    free(run);
}
