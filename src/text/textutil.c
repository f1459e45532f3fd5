/*
 * textutil.c -- growable buffers and the two hash maps of the tokenizers (piece -> id and
 * BPE pair -> merge rank). Open addressing with linear probing, FNV-1a / a 64-bit mixer.
 */
#include "text/text_internal.h"

#include <string.h>

static mer_status grow(void **v, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return MER_OK;
    size_t nc = *cap ? *cap : 16;
    while (nc < need) {
        if (nc > SIZE_MAX / 2 / elem) return mer__err(MER_ERR_NOMEM, "buffer size overflow");
        nc *= 2;
    }
    void *p = realloc(*v, nc * elem);
    if (!p) return mer__err(MER_ERR_NOMEM, "out of memory (%zu bytes)", nc * elem);
    *v = p;
    *cap = nc;
    return MER_OK;
}

mer_status mer__u32_push(mer__u32buf *b, uint32_t x) {
    if (b->n == b->cap) {
        mer_status st = grow((void **)&b->v, &b->cap, b->n + 1, sizeof *b->v);
        if (st) return st;
    }
    b->v[b->n++] = x;
    return MER_OK;
}

mer_status mer__i32_push(mer__i32buf *b, int32_t x) {
    if (b->n == b->cap) {
        mer_status st = grow((void **)&b->v, &b->cap, b->n + 1, sizeof *b->v);
        if (st) return st;
    }
    b->v[b->n++] = x;
    return MER_OK;
}

mer_status mer__ch_append(mer__chbuf *b, const char *s, size_t n) {
    mer_status st = grow((void **)&b->v, &b->cap, b->n + n + 1, 1);
    if (st) return st;
    if (n) memcpy(b->v + b->n, s, n);
    b->n += n;
    b->v[b->n] = '\0';
    return MER_OK;
}

mer_status mer__ch_push_cp(mer__chbuf *b, uint32_t cp) {
    char u[4];
    int k = mer__utf8_encode(cp, u);
    return mer__ch_append(b, u, (size_t)k);
}

/* ---- string map --------------------------------------------------------------------------- */

static uint64_t hash_bytes(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 1099511628211ull;
    return h ^ (h >> 29);
}

static size_t table_cap(size_t expected) {
    size_t cap = 16;
    while (cap < expected * 2 + 1) cap *= 2;
    return cap;
}

mer_status mer__strmap_init(mer__strmap *m, size_t expected) {
    memset(m, 0, sizeof *m);
    if (expected > SIZE_MAX / 8) return mer__err(MER_ERR_NOMEM, "map too large");
    m->cap = table_cap(expected);
    m->keys = calloc(m->cap, sizeof *m->keys);
    m->klen = calloc(m->cap, sizeof *m->klen);
    m->vals = calloc(m->cap, sizeof *m->vals);
    if (!m->keys || !m->klen || !m->vals) {
        mer__strmap_free(m);
        return mer__err(MER_ERR_NOMEM, "out of memory for a map of %zu entries", expected);
    }
    return MER_OK;
}

static mer_status strmap_rehash(mer__strmap *m) {
    mer__strmap big;
    mer_status st = mer__strmap_init(&big, m->cap);
    if (st) return st;
    for (size_t i = 0; i < m->cap; i++)
        if (m->keys[i]) mer__strmap_put(&big, m->keys[i], m->klen[i], m->vals[i], NULL);
    mer__strmap_free(m);
    *m = big;
    return MER_OK;
}

mer_status mer__strmap_put(mer__strmap *m, const char *key, size_t len, int32_t val, int *dup) {
    if (dup) *dup = 0;
    if (len > UINT32_MAX) return mer__err(MER_ERR_FORMAT, "key too long");
    if ((m->n + 1) * 2 > m->cap) {
        mer_status st = strmap_rehash(m);
        if (st) return st;
    }
    size_t mask = m->cap - 1, i = hash_bytes(key, len) & mask;
    while (m->keys[i]) {
        if (m->klen[i] == len && !memcmp(m->keys[i], key, len)) {
            if (dup) *dup = 1;
            return MER_OK;
        }
        i = (i + 1) & mask;
    }
    m->keys[i] = key;
    m->klen[i] = (uint32_t)len;
    m->vals[i] = val;
    m->n++;
    return MER_OK;
}

