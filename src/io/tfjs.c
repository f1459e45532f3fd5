/*
 * tfjs.c -- reader of TensorFlow.js weights: a JSON manifest plus binary shards.
 *
 * The manifest is an array of weight groups, each {"paths": [shard file names],
 * "weights": [{"name", "shape", "dtype", "quantization"?}]}. A group's shards, concatenated in
 * the order listed, hold its weights back to back in the order listed, little-endian. A weight
 * stored quantised takes the quantisation dtype's size per element: uint8/uint16 with a
 * per-tensor affine map (value = q * scale + min), or float16. Everything is dequantised to
 * float32 at load time (the face models are small), so lookups are plain pointers afterwards.
 * Semantics follow tfjs-core io (decodeWeights, loadWeights); validation is stricter: every
 * byte of every shard must be accounted for, names are unique, shard paths stay inside the
 * manifest's directory.
 */
#include "internal.h"

#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

typedef struct {
    char *name;
    int32_t ndim;
    int64_t shape[MER_MAX_DIMS];
    int64_t numel;
    mer_dtype stored;   /* element type in the shard (after quantisation) */
    float *data;        /* dequantised float32, owned */
} tfjs_tensor;

struct mer_tfjs {
    char *path;         /* manifest path (or name) for messages */
    tfjs_tensor *t;
    int64_t n;
};

/* ---- one weight's description -------------------------------------------------------------- */

typedef struct {
    const char *name;
    int32_t ndim;
    int64_t shape[MER_MAX_DIMS];
    int64_t numel;
    int dtype;              /* 0 float32, 1 int32, 2 bool */
    int quant;              /* 0 none, 1 uint8, 2 uint16, 3 float16 */
    double scale, min;
    int64_t nbytes;         /* bytes in the shard */
} weight_spec;

