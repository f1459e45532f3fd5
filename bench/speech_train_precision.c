/*
 * speech_train_precision.c -- what --precision int8 (or bf16) changes in adapter training
 * (src/models/speech_train.c), against float32 on the same checkpoint, initial weights and
 * batches: the cosine and relative difference of the trainable gradients at the first step,
 * then `steps` AdamW steps on each side (two alternating random batches, lr 1e-3) with both
 * loss curves. Random cached inputs (unit normal), layers first..last, adapters first..adapt_last.
 * usage: speech_train_precision CKPT first adapt_last last clips frames threads steps int8|bf16
 */
#include "mer.h"
#include "models/speech_train.h"
#include "train/train.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { C = 7 };

static float step(mer__sft *s, float *p, float *g, const float *x, const int64_t *off, int64_t n,
                  const int32_t *y) {
    float logits[64 * C], probs[64 * C], dl[64 * C] = {0};
    if (mer__sft_forward(s, p, x, off, n, 1, NULL, logits, NULL)) return NAN;
    const float loss = mer__cross_entropy_fwd(probs, logits, y, NULL, 0.0f, n, C);
    mer__cross_entropy_bwd(dl, probs, y, NULL, 0.0f, n, C);
    memset(g, 0, (size_t)mer__sft_n_params(s) * sizeof(float));
    return mer__sft_backward(s, p, g, dl, NULL) ? NAN : loss;
}

int main(int argc, char **argv) {
    if (argc < 10) {
        fprintf(stderr, "usage: %s CKPT first adapt_last last clips frames threads steps int8|bf16\n", argv[0]);
        return 2;
    }
    const int64_t n = atoi(argv[5]), T = atoi(argv[6]);
    const int steps = atoi(argv[8]);
    if (n < 1 || n > 64 || T < 1 || steps < 1) return 2;
    mer_set_threads(atoi(argv[7]));
    mer__sft_config c = {atoi(argv[2]), atoi(argv[4]), atoi(argv[3]), atoi(argv[4]),
                         MER__SFT_ADAPTER, 64, 0, 0.0f, 0, C, 0.0f, 0.0f, 0.0f, 0, 0, 0, 0};
    mer__sft_config r = c;
    r.bf16 = !strcmp(argv[9], "bf16");
    r.int8 = !strcmp(argv[9], "int8");
    mer_speech_model *m = NULL;
    mer__sft *s32 = NULL, *sr = NULL;
    if (mer_speech_model_load(&m, argv[1], NULL) || mer__sft_init(&s32, m, &c) ||
        mer__sft_init(&sr, m, &r)) {
        fprintf(stderr, "%s\n", mer_last_error());
        return 1;
    }
    const int64_t D = mer__sft_dim(s32), np = mer__sft_n_params(s32), rows = n * T;
    float *x = malloc((size_t)(2 * rows * D) * sizeof(float));
    float *p32 = malloc((size_t)np * sizeof(float)), *pr = malloc((size_t)np * sizeof(float));
    float *g32 = malloc((size_t)np * sizeof(float)), *gr = malloc((size_t)np * sizeof(float));
    int64_t off[65];
    int32_t y[2][64];
    mer__rng rng;
    mer__rng_seed(&rng, 1);
    for (int64_t i = 0; i < 2 * rows * D; i++) x[i] = (float)mer__rng_normal(&rng);
    for (int64_t i = 0; i <= n; i++) off[i] = i * T;
    for (int64_t i = 0; i < n; i++) y[0][i] = (int32_t)(i % C), y[1][i] = (int32_t)((i + 3) % C);
    mer__sft_init_params(s32, p32, &rng);
    /* one step with the adapters' up projections random too (they start at zero), so the
     * first gradients reach every adapter weight */
    for (int64_t i = 0; i < np; i++)
        if (p32[i] == 0.0f) p32[i] = 0.01f * (float)mer__rng_normal(&rng);
    memcpy(pr, p32, (size_t)np * sizeof(float));
    float *p0 = malloc((size_t)np * sizeof(float));
    memcpy(p0, p32, (size_t)np * sizeof(float));
    mer__optim o32, orr;
    if (mer__optim_init(&o32, MER_OPT_ADAMW, np, 1e-3f, 0.01f) ||
        mer__optim_init(&orr, MER_OPT_ADAMW, np, 1e-3f, 0.01f))
        return 1;
    printf("step loss_f32 loss_%s\n", argv[9]);
    for (int k = 0; k < steps; k++) {
        const float *xb = x + (k % 2) * rows * D;
        const float l32 = step(s32, p32, g32, xb, off, n, y[k % 2]);
        const float lr = step(sr, pr, gr, xb, off, n, y[k % 2]);
        if (k == 0) {
            double dot = 0, a = 0, b = 0, d = 0, mx = 0;
            for (int64_t i = 0; i < np; i++) {
                dot += (double)g32[i] * gr[i];
                a += (double)g32[i] * g32[i];
                b += (double)gr[i] * gr[i];
                d = fmax(d, fabs((double)g32[i] - gr[i]));
                mx = fmax(mx, fabs((double)g32[i]));
            }
            printf("first-step gradients: cosine %.6f, max |diff| / max |g| %.3e (%lld trainable)\n",
                   dot / sqrt(a * b), d / mx, (long long)np);
        }
        printf("%d %.6f %.6f\n", k, (double)l32, (double)lr);
        mer__optim_step(&o32, p32, g32);
        mer__optim_step(&orr, pr, gr);
    }
    /* how far the two runs' updates differ, against the size of the float32 update */
    double dd = 0, du = 0;
    for (int64_t i = 0; i < np; i++) {
        dd += ((double)p32[i] - pr[i]) * ((double)p32[i] - pr[i]);
        du += ((double)p32[i] - p0[i]) * ((double)p32[i] - p0[i]);
    }
    printf("after %d steps: |p_%s - p_f32| / |p_f32 - p_initial| = %.3e (L2)\n", steps, argv[9],
           sqrt(dd / du));
    mer__optim_free(&o32), mer__optim_free(&orr);
    mer__sft_free(s32), mer__sft_free(sr);
    mer_speech_model_free(m);
    free(x), free(p32), free(pr), free(p0), free(g32), free(gr);
    return 0;
}
