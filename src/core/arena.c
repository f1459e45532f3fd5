/*
 * arena.c -- bump allocator for activations: one allocation up front, marks to release.
 */
#include "internal.h"

#include <string.h>

mer_status mer__arena_init(mer__arena *a, size_t cap) {
    memset(a, 0, sizeof *a);
    a->base = mer__alloc(cap ? cap : 64);
    if (!a->base) return MER_ERR_NOMEM;
    a->cap = cap;
    return MER_OK;
}

void *mer__arena_alloc(mer__arena *a, size_t n) {
    size_t need = (n + 63) & ~(size_t)63;
    if (need < n || need > a->cap - a->used) {
        mer__err(MER_ERR_NOMEM, "arena exhausted: need %zu bytes, %zu of %zu used", n, a->used,
                 a->cap);
        return NULL;
    }
    void *p = a->base + a->used;
    a->used += need;
    if (a->used > a->peak) a->peak = a->used;
    return p;
}

float *mer__arena_f32(mer__arena *a, int64_t n) {
    if (n < 0 || (uint64_t)n > SIZE_MAX / sizeof(float)) {
        mer__err(MER_ERR_NOMEM, "arena: bad float count %lld", (long long)n);
        return NULL;
    }
    return mer__arena_alloc(a, (size_t)n * sizeof(float));
}

void mer__arena_free(mer__arena *a) {
    if (!a) return;
    mer__free(a->base);
    memset(a, 0, sizeof *a);
}
