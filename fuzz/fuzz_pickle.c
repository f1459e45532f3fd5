/*
 * fuzz_pickle.c -- libFuzzer target for the restricted unpickler (src/io/pickle.c): the input is
 * one or more pickles back to back (as in a legacy torch checkpoint); each value graph that
 * loads is walked (iteratively, bounded) so a dangling item pointer shows up under ASan.
 */
#include "io/io_internal.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    mer__pickle pk = {.path = "fuzz.pkl"};
    size_t pos = 0;
    volatile size_t sink = 0;
    for (int k = 0; k < 8 && pos < size; k++) {
        mer__pv *v;
        if (mer__pickle_load(&pk, data, size, &pos, &v) != MER_OK) break;
        if (!v) __builtin_trap();
    }
    for (int64_t i = 0; i < pk.n_all; i++) {
        const mer__pv *v = pk.all[i];
        for (int64_t j = 0; j < v->n; j++) sink += (size_t)v->items[j]->kind;
        if (v->s) sink += strlen(v->s);
        if (v->kind == MER__PV_CALL) sink += (size_t)v->fn->glob + (size_t)v->args->n;
        if (v->kind == MER__PV_PERSID) sink += (size_t)v->args->kind;
    }
    mer__pickle_free(&pk);
    (void)sink;
    return 0;
}
