/*
 * speech_train_bench.c -- one training step of the trainable speech encoder
 * (src/models/speech_train.c): forward over cached hidden states, cross-entropy, backward,
 * AdamW, for `clips` clips of `frames` frames (random cached inputs), layers first..last with
 * adapters in first..adapt_last. Prints the best step time over reps and the peak RSS.
 * usage: speech_train_bench CKPT first adapt_last last clips frames threads reps [bottleneck [bf16|int8]]
 * Output: "RESULT mer <seconds> <peak_rss_MB> <act_MB>".
 */
#include "mer.h"
#include "models/speech_train.h"
#include "train/train.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int main(int argc, char **argv) {
    if (argc < 9) {
        fprintf(stderr, "usage: %s CKPT first adapt_last last clips frames threads reps [bottleneck]\n", argv[0]);
        return 2;
    }
    mer__sft_config c = {atoi(argv[2]), atoi(argv[4]), atoi(argv[3]), atoi(argv[4]),
                         MER__SFT_ADAPTER, argc > 9 ? atoi(argv[9]) : 64, 0, 0.0f, 0, 7,
                         0.0f, 0.0f, 0.0f, 0, argc > 10 && !strcmp(argv[10], "bf16"), 0,
                         argc > 10 && !strcmp(argv[10], "int8")};
    const int64_t n = atoi(argv[5]), T = atoi(argv[6]);
    const int reps = atoi(argv[8]);
    mer_set_threads(atoi(argv[7]));
    mer_speech_model *m = NULL;
    mer__sft *s = NULL;
    if (mer_speech_model_load(&m, argv[1], NULL) || mer__sft_init(&s, m, &c)) {
        fprintf(stderr, "%s\n", mer_last_error());
        return 1;
    }
    const int64_t D = mer__sft_dim(s), np = mer__sft_n_params(s), rows = n * T;
    float *x = malloc((size_t)(rows * D) * sizeof(float));
    float *p = malloc((size_t)np * sizeof(float)), *g = calloc((size_t)np, sizeof(float));
    int64_t *off = malloc((size_t)(n + 1) * sizeof *off);
    int32_t *y = malloc((size_t)n * sizeof *y);
    float *logits = malloc((size_t)n * 7 * sizeof(float)), *probs = malloc((size_t)n * 7 * sizeof(float));
    float *dl = malloc((size_t)n * 7 * sizeof(float));
    mer__rng rng;
    mer__rng_seed(&rng, 1);
    for (int64_t i = 0; i < rows * D; i++) x[i] = (float)mer__rng_normal(&rng);
    for (int64_t i = 0; i <= n; i++) off[i] = i * T;
    for (int64_t i = 0; i < n; i++) y[i] = (int32_t)(i % 7);
    mer__sft_init_params(s, p, &rng);
    mer__optim o;
    if (mer__optim_init(&o, MER_OPT_ADAMW, np, 1e-3f, 0.01f)) return 1;
    double best = 1e30;
    for (int r = 0; r < reps + 1; r++) {
        double t0 = now();
        if (mer__sft_forward(s, p, x, off, n, 1, NULL, logits, NULL)) {
            fprintf(stderr, "%s\n", mer_last_error());
            return 1;
        }
        for (int64_t i = 0; i < n * 7; i++) dl[i] = 0.0f;
        float loss = mer__cross_entropy_fwd(probs, logits, y, NULL, 0.0f, n, 7);
        mer__cross_entropy_bwd(dl, probs, y, NULL, 0.0f, n, 7);
        mer__sft_backward(s, p, g, dl, NULL);
        mer__optim_step(&o, p, g);
        double t = now() - t0;
        printf("mer step %d: %.3f s loss %.4f%s\n", r, t, loss, r ? "" : " (warm-up)");
        if (r && t < best) best = t;
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("RESULT mer %.4f %.0f %.0f\n", best, ru.ru_maxrss / 1024.0,
           (double)mer__sft_act_bytes(s) / 1048576.0);
    mer__optim_free(&o);
    mer__sft_free(s);
    mer_speech_model_free(m);
    free(x), free(p), free(g), free(off), free(y), free(logits), free(probs), free(dl);
    return 0;
}