static mer_status parse_weight(const char *src, const cJSON *w, int64_t gi, int64_t wi,
                               weight_spec *s) {
    memset(s, 0, sizeof *s);
    if (!cJSON_IsObject(w))
        return mer__err(MER_ERR_FORMAT, "%s: group %lld weight %lld is not an object", src,
                        (long long)gi, (long long)wi);
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(w, "name");
    if (!cJSON_IsString(name) || !name->valuestring[0])
        return mer__err(MER_ERR_FORMAT, "%s: group %lld weight %lld has no \"name\" string", src,
                        (long long)gi, (long long)wi);
    s->name = name->valuestring;
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(w, "shape");
    if (!cJSON_IsArray(shape))
        return mer__err(MER_ERR_FORMAT, "%s: weight %s has no \"shape\" array", src, s->name);
    int n = cJSON_GetArraySize(shape);
    if (n > MER_MAX_DIMS)
        return mer__err(MER_ERR_SHAPE, "%s: weight %s has rank %d (at most %d supported)", src,
                        s->name, n, MER_MAX_DIMS);
    s->ndim = n;
    s->numel = 1;
    for (int i = 0; i < n; i++) {
        const cJSON *d = cJSON_GetArrayItem(shape, i);
        if (!cJSON_IsNumber(d) || d->valuedouble < 0 || d->valuedouble > 1e12 ||
            d->valuedouble != floor(d->valuedouble))
            return mer__err(MER_ERR_SHAPE, "%s: weight %s: dimension %d is not a non-negative "
                            "integer", src, s->name, i);
        s->shape[i] = (int64_t)d->valuedouble;
        if (!mer__mul_overflow(s->numel, s->shape[i], &s->numel))
            return mer__err(MER_ERR_NOMEM, "%s: weight %s: element count overflows", src, s->name);
    }
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(w, "dtype");
    if (!cJSON_IsString(dt))
        return mer__err(MER_ERR_FORMAT, "%s: weight %s has no \"dtype\" string", src, s->name);
    if (!strcmp(dt->valuestring, "float32")) s->dtype = 0;
    else if (!strcmp(dt->valuestring, "int32")) s->dtype = 1;
    else if (!strcmp(dt->valuestring, "bool")) s->dtype = 2;
    else
        return mer__err(MER_ERR_DTYPE, "%s: weight %s: dtype \"%.32s\" is not supported "
                        "(expected float32, int32 or bool)", src, s->name, dt->valuestring);
    int64_t esize = s->dtype == 2 ? 1 : 4;
    const cJSON *q = cJSON_GetObjectItemCaseSensitive(w, "quantization");
    if (q && !cJSON_IsNull(q)) {
        if (!cJSON_IsObject(q))
            return mer__err(MER_ERR_FORMAT, "%s: weight %s: \"quantization\" is not an object",
                            src, s->name);
        const cJSON *qd = cJSON_GetObjectItemCaseSensitive(q, "dtype");
        if (!cJSON_IsString(qd))
            return mer__err(MER_ERR_FORMAT, "%s: weight %s: quantization has no \"dtype\"", src,
                            s->name);
        if (!strcmp(qd->valuestring, "uint8")) s->quant = 1, esize = 1;
        else if (!strcmp(qd->valuestring, "uint16")) s->quant = 2, esize = 2;
        else if (!strcmp(qd->valuestring, "float16")) s->quant = 3, esize = 2;
        else
            return mer__err(MER_ERR_DTYPE, "%s: weight %s: quantization dtype \"%.32s\" is not "
                            "supported (expected uint8, uint16 or float16)", src, s->name,
                            qd->valuestring);
        if (s->dtype == 2)
            return mer__err(MER_ERR_DTYPE, "%s: weight %s: a bool tensor cannot be quantised",
                            src, s->name);
        if (s->quant != 3) {
            const cJSON *sc = cJSON_GetObjectItemCaseSensitive(q, "scale");
            const cJSON *mn = cJSON_GetObjectItemCaseSensitive(q, "min");
            if (!cJSON_IsNumber(sc) || !cJSON_IsNumber(mn) || !isfinite(sc->valuedouble) ||
                !isfinite(mn->valuedouble))
                return mer__err(MER_ERR_FORMAT, "%s: weight %s: %s quantization needs finite "
                                "\"scale\" and \"min\"", src, s->name, qd->valuestring);
            s->scale = sc->valuedouble;
            s->min = mn->valuedouble;
        }
    }
    if (!mer__mul_overflow(s->numel, esize, &s->nbytes))
        return mer__err(MER_ERR_NOMEM, "%s: weight %s: byte size overflows", src, s->name);
    return MER_OK;
}

/* Decode one weight from its bytes into float32 (as tfjs decodeWeights does: the affine map in
 * double precision, stored as float32). */
static void decode_weight(float *out, const uint8_t *p, const weight_spec *s) {
    for (int64_t i = 0; i < s->numel; i++) {
        float v;
        switch (s->quant) {
        case 1: v = (float)(p[i] * s->scale + s->min); break;
        case 2: {
            uint16_t q = (uint16_t)(p[2 * i] | p[2 * i + 1] << 8);
            v = (float)(q * s->scale + s->min);
            break;
        }
        case 3: v = mer__f16_to_f32((uint16_t)(p[2 * i] | p[2 * i + 1] << 8)); break;
        default:
            if (s->dtype == 2) {
                v = p[i] ? 1.0f : 0.0f;
            } else if (s->dtype == 1) {
                int32_t x;
                memcpy(&x, p + 4 * i, 4);
                v = (float)x;
            } else {
                memcpy(&v, p + 4 * i, 4);
            }
        }
        out[i] = v;
    }
}

/* ---- building the handle ------------------------------------------------------------------ */

/* Shard access: either files next to the manifest, or one memory buffer holding every shard of
 * every group back to back (mer_tfjs_parse). */
typedef struct {
    const char *dir;            /* directory of the manifest ("" = cwd), or NULL for memory */
    const uint8_t *mem;
    size_t mem_size, mem_used;
} shard_source;

static int path_is_safe(const char *p) {
    if (!p[0] || p[0] == '/') return 0;
    for (const char *s = p; *s; s++) {
        if (s[0] == '.' && s[1] == '.' && (s == p || s[-1] == '/') && (s[2] == '/' || !s[2]))
            return 0;
    }
    return 1;
}

