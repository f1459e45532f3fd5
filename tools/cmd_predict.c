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

/* One group name per clip of ds for --adapt group (owned strings in *out, n entries). */
static int adapt_groups(const mer_dataset *ds, const char *re_src, const char *csv_path,
                        const char *col, char ***out) {
    int64_t n = mer_dataset_count(ds);
    char **g = calloc((size_t)(n > 0 ? n : 1), sizeof *g);
    if (!g) return cli_fail(CMD, "out of memory");
    *out = g;
    if (re_src) {
        regex_t re;
        int e = regcomp(&re, re_src, REG_EXTENDED);
        if (e) {
            char msg[256];
            regerror(e, &re, msg, sizeof msg);
            return cli_usage(CMD, "--group-regex '%s': %s", re_src, msg);
        }
        int rc = 0;
        for (int64_t i = 0; i < n && !rc; i++) {
            regmatch_t mt[2];
            const char *name = mer_dataset_name(ds, i);
            if (regexec(&re, name, 2, mt, 0)) {
                rc = cli_fail(CMD, "--group-regex '%s' does not match clip '%s'", re_src, name);
                break;
            }
            int k = re.re_nsub >= 1 && mt[1].rm_so >= 0 ? 1 : 0;
            g[i] = strndup(name + mt[k].rm_so, (size_t)(mt[k].rm_eo - mt[k].rm_so));
            if (!g[i]) rc = cli_fail(CMD, "out of memory");
        }
        regfree(&re);
        return rc;
    }
    mer_csv *csv = NULL;
    mer_status s = mer_csv_load(&csv, csv_path);
    int32_t cn = 0, cg = 0;
    if (!s) s = mer_csv_col(csv, "name", &cn);
    if (!s) s = mer_csv_col(csv, col, &cg);
    if (s) {
        mer_csv_free(csv);
        return cli_fail_status(CMD, s, NULL);
    }
    int rc = 0;
    for (int64_t i = 0; i < n && !rc; i++) {
        const char *name = mer_dataset_name(ds, i);
        for (int64_t r = 0; r < mer_csv_rows(csv); r++)
            if (!strcmp(mer_csv_cell(csv, r, cn), name)) {
                g[i] = strdup(mer_csv_cell(csv, r, cg));
                if (!g[i]) rc = cli_fail(CMD, "out of memory");
                break;
            }
        if (!rc && !g[i]) rc = cli_fail(CMD, "%s: no row for clip '%s'", csv_path, name);
    }
    mer_csv_free(csv);
    return rc;
}

/* The run's recipe says it was trained on per-group (speaker) standardised features. */
static int recipe_adapts_groups(const mer_run *run) {
    const char *rec = mer_run_recipe(run), *adapt = NULL;
    mer_json *j = NULL;
    int yes = rec && mer_json_parse(&j, rec, strlen(rec), "recipe") == MER_OK &&
              mer_json_string_or(j, "adapt", "", &adapt) == MER_OK && !strcmp(adapt, "group");
    mer_json_free(j);
    mer_clear_error();
    return yes;
}

