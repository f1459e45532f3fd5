/*
 * prior_cli.h -- the `--prior none|uniform|FILE|auto` option shared by `mer predict` and
 * `mer vote` (tools/prior_cli.c; semantics in docs/agt.md, "Test priors and voting"; the
 * correction itself is the library's: mer_prior_apply_run, mer_vote).
 */
#ifndef MER_PRIOR_CLI_H
#define MER_PRIOR_CLI_H

#include "mer.h"

/* spec (NULL: none) as a mode, and for a FILE its path in *csv (else NULL). */
void prior_cli_parse(const char *spec, mer_prior_mode *mode, const char **csv);

/* For an auto prior, the estimate on stdout: "prior auto: class=p ... (train: p ...; N EM
 * iterations)". Nothing for the other modes. */
void prior_cli_print(const mer_prior_info *info, const char *const *classes);

#endif
