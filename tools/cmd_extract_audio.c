/*
 * cmd_extract_audio.c -- `mer extract audio`: hidden states of a HuBERT / wav2vec 2.0 Hugging
 * Face checkpoint for audio files (anything FFmpeg decodes, resampled to the model's rate,
 * mono). Layer selection, combining, pooling and chunking are mer_speech_extract's, the batch
 * over the inputs mer_extract_speech_files' (src/pipeline/extract.c). See docs/speech.md.
 */
#include "extract_common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char usage_text[] =
    "usage: mer extract audio --model DIR|ORG/NAME [--layers all|last4|N|N-M] [--combine stack|sum|mean]\n"
    "                         [--pool none|mean] [--chunk-seconds S] [--preset mertools]\n"
    "                         [--precision f32|bf16|int8] [--threads N] [--overwrite]\n"
    "                         [--batch N] [--adapter RUN [--fold K]] --out PATH (INPUT... | --list FILE)\n"
    "\n"
    "Hidden states of a Hugging Face HubertModel / Wav2Vec2Model checkpoint (config.json +\n"
    "model.safetensors or pytorch_model.bin [+ preprocessor_config.json]) for each audio input.\n"
    "--model also takes ORG/NAME of a model in the Hugging Face cache (never downloaded).\n"
    "  --layers      hidden-state indices 0..L (0 = encoder input): all (default), last4, N, N-M\n"
    "  --combine     stack (K, T, D) (default), or sum / mean over the K layers: (T, D)\n"
    "  --pool        none (default) or mean over frames (drops T)\n"
    "  --chunk-seconds S  audio longer than S seconds is normalized as a whole, cut into S-second\n"
    "                chunks (the last zero-padded), each encoded, frames concatenated; default\n"
    "                10, as MERTools (attention over a whole long input costs time quadratic in\n"
    "                its length); 0: one pass over the whole input (full attention)\n"
    "  --preset mertools  MERTools' utterance feature: --layers last4 --combine sum --pool mean\n"
    "                --chunk-seconds 10 (later options override)\n"
    "  --precision   f32 (default, exact) or bf16: the linear layers in bfloat16 with float32\n"
    "                accumulation, ~1.5x faster on AVX512-BF16 CPUs, ~1e-2 relative deviation\n"
    "                per hidden state (docs/speech.md); int8: the linear layers as int8 W8A8\n"
    "                (per-channel weights, per-token activations; docs/gemm.md)\n"
    "  --batch N     encode N inputs in one forward (default 1): their frames go through the linear\n"
    "                layers together, attention stays within each clip (no padding), so many short\n"
    "                clips run faster (bench/batch.sh); results equal one at a time up to float\n"
    "                summation order (bitwise for bf16/int8)\n"
    "  --adapter RUN the adapted features of a `mer finetune speech` run (docs/finetune.md): the\n"
    "                run's head input, the sum of its --head-layers computed with fold K's (0)\n"
    "                adapters / LoRA, (T, D) or with --pool mean (D); --model may be omitted (the\n"
    "                run names its checkpoint) and must be that checkpoint if given; --layers,\n"
    "                --combine, --preset and --precision do not apply, and the input is one\n"
    "                pass as in the run's cache (no chunks)\n"
    "One INPUT: PATH is the .npy file. Several INPUTs or --list: PATH is a directory of\n"
    "<basename>.npy. Existing outputs are skipped unless --overwrite; failed inputs are reported\n"
    "and skipped, and the exit code is 1 if any failed.\n";

/* --layers: all | lastN | N | N-M, into first/last (negative = from the end, as Python). */
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

