/*
 * safetensors.c -- reader and writer of the safetensors format (Hugging Face).
 *
 * A file is: u64 little-endian N, N bytes of JSON header, then the byte buffer. The header maps
 * tensor names to {"dtype", "shape", "data_offsets": [begin, end]} (offsets relative to the
 * buffer) plus an optional "__metadata__" string map. The reader mmaps each file and validates
 * the whole header before handing out any pointer: header length (bounded by the file and by
 * 100 MB, as the reference), JSON syntax and duplicate keys, dtype strings, integral
 * non-negative dims, shape x dtype size == span with overflow checks, spans in bounds, and -- as
 * the reference reader requires -- spans that tile the buffer exactly (no overlap, no hole, no
 * trailing bytes). Views are zero-copy; only a file whose tensors are misaligned for their
 * dtype (a legal but unusual header length) is copied once into an aligned buffer.
 *
 * Sharded checkpoints: model.safetensors.index.json {"weight_map": {tensor: shard file}} next to
 * the shards; every shard is opened and validated, and every weight_map entry must be found in
 * the shard it names.
 */
#include "io_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- dtype strings ----------------------------------------------------------------------- */

static const struct {
    const char *s;
    mer_dtype t;
} dtype_table[] = {
    {"F32", MER_DTYPE_F32}, {"F16", MER_DTYPE_F16}, {"BF16", MER_DTYPE_BF16}, {"F64", MER_DTYPE_F64},
    {"I32", MER_DTYPE_I32}, {"I64", MER_DTYPE_I64}, {"U8", MER_DTYPE_U8},     {"I8", MER_DTYPE_I8},
    {"I16", MER_DTYPE_I16}, {"BOOL", MER_DTYPE_BOOL},
};
/* Valid in the format but not representable as a mer_dtype. */
static const char *const dtype_other[] = {"U16", "U32", "U64", "F8_E4M3", "F8_E5M2", "F8_E8M0",
                                          "F4", "F6_E2M3", "F6_E3M2", "C64"};

int mer__safetensors_dtype_parse(const char *s) {
    if (!s) return -1;
    for (size_t i = 0; i < sizeof dtype_table / sizeof *dtype_table; i++)
        if (!strcmp(s, dtype_table[i].s)) return (int)dtype_table[i].t;
    return -1;
}

const char *mer__safetensors_dtype_str(mer_dtype t) {
    for (size_t i = 0; i < sizeof dtype_table / sizeof *dtype_table; i++)
        if (dtype_table[i].t == t) return dtype_table[i].s;
    return "?";
}

/* ---- the handle -------------------------------------------------------------------------- */

typedef struct {
    char *path;
    void *map;            /* mmap base, NULL when reading borrowed memory */
    size_t map_size;
    const uint8_t *data;  /* the byte buffer after the header */
    size_t data_size;
    int torch;            /* 0 safetensors, 1 torch zip, 2 torch legacy */
} shard;

typedef struct {
    char *name;
    mer_dtype dtype;
    int32_t ndim;
    int64_t shape[MER_MAX_DIMS];
    uint64_t begin, end;
    int32_t shard;
    void *own;            /* aligned copy when the file places the tensor misaligned */
    float *f32;           /* cached conversion for mer_safetensors_get_f32 */
} entry;

struct mer_safetensors {
    shard *shards;
    int32_t n_shards;
    entry *entries;
    int64_t n, cap;
    int64_t *by_name;     /* entry indices sorted by name */
    char **meta_keys, **meta_vals;
    int32_t n_meta;
};

void mer_safetensors_free(mer_safetensors *st) {
    if (!st) return;
    for (int32_t i = 0; i < st->n_shards; i++) {
        shard *s = &st->shards[i];
        if (s->map) munmap(s->map, s->map_size);
        free(s->path);
    }
    for (int64_t i = 0; i < st->n; i++) {
        free(st->entries[i].name);
        mer__free(st->entries[i].own);
        mer__free(st->entries[i].f32);
    }
    for (int32_t i = 0; i < st->n_meta; i++) {
        free(st->meta_keys[i]);
        free(st->meta_vals[i]);
    }
    free(st->meta_keys);
    free(st->meta_vals);
    free(st->shards);
    free(st->entries);
    free(st->by_name);
    free(st);
}

static mer_status nomem(const char *path) {
    return mer__err(MER_ERR_NOMEM, "%s: out of memory", path);
}

static mer_status add_shard(mer_safetensors *st, const char *path, int32_t *idx) {
    shard *ns = realloc(st->shards, (size_t)(st->n_shards + 1) * sizeof *ns);
    if (!ns) return nomem(path);
    st->shards = ns;
    memset(&ns[st->n_shards], 0, sizeof *ns);
    ns[st->n_shards].path = strdup(path);
    if (!ns[st->n_shards].path) return nomem(path);
    *idx = st->n_shards++;
    return MER_OK;
}

static mer_status add_meta(mer_safetensors *st, const char *path, const char *k, const char *v) {
    for (int32_t i = 0; i < st->n_meta; i++)
        if (!strcmp(st->meta_keys[i], k)) return MER_OK; /* first shard wins */
    char **nk = realloc(st->meta_keys, (size_t)(st->n_meta + 1) * sizeof *nk);
    if (!nk) return nomem(path);
    st->meta_keys = nk;
    char **nv = realloc(st->meta_vals, (size_t)(st->n_meta + 1) * sizeof *nv);
    if (!nv) return nomem(path);
    st->meta_vals = nv;
    char *ks = strdup(k), *vs = strdup(v);
    if (!ks || !vs) {
        free(ks);
        free(vs);
        return nomem(path);
    }
    nk[st->n_meta] = ks;
    nv[st->n_meta] = vs;
    st->n_meta++;
    return MER_OK;
}

