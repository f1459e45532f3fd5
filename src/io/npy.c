/*
 * npy.c -- NumPy .npy files (format 1.0, 2.0, 3.0): read float32/float16/float64 little-endian
 * C-order arrays into float32, write float32 exactly as numpy.save does (version 1.0, header
 * padded to a multiple of 64 bytes with room for the first axis to grow), atomically.
 *
 * The header is a Python dict literal: {'descr': '<f4', 'fortran_order': False, 'shape': (3,), }.
 * We parse just that grammar (strings, True/False, tuples of integers) and require exactly the
 * three keys, as numpy does. Rejected with a message naming the file: bad magic or version,
 * truncated preamble/header/payload, trailing bytes, malformed dict, Fortran order (rank >= 2),
 * big-endian, object (pickled) and structured dtypes, shapes that overflow.
 */
#include "io_internal.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* numpy itself refuses headers above 10 kB by default; we allow more but stay bounded */
#define NPY_MAX_HEADER (1u << 20)

/* ---- header ------------------------------------------------------------------------------ */

typedef struct {
    const char *p, *end;
} cursor;

static void skip_ws(cursor *c) {
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r')) c->p++;
}

static int eat(cursor *c, char ch) {
    skip_ws(c);
    if (c->p < c->end && *c->p == ch) {
        c->p++;
        return 1;
    }
    return 0;
}

/* A quoted Python string without escapes (numpy never writes any in these keys). */
static int parse_str(cursor *c, char *out, size_t cap) {
    skip_ws(c);
    if (c->p >= c->end || (*c->p != '\'' && *c->p != '"')) return 0;
    char q = *c->p++;
    size_t n = 0;
    while (c->p < c->end && *c->p != q) {
        if (*c->p == '\\' || n + 1 >= cap) return 0;
        out[n++] = *c->p++;
    }
    if (c->p >= c->end) return 0;
    c->p++;
    out[n] = '\0';
    return 1;
}

static int eat_word(cursor *c, const char *w) {
    skip_ws(c);
    size_t n = strlen(w);
    if ((size_t)(c->end - c->p) >= n && !memcmp(c->p, w, n)) {
        c->p += n;
        return 1;
    }
    return 0;
}

static mer_status parse_descr(const char *d, const char *name, mer_dtype *t) {
    char order = d[0];
    const char *code = d + 1;
    if (order != '<' && order != '>' && order != '|' && order != '=')
        return mer__err(MER_ERR_FORMAT, "%s: malformed dtype descr '%.40s'", name, d);
    if (!strcmp(code, "O"))
        return mer__err(MER_ERR_DTYPE, "%s: object arrays (descr '%s') are not supported: they hold pickled Python objects",
                        name, d);
    static const struct {
        const char *code;
        mer_dtype t;
    } map[] = {{"f4", MER_DTYPE_F32}, {"f2", MER_DTYPE_F16}, {"f8", MER_DTYPE_F64}, {"i4", MER_DTYPE_I32},
               {"i8", MER_DTYPE_I64}, {"u1", MER_DTYPE_U8},  {"i1", MER_DTYPE_I8},  {"i2", MER_DTYPE_I16},
               {"b1", MER_DTYPE_BOOL}};
    for (size_t i = 0; i < sizeof map / sizeof *map; i++) {
        if (strcmp(code, map[i].code)) continue;
        if (order == '>' && mer_dtype_size(map[i].t) > 1)
            return mer__err(MER_ERR_UNSUPPORTED, "%s: big-endian data (descr '%s') is not supported", name, d);
        *t = map[i].t;
        return MER_OK;
    }
    return mer__err(MER_ERR_DTYPE, "%s: unsupported dtype descr '%.40s'", name, d);
}

