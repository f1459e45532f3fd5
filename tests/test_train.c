/*
 * test_train.c -- the training engine end to end: the `attention` model against PyTorch
 * (fixture from tests/fixtures/train/make_attention_ref.py), metrics against hand values and
 * scikit-learn (make_metrics_ref.py), tiny synthetic runs (learning, bitwise reproducibility,
 * resume == uninterrupted, grouped folds), data-set errors, and the train/predict/eval CLI.
 */
#include "test.h"
#include "train/train.h"

#include <math.h>
#include <sys/stat.h>
#include <unistd.h>

#define FIX "tests/fixtures/train/"

/* ---- the attention model against PyTorch --------------------------------------------------- */

static const float *fx(mer_safetensors *st, const char *name, int64_t *n) {
    mer_safetensors_entry e;
    if (mer_safetensors_find(st, name, &e) != MER_OK) return NULL;
    if (n) *n = (int64_t)(e.nbytes / mer_dtype_size(e.dtype));
    return e.data;
}

MER_TEST(train_attention_matches_torch) {
    mer_safetensors *st = NULL;
    REQUIRE_OK(mer_safetensors_open(&st, FIX "attention_ref.safetensors"));
    enum { N = 48, C = 6, H = 32, DA = 24, DT = 40, DV = 16, STEPS = 20, B = 8 };
    mer__model_config cfg;
    memset(&cfg, 0, sizeof cfg);
    snprintf(cfg.model, sizeof cfg.model, "attention");
    cfg.n_classes = C;
    cfg.n_mod = 3;
    cfg.hidden = H;
    cfg.dropout = 0.0f;
    const char *mods[3] = {"audio", "text", "video"};
    const int64_t dims[3] = {DA, DT, DV};
    for (int m = 0; m < 3; m++) {
        snprintf(cfg.modality[m], MER_NAME_MAX, "%s", mods[m]);
        cfg.dim[m] = dims[m];
    }
    mer__model *m = NULL;
    REQUIRE_OK(mer__model_create(&m, &cfg, NULL));
    REQUIRE_OK(mer__model_load(m, FIX "attention_ref.safetensors"));
    const float *x[3] = {fx(st, "x.audio", NULL), fx(st, "x.text", NULL), fx(st, "x.video", NULL)};
    const int32_t *labels = (const int32_t *)fx(st, "labels", NULL);
    const int32_t *batches = (const int32_t *)fx(st, "batches", NULL);
    const float *ref0 = fx(st, "ref.logits0", NULL), *ref_end = fx(st, "ref.logits_end", NULL);
    const double *ref_loss = (const double *)fx(st, "ref.losses", NULL);
    REQUIRE(x[0] && x[1] && x[2] && labels && batches && ref0 && ref_end && ref_loss);

    static float logits[N * C];
    mer__batch all = {.n = N, .n_mod = 3, .x = {x[0], x[1], x[2]}, .dim = {DA, DT, DV}};
    mer__act_reset(&m->nn.act);
    REQUIRE_OK(m->ops->forward(m, &all, 0, NULL, logits));
    double ref_max = 0, d = mer_test_maxdiff(logits, ref0, N * C, &ref_max);
    CHECK(d <= 1e-5 * ref_max);
    printf("    initial logits: max |diff| %.3g, max |torch| %.3g (bar 1e-5 relative)\n", d, ref_max);

    mer__optim opt;
    REQUIRE_OK(mer__optim_init(&opt, MER_OPT_ADAM, m->nn.n_params, 1e-3f, 1e-5f));
    static float xb[3][B * 64], probs[B * C], dl[B * C];
    int32_t yb[B];
    mer__rng rng;
    mer__rng_seed(&rng, 0);
    double worst = 0;
    for (int s = 0; s < STEPS; s++) {
        for (int i = 0; i < B; i++) {
            int32_t k = batches[s * B + i];
            yb[i] = labels[k];
            for (int mm = 0; mm < 3; mm++)
                memcpy(xb[mm] + i * dims[mm], x[mm] + k * dims[mm], (size_t)dims[mm] * sizeof(float));
        }
        mer__batch b = {.n = B, .n_mod = 3, .x = {xb[0], xb[1], xb[2]}, .dim = {DA, DT, DV}, .y = yb};
        memset(m->nn.grads, 0, (size_t)m->nn.n_params * sizeof(float));
        mer__act_reset(&m->nn.act);
        REQUIRE_OK(m->ops->forward(m, &b, 1, &rng, logits));
        float loss = mer__cross_entropy_fwd(probs, logits, yb, NULL, 0.0f, B, C);
        memset(dl, 0, sizeof dl);
        mer__cross_entropy_bwd(dl, probs, yb, NULL, 0.0f, B, C);
        REQUIRE_OK(m->ops->backward(m, &b, dl));
        mer__optim_step(&opt, m->nn.params, m->nn.grads);
        double e = fabs(loss - ref_loss[s]);
        if (e > worst) worst = e;
    }
    CHECK(worst <= 1e-4);
    printf("    20 Adam steps: max |loss - torch| = %.3g\n", worst);
    mer__act_reset(&m->nn.act);
    REQUIRE_OK(m->ops->forward(m, &all, 0, NULL, logits));
    d = mer_test_maxdiff(logits, ref_end, N * C, &ref_max);
    CHECK(d <= 1e-4 * ref_max);
    mer__optim_free(&opt);
    mer__model_free(m);
    mer_safetensors_free(st);
}

