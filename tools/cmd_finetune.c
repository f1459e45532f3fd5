/*
 * cmd_finetune.c -- `mer finetune speech`: adapters or LoRA in the top layers of a speech
 * encoder, on cached lower layers, cross-validated. All the work is one library call
 * (mer_finetune_speech, docs/finetune.md); this file parses flags and draws progress.
 */
#include "cli.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *CMD = "finetune";

static void usage(FILE *f) {
    fprintf(f,
            "usage: mer finetune speech --model DIR --labels CSV --audio DIR --layers A-B --out RUN\n"
            "                           [--method adapter|lora] [--bottleneck 64] [--rank 8] [--alpha 16]\n"
            "                           [--lora-ffn] [--lora-dropout 0] [--recon-weight 0] [--mask-prob 0.05]\n"
            "                           [--mask-len 10] [--top L] [--head-layers H-L] [--epochs 20] [--folds 5]\n"
            "                           [--group-col COL] [--batch 8] [--lr 1e-3] [--l2 0.01] [--seed S]\n"
            "                           [--threads N] [--cache DIR] [--select best|last] [--resume]\n"
            "                           [--precision f32|bf16|int8] [--memo MB]\n"
            "\n"
            "Parameter-efficient fine-tuning of a HuBERT / wav2vec 2.0 checkpoint for emotion\n"
            "classification (docs/finetune.md). Hidden state A-1 of every clip is computed once and\n"
            "cached (float16); each step runs layers A..top forward and backward with the base\n"
            "weights frozen, bottleneck adapters (or LoRA) in layers A..B and a linear head on the\n"
            "frame mean of the summed hidden states --head-layers (default: top only).\n"
            "\n"
            "  --model DIR|ORG/NAME  checkpoint (config.json + model.safetensors or pytorch_model.bin),\n"
            "                        or ORG/NAME in the Hugging Face cache\n"
            "  --labels CSV          --name-col (name), --label-col (emotion), --group-col (folds)\n"
            "  --audio DIR           media of each clip: DIR/<name>.wav|flac|mp4|mp3|avi\n"
            "  --layers A-B          adapted layers, 1-based as transformers' hidden states\n"
            "  --top L               run frozen layers B+1..L above them too (default B)\n"
            "  --method adapter|lora adapter: h + up(relu(down(h))) after the feed-forward block;\n"
            "                        lora: (alpha/rank) B A dropout(x) on q/k/v/out (+ --lora-ffn),\n"
            "                        peft's names; --lora-dropout P as peft's lora_dropout\n"
            "  --recon-weight W      add W x the masked-reconstruction loss: spans of the cached\n"
            "                        frames zeroed (--mask-prob, --mask-len), regressed from hidden\n"
            "                        state B by a linear head\n"
            "  --folds K --epochs N --batch N --lr X --l2 X (AdamW decay) --seed S --threads N\n"
            "  --select best|last    per fold keep the best held-out epoch (default) or the last\n"
            "  --cache DIR           share the layer cache between runs (default RUN/cache)\n"
            "  --precision bf16      the frozen projections in bfloat16 (float32 accumulation);\n"
            "                        adapters, LoRA, heads, norms and attention stay float32\n"
            "  --precision int8      the frozen projections in int8 W8A8 (forward and input\n"
            "                        gradients); everything trainable stays float32\n"
            "  --memo MB             adapters: keep layer A's frozen part (below its adapter) per\n"
            "                        clip in memory (up to MB), computed once per clip\n"
            "  --out RUN             the run directory (mer train's layout); --resume continues it\n");
}

typedef struct {
    cli_progress bar;
    int started;
    int64_t base;
} prog;

static void on_cache(int64_t done, int64_t total, void *user) {
    prog *p = user;
    if (!p->started) {
        p->started = 1;
        cli_progress_start(&p->bar, "cache", total);
    }
    cli_progress_update(&p->bar, done, "");
    if (done == total) cli_progress_end(&p->bar);
}

