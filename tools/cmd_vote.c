/*
 * cmd_vote.c -- `mer vote RUNDIR... --feature NAME=DIR ... --out pred.csv [--list LIST]
 * [--mode mean|majority] [--prior none|uniform|FILE|auto] [--format mer2024]`: ensemble the
 * fold-averaged predictions of several runs (models, seeds or modality sets), each corrected
 * for the test prior when asked (docs/agt.md, "Test priors and voting").
 */
#include "cli.h"
#include "prior_cli.h"

#include <stdio.h>
#include <string.h>

#define CMD "vote"
#define MAX_RUNS 64

static void help(void) {
    printf("usage: mer vote RUNDIR... --feature NAME=DIR [--feature ...] --out pred.csv\n"
           "                [--list LIST] [--mode mean|majority] [--prior none|uniform|FILE|auto]\n"
           "                [--format mer2024] [--threads N]\n"
           "Each run predicts the clips (mean of its fold models); with --prior its posteriors are\n"
           "corrected from its training prior to the target (auto: EM estimate from the mean\n"
           "posteriors, printed); then mean averages the runs, majority counts their argmax votes\n"
           "(ties broken by the mean). Without --list: every <name>.npy of the first --feature dir.\n"
           "The runs must share their class names (any order).\n");
}

int cmd_vote(int argc, char **argv) {
    const char *runs[MAX_RUNS];
    int n_runs = 0;
    cli_features feats = {0};
    const char *out = NULL, *list = NULL, *mode_s = "mean", *prior = "none", *format = NULL;
    long threads = 0;
    for (int i = 1; i < argc; i++) {
        const char *v;
        if (cli_opt(argc, argv, &i, "--feature", &v)) {
            int u = v ? cli_feature_add(CMD, &feats, v) : 0;
            if (u) return u;
        } else if (cli_opt(argc, argv, &i, "--out", &v)) out = v;
        else if (cli_opt(argc, argv, &i, "--list", &v)) list = v;
        else if (cli_opt(argc, argv, &i, "--mode", &v)) mode_s = v;
        else if (cli_opt(argc, argv, &i, "--prior", &v)) prior = v;
        else if (cli_opt(argc, argv, &i, "--format", &v)) format = v;
        else if (cli_opt(argc, argv, &i, "--threads", &v)) {
            if (v && !cli_parse_int(v, 0, 256, &threads)) return cli_usage(CMD, "--threads takes a count");
        } else if (cli_flag(argv[i], "--help") || cli_flag(argv[i], "-h")) {
            help();
            return 0;
        } else if (cli_is_option(argv[i])) return cli_usage(CMD, "unknown option %s", argv[i]);
        else {
            if (n_runs == MAX_RUNS) return cli_usage(CMD, "at most %d runs", MAX_RUNS);
            runs[n_runs++] = argv[i];
        }
    }
    if (cli_error()) return cli_usage(CMD, "%s", cli_error());
    if (!n_runs) return cli_usage(CMD, "needs at least one RUNDIR");
    if (!feats.n) return cli_usage(CMD, "needs --feature NAME=DIR");
    if (!out) return cli_usage(CMD, "needs --out pred.csv");
    mer_vote_mode mode;
    if (!strcmp(mode_s, "mean")) mode = MER_VOTE_MEAN;
    else if (!strcmp(mode_s, "majority")) mode = MER_VOTE_MAJORITY;
    else return cli_usage(CMD, "--mode is mean or majority, not '%s'", mode_s);
    if (format && strcmp(format, "mer2024") != 0)
        return cli_usage(CMD, "--format is mer2024 (or absent), not '%s'", format);
    cli_set_threads(threads);

    mer_vote_params vp = mer_vote_default_params();
    vp.runs = runs;
    vp.n_runs = n_runs;
    vp.features = feats.spec;
    vp.n_features = feats.n;
    vp.list = list;
    vp.mode = mode;
    prior_cli_parse(prior, &vp.prior, &vp.prior_csv);
    vp.out = out;
    vp.mer2024 = format != NULL;
    vp.abort = cli_interrupted; /* Ctrl-C stops between runs */
    mer_vote_result *res = NULL;
    cli_catch_sigint(1);
    mer_status s = mer_vote(&vp, &res);
    cli_catch_sigint(0);
    if (s != MER_OK) return cli_fail_status(CMD, s, NULL);
    const char *classes[MER_MAX_CLASSES];
    for (int32_t j = 0; j < res->n_classes; j++) classes[j] = res->classes[j];
    prior_cli_print(&res->prior, classes);
    printf("wrote %s: %lld clips, %d runs, %s vote, prior %s\n", out, (long long)res->n, n_runs,
           mode_s, prior);
    mer_vote_result_free(res);
    return 0;
}