/* ---- metrics --------------------------------------------------------------------------------- */

MER_TEST(train_metrics_hand_values) {
    /* truth 0 0 1 1 2, pred 0 1 1 1 0: class 0 P=1/2 R=1/2 F1=1/2; class 1 P=2/3 R=1 F1=0.8;
     * class 2 P=0 R=0 F1=0 -> WAF = (2*.5 + 2*.8 + 0)/5 = 0.52, macro = 1.3/3, UAR = 1.5/3 */
    int32_t t[5] = {0, 0, 1, 1, 2}, p[5] = {0, 1, 1, 1, 0};
    mer_metrics m;
    REQUIRE_OK(mer_metrics_compute(t, p, 5, 3, &m));
    CHECK_NEAR(m.waf, 0.52, 1e-12);
    CHECK_NEAR(m.macro_f1, 1.3 / 3, 1e-12);
    CHECK_NEAR(m.uar, 0.5, 1e-12);
    CHECK_NEAR(m.accuracy, 0.6, 1e-12);
    CHECK(m.confusion[0 * 3 + 1] == 1 && m.confusion[2 * 3 + 0] == 1 && m.support[1] == 2);
    /* a class absent from truth and predictions is left out of macro averages, as sklearn does */
    REQUIRE_OK(mer_metrics_compute(t, p, 5, 4, &m));
    CHECK_NEAR(m.macro_f1, 1.3 / 3, 1e-12);
    CHECK_ERR(mer_metrics_compute(t, p, 5, 2, &m), MER_ERR_INVALID_ARG, "out of range");
    float probs[6] = {0.2f, 0.5f, 0.5f, 0.9f, 0.05f, 0.05f};
    int32_t am[2];
    mer_argmax_rows(probs, 2, 3, am);
    CHECK(am[0] == 1 && am[1] == 0); /* first maximum on ties */
}

MER_TEST(train_metrics_match_sklearn) {
    mer_json *j = NULL;
    REQUIRE_OK(mer_json_load(&j, FIX "metrics_ref.json"));
    for (int c = 0; c < 3; c++) {
        char key[128];
        int64_t nc;
        snprintf(key, sizeof key, "cases.%d.n_classes", c);
        REQUIRE_OK(mer_json_get_int(j, key, &nc));
        static int64_t t64[512], p64[512];
        static int32_t t[512], p[512];
        int32_t n = 0, n2 = 0;
        snprintf(key, sizeof key, "cases.%d.truth", c);
        REQUIRE_OK(mer_json_get_int_array(j, key, t64, 512, &n));
        snprintf(key, sizeof key, "cases.%d.pred", c);
        REQUIRE_OK(mer_json_get_int_array(j, key, p64, 512, &n2));
        REQUIRE(n == n2);
        for (int i = 0; i < n; i++) t[i] = (int32_t)t64[i], p[i] = (int32_t)p64[i];
        mer_metrics m;
        REQUIRE_OK(mer_metrics_compute(t, p, n, (int32_t)nc, &m));
        const char *names[4] = {"waf", "macro_f1", "uar", "accuracy"};
        double got[4] = {m.waf, m.macro_f1, m.uar, m.accuracy};
        for (int k = 0; k < 4; k++) {
            double want;
            snprintf(key, sizeof key, "cases.%d.%s", c, names[k]);
            REQUIRE_OK(mer_json_get_double(j, key, &want));
            CHECK_NEAR(got[k], want, 1e-12);
        }
        for (int k = 0; k < nc; k++) {
            double want;
            snprintf(key, sizeof key, "cases.%d.f1.%d", c, k);
            REQUIRE_OK(mer_json_get_double(j, key, &want));
            CHECK_NEAR(m.f1[k], want, 1e-12);
            snprintf(key, sizeof key, "cases.%d.precision.%d", c, k);
            REQUIRE_OK(mer_json_get_double(j, key, &want));
            CHECK_NEAR(m.precision[k], want, 1e-12);
            for (int q = 0; q < nc; q++) {
                int64_t cm;
                snprintf(key, sizeof key, "cases.%d.confusion.%d.%d", c, k, q);
                REQUIRE_OK(mer_json_get_int(j, key, &cm));
                CHECK(m.confusion[k * nc + q] == cm);
            }
        }
    }
    mer_json_free(j);
}