/* Read the shards of one group into *buf (malloc'd), total *size bytes. */
static mer_status read_group(const char *src, const cJSON *paths, int64_t gi, int64_t need,
                             shard_source *ss, uint8_t **buf, size_t *size) {
    *buf = NULL;
    *size = 0;
    if (!ss->dir) {
        /* memory: the group takes exactly the bytes its weights need */
        if ((uint64_t)need > ss->mem_size - ss->mem_used)
            return mer__err(MER_ERR_FORMAT, "%s: group %lld needs %lld bytes but only %zu remain "
                            "in the shard data (short shard)", src, (long long)gi,
                            (long long)need, ss->mem_size - ss->mem_used);
        *buf = malloc(need > 0 ? (size_t)need : 1);
        if (!*buf) return mer__err(MER_ERR_NOMEM, "%s: out of memory", src);
        if (need > 0) memcpy(*buf, ss->mem + ss->mem_used, (size_t)need);
        ss->mem_used += (size_t)need;
        *size = (size_t)need;
        return MER_OK;
    }
    int np = cJSON_GetArraySize(paths);
    size_t total = 0;
    uint8_t *acc = NULL;
    for (int i = 0; i < np; i++) {
        const cJSON *p = cJSON_GetArrayItem(paths, i);
        if (!cJSON_IsString(p) || !path_is_safe(p->valuestring)) {
            free(acc);
            return mer__err(MER_ERR_FORMAT, "%s: group %lld path %d is not a relative file name "
                            "inside the model directory", src, (long long)gi, i);
        }
        size_t plen = strlen(ss->dir) + strlen(p->valuestring) + 2;
        char *full = malloc(plen);
        if (!full) {
            free(acc);
            return mer__err(MER_ERR_NOMEM, "%s: out of memory", src);
        }
        snprintf(full, plen, "%s%s%s", ss->dir, ss->dir[0] ? "/" : "", p->valuestring);
        char *data = NULL;
        size_t n = 0;
        mer_status st = mer__read_file(full, &data, &n);
        free(full);
        if (st != MER_OK) {
            free(acc);
            mer__err_prefix("%s: cannot read weight shard", src);
            return st;
        }
        uint8_t *grown = realloc(acc, total + n + 1);
        if (!grown) {
            free(acc);
            free(data);
            return mer__err(MER_ERR_NOMEM, "%s: out of memory reading shards", src);
        }
        acc = grown;
        memcpy(acc + total, data, n);
        total += n;
        free(data);
    }
    if ((uint64_t)need > total) {
        free(acc);
        return mer__err(MER_ERR_FORMAT, "%s: group %lld: shards hold %zu bytes but the weights "
                        "need %lld (short or truncated shard)", src, (long long)gi, total,
                        (long long)need);
    }
    if ((uint64_t)need < total) {
        free(acc);
        return mer__err(MER_ERR_FORMAT, "%s: group %lld: shards hold %zu bytes but the weights "
                        "need only %lld (shard does not match the manifest)", src, (long long)gi,
                        total, (long long)need);
    }
    *buf = acc;
    *size = total;
    return MER_OK;
}

