/*
 * text_bench.c -- driver of the text-encoder parity check (tests/parity/text_parity.py) and
 * benchmark (bench/text.sh): token ids in, hidden states / MERTools features / timings out.
 *
 *   text_bench hidden MODEL_DIR IDS.npy MASK.npy PRECISION OUT.npy FEAT.npy
 *       all hidden states (L + 1, B, T, D) of the batch at PRECISION (f32|bf16|int8) into OUT.npy
 *       and the MERTools feature of row 0 (sum of the last 4 states, mean over all its tokens)
 *       into FEAT.npy
 *   text_bench time MODEL_DIR B T PRECISION THREADS REPS
 *       best-of-REPS wall time of one forward over B sequences of T random ids (last state only);
 *       prints "RESULT <seconds> <tokens/s> <peak RSS MB>"
 */
#include "mer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static mer_precision parse_prec(const char *s) {
    if (!strcmp(s, "bf16")) return MER_PRECISION_BF16;
    if (!strcmp(s, "int8")) return MER_PRECISION_INT8;
    return MER_PRECISION_F32;
}

static int fail(const char *what) {
    fprintf(stderr, "text_bench: %s: %s\n", what, mer_last_error());
    return 1;
}

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    mer_text_model *m = NULL;
    mer_text_state *s = NULL;
    if (!strcmp(argv[1], "hidden") && argc == 8) {
        if (mer_text_model_load(&m, argv[2], NULL)) return fail(argv[2]);
        mer_text_info info;
        mer_text_model_info(m, &info);
        float *idf = NULL, *mkf = NULL;
        int32_t nd;
        int64_t sh[MER_MAX_DIMS], shm[MER_MAX_DIMS];
        if (mer_npy_read(argv[3], &idf, &nd, sh) || mer_npy_read(argv[4], &mkf, &nd, shm)) return fail("ids");
        const int32_t B = (int32_t)sh[0], T = (int32_t)sh[1];
        int32_t *ids = malloc(sizeof(int32_t) * B * T);
        uint8_t *mask = malloc((size_t)B * T);
        for (int64_t i = 0; i < (int64_t)B * T; i++) {
            ids[i] = (int32_t)idf[i];
            mask[i] = mkf[i] != 0;
        }
        mer_text_state_params sp = mer_text_state_default_params();
        sp.precision = parse_prec(argv[5]);
        if (mer_text_state_init(&s, m, &sp)) return fail("state");
        const int64_t K = info.n_layers + 1, D = info.hidden_size, per = (int64_t)B * T * D;
        float *out = malloc(sizeof(float) * K * per);
        double t0 = now();
        if (mer_text_encode(s, ids, mask, B, T, 0, info.n_layers, out)) return fail("encode");
        fprintf(stderr, "text_bench: %s %s: %.2f s\n", argv[2], argv[5], now() - t0);
        int64_t shape[4] = {K, B, T, D};
        if (mer_npy_write(argv[6], out, 4, shape)) return fail(argv[6]);
        float *feat = calloc((size_t)D, sizeof(float));
        int64_t k0 = K >= 4 ? K - 4 : 0, nreal = 0;
        for (int64_t t = 0; t < T; t++) {
            if (!mask[t]) continue;
            nreal++;
            for (int64_t d = 0; d < D; d++) {
                float acc = 0;
                for (int64_t k = k0; k < K; k++) acc += out[k * per + t * D + d];
                feat[d] += acc;
            }
        }
        for (int64_t d = 0; d < D; d++) feat[d] /= (float)nreal;
        if (mer_npy_write(argv[7], feat, 1, &D)) return fail(argv[7]);
        free(feat);
        free(out);
        free(ids);
        free(mask);
        free(idf);
        free(mkf);
    } else if (!strcmp(argv[1], "time") && argc == 8) {
        const int32_t B = atoi(argv[3]), T = atoi(argv[4]), reps = atoi(argv[7]);
        mer_set_threads(atoi(argv[6]));
        if (mer_text_model_load(&m, argv[2], NULL)) return fail(argv[2]);
        mer_text_info info;
        mer_text_model_info(m, &info);
        mer_text_state_params sp = mer_text_state_default_params();
        sp.precision = parse_prec(argv[5]);
        if (mer_text_state_init(&s, m, &sp)) return fail("state");
        int32_t *ids = malloc(sizeof(int32_t) * B * T);
        uint64_t r = 88172645463325252ull;
        for (int64_t i = 0; i < (int64_t)B * T; i++) {
            r ^= r << 13, r ^= r >> 7, r ^= r << 17;
            ids[i] = (int32_t)(r % (uint64_t)info.vocab_size);
        }
        float *out = malloc(sizeof(float) * (size_t)B * T * info.hidden_size);
        double best = 1e30;
        for (int i = 0; i < reps; i++) {
            double t0 = now();
            if (mer_text_encode(s, ids, NULL, B, T, info.n_layers, info.n_layers, out)) return fail("encode");
            double dt = now() - t0;
            if (dt < best) best = dt;
        }
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        printf("RESULT %.4f %.2f %.0f\n", best, (double)B * T / best, ru.ru_maxrss / 1024.0);
        free(ids);
        free(out);
    } else {
        fprintf(stderr, "usage: see the comment at the top of bench/text_bench.c\n");
        return 2;
    }
    mer_text_state_free(s);
    mer_text_model_free(m);
    return 0;
}
