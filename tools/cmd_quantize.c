/*
 * cmd_quantize.c -- `mer quantize MODEL_DIR --out DIR`: a text-encoder checkpoint as mer's
 * weight-only int8 safetensors (mer_text_quantize; layout in docs/formats.md).
 */
#include "cli.h"

#include <stdio.h>
#include <string.h>

static const char usage_text[] =
    "usage: mer quantize MODEL_DIR [--per-row] --out DIR\n"
    "\n"
    "Writes the text-encoder checkpoint in MODEL_DIR (bert / roberta / llama / qwen2 / baichuan;\n"
    "F32, F16 or BF16, single or sharded) as weight-only int8 into DIR/model.safetensors: every\n"
    "weight matrix and the token embeddings as I8 with float16 scales, one per block of 32 values\n"
    "along a row (default) or one per row (--per-row); norms, biases and position tables float32.\n"
    "config.json and the tokenizer files are copied. Load DIR like any checkpoint (`mer extract\n"
    "text --model DIR`). The file is written atomically; DIR must not be MODEL_DIR.\n";

static void progress(int64_t done, int64_t total, void *user) {
    cli_progress_update(user, done, NULL);
}

int cmd_quantize(int argc, char **argv) {
    const char *cmd = "quantize", *in = NULL, *out = NULL;
    int32_t block = 32;
    for (int i = 1; i < argc; i++) {
        const char *v;
        if (cli_flag(argv[i], "--help") || cli_flag(argv[i], "-h")) {
            fputs(usage_text, stdout);
            return 0;
        }
        if (cli_opt(argc, argv, &i, "--out", &v)) out = v;
        else if (cli_flag(argv[i], "--per-row")) block = -1;
        else if (cli_is_option(argv[i])) return cli_usage(cmd, "unknown option %s", argv[i]);
        else if (in) return cli_usage(cmd, "one MODEL_DIR only (got '%s' and '%s')", in, argv[i]);
        else in = argv[i];
    }
    if (cli_error()) return cli_usage(cmd, "%s", cli_error());
    if (!in) return cli_usage(cmd, "MODEL_DIR is required");
    if (!out) return cli_usage(cmd, "--out DIR is required");
    cli_progress pr;
    cli_progress_start(&pr, "quantize", 0);
    mer_text_quantize_params qp = mer_text_quantize_default_params();
    qp.block = block;
    qp.progress = progress;
    qp.progress_user_data = &pr;
    qp.abort = cli_interrupted;
    mer_status s = mer_text_quantize(in, out, &qp);
    cli_progress_end(&pr);
    if (s) return cli_fail_status(cmd, s, NULL);
    fprintf(stderr, "mer quantize: wrote %s/model.safetensors (int8, %s)\n", out, block > 0 ? "blocks of 32" : "per row");
    return 0;
}
