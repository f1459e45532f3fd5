/*
 * cmd_bench.c -- `mer bench gemm [--threads N] [--reps R]`: GFLOPS per shape and backend;
 * `mer bench peak [--threads N] [--seconds S]`: the arithmetic peak of this machine.
 */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const int64_t shapes[][3] = {
    {500, 1024, 4096}, {500, 4096, 1024}, {1024, 1024, 1024}, {32, 6912, 128},
    {500, 1024, 1024}, {257, 1024, 4096},
};

/* Linear layers y = x W^T of the encoders: the default mer_sgemm on W as stored against the
 * packed weights (fp32, bf16, int8), with % of the fp32 FMA peak measured in this run. */
static const int64_t linear_shapes[][3] = {
    /* M, N (out), K (in): HuBERT-large on 10 s (499 frames), CLIP ViT-L/14 batch 8 (8 x 257),
     * BERT-large on 32 transcripts x 40 tokens (fused q|k|v, intermediate, output) */
    {499, 1024, 1024}, {499, 4096, 1024}, {499, 1024, 4096},
    {2056, 1024, 1024}, {2056, 4096, 1024}, {2056, 1024, 4096},
    {1280, 3072, 1024}, {1280, 4096, 1024}, {1280, 1024, 4096},
};

static double time_best(long reps, mer_status (*fn)(void *), void *u) {
    if (fn(u) != MER_OK) return 0;
    double best = 1e30;
    for (long r = 0; r < reps; r++) {
        double t0 = cli_now();
        fn(u);
        double t = cli_now() - t0;
        if (t < best) best = t;
    }
    return best;
}

typedef struct {
    int64_t M, N, K;
    const float *X, *W;
    float *Y;
    const mer_packed *P;
} lin_args;

static mer_status run_sgemm(void *u) {
    lin_args *a = u;
    mer_sgemm(0, 1, a->M, a->N, a->K, 1.0f, a->X, a->K, a->W, a->K, 0.0f, a->Y, a->N);
    return MER_OK;
}

static mer_status run_packed(void *u) {
    lin_args *a = u;
    return mer_packed_linear(a->Y, a->N, a->X, a->K, a->M, a->P, 0, MER_EPI_NONE);
}

static int bench_packed(long reps) {
    double peak = 0, peak8 = 0;
    if (mer_peak_measure(MER_PEAK_FP32, 0, 0.3, &peak) != MER_OK) peak = 0;
    /* the int8 kernel against the int8 dot product this CPU has (vpdpbusd, else vpmaddubsw) */
    if (mer_peak_measure(MER_PEAK_INT8, 0, 0.3, &peak8) != MER_OK &&
        mer_peak_measure(MER_PEAK_INT8_AVX2, 0, 0.3, &peak8) != MER_OK)
        peak8 = 0;
    mer_clear_error();
    printf("\nlinear y = x W^T, GFLOPS (%% of the fp32 FMA peak %.0f GFLOPS measured now, cpu %s;\n"
           "int8 also as %% of the int8 peak %.0f GOPS)\n",
           peak, mer_cpu_features_str(), peak8);
    printf("%-18s %14s %14s %14s %14s %9s %10s\n", "M x N x K", "sgemm", "packed f32", "packed bf16",
           "packed int8", "int8/sgemm", "int8/peak8");
    for (size_t s = 0; s < sizeof linear_shapes / sizeof *linear_shapes; s++) {
        int64_t M = linear_shapes[s][0], N = linear_shapes[s][1], K = linear_shapes[s][2];
        float *X = malloc(sizeof(float) * M * K), *W = malloc(sizeof(float) * N * K),
              *Y = malloc(sizeof(float) * M * N);
        if (!X || !W || !Y) return cli_fail("bench gemm", "out of memory");
        for (int64_t i = 0; i < M * K; i++) X[i] = (float)((i * 7919) % 1000) / 1000.0f - 0.5f;
        for (int64_t i = 0; i < K * N; i++) W[i] = (float)((i * 104729) % 1000) / 1000.0f - 0.5f;
        lin_args a = {M, N, K, X, W, Y, NULL};
        double fl = 2.0 * M * N * K, g[4] = {0, 0, 0, 0};
        double t = time_best(reps, run_sgemm, &a);
        g[0] = t > 0 ? fl / t / 1e9 : 0;
        for (int ty = 0; ty < 3; ty++) {
            mer_packed *p = NULL;
            if (mer_packed_init(&p, W, MER_DTYPE_F32, NULL, N, K, (mer_pack_type)ty) != MER_OK)
                return cli_fail("bench gemm", "%s", mer_last_error());
            a.P = p;
            t = time_best(reps, run_packed, &a);
            g[1 + ty] = t > 0 ? fl / t / 1e9 : 0;
            mer_packed_free(p);
        }
        char name[64], col[4][32];
        snprintf(name, sizeof name, "%lldx%lldx%lld", (long long)M, (long long)N, (long long)K);
        for (int c = 0; c < 4; c++)
            snprintf(col[c], sizeof col[c], "%.1f (%.0f%%)", g[c], peak > 0 ? 100 * g[c] / peak : 0);
        printf("%-18s %14s %14s %14s %14s %9.2f %9.0f%%\n", name, col[0], col[1], col[2], col[3],
               g[0] > 0 ? g[3] / g[0] : 0, peak8 > 0 ? 100 * g[3] / peak8 : 0);
        free(X); free(W); free(Y);
    }
    return 0;
}

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
    return bench_packed(reps);
}

