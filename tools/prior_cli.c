/*
 * prior_cli.c -- the `--prior` option of `mer predict` and `mer vote`: turns the flag into a
 * target class prior and applies the posterior correction (the math is in src/train/prior.c).
 */
#include "prior_cli.h"

#include "cli.h"

#include <stdio.h>
#include <string.h>

int prior_cli_target(const char *cmd, const char *spec, const char *const *classes, int32_t c,
                     const float *probs, int64_t n, const double *pi_train, double *target,
                     int *active) {
    *active = 0;
    if (!spec || !strcmp(spec, "none")) return 0;
    *active = 1;
    if (!strcmp(spec, "uniform")) {
        for (int32_t j = 0; j < c; j++) target[j] = 1.0 / c;
        return 0;
    }
    if (!strcmp(spec, "auto")) {
        if (n < 1) return cli_fail(cmd, "--prior auto: no clips to estimate the test prior from");
        int32_t it = 0;
        mer_status s = mer_prior_estimate_em(target, &it, probs, n, c, pi_train, NULL);
        if (s != MER_OK) return cli_fail_status(cmd, s, "--prior auto");
        printf("prior auto:");
        for (int32_t j = 0; j < c; j++) printf(" %s=%.4f", classes[j], target[j]);
        printf(" (train:");
        for (int32_t j = 0; j < c; j++) printf(" %.4f", pi_train[j]);
        printf("; %d EM iterations)\n", it);
        return 0;
    }
    mer_status s = mer_prior_read_csv(spec, classes, c, target);
    if (s != MER_OK) return cli_fail_status(cmd, s, spec);
    return 0;
}

int prior_cli_apply(const char *cmd, const char *spec, const char *rundir,
                    const char *const *classes, int32_t c, float *probs, int64_t n) {
    if (!spec || !strcmp(spec, "none")) return 0;
    double tr[MER_MAX_CLASSES], target[MER_MAX_CLASSES];
    if (c > MER_MAX_CLASSES) return cli_fail(cmd, "%s: %d classes (max %d)", rundir, c, MER_MAX_CLASSES);
    mer_status s = mer_prior_from_run(rundir, classes, c, tr);
    if (s != MER_OK) return cli_fail_status(cmd, s, rundir);
    int active = 0;
    int rc = prior_cli_target(cmd, spec, classes, c, probs, n, tr, target, &active);
    if (rc || !active) return rc;
    s = mer_prior_correct(probs, n, c, tr, target);
    if (s != MER_OK) return cli_fail_status(cmd, s, "--prior");
    return 0;
}
