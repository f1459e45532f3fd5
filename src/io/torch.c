/*
 * torch.c -- state dicts saved by torch.save, read without Python and without running anything.
 *
 * Two layouts exist (torch/serialization.py):
 *   zip (PyTorch >= 1.6): <archive>/data.pkl holds the pickled state dict; each storage is the
 *     stored record <archive>/data/<key>, 64-byte aligned, so tensors can point into the mmap.
 *   legacy (_use_new_zipfile_serialization=False, and every file older than 1.6): five pickles
 *     back to back -- the magic number 0x1950a86a20f9469cfc6c, the protocol version 1001, a
 *     sys-info dict (byte order, type sizes), the state dict, the list of storage keys -- then for
 *     each key in that order an int64 element count and the storage's raw little-endian bytes.
 * In both, a tensor is torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...) (the
 * storage a persistent id ('storage', <dtype>Storage, key, location, numel[, view])), maybe
 * wrapped in _rebuild_parameter. A tensor is a strided view: several may share one storage, and
 * one may be non-contiguous. A contiguous tensor whose bytes are aligned for its element type is
 * handed out by offset (zero copy); any other is gathered once into an aligned buffer. Every
 * offset, size and stride is checked (non-negative, no overflow, inside its storage) first.
 */
#include "io_internal.h"

#include <string.h>

static const uint8_t legacy_magic[10] = {0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19};

int mer__torch_detect(const uint8_t *b, size_t size) {
    if (size >= 4 && b[0] == 'P' && b[1] == 'K' && b[2] == 3 && b[3] == 4) return 1;
    if (size >= 14 && b[0] == 0x80 && b[1] >= 2 && b[2] == 0x8a && b[3] == 10 && !memcmp(b + 4, legacy_magic, 10))
        return 2;
    return 0;
}

void mer__torch_tensors_free(mer__torch_tensor *t, int64_t n) {
    if (!t) return;
    for (int64_t i = 0; i < n; i++) {
        free(t[i].name);
        mer__free(t[i].own);
    }
    free(t);
}

typedef struct {
    const char *key;
    mer_dtype dtype;
    int64_t numel;        /* as declared by the persistent id */
    const uint8_t *data;  /* resolved bytes (NULL until found) */
    uint64_t avail;       /* bytes available at data */
} storage;

typedef struct {
    const char *path;
    const uint8_t *buf;
    size_t size;
    storage *st;
    int64_t n_st;
} ctx;

static int cmp_storage(const void *a, const void *b) {
    return strcmp(((const storage *)a)->key, ((const storage *)b)->key);
}

static storage *find_storage(ctx *c, const char *key) {
    storage k = {.key = key};
    return c->n_st ? bsearch(&k, c->st, (size_t)c->n_st, sizeof *c->st, cmp_storage) : NULL;
}

static const char *safe(const char *s) { /* attacker-chosen strings in messages: printable or '?' */
    static _Thread_local char out[81];
    size_t i = 0;
    for (; s && s[i] && i < 80; i++) out[i] = s[i] >= 0x20 && s[i] < 0x7f ? s[i] : '?';
    out[i] = '\0';
    return out;
}

/* ('storage', <dtype>Storage, key, location, numel[, view]) */
static mer_status parse_persid(ctx *c, const mer__pv *pid, const char **key, mer_dtype *dt, int64_t *numel,
                               const mer__pv **view) {
    const mer__pv *t = pid->args;
    if (t->kind != MER__PV_TUPLE || t->n < 5 || t->items[0]->kind != MER__PV_STR || strcmp(t->items[0]->s, "storage"))
        return mer__err(MER_ERR_FORMAT, "%s: persistent id is not a ('storage', type, key, location, size) tuple",
                        c->path);
    const mer__pv *ty = t->items[1], *k = t->items[2], *n = t->items[4];
    if (ty->kind != MER__PV_GLOBAL || ty->glob != MER__G_STORAGE)
        return mer__err(MER_ERR_FORMAT, "%s: persistent id names no storage type", c->path);
    if (k->kind != MER__PV_STR || n->kind != MER__PV_INT || n->i < 0)
        return mer__err(MER_ERR_FORMAT, "%s: persistent id has a bad key or size", c->path);
    *key = k->s;
    *dt = ty->dtype;
    *numel = n->i;
    *view = t->n >= 6 && t->items[5]->kind != MER__PV_NONE ? t->items[5] : NULL;
    return MER_OK;
}