int cmd_extract_audio(int argc, char **argv) {
    const char *cmd = "extract audio";
    extract_opts eo;
    extract_opts_init(&eo, cmd);
    mer_speech_model *model = NULL;
    mer_speech_state *state = NULL;
    mer_speech_adapter *adapter_h = NULL; /* --adapter RUN */
    mer_speech_params sp = mer_speech_default_params();
    char *resolved = NULL; /* ORG/NAME from the Hugging Face cache, or the directory as given */
    /* long inputs in 10 s chunks, as MERTools: full attention over 30 min took 45x as long */
    sp.chunk_seconds = 10.0;
    const char *model_dir = NULL, *layers_arg = NULL, *adapter = NULL;
    long fold = 0, batch = 1;
    mer_precision precision = MER_PRECISION_F32; /* kept apart: --preset resets the params */
    int rc = 2;
    for (int i = 1; i < argc; i++) {
        const char *v;
        if (cli_flag(argv[i], "--help") || cli_flag(argv[i], "-h")) {
            fputs(usage_text, stdout);
            extract_opts_free(&eo);
            return 0;
        }
        int r = extract_parse_common(&eo, argc, argv, &i);
        if (r < 0) goto out;
        if (r > 0) continue;
        if (cli_opt(argc, argv, &i, "--model", &v)) {
            model_dir = v;
        } else if (cli_opt(argc, argv, &i, "--adapter", &v)) {
            adapter = v;
        } else if (cli_opt(argc, argv, &i, "--fold", &v)) {
            if (v && !cli_parse_int(v, 0, 999, &fold)) {
                cli_usage(cmd, "--fold wants an integer in [0, 999], got '%s'", v);
                goto out;
            }
        } else if (cli_opt(argc, argv, &i, "--batch", &v)) {
            if (v && !cli_parse_int(v, 1, 1024, &batch)) {
                cli_usage(cmd, "--batch wants an integer in [1, 1024], got '%s'", v);
                goto out;
            }
        } else if (cli_opt(argc, argv, &i, "--layers", &v)) {
            if (v && !parse_layers(v, &sp.layer_first, &sp.layer_last)) {
                cli_usage(cmd, "--layers must be all, lastK, N or N-M, got '%s'", v);
                goto out;
            }
            layers_arg = v;
        } else if (cli_opt(argc, argv, &i, "--combine", &v)) {
            if (v && !strcmp(v, "stack")) sp.combine = MER_SPEECH_STACK;
            else if (v && !strcmp(v, "sum")) sp.combine = MER_SPEECH_SUM;
            else if (v && !strcmp(v, "mean")) sp.combine = MER_SPEECH_MEAN;
            else if (v) {
                cli_usage(cmd, "--combine must be stack, sum or mean, got '%s'", v);
                goto out;
            }
        } else if (cli_opt(argc, argv, &i, "--pool", &v)) {
            if (v && !strcmp(v, "none")) sp.pool_mean = 0;
            else if (v && !strcmp(v, "mean")) sp.pool_mean = 1;
            else if (v) {
                cli_usage(cmd, "--pool must be none or mean, got '%s'", v);
                goto out;
            }
        } else if (cli_opt(argc, argv, &i, "--chunk-seconds", &v)) {
            if (v && !cli_parse_double(v, 0.0, 3600.0, &sp.chunk_seconds)) {
                cli_usage(cmd, "--chunk-seconds must be a number of seconds in [0, 3600], got '%s'", v);
                goto out;
            }
        } else if (cli_opt(argc, argv, &i, "--precision", &v)) {
            if (v && !strcmp(v, "f32")) precision = MER_PRECISION_F32;
            else if (v && !strcmp(v, "bf16")) precision = MER_PRECISION_BF16;
            else if (v && !strcmp(v, "int8")) precision = MER_PRECISION_INT8;
            else if (v) {
                cli_usage(cmd, "--precision must be f32, bf16 or int8, got '%s'", v);
                goto out;
            }
        } else if (cli_opt(argc, argv, &i, "--preset", &v)) {
            if (v && !strcmp(v, "mertools")) {
                sp = mer_speech_mertools_params();
                layers_arg = "last4";
            } else if (v) {
                cli_usage(cmd, "--preset must be mertools, got '%s'", v);
                goto out;
            }
        } else {
            cli_usage(cmd, "unknown option %s", argv[i]);
            goto out;
        }
    }
    if (cli_error()) {
        cli_usage(cmd, "%s", cli_error());
        goto out;
    }
    if (!model_dir && !adapter) {
        cli_usage(cmd, "--model DIR is required (a Hugging Face checkpoint directory)");
        goto out;
    }
    if (extract_check(&eo)) goto out;
    if (adapter) {
        if (layers_arg || precision != MER_PRECISION_F32 || sp.combine != MER_SPEECH_STACK) {
            cli_usage(cmd, "--adapter takes --pool and --fold only (the run fixes the layers)");
            goto out;
        }
        if (batch > 1) {
            cli_usage(cmd, "--batch does not apply to --adapter (one clip a forward, as the run's cache)");
            goto out;
        }
        char *res = NULL;
        mer_status as = model_dir ? mer_model_resolve(model_dir, &res) : MER_OK;
        if (as == MER_OK) as = mer_speech_adapter_open(&adapter_h, adapter, res, (int32_t)fold);
        free(res);
        if (as) {
            rc = cli_fail_status(cmd, as, NULL);
            goto out;
        }
        extract_report rep;
        mer_extract_result er;
        mer_extract_params p = extract_params(&eo, NULL, &rep, &er);
        rc = extract_finish(&rep, mer_extract_speech_adapter_files(adapter_h, eo.inputs, eo.n_inputs, eo.out,
                                                                   sp.pool_mean, &p, &er), &er);
        goto out;
    }
    sp.precision = precision;

    mer_status s = mer_model_resolve(model_dir, &resolved);
    if (s == MER_OK) s = mer_speech_model_load(&model, resolved, NULL);
    if (s) {
        rc = cli_fail_status(cmd, s, NULL);
        goto out;
    }
    mer_speech_info info;
    mer_speech_model_info(model, &info);
    /* layer indices can only be checked against the model */
    const int32_t L = info.n_layers, lf = sp.layer_first, ll = sp.layer_last;
    const int32_t f = lf < 0 ? (lf == -1 && ll == -1 ? 0 : L + 1 + lf) : lf;
    const int32_t l = ll < 0 ? L + 1 + ll : ll;
    if (f < 0 || l > L || f > l) {
        cli_usage(cmd, "--layers %s: the model has hidden states 0..%d", layers_arg ? layers_arg : "?", L);
        goto out;
    }
    if ((s = mer_speech_state_init(&state, model, NULL))) {
        rc = cli_fail_status(cmd, s, NULL);
        goto out;
    }
    /* how the features are made: an output directory records it as recipe.json and refuses
     * another (mer_output_recipe); `mer train` records it so `mer predict --input` extracts new
     * media the same way */
    char *recipe = NULL;
    if ((s = mer_speech_recipe_to_json(resolved, &sp, &recipe))) {
        rc = cli_fail_status(cmd, s, NULL);
        goto out;
    }
    extract_report rep;
    mer_extract_result er;
    mer_extract_params p = extract_params(&eo, recipe, &rep, &er);
    p.batch = (int32_t)batch;
    rc = extract_finish(&rep, mer_extract_speech_files(state, eo.inputs, eo.n_inputs, eo.out, &sp, &p, &er), &er);
    free(recipe);
out:
    free(resolved);
    mer_speech_adapter_free(adapter_h);
    mer_speech_state_free(state);
    mer_speech_model_free(model);
    extract_opts_free(&eo);
    return rc;
}