static mer_status parse_dict(cursor *c, const char *name, mer__npy_header *h) {
    char key[32], descr[64] = "";
    int have_descr = 0, have_fortran = 0, have_shape = 0, fortran = 0;
    if (!eat(c, '{')) return mer__err(MER_ERR_FORMAT, "%s: header is not a Python dict", name);
    for (;;) {
        if (eat(c, '}')) break;
        if (!parse_str(c, key, sizeof key))
            return mer__err(MER_ERR_FORMAT, "%s: header dict: expected a quoted key", name);
        if (!eat(c, ':')) return mer__err(MER_ERR_FORMAT, "%s: header dict: expected ':' after '%s'", name, key);
        if (!strcmp(key, "descr")) {
            if (have_descr++) return mer__err(MER_ERR_FORMAT, "%s: header dict: 'descr' appears twice", name);
            skip_ws(c);
            if (c->p < c->end && *c->p == '[')
                return mer__err(MER_ERR_DTYPE, "%s: structured dtypes are not supported", name);
            if (!parse_str(c, descr, sizeof descr) || !descr[0])
                return mer__err(MER_ERR_FORMAT, "%s: header dict: 'descr' is not a dtype string", name);
        } else if (!strcmp(key, "fortran_order")) {
            if (have_fortran++) return mer__err(MER_ERR_FORMAT, "%s: header dict: 'fortran_order' appears twice", name);
            if (eat_word(c, "True")) fortran = 1;
            else if (eat_word(c, "False")) fortran = 0;
            else return mer__err(MER_ERR_FORMAT, "%s: header dict: 'fortran_order' is not True or False", name);
        } else if (!strcmp(key, "shape")) {
            if (have_shape++) return mer__err(MER_ERR_FORMAT, "%s: header dict: 'shape' appears twice", name);
            if (!eat(c, '(')) return mer__err(MER_ERR_FORMAT, "%s: header dict: 'shape' is not a tuple", name);
            h->ndim = 0;
            for (;;) {
                if (eat(c, ')')) break;
                skip_ws(c);
                if (c->p < c->end && *c->p == '-')
                    return mer__err(MER_ERR_FORMAT, "%s: header dict: negative dimension in 'shape'", name);
                int64_t v = 0;
                int digits = 0;
                while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
                    if (v > (INT64_MAX - 9) / 10)
                        return mer__err(MER_ERR_FORMAT, "%s: header dict: dimension too large", name);
                    v = v * 10 + (*c->p++ - '0');
                    digits++;
                }
                if (!digits) return mer__err(MER_ERR_FORMAT, "%s: header dict: 'shape' holds a non-integer", name);
                if (c->p < c->end && *c->p == 'L') c->p++; /* Python 2 long */
                if (h->ndim == MER_MAX_DIMS)
                    return mer__err(MER_ERR_UNSUPPORTED, "%s: rank above %d is not supported", name, MER_MAX_DIMS);
                h->shape[h->ndim++] = v;
                if (eat(c, ')')) break;
                if (!eat(c, ',')) return mer__err(MER_ERR_FORMAT, "%s: header dict: malformed 'shape' tuple", name);
            }
        } else {
            return mer__err(MER_ERR_FORMAT, "%s: header dict: unexpected key '%s'", name, key);
        }
        if (eat(c, '}')) break;
        if (!eat(c, ',')) return mer__err(MER_ERR_FORMAT, "%s: header dict: expected ',' or '}'", name);
    }
    skip_ws(c);
    if (c->p != c->end) return mer__err(MER_ERR_FORMAT, "%s: header: unexpected text after the dict", name);
    if (!have_descr || !have_fortran || !have_shape)
        return mer__err(MER_ERR_FORMAT, "%s: header dict lacks '%s'", name,
                        !have_descr ? "descr" : !have_fortran ? "fortran_order" : "shape");
    mer_status s = parse_descr(descr, name, &h->dtype);
    if (s != MER_OK) return s;
    /* Fortran and C order coincide below rank 2 */
    if (fortran && h->ndim >= 2)
        return mer__err(MER_ERR_UNSUPPORTED, "%s: Fortran-order arrays are not supported (save with C order)", name);
    int64_t numel = 1, nbytes;
    for (int32_t i = 0; i < h->ndim; i++)
        if (!mer__mul_overflow(numel, h->shape[i], &numel))
            return mer__err(MER_ERR_FORMAT, "%s: shape overflows the element count", name);
    if (!mer__mul_overflow(numel, (int64_t)mer_dtype_size(h->dtype), &nbytes))
        return mer__err(MER_ERR_FORMAT, "%s: shape overflows the byte size", name);
    h->numel = numel;
    h->data_bytes = (size_t)nbytes;
    return MER_OK;
}

