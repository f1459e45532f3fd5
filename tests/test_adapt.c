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
        REQUIRE_OK(mer_loso_run(ds, &tp, &lp, sub, probs, &m));
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

/* mer_dataset_adapt_ref: only the reference rows give a group's statistics, every row of the
 * group is standardised with them; a group with too few reference rows stays as it is. */
MER_TEST(adapt_ref_by_value) {
    const char *cls[2] = {"x", "y"}, *mods[1] = {"f"};
    mer_dataset *ds = NULL;
    REQUIRE_OK(mer_dataset_init(&ds, cls, 2, mods, 1));
    float X[10][2];
    const char *groups[10];
    uint8_t ref[10];
    for (int i = 0; i < 10; i++) {
        X[i][0] = (float)(i * i) * 0.5f + 3.0f;
        X[i][1] = (float)((i * 7) % 5) - 1.0f;
        groups[i] = i < 8 ? "a" : "b";
        ref[i] = (uint8_t)(i < 5 || i == 8); /* a: 5 reference rows of 8; b: 1 of 2 */
        char nm[16];
        snprintf(nm, sizeof nm, "r%d", i);
        mer_tensor t;
        int64_t sh[1] = {2};
        mer_tensor_view(&t, X[i], MER_DTYPE_F32, 1, sh);
        REQUIRE_OK(mer_dataset_add(ds, nm, i % 2, NULL, 0, &t));
    }
    int64_t n_un = -1;
    REQUIRE_OK(mer_dataset_adapt_ref(ds, groups, ref, 3, &n_un));
    CHECK(n_un == 2); /* group b has one reference row < 3 */
    for (int d = 0; d < 2; d++) {
        double mean = 0, var = 0;
        for (int i = 0; i < 5; i++) mean += X[i][d];
        mean /= 5;
        for (int i = 0; i < 5; i++) var += (X[i][d] - mean) * (X[i][d] - mean);
        double sd = sqrt(var / 5);
        for (int i = 0; i < 10; i++) {
            int64_t rows = 0;
            const float *f = mer_dataset_feature(ds, i, 0, &rows);
            REQUIRE(f && rows == 1);
            if (i < 8)
                CHECK_NEAR(f[d], (X[i][d] - mean) / sd, 1e-5);
            else
                CHECK(f[d] == X[i][d]);
        }
    }
    mer_dataset_free(ds);
}

/* `mer analyze` on a long recording of one speaker adapts over its 2 s speech tiles exactly as
 * `mer predict --adapt all` adapts the same speech given as separate clips: 7 EmoDB clips of
 * speaker 03 (2.0 s each, decoded at the model's 16 kHz) and 2 s of digital silence in the
 * middle (not speech, so not a tile), as one float WAV. The clip's speech probabilities equal the
 * mean of predict's rows; with --adapt none, or fewer speech tiles than --adapt-min, analyze
 * does not adapt. */