/* ---- synthetic data sets ------------------------------------------------------------------- */

/* n clips, 3 classes, two modalities (vectors of dim 12 and sequences (T, 6)), class means
 * well apart so a few epochs separate them; groups g0..g(ng-1). */
static mer_dataset *synth(int n, int ng, uint64_t seed) {
    const char *cls[3] = {"angry", "happy", "sad"}, *mods[2] = {"audio", "video"};
    mer_dataset *ds = NULL;
    if (mer_dataset_init(&ds, cls, 3, mods, 2) != MER_OK) return NULL;
    mer__rng r;
    mer__rng_seed(&r, seed);
    float mu_a[3][12], mu_v[3][6];
    for (int c = 0; c < 3; c++) {
        for (int k = 0; k < 12; k++) mu_a[c][k] = (float)(2 * mer__rng_normal(&r));
        for (int k = 0; k < 6; k++) mu_v[c][k] = (float)(2 * mer__rng_normal(&r));
    }
    for (int i = 0; i < n; i++) {
        int y = i % 3;
        float a[12], v[5 * 6];
        int T = 2 + i % 4;
        for (int k = 0; k < 12; k++) a[k] = mu_a[y][k] + (float)mer__rng_normal(&r);
        for (int t = 0; t < T; t++)
            for (int k = 0; k < 6; k++) v[t * 6 + k] = mu_v[y][k] + (float)mer__rng_normal(&r);
        mer_tensor ft[2];
        mer_tensor_view(&ft[0], a, MER_DTYPE_F32, 1, (int64_t[]){12});
        mer_tensor_view(&ft[1], v, MER_DTYPE_F32, 2, (int64_t[]){T, 6});
        char name[32], grp[16];
        snprintf(name, sizeof name, "c%03d", i);
        snprintf(grp, sizeof grp, "g%d", ng ? (i * 3) % ng : 0);
        if (mer_dataset_add(ds, name, y, ng ? grp : NULL, 0, ft) != MER_OK) {
            mer_dataset_free(ds);
            return NULL;
        }
    }
    return ds;
}

/* Training tests run single-threaded: small problems gain nothing from threads and a loaded CI
 * machine makes thread hand-offs slow. The previous count is restored by each test. */
static int saved_threads;
static void threads_1(void) {
    saved_threads = mer_get_threads();
    mer_set_threads(1);
}
static void threads_restore(void) { mer_set_threads(saved_threads); }

static mer_train_params small_params(void) {
    mer_train_params p = mer_train_default_params();
    p.folds = 3;
    p.epochs = 6;
    p.batch = 16;
    p.hidden = 16;
    p.dropout = 0.2f;
    p.seed = 42;
    p.plots = 0;
    return p;
}

static int files_equal(const char *a, const char *b) {
    char *da = NULL, *db = NULL;
    size_t na = 0, nb = 0;
    int eq = mer__read_file(a, &da, &na) == MER_OK && mer__read_file(b, &db, &nb) == MER_OK &&
             na == nb && memcmp(da, db, na) == 0;
    free(da);
    free(db);
    return eq;
}

MER_TEST(train_learns_separable_problem) {
    threads_1();
    mer_dataset *ds = synth(90, 0, 1);
    REQUIRE(ds);
    REQUIRE(mer_dataset_is_sequence(ds, 1) && !mer_dataset_is_sequence(ds, 0));
    mer_train_params p = small_params();
    p.epochs = 12;
    p.plots = 1;
    const char *dir = mer_test_tmpdir("train_learns");
    char run[512], path[600];
    snprintf(run, sizeof run, "%s/run", dir);
    mer_metrics m;
    REQUIRE_OK(mer_train_run(ds, ds, &p, run, &m));
    CHECK(m.waf > 0.9);
    CHECK(m.n == 90);
    const char *files[] = {"config.json", "fold-0.safetensors", "fold-2.json", "oof.csv",
                           "test.csv", "metrics.json", "confusion.png", "curves.png"};
    for (size_t k = 0; k < sizeof files / sizeof *files; k++) {
        snprintf(path, sizeof path, "%s/%s", run, files[k]);
        CHECK(mer__file_exists(path));
    }
    snprintf(path, sizeof path, "%s/state-0.safetensors", run);
    CHECK(!mer__file_exists(path)); /* resumable state is removed once a fold is done */
    mer_image img;
    snprintf(path, sizeof path, "%s/confusion.png", run);
    REQUIRE_OK(mer_image_load(path, &img));
    CHECK(img.width > 200 && img.height > 200);
    mer_image_free(&img);
    /* predictions through a reopened run equal the test.csv written by training, bitwise */
    mer_run *r = NULL;
    REQUIRE_OK(mer_run_open(&r, run));
    CHECK(mer_run_n_classes(r) == 3 && mer_run_n_modalities(r) == 2 && mer_run_dim(r, 1) == 6);
    static float probs[90 * 3];
    REQUIRE_OK(mer_run_predict(r, ds, probs));
    const char *cls[3] = {"angry", "happy", "sad"};
    snprintf(path, sizeof path, "%s/pred.csv", dir);
    REQUIRE_OK(mer_write_predictions(path, ds, probs, cls, 3, 0));
    char tcsv[600];
    snprintf(tcsv, sizeof tcsv, "%s/test.csv", run);
    CHECK(files_equal(path, tcsv));
    mer_run_free(r);
    /* the same directory is not silently overwritten */
    CHECK_ERR(mer_train_run(ds, NULL, &p, run, NULL), MER_ERR_INVALID_ARG, "already holds a run");
    mer_dataset_free(ds);
    threads_restore();
}