/* Every persistent id of the load declares a storage; the same key twice must agree. */
static mer_status collect_storages(ctx *c, const mer__pickle *pk) {
    int64_t n = 0;
    for (int64_t i = 0; i < pk->n_all; i++) n += pk->all[i]->kind == MER__PV_PERSID;
    c->st = calloc(n ? (size_t)n : 1, sizeof *c->st);
    if (!c->st) return mer__err(MER_ERR_NOMEM, "%s: out of memory", c->path);
    for (int64_t i = 0; i < pk->n_all; i++) {
        if (pk->all[i]->kind != MER__PV_PERSID) continue;
        storage *s = &c->st[c->n_st];
        const mer__pv *view;
        mer_status r = parse_persid(c, pk->all[i], &s->key, &s->dtype, &s->numel, &view);
        if (r) return r;
        /* pre-1.0 views: key and size name the root storage; (view key, offset, size) narrow it */
        if (view && (view->kind != MER__PV_TUPLE || view->n != 3 || view->items[0]->kind != MER__PV_STR))
            return mer__err(MER_ERR_FORMAT, "%s: storage view metadata is malformed", c->path);
        c->n_st++;
    }
    if (c->n_st > 1) qsort(c->st, (size_t)c->n_st, sizeof *c->st, cmp_storage);
    int64_t w = 0;
    for (int64_t i = 0; i < c->n_st; i++) {
        if (w && !strcmp(c->st[w - 1].key, c->st[i].key)) {
            if (c->st[w - 1].dtype != c->st[i].dtype || c->st[w - 1].numel != c->st[i].numel)
                return mer__err(MER_ERR_FORMAT, "%s: storage \"%s\" is declared twice with different types or sizes",
                                c->path, safe(c->st[i].key));
            continue;
        }
        c->st[w++] = c->st[i];
    }
    c->n_st = w;
    return MER_OK;
}

/* The bytes of the storage a persistent id refers to (a view narrows its root storage). */
static mer_status storage_of(ctx *c, const mer__pv *pid, mer_dtype *dt, const uint8_t **data, uint64_t *avail) {
    const char *key;
    int64_t numel;
    const mer__pv *view;
    mer_status r = parse_persid(c, pid, &key, dt, &numel, &view);
    if (r) return r;
    int64_t voff = 0, vn = -1;
    if (view) {
        const mer__pv *vo = view->items[1], *vs = view->items[2];
        if (vo->kind != MER__PV_INT || vs->kind != MER__PV_INT || vo->i < 0 || vs->i < 0)
            return mer__err(MER_ERR_FORMAT, "%s: storage view has a bad offset or size", c->path);
        voff = vo->i;
        vn = vs->i;
    }
    storage *s = find_storage(c, key);
    if (!s || !s->data)
        return mer__err(MER_ERR_FORMAT, "%s: storage \"%s\" has no data in the file", c->path, safe(key));
    if (s->dtype != *dt)
        return mer__err(MER_ERR_FORMAT, "%s: storage \"%s\" is used with two element types", c->path, safe(key));
    size_t es = mer_dtype_size(*dt);
    uint64_t total = s->avail;
    if (view) {
        int64_t ob, nb;
        if (!mer__mul_overflow(voff, (int64_t)es, &ob) || !mer__mul_overflow(vn, (int64_t)es, &nb) ||
            (uint64_t)ob > total || (uint64_t)nb > total - (uint64_t)ob)
            return mer__err(MER_ERR_FORMAT, "%s: storage view [%lld, +%lld) outside storage \"%s\"", c->path,
                            (long long)voff, (long long)vn, safe(key));
        *data = s->data + ob;
        *avail = (uint64_t)nb;
        return MER_OK;
    }
    *data = s->data;
    *avail = total;
    return MER_OK;
}

