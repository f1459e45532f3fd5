/*
 * test_pseudo.c -- self-training with pseudo-labels (src/train/pseudo.c): thresholds (the
 * MER2024 recipe, --pseudo-threshold specs), a small end-to-end run (ensemble source) whose
 * metrics.json records the rounds (clips gained per class, CV WAF) and keeps the intermediate
 * runs, and the fold source's no-leak contract: fold k's pseudo-labels are exactly fold k's
 * previous model's confident predictions, and fold k trains on them and nothing else beyond
 * its labeled part.
 */
#include "test.h"
#include "train/synth.h"
#include "train/train.h"

#include <unistd.h>

MER_TEST(pseudo_thresholds) {
    const char *mer[6] = {"angry", "happy", "neutral", "sad", "surprise", "worried"};
    double t[6];
    REQUIRE_OK(mer_pseudo_default_thresholds(mer, 6, t));
    CHECK(t[0] == 0.99 && t[1] == 0.99 && t[2] == 0.99 && t[3] == 0.99);
    CHECK(t[4] == 0.85 && t[5] == 0.85);
    const char *other[2] = {"pos", "neg"};
    REQUIRE_OK(mer_pseudo_default_thresholds(other, 2, t));
    CHECK(isnan(t[0]) && isnan(t[1]));
    REQUIRE_OK(mer_pseudo_parse_thresholds("0.9", other, 2, t));
    CHECK(t[0] == 0.9 && t[1] == 0.9);
    REQUIRE_OK(mer_pseudo_parse_thresholds("0.8,neg=0.95", other, 2, t));
    CHECK(t[0] == 0.8 && t[1] == 0.95);
    CHECK_ERR(mer_pseudo_parse_thresholds("neu=0.9", other, 2, t), MER_ERR_INVALID_ARG, "'neu' is not a class");
    CHECK_ERR(mer_pseudo_parse_thresholds("pos=1.5", other, 2, t), MER_ERR_INVALID_ARG, "(0, 1]");
    CHECK_ERR(mer_pseudo_parse_thresholds("pos=", other, 2, t), MER_ERR_INVALID_ARG, NULL);
}

/* An in-memory data set of n clips drawn from s (labels kept when labeled). */
static mer_status make_set(mer_dataset **out, const mer__synth *s, const mer_synth_params *p,
                           mer__rng *r, int64_t n, int labeled, const char *prefix,
                           int32_t *truth) {
    mer_status st = mer_dataset_init(out, p->classes, p->n_classes, p->modalities, p->n_modalities);
    float buf[3][64];
    float *x[3] = {buf[0], buf[1], buf[2]};
    for (int64_t i = 0; i < n && st == MER_OK; i++) {
        int32_t y;
        mer__synth_sample(s, r, 0, &y, x);
        if (truth) truth[i] = y;
        mer_tensor t[3];
        for (int m = 0; m < p->n_modalities; m++) mer_tensor_view(&t[m], x[m], MER_DTYPE_F32, 1, &p->dims[m]);
        char name[32];
        snprintf(name, sizeof name, "%s%04lld", prefix, (long long)i);
        st = mer_dataset_add(*out, name, labeled ? y : -1, NULL, 0, t);
    }
    return st;
}