MER_TEST(train_bitwise_reproducible) {
    threads_1();
    mer_dataset *ds = synth(60, 0, 2);
    REQUIRE(ds);
    mer_train_params p = small_params();
    const char *dir = mer_test_tmpdir("train_repro");
    char a[512], b[512], fa[600], fb[600];
    snprintf(a, sizeof a, "%s/a", dir);
    snprintf(b, sizeof b, "%s/b", dir);
    REQUIRE_OK(mer_train_run(ds, NULL, &p, a, NULL));
    REQUIRE_OK(mer_train_run(ds, NULL, &p, b, NULL));
    const char *files[] = {"fold-0.safetensors", "fold-1.safetensors", "fold-2.json", "oof.csv", "metrics.json"};
    for (size_t k = 0; k < sizeof files / sizeof *files; k++) {
        snprintf(fa, sizeof fa, "%s/%s", a, files[k]);
        snprintf(fb, sizeof fb, "%s/%s", b, files[k]);
        CHECK(files_equal(fa, fb));
    }
    /* another seed gives other weights */
    p.seed = 43;
    snprintf(b, sizeof b, "%s/c", dir);
    REQUIRE_OK(mer_train_run(ds, NULL, &p, b, NULL));
    snprintf(fa, sizeof fa, "%s/fold-0.safetensors", a);
    snprintf(fb, sizeof fb, "%s/fold-0.safetensors", b);
    CHECK(!files_equal(fa, fb));
    mer_dataset_free(ds);
    threads_restore();
}

/* Stop when fold at[0] finishes epoch at[1]: the progress callback notes each epoch, the abort
 * callback (polled right after it, under the same lock) answers from the note. */
typedef struct {
    int at[2];
    int fold, epoch;
} stop_spec;
static void note_epoch(const mer_train_progress *p, void *user) {
    stop_spec *s = user;
    s->fold = p->fold;
    s->epoch = p->epoch;
}
static bool stop_at(void *user) {
    const stop_spec *s = user;
    return s->fold == s->at[0] && s->epoch == s->at[1];
}

MER_TEST(train_resume_equals_uninterrupted) {
    threads_1();
    mer_dataset *ds = synth(60, 0, 3);
    REQUIRE(ds);
    mer_train_params p = small_params();
    const char *dir = mer_test_tmpdir("train_resume");
    char a[512], b[512], fa[600], fb[600];
    snprintf(a, sizeof a, "%s/full", dir);
    snprintf(b, sizeof b, "%s/interrupted", dir);
    REQUIRE_OK(mer_train_run(ds, NULL, &p, a, NULL));
    stop_spec at = {{1, 3}, -1, -1};
    p.progress = note_epoch;
    p.progress_user_data = &at;
    p.abort = stop_at;
    p.abort_user_data = &at;
    CHECK_ERR(mer_train_run(ds, NULL, &p, b, NULL), MER_ERR_ABORTED, "stopped");
    snprintf(fb, sizeof fb, "%s/metrics.json", b);
    CHECK(!mer__file_exists(fb)); /* not complete */
    snprintf(fb, sizeof fb, "%s/state-1.safetensors", b);
    CHECK(mer__file_exists(fb));
    mer_run *r = NULL;
    CHECK_ERR(mer_run_open(&r, b), MER_ERR_NOT_FOUND, "not complete");
    p.progress = NULL;
    p.abort = NULL;
    p.resume = 1;
    REQUIRE_OK(mer_train_run(ds, NULL, &p, b, NULL));
    const char *files[] = {"fold-0.safetensors", "fold-1.safetensors", "fold-1.json", "fold-2.safetensors", "oof.csv", "metrics.json"};
    for (size_t k = 0; k < sizeof files / sizeof *files; k++) {
        snprintf(fa, sizeof fa, "%s/%s", a, files[k]);
        snprintf(fb, sizeof fb, "%s/%s", b, files[k]);
        CHECK(files_equal(fa, fb));
    }
    /* resume with other parameters is refused */
    p.lr = 5e-4;
    CHECK_ERR(mer_train_run(ds, NULL, &p, b, NULL), MER_ERR_INVALID_ARG, "other parameters");
    mer_dataset_free(ds);
    threads_restore();
}

