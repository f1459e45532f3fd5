/*
 * cmd_bench.c -- `mer bench gemm [--threads N] [--reps R]`: GFLOPS per shape and backend.
 */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const int64_t shapes[][3] = {
    {500, 1024, 4096}, {500, 4096, 1024}, {1024, 1024, 1024}, {32, 6912, 128},
    {500, 1024, 1024}, {257, 1024, 4096},
};

static int bench_gemm(int argc, char **argv) {
    long threads = 0, reps = 5;
    for (int i = 1; i < argc; i++) {
        const char *v;
        if (cli_opt(argc, argv, &i, "--threads", &v)) {
            if (!v || !cli_parse_int(v, 0, 256, &threads)) return cli_usage("bench gemm", "--threads takes a count");
        } else if (cli_opt(argc, argv, &i, "--reps", &v)) {
            if (!v || !cli_parse_int(v, 1, 1000, &reps)) return cli_usage("bench gemm", "--reps takes a count");
        } else if (cli_flag(argv[i], "--help")) {
            printf("usage: mer bench gemm [--threads N] [--reps R]\n"
                   "GFLOPS of C(M,N) = A(M,K) B(K,N) for each shape and compiled-in backend, the ratio\n"
                   "of the default backend to the best one, and the opt-in bf16 path; the\n"
                   "best of R repetitions after one warm-up.\n");
            return 0;
        } else {
            return cli_usage("bench gemm", "unknown argument %s", argv[i]);
        }
    }
    cli_set_threads(threads);
    mer_gemm_backend saved = mer_gemm_get_backend();
    mer_gemm_backend backends[] = {MER_GEMM_OPENBLAS, MER_GEMM_DNNL};
    printf("threads %d, default backend %s\n", mer_get_threads(), mer_gemm_backend_name(saved));
    printf("%-18s %10s %10s %12s %10s\n", "M x N x K", "openblas", "onednn", "default/best",
           "bf16");
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
        int64_t M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
        float *A = malloc(sizeof(float) * M * K), *B = malloc(sizeof(float) * K * N),
              *C = malloc(sizeof(float) * M * N);
        if (!A || !B || !C) return cli_fail("bench gemm", "out of memory");
        for (int64_t i = 0; i < M * K; i++) A[i] = (float)((i * 7919) % 1000) / 1000.0f - 0.5f;
        for (int64_t i = 0; i < K * N; i++) B[i] = (float)((i * 104729) % 1000) / 1000.0f - 0.5f;
        double gf[2] = {0, 0};
        for (int b = 0; b < 2; b++) {
            if (!mer_gemm_backend_available(backends[b])) continue;
            mer_gemm_set_backend(backends[b]);
            mer_sgemm(0, 0, M, N, K, 1.0f, A, K, B, N, 0.0f, C, N);
            double best = 1e30;
            for (long r = 0; r < reps; r++) {
                double t0 = cli_now();
                mer_sgemm(0, 0, M, N, K, 1.0f, A, K, B, N, 0.0f, C, N);
                double t = cli_now() - t0;
                if (t < best) best = t;
            }
            gf[b] = 2.0 * M * N * K / best / 1e9;
        }
        /* the opt-in mixed-precision path, weights pre-rounded as a model would hold them */
        double gbf = 0;
        uint16_t *B16 = malloc(sizeof(uint16_t) * K * N);
        if (B16) {
            mer_f32_to_bf16(B16, B, K * N);
            double bestt = 1e30;
            int ok = mer_sgemm_bf16(0, M, N, K, A, K, B16, N, 0, C, N) == MER_OK;
            for (long r = 0; ok && r < reps; r++) {
                double t0 = cli_now();
                mer_sgemm_bf16(0, M, N, K, A, K, B16, N, 0, C, N);
                double t = cli_now() - t0;
                if (t < bestt) bestt = t;
            }
            if (ok) gbf = 2.0 * M * N * K / bestt / 1e9;
            free(B16);
        }
        double best = gf[0] > gf[1] ? gf[0] : gf[1];
        double def = saved == MER_GEMM_OPENBLAS ? gf[0] : gf[1];
        char name[64];
        snprintf(name, sizeof name, "%lldx%lldx%lld", (long long)M, (long long)N, (long long)K);
        printf("%-18s %10.1f %10.1f %12.2f %10.1f\n", name, gf[0], gf[1], best > 0 ? def / best : 0,
               gbf);
        free(A); free(B); free(C);
    }
    mer_gemm_set_backend(saved);
    return 0;
}

int cmd_bench(int argc, char **argv) {
    if (argc < 2 || cli_flag(argv[1], "--help")) {
        printf("usage: mer bench gemm [--threads N] [--reps R]\n");
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "gemm")) return bench_gemm(argc - 1, argv + 1);
    return cli_usage("bench", "unknown benchmark '%s'", argv[1]);
}
