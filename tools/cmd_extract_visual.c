/*
 * cmd_extract_visual.c -- `mer extract visual`: CLIP ViT features of images and of frames
 * sampled from videos, optionally of the face in each frame, pooled over frames the MERTools
 * way (mean of get_image_features). The work is one library call, mer_extract_clip_files
 * (src/pipeline/extract.c: mer_clip_extract_file per input, one INPUT -> .npy, several ->
 * directory, skip existing, atomic writes, failures counted).
 */
#include "extract_common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *usage_text =
    "usage: mer extract visual --model DIR|ORG/NAME [--frames K | --fps F] [--faces [--face-models DIR]]\n"
    "                          [--output embeds|cls|hidden] [--pool mean|none] [--precision f32|bf16|int8] [--overwrite]\n"
    "                          [--threads N] [--list FILE] --out PATH INPUT...\n"
    "\n"
    "CLIP ViT image features (Hugging Face CLIPModel / CLIPVisionModel[WithProjection]\n"
    "checkpoints; docs/visual.md) of images (png, jpg, ...) and of video frames.\n"
    "  --model DIR      checkpoint directory (config.json, model.safetensors,\n"
    "                   preprocessor_config.json)\n"
    "  --frames K       K frames uniformly over each video; --fps F: frames at 0, 1/F, ...\n"
    "                   (default: every frame)\n"
    "  --faces          replace each frame by its best face crop; frames without a face are\n"
    "                   skipped and counted; an input without any face fails\n"
    "  --face-models D  face-api weights (default $MER_FACE_MODELS, else models/face-api)\n"
    "  --output embeds  get_image_features, (P,) per frame (default)\n"
    "  --output cls     the post-layernormed class token, (D,) per frame\n"
    "  --output hidden  all hidden states, (L+1, T, D) per frame\n"
    "  --pool mean      average over frames, MERTools' utterance feature (default)\n"
    "  --pool none      keep the frames axis: (frames, ...)\n"
    "  --precision bf16 speed mode: encoder products in bfloat16 (about 1.8x faster on\n"
    "                   AVX512-BF16 CPUs, about 3 significant digits; default f32, exact)\n"
    "  --precision int8 the encoder's linear products as int8 W8A8 (per-channel weights,\n"
    "                   per-token activations; docs/gemm.md)\n"
    "  --out PATH       a .npy for one input, else a directory of <name>.npy\n";

