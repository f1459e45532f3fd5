/*
 * cmd_vote.c -- `mer vote RUNDIR... --feature NAME=DIR ... --out pred.csv [--list LIST]
 * [--mode mean|majority] [--prior none|uniform|FILE|auto] [--format mer2024]`: ensemble the
 * fold-averaged predictions of several runs (models, seeds or modality sets), each corrected
 * for the test prior when asked (docs/agt.md, "Test priors and voting").
 */
#include "cli.h"
#include "prior_cli.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
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

static int cmp_names(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Names of DIR's *.npy files, sorted, in one block like mer_read_name_list. */
static int list_npy(const char *dir, char ***names, int64_t *n) {
    DIR *d = opendir(dir);
    if (!d) return cli_fail(CMD, "%s: cannot open the feature directory", dir);
    size_t cap = 0, cnt = 0, bytes = 0;
    char **tmp = NULL;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (l <= 4 || strcmp(e->d_name + l - 4, ".npy") != 0) continue;
        if (cnt == cap) {
            cap = cap ? 2 * cap : 256;
            char **t = realloc(tmp, cap * sizeof *t);
            if (!t) break;
            tmp = t;
        }
        tmp[cnt] = strndup(e->d_name, l - 4);
        if (!tmp[cnt]) break;
        bytes += l - 3;
        cnt++;
    }
    closedir(d);
    qsort(tmp, cnt, sizeof *tmp, cmp_names);
    char **blk = malloc(cnt * sizeof(char *) + bytes + 1);
    if (!blk) {
        for (size_t i = 0; i < cnt; i++) free(tmp[i]);
        free(tmp);
        return cli_fail(CMD, "out of memory");
    }
    char *p = (char *)(blk + cnt);
    for (size_t i = 0; i < cnt; i++) {
        size_t l = strlen(tmp[i]) + 1;
        memcpy(p, tmp[i], l);
        blk[i] = p;
        p += l;
        free(tmp[i]);
    }
    free(tmp);
    if (!cnt) {
        free(blk);
        return cli_fail(CMD, "%s: no .npy files", dir);
    }
    *names = blk;
    *n = (int64_t)cnt;
    return 0;
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

    int rc = 0;
    mer_run *run[MAX_RUNS] = {0};
    float *probs[MAX_RUNS] = {0};
    float *comb = NULL;
    char **names = NULL;
    int64_t n = 0;
    mer_dataset *ds = NULL;
    const char *classes[MER_MAX_CLASSES];
    int32_t c = 0;
    mer_status s;
    for (int r = 0; r < n_runs && !rc; r++) {
        if ((s = mer_run_open(&run[r], runs[r])) != MER_OK) {
            rc = cli_fail_status(CMD, s, runs[r]);
            break;
        }
        /* --out may not replace the list, a run's files or the labels a run was trained on */
        char cfg[4200];
        snprintf(cfg, sizeof cfg, "%s/config.json", runs[r]);
        const char *ins[] = {list, cfg, mer_run_labels(run[r])};
        if ((s = mer_output_check(out, ins, 3)) != MER_OK) {
            rc = cli_fail_status(CMD, s, NULL);
            break;
        }
        int32_t cr = mer_run_n_classes(run[r]);
        if (r == 0) {
            c = cr;
            for (int32_t j = 0; j < c; j++) classes[j] = mer_run_class(run[0], j);
            continue;
        }
        int same = cr == c;
        for (int32_t j = 0; j < cr && same; j++) {
            int32_t q = 0;
            while (q < c && strcmp(classes[q], mer_run_class(run[r], j)) != 0) q++;
            same = q < c;
        }
        if (!same) rc = cli_fail(CMD, "%s: its classes differ from those of %s", runs[r], runs[0]);
    }
    if (rc) goto done;

    if (list) {
        if ((s = mer_read_name_list(list, &names, &n)) != MER_OK) {
            rc = cli_fail_status(CMD, s, list);
            goto done;
        }
    } else if ((rc = list_npy(feats.spec[0].dir, &names, &n)) != 0) {
        goto done;
    }
    mer_dataset_params dp = mer_dataset_default_params();
    dp.labels_csv = NULL;
    dp.names = (const char *const *)names;
    dp.n_names = n;
    dp.classes = classes;
    dp.n_classes = c;
    dp.modalities = feats.spec;
    dp.n_modalities = feats.n;
    if ((s = mer_dataset_load(&ds, &dp)) != MER_OK) {
        rc = cli_fail_status(CMD, s, "features");
        goto done;
    }
    n = mer_dataset_count(ds);
    for (int r = 0; r < n_runs && !rc; r++) {
        int32_t cr = mer_run_n_classes(run[r]);
        float *raw = malloc((size_t)(n * cr) * sizeof(float));
        probs[r] = malloc((size_t)(n * c) * sizeof(float));
        if (!raw || !probs[r]) {
            free(raw);
            rc = cli_fail(CMD, "out of memory");
            break;
        }
        if ((s = mer_run_predict(run[r], ds, raw)) != MER_OK) {
            free(raw);
            rc = cli_fail_status(CMD, s, runs[r]);
            break;
        }
        /* columns into the first run's class order */
        for (int32_t j = 0; j < cr; j++) {
            int32_t q = 0;
            while (strcmp(classes[q], mer_run_class(run[r], j)) != 0) q++;
            for (int64_t i = 0; i < n; i++) probs[r][i * c + q] = raw[i * cr + j];
        }
        free(raw);
    }
    if (rc) goto done;

    if (strcmp(prior, "none") != 0) {
        /* each run's own training prior; one target for all of them */
        double tr[MAX_RUNS][MER_MAX_CLASSES], mean_tr[MER_MAX_CLASSES] = {0}, target[MER_MAX_CLASSES];
        for (int r = 0; r < n_runs && !rc; r++) {
            if ((s = mer_prior_from_run(runs[r], classes, c, tr[r])) != MER_OK) rc = cli_fail_status(CMD, s, runs[r]);
            for (int32_t j = 0; j < c && !rc; j++) mean_tr[j] += tr[r][j] / n_runs;
        }
        if (rc) goto done;
        comb = malloc((size_t)(n * c) * sizeof(float));
        if (!comb) {
            rc = cli_fail(CMD, "out of memory");
            goto done;
        }
        if ((s = mer_vote_combine(comb, (const float *const *)probs, n_runs, n, c, MER_VOTE_MEAN)) != MER_OK) {
            rc = cli_fail_status(CMD, s, "vote");
            goto done;
        }
        int active = 0;
        if ((rc = prior_cli_target(CMD, prior, classes, c, comb, n, mean_tr, target, &active)) != 0) goto done;
        for (int r = 0; r < n_runs && !rc && active; r++)
            if ((s = mer_prior_correct(probs[r], n, c, tr[r], target)) != MER_OK) rc = cli_fail_status(CMD, s, runs[r]);
        if (rc) goto done;
    }
    if (!comb && !(comb = malloc((size_t)(n * c) * sizeof(float)))) {
        rc = cli_fail(CMD, "out of memory");
        goto done;
    }
    if ((s = mer_vote_combine(comb, (const float *const *)probs, n_runs, n, c, mode)) != MER_OK) {
        rc = cli_fail_status(CMD, s, "vote");
        goto done;
    }
    if ((s = mer_write_predictions(out, ds, comb, classes, c, format != NULL)) != MER_OK) {
        rc = cli_fail_status(CMD, s, out);
        goto done;
    }
    printf("wrote %s: %lld clips, %d runs, %s vote, prior %s\n", out, (long long)n, n_runs,
           mode_s, prior);
done:
    for (int r = 0; r < n_runs; r++) {
        mer_run_free(run[r]);
        free(probs[r]);
    }
    free(comb);
    free(names);
    mer_dataset_free(ds);
    return rc;
}
