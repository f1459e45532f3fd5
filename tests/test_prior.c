/*
 * test_prior.c -- posterior correction, EM estimation of test priors (Saerens et al. 2002),
 * priors CSV validation, run voting.
 *
 * The synthetic case: 3 classes of 2-D isotropic Gaussians; the classifier is the exact Bayes
 * posterior under the training prior (perfectly calibrated), evaluated on a test sample drawn
 * with another prior. EM must recover that prior, and the corrected argmax must score a higher
 * weighted F1 than the uncorrected one.
 */
#include "test.h"
#include "internal.h"

/* Weighted F1 (scikit-learn average='weighted'), the oracle for these tests. */
static double waf(const int32_t *truth, const int32_t *pred, int64_t n, int32_t c) {
    double tot = 0;
    for (int32_t k = 0; k < c; k++) {
        int64_t tp = 0, fp = 0, fn = 0;
        for (int64_t i = 0; i < n; i++) {
            tp += truth[i] == k && pred[i] == k;
            fp += truth[i] != k && pred[i] == k;
            fn += truth[i] == k && pred[i] != k;
        }
        double f1 = tp ? 2.0 * tp / (2.0 * tp + fp + fn) : 0.0;
        tot += f1 * (double)(tp + fn);
    }
    return tot / (double)n;
}

static int32_t argmax(const float *p, int32_t c) {
    int32_t b = 0;
    for (int32_t j = 1; j < c; j++)
        if (p[j] > p[b]) b = j;
    return b;
}

#define NC 3
static const double means[NC][2] = {{0, 0}, {1.6, 0}, {0, 1.6}};

/* n samples drawn with prior pi; probs get the Bayes posterior under prior pi_model. */
static void sample(mer__rng *r, int64_t n, const double *pi, const double *pi_model,
                   int32_t *y, float *probs) {
    for (int64_t i = 0; i < n; i++) {
        double u = mer__rng_uniform(r), cum = 0;
        int32_t k = NC - 1;
        for (int32_t j = 0; j < NC; j++) {
            cum += pi[j];
            if (u < cum) {
                k = j;
                break;
            }
        }
        y[i] = k;
        double x0 = means[k][0] + mer__rng_normal(r), x1 = means[k][1] + mer__rng_normal(r);
        double l[NC], m = -1e300, s = 0;
        for (int32_t j = 0; j < NC; j++) {
            double d0 = x0 - means[j][0], d1 = x1 - means[j][1];
            l[j] = -0.5 * (d0 * d0 + d1 * d1) + log(pi_model[j]);
            if (l[j] > m) m = l[j];
        }
        for (int32_t j = 0; j < NC; j++) s += exp(l[j] - m);
        for (int32_t j = 0; j < NC; j++) probs[i * NC + j] = (float)(exp(l[j] - m) / s);
    }
}

MER_TEST(prior_em_recovers_shifted_priors_and_raises_waf) {
    const double pi_train[NC] = {0.6, 0.3, 0.1};
    const double pi_test[NC] = {0.15, 0.25, 0.6};
    const int64_t n = 4000;
    int32_t *y = malloc(n * sizeof *y), *pred = malloc(n * sizeof *pred);
    float *p = malloc(n * NC * sizeof *p);
    REQUIRE(y && pred && p);
    mer__rng r;
    mer__rng_seed(&r, 7);
    sample(&r, n, pi_test, pi_train, y, p);

    double est[NC];
    int32_t iters = 0;
    REQUIRE_OK(mer_prior_estimate_em(p, n, NC, pi_train, NULL, est, &iters));
    for (int j = 0; j < NC; j++) CHECK_NEAR(est[j], pi_test[j], 0.05);
    CHECK(iters > 1 && iters < 1000);
    CHECK_NEAR(est[0] + est[1] + est[2], 1.0, 1e-9);

    for (int64_t i = 0; i < n; i++) pred[i] = argmax(p + i * NC, NC);
    double waf_none = waf(y, pred, n, NC);
    REQUIRE_OK(mer_prior_correct(p, n, NC, pi_train, est));
    for (int64_t i = 0; i < n; i++) pred[i] = argmax(p + i * NC, NC);
    double waf_auto = waf(y, pred, n, NC);
    printf("    waf none %.4f, auto %.4f; est %.3f %.3f %.3f in %d iterations\n", waf_none,
           waf_auto, est[0], est[1], est[2], iters);
    CHECK(waf_auto > waf_none + 0.02);
    free(y), free(pred), free(p);
}

MER_TEST(prior_em_same_prior_is_a_fixed_point) {
    /* With no shift the estimate stays near the training prior. */
    const double pi[NC] = {0.5, 0.3, 0.2};
    const int64_t n = 3000;
    int32_t *y = malloc(n * sizeof *y);
    float *p = malloc(n * NC * sizeof *p);
    REQUIRE(y && p);
    mer__rng r;
    mer__rng_seed(&r, 3);
    sample(&r, n, pi, pi, y, p);
    double est[NC];
    REQUIRE_OK(mer_prior_estimate_em(p, n, NC, pi, NULL, est, NULL));
    for (int j = 0; j < NC; j++) CHECK_NEAR(est[j], pi[j], 0.03);
    free(y), free(p);
}

