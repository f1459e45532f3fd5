/*
 * acoustic_bench.c -- time the acoustic front end on a 2 s clip at 16 kHz: the MFCC (the part
 * torchaudio also computes) and the full frame LLDs + functionals. Usage:
 *   acoustic_bench REPS RAW_OUT     (writes the float32 signal to RAW_OUT for the peer)
 * Prints "mfcc X ms/clip" and "all Y ms/clip".
 */
#include "mer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: acoustic_bench REPS RAW_OUT\n");
        return 2;
    }
    int reps = atoi(argv[1]);
    mer_set_threads(1);
    const int64_t n = 32000;
    float *x = malloc(n * sizeof(float));
    double ph = 0;
    for (int64_t i = 0; i < n; i++) { /* a gliding harmonic complex with a little noise */
        double f0 = 120 + 60.0 * i / n;
        ph += 2 * M_PI * f0 / 16000;
        x[i] = (float)(0.3 * sin(ph) + 0.2 * sin(2 * ph) + 0.1 * sin(3 * ph) + 0.01 * sin(i * 1.7));
    }
    FILE *f = fopen(argv[2], "wb");
    if (!f || fwrite(x, sizeof(float), n, f) != (size_t)n) return 1;
    fclose(f);
    mer_acoustic_params p = mer_acoustic_default_params();
    float *out = NULL, *fu = malloc(mer_acoustic_functional_dim(&p) * sizeof(float));
    int64_t T;
    double best_m = 1e9, best_a = 1e9;
    for (int r = 0; r < reps; r++) {
        double t0 = now();
        if (mer_acoustic_mfcc(x, n, &p, &out, &T)) return 1;
        free(out);
        double t1 = now();
        if (mer_acoustic_functionals(x, n, &p, fu)) return 1;
        double t2 = now();
        if (t1 - t0 < best_m) best_m = t1 - t0;
        if (t2 - t1 < best_a) best_a = t2 - t1;
    }
    printf("mfcc %.3f ms/clip\nall %.3f ms/clip\n", best_m * 1e3, best_a * 1e3);
    free(fu);
    free(x);
    return 0;
}