static int is_int_tuple(const mer__pv *v) {
    if (v->kind != MER__PV_TUPLE) return 0;
    for (int64_t i = 0; i < v->n; i++)
        if (v->items[i]->kind != MER__PV_INT) return 0;
    return 1;
}

/* One tensor from its rebuild call. */
static mer_status make_tensor(ctx *c, const char *name, const mer__pv *call, mer__torch_tensor *t) {
    const mer__pv *a = call->args;
    if (a->n < 4 || a->items[0]->kind != MER__PV_PERSID || a->items[1]->kind != MER__PV_INT ||
        !is_int_tuple(a->items[2]) || !is_int_tuple(a->items[3]))
        return mer__err(MER_ERR_FORMAT, "%s: tensor \"%s\": %s arguments are not (storage, offset, size, stride, ...)",
                        c->path, safe(name), call->fn->gname);
    const mer__pv *sz = a->items[2], *sd = a->items[3];
    int64_t off = a->items[1]->i;
    if (sz->n != sd->n)
        return mer__err(MER_ERR_FORMAT, "%s: tensor \"%s\": %lld sizes but %lld strides", c->path, safe(name),
                        (long long)sz->n, (long long)sd->n);
    if (sz->n > MER_MAX_DIMS)
        return mer__err(MER_ERR_UNSUPPORTED, "%s: tensor \"%s\": rank %lld exceeds the maximum %d", c->path,
                        safe(name), (long long)sz->n, MER_MAX_DIMS);
    if (off < 0)
        return mer__err(MER_ERR_FORMAT, "%s: tensor \"%s\": negative storage offset %lld", c->path, safe(name),
                        (long long)off);
    mer_dtype dt;
    const uint8_t *data = NULL;
    uint64_t avail = 0;
    mer_status r = storage_of(c, a->items[0], &dt, &data, &avail);
    if (r) {
        mer__err_prefix("tensor \"%s\"", safe(name));
        return r;
    }
    int32_t nd = (int32_t)sz->n;
    int64_t numel = 1, last = off, stride[MER_MAX_DIMS];
    for (int32_t i = 0; i < nd; i++) {
        int64_t d = sz->items[i]->i, st = sd->items[i]->i, span;
        if (d < 0 || st < 0)
            return mer__err(MER_ERR_FORMAT, "%s: tensor \"%s\": negative %s %lld in dimension %d", c->path, safe(name),
                            d < 0 ? "size" : "stride", (long long)(d < 0 ? d : st), (int)i);
        if (!mer__mul_overflow(numel, d, &numel) || (d && (!mer__mul_overflow(d - 1, st, &span) ||
                                                           !mer__add_overflow(last, span, &last))))
            return mer__err(MER_ERR_FORMAT, "%s: tensor \"%s\": sizes and strides overflow", c->path, safe(name));
        t->shape[i] = d;
        stride[i] = st;
    }
    size_t es = mer_dtype_size(dt);
    int64_t nbytes, last_byte;
    if (!mer__mul_overflow(numel, (int64_t)es, &nbytes))
        return mer__err(MER_ERR_FORMAT, "%s: tensor \"%s\": byte size overflows", c->path, safe(name));
    uint64_t have = avail / es;
    if (numel > 0 && (!mer__mul_overflow(last + 1, (int64_t)es, &last_byte) || (uint64_t)last >= have))
        return mer__err(MER_ERR_FORMAT,
                        "%s: tensor \"%s\": needs element %lld of its storage, which holds %llu", c->path, safe(name),
                        (long long)last, (unsigned long long)have);
    t->dtype = dt;
    t->ndim = nd;
    t->nbytes = (size_t)nbytes;
    int contiguous = 1;
    int64_t want = 1;
    for (int32_t i = nd - 1; i >= 0; i--) {
        if (t->shape[i] != 1 && stride[i] != want) contiguous = 0;
        want *= t->shape[i] ? t->shape[i] : 1;
    }
    if (numel == 0) { /* no byte is addressed: the offset need not lie in the storage */
        t->offset = 0;
        return MER_OK;
    }
    const uint8_t *start = data + (size_t)off * es; /* off <= last < have: inside the storage */
    /* a view materialised bigger than its storage repeats elements (a stride of 0: an expanded
     * tensor); a few bytes of file could otherwise ask for any amount of memory, so such a view
     * is copied only up to 16 MiB (a real checkpoint's expanded buffers are small) */
    if ((uint64_t)nbytes > avail && nbytes > ((int64_t)1 << 24))
        return mer__err(MER_ERR_FORMAT,
                        "%s: tensor \"%s\": an expanded view of %lld bytes over a storage of %llu (more than 16 MiB "
                        "of repeated elements is refused)",
                        c->path, safe(name), (long long)nbytes, (unsigned long long)avail);
    if (contiguous && (uintptr_t)start % es == 0) {
        t->offset = (uint64_t)(start - c->buf);
        return MER_OK;
    }
    t->own = mer__alloc((size_t)nbytes);
    if (!t->own) return mer__err(MER_ERR_NOMEM, "%s: tensor \"%s\": out of memory", c->path, safe(name));
    if (contiguous) {
        memcpy(t->own, start, (size_t)nbytes);
        return MER_OK;
    }
    /* gather a strided view, odometer order over the dims */
    int64_t idx[MER_MAX_DIMS] = {0};
    uint8_t *dst = t->own;
    for (int64_t k = 0; k < numel; k++) {
        int64_t e = 0;
        for (int32_t i = 0; i < nd; i++) e += idx[i] * stride[i];
        memcpy(dst, start + (size_t)e * es, es);
        dst += es;
        for (int32_t i = nd - 1; i >= 0; i--) {
            if (++idx[i] < t->shape[i]) break;
            idx[i] = 0;
        }
    }
    return MER_OK;
}