MER_TEST(pseudo_end_to_end_records_rounds) {
    static const char *const classes[3] = {"a", "b", "c"};
    static const double pri[3] = {1, 1, 1};
    static const char *const mods[2] = {"audio", "text"};
    static const int64_t dims[2] = {6, 5};
    static const double sep[2] = {3.0, 2.0};
    mer_synth_params p = mer_synth_default_params();
    p.n_classes = 3, p.classes = classes, p.priors = pri;
    p.n_modalities = 2, p.modalities = mods, p.dims = dims, p.sep = sep, p.rank = 4;
    mer__synth *s = NULL;
    REQUIRE_OK(mer__synth_init(&s, &p));
    mer__rng r;
    mer__rng_seed(&r, 1);
    mer_dataset *lab = NULL, *unl = NULL;
    int32_t truth[120];
    REQUIRE_OK(make_set(&lab, s, &p, &r, 60, 1, "l", NULL));
    REQUIRE_OK(make_set(&unl, s, &p, &r, 120, 0, "u", truth));

    mer_train_params tp = mer_train_default_params();
    snprintf(tp.model, sizeof tp.model, "agt");
    tp.hidden = 8, tp.heads = 2, tp.tokens = 2, tp.folds = 2, tp.epochs = 8, tp.batch = 16;
    tp.lr = 1e-2, tp.dropout = 0.0f, tp.plots = 0, tp.checkpoint_every = 0;
    mer_pseudo_params pp = mer_pseudo_default_params();
    pp.rounds = 1;
    for (int j = 0; j < 3; j++) pp.threshold[j] = 0.6;
    pp.max_add = 100;
    pp.source = MER_PSEUDO_ENSEMBLE;
    const char *dir = mer_test_tmpdir("pseudo_e2e");
    char run[600], path[700];
    snprintf(run, sizeof run, "%s/run", dir);
    mer_metrics met;
    int threads = mer_get_threads();
    mer_set_threads(1);   /* tiny GEMMs: no OpenMP barriers on a loaded machine */
    mer_status st = mer_train_pseudo(lab, unl, NULL, &tp, &pp, run, &met);
    mer_set_threads(threads);
    REQUIRE_OK(st);
    snprintf(path, sizeof path, "%s/metrics.json", run);
    mer_json *j = NULL;
    REQUIRE_OK(mer_json_load(&j, path));
    int64_t r0 = -1, r1 = -1, added = -1, cls_a = -1;
    double waf1 = -1;
    CHECK_OK(mer_json_get_int(j, "pseudo.rounds.0.pseudo_clips", &r0));
    CHECK_OK(mer_json_get_int(j, "pseudo.rounds.1.round", &r1));
    const char *src = NULL;
    CHECK_OK(mer_json_get_string(j, "pseudo.source", &src));
    CHECK(src && !strcmp(src, "ensemble"));
    CHECK_OK(mer_json_get_int(j, "pseudo.rounds.1.pseudo_clips", &added));
    CHECK_OK(mer_json_get_int(j, "pseudo.rounds.1.pseudo_per_class.a", &cls_a));
    CHECK_OK(mer_json_get_double(j, "pseudo.rounds.1.cv_waf", &waf1));
    printf("    round 1: %lld pseudo-labelled clips (%lld of class a), CV WAF %.3f\n",
           (long long)added, (long long)cls_a, waf1);
    CHECK(r0 == 0 && r1 == 1);
    CHECK(added > 0 && added <= 100);
    CHECK(cls_a >= 0 && cls_a <= added);
    CHECK(waf1 > 0.4 && waf1 == met.waf);
    mer_json_free(j);
    snprintf(path, sizeof path, "%s/rounds/round-0/metrics.json", run);
    CHECK(access(path, 0) == 0);
    /* not a threshold for every class: a clear error */
    mer_pseudo_params bad = mer_pseudo_default_params();
    CHECK_ERR(mer_train_pseudo(lab, unl, NULL, &tp, &bad, run, NULL), MER_ERR_INVALID_ARG,
              "no threshold for class 'a'");
    mer_dataset_free(lab);
    mer_dataset_free(unl);
    mer__synth_free(s);
}

/* fold-k.json's n_train of run dir */
static int64_t fold_n_train(const char *dir, int32_t k) {
    char path[700];
    snprintf(path, sizeof path, "%s/fold-%d.json", dir, k);
    mer_json *j = NULL;
    int64_t n = -1;
    if (mer_json_load(&j, path) == MER_OK && mer_json_get_int(j, "n_train", &n) != MER_OK) n = -1;
    mer_json_free(j);
    return n;
}