/* ---- header validation ------------------------------------------------------------------- */

static int cmp_span(const void *a, const void *b) {
    const entry *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return 0;
}

/* One tensor description from the header into e (name not yet set). */
static mer_status parse_tensor(const cJSON *v, const char *path, const char *name, size_t data_size,
                               entry *e) {
    if (!cJSON_IsObject(v))
        return mer__err(MER_ERR_FORMAT, "%s: tensor \"%.200s\": header entry is not an object", path, name);
    const cJSON *jd = cJSON_GetObjectItemCaseSensitive(v, "dtype");
    const cJSON *js = cJSON_GetObjectItemCaseSensitive(v, "shape");
    const cJSON *jo = cJSON_GetObjectItemCaseSensitive(v, "data_offsets");
    if (!jd || !js || !jo)
        return mer__err(MER_ERR_FORMAT, "%s: tensor \"%.200s\": missing \"%s\"", path, name,
                        !jd ? "dtype" : !js ? "shape" : "data_offsets");
    if (!cJSON_IsString(jd) || !jd->valuestring)
        return mer__err(MER_ERR_FORMAT, "%s: tensor \"%.200s\": dtype is not a string", path, name);
    int dt = mer__safetensors_dtype_parse(jd->valuestring);
    if (dt < 0) {
        for (size_t i = 0; i < sizeof dtype_other / sizeof *dtype_other; i++)
            if (!strcmp(jd->valuestring, dtype_other[i]))
                return mer__err(MER_ERR_DTYPE, "%s: tensor \"%.200s\": dtype %s is not supported", path,
                                name, dtype_other[i]);
        return mer__err(MER_ERR_DTYPE, "%s: tensor \"%.200s\": unknown dtype \"%.40s\"", path, name,
                        jd->valuestring);
    }
    e->dtype = (mer_dtype)dt;

    if (!cJSON_IsArray(js))
        return mer__err(MER_ERR_FORMAT, "%s: tensor \"%.200s\": shape is not an array", path, name);
    int nd = cJSON_GetArraySize(js);
    if (nd > MER_MAX_DIMS)
        return mer__err(MER_ERR_UNSUPPORTED, "%s: tensor \"%.200s\": rank %d exceeds the maximum %d", path,
                        name, nd, MER_MAX_DIMS);
    e->ndim = nd;
    int64_t numel = 1;
    int k = 0;
    for (const cJSON *c = js->child; c; c = c->next, k++) {
        int64_t d;
        if (cJSON_IsNumber(c) && c->valuedouble < 0)
            return mer__err(MER_ERR_FORMAT, "%s: tensor \"%.200s\": negative dimension %.17g", path, name,
                            c->valuedouble);
        if (!mer__json_integral(c, 0, (int64_t)1 << 53, &d))
            return mer__err(MER_ERR_FORMAT, "%s: tensor \"%.200s\": shape[%d] is not a non-negative integer",
                            path, name, k);
        e->shape[k] = d;
        if (!mer__mul_overflow(numel, d, &numel))
            return mer__err(MER_ERR_FORMAT, "%s: tensor \"%.200s\": shape overflows the element count", path,
                            name);
    }
    int64_t nbytes;
    if (!mer__mul_overflow(numel, (int64_t)mer_dtype_size(e->dtype), &nbytes))
        return mer__err(MER_ERR_FORMAT, "%s: tensor \"%.200s\": byte size overflows", path, name);

    if (!cJSON_IsArray(jo) || cJSON_GetArraySize(jo) != 2)
        return mer__err(MER_ERR_FORMAT, "%s: tensor \"%.200s\": data_offsets is not a [begin, end] pair",
                        path, name);
    int64_t b, en;
    if (!mer__json_integral(jo->child, 0, (int64_t)1 << 53, &b) ||
        !mer__json_integral(jo->child->next, 0, (int64_t)1 << 53, &en))
        return mer__err(MER_ERR_FORMAT, "%s: tensor \"%.200s\": data_offsets are not non-negative integers",
                        path, name);
    if (en < b)
        return mer__err(MER_ERR_FORMAT, "%s: tensor \"%.200s\": data_offsets [%lld, %lld] end before they begin",
                        path, name, (long long)b, (long long)en);
    if ((uint64_t)en > data_size)
        return mer__err(MER_ERR_FORMAT,
                        "%s: tensor \"%.200s\": data_offsets [%lld, %lld] out of bounds (data buffer is %zu bytes)",
                        path, name, (long long)b, (long long)en, data_size);
    if (en - b != nbytes) {
        char sh[160];
        mer_shape_str(sh, sizeof sh, e->ndim, e->shape);
        return mer__err(MER_ERR_FORMAT,
                        "%s: tensor \"%.200s\": shape %s x %s needs %lld bytes but data_offsets span %lld",
                        path, name, sh, mer__safetensors_dtype_str(e->dtype), (long long)nbytes,
                        (long long)(en - b));
    }
    e->begin = (uint64_t)b;
    e->end = (uint64_t)en;
    return MER_OK;
}