/* The state dict (top-level dict name -> tensor); values that are not tensors are skipped. */
static mer_status build(ctx *c, const mer__pv *root, mer__torch_tensor **out, int64_t *n) {
    if (root->kind != MER__PV_DICT)
        return mer__err(MER_ERR_FORMAT, "%s: the checkpoint holds no state dict (top-level object is not a dict)",
                        c->path);
    mer__torch_tensor *t = calloc(root->n ? (size_t)root->n / 2 : 1, sizeof *t);
    if (!t) return mer__err(MER_ERR_NOMEM, "%s: out of memory", c->path);
    int64_t k = 0;
    mer_status r = MER_OK;
    for (int64_t i = 0; i + 1 < root->n; i += 2) {
        const mer__pv *key = root->items[i], *v = root->items[i + 1];
        if (key->kind != MER__PV_STR) {
            r = mer__err(MER_ERR_FORMAT, "%s: a state dict key is not a string", c->path);
            break;
        }
        if (v->kind == MER__PV_CALL && v->fn->glob == MER__G_REBUILD_PARAMETER) {
            if (v->args->n < 1) {
                r = mer__err(MER_ERR_FORMAT, "%s: tensor \"%s\": _rebuild_parameter without data", c->path,
                             safe(key->s));
                break;
            }
            v = v->args->items[0];
        }
        if (v->kind != MER__PV_CALL ||
            (v->fn->glob != MER__G_REBUILD_TENSOR_V2 && v->fn->glob != MER__G_REBUILD_TENSOR)) {
            MER_LOG_D("%s: skipping \"%s\": not a tensor", c->path, safe(key->s));
            continue;
        }
        if (strlen(key->s) != key->len) {
            r = mer__err(MER_ERR_FORMAT, "%s: a tensor name contains a NUL byte", c->path);
            break;
        }
        if ((r = make_tensor(c, key->s, v, &t[k])) != MER_OK) break;
        if (!(t[k].name = strdup(key->s))) {
            mer__free(t[k].own);
            r = mer__err(MER_ERR_NOMEM, "%s: out of memory", c->path);
            break;
        }
        k++;
    }
    if (r) {
        mer__torch_tensors_free(t, k);
        return r;
    }
    *out = t;
    *n = k;
    return MER_OK;
}

