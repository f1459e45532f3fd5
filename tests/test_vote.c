/*
 * test_vote.c -- the CLI side of issue 8 end to end on a tiny synthetic set: `mer train` of agt
 * and afusion (plus self-training flags), `mer predict --prior none|uniform|FILE|auto` and
 * `mer vote` (mean, majority, with a prior), and their usage errors.
 */
#include "test.h"

static int count_lines(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    int n = 0, c;
    while ((c = fgetc(f)) != EOF) n += c == '\n';
    fclose(f);
    return n;
}

MER_TEST(vote_and_prior_cli_end_to_end) {
    char d[512];
    snprintf(d, sizeof d, "%s", mer_test_tmpdir("vote_cli"));
    const char *mer = mer_test_bin();
    char out[8192], feats[1024];
    int rc = mer_test_run(out, sizeof out,
                          "%s synth --out %s/s --n 90 --unlabeled 30 --test 40 --classes a,b,c "
                          "--priors 3,2,1 --test-priors 1,2,3 --modality audio=6:3 "
                          "--modality text=5:2 --seed 5", mer, d);
    REQUIRE(rc == 0);
    snprintf(feats, sizeof feats, "--feature audio=%s/s/audio --feature text=%s/s/text", d, d);
    const char *models[2] = {"agt", "afusion"};
    for (int k = 0; k < 2; k++) {
        rc = mer_test_run(out, sizeof out,
                          "%s train --labels %s/s/labels.csv %s --model %s --hidden 8 --heads 2 "
                          "--tokens 2 --folds 2 --epochs 4 --threads 1 --no-plots --out %s/r%d",
                          mer, d, feats, models[k], d, k);
        if (rc) printf("    %s\n", out);
        REQUIRE(rc == 0);
    }
    /* predict with each prior mode */
    rc = mer_test_run(out, sizeof out, "%s predict --run %s/r0 %s --list %s/s/test.txt --out %s/p.csv "
                      "--prior auto --threads 1", mer, d, feats, d, d);
    CHECK(rc == 0);
    CHECK(strstr(out, "prior auto: a=") != NULL);
    char path[1024];
    snprintf(path, sizeof path, "%s/p.csv", d);
    CHECK(count_lines(path) == 41);
    rc = mer_test_run(out, sizeof out, "%s predict --run %s/r0 %s --list %s/s/test.txt --out %s/p.csv "
                      "--prior uniform --threads 1", mer, d, feats, d, d);
    CHECK(rc == 0);
    snprintf(path, sizeof path, "%s/pri.csv", d);
    const char *pri = "class,prior\na,0.2\nb,0.3\nc,0.5\n";
    REQUIRE(mer_test_write(path, pri, strlen(pri)) == 0);
    rc = mer_test_run(out, sizeof out, "%s predict --run %s/r0 %s --list %s/s/test.txt --out %s/p.csv "
                      "--prior %s --threads 1", mer, d, feats, d, d, path);
    CHECK(rc == 0);
    const char *bad = "class,prior\na,0.2\nb,0.3\n";
    snprintf(path, sizeof path, "%s/bad.csv", d);
    REQUIRE(mer_test_write(path, bad, strlen(bad)) == 0);
    rc = mer_test_run(out, sizeof out, "%s predict --run %s/r0 %s --list %s/s/test.txt --out %s/q.csv "
                      "--prior %s --threads 1", mer, d, feats, d, d, path);
    CHECK(rc == 1 && strstr(out, "mer predict: ") && strstr(out, "'c' has no prior"));
    snprintf(path, sizeof path, "%s/q.csv", d);
    CHECK(count_lines(path) == -1);   /* nothing written on failure */

    /* vote: two runs, both modes, with and without a prior */
    rc = mer_test_run(out, sizeof out, "%s vote %s/r0 %s/r1 %s --list %s/s/test.txt --out %s/v.csv "
                      "--mode majority --prior auto --threads 1", mer, d, d, feats, d, d);
    if (rc) printf("    %s\n", out);
    CHECK(rc == 0 && strstr(out, "prior auto:") && strstr(out, "2 runs"));
    snprintf(path, sizeof path, "%s/v.csv", d);
    CHECK(count_lines(path) == 41);
    rc = mer_test_run(out, sizeof out, "%s vote %s/r0 %s/r1 %s --out %s/v2.csv --threads 1", mer, d,
                      d, feats, d);
    CHECK(rc == 0);   /* no --list: every clip of the first feature directory */
    snprintf(path, sizeof path, "%s/v2.csv", d);
    CHECK(count_lines(path) == 161);
    rc = mer_test_run(out, sizeof out, "%s vote %s --out %s/v3.csv", mer, feats, d);
    CHECK(rc == 2);
    rc = mer_test_run(out, sizeof out, "%s vote %s/r0 %s --out %s/v3.csv --mode median", mer, d, feats, d);
    CHECK(rc == 2 && strstr(out, "--mode"));
    rc = mer_test_run(out, sizeof out, "%s vote %s/nope %s --out %s/v3.csv", mer, d, feats, d);
    CHECK(rc == 1 && strstr(out, "mer vote: "));

    /* self-training flags: both or neither */
    rc = mer_test_run(out, sizeof out, "%s train --labels %s/s/labels.csv %s --model agt "
                      "--unlabeled %s/s/unlabeled.txt --out %s/r9", mer, d, feats, d, d);
    CHECK(rc == 2 && strstr(out, "--pseudo-rounds"));
    rc = mer_test_run(out, sizeof out,
                      "%s train --labels %s/s/labels.csv %s --model agt --hidden 8 --heads 2 "
                      "--folds 2 --epochs 3 --threads 1 --no-plots --unlabeled %s/s/unlabeled.txt "
                      "--pseudo-rounds 1 --pseudo-threshold 0.5 --out %s/r2", mer, d, feats, d, d);
    if (rc) printf("    %s\n", out);
    CHECK(rc == 0);
    snprintf(path, sizeof path, "%s/r2/rounds/round-0/metrics.json", d);
    CHECK(count_lines(path) > 0);
}
