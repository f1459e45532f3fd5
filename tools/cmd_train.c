/*
 * cmd_train.c -- `mer train`: load labels + per-modality feature directories, run K-fold
 * cross-validation (or a hyper-parameter search) of a fusion model, write the run directory.
 * All the work is one library call (mer_train_files: data sets, recipe, mer_train_run or
 * mer_train_pseudo); this file parses flags and draws the progress line.
 */
#include "cli.h"

#include <errno.h>

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *CMD = "train";

static const char *const MER2024_CLASSES[] = {"neutral", "angry", "happy", "sad", "worried", "surprise"};

static void usage(FILE *f) {
    fprintf(f,
            "usage: mer train --labels CSV --feature NAME=DIR [--feature NAME=DIR ...] --out RUNDIR\n"
            "                 [--model attention] [--folds 5] [--epochs 100] [--batch 32] [--lr 1e-3]\n"
            "                 [--l2 1e-5] [--hidden 128] [--dropout 0.3] [--seed S] [--threads N]\n"
            "                 [--test LIST] [--search N] [--group-col COL] [--resume]\n"
            "\n"
            "Cross-validated training of a fusion model on per-clip features (MERTools protocol):\n"
            "K folds (seeded; --group-col keeps each group, e.g. a speaker, in one fold), per fold\n"
            "the epoch with the best held-out weighted F1, test predictions = mean of the folds.\n"
            "\n"
            "data:\n"
            "  --labels CSV          labels table; --name-col (name), --label-col (emotion)\n"
            "  --feature NAME=DIR    a modality: DIR holds <clip>.npy, (D) or (T, D); repeatable\n"
            "  --classes LIST|mer2024  class order, comma-separated (default: sorted labels)\n"
            "  --group-col COL       grouped folds (leave-one-group-out when --folds = #groups)\n"
            "  --test LIST           also predict these clips (one name per line) -> test.csv\n"
            "model and optimisation:\n"
            "  --model NAME          attention (MERTools baseline); see docs/training.md\n"
            "  --hidden N --dropout P --heads N --layers N\n"
            "  --tokens K            agt: sub-tokens per utterance vector (4); see docs/agt.md\n"
            "  --folds K             1 = train on everything for --epochs (no selection)\n"
            "  --epochs N --batch N --lr X --l2 X (Adam weight decay)  --optimizer adam|adamw\n"
            "  --clip-value V --clip-norm V --label-smoothing E --balanced (class weights)\n"
            "  --select best|last    per fold keep the best held-out epoch (MERTools, default) or\n"
            "                        the last one (no selection on held-out clips: unbiased CV)\n"
            "  --seed S --threads N  same seed and threads give bitwise the same run; folds train\n"
            "                        N at a time, one per thread\n"
            "  --search N            random search over hidden/dropout/lr (MERTools grid)\n"
            "self-training (docs/agt.md):\n"
            "  --unlabeled LIST --pseudo-rounds R  after each round the models label the clips\n"
            "                        whose top probability reaches the class threshold; they join\n"
            "                        the next round (retrained from scratch) as train-only\n"
            "  --pseudo-source fold|ensemble  fold (default): fold k's model labels fold k's\n"
            "                        clips, so CV WAF stays honest; ensemble: the fold mean labels\n"
            "                        one set for every fold (leaks held-out clips into CV)\n"
            "  --pseudo-threshold P|CLASS=P,...  (MER2024 classes: 0.99, worried/surprise 0.85)\n"
            "  --pseudo-max N        keep at most the N most confident clips per round\n"
            "  --pseudo-balance      per-class quotas from the labeled class prior\n"
            "run directory:\n"
            "  --out RUNDIR          config, fold checkpoints, oof.csv, metrics.json, PNG plots\n"
            "  --resume              continue an interrupted run from its last complete epoch\n"
            "  --checkpoint-every N  resumable state every N epochs, at most every 10 s (1; 0 = never)\n"
            "  --recipe FILE.json    feature recipe stored in the run (for predict --input); default:\n"
            "                        the feature directories' recipe.json files, when each has one\n"
            "  --no-plots            skip confusion.png / curves.png\n");
}

typedef struct {
    cli_progress bar;
    int started;
    int64_t base;
    int32_t last_fold, last_trial;
    char label[64];
} progress_state;

