/*
 * test_adapt.c -- test-time adaptation (mer_dataset_adapt) and leave-one-group-out with
 * train-only (augmented) rows: checked by value.
 */
#include "test.h"

/* Two groups of 6 clips (D = 3, column 2 constant in group b), one lone clip, checked by value:
 * each adapted group has column mean 0 and population std 1 (0 for a constant column), the lone
 * clip is untouched and counted, and the result equals mer_group_standardize bitwise. */
MER_TEST(adapt_dataset_by_value) {
    const char *cls[2] = {"x", "y"}, *mods[1] = {"f"};
    mer_dataset *ds = NULL;
    REQUIRE_OK(mer_dataset_init(&ds, cls, 2, mods, 1));
    float X[13][3];
    const char *groups[13];
    uint64_t r = 12345;
    for (int i = 0; i < 13; i++) {
        for (int d = 0; d < 3; d++) {
            r = r * 6364136223846793005ULL + 1442695040888963407ULL;
            X[i][d] = (float)((double)(r >> 40) / (double)(1 << 24)) * (i < 6 ? 10.0f : 0.1f) + (i < 6 ? 50.0f : -3.0f);
        }
        if (i >= 6 && i < 12) X[i][2] = 7.0f;
        groups[i] = i < 6 ? "a" : i < 12 ? "b" : "c";
        char nm[16];
        snprintf(nm, sizeof nm, "c%d", i);
        mer_tensor t;
        int64_t sh[1] = {3};
        mer_tensor_view(&t, X[i], MER_DTYPE_F32, 1, sh);
        REQUIRE_OK(mer_dataset_add(ds, nm, i % 2, groups[i], 0, &t));
    }
    int64_t n_un = -1;
    REQUIRE_OK(mer_dataset_adapt(ds, groups, 2, &n_un));
    CHECK(n_un == 1);
    float ref[13][3];
    memcpy(ref, X, sizeof ref);
    REQUIRE_OK(mer_group_standardize(&ref[0][0], 12, 3, groups));
    for (int g = 0; g < 2; g++) {
        double mean[3], sd[3];
        float rows[6][3];
        for (int k = 0; k < 6; k++)
            for (int d = 0; d < 3; d++) rows[k][d] = ref[g * 6 + k][d];
        REQUIRE_OK(mer_column_stats(&rows[0][0], 6, 3, mean, sd));
        for (int d = 0; d < 3; d++) {
            CHECK_NEAR(mean[d], 0.0, 1e-6);
            if (g == 1 && d == 2)
                CHECK(sd[d] == 0.0);
            else
                CHECK_NEAR(sd[d], 1.0, 1e-5);
        }
    }
    /* the data set now holds exactly ref's rows for groups a, b and the raw lone clip */
    float got[13][3];
    for (int i = 0; i < 13; i++) {
        int64_t rows = 0;
        const float *f = mer_dataset_feature(ds, i, 0, &rows);
        REQUIRE(f && rows == 1);
        memcpy(got[i], f, sizeof got[i]);
    }
    CHECK(memcmp(got, ref, 12 * sizeof got[0]) == 0);
    CHECK(memcmp(got[12], X[12], sizeof got[12]) == 0);
    /* errors */
    const char *bad[13];
    memcpy(bad, groups, sizeof bad);
    bad[4] = NULL;
    CHECK_ERR(mer_dataset_adapt(ds, bad, 2, NULL), MER_ERR_INVALID_ARG, "c4");
    CHECK_ERR(mer_dataset_adapt(ds, groups, 1, NULL), MER_ERR_INVALID_ARG, "min_clips");
    mer_dataset_free(ds);
}

/* Leave-one-group-out with train-only rows: they are never predicted or scored (metrics over the
 * 18 clips, probs rows of copies stay 0, predictions.csv lists the 18 clips), and the per-group
 * statistics keys (norm_groups) are honoured: MER_NORM_GROUP_SINGLE runs too. */
MER_TEST(adapt_loso_train_only_rows) {
    const char *dir = mer_test_tmpdir("adapt_loso");
    const char *cls[2] = {"x", "y"}, *mods[1] = {"f"};
    mer_dataset *ds = NULL;
    REQUIRE_OK(mer_dataset_init(&ds, cls, 2, mods, 1));
    const char *gn[3] = {"g0", "g1", "g2"};
    const char *ng[27];
    char ngbuf[27][16];
    uint64_t r = 99;
    for (int i = 0; i < 27; i++) {
        int g = i % 3, copy = i >= 18, label = (i / 3) % 2;
        float x[4];
        for (int d = 0; d < 4; d++) {
            r = r * 6364136223846793005ULL + 1442695040888963407ULL;
            x[d] = (float)((double)(r >> 40) / (double)(1 << 24)) + (d == 0 ? 2.0f * label : 0.0f) + g;
        }
        char nm[32];
        snprintf(nm, sizeof nm, copy ? "c%d@copy" : "c%d", i);
        snprintf(ngbuf[i], sizeof ngbuf[i], "%s%s", gn[g], copy ? "@copy" : "");
        ng[i] = ngbuf[i];
        mer_tensor t;
        int64_t sh[1] = {4};
        mer_tensor_view(&t, x, MER_DTYPE_F32, 1, sh);
        REQUIRE_OK(mer_dataset_add(ds, nm, label, gn[g], copy, &t));
    }
    mer_train_params tp = mer_train_default_params();
    snprintf(tp.model, sizeof tp.model, "linear");
    tp.epochs = 5;
    tp.plots = 0;
    tp.checkpoint_every = 0;
    mer_loso_params lp = mer_loso_default_params();
    lp.seeds = 1;
    lp.norm_groups = ng;
    float probs[27 * 2];
    mer_metrics m;
    for (int mode = 0; mode < 2; mode++) {
        lp.norm = mode ? MER_NORM_GROUP_SINGLE : MER_NORM_GROUP;
        memset(probs, 0xff, sizeof probs);
        char sub[1200];
        snprintf(sub, sizeof sub, "%s/m%d", dir, mode);
        REQUIRE_OK(mer_loso_run(&tp, &lp, ds, sub, probs, &m));
        CHECK(m.n == 18);
        for (int i = 0; i < 27; i++) {
            float s = probs[i * 2] + probs[i * 2 + 1];
            if (i >= 18)
                CHECK(probs[i * 2] == 0.0f && probs[i * 2 + 1] == 0.0f);
            else
                CHECK_NEAR(s, 1.0, 1e-5);
        }
        char p[1300], buf[4096] = "";
        snprintf(p, sizeof p, "%s/predictions.csv", sub);
        FILE *f = fopen(p, "r");
        REQUIRE(f);
        size_t k = fread(buf, 1, sizeof buf - 1, f);
        buf[k] = '\0';
        fclose(f);
        int lines = 0;
        for (size_t q = 0; q < k; q++) lines += buf[q] == '\n';
        CHECK(lines == 19); /* header + 18 clips */
        CHECK(strstr(buf, "@copy") == NULL);
        snprintf(p, sizeof p, "%s/metrics.json", sub);
        f = fopen(p, "r");
        REQUIRE(f);
        k = fread(buf, 1, sizeof buf - 1, f);
        buf[k] = '\0';
        fclose(f);
        CHECK(strstr(buf, mode ? "train-set for held-out" : "\"per-group\"") != NULL);
    }
    mer_dataset_free(ds);
}
