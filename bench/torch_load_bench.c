/*
 * torch_load_bench.c -- load time of a checkpoint through mer_safetensors_open (PyTorch .bin or
 * safetensors): open only (the mapping is lazy), open + read every tensor byte (what a forward
 * pass ends up touching; comparable to torch.load, which reads everything), and the speech
 * loader mer_speech_model_load. Minimum of REPS runs, page cache warm.
 *   torch_load_bench DIR REPS  ->  "open_s touch_s speech_load_s n_tensors bytes"
 */
#include "mer.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: torch_load_bench DIR REPS\n");
        return 2;
    }
    int reps = atoi(argv[2]);
    double best_open = 1e9, best_touch = 1e9, best_speech = 1e9;
    int64_t n = 0, bytes = 0;
    volatile uint64_t sink = 0;
    for (int r = 0; r < reps; r++) {
        double t0 = now();
        mer_safetensors *st = NULL;
        if (mer_safetensors_open(&st, argv[1]) != MER_OK) {
            fprintf(stderr, "%s\n", mer_last_error());
            return 1;
        }
        double t1 = now();
        n = mer_safetensors_count(st);
        bytes = 0;
        uint64_t acc = 0;
        for (int64_t i = 0; i < n; i++) {
            mer_safetensors_entry e;
            mer_safetensors_entry_at(st, i, &e);
            const uint64_t *p = e.data;
            for (size_t k = 0; k < e.nbytes / 8; k += 8) acc += p[k]; /* one word per cache line */
            bytes += (int64_t)e.nbytes;
        }
        sink += acc;
        double t2 = now();
        mer_safetensors_free(st);
        if (t1 - t0 < best_open) best_open = t1 - t0;
        if (t2 - t0 < best_touch) best_touch = t2 - t0;
        mer_speech_model *m = NULL;
        double t3 = now();
        if (mer_speech_model_load(&m, argv[1], NULL) != MER_OK) {
            fprintf(stderr, "%s\n", mer_last_error());
            return 1;
        }
        double t4 = now();
        mer_speech_model_free(m);
        if (t4 - t3 < best_speech) best_speech = t4 - t3;
    }
    printf("%.4f %.4f %.4f %lld %lld\n", best_open, best_touch, best_speech, (long long)n, (long long)bytes);
    return 0;
}