/* Folds run in parallel, one per thread (trainer.c, train_folds): with 2 threads and 3 folds,
 * folds 0 and 1 train concurrently on one thread each, so they must equal the 1-thread run's
 * bit for bit; fold 2 (alone) must be reproducible; a stop in fold 1 halts fold 0
 * too, and resuming gives the uninterrupted run's files. */
MER_TEST(train_parallel_folds) {
    mer_dataset *ds = synth(60, 0, 3);
    REQUIRE(ds);
    mer_train_params p = small_params();
    const char *dir = mer_test_tmpdir("train_parfolds");
    char one[512], a[512], b[512], c[512], fa[600], fb[600];
    snprintf(one, sizeof one, "%s/one", dir);
    snprintf(a, sizeof a, "%s/a", dir);
    snprintf(b, sizeof b, "%s/b", dir);
    snprintf(c, sizeof c, "%s/c", dir);
    threads_1();
    REQUIRE_OK(mer_train_run(ds, NULL, &p, one, NULL));
    mer_set_threads(2);
    REQUIRE_OK(mer_train_run(ds, NULL, &p, a, NULL));
    REQUIRE_OK(mer_train_run(ds, NULL, &p, b, NULL));
    for (int f = 0; f < 2; f++) {
        char name[64];
        snprintf(name, sizeof name, "fold-%d.safetensors", f);
        snprintf(fa, sizeof fa, "%s/%s", one, name);
        snprintf(fb, sizeof fb, "%s/%s", a, name);
        CHECK(files_equal(fa, fb));
    }
    const char *files[] = {"fold-0.safetensors", "fold-1.safetensors", "fold-2.safetensors",
                           "fold-2.json", "oof.csv", "metrics.json"};
    for (size_t k = 0; k < sizeof files / sizeof *files; k++) {
        snprintf(fa, sizeof fa, "%s/%s", a, files[k]);
        snprintf(fb, sizeof fb, "%s/%s", b, files[k]);
        CHECK(files_equal(fa, fb));
    }
    stop_spec at = {{1, 3}, -1, -1};
    p.progress = note_epoch;
    p.progress_user_data = &at;
    p.abort = stop_at;
    p.abort_user_data = &at;
    CHECK_ERR(mer_train_run(ds, NULL, &p, c, NULL), MER_ERR_ABORTED, "stopped");
    snprintf(fb, sizeof fb, "%s/state-1.safetensors", c);
    CHECK(mer__file_exists(fb));
    snprintf(fb, sizeof fb, "%s/fold-2.json", c);
    CHECK(!mer__file_exists(fb)); /* the next group never started */
    p.progress = NULL;
    p.abort = NULL;
    p.resume = 1;
    REQUIRE_OK(mer_train_run(ds, NULL, &p, c, NULL));
    for (size_t k = 0; k < sizeof files / sizeof *files; k++) {
        snprintf(fa, sizeof fa, "%s/%s", a, files[k]);
        snprintf(fb, sizeof fb, "%s/%s", c, files[k]);
        CHECK(files_equal(fa, fb));
    }
    mer_dataset_free(ds);
    threads_restore();
}

/* --select last: every fold keeps its final epoch (fold-K.json best_epoch = epochs, best_waf =
 * the last epoch's held-out WAF); training itself is unchanged (the same loss history as with
 * best-epoch selection), and the config records the choice. */
MER_TEST(train_select_last) {
    threads_1();
    mer_dataset *ds = synth(60, 0, 5);
    REQUIRE(ds);
    mer_train_params p = small_params();
    const char *dir = mer_test_tmpdir("train_select");
    char a[512], b[512], path[600];
    snprintf(a, sizeof a, "%s/best", dir);
    snprintf(b, sizeof b, "%s/last", dir);
    REQUIRE_OK(mer_train_run(ds, NULL, &p, a, NULL));
    p.select_last = 1;
    REQUIRE_OK(mer_train_run(ds, NULL, &p, b, NULL));
    int differs = 0;
    for (int f = 0; f < p.folds; f++) {
        mer_json *ja = NULL, *jb = NULL;
        snprintf(path, sizeof path, "%s/fold-%d.json", a, f);
        REQUIRE_OK(mer_json_load(&ja, path));
        snprintf(path, sizeof path, "%s/fold-%d.json", b, f);
        REQUIRE_OK(mer_json_load(&jb, path));
        double la[64], lb[64], wb[64], bw = 0;
        int32_t na = 0, nb = 0, nw = 0;
        int64_t be = 0, bea = 0;
        CHECK_OK(mer_json_get_double_array(ja, "loss", la, 64, &na));
        CHECK_OK(mer_json_get_double_array(jb, "loss", lb, 64, &nb));
        CHECK(na == p.epochs && nb == p.epochs && memcmp(la, lb, sizeof(double) * na) == 0);
        CHECK_OK(mer_json_get_double_array(jb, "waf", wb, 64, &nw));
        CHECK_OK(mer_json_get_int(jb, "best_epoch", &be));
        CHECK_OK(mer_json_get_double(jb, "best_waf", &bw));
        CHECK(be == p.epochs && nw == p.epochs && bw == wb[nw - 1]);
        CHECK_OK(mer_json_get_int(ja, "best_epoch", &bea));
        differs |= bea != be;
        mer_json_free(ja);
        mer_json_free(jb);
    }
    CHECK(differs); /* with selection some fold peaked before its last epoch */
    char *cfg = NULL;
    size_t n = 0;
    snprintf(path, sizeof path, "%s/config.json", b);
    REQUIRE_OK(mer__read_file(path, &cfg, &n));
    CHECK(strstr(cfg, "\"select\": \"last\"") != NULL);
    free(cfg);
    mer_dataset_free(ds);
    threads_restore();
}