mer_status mer__strmap_set(mer__strmap *m, const char *key, size_t len, int32_t val) {
    int dup = 0;
    mer_status st = mer__strmap_put(m, key, len, val, &dup);
    if (st || !dup) return st;
    size_t mask = m->cap - 1, i = hash_bytes(key, len) & mask;
    while (m->keys[i]) {
        if (m->klen[i] == len && !memcmp(m->keys[i], key, len)) {
            m->keys[i] = key;
            m->vals[i] = val;
            return MER_OK;
        }
        i = (i + 1) & mask;
    }
    return MER_OK;
}

int32_t mer__strmap_get(const mer__strmap *m, const char *key, size_t len) {
    if (!m->cap) return -1;
    size_t mask = m->cap - 1, i = hash_bytes(key, len) & mask;
    while (m->keys[i]) {
        if (m->klen[i] == len && !memcmp(m->keys[i], key, len)) return m->vals[i];
        i = (i + 1) & mask;
    }
    return -1;
}

void mer__strmap_free(mer__strmap *m) {
    free(m->keys);
    free(m->klen);
    free(m->vals);
    memset(m, 0, sizeof *m);
}

/* ---- u64 map ------------------------------------------------------------------------------ */

static uint64_t mix64(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    return x ^ (x >> 33);
}

/* Key UINT64_MAX marks an empty slot (no pair of valid ids produces it). */
mer_status mer__u64map_init(mer__u64map *m, size_t expected) {
    memset(m, 0, sizeof *m);
    if (expected > SIZE_MAX / 16) return mer__err(MER_ERR_NOMEM, "map too large");
    m->cap = table_cap(expected);
    m->keys = malloc(m->cap * sizeof *m->keys);
    m->vals = malloc(m->cap * sizeof *m->vals);
    if (!m->keys || !m->vals) {
        mer__u64map_free(m);
        return mer__err(MER_ERR_NOMEM, "out of memory for a map of %zu entries", expected);
    }
    memset(m->keys, 0xFF, m->cap * sizeof *m->keys);
    return MER_OK;
}

mer_status mer__u64map_put(mer__u64map *m, uint64_t key, int32_t val) {
    if ((m->n + 1) * 2 > m->cap) {
        mer__u64map big;
        mer_status st = mer__u64map_init(&big, m->cap);
        if (st) return st;
        for (size_t i = 0; i < m->cap; i++)
            if (m->keys[i] != UINT64_MAX) mer__u64map_put(&big, m->keys[i], m->vals[i]);
        mer__u64map_free(m);
        *m = big;
    }
    size_t mask = m->cap - 1, i = mix64(key) & mask;
    while (m->keys[i] != UINT64_MAX) {
        if (m->keys[i] == key) return MER_OK;
        i = (i + 1) & mask;
    }
    m->keys[i] = key;
    m->vals[i] = val;
    m->n++;
    return MER_OK;
}

int32_t mer__u64map_get(const mer__u64map *m, uint64_t key) {
    if (!m->cap) return -1;
    size_t mask = m->cap - 1, i = mix64(key) & mask;
    while (m->keys[i] != UINT64_MAX) {
        if (m->keys[i] == key) return m->vals[i];
        i = (i + 1) & mask;
    }
    return -1;
}

void mer__u64map_free(mer__u64map *m) {
    free(m->keys);
    free(m->vals);
    memset(m, 0, sizeof *m);
}

/* ---- merge heap --------------------------------------------------------------------------- */

static int merge_before(const mer__merge *a, const mer__merge *b) {
    return a->key < b->key || (a->key == b->key && a->left < b->left);
}

mer_status mer__mergeheap_push(mer__mergeheap *h, mer__merge p) {
    if (h->n == h->cap) {
        size_t nc = h->cap ? h->cap * 2 : 64;
        mer__merge *q = realloc(h->v, nc * sizeof *q);
        if (!q) return mer__err(MER_ERR_NOMEM, "out of memory");
        h->v = q;
        h->cap = nc;
    }
    size_t i = h->n++;
    while (i > 0 && merge_before(&p, &h->v[(i - 1) / 2])) {
        h->v[i] = h->v[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    h->v[i] = p;
    return MER_OK;
}

mer__merge mer__mergeheap_pop(mer__mergeheap *h) {
    mer__merge top = h->v[0], last = h->v[--h->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n) break;
        if (c + 1 < h->n && merge_before(&h->v[c + 1], &h->v[c])) c++;
        if (!merge_before(&h->v[c], &last)) break;
        h->v[i] = h->v[c];
        i = c;
    }
    if (h->n) h->v[i] = last;
    return top;
}