/* The peak of each kind on one core and on N threads, measured in this run. */
static int bench_peak(int argc, char **argv) {
    long threads = 0;
    double seconds = 0.3;
    for (int i = 1; i < argc; i++) {
        const char *v;
        if (cli_opt(argc, argv, &i, "--threads", &v)) {
            if (!v || !cli_parse_int(v, 0, 256, &threads)) return cli_usage("bench peak", "--threads takes a count");
        } else if (cli_opt(argc, argv, &i, "--seconds", &v)) {
            char *end;
            seconds = v ? strtod(v, &end) : 0;
            if (!v || *end || !(seconds > 0.001 && seconds <= 60))
                return cli_usage("bench peak", "--seconds takes a duration in (0.001, 60]");
        } else if (cli_flag(argv[i], "--help")) {
            printf("usage: mer bench peak [--threads N] [--seconds S]\n"
                   "GOPS (a multiply-add counts 2) of register-only loops: fp32 FMA, bf16\n"
                   "vdpbf16ps, int8 vpdpbusd and the AVX2 integer dot products, on one core and on\n"
                   "N threads at once (default: online CPUs); kinds this CPU lacks say so. Each\n"
                   "figure is the best of 3 rounds within S seconds (default 0.3).\n");
            return 0;
        } else {
            return cli_usage("bench peak", "unknown argument %s", argv[i]);
        }
    }
    cli_set_threads(threads);
    int n = mer_get_threads();
    printf("cpu %s, threads %d\n", mer_cpu_features_str(), n);
    printf("%-24s %12s %12s %8s\n", "kind", "GOPS 1 core", "GOPS n thr", "scaling");
    for (int k = 0; k < MER_PEAK_KINDS; k++) {
        double g1 = 0, gn = 0;
        mer_status s = mer_peak_measure((mer_peak_kind)k, 1, seconds, &g1);
        if (s == MER_OK) s = mer_peak_measure((mer_peak_kind)k, n, seconds, &gn);
        if (s == MER_ERR_UNSUPPORTED) {
            printf("%-24s %12s %12s %8s\n", mer_peak_name((mer_peak_kind)k), "-", "-", "-");
            continue;
        }
        if (s != MER_OK) return cli_fail("bench peak", "%s", mer_last_error());
        printf("%-24s %12.1f %12.1f %8.2f\n", mer_peak_name((mer_peak_kind)k), g1, gn, g1 > 0 ? gn / g1 : 0);
    }
    return 0;
}

int cmd_bench(int argc, char **argv) {
    if (argc < 2 || cli_flag(argv[1], "--help")) {
        printf("usage: mer bench gemm [--threads N] [--reps R]\n"
               "       mer bench peak [--threads N] [--seconds S]\n");
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "gemm")) return bench_gemm(argc - 1, argv + 1);
    if (!strcmp(argv[1], "peak")) return bench_peak(argc - 1, argv + 1);
    return cli_usage("bench", "unknown benchmark '%s'", argv[1]);
}
