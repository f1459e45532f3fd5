/*
 * tokenizer_bench.c -- lines per second of mer_tokenizer_encode (one thread) over the
 * exactness corpus, best of REPS passes. Usage: tokenizer_bench CORPUS.jsonl REPS DIR...
 * Prints "<dir> <lines/s> <ids>" per tokenizer (ids without special tokens); bench/tokenizer.sh puts the peers beside it.
 */
#include "mer.h"

#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: tokenizer_bench CORPUS.jsonl REPS DIR...\n");
        return 2;
    }
    FILE *f = fopen(argv[1], "rb");
    if (!f) {
        perror(argv[1]);
        return 1;
    }
    char **text = NULL;
    size_t n = 0, cap = 0;
    char *line = NULL;
    size_t lcap = 0;
    while (getline(&line, &lcap, f) > 0) {
        cJSON *j = cJSON_Parse(line);
        if (!cJSON_IsString(j)) return 1;
        if (n == cap) {
            cap = cap ? cap * 2 : 1024;
            text = realloc(text, cap * sizeof *text);
        }
        text[n++] = strdup(j->valuestring);
        cJSON_Delete(j);
    }
    free(line);
    fclose(f);
    int reps = atoi(argv[2]);
    for (int a = 3; a < argc; a++) {
        mer_tokenizer *t;
        if (mer_tokenizer_load(&t, argv[a]) != MER_OK) {
            fprintf(stderr, "%s\n", mer_last_error());
            return 1;
        }
        double best = 1e30;
        long long total = 0;
        for (int r = 0; r < reps; r++) {
            total = 0;
            double t0 = now();
            for (size_t i = 0; i < n; i++) {
                int32_t *ids;
                int64_t k;
                if (mer_tokenizer_encode(t, text[i], strlen(text[i]), 0, &ids, &k) != MER_OK) {
                    fprintf(stderr, "%s\n", mer_last_error());
                    return 1;
                }
                total += k;
                free(ids);
            }
            double dt = now() - t0;
            if (dt < best) best = dt;
        }
        printf("%s %.0f %lld\n", argv[a], n / best, total);
        mer_tokenizer_free(t);
    }
    for (size_t i = 0; i < n; i++) free(text[i]);
    free(text);
    return 0;
}