int cmd_predict(int argc, char **argv) {
    const char *run_dir = NULL, *out = NULL, *list = NULL, *format = "csv", *prior = NULL;
    const char *adapt = "none", *group_re = NULL, *groups_csv = NULL, *group_col = "speaker";
    long adapt_min = 5;
    char **agroups = NULL;
    cli_features feats = {0};
    const char **inputs = calloc((size_t)argc, sizeof *inputs);
    int32_t n_in = 0;
    long threads = 0;
    int rc = 0;
    mer_run *run = NULL;
    mer_dataset *ds = NULL;
    char **names = NULL;
    int64_t n_names = 0;
    float *probs = NULL;
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
    cli_set_threads(threads);

    mer_status s = mer_run_open(&run, run_dir);
    if (s != MER_OK) { rc = cli_fail_status(CMD, s, NULL); goto done; }
    {
        /* --out may not replace anything predict reads, nor the labels the run was trained on;
         * checked before any work (feature files are checked by name below) */
        char cfg[4200], rec[4200];
        snprintf(cfg, sizeof cfg, "%s/config.json", run_dir);
        snprintf(rec, sizeof rec, "%s/recipe.json", run_dir);
        const char *extra[] = {list, cfg, rec, mer_run_labels(run)};
        if ((s = mer_output_check(out, extra, 4)) != MER_OK ||
            (s = mer_output_check(out, inputs, n_in)) != MER_OK) {
            rc = cli_fail_status(CMD, s, NULL);
            goto done;
        }
    }
    const char *cls[MER_MAX_CLASSES];
    int32_t C = mer_run_n_classes(run);
    for (int32_t k = 0; k < C; k++) cls[k] = mer_run_class(run, k);

    if (n_in) {
        s = mer_media_dataset(run, inputs, n_in, &ds);
        if (s != MER_OK) { rc = cli_fail_status(CMD, s, NULL); goto done; }
    } else {
        if (list) {
            s = mer_read_name_list(list, &names, &n_names);
        } else {
            s = mer_list_feature_names(feats.spec[0].dir, &names, &n_names);
        }
        if (s != MER_OK) { rc = cli_fail_status(CMD, s, NULL); goto done; }
        mer_dataset_params dp = mer_dataset_default_params();
        dp.classes = cls;
        dp.n_classes = C;
        dp.names = (const char *const *)names;
        dp.n_names = n_names;
        dp.modalities = feats.spec;
        dp.n_modalities = feats.n;
        s = mer_dataset_load(&ds, &dp);
        if (s != MER_OK) { rc = cli_fail_status(CMD, s, NULL); goto done; }
    }
    int64_t n = mer_dataset_count(ds);
    for (int64_t i = 0; !n_in && i < n; i++) {
        for (int32_t m = 0; m < feats.n; m++) {
            char fp[4200];
            const char *one[1] = {fp};
            if (mer_name_path(fp, sizeof fp, feats.spec[m].dir, mer_dataset_name(ds, i), ".npy", NULL, 0) == MER_OK &&
                (s = mer_output_check(out, one, 1)) != MER_OK) {
                rc = cli_fail_status(CMD, s, NULL);
                goto done;
            }
        }
    }
    if (strcmp(adapt, "none")) {
        if (!strcmp(adapt, "all")) {
            agroups = calloc((size_t)(n > 0 ? n : 1), sizeof *agroups);
            for (int64_t i = 0; agroups && i < n; i++) agroups[i] = strdup("all");
            if (!agroups) { rc = cli_fail(CMD, "out of memory"); goto done; }
        } else if ((rc = adapt_groups(ds, group_re, groups_csv, group_col, &agroups))) {
            goto done;
        }
        int64_t n_un = 0;
        s = mer_dataset_adapt(ds, (const char *const *)agroups, (int32_t)adapt_min, &n_un);
        if (s != MER_OK) { rc = cli_fail_status(CMD, s, NULL); goto done; }
        if (n_un)
            fprintf(stderr, "mer predict: warning: %lld clips are in groups of fewer than %ld clips "
                    "and were not adapted\n", (long long)n_un, adapt_min);
    } else if (n > 1 && recipe_adapts_groups(run)) {
        fprintf(stderr, "mer predict: note: this run was trained on speaker-normalised features; "
                "for several clips of one speaker, --adapt all (or --adapt group) is more accurate "
                "(docs/demo.md)\n");
    }
    probs = malloc((size_t)(n ? n * C : 1) * sizeof *probs);
    if (!probs) { rc = cli_fail(CMD, "out of memory"); goto done; }
    s = mer_run_predict(run, ds, probs);
    if (s == MER_OK) {
        mer_prior_mode pm;
        const char *pcsv;
        mer_prior_info pinfo;
        prior_cli_parse(prior, &pm, &pcsv);
        s = mer_prior_apply_run(probs, run_dir, cls, C, n, pm, pcsv, &pinfo);
        if (s == MER_OK) prior_cli_print(&pinfo, cls);
    }
    if (s == MER_OK) s = mer_write_predictions(out, ds, probs, cls, C, !strcmp(format, "mer2024"));
    if (s != MER_OK) { rc = cli_fail_status(CMD, s, NULL); goto done; }
    fprintf(stderr, "mer predict: %lld clips -> %s\n", (long long)n, out);
done:
    for (int64_t k = 0; agroups && k < mer_dataset_count(ds); k++) free(agroups[k]);
    free(agroups);
    free(names);
    free(probs);
    mer_dataset_free(ds);
    mer_run_free(run);
    free(inputs);
    return rc;
}
