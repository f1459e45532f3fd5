/*
 * hubert_bench.c -- driver of bench/hubert.sh: time mer_speech_encode (every hidden state) on a
 * WAV file, print the best and median of REPS runs after one warm-up, where the time went
 * (mer_speech_profile), the GFLOPS of the encoder's matrix products inside the forward, and the
 * GFLOPS mer_sgemm reaches on the same shapes in isolation (same transposes, same threads): the
 * forward's products are mer_packed ones in every precision (fp32 since session 5), so that line
 * compares them with the BLAS. With precision bf16 the forward runs MER_PRECISION_BF16 and the
 * isolated products are mer_sgemm_bf16's.
 *
 * usage: hubert_bench MODEL_DIR WAV THREADS REPS [default|openblas|onednn] [f32|bf16]
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

/* Best-of-5 GFLOPS of C (M, N) = A (M, K) @ op(B) for one shape (bf16: B rounded to bfloat16,
 * mer_sgemm_bf16). */
static double gemm_gflops(int64_t M, int64_t N, int64_t K, int tb, int bf16) {
    float *A = malloc(sizeof(float) * M * K), *B = malloc(sizeof(float) * K * N), *C = malloc(sizeof(float) * M * N);
    if (!A || !B || !C) return 0;
    for (int64_t i = 0; i < M * K; i++) A[i] = (float)((i * 7919) % 1000) / 1000.0f - 0.5f;
    for (int64_t i = 0; i < K * N; i++) B[i] = (float)((i * 104729) % 1000) / 1000.0f - 0.5f;
    uint16_t *B16 = malloc(sizeof(uint16_t) * K * N);
    if (!B16) return 0;
    mer_f32_to_bf16(B16, B, K * N);
    double best = 1e30;
    for (int r = 0; r < 6; r++) { /* the first is a warm-up */
        double t0 = now_s();
        if (bf16) mer_sgemm_bf16(tb, M, N, K, A, K, B16, tb ? K : N, 0, C, N);
        else mer_sgemm(0, tb, M, N, K, 1.0f, A, K, B, tb ? K : N, 0.0f, C, N);
        double t = now_s() - t0;
        if (r) best = t < best ? t : best;
    }
    free(A), free(B), free(C), free(B16);
    return 2.0 * M * N * K / best / 1e9;
}