/* The preamble alone: how many bytes the header occupies. */
static mer_status parse_preamble(const uint8_t *b, size_t size, const char *name, int *major, int *minor,
                                 size_t *hstart, size_t *hlen) {
    static const uint8_t magic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};
    if (size < 6 || memcmp(b, magic, 6) != 0) {
        if (size < 6 && (size == 0 || !memcmp(b, magic, size)))
            return mer__err(MER_ERR_FORMAT, "%s: truncated: %zu bytes, too short for the .npy magic", name, size);
        return mer__err(MER_ERR_FORMAT, "%s: bad magic: not a .npy file", name);
    }
    if (size < 8) return mer__err(MER_ERR_FORMAT, "%s: truncated: %zu bytes, no version", name, size);
    *major = b[6];
    *minor = b[7];
    if (*major < 1 || *major > 3 || *minor != 0)
        return mer__err(MER_ERR_UNSUPPORTED, "%s: .npy format version %d.%d is not supported (1.0-3.0)", name,
                        *major, *minor);
    size_t need = *major == 1 ? 10 : 12;
    if (size < need) return mer__err(MER_ERR_FORMAT, "%s: truncated: %zu bytes, no header length", name, size);
    size_t hl = *major == 1 ? (size_t)b[8] | (size_t)b[9] << 8
                            : (size_t)b[8] | (size_t)b[9] << 8 | (size_t)b[10] << 16 | (size_t)b[11] << 24;
    if (hl > NPY_MAX_HEADER)
        return mer__err(MER_ERR_FORMAT, "%s: header length %zu exceeds the %u-byte limit", name, hl, NPY_MAX_HEADER);
    *hstart = need;
    *hlen = hl;
    return MER_OK;
}

mer_status mer__npy_parse_header(const void *buf, size_t size, const char *name, mer__npy_header *h) {
    if (!name) name = "<npy>";
    memset(h, 0, sizeof *h);
    if (!buf) size = 0;
    const uint8_t *b = buf;
    size_t hstart, hlen;
    mer_status s = parse_preamble(b, size, name, &h->major, &h->minor, &hstart, &hlen);
    if (s != MER_OK) return s;
    if (size - hstart < hlen)
        return mer__err(MER_ERR_FORMAT, "%s: truncated: header length %zu but only %zu bytes follow", name, hlen,
                        size - hstart);
    cursor c = {(const char *)b + hstart, (const char *)b + hstart + hlen};
    if ((s = parse_dict(&c, name, h)) != MER_OK) return s;
    h->data_offset = hstart + hlen;
    return MER_OK;
}

/* ---- reading ----------------------------------------------------------------------------- */

static mer_status check_float(const mer__npy_header *h, const char *name) {
    if (h->dtype == MER_DTYPE_F32 || h->dtype == MER_DTYPE_F16 || h->dtype == MER_DTYPE_F64) return MER_OK;
    return mer__err(MER_ERR_DTYPE, "%s: dtype %s cannot be read as float32 (expected float32, float16 or float64)",
                    name, mer_dtype_name(h->dtype));
}

static mer_status check_payload(const mer__npy_header *h, size_t avail, const char *name) {
    if (avail < h->data_bytes)
        return mer__err(MER_ERR_FORMAT, "%s: truncated: shape needs %zu bytes of data, file has %zu", name,
                        h->data_bytes, avail);
    if (avail > h->data_bytes)
        return mer__err(MER_ERR_FORMAT, "%s: %zu trailing bytes after the data", name, avail - h->data_bytes);
    return MER_OK;
}

/* Convert n little-endian elements of src (any alignment) to float. */
static void to_f32(float *dst, const uint8_t *src, mer_dtype t, size_t n) {
    switch (t) {
    case MER_DTYPE_F32: memcpy(dst, src, n * 4); break;
    case MER_DTYPE_F16:
        for (size_t i = 0; i < n; i++) {
            uint16_t v;
            memcpy(&v, src + 2 * i, 2);
            dst[i] = mer__f16_to_f32(v);
        }
        break;
    default:
        for (size_t i = 0; i < n; i++) {
            double v;
            memcpy(&v, src + 8 * i, 8);
            dst[i] = (float)v;
        }
        break;
    }
}

