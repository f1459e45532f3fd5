/*
 * cmd_convert.c -- `mer convert MODEL --out DIR`: a PyTorch checkpoint (pytorch_model.bin, zip
 * or legacy, sharded or not) or any checkpoint mer reads, rewritten as DIR/model.safetensors
 * with the config files copied, for fast zero-copy loads (mer_checkpoint_convert).
 */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cmd_convert(int argc, char **argv) {
    const char *cmd = "convert", *in = NULL, *out = NULL;
    for (int i = 1; i < argc; i++) {
        const char *v;
        if (cli_flag(argv[i], "--help") || cli_flag(argv[i], "-h")) {
            printf("usage: mer convert MODEL --out DIR\n"
                   "Writes the weights of MODEL as DIR/model.safetensors and copies its config files\n"
                   "(config.json, preprocessor and tokenizer files). MODEL is a checkpoint directory\n"
                   "or file: pytorch_model.bin (zip or legacy torch.save format), a sharded\n"
                   "pytorch_model.bin.index.json, or safetensors; or ORG/NAME already in the Hugging\n"
                   "Face cache. The pickle inside a .bin is read by a restricted unpickler that\n"
                   "never runs code. Every loader also reads .bin directly; converting makes loads\n"
                   "zero-copy (docs/formats.md).\n");
            return 0;
        }
        if (cli_opt(argc, argv, &i, "--out", &v)) out = v;
        else if (cli_is_option(argv[i])) return cli_usage(cmd, "unknown option %s", argv[i]);
        else if (!in) in = argv[i];
        else return cli_usage(cmd, "one MODEL only (got %s and %s)", in, argv[i]);
    }
    if (cli_error()) return cli_usage(cmd, "%s", cli_error());
    if (!in) return cli_usage(cmd, "needs a MODEL");
    if (!out) return cli_usage(cmd, "needs --out DIR");
    char *dir = NULL;
    mer_status s = mer_model_resolve(in, &dir);
    if (s != MER_OK) return cli_fail(cmd, "%s", mer_last_error());
    int64_t n = 0;
    double t0 = cli_now();
    s = mer_checkpoint_convert(dir, out, &n);
    free(dir);
    if (s != MER_OK) return cli_fail(cmd, "%s", mer_last_error());
    printf("%s: %lld tensors -> %s/model.safetensors (%.2f s)\n", in, (long long)n, out, cli_now() - t0);
    return 0;
}
