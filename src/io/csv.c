/*
 * csv.c -- CSV tables (RFC 4180): a header row, then records of the same width. Fields may be
 * quoted ("a, b"), with "" for a quote and embedded line breaks; records end in CRLF, LF or a
 * lone CR; an optional UTF-8 BOM is skipped; completely empty lines are skipped. The text must
 * be valid UTF-8 without NUL bytes. Rejected with the file and line: a record whose width
 * differs from the header's, an unterminated quoted field, text after a closing quote, a quote
 * inside an unquoted field. Lookup by column name fails on a missing or an ambiguous name.
 */
#include "io_internal.h"

#include <string.h>

struct mer_csv {
    char *name;
    char *text;          /* all cells, NUL-terminated, back to back */
    size_t *off;         /* (rows + 1) * cols offsets into text; row 0 is the header */
    int64_t rows;        /* data rows */
    int32_t cols;
};

void mer_csv_free(mer_csv *c) {
    if (!c) return;
    free(c->name);
    free(c->text);
    free(c->off);
    free(c);
}

typedef struct {
    char *p;
    size_t n, cap;
} growbuf;

static int gb_reserve(growbuf *g, size_t extra) {
    if (g->n + extra <= g->cap) return 1;
    size_t nc = g->cap ? g->cap : 1024;
    while (nc < g->n + extra) {
        if (nc > SIZE_MAX / 2) return 0;
        nc *= 2;
    }
    char *np = realloc(g->p, nc);
    if (!np) return 0;
    g->p = np;
    g->cap = nc;
    return 1;
}

typedef struct {
    size_t *v;
    size_t n, cap;
} offvec;

static int ov_push(offvec *o, size_t x) {
    if (o->n == o->cap) {
        size_t nc = o->cap ? o->cap * 2 : 256;
        size_t *nv = realloc(o->v, nc * sizeof *nv);
        if (!nv) return 0;
        o->v = nv;
        o->cap = nc;
    }
    o->v[o->n++] = x;
    return 1;
}

