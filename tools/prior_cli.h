/*
 * prior_cli.h -- the `--prior none|uniform|FILE|auto` option shared by `mer predict` and
 * `mer vote` (tools/prior_cli.c; semantics in docs/agt.md, "Test priors and voting").
 */
#ifndef MER_PRIOR_CLI_H
#define MER_PRIOR_CLI_H

#include "mer.h"

/* Resolve spec into the target test prior (c) for class posteriors probs (n, c) of a model
 * trained with pi_train: "none" sets *active = 0; "uniform"; a CSV FILE (class,prior); "auto"
 * (EM estimate from probs, printed on stdout as "prior auto: class=p ... (N iterations)").
 * Returns 0, or the exit code after printing one error line for cmd. */
int prior_cli_target(const char *cmd, const char *spec, const char *const *classes, int32_t c,
                     const float *probs, int64_t n, const double *pi_train, double *target,
                     int *active);

/* A whole `--prior` step for one run: read its training prior, resolve spec, correct probs in
 * place. Returns 0 or the exit code (error printed). */
int prior_cli_apply(const char *cmd, const char *spec, const char *rundir,
                    const char *const *classes, int32_t c, float *probs, int64_t n);

#endif