MER_TEST(pseudo_fold_source_no_leak) {
    static const char *const classes[3] = {"a", "b", "c"};
    static const double pri[3] = {1, 1, 1};
    static const char *const mods[2] = {"audio", "text"};
    static const int64_t dims[2] = {6, 5};
    static const double sep[2] = {4.0, 3.0};
    enum { NL = 90, NU = 150, K = 3 };
    const double thr = 0.7;
    mer_synth_params p = mer_synth_default_params();
    p.n_classes = 3, p.classes = classes, p.priors = pri;
    p.n_modalities = 2, p.modalities = mods, p.dims = dims, p.sep = sep, p.rank = 4;
    mer__synth *s = NULL;
    REQUIRE_OK(mer__synth_init(&s, &p));
    mer__rng r;
    mer__rng_seed(&r, 7);
    mer_dataset *lab = NULL, *unl = NULL;
    int32_t truth[NU];
    REQUIRE_OK(make_set(&lab, s, &p, &r, NL, 1, "l", NULL));
    REQUIRE_OK(make_set(&unl, s, &p, &r, NU, 0, "u", truth));

    mer_train_params tp = mer_train_default_params();
    snprintf(tp.model, sizeof tp.model, "agt");
    tp.hidden = 8, tp.heads = 2, tp.tokens = 2, tp.folds = K, tp.epochs = 12, tp.batch = 16;
    tp.lr = 3e-3, tp.dropout = 0.0f, tp.plots = 0, tp.checkpoint_every = 0;
    mer_pseudo_params pp = mer_pseudo_default_params();   /* the fold source by default */
    pp.rounds = 1;
    for (int j = 0; j < 3; j++) pp.threshold[j] = thr;
    const char *dir = mer_test_tmpdir("pseudo_fold");
    char run[600], r0[700], path[800];
    snprintf(run, sizeof run, "%s/run", dir);
    snprintf(r0, sizeof r0, "%s/rounds/round-0", run);
    int threads = mer_get_threads();
    mer_set_threads(1);
    mer_status st = mer_train_pseudo(lab, unl, NULL, &tp, &pp, run, NULL);
    mer_set_threads(threads);
    REQUIRE_OK(st);

    /* what each fold model of round 0 is confident about */
    static float probs[K][NU * 3];
    mer_run *rr = NULL;
    REQUIRE_OK(mer_run_open(&rr, r0));
    CHECK(mer__run_n_folds(rr) == K);
    for (int32_t k = 0; k < K; k++) CHECK_OK(mer__run_predict_fold(rr, k, unl, probs[k]));
    mer_run_free(rr);
    int32_t want[K][NU];   /* label picked for fold k, -1 none */
    int64_t n_want[K] = {0}, differ = 0;
    for (int32_t k = 0; k < K; k++)
        for (int64_t i = 0; i < NU; i++) {
            const float *q = probs[k] + i * 3;
            int32_t b = 0;
            for (int32_t j = 1; j < 3; j++)
                if (q[j] > q[b]) b = j;
            want[k][i] = q[b] >= thr ? b : -1;
            n_want[k] += want[k][i] >= 0;
            differ += want[k][i] != want[0][i];
        }
    /* the clips round 1 trained on: exactly those, fold by fold */
    snprintf(path, sizeof path, "%s/rounds/pseudo-1.csv", run);
    FILE *f = fopen(path, "r");
    REQUIRE(f != NULL);
    char line[256];
    int64_t got[K] = {0}, right = 0, rows = 0, bad = 0;
    CHECK(fgets(line, sizeof line, f) && !strncmp(line, "name,fold,label,confidence", 26));
    while (fgets(line, sizeof line, f)) {
        char name[64], label[16];
        int fold = -2;
        double conf = 0;
        if (sscanf(line, "%63[^,],%d,%15[^,],%lf", name, &fold, label, &conf) != 4 || fold < 0 ||
            fold >= K) {
            bad++;
            continue;
        }
        int64_t i = mer_dataset_find(unl, name);
        int32_t y = label[0] - 'a';
        if (i < 0 || y < 0 || y > 2 || want[fold][i] != y ||
            fabs(conf - probs[fold][i * 3 + y]) > 1e-5)
            bad++;
        else
            got[fold]++;
        right += i >= 0 && truth[i] == y;
        rows++;
    }
    fclose(f);
    printf("    round 1: %lld/%lld/%lld pseudo-labels for folds 0/1/2 (%lld clip decisions differ "
           "from fold 0's), accuracy %.3f\n", (long long)got[0], (long long)got[1],
           (long long)got[2], (long long)differ, rows ? (double)right / (double)rows : 0.0);
    CHECK(bad == 0);
    CHECK(differ > 0);   /* fold-wise: not one shared set */
    CHECK(rows > 0 && (double)right >= 0.9 * (double)rows);
    mer_json *j = NULL;
    snprintf(path, sizeof path, "%s/metrics.json", run);
    REQUIRE_OK(mer_json_load(&j, path));
    const char *src = NULL;
    CHECK_OK(mer_json_get_string(j, "pseudo.source", &src));
    CHECK(src && !strcmp(src, "fold"));
    double mean = -1, last = -1;
    CHECK_OK(mer_json_get_double(j, "pseudo.rounds.1.pseudo_clips", &mean));
    CHECK_OK(mer_json_get_double(j, "pseudo.rounds.1.cv_waf_last_epoch", &last));
    CHECK(last > 0.3 && last <= 1);
    CHECK_NEAR(mean, (double)(n_want[0] + n_want[1] + n_want[2]) / K, 1e-9);
    for (int32_t k = 0; k < K; k++) {
        char key[64];
        int64_t nk = -1;
        snprintf(key, sizeof key, "pseudo.rounds.1.per_fold.%d.pseudo_clips", k);
        CHECK_OK(mer_json_get_int(j, key, &nk));
        CHECK(got[k] == n_want[k] && nk == n_want[k] && n_want[k] > 0);
        /* no leak: fold k's training part grew by its own pseudo-labels, nothing else */
        CHECK(fold_n_train(run, k) - fold_n_train(r0, k) == n_want[k]);
    }
    mer_json_free(j);
    mer_dataset_free(lab);
    mer_dataset_free(unl);
    mer__synth_free(s);
}
