/*
 * fuzz_safetensors.c -- libFuzzer target for the safetensors reader: the input is a whole file
 * image (length, header, buffer). Every tensor the reader accepts is then looked up and read
 * through each accessor, so a view that escaped validation shows up under ASan.
 */
#include "io/io_internal.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    mer_safetensors *st = NULL;
    if (mer__safetensors_open_memory(&st, data, size, "fuzz.safetensors") != MER_OK) return 0;
    volatile uint8_t sink = 0;
    for (int64_t i = 0; i < mer_safetensors_count(st); i++) {
        mer_safetensors_entry e;
        if (mer_safetensors_entry_at(st, i, &e) != MER_OK) __builtin_trap();
        const uint8_t *p = e.data;
        for (size_t k = 0; k < e.nbytes; k++) sink ^= p[k];
        mer_safetensors_entry f;
        if (mer_safetensors_find(st, e.name, &f) != MER_OK || f.data != e.data) __builtin_trap();
        mer_tensor t;
        if (mer_safetensors_get(st, e.name, e.dtype, e.ndim, e.shape, &t) != MER_OK) __builtin_trap();
        const float *x;
        if (mer_safetensors_get_f32(st, e.name, -1, NULL, &x) == MER_OK) {
            int64_t n = mer_tensor_numel(&t);
            for (int64_t k = 0; k < n; k++) sink ^= (uint8_t)(x[k] != x[k]);
        }
    }
    (void)mer_safetensors_metadata(st, "format");
    mer_safetensors_free(st);
    (void)sink;
    return 0;
}
