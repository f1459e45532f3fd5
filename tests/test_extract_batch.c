/*
 * test_extract_batch.c -- batched feature extraction (issue #14): mer_speech_extract_batch
 * against mer_speech_extract one utterance at a time, per-utterance failures in their slots,
 * and `mer extract audio --batch N` against --batch 1 on real files, a bad one among them.
 */
#include "test.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HFIX "tests/fixtures/hubert/"

/* Utterances of different lengths cut from a12.wav (16 kHz); chunk_seconds 1 makes the longer
 * ones several chunks (the last zero-padded), so chunk bookkeeping across the batch is tested. */
MER_TEST(extract_batch_matches_single) {
    float *wav = NULL;
    int64_t n = 0;
    REQUIRE_OK(mer_media_decode_audio(HFIX "a12.wav", 16000, &wav, &n));
    REQUIRE(n > 60000);
    float silent[8000];
    memset(silent, 0, sizeof silent);
    /* good, good (3 chunks), silent, too short, good (1 chunk), NaN */
    float nan_buf[4000];
    for (int i = 0; i < 4000; i++) nan_buf[i] = wav[i];
    nan_buf[1234] = NAN;
    const float *xs[6] = {wav, wav + 9000, silent, wav, wav + 30000, nan_buf};
    const int64_t len[6] = {7000, 40000, 8000, 100, 16000, 4000};
    const int good[6] = {1, 1, 0, 0, 1, 0};
    const char *dirs[2] = {HFIX "base", HFIX "large"};
    for (int f = 0; f < 2; f++) {
        mer_speech_model *m = NULL;
        mer_speech_state *st = NULL;
        REQUIRE_OK(mer_speech_model_load(&m, dirs[f], NULL));
        REQUIRE_OK(mer_speech_state_init(&st, m, NULL));
        for (int cfg = 0; cfg < 3; cfg++) {
            mer_speech_params p = cfg == 0 ? mer_speech_mertools_params() : mer_speech_default_params();
            p.chunk_seconds = 1.0;
            if (cfg == 0) p.layer_first = -2; /* the fixtures have 2 layers: MERTools' sum and mean of the last 2 */
            if (cfg == 1) { /* all hidden states stacked, frames kept */
                p.layer_first = 1;
                p.layer_last = -1;
            }
            if (cfg == 2) { /* mean over layers 0..1, frames kept, int8 */
                p.layer_first = 0;
                p.layer_last = 1;
                p.combine = MER_SPEECH_MEAN;
                p.precision = MER_PRECISION_INT8;
            }
            mer_speech_feature outs[6];
            CHECK_OK(mer_speech_extract_batch(st, 6, xs, len, &p, outs));
            for (int i = 0; i < 6; i++) {
                float *ref = NULL;
                int32_t nd = 0;
                int64_t sh[3] = {0};
                mer_status rs = mer_speech_extract(st, xs[i], len[i], &p, &ref, &nd, sh);
                if (!good[i]) {
                    CHECK(rs != MER_OK && outs[i].status == rs && outs[i].data == NULL);
                    CHECK(strcmp(outs[i].error, mer_last_error()) == 0 && outs[i].error[0]);
                    free(ref);
                    continue;
                }
                REQUIRE_OK(rs);
                CHECK(outs[i].status == MER_OK && outs[i].ndim == nd);
                size_t sz = 1;
                for (int d = 0; d < nd; d++) {
                    CHECK(outs[i].shape[d] == sh[d]);
                    sz *= (size_t)sh[d];
                }
                if (outs[i].data && outs[i].ndim == nd) {
                    double mref, md = mer_test_maxdiff(outs[i].data, ref, sz, &mref);
                    /* packed int8 rows are independent: same bits; fp32 through the GEMM library */
                    if (p.precision == MER_PRECISION_INT8 ? md != 0.0 : !(md <= 1e-5 * mref)) {
                        printf("  %s config %d utterance %d: max|diff| %.3g (max|ref| %.3g)\n", dirs[f], cfg, i, md, mref);
                        CHECK(!"batched extraction differs from one at a time");
                    }
                }
                free(ref);
                free(outs[i].data);
            }
        }
        /* every utterance failing is not an error of the call */
        const float *bad[2] = {silent, wav};
        const int64_t blen[2] = {8000, 50};
        mer_speech_params p = mer_speech_default_params();
        mer_speech_feature o2[2];
        CHECK_OK(mer_speech_extract_batch(st, 2, bad, blen, &p, o2));
        CHECK(o2[0].status == MER_ERR_INVALID_ARG && strstr(o2[0].error, "silent"));
        CHECK(o2[1].status == MER_ERR_SHAPE && strstr(o2[1].error, "too short"));
        CHECK_ERR(mer_speech_extract_batch(st, 0, bad, blen, &p, o2), MER_ERR_INVALID_ARG, "no utterance");
        p.layer_last = 99;
        p.layer_first = 0;
        CHECK_OK(mer_speech_extract_batch(st, 2, bad, blen, &p, o2));
        CHECK(o2[0].status == MER_ERR_INVALID_ARG && strstr(o2[0].error, "outside"));
        mer_speech_state_free(st);
        mer_speech_model_free(m);
    }
    free(wav);
}

