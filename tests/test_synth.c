/*
 * test_synth.c -- the synthetic data generator with a known Bayes rule (src/train/synth.c) and
 * `mer synth`: determinism, layout, class frequencies, calibration of the exact posterior.
 */
#include "test.h"

#include <unistd.h>
#include "train/synth.h"

static int same_file(const char *a, const char *b) {
    char *x = NULL, *y = NULL;
    size_t nx = 0, ny = 0;
    int same = mer__read_file(a, &x, &nx) == MER_OK && mer__read_file(b, &y, &ny) == MER_OK &&
               nx == ny && memcmp(x, y, nx) == 0;
    free(x), free(y);
    return same;
}

MER_TEST(synth_write_is_seeded_and_complete) {
    mer_synth_params p = mer_synth_default_params();
    p.n_labeled = 300;
    p.n_unlabeled = 40;
    p.n_test = 30;
    const double tp[6] = {1, 1, 1, 1, 1, 1};
    p.test_priors = tp;
    char a[512], b[512], fa[600], fb[600];
    snprintf(a, sizeof a, "%s", mer_test_tmpdir("synth_a"));
    snprintf(b, sizeof b, "%s", mer_test_tmpdir("synth_b"));
    mer_synth_report ra, rb;
    REQUIRE_OK(mer_synth_write(a, &p, &ra));
    REQUIRE_OK(mer_synth_write(b, &p, &rb));
    const char *files[] = {"labels.csv", "bayes.csv", "synth.json", "unlabeled.txt",
                           "unlabeled_truth.csv", "test.txt", "test_labels.csv",
                           "audio/l000000.npy", "text/u000039.npy", "video/t000029.npy"};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        snprintf(fa, sizeof fa, "%s/%s", a, files[i]);
        snprintf(fb, sizeof fb, "%s/%s", b, files[i]);
        if (!same_file(fa, fb)) printf("    %s differs or is missing\n", files[i]);
        CHECK(same_file(fa, fb));
    }
    CHECK(ra.bayes_waf[0] == rb.bayes_waf[0]);
    CHECK(ra.bayes_waf[0] > 0.5 && ra.bayes_waf[0] < 0.999);
    /* a feature file has the modality's dim */
    float *x = NULL;
    int32_t nd = 0;
    int64_t shape[MER_MAX_DIMS];
    snprintf(fa, sizeof fa, "%s/text/l000007.npy", a);
    REQUIRE_OK(mer_npy_read(fa, &x, &nd, shape));
    CHECK(nd == 1 && shape[0] == 48);
    free(x);
    /* another seed gives other data */
    p.seed = 2;
    REQUIRE_OK(mer_synth_write(b, &p, NULL));
    snprintf(fa, sizeof fa, "%s/audio/l000000.npy", a);
    snprintf(fb, sizeof fb, "%s/audio/l000000.npy", b);
    CHECK(!same_file(fa, fb));
}

MER_TEST(synth_frequencies_and_calibration) {
    /* in memory: class frequencies follow the priors and the exact posterior is calibrated
     * (its mean equals the class frequencies; its argmax beats any other decision rule we try) */
    mer_synth_params p = mer_synth_default_params();
    mer__synth *s = NULL;
    REQUIRE_OK(mer__synth_init(&s, &p));
    double pi[6];
    mer__synth_priors(s, pi, NULL);
    const int64_t n = 6000;
    float buf[32 + 48 + 24], post[6];
    float *x[3] = {buf, buf + 32, buf + 80};
    double freq[6] = {0}, mpost[6] = {0};
    int32_t *truth = malloc(n * sizeof *truth), *pred = malloc(n * sizeof *pred),
            *flat = malloc(n * sizeof *flat);
    REQUIRE(truth && pred && flat);
    mer__rng r;
    mer__rng_seed(&r, 123);
    for (int64_t i = 0; i < n; i++) {
        mer__synth_sample(s, &r, 0, &truth[i], x);
        mer__synth_posterior(s, 0, (const float *const *)x, post);
        freq[truth[i]] += 1.0 / n;
        int32_t b = 0, bf = 0;
        for (int j = 0; j < 6; j++) {
            mpost[j] += post[j] / n;
            if (post[j] > post[b]) b = j;
            /* the same likelihoods with a flat prior: a worse rule when priors are skewed */
            if (post[j] / pi[j] > post[bf] / pi[bf]) bf = j;
        }
        pred[i] = b;
        flat[i] = bf;
    }
    for (int j = 0; j < 6; j++) {
        CHECK_NEAR(freq[j], pi[j], 0.02);
        CHECK_NEAR(mpost[j], freq[j], 0.02);
    }
    mer_metrics mb, mf;
    REQUIRE_OK(mer_metrics_compute(truth, pred, n, 6, &mb));
    REQUIRE_OK(mer_metrics_compute(truth, flat, n, 6, &mf));
    printf("    Bayes WAF %.4f, flat-prior rule %.4f\n", mb.waf, mf.waf);
    CHECK(mb.accuracy >= mf.accuracy);
    free(truth), free(pred), free(flat);
    mer__synth_free(s);
}

