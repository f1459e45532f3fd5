/*
 * cmd_extract_acoustic.c -- `mer extract acoustic`: weight-free eGeMAPS-style descriptors and
 * MFCCs (src/models/acoustic*.c) for any FFmpeg-decodable input, through one library call
 * (mer_extract_acoustic_files, src/pipeline/extract.c). --pool mean writes the utterance functionals (D,), --pool none
 * the frame sequence (T, D). --names FILE writes the feature names, one a line.
 */
#include "extract_common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *usage_text =
    "usage: mer extract acoustic [--pool mean|none] [--sample-rate HZ] [--names FILE]\n"
    "                            [--functionals egemaps|extended]\n"
    "                            [--overwrite] [--threads N] [--list FILE] --out PATH INPUT...\n"
    "\n"
    "Weight-free acoustic features (eGeMAPS-style LLDs + MFCC and deltas; docs/acoustic.md).\n"
    "  --pool mean      utterance functionals, one vector (D,) per input (default)\n"
    "  --pool none      frame-level descriptors (T, D), one frame every 10 ms\n"
    "  --sample-rate    analysis rate; inputs are resampled (default 16000)\n"
    "  --functionals    egemaps: 514 per input (default); extended: 929 (+ delta, range,\n"
    "                   skewness and kurtosis statistics of every LLD; docs/acoustic.md)\n"
    "  --names FILE     also write the feature names, one a line\n"
    "  --out PATH       a .npy for one input, else a directory of <name>.npy\n";

int cmd_extract_acoustic(int argc, char **argv) {
    const char *cmd = "extract acoustic";
    extract_opts eo;
    extract_opts_init(&eo, cmd);
    mer_acoustic_recipe r = mer_acoustic_default_recipe();
    const char *names = NULL;
    int rc = 0;
    for (int i = 1; i < argc; i++) {
        const char *v;
        if (cli_flag(argv[i], "--help") || cli_flag(argv[i], "-h")) {
            fputs(usage_text, stdout);
            extract_opts_free(&eo);
            return 0;
        }
        int c = extract_parse_common(&eo, argc, argv, &i);
        if (c < 0) {
            extract_opts_free(&eo);
            return 2;
        }
        if (c > 0) continue;
        if (cli_opt(argc, argv, &i, "--pool", &v)) {
            if (strcmp(v, "mean") && strcmp(v, "none")) {
                extract_opts_free(&eo);
                return cli_usage(cmd, "--pool must be mean or none, got '%s'", v);
            }
            snprintf(r.pool, sizeof r.pool, "%s", v);
        } else if (cli_opt(argc, argv, &i, "--sample-rate", &v)) {
            long sr;
            if (!cli_parse_int(v, 8000, 96000, &sr)) {
                extract_opts_free(&eo);
                return cli_usage(cmd, "--sample-rate must be an integer in [8000, 96000], got '%s'", v);
            }
            r.params.sample_rate = (int32_t)sr;
        } else if (cli_opt(argc, argv, &i, "--names", &v)) {
            names = v;
        } else if (cli_opt(argc, argv, &i, "--functionals", &v)) {
            if (strcmp(v, "egemaps") && strcmp(v, "extended")) {
                extract_opts_free(&eo);
                return cli_usage(cmd, "--functionals must be egemaps or extended, got '%s'", v);
            }
            r.params.functionals = strcmp(v, "extended") ? MER_ACOUSTIC_EGEMAPS : MER_ACOUSTIC_EXTENDED;
        } else {
            extract_opts_free(&eo);
            return cli_usage(cmd, "unknown option %s", argv[i]);
        }
    }
    if (cli_error()) {
        extract_opts_free(&eo);
        return cli_usage(cmd, "%s", cli_error());
    }
    if (extract_check(&eo)) {
        extract_opts_free(&eo);
        return 2;
    }
    if (names && mer_extract_acoustic_names(&r, names) != MER_OK) {
        extract_opts_free(&eo);
        return cli_fail(cmd, "%s", mer_last_error());
    }
    char *recipe = NULL; /* recorded in an output directory: another --pool later is refused */
    mer_status s = mer_acoustic_recipe_to_json(&r, &recipe);
    if (s) {
        extract_opts_free(&eo);
        return cli_fail_status(cmd, s, NULL);
    }
    extract_report rep;
    mer_extract_result er;
    mer_extract_params p = extract_params(&eo, recipe, &rep, &er);
    rc = extract_finish(&rep, mer_extract_acoustic_files(&r, eo.inputs, eo.n_inputs, eo.out, &p, &er), &er);
    free(recipe);
    extract_opts_free(&eo);
    return rc;
}