int cmd_extract_visual(int argc, char **argv) {
    const char *cmd = "extract visual";
    extract_opts eo;
    extract_opts_init(&eo, cmd);
    mer_clip_state *state = NULL;
    mer_clip_extract_params cp = mer_clip_default_extract_params();
    const char *model_dir = NULL, *face_dir = NULL;
    int faces = 0, bf16 = 0, rc = 2;
    mer_clip_model *model = NULL;
    mer_faces *fm = NULL;
    mer_faces_state *fst = NULL;
    for (int i = 1; i < argc; i++) {
        const char *v;
        if (cli_flag(argv[i], "--help") || cli_flag(argv[i], "-h")) {
            fputs(usage_text, stdout);
            rc = 0;
            goto out;
        }
        int r = extract_parse_common(&eo, argc, argv, &i);
        if (r < 0) goto out;
        if (r > 0) continue;
        if (cli_opt(argc, argv, &i, "--model", &v)) {
            model_dir = v;
        } else if (cli_opt(argc, argv, &i, "--frames", &v)) {
            long k;
            if (!cli_parse_int(v, 1, 1000000, &k)) {
                rc = cli_usage(cmd, "--frames must be a positive integer, got '%s'", v);
                goto out;
            }
            cp.sampling.count = (int32_t)k;
        } else if (cli_opt(argc, argv, &i, "--fps", &v)) {
            double f;
            if (!cli_parse_double(v, 1e-6, 1000.0, &f)) {
                rc = cli_usage(cmd, "--fps must be a number in (0, 1000], got '%s'", v);
                goto out;
            }
            cp.sampling.fps = f;
        } else if (cli_flag(argv[i], "--faces")) {
            faces = 1;
        } else if (cli_opt(argc, argv, &i, "--precision", &v)) {
            if (v && !strcmp(v, "bf16")) bf16 = 1;
            else if (v && !strcmp(v, "int8")) bf16 = 2;
            else if (v && !strcmp(v, "f32")) bf16 = 0;
            else return cli_usage("extract visual", "--precision takes f32, bf16 or int8");
        } else if (cli_opt(argc, argv, &i, "--face-models", &v)) {
            face_dir = v;
        } else if (cli_opt(argc, argv, &i, "--output", &v)) {
            if (!strcmp(v, "embeds")) cp.what = MER_CLIP_EMBEDS;
            else if (!strcmp(v, "cls")) cp.what = MER_CLIP_CLS;
            else if (!strcmp(v, "hidden")) cp.what = MER_CLIP_HIDDEN;
            else {
                rc = cli_usage(cmd, "--output must be embeds, cls or hidden, got '%s'", v);
                goto out;
            }
        } else if (cli_opt(argc, argv, &i, "--pool", &v)) {
            if (strcmp(v, "mean") && strcmp(v, "none")) {
                rc = cli_usage(cmd, "--pool must be mean or none, got '%s'", v);
                goto out;
            }
            cp.pool_mean = !strcmp(v, "mean");
        } else {
            rc = cli_usage(cmd, "unknown option %s", argv[i]);
            goto out;
        }
    }
    if (cli_error()) {
        rc = cli_usage(cmd, "%s", cli_error());
        goto out;
    }
    if (!model_dir) {
        rc = cli_usage(cmd, "--model DIR is required");
        goto out;
    }
    if (cp.sampling.count > 0 && cp.sampling.fps > 0) {
        rc = cli_usage(cmd, "--frames and --fps exclude each other");
        goto out;
    }
    if (face_dir && !faces) {
        rc = cli_usage(cmd, "--face-models needs --faces");
        goto out;
    }
    if (extract_check(&eo)) goto out;
    rc = 1;
    char *resolved = NULL; /* ORG/NAME from the Hugging Face cache, or the directory as given */
    mer_status s = mer_model_resolve(model_dir, &resolved);
    if (s == MER_OK) s = mer_clip_model_load(&model, resolved, NULL);
    free(resolved);
    if (s != MER_OK) {
        cli_fail_status(cmd, s, model_dir);
        goto out;
    }
    if (cp.what == MER_CLIP_EMBEDS && mer_clip_output_size(model, MER_CLIP_EMBEDS) == 0) {
        cli_fail(cmd, "%s: the checkpoint has no visual_projection (a CLIPVisionModel); use --output cls or hidden",
                 model_dir);
        goto out;
    }
    if (faces) {
        mer_faces_model_params fmp = mer_faces_model_default_params();
        fmp.expressions = 0; /* the crops need the detector only */
        if ((s = mer_faces_load(&fm, face_dir, &fmp)) != MER_OK ||
            (s = mer_faces_state_init(&fst, NULL)) != MER_OK) {
            cli_fail_status(cmd, s, face_dir ? face_dir : "face models");
            goto out;
        }
        cp.faces = fm;
        cp.faces_state = fst;
    }
    if ((s = mer_clip_state_init(&state, model, NULL)) != MER_OK ||
        (s = mer_clip_state_set_precision(state, bf16 == 2 ? MER_PRECISION_INT8
                                                  : bf16      ? MER_PRECISION_BF16
                                                              : MER_PRECISION_F32)) != MER_OK) {
        cli_fail_status(cmd, s, model_dir);
        goto out;
    }
    {
        /* what changes the files, recorded in an output directory (mer_output_recipe): a rerun
         * with another --pool, --output, --frames/--fps, --faces, model or precision is refused;
         * `mer train` records it, `mer predict --input` replays it (mer_clip_recipe_extract) */
        char *recipe = NULL, *res = NULL;
        const mer_precision prec = bf16 == 2 ? MER_PRECISION_INT8 : bf16 ? MER_PRECISION_BF16 : MER_PRECISION_F32;
        if ((s = mer_model_resolve(model_dir, &res)) == MER_OK)
            s = mer_clip_recipe_to_json(res, &cp, prec, faces, face_dir, &recipe);
        free(res);
        if (s != MER_OK) {
            cli_fail_status(cmd, s, model_dir);
            goto out;
        }
        extract_report rep;
        mer_extract_result er;
        mer_extract_params p = extract_params(&eo, recipe, &rep, &er);
        s = mer_extract_clip_files(state, eo.inputs, eo.n_inputs, eo.out, &cp, &p, &er);
        const int64_t frames = er.frames, no_face = er.frames_no_face, in_no_face = er.inputs_with_faceless_frames;
        rc = extract_finish(&rep, s, &er);
        if (faces && no_face)
            fprintf(stderr, "mer %s: %lld of %lld frames had no face and were skipped (in %lld input%s)\n", cmd,
                    (long long)no_face, (long long)frames, (long long)in_no_face, in_no_face == 1 ? "" : "s");
        free(recipe);
    }
out:
    mer_clip_state_free(state);
    mer_clip_model_free(model);
    mer_faces_state_free(fst);
    mer_faces_free(fm);
    extract_opts_free(&eo);
    return rc;
}
