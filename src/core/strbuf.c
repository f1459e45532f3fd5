/*
 * strbuf.c -- the one growable string of the library (mer__sb) and the one way a JSON string
 * literal is escaped (through cJSON, so what mer writes is what cJSON reads back). Everything
 * that builds text (config.json, metrics.json, CSV predictions, safetensors headers, recipes)
 * appends here and saves through mer__write_file_atomic.
 */
#include "internal.h"

#include <cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* Room for `extra` more bytes plus a NUL; sets oom (appends are then dropped) on failure. */
static int sb_reserve(mer__sb *b, size_t extra) {
    if (b->oom) return 0;
    if (extra > SIZE_MAX / 2 - b->len) {
        b->oom = 1;
        return 0;
    }
    size_t need = b->len + extra + 1;
    if (need <= b->cap) return 1;
    size_t nc = b->cap ? b->cap : 256;
    while (nc < need) nc *= 2;
    char *np = realloc(b->p, nc);
    if (!np) {
        b->oom = 1;
        return 0;
    }
    b->p = np;
    b->cap = nc;
    return 1;
}

void mer__sb_put(mer__sb *b, const void *data, size_t n) {
    if (!sb_reserve(b, n)) return;
    if (n) memcpy(b->p + b->len, data, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void mer__sb_str(mer__sb *b, const char *s) { mer__sb_put(b, s, strlen(s)); }

void mer__sb_vprintf(mer__sb *b, const char *fmt, va_list ap) {
    if (b->oom) return;
    va_list aq;
    va_copy(aq, ap);
    char tmp[256];
    int n = vsnprintf(tmp, sizeof tmp, fmt, aq);
    va_end(aq);
    if (n < 0) {
        b->oom = 1;
        return;
    }
    if ((size_t)n < sizeof tmp) {
        mer__sb_put(b, tmp, (size_t)n);
        return;
    }
    if (!sb_reserve(b, (size_t)n)) return;
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
}

void mer__sb_printf(mer__sb *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    mer__sb_vprintf(b, fmt, ap);
    va_end(ap);
}

void mer__sb_json_str(mer__sb *b, const char *s) {
    if (b->oom) return;
    cJSON *node = cJSON_CreateString(s ? s : "");
    char *lit = node ? cJSON_PrintUnformatted(node) : NULL;
    cJSON_Delete(node);
    if (!lit) {
        b->oom = 1;
        return;
    }
    mer__sb_str(b, lit);
    cJSON_free(lit);
}

void mer__sb_csv_field(mer__sb *b, const char *s) {
    /* RFC 4180, as mer_csv_write_field */
    if (!strpbrk(s, ",\"\r\n")) {
        mer__sb_str(b, s);
        return;
    }
    mer__sb_put(b, "\"", 1);
    for (const char *c = s; *c; c++) {
        if (*c == '"') mer__sb_put(b, "\"\"", 2);
        else mer__sb_put(b, c, 1);
    }
    mer__sb_put(b, "\"", 1);
}

char *mer__sb_take(mer__sb *b) {
    if (b->oom) {
        mer__sb_free(b);
        mer__err(MER_ERR_NOMEM, "out of memory building a string");
        return NULL;
    }
    char *p = b->p;
    if (!p) p = calloc(1, 1);
    if (!p) mer__err(MER_ERR_NOMEM, "out of memory building a string");
    memset(b, 0, sizeof *b);
    return p;
}

void mer__sb_free(mer__sb *b) {
    free(b->p);
    memset(b, 0, sizeof *b);
}

mer_status mer__sb_save(const mer__sb *b, const char *path) {
    if (b->oom) return mer__err(MER_ERR_NOMEM, "%s: out of memory formatting the file", path);
    return mer__write_file_atomic(path, b->p ? b->p : "", b->len);
}

char *mer_json_quote(const char *s) {
    mer__sb b = {0};
    mer__sb_json_str(&b, s);
    return mer__sb_take(&b);
}
