/*
 * mer.h -- the public API of libmer, multimodal emotion recognition in C.
 *
 * This header is the documentation of the library. Conventions that hold for every function:
 *  - Calls that can fail return mer_status (0 = MER_OK, negative = error). The detailed message
 *    (file, tensor name, expected vs got) of the last failure on the calling thread is returned
 *    by mer_last_error(); mer_status_str() names the code.
 *  - The library never exits and never prints except through the log callback.
 *  - Caller buffers are borrowed for the duration of the call, never kept.
 *  - Every *_free(NULL) is a no-op. Each function says who owns what it returns.
 *  - Immutable models (weights, mmapped) can be shared between threads; per-run state cannot.
 *
 * Sections: core (status, log, threads, tensors), kernels (gemm), io (safetensors, npy, json,
 * csv, media, image), models, train.
 */
#ifndef MER_H
#define MER_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MER_VERSION "0.1.0"

/* ============================================================================================
 * Core: status and errors
 * ========================================================================================== */

typedef enum {
    MER_OK = 0,
    MER_ERR_INVALID_ARG = -1,  /* a caller passed a bad argument (NULL, negative size, ...) */
    MER_ERR_IO = -2,           /* open/read/write/mmap/rename failed */
    MER_ERR_FORMAT = -3,       /* a file is malformed (bad magic, truncated, bad JSON, ...) */
    MER_ERR_NOT_FOUND = -4,    /* a named item (tensor, column, stream, file) does not exist */
    MER_ERR_DTYPE = -5,        /* wrong or unsupported element type */
    MER_ERR_SHAPE = -6,        /* wrong shape or dimension */
    MER_ERR_NOMEM = -7,        /* allocation failed or a size overflowed */
    MER_ERR_UNSUPPORTED = -8,  /* a valid input that this build does not handle */
    MER_ERR_NUMERIC = -9,      /* NaN or Inf where finite numbers are required */
    MER_ERR_ABORTED = -10,     /* the abort callback asked to stop */
    MER_ERR_MEDIA = -11,       /* media could not be decoded, or lacks the wanted stream */
    MER_ERR_INTERNAL = -12     /* a bug in mer; please report */
} mer_status;

/* Static name of a status code ("ok", "format error", ...). Never NULL. */
const char *mer_status_str(mer_status s);

/* The detailed message of the last error set on this thread ("" if none). The string is owned
 * by the library and valid until the next failing call on the same thread. */
const char *mer_last_error(void);

/* Forget the last error of this thread. */
void mer_clear_error(void);

/* ============================================================================================
 * Core: logging, progress and abort callbacks
 * ========================================================================================== */

typedef enum { MER_LOG_DEBUG = 0, MER_LOG_INFO = 1, MER_LOG_WARN = 2, MER_LOG_ERROR = 3 } mer_log_level;

typedef void (*mer_log_fn)(mer_log_level level, const char *msg, void *user_data);

/* Route the library's log lines to fn (NULL: discard). Default: messages at WARN and above go
 * to stderr. Not thread safe with respect to concurrent logging; call it at start-up. */
void mer_log_set(mer_log_fn fn, void *user_data);

/* Lowest level that is passed to the callback (default MER_LOG_WARN). */
void mer_log_set_level(mer_log_level level);

/* Progress: done out of total units of work; return nonzero to ask the library to stop
 * (the call then fails with MER_ERR_ABORTED). */
typedef int (*mer_progress_fn)(int64_t done, int64_t total, void *user_data);

/* ============================================================================================
 * Core: threads
 * ========================================================================================== */

/* Number of worker threads used by kernels (and the GEMM backend). n <= 0 selects the number
 * of online CPUs. Call between runs, not during one. */
void mer_set_threads(int n);
int mer_get_threads(void);

/* ============================================================================================
 * Core: tensors
 * ========================================================================================== */

