/*
 * cmd_demo.c -- `mer demo`: the main job end to end on the bundled EmoDB subset, with no model
 * weights. Extract weight-free acoustic features (cached under OUT/features), evaluate
 * leave-one-speaker-out with the project's trainer (src/train/loso.c: fixed epochs, a seed
 * ensemble, speaker normalisation), print WAF / accuracy / UAR / the confusion matrix, write
 * OUT/report/, train a final model on every speaker into OUT/model/ (a run directory that
 * `mer predict --run OUT/model --input FILE...` applies to raw media: it records the extraction
 * recipe and the feature standardisation), and apply it to one file. docs/demo.md.
 */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *usage_text =
    "usage: mer demo [--data DIR] [--out DIR] [--seeds N] [--epochs N] [--threads N]\n"
    "\n"
    "Speech emotion recognition on the bundled EmoDB subset, end to end (docs/demo.md):\n"
    "acoustic features -> leave-one-speaker-out evaluation -> report -> final model -> one file.\n"
    "  --data DIR     labels.csv (name,emotion,speaker) + flac/<name>.flac (default: the bundled\n"
    "                 data/emodb of the install or source tree, or $MER_DATA_DIR/data/emodb)\n"
    "  --out DIR      features/, report/, model/ go here (default out/demo)\n"
    "  --seeds N      models averaged per held-out speaker (default 3)\n"
    "  --epochs N     training epochs of every model (default 100)\n"
    "  --threads N    worker threads (default: all CPUs)\n"
    "  --model NAME   trainer model (default linear: logistic regression; attention: MLP)\n"
    "  --dropout P --lr X --l2 X --hidden N   model settings (0.5, 1e-3, 1e-3, 128)\n"
    "  --augment F,F,...|none   speed-perturbed training copies (default 0.9,1.1)\n"
    "  --functionals egemaps|extended   acoustic functionals (514, or 929: the default;\n"
    "                 docs/acoustic.md)\n"
    "  --no-single-clip   skip the second evaluation (training-set normalisation)\n";

static const char *cmd = "demo";

#define MAX_AUG (MER_DEMO_MAX_SPEEDS - 1)

/* "none" or "0.9,1.1": speed factors of the augmented copies; speeds[0] stays 1 (the clip). */
static int parse_speeds(const char *v, double *speeds, int32_t *n) {
    *n = 1;
    if (!strcmp(v, "none")) return 1;
    const char *p = v;
    while (*p) {
        char *end;
        double f = strtod(p, &end);
        if (end == p || !(f >= 0.5 && f <= 2.0) || f == 1.0 || *n > MAX_AUG) return 0;
        for (int32_t k = 0; k < *n; k++)
            if (speeds[k] == f) return 0;
        speeds[(*n)++] = f;
        if (*end == ',') end++;
        else if (*end) return 0;
        p = end;
    }
    return *n > 1;
}

static void print_metrics(const char *title, const mer_metrics *m) {
    printf("%s\n  WAF %.3f   accuracy %.3f   UAR %.3f   (macro F1 %.3f, %lld clips)\n", title,
           m->waf, m->accuracy, m->uar, m->macro_f1, (long long)m->n);
}

static void print_confusion(const mer_metrics *m, const char (*classes)[MER_NAME_MAX], int32_t C) {
    printf("  confusion (rows: truth, columns: predicted)\n  %-10s", "");
    for (int32_t c = 0; c < C; c++) printf(" %6.6s", classes[c]);
    printf("   recall\n");
    for (int32_t t = 0; t < C; t++) {
        printf("  %-10s", classes[t]);
        for (int32_t c = 0; c < C; c++) printf(" %6lld", (long long)m->confusion[t * C + c]);
        printf("   %5.2f\n", m->recall[t]);
    }
}

/* What the CLI shows while the demo runs: the stage in progress and its start. */
typedef struct {
    const mer_demo_params *p;
    mer_demo_stage next;     /* the stage in progress */
    double t0;
    cli_progress bar;        /* features */
    int bar_on;
} demo_view;

