/*
 * cmd_predict.c -- `mer predict`: class probabilities of a trained run (mean of its fold
 * models) for clips given as feature files (--feature NAME=DIR, optionally --list LIST) or as
 * raw media (--input FILE..., when the run recorded a feature recipe: mer_media_dataset).
 */
#include "cli.h"
#include "prior_cli.h"

#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *CMD = "predict";

static void usage(FILE *f) {
    fprintf(f,
            "usage: mer predict --run RUNDIR --feature NAME=DIR [...] [--list LIST] --out pred.csv\n"
            "       mer predict --run RUNDIR --input MEDIA... --out pred.csv\n"
            "                   [--format csv|mer2024] [--threads N]\n"
            "                   [--prior none|uniform|FILE|auto]\n"
            "                   [--adapt none|all|group [--group-regex RE | --groups CSV\n"
            "                    [--group-col COL]] [--adapt-min N]]\n"
            "\n"
            "Writes name, one probability column per class, pred (the mean over the run's fold\n"
            "models). Without --list, every <clip>.npy of the first feature directory is predicted.\n"
            "--format mer2024 writes the MER2024 submission layout (name, discrete).\n"
            "--input extracts features from media files with the recipe recorded in the run (or,\n"
            "for a `mer finetune speech` run, with its encoder: as its cache, docs/finetune.md).\n"
            "--prior corrects the posteriors from the run's training class prior to a test prior:\n"
            "uniform, a CSV FILE (class,prior) or auto (EM estimate from these clips, printed);\n"
            "see docs/agt.md.\n"
            "--adapt standardises the features of each group of clips (a speaker) with the group's\n"
            "own statistics, no labels used (docs/demo.md): all = the clips given are one speaker;\n"
            "group = groups from --group-regex RE (its first parenthesised part, else the whole\n"
            "match, of each clip name) or from column COL (default speaker) of --groups CSV\n"
            "(name,COL,...). Groups of fewer than --adapt-min clips (default 5) stay unadapted.\n");
}