static void on_train(const mer_train_progress *t, void *user) {
    prog *p = user;
    if (!p->started) {
        p->started = 1;
        p->base = t->done - 1;
        cli_progress_start(&p->bar, "train", t->total - p->base);
    }
    char detail[160];
    if (isfinite(t->heldout_waf))
        snprintf(detail, sizeof detail, "fold %d/%d epoch %d/%d loss %.4f WAF %.4f best %.4f",
                 t->fold + 1, t->n_folds, t->epoch, t->n_epochs, t->train_loss, t->heldout_waf,
                 t->best_waf);
    else
        snprintf(detail, sizeof detail, "epoch %d/%d loss %.4f", t->epoch, t->n_epochs, t->train_loss);
    cli_progress_update(&p->bar, t->done - p->base, detail);
    if (!p->bar.tty && t->epoch == t->n_epochs && isfinite(t->best_waf))
        fprintf(stderr, "mer finetune: fold %d/%d done: best held-out WAF %.4f\n", t->fold + 1,
                t->n_folds, t->best_waf);
}

static int parse_range(const char *v, int32_t *a, int32_t *b) {
    char *e = NULL;
    long x = strtol(v, &e, 10), y = x;
    if (e == v) return 0;
    if (*e == '-') {
        const char *w = e + 1;
        y = strtol(w, &e, 10);
        if (e == w) return 0;
    }
    if (*e || x < 1 || y < x || y > 4096) return 0;
    *a = (int32_t)x;
    *b = (int32_t)y;
    return 1;
}

