/*
 * test_pseudo.c -- self-training with pseudo-labels (src/train/pseudo.c): thresholds (the
 * MER2024 recipe, --pseudo-threshold specs) and a small end-to-end run whose metrics.json
 * records the rounds (clips gained per class, CV WAF) and keeps the intermediate runs.
 */
#include "test.h"
#include "train/synth.h"

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
    const char *dir = mer_test_tmpdir("pseudo_e2e");
    char run[600], path[700];
    snprintf(run, sizeof run, "%s/run", dir);
    mer_metrics met;
    int threads = mer_get_threads();
    mer_set_threads(1);   /* tiny GEMMs: no OpenMP barriers on a loaded machine */
    mer_status st = mer_train_pseudo(&tp, &pp, lab, unl, NULL, run, &met);
    mer_set_threads(threads);
    REQUIRE_OK(st);
    snprintf(path, sizeof path, "%s/metrics.json", run);
    mer_json *j = NULL;
    REQUIRE_OK(mer_json_load(&j, path));
    int64_t r0 = -1, r1 = -1, added = -1, cls_a = -1;
    double waf1 = -1;
    CHECK_OK(mer_json_get_int(j, "pseudo.rounds.0.pseudo_clips", &r0));
    CHECK_OK(mer_json_get_int(j, "pseudo.rounds.1.round", &r1));
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
    CHECK_ERR(mer_train_pseudo(&tp, &bad, lab, unl, NULL, run, NULL), MER_ERR_INVALID_ARG,
              "no threshold for class 'a'");
    mer_dataset_free(lab);
    mer_dataset_free(unl);
    mer__synth_free(s);
}
