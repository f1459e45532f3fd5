/*
 * batch_bench.c -- driver of bench/batch.sh: extraction throughput of many short clips through
 * a speech encoder, one clip per forward (mer_speech_encode) against BATCH clips of similar length
 * per forward (mer_speech_encode_batch), the MERTools layers (the last 4 hidden states). Clips
 * are decoded and normalised first (not timed); rounds alternate single / batched and the best
 * round of each is reported, with the largest difference between the two outputs.
 *
 * Inputs: the .wav and .flac files of WAV_DIR in name order.
 *
 * usage: batch_bench MODEL_DIR WAV_DIR N_CLIPS BATCH THREADS ROUNDS [f32|bf16|int8]
 */
#include "mer.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int64_t *g_len;
static int cmp_len(const void *a, const void *b) {
    int64_t x = g_len[*(const int *)a], y = g_len[*(const int *)b];
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    if (argc < 7 || argc > 8) {
        fprintf(stderr, "usage: batch_bench MODEL_DIR WAV_DIR N_CLIPS BATCH THREADS ROUNDS [f32|bf16|int8]\n");
        return 2;
    }
    const int want = atoi(argv[3]), B = atoi(argv[4]), threads = atoi(argv[5]), rounds = atoi(argv[6]);
    const char *ps = argc == 8 ? argv[7] : "f32";
    const mer_precision prec = !strcmp(ps, "bf16") ? MER_PRECISION_BF16 : !strcmp(ps, "int8") ? MER_PRECISION_INT8 : MER_PRECISION_F32;
    if (want < 1 || B < 1 || rounds < 1) return 2;
    mer_set_threads(threads);
    mer_speech_model *m = NULL;
    mer_speech_state *st = NULL;
    if (mer_speech_model_load(&m, argv[1], NULL) || mer_speech_state_init(&st, m, NULL) || mer_speech_state_set_precision(st, prec)) {
        fprintf(stderr, "batch_bench: %s\n", mer_last_error());
        return 1;
    }
    mer_speech_info info;
    mer_speech_model_info(m, &info);
    /* the first N_CLIPS .wav files of WAV_DIR in name order */
    DIR *d = opendir(argv[2]);
    if (!d) {
        fprintf(stderr, "batch_bench: %s: cannot open\n", argv[2]);
        return 1;
    }
    char **names = NULL;
    int nn = 0, cap = 0;
    for (struct dirent *e; (e = readdir(d));) {
        size_t l = strlen(e->d_name);
        if (l < 6 || (strcmp(e->d_name + l - 4, ".wav") && strcmp(e->d_name + l - 5, ".flac"))) continue;
        if (nn == cap) names = realloc(names, sizeof *names * (size_t)(cap = cap ? 2 * cap : 256));
        names[nn++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(names, (size_t)nn, sizeof *names, cmp_str);
    const int N = nn < want ? nn : want;
    float **x = calloc((size_t)N, sizeof *x), **o1 = calloc((size_t)N, sizeof *o1), **o2 = calloc((size_t)N, sizeof *o2);
    int64_t *len = calloc((size_t)N, sizeof *len);
    double secs = 0;
    const int32_t lf = info.n_layers - 3, ll = info.n_layers;
    for (int i = 0; i < N; i++) {
        char p[4096];
        snprintf(p, sizeof p, "%s/%s", argv[2], names[i]);
        if (mer_media_decode_audio(p, info.sample_rate, &x[i], &len[i])) {
            fprintf(stderr, "batch_bench: %s\n", mer_last_error());
            return 1;
        }
        mer_speech_normalize(x[i], len[i]);
        secs += (double)len[i] / info.sample_rate;
        size_t sz = (size_t)(4 * mer_speech_frames(m, len[i]) * info.hidden_size);
        o1[i] = malloc(sz * sizeof(float));
        o2[i] = malloc(sz * sizeof(float));
    }
    /* batches of similar length: clips sorted by length, cut into groups of B */
    int *order = malloc(sizeof(int) * (size_t)N);
    for (int i = 0; i < N; i++) order[i] = i;
    g_len = len;
    qsort(order, (size_t)N, sizeof *order, cmp_len);
    const float **bx = malloc(sizeof *bx * (size_t)B);
    int64_t *bn = malloc(sizeof *bn * (size_t)B);
    float **bo = malloc(sizeof *bo * (size_t)B);
    double best1 = 1e30, best2 = 1e30;
    for (int r = 0; r < rounds; r++) {
        double t0 = now_s();
        for (int i = 0; i < N; i++)
            if (mer_speech_encode(st, x[i], len[i], lf, ll, o1[i])) {
                fprintf(stderr, "batch_bench: %s: %s\n", names[i], mer_last_error());
                return 1;
            }
        double t1 = now_s();
        for (int g = 0; g < N; g += B) {
            int nb = N - g < B ? N - g : B;
            for (int j = 0; j < nb; j++) {
                int i = order[g + j];
                bx[j] = x[i], bn[j] = len[i], bo[j] = o2[i];
            }
            if (mer_speech_encode_batch(st, nb, bx, bn, lf, ll, bo)) {
                fprintf(stderr, "batch_bench: batch at %d: %s\n", g, mer_last_error());
                return 1;
            }
        }
        double t2 = now_s();
        best1 = fmin(best1, t1 - t0);
        best2 = fmin(best2, t2 - t1);
        printf("round %d: one at a time %.2f s, batches of %d %.2f s\n", r + 1, t1 - t0, B, t2 - t1);
    }
    double md = 0, mr = 0;
    for (int i = 0; i < N; i++) {
        size_t sz = (size_t)(4 * mer_speech_frames(m, len[i]) * info.hidden_size);
        for (size_t k = 0; k < sz; k++) {
            md = fmax(md, fabs((double)o1[i][k] - o2[i][k]));
            mr = fmax(mr, fabs((double)o1[i][k]));
        }
    }
    printf("%d clips (%.1f s of audio), %s, %d threads: one at a time %.2f clips/s, batches of %d %.2f clips/s"
           " (%.2fx); max|diff| %.3g of max|out| %.3g\n",
           N, secs, ps, threads, N / best1, B, N / best2, best1 / best2, md, mr);
    printf("RESULT single_cps %.3f\nRESULT batch_cps %.3f\n", N / best1, N / best2);
    mer_speech_state_free(st);
    mer_speech_model_free(m);
    return 0;
}