static mer_status build(mer_tfjs **out, const char *text, size_t len, const char *src,
                        shard_source *ss) {
    *out = NULL;
    cJSON *root = cJSON_ParseWithLength(text, len);
    if (!root) return mer__err(MER_ERR_FORMAT, "%s: not valid JSON", src);
    mer_status st = MER_OK;
    mer_tfjs *w = calloc(1, sizeof *w);
    if (!w || !(w->path = strdup(src))) {
        st = mer__err(MER_ERR_NOMEM, "%s: out of memory", src);
        goto done;
    }
    if (!cJSON_IsArray(root)) {
        st = mer__err(MER_ERR_FORMAT, "%s: a weights manifest is a JSON array of groups", src);
        goto done;
    }
    /* count weights first so the table is allocated once */
    int64_t total = 0;
    int ng = cJSON_GetArraySize(root);
    for (int g = 0; g < ng; g++) {
        const cJSON *grp = cJSON_GetArrayItem(root, g);
        const cJSON *ws = cJSON_GetObjectItemCaseSensitive(grp, "weights");
        const cJSON *ps = cJSON_GetObjectItemCaseSensitive(grp, "paths");
        if (!cJSON_IsObject(grp) || !cJSON_IsArray(ws) || !cJSON_IsArray(ps)) {
            st = mer__err(MER_ERR_FORMAT, "%s: group %d needs \"paths\" and \"weights\" arrays",
                          src, g);
            goto done;
        }
        total += cJSON_GetArraySize(ws);
    }
    w->t = calloc(total > 0 ? (size_t)total : 1, sizeof *w->t);
    if (!w->t) {
        st = mer__err(MER_ERR_NOMEM, "%s: out of memory", src);
        goto done;
    }
    for (int g = 0; g < ng; g++) {
        const cJSON *grp = cJSON_GetArrayItem(root, g);
        const cJSON *ws = cJSON_GetObjectItemCaseSensitive(grp, "weights");
        int nw = cJSON_GetArraySize(ws);
        weight_spec *specs = calloc(nw > 0 ? (size_t)nw : 1, sizeof *specs);
        if (!specs) {
            st = mer__err(MER_ERR_NOMEM, "%s: out of memory", src);
            goto done;
        }
        int64_t need = 0;
        for (int i = 0; i < nw && st == MER_OK; i++) {
            st = parse_weight(src, cJSON_GetArrayItem(ws, i), g, i, &specs[i]);
            if (st == MER_OK && !mer__add_overflow(need, specs[i].nbytes, &need))
                st = mer__err(MER_ERR_NOMEM, "%s: group %d: byte size overflows", src, g);
        }
        uint8_t *buf = NULL;
        size_t size = 0;
        if (st == MER_OK)
            st = read_group(src, cJSON_GetObjectItemCaseSensitive(grp, "paths"), g, need, ss,
                            &buf, &size);
        int64_t off = 0;
        for (int i = 0; i < nw && st == MER_OK; i++) {
            const weight_spec *s = &specs[i];
            for (int64_t j = 0; j < w->n; j++)
                if (!strcmp(w->t[j].name, s->name)) {
                    st = mer__err(MER_ERR_FORMAT, "%s: weight %s appears twice", src, s->name);
                    break;
                }
            if (st != MER_OK) break;
            tfjs_tensor *t = &w->t[w->n];
            t->name = strdup(s->name);
            t->data = mer__alloc((size_t)(s->numel > 0 ? s->numel : 1) * sizeof(float));
            if (!t->name || !t->data) {
                free(t->name);
                mer__free(t->data);
                st = mer__err(MER_ERR_NOMEM, "%s: out of memory for weight %s", src, s->name);
                break;
            }
            t->ndim = s->ndim;
            memcpy(t->shape, s->shape, sizeof t->shape);
            t->numel = s->numel;
            t->stored = s->quant == 1 ? MER_DTYPE_U8 : s->quant == 2 ? MER_DTYPE_I16
                      : s->quant == 3 ? MER_DTYPE_F16 : s->dtype == 1 ? MER_DTYPE_I32
                      : s->dtype == 2 ? MER_DTYPE_BOOL : MER_DTYPE_F32;
            decode_weight(t->data, buf + off, s);
            w->n++;
            off += s->nbytes;
            for (int64_t k = 0; k < s->numel; k++)
                if (!isfinite(t->data[k])) {
                    st = mer__err(MER_ERR_NUMERIC, "%s: weight %s holds NaN or Inf at element "
                                  "%lld", src, s->name, (long long)k);
                    break;
                }
        }
        free(buf);
        free(specs);
        if (st != MER_OK) goto done;
    }
    if (!ss->dir && ss->mem_used != ss->mem_size)
        st = mer__err(MER_ERR_FORMAT, "%s: %zu bytes of shard data are not described by the "
                      "manifest", src, ss->mem_size - ss->mem_used);
done:
    cJSON_Delete(root);
    if (st != MER_OK) {
        mer_tfjs_free(w);
        return st;
    }
    *out = w;
    return MER_OK;
}