static void on_progress(int64_t done, int64_t total, void *user) {
    demo_view *v = user;
    if (v->next == MER_DEMO_FEATURES) {
        if (!v->bar_on) {
            cli_progress_start(&v->bar, "features", total);
            v->bar_on = 1;
        }
        cli_progress_update(&v->bar, done, NULL);
        return;
    }
    const char *label = v->next == MER_DEMO_LOSO ? "speaker-normalised" : "single-clip";
    if (isatty(2)) fprintf(stderr, "\r  %s: speaker %lld/%lld (%.0f s)   ", label, (long long)done,
                           (long long)total, cli_now() - v->t0);
    if (done == total && isatty(2)) fprintf(stderr, "\r%60s\r", "");
}

static void on_stage(mer_demo_stage st, const mer_demo_result *r, void *user) {
    demo_view *v = user;
    const mer_demo_params *p = v->p;
    switch (st) {
    case MER_DEMO_DATA:
        printf("mer demo: %lld clips, %d speakers, %d classes from %s\n", (long long)r->n_clips,
               r->n_speakers, r->n_classes, r->data);
        break;
    case MER_DEMO_FEATURES:
        if (v->bar_on) cli_progress_end(&v->bar);
        printf("features: %d acoustic functionals per clip (eGeMAPS-style + MFCC%s, docs/acoustic.md)",
               r->feature_dim, p->functionals == MER_ACOUSTIC_EXTENDED ? ", extended" : "");
        if (p->n_speeds > 1) {
            printf(", + speed-perturbed training copies at");
            for (int32_t a = 1; a < p->n_speeds; a++) printf("%s %g", a > 1 ? "," : "", p->speeds[a]);
        }
        printf(";\n  %lld cached, %lld extracted in %.1f s -> %s\n", (long long)r->n_cached,
               (long long)r->n_extracted, r->extract_seconds, r->feature_dir);
        printf("leave-one-speaker-out: %d speakers x %d models (trainer model '%s', %d epochs, fixed; "
               "no epoch chosen on the held-out speaker)\n", r->n_speakers, p->seeds, p->model, p->epochs);
        break;
    case MER_DEMO_LOSO:
        print_metrics("speaker-normalised features (each speaker z-scored with its own clips, labels unused):", &r->loso);
        print_confusion(&r->loso, r->classes, r->n_classes);
        break;
    case MER_DEMO_SINGLE:
        print_metrics("single clip of an unseen speaker (the same models, the clip standardised with the training set's\n"
                      "statistics: `mer predict` without --adapt):", &r->single);
        printf("  (%.1f s) report: %s/metrics.json, %s/confusion.png, %s/single-clip/\n", r->eval_seconds,
               r->report_dir, r->report_dir, r->report_dir);
        break;
    case MER_DEMO_MODEL:
        printf("final model: all %d speakers, %d epochs (%.1f s) -> %s\n"
               "  apply it to any audio or video: mer predict --run %s --input FILE... --out pred.csv\n",
               r->n_speakers, p->epochs, r->model_seconds, r->model_dir, r->model_dir);
        break;
    case MER_DEMO_EXAMPLE: {
        const int32_t C = r->n_classes, *order = r->example_order;
        const float *probs = r->example_probs;
        printf("%s: %s (p = %.2f; labeled %s)\n ", r->example_path, r->classes[order[0]], probs[order[0]],
               r->classes[r->example_label]);
        for (int32_t c = 0; c < C; c++) printf(" %s %.2f", r->classes[order[c]], probs[order[c]]);
        printf("\n");
        break;
    }
    }
    v->next = st + 1;
    if (st == MER_DEMO_LOSO && !p->single_clip) v->next = MER_DEMO_MODEL;
    v->t0 = cli_now();
    fflush(stdout);
}

