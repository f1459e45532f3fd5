/*
 * fuzz_zip.c -- libFuzzer target for the zip reader (src/io/zip.c) and, on the same input, the
 * whole torch.save reader behind mer_safetensors_open (zip or legacy checkpoint image): every
 * entry and tensor that is accepted is read byte by byte, so an out-of-bounds view shows up
 * under ASan.
 */
#include "io/io_internal.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    volatile uint8_t sink = 0;
    mer__zip z;
    if (mer__zip_open(&z, data, size, "fuzz.zip") == MER_OK) {
        for (int64_t i = 0; i < z.n; i++) {
            const uint8_t *p;
            if (mer__zip_find(&z, z.e[i].name) != &z.e[i]) __builtin_trap();
            if (mer__zip_data(&z, &z.e[i], &p) != MER_OK) continue;
            for (uint64_t k = 0; k < z.e[i].size; k++) sink ^= p[k];
        }
    }
    mer__zip_close(&z);
    mer_safetensors *st = NULL;
    if (mer__safetensors_open_memory(&st, data, size, "fuzz.bin") == MER_OK) {
        for (int64_t i = 0; i < mer_safetensors_count(st); i++) {
            mer_safetensors_entry e;
            if (mer_safetensors_entry_at(st, i, &e) != MER_OK) __builtin_trap();
            const uint8_t *p = e.data;
            for (size_t k = 0; k < e.nbytes; k++) sink ^= p[k];
        }
        mer_safetensors_free(st);
    }
    (void)sink;
    return 0;
}