static mer_status read_zip(ctx *c, mer__pickle *pk, mer__torch_tensor **out, int64_t *n) {
    mer__zip z;
    mer_status r = mer__zip_open(&z, c->buf, c->size, c->path);
    const mer__zip_entry *pkl = NULL;
    char *name = NULL;
    if (r) goto done;
    /* <archive>/data.pkl: the archive folder name varies (the file's stem, or "archive") */
    for (int64_t i = 0; i < z.n; i++) {
        const char *nm = z.e[i].name, *sl = strchr(nm, '/');
        if (!sl || strcmp(sl, "/data.pkl") != 0) continue;
        if (pkl) {
            r = mer__err(MER_ERR_FORMAT, "%s: two data.pkl records (one is %s)", c->path, safe(nm));
            goto done;
        }
        pkl = &z.e[i];
    }
    if (!pkl) {
        r = mer__err(MER_ERR_FORMAT, "%s: zip without <archive>/data.pkl: not a torch.save checkpoint", c->path);
        goto done;
    }
    size_t plen = strlen(pkl->name) - strlen("data.pkl");
    name = malloc(plen + 16);
    if (!name) {
        r = mer__err(MER_ERR_NOMEM, "%s: out of memory", c->path);
        goto done;
    }
    memcpy(name, pkl->name, plen);
    strcpy(name + plen, "byteorder");
    const mer__zip_entry *bo = mer__zip_find(&z, name);
    const uint8_t *p;
    if (bo) {
        if ((r = mer__zip_data(&z, bo, &p))) goto done;
        if (bo->size != 6 || memcmp(p, "little", 6)) {
            r = mer__err(MER_ERR_UNSUPPORTED, "%s: big-endian checkpoints are not supported", c->path);
            goto done;
        }
    }
    if ((r = mer__zip_data(&z, pkl, &p))) goto done;
    size_t pos = 0;
    mer__pv *root;
    if ((r = mer__pickle_load(pk, p, (size_t)pkl->size, &pos, &root))) goto done;
    if ((r = collect_storages(c, pk))) goto done;
    for (int64_t i = 0; i < c->n_st; i++) {
        size_t kl = strlen(c->st[i].key);
        char *full = realloc(name, plen + 5 + kl + 1);
        if (!full) {
            r = mer__err(MER_ERR_NOMEM, "%s: out of memory", c->path);
            goto done;
        }
        name = full;
        memcpy(name + plen, "data/", 5);
        memcpy(name + plen + 5, c->st[i].key, kl + 1);
        const mer__zip_entry *e = mer__zip_find(&z, name);
        if (!e) continue; /* an error only if a tensor uses it */
        if ((r = mer__zip_data(&z, e, &c->st[i].data))) goto done;
        int64_t need;
        if (!mer__mul_overflow(c->st[i].numel, (int64_t)mer_dtype_size(c->st[i].dtype), &need) ||
            (uint64_t)need > e->size) {
            r = mer__err(MER_ERR_FORMAT, "%s: storage \"%s\" declares %lld elements but its record holds %llu bytes",
                         c->path, safe(c->st[i].key), (long long)c->st[i].numel, (unsigned long long)e->size);
            goto done;
        }
        c->st[i].avail = (uint64_t)need;
    }
    r = build(c, root, out, n);
done:
    free(name);
    mer__zip_close(&z);
    return r;
}

