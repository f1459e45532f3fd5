/*
 * example.c -- a program built against an installed mer (pkg-config mer) by
 * scripts/test-install.sh and run outside the repository: the bundled face models are found
 * in the install's share/mer (not the working directory), loaded, and a checkpoint given on
 * the command line is opened (PyTorch .bin or safetensors).
 */
#include <mer.h>

#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    char *dir = NULL;
    if (mer_data_path("models/face-api", &dir) != MER_OK) {
        fprintf(stderr, "example: %s\n", mer_last_error());
        return 1;
    }
    printf("face models: %s\n", dir);
    free(dir);
    mer_faces *faces = NULL;
    if (mer_faces_load(&faces, NULL, NULL) != MER_OK) {
        fprintf(stderr, "example: %s\n", mer_last_error());
        return 1;
    }
    mer_faces_free(faces);
    for (int i = 1; i < argc; i++) {
        mer_safetensors *st = NULL;
        if (mer_safetensors_open(&st, argv[i]) != MER_OK) {
            fprintf(stderr, "example: %s\n", mer_last_error());
            return 1;
        }
        printf("%s: %s, %lld tensors\n", argv[i], mer_safetensors_format(st), (long long)mer_safetensors_count(st));
        mer_safetensors_free(st);
    }
    printf("mer %s ok\n", MER_VERSION);
    return 0;
}
