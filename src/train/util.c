/*
 * util.c -- small text and file helpers of the training engine: a growable string for JSON
 * and CSV outputs, directory creation, and the prediction CSV writer (mer_write_predictions).
 */
#include "train/train.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void mer__sb_printf(mer__sb *b, const char *fmt, ...) {
    if (b->oom) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        size_t room = b->cap - b->len;
        int n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? room : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->oom = 1;
            return;
        }
        if (b->p && (size_t)n < room) {
            b->len += (size_t)n;
            return;
        }
        size_t nc = b->cap ? b->cap * 2 : 4096;
        while (nc < b->len + (size_t)n + 1) nc *= 2;
        char *np = realloc(b->p, nc);
        if (!np) {
            b->oom = 1;
            return;
        }
        b->p = np;
        b->cap = nc;
    }
}

void mer__sb_json_str(mer__sb *b, const char *s) {
    mer__sb_printf(b, "\"");
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        if (*c == '"' || *c == '\\')
            mer__sb_printf(b, "\\%c", *c);
        else if (*c < 0x20)
            mer__sb_printf(b, "\\u%04x", *c);
        else
            mer__sb_printf(b, "%c", *c);
    }
    mer__sb_printf(b, "\"");
}

void mer__sb_free(mer__sb *b) {
    free(b->p);
    memset(b, 0, sizeof *b);
}

mer_status mer__sb_save(const mer__sb *b, const char *path) {
    if (b->oom) return mer__err(MER_ERR_NOMEM, "%s: out of memory formatting the file", path);
    return mer__write_file_atomic(path, b->p ? b->p : "", b->len);
}


/* CSV field quoting into the buffer (RFC 4180, as mer_csv_write_field). */
void mer__sb_csv_field(mer__sb *b, const char *s) {
    if (!strpbrk(s, ",\"\r\n")) {
        mer__sb_printf(b, "%s", s);
        return;
    }
    mer__sb_printf(b, "\"");
    for (const char *c = s; *c; c++) mer__sb_printf(b, *c == '"' ? "\"\"" : "%c", *c);
    mer__sb_printf(b, "\"");
}

mer_status mer_write_predictions(const char *path, const mer_dataset *ds, const float *probs,
                                 const char *const *classes, int32_t c, int mer2024) {
    mer__sb b = {0};
    int64_t n = mer_dataset_count(ds);
    if (mer2024) {
        mer__sb_printf(&b, "name,discrete\n");
    } else {
        mer__sb_printf(&b, "name");
        for (int32_t j = 0; j < c; j++) {
            mer__sb_printf(&b, ",");
            mer__sb_csv_field(&b, classes[j]);
        }
        mer__sb_printf(&b, ",pred\n");
    }
    for (int64_t i = 0; i < n; i++) {
        const float *p = probs + i * c;
        int32_t best;
        mer_argmax_rows(&best, p, 1, c);
        mer__sb_csv_field(&b, mer_dataset_name(ds, i));
        if (!mer2024)
            for (int32_t j = 0; j < c; j++) mer__sb_printf(&b, ",%.8g", p[j]);
        mer__sb_printf(&b, ",");
        mer__sb_csv_field(&b, classes[best]);
        mer__sb_printf(&b, "\n");
    }
    mer_status s = mer__sb_save(&b, path);
    mer__sb_free(&b);
    return s;
}
