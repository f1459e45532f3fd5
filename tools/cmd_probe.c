/*
 * cmd_probe.c -- `mer probe`: how much emotion each hidden state of a speech encoder carries.
 * One library call (mer_probe_speech, docs/finetune.md); this file parses flags and prints the
 * table.
 */
#include "cli.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *CMD = "probe";

static void usage(FILE *f) {
    fprintf(f,
            "usage: mer probe --model DIR --labels CSV --audio DIR --out DIR [--folds 5]\n"
            "                 [--group-col COL] [--probes linear,attention] [--epochs 50]\n"
            "                 [--tolerance 0.02] [--seed S] [--threads N] [--resume]\n"
            "\n"
            "One forward per clip keeps the frame mean of every hidden state; each probe model is\n"
            "cross-validated per layer (the MERTools fold protocol of `mer train`). Prints and\n"
            "writes DIR/probe.csv (layer, probe, WAF, accuracy, UAR), DIR/probe.png (WAF by layer)\n"
            "and names the best layer and the contiguous block within --tolerance of it.\n");
}

static void on_progress(int64_t done, int64_t total, void *user) {
    cli_progress *bar = user;
    bar->total = total;
    cli_progress_update(bar, done, "");
}

static void on_layer(int64_t done, int64_t total, void *user) {
    if (!isatty(2)) fprintf(stderr, "mer probe: %lld/%lld probes trained\n", (long long)done, (long long)total);
}

int cmd_probe(int argc, char **argv) {
    mer_probe_params p = mer_probe_default_params();
    const char *out = NULL;
    long threads = 0, l;
    double d;
    for (int i = 1; i < argc; i++) {
        const char *v;
        if (cli_flag(argv[i], "--help") || cli_flag(argv[i], "-h")) {
            usage(stdout);
            return 0;
        } else if (cli_opt(argc, argv, &i, "--model", &v)) p.model_dir = v;
        else if (cli_opt(argc, argv, &i, "--labels", &v)) p.labels_csv = v;
        else if (cli_opt(argc, argv, &i, "--name-col", &v)) p.name_col = v;
        else if (cli_opt(argc, argv, &i, "--label-col", &v)) p.label_col = v;
        else if (cli_opt(argc, argv, &i, "--group-col", &v)) p.group_col = v;
        else if (cli_opt(argc, argv, &i, "--audio", &v)) p.audio_dir = v;
        else if (cli_opt(argc, argv, &i, "--probes", &v)) p.probes = v;
        else if (cli_opt(argc, argv, &i, "--out", &v)) out = v;
        else if (cli_opt(argc, argv, &i, "--folds", &v)) {
            if (!cli_parse_int(v, 2, 1000, &l)) return cli_usage(CMD, "--folds wants 2..1000, got '%s'", v);
            p.train.folds = (int32_t)l;
        } else if (cli_opt(argc, argv, &i, "--epochs", &v)) {
            if (!cli_parse_int(v, 1, 100000, &l)) return cli_usage(CMD, "--epochs wants 1..100000, got '%s'", v);
            p.train.epochs = (int32_t)l;
        } else if (cli_opt(argc, argv, &i, "--seed", &v)) {
            if (!cli_parse_int(v, 0, 2147483647L, &l)) return cli_usage(CMD, "--seed wants a non-negative integer, got '%s'", v);
            p.train.seed = (uint64_t)l;
        } else if (cli_opt(argc, argv, &i, "--tolerance", &v)) {
            if (!cli_parse_double(v, 0.0, 1.0, &d)) return cli_usage(CMD, "--tolerance wants 0..1, got '%s'", v);
            p.block_tolerance = d;
        } else if (cli_opt(argc, argv, &i, "--threads", &v)) {
            if (!cli_parse_int(v, 0, 1024, &threads)) return cli_usage(CMD, "--threads wants 0..1024, got '%s'", v);
        } else if (cli_flag(argv[i], "--resume")) p.train.resume = 1;
        else if (cli_is_option(argv[i])) return cli_usage(CMD, "unknown option %s", argv[i]);
        else return cli_usage(CMD, "unexpected argument '%s'", argv[i]);
    }
    if (cli_error()) return cli_usage(CMD, "%s", cli_error());
    if (!p.model_dir || !p.labels_csv || !p.audio_dir || !out)
        return cli_usage(CMD, "--model, --labels, --audio and --out are required");
    cli_set_threads(threads);
    cli_catch_sigint(1);
    cli_progress bar;
    cli_progress_start(&bar, "extract", 0);
    p.progress = on_progress;
    p.progress_user_data = &bar;
    p.layer_progress = on_layer;
    p.abort = cli_interrupted;
    mer_probe_result *r = malloc(sizeof *r);
    if (!r) return cli_fail(CMD, "out of memory");
    mer_status s = mer_probe_speech(&p, out, r);
    cli_progress_end(&bar);
    if (s != MER_OK) {
        free(r);
        return cli_fail_status(CMD, s, NULL);
    }
    printf("layer");
    for (int32_t k = 0; k < r->n_probes; k++)
        printf("  %10.10s_WAF %10.10s_acc %10.10s_UAR", r->probe[k], r->probe[k], r->probe[k]);
    printf("\n");
    for (int32_t li = 0; li < r->n_layers; li++) {
        printf("%5d", (int)li);
        for (int32_t k = 0; k < r->n_probes; k++)
            printf("  %14.4f %14.4f %14.4f", r->waf[k][li], r->accuracy[k][li], r->uar[k][li]);
        printf("\n");
    }
    printf("best layer %d (%s WAF %.4f); best block %d-%d (within %.3g)\n", (int)r->best_layer,
           r->probe[0], r->waf[0][r->best_layer], (int)r->block_first, (int)r->block_last,
           p.block_tolerance);
    printf("table: %s/probe.csv  plot: %s/probe.png\n", out, out);
    free(r);
    return 0;
}