static mer_status read_legacy(ctx *c, mer__pickle *pk, mer__torch_tensor **out, int64_t *n) {
    size_t pos = 0;
    mer__pv *magic, *proto, *info, *root, *keys;
    mer_status r;
    if ((r = mer__pickle_load(pk, c->buf, c->size, &pos, &magic))) return r;
    if (magic->kind != MER__PV_BIGINT || magic->len != 10 || memcmp(magic->s, legacy_magic, 10))
        return mer__err(MER_ERR_FORMAT, "%s: bad magic number: not a torch.save checkpoint", c->path);
    if ((r = mer__pickle_load(pk, c->buf, c->size, &pos, &proto))) return r;
    if (proto->kind != MER__PV_INT || proto->i != 1001)
        return mer__err(MER_ERR_UNSUPPORTED, "%s: legacy checkpoint protocol %lld is not supported (1001 is)", c->path,
                        proto->kind == MER__PV_INT ? (long long)proto->i : -1LL);
    if ((r = mer__pickle_load(pk, c->buf, c->size, &pos, &info))) return r;
    if (info->kind == MER__PV_DICT)
        for (int64_t i = 0; i + 1 < info->n; i += 2)
            if (info->items[i]->kind == MER__PV_STR && !strcmp(info->items[i]->s, "little_endian") &&
                info->items[i + 1]->kind == MER__PV_BOOL && !info->items[i + 1]->i)
                return mer__err(MER_ERR_UNSUPPORTED, "%s: big-endian checkpoints are not supported", c->path);
    int64_t before = pk->n_all;
    if ((r = mer__pickle_load(pk, c->buf, c->size, &pos, &root))) return r;
    /* only the state dict's persistent ids declare storages */
    mer__pickle sub = {.path = pk->path, .all = pk->all + before, .n_all = pk->n_all - before};
    if ((r = collect_storages(c, &sub))) return r;
    if ((r = mer__pickle_load(pk, c->buf, c->size, &pos, &keys))) return r;
    if (keys->kind != MER__PV_LIST)
        return mer__err(MER_ERR_FORMAT, "%s: the storage key list is not a list", c->path);
    for (int64_t i = 0; i < keys->n; i++) {
        const mer__pv *k = keys->items[i];
        storage *s = k->kind == MER__PV_STR ? find_storage(c, k->s) : NULL;
        if (!s) return mer__err(MER_ERR_FORMAT, "%s: storage key %lld is not declared by the state dict", c->path,
                                (long long)i);
        if (s->data) return mer__err(MER_ERR_FORMAT, "%s: storage \"%s\" is listed twice", c->path, safe(s->key));
        if (c->size - pos < 8)
            return mer__err(MER_ERR_FORMAT, "%s: truncated before storage \"%s\" (%zu bytes)", c->path, safe(s->key),
                            c->size);
        int64_t cnt = 0;
        for (int b = 7; b >= 0; b--) cnt = (int64_t)((uint64_t)cnt << 8 | c->buf[pos + b]);
        if (cnt != s->numel)
            return mer__err(MER_ERR_FORMAT, "%s: storage \"%s\" holds %lld elements but the state dict declares %lld",
                            c->path, safe(s->key), (long long)cnt, (long long)s->numel);
        int64_t nb;
        pos += 8;
        if (!mer__mul_overflow(cnt, (int64_t)mer_dtype_size(s->dtype), &nb) || (uint64_t)nb > c->size - pos)
            return mer__err(MER_ERR_FORMAT, "%s: truncated in storage \"%s\" (%lld elements, file is %zu bytes)",
                            c->path, safe(s->key), (long long)cnt, c->size);
        s->data = c->buf + pos;
        s->avail = (uint64_t)nb;
        pos += (size_t)nb;
    }
    return build(c, root, out, n);
}

mer_status mer__torch_read(const uint8_t *buf, size_t size, const char *path, mer__torch_tensor **out,
                           int64_t *n) {
    *out = NULL;
    *n = 0;
    ctx c = {.path = path, .buf = buf, .size = size};
    mer__pickle pk = {.path = path};
    mer_status r;
    int kind = mer__torch_detect(buf, size);
    if (kind == 1) r = read_zip(&c, &pk, out, n);
    else if (kind == 2) r = read_legacy(&c, &pk, out, n);
    else if (size > 262 && !memcmp(buf + 257, "ustar", 5))
        r = mer__err(MER_ERR_UNSUPPORTED, "%s: tar checkpoints (PyTorch < 0.4) are not supported", path);
    else r = mer__err(MER_ERR_FORMAT, "%s: not a torch.save checkpoint (no zip or legacy magic)", path);
    free(c.st);
    mer__pickle_free(&pk);
    return r;
}
