/*
 * cmd_extract_text.c -- `mer extract text`: text-encoder features of the transcripts in a CSV, one
 * <name>.npy per row (the MERTools layout). Tokenizing, encoding, pooling are the library's
 * (mer_text_extract), and so is the walk over the rows (mer_extract_text_csv: skips existing
 * outputs, writes each .npy atomically and recipe.json beside them); this file parses flags and
 * prints what the call reports.
 * See docs/text.md.
 */
#include "extract_common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char usage_text[] =
    "usage: mer extract text --model DIR|ORG/NAME --csv FILE [--name-col name] [--text-col chinese]\n"
    "                        [--preset mertools] [--layers all|lastK|N|N-M] [--combine stack|sum|mean]\n"
    "                        [--pool none|mean] [--precision f32|bf16|int8] [--tokenizer DIR]\n"
    "                        [--threads N] [--overwrite] --out DIR\n"
    "\n"
    "Hidden states of a Hugging Face text encoder (bert / roberta / llama / qwen2 / baichuan checkpoint\n"
    "directory, or an int8 one made by `mer quantize`) for each row of a transcript CSV, written as\n"
    "DIR/<name>.npy. --model also takes ORG/NAME of a model in the Hugging Face cache (never\n"
    "downloaded).\n"
    "  --name-col    column naming the clip (default: name)\n"
    "  --text-col    column holding the transcript (default: chinese, as MER2024's CSVs)\n"
    "  --preset mertools  MERTools' text feature: sum of the last 4 hidden states, mean over the\n"
    "                text's tokens (the tokenizer's special tokens left out); an empty transcript\n"
    "                gives zeros. Later options override.\n"
    "  --layers      hidden-state indices 0..L (0 = embeddings): all (default), lastK, N, N-M\n"
    "  --combine     stack (K, T, D) (default), or sum / mean over the K layers: (T, D)\n"
    "  --pool        none (default) or mean over tokens (drops T)\n"
    "  --precision   f32 (default, exact), bf16 (bfloat16 products), int8 (int8 weights and\n"
    "                activations, W8A8); docs/text.md gives the deviations\n"
    "  --tokenizer   directory (or ORG/NAME) of the tokenizer files (default: the model's)\n"
    "Transcripts longer than a BERT model's positions lose their end (a warning says so).\n"
    "Existing outputs are skipped unless --overwrite; a failed row is reported and skipped, and\n"
    "the exit code is 1 if any failed.\n";

static int parse_layers(const char *v, int32_t *first, int32_t *last) {
    long a, b;
    if (!strcmp(v, "all")) {
        *first = *last = -1;
        return 1;
    }
    if (!strncmp(v, "last", 4) && cli_parse_int(v + 4, 1, 1024, &a)) {
        *first = (int32_t)-a;
        *last = -1;
        return 1;
    }
    const char *dash = strchr(v, '-');
    if (!dash) {
        if (!cli_parse_int(v, 0, 1024, &a)) return 0;
        *first = *last = (int32_t)a;
        return 1;
    }
    char lo[32];
    size_t n = (size_t)(dash - v);
    if (n == 0 || n >= sizeof lo) return 0;
    memcpy(lo, v, n);
    lo[n] = '\0';
    if (!cli_parse_int(lo, 0, 1024, &a) || !cli_parse_int(dash + 1, 0, 1024, &b) || b < a) return 0;
    *first = (int32_t)a;
    *last = (int32_t)b;
    return 1;
}

