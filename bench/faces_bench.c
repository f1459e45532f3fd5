/*
 * faces_bench.c -- the mer side of bench/faces.sh: milliseconds per frame of face detection plus
 * expression recognition (mer_faces_detect) on one image, at a given thread count, best of
 * several rounds after a warm-up. Optionally dumps the decoded RGB for the Node peer so both
 * sides see the same pixels.
 *   faces_bench IMAGE REPS THREADS [RAW_OUT]
 */
#include "mer.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: faces_bench IMAGE REPS THREADS [RAW_OUT]\n");
        return 2;
    }
    int reps = atoi(argv[2]);
    mer_set_threads(atoi(argv[3]));
    mer_image img = {0};
    mer_faces *m = NULL;
    if (mer_image_load(argv[1], &img) != MER_OK || mer_faces_load(&m, NULL, NULL) != MER_OK) {
        fprintf(stderr, "faces_bench: %s\n", mer_last_error());
        return 1;
    }
    if (argc > 4) {
        FILE *f = fopen(argv[4], "wb");
        if (!f || fwrite(img.rgb, 3, (size_t)img.width * img.height, f) != (size_t)img.width * img.height) {
            fprintf(stderr, "faces_bench: cannot write %s\n", argv[4]);
            return 1;
        }
        fclose(f);
    }
    mer_faces_state *st = NULL;
    mer_faces_state_init(&st, NULL);
    mer_face *faces = NULL;
    int32_t n = 0;
    for (int i = 0; i < 2; i++) { /* warm-up: page in weights and scratch */
        mer_faces_detect(m, st, &img, NULL, &faces, &n);
        free(faces);
    }
    double best = 1e30;
    for (int round = 0; round < 3; round++) {
        double t0 = now();
        for (int i = 0; i < reps; i++) {
            if (mer_faces_detect(m, st, &img, NULL, &faces, &n) != MER_OK) {
                fprintf(stderr, "faces_bench: %s\n", mer_last_error());
                return 1;
            }
            free(faces);
        }
        double ms = (now() - t0) * 1e3 / reps;
        best = ms < best ? ms : best;
    }
    printf("%dx%d %d faces %.3f ms/frame\n", img.width, img.height, n, best);
    mer_faces_state_free(st);
    mer_faces_free(m);
    mer_image_free(&img);
    return 0;
}
