/*
 * jsonw.c -- JSON writing through cJSON: small adders that build a document and remember an
 * allocation failure (checked once when printing), numbers rounded to a fixed number of
 * decimals where an output promises them, and printing to text or to a file atomically.
 */
#include "internal.h"

#include <cJSON.h>
#include <math.h>
#include <string.h>

/* Attach item under key (object parent) or at the end (array parent, key NULL). */
static cJSON *attach(mer__json *w, cJSON *parent, const char *key, cJSON *item) {
    if (!item) {
        w->oom = 1;
        return NULL;
    }
    if (!parent) return item;
    if (key ? !cJSON_AddItemToObject(parent, key, item) : !cJSON_AddItemToArray(parent, item)) {
        cJSON_Delete(item);
        w->oom = 1;
        return NULL;
    }
    return item;
}

/* A missing parent (an earlier failure) drops the item: the document is discarded anyway. */
#define NEED_PARENT(w, parent)      \
    do {                            \
        if (!(parent)) {            \
            (w)->oom = 1;           \
            return NULL;            \
        }                           \
    } while (0)

struct cJSON *mer__json_root(mer__json *w) {
    memset(w, 0, sizeof *w);
    w->root = cJSON_CreateObject();
    if (!w->root) w->oom = 1;
    return w->root;
}

struct cJSON *mer__json_obj(mer__json *w, struct cJSON *parent, const char *key) {
    NEED_PARENT(w, parent);
    return attach(w, parent, key, cJSON_CreateObject());
}

struct cJSON *mer__json_arr(mer__json *w, struct cJSON *parent, const char *key) {
    NEED_PARENT(w, parent);
    return attach(w, parent, key, cJSON_CreateArray());
}

struct cJSON *mer__json_num(mer__json *w, struct cJSON *parent, const char *key, double v) {
    NEED_PARENT(w, parent);
    return attach(w, parent, key, isfinite(v) ? cJSON_CreateNumber(v) : cJSON_CreateNull());
}

struct cJSON *mer__json_fixed(mer__json *w, struct cJSON *parent, const char *key, double v,
                              int decimals) {
    /* what printf("%.*f") shows, as a number: 0.25 prints as 0.25, not 0.250000 */
    double scale = pow(10.0, decimals);
    double r = isfinite(v) && fabs(v) < 1e15 / scale ? round(v * scale) / scale : v;
    if (r == 0) r = 0; /* no -0 */
    return mer__json_num(w, parent, key, r);
}

struct cJSON *mer__json_int(mer__json *w, struct cJSON *parent, const char *key, int64_t v) {
    return mer__json_num(w, parent, key, (double)v);
}

struct cJSON *mer__json_str(mer__json *w, struct cJSON *parent, const char *key, const char *s) {
    NEED_PARENT(w, parent);
    return attach(w, parent, key, s ? cJSON_CreateString(s) : cJSON_CreateNull());
}

struct cJSON *mer__json_bool(mer__json *w, struct cJSON *parent, const char *key, int b) {
    NEED_PARENT(w, parent);
    return attach(w, parent, key, cJSON_CreateBool(b != 0));
}

struct cJSON *mer__json_null(mer__json *w, struct cJSON *parent, const char *key) {
    NEED_PARENT(w, parent);
    return attach(w, parent, key, cJSON_CreateNull());
}

mer_status mer__json_take(mer__json *w, int pretty, char **text) {
    *text = NULL;
    char *p = NULL;
    if (!w->oom && w->root) p = pretty ? cJSON_Print(w->root) : cJSON_PrintUnformatted(w->root);
    cJSON_Delete(w->root);
    w->root = NULL;
    if (!p) return mer__err(MER_ERR_NOMEM, "out of memory writing JSON");
    size_t n = strlen(p);
    char *q = malloc(n + 2); /* our allocator and a final newline, so a file ends as text does */
    if (!q) {
        cJSON_free(p);
        return mer__err(MER_ERR_NOMEM, "out of memory writing JSON");
    }
    memcpy(q, p, n);
    q[n] = '\n';
    q[n + 1] = '\0';
    cJSON_free(p);
    *text = q;
    return MER_OK;
}

mer_status mer__json_save(mer__json *w, const char *path) {
    char *text = NULL;
    mer_status s = mer__json_take(w, 1, &text);
    if (s) return mer__err(s, "%s: out of memory writing JSON", path);
    s = mer__write_file_atomic(path, text, strlen(text));
    free(text);
    return s;
}

void mer__json_discard(mer__json *w) {
    cJSON_Delete(w->root);
    memset(w, 0, sizeof *w);
}
