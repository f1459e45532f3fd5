/*
 * cmd_extract.c -- `mer extract <kind>`: dispatches to the feature extractors. Each kind lives
 * in tools/cmd_extract_<kind>.c and shares the batch machinery of extract_common.c (inputs,
 * output layout, skipping, atomic writes, failure reporting). To add one: one declaration and
 * one row below.
 */
#include "cli.h"

#include <stdio.h>
#include <string.h>

int cmd_extract_audio(int argc, char **argv);
int cmd_extract_acoustic(int argc, char **argv);
int cmd_extract_visual(int argc, char **argv);
int cmd_extract_text(int argc, char **argv);

static const struct {
    const char *name;
    mer_cmd_fn fn;
    const char *summary;
} kinds[] = {
    {"audio", cmd_extract_audio, "HuBERT / wav2vec 2.0 hidden states of a Hugging Face checkpoint"},
    {"acoustic", cmd_extract_acoustic, "weight-free eGeMAPS-style descriptors and MFCCs"},
    {"visual", cmd_extract_visual, "CLIP ViT image features of images or video frames"},
    {"text", cmd_extract_text, "text-encoder features of a transcript CSV (BERT, LLaMA, Qwen2, Baichuan)"},
};

static void usage(FILE *f) {
    fprintf(f, "usage: mer extract <kind> [options] --out PATH INPUT...\n\nkinds:\n");
    for (size_t i = 0; i < sizeof kinds / sizeof *kinds; i++)
        fprintf(f, "  %-10s %s\n", kinds[i].name, kinds[i].summary);
    fprintf(f, "\nOne INPUT: PATH is the .npy file. Several INPUTs or --list FILE: PATH is a directory\n"
               "receiving <basename>.npy per input. Existing outputs are skipped unless --overwrite.\n"
               "'mer extract <kind> --help' describes the options of a kind.\n");
}

int cmd_extract(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *k = argv[1];
    if (!strcmp(k, "--help") || !strcmp(k, "-h")) {
        usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof kinds / sizeof *kinds; i++)
        if (!strcmp(k, kinds[i].name)) return kinds[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "mer extract: unknown kind '%s' (see 'mer extract --help')\n", k);
    return 2;
}
