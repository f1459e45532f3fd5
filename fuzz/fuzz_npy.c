/*
 * fuzz_npy.c -- libFuzzer target for the .npy reader (preamble, header dict, payload size).
 */
#include "io/io_internal.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    mer__npy_header h;
    (void)mer__npy_parse_header(data, size, "fuzz.npy", &h);
    float *x = NULL;
    int32_t nd;
    int64_t shape[MER_MAX_DIMS];
    if (mer_npy_parse(data, size, "fuzz.npy", &x, &nd, shape) == MER_OK) {
        int64_t n = 1;
        for (int32_t i = 0; i < nd; i++) n *= shape[i];
        volatile float s = 0;
        for (int64_t i = 0; i < n; i++) s += x[i];
        (void)s;
        free(x);
    } else if (x) {
        __builtin_trap(); /* a failed parse must not hand out memory */
    }
    return 0;
}
