/*
 * cmd_synth.c -- `mer synth --out DIR ...`: write a seeded synthetic multimodal data set with a
 * known Bayes-optimal rule (src/train/synth.c; model and flags in docs/agt.md).
 */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CMD "synth"
#define MAX_C 32
#define MAX_M 8

static void help(void) {
    printf("usage: mer synth --out DIR [--preset small|mer2024|semi] [--n N] [--unlabeled U] [--test T]\n"
           "                 [--classes a,b,...] [--priors p,...] [--test-priors p,...]\n"
           "                 [--modality NAME=DIM:SEP ...] [--rank R] [--seed S]\n"
           "Class-conditional Gaussians per modality: x_m | y ~ N(mu_{m,y}, I), class means in a\n"
           "random R-dim subspace, SEP = typical distance between two class means in noise sds.\n"
           "The exact Bayes posterior is known; its WAF per split is printed and kept in synth.json.\n"
           "Writes labels.csv, <modality>/<name>.npy, unlabeled.txt + unlabeled_truth.csv,\n"
           "test.txt + test_labels.csv, bayes.csv, synth.json.\n"
           "  --preset small    MER2024's 6 classes and priors; audio 32:2.2, text 48:1.6, video 24:1.2;\n"
           "                    2000 labeled clips (default)\n"
           "  --preset mer2024  the MER2024-SEMI shape: 5030 labeled clips, audio 1024, text 5120,\n"
           "                    video 768 (for benchmarks)\n"
           "  --preset semi     self-training case (bench/selftrain.sh): MER2024's 6 classes, equal\n"
           "                    priors; audio 48:4.0, text 48:3.0, video 24:2.0; 400 labeled,\n"
           "                    3600 unlabeled, 2000 test clips, seed 5\n"
           "  --priors / --test-priors  one value per class (any positive scale: normalised)\n");
}

/* Split "a,b,c" into at most cap pieces (in place). Returns the count, or -1 when too many. */
static int split_commas(char *s, char **out, int cap) {
    int n = 0;
    for (char *t = strtok(s, ","); t; t = strtok(NULL, ",")) {
        if (n == cap) return -1;
        out[n++] = t;
    }
    return n;
}

static int parse_doubles(const char *flag, char *s, double *out, int want) {
    char *parts[MAX_C + 1];
    int n = split_commas(s, parts, MAX_C);
    if (n != want) return cli_usage(CMD, "%s needs %d comma-separated values (one per class), got %d",
                                    flag, want, n < 0 ? MAX_C + 1 : n);
    for (int i = 0; i < n; i++)
        if (!cli_parse_double(parts[i], 0, 1e12, &out[i]))
            return cli_usage(CMD, "%s: '%s' is not a number >= 0", flag, parts[i]);
    return 0;
}