static void report_shape(const mer__npy_header *h, int32_t *ndim, int64_t shape[MER_MAX_DIMS]) {
    if (h->ndim == 0) {
        *ndim = 1;
        shape[0] = 1;
        return;
    }
    *ndim = h->ndim;
    for (int32_t i = 0; i < h->ndim; i++) shape[i] = h->shape[i];
}

static float *alloc_out(const mer__npy_header *h, const char *name) {
    float *d = malloc((size_t)(h->numel ? h->numel : 1) * sizeof(float));
    if (!d) mer__err(MER_ERR_NOMEM, "%s: cannot allocate %lld floats", name, (long long)h->numel);
    return d;
}

mer_status mer_npy_parse(const void *buf, size_t size, const char *name, float **data, int32_t *ndim,
                         int64_t shape[MER_MAX_DIMS]) {
    if (!data || !ndim || !shape) return mer__err(MER_ERR_INVALID_ARG, "mer_npy_parse: NULL argument");
    *data = NULL;
    if (!name) name = "<npy>";
    mer__npy_header h;
    mer_status s = mer__npy_parse_header(buf, size, name, &h);
    if (s != MER_OK) return s;
    if ((s = check_float(&h, name)) != MER_OK) return s;
    if ((s = check_payload(&h, size - h.data_offset, name)) != MER_OK) return s;
    float *d = alloc_out(&h, name);
    if (!d) return MER_ERR_NOMEM;
    to_f32(d, (const uint8_t *)buf + h.data_offset, h.dtype, (size_t)h.numel);
    *data = d;
    report_shape(&h, ndim, shape);
    return MER_OK;
}

/* Open path and read its preamble + header into a malloc'd buffer. */
static mer_status read_head(const char *path, FILE **fo, mer__npy_header *h, size_t *file_size) {
    *fo = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return mer__err(errno == ENOENT ? MER_ERR_NOT_FOUND : MER_ERR_IO, "%s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        fclose(f);
        return mer__err(MER_ERR_IO, "%s: not a regular file", path);
    }
    size_t fsize = (size_t)sb.st_size;
    uint8_t pre[12];
    size_t got = fread(pre, 1, sizeof pre, f);
    int major, minor;
    size_t hstart, hlen;
    mer_status s = parse_preamble(pre, got, path, &major, &minor, &hstart, &hlen);
    if (s != MER_OK) {
        fclose(f);
        return s;
    }
    if (fsize - hstart < hlen) {
        fclose(f);
        return mer__err(MER_ERR_FORMAT, "%s: truncated: header length %zu but only %zu bytes follow", path, hlen,
                        fsize - hstart);
    }
    uint8_t *head = malloc(hstart + hlen);
    if (!head) {
        fclose(f);
        return mer__err(MER_ERR_NOMEM, "%s: out of memory", path);
    }
    memcpy(head, pre, got < hstart + hlen ? got : hstart + hlen);
    if (got < hstart + hlen && fread(head + got, 1, hstart + hlen - got, f) != hstart + hlen - got) {
        free(head);
        fclose(f);
        return mer__err(MER_ERR_IO, "%s: short read", path);
    }
    s = mer__npy_parse_header(head, hstart + hlen, path, h);
    free(head);
    if (s != MER_OK) {
        fclose(f);
        return s;
    }
    if (fseek(f, (long)h->data_offset, SEEK_SET) != 0) {
        fclose(f);
        return mer__err(MER_ERR_IO, "%s: cannot seek", path);
    }
    *fo = f;
    *file_size = fsize;
    return MER_OK;
}

mer_status mer_npy_read_header(const char *path, mer_dtype *dtype, int32_t *ndim, int64_t shape[MER_MAX_DIMS]) {
    if (!path || !ndim || !shape) return mer__err(MER_ERR_INVALID_ARG, "mer_npy_read_header: NULL argument");
    FILE *f;
    mer__npy_header h;
    size_t fsize;
    mer_status s = read_head(path, &f, &h, &fsize);
    if (s != MER_OK) return s;
    fclose(f);
    if ((s = check_payload(&h, fsize - h.data_offset, path)) != MER_OK) return s;
    if (dtype) *dtype = h.dtype;
    *ndim = h.ndim;
    for (int32_t i = 0; i < h.ndim; i++) shape[i] = h.shape[i];
    return MER_OK;
}