/* The CLI: 5 EmoDB clips and the fixture's a2.wav, an undecodable file between them, through
 * --batch 4 (two groups) against --batch 1: same features, the same one failure reported, the
 * same exit code; flag errors. */
MER_TEST(extract_batch_cli) {
    char out[8192], p[1024];
    const char *bin = mer_test_bin();
    const char *dir = mer_test_tmpdir("extract_batch_cli");
    const char *clips[7] = {"data/emodb/flac/03a01Fa.flac", "data/emodb/flac/03a01Nc.flac", HFIX "a2.wav", NULL,
                            "data/emodb/flac/03a01Wa.flac", "data/emodb/flac/08a02Ac.flac",
                            "data/emodb/flac/14a01Aa.flac"};
    char list[4096] = "", junk[600];
    snprintf(junk, sizeof junk, "%s/junk.wav", dir);
    REQUIRE(mer_test_write(junk, "RIFF, but not audio", 19) == 0);
    clips[3] = junk;
    for (int i = 0; i < 7; i++) {
        strcat(list, clips[i]);
        strcat(list, "\n");
    }
    snprintf(p, sizeof p, "%s/list.txt", dir);
    REQUIRE(mer_test_write(p, list, strlen(list)) == 0);
    char o1[700], o4[700], o1b[700];
    snprintf(o1, sizeof o1, "%s/b1", dir);
    snprintf(o4, sizeof o4, "%s/b4", dir);
    int rc1 = mer_test_run(out, sizeof out, "%s extract audio --model " HFIX "base --layers all --combine sum --pool mean "
                           "--list %s --out %s", bin, p, o1);
    CHECK(rc1 == 1 && strstr(out, "junk.wav") && strstr(out, "1 of 7 inputs failed"));
    int rc4 = mer_test_run(out, sizeof out, "%s extract audio --model " HFIX "base --layers all --combine sum --pool mean "
                           "--batch 4 --list %s --out %s", bin, p, o4);
    CHECK(rc4 == 1 && strstr(out, "junk.wav") && strstr(out, "1 of 7 inputs failed"));
    if (rc4 != 1) printf("%s\n", out);
    const char *names[6] = {"03a01Fa", "03a01Nc", "a2", "03a01Wa", "08a02Ac", "14a01Aa"};
    for (int i = 0; i < 6; i++) {
        float *a = NULL, *b = NULL;
        int32_t na = 0, nb = 0;
        int64_t sa[MER_MAX_DIMS], sb[MER_MAX_DIMS];
        char pa[800], pb[800];
        snprintf(pa, sizeof pa, "%s/%s.npy", o1, names[i]);
        snprintf(pb, sizeof pb, "%s/%s.npy", o4, names[i]);
        if (mer_npy_read(pa, &a, &na, sa) == MER_OK && mer_npy_read(pb, &b, &nb, sb) == MER_OK && na == 1 && nb == 1 &&
            sa[0] == 32 && sb[0] == 32) {
            double mref, md = mer_test_maxdiff(b, a, 32, &mref);
            CHECK(md <= 1e-5 * mref);
        } else {
            printf("  %s: outputs missing or mis-shaped\n", names[i]);
            CHECK(!"both runs wrote the feature");
        }
        free(a);
        free(b);
    }
    /* flags */
    snprintf(o1b, sizeof o1b, "%s/bad", dir);
    CHECK(mer_test_run(out, sizeof out, "%s extract audio --model " HFIX "base --batch 0 --out %s " HFIX "a2.wav", bin,
                       o1b) == 2 && strstr(out, "--batch"));
    CHECK(mer_test_run(out, sizeof out, "%s extract audio --model " HFIX "base --batch x --out %s " HFIX "a2.wav", bin,
                       o1b) == 2 && strstr(out, "--batch"));
}