/* ---- public API --------------------------------------------------------------------------- */

mer_status mer_tfjs_load(mer_tfjs **out, const char *manifest_path) {
    if (!out || !manifest_path) return mer__err(MER_ERR_INVALID_ARG, "mer_tfjs_load: NULL argument");
    *out = NULL;
    char *text = NULL;
    size_t len = 0;
    mer_status st = mer__read_file(manifest_path, &text, &len);
    if (st != MER_OK) {
        mer__err_prefix("cannot read weights manifest");
        return st;
    }
    char *dir = strdup(manifest_path);
    if (!dir) {
        free(text);
        return mer__err(MER_ERR_NOMEM, "%s: out of memory", manifest_path);
    }
    char *slash = strrchr(dir, '/');
    if (slash) {
        if (slash == dir) slash[1] = '\0';
        else *slash = '\0';
    } else {
        dir[0] = '\0';
    }
    shard_source ss = {dir, NULL, 0, 0};
    st = build(out, text, len, manifest_path, &ss);
    free(dir);
    free(text);
    return st;
}

mer_status mer_tfjs_parse(mer_tfjs **out, const char *manifest, size_t len, const void *shards,
                          size_t shards_size, const char *name) {
    if (!out || (!manifest && len) || (!shards && shards_size))
        return mer__err(MER_ERR_INVALID_ARG, "mer_tfjs_parse: NULL argument");
    *out = NULL;
    shard_source ss = {NULL, shards, shards_size, 0};
    return build(out, manifest ? manifest : "", len, name ? name : "<memory>", &ss);
}

void mer_tfjs_free(mer_tfjs *w) {
    if (!w) return;
    for (int64_t i = 0; i < w->n; i++) {
        free(w->t[i].name);
        mer__free(w->t[i].data);
    }
    free(w->t);
    free(w->path);
    free(w);
}

int64_t mer_tfjs_count(const mer_tfjs *w) { return w ? w->n : 0; }

static void fill_entry(const tfjs_tensor *t, mer_tfjs_entry *e) {
    e->name = t->name;
    e->stored = t->stored;
    e->ndim = t->ndim;
    memcpy(e->shape, t->shape, sizeof e->shape);
    e->numel = t->numel;
    e->data = t->data;
}

mer_status mer_tfjs_entry_at(const mer_tfjs *w, int64_t i, mer_tfjs_entry *e) {
    if (!w || !e || i < 0 || i >= w->n)
        return mer__err(MER_ERR_INVALID_ARG, "mer_tfjs_entry_at: index %lld out of range",
                        (long long)i);
    fill_entry(&w->t[i], e);
    return MER_OK;
}

mer_status mer_tfjs_find(const mer_tfjs *w, const char *name, mer_tfjs_entry *e) {
    if (!w || !name || !e) return mer__err(MER_ERR_INVALID_ARG, "mer_tfjs_find: NULL argument");
    for (int64_t i = 0; i < w->n; i++)
        if (!strcmp(w->t[i].name, name)) {
            fill_entry(&w->t[i], e);
            return MER_OK;
        }
    return mer__err(MER_ERR_NOT_FOUND, "%s: no weight named %s", w->path, name);
}

mer_status mer_tfjs_get(const mer_tfjs *w, const char *name, int32_t ndim, const int64_t *shape,
                        const float **out) {
    mer_tfjs_entry e;
    mer_status st = mer_tfjs_find(w, name, &e);
    if (st != MER_OK) return st;
    if (ndim >= 0) {
        int same = e.ndim == ndim;
        for (int32_t i = 0; same && i < ndim; i++) same = e.shape[i] == shape[i];
        if (!same) {
            char want[128], got[128];
            mer_shape_str(want, sizeof want, ndim, shape);
            mer_shape_str(got, sizeof got, e.ndim, e.shape);
            return mer__err(MER_ERR_SHAPE, "%s: weight %s has shape %s, expected %s", w->path,
                            name, got, want);
        }
    }
    *out = e.data;
    return MER_OK;
}

const char *mer_tfjs_path(const mer_tfjs *w) { return w ? w->path : ""; }
