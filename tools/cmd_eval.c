/*
 * cmd_eval.c -- `mer eval`: score a predictions CSV (from `mer predict`, `mer train`'s oof.csv
 * or test.csv, or the MER2024 submission layout) against a labels CSV: WAF, accuracy, macro
 * F1, UAR, per-class precision/recall/F1 and the confusion matrix (scikit-learn semantics).
 * The joining and scoring is mer_eval_csv (src/pipeline/eval.c); this file prints its result.
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

    mer_eval_params ep = mer_eval_default_params();
    ep.name_col = name_col;
    ep.label_col = label_col;
    ep.pred_col = pred_col;
    mer_eval_result r;
    mer_status s = mer_eval_csv(labels, pred, &ep, &r);
    if (s != MER_OK) return cli_fail_status(CMD, s, NULL);
    const mer_metrics m = r.metrics;
    const int64_t n = r.n, nl = r.labels, unlabeled = r.unlabeled;
    const int32_t C = r.n_classes;
    char *const *cls = r.classes;
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
    mer_eval_result_free(&r);
    return rc;
}