MER_TEST(train_grouped_folds) {
    mer_dataset *ds = synth(70, 7, 4);
    REQUIRE(ds);
    int32_t fold[70];
    REQUIRE_OK(mer__make_folds(fold, ds, 3, 5));
    int32_t gf[7];
    for (int g = 0; g < 7; g++) gf[g] = -1;
    int count[3] = {0};
    for (int i = 0; i < 70; i++) {
        int g = atoi(mer_dataset_group(ds, i) + 1);
        REQUIRE(fold[i] >= 0 && fold[i] < 3);
        if (gf[g] < 0) gf[g] = fold[i];
        CHECK(gf[g] == fold[i]); /* a group never spans two folds */
        count[fold[i]]++;
    }
    CHECK(count[0] > 0 && count[1] > 0 && count[2] > 0);
    /* K == #groups: leave one group out */
    REQUIRE_OK(mer__make_folds(fold, ds, 7, 5));
    int seen[7] = {0};
    for (int i = 0; i < 70; i++) seen[fold[i]] |= 1 << atoi(mer_dataset_group(ds, i) + 1);
    for (int f = 0; f < 7; f++) CHECK(__builtin_popcount(seen[f]) == 1);
    CHECK_ERR(mer__make_folds(fold, ds, 8, 5), MER_ERR_INVALID_ARG, "groups");
    /* ungrouped: balanced sizes, deterministic for a seed */
    mer_dataset *u = synth(10, 0, 4);
    int32_t f1[10], f2[10];
    REQUIRE_OK(mer__make_folds(f1, u, 3, 9));
    REQUIRE_OK(mer__make_folds(f2, u, 3, 9));
    CHECK(memcmp(f1, f2, sizeof f1) == 0);
    int c3[3] = {0};
    for (int i = 0; i < 10; i++) c3[f1[i]]++;
    CHECK(c3[0] == 4 && c3[1] == 3 && c3[2] == 3);
    mer_dataset_free(u);
    mer_dataset_free(ds);
}

MER_TEST(train_pseudo_labels_train_only) {
    mer_dataset *ds = synth(30, 0, 5);
    REQUIRE(ds);
    /* train-only (pseudo-labelled) clips are never held out */
    mer_dataset *big = NULL;
    const char *cls[3] = {"angry", "happy", "sad"}, *mods[2] = {"audio", "video"};
    REQUIRE_OK(mer_dataset_init(&big, cls, 3, mods, 2));
    for (int64_t i = 0; i < 30; i++) REQUIRE_OK(mer_dataset_add_from(big, ds, i, mer_dataset_label(ds, i), i >= 20));
    int32_t fold[30];
    REQUIRE_OK(mer__make_folds(fold, big, 4, 1));
    for (int i = 0; i < 30; i++) CHECK((i >= 20) == (fold[i] < 0));
    mer_dataset_free(big);
    mer_dataset_free(ds);
}

/* ---- files and errors ------------------------------------------------------------------------ */

/* A MERTools layout under dir: labels.csv and audio/, text/ of .npy (dims 8 and 5). */
static void write_layout(const char *dir, int n) {
    char path[700];
    snprintf(path, sizeof path, "%s/audio", dir);
    mkdir(path, 0777);
    snprintf(path, sizeof path, "%s/text", dir);
    mkdir(path, 0777);
    mer__rng r;
    mer__rng_seed(&r, 11);
    char csv[8192];
    size_t o = (size_t)snprintf(csv, sizeof csv, "name,emotion,speaker\n");
    const char *cls[3] = {"neutral", "happy", "sad"};
    for (int i = 0; i < n; i++) {
        float a[8], t[5];
        for (int k = 0; k < 8; k++) a[k] = (float)((i % 3 == k % 3) * 3 + mer__rng_normal(&r));
        for (int k = 0; k < 5; k++) t[k] = (float)((i % 3 == k % 3) * 3 + mer__rng_normal(&r));
        snprintf(path, sizeof path, "%s/audio/s%02d.npy", dir, i);
        mer_npy_write(path, a, 1, (int64_t[]){8});
        snprintf(path, sizeof path, "%s/text/s%02d.npy", dir, i);
        mer_npy_write(path, t, 1, (int64_t[]){5});
        o += (size_t)snprintf(csv + o, sizeof csv - o, "s%02d,%s,spk%d\n", i, cls[i % 3], i % 4);
    }
    snprintf(path, sizeof path, "%s/labels.csv", dir);
    mer_test_write(path, csv, o);
}