static void on_progress(const mer_train_progress *p, void *user) {
    progress_state *st = user;
    if (!st->started) {
        st->started = 1;
        st->base = p->done - 1;
        snprintf(st->label, sizeof st->label, "train");
        cli_progress_start(&st->bar, st->label, p->total - st->base);
        st->last_fold = p->fold;
        st->last_trial = p->trial;
    }
    char detail[200];
    char trial[32] = "";
    if (p->n_trials > 1) snprintf(trial, sizeof trial, "trial %d/%d ", p->trial + 1, p->n_trials);
    if (isfinite(p->heldout_waf))
        snprintf(detail, sizeof detail, "%sfold %d/%d epoch %d/%d loss %.4f WAF %.4f best %.4f",
                 trial, p->fold + 1, p->n_folds, p->epoch, p->n_epochs, p->train_loss,
                 p->heldout_waf, p->best_waf);
    else
        snprintf(detail, sizeof detail, "%sepoch %d/%d loss %.4f", trial, p->epoch, p->n_epochs,
                 p->train_loss);
    cli_progress_update(&st->bar, p->done - st->base, detail);
    if (!st->bar.tty && p->epoch == p->n_epochs) {
        if (isfinite(p->best_waf))
            fprintf(stderr, "mer train: %sfold %d/%d done: best held-out WAF %.4f\n", trial,
                    p->fold + 1, p->n_folds, p->best_waf);
        else
            fprintf(stderr, "mer train: %sfinal model done: loss %.4f\n", trial, p->train_loss);
    }
}

/* The data sets are loaded: what will be trained, before the progress line starts. */
typedef struct {
    int64_t n_train;
    int32_t folds, epochs;
} loaded_info;

static void on_loaded(const mer_dataset *train, const mer_dataset *test, const mer_dataset *unl, void *user) {
    (void)test;
    (void)unl;
    loaded_info *li = user;
    li->n_train = mer_dataset_count(train);
    fprintf(stderr, "mer train: %lld clips, %d classes, %d modalit%s", (long long)mer_dataset_count(train),
            mer_dataset_n_classes(train), mer_dataset_n_modalities(train),
            mer_dataset_n_modalities(train) == 1 ? "y" : "ies");
    for (int32_t m = 0; m < mer_dataset_n_modalities(train); m++)
        fprintf(stderr, "%s %s (%lld%s)", m ? "," : ":", mer_dataset_modality(train, m),
                (long long)mer_dataset_dim(train, m), mer_dataset_is_sequence(train, m) ? ", sequences" : "");
    fprintf(stderr, "; %d folds x %d epochs, %d thread%s\n", li->folds, li->epochs, mer_get_threads(),
            mer_get_threads() == 1 ? "" : "s");
}