/* Validate the image buf[0..size) of one file and append its tensors (as shard `si`). */
static mer_status parse_file(mer_safetensors *st, int32_t si, const uint8_t *buf, size_t size) {
    shard *sh = &st->shards[si];
    const char *path = sh->path;
    if (size < 8)
        return mer__err(MER_ERR_FORMAT, "%s: truncated: %zu bytes, too short for the 8-byte header length",
                        path, size);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | buf[i];
    if (hlen > MER__SAFETENSORS_MAX_HEADER)
        return mer__err(MER_ERR_FORMAT, "%s: header length %llu exceeds the %llu-byte limit", path,
                        (unsigned long long)hlen, (unsigned long long)MER__SAFETENSORS_MAX_HEADER);
    if (hlen > size - 8)
        return mer__err(MER_ERR_FORMAT, "%s: truncated: header length %llu but only %zu bytes follow", path,
                        (unsigned long long)hlen, size - 8);
    if (hlen < 2 || buf[8] != '{')
        return mer__err(MER_ERR_FORMAT, "%s: header is not a JSON object (must start with '{')", path);
    cJSON *root;
    mer_status s = mer__json_parse_text(&root, (const char *)buf + 8, (size_t)hlen, path);
    if (s != MER_OK) return s;
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return mer__err(MER_ERR_FORMAT, "%s: header is not a JSON object", path);
    }
    sh->data = buf + 8 + hlen;
    sh->data_size = size - 8 - (size_t)hlen;

    int64_t first = st->n;
    for (const cJSON *c = root->child; c; c = c->next) {
        const char *name = c->string ? c->string : "";
        if (!strcmp(name, "__metadata__")) {
            if (!cJSON_IsObject(c)) {
                s = mer__err(MER_ERR_FORMAT, "%s: __metadata__ is not an object", path);
                goto fail;
            }
            for (const cJSON *m = c->child; m; m = m->next) {
                if (!cJSON_IsString(m) || !m->valuestring) {
                    s = mer__err(MER_ERR_FORMAT, "%s: __metadata__ value of \"%.200s\" is not a string", path,
                                 m->string ? m->string : "");
                    goto fail;
                }
                if ((s = add_meta(st, path, m->string ? m->string : "", m->valuestring)) != MER_OK) goto fail;
            }
            continue;
        }
        if (st->n == st->cap) {
            int64_t nc = st->cap ? st->cap * 2 : 64;
            entry *ne = realloc(st->entries, (size_t)nc * sizeof *ne);
            if (!ne) {
                s = nomem(path);
                goto fail;
            }
            st->entries = ne;
            st->cap = nc;
        }
        entry *e = &st->entries[st->n];
        memset(e, 0, sizeof *e);
        if ((s = parse_tensor(c, path, name, sh->data_size, e)) != MER_OK) goto fail;
        e->shard = si;
        e->name = strdup(name);
        if (!e->name) {
            s = nomem(path);
            goto fail;
        }
        st->n++;
    }
    cJSON_Delete(root);
    root = NULL;

    /* The spans must tile [0, data_size) exactly, as the reference reader demands: this rules
     * out overlaps (aliasing), holes and trailing bytes (polyglot files). */
    entry *es = st->entries + first;
    int64_t cnt = st->n - first;
    if (cnt > 1) qsort(es, (size_t)cnt, sizeof *es, cmp_span);
    uint64_t pos = 0;
    for (int64_t i = 0; i < cnt; i++) {
        if (es[i].begin < pos)
            return mer__err(MER_ERR_FORMAT, "%s: tensor \"%.200s\" [%llu, %llu] overlaps tensor \"%.200s\" (ends at %llu)",
                            path, es[i].name, (unsigned long long)es[i].begin, (unsigned long long)es[i].end,
                            es[i - 1].name, (unsigned long long)pos);
        if (es[i].begin > pos)
            return mer__err(MER_ERR_FORMAT, "%s: hole in the data buffer: bytes [%llu, %llu) belong to no tensor",
                            path, (unsigned long long)pos, (unsigned long long)es[i].begin);
        pos = es[i].end;
    }
    if (pos != sh->data_size)
        return mer__err(MER_ERR_FORMAT, "%s: %llu trailing bytes after the last tensor (data buffer is %zu bytes)",
                        path, (unsigned long long)(sh->data_size - pos), sh->data_size);

    /* Zero-copy needs every tensor aligned for its element type. Writers that do not group
     * tensors by alignment (or an odd header length) can break that; such tensors alone are
     * copied once into aligned memory. */
    for (int64_t i = 0; i < cnt; i++) {
        size_t es_size = mer_dtype_size(es[i].dtype), nb = (size_t)(es[i].end - es[i].begin);
        if (nb == 0 || ((uintptr_t)(sh->data + es[i].begin)) % es_size == 0) continue;
        es[i].own = mer__alloc(nb);
        if (!es[i].own) return nomem(path);
        memcpy(es[i].own, sh->data + es[i].begin, nb);
        MER_LOG_D("%s: tensor \"%s\" is misaligned in the file; copied %zu bytes", path, es[i].name, nb);
    }
    return MER_OK;
fail:
    cJSON_Delete(root);
    return s;
}

/* A torch.save checkpoint (zip or legacy) as shard `si`: its tensors point into the mapping by
 * offset, or own an aligned copy when strided or misaligned (torch.c decides). Views may share
 * bytes, so the tiling rule of safetensors does not apply. */