/* Length of the valid UTF-8 sequence at s (n bytes left), 0 if invalid. */
static int utf8_len(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    if (c < 0x80) return 1;
    int len;
    unsigned min;
    if ((c & 0xe0) == 0xc0) len = 2, min = 0x80;
    else if ((c & 0xf0) == 0xe0) len = 3, min = 0x800;
    else if ((c & 0xf8) == 0xf0) len = 4, min = 0x10000;
    else return 0;
    if ((size_t)len > n) return 0;
    unsigned cp = c & (0x7f >> len);
    for (int i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
    return len;
}

mer_status mer_csv_parse(mer_csv **out, const char *text, size_t len, const char *name) {
    if (!out) return mer__err(MER_ERR_INVALID_ARG, "mer_csv_parse: out is NULL");
    *out = NULL;
    if (!name) name = "<csv>";
    if (!text) len = 0;
    const unsigned char *s = (const unsigned char *)text;

    /* encoding first, so the parser below only sees valid text */
    int64_t line = 1;
    for (size_t i = 0; i < len;) {
        if (s[i] == 0) return mer__err(MER_ERR_FORMAT, "%s: line %lld: NUL byte", name, (long long)line);
        if (s[i] == '\n') line++;
        int k = utf8_len(s + i, len - i);
        if (!k) return mer__err(MER_ERR_FORMAT, "%s: line %lld: invalid UTF-8", name, (long long)line);
        i += (size_t)k;
    }

    size_t i = 0;
    if (len >= 3 && s[0] == 0xef && s[1] == 0xbb && s[2] == 0xbf) i = 3;
    growbuf g = {0};
    offvec o = {0};
    mer_status st = MER_OK;
    int64_t cols = -1, nrec = 0;
    line = 1;
    while (i < len) {
        /* skip empty lines */
        if (s[i] == '\n' || s[i] == '\r') {
            i += (s[i] == '\r' && i + 1 < len && s[i + 1] == '\n') ? 2 : 1;
            line++;
            continue;
        }
        int64_t rec_line = line, nf = 0;
        for (;;) {
            /* one field */
            if (!gb_reserve(&g, 1) || !ov_push(&o, g.n)) goto oom;
            if (i < len && s[i] == '"') {
                int64_t qline = line;
                i++;
                for (;;) {
                    if (i >= len) {
                        st = mer__err(MER_ERR_FORMAT, "%s: line %lld: unterminated quoted field", name, (long long)qline);
                        goto fail;
                    }
                    if (s[i] == '"') {
                        if (i + 1 < len && s[i + 1] == '"') {
                            if (!gb_reserve(&g, 1)) goto oom;
                            g.p[g.n++] = '"';
                            i += 2;
                            continue;
                        }
                        i++;
                        break;
                    }
                    if (s[i] == '\n') line++;
                    if (!gb_reserve(&g, 1)) goto oom;
                    g.p[g.n++] = (char)s[i++];
                }
                if (i < len && s[i] != ',' && s[i] != '\n' && s[i] != '\r') {
                    st = mer__err(MER_ERR_FORMAT, "%s: line %lld: unexpected text after a closing quote", name,
                                  (long long)line);
                    goto fail;
                }
            } else {
                size_t b = i;
                while (i < len && s[i] != ',' && s[i] != '\n' && s[i] != '\r') {
                    if (s[i] == '"') {
                        st = mer__err(MER_ERR_FORMAT, "%s: line %lld: quote inside an unquoted field (quote the whole field)",
                                      name, (long long)line);
                        goto fail;
                    }
                    i++;
                }
                if (!gb_reserve(&g, i - b + 1)) goto oom;
                memcpy(g.p + g.n, s + b, i - b);
                g.n += i - b;
            }
            if (!gb_reserve(&g, 1)) goto oom;
            g.p[g.n++] = '\0';
            nf++;
            if (i < len && s[i] == ',') {
                i++;
                continue;
            }
            if (i < len) { /* line break */
                i += (s[i] == '\r' && i + 1 < len && s[i + 1] == '\n') ? 2 : 1;
                line++;
            }
            break;
        }
        if (cols < 0) {
            if (nf > INT32_MAX) {
                st = mer__err(MER_ERR_FORMAT, "%s: too many columns", name);
                goto fail;
            }
            cols = nf;
        } else if (nf != cols) {
            st = mer__err(MER_ERR_FORMAT, "%s: line %lld: %lld fields, but the header has %lld", name,
                          (long long)rec_line, (long long)nf, (long long)cols);
            goto fail;
        }
        nrec++;
    }
    if (cols < 0) {
        st = mer__err(MER_ERR_FORMAT, "%s: empty: no header row", name);
        goto fail;
    }
    mer_csv *c = calloc(1, sizeof *c);
    char *nm = strdup(name);
    if (!c || !nm) {
        free(c);
        free(nm);
        goto oom;
    }
    c->name = nm;
    c->text = g.p;
    c->off = o.v;
    c->cols = (int32_t)cols;
    c->rows = nrec - 1;
    *out = c;
    return MER_OK;
oom:
    st = mer__err(MER_ERR_NOMEM, "%s: out of memory", name);
fail:
    free(g.p);
    free(o.v);
    return st;
}

mer_status mer_csv_load(mer_csv **out, const char *path) {
    if (!out || !path) return mer__err(MER_ERR_INVALID_ARG, "mer_csv_load: NULL argument");
    *out = NULL;
    char *text;
    size_t n;
    mer_status s = mer__read_file(path, &text, &n);
    if (s != MER_OK) return s;
    s = mer_csv_parse(out, text, n, path);
    free(text);
    return s;
}

int64_t mer_csv_rows(const mer_csv *c) { return c ? c->rows : 0; }
int32_t mer_csv_cols(const mer_csv *c) { return c ? c->cols : 0; }

const char *mer_csv_header(const mer_csv *c, int32_t col) {
    if (!c || col < 0 || col >= c->cols) return NULL;
    return c->text + c->off[col];
}

const char *mer_csv_cell(const mer_csv *c, int64_t row, int32_t col) {
    if (!c || row < 0 || row >= c->rows || col < 0 || col >= c->cols) return NULL;
    return c->text + c->off[(size_t)(row + 1) * (size_t)c->cols + (size_t)col];
}

mer_status mer_csv_col(const mer_csv *c, const char *name, int32_t *col) {
    if (!c || !name) return mer__err(MER_ERR_INVALID_ARG, "mer_csv_col: NULL argument");
    int32_t found = -1;
    for (int32_t i = 0; i < c->cols; i++) {
        if (strcmp(c->text + c->off[i], name)) continue;
        if (found >= 0)
            return mer__err(MER_ERR_FORMAT, "%s: column \"%.200s\" is ambiguous (columns %d and %d)", c->name, name,
                            (int)found, (int)i);
        found = i;
    }
    if (found >= 0) {
        if (col) *col = found;
        return MER_OK;
    }
    char list[400];
    size_t k = 0;
    list[0] = '\0';
    for (int32_t i = 0; i < c->cols && k + 8 < sizeof list; i++) {
        int w = snprintf(list + k, sizeof list - k, "%s\"%s\"", i ? ", " : "", c->text + c->off[i]);
        if (w < 0 || (size_t)w >= sizeof list - k) {
            memcpy(list + k, ", ...", 6);
            break;
        }
        k += (size_t)w;
    }
    return mer__err(MER_ERR_NOT_FOUND, "%s: no column \"%.200s\" (columns: %s)", c->name, name, list);
}

void mer_csv_write_field(FILE *f, const char *s) {
    if (!f || !s) return;
    if (!strpbrk(s, ",\"\r\n")) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"') fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}