int cmd_predict(int argc, char **argv) {
    const char *run_dir = NULL, *out = NULL, *list = NULL, *format = "csv", *prior = NULL;
    const char *adapt = "none", *group_re = NULL, *groups_csv = NULL, *group_col = "speaker";
    long adapt_min = 5;
    cli_features feats = {0};
    const char **inputs = calloc((size_t)argc, sizeof *inputs);
    int32_t n_in = 0;
    long threads = 0;
    int rc = 0;
    if (!inputs) return cli_fail(CMD, "out of memory");
    for (int i = 1; i < argc; i++) {
        const char *v;
        if (cli_flag(argv[i], "--help") || cli_flag(argv[i], "-h")) {
            usage(stdout);
            goto done;
        } else if (cli_opt(argc, argv, &i, "--run", &v)) run_dir = v;
        else if (cli_opt(argc, argv, &i, "--out", &v)) out = v;
        else if (cli_opt(argc, argv, &i, "--list", &v)) list = v;
        else if (cli_opt(argc, argv, &i, "--format", &v)) format = v;
        else if (cli_opt(argc, argv, &i, "--prior", &v)) prior = v;
        else if (cli_opt(argc, argv, &i, "--adapt", &v)) adapt = v;
        else if (cli_opt(argc, argv, &i, "--group-regex", &v)) group_re = v;
        else if (cli_opt(argc, argv, &i, "--groups", &v)) groups_csv = v;
        else if (cli_opt(argc, argv, &i, "--group-col", &v)) group_col = v;
        else if (cli_opt(argc, argv, &i, "--adapt-min", &v)) {
            if (!cli_parse_int(v, 2, 1000000, &adapt_min)) {
                rc = cli_usage(CMD, "--adapt-min wants an integer >= 2, got '%s'", v);
                goto done;
            }
        }
        else if (cli_opt(argc, argv, &i, "--threads", &v)) {
            if (!cli_parse_int(v, 0, 1024, &threads)) {
                rc = cli_usage(CMD, "--threads wants an integer in [0, 1024], got '%s'", v);
                goto done;
            }
        } else if (cli_opt(argc, argv, &i, "--feature", &v)) {
            if (v && (rc = cli_feature_add(CMD, &feats, v))) goto done;
        } else if (cli_flag(argv[i], "--input")) {
            while (i + 1 < argc && !cli_is_option(argv[i + 1])) inputs[n_in++] = argv[++i];
        } else if (cli_is_option(argv[i])) {
            rc = cli_usage(CMD, "unknown option %s", argv[i]);
            goto done;
        } else {
            rc = cli_usage(CMD, "unexpected argument '%s'", argv[i]);
            goto done;
        }
    }
    if (cli_error()) { rc = cli_usage(CMD, "%s", cli_error()); goto done; }
    if (!run_dir) { rc = cli_usage(CMD, "--run RUNDIR is required"); goto done; }
    if (!out) { rc = cli_usage(CMD, "--out FILE is required"); goto done; }
    if (strcmp(format, "csv") && strcmp(format, "mer2024")) {
        rc = cli_usage(CMD, "--format wants csv or mer2024, got '%s'", format);
        goto done;
    }
    if (strcmp(adapt, "none") && strcmp(adapt, "all") && strcmp(adapt, "group")) {
        rc = cli_usage(CMD, "--adapt wants none, all or group, got '%s'", adapt);
        goto done;
    }
    if (!strcmp(adapt, "group") && !group_re == !groups_csv) {
        rc = cli_usage(CMD, "--adapt group needs one of --group-regex RE or --groups CSV");
        goto done;
    }
    if (strcmp(adapt, "group") && (group_re || groups_csv)) {
        rc = cli_usage(CMD, "--group-regex/--groups go with --adapt group");
        goto done;
    }
    if (!feats.n && !n_in) { rc = cli_usage(CMD, "give --feature NAME=DIR or --input MEDIA..."); goto done; }
    if (feats.n && n_in) { rc = cli_usage(CMD, "--feature and --input do not mix"); goto done; }
    if (group_re) { /* a bad regex is a usage error (the library compiles it again) */
        regex_t re;
        int e = regcomp(&re, group_re, REG_EXTENDED);
        if (e) {
            char msg[256];
            regerror(e, &re, msg, sizeof msg);
            rc = cli_usage(CMD, "--group-regex '%s': %s", group_re, msg);
            goto done;
        }
        regfree(&re);
    }
    cli_set_threads(threads);

    mer_predict_params pp = mer_predict_default_params();
    pp.run = run_dir;
    pp.features = feats.spec;
    pp.n_features = feats.n;
    pp.list = list;
    pp.media = inputs;
    pp.n_media = n_in;
    pp.adapt = !strcmp(adapt, "all") ? MER_PREDICT_ADAPT_ALL : !strcmp(adapt, "group") ? MER_PREDICT_ADAPT_GROUP
                                                                                      : MER_PREDICT_ADAPT_NONE;
    pp.group_regex = group_re;
    pp.groups_csv = groups_csv;
    pp.group_col = group_col;
    pp.adapt_min = (int32_t)adapt_min;
    prior_cli_parse(prior, &pp.prior, &pp.prior_csv);
    pp.out = out;
    pp.mer2024 = !strcmp(format, "mer2024");
    pp.abort = cli_interrupted; /* Ctrl-C stops between media files */
    mer_predict_result r;
    cli_catch_sigint(1);
    mer_status s = mer_predict(&pp, &r);
    cli_catch_sigint(0);
    if (s != MER_OK) {
        rc = cli_fail_status(CMD, s, NULL);
        goto done;
    }
    if (r.n_unadapted)
        fprintf(stderr, "mer predict: warning: %lld clips are in groups of fewer than %ld clips "
                "and were not adapted\n", (long long)r.n_unadapted, adapt_min);
    else if (r.n > 1 && r.trained_on_groups)
        fprintf(stderr, "mer predict: note: this run was trained on speaker-normalised features; "
                "for several clips of one speaker, --adapt all (or --adapt group) is more accurate "
                "(docs/demo.md)\n");
    const char *cls[MER_MAX_CLASSES];
    for (int32_t k = 0; k < r.n_classes; k++) cls[k] = r.classes[k];
    prior_cli_print(&r.prior, cls);
    fprintf(stderr, "mer predict: %lld clips -> %s\n", (long long)r.n, out);
done:
    free(inputs);
    return rc;
}