MER_TEST(adapt_analyze_windows_match_predict) {
    const char *dir = mer_test_tmpdir("adapt_analyze");
    static const char *clips[7] = {"03a01Fa", "03a01Nc", "03a01Wa", "03a02Fc", "03a02Nc", "03a02Ta", "03a02Wb"};
    const int32_t sr = 16000;
    const int64_t len = 2 * sr;
    float *all = calloc((size_t)(8 * len), sizeof(float));
    REQUIRE(all);
    char inputs[8000] = "", p[1400];
    for (int c = 0, pos = 0; c < 7; c++, pos++) {
        if (c == 3) pos++; /* the silent tile */
        float *x = NULL;
        int64_t n = 0;
        snprintf(p, sizeof p, "%s/data/emodb/flac/%s.flac", MER_SOURCE_DIR, clips[c]);
        REQUIRE_OK(mer_media_decode_audio(p, sr, &x, &n));
        REQUIRE(n == len);
        memcpy(all + pos * len, x, (size_t)len * sizeof(float));
        snprintf(p, sizeof p, "%s/%s.wav", dir, clips[c]);
        REQUIRE(mer_test_write_wav(p, x, n, sr, 1) == 0);
        free(x);
        size_t k = strlen(inputs);
        snprintf(inputs + k, sizeof inputs - k, " '%s'", p);
    }
    char longwav[1400];
    snprintf(longwav, sizeof longwav, "%s/long.wav", dir);
    REQUIRE(mer_test_write_wav(longwav, all, 8 * len, sr, 1) == 0);
    free(all);
    char model[1400], out[8192];
    snprintf(model, sizeof model, "%s/models/emodb-acoustic", MER_SOURCE_DIR);
    int rc = mer_test_run(out, sizeof out, "'%s' predict --run '%s' --input%s --adapt all --out '%s/p.csv'",
                          mer_test_bin(), model, inputs, dir);
    REQUIRE(rc == 0);
    /* the mean of predict's rows */
    snprintf(p, sizeof p, "%s/p.csv", dir);
    FILE *f = fopen(p, "r");
    REQUIRE(f);
    char line[1024];
    double mean[7] = {0};
    int rows = 0;
    REQUIRE(fgets(line, sizeof line, f)); /* header: name,anger,...,sadness,pred */
    CHECK(strncmp(line, "name,anger,boredom,disgust,fear,happiness,neutral,sadness,pred", 62) == 0);
    while (fgets(line, sizeof line, f)) {
        char *q = strchr(line, ',');
        for (int c = 0; q && c < 7; c++) {
            mean[c] += strtod(q + 1, &q);
        }
        rows++;
    }
    fclose(f);
    REQUIRE(rows == 7);
    mer_analyze_params ap = mer_analyze_default_params();
    ap.audio_model = model;
    ap.weights[MER_ANALYZE_FACE] = 0;
    mer_analysis *A = NULL;
    REQUIRE_OK(mer_analyze(longwav, &ap, &A));
    CHECK(A->audio_adapt_tiles == 7);
    CHECK(A->mod[MER_ANALYZE_AUDIO].n_native == 7);
    CHECK(strstr(A->mod[MER_ANALYZE_AUDIO].note, "adapted to the speaker over 7 windows") != NULL);
    for (int c = 0; c < 7; c++) CHECK_NEAR(A->mod[MER_ANALYZE_AUDIO].native[c], mean[c] / 7, 2e-6);
    float adapted[7];
    memcpy(adapted, A->mod[MER_ANALYZE_AUDIO].native, sizeof adapted);
    mer_analysis_free(A);
    /* not adapted: by choice, and with too few speech tiles */
    for (int k = 0; k < 2; k++) {
        ap.adapt = k ? MER_ANALYZE_ADAPT_AUTO : MER_ANALYZE_ADAPT_NONE;
        ap.adapt_min = k ? 8 : 5;
        A = NULL;
        REQUIRE_OK(mer_analyze(longwav, &ap, &A));
        CHECK(A->audio_adapt_tiles == 0);
        CHECK(strstr(A->mod[MER_ANALYZE_AUDIO].note, "adapted") == NULL);
        double d = 0;
        for (int c = 0; c < 7; c++) d += fabs(A->mod[MER_ANALYZE_AUDIO].native[c] - adapted[c]);
        CHECK(d > 1e-3); /* the whole clip with the training statistics: another answer */
        mer_analysis_free(A);
    }
    ap.adapt_min = 1;
    CHECK_ERR(mer_analyze(longwav, &ap, &A), MER_ERR_INVALID_ARG, "adapt_min");
    /* the CLI flags */
    rc = mer_test_run(out, sizeof out, "'%s' analyze '%s' --audio-model '%s' --weights face=0 --json",
                      mer_test_bin(), longwav, model);
    CHECK(rc == 0 && strstr(out, "\"adapted_windows\":\t7"));
    rc = mer_test_run(out, sizeof out, "'%s' analyze '%s' --audio-model '%s' --adapt none --json",
                      mer_test_bin(), longwav, model);
    CHECK(rc == 0 && strstr(out, "\"adapted_windows\":\t0"));
    rc = mer_test_run(out, sizeof out, "'%s' analyze '%s' --adapt sometimes", mer_test_bin(), longwav);
    CHECK(rc == 2 && strstr(out, "--adapt wants auto or none"));
    rc = mer_test_run(out, sizeof out, "'%s' analyze '%s' --adapt-min 1", mer_test_bin(), longwav);
    CHECK(rc == 2 && strstr(out, "--adapt-min"));
}
