/*
 * json.c -- JSON documents (Hugging Face config.json / preprocessor_config.json, run configs)
 * through cJSON, with typed getters addressed by a dotted path ("vision_config.hidden_size",
 * "a.0.b" indexes arrays). Every error names the file and the key.
 *
 * Stricter than cJSON alone: trailing non-whitespace, repeated object keys and integers that
 * are not integral (3.5 for an int) are errors. A null value counts as absent for the *_or
 * getters and mer_json_has, because configs write optional settings as null.
 */
#include "io_internal.h"

#include <errno.h>
#include <math.h>
#include <string.h>

struct mer_json {
    cJSON *root;
    char *name;
};

/* ---- parsing with strict checks ---------------------------------------------------------- */

static int cmp_str_ptr(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* First repeated key in any object under v, or NULL. Sorting keys keeps this O(n log n) for
 * the large objects of safetensors headers. */
static const char *find_dup_key(const cJSON *v, mer_status *st) {
    if (!cJSON_IsObject(v) && !cJSON_IsArray(v)) return NULL;
    size_t n = 0;
    for (const cJSON *c = v->child; c; c = c->next) n++;
    if (cJSON_IsObject(v) && n > 1) {
        const char **keys = malloc(n * sizeof *keys);
        if (!keys) {
            *st = MER_ERR_NOMEM;
            return NULL;
        }
        size_t k = 0;
        for (const cJSON *c = v->child; c; c = c->next) keys[k++] = c->string ? c->string : "";
        qsort(keys, n, sizeof *keys, cmp_str_ptr);
        const char *dup = NULL;
        for (size_t i = 1; i < n && !dup; i++)
            if (!strcmp(keys[i - 1], keys[i])) dup = keys[i];
        free(keys);
        if (dup) return dup;
    }
    for (const cJSON *c = v->child; c; c = c->next) {
        const char *d = find_dup_key(c, st);
        if (d || *st != MER_OK) return d;
    }
    return NULL;
}

static void line_col(const char *text, size_t pos, int *line, int *col) {
    *line = 1;
    *col = 1;
    for (size_t i = 0; i < pos; i++) {
        if (text[i] == '\n') {
            (*line)++;
            *col = 1;
        } else {
            (*col)++;
        }
    }
}

mer_status mer__json_parse_text(cJSON **out, const char *text, size_t len, const char *name) {
    *out = NULL;
    if (!name) name = "<json>";
    if (!text || len == 0) return mer__err(MER_ERR_FORMAT, "%s: empty JSON document", name);
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!root) {
        size_t pos = end && end >= text && end <= text + len ? (size_t)(end - text) : 0;
        int line, col;
        line_col(text, pos, &line, &col);
        return mer__err(MER_ERR_FORMAT, "%s: invalid JSON at line %d, column %d", name, line, col);
    }
    size_t pos = end && end >= text && end <= text + len ? (size_t)(end - text) : len;
    for (size_t i = pos; i < len; i++) {
        char ch = text[i];
        if (ch != ' ' && ch != '\t' && ch != '\n' && ch != '\r') {
            cJSON_Delete(root);
            int line, col;
            line_col(text, i, &line, &col);
            return mer__err(MER_ERR_FORMAT, "%s: unexpected data after the JSON value at line %d, column %d",
                            name, line, col);
        }
    }
    mer_status st = MER_OK;
    const char *dup = find_dup_key(root, &st);
    if (st != MER_OK) {
        cJSON_Delete(root);
        return mer__err(st, "%s: out of memory checking JSON keys", name);
    }
    if (dup) {
        mer_status s = mer__err(MER_ERR_FORMAT, "%s: duplicate key \"%.200s\" in a JSON object", name, dup);
        cJSON_Delete(root);
        return s;
    }
    *out = root;
    return MER_OK;
}

bool mer__json_integral(const cJSON *v, int64_t lo, int64_t hi, int64_t *out) {
    if (!cJSON_IsNumber(v)) return false;
    double d = v->valuedouble;
    /* beyond 2^53 a double no longer holds every integer, so the file's digits may be lost */
    if (!isfinite(d) || d != floor(d) || fabs(d) >= 9007199254740992.0) return false;
    int64_t i = (int64_t)d;
    if (i < lo || i > hi) return false;
    *out = i;
    return true;
}

/* ---- documents --------------------------------------------------------------------------- */