static mer_status parse_torch(mer_safetensors *st, int32_t si, const uint8_t *buf, size_t size) {
    shard *sh = &st->shards[si];
    mer__torch_tensor *t;
    int64_t n;
    mer_status s = mer__torch_read(buf, size, sh->path, &t, &n);
    if (s != MER_OK) return s;
    sh->data = buf;
    sh->data_size = size;
    if (st->n + n > st->cap) {
        int64_t nc = st->cap ? st->cap : 64;
        while (nc < st->n + n) nc *= 2;
        entry *ne = realloc(st->entries, (size_t)nc * sizeof *ne);
        if (!ne) {
            mer__torch_tensors_free(t, n);
            return nomem(sh->path);
        }
        st->entries = ne;
        st->cap = nc;
    }
    for (int64_t i = 0; i < n; i++) {
        entry *e = &st->entries[st->n++];
        memset(e, 0, sizeof *e);
        e->name = t[i].name;
        e->dtype = t[i].dtype;
        e->ndim = t[i].ndim;
        memcpy(e->shape, t[i].shape, sizeof e->shape);
        e->begin = t[i].own ? 0 : t[i].offset;
        e->end = e->begin + t[i].nbytes;
        e->shard = si;
        e->own = t[i].own;
        t[i].name = NULL;
        t[i].own = NULL;
    }
    mer__torch_tensors_free(t, n);
    return MER_OK;
}

static mer_status parse_any(mer_safetensors *st, int32_t si, const uint8_t *buf, size_t size) {
    st->shards[si].torch = mer__torch_detect(buf, size);
    if (st->shards[si].torch) return parse_torch(st, si, buf, size);
    return parse_file(st, si, buf, size);
}

static mer_status build_index(mer_safetensors *st) {
    const char *path = st->n_shards ? st->shards[0].path : "<safetensors>";
    st->by_name = malloc((size_t)(st->n ? st->n : 1) * sizeof *st->by_name);
    if (!st->by_name) return nomem(path);
    for (int64_t i = 0; i < st->n; i++) st->by_name[i] = i;
    /* a simple merge sort keeps this reentrant (no global comparator context) */
    int64_t *tmp = malloc((size_t)(st->n ? st->n : 1) * sizeof *tmp);
    if (!tmp) return nomem(path);
    for (int64_t w = 1; w < st->n; w *= 2) {
        for (int64_t lo = 0; lo < st->n; lo += 2 * w) {
            int64_t mid = lo + w < st->n ? lo + w : st->n, hi = lo + 2 * w < st->n ? lo + 2 * w : st->n;
            int64_t i = lo, j = mid, k = lo;
            while (i < mid && j < hi)
                tmp[k++] = strcmp(st->entries[st->by_name[i]].name, st->entries[st->by_name[j]].name) <= 0
                               ? st->by_name[i++]
                               : st->by_name[j++];
            while (i < mid) tmp[k++] = st->by_name[i++];
            while (j < hi) tmp[k++] = st->by_name[j++];
        }
        memcpy(st->by_name, tmp, (size_t)st->n * sizeof *tmp);
    }
    free(tmp);
    for (int64_t i = 1; i < st->n; i++) {
        const entry *a = &st->entries[st->by_name[i - 1]], *b = &st->entries[st->by_name[i]];
        if (!strcmp(a->name, b->name))
            return mer__err(MER_ERR_FORMAT, "%s: tensor \"%.200s\" appears twice (in %s and %s)", path, a->name,
                            st->shards[a->shard].path, st->shards[b->shard].path);
    }
    return MER_OK;
}

static int64_t find_idx(const mer_safetensors *st, const char *name) {
    int64_t lo = 0, hi = st->n - 1;
    while (lo <= hi) {
        int64_t mid = lo + (hi - lo) / 2;
        int c = strcmp(st->entries[st->by_name[mid]].name, name);
        if (c == 0) return st->by_name[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid - 1;
    }
    return -1;
}

/* ---- opening ----------------------------------------------------------------------------- */

static mer_status map_file(mer_safetensors *st, const char *path) {
    int32_t si;
    mer_status s = add_shard(st, path, &si);
    if (s != MER_OK) return s;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return mer__err(errno == ENOENT ? MER_ERR_NOT_FOUND : MER_ERR_IO, "%s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return mer__err(MER_ERR_IO, "%s: not a regular file", path);
    }
    size_t size = (size_t)sb.st_size;
    if (size < 8) {
        close(fd);
        return mer__err(MER_ERR_FORMAT, "%s: truncated: %zu bytes, too short for the 8-byte header length",
                        path, size);
    }
    void *m = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (m == MAP_FAILED) return mer__err(MER_ERR_IO, "%s: mmap failed: %s", path, strerror(e));
    st->shards[si].map = m;
    st->shards[si].map_size = size;
    return parse_any(st, si, m, size);
}

static int ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
}