int cmd_train(int argc, char **argv) {
    mer_train_params tp = mer_train_default_params();
    mer_dataset_params dp = mer_dataset_default_params();
    const char *out = NULL, *test_list = NULL, *classes_arg = NULL, *recipe_path = NULL;
    const char *unl_list = NULL, *pseudo_thr = NULL;   /* self-training (src/train/pseudo.c) */
    int32_t pseudo_rounds = 0, pseudo_max = 0, pseudo_balance = 0;
    mer_pseudo_source pseudo_source = MER_PSEUDO_FOLD;
    cli_features feats = {0};
    long threads = 0;
    int rc = 0;
    for (int i = 1; i < argc; i++) {
        const char *v;
        long l;
        double d;
        if (cli_flag(argv[i], "--help") || cli_flag(argv[i], "-h")) {
            usage(stdout);
            rc = 0;
            goto done;
        } else if (cli_opt(argc, argv, &i, "--labels", &v)) dp.labels_csv = v;
        else if (cli_opt(argc, argv, &i, "--name-col", &v)) dp.name_col = v;
        else if (cli_opt(argc, argv, &i, "--label-col", &v)) dp.label_col = v;
        else if (cli_opt(argc, argv, &i, "--group-col", &v)) dp.group_col = v;
        else if (cli_opt(argc, argv, &i, "--classes", &v)) classes_arg = v;
        else if (cli_opt(argc, argv, &i, "--test", &v)) test_list = v;
        else if (cli_opt(argc, argv, &i, "--unlabeled", &v)) unl_list = v;
        else if (cli_opt(argc, argv, &i, "--pseudo-threshold", &v)) pseudo_thr = v;
        else if (cli_opt(argc, argv, &i, "--pseudo-source", &v)) {
            if (v && !strcmp(v, "fold")) pseudo_source = MER_PSEUDO_FOLD;
            else if (v && !strcmp(v, "ensemble")) pseudo_source = MER_PSEUDO_ENSEMBLE;
            else if (v) {
                rc = cli_usage(CMD, "--pseudo-source is fold or ensemble, not '%s'", v);
                goto done;
            }
        }
        else if (cli_opt(argc, argv, &i, "--out", &v)) out = v;
        else if (cli_opt(argc, argv, &i, "--recipe", &v)) recipe_path = v;
        else if (cli_opt(argc, argv, &i, "--feature", &v)) {
            if (v && (rc = cli_feature_add(CMD, &feats, v))) goto done;
        } else if (cli_opt(argc, argv, &i, "--model", &v)) {
            if (strlen(v) >= sizeof tp.model) {
                rc = cli_usage(CMD, "--model name too long");
                goto done;
            }
            snprintf(tp.model, sizeof tp.model, "%s", v);
        } else if (cli_opt(argc, argv, &i, "--optimizer", &v)) {
            if (!strcmp(v, "adam")) tp.optimizer = MER_OPT_ADAM;
            else if (!strcmp(v, "adamw")) tp.optimizer = MER_OPT_ADAMW;
            else {
                rc = cli_usage(CMD, "--optimizer wants adam or adamw, got '%s'", v);
                goto done;
            }
        }
#define INT_OPT(flag, lo, hi, dst)                                                          \
    else if (cli_opt(argc, argv, &i, flag, &v)) {                                           \
        if (!cli_parse_int(v, lo, hi, &l)) {                                                \
            rc = cli_usage(CMD, "%s wants an integer in [%ld, %ld], got '%s'", flag,        \
                           (long)(lo), (long)(hi), v);                                      \
            goto done;                                                                      \
        }                                                                                   \
        dst = (int32_t)l;                                                                   \
    }
#define DBL_OPT(flag, lo, hi, dst)                                                          \
    else if (cli_opt(argc, argv, &i, flag, &v)) {                                           \
        if (!cli_parse_double(v, lo, hi, &d)) {                                             \
            rc = cli_usage(CMD, "%s wants a number in [%g, %g], got '%s'", flag,            \
                           (double)(lo), (double)(hi), v);                                  \
            goto done;                                                                      \
        }                                                                                   \
        dst = d;                                                                            \
    }
        INT_OPT("--folds", 1, 1000, tp.folds)
        INT_OPT("--epochs", 1, 1000000, tp.epochs)
        INT_OPT("--batch", 1, 1 << 20, tp.batch)
        INT_OPT("--hidden", 1, 1 << 16, tp.hidden)
        INT_OPT("--heads", 1, 256, tp.heads)
        INT_OPT("--layers", 1, 64, tp.layers)
        INT_OPT("--tokens", 1, 64, tp.tokens)
        INT_OPT("--pseudo-rounds", 0, 100, pseudo_rounds)
        INT_OPT("--pseudo-max", 0, 1 << 30, pseudo_max)
        INT_OPT("--search", 0, 1000, tp.search)
        INT_OPT("--checkpoint-every", 0, 1000000, tp.checkpoint_every)
        DBL_OPT("--lr", 1e-12, 10.0, tp.lr)
        DBL_OPT("--l2", 0.0, 10.0, tp.l2)
        DBL_OPT("--dropout", 0.0, 0.99, tp.dropout)
        DBL_OPT("--clip-value", 0.0, 1e9, tp.clip_value)
        DBL_OPT("--clip-norm", 0.0, 1e9, tp.clip_norm)
        DBL_OPT("--label-smoothing", 0.0, 0.99, tp.label_smoothing)
        else if (cli_opt(argc, argv, &i, "--seed", &v)) {
            char *end = NULL;
            errno = 0;
            unsigned long long sv = strtoull(v, &end, 10);
            /* strtoull saturates at 2^64 - 1 (ERANGE): two different seeds would give one run */
            if (!*v || *end || *v == '-' || *v == '+' || *v == ' ' || errno == ERANGE) {
                rc = cli_usage(CMD, "--seed wants an integer in [0, 2^64 - 1], got '%s'", v);
                goto done;
            }
            tp.seed = sv;
        } else if (cli_opt(argc, argv, &i, "--threads", &v)) {
            if (!cli_parse_int(v, 0, 1024, &threads)) {
                rc = cli_usage(CMD, "--threads wants an integer in [0, 1024], got '%s'", v);
                goto done;
            }
        } else if (cli_flag(argv[i], "--resume")) tp.resume = 1;
        else if (cli_flag(argv[i], "--balanced")) tp.balanced_weights = 1;
        else if (cli_opt(argc, argv, &i, "--select", &v)) {
            if (strcmp(v, "best") && strcmp(v, "last")) {
                rc = cli_usage(CMD, "--select wants best or last, got '%s'", v);
                goto done;
            }
            tp.select_last = !strcmp(v, "last");
        }
        else if (cli_flag(argv[i], "--no-plots")) tp.plots = 0;
        else if (cli_flag(argv[i], "--pseudo-balance")) pseudo_balance = 1;
        else if (cli_is_option(argv[i])) {
            rc = cli_usage(CMD, "unknown option %s", argv[i]);
            goto done;
        } else {
            rc = cli_usage(CMD, "unexpected argument '%s'", argv[i]);
            goto done;
        }
    }
    if (cli_error()) {
        rc = cli_usage(CMD, "%s", cli_error());
        goto done;
    }
    if (!dp.labels_csv) { rc = cli_usage(CMD, "--labels CSV is required"); goto done; }
    if (!feats.n) { rc = cli_usage(CMD, "at least one --feature NAME=DIR is required"); goto done; }
    if (!out) { rc = cli_usage(CMD, "--out RUNDIR is required"); goto done; }
    if ((pseudo_rounds > 0) != (unl_list != NULL)) {
        rc = cli_usage(CMD, "--unlabeled LIST and --pseudo-rounds R (>= 1) go together");
        goto done;
    }
    cli_set_threads(threads);
    if (mer_train_params_check(&tp) != MER_OK) {
        rc = cli_usage(CMD, "%s", mer_last_error());
        goto done;
    }

    /* class list */
    char *cls_buf = NULL;
    const char *cls[MER_MAX_CLASSES];
    int32_t nc = 0;
    if (classes_arg && !strcmp(classes_arg, "mer2024")) {
        for (int k = 0; k < 6; k++) cls[nc++] = MER2024_CLASSES[k];
    } else if (classes_arg) {
        cls_buf = strdup(classes_arg);
        for (char *tok = cls_buf ? strtok(cls_buf, ",") : NULL; tok; tok = strtok(NULL, ",")) {
            if (nc == MER_MAX_CLASSES) {
                free(cls_buf);
                rc = cli_usage(CMD, "at most %d classes", MER_MAX_CLASSES);
                goto done;
            }
            cls[nc++] = tok;
        }
        if (nc < 2) {
            free(cls_buf);
            rc = cli_usage(CMD, "--classes needs at least two comma-separated names");
            goto done;
        }
    }
    if (nc) {
        dp.classes = cls;
        dp.n_classes = nc;
    }
    dp.modalities = feats.spec;
    dp.n_modalities = feats.n;

    mer_train_files_params fp = mer_train_files_default_params();
    fp.data = dp;
    fp.recipe_file = recipe_path;
    fp.test_list = test_list;
    fp.unlabeled_list = unl_list;
    fp.pseudo_thresholds = pseudo_thr;
    fp.pseudo.rounds = pseudo_rounds;
    fp.pseudo.max_add = pseudo_max;
    fp.pseudo.balance = pseudo_balance;
    fp.pseudo.source = pseudo_source;
    loaded_info li = {0, tp.folds, tp.epochs};
    fp.loaded = on_loaded;
    fp.loaded_user_data = &li;
    mer_status s;
    progress_state ps;
    memset(&ps, 0, sizeof ps);
    tp.progress = on_progress;
    tp.progress_user_data = &ps;
    tp.abort = cli_interrupted;
    cli_catch_sigint(1);
    fp.train = tp;
    mer_metrics m;
    double t0 = cli_now();
    s = mer_train_files(&fp, out, &m);
    if (ps.started) cli_progress_end(&ps.bar);
    cli_catch_sigint(0);
    if (s == MER_ERR_ABORTED) {
        rc = cli_fail(CMD, "%s: interrupted; continue with the same command plus --resume", out);
        goto cleanup;
    }
    if (s != MER_OK) {
        rc = cli_fail_status(CMD, s, NULL);
        goto cleanup;
    }
    if (tp.folds > 1)
        printf("%s: mean over %d folds: WAF %.4f  accuracy %.4f  macro F1 %.4f  UAR %.4f  (%.1f s)\n",
               out, tp.folds, m.waf, m.accuracy, m.macro_f1, m.uar, cli_now() - t0);
    else
        printf("%s: final model trained on %lld clips (%.1f s)\n", out, (long long)li.n_train, cli_now() - t0);
    rc = 0;
cleanup:
    free(cls_buf);
done:
    return rc;
}
