/*
 * cmd_eval.c -- `mer eval`: score a predictions CSV (from `mer predict`, `mer train`'s oof.csv
 * or test.csv, or the MER2024 submission layout) against a labels CSV: WAF, accuracy, macro
 * F1, UAR, per-class precision/recall/F1 and the confusion matrix (scikit-learn semantics).
 */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *CMD = "eval";

static void usage(FILE *f) {
    fprintf(f,
            "usage: mer eval --labels CSV --pred pred.csv [--name-col name] [--label-col emotion]\n"
            "                [--pred-col pred] [--json]\n"
            "\n"
            "Scores the clips present in both files. The prediction column is 'pred' (mer\n"
            "predict) or 'discrete' (MER2024 layout) unless --pred-col is given. Classes are the\n"
            "sorted union of true and predicted labels.\n");
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

typedef struct {
    const char *name;
    int64_t row;
} name_row;

static int cmp_nr(const void *a, const void *b) {
    return strcmp(((const name_row *)a)->name, ((const name_row *)b)->name);
}

int cmd_eval(int argc, char **argv) {
    const char *labels = NULL, *pred = NULL, *name_col = "name", *label_col = "emotion",
               *pred_col = NULL;
    int json = 0, rc = 0;
    for (int i = 1; i < argc; i++) {
        const char *v;
        if (cli_flag(argv[i], "--help") || cli_flag(argv[i], "-h")) {
            usage(stdout);
            return 0;
        } else if (cli_opt(argc, argv, &i, "--labels", &v)) labels = v;
        else if (cli_opt(argc, argv, &i, "--pred", &v)) pred = v;
        else if (cli_opt(argc, argv, &i, "--name-col", &v)) name_col = v;
        else if (cli_opt(argc, argv, &i, "--label-col", &v)) label_col = v;
        else if (cli_opt(argc, argv, &i, "--pred-col", &v)) pred_col = v;
        else if (cli_flag(argv[i], "--json")) json = 1;
        else if (cli_is_option(argv[i])) return cli_usage(CMD, "unknown option %s", argv[i]);
        else return cli_usage(CMD, "unexpected argument '%s'", argv[i]);
    }
    if (cli_error()) return cli_usage(CMD, "%s", cli_error());
    if (!labels || !pred) return cli_usage(CMD, "--labels CSV and --pred CSV are required");

    mer_csv *lc = NULL, *pc = NULL;
    name_row *lr = NULL;
    const char **all = NULL;
    int32_t *truth = NULL, *guess = NULL;
    mer_status s = mer_csv_load(&lc, labels);
    if (s == MER_OK) s = mer_csv_load(&pc, pred);
    if (s != MER_OK) { rc = cli_fail_status(CMD, s, NULL); goto done; }
    int32_t ln, ll, pn, pp;
    if ((s = mer_csv_col(lc, name_col, &ln)) != MER_OK || (s = mer_csv_col(lc, label_col, &ll)) != MER_OK ||
        (s = mer_csv_col(pc, name_col, &pn)) != MER_OK) {
        rc = cli_fail_status(CMD, s, NULL);
        goto done;
    }
    if (pred_col) s = mer_csv_col(pc, pred_col, &pp);
    else if (mer_csv_col(pc, "pred", &pp) != MER_OK) s = mer_csv_col(pc, "discrete", &pp);
    if (s != MER_OK) { rc = cli_fail_status(CMD, s, NULL); goto done; }
    int64_t nl = mer_csv_rows(lc), np = mer_csv_rows(pc);
    lr = malloc((size_t)(nl ? nl : 1) * sizeof *lr);
    all = malloc((size_t)(nl + np + 1) * sizeof *all);
    truth = malloc((size_t)(np ? np : 1) * sizeof *truth);
    guess = malloc((size_t)(np ? np : 1) * sizeof *guess);
    if (!lr || !all || !truth || !guess) { rc = cli_fail(CMD, "out of memory"); goto done; }
    for (int64_t r = 0; r < nl; r++) lr[r] = (name_row){mer_csv_cell(lc, r, ln), r};
    qsort(lr, (size_t)nl, sizeof *lr, cmp_nr);
    /* a clip twice in either file would be scored twice (or against either label): refused */
    for (int64_t r = 1; r < nl; r++)
        if (!strcmp(lr[r].name, lr[r - 1].name)) {
            rc = cli_fail(CMD, "%s: clip '%s' appears twice (rows %lld and %lld)", labels, lr[r].name,
                          (long long)(lr[r - 1].row < lr[r].row ? lr[r - 1].row : lr[r].row) + 2,
                          (long long)(lr[r - 1].row < lr[r].row ? lr[r].row : lr[r - 1].row) + 2);
            goto done;
        }
    {
        name_row *pr = malloc((size_t)(np ? np : 1) * sizeof *pr);
        if (!pr) { rc = cli_fail(CMD, "out of memory"); goto done; }
        for (int64_t r = 0; r < np; r++) pr[r] = (name_row){mer_csv_cell(pc, r, pn), r};
        qsort(pr, (size_t)np, sizeof *pr, cmp_nr);
        for (int64_t r = 1; r < np && !rc; r++)
            if (!strcmp(pr[r].name, pr[r - 1].name))
                rc = cli_fail(CMD, "%s: clip '%s' is predicted twice (rows %lld and %lld); each clip "
                              "may have one prediction", pred, pr[r].name,
                              (long long)(pr[r - 1].row < pr[r].row ? pr[r - 1].row : pr[r].row) + 2,
                              (long long)(pr[r - 1].row < pr[r].row ? pr[r].row : pr[r - 1].row) + 2);
        free(pr);
        if (rc) goto done;
    }
    /* classes: sorted union of labels and predictions */
    int64_t na = 0;
    for (int64_t r = 0; r < nl; r++) all[na++] = mer_csv_cell(lc, r, ll);
    for (int64_t r = 0; r < np; r++) all[na++] = mer_csv_cell(pc, r, pp);
    qsort(all, (size_t)na, sizeof *all, cmp_str);
    const char *cls[MER_MAX_CLASSES];
    int32_t C = 0;
    for (int64_t k = 0; k < na; k++) {
        if (k && !strcmp(all[k], all[k - 1])) continue;
        if (C == MER_MAX_CLASSES) { rc = cli_fail(CMD, "%s: more than %d classes", labels, MER_MAX_CLASSES); goto done; }
        cls[C++] = all[k];
    }
    int64_t n = 0, unlabeled = 0;
    for (int64_t r = 0; r < np; r++) {
        name_row key = {mer_csv_cell(pc, r, pn), 0};
        name_row *hit = bsearch(&key, lr, (size_t)nl, sizeof *lr, cmp_nr);
        if (!hit) { unlabeled++; continue; }
        const char *t = mer_csv_cell(lc, hit->row, ll), *g = mer_csv_cell(pc, r, pp);
        for (int32_t k = 0; k < C; k++) {
            if (!strcmp(cls[k], t)) truth[n] = k;
            if (!strcmp(cls[k], g)) guess[n] = k;
        }
        n++;
    }
    if (!n) { rc = cli_fail(CMD, "%s: no predicted clip has a label in %s", pred, labels); goto done; }
    mer_metrics m;
    s = mer_metrics_compute(truth, guess, n, C, &m);
    if (s != MER_OK) { rc = cli_fail_status(CMD, s, NULL); goto done; }
    if (unlabeled || n < nl)
        fprintf(stderr, "mer eval: scored %lld clips (%lld predictions without a label, %lld labels without a prediction)\n",
                (long long)n, (long long)unlabeled, (long long)(nl - n));
    if (json) {
        printf("{\"n\": %lld, \"waf\": %.10g, \"accuracy\": %.10g, \"macro_f1\": %.10g, \"uar\": %.10g, \"classes\": {",
               (long long)n, m.waf, m.accuracy, m.macro_f1, m.uar);
        for (int32_t k = 0; k < C; k++) {
            printf("%s", k ? ", " : "");
            cli_json_str(stdout, cls[k]);
            printf(": {\"precision\": %.10g, \"recall\": %.10g, \"f1\": %.10g, \"support\": %lld}",
                   m.precision[k], m.recall[k], m.f1[k], (long long)m.support[k]);
        }
        printf("}}\n");
        goto done;
    }
    printf("clips     %lld\nWAF       %.4f\naccuracy  %.4f\nmacro F1  %.4f\nUAR       %.4f\n\n",
           (long long)n, m.waf, m.accuracy, m.macro_f1, m.uar);
    int w = 8;
    for (int32_t k = 0; k < C; k++) if ((int)strlen(cls[k]) > w) w = (int)strlen(cls[k]);
    printf("%-*s  precision  recall     f1  support\n", w, "class");
    for (int32_t k = 0; k < C; k++)
        printf("%-*s  %9.4f  %6.4f  %6.4f  %7lld\n", w, cls[k], m.precision[k], m.recall[k], m.f1[k],
               (long long)m.support[k]);
    printf("\nconfusion (rows: true, columns: predicted)\n%-*s", w, "");
    for (int32_t k = 0; k < C; k++) printf(" %7.7s", cls[k]);
    printf("\n");
    for (int32_t t = 0; t < C; t++) {
        printf("%-*s", w, cls[t]);
        for (int32_t k = 0; k < C; k++) printf(" %7lld", (long long)m.confusion[t * C + k]);
        printf("\n");
    }
done:
    free(lr);
    free(all);
    free(truth);
    free(guess);
    mer_csv_free(lc);
    mer_csv_free(pc);
    return rc;
}