static int cmp_cstr(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* A shard named by an index must be a plain relative path inside the checkpoint directory. */
static int safe_shard_name(const char *s) {
    if (!*s || s[0] == '/') return 0;
    for (const char *p = s; *p;) {
        const char *slash = strchr(p, '/');
        size_t n = slash ? (size_t)(slash - p) : strlen(p);
        if (n == 2 && p[0] == '.' && p[1] == '.') return 0;
        if (!slash) break;
        p = slash + 1;
    }
    return 1;
}

static mer_status open_index(mer_safetensors *st, const char *path) {
    char *text;
    size_t len;
    mer_status s = mer__read_file(path, &text, &len);
    if (s != MER_OK) return s;
    cJSON *root;
    s = mer__json_parse_text(&root, text, len, path);
    free(text);
    if (s != MER_OK) return s;
    const char **files = NULL;
    char *full = NULL;
    const cJSON *wm = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    if (!cJSON_IsObject(wm)) {
        s = mer__err(MER_ERR_FORMAT, "%s: no \"weight_map\" object", path);
        goto done;
    }
    int nw = cJSON_GetArraySize(wm);
    if (nw == 0) {
        s = mer__err(MER_ERR_FORMAT, "%s: \"weight_map\" is empty", path);
        goto done;
    }
    files = malloc((size_t)nw * sizeof *files);
    if (!files) {
        s = nomem(path);
        goto done;
    }
    int nf = 0;
    for (const cJSON *c = wm->child; c; c = c->next) {
        if (!cJSON_IsString(c) || !c->valuestring) {
            s = mer__err(MER_ERR_FORMAT, "%s: weight_map value of \"%.200s\" is not a file name", path, c->string);
            goto done;
        }
        if (!safe_shard_name(c->valuestring)) {
            s = mer__err(MER_ERR_FORMAT, "%s: weight_map names shard \"%.200s\" outside the checkpoint directory",
                         path, c->valuestring);
            goto done;
        }
        files[nf++] = c->valuestring;
    }
    qsort(files, (size_t)nf, sizeof *files, cmp_cstr);
    const char *slash = strrchr(path, '/');
    size_t dirlen = slash ? (size_t)(slash - path + 1) : 0;
    for (int i = 0; i < nf; i++) {
        if (i && !strcmp(files[i], files[i - 1])) continue;
        size_t fl = strlen(files[i]);
        free(full);
        full = malloc(dirlen + fl + 1);
        if (!full) {
            s = nomem(path);
            goto done;
        }
        memcpy(full, path, dirlen);
        memcpy(full + dirlen, files[i], fl + 1);
        if ((s = map_file(st, full)) != MER_OK) goto done;
    }
    if ((s = build_index(st)) != MER_OK) goto done;
    for (const cJSON *c = wm->child; c; c = c->next) {
        int64_t k = find_idx(st, c->string);
        if (k < 0) {
            s = mer__err(MER_ERR_NOT_FOUND, "%s: weight_map lists tensor \"%.200s\" in %s, which does not hold it",
                         path, c->string, c->valuestring);
            goto done;
        }
        const char *sp = st->shards[st->entries[k].shard].path;
        if (strcmp(sp + dirlen, c->valuestring) != 0) {
            s = mer__err(MER_ERR_FORMAT, "%s: weight_map puts tensor \"%.200s\" in %s, but it is in %s", path,
                         c->string, c->valuestring, sp);
            goto done;
        }
    }
done:
    free(full);
    free(files);
    cJSON_Delete(root);
    return s;
}

mer_status mer_safetensors_open(mer_safetensors **out, const char *path) {
    if (!out || !path) return mer__err(MER_ERR_INVALID_ARG, "mer_safetensors_open: NULL argument");
    *out = NULL;
    mer_safetensors *st = calloc(1, sizeof *st);
    if (!st) return nomem(path);
    mer_status s;
    struct stat sb;
    if (stat(path, &sb) != 0) {
        s = mer__err(errno == ENOENT ? MER_ERR_NOT_FOUND : MER_ERR_IO, "%s: %s", path, strerror(errno));
    } else if (S_ISDIR(sb.st_mode)) {
        size_t pl = strlen(path);
        char *p = malloc(pl + 40);
        if (!p) {
            s = nomem(path);
        } else {
            const char *sep = pl && path[pl - 1] == '/' ? "" : "/";
            /* safetensors first (mmapped, no pickle), then PyTorch's files, as transformers does */
            static const char *const names[] = {"model.safetensors", "model.safetensors.index.json",
                                                "pytorch_model.bin", "pytorch_model.bin.index.json"};
            int found = 0;
            s = MER_OK;
            for (size_t i = 0; !found && i < sizeof names / sizeof *names; i++) {
                snprintf(p, pl + 40, "%s%s%s", path, sep, names[i]);
                if (access(p, F_OK) != 0) continue;
                found = 1;
                if (ends_with(p, ".json")) {
                    s = open_index(st, p);
                } else {
                    s = map_file(st, p);
                    if (s == MER_OK) s = build_index(st);
                }
            }
            if (!found)
                s = mer__err(MER_ERR_NOT_FOUND,
                             "%s: directory holds no model.safetensors, pytorch_model.bin or their sharded "
                             "*.index.json",
                             path);
            free(p);
        }
    } else if (ends_with(path, ".json")) {
        s = open_index(st, path);
    } else {
        s = map_file(st, path);
        if (s == MER_OK) s = build_index(st);
    }
    if (s != MER_OK) {
        mer_safetensors_free(st);
        return s;
    }
    *out = st;
    return MER_OK;
}

mer_status mer__safetensors_open_memory(mer_safetensors **out, const void *buf, size_t size,
                                        const char *name) {
    if (!out) return mer__err(MER_ERR_INVALID_ARG, "mer__safetensors_open_memory: out is NULL");
    *out = NULL;
    if (!name) name = "<memory>";
    mer_safetensors *st = calloc(1, sizeof *st);
    if (!st) return nomem(name);
    int32_t si;
    mer_status s = add_shard(st, name, &si);
    if (s == MER_OK) s = parse_any(st, si, buf, size);
    if (s == MER_OK) s = build_index(st);
    if (s != MER_OK) {
        mer_safetensors_free(st);
        return s;
    }
    *out = st;
    return MER_OK;
}

/* ---- lookup ------------------------------------------------------------------------------ */

int64_t mer_safetensors_count(const mer_safetensors *st) { return st ? st->n : 0; }

const char *mer_safetensors_format(const mer_safetensors *st) {
    if (!st || !st->n_shards) return "safetensors";
    static const char *const names[] = {"safetensors", "pytorch zip", "pytorch legacy"};
    return names[st->shards[0].torch];
}

const char *mer_safetensors_path(const mer_safetensors *st) {
    return st && st->n_shards ? st->shards[0].path : "";
}

void mer_safetensors_release(const mer_safetensors *st, const void *p, size_t n) {
    if (!st || !p || !n) return;
    const uint8_t *a = p, *b = a + n;
    for (int32_t i = 0; i < st->n_shards; i++) {
        const shard *s = &st->shards[i];
        const uint8_t *m0 = s->map, *m1 = m0 + s->map_size;
        if (!s->map || a < m0 || b > m1) continue;
        /* only whole pages inside the range: a neighbour's bytes on a shared page stay resident */
        const uintptr_t pg = (uintptr_t)sysconf(_SC_PAGESIZE);
        uintptr_t lo = ((uintptr_t)a + pg - 1) & ~(pg - 1), hi = (uintptr_t)b & ~(pg - 1);
        if (hi > lo) madvise((void *)lo, hi - lo, MADV_DONTNEED); /* clean private pages: refaulted from the file */
        return;
    }
}

static const uint8_t *entry_data(const mer_safetensors *st, const entry *e) {
    return e->own ? (const uint8_t *)e->own : st->shards[e->shard].data + e->begin;
}

static void fill_entry(const mer_safetensors *st, const entry *e, mer_safetensors_entry *out) {
    memset(out, 0, sizeof *out);
    out->name = e->name;
    out->dtype = e->dtype;
    out->ndim = e->ndim;
    memcpy(out->shape, e->shape, sizeof e->shape);
    out->data = entry_data(st, e);
    out->nbytes = (size_t)(e->end - e->begin);
    out->shard = e->shard;
}

mer_status mer_safetensors_entry_at(const mer_safetensors *st, int64_t i, mer_safetensors_entry *e) {
    if (!st || !e || i < 0 || i >= st->n)
        return mer__err(MER_ERR_INVALID_ARG, "mer_safetensors_entry_at: index %lld out of range",
                        (long long)i);
    fill_entry(st, &st->entries[i], e);
    return MER_OK;
}

static mer_status find_entry(const mer_safetensors *st, const char *name, const entry **out) {
    if (!st || !name) return mer__err(MER_ERR_INVALID_ARG, "safetensors lookup: NULL argument");
    int64_t k = find_idx(st, name);
    if (k < 0) {
        if (st->n_shards > 1)
            return mer__err(MER_ERR_NOT_FOUND, "%s (and %d more shards): tensor \"%.200s\" not found",
                            st->shards[0].path, (int)st->n_shards - 1, name);
        return mer__err(MER_ERR_NOT_FOUND, "%s: tensor \"%.200s\" not found", mer_safetensors_path(st), name);
    }
    *out = &st->entries[k];
    return MER_OK;
}

mer_status mer_safetensors_find(const mer_safetensors *st, const char *name, mer_safetensors_entry *e) {
    const entry *en;
    mer_status s = find_entry(st, name, &en);
    if (s != MER_OK) return s;
    if (e) fill_entry(st, en, e);
    return MER_OK;
}

const char *mer_safetensors_metadata(const mer_safetensors *st, const char *key) {
    if (!st || !key) return NULL;
    for (int32_t i = 0; i < st->n_meta; i++)
        if (!strcmp(st->meta_keys[i], key)) return st->meta_vals[i];
    return NULL;
}

static mer_status check_shape(const mer_safetensors *st, const entry *e, int32_t ndim, const int64_t *shape) {
    if (ndim < 0) return MER_OK;
    int same = ndim == e->ndim;
    for (int32_t i = 0; same && i < ndim; i++) same = shape[i] == e->shape[i];
    if (same) return MER_OK;
    char want[200], got[200];
    if (ndim > MER_MAX_DIMS) ndim = MER_MAX_DIMS;
    mer_shape_str(want, sizeof want, ndim, shape);
    mer_shape_str(got, sizeof got, e->ndim, e->shape);
    return mer__err(MER_ERR_SHAPE, "%s: tensor \"%.200s\": expected shape %s, got %s",
                    st->shards[e->shard].path, e->name, want, got);
}

mer_status mer_safetensors_get(const mer_safetensors *st, const char *name, mer_dtype dtype,
                               int32_t ndim, const int64_t *shape, mer_tensor *out) {
    const entry *e;
    mer_status s = find_entry(st, name, &e);
    if (s != MER_OK) return s;
    if (e->dtype != dtype)
        return mer__err(MER_ERR_DTYPE, "%s: tensor \"%.200s\": expected dtype %s, got %s",
                        st->shards[e->shard].path, e->name, mer_dtype_name(dtype), mer_dtype_name(e->dtype));
    if ((s = check_shape(st, e, ndim, shape)) != MER_OK) return s;
    if (!out) return MER_OK;
    /* the view is read-only memory: mer_tensor has no const flavour */
    return mer_tensor_view(out, (void *)entry_data(st, e), e->dtype, e->ndim, e->shape);
}

mer_status mer_safetensors_get_f32(mer_safetensors *st, const char *name, int32_t ndim,
                                   const int64_t *shape, const float **out) {
    const entry *ce;
    mer_status s = find_entry(st, name, &ce);
    if (s != MER_OK) return s;
    entry *e = &st->entries[ce - st->entries];
    if (e->dtype != MER_DTYPE_F32 && e->dtype != MER_DTYPE_F16 && e->dtype != MER_DTYPE_BF16)
        return mer__err(MER_ERR_DTYPE, "%s: tensor \"%.200s\": expected dtype f32, f16 or bf16, got %s",
                        st->shards[e->shard].path, e->name, mer_dtype_name(e->dtype));
    if ((s = check_shape(st, e, ndim, shape)) != MER_OK) return s;
    const uint8_t *src = entry_data(st, e);
    if (e->dtype == MER_DTYPE_F32) {
        if (out) *out = (const float *)src;
        return MER_OK;
    }
    if (!e->f32) {
        int64_t n = (int64_t)(e->end - e->begin) / 2;
        float *buf = mer__alloc((size_t)(n ? n : 1) * sizeof(float));
        if (!buf) return nomem(st->shards[e->shard].path);
        mer_convert_to_f32(buf, src, e->dtype, n);
        e->f32 = buf;
    }
    if (out) *out = e->f32;
    return MER_OK;
}

/* ---- writer ------------------------------------------------------------------------------ */

typedef struct {
    char *name;
    mer_dtype dtype;
    int32_t ndim;
    int64_t shape[MER_MAX_DIMS];
    void *data;           /* owned copy, or the caller's bytes when borrowed */
    int borrowed;
    size_t nbytes;
} wtensor;

struct mer_safetensors_writer {
    wtensor *t;
    int64_t n, cap;
    char **mk, **mv;
    int32_t nm;
};

mer_status mer_safetensors_writer_init(mer_safetensors_writer **out) {
    if (!out) return mer__err(MER_ERR_INVALID_ARG, "mer_safetensors_writer_init: out is NULL");
    *out = calloc(1, sizeof **out);
    return *out ? MER_OK : mer__err(MER_ERR_NOMEM, "safetensors writer: out of memory");
}

void mer_safetensors_writer_free(mer_safetensors_writer *w) {
    if (!w) return;
    for (int64_t i = 0; i < w->n; i++) {
        free(w->t[i].name);
        if (!w->t[i].borrowed) free(w->t[i].data);
    }
    for (int32_t i = 0; i < w->nm; i++) {
        free(w->mk[i]);
        free(w->mv[i]);
    }
    free(w->t);
    free(w->mk);
    free(w->mv);
    free(w);
}

static mer_status writer_add(mer_safetensors_writer *w, const char *name, mer_dtype dtype, int32_t ndim,
                             const int64_t *shape, const void *data, int borrow);

mer_status mer_safetensors_writer_add(mer_safetensors_writer *w, const char *name, mer_dtype dtype,
                                      int32_t ndim, const int64_t *shape, const void *data) {
    return writer_add(w, name, dtype, ndim, shape, data, 0);
}

mer_status mer_safetensors_writer_add_borrowed(mer_safetensors_writer *w, const char *name, mer_dtype dtype,
                                               int32_t ndim, const int64_t *shape, const void *data) {
    return writer_add(w, name, dtype, ndim, shape, data, 1);
}

static mer_status writer_add(mer_safetensors_writer *w, const char *name, mer_dtype dtype, int32_t ndim,
                             const int64_t *shape, const void *data, int borrow) {
    if (!w || !name) return mer__err(MER_ERR_INVALID_ARG, "safetensors writer: NULL argument");
    if (!strcmp(name, "__metadata__"))
        return mer__err(MER_ERR_INVALID_ARG, "safetensors writer: \"__metadata__\" is reserved");
    if (mer_dtype_size(dtype) == 0)
        return mer__err(MER_ERR_INVALID_ARG, "safetensors writer: tensor \"%.200s\": bad dtype %d", name, (int)dtype);
    if (ndim < 0 || ndim > MER_MAX_DIMS || (ndim > 0 && !shape))
        return mer__err(MER_ERR_INVALID_ARG, "safetensors writer: tensor \"%.200s\": bad rank %d", name, (int)ndim);
    int64_t numel = 1;
    for (int32_t i = 0; i < ndim; i++)
        if (shape[i] < 0 || !mer__mul_overflow(numel, shape[i], &numel))
            return mer__err(MER_ERR_INVALID_ARG, "safetensors writer: tensor \"%.200s\": bad shape", name);
    int64_t nbytes;
    if (!mer__mul_overflow(numel, (int64_t)mer_dtype_size(dtype), &nbytes) || nbytes > ((int64_t)1 << 53))
        return mer__err(MER_ERR_INVALID_ARG, "safetensors writer: tensor \"%.200s\": too large", name);
    if (nbytes > 0 && !data)
        return mer__err(MER_ERR_INVALID_ARG, "safetensors writer: tensor \"%.200s\": data is NULL", name);
    for (int64_t i = 0; i < w->n; i++)
        if (!strcmp(w->t[i].name, name))
            return mer__err(MER_ERR_INVALID_ARG, "safetensors writer: tensor \"%.200s\" added twice", name);
    if (w->n == w->cap) {
        int64_t nc = w->cap ? w->cap * 2 : 32;
        wtensor *nt = realloc(w->t, (size_t)nc * sizeof *nt);
        if (!nt) return mer__err(MER_ERR_NOMEM, "safetensors writer: out of memory");
        w->t = nt;
        w->cap = nc;
    }
    wtensor *t = &w->t[w->n];
    memset(t, 0, sizeof *t);
    t->name = strdup(name);
    t->borrowed = borrow;
    t->data = borrow ? (void *)data : malloc(nbytes ? (size_t)nbytes : 1);
    if (!t->name || (!borrow && !t->data)) {
        free(t->name);
        if (!borrow) free(t->data);
        return mer__err(MER_ERR_NOMEM, "safetensors writer: tensor \"%.200s\": cannot copy %lld bytes", name,
                        (long long)nbytes);
    }
    if (nbytes && !borrow) memcpy(t->data, data, (size_t)nbytes);
    t->dtype = dtype;
    t->ndim = ndim;
    for (int32_t i = 0; i < ndim; i++) t->shape[i] = shape[i];
    t->nbytes = (size_t)nbytes;
    w->n++;
    return MER_OK;
}

mer_status mer_safetensors_writer_set_metadata(mer_safetensors_writer *w, const char *key,
                                               const char *value) {
    if (!w || !key || !value) return mer__err(MER_ERR_INVALID_ARG, "safetensors writer: NULL metadata");
    for (int32_t i = 0; i < w->nm; i++) {
        if (!strcmp(w->mk[i], key)) {
            char *v = strdup(value);
            if (!v) return mer__err(MER_ERR_NOMEM, "safetensors writer: out of memory");
            free(w->mv[i]);
            w->mv[i] = v;
            return MER_OK;
        }
    }
    char **nk = realloc(w->mk, (size_t)(w->nm + 1) * sizeof *nk);
    if (!nk) return mer__err(MER_ERR_NOMEM, "safetensors writer: out of memory");
    w->mk = nk;
    char **nv = realloc(w->mv, (size_t)(w->nm + 1) * sizeof *nv);
    if (!nv) return mer__err(MER_ERR_NOMEM, "safetensors writer: out of memory");
    w->mv = nv;
    char *k = strdup(key), *v = strdup(value);
    if (!k || !v) {
        free(k);
        free(v);
        return mer__err(MER_ERR_NOMEM, "safetensors writer: out of memory");
    }
    w->mk[w->nm] = k;
    w->mv[w->nm] = v;
    w->nm++;
    return MER_OK;
}

mer_status mer_safetensors_writer_save(mer_safetensors_writer *w, const char *path) {
    if (!w || !path) return mer__err(MER_ERR_INVALID_ARG, "safetensors writer: NULL argument");
    mer__sb h = {0};
    mer__sb_str(&h, "{");
    int first = 1;
    if (w->nm) {
        mer__sb_str(&h, "\"__metadata__\":{");
        for (int32_t i = 0; i < w->nm; i++) {
            if (i) mer__sb_str(&h, ",");
            mer__sb_json_str(&h, w->mk[i]);
            mer__sb_str(&h, ":");
            mer__sb_json_str(&h, w->mv[i]);
        }
        mer__sb_str(&h, "}");
        first = 0;
    }
    /* Group tensors by element size, largest first (in the order added within a size), as the
     * reference writer does: with the 8-byte aligned buffer every tensor is then aligned. */
    int64_t *order = malloc((size_t)(w->n ? w->n : 1) * sizeof *order);
    if (!order) {
        mer__sb_free(&h);
        return nomem(path);
    }
    int64_t no = 0;
    for (size_t sz = 8; sz >= 1; sz /= 2)
        for (int64_t i = 0; i < w->n; i++)
            if (mer_dtype_size(w->t[i].dtype) == sz) order[no++] = i;
    uint64_t off = 0;
    for (int64_t oi = 0; oi < no; oi++) {
        const wtensor *t = &w->t[order[oi]];
        if (!first) mer__sb_str(&h, ",");
        first = 0;
        mer__sb_json_str(&h, t->name);
        mer__sb_str(&h, ":{\"dtype\":\"");
        mer__sb_str(&h, mer__safetensors_dtype_str(t->dtype));
        mer__sb_str(&h, "\",\"shape\":[");
        for (int32_t d = 0; d < t->ndim; d++) mer__sb_printf(&h, d ? ",%lld" : "%lld", (long long)t->shape[d]);
        mer__sb_printf(&h, "],\"data_offsets\":[%lld,", (long long)off);
        off += t->nbytes;
        mer__sb_printf(&h, "%lld]}", (long long)off);
    }
    mer__sb_str(&h, "}");
    /* pad with spaces so the buffer starts 8-byte aligned, as the reference writer does */
    while (!h.oom && h.len % 8) mer__sb_str(&h, " ");
    mer_status s = MER_OK;
    if (h.oom) {
        s = mer__err(MER_ERR_NOMEM, "%s: out of memory building the header", path);
        goto done;
    }
    if (h.len > MER__SAFETENSORS_MAX_HEADER) {
        s = mer__err(MER_ERR_INVALID_ARG, "%s: header of %zu bytes exceeds the format's limit", path, h.len);
        goto done;
    }
    mer__afile f;
    if ((s = mer__afile_open(&f, path)) != MER_OK) goto done;
    uint8_t len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (uint8_t)((uint64_t)h.len >> (8 * i));
    s = mer__afile_write(&f, len8, 8);
    if (s == MER_OK) s = mer__afile_write(&f, h.p, h.len);
    for (int64_t oi = 0; oi < no && s == MER_OK; oi++) {
        const wtensor *t = &w->t[order[oi]];
        if (t->nbytes) s = mer__afile_write(&f, t->data, t->nbytes);
    }
    if (s == MER_OK) s = mer__afile_commit(&f);
done:
    free(order);
    mer__sb_free(&h);
    return s;
}