mer_status mer_json_parse(mer_json **out, const char *text, size_t len, const char *name) {
    if (!out) return mer__err(MER_ERR_INVALID_ARG, "mer_json_parse: out is NULL");
    *out = NULL;
    if (!name) name = "<json>";
    cJSON *root;
    mer_status s = mer__json_parse_text(&root, text, len, name);
    if (s != MER_OK) return s;
    mer_json *j = calloc(1, sizeof *j);
    char *nm = strdup(name);
    if (!j || !nm) {
        free(j);
        free(nm);
        cJSON_Delete(root);
        return mer__err(MER_ERR_NOMEM, "%s: out of memory", name);
    }
    j->root = root;
    j->name = nm;
    *out = j;
    return MER_OK;
}

mer_status mer_json_load(mer_json **out, const char *path) {
    if (!out || !path) return mer__err(MER_ERR_INVALID_ARG, "mer_json_load: NULL argument");
    *out = NULL;
    char *text;
    size_t n;
    mer_status s = mer__read_file(path, &text, &n);
    if (s != MER_OK) return s;
    s = mer_json_parse(out, text, n, path);
    free(text);
    return s;
}

void mer_json_free(mer_json *j) {
    if (!j) return;
    cJSON_Delete(j->root);
    free(j->name);
    free(j);
}

/* Walk the dotted path; NULL when a component is missing. Array elements are addressed by a
 * decimal index component. */
static const cJSON *lookup(const mer_json *j, const char *path) {
    if (!j || !path) return NULL;
    const cJSON *cur = j->root;
    const char *p = path;
    char key[512];
    for (;;) {
        const char *dot = strchr(p, '.');
        size_t n = dot ? (size_t)(dot - p) : strlen(p);
        if (n >= sizeof key) return NULL;
        memcpy(key, p, n);
        key[n] = '\0';
        if (cJSON_IsObject(cur)) {
            cur = cJSON_GetObjectItemCaseSensitive(cur, key);
        } else if (cJSON_IsArray(cur)) {
            if (n == 0 || n > 9 || strspn(key, "0123456789") != n) return NULL;
            cur = cJSON_GetArrayItem(cur, atoi(key));
        } else {
            return NULL;
        }
        if (!cur) return NULL;
        if (!dot) return cur;
        p = dot + 1;
    }
}

static const char *kind(const cJSON *v) {
    if (cJSON_IsNull(v)) return "null";
    if (cJSON_IsBool(v)) return "a boolean";
    if (cJSON_IsNumber(v)) return "a number";
    if (cJSON_IsString(v)) return "a string";
    if (cJSON_IsArray(v)) return "an array";
    if (cJSON_IsObject(v)) return "an object";
    return "an invalid value";
}

static mer_status not_found(const mer_json *j, const char *path) {
    return mer__err(MER_ERR_NOT_FOUND, "%s: key \"%s\" not found", j ? j->name : "<json>",
                    path ? path : "(null)");
}

static mer_status wrong_type(const mer_json *j, const char *path, const char *want, const cJSON *v) {
    if (cJSON_IsNumber(v))
        return mer__err(MER_ERR_FORMAT, "%s: key \"%s\": expected %s, got %.17g", j->name, path, want,
                        v->valuedouble);
    return mer__err(MER_ERR_FORMAT, "%s: key \"%s\": expected %s, got %s", j->name, path, want, kind(v));
}

static const cJSON *get(const mer_json *j, const char *path, mer_status *s) {
    const cJSON *v = lookup(j, path);
    *s = v ? MER_OK : not_found(j, path);
    return v;
}

int mer_json_has(const mer_json *j, const char *path) {
    const cJSON *v = lookup(j, path);
    return v && !cJSON_IsNull(v);
}

static mer_status as_int(const mer_json *j, const char *path, const cJSON *v, int64_t *out) {
    int64_t i;
    if (!mer__json_integral(v, -((int64_t)1 << 53), (int64_t)1 << 53, &i))
        return wrong_type(j, path, "an integer", v);
    *out = i;
    return MER_OK;
}

static mer_status as_double(const mer_json *j, const char *path, const cJSON *v, double *out) {
    if (!cJSON_IsNumber(v)) return wrong_type(j, path, "a number", v);
    if (!isfinite(v->valuedouble))
        return mer__err(MER_ERR_FORMAT, "%s: key \"%s\": number out of range", j->name, path);
    *out = v->valuedouble;
    return MER_OK;
}

