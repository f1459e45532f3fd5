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

/* ---- zip (zip.c): a read-only view of an archive in memory --------------------------------- */

typedef struct {
    char *name;        /* NUL-terminated copy */
    uint64_t offset;   /* of the entry's bytes in the buffer (after the local header) */
    uint64_t size;     /* stored size */
    uint16_t method;   /* 0 = stored */
} mer__zip_entry;

typedef struct {
    mer__zip_entry *e; /* sorted by name */
    int64_t n;
    const uint8_t *buf;
    size_t size;
    const char *path;  /* borrowed, for messages */
} mer__zip;

/* Parse the central directory of buf[0..size) (borrowed). Every entry's bytes are checked to lie
 * in the buffer. Errors name path. Call mer__zip_close even on failure. */
mer_status mer__zip_open(mer__zip *z, const uint8_t *buf, size_t size, const char *path);
void mer__zip_close(mer__zip *z);
/* The entry of that exact name, or NULL. */
const mer__zip_entry *mer__zip_find(const mer__zip *z, const char *name);
/* Pointer to a stored entry's bytes; MER_ERR_UNSUPPORTED for a compressed one. */
mer_status mer__zip_data(const mer__zip *z, const mer__zip_entry *e, const uint8_t **data);

/* ---- restricted unpickler (pickle.c) ---------------------------------------------------- */

enum {
    MER__PV_NONE, MER__PV_BOOL, MER__PV_INT, MER__PV_BIGINT, MER__PV_FLOAT, MER__PV_STR, MER__PV_BYTES,
    MER__PV_TUPLE, MER__PV_LIST, MER__PV_DICT, MER__PV_GLOBAL, MER__PV_CALL, MER__PV_PERSID
};
/* The only globals a pickle may name. */
enum { MER__G_ODICT = 1, MER__G_REBUILD_TENSOR_V2, MER__G_REBUILD_TENSOR, MER__G_REBUILD_PARAMETER, MER__G_STORAGE };

typedef struct mer__pv {
    int kind;
    int32_t depth;           /* nesting depth (0 for a scalar) */
    int64_t i;               /* BOOL, INT */
    double f;                /* FLOAT */
    char *s;                 /* STR, BYTES, BIGINT (raw little-endian bytes); NUL-terminated */
    size_t len;
    struct mer__pv **items;  /* TUPLE, LIST; DICT as key, value, key, value ... */
    int64_t n, cap;
    int glob;                /* GLOBAL: MER__G_* */
    mer_dtype dtype;         /* GLOBAL MER__G_STORAGE: its element type */
    const char *gname;       /* GLOBAL: the function or class name */
    struct mer__pv *fn;      /* CALL: the GLOBAL called */
    struct mer__pv *args;    /* CALL: the argument tuple; PERSID: the persistent id */
} mer__pv;

/* Owns every value of one or more loads; path (borrowed) names the file in messages. */
typedef struct {
    const char *path;
    mer__pv **all;
    int64_t n_all, cap_all;
} mer__pickle;

/* Unpickle one object starting at buf[*pos]; on success *pos is just past its STOP. Values
 * stay valid until mer__pickle_free. Refuses every global but the allowed ones, naming it. */
mer_status mer__pickle_load(mer__pickle *pk, const uint8_t *buf, size_t size, size_t *pos, mer__pv **out);
void mer__pickle_free(mer__pickle *pk);

/* ---- torch.save checkpoints (torch.c) ----------------------------------------------------- */

typedef struct {
    char *name;
    mer_dtype dtype;
    int32_t ndim;
    int64_t shape[MER_MAX_DIMS];
    uint64_t offset;   /* of the tensor's bytes in the checkpoint buffer when own is NULL */
    void *own;         /* mer__alloc'ed copy when the view is strided or misaligned */
    size_t nbytes;
} mer__torch_tensor;

/* 1 for a zip checkpoint, 2 for the legacy format, 0 for neither (by the first bytes). */
int mer__torch_detect(const uint8_t *buf, size_t size);
/* Read the state dict of a torch.save image buf[0..size) (borrowed; zero-copy tensors point into
 * it by offset). *out (n entries, in the pickle's order) is freed with mer__torch_tensors_free. */
mer_status mer__torch_read(const uint8_t *buf, size_t size, const char *path, mer__torch_tensor **out,
                           int64_t *n);
void mer__torch_tensors_free(mer__torch_tensor *t, int64_t n);

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
