/*
 * linear_micro.c -- where the fp32 linear layers' time goes: one product y = x W^T per shape
 * (HuBERT-large 10 s: 499 rows; CLIP-L/14 batch 8: 2056 rows), mer's packed fp32 product against
 * oneDNN sgemm and OpenBLAS in the same run, and the 6 x 16 register tile alone on data in L1
 * (the best the tile can do). Rates are GFLOPS of CPU time (all threads; waits are passive when
 * OMP_WAIT_POLICY=PASSIVE) and of wall time, with % of the fp32 FMA peak measured in this run;
 * each figure is the minimum over ROUNDS interleaved rounds. "GFLOPS/c" is per core of CPU time,
 * so "%peak" is against the one-core peak at any thread count.
 *
 *   bash bench/linear_micro.sh [threads] [rounds]       (builds it, runs with passive waits)
 *   ENGINES=<mask> (1 packed, 2 packed ldy+16, 4 oneDNN, 8 OpenBLAS), COLD=1 (weights from memory),
 *   SHAPE=<i> (only the i-th shape of the table below)
 */
#include "mer.h"
#include "kernels/kernels.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(clockid_t c) {
    struct timespec ts;
    clock_gettime(c, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static const int64_t shapes[][3] = {
    /* M, N (out), K (in) */
    {499, 3072, 1024}, {499, 1024, 1024}, {499, 4096, 1024}, {499, 1024, 4096},
    {2056, 3072, 1024}, {2056, 1024, 1024}, {2056, 4096, 1024}, {2056, 1024, 4096},
};
#define NSHAPES (int)(sizeof shapes / sizeof shapes[0])

enum { E_PACKED, E_PACKED_PAD, E_DNNL, E_OPENBLAS, E_PACKED_WS, NENG };
/* "packed ldy+16": the same product into rows 16 floats longer than n (y's rows 4 KB apart
 * share L1 sets and 4K-alias loads with stores; a padded stride shows what that costs) */
static const char *names[NENG] = {"packed", "packed ldy+16", "oneDNN sgemm", "OpenBLAS", "packed, kept ws"};
static void *ws; /* E_PACKED_WS: the scratch kept across calls (mer__packed_linear_ws) */

typedef struct {
    double cpu, wall;
} best;

static void run(int e, int64_t M, int64_t N, int64_t K, const float *X, const float *W, float *Y,
                const mer_packed *P) {
    switch (e) {
    case E_PACKED: mer_packed_linear(Y, N, X, K, M, P, 0, MER_EPI_NONE); break;
    case E_PACKED_WS: mer__packed_linear_ws(Y, N, X, K, M, P, 0, MER_EPI_NONE, ws); break;
    case E_PACKED_PAD: mer_packed_linear(Y, N + 16, X, K, M, P, 0, MER_EPI_NONE); break;
    case E_DNNL:
        mer_gemm_set_backend(MER_GEMM_DNNL);
        mer_sgemm(0, 1, M, N, K, 1.0f, X, K, W, K, 0.0f, Y, N);
        break;
    case E_OPENBLAS:
        mer_gemm_set_backend(MER_GEMM_OPENBLAS);
        mer_sgemm(0, 1, M, N, K, 1.0f, X, K, W, K, 0.0f, Y, N);
        break;
    }
}

/* the register tile alone: kc = 256 over one 16 KB panel and a 6 KB activation tile, in L1 */
static double tile_hot(double seconds) {
    float *a = aligned_alloc(64, 256 * 6 * 4), *b = aligned_alloc(64, 256 * 16 * 4), c[6 * 16];
    for (int i = 0; i < 256 * 6; i++) a[i] = 1e-3f * (float)(i % 7);
    for (int i = 0; i < 256 * 16; i++) b[i] = 1e-3f * (float)(i % 5);
    memset(c, 0, sizeof c);
    double bestr = 0;
    for (int round = 0; round < 5; round++) {
        long calls = 0;
        double t0 = now(CLOCK_THREAD_CPUTIME_ID), t;
        do {
            for (int q = 0; q < 1000; q++) mer__tile6x16_avx2(256, a, 256, b, c, 16, 1);
            calls += 1000;
        } while ((t = now(CLOCK_THREAD_CPUTIME_ID) - t0) < seconds / 5);
        double r = 2.0 * 6 * 16 * 256 * (double)calls / t * 1e-9;
        if (r > bestr) bestr = r;
    }
    volatile float sink = c[5];
    (void)sink;
    free(a);
    free(b);
    return bestr;
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 2, rounds = argc > 2 ? atoi(argv[2]) : 5;
    /* ENGINES: a bit mask of the engines to run (1 packed, 2 packed ldy+16, 4 oneDNN, 8 OpenBLAS) */
    const char *em = getenv("ENGINES");
    int mask = em ? atoi(em) : (1 << NENG) - 1;
    /* COLD=1: 64 MB written before each timed call, so the weights come from memory as in a
     * forward (each layer's weights are read once per row block, never twice in a row) */
    const char *cs = getenv("COLD");
    const int cold = cs && atoi(cs);
    char *flush = cold ? malloc(64 << 20) : NULL;
    mer_set_threads(threads);
    double peak1 = 0, peak = 0; /* the best of 3 tries: a loaded machine only lowers them */
    for (int i = 0; i < 3; i++) {
        double p1 = 0, pn = 0;
        mer_peak_measure(MER_PEAK_FP32, 1, 0.2, &p1);
        mer_peak_measure(MER_PEAK_FP32, threads, 0.2, &pn);
        peak1 = p1 > peak1 ? p1 : peak1;
        peak = pn > peak ? pn : peak;
    }
    double tile = tile_hot(0.5);
    printf("threads %d, rounds %d: fp32 FMA peak %.1f GFLOPS (1 core %.1f); 6x16 tile in L1 (1 core) "
           "%.1f GFLOPS = %.0f%% of the 1-core peak\n",
           threads, rounds, peak, peak1, tile, 100 * tile / peak1);
    printf("%-16s %-14s %9s %9s %7s %9s\n", "M x N x K", "engine", "cpu ms", "GFLOPS/c", "%peak", "wall ms");
    const char *ss = getenv("SHAPE"); /* SHAPE=i: only the i-th shape (for perf) */
    for (int s = 0; s < NSHAPES; s++) {
        if (ss && atoi(ss) != s) continue;
        int64_t M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
        float *X = malloc((size_t)(M * K) * 4), *W = malloc((size_t)(N * K) * 4),
              *Y = malloc((size_t)(M * (N + 16)) * 4);
        for (int64_t i = 0; i < M * K; i++) X[i] = (float)((i * 7919) % 1000) * 1e-3f - 0.5f;
        for (int64_t i = 0; i < N * K; i++) W[i] = (float)((i * 104729) % 1000) * 1e-5f - 0.005f;
        mer_packed *P = NULL;
        if (mer_packed_init(&P, W, MER_DTYPE_F32, NULL, N, K, MER_PACK_F32) != MER_OK) return 1;
        ws = aligned_alloc(64, (mer__packed_ws_bytes(P, M) + 63) & ~(size_t)63);
        best b[NENG];
        for (int e = 0; e < NENG; e++) b[e].cpu = b[e].wall = 1e30;
        for (int e = 0; e < NENG; e++)
            if (mask >> e & 1) run(e, M, N, K, X, W, Y, P); /* warm-up */
        for (int r = 0; r < rounds; r++)
            for (int e = 0; e < NENG; e++) {
                if (!(mask >> e & 1)) continue;
                if (flush) memset(flush, r + e, 64 << 20);
                double c0 = now(CLOCK_PROCESS_CPUTIME_ID), w0 = now(CLOCK_MONOTONIC);
                run(e, M, N, K, X, W, Y, P);
                double c = now(CLOCK_PROCESS_CPUTIME_ID) - c0, w = now(CLOCK_MONOTONIC) - w0;
                if (c < b[e].cpu) b[e].cpu = c;
                if (w < b[e].wall) b[e].wall = w;
            }
        double flop = 2.0 * (double)(M * N * K);
        for (int e = 0; e < NENG; e++) {
            if (!(mask >> e & 1)) continue;
            double g = flop / b[e].cpu * 1e-9; /* per core of CPU time: compare with the 1-core peak */
            printf("%4lldx%4lldx%4lld  %-14s %9.2f %9.1f %6.0f%% %9.2f\n", (long long)M, (long long)N,
                   (long long)K, names[e], 1e3 * b[e].cpu, g, 100 * g / peak1, 1e3 * b[e].wall);
        }
        mer_packed_free(P);
        free(ws);
        free(X);
        free(W);
        free(Y);
    }
    mer_gemm_set_backend(MER_GEMM_DEFAULT);
    free(flush);
    return 0;
}