static mer_status as_bool(const mer_json *j, const char *path, const cJSON *v, int *out) {
    if (!cJSON_IsBool(v)) return wrong_type(j, path, "a boolean", v);
    *out = cJSON_IsTrue(v) ? 1 : 0;
    return MER_OK;
}

static mer_status as_string(const mer_json *j, const char *path, const cJSON *v, const char **out) {
    if (!cJSON_IsString(v) || !v->valuestring) return wrong_type(j, path, "a string", v);
    *out = v->valuestring;
    return MER_OK;
}

mer_status mer_json_get_int(const mer_json *j, const char *path, int64_t *out) {
    mer_status s;
    const cJSON *v = get(j, path, &s);
    return v ? as_int(j, path, v, out) : s;
}

mer_status mer_json_get_double(const mer_json *j, const char *path, double *out) {
    mer_status s;
    const cJSON *v = get(j, path, &s);
    return v ? as_double(j, path, v, out) : s;
}

mer_status mer_json_get_bool(const mer_json *j, const char *path, int *out) {
    mer_status s;
    const cJSON *v = get(j, path, &s);
    return v ? as_bool(j, path, v, out) : s;
}

mer_status mer_json_get_string(const mer_json *j, const char *path, const char **out) {
    mer_status s;
    const cJSON *v = get(j, path, &s);
    return v ? as_string(j, path, v, out) : s;
}

static mer_status get_array(const mer_json *j, const char *path, int32_t cap, int32_t *n,
                            const cJSON **arr) {
    mer_status s;
    const cJSON *v = get(j, path, &s);
    if (!v) return s;
    if (!cJSON_IsArray(v)) return wrong_type(j, path, "an array", v);
    int len = cJSON_GetArraySize(v);
    if (n) *n = len;
    if (len > cap)
        return mer__err(MER_ERR_FORMAT, "%s: key \"%s\": array has %d values, at most %d expected",
                        j->name, path, len, (int)cap);
    *arr = v;
    return MER_OK;
}

mer_status mer_json_get_int_array(const mer_json *j, const char *path, int64_t *out, int32_t cap,
                                  int32_t *n) {
    const cJSON *arr;
    mer_status s = get_array(j, path, cap, n, &arr);
    if (s != MER_OK) return s;
    int k = 0;
    char sub[600];
    for (const cJSON *c = arr->child; c; c = c->next, k++) {
        snprintf(sub, sizeof sub, "%s[%d]", path, k);
        if ((s = as_int(j, sub, c, &out[k])) != MER_OK) return s;
    }
    return MER_OK;
}

mer_status mer_json_get_double_array(const mer_json *j, const char *path, double *out,
                                     int32_t cap, int32_t *n) {
    const cJSON *arr;
    mer_status s = get_array(j, path, cap, n, &arr);
    if (s != MER_OK) return s;
    int k = 0;
    char sub[600];
    for (const cJSON *c = arr->child; c; c = c->next, k++) {
        snprintf(sub, sizeof sub, "%s[%d]", path, k);
        if ((s = as_double(j, sub, c, &out[k])) != MER_OK) return s;
    }
    return MER_OK;
}

mer_status mer_json_int_or(const mer_json *j, const char *path, int64_t def, int64_t *out) {
    const cJSON *v = lookup(j, path);
    if (!v || cJSON_IsNull(v)) {
        *out = def;
        return MER_OK;
    }
    return as_int(j, path, v, out);
}

mer_status mer_json_double_or(const mer_json *j, const char *path, double def, double *out) {
    const cJSON *v = lookup(j, path);
    if (!v || cJSON_IsNull(v)) {
        *out = def;
        return MER_OK;
    }
    return as_double(j, path, v, out);
}

mer_status mer_json_bool_or(const mer_json *j, const char *path, int def, int *out) {
    const cJSON *v = lookup(j, path);
    if (!v || cJSON_IsNull(v)) {
        *out = def;
        return MER_OK;
    }
    return as_bool(j, path, v, out);
}

mer_status mer_json_string_or(const mer_json *j, const char *path, const char *def, const char **out) {
    const cJSON *v = lookup(j, path);
    if (!v || cJSON_IsNull(v)) {
        *out = def;
        return MER_OK;
    }
    return as_string(j, path, v, out);
}