MER_TEST(prior_correct_exact_values) {
    float p[2 * 2] = {0.5f, 0.5f, 0.8f, 0.2f};
    const double tr[2] = {0.5, 0.5}, te[2] = {0.25, 0.75};
    REQUIRE_OK(mer_prior_correct(p, 2, 2, tr, te));
    CHECK_NEAR(p[0], 0.25, 1e-7);
    CHECK_NEAR(p[1], 0.75, 1e-7);
    CHECK_NEAR(p[2], 0.8 * 0.25 / (0.8 * 0.25 + 0.2 * 0.75), 1e-7);
    /* identical priors (even unnormalised) leave posteriors unchanged */
    float q[3] = {0.2f, 0.3f, 0.5f};
    const double a[3] = {1, 2, 3}, b[3] = {2, 4, 6};
    REQUIRE_OK(mer_prior_correct(q, 1, 3, a, b));
    CHECK_NEAR(q[0], 0.2, 1e-7);
    CHECK_NEAR(q[2], 0.5, 1e-7);
    /* bad inputs */
    const double zero[2] = {0, 1};
    CHECK_ERR(mer_prior_correct(p, 2, 2, zero, te), MER_ERR_INVALID_ARG, "train prior");
    float bad[2] = {NAN, 1};
    CHECK_ERR(mer_prior_correct(bad, 1, 2, tr, te), MER_ERR_NUMERIC, "row 0");
    double est[2];
    CHECK_ERR(mer_prior_estimate_em(bad, 1, 2, tr, NULL, est, NULL), MER_ERR_NUMERIC, NULL);
    CHECK_ERR(mer_prior_estimate_em(p, 0, 2, tr, NULL, est, NULL), MER_ERR_INVALID_ARG, NULL);
}

MER_TEST(prior_read_csv_validates) {
    const char *dir = mer_test_tmpdir("prior_csv");
    char path[512];
    const char *classes[3] = {"happy", "sad", "neutral"};
    double pr[3];
    snprintf(path, sizeof path, "%s/ok.csv", dir);
    const char *ok = "class,prior\nsad,20\nhappy,30\nneutral,50\n";
    REQUIRE(mer_test_write(path, ok, strlen(ok)) == 0);
    REQUIRE_OK(mer_prior_read_csv(path, classes, 3, pr));
    CHECK_NEAR(pr[0], 0.3, 1e-12);
    CHECK_NEAR(pr[1], 0.2, 1e-12);
    CHECK_NEAR(pr[2], 0.5, 1e-12);

    struct {
        const char *text, *want;
    } bad[] = {
        {"class,prior\nsad,0.2\nhappy,0.3\n", "'neutral' has no prior"},
        {"class,prior\nsad,0.2\nhappy,0.3\nneutral,0.5\nangry,0.1\n", "'angry' is not one"},
        {"class,prior\nsad,0.2\nsad,0.3\nneutral,0.5\n", "listed twice"},
        {"class,prior\nsad,x\nhappy,0.3\nneutral,0.5\n", "not a number"},
        {"class,prior\nsad,-1\nhappy,0.3\nneutral,0.5\n", "not a number"},
        {"class,prior\nsad,0\nhappy,0\nneutral,0\n", "sum to 0"},
        {"name,prior\nsad,1\n", "class"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        snprintf(path, sizeof path, "%s/bad%zu.csv", dir, i);
        REQUIRE(mer_test_write(path, bad[i].text, strlen(bad[i].text)) == 0);
        mer_status s = mer_prior_read_csv(path, classes, 3, pr);
        CHECK(s != MER_OK);
        if (s != MER_OK && !strstr(mer_last_error(), bad[i].want))
            printf("    case %zu: message '%s' lacks '%s'\n", i, mer_last_error(), bad[i].want);
        CHECK(s == MER_OK || strstr(mer_last_error(), bad[i].want));
    }
}

MER_TEST(prior_vote_mean_and_majority) {
    const float a[2 * 3] = {0.6f, 0.3f, 0.1f, 0.2f, 0.3f, 0.5f};
    const float b[2 * 3] = {0.1f, 0.8f, 0.1f, 0.2f, 0.4f, 0.4f};
    const float c[2 * 3] = {0.5f, 0.4f, 0.1f, 0.1f, 0.8f, 0.1f};
    const float *runs[3] = {a, b, c};
    float out[6];
    REQUIRE_OK(mer_vote_combine(runs, 3, 2, 3, MER_VOTE_MEAN, out));
    CHECK_NEAR(out[0], 0.4, 1e-6);
    CHECK_NEAR(out[1], 0.5, 1e-6);
    CHECK(argmax(out, 3) == 1);
    REQUIRE_OK(mer_vote_combine(runs, 3, 2, 3, MER_VOTE_MAJORITY, out));
    /* row 0 votes: class 0 twice (a, c), class 1 once (b): majority 0 where the mean says 1 */
    CHECK(argmax(out, 3) == 0);
    CHECK_NEAR(out[0] + out[1] + out[2], 1.0, 1e-6);
    /* row 1 votes 2, 1, 1 (b's tie 0.4/0.4 goes to the first): class 1 */
    CHECK(argmax(out + 3, 3) == 1);
    CHECK_ERR(mer_vote_combine(runs, 0, 2, 3, MER_VOTE_MEAN, out), MER_ERR_INVALID_ARG, NULL);
}