int cmd_synth(int argc, char **argv) {
    mer_synth_params p = mer_synth_default_params();
    const char *out = NULL, *preset = "small", *classes_arg = NULL, *priors_arg = NULL,
               *tpriors_arg = NULL;
    const char *mod_args[MAX_M];
    int n_mod_args = 0;
    long n = -1, nu = -1, nt = -1, rank = 8;
    long seed = -1;   /* -1: the preset's */
    for (int i = 1; i < argc; i++) {
        const char *v;
        if (cli_opt(argc, argv, &i, "--out", &v)) out = v;
        else if (cli_opt(argc, argv, &i, "--preset", &v)) preset = v;
        else if (cli_opt(argc, argv, &i, "--classes", &v)) classes_arg = v;
        else if (cli_opt(argc, argv, &i, "--priors", &v)) priors_arg = v;
        else if (cli_opt(argc, argv, &i, "--test-priors", &v)) tpriors_arg = v;
        else if (cli_opt(argc, argv, &i, "--modality", &v)) {
            if (v && n_mod_args == MAX_M) return cli_usage(CMD, "at most %d --modality", MAX_M);
            if (v) mod_args[n_mod_args++] = v;
        } else if (cli_opt(argc, argv, &i, "--n", &v)) {
            if (v && !cli_parse_int(v, 0, 100000000, &n)) return cli_usage(CMD, "--n takes a count");
        } else if (cli_opt(argc, argv, &i, "--unlabeled", &v)) {
            if (v && !cli_parse_int(v, 0, 100000000, &nu)) return cli_usage(CMD, "--unlabeled takes a count");
        } else if (cli_opt(argc, argv, &i, "--test", &v)) {
            if (v && !cli_parse_int(v, 0, 100000000, &nt)) return cli_usage(CMD, "--test takes a count");
        } else if (cli_opt(argc, argv, &i, "--rank", &v)) {
            if (v && !cli_parse_int(v, 1, 4096, &rank)) return cli_usage(CMD, "--rank takes 1..4096");
        } else if (cli_opt(argc, argv, &i, "--seed", &v)) {
            if (v && !cli_parse_int(v, 0, 0x7fffffffL, &seed)) return cli_usage(CMD, "--seed takes an integer >= 0");
        } else if (cli_flag(argv[i], "--help") || cli_flag(argv[i], "-h")) {
            help();
            return 0;
        } else return cli_usage(CMD, "unknown argument %s", argv[i]);
    }
    if (cli_error()) return cli_usage(CMD, "%s", cli_error());
    if (!out) return cli_usage(CMD, "needs --out DIR");

    static const char *const mods3[] = {"audio", "text", "video"};
    static const int64_t big_dims[] = {1024, 5120, 768};
    static const double big_sep[] = {2.2, 1.6, 1.2};
    if (!strcmp(preset, "mer2024")) {
        p.modalities = mods3;
        p.dims = big_dims;
        p.sep = big_sep;
        p.n_labeled = 5030;
    } else if (!strcmp(preset, "semi")) {
        /* well-separated class clusters (Bayes WAF about 0.96) in 120 dimensions: 400 labels
         * leave the fusion models clearly below the Bayes rule, and their confident
         * predictions are almost always right for every class (docs/agt.md) */
        static const double equal6[] = {1, 1, 1, 1, 1, 1};
        static const int64_t semi_dims[] = {48, 48, 24};
        static const double semi_sep[] = {4.0, 3.0, 2.0};
        p.priors = equal6;
        p.dims = semi_dims;
        p.sep = semi_sep;
        p.n_labeled = 400;
        p.n_unlabeled = 3600;
        p.n_test = 2000;
        p.seed = 5;
    } else if (strcmp(preset, "small") != 0) {
        return cli_usage(CMD, "--preset is small, mer2024 or semi, not '%s'", preset);
    }
    if (n >= 0) p.n_labeled = n;
    if (nu >= 0) p.n_unlabeled = nu;
    if (nt >= 0) p.n_test = nt;
    p.rank = (int32_t)rank;
    if (seed >= 0) p.seed = (uint64_t)seed;

    char cbuf[4096];
    char *cls[MAX_C + 1];
    if (classes_arg) {
        snprintf(cbuf, sizeof cbuf, "%s", classes_arg);
        int c = split_commas(cbuf, cls, MAX_C);
        if (c < 2) return cli_usage(CMD, "--classes needs 2..%d comma-separated names", MAX_C);
        p.n_classes = c;
        p.classes = (const char *const *)cls;
    }
    double pri[MAX_C], tpri[MAX_C];
    char pbuf[4096];
    if (priors_arg) {
        snprintf(pbuf, sizeof pbuf, "%s", priors_arg);
        int r = parse_doubles("--priors", pbuf, pri, p.n_classes);
        if (r) return r;
        p.priors = pri;
    } else if (classes_arg) {
        for (int j = 0; j < p.n_classes; j++) pri[j] = 1.0;
        p.priors = pri;
    }
    if (tpriors_arg) {
        snprintf(pbuf, sizeof pbuf, "%s", tpriors_arg);
        int r = parse_doubles("--test-priors", pbuf, tpri, p.n_classes);
        if (r) return r;
        p.test_priors = tpri;
    }
    char mname[MAX_M][64];
    const char *mptr[MAX_M];
    int64_t mdim[MAX_M];
    double msep[MAX_M];
    if (n_mod_args) {
        for (int m = 0; m < n_mod_args; m++) {
            const char *eq = strchr(mod_args[m], '='), *colon = eq ? strchr(eq, ':') : NULL;
            long d;
            double sep;
            char dbuf[32];
            if (!eq || !colon || eq == mod_args[m] || (size_t)(eq - mod_args[m]) >= sizeof mname[m] ||
                (size_t)(colon - eq - 1) >= sizeof dbuf)
                return cli_usage(CMD, "--modality wants NAME=DIM:SEP, got '%s'", mod_args[m]);
            memcpy(mname[m], mod_args[m], (size_t)(eq - mod_args[m]));
            mname[m][eq - mod_args[m]] = '\0';
            memcpy(dbuf, eq + 1, (size_t)(colon - eq - 1));
            dbuf[colon - eq - 1] = '\0';
            if (!cli_parse_int(dbuf, 1, 1000000, &d) || !cli_parse_double(colon + 1, 0, 1000, &sep))
                return cli_usage(CMD, "--modality wants NAME=DIM:SEP with DIM 1..1e6 and SEP >= 0, got '%s'",
                                 mod_args[m]);
            mptr[m] = mname[m];
            mdim[m] = d;
            msep[m] = sep;
        }
        p.n_modalities = n_mod_args;
        p.modalities = mptr;
        p.dims = mdim;
        p.sep = msep;
    }
    mer_synth_report rep;
    mer_status s = mer_synth_write(out, &p, &rep);
    if (s != MER_OK) return cli_fail_status(CMD, s, out);
    printf("wrote %s: %lld labeled, %lld unlabeled, %lld test clips; Bayes WAF labeled %.4f",
           out, (long long)p.n_labeled, (long long)p.n_unlabeled, (long long)p.n_test,
           rep.bayes_waf[0]);
    if (p.n_unlabeled) printf(", unlabeled %.4f", rep.bayes_waf[1]);
    if (p.n_test) printf(", test %.4f", rep.bayes_waf[2]);
    printf("\n");
    return 0;
}
