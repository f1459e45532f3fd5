/*
 * mer.c -- the `mer` command-line tool: dispatches subcommands (tools/cmd_*.c) to the library.
 * To add a subcommand: write int cmd_<name>(int argc, char **argv) in tools/cmd_<name>.c and
 * add one line to the table below.
 */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int cmd_inspect(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_finetune(int argc, char **argv);
int cmd_probe(int argc, char **argv);
int cmd_predict(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_synth(int argc, char **argv);
int cmd_vote(int argc, char **argv);
int cmd_faces(int argc, char **argv);
int cmd_extract(int argc, char **argv);
int cmd_demo(int argc, char **argv);
int cmd_analyze(int argc, char **argv);
int cmd_convert(int argc, char **argv);
int cmd_quantize(int argc, char **argv);

static const struct {
    const char *name;
    mer_cmd_fn fn;
    const char *summary;
} commands[] = {
    {"inspect", cmd_inspect, "show tensors of a safetensors file, shape of a .npy, streams of media"},
    {"bench", cmd_bench, "micro-benchmarks (mer bench gemm, mer bench peak)"},
    {"train", cmd_train, "cross-validated training of a fusion model on per-clip features"},
    {"probe", cmd_probe, "emotion probe (linear / MLP) of every layer of a speech encoder"},
    {"finetune", cmd_finetune, "adapters / LoRA in the top layers of a speech encoder (finetune speech)"},
    {"predict", cmd_predict, "class probabilities of a trained run for feature files or media"},
    {"eval", cmd_eval, "score predictions against labels: WAF, accuracy, macro F1, UAR, confusion"},
    {"synth", cmd_synth, "write a synthetic multimodal data set with a known Bayes rule"},
    {"vote", cmd_vote, "ensemble several runs' predictions (mean or majority, prior correction)"},
    {"faces", cmd_faces, "detect faces and their expressions in an image or video (face-api models)"},
    {"extract", cmd_extract, "features to .npy: audio (HuBERT/wav2vec2), acoustic, visual (CLIP)"},
    {"demo", cmd_demo, "speech emotion on the bundled EmoDB: features, LOSO evaluation, model"},
    {"quantize", cmd_quantize, "a text-encoder checkpoint as weight-only int8 safetensors"},
    {"analyze", cmd_analyze, "emotion of one clip: speech, face, text and fused, with a timeline"},
    {"convert", cmd_convert, "PyTorch .bin (zip/legacy, sharded) or any checkpoint -> model.safetensors"},
};

static void usage(FILE *f) {
    fprintf(f, "mer %s -- multimodal emotion recognition\n\nusage: mer <command> [options]\n\ncommands:\n",
            MER_VERSION);
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\n'mer <command> --help' describes a command's options.\n");
}

/* OpenMP threads (shared by oneDNN and our kernels) spin for a while after each parallel region.
 * On an idle machine that saves wake-ups; on a busy one a spinning thread takes the core the
 * thread it waits for needs, and runs got 5-35x slower in our measurements (docs/gemm.md).
 * libgomp reads its wait policy once, when it is loaded, so the only way to choose it from
 * here is to run ourselves again with the variable set: when the machine is busy and the user
 * set no policy, re-exec with OMP_WAIT_POLICY=PASSIVE. */
static void choose_wait_policy(char **argv) {
    if (getenv("OMP_WAIT_POLICY") || getenv("GOMP_SPINCOUNT") || getenv("MER_REEXEC")) return;
    double load = 0;
    FILE *f = fopen("/proc/loadavg", "r");
    if (!f) return;
    int ok = fscanf(f, "%lf", &load) == 1;
    fclose(f);
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    if (!ok || cpus < 1 || load < (double)cpus - 0.5) return;
    setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
    setenv("MER_REEXEC", "1", 1);
    execv("/proc/self/exe", argv);
    /* exec failed: carry on with the default policy */
}

int main(int argc, char **argv) {
    choose_wait_policy(argv);
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *c = argv[1];
    if (!strcmp(c, "--help") || !strcmp(c, "-h") || !strcmp(c, "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(c, "--version") || !strcmp(c, "version")) {
        printf("mer %s (gemm: %s, cpu: %s)\n", MER_VERSION, mer_gemm_backend_name(mer_gemm_get_backend()),
               mer_cpu_features_str());
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        if (!strcmp(c, commands[i].name)) return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "mer: unknown command '%s' (see 'mer --help')\n", c);
    return 2;
}