int cmd_finetune(int argc, char **argv) {
    if (argc < 2 || (strcmp(argv[1], "speech") && !cli_flag(argv[1], "--help") && !cli_flag(argv[1], "-h"))) {
        if (argc >= 2 && !cli_is_option(argv[1]))
            return cli_usage(CMD, "unknown target '%s' (only 'speech' for now)", argv[1]);
        if (argc < 2) return cli_usage(CMD, "usage: mer finetune speech ... (--help)");
    }
    if (cli_flag(argv[1], "--help") || cli_flag(argv[1], "-h")) {
        usage(stdout);
        return 0;
    }
    mer_finetune_params p = mer_finetune_default_params();
    const char *out = NULL;
    long threads = 0;
    int32_t top = 0, hf = 0, hl = 0, have_layers = 0;
    for (int i = 2; i < argc; i++) {
        const char *v;
        long l;
        double d;
        if (cli_flag(argv[i], "--help") || cli_flag(argv[i], "-h")) {
            usage(stdout);
            return 0;
        } else if (cli_opt(argc, argv, &i, "--model", &v)) p.model_dir = v;
        else if (cli_opt(argc, argv, &i, "--labels", &v)) p.labels_csv = v;
        else if (cli_opt(argc, argv, &i, "--name-col", &v)) p.name_col = v;
        else if (cli_opt(argc, argv, &i, "--label-col", &v)) p.label_col = v;
        else if (cli_opt(argc, argv, &i, "--group-col", &v)) p.group_col = v;
        else if (cli_opt(argc, argv, &i, "--audio", &v)) p.audio_dir = v;
        else if (cli_opt(argc, argv, &i, "--cache", &v)) p.cache_dir = v;
        else if (cli_opt(argc, argv, &i, "--out", &v)) out = v;
        else if (cli_opt(argc, argv, &i, "--layers", &v)) {
            if (!parse_range(v, &p.first, &p.adapt_last))
                return cli_usage(CMD, "--layers wants A-B (1 <= A <= B), got '%s'", v);
            have_layers = 1;
        } else if (cli_opt(argc, argv, &i, "--head-layers", &v)) {
            if (!parse_range(v, &hf, &hl))
                return cli_usage(CMD, "--head-layers wants H-L, got '%s'", v);
        } else if (cli_opt(argc, argv, &i, "--method", &v)) {
            if (!strcmp(v, "adapter")) p.method = MER_FINETUNE_ADAPTER;
            else if (!strcmp(v, "lora")) p.method = MER_FINETUNE_LORA;
            else return cli_usage(CMD, "--method wants adapter or lora, got '%s'", v);
        } else if (cli_opt(argc, argv, &i, "--precision", &v)) {
            if (!strcmp(v, "f32")) p.precision = MER_PRECISION_F32;
            else if (!strcmp(v, "bf16")) p.precision = MER_PRECISION_BF16;
            else if (!strcmp(v, "int8")) p.precision = MER_PRECISION_INT8;
            else return cli_usage(CMD, "--precision wants f32, bf16 or int8, got '%s'", v);
        } else if (cli_opt(argc, argv, &i, "--select", &v)) {
            if (strcmp(v, "best") && strcmp(v, "last"))
                return cli_usage(CMD, "--select wants best or last, got '%s'", v);
            p.train.select_last = !strcmp(v, "last");
        }
#define INT_OPT(flag, lo, hi, dst)                                                          \
    else if (cli_opt(argc, argv, &i, flag, &v)) {                                           \
        if (!cli_parse_int(v, lo, hi, &l))                                                  \
            return cli_usage(CMD, "%s wants an integer in [%ld, %ld], got '%s'", flag,      \
                             (long)(lo), (long)(hi), v);                                    \
        dst = (int32_t)l;                                                                   \
    }
#define DBL_OPT(flag, lo, hi, dst)                                                          \
    else if (cli_opt(argc, argv, &i, flag, &v)) {                                           \
        if (!cli_parse_double(v, lo, hi, &d))                                               \
            return cli_usage(CMD, "%s wants a number in [%g, %g], got '%s'", flag,          \
                             (double)(lo), (double)(hi), v);                                \
        dst = d;                                                                            \
    }
        INT_OPT("--top", 1, 4096, top)
        INT_OPT("--bottleneck", 1, 65536, p.bottleneck)
        INT_OPT("--memo", 0, 1 << 20, p.memo_mb)
        INT_OPT("--rank", 1, 4096, p.rank)
        INT_OPT("--folds", 1, 1000, p.train.folds)
        INT_OPT("--epochs", 1, 100000, p.train.epochs)
        INT_OPT("--batch", 1, 4096, p.train.batch)
        DBL_OPT("--alpha", 1e-6, 1e6, p.alpha)
        DBL_OPT("--lora-dropout", 0.0, 0.99, p.lora_dropout)
        DBL_OPT("--recon-weight", 0.0, 1e6, p.recon_weight)
        DBL_OPT("--mask-prob", 1e-6, 1.0, p.mask_prob)
        INT_OPT("--mask-len", 1, 1 << 20, p.mask_len)
        DBL_OPT("--lr", 0.0, 10.0, p.train.lr)
        DBL_OPT("--l2", 0.0, 10.0, p.train.l2)
        else if (cli_opt(argc, argv, &i, "--seed", &v)) {
            if (!cli_parse_int(v, 0, 2147483647L, &l))
                return cli_usage(CMD, "--seed wants a non-negative integer, got '%s'", v);
            p.train.seed = (uint64_t)l;
        } else if (cli_opt(argc, argv, &i, "--threads", &v)) {
            if (!cli_parse_int(v, 0, 1024, &threads))
                return cli_usage(CMD, "--threads wants an integer in [0, 1024], got '%s'", v);
        } else if (cli_flag(argv[i], "--lora-ffn")) p.lora_ffn = 1;
        else if (cli_flag(argv[i], "--resume")) p.train.resume = 1;
        else if (cli_flag(argv[i], "--no-plots")) p.train.plots = 0;
        else if (cli_is_option(argv[i])) return cli_usage(CMD, "unknown option %s", argv[i]);
        else return cli_usage(CMD, "unexpected argument '%s'", argv[i]);
    }
    if (cli_error()) return cli_usage(CMD, "%s", cli_error());
    if (!p.model_dir || !p.labels_csv || !p.audio_dir || !out || !have_layers)
        return cli_usage(CMD, "--model, --labels, --audio, --layers and --out are required");
    p.last = top ? top : p.adapt_last;
    if (hl && hl != p.last)
        return cli_usage(CMD, "--head-layers must end at the top layer %d", (int)p.last);
    p.head_first = hf;
    cli_set_threads(threads);
    char *resolved = NULL; /* ORG/NAME from the Hugging Face cache, or the directory as given */
    mer_status rs = mer_model_resolve(p.model_dir, &resolved);
    if (rs != MER_OK) return cli_fail_status(CMD, rs, NULL);
    p.model_dir = resolved;
    cli_catch_sigint(1);
    prog pc = {0}, pt = {0};
    p.progress = on_cache;
    p.progress_user_data = &pc;
    p.abort = cli_interrupted;
    p.train.progress = on_train;
    p.train.progress_user_data = &pt;
    mer_metrics m;
    mer_status s = mer_finetune_speech(&p, out, &m);
    free(resolved);
    if (pt.started) cli_progress_end(&pt.bar);
    if (s != MER_OK) return cli_fail_status(CMD, s, NULL);
    printf("mean over %d folds: WAF %.4f  accuracy %.4f  UAR %.4f\n", (int)p.train.folds, m.waf,
           m.accuracy, m.uar);
    printf("run: %s\n", out);
    return 0;
}