MER_TEST(train_dataset_errors) {
    const char *dir = mer_test_tmpdir("train_errors");
    write_layout(dir, 12);
    char labels[600], adir[600], tdir[600], path[700];
    snprintf(labels, sizeof labels, "%s/labels.csv", dir);
    snprintf(adir, sizeof adir, "%s/audio", dir);
    snprintf(tdir, sizeof tdir, "%s/text", dir);
    mer_modality_spec mods[2] = {{"audio", adir}, {"text", tdir}};
    mer_dataset_params dp = mer_dataset_default_params();
    dp.labels_csv = labels;
    dp.modalities = mods;
    dp.n_modalities = 2;
    dp.group_col = "speaker";
    mer_dataset *ds = NULL;
    REQUIRE_OK(mer_dataset_load(&ds, &dp));
    CHECK(mer_dataset_count(ds) == 12 && mer_dataset_n_classes(ds) == 3);
    CHECK(!strcmp(mer_dataset_class(ds, 0), "happy")); /* sorted */
    CHECK(!strcmp(mer_dataset_group(ds, 5), "spk1"));
    mer_dataset_free(ds);
    /* a class with no examples */
    const char *cls4[4] = {"neutral", "happy", "sad", "surprise"};
    dp.classes = cls4;
    dp.n_classes = 4;
    CHECK_ERR(mer_dataset_load(&ds, &dp), MER_ERR_FORMAT, "'surprise' has no examples");
    /* a label outside the class list */
    dp.n_classes = 2;
    CHECK_ERR(mer_dataset_load(&ds, &dp), MER_ERR_FORMAT, "label 'sad' is not one of the classes");
    dp.classes = NULL;
    /* wrong feature dimension names the file */
    float bad[7] = {0};
    snprintf(path, sizeof path, "%s/s03.npy", adir);
    REQUIRE_OK(mer_npy_write(path, bad, 1, (int64_t[]){7}));
    CHECK_ERR(mer_dataset_load(&ds, &dp), MER_ERR_SHAPE, "s03.npy: feature dimension 7, but");
    CHECK(strstr(mer_last_error(), "s00.npy (the first clip of modality audio) has 8"));
    /* NaN names the file */
    float nan8[8] = {0, 0, NAN, 0, 0, 0, 0, 0};
    REQUIRE_OK(mer_npy_write(path, nan8, 1, (int64_t[]){8}));
    CHECK_ERR(mer_dataset_load(&ds, &dp), MER_ERR_NUMERIC, "s03.npy: NaN");
    /* missing files are listed together */
    unlink(path);
    snprintf(path, sizeof path, "%s/s07.npy", adir);
    unlink(path);
    CHECK_ERR(mer_dataset_load(&ds, &dp), MER_ERR_NOT_FOUND, "2 clips have no feature file");
    CHECK(strstr(mer_last_error(), "s03") && strstr(mer_last_error(), "s07"));
    /* LIST files */
    snprintf(path, sizeof path, "%s/list.txt", dir);
    mer_test_write(path, "name\n a \n\nb\r\n", 13);
    char **names = NULL;
    int64_t n = 0;
    REQUIRE_OK(mer_read_name_list(path, &names, &n));
    CHECK(n == 2 && !strcmp(names[0], "a") && !strcmp(names[1], "b"));
    free(names);
}

/* ---- CLI ------------------------------------------------------------------------------------- */