mer_status mer_npy_read(const char *path, float **data, int32_t *ndim, int64_t shape[MER_MAX_DIMS]) {
    if (!path || !data || !ndim || !shape) return mer__err(MER_ERR_INVALID_ARG, "mer_npy_read: NULL argument");
    *data = NULL;
    FILE *f;
    mer__npy_header h;
    size_t fsize;
    mer_status s = read_head(path, &f, &h, &fsize);
    if (s != MER_OK) return s;
    if ((s = check_float(&h, path)) != MER_OK || (s = check_payload(&h, fsize - h.data_offset, path)) != MER_OK) {
        fclose(f);
        return s;
    }
    float *d = alloc_out(&h, path);
    if (!d) {
        fclose(f);
        return MER_ERR_NOMEM;
    }
    /* read straight into the output for f32; convert other types chunk by chunk */
    size_t isz = mer_dtype_size(h.dtype), n = (size_t)h.numel, done = 0;
    int bad = 0;
    if (h.dtype == MER_DTYPE_F32) {
        bad = n && fread(d, 4, n, f) != n;
    } else {
        uint8_t chunk[1 << 15];
        size_t per = sizeof chunk / isz;
        while (done < n && !bad) {
            size_t k = n - done < per ? n - done : per;
            if (fread(chunk, isz, k, f) != k) bad = 1;
            else to_f32(d + done, chunk, h.dtype, k);
            done += k;
        }
    }
    fclose(f);
    if (bad) {
        free(d);
        return mer__err(MER_ERR_IO, "%s: short read (file changed while reading?)", path);
    }
    *data = d;
    report_shape(&h, ndim, shape);
    return MER_OK;
}

/* ---- writing ----------------------------------------------------------------------------- */

mer_status mer_npy_write(const char *path, const float *data, int32_t ndim, const int64_t *shape) {
    if (!path || ndim < 0 || ndim > MER_MAX_DIMS || (ndim && !shape))
        return mer__err(MER_ERR_INVALID_ARG, "mer_npy_write: bad arguments (rank %d)", (int)ndim);
    int64_t numel = 1;
    for (int32_t i = 0; i < ndim; i++)
        if (shape[i] < 0 || !mer__mul_overflow(numel, shape[i], &numel))
            return mer__err(MER_ERR_INVALID_ARG, "%s: bad shape", path);
    int64_t nbytes;
    if (!mer__mul_overflow(numel, 4, &nbytes) || (nbytes && !data))
        return mer__err(MER_ERR_INVALID_ARG, "%s: bad data", path);
    char dict[512];
    int k = snprintf(dict, sizeof dict, "{'descr': '<f4', 'fortran_order': False, 'shape': (");
    for (int32_t i = 0; i < ndim; i++) k += snprintf(dict + k, sizeof dict - (size_t)k, i ? ", %lld" : "%lld", (long long)shape[i]);
    k += snprintf(dict + k, sizeof dict - (size_t)k, ndim == 1 ? ",), }" : "), }");
    /* numpy >= 1.23 leaves room for the first axis to grow to 21 digits, then pads the whole
     * preamble + header + '\n' to a multiple of 64 bytes; doing the same gives identical files */
    if (ndim > 0) {
        char first[32];
        int fl = snprintf(first, sizeof first, "%lld", (long long)shape[0]);
        for (int i = fl; i < 21; i++) dict[k++] = ' ';
    }
    size_t total = 10 + (size_t)k + 1;
    size_t pad = (64 - total % 64) % 64;
    size_t hlen = (size_t)k + pad + 1;
    size_t fsize = 10 + hlen + (size_t)nbytes;
    uint8_t *buf = malloc(fsize);
    if (!buf) return mer__err(MER_ERR_NOMEM, "%s: cannot allocate %zu bytes", path, fsize);
    memcpy(buf, "\x93NUMPY\x01\x00", 8);
    buf[8] = (uint8_t)(hlen & 0xff);
    buf[9] = (uint8_t)(hlen >> 8);
    memcpy(buf + 10, dict, (size_t)k);
    memset(buf + 10 + k, ' ', pad);
    buf[10 + hlen - 1] = '\n';
    if (nbytes) memcpy(buf + 10 + hlen, data, (size_t)nbytes);
    mer_status s = mer__write_file_atomic(path, buf, fsize);
    free(buf);
    return s;
}
