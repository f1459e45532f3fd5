/*
 * prior_cli.c -- the `--prior` option of `mer predict` and `mer vote`: the flag as a
 * mer_prior_mode, and the auto estimate printed (the math is in src/train/prior.c).
 */
#include "prior_cli.h"

#include <stdio.h>
#include <string.h>

void prior_cli_parse(const char *spec, mer_prior_mode *mode, const char **csv) {
    *csv = NULL;
    if (!spec || !strcmp(spec, "none")) *mode = MER_PRIOR_NONE;
    else if (!strcmp(spec, "uniform")) *mode = MER_PRIOR_UNIFORM;
    else if (!strcmp(spec, "auto")) *mode = MER_PRIOR_AUTO;
    else {
        *mode = MER_PRIOR_CSV;
        *csv = spec;
    }
}

void prior_cli_print(const mer_prior_info *info, const char *const *classes) {
    if (info->mode != MER_PRIOR_AUTO) return;
    printf("prior auto:");
    for (int32_t j = 0; j < info->n_classes; j++) printf(" %s=%.4f", classes[j], info->target[j]);
    printf(" (train:");
    for (int32_t j = 0; j < info->n_classes; j++) printf(" %.4f", info->train[j]);
    printf("; %d EM iterations)\n", info->em_iters);
}
