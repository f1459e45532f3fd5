/*
 * clip_bench.c -- mer's side of bench/speed.sh for the CLIP vision tower: time mer_clip_forward
 * (get_image_features) on a batch of preprocessed images read as raw float32 (n, 3, S, S), print
 * the best and median of REPS runs after one warm-up, the products' FLOP per forward and the
 * rate as a % of the fp32 FMA peak measured now.
 *
 * usage: clip_bench MODEL_DIR PIXELS.f32 THREADS REPS f32|bf16|int8
 */
#include "mer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* CPU seconds of the whole process (every thread): on a shared machine, with
 * OMP_WAIT_POLICY=PASSIVE, a measure of the work that the load does not inflate as it does
 * the wall time */
static double cpu_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    if (argc != 6) {
        fprintf(stderr, "usage: clip_bench MODEL_DIR PIXELS.f32 THREADS REPS f32|bf16|int8\n");
        return 2;
    }
    const char *ps = argv[5];
    const mer_precision prec = !strcmp(ps, "bf16")   ? MER_PRECISION_BF16
                               : !strcmp(ps, "int8") ? MER_PRECISION_INT8
                                                     : MER_PRECISION_F32;
    const int threads = atoi(argv[3]), reps = atoi(argv[4]) > 0 ? atoi(argv[4]) : 1;
    mer_set_threads(threads);
    mer_clip_model *m = NULL;
    mer_clip_state *st = NULL;
    if (mer_clip_model_load(&m, argv[1], NULL) || mer_clip_state_init(&st, m, NULL) ||
        mer_clip_state_set_precision(st, prec)) {
        fprintf(stderr, "clip_bench: %s\n", mer_last_error());
        return 1;
    }
    mer_clip_info in;
    mer_clip_model_info(m, &in);
    const long per = 3L * in.image_size * in.image_size;
    FILE *f = fopen(argv[2], "rb");
    if (!f) {
        fprintf(stderr, "clip_bench: %s: cannot open\n", argv[2]);
        return 1;
    }
    fseek(f, 0, SEEK_END);
    const long bytes = ftell(f);
    fseek(f, 0, SEEK_SET);
    const int n = (int)(bytes / (long)sizeof(float) / per);
    if (n < 1 || bytes != n * per * (long)sizeof(float)) {
        fprintf(stderr, "clip_bench: %s: %ld bytes is not a whole number of %dx%d images\n", argv[2], bytes,
                in.image_size, in.image_size);
        return 1;
    }
    float *px = malloc((size_t)bytes), *out = malloc(sizeof(float) * (size_t)n * (size_t)in.projection_dim);
    double *times = calloc((size_t)reps, sizeof(double));
    if (!px || !out || !times || fread(px, 1, (size_t)bytes, f) != (size_t)bytes) {
        fprintf(stderr, "clip_bench: %s: read failed\n", argv[2]);
        return 1;
    }
    fclose(f);
    if (mer_clip_forward(st, px, n, MER_CLIP_EMBEDS, out)) { /* warm-up (and the lazy weight copies) */
        fprintf(stderr, "clip_bench: %s\n", mer_last_error());
        return 1;
    }
    double best_cpu = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = now_s(), c0 = cpu_s();
        if (mer_clip_forward(st, px, n, MER_CLIP_EMBEDS, out)) {
            fprintf(stderr, "clip_bench: %s\n", mer_last_error());
            return 1;
        }
        times[r] = now_s() - t0;
        if (cpu_s() - c0 < best_cpu) best_cpu = cpu_s() - c0;
    }
    qsort(times, (size_t)reps, sizeof *times, cmp_d);
    /* products per forward: patch embedding, per layer q/k/v/o + the MLP + scores and values,
     * the projection */
    const double T = in.tokens, D = in.hidden_size, I = in.intermediate_size, P = in.patch_size;
    const double flop = n * (2.0 * (T - 1) * D * 3 * P * P +
                             in.n_layers * (2.0 * T * D * (4 * D + 2 * I) + 4.0 * T * T * D) +
                             2.0 * D * in.projection_dim);
    double peak = 0;
    if (mer_peak_measure(MER_PEAK_FP32, threads, 0.3, &peak) != MER_OK) peak = 0;
    printf("mer %s clip %d images %dx%d, %d threads: best %.3f s, median %.3f s (%.0f GFLOP, %.0f GFLOPS"
           " = %.0f%% of the fp32 FMA peak %.0f GFLOPS measured now)\n",
           ps, n, in.image_size, in.image_size, threads, times[0], times[reps / 2], flop / 1e9,
           flop / times[0] / 1e9, peak > 0 ? 100.0 * flop / times[0] / 1e9 / peak : 0, peak);
    printf("  least CPU time of a forward (all threads): %.3f s\n", best_cpu);
    printf("RESULT flop %.0f\nRESULT s %.4f\n", flop, times[0]);
    /* CLIP_DUMP=FILE: the embeddings (n x projection_dim float32), for the accuracy comparison
     * of bench/speed_peer.py peer_accuracy */
    const char *dump = getenv("CLIP_DUMP");
    if (dump && *dump) {
        FILE *o = fopen(dump, "wb");
        if (!o || fwrite(out, sizeof(float), (size_t)n * (size_t)in.projection_dim, o) != (size_t)n * (size_t)in.projection_dim ||
            fclose(o)) {
            fprintf(stderr, "clip_bench: %s: cannot write\n", dump);
            return 1;
        }
    }
    free(px), free(out), free(times);
    mer_clip_state_free(st);
    mer_clip_model_free(m);
    return 0;
}
