/*
 * fuzz_tfjs_manifest.c -- libFuzzer target for the TensorFlow.js weights reader. The input is
 * the manifest JSON, a NUL byte, then the shard bytes of every group back to back (as
 * mer_tfjs_parse takes them); without a NUL the whole input is the manifest and there are no
 * shards. On success every tensor is looked up by name and read in full.
 */
#include "mer.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *nul = memchr(data, 0, size);
    size_t mlen = nul ? (size_t)(nul - data) : size;
    const uint8_t *shards = nul ? nul + 1 : NULL;
    size_t slen = nul ? size - mlen - 1 : 0;
    mer_tfjs *w = NULL;
    if (mer_tfjs_parse(&w, (const char *)data, mlen, shards, slen, "fuzz.json") != MER_OK) {
        if (w) __builtin_trap(); /* a failed parse leaves no handle */
        return 0;
    }
    volatile float sink = 0;
    for (int64_t i = 0; i < mer_tfjs_count(w); i++) {
        mer_tfjs_entry e, f;
        if (mer_tfjs_entry_at(w, i, &e) != MER_OK) __builtin_trap();
        if (mer_tfjs_find(w, e.name, &f) != MER_OK || f.data != e.data) __builtin_trap();
        for (int64_t k = 0; k < e.numel; k++) sink += e.data[k];
    }
    mer_tfjs_free(w);
    (void)sink;
    return 0;
}