int cmd_extract_text(int argc, char **argv) {
    const char *cmd = "extract text";
    const char *model_dir = NULL, *csv_path = NULL, *tok_dir = NULL;
    const char *name_col = "name", *text_col = "chinese", *layers_arg = NULL;
    mer_text_params params = mer_text_default_params();
    mer_precision precision = MER_PRECISION_F32;
    int rc = 2;
    extract_opts eo; /* --out, --overwrite, --threads: the options every extractor shares */
    extract_opts_init(&eo, cmd);
    mer_text_model *model = NULL;
    char *model_res = NULL, *tok_res = NULL;
    mer_text_state *state = NULL;
    mer_tokenizer *tok = NULL;
    for (int i = 1; i < argc; i++) {
        const char *v;
        if (cli_flag(argv[i], "--help") || cli_flag(argv[i], "-h")) {
            fputs(usage_text, stdout);
            extract_opts_free(&eo);
            return 0;
        }
        if (!cli_is_option(argv[i])) {
            extract_opts_free(&eo);
            return cli_usage(cmd, "unexpected argument %s (the transcripts come from --csv)", argv[i]);
        }
        if (cli_flag(argv[i], "--list")) {
            extract_opts_free(&eo);
            return cli_usage(cmd, "--list is not an option here (the transcripts come from --csv)");
        }
        int r = extract_parse_common(&eo, argc, argv, &i);
        if (r < 0) {
            extract_opts_free(&eo);
            return 2;
        }
        if (r > 0) continue;
        if (cli_opt(argc, argv, &i, "--model", &v)) model_dir = v;
        else if (cli_opt(argc, argv, &i, "--csv", &v)) csv_path = v;
        else if (cli_opt(argc, argv, &i, "--tokenizer", &v)) tok_dir = v;
        else if (cli_opt(argc, argv, &i, "--name-col", &v)) name_col = v;
        else if (cli_opt(argc, argv, &i, "--text-col", &v)) text_col = v;
        else if (cli_opt(argc, argv, &i, "--layers", &v)) {
            if (v && !parse_layers(v, &params.layer_first, &params.layer_last))
                return cli_usage(cmd, "--layers must be all, lastK, N or N-M, got '%s'", v);
            layers_arg = v;
        } else if (cli_opt(argc, argv, &i, "--combine", &v)) {
            if (v && !strcmp(v, "stack")) params.combine = MER_SPEECH_STACK;
            else if (v && !strcmp(v, "sum")) params.combine = MER_SPEECH_SUM;
            else if (v && !strcmp(v, "mean")) params.combine = MER_SPEECH_MEAN;
            else if (v) return cli_usage(cmd, "--combine must be stack, sum or mean, got '%s'", v);
        } else if (cli_opt(argc, argv, &i, "--pool", &v)) {
            if (v && !strcmp(v, "none")) params.pool_mean = 0;
            else if (v && !strcmp(v, "mean")) params.pool_mean = 1;
            else if (v) return cli_usage(cmd, "--pool must be none or mean, got '%s'", v);
        } else if (cli_opt(argc, argv, &i, "--precision", &v)) {
            if (v && !strcmp(v, "f32")) precision = MER_PRECISION_F32;
            else if (v && !strcmp(v, "bf16")) precision = MER_PRECISION_BF16;
            else if (v && !strcmp(v, "int8")) precision = MER_PRECISION_INT8;
            else if (v) return cli_usage(cmd, "--precision must be f32, bf16 or int8, got '%s'", v);
        } else if (cli_opt(argc, argv, &i, "--preset", &v)) {
            if (v && !strcmp(v, "mertools")) {
                params = mer_text_mertools_params();
                layers_arg = "last4";
            } else if (v) {
                return cli_usage(cmd, "--preset must be mertools, got '%s'", v);
            }
        } else {
            return cli_usage(cmd, "unknown option or argument %s", argv[i]);
        }
    }
    if (cli_error()) return cli_usage(cmd, "%s", cli_error());
    if (!model_dir) return cli_usage(cmd, "--model DIR is required (a Hugging Face checkpoint directory)");
    if (!csv_path) return cli_usage(cmd, "--csv FILE is required (transcripts: a name and a text column)");
    if (!eo.out) return cli_usage(cmd, "--out DIR is required");
    if (eo.threads_set) cli_set_threads(eo.threads);
    extract_opts_free(&eo); /* no positional inputs: only the options are used below */
    const char *out = eo.out;
    params.precision = precision;

    mer_status s;
    /* ORG/NAME from the Hugging Face cache, or the directory as given; the recipe records
     * the directory that was read */
    if ((s = mer_model_resolve(model_dir, &model_res)) || (tok_dir && (s = mer_model_resolve(tok_dir, &tok_res)))) {
        rc = cli_fail_status(cmd, s, NULL);
        goto done;
    }
    model_dir = model_res;
    if (tok_dir) tok_dir = tok_res;
    mer_text_model_params mp = mer_text_model_default_params();
    mp.precision = precision;
    if ((s = mer_text_model_load(&model, model_dir, &mp))) {
        rc = cli_fail_status(cmd, s, NULL);
        goto done;
    }
    if ((s = mer_tokenizer_load(&tok, tok_dir ? tok_dir : model_dir))) {
        rc = cli_fail_status(cmd, s, NULL);
        goto done;
    }
    mer_text_info info;
    mer_text_model_info(model, &info);
    {
        const int32_t L = info.n_layers, lf = params.layer_first, ll = params.layer_last;
        const int32_t f = lf < 0 ? (lf == -1 && ll == -1 ? 0 : L + 1 + lf) : lf;
        const int32_t l = ll < 0 ? L + 1 + ll : ll;
        /* the mertools preset takes all states when a model has fewer than 4 */
        if (!(lf < 0 && ll == -1) && (f < 0 || l > L || f > l)) {
            rc = cli_usage(cmd, "--layers %s: the model has hidden states 0..%d", layers_arg ? layers_arg : "?", L);
            goto done;
        }
    }
    mer_text_state_params sp = mer_text_state_default_params();
    sp.precision = precision;
    if ((s = mer_text_state_init(&state, model, &sp))) {
        rc = cli_fail_status(cmd, s, NULL);
        goto done;
    }
    {
        /* recipe.json: how these features were made, for `mer train --recipe`; another recipe
         * over existing files is refused (mer_output_recipe, in the library call) */
        char *recipe = NULL;
        if ((s = mer_text_recipe_to_json(model_dir, tok_dir, &params, &recipe))) {
            rc = cli_fail_status(cmd, s, NULL);
            goto done;
        }
        extract_report rep;
        mer_extract_result er;
        mer_extract_params p = extract_params(&eo, recipe, &rep, &er);
        s = mer_extract_text_csv(state, tok, csv_path, name_col, text_col, out, &params, &p, &er);
        free(recipe);
        cli_catch_sigint(0);
        if (rep.started) cli_progress_end(&rep.bar);
        if (s) {
            rc = cli_fail_status(cmd, s, NULL);
        } else {
            fprintf(stderr, "mer %s: %lld written, %lld skipped (existing) into %s\n", cmd, (long long)er.written,
                    (long long)er.skipped, out);
            rc = er.failed > 0;
        }
        mer_extract_result_free(&er);
    }
done:
    mer_tokenizer_free(tok);
    mer_text_state_free(state);
    mer_text_model_free(model);
    free(model_res);
    free(tok_res);
    return rc;
}