typedef enum {
    MER_DTYPE_F32 = 0,
    MER_DTYPE_F16 = 1,
    MER_DTYPE_BF16 = 2,
    MER_DTYPE_F64 = 3,
    MER_DTYPE_I32 = 4,
    MER_DTYPE_I64 = 5,
    MER_DTYPE_U8 = 6,
    MER_DTYPE_I8 = 7,
    MER_DTYPE_I16 = 8,
    MER_DTYPE_BOOL = 9,
    MER_DTYPE_COUNT
} mer_dtype;

#define MER_MAX_DIMS 8

/* A view of memory it does not own: data, dtype, shape and strides (in elements). */
typedef struct {
    void *data;
    mer_dtype dtype;
    int32_t ndim;
    int64_t shape[MER_MAX_DIMS];
    int64_t strides[MER_MAX_DIMS];
} mer_tensor;

/* Bytes of one element; 0 for an invalid dtype. */
size_t mer_dtype_size(mer_dtype t);
/* Lower-case name ("f32", "bf16", ...); "?" for an invalid dtype. */
const char *mer_dtype_name(mer_dtype t);

/* A contiguous row-major view; fails with MER_ERR_INVALID_ARG on a bad rank or negative dim. */
mer_status mer_tensor_view(mer_tensor *out, void *data, mer_dtype dtype, int32_t ndim,
                           const int64_t *shape);
/* Number of elements (product of the shape; 1 for rank 0). */
int64_t mer_tensor_numel(const mer_tensor *t);
/* 1 when the strides are those of a contiguous row-major tensor. */
int mer_tensor_is_contiguous(const mer_tensor *t);
/* Format the shape as "(2, 3, 4)" into buf (always NUL-terminated). Returns buf. */
char *mer_shape_str(char *buf, size_t n, int32_t ndim, const int64_t *shape);
/* Convert n elements of src (F32/F16/BF16/F64) into float32 dst. */
mer_status mer_convert_to_f32(float *dst, const void *src, mer_dtype dtype, int64_t n);

/* ============================================================================================
 * Kernels: GEMM, the one entry point for matrix products
 * ========================================================================================== */

typedef enum {
    MER_GEMM_DEFAULT = 0, /* the build's default: the faster backend measured on this machine */
    MER_GEMM_OPENBLAS = 1,
    MER_GEMM_DNNL = 2,
    MER_GEMM_NAIVE = 3    /* reference loops; for tests */
} mer_gemm_backend;

/* C (M, N) = alpha * op(A) @ op(B) + beta * C, all row-major float32.
 * op(A) is (M, K): A is (M, K) with lda >= K, or (K, M) with lda >= M when trans_a.
 * op(B) is (K, N): B is (K, N) with ldb >= N, or (N, K) with ldb >= K when trans_b.
 * ref: torch.addmm. Thread safe; uses mer_get_threads() threads. */
void mer_sgemm(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha,
               const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C,
               int64_t ldc);

/* Select the backend for subsequent mer_sgemm calls (process-wide). Fails with
 * MER_ERR_UNSUPPORTED if the backend was not compiled in. */
mer_status mer_gemm_set_backend(mer_gemm_backend b);
mer_gemm_backend mer_gemm_get_backend(void);
const char *mer_gemm_backend_name(mer_gemm_backend b);
/* 1 if the backend is compiled in. */
int mer_gemm_backend_available(mer_gemm_backend b);

/* ============================================================================================
 * IO: safetensors
 * ========================================================================================== */
/* (section owned by src/io/safetensors.c) */

/* ============================================================================================
 * IO: .npy
 * ========================================================================================== */
/* (section owned by src/io/npy.c) */

/* ============================================================================================
 * IO: JSON config, CSV
 * ========================================================================================== */
/* (section owned by src/io/json.c, src/io/csv.c) */

/* ============================================================================================
 * IO: media (FFmpeg) and images
 * ========================================================================================== */
/* (section owned by src/io/media.c, src/io/image.c) */

/* ============================================================================================
 * Models
 * ========================================================================================== */
/* (one subsection per model file in src/models/) */

/* ============================================================================================
 * Training
 * ========================================================================================== */
/* (subsections owned by src/train/) */

#ifdef __cplusplus
}
#endif
#endif /* MER_H */