int cmd_demo(int argc, char **argv) {
    const char *data = NULL, *out = "out/demo", *model = "linear";
    long seeds = 3, epochs = 100, threads = 0, hidden = 128;
    double dropout = 0.5, lr = 1e-3, l2 = 1e-3;
    int single = 1;
    int32_t functionals = MER_ACOUSTIC_EXTENDED; /* docs/demo.md: +0.02 adapted, +0.04 single clip */
    /* speed-perturbed copies of every training clip (docs/demo.md "Augmentation") */
    double speeds[MAX_AUG + 1] = {1.0, 0.9, 1.1};
    int32_t n_speed = 3;
    for (int i = 1; i < argc; i++) {
        const char *v;
        if (cli_flag(argv[i], "--help") || cli_flag(argv[i], "-h")) {
            fputs(usage_text, stdout);
            return 0;
        } else if (cli_opt(argc, argv, &i, "--data", &v)) {
            data = v;
        } else if (cli_opt(argc, argv, &i, "--out", &v)) {
            out = v;
        } else if (cli_opt(argc, argv, &i, "--seeds", &v)) {
            if (!cli_parse_int(v, 1, 50, &seeds)) return cli_usage(cmd, "--seeds must be in [1, 50], got '%s'", v);
        } else if (cli_opt(argc, argv, &i, "--epochs", &v)) {
            if (!cli_parse_int(v, 1, 10000, &epochs)) return cli_usage(cmd, "--epochs must be in [1, 10000], got '%s'", v);
        } else if (cli_opt(argc, argv, &i, "--model", &v)) {
            model = v;
        } else if (cli_opt(argc, argv, &i, "--hidden", &v)) {
            if (!cli_parse_int(v, 4, 4096, &hidden)) return cli_usage(cmd, "--hidden must be in [4, 4096], got '%s'", v);
        } else if (cli_opt(argc, argv, &i, "--dropout", &v)) {
            if (!cli_parse_double(v, 0, 0.95, &dropout)) return cli_usage(cmd, "--dropout must be in [0, 0.95], got '%s'", v);
        } else if (cli_opt(argc, argv, &i, "--lr", &v)) {
            if (!cli_parse_double(v, 1e-6, 1, &lr)) return cli_usage(cmd, "--lr must be in [1e-6, 1], got '%s'", v);
        } else if (cli_opt(argc, argv, &i, "--l2", &v)) {
            if (!cli_parse_double(v, 0, 1, &l2)) return cli_usage(cmd, "--l2 must be in [0, 1], got '%s'", v);
        } else if (cli_opt(argc, argv, &i, "--augment", &v)) {
            if (!parse_speeds(v, speeds, &n_speed))
                return cli_usage(cmd, "--augment takes 'none' or up to %d speed factors in [0.5, 2] "
                                 "other than 1, separated by commas, got '%s'", MAX_AUG, v);
        } else if (cli_opt(argc, argv, &i, "--functionals", &v)) {
            if (strcmp(v, "egemaps") && strcmp(v, "extended"))
                return cli_usage(cmd, "--functionals must be egemaps or extended, got '%s'", v);
            functionals = strcmp(v, "extended") ? MER_ACOUSTIC_EGEMAPS : MER_ACOUSTIC_EXTENDED;
        } else if (cli_flag(argv[i], "--no-single-clip")) {
            single = 0;
        } else if (cli_opt(argc, argv, &i, "--threads", &v)) {
            if (!cli_parse_int(v, 0, 1024, &threads)) return cli_usage(cmd, "--threads must be in [0, 1024], got '%s'", v);
        } else {
            return cli_usage(cmd, "unexpected argument %s", argv[i]);
        }
    }
    if (cli_error()) return cli_usage(cmd, "%s", cli_error());
    if ((data && strlen(data) > 2000) || strlen(out) > 2000) return cli_usage(cmd, "--data/--out path too long");
    cli_set_threads(threads);
    mer_demo_params p = mer_demo_default_params();
    p.data = data; /* NULL: the bundled data/emodb of the install or source tree */
    p.out = out;
    p.seeds = (int32_t)seeds;
    p.epochs = (int32_t)epochs;
    snprintf(p.model, sizeof p.model, "%s", model);
    p.hidden = (int32_t)hidden;
    p.dropout = (float)dropout;
    p.lr = lr;
    p.l2 = l2;
    memcpy(p.speeds, speeds, sizeof p.speeds);
    p.n_speeds = n_speed;
    p.single_clip = single;
    p.functionals = functionals;
    demo_view view = {&p, MER_DEMO_DATA, cli_now(), {0}, 0};
    p.progress = on_progress;
    p.progress_user_data = &view;
    p.stage = on_stage;
    p.stage_user_data = &view;
    mer_demo_result *res = NULL;
    mer_status s = mer_demo(&p, &res);
    if (view.bar_on && view.next == MER_DEMO_FEATURES) cli_progress_end(&view.bar);
    if (s != MER_OK) return cli_fail_status(cmd, s, NULL);
    printf("done in %.1f s\n", res->seconds);
    mer_demo_result_free(res);
    return 0;
}