MER_TEST(train_cli_train_predict_eval) {
    const char *dir = mer_test_tmpdir("train_cli");
    write_layout(dir, 30);
    char out[8192];
    const char *bin = mer_test_bin();
    /* unknown flag: usage error, nothing created */
    CHECK(mer_test_run(out, sizeof out, "%s train --labels %s/labels.csv --feature audio=%s/audio --out %s/r0 --bogus",
                       bin, dir, dir, dir) == 2);
    CHECK(strstr(out, "unknown option --bogus") != NULL);
    char path[700];
    snprintf(path, sizeof path, "%s/r0", dir);
    CHECK(access(path, F_OK) != 0);
    /* missing feature dir: one clear line, no run directory */
    CHECK(mer_test_run(out, sizeof out, "%s train --labels %s/labels.csv --feature audio=%s/nope --out %s/r1",
                       bin, dir, dir, dir) == 1);
    CHECK(strstr(out, "30 clips have no feature file") != NULL);
    snprintf(path, sizeof path, "%s/r1/metrics.json", dir);
    CHECK(access(path, F_OK) != 0);
    /* a real run with a test list, grouped by speaker */
    snprintf(path, sizeof path, "%s/test.txt", dir);
    mer_test_write(path, "s01\ns02\ns05\n", 12);
    int rc = mer_test_run(out, sizeof out,
                          "%s train --labels %s/labels.csv --feature audio=%s/audio --feature text=%s/text "
                          "--folds 2 --epochs 4 --hidden 8 --group-col speaker --seed 3 --threads 1 "
                          "--test %s/test.txt --out %s/run",
                          bin, dir, dir, dir, dir, dir);
    CHECK(rc == 0);
    if (rc) printf("%s\n", out);
    CHECK(strstr(out, "mean over 2 folds: WAF") != NULL);
    rc = mer_test_run(out, sizeof out,
                      "%s predict --run %s/run --feature text=%s/text --feature audio=%s/audio --list %s/test.txt "
                      "--out %s/pred.csv --threads 1",
                      bin, dir, dir, dir, dir, dir);
    CHECK(rc == 0);
    char a[700], b[700];
    snprintf(a, sizeof a, "%s/pred.csv", dir);
    snprintf(b, sizeof b, "%s/run/test.csv", dir);
    CHECK(files_equal(a, b));
    rc = mer_test_run(out, sizeof out, "%s predict --run %s/run --feature audio=%s/audio --feature text=%s/text "
                      "--list %s/test.txt --format mer2024 --out %s/sub.csv", bin, dir, dir, dir, dir, dir);
    CHECK(rc == 0);
    char *sub = NULL;
    size_t ns = 0;
    snprintf(a, sizeof a, "%s/sub.csv", dir);
    REQUIRE_OK(mer__read_file(a, &sub, &ns));
    CHECK(!strncmp(sub, "name,discrete\ns01,", 18));
    free(sub);
    /* the run predicts with a missing modality: error */
    CHECK(mer_test_run(out, sizeof out, "%s predict --run %s/run --feature audio=%s/audio --out %s/x.csv",
                       bin, dir, dir, dir) == 1);
    CHECK(strstr(out, "needs modality 'text'") != NULL);
    rc = mer_test_run(out, sizeof out, "%s eval --labels %s/labels.csv --pred %s/run/oof.csv", bin, dir, dir);
    CHECK(rc == 0);
    CHECK(strstr(out, "WAF") && strstr(out, "confusion") && strstr(out, "precision"));
}

MER_TEST(train_search_and_final_model) {
    threads_1();
    mer_dataset *ds = synth(45, 0, 6);
    REQUIRE(ds);
    mer_train_params p = small_params();
    p.epochs = 3;
    p.search = 2;
    const char *dir = mer_test_tmpdir("train_search");
    char run[512], path[600];
    snprintf(run, sizeof run, "%s/search", dir);
    mer_metrics m;
    REQUIRE_OK(mer_train_run(ds, NULL, &p, run, &m));
    const char *files[] = {"search.json", "metrics.json", "config.json", "fold-2.safetensors",
                           "trials/trial-00/metrics.json", "trials/trial-01/metrics.json"};
    for (size_t k = 0; k < sizeof files / sizeof *files; k++) {
        snprintf(path, sizeof path, "%s/%s", run, files[k]);
        CHECK(mer__file_exists(path));
    }
    mer_json *j = NULL;
    snprintf(path, sizeof path, "%s/search.json", run);
    REQUIRE_OK(mer_json_load(&j, path));
    int64_t best;
    double w0, w1;
    REQUIRE_OK(mer_json_get_int(j, "best_trial", &best));
    REQUIRE_OK(mer_json_get_double(j, "trials.0.waf", &w0));
    REQUIRE_OK(mer_json_get_double(j, "trials.1.waf", &w1));
    CHECK(best == (w1 > w0 ? 1 : 0));
    CHECK_NEAR(m.waf, w1 > w0 ? w1 : w0, 1e-12);
    mer_json_free(j);
    mer_run *r = NULL;
    REQUIRE_OK(mer_run_open(&r, run));
    mer_run_free(r);
    /* folds = 1: one final model on everything, usable for prediction */
    p.search = 0;
    p.folds = 1;
    snprintf(run, sizeof run, "%s/final", dir);
    REQUIRE_OK(mer_train_run(ds, NULL, &p, run, NULL));
    REQUIRE_OK(mer_run_open(&r, run));
    static float probs[45 * 3];
    REQUIRE_OK(mer_run_predict(r, ds, probs));
    double s = 0;
    for (int k = 0; k < 3; k++) s += probs[k];
    CHECK_NEAR(s, 1.0, 1e-5);
    mer_run_free(r);
    mer_dataset_free(ds);
    threads_restore();
}