int main(int argc, char **argv) {
    if (argc < 5 || argc > 7) {
        fprintf(stderr, "usage: hubert_bench MODEL_DIR WAV THREADS REPS [default|openblas|onednn] [f32|bf16|int8]\n");
        return 2;
    }
    const int bf16 = argc == 7 && !strcmp(argv[6], "bf16"), int8 = argc == 7 && !strcmp(argv[6], "int8");
    if (argc >= 6 && strcmp(argv[5], "default") &&
        mer_gemm_set_backend(!strcmp(argv[5], "openblas") ? MER_GEMM_OPENBLAS : MER_GEMM_DNNL)) {
        fprintf(stderr, "hubert_bench: %s\n", mer_last_error());
        return 1;
    }
    const int threads = atoi(argv[3]), reps = atoi(argv[4]);
    mer_set_threads(threads);
    mer_speech_model *m = NULL;
    mer_speech_state *st = NULL;
    if (mer_speech_model_load(&m, argv[1], NULL) || mer_speech_state_init(&st, m, NULL) ||
        mer_speech_state_set_precision(st, bf16   ? MER_PRECISION_BF16
                                           : int8 ? MER_PRECISION_INT8
                                                  : MER_PRECISION_F32)) {
        fprintf(stderr, "hubert_bench: %s\n", mer_last_error());
        return 1;
    }
    mer_speech_info info;
    mer_speech_model_info(m, &info);
    float *x = NULL;
    int64_t n = 0;
    if (mer_media_decode_audio(argv[2], info.sample_rate, &x, &n) || n == 0) {
        fprintf(stderr, "hubert_bench: %s\n", mer_last_error());
        return 1;
    }
    mer_speech_normalize(x, n);
    const int64_t T = mer_speech_frames(m, n), D = info.hidden_size, L = info.n_layers;
    float *out = malloc(sizeof(float) * (size_t)((L + 1) * T * D));
    double *times = calloc((size_t)reps, sizeof(double));
    mer_speech_profile pf, best_pf;
    mer_speech_encode(st, x, n, 0, (int32_t)L, out); /* warm-up: pages of the mapping, JIT */
    double best = 1e30, best_cpu = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = now_s(), c0 = cpu_s();
        if (mer_speech_encode(st, x, n, 0, (int32_t)L, out)) {
            fprintf(stderr, "hubert_bench: %s\n", mer_last_error());
            return 1;
        }
        times[r] = now_s() - t0;
        if (cpu_s() - c0 < best_cpu) best_cpu = cpu_s() - c0;
        mer_speech_state_profile(st, &pf);
        if (times[r] < best) {
            best = times[r];
            best_pf = pf;
        }
    }
    qsort(times, (size_t)reps, sizeof *times, cmp_d);
    const double flop = best_pf.feature_flop + best_pf.linear_flop + best_pf.attention_flop + best_pf.pos_conv_flop;
    double peak = 0;
    if (mer_peak_measure(MER_PEAK_FP32, threads, 0.3, &peak) != MER_OK) peak = 0;
    printf("mer %s (linear layers on mer_packed; mer_sgemm alone: %s): %.2f s audio, %lld frames, %d threads: best %.3f s, median %.3f s (%.0f GFLOP, %.0f GFLOPS overall"
           " = %.0f%% of the fp32 FMA peak %.0f GFLOPS measured now)\n",
           bf16 ? "bf16" : int8 ? "int8" : "fp32", mer_gemm_backend_name(mer_gemm_get_backend()), (double)n / info.sample_rate, (long long)T, threads, best, times[reps / 2], flop / 1e9, flop / best / 1e9,
           peak > 0 ? 100.0 * flop / best / 1e9 / peak : 0, peak);
    printf("  least CPU time of a forward (all threads): %.3f s\n", best_cpu);
    printf("  feature encoder %.3f s (%.0f GFLOPS)  linear %.3f s (%.0f GFLOPS)  attention %.3f s (%.0f GFLOPS)\n"
           "  pos conv %.3f s (%.0f GFLOPS)  other %.3f s\n",
           best_pf.feature_s, best_pf.feature_flop / best_pf.feature_s / 1e9, best_pf.linear_s,
           best_pf.linear_flop / best_pf.linear_s / 1e9, best_pf.attention_s,
           best_pf.attention_flop / best_pf.attention_s / 1e9, best_pf.pos_conv_s,
           best_pf.pos_conv_flop / best_pf.pos_conv_s / 1e9, best_pf.other_s);
    /* the encoder's linear GEMMs in isolation: (T, D) x (D, D)^T, (T, D) x (I, D)^T, (T, I) x (D, I)^T */
    if (int8) goto done; /* no unpacked int8 GEMM to compare with */
    const int64_t I = info.intermediate_size;
    const double g_dd = gemm_gflops(T, D, D, 1, bf16), g_di = gemm_gflops(T, I, D, 1, bf16),
                 g_id = gemm_gflops(T, D, I, 1, bf16);
    const double w_dd = 4.0 * 2 * T * D * D, w_di = 2.0 * T * D * I, w_id = 2.0 * T * D * I;
    const double iso = (w_dd + w_di + w_id) / (w_dd / g_dd + w_di / g_di + w_id / g_id);
    const double in_model = best_pf.linear_flop / best_pf.linear_s / 1e9;
    printf("  %s alone on the same shapes: %lldx%lldx%lld %.0f, %lldx%lldx%lld %.0f, %lldx%lldx%lld %.0f GFLOPS"
           " -> weighted %.0f GFLOPS; in the forward %.0f GFLOPS = %.0f%%\n",
           bf16 ? "mer_sgemm_bf16" : "mer_sgemm", (long long)T, (long long)D, (long long)D, g_dd, (long long)T, (long long)I, (long long)D, g_di,
           (long long)T, (long long)D, (long long)I, g_id, iso, in_model, 100.0 * in_model / iso);
done:
    printf("RESULT flop %.0f\nRESULT s %.4f\n", flop, best);
    free(out), free(times), free(x);
    mer_speech_state_free(st);
    mer_speech_model_free(m);
    return 0;
}
