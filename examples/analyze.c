/*
 * analyze.c -- the emotion of one clip through the public API alone: what `mer analyze --json`
 * prints, from a program that links libmer (see examples/README.md for how to build it).
 *
 *   analyze CLIP [SPEECH_RUN]      prints the analysis as JSON on stdout
 *
 * Speech uses SPEECH_RUN (a run directory with a feature recipe, e.g. models/emodb-acoustic);
 * without it the library's default. Faces use the face-api weights ($MER_FACE_MODELS or
 * models/face-api). Errors: one line on stderr and exit status 1.
 */
#include "mer.h"

#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: %s CLIP [SPEECH_RUN]\n", argv[0]);
        return 2;
    }
    mer_analyze_params params = mer_analyze_default_params();
    if (argc == 3) params.audio_model = argv[2];

    mer_analysis *a = NULL;
    mer_status s = mer_analyze(argv[1], &params, &a);
    if (s != MER_OK) {
        fprintf(stderr, "analyze: %s\n", mer_last_error());
        return 1;
    }
    /* the result struct is plain data: the verdict is one argmax away */
    if (a->has_fused) {
        int32_t k = mer_probs_argmax(a->fused, MER_SHARED_CLASSES);
        fprintf(stderr, "%s: %s (%.2f)\n", argv[1], mer_shared_class_name(k), (double)a->fused[k]);
    }
    char *json = NULL;
    s = mer_analysis_to_json(a, &json);
    mer_analysis_free(a);
    if (s != MER_OK) {
        fprintf(stderr, "analyze: %s\n", mer_last_error());
        return 1;
    }
    fputs(json, stdout);
    free(json);
    return fflush(stdout) == 0 ? 0 : 1;
}
