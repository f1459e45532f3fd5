/*
 * io_internal.h -- helpers shared between the file-format readers in src/io/ and the fuzz
 * targets (not part of the public API). Everything here is mer__-prefixed.
 */
#ifndef MER_IO_INTERNAL_H
#define MER_IO_INTERNAL_H

#include "internal.h"

#include <cJSON.h>

/* ---- JSON -------------------------------------------------------------------------------- */

/* Parse len bytes of JSON text (need not be NUL-terminated) into *out. Only whitespace may
 * follow the value. Objects must not repeat a key. Errors (MER_ERR_FORMAT) name `name`, the
 * line and column, or the repeated key. *out is freed with cJSON_Delete. */
mer_status mer__json_parse_text(cJSON **out, const char *text, size_t len, const char *name);

/* A JSON number that is an exact integer in [lo, hi] (both within +-2^53). */
bool mer__json_integral(const cJSON *v, int64_t lo, int64_t hi, int64_t *out);

/* ---- safetensors ------------------------------------------------------------------------- */

/* The largest header the reader accepts, as the reference implementation (100 MB). */
#define MER__SAFETENSORS_MAX_HEADER 100000000ull

/* Open a safetensors image held in memory (borrowed: buf must outlive the handle). Validates
 * exactly as mer_safetensors_open does; name is used in messages. For fuzzing and tests. */
mer_status mer__safetensors_open_memory(mer_safetensors **out, const void *buf, size_t size,
                                        const char *name);

/* "F32" -> MER_DTYPE_F32 ...; -1 for an unknown or unsupported string. */
int mer__safetensors_dtype_parse(const char *s);
/* MER_DTYPE_F32 -> "F32" ... */
const char *mer__safetensors_dtype_str(mer_dtype t);

/* ---- npy --------------------------------------------------------------------------------- */

typedef struct {
    int major, minor;
    mer_dtype dtype;
    int32_t ndim;                /* true rank (0 for a scalar) */
    int64_t shape[MER_MAX_DIMS];
    int64_t numel;
    size_t data_offset;          /* bytes before the payload */
    size_t data_bytes;           /* numel * itemsize, overflow checked */
} mer__npy_header;

/* Parse and validate the preamble + header dict of a .npy held in buf[0..size) (size may be
 * just the first bytes of a file: the header must fit). name is used in messages. */
mer_status mer__npy_parse_header(const void *buf, size_t size, const char *name,
                                 mer__npy_header *h);

#endif /* MER_IO_INTERNAL_H */