MER_TEST(synth_bad_params) {
    mer_synth_params p = mer_synth_default_params();
    p.n_classes = 1;
    CHECK_ERR(mer_synth_write("build/test-tmp/never", &p, NULL), MER_ERR_INVALID_ARG, "bad parameters");
    p = mer_synth_default_params();
    const double neg[6] = {1, 1, -1, 1, 1, 1};
    p.priors = neg;
    CHECK_ERR(mer_synth_write("build/test-tmp/never", &p, NULL), MER_ERR_INVALID_ARG, "prior");
}

MER_TEST(synth_cli) {
    const char *dir = mer_test_tmpdir("synth_cli");
    char out[4096];
    int rc = mer_test_run(out, sizeof out,
                          "%s synth --out %s/d --n 60 --unlabeled 10 --test 12 --classes a,b,c "
                          "--priors 3,2,1 --test-priors 1,2,3 --modality audio=6:2 "
                          "--modality text=5:1 --seed 4",
                          mer_test_bin(), dir);
    if (rc != 0) printf("    %s\n", out);
    CHECK(rc == 0);
    CHECK(strstr(out, "Bayes WAF labeled") != NULL);
    char path[600];
    snprintf(path, sizeof path, "%s/d/text/t000011.npy", dir);
    float *x = NULL;
    int32_t nd;
    int64_t shape[MER_MAX_DIMS];
    CHECK_OK(mer_npy_read(path, &x, &nd, shape));
    CHECK(x && shape[0] == 5);
    free(x);
    rc = mer_test_run(out, sizeof out, "%s synth --out %s/e --modality audio=x:1", mer_test_bin(), dir);
    CHECK(rc == 2 && strstr(out, "mer synth: ") == out);
    rc = mer_test_run(out, sizeof out, "%s synth --out %s/e --priors 1,2", mer_test_bin(), dir);
    CHECK(rc == 2);
    rc = mer_test_run(out, sizeof out, "%s synth --n 5", mer_test_bin());
    CHECK(rc == 2);
    /* missing parents of --out are made; a file in the way is one line naming the path once */
    rc = mer_test_run(out, sizeof out, "%s synth --out %s/p/q/r --n 30 --classes a,b --modality audio=3:2",
                      mer_test_bin(), dir);
    CHECK(rc == 0);
    snprintf(path, sizeof path, "%s/p/q/r/labels.csv", dir);
    CHECK(access(path, F_OK) == 0);
    snprintf(path, sizeof path, "%s/p/q/r/labels.csv/x", dir);
    rc = mer_test_run(out, sizeof out, "%s synth --out %s --n 30", mer_test_bin(), path);
    CHECK(rc == 1 && strstr(out, "mer synth: ") == out && strstr(out, "cannot create directory"));
    const char *first = strstr(out, path);
    CHECK(first && !strstr(first + strlen(path), path));
    CHECK(strchr(out, '\n') == out + strlen(out) - 1);
}
