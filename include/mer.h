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
 *  - Every function is declared MER_API (the exported symbols); version: MER_VERSION_MAJOR,
 *    MER_VERSION_MINOR, MER_VERSION_PATCH.
 *  - Options travel in a params struct that mer_<x>_default_params() returns by value; the
 *    call takes it by const pointer (NULL: the defaults). Loaders take one (mer_*_model_params),
 *    per-thread states take one (mer_*_state_params: precision, threads, callbacks of the
 *    state's calls), and so does every long call.
 *  - Every long call (encode, forward, extract, train, analyze, probe, fine-tune, demo, the
 *    folder extractors, faces of a file, predict, vote) has the
 *    same four callback fields in its params: progress + progress_user_data (mer_progress_fn,
 *    informs only) and abort + abort_user_data (mer_abort_fn, polled between units of work;
 *    true stops the call with MER_ERR_ABORTED and no partial output), and n_threads (0: the
 *    process-wide count of mer_set_threads; n > 0: n threads for this call, on the calling
 *    thread only, so concurrent calls can use different counts).
 *  - Argument order: constructors take the new handle first (mer_x_init(&x, ...),
 *    mer_x_load(&x, path, params)); every other call takes the object it acts on first (state,
 *    model, run, data set, a recipe for its extract calls), then its inputs, then the params,
 *    then its outputs last (results, *out pointers, shapes). A call with nothing but params as
 *    input (mer_vote, mer_demo, mer_finetune_speech, mer_probe_speech) takes them first. Kernels
 *    and conversions (mer_sgemm, mer_packed_linear, mer_convert_to_f32, ...) keep the BLAS /
 *    memcpy order and the string formatters (mer_name_path, mer_shape_str) the snprintf order:
 *    output first.
 *
 * Sections: core (status, log, threads, tensors), kernels (gemm), io (safetensors, npy, json,
 * csv, media, image), models, train.
 */
#ifndef MER_H
#define MER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Version of this header and library; MER_VERSION is the same as a string. */
#define MER_VERSION_MAJOR 0
#define MER_VERSION_MINOR 1
#define MER_VERSION_PATCH 0
#define MER_VERSION "0.1.0"

/* Marks every function of the API: the symbols a shared libmer exports (a build with
 * -fvisibility=hidden keeps everything else, the mer__ internals, private). */
#ifndef MER_API
#if defined(_WIN32) && defined(MER_SHARED)
#ifdef MER_BUILD
#define MER_API __declspec(dllexport)
#else
#define MER_API __declspec(dllimport)
#endif
#elif defined(__GNUC__)
#define MER_API __attribute__((visibility("default")))
#else
#define MER_API
#endif
#endif

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
MER_API const char *mer_status_str(mer_status s);

/* The detailed message of the last error set on this thread ("" if none). The string is owned
 * by the library and valid until the next failing call on the same thread. */
MER_API const char *mer_last_error(void);

/* Forget the last error of this thread. */
MER_API void mer_clear_error(void);

/* ============================================================================================
 * Core: logging, progress and abort callbacks
 * ========================================================================================== */

typedef enum { MER_LOG_DEBUG = 0, MER_LOG_INFO = 1, MER_LOG_WARN = 2, MER_LOG_ERROR = 3 } mer_log_level;

typedef void (*mer_log_fn)(mer_log_level level, const char *msg, void *user_data);

/* Route the library's log lines to fn (NULL: discard). Default: messages at WARN and above go
 * to stderr. Not thread safe with respect to concurrent logging; call it at start-up. fn may be
 * called from the library's worker threads (e.g. folds training in parallel), so it must be
 * thread safe itself. */
MER_API void mer_log_set(mer_log_fn fn, void *user_data);

/* Lowest level that is passed to the callback (default MER_LOG_WARN). */
MER_API void mer_log_set_level(mer_log_level level);

/* Progress: done out of total units of work (each call says what a unit is). It only informs:
 * stopping is the abort callback's job. */
typedef void (*mer_progress_fn)(int64_t done, int64_t total, void *user_data);
/* Abort: polled by a long call between units of work; returning true stops the call, which
 * fails with MER_ERR_ABORTED ("stopped by the caller"), frees what it made and leaves no partial
 * output (a training run stays resumable). */
typedef bool (*mer_abort_fn)(void *user_data);

/* ==========================================================================================
 * Core: bundled models and data (src/core/datadir.c)
 * ========================================================================================== */
/* The path of a bundled item rel (e.g. "models/face-api", "models/emodb-acoustic",
 * "data/emodb"): the first that exists of $MER_DATA_DIR/rel, <directory of libmer.so or of the
 * executable>/../share/mer/rel (an installed tree, symlinks resolved), and <source tree>/rel.
 * Never the working directory. *out malloc'd (free()). MER_ERR_NOT_FOUND names rel and where
 * it looked; MER_ERR_INVALID_ARG for an absolute rel or one with "..". Thread safe. */
MER_API mer_status mer_data_path(const char *rel, char **out);

/* ============================================================================================
 * Core: threads
 * ========================================================================================== */

/* Number of worker threads used by kernels (and the GEMM backend). n <= 0 selects the number
 * of online CPUs. Call between runs, not during one. */
MER_API void mer_set_threads(int n);
MER_API int mer_get_threads(void);

/* ============================================================================================
 * Core: file names, outputs and directories (src/core/fs.c, docs/safety.md)
 * A name read from a file (clip, speaker, class) is data, never a path: it becomes a file name
 * only through mer_name_path. An output never replaces an input; mer removes only directories
 * it provably made.
 * ========================================================================================== */

/* MER_OK when name can be a file name in a directory: not empty, at most 200 bytes, without
 * '/', '\\', "..", control characters (C0, DEL, C1) or a NUL. Otherwise MER_ERR_FORMAT with a
 * one-line message "<src>: row <row>: name '...' contains ..." (src NULL and row <= 0 leave those out). */
MER_API mer_status mer_name_check(const char *name, const char *src, int64_t row);
/* out = dir + "/" + name + suffix (suffix may be NULL), after mer_name_check(name, src, row).
 * The one function that turns a name into a path. MER_ERR_INVALID_ARG when it does not fit. */
MER_API mer_status mer_name_path(char *out, size_t cap, const char *dir, const char *name,
                                 const char *suffix, const char *src, int64_t row);
/* MER_ERR_INVALID_ARG when out exists and is the same file (device and inode, so links and
 * other spellings count) as one of inputs[0..n) ("-" and missing inputs are skipped). Call it
 * before anything is written. */
MER_API mer_status mer_output_check(const char *out, const char *const *inputs, int64_t n);
/* The same for many outputs: the identities of inputs[0..n) (stat once, sorted), then a check
 * per output in O(log n). The set borrows inputs (the strings must outlive it). */
typedef struct mer_input_set mer_input_set;
MER_API mer_status mer_input_set_init(mer_input_set **out, const char *const *inputs, int64_t n);
MER_API mer_status mer_input_set_check(const mer_input_set *set, const char *out);
MER_API void mer_input_set_free(mer_input_set *set);
/* Write size bytes to path atomically: "<path>.tmp.<pid>" written (stopping at the first failed
 * write, with strerror in the message), fsynced, renamed over path, the directory fsynced. A
 * failure leaves path as it was and no temporary behind. */
MER_API mer_status mer_write_file_atomic(const char *path, const void *data, size_t size);
/* mkdir -p; an existing directory is fine. */
MER_API mer_status mer_mkdir_p(const char *path);
/* mkdir -p that marks the directory as mer's when it creates it (a ".mer-made" file which
 * lists what mer writes into it afterwards); an existing directory is used as it is, unmarked,
 * after removing stale temporaries of dead processes from it. */
MER_API mer_status mer_mkdir_made(const char *path);
/* Remove path recursively only when it holds the marker and nothing but what the marker lists
 * (subdirectories again marked); otherwise MER_ERR_INVALID_ARG naming the stranger file, and
 * nothing is removed. A missing path is MER_OK. */
MER_API mer_status mer_dir_remove_made(const char *path);
/* Remove "*.tmp.<pid>" files of processes that no longer exist from dir (*removed: how many,
 * may be NULL). */
MER_API mer_status mer_tmp_cleanup(const char *dir, int *removed);
/* The recipe of a directory of features: dir/recipe.json records how its files were made (an
 * extractor's JSON), so that a rerun with other settings does not keep files made the old way.
 * Call before writing any file into dir. dir/recipe.json absent: it is written (atomically),
 * except when dir already holds .npy files and !overwrite (made before recipes were recorded:
 * a warning, nothing written). Present and equal as JSON to recipe_json: MER_OK (a resume).
 * Present and different (or unreadable): with overwrite it is replaced (the caller redoes every
 * file); without, MER_ERR_INVALID_ARG naming dir and the first difference
 * (`feats: its features were made with another recipe (pool: was "none", now "mean"; ...)`). */
MER_API mer_status mer_output_recipe(const char *dir, const char *recipe_json, int overwrite);
/* The lines of a list file (one entry a line), the one list reader of every command: a UTF-8
 * BOM at the start is skipped, CR LF and LF both end lines, blanks around an entry are trimmed,
 * empty lines and lines starting with '#' are skipped; "-" reads stdin, FIFOs are read as
 * streams, a directory is refused ("is a directory"). *lines is one malloc'd block (pointer
 * array and text): free(*lines). */
MER_API mer_status mer_read_lines(const char *path, char ***lines, int64_t *n);

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
MER_API size_t mer_dtype_size(mer_dtype t);
/* Lower-case name ("f32", "bf16", ...); "?" for an invalid dtype. */
MER_API const char *mer_dtype_name(mer_dtype t);

/* A contiguous row-major view; fails with MER_ERR_INVALID_ARG on a bad rank or negative dim. */
MER_API mer_status mer_tensor_view(mer_tensor *out, void *data, mer_dtype dtype, int32_t ndim,
                                   const int64_t *shape);
/* Number of elements (product of the shape; 1 for rank 0). */
MER_API int64_t mer_tensor_numel(const mer_tensor *t);
/* 1 when the strides are those of a contiguous row-major tensor. */
MER_API int mer_tensor_is_contiguous(const mer_tensor *t);
/* Format the shape as "(2, 3, 4)" into buf (always NUL-terminated). Returns buf. */
MER_API char *mer_shape_str(char *buf, size_t n, int32_t ndim, const int64_t *shape);
/* Convert n elements of src (F32/F16/BF16/F64) into float32 dst. */
MER_API mer_status mer_convert_to_f32(float *dst, const void *src, mer_dtype dtype, int64_t n);

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
MER_API void mer_sgemm(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                       const float *A, int64_t lda, const float *B, int64_t ldb, float beta,
                       float *C,
                       int64_t ldc);

/* Mixed precision: C (M, N) = A @ op(B) (+ C when accumulate), with A float32 (M, K) rounded to
 * bfloat16 on the fly, B already bfloat16 (raw bits; (K, N) with ldb >= N, or (N, K) with
 * ldb >= K when trans_b), products summed in float32. About twice the fp32 throughput on CPUs
 * with AVX512-BF16 (oneDNN), at about 3 significant digits: an opt-in speed mode, never the
 * default. Without oneDNN it falls back to converting B to float32 (correct, slow).
 * ref: torch.matmul(A.bfloat16(), B).float() with float32 accumulation. */
MER_API mer_status mer_sgemm_bf16(int trans_b, int64_t M, int64_t N, int64_t K, const float *A,
                                  int64_t lda, const uint16_t *B, int64_t ldb, int accumulate,
                                  float *C,
                                  int64_t ldc);
/* Round n floats to bfloat16 bits (nearest even), e.g. to prepare weights for mer_sgemm_bf16. */
MER_API void mer_f32_to_bf16(uint16_t *dst, const float *src, int64_t n);

/* Precision of a model's large matrix products (opt-in speed modes, see each model's docs). */
typedef enum {
    MER_PRECISION_F32 = 0,  /* float32 throughout (default; the exactness bars hold) */
    MER_PRECISION_BF16 = 1, /* bfloat16 weights and rounded activations, float32 accumulation
                               (mer_sgemm_bf16); norms, softmax, activations stay float32 */
    MER_PRECISION_INT8 = 2  /* int8 weights. Text encoders and speech: the linear layers as W8A8 dynamic (mer_packed, MER_PACK_INT8:
                               per-channel weights, per-token activation scales), and speech's
                               feature-encoder convolutions with cin > 1 but the last two the
                               same way; the other convolutions, norms, attention and activations
                               stay float32 (docs/gemm.md) */
} mer_precision;

/* ---- Packed weights: y = x @ W^T + b with W packed once --------------------------------------
 * The one packed-weight facility of the encoders (speech, visual, text; src/kernels/packed.c,
 * docs/gemm.md). W is (n, k) row-major as torch.nn.Linear / Hugging Face store it, in F32, F16 or
 * BF16 (e.g. straight from an mmapped safetensors tensor); bias (n) or NULL is copied. Pack at
 * load; the packed copy is immutable and may be shared by threads. */
typedef enum {
    MER_PACK_F32 = 0,  /* float32, exact products */
    MER_PACK_BF16 = 1, /* bfloat16 weights, activations rounded to bfloat16, float32 sums */
    MER_PACK_INT8 = 2  /* W8A8 dynamic: int8 per-output-channel weights (7-bit range [-63, 63]),
                          int8 activations with one scale per row (token), quantised per call */
} mer_pack_type;
typedef enum {
    MER_EPI_NONE = 0,
    MER_EPI_GELU = 1   /* y = gelu(x @ W^T + b), erf form */
} mer_epilogue;
typedef struct mer_packed mer_packed;
/* Packs W (n, k) of dtype wtype. *out is owned by the caller (mer_packed_free). Fails on empty
 * shapes, other dtypes, sizes that overflow, no memory, and (INT8) non-finite weights. */
MER_API mer_status mer_packed_init(mer_packed **out, const void *w, mer_dtype wtype,
                                   const float *bias,
                                   int64_t n, int64_t k, mer_pack_type type);
MER_API void mer_packed_free(mer_packed *p);
MER_API size_t mer_packed_bytes(const mer_packed *p);  /* memory held by the packed copy */
MER_API int64_t mer_packed_n(const mer_packed *p);
MER_API int64_t mer_packed_k(const mer_packed *p);
MER_API mer_pack_type mer_packed_type(const mer_packed *p);
/* y (m, n) [row stride ldy] = epi(x (m, k) [ldx] @ W^T + b (+ y when accumulate; the sum is
 * taken before the epilogue)). Rows of x may overlap (1 <= ldx < k: a strided convolution's
 * unfolded input read in place, row t starting at t * stride * cin). Uses mer_get_threads() threads; the results do not depend on the
 * thread count. Allocates per call only the packed activations (m * k floats for F32/BF16,
 * m * k bytes for INT8); fails only on bad arguments or no memory. Thread safe.
 * ref: torch.nn.functional.linear (INT8: dynamic quantisation with per-token activation scales) */
MER_API mer_status mer_packed_linear(float *y, int64_t ldy, const float *x, int64_t ldx, int64_t m,
                                     const mer_packed *w, int accumulate, mer_epilogue epi);

/* ---- CPU features and the machine's peak --------------------------------------------------
 * What this CPU executes, read once from cpuid (kernels for wider ISAs are chosen at run time
 * from it). MER_NO_AVX512=1 in the environment hides the AVX-512 bits (tests of the AVX2 path). */
enum {
    MER_CPU_AVX2 = 1u << 0,        /* AVX2 + FMA3 */
    MER_CPU_AVX512 = 1u << 1,      /* AVX-512 F, BW, VL, DQ */
    MER_CPU_AVX512_VNNI = 1u << 2, /* vpdpbusd */
    MER_CPU_AVX512_BF16 = 1u << 3  /* vdpbf16ps */
};
MER_API uint32_t mer_cpu_features(void);
/* "avx512+bf16+vnni", "avx2+fma", ...: a static string. */
MER_API const char *mer_cpu_features_str(void);

/* Register-only loops that measure what the cores can compute, so that benchmarks print
 * "% of peak" measured in the same run. Ops count a multiply-add as 2. */
typedef enum {
    MER_PEAK_FP32 = 0,     /* fp32 FMA, the widest vectors the CPU has (zmm or ymm) */
    MER_PEAK_BF16 = 1,     /* vdpbf16ps (AVX512-BF16): 2 bf16 products per fp32 lane */
    MER_PEAK_INT8 = 2,     /* vpdpbusd (AVX512-VNNI): 4 u8 x s8 products per int32 lane */
    MER_PEAK_INT8_AVX2 = 3,/* vpmaddubsw + vpmaddwd + vpaddd: the AVX2 int8 dot product */
    MER_PEAK_INT16_AVX2 = 4/* vpmaddwd + vpaddd: int16 pairs into int32 (AVX2) */
} mer_peak_kind;
#define MER_PEAK_KINDS 5
MER_API const char *mer_peak_name(mer_peak_kind k);
/* Runs the loop of kind k on `threads` threads at once (<= 0: mer_get_threads()) for about
 * `seconds` and stores the total rate in GOPS. MER_ERR_UNSUPPORTED when this CPU lacks the
 * instructions (or the build has no kernel for them). Not thread safe against other heavy work:
 * it measures the whole machine. */
MER_API mer_status mer_peak_measure(mer_peak_kind k, int32_t threads, double seconds, double *gops);

/* Select the backend for subsequent mer_sgemm calls (process-wide). Fails with
 * MER_ERR_UNSUPPORTED if the backend was not compiled in. */
MER_API mer_status mer_gemm_set_backend(mer_gemm_backend b);
MER_API mer_gemm_backend mer_gemm_get_backend(void);
MER_API const char *mer_gemm_backend_name(mer_gemm_backend b);
/* 1 if the backend is compiled in. */
MER_API int mer_gemm_backend_available(mer_gemm_backend b);

/* ============================================================================================
 * IO: safetensors
 * ========================================================================================== */
/* Reader: mmaps the file(s), validates the whole header before use (length <= 100 MB, JSON
 * without duplicate keys, dtypes, shape x dtype size == byte span, spans in bounds and tiling
 * the buffer with no overlap, hole or trailing bytes, no overflow), and hands out zero-copy
 * views into the mapping (a tensor the file places misaligned for its dtype is copied once).
 * The dtypes U16/U32/U64/F8_* are refused with MER_ERR_DTYPE. For a sharded checkpoint every
 * weight_map entry must be in the shard it names; a tensor may not appear in two shards. path is a .safetensors file, a sharded checkpoint's
 * model.safetensors.index.json, or a directory holding either (model.safetensors preferred).
 * PyTorch checkpoints open through the same handle, so every loader reads them unchanged: a
 * torch.save file (zip format or legacy, by content, any name: pytorch_model.bin, *.pt), a
 * pytorch_model.bin.index.json, or a directory holding pytorch_model.bin (or its index) and no
 * safetensors. Their pickle goes through a restricted unpickler that names the only globals a
 * state dict needs and refuses any other, naming it (nothing is ever executed); contiguous
 * aligned tensors point into the mapping, strided or misaligned views are gathered once into an
 * aligned copy (docs/formats.md).
 * The handle is immutable after open and may be shared between threads, except
 * mer_safetensors_get_f32 on non-F32 tensors (it caches conversions; guard it or call it from
 * one thread at load time). */
typedef struct mer_safetensors mer_safetensors;

typedef struct {
    const char *name;       /* owned by the handle */
    mer_dtype dtype;
    int32_t ndim;
    int64_t shape[MER_MAX_DIMS];
    const void *data;       /* into the mapping (aligned); valid until mer_safetensors_free */
    size_t nbytes;
    int32_t shard;          /* index of the file holding it (0 for a single file) */
} mer_safetensors_entry;

MER_API mer_status mer_safetensors_open(mer_safetensors **out, const char *path);
MER_API void mer_safetensors_free(mer_safetensors *st);
MER_API int64_t mer_safetensors_count(const mer_safetensors *st);
/* Entries in file order (shard by shard). */
MER_API mer_status mer_safetensors_entry_at(const mer_safetensors *st, int64_t i,
                                            mer_safetensors_entry *e);
/* MER_ERR_NOT_FOUND (message names the tensor and the file) when absent. */
MER_API mer_status mer_safetensors_find(const mer_safetensors *st, const char *name,
                                        mer_safetensors_entry *e);
/* Metadata value of the "__metadata__" object, or NULL. Owned by the handle. */
MER_API const char *mer_safetensors_metadata(const mer_safetensors *st, const char *key);
/* Typed lookup: the tensor must exist, have the given dtype, and (when ndim >= 0) the given
 * shape; errors say expected vs got. out views the mapping. */
MER_API mer_status mer_safetensors_get(const mer_safetensors *st, const char *name, mer_dtype dtype,
                                       int32_t ndim, const int64_t *shape, mer_tensor *out);
/* Float32 view of a F32/F16/BF16 tensor with the given shape (ndim < 0: any). F32 tensors are
 * returned zero-copy from the mapping; others are converted once into a buffer owned by st
 * (valid until mer_safetensors_free). */
MER_API mer_status mer_safetensors_get_f32(mer_safetensors *st, const char *name, int32_t ndim,
                                           const int64_t *shape, const float **out);
/* Tell the system that the bytes [p, p + n) of a tensor of st are not needed for now (e.g. after
 * repacking them): the whole pages of a file mapping inside the range leave memory and are read
 * again from the file on the next access. A no-op for memory that is not in st's file mappings
 * (converted or realigned copies, borrowed buffers). The data stays valid. */
MER_API void mer_safetensors_release(const mer_safetensors *st, const void *p, size_t n);
/* Path of the (first) file, for messages. */
MER_API const char *mer_safetensors_path(const mer_safetensors *st);
/* The format of the (first) file behind the handle: "safetensors", "pytorch zip" or
 * "pytorch legacy". Static string. */
MER_API const char *mer_safetensors_format(const mer_safetensors *st);

/* Writer: collects tensors (data copied at add time) and writes one file atomically (temp file
 * + rename). The header lists "__metadata__" first, then the tensors grouped by element size
 * (8-byte types first; in the order added within a size) so that, with the header padded with
 * spaces to a multiple of 8 as the reference writer does, every tensor is aligned. Adding a
 * name twice is MER_ERR_INVALID_ARG; set_metadata on an existing key replaces its value. */
typedef struct mer_safetensors_writer mer_safetensors_writer;
MER_API mer_status mer_safetensors_writer_init(mer_safetensors_writer **out);
MER_API mer_status mer_safetensors_writer_add(mer_safetensors_writer *w, const char *name,
                                              mer_dtype dtype,
                                              int32_t ndim, const int64_t *shape, const void *data);
/* As writer_add, but data is borrowed, not copied: it must stay valid and unchanged until
 * mer_safetensors_writer_save returns (for writing tensors straight from an open checkpoint). */
MER_API mer_status mer_safetensors_writer_add_borrowed(mer_safetensors_writer *w, const char *name,
                                                       mer_dtype dtype,
                                                       int32_t ndim, const int64_t *shape,
                                                       const void *data);
MER_API mer_status mer_safetensors_writer_set_metadata(mer_safetensors_writer *w, const char *key,
                                                       const char *value);
MER_API mer_status mer_safetensors_writer_save(mer_safetensors_writer *w, const char *path);
MER_API void mer_safetensors_writer_free(mer_safetensors_writer *w);

/* ==========================================================================================
 * IO: checkpoints (src/io/checkpoint.c): the Hugging Face cache, PyTorch -> safetensors
 * ========================================================================================== */
/* Resolve a --model argument to a checkpoint directory, never touching the network. spec is
 * returned as is when it names an existing file or directory. Otherwise ORG/NAME (or
 * ORG/NAME@REVISION, a branch or commit) is looked up in the Hugging Face cache as
 * huggingface_hub lays it out: $HF_HUB_CACHE, else $HUGGINGFACE_HUB_CACHE, else $HF_HOME/hub,
 * else $XDG_CACHE_HOME/huggingface/hub, else ~/.cache/huggingface/hub; then
 * models--ORG--NAME/snapshots/<the commit in refs/main>/. *out malloc'd (free()). When absent:
 * MER_ERR_NOT_FOUND with one line naming where it looked and how to download the model. Every
 * --model flag of the CLI goes through this. Thread safe. */
MER_API mer_status mer_model_resolve(const char *spec, char **out);

/* Rewrite a checkpoint (anything mer_safetensors_open reads: a PyTorch .bin, zip or legacy,
 * sharded or not, or safetensors) as out_dir/model.safetensors (metadata format=pt; tensors
 * streamed from the mapping, not copied in memory) and copy the checkpoint directory's other
 * regular files (config.json, preprocessor and tokenizer files; never weights or pickles such
 * as training_args.bin). out_dir is created with its parents; it may not be the checkpoint's own
 * directory. *n_tensors (may be NULL) gets the tensor count. */
MER_API mer_status mer_checkpoint_convert(const char *src, const char *out_dir, int64_t *n_tensors);

/* ============================================================================================
 * IO: .npy
 * ========================================================================================== */
/* NumPy .npy files (format 1.0-3.0): read float32/float16/float64 (little-endian, C order,
 * rank 0..MER_MAX_DIMS; rank 0 is read as shape (1,)) into float32; write float32 C-order
 * atomically, byte for byte as numpy.save (format 1.0, header padded to 64 bytes).
 * Fortran order, object arrays, big-endian data and truncated payloads are errors naming the
 * file and the problem. *data is malloc'd; the caller frees it with free(). */
MER_API mer_status mer_npy_read(const char *path, float **data, int32_t *ndim,
                                int64_t shape[MER_MAX_DIMS]);
/* Header only: dtype and shape without reading the payload (the payload size is checked).
 * Reports the true rank (0 for a scalar) and also the integer/bool dtypes numpy writes
 * (i1/i2/i4/i8/u1/b1), which mer_npy_read refuses with MER_ERR_DTYPE. */
MER_API mer_status mer_npy_read_header(const char *path, mer_dtype *dtype, int32_t *ndim,
                                       int64_t shape[MER_MAX_DIMS]);
/* Parse from memory (for fuzzing and embedded data); name is used in messages. */
MER_API mer_status mer_npy_parse(const void *buf, size_t size, const char *name, float **data,
                                 int32_t *ndim, int64_t shape[MER_MAX_DIMS]);
MER_API mer_status mer_npy_write(const char *path, const float *data, int32_t ndim,
                                 const int64_t *shape);

/* ============================================================================================
 * IO: JSON config, CSV
 * ========================================================================================== */
/* JSON documents (Hugging Face config.json, preprocessor_config.json, run configs), parsed with
 * cJSON. Getters take a dotted path ("vision_config.hidden_size"); a missing key gives
 * MER_ERR_NOT_FOUND, a value of the wrong type MER_ERR_FORMAT, both naming the file and the key.
 * A decimal component indexes an array ("architectures.0"). Integers must be integral and below
 * 2^53 in magnitude (3.5 is not an int). Repeated keys and text after the value are parse
 * errors. null counts as absent for mer_json_has and the *_or getters (configs write optional
 * settings as null); the plain getters report it as the wrong type.
 * Returned strings are owned by the document. */
typedef struct mer_json mer_json;
MER_API mer_status mer_json_load(mer_json **out, const char *path);
MER_API mer_status mer_json_parse(mer_json **out, const char *text, size_t len, const char *name);
MER_API void mer_json_free(mer_json *j);
MER_API int mer_json_has(const mer_json *j, const char *path);
MER_API mer_status mer_json_get_int(const mer_json *j, const char *path, int64_t *out);
MER_API mer_status mer_json_get_double(const mer_json *j, const char *path, double *out);
MER_API mer_status mer_json_get_bool(const mer_json *j, const char *path, int *out);
MER_API mer_status mer_json_get_string(const mer_json *j, const char *path, const char **out);
/* Arrays of numbers: up to cap values, *n set to the array length (an error if > cap). */
MER_API mer_status mer_json_get_int_array(const mer_json *j, const char *path, int64_t *out,
                                          int32_t cap,
                                          int32_t *n);
MER_API mer_status mer_json_get_double_array(const mer_json *j, const char *path, double *out,
                                             int32_t cap, int32_t *n);
/* With a default when the key is absent (a present key of the wrong type is still an error). */
MER_API mer_status mer_json_int_or(const mer_json *j, const char *path, int64_t def, int64_t *out);
MER_API mer_status mer_json_double_or(const mer_json *j, const char *path, double def, double *out);
MER_API mer_status mer_json_bool_or(const mer_json *j, const char *path, int def, int *out);
MER_API mer_status mer_json_string_or(const mer_json *j, const char *path, const char *def,
                                      const char **out);
/* Writing: s as a quoted JSON string literal (escaped by cJSON, the one escaper of mer), malloc'd
 * (free()); NULL only when out of memory (MER_ERR_NOMEM recorded). */
MER_API char *mer_json_quote(const char *s);

/* CSV (RFC 4180: header row, quoted fields with "" escapes and embedded newlines, UTF-8 with an
 * optional BOM, CRLF or LF). Empty lines are skipped. Errors name the file and line: a record
 * with a different number of fields than the header, an unterminated quote, text after a
 * closing quote, a quote inside an unquoted field, invalid UTF-8, NUL bytes. Cells are owned
 * by the table; mer_csv_cell returns NULL out of range. */
typedef struct mer_csv mer_csv;
MER_API mer_status mer_csv_load(mer_csv **out, const char *path);
MER_API mer_status mer_csv_parse(mer_csv **out, const char *text, size_t len, const char *name);
MER_API void mer_csv_free(mer_csv *c);
MER_API int64_t mer_csv_rows(const mer_csv *c);   /* data rows, header excluded */
MER_API int32_t mer_csv_cols(const mer_csv *c);
MER_API const char *mer_csv_header(const mer_csv *c, int32_t col);
/* Column index by header name, or MER_ERR_NOT_FOUND naming the file, the column and the
 * columns that exist; MER_ERR_FORMAT when two columns have that name. */
MER_API mer_status mer_csv_col(const mer_csv *c, const char *name, int32_t *col);
MER_API const char *mer_csv_cell(const mer_csv *c, int64_t row, int32_t col);
/* Write one field to f with RFC 4180 quoting when needed. */
MER_API void mer_csv_write_field(FILE *f, const char *s);

/* ============================================================================================
 * IO: media (FFmpeg) and images
 * ========================================================================================== */
/* Media through FFmpeg (libavformat/libavcodec/libswresample/libswscale). A file that cannot be
 * opened or decoded, or lacks the wanted stream, gives MER_ERR_MEDIA naming the file. */
typedef struct {
    char format[64];          /* container name */
    double duration;          /* seconds, 0 if unknown */
    int32_t has_audio, has_video;
    char audio_codec[32];
    int32_t sample_rate, channels;
    char video_codec[32];
    int32_t width, height;
    double fps;               /* average frame rate, 0 if unknown */
    int64_t frames;           /* estimated frame count, 0 if unknown */
} mer_media_info;
MER_API mer_status mer_media_probe(const char *path, mer_media_info *info);

/* One stream of a media file (mer_media_streams), for `mer inspect`. */
typedef struct {
    int32_t index;            /* stream index in the container */
    char type[16];            /* "audio", "video", "subtitle", "data", ... */
    char codec[32];
    double duration;          /* seconds, 0 if unknown */
    int32_t sample_rate, channels;      /* audio */
    int32_t width, height;              /* video */
    double fps;                         /* video: average frame rate, 0 if unknown */
    int64_t frames;                     /* video: frame count or estimate, 0 if unknown */
    int32_t attached_pic;               /* video: 1 for cover art (a still, not a video) */
} mer_media_stream;
/* Every stream of the file. *streams is malloc'd (free()), *n entries. */
MER_API mer_status mer_media_streams(const char *path, mer_media_stream **streams, int32_t *n);

/* Decode the best audio stream, downmix to mono (the mean of the channels) and resample to
 * sample_rate (1000..768000; soxr "very high quality", as `sox rate -v`), as float32 nominally
 * in [-1, 1]. The length is exactly ceil(n_in * sample_rate / rate_in) (torchaudio's resample
 * length). *samples is malloc'd (free()); an empty stream gives *n == 0, a valid buffer and
 * MER_OK. Reentrant. Details: docs/media.md. */
MER_API mer_status mer_media_decode_audio(const char *path, int32_t sample_rate, float **samples,
                                          int64_t *n);

/* Digital silence: no sample's magnitude reaches MER_SILENCE_PEAK (1e-6, -120 dBFS), so there is
 * no speech to classify. The speech encoders refuse it; `mer analyze` reports "no speech" and
 * `mer predict --input` (mer_acoustic_extract) refuses the clip instead of guessing a class.
 * Returns 1 when x[0..n) is silent (n == 0 included), else 0; *peak (may be NULL) gets the
 * largest magnitude. Non-finite samples are not silent. */
#define MER_SILENCE_PEAK 1e-6f
MER_API int mer_audio_is_silent(const float *x, int64_t n, float *peak);

/* An 8-bit RGB image, rows packed (stride = width * 3). */
typedef struct {
    int32_t width, height;
    uint8_t *rgb;             /* malloc'd, owned by whoever owns the struct */
    double time;              /* seconds from the start (video frames), 0 for images */
    int64_t index;            /* frame index in the stream (video), 0 for images */
} mer_image;
MER_API void mer_image_free(mer_image *img);   /* frees rgb, zeroes the struct; NULL ok */

/* How to sample frames from a video: at most one of fps > 0 (for t = 0, 1/fps, ... up to the
 * end: the frame shown at t, i.e. the last one with time <= t), count > 0 (the frame shown at
 * t = (k + 0.5) * duration / count, k = 0..count-1: centres of equal segments), every > 0
 * (decoded frames 0, N, 2N, ...); all zero: every frame. max_frames > 0 caps the result.
 * Times are seconds from the container start. Frames may repeat (fps above the video's); a
 * count above the frames the stream has (its frame count, else duration x frame rate) is
 * reduced to that, so each frame comes once (`--frames 100000` on a 10 s clip: 250 frames). */
typedef struct {
    double fps;
    int32_t count;
    int32_t every;
    int32_t max_frames;
} mer_frame_sampling;

/* Decode video frames to RGB at their native size (sides up to 16384). Each image's time and
 * index are those of the chosen source frame. sampling NULL: every frame. *frames is a
 * malloc'd array of *n images; free with mer_frames_free. Reentrant. */
MER_API mer_status mer_media_decode_video(const char *path, const mer_frame_sampling *sampling,
                                          mer_image **frames, int32_t *n);
MER_API void mer_frames_free(mer_image *frames, int32_t n);
/* The same frames streamed: fn(img, user_data) is called for each in order and img (pixels
 * included) is valid only during the call (the buffer is reused), so memory stays at one
 * decoded and one RGB frame whatever the clip length. fn returns MER_OK to go on; any other
 * status stops decoding and is returned. *n (may be NULL): frames passed to fn. */
typedef mer_status (*mer_frame_fn)(const mer_image *img, void *user_data);
MER_API mer_status mer_media_each_video_frame(const char *path, const mer_frame_sampling *sampling,
                                              mer_frame_fn fn,
                                              void *user_data, int32_t *n);

/* Load a still image (PNG, JPEG; anything else FFmpeg decodes as one picture) as RGB8: grey
 * replicated, 16-bit rounded to 8, alpha dropped (not composited), EXIF orientation ignored.
 * MER_ERR_IO if the file cannot be opened, MER_ERR_FORMAT if it is corrupt or truncated. */
MER_API mer_status mer_image_load(const char *path, mer_image *out);
/* Write RGB (channels 3) or grey (1) or RGBA (4) 8-bit pixels as PNG, atomically. */
MER_API mer_status mer_image_write_png(const char *path, const uint8_t *pixels, int32_t width,
                                       int32_t height, int32_t channels);

/* ---- IO: TensorFlow.js weights (src/io/tfjs.c, docs/faces.md) ---------------------------- */
/* A weights manifest (JSON array of groups {paths, weights: [{name, shape, dtype,
 * quantization?}]}) and its binary shards. float32, int32 and bool tensors and uint8/uint16
 * (affine scale + min) or float16 quantisation are read; every tensor is dequantised to float32
 * at load. Validation: JSON shape of the manifest, dtypes, shape overflow, shard paths relative
 * and inside the manifest's directory, shard bytes == bytes the weights need (missing, short and
 * long shards are errors naming the file), unique names, finite values. The handle is immutable
 * after load and may be shared between threads. */
typedef struct mer_tfjs mer_tfjs;

typedef struct {
    const char *name;             /* owned by the handle */
    mer_dtype stored;             /* storage in the shard: F32, I32, BOOL, or U8 / I16 (= uint16)
                                   * / F16 for quantised tensors */
    int32_t ndim;
    int64_t shape[MER_MAX_DIMS];
    int64_t numel;
    const float *data;            /* dequantised, owned by the handle, valid until free */
} mer_tfjs_entry;

/* Load manifest_path and the shards it names (relative to its directory). */
MER_API mer_status mer_tfjs_load(mer_tfjs **out, const char *manifest_path);
/* From memory: shards holds every group's shard bytes back to back (for fuzzing and embedded
 * models); name is used in messages. */
MER_API mer_status mer_tfjs_parse(mer_tfjs **out, const char *manifest, size_t len,
                                  const void *shards,
                                  size_t shards_size, const char *name);
MER_API void mer_tfjs_free(mer_tfjs *w);
MER_API int64_t mer_tfjs_count(const mer_tfjs *w);
/* Entries in manifest order. */
MER_API mer_status mer_tfjs_entry_at(const mer_tfjs *w, int64_t i, mer_tfjs_entry *e);
/* MER_ERR_NOT_FOUND naming the file and the tensor when absent. */
MER_API mer_status mer_tfjs_find(const mer_tfjs *w, const char *name, mer_tfjs_entry *e);
/* The float32 data of a tensor that must have the given shape (ndim < 0: any); MER_ERR_SHAPE
 * says expected vs got. */
MER_API mer_status mer_tfjs_get(const mer_tfjs *w, const char *name, int32_t ndim,
                                const int64_t *shape,
                                const float **out);
MER_API const char *mer_tfjs_path(const mer_tfjs *w);

/* ============================================================================================
 * Text: tokenizers (src/text/, docs/text.md)
 * ========================================================================================== */
/* The tokenizers of Hugging Face text models, exact against the reference implementations
 * (transformers / sentencepiece) on a committed corpus:
 *   "wordpiece"             vocab.txt (+ tokenizer_config.json): BERT's BasicTokenizer + WordPiece
 *   "sentencepiece-bpe"     tokenizer.model (protobuf) of model_type BPE (LLaMA, Baichuan)
 *   "sentencepiece-unigram" tokenizer.model of model_type UNIGRAM
 *   "bpe-bytelevel"         tokenizer.json with a byte-level BPE model (Qwen2, LLaMA-3)
 * Text is UTF-8; invalid UTF-8 is MER_ERR_FORMAT naming the byte offset. */
typedef struct mer_tokenizer mer_tokenizer;   /* immutable after load, shareable */

/* dir holds vocab.txt | tokenizer.model | tokenizer.json, plus tokenizer_config.json /
 * special_tokens_map.json / config.json as the model ships them; a file path also works
 * (then the config files beside it are read too). When a directory holds several tokenizer
 * files, tokenizer.json wins, then tokenizer.model, then vocab.txt. *out is owned by the
 * caller (mer_tokenizer_free). A component the reader does not support is MER_ERR_UNSUPPORTED
 * naming it. */
MER_API mer_status mer_tokenizer_load(mer_tokenizer **out, const char *path);
MER_API void mer_tokenizer_free(mer_tokenizer *t);

/* ids: owned by the caller (free()); add_special: BOS/EOS or [CLS]/[SEP] as the model's config
 * asks, exactly like HF tokenizer(text)["input_ids"] with default arguments (no truncation).
 * len is the byte length of text (text need not be NUL-terminated). Thread safe. */
MER_API mer_status mer_tokenizer_encode(const mer_tokenizer *t, const char *text, size_t len,
                                        int add_special, int32_t **ids, int64_t *n);
MER_API int64_t mer_tokenizer_vocab_size(const mer_tokenizer *t);
MER_API const char *mer_tokenizer_kind(const mer_tokenizer *t);  /* "wordpiece" | "sentencepiece-bpe" ... */
/* The vocabulary entry of id as stored in the file (e.g. "##ing", "\u2581the", "<0x0A>",
 * "\u0120the"); owned by t. MER_ERR_INVALID_ARG when id is out of range. */
MER_API mer_status mer_tokenizer_decode_piece(const mer_tokenizer *t, int32_t id,
                                              const char **piece);

/* Special tokens, for `mer inspect`: the i-th (0 <= i < count) special token's text and id.
 * Order: BOS/CLS, EOS/SEP, UNK, PAD, then other special/control/added tokens by id. */
MER_API int32_t mer_tokenizer_special_count(const mer_tokenizer *t);
MER_API mer_status mer_tokenizer_special(const mer_tokenizer *t, int32_t i, const char **text,
                                         int32_t *id);
/* Id of the BOS ([CLS]) / EOS ([SEP]) / UNK / PAD token, or -1 when the model has none. */
MER_API int32_t mer_tokenizer_bos_id(const mer_tokenizer *t);
MER_API int32_t mer_tokenizer_eos_id(const mer_tokenizer *t);
MER_API int32_t mer_tokenizer_unk_id(const mer_tokenizer *t);
MER_API int32_t mer_tokenizer_pad_id(const mer_tokenizer *t);

/* ============================================================================================
 * Models
 * ========================================================================================== */
/* (one subsection per model file in src/models/) */

/* ---- Models: acoustic features (src/models/acoustic*.c, docs/acoustic.md) --------------- */
/* Weight-free speech descriptors after eGeMAPS (Eyben et al. 2016) plus MFCCs: frame-level
 * low-level descriptors (LLDs) every hop_length samples, and utterance functionals over them.
 * Input: mono float32 samples at params.sample_rate (mer_media_decode_audio resamples).
 * The log-mel and MFCC follow torchaudio.transforms.MelSpectrogram / MFCC with the same
 * settings (hann window periodic, center=True with reflect padding, power 2, htk mel scale,
 * norm None, log(mel + log_offset), DCT-II ortho). All functions are thread safe. */
typedef struct {
    int32_t sample_rate;      /* 16000 */
    int32_t n_fft;            /* 512 */
    int32_t win_length;       /* 400 (25 ms) */
    int32_t hop_length;       /* 160 (10 ms): one frame every hop */
    int32_t n_mels;           /* 40 */
    int32_t n_mfcc;           /* 13 (c0 .. c12) */
    float f_min;              /* 0 Hz */
    float f_max;              /* 0: sample_rate / 2 */
    float log_offset;         /* 1e-6 (torchaudio MFCC log_mels=True) */
    int32_t delta_win;        /* 5 (torchaudio.functional.compute_deltas win_length) */
    float f0_min, f0_max;     /* 55, 600 Hz: pitch search range */
    float voicing_threshold;  /* 0.35: max YIN aperiodicity of a voiced frame */
    int32_t lpc_order;        /* 0: 2 + sample_rate / 1000 (formants) */
    int32_t functionals;      /* MER_ACOUSTIC_EGEMAPS (0): 6 statistics per LLD + 16 utterance
                                 values (514); MER_ACOUSTIC_EXTENDED (1): those, then 5 more per
                                 LLD: mean |delta|, delta std, p10-p90 range, skewness, kurtosis
                                 (929; docs/acoustic.md) */
} mer_acoustic_params;
enum { MER_ACOUSTIC_EGEMAPS = 0, MER_ACOUSTIC_EXTENDED = 1 };
MER_API mer_acoustic_params mer_acoustic_default_params(void);

/* Power mel spectrogram (n_mels, T), T = 1 + n / hop_length (signals shorter than n_fft / 2 + 1
 * samples are zero-padded first, torchaudio would reject them). *out is malloc'd (free()).
 * ref: torchaudio.transforms.MelSpectrogram */
MER_API mer_status mer_acoustic_melspec(const float *x, int64_t n, const mer_acoustic_params *p,
                                        float **out, int64_t *T);
/* MFCC (n_mfcc, T) from log(mel + log_offset). ref: torchaudio.transforms.MFCC(log_mels=True) */
MER_API mer_status mer_acoustic_mfcc(const float *x, int64_t n, const mer_acoustic_params *p,
                                     float **out, int64_t *T);

/* Frame-level LLDs (T, D), D = mer_acoustic_frame_dim(p). *out is malloc'd (free()). */
MER_API int32_t mer_acoustic_frame_dim(const mer_acoustic_params *p);
MER_API mer_status mer_acoustic_frames(const float *x, int64_t n, const mer_acoustic_params *p,
                                       float **out, int64_t *T);
/* Utterance functionals (D,), D = mer_acoustic_functional_dim(p), into caller memory. */
MER_API int32_t mer_acoustic_functional_dim(const mer_acoustic_params *p);
MER_API mer_status mer_acoustic_functionals(const float *x, int64_t n, const mer_acoustic_params *p,
                                            float *out);
/* The same from frames computed by mer_acoustic_frames (T, frame_dim). */
MER_API mer_status mer_acoustic_functionals_from_frames(const float *frames,
                                                        int64_t T, const mer_acoustic_params *p, float *out);
/* Name of frame LLD i ("f0_semitone", "mfcc3", "mfcc3_delta") or functional i
 * ("f0_semitone_p50", ...) into buf (NUL-terminated). MER_ERR_INVALID_ARG when out of range. */
MER_API mer_status mer_acoustic_frame_name(const mer_acoustic_params *p, int32_t i, char *buf,
                                           size_t cap);
MER_API mer_status mer_acoustic_functional_name(const mer_acoustic_params *p, int32_t i, char *buf,
                                                size_t cap);

/* Extraction recipe: what `mer extract acoustic` did, so a trained run can extract the same
 * features from raw media on its own (mer predict). pool is "mean" (functionals, shape (D,))
 * or "none" (frames, shape (T, D)). */
typedef struct {
    mer_acoustic_params params;
    char pool[8];
} mer_acoustic_recipe;
MER_API mer_acoustic_recipe mer_acoustic_default_recipe(void);
/* JSON object text {"extractor":"acoustic","pool":...,"params":{...}}; *json malloc'd (free()). */
MER_API mer_status mer_acoustic_recipe_to_json(const mer_acoustic_recipe *r, char **json);
/* Parse such an object (the whole document or the value at key path `key`, NULL: root);
 * absent params keep their defaults; "extractor" must be "acoustic". */
MER_API mer_status mer_acoustic_recipe_from_json(const mer_json *j, const char *key,
                                                 mer_acoustic_recipe *r);
/* Decode any FFmpeg-readable media file (resampled to params.sample_rate) and extract: pool
 * "mean" gives (D,) with ndim 1, "none" (T, D) with ndim 2. *out malloc'd (free()). An audio
 * stream with no samples is MER_ERR_MEDIA naming the file. */
MER_API mer_status mer_acoustic_extract_file(const mer_acoustic_recipe *r, const char *path,
                                             float **out,
                                             int32_t *ndim, int64_t shape[2]);
/* The same on a speed-perturbed copy of the audio (data augmentation): resampled to
 * sample_rate / speed and analysed as if at sample_rate, so tempo and every frequency scale by
 * speed (0.9 and 1.1 are the usual factors). speed 1 is mer_acoustic_extract_file. */
MER_API mer_status mer_acoustic_extract_file_speed(const mer_acoustic_recipe *r, const char *path,
                                                   double speed, float **out, int32_t *ndim,
                                                   int64_t shape[2]);
/* The same from samples already decoded at the recipe's sample_rate, following a recipe's JSON
 * text (see mer_acoustic_extract in "Training"), including its optional "norm" standardisation
 * {"mean": [D], "std": [D]}. */
MER_API mer_status mer_acoustic_extract_samples(const char *recipe_json, const float *x, int64_t n,
                                                const char *modality, float **data, int32_t *ndim,
                                                int64_t shape[MER_MAX_DIMS]);
/* Sample rate a recipe's JSON text asks for (16000 by default), or MER_ERR_FORMAT. */
MER_API mer_status mer_acoustic_recipe_sample_rate(const char *recipe_json, const char *modality,
                                                   int32_t *sample_rate);

/* ---- Models: speech encoder (src/models/hubert.c, docs/speech.md) ------------------------ */
/* HuBERT and wav2vec 2.0 (Hugging Face HubertModel / Wav2Vec2Model) from a checkpoint directory
 * holding config.json, model.safetensors (or a sharded model.safetensors.index.json) and
 * optionally preprocessor_config.json. F32 weights are used in place from the mmapped file;
 * F16/BF16 ones are converted once at load. Both feature-extractor norms ("group", "layer"),
 * conv bias on/off, post-LN (base) and stable-layer-norm (large) encoders, both spellings of the
 * positional convolution's weight norm. Heads of *ForCTC / *ForSequenceClassification /
 * *ForPreTraining checkpoints are ignored (one log line); any other missing, unexpected or
 * mis-shaped tensor is an error naming it with expected vs got.
 *
 * Hidden states follow transformers' output_hidden_states=True: L + 1 tensors (T, D), index 0
 * the encoder input after the positional convolution (and after the encoder layer norm for
 * post-LN models), index i the output of layer i; for stable-layer-norm models the last one is
 * after the final encoder layer norm. T = frames of n samples (320x downsampling at 16 kHz).
 *
 * The model is immutable and may be shared by threads; each thread encodes with its own
 * mer_speech_state (scratch arena, grown on demand). */
typedef struct mer_speech_model mer_speech_model;
typedef struct mer_speech_state mer_speech_state;

typedef struct {
    char model_type[16];          /* "hubert" or "wav2vec2" */
    int32_t n_layers;             /* L: hidden states are 0..L */
    int32_t hidden_size;          /* D */
    int32_t n_heads;
    int32_t intermediate_size;
    int32_t conv_layers;          /* feature-extractor conv layers */
    int32_t stable_layer_norm;    /* 1: pre-LN (large) encoder */
    int32_t sample_rate;          /* from preprocessor_config (16000 when absent) */
    int32_t do_normalize;         /* from preprocessor_config (1 when absent, as transformers) */
    int64_t n_params;             /* parameters of the base model */
    int64_t weight_bytes;         /* bytes of the safetensors file(s) */
    int32_t bf16_ready;           /* 1 once bfloat16 weights exist (first MER_PRECISION_BF16 use) */
    int64_t bf16_bytes;           /* bytes of the packed bfloat16 weights the model holds
                                     (mer_packed_bytes): 2 per weight of the linear layers and the
                                     feature-encoder convs with cin > 1, panels padded to 16
                                     outputs, float32 biases */
} mer_speech_info;

/* Options of the loader. */
typedef struct {
    mer_precision precision;      /* besides float32, pack the weights for this precision at
                                     load (BF16, INT8) instead of on its first use; F32 (default):
                                     nothing packed */
} mer_speech_model_params;
MER_API mer_speech_model_params mer_speech_model_default_params(void);
/* Load a checkpoint directory; p NULL: the defaults. *out owned by the caller
 * (mer_speech_model_free). */
MER_API mer_status mer_speech_model_load(mer_speech_model **out, const char *dir,
                                         const mer_speech_model_params *p);
MER_API void mer_speech_model_free(mer_speech_model *m);
MER_API void mer_speech_model_info(const mer_speech_model *m, mer_speech_info *info);
/* Frames produced for n samples (0 when the input is shorter than the receptive field, 400
 * samples for the standard extractor). */
MER_API int64_t mer_speech_frames(const mer_speech_model *m, int64_t n_samples);

/* What mer_speech_encode / mer_speech_encode_batch on a state run with. */
typedef struct {
    mer_precision precision;      /* F32 (default). The first BF16 / INT8 use on a model packs
                                     its weights for that precision once (mer_packed; thread
                                     safe: the model may be shared) */
    int32_t n_threads;            /* 0: mer_get_threads() */
    mer_progress_fn progress;     /* after each transformer layer: (layers done, layers run) */
    void *progress_user_data;
    mer_abort_fn abort;           /* polled before each transformer layer */
    void *abort_user_data;
} mer_speech_state_params;
MER_API mer_speech_state_params mer_speech_state_default_params(void);
/* A per-thread state bound to m (which must outlive it); p NULL: the defaults. Fails with
 * MER_ERR_NOMEM if the packed weights of p->precision do not fit, MER_ERR_INVALID_ARG on an
 * unknown precision. */
MER_API mer_status mer_speech_state_init(mer_speech_state **out, const mer_speech_model *m,
                                         const mer_speech_state_params *p);
/* Change the precision of the state's params (as state_init would set it). */
MER_API mer_status mer_speech_state_set_precision(mer_speech_state *s, mer_precision p);
MER_API void mer_speech_state_free(mer_speech_state *s);

/* Zero mean, unit variance over x (n), in place: (x - mean) / sqrt(var + 1e-7), population
 * variance, as Wav2Vec2FeatureExtractor.zero_mean_unit_var_norm. */
MER_API void mer_speech_normalize(float *x, int64_t n);

/* Encode one utterance (samples at the model's sample rate, already normalized if the model
 * wants it) and write hidden states layer_first..layer_last (inclusive, 0 <= first <= last <= L)
 * into out, (last - first + 1, T, D) with T = mer_speech_frames(m, n). Fails with
 * MER_ERR_SHAPE when the input yields no frame, MER_ERR_NUMERIC on NaN/Inf samples. */
MER_API mer_status mer_speech_encode(mer_speech_state *s, const float *samples, int64_t n,
                                     int32_t layer_first, int32_t layer_last, float *out);
/* Encode b utterances in one forward, for throughput on many short clips: each utterance's
 * feature encoder, projection and positional convolution run alone, then the transformer layers
 * run on all their frames stacked (the linear layers see sum T_i rows, one parallel region per
 * product), attention within each utterance (no padding, no mask: frames of different
 * utterances never mix). samples[i] (n[i]) as for mer_speech_encode; outs[i] receives
 * (last - first + 1, T_i, D). The results are those of b mer_speech_encode calls (bitwise for
 * the packed bf16/int8 products; fp32 up to the GEMM library's summation order). Scratch grows
 * with sum T_i (about (6 D + I) floats a frame). Errors name the utterance index. */
MER_API mer_status mer_speech_encode_batch(mer_speech_state *s, int32_t b, const float *const *samples,
                                           const int64_t *n, int32_t layer_first, int32_t layer_last,
                                           float *const *outs);

typedef enum { MER_SPEECH_STACK = 0, MER_SPEECH_SUM = 1, MER_SPEECH_MEAN = 2 } mer_speech_combine;

/* Feature extraction over a whole utterance, as `mer extract audio` does it. */
typedef struct {
    int32_t layer_first, layer_last; /* hidden-state range; -1, -1: all (0..L) */
    mer_speech_combine combine;      /* STACK: (K, T, D); SUM/MEAN over the K layers: (T, D) */
    int32_t pool_mean;               /* 1: mean over frames (drops the T axis) */
    double chunk_seconds;            /* > 0: normalize the whole utterance, cut into chunks of
                                        this length, the last zero-padded to full length, encode
                                        each, concatenate the frames (MERTools). 0: one pass */
    int32_t normalize;               /* -1: the checkpoint's do_normalize; 0 off; 1 on */
    mer_precision precision;         /* F32 (default) or BF16: the feature-encoder convs and the
                                        projection, q/k/v/out and feed-forward products in
                                        bfloat16 (docs/speech.md) */
    int32_t n_threads;               /* 0: mer_get_threads() */
    mer_progress_fn progress;        /* after each chunk: (chunks done, chunks) */
    void *progress_user_data;
    mer_abort_fn abort;              /* polled before each chunk and each transformer layer */
    void *abort_user_data;
} mer_speech_params;
MER_API mer_speech_params mer_speech_default_params(void);
/* The MERTools utterance feature: last 4 hidden states summed, 10 s zero-padded chunks, mean
 * over all frames (shape (D,)). */
MER_API mer_speech_params mer_speech_mertools_params(void);

/* Extract features of samples (n) per params (its precision, threads and callbacks, not the
 * state's). *out malloc'd (free()), *ndim 1..3 and shape as documented in mer_speech_params. Empty or silent (all-zero) input is MER_ERR_INVALID_ARG
 * ("no audio" / "silent"), too short for one frame MER_ERR_SHAPE. */
MER_API mer_status mer_speech_extract(mer_speech_state *s, const float *samples, int64_t n,
                                      const mer_speech_params *p, float **out, int32_t *ndim,
                                      int64_t shape[3]);

/* One utterance's result in mer_speech_extract_batch: data malloc'd (free()) with ndim/shape as
 * mer_speech_extract gives them when status is MER_OK; otherwise status and the one-line error. */
typedef struct {
    float *data;
    int32_t ndim;
    int64_t shape[3];
    mer_status status;
    char error[256];
} mer_speech_feature;

/* mer_speech_extract on b utterances at once, for throughput on many short clips (MER2024 clips
 * are 2-10 s): every chunk of every utterance goes through one mer_speech_encode_batch forward
 * (frames stacked through the linear layers, attention within each chunk, no padding). outs[i]
 * receives utterance i's feature, the same as mer_speech_extract would give up to the GEMM's
 * summation order in fp32 (bitwise for BF16/INT8). An utterance that fails its own checks
 * (empty, silent, NaN, too short) gets its status and message in outs[i] and the others go on;
 * the call returns MER_OK then. A failure of the batch as a whole (memory, the model) is
 * returned and copied into every slot. p->progress is called once, at the end. Scratch grows
 * with the total number of frames (mer_speech_encode_batch). */
MER_API mer_status mer_speech_extract_batch(mer_speech_state *s, int32_t b, const float *const *samples,
                                            const int64_t *n, const mer_speech_params *p,
                                            mer_speech_feature *outs);

/* Where the last mer_speech_encode / mer_speech_encode_batch / mer_speech_extract call on this
 * state spent its wall time (seconds, summed over chunks) and the floating-point work (FLOP) of
 * its matrix products. The op helpers charge their own time (the forward carries no timing);
 * other_s is the rest of total_s. */
typedef struct {
    double total_s;
    double feature_s;        /* feature encoder: convolutions (im2col + GEMM), norms, GELU */
    double linear_s;         /* projection, q/k/v/out and feed-forward matrix products */
    double attention_s;      /* scores, softmax, weighted sums */
    double pos_conv_s;       /* positional convolution incl. its GELU and add */
    double other_s;          /* the rest: layer norms, copies of hidden states */
    double feature_flop, linear_flop, attention_flop, pos_conv_flop;
} mer_speech_profile;
MER_API void mer_speech_state_profile(const mer_speech_state *s, mer_speech_profile *out);

/* ---- Models: visual encoder (src/models/clip_vit.c, src/kernels/resize.c, docs/visual.md) - */
/* The CLIP ViT vision tower from a Hugging Face checkpoint directory: CLIPModel (config.json
 * with a "vision_config" object and a top-level "projection_dim"), CLIPVisionModel or
 * CLIPVisionModelWithProjection (vision keys at the top level), model.safetensors (or a sharded
 * index), and preprocessor_config.json (CLIPImageProcessor; defaults when absent). Any patch
 * size / width / depth (B/32, B/16, L/14, L/14-336, ...), hidden_act "quick_gelu" or "gelu".
 * Text-tower tensors are skipped; a missing or mis-shaped vision tensor is an error naming it.
 * F32 weights are used in place from the mapping, F16/BF16 converted once at load.
 *
 * Outputs per image (transformers semantics):
 *   MER_CLIP_EMBEDS  (P)          get_image_features: visual_projection(post_layernorm(cls))
 *                                 (needs a checkpoint with visual_projection.weight)
 *   MER_CLIP_CLS     (D)          pooler_output: post_layernorm of the class token
 *   MER_CLIP_HIDDEN  (L + 1, T, D) output_hidden_states=True: index 0 the embeddings after
 *                                 pre_layrnorm, index i the output of layer i (no post-LN);
 *                                 T = 1 + (image_size / patch_size)^2
 * The model is immutable and may be shared by threads; each thread runs its own state. */
typedef struct mer_clip_model mer_clip_model;
typedef struct mer_clip_state mer_clip_state;

typedef enum { MER_CLIP_EMBEDS = 0, MER_CLIP_CLS = 1, MER_CLIP_HIDDEN = 2 } mer_clip_output;

typedef struct {
    int32_t image_size, patch_size, num_channels;
    int32_t hidden_size;          /* D */
    int32_t intermediate_size;
    int32_t n_layers;             /* L */
    int32_t n_heads;
    int32_t tokens;               /* T = 1 + (image_size / patch_size)^2 */
    int32_t projection_dim;       /* P; 0 when the checkpoint has no visual_projection */
    int32_t quick_gelu;           /* 1: quick_gelu, 0: gelu (erf) */
    float layer_norm_eps;
    /* CLIPImageProcessor (preprocessor_config.json) */
    int32_t do_resize;
    int32_t resize_shortest_edge; /* > 0: shortest edge to this; else resize_w x resize_h */
    int32_t resize_w, resize_h;
    int32_t do_center_crop, crop_w, crop_h;
    int32_t do_rescale, do_normalize;
    double rescale_factor;
    float image_mean[3], image_std[3];
    int64_t n_params;             /* vision tower (+ projection) parameters */
} mer_clip_info;

/* Options of the loader. */
typedef struct {
    mer_precision precision;      /* besides float32, pack the weights for this precision at
                                     load (BF16, INT8) instead of on its first use; F32 (default):
                                     nothing packed */
} mer_clip_model_params;
MER_API mer_clip_model_params mer_clip_model_default_params(void);
/* Load a checkpoint directory; p NULL: the defaults. *out owned by the caller
 * (mer_clip_model_free). */
MER_API mer_status mer_clip_model_load(mer_clip_model **out, const char *dir,
                                       const mer_clip_model_params *p);
MER_API void mer_clip_model_free(mer_clip_model *m);
MER_API void mer_clip_model_info(const mer_clip_model *m, mer_clip_info *info);
/* Floats per image of an output (0 for EMBEDS without a projection). */
MER_API int64_t mer_clip_output_size(const mer_clip_model *m, mer_clip_output what);

/* CLIPImageProcessor on one RGB image: resize (shortest edge, PIL-exact bicubic with its
 * antialiasing), center crop (zero padding when smaller), rescale, normalise, into pixels
 * (3, image_size, image_size). MER_ERR_SHAPE when the configured sizes do not end at the
 * model's image_size. Thread safe. */
MER_API mer_status mer_clip_preprocess(const mer_clip_model *m, const mer_image *img,
                                       float *pixels);

/* What mer_clip_forward / mer_clip_encode_images / mer_clip_extract_file on a state run with. */
typedef struct {
    mer_precision precision;      /* F32 (default). BF16 and INT8 are opt-in speed modes: the
                                     encoder's projection and MLP products run on their weights
                                     packed once by the first state of that precision
                                     (mer_packed: 2 bytes per weight in bf16, 1 in int8; thread
                                     safe, the model may be shared). bf16 keeps about 3
                                     significant digits, so outputs leave the 1e-4 exactness of
                                     the default (docs/visual.md gives the measured deviation) */
    int32_t n_threads;            /* 0: mer_get_threads() */
    mer_progress_fn progress;     /* after each batch of images: (images done, images) */
    void *progress_user_data;
    mer_abort_fn abort;           /* polled before each encoder layer */
    void *abort_user_data;
} mer_clip_state_params;
MER_API mer_clip_state_params mer_clip_state_default_params(void);
/* Per-thread scratch (grown on demand), bound to one model that must outlive it; p NULL: the
 * defaults. Fails with MER_ERR_NOMEM if the packed weights of p->precision do not fit,
 * MER_ERR_INVALID_ARG on an unknown precision. */
MER_API mer_status mer_clip_state_init(mer_clip_state **out, const mer_clip_model *m,
                                       const mer_clip_state_params *p);
/* Change the precision of the state's params (as state_init would set it). Same shape as
 * mer_speech_state_set_precision. */
MER_API mer_status mer_clip_state_set_precision(mer_clip_state *s, mer_precision p);
MER_API void mer_clip_state_free(mer_clip_state *s);

/* Run n preprocessed images pixels (n, 3, S, S) and write the chosen output, n rows of
 * mer_clip_output_size floats, into out. MER_ERR_UNSUPPORTED for EMBEDS without projection,
 * MER_ERR_NUMERIC on non-finite pixels. */
MER_API mer_status mer_clip_forward(mer_clip_state *s, const float *pixels, int32_t n,
                                    mer_clip_output what, float *out);
/* Preprocess and run n RGB images (the CLI's path); same output layout as mer_clip_forward. */
MER_API mer_status mer_clip_encode_images(mer_clip_state *s, const mer_image *imgs, int32_t n,
                                          mer_clip_output what, float *out);

/* Feature extraction over one image or video file, as `mer extract visual` does it. The
 * faces model is declared below (Models: faces); pass it to crop faces. */
typedef struct mer_faces mer_faces;
typedef struct mer_faces_state mer_faces_state;
typedef struct {
    mer_clip_output what;            /* default MER_CLIP_EMBEDS */
    int32_t pool_mean;               /* 1: mean over frames (default, MERTools); 0: keep frames */
    mer_frame_sampling sampling;     /* frames of a video (default: every frame) */
    const mer_faces *faces;          /* non-NULL: each frame replaced by the crop of its
                                        best-scoring face; frames without a face are skipped */
    mer_faces_state *faces_state;    /* may be NULL */
} mer_clip_extract_params;
MER_API mer_clip_extract_params mer_clip_default_extract_params(void);
typedef struct {
    int32_t frames;                  /* frames decoded (1 for an image) */
    int32_t frames_no_face;          /* of those, skipped for want of a face */
} mer_clip_extract_stats;
/* path is an image (by extension: png, jpg, jpeg, bmp, webp, tif, tiff, ppm) or a video.
 * *out malloc'd (free()); shape per image is (P,), (D,) or (L + 1, T, D), with a leading
 * frames axis when !pool_mean (ndim 1..4). A file without a video stream is MER_ERR_MEDIA;
 * zero frames, or zero frames with a face, is MER_ERR_NOT_FOUND naming the file. stats may be
 * NULL. */
MER_API mer_status mer_clip_extract_file(mer_clip_state *s, const char *path,
                                         const mer_clip_extract_params *p, float **out,
                                         int32_t *ndim,
                                         int64_t shape[4], mer_clip_extract_stats *stats);

/* The extraction recipe of CLIP features as JSON (*json malloc'd, free()): {"visual": {"model":
 * DIR (absolute), "output", "pool_mean", "frames", "fps", "faces" (0/1), "face_models" (absolute;
 * absent: the default weights), "precision"}}; `mer extract visual` writes it as recipe.json next
 * to the features, `mer train` records it in the run, and mer_clip_recipe_extract replays it on
 * new media (src/models/clip_recipe.c). p's faces pointers are not read: faces says whether the
 * frames were face crops, face_models (may be NULL) from which weights. */
MER_API mer_status mer_clip_recipe_to_json(const char *model_dir, const mer_clip_extract_params *p,
                                           mer_precision precision, int faces, const char *face_models,
                                           char **json);
/* The feature such a recipe describes, for one image or video: loads the model (and the face
 * models) each call, for one-off use such as `mer predict --input`. *data malloc'd (free()),
 * ndim/shape as mer_clip_extract_file gives them. */
MER_API mer_status mer_clip_recipe_extract(const char *recipe_json, const char *media_path, float **data,
                                           int32_t *ndim, int64_t shape[MER_MAX_DIMS]);

/* ---- Models: faces (src/models/faces.c, docs/faces.md) ----------------------------------- */
/* Face detection and 7-class facial expression recognition with the pretrained networks of
 * face-api.js as shipped by the npm package @vladmandic/face-api 1.7.15 (MIT): the Tiny Face
 * Detector (a Tiny-YOLOv2 with depthwise-separable convolutions, 5 anchors on a 13x13 grid at
 * input 416) and FaceExpressionNet (4 dense blocks + a linear layer to 7 classes). Results match
 * `faceapi.detectAllFaces(tensor, new TinyFaceDetectorOptions()).withFaceExpressions()` on the
 * same pixels (boxes within 1 px, scores and probabilities within 1e-3; tests/test_faces.c).
 * The weights are committed under models/face-api/ (see its PROVENANCE.md). */
#define MER_FACE_EXPRESSIONS 7

/* Expression names in the model's order: neutral, happy, sad, angry, fearful, disgusted,
 * surprised. Static string; "?" out of range. */
MER_API const char *mer_face_expression_name(int32_t i);

typedef struct mer_faces mer_faces;          /* both networks; immutable, shareable */
typedef struct mer_faces_state mer_faces_state; /* scratch of one thread */

/* What one mer_faces_detect call does. */
typedef struct {
    int32_t input_size;   /* detector input side, a multiple of 32 (default 416) */
    float min_score;      /* keep boxes with score > min_score, in (0, 1) (default 0.5) */
    float iou_threshold;  /* non-maximum suppression IoU (default 0.4) */
    int32_t expressions;  /* 1: run the expression net on each face (default 1) */
} mer_faces_params;
MER_API mer_faces_params mer_faces_default_params(void);

typedef struct {
    float x, y, width, height;   /* box in source pixels (may reach past the image border,
                                  * as the original reports it) */
    float score;                 /* detector confidence */
    float expressions[MER_FACE_EXPRESSIONS]; /* softmax probabilities (zeros if not computed) */
    int32_t expression;          /* argmax, or -1 when not computed (or the crop is empty) */
} mer_face;

/* Options of the loader. */
typedef struct {
    int32_t expressions;  /* 1 (default): load the expression net too; 0: the detector only
                             (detection with expressions is then MER_ERR_INVALID_ARG) */
} mer_faces_model_params;
MER_API mer_faces_model_params mer_faces_model_default_params(void);
/* Load from dir holding tiny_face_detector_model-weights_manifest.json and
 * face_expression_model-weights_manifest.json with their shards. dir NULL: $MER_FACE_MODELS,
 * else "models/face-api"; p NULL: the defaults. Errors name the file (missing or damaged
 * weights, wrong shapes). */
MER_API mer_status mer_faces_load(mer_faces **out, const char *dir, const mer_faces_model_params *p);
MER_API void mer_faces_free(mer_faces *m);

/* What mer_faces_detect / mer_faces_expression on a state run with. */
typedef struct {
    int32_t n_threads;            /* 0: mer_get_threads() */
    mer_progress_fn progress;     /* detect: after each face's expressions (faces done, faces) */
    void *progress_user_data;
    mer_abort_fn abort;           /* polled before the detector and each face's expression net */
    void *abort_user_data;
} mer_faces_state_params;
MER_API mer_faces_state_params mer_faces_state_default_params(void);
/* Per-thread scratch, grown on demand; reuse it across frames for speed. p NULL: defaults. */
MER_API mer_status mer_faces_state_init(mer_faces_state **out, const mer_faces_state_params *p);
MER_API void mer_faces_state_free(mer_faces_state *s);

/* Detect faces in img (RGB8), best score first after NMS (the original's order), with their
 * expressions when p->expressions. st may be NULL (a temporary state with default params).
 * *faces is malloc'd (free(); NULL when *n == 0). No face is *n == 0 and MER_OK, not an error.
 * p NULL: defaults. Stopped by the state's abort: MER_ERR_ABORTED, *faces NULL, *n 0. */
MER_API mer_status mer_faces_detect(const mer_faces *m, mer_faces_state *st, const mer_image *img,
                                    const mer_faces_params *p, mer_face **faces, int32_t *n);

/* Expression probabilities of a face crop (any size; padded to a centred square and resized to
 * 112 as the original does). */
MER_API mer_status mer_faces_expression(const mer_faces *m, mer_faces_state *st,
                                        const mer_image *crop,
                                        float probs[MER_FACE_EXPRESSIONS]);

/* The face's pixels as the original extracts them for its face nets: the box clipped at the
 * image borders, then x, y, width, height each floored. out->rgb is malloc'd (mer_image_free);
 * out->time and out->index are copied from img. An empty crop is MER_ERR_NOT_FOUND. */
MER_API mer_status mer_faces_crop(const mer_image *img, const mer_face *face, mer_image *out);

/* Clip-level summary over frames: the fraction of frames with a face, and the expression
 * probabilities of each frame's best-scoring face averaged over the frames with a face. */
typedef struct {
    int64_t frames;
    int64_t frames_with_face;
    double sum[MER_FACE_EXPRESSIONS];
} mer_faces_summary;
/* Add one frame's detections (n may be 0). Zero-initialise the struct first. */
MER_API void mer_faces_summary_add(mer_faces_summary *s, const mer_face *faces, int32_t n);
/* Fraction of frames with a face (0 when no frames). */
MER_API double mer_faces_summary_fraction(const mer_faces_summary *s);
/* Mean probabilities over frames with a face (zeros when none). */
MER_API void mer_faces_summary_mean(const mer_faces_summary *s, float out[MER_FACE_EXPRESSIONS]);
/* The expression with the highest mean (the first on ties), or -1 when no frame had a face. */
MER_API int32_t mer_faces_summary_top(const mer_faces_summary *s);

/* ---- Models: late fusion and label sets (src/models/fusion_late.c, docs/analyze.md) ------ */
/* The shared label set of `mer analyze`: MER2024's six classes, in this order. Each modality's
 * own classes (EmoDB's seven, face-api's seven, MER2024's six and a few common synonyms) map
 * onto it by class name (case-insensitive) through one documented table; a source class may
 * split its mass over several targets (EmoDB boredom: 0.75 neutral + 0.25 sad). Mapped
 * distributions are fused late: a weighted mean renormalised over the modalities present.
 * All functions are reentrant. */
#define MER_SHARED_CLASSES 6

/* "neutral", "angry", "happy", "sad", "worried", "surprise"; "?" out of range. */
MER_API const char *mer_shared_class_name(int32_t i);
/* Index of a shared class name (exact), or -1. */
MER_API int32_t mer_shared_class_index(const char *name);

/* The mapping row of one source class: row[k] >= 0, summing to 1. MER_ERR_NOT_FOUND naming the
 * class when the table has no entry for it. */
MER_API mer_status mer_label_map_row(const char *class_name, float row[MER_SHARED_CLASSES]);
/* Map a distribution probs (n) over the source classes onto the shared set:
 * out[k] = sum_c probs[c] row(classes[c])[k], renormalised to sum 1. Errors: an unknown class
 * (MER_ERR_NOT_FOUND), a negative or non-finite probability (MER_ERR_NUMERIC), all zero
 * (MER_ERR_INVALID_ARG). */
MER_API mer_status mer_label_map_probs(const char *const *classes, int32_t n, const float *probs,
                                       float out[MER_SHARED_CLASSES]);

/* Late fusion of n_modalities distributions over n_classes: dists[m] NULL means modality m is
 * absent; weights[m] >= 0 (finite). Each present distribution is normalised to sum 1, then
 * out = sum_m w_m p_m / sum_m w_m over the present modalities with w_m > 0. *used (may be
 * NULL) receives how many modalities contributed. MER_ERR_NOT_FOUND when none did,
 * MER_ERR_INVALID_ARG for a bad weight, MER_ERR_NUMERIC for a bad probability. */
MER_API mer_status mer_late_fuse(const float *const *dists, const double *weights,
                                 int32_t n_modalities,
                                 int32_t n_classes, float *out, int32_t *used);

/* Argmax of p (n), first maximum on ties; -1 when n <= 0. */
MER_API int32_t mer_probs_argmax(const float *p, int32_t n);

/* Per-second timeline of a clip of `duration` seconds: rows = ceil(duration), not counting a
 * trailing piece shorter than 50 ms (at least 1 when duration > 0; 0 when duration <= 0). */
MER_API int32_t mer_timeline_rows(double duration);
/* The analysis window of row k: `width` seconds centred on k + 0.5, clipped to [0, duration]. */
MER_API void mer_timeline_window(int32_t k, double width, double duration, double *t0, double *t1);
/* The row a frame at time t belongs to: floor(t), clamped to [0, rows - 1]. */
MER_API int32_t mer_timeline_row(double t, int32_t rows);

/* ---- Models: text lexicon baseline (src/models/text_lexicon.c, docs/analyze.md) ---------- */
/* A transcript's emotion from committed English and German cue-word lists, one per shared
 * class. NOT a language model (MER2024's baseline uses Baichuan; no weights ship here): a
 * transparent baseline. Words are lower-cased (ASCII and German umlauts), list entries ending
 * in '*' match as prefixes. A negation (not, no, never, *n't, nicht, kein*, nie, niemals) up
 * to 3 words before a cue, in the same clause, moves the cue's vote to its negated row
 * (docs/analyze.md). probs = (votes + 0.5) / (cues + 3); uniform when no cue word is found. */
typedef struct {
    float probs[MER_SHARED_CLASSES];
    float votes[MER_SHARED_CLASSES];   /* cue votes per class after negation */
    int32_t cues;                      /* cue words found (0: probs uniform) */
    int32_t negated;                   /* of those, under a negation */
    int32_t words;                     /* words in the text */
} mer_text_scores;
MER_API mer_status mer_text_lexicon_score(const char *text, mer_text_scores *out);
/* The class a single (already lower-case) word is a cue for, or -1. */
MER_API int32_t mer_text_lexicon_lookup(const char *word);

/* ============================================================================================
 * Models: text encoders (src/models/text_encoder.c, bert.c, llama.c; docs/text.md)
 * ========================================================================================== */
/* A Hugging Face text encoder from a checkpoint directory (config.json + model.safetensors or a
 * sharded model.safetensors.index.json; PyTorch .bin where the safetensors reader takes them),
 * token ids in, hidden states out, exactly as `model(ids, attention_mask,
 * output_hidden_states=True).hidden_states`:
 *   MER_TEXT_BERT      model_type bert / roberta / xlm-roberta (BertModel, RobertaModel:
 *                      RoBERTa-wwm-ext(-large), MacBERT are BERT checkpoints); word + position
 *                      (+ token type 0) embeddings and LayerNorm, post-LN layers, GELU (erf);
 *                      roberta positions are padding_idx + 1 + the count of real tokens. States
 *                      0..L: [0] the embeddings after LayerNorm, [i] layer i; no final norm.
 *   MER_TEXT_LLAMA     model_type llama / qwen2 / mistral-free LLaMA layouts: RMSNorm, rotary
 *                      (rope_theta; rope_scaling none / linear / llama3), SwiGLU, grouped-query
 *                      attention, q/k/v biases when the checkpoint has them (Qwen2).
 *   MER_TEXT_BAICHUAN  model_type baichuan: fused W_pack q/k/v; rotary (Baichuan-7B,
 *                      Baichuan2-7B) or ALiBi (Baichuan-13B, Baichuan2-13B), chosen from the
 *                      checkpoint's files, never from its size: config.json
 *                      "position_embedding_type" ("alibi" | "rope") when present, else the
 *                      architecture name BaiChuanForCausalLM (Baichuan-7B: rotary), else the
 *                      checkpoint's own modeling_baichuan.py (ALiBi masks or a rotary
 *                      embedding); undecidable is an error that says which key to add.
 *                      Baichuan2's NormHead only touches the LM head, not hidden states.
 *   For the decoder families the states are [0] the token embeddings, [i] layer i for i < L, and
 *   [L] the last layer's output AFTER the final RMSNorm (transformers appends it after
 *   self.norm); attention is causal.
 * Heads (lm_head, cls.*, pooler) are ignored. Weights: F32 used in place from the mapping, BF16
 * in place (widened on the fly for fp32 products), F16 converted once at load, and mer's int8
 * format (`mer quantize`, docs/formats.md): int8 blocks with float scales.
 * The model is immutable and may be shared by threads; each thread runs its own state. */
typedef struct mer_text_model mer_text_model;
typedef struct mer_text_state mer_text_state;

typedef enum { MER_TEXT_BERT = 0, MER_TEXT_LLAMA = 1, MER_TEXT_BAICHUAN = 2 } mer_text_arch;

typedef struct {
    mer_text_arch arch;
    char model_type[32];          /* config.json model_type */
    int32_t n_layers;             /* L: hidden states 0..L */
    int32_t hidden_size;          /* D */
    int32_t n_heads, n_kv_heads, head_dim;
    int32_t intermediate_size;
    int32_t vocab_size;
    int32_t max_positions;        /* BERT: max_position_embeddings (a hard limit); decoders:
                                     max_position_embeddings / model_max_length (informative) */
    int32_t alibi;                /* 1: ALiBi biases (Baichuan-13B), 0: rotary or absolute */
    int32_t qkv_bias;             /* 1: q/k/v projections have biases (BERT, Qwen2) */
    int32_t pad_token_id;         /* -1 when the config names none */
    int32_t quantized;            /* 0, or the int8 block size (0 < q: blocks of q; -1 per row) */
    int64_t n_params;
    int64_t weight_bytes;         /* bytes of the weight file(s) */
} mer_text_info;

/* Options of the loader. */
typedef struct {
    mer_precision precision;      /* besides the weights as stored, pack the layer matrices for
                                     this precision at load (BF16, INT8) instead of on its first
                                     use; F32 (default): nothing packed */
} mer_text_model_params;
MER_API mer_text_model_params mer_text_model_default_params(void);
/* Load a checkpoint directory; p NULL: the defaults. *out owned by the caller
 * (mer_text_model_free). Missing, extra layer or mis-shaped tensors are errors naming the tensor
 * and the file. */
MER_API mer_status mer_text_model_load(mer_text_model **out, const char *dir,
                                       const mer_text_model_params *p);
MER_API void mer_text_model_free(mer_text_model *m);
MER_API void mer_text_model_info(const mer_text_model *m, mer_text_info *info);

/* What mer_text_encode on a state runs with. */
typedef struct {
    mer_precision precision;      /* F32 (default); see mer_text_state_set_precision */
    int32_t n_threads;            /* 0: mer_get_threads() */
    mer_progress_fn progress;     /* after each transformer layer: (layers done, layers run) */
    void *progress_user_data;
    mer_abort_fn abort;           /* polled before each transformer layer */
    void *abort_user_data;
} mer_text_state_params;
MER_API mer_text_state_params mer_text_state_default_params(void);
/* Per-thread scratch (grown on demand), bound to one model that must outlive it; p NULL: the
 * defaults. Fails with MER_ERR_NOMEM if the packed weights of p->precision do not fit,
 * MER_ERR_INVALID_ARG on an unknown precision. */
MER_API mer_status mer_text_state_init(mer_text_state **out, const mer_text_model *m,
                                       const mer_text_state_params *p);
MER_API void mer_text_state_free(mer_text_state *s);
/* Precision of the large products of this state's params (as state_init would set it):
 *   F32   float32 activations and sums on the weights as stored (BF16 / int8 weights are
 *         widened exactly to float32 tile by tile);
 *   BF16  bfloat16 weights, activations rounded to bfloat16, float32 sums (mer_packed, MER_PACK_BF16);
 *   INT8  W8A8 dynamic (mer_packed, MER_PACK_INT8): int8 weights per output channel, activations
 *         quantized per token on each product. A `mer quantize` file's block-32 int8 is widened
 *         exactly and requantized per channel.
 * The first BF16 / INT8 use on a model packs its layer matrices for that precision once (2 or
 * ~1 bytes per weight; thread safe: the model may be shared); the file pages of a packed matrix
 * are handed back to the system (mer_safetensors_release), so a mapped checkpoint is not held
 * twice. MER_ERR_NOMEM when the packed copies do not fit, MER_ERR_INVALID_ARG on an unknown
 * precision. */
MER_API mer_status mer_text_state_set_precision(mer_text_state *s, mer_precision p);

/* Hidden states layer_first..layer_last (0 <= first <= last <= L) of a batch of B sequences of
 * T tokens: ids (B, T), mask (B, T) 1 for real tokens and 0 for padding (NULL: all real), into
 * out (last - first + 1, B, T, D). Padding follows transformers: padded keys are masked out
 * (roberta positions skip them); values at padded positions are computed but meaningless.
 * MER_ERR_INVALID_ARG for an id outside the vocabulary, MER_ERR_SHAPE when T exceeds a BERT
 * model's positions or a row has no real token. */
MER_API mer_status mer_text_encode(mer_text_state *s, const int32_t *ids, const uint8_t *mask,
                                   int32_t B,
                                   int32_t T, int32_t layer_first, int32_t layer_last, float *out);

/* Feature of one token sequence, as `mer extract text` does it. */
typedef struct {
    int32_t layer_first, layer_last; /* hidden-state range; -1, -1: all. mertools: last 4 */
    mer_speech_combine combine;      /* STACK: (K, T, D); SUM / MEAN over the K layers: (T, D) */
    int32_t pool_mean;               /* 1: mean over the pooled tokens (drops the T axis) */
    int32_t skip_lead, skip_trail;   /* tokens left out of the output at the start / end (the
                                        special tokens the tokenizer added: MERTools averages
                                        only the text's own tokens); -1: found by
                                        mer_text_extract (mertools preset), 0 for _extract_ids */
    mer_precision precision;
    int32_t n_threads;               /* 0: mer_get_threads() */
    mer_progress_fn progress;        /* once per sequence, when done: (1, 1) */
    void *progress_user_data;
    mer_abort_fn abort;              /* polled before each transformer layer */
    void *abort_user_data;
} mer_text_params;
MER_API mer_text_params mer_text_default_params(void);
/* The MERTools text feature: sum of the last 4 hidden states (all of them when the model has
 * fewer), mean over the text's tokens (D,). */
MER_API mer_text_params mer_text_mertools_params(void);

/* Features of ids (n) per params. When n exceeds a BERT model's positions the middle is cut
 * (the first skip_lead and last skip_trail tokens are kept, the text's tail is dropped: what
 * transformers' truncation=True does; one warning logged). *out malloc'd (free()), *ndim 1..3,
 * shape as in mer_text_params. A sequence with no text token left after skipping gives zeros
 * of shape (D,) for pooled output (MERTools writes zeros for an empty transcript) and
 * MER_ERR_INVALID_ARG otherwise. */
MER_API mer_status mer_text_extract_ids(mer_text_state *s, const int32_t *ids, int64_t n,
                                        const mer_text_params *p, float **out, int32_t *ndim,
                                        int64_t shape[3]);

/* The feature of one transcript (UTF-8 text of len bytes), as `mer extract text` does it: tokenized
 * by tok with the special tokens its model adds, encoded, then combined and pooled per params.
 * skip_lead / skip_trail < 0 (the mertools preset) leave out exactly the tokens the tokenizer
 * added, as MERTools' find_start_end_pos does: the text's own tokens are the encoding without
 * specials, found inside the encoding with them ([CLS] ... [SEP] for BERT, BOS for LLaMA). An
 * empty (or all-whitespace) transcript gives zeros (D,) when pooled, as MERTools writes. */
MER_API mer_status mer_text_extract(mer_text_state *s, const mer_tokenizer *tok, const char *text,
                                    size_t len,
                                    const mer_text_params *p, float **out, int32_t *ndim,
                                    int64_t shape[3]);

/* The extraction recipe of speech-encoder features as JSON (*json malloc'd, free()):
 * {"speech": {"model": DIR (absolute), "layer_first", "layer_last", "combine", "pool_mean",
 * "chunk_seconds", "normalize", "precision"}}; `mer extract audio` writes it as recipe.json
 * next to the features, `mer train` records it in the run, and mer_speech_recipe_extract
 * replays it on new media (src/models/speech_recipe.c). */
MER_API mer_status mer_speech_recipe_to_json(const char *model_dir, const mer_speech_params *p,
                                             char **json);
/* The feature such a recipe describes, for one media file (decoded at the model's rate): loads
 * the model each call (for one-off use such as `mer predict --input`). *data malloc'd (free()),
 * ndim/shape as mer_speech_extract gives them. */
MER_API mer_status mer_speech_recipe_extract(const char *recipe_json, const char *media_path,
                                             float **data, int32_t *ndim,
                                             int64_t shape[MER_MAX_DIMS]);

/* The extraction recipe of text features as JSON (*json malloc'd, free()):
 * {"text": {"model": DIR, "tokenizer": DIR, "layer_first", "layer_last", "combine", "pool_mean",
 * "skip_lead", "skip_trail", "precision"}} with the directories made absolute; `mer extract text`
 * writes it as recipe.json next to the features so a trained run can record it
 * (`mer train --recipe`) and extract the same feature from new text (mer_text_recipe_extract). */
MER_API mer_status mer_text_recipe_to_json(const char *model_dir, const char *tokenizer_dir,
                                           const mer_text_params *p, char **json);
/* Extract the feature a recipe (JSON text holding a "text" object as above) describes, for one
 * transcript: loads the encoder and tokenizer it names (each call; for one-off use such as
 * `mer analyze`). *out malloc'd (free()). */
MER_API mer_status mer_text_recipe_extract(const char *recipe_json, const char *text, float **out,
                                           int32_t *ndim, int64_t shape[3]);

/* Options of mer_text_quantize. It runs on the calling thread alone (it is bound by reading and
 * writing the weights), so it has no n_threads. */
typedef struct {
    int32_t block;                   /* 32 (default): blocks of 32 values along a row, one scale
                                        each; -1: one scale per row */
    mer_progress_fn progress;        /* after each tensor written: (tensors done, tensors) */
    void *progress_user_data;
    mer_abort_fn abort;              /* polled before each tensor: true stops with
                                        MER_ERR_ABORTED, the weight file not written */
    void *abort_user_data;
} mer_text_quantize_params;
MER_API mer_text_quantize_params mer_text_quantize_default_params(void);
/* `mer quantize`: write the checkpoint in dir as mer's weight-only int8 format into out_dir
 * (every 2-D weight matrix and the embedding table as I8 + F16 scales "<name>.scale"; norms and
 * biases F32; config.json and the tokenizer and other small files copied); p NULL: the defaults.
 * Output files are written atomically, model.safetensors first; out_dir must not be dir. */
MER_API mer_status mer_text_quantize(const char *dir, const char *out_dir,
                                     const mer_text_quantize_params *p);

/* ============================================================================================
 * Training
 * ========================================================================================== */
/* (subsections owned by src/train/) */

/* ---- data sets (src/train/dataset.c) ----------------------------------------------------- */
/* A data set is N clips, each with a name, a class label (or -1 when unlabeled), an optional
 * group (e.g. the speaker, for grouped folds), a train-only flag (pseudo-labelled clips: used
 * for training in every fold, never held out or scored) and one feature per modality. A
 * modality's features are either all 1-D utterance vectors (D) or all 2-D sequences (T_i, D);
 * D is the same for every clip of a modality. Features are stored float32, finite.
 * The handle owns everything; a data set is read-only during training (thread safe to share). */
#define MER_MAX_MODALITIES 8
#define MER_MAX_CLASSES 32
#define MER_NAME_MAX 64              /* modality / class / model name buffer sizes */

typedef struct mer_dataset mer_dataset;

typedef struct {
    const char *name;   /* modality name given on the command line ("audio") */
    const char *dir;    /* directory holding <clip>.npy */
} mer_modality_spec;

typedef struct {
    /* Labeled set: a CSV with name_col and label_col (group_col optional, NULL = none). NULL
     * labels_csv: an unlabeled set made of names (n_names) instead. */
    const char *labels_csv;
    const char *name_col;       /* "name" */
    const char *label_col;      /* "emotion" */
    const char *group_col;      /* NULL: no groups */
    /* The class list, or NULL: the sorted distinct labels of the file. A label outside the
     * given list is an error naming the row; a listed class with no example is an error. */
    const char *const *classes;
    int32_t n_classes;
    const char *const *names;   /* unlabeled set (labels_csv NULL), or a subset filter: NULL */
    int64_t n_names;
    const mer_modality_spec *modalities;
    int32_t n_modalities;
} mer_dataset_params;
MER_API mer_dataset_params mer_dataset_default_params(void);

/* Load labels and every feature file. All clips lacking a feature file are listed in one
 * MER_ERR_NOT_FOUND error ("audio: 3 clips have no feature file in DIR: a, b, c"); a feature of
 * the wrong rank or dimension is MER_ERR_SHAPE naming the file, expected vs got; NaN/Inf is
 * MER_ERR_NUMERIC naming the file. */
MER_API mer_status mer_dataset_load(mer_dataset **out, const mer_dataset_params *p);

/* In-memory construction (features computed in process, pseudo-labels): an empty set with the
 * given classes and modality names; dims are fixed by the first clip added. */
MER_API mer_status mer_dataset_init(mer_dataset **out, const char *const *classes,
                                    int32_t n_classes,
                                    const char *const *modalities, int32_t n_modalities);
/* Append one clip. feats[m] is modality m: ndim 1 (D) or 2 (T, D), data copied. label -1 =
 * unlabeled; group NULL = none; train_only marks a pseudo-labelled clip. */
MER_API mer_status mer_dataset_add(mer_dataset *ds, const char *name, int32_t label,
                                   const char *group,
                                   int train_only, const mer_tensor *feats);
/* Append clip i of src (same modalities and dims) with a new label (pseudo-labelling). */
MER_API mer_status mer_dataset_add_from(mer_dataset *ds, const mer_dataset *src, int64_t i,
                                        int32_t label, int train_only);
MER_API void mer_dataset_free(mer_dataset *ds);

MER_API int64_t mer_dataset_count(const mer_dataset *ds);
MER_API int32_t mer_dataset_n_classes(const mer_dataset *ds);
MER_API const char *mer_dataset_class(const mer_dataset *ds, int32_t c);      /* owned by ds */
MER_API int32_t mer_dataset_n_modalities(const mer_dataset *ds);
MER_API const char *mer_dataset_modality(const mer_dataset *ds, int32_t m);   /* owned by ds */
MER_API int64_t mer_dataset_dim(const mer_dataset *ds, int32_t m);            /* feature dim D */
MER_API int mer_dataset_is_sequence(const mer_dataset *ds, int32_t m);        /* 2-D (T, D) features */
MER_API const char *mer_dataset_name(const mer_dataset *ds, int64_t i);       /* owned by ds */
MER_API int32_t mer_dataset_label(const mer_dataset *ds, int64_t i);          /* -1: unlabeled */
MER_API const char *mer_dataset_group(const mer_dataset *ds, int64_t i);      /* NULL: none */
/* Index of a clip by name, or -1. */
/* Features of clip i, modality m: (rows, D) floats owned by ds, valid until ds changes; rows is
 * 1 for an utterance vector. NULL (and *rows 0) for an index out of range. */
MER_API const float *mer_dataset_feature(const mer_dataset *ds, int64_t i, int32_t m,
                                         int64_t *rows);
MER_API int64_t mer_dataset_find(const mer_dataset *ds, const char *name);

/* Test-time adaptation (speaker normalisation without labels): the features of each group of
 * clips (groups[i], one string per clip, e.g. the speaker) are standardised in place by the
 * group's own column mean and (population) standard deviation, every modality separately, frames
 * of sequence features pooled; a constant column becomes 0. A group of fewer than min_clips (>= 2)
 * clips is left as it is and counted in *n_unadapted (may be NULL). This is what the LOSO
 * evaluation's MER_NORM_GROUP does to a held-out speaker, so a run trained on speaker-normalised
 * features (recipe "adapt": "group", e.g. `mer demo`'s model) gets the same inputs from
 * `mer predict --adapt`. Standardisation is invariant to a per-column affine map, so it may be
 * applied to raw features or to features already standardised with the run's "norm". */
MER_API mer_status mer_dataset_adapt(mer_dataset *ds, const char *const *groups, int32_t min_clips,
                                     int64_t *n_unadapted);
/* As mer_dataset_adapt, but only the clips with ref[i] != 0 give their group's statistics
 * (and count towards min_clips); every clip of the group is standardised with them. E.g. a
 * speaker's enrolment clips adapt the speaker's other clips, or `mer analyze`'s 2 s tiles of a
 * long clip adapt its timeline windows. ref NULL: every clip, = mer_dataset_adapt. */
MER_API mer_status mer_dataset_adapt_ref(mer_dataset *ds, const char *const *groups, const uint8_t *ref,
                                         int32_t min_clips, int64_t *n_unadapted);

/* Read a LIST file: one clip name per line (read by mer_read_lines: BOM, blanks, '#' lines; a
 * header line "name" is skipped). *names is one malloc'd block: free(*names) frees it all. */
MER_API mer_status mer_read_name_list(const char *path, char ***names, int64_t *n);

/* The clip names of a feature directory: every <name>.npy in dir, sorted (strcmp), in one
 * malloc'd block as mer_read_name_list (free(*names)). An unreadable directory is MER_ERR_IO,
 * one without .npy files MER_ERR_NOT_FOUND, each naming dir. */
MER_API mer_status mer_list_feature_names(const char *dir, char ***names, int64_t *n);

/* ---- metrics (src/train/metrics.c) -------------------------------------------------------- */
/* Classification metrics on argmax predictions, as scikit-learn computes them:
 * waf = f1_score(average='weighted'), macro_f1 = f1_score(average='macro'),
 * uar = recall_score(average='macro') (classes without support count 0 like sklearn's
 * zero_division=0), accuracy. confusion[t * n_classes + p] counts truth t predicted p. */
typedef struct {
    int32_t n_classes;
    int64_t n;
    double waf, accuracy, macro_f1, uar;
    double precision[MER_MAX_CLASSES], recall[MER_MAX_CLASSES], f1[MER_MAX_CLASSES];
    int64_t support[MER_MAX_CLASSES];
    int64_t confusion[MER_MAX_CLASSES * MER_MAX_CLASSES];
} mer_metrics;
MER_API mer_status mer_metrics_compute(const int32_t *truth, const int32_t *pred, int64_t n,
                                       int32_t n_classes, mer_metrics *m);
/* Argmax of each row of probs (n, c) (first maximum on ties, like numpy.argmax). */
MER_API void mer_argmax_rows(const float *probs, int64_t n, int32_t c, int32_t *pred);

/* ---- training (src/train/trainer.c) ------------------------------------------------------- */
/* Models are named in a registry table (src/train/registry.c): "attention" (MERTools
 * baseline), and models other files add ("agt", "afusion"). */
typedef enum { MER_OPT_ADAM = 0, MER_OPT_ADAMW = 1 } mer_optimizer;

typedef struct {
    int32_t trial, n_trials;     /* hyper-parameter search trial (0-based), 1 without search */
    int32_t fold, n_folds;       /* 0-based; fold == n_folds while training the final model */
    int32_t epoch, n_epochs;     /* 1-based epoch just finished */
    double train_loss;           /* mean training loss of the epoch */
    double heldout_waf;          /* WAF on the held-out fold this epoch (NaN: none) */
    double best_waf;             /* best held-out WAF of this fold so far */
    int64_t done, total;         /* epochs done / total over the whole run (for an ETA) */
} mer_train_progress;
/* Called after every epoch. Folds train in parallel (one per thread), so calls come from
 * several threads, but never two at once. */
typedef void (*mer_train_progress_fn)(const mer_train_progress *p, void *user_data);

typedef struct {
    char model[MER_NAME_MAX];    /* "attention" */
    int32_t hidden;              /* 128 */
    float dropout;               /* 0.3 */
    int32_t heads;               /* attention heads of transformer models (4) */
    int32_t layers;              /* transformer layers (1) */
    int32_t tokens;              /* agt: sub-tokens per utterance vector (4) */
    int32_t folds;               /* K-fold CV (5); 1 = train on everything for `epochs`, no
                                    held-out selection (the final model of `mer demo`) */
    int32_t epochs;              /* 100 */
    int32_t batch;               /* 32 */
    double lr;                   /* 1e-3 */
    double l2;                   /* weight decay (1e-5): coupled L2 for Adam, decoupled AdamW */
    mer_optimizer optimizer;     /* MER_OPT_ADAM (torch.optim.Adam) */
    double clip_value;           /* clip each gradient to [-v, v] (<= 0: off) */
    double clip_norm;            /* clip the global gradient L2 norm (<= 0: off) */
    double label_smoothing;      /* 0 */
    int32_t balanced_weights;    /* 1: class weights n / (C * count_c) in the loss */
    int32_t select_last;         /* 1: each fold keeps its LAST epoch instead of the epoch with the
                                    best held-out WAF (MERTools); no selection on the held-out
                                    clips, so the CV WAF is not optimistic (0) */
    uint64_t seed;               /* 0 */
    int32_t search;              /* > 0: random search over hidden/dropout/lr, N trials */
    int32_t resume;              /* continue an interrupted run in the same directory */
    int32_t checkpoint_every;    /* save a resumable state every N epochs (1); 0 = never */
    double checkpoint_seconds;   /* ... but not more often than this (10 s; 0 = every time).
                                    Stopping through the abort callback always saves. */
    int32_t plots;               /* write confusion.png and curves.png (1) */
    const char *recipe_json;     /* verbatim JSON object stored as config.json "recipe" (for
                                    `mer predict --input`), or NULL */
    const char *encoder;         /* model "speech": the trainable encoder spec that
                                    `mer finetune speech` makes (checkpoint dir + digest, layers,
                                    method; docs/finetune.md), stored as config.json "encoder";
                                    NULL for other models */
    int32_t n_threads;           /* 0: mer_get_threads(); folds train in parallel, one per thread */
    mer_train_progress_fn progress; /* after every epoch (the epoch's numbers) */
    void *progress_user_data;
    mer_abort_fn abort;          /* polled after every epoch: true stops the run with
                                    MER_ERR_ABORTED, its state saved (resumable); concurrent
                                    folds stop after their epoch */
    void *abort_user_data;
} mer_train_params;
MER_API mer_train_params mer_train_default_params(void);
/* Check the parameters alone (model name known, ranges) before any data is loaded; the same
 * checks run again in mer_train_run. */
MER_API mer_status mer_train_params_check(const mer_train_params *p);

/* Train with K-fold cross-validation on the labeled clips of train (train-only clips join the
 * training part of every fold) and write the run directory:
 *   config.json           parameters, classes, modalities + dims, recipe
 *   fold-K.safetensors    best-epoch weights of fold K (+ fold-K.json: epoch, WAF, history)
 *   oof.csv               out-of-fold probabilities: name, one column per class, pred, label
 *   test.csv              (test != NULL) fold-averaged test probabilities: name, classes, pred
 *   confusion.png, curves.png
 *   metrics.json          written LAST: per fold and mean WAF, accuracy, macro F1, UAR,
 *                         confusion; its presence marks a complete run
 * Folds are a seeded random split of the clips (MERTools' random K-fold); with groups, whole
 * groups go to one fold (largest first to the smallest fold: K == number of groups gives
 * leave-one-group-out). Each fold
 * keeps the epoch with the best held-out WAF (first best on ties). Same seed and thread count
 * give bitwise the same files. *out (may be NULL) receives the pooled out-of-fold metrics
 * (confusion, per class) with waf/accuracy/macro_f1/uar replaced by their mean over the folds
 * (what MERTools reports; metrics.json has both). With search > 0 the trials are complete runs
 * under RUNDIR/trials/trial-NN and RUNDIR receives a copy of the best one (by mean WAF) plus
 * search.json. The data sets are only read. */
MER_API mer_status mer_train_run(const mer_dataset *train, const mer_dataset *test,
                                 const mer_train_params *p, const char *rundir, mer_metrics *out);

/* ---- speech fine-tuning (src/train/finetune.c, docs/finetune.md) ------------------------- */
/* Parameter-efficient fine-tuning of the top layers of a HuBERT / wav2vec 2.0 checkpoint (the
 * base weights frozen and mmapped): hidden state first-1 of every clip is computed once and
 * cached (float16 .npy + cache.json naming the checkpoint digest and layer), then layers
 * first..last run forward and backward on the cache with bottleneck adapters or LoRA in layers
 * first..adapt_last and a linear head on the frame mean of the sum of hidden states
 * head_first..last, trained by mer_train_run (model "speech": folds, epochs, AdamW, progress,
 * atomic checkpoints, resume). Layers are numbered as transformers' hidden states (1..L). */
typedef enum { MER_FINETUNE_ADAPTER = 1, MER_FINETUNE_LORA = 2 } mer_finetune_method;
typedef struct {
    const char *model_dir;       /* checkpoint directory (mer_speech_model_load) */
    const char *labels_csv;      /* name_col, label_col, optional group_col (folds by group) */
    const char *name_col, *label_col, *group_col;   /* "name", "emotion", NULL */
    const char *audio_dir;       /* media per clip: DIR/<name>.wav|flac|mp4|mp3|avi */
    const char *cache_dir;       /* NULL: RUNDIR/cache; a shared cache must match model+layer */
    int32_t first, adapt_last;   /* adapted layers (1-based, inclusive) */
    int32_t last;                /* top layer run (0: adapt_last); adapt_last..last frozen */
    int32_t head_first;          /* head sums hidden states head_first..last (0: last only) */
    mer_finetune_method method;  /* MER_FINETUNE_ADAPTER */
    int32_t bottleneck;          /* adapter width (64) */
    int32_t rank;                /* LoRA rank (8) */
    float alpha;                 /* LoRA alpha (16): scaling alpha / rank */
    int32_t lora_ffn;            /* LoRA on the feed-forward projections too (0) */
    float lora_dropout;          /* LoRA dropout on each branch's input, as peft (0) */
    float recon_weight;          /* masked-reconstruction loss weight (0: off; docs/finetune.md) */
    float mask_prob;             /* its masks: share of frames that start a span (0.05) */
    int32_t mask_len;            /* its span length in frames (10) */
    mer_precision precision;     /* F32 (default), BF16: the frozen projections of the trained
                                    layers in bfloat16, or INT8: in int8 W8A8, forward and input
                                    gradients (docs/finetune.md) */
    int32_t memo_mb;             /* adapters: keep the first adapted layer's frozen part (its
                                    attention and feed-forward) per clip in memory, up to this
                                    many MB, so later epochs run only the adapter and above
                                    (0: off; docs/finetune.md) */
    mer_train_params train;      /* folds, epochs (20), batch (8), lr (1e-3), AdamW, weight
                                    decay 0.01, seed, resume, progress per epoch; model is set to
                                    "speech"; its n_threads and abort are set from these: */
    int32_t n_threads;           /* the whole call (0: mer_get_threads()) */
    mer_progress_fn progress;    /* after each clip of the cache pass: (clips done, clips) */
    void *progress_user_data;
    mer_abort_fn abort;          /* polled after each cached clip and each epoch: true stops
                                    with MER_ERR_ABORTED (resumable with train.resume) */
    void *abort_user_data;
} mer_finetune_params;
MER_API mer_finetune_params mer_finetune_default_params(void);
/* Cache, then train into rundir (the mer_train_run layout plus cache/). Layers outside the
 * model, a cache from another model or layer (MER_ERR_INVALID_ARG), NaN in a cached activation
 * (MER_ERR_NUMERIC naming the file) fail before training. rundir must not exist unless
 * p->train.resume. */
MER_API mer_status mer_finetune_speech(const mer_finetune_params *p, const char *rundir,
                                       mer_metrics *out);

/* A fine-tuning run's encoder applied to media (`mer extract audio --adapter RUN`, `mer predict
 * --input` on a finetune run). open reads RUN/config.json's encoder spec, loads the checkpoint
 * it names (or model_dir when not NULL: the same checkpoint moved; refused when its digest
 * differs from the run's: another model or config) and, for fold >= 0, the
 * trained tensors of RUN/fold-<fold>.safetensors. *out owned by the caller
 * (mer_speech_adapter_free). Not thread safe: one adapter per thread. */
typedef struct mer_speech_adapter mer_speech_adapter;
MER_API mer_status mer_speech_adapter_open(mer_speech_adapter **out, const char *rundir,
                                           const char *model_dir, int32_t fold);
/* The run's input for one media file: hidden state first-1 (T, D), rounded to float16 as the
 * run's cache stores it, so predicting from it equals predicting from the cache bitwise.
 * *data malloc'd (free()). Works with fold < 0. */
MER_API mer_status mer_speech_adapter_input(mer_speech_adapter *a, const char *media,
                                            float **data, int32_t *ndim,
                                            int64_t shape[MER_MAX_DIMS]);
/* The adapted features: the head's input, the sum of hidden states head_first..last computed
 * with the fold's adapters / LoRA, per frame (T, D) or, with pool_mean, its frame mean (D) (the
 * vector the run's classifier reads). *data malloc'd (free()). */
MER_API mer_status mer_speech_adapter_extract(mer_speech_adapter *a, const char *media,
                                              int pool_mean, float **data, int32_t *ndim,
                                              int64_t shape[MER_MAX_DIMS]);
MER_API void mer_speech_adapter_free(mer_speech_adapter *a);

/* Layer probing (`mer probe`): one forward per clip keeps every hidden state's frame mean
 * (outdir/features/layer-NN/<clip>.npy), then each probe model (trainer models, default
 * "linear" and "attention", the MERTools MLP) is cross-validated per layer with p->train
 * (outdir/runs/<probe>-layer-NN). Writes outdir/probe.csv (layer, probe, waf, accuracy, uar:
 * means over folds) and probe.png (WAF by layer). The best layer is the first probe's highest
 * mean WAF; the block is the contiguous run of layers around it whose WAF is within
 * block_tolerance of it. */
#define MER_PROBE_MAX 4
#define MER_PROBE_MAX_LAYERS 65
typedef struct {
    const char *model_dir, *labels_csv, *name_col, *label_col, *group_col, *audio_dir;
    const char *probes;          /* comma-separated trainer models ("linear,attention") */
    double block_tolerance;      /* 0.02 */
    mer_train_params train;      /* folds, epochs (50), seed, resume ...; model is set per probe;
                                    its n_threads and abort are set from these: */
    int32_t n_threads;           /* the whole call (0: mer_get_threads()) */
    mer_progress_fn progress;    /* per clip of the extraction pass: (clips done, clips) */
    void *progress_user_data;
    mer_progress_fn layer_progress;  /* per (layer, probe) trained: (done, layers x probes) */
    void *layer_progress_user_data;
    mer_abort_fn abort;          /* polled after each clip and each epoch: true stops with
                                    MER_ERR_ABORTED (rerun with train.resume) */
    void *abort_user_data;
} mer_probe_params;
typedef struct {
    int32_t n_layers, n_probes;  /* hidden states 0..n_layers-1 */
    char probe[MER_PROBE_MAX][MER_NAME_MAX];
    double waf[MER_PROBE_MAX][MER_PROBE_MAX_LAYERS], accuracy[MER_PROBE_MAX][MER_PROBE_MAX_LAYERS],
        uar[MER_PROBE_MAX][MER_PROBE_MAX_LAYERS];
    int32_t best_layer, block_first, block_last;
} mer_probe_result;
MER_API mer_probe_params mer_probe_default_params(void);
MER_API mer_status mer_probe_speech(const mer_probe_params *p, const char *outdir, mer_probe_result *res);

/* ---- trained runs and prediction (src/train/run.c) ---------------------------------------- */
/* A complete run directory opened for prediction: the fold models (immutable after open). */
typedef struct mer_run mer_run;
MER_API mer_status mer_run_open(mer_run **out, const char *rundir);
MER_API void mer_run_free(mer_run *run);
/* Opening a run whose metrics.json is missing (interrupted or failed) is MER_ERR_NOT_FOUND. */
MER_API int32_t mer_run_n_classes(const mer_run *run);
MER_API const char *mer_run_class(const mer_run *run, int32_t c);
MER_API int32_t mer_run_n_modalities(const mer_run *run);
MER_API const char *mer_run_modality(const mer_run *run, int32_t m);
MER_API int64_t mer_run_dim(const mer_run *run, int32_t m);
/* The "recipe" object of config.json as JSON text (owned by run), or NULL when none. */
MER_API const char *mer_run_recipe(const mer_run *run);
/* The labels CSV the run was trained on (absolute path, from RUN/inputs.json), or NULL. Owned
 * by the run. Outputs such as `predict --out` refuse to replace it (mer_output_check). */
MER_API const char *mer_run_labels(const mer_run *run);
/* The encoder spec of a `mer finetune speech` run (config.json "encoder"), or NULL for other
 * runs. Owned by the run. mer_speech_adapter_open applies it to media. */
MER_API const char *mer_run_encoder(const mer_run *run);
/* The directory the run was opened from, as given to mer_run_open. Owned by the run. */
MER_API const char *mer_run_dir(const mer_run *run);
/* Class probabilities (n, C) for every clip of ds: the mean over the run's fold models of their
 * softmax. ds's modalities are matched to the run's by name (extra ones ignored; a missing one
 * or another dim is an error). The run holds scratch memory: do not call this concurrently on
 * one run (open one run per thread). */
MER_API mer_status mer_run_predict(mer_run *run, const mer_dataset *ds, float *probs);

/* Write name, one probability column per class, pred (class name) atomically. With mer2024
 * set: the MER2024 submission layout instead (name, discrete). */
MER_API mer_status mer_write_predictions(const char *path, const mer_dataset *ds,
                                         const float *probs,
                                         const char *const *classes, int32_t n_classes,
                                         int mer2024);

/* ---- leave-one-group-out evaluation (src/train/loso.c; used by `mer demo`) -------------- */
/* Speaker-independent evaluation with an honest protocol: for each group (speaker) held out,
 * `seeds` models are trained on the other groups with mer_train_run(folds = 1: a fixed number
 * of epochs, nothing selected on the held-out group), their probabilities averaged, then the
 * group is predicted. Standardisation uses no labels: per training part (MER_NORM_TRAIN), or
 * each group by its own statistics (MER_NORM_GROUP, speaker normalisation: at test time it
 * needs unlabeled clips of the same speaker). */
/* MER_NORM_GROUP_SINGLE: training groups standardised by their own statistics, held-out rows
 * by the training rows' pooled raw statistics (a speaker-normalised model applied to one clip
 * of an unseen speaker). */
typedef enum {
    MER_NORM_NONE = 0,
    MER_NORM_TRAIN = 1,
    MER_NORM_GROUP = 2,
    MER_NORM_GROUP_SINGLE = 3
} mer_norm_mode;
typedef struct {
    int32_t seeds;              /* models averaged per held-out group (3) */
    mer_norm_mode norm;         /* MER_NORM_GROUP */
    int32_t keep_runs;          /* keep dir/runs/<group>-seed<k>/ (0: deleted when done) */
    const char *title;          /* confusion plot title */
    /* optional (N entries): the statistics group of each row for the per-group modes (NULL:
     * the row's data-set group); augmented copies of a speaker get a group of their own */
    const char *const *norm_groups;
    mer_progress_fn progress;   /* after each group: (groups done, groups) */
    void *progress_user_data;
    mer_abort_fn abort;         /* polled after each model: true stops with MER_ERR_ABORTED */
    void *abort_user_data;
} mer_loso_params;
MER_API mer_loso_params mer_loso_default_params(void);
/* ds: one modality of utterance vectors, every clip labeled and grouped; train-only rows
 * (augmented copies) train every model whose held-out group is not theirs and are never
 * predicted or scored (probs rows of them stay 0). Writes
 * dir/metrics.json (WAF, accuracy, UAR, macro F1, per class, per group, confusion),
 * dir/confusion.png and dir/predictions.csv. probs (N, C) (may be NULL) receives the held-out
 * probabilities, out (may be NULL) the metrics. tp->folds/seed/plots are managed per model. */
MER_API mer_status mer_loso_run(const mer_dataset *ds, const mer_train_params *tp,
                                const mer_loso_params *lp, const char *dir, float *probs,
                                mer_metrics *out);
/* Column mean and (population) std of X (n, D). */
MER_API mer_status mer_column_stats(const float *X, int64_t n, int64_t D, double *mean,
                                    double *std);
/* In place: rows of each group (equal strings; NULL groups form one group) standardised by
 * their group's column mean/std; constant columns become 0. */
MER_API mer_status mer_group_standardize(float *X, int64_t n, int64_t D, const char *const *groups);

/* ---- feature extraction for raw media (implemented in src/models/acoustic_extract.c) ---- */
/* `mer predict --input FILE...` on a run whose config.json holds a "recipe" object calls this
 * for every input file and every modality of the run: extract the feature of `modality` from
 * media_path following recipe_json (the recipe object's JSON text). *data is malloc'd (free()),
 * shape as mer_npy_read. tools/cmd_predict.c references it weakly, so a build without it still
 * links and reports "no extractor". */
MER_API mer_status mer_acoustic_extract(const char *recipe_json, const char *media_path,
                                        const char *modality, float **data, int32_t *ndim,
                                        int64_t shape[MER_MAX_DIMS]);

/* ---- priors and voting (src/train/prior.c) ---------------------------------------------- */
/* Test-time class priors (Saerens, Latinne and Decaestecker, Neural Computation 14, 2002).
 * Probabilities are row-major (n, c) float32 rows summing to 1; priors are c doubles (they need
 * not sum to 1: they are normalised). All functions are reentrant. */

/* In place: p'(y|x) = p(y|x) pi_test(y)/pi_train(y), each row renormalised. pi_train must be
 * > 0 for every class, pi_test >= 0. A negative or non-finite probability is MER_ERR_NUMERIC. */
MER_API mer_status mer_prior_correct(float *probs, int64_t n, int32_t c, const double *pi_train,
                                     const double *pi_test);

typedef struct {
    double tol;        /* stop when no prior moves by more than tol in one iteration (1e-6) */
    int32_t max_iter;  /* iteration cap (1000); reaching it logs a warning, not an error */
    double floor;      /* lower bound of a prior inside the iteration (1e-6), so no class dies */
    double collapse;   /* one class holding more than this share (0.99) is a degenerate
                          solution: the training prior is returned instead, with a warning
                          (>= 1 disables the check) */
} mer_prior_em_params;
MER_API mer_prior_em_params mer_prior_em_default_params(void);

/* EM estimate of the test prior from the unlabeled test posteriors probs (n >= 1 rows) of a
 * classifier trained with prior pi_train: starts at pi_train, alternates the correction above
 * with pi = mean corrected posterior. pi_test (c, out) sums to 1; *iters (may be NULL) gets the
 * iteration count. params NULL: defaults. With c >= 2, an estimate that gives one class more
 * than params->collapse of the mass (a weak classifier's posteriors can drive EM there, and
 * every clip would then be predicted as that class) is replaced by pi_train, and a warning
 * names the class. */
MER_API mer_status mer_prior_estimate_em(const float *probs, int64_t n, int32_t c,
                                         const double *pi_train,
                                         const mer_prior_em_params *params, double *pi_test,
                                         int32_t *iters);

/* Read a priors CSV with columns `class,prior` (other columns ignored): every one of the c
 * classes exactly once, values finite and >= 0 (fractions, percentages or counts), not all 0.
 * prior (c, out) is normalised to sum 1. Errors name the file, the row and the class. */
MER_API mer_status mer_prior_read_csv(const char *path, const char *const *classes, int32_t c,
                                      double *prior);

/* The class prior a run was trained with (normalised, c in the run's class order):
 * config.json "class_counts" when present, else the label counts of the run's oof.csv. */
MER_API mer_status mer_prior_from_run(const char *rundir, const char *const *classes, int32_t c,
                                      double *prior);

/* Which test prior a correction aims at (`--prior none|uniform|FILE|auto`). */
typedef enum {
    MER_PRIOR_NONE = 0,     /* no correction */
    MER_PRIOR_UNIFORM = 1,  /* 1/c each */
    MER_PRIOR_CSV = 2,      /* a priors CSV (mer_prior_read_csv) */
    MER_PRIOR_AUTO = 3      /* the EM estimate from the posteriors being corrected */
} mer_prior_mode;

/* A resolved correction: from the training prior to the target. */
typedef struct {
    mer_prior_mode mode;
    int32_t n_classes;
    double train[MER_MAX_CLASSES];   /* corrected from (normalised) */
    double target[MER_MAX_CLASSES];  /* corrected to (normalised); MER_PRIOR_NONE: = train */
    int32_t em_iters;                /* MER_PRIOR_AUTO: EM iterations, else 0 */
} mer_prior_info;

/* Fill info (out) for mode: csv is the priors file of MER_PRIOR_CSV (else ignored); probs (n, c)
 * are the posteriors MER_PRIOR_AUTO estimates from (n >= 1; default EM params), pi_train (c) the
 * training prior. c <= MER_MAX_CLASSES. Nothing is corrected here. */
MER_API mer_status mer_prior_target(mer_prior_mode mode, const char *csv, const char *const *classes,
                                    int32_t c, const float *probs, int64_t n,
                                    const double *pi_train, mer_prior_info *info);

/* `mer predict --prior`: one run's posteriors probs (n, c, in the run's class order classes)
 * corrected in place from the run's training prior (mer_prior_from_run) to the target of mode
 * (mer_prior_target); info (out, may be NULL) records both. MER_PRIOR_NONE changes nothing. */
MER_API mer_status mer_prior_apply_run(float *probs, const char *rundir, const char *const *classes,
                                       int32_t c, int64_t n, mer_prior_mode mode,
                                       const char *csv, mer_prior_info *info);

typedef enum { MER_VOTE_MEAN = 0, MER_VOTE_MAJORITY = 1 } mer_vote_mode;
/* Combine runs probability tables probs[r] (n, c) into out (n, c): MEAN averages them;
 * MAJORITY gives each class its fraction of the runs' argmax votes (ties broken by the mean
 * probability, rows still sum to 1). */
MER_API mer_status mer_vote_combine(const float *const *probs, int32_t runs, int64_t n, int32_t c,
                                    mer_vote_mode mode, float *out);

/* ---- self-training with pseudo-labels (src/train/pseudo.c) ------------------------------ */
/* Round 0 trains on the labeled clips; after each round the unlabeled clips are predicted and
 * those whose top-class probability reaches that class's threshold join the next round (from
 * scratch) as train-only clips with that label (re-selected from the whole pool every round).
 * Who labels them (source):
 *   MER_PSEUDO_FOLD (default): fold k's model labels the pool for fold k alone; in the next
 *     round fold k trains on its labeled training part plus those clips only. No model that
 *     saw fold k's held-out clips contributes to fold k's training, so the cross-validated WAF
 *     stays an honest estimate. Needs K >= 2 (with one fold it is the ensemble source).
 *   MER_PSEUDO_ENSEMBLE: the fold ensemble's mean labels the pool for every fold (the issue's
 *     first design). K-1 of its K models trained on each fold's held-out clips, so this leaks
 *     them into the next round's training and inflates the CV WAF; kept for comparison.
 * Test predictions of the last round are the fold average either way. docs/agt.md,
 * "Self-training". */
typedef enum { MER_PSEUDO_FOLD = 0, MER_PSEUDO_ENSEMBLE = 1 } mer_pseudo_source;
typedef struct {
    int32_t rounds;                      /* R pseudo-label rounds after round 0 (1) */
    double threshold[MER_MAX_CLASSES];   /* per class, in (0, 1]; NaN = not set (an error) */
    int64_t max_add;                     /* keep at most the N most confident (<= 0: all) */
    int32_t balance;                     /* per-class quotas max_add (or all picks) x the
                                            labeled class prior, most confident first (0) */
    mer_pseudo_source source;            /* MER_PSEUDO_FOLD */
} mer_pseudo_params;
MER_API mer_pseudo_params mer_pseudo_default_params(void);
/* The MER2024-SEMI recipe by class name: 0.99 neutral/angry/happy/sad, 0.85 worried/surprise;
 * NaN for any other class name. */
MER_API mer_status mer_pseudo_default_thresholds(const char *const *classes, int32_t c,
                                                 double *thr);
/* Apply a --pseudo-threshold spec to thr: "P" (every class) or "CLASS=P,..." (those classes). */
MER_API mer_status mer_pseudo_parse_thresholds(const char *spec, const char *const *classes,
                                               int32_t c,
                                               double *thr);
/* Self-training as above. unlabeled must have the labeled set's modalities and dims. Rounds
 * before the last are written to RUNDIR/rounds/round-<r>/, the last to RUNDIR (test
 * probabilities there when test != NULL); the clips round r >= 1 trained on, to
 * RUNDIR/rounds/pseudo-<r>.csv (name, fold (-1: every fold), label, confidence).
 * RUNDIR/metrics.json gets "pseudo": source, thresholds and, per round, labeled_clips,
 * pseudo_clips and pseudo_per_class (per fold model: the mean over folds with the fold source),
 * per_fold (fold source), cv_waf and cv_accuracy (labeled clips only; cv_waf_last_epoch: the
 * fold mean of the last epoch's held-out WAF, no best-epoch maximum). With the fold source
 * each round checks in fold-K.json that fold K trained on exactly its labeled part plus its
 * own pseudo-labels (MER_ERR_INVALID_ARG otherwise). *out (may be NULL): the last round's
 * mean out-of-fold metrics. */
MER_API mer_status mer_train_pseudo(const mer_dataset *labeled, const mer_dataset *unlabeled,
                                    const mer_dataset *test, const mer_train_params *tp,
                                    const mer_pseudo_params *pp, const char *rundir, mer_metrics *out);

/* `mer train` as one call: the labelled clips of p->data (labels CSV + feature directories), an
 * optional test list and unlabelled list loaded with the training set's classes, the recipe
 * recorded in the run, then mer_train_run (or mer_train_pseudo with an unlabelled list). */
typedef void (*mer_train_loaded_fn)(const mer_dataset *train, const mer_dataset *test,
                                    const mer_dataset *unlabeled, void *user_data);
typedef struct {
    mer_dataset_params data;       /* the training clips (mer_dataset_default_params) */
    const char *recipe_file;       /* a JSON file of how the features were made, recorded in the
                                      run (one line); NULL: the feature directories' recipe.json
                                      (mer_recipe_from_features) */
    const char *test_list;         /* clips predicted after training (mer_read_name_list); NULL */
    const char *unlabeled_list;    /* clips for self-training; goes with pseudo.rounds >= 1 */
    mer_pseudo_params pseudo;      /* thresholds set from pseudo_thresholds */
    const char *pseudo_thresholds; /* mer_pseudo_parse_thresholds text; NULL: the defaults */
    mer_train_params train;        /* the run: model, folds, callbacks, threads */
    mer_train_loaded_fn loaded;    /* called once the data sets are loaded, before training; NULL */
    void *loaded_user_data;
} mer_train_files_params;
MER_API mer_train_files_params mer_train_files_default_params(void);
/* Train into rundir; out (may be NULL) as mer_train_run. Errors name the file or clip;
 * MER_ERR_ABORTED through p->train.abort leaves the run resumable. */
MER_API mer_status mer_train_files(const mer_train_files_params *p, const char *rundir, mer_metrics *out);


/* ---- synthetic data with a known Bayes rule (src/train/synth.c) ------------------------- */
/* Class-conditional isotropic Gaussians per modality (model and parameters in docs/agt.md,
 * "Synthetic data"), seeded: the same params give the same files. Arrays are borrowed. */
typedef struct {
    int32_t n_classes;
    const char *const *classes;    /* (n_classes) names, written as the label strings */
    const double *priors;          /* (n_classes) class prior of the labeled and unlabeled clips */
    const double *test_priors;     /* (n_classes) prior of the test clips; NULL: priors */
    int32_t n_modalities;
    const char *const *modalities; /* (n_modalities) directory names */
    const int64_t *dims;           /* (n_modalities) feature dims */
    const double *sep;             /* (n_modalities) typical distance between class means, in
                                      noise standard deviations (0: an uninformative modality) */
    int32_t rank;                  /* dims of each modality's signal subspace (default 8) */
    int64_t n_labeled, n_unlabeled, n_test;
    uint64_t seed;
} mer_synth_params;

/* MER2024's six classes with its labeled-set priors, audio/text/video of dims 32/48/24 and
 * separations 2.2/1.6/1.2, rank 8, 2000 labeled clips, seed 1. */
MER_API mer_synth_params mer_synth_default_params(void);

typedef struct {
    double bayes_waf[3];           /* weighted F1 of the Bayes rule on labeled, unlabeled, test */
} mer_synth_report;

/* Write the data set into dir (created if missing): labels.csv (name,emotion) of the labeled
 * clips, unlabeled.txt + unlabeled_truth.csv, test.txt + test_labels.csv (when those counts
 * are > 0), <modality>/<name>.npy (1-D float32) for every clip, bayes.csv (exact Bayes
 * posterior and decision of every clip, under its split's prior) and synth.json (parameters,
 * priors, Bayes WAF per split). labels.csv is written last. rep may be NULL. */
MER_API mer_status mer_synth_write(const char *dir, const mer_synth_params *p,
                                   mer_synth_report *rep);

/* ============================================================================================
 * Pipelines: what the CLI runs, as library calls returning result structs (src/pipeline/)
 * ========================================================================================== */

/* ---- analyze one clip (src/pipeline/analyze.c, docs/analyze.md) --------------------------- */
/* `mer analyze`: the emotion of one clip from its speech (a trained run with a feature recipe),
 * its faces (face-api expressions on sampled frames) and an optional transcript (the lexicon
 * baseline), each mapped onto MER2024's six labels (mer_shared_class_name) and fused late
 * (mer_late_fuse), optionally with a per-second timeline. */
enum { MER_ANALYZE_AUDIO = 0, MER_ANALYZE_FACE = 1, MER_ANALYZE_TEXT = 2, MER_ANALYZE_MODALITIES = 3 };

typedef struct {
    const char *audio_model;   /* speech run directory; NULL: models/emodb-acoustic if it holds a
                                  config.json, else out/demo/model (what `mer demo` leaves) */
    const char *faces_models;  /* face-api weights; NULL: as mer_faces_load(.., NULL, ..) */
    const char *text;          /* transcript; NULL: none */
    const char *text_model;    /* a run trained on `mer extract text` features with their
                                  recipe (`mer train --recipe`): the transcript goes through the
                                  recipe's text encoder and the run; NULL: the lexicon baseline */
    double weights[MER_ANALYZE_MODALITIES]; /* fusion weights audio 1, face 1, text 0.5; 0
                                               skips the modality (not even computed) */
    double fps;                /* video frames analysed per second (2) */
    int32_t max_frames;        /* cap on analysed frames; long clips get a lower rate (300) */
    int32_t timeline;          /* nonzero: one row per second (speech over a 2 s window centred
                                  on it, faces averaged over its frames, their fusion) */
    int32_t adapt;             /* speaker adaptation over the clip's own speech, for a run trained
                                  on speaker-standardised features (recipe "adapt": "group", as
                                  `mer demo`'s model): MER_ANALYZE_ADAPT_AUTO (default) cuts the
                                  clip into 2 s tiles, and when at least adapt_min of them hold
                                  speech, standardises every speech feature with the tiles' own
                                  statistics (mer_dataset_adapt_ref) and reports the mean over the
                                  tiles; MER_ANALYZE_ADAPT_NONE: the run's training statistics */
    int32_t adapt_min;         /* speech tiles needed to adapt (5, i.e. 10 s; >= 2) */
    int32_t n_threads;         /* 0: mer_get_threads() */
    mer_progress_fn progress;  /* after each analysed frame: (frames done, frames) */
    void *progress_user_data;
    mer_abort_fn abort;        /* polled before each frame: true stops with MER_ERR_ABORTED */
    void *abort_user_data;
} mer_analyze_params;
enum { MER_ANALYZE_ADAPT_AUTO = 0, MER_ANALYZE_ADAPT_NONE = 1 };
MER_API mer_analyze_params mer_analyze_default_params(void);

typedef struct {
    int32_t present;           /* a distribution was computed */
    int32_t fused;             /* it takes part in the fusion */
    char note[192];            /* why absent or not fused, or facts ("2.40 s of speech") */
    float probs[MER_SHARED_CLASSES];       /* on the six shared labels (when present) */
    int32_t n_native;                      /* the model's own classes (0 for text) */
    char native_names[MER_MAX_CLASSES][MER_NAME_MAX];
    float native[MER_MAX_CLASSES];
} mer_analysis_modality;

typedef struct {
    double t0, t1;             /* the second [t0, t1) */
    double a0, a1;             /* the audio window (when has_audio) */
    int32_t has_audio, has_face, has_fused;
    float audio[MER_SHARED_CLASSES], face[MER_SHARED_CLASSES], fused[MER_SHARED_CLASSES];
    mer_faces_summary faces;   /* the second's frames */
} mer_analysis_row;

typedef struct {
    char *path;                /* the clip as given */
    mer_media_info info;
    double duration;
    mer_analysis_modality mod[MER_ANALYZE_MODALITIES];   /* indexed by MER_ANALYZE_* */
    double weights[MER_ANALYZE_MODALITIES];
    int32_t has_fused;         /* 0 when no modality could be analysed */
    float fused[MER_SHARED_CLASSES];
    char *audio_model;         /* the run directory used (NULL when speech was not run) */
    int64_t frames, frames_with_face;
    double fps_used;           /* the frame rate after the max_frames cap */
    mer_text_scores text;      /* the lexicon baseline's counts (zeros with a text_model) */
    char *text_model;          /* the text run used (NULL: the lexicon, or no transcript) */
    int32_t n_rows;            /* timeline rows (0 without params.timeline) */
    mer_analysis_row *rows;
    int32_t audio_adapt_tiles; /* 2 s speech tiles the speech was adapted over (0: not adapted) */
} mer_analysis;

/* Analyse the clip at path. *out is allocated (mer_analysis_free) and owns every pointer in
 * it. A missing stream or a modality with weight 0 is not an error (the modality's note says
 * why it is absent); a clip with neither audio nor video, an unreadable file or model, or a
 * speech run without a feature recipe is (message names the file). params NULL: defaults.
 * Reentrant; the models are loaded for the call. */
MER_API mer_status mer_analyze(const char *path, const mer_analyze_params *params,
                               mer_analysis **out);
MER_API void mer_analysis_free(mer_analysis *a);
/* The analysis as the JSON document of `mer analyze --json` (keys in docs/analyze.md),
 * malloc'd text ending in a newline (free()). */
MER_API mer_status mer_analysis_to_json(const mer_analysis *a, char **json);

/* ---- vote: an ensemble of runs with prior correction (src/pipeline/vote.c, docs/agt.md) --- */
/* `mer vote`: each run predicts the clips (mean of its fold models), its columns are put in the
 * first run's class order, with a prior mode each run's posteriors are corrected from its own
 * training prior to one target (MER_PRIOR_AUTO: the EM estimate from the mean of the runs'
 * uncorrected posteriors, starting at the mean of their training priors), then MEAN averages
 * the runs and MAJORITY counts their argmax votes (mer_vote_combine). */
typedef struct {
    const char *const *runs;            /* run directories (>= 1); they must share their class
                                           names, in any order */
    int32_t n_runs;
    const mer_modality_spec *features;  /* the feature directories, by modality name (>= 1) */
    int32_t n_features;
    const char *list;                   /* clip names (mer_read_name_list); NULL: every .npy of
                                           features[0].dir (mer_list_feature_names) */
    mer_vote_mode mode;                 /* MER_VOTE_MEAN */
    mer_prior_mode prior;               /* MER_PRIOR_NONE */
    const char *prior_csv;              /* the priors file of MER_PRIOR_CSV */
    const char *out;                    /* NULL, or the predictions CSV to write atomically
                                           (mer_write_predictions); refused before any work when
                                           it would replace the list, a run's config.json or the
                                           labels a run was trained on */
    int32_t mer2024;                    /* out in the MER2024 submission layout */
    int32_t n_threads;                  /* 0: mer_get_threads() */
    mer_progress_fn progress;           /* after each run's predictions: (runs done, runs) */
    void *progress_user_data;
    mer_abort_fn abort;                 /* polled before each run predicts: true stops with
                                           MER_ERR_ABORTED, nothing written */
    void *abort_user_data;
} mer_vote_params;
MER_API mer_vote_params mer_vote_default_params(void);

typedef struct {
    int64_t n;                          /* clips */
    int32_t n_classes, n_runs;
    char **names;                       /* (n) clip names, in the order of probs */
    char classes[MER_MAX_CLASSES][MER_NAME_MAX];   /* the first run's class order */
    float *probs;                       /* (n, n_classes) the combined probabilities */
    mer_prior_info prior;               /* the correction (train: mean of the runs' priors) */
} mer_vote_result;

/* Run the vote. *out is allocated (mer_vote_result_free) and owns every pointer in it. Errors
 * name the run, file or clip. Reentrant (the runs are opened for the call). */
MER_API mer_status mer_vote(const mer_vote_params *params, mer_vote_result **out);
MER_API void mer_vote_result_free(mer_vote_result *r);

/* ---- predict from media (src/pipeline/predict.c, docs/training.md "Raw media") ------------ */
/* The recipe a run records (mer_train_params.recipe_json): {"<modality>": <its recipe>, ...}
 * from each feature directory's recipe.json (written by `mer extract audio`, `extract text`;
 * acoustic recipes come from mer_acoustic_recipe_to_json), one line. *json NULL (and MER_OK)
 * when some directory has none: the run then records no recipe. *json malloc'd (free()). */
MER_API mer_status mer_recipe_from_features(const mer_modality_spec *mods, int32_t n, char **json);

/* A data set of media files for run: every modality's feature extracted by the run's recipe
 * (its entry for the modality, or the whole recipe when it is not keyed by modality): an
 * acoustic recipe (mer_acoustic_extract, with its "norm") or a speech-encoder recipe
 * (mer_speech_recipe_extract); a text recipe is refused (it needs transcripts). A `mer finetune
 * speech` run (no recipe, an encoder spec) gets its encoder's input (mer_speech_adapter_input). Clip names are
 * the file names without directory and extension (two inputs with one name are refused).
 * Errors name the file. *out: mer_dataset_free. */
MER_API mer_status mer_media_dataset(const mer_run *run, const char *const *inputs, int32_t n,
                                     mer_dataset **out);
/* mer_media_dataset, then mer_run_predict: probs (n, mer_run_n_classes) in input order. */
MER_API mer_status mer_predict_media(mer_run *run, const char *const *inputs, int32_t n,
                                     float *probs);

/* `mer predict`: a run's predictions for the clips of feature directories or for media files,
 * optionally adapted per group (speaker) and prior-corrected, written as a CSV. */
typedef enum {
    MER_PREDICT_ADAPT_NONE = 0,   /* the run's training statistics */
    MER_PREDICT_ADAPT_ALL = 1,    /* all clips given are one group (speaker) */
    MER_PREDICT_ADAPT_GROUP = 2   /* groups from group_regex or groups_csv */
} mer_predict_adapt;
typedef struct {
    const char *run;                    /* run directory */
    const mer_modality_spec *features;  /* feature directories by modality name, or ... */
    int32_t n_features;
    const char *list;                   /* ... with clip names (mer_read_name_list); NULL: every
                                           .npy of features[0].dir */
    const char *const *media;           /* ... media files, through the run's recipe
                                           (mer_media_dataset); exactly one of the two */
    int32_t n_media;
    mer_predict_adapt adapt;            /* mer_dataset_adapt of each group's clips (NONE) */
    const char *group_regex;            /* GROUP: a clip's group is the first parenthesised part
                                           (else the whole match) of this POSIX extended regex
                                           on its name; or ... */
    const char *groups_csv;             /* ... column group_col ("speaker") of this CSV (name,...) */
    const char *group_col;
    int32_t adapt_min;                  /* groups of fewer clips stay unadapted (5) */
    mer_prior_mode prior;               /* mer_prior_apply_run (MER_PRIOR_NONE) */
    const char *prior_csv;              /* the priors file of MER_PRIOR_CSV */
    const char *out;                    /* the predictions CSV, written atomically
                                           (mer_write_predictions); refused before any work when it
                                           would replace an input, the list, the run's config or
                                           recipe, or the labels it was trained on */
    int32_t mer2024;                    /* out in the MER2024 submission layout */
    int32_t n_threads;                  /* 0: mer_get_threads() */
    mer_progress_fn progress;           /* media: after each file's features (files done, files) */
    void *progress_user_data;
    mer_abort_fn abort;                 /* polled before each media file and before predicting:
                                           true stops with MER_ERR_ABORTED, nothing written */
    void *abort_user_data;
} mer_predict_params;
MER_API mer_predict_params mer_predict_default_params(void);
typedef struct {
    int64_t n;                          /* clips predicted */
    int32_t n_classes;
    char classes[MER_MAX_CLASSES][MER_NAME_MAX];  /* the run's class order */
    int64_t n_unadapted;                /* clips in groups smaller than adapt_min */
    int32_t trained_on_groups;          /* ADAPT_NONE on a run trained on per-group standardised
                                           features (its recipe's "adapt": "group") */
    mer_prior_info prior;               /* the correction applied */
} mer_predict_result;
/* Predict and write p->out. *out filled on success (it owns no memory), zeroed on failure; errors
 * name the run, file or clip. Reentrant. */
MER_API mer_status mer_predict(const mer_predict_params *p, mer_predict_result *out);


/* ---- the demo: leave-one-speaker-out from media (src/pipeline/demo.c, docs/demo.md) ------ */
/* `mer demo`: weight-free acoustic features of every clip of a labeled data set (and its
 * speed-perturbed training copies), cached under out/features; leave-one-speaker-out evaluation
 * (mer_loso_run) speaker-normalised into out/report, and optionally the single-clip variant into
 * out/report/single-clip; a final model on every speaker into out/model (a run whose recipe
 * records the extraction and the standardisation, so `mer predict --input` applies it to media);
 * and that model applied to the first clip's file. */
#define MER_DEMO_MAX_SPEEDS 5
typedef enum {
    MER_DEMO_DATA = 0,      /* labels read (n_clips, n_speakers, classes) */
    MER_DEMO_FEATURES = 1,  /* features ready (feature_dim, n_cached, n_extracted) */
    MER_DEMO_LOSO = 2,      /* speaker-normalised evaluation done (loso) */
    MER_DEMO_SINGLE = 3,    /* single-clip evaluation done (single), when asked */
    MER_DEMO_MODEL = 4,     /* final model trained (model_dir) */
    MER_DEMO_EXAMPLE = 5    /* the first clip predicted (example_*) */
} mer_demo_stage;

typedef struct mer_demo_result mer_demo_result;
/* Called when a stage is complete, with the result filled so far (read-only, owned by the
 * call): a CLI prints as the demo goes. */
typedef void (*mer_demo_stage_fn)(mer_demo_stage stage, const mer_demo_result *r, void *user_data);

typedef struct {
    const char *data;          /* labels.csv (name,emotion,speaker) + flac/<name>.flac, <name>.flac,
                                  wav/<name>.wav or <name>.wav; NULL: the bundled data/emodb
                                  (mer_data_path) */
    const char *out;           /* features/, report/, model/ go here ("out/demo") */
    int32_t seeds;             /* models averaged per held-out speaker (3) */
    int32_t epochs;            /* training epochs of every model (100) */
    char model[MER_NAME_MAX];  /* trainer model ("linear") */
    int32_t hidden;            /* 128 */
    float dropout;             /* 0.5 */
    double lr, l2;             /* 1e-3, 1e-3 */
    double speeds[MER_DEMO_MAX_SPEEDS]; /* speeds[0] = 1 (the clips), then the factors of the
                                           training copies, each in [0.5, 2] ({1, 0.9, 1.1}) */
    int32_t n_speeds;          /* 3 (1: no copies) */
    int32_t single_clip;       /* also evaluate single clips with training statistics (1) */
    int32_t functionals;       /* acoustic functionals: MER_ACOUSTIC_EXTENDED (929, the default:
                                  docs/demo.md) or MER_ACOUSTIC_EGEMAPS (514) */
    int32_t n_threads;         /* 0: mer_get_threads() */
    mer_progress_fn progress;  /* per extracted clip, then per held-out speaker of each evaluation
                                  (the stage after the last completed one) */
    void *progress_user_data;
    mer_abort_fn abort;        /* polled per clip and per trained model: true stops with
                                  MER_ERR_ABORTED */
    void *abort_user_data;
    mer_demo_stage_fn stage;   /* may be NULL */
    void *stage_user_data;
} mer_demo_params;
MER_API mer_demo_params mer_demo_default_params(void);

struct mer_demo_result {
    char *data;                /* the data directory used */
    char *feature_dir, *report_dir, *model_dir;
    int64_t n_clips;
    int32_t n_speakers, n_classes;
    char classes[MER_MAX_CLASSES][MER_NAME_MAX];  /* sorted */
    int32_t feature_dim;
    int64_t n_cached, n_extracted;   /* feature files, clips and copies */
    double extract_seconds;
    mer_metrics loso;          /* speaker-normalised */
    int32_t has_single;
    mer_metrics single;        /* single clip, training-set statistics */
    double eval_seconds;       /* both evaluations */
    double model_seconds;
    char *example_path;        /* the first clip's media file */
    int32_t example_label;     /* its class */
    float example_probs[MER_MAX_CLASSES];
    int32_t example_order[MER_MAX_CLASSES]; /* classes by decreasing probability (ties: the
                                               lower index first); [0] is the prediction */
    double seconds;            /* the whole demo */
};

/* Run the demo. *out is allocated (mer_demo_result_free) and owns every pointer in it. Errors
 * name the file (a clip that cannot be read is logged, and the call fails after trying all).
 * params NULL: defaults. */
MER_API mer_status mer_demo(const mer_demo_params *params, mer_demo_result **out);
MER_API void mer_demo_result_free(mer_demo_result *r);

/* ---- faces of an image or a video (src/pipeline/faces_file.c, docs/faces.md) -------------- */
/* `mer faces`: every sampled frame of a video (or the image, by its extension: png, jpg, jpeg,
 * bmp, webp, tif, tiff) through mer_faces_detect, optional crops, and the clip summary. */
typedef struct {
    mer_faces_params detect;   /* per frame (mer_faces_default_params) */
    mer_frame_sampling sampling; /* video frames (default: every frame) */
    const char *crops;         /* non-NULL: each face's crop written as
                                  crops/<name>_f<frame index>_<face>.png (name: the input's file
                                  name without extension, through mer_name_path; crops made if
                                  missing) */
    int32_t n_threads;         /* 0: mer_get_threads() */
    mer_progress_fn progress;  /* after each frame: (frames done, frames expected; the estimate
                                  from the container grows if exceeded) */
    void *progress_user_data;
    mer_abort_fn abort;        /* polled before each frame: true stops with MER_ERR_ABORTED */
    void *abort_user_data;
} mer_faces_file_params;
MER_API mer_faces_file_params mer_faces_file_default_params(void);
typedef struct {
    int64_t index;             /* frame index in the stream (0 for an image) */
    double time;               /* seconds (0 for an image) */
    int32_t width, height;
    mer_face *faces;           /* n_faces, best score first; owned by the result */
    int32_t n_faces;
} mer_faces_frame;
typedef struct {
    int32_t video;             /* 0: the input was read as an image */
    mer_faces_frame *frames;   /* n_frames, in order; owned by the result */
    int64_t n_frames;
    mer_faces_summary summary; /* over all frames */
} mer_faces_file_result;
/* Detect the faces of input (st may be NULL; p NULL: the defaults). *out filled on success
 * (mer_faces_file_result_free), zeroed on failure; a frame that fails is an error naming the
 * input and the frame ("clip.mp4: frame 3: ..."). Crops written before a failure stay. */
MER_API mer_status mer_faces_detect_file(const mer_faces *m, mer_faces_state *st, const char *input,
                                         const mer_faces_file_params *p, mer_faces_file_result *out);
MER_API void mer_faces_file_result_free(mer_faces_file_result *r);

/* ---- score predictions against labels (src/pipeline/eval.c) -------------------------------- */
/* `mer eval`: the clips present in both CSV files are scored (each clip at most once in either
 * file: a repeat is MER_ERR_FORMAT naming both rows). Classes are the sorted union of true and
 * predicted labels. */
typedef struct {
    const char *name_col;      /* clip names in both files ("name") */
    const char *label_col;     /* the labels file's class column ("emotion") */
    const char *pred_col;      /* the predictions' column; NULL: "pred" (mer predict), else
                                  "discrete" (the MER2024 layout) */
} mer_eval_params;
MER_API mer_eval_params mer_eval_default_params(void);
typedef struct {
    int64_t n;                 /* clips scored */
    int64_t unlabeled;         /* predictions without a label */
    int64_t labels;            /* rows of the labels file (n of them have a prediction) */
    int32_t n_classes;
    char *classes[MER_MAX_CLASSES]; /* sorted (strcmp); owned by the result */
    mer_metrics metrics;       /* indexed as classes */
} mer_eval_result;
/* Score pred against labels (p NULL: the defaults). *out filled on success (free what it owns
 * with mer_eval_result_free), zeroed on failure. No predicted clip with a label is
 * MER_ERR_NOT_FOUND. */
MER_API mer_status mer_eval_csv(const char *labels, const char *pred, const mer_eval_params *p,
                                mer_eval_result *out);
MER_API void mer_eval_result_free(mer_eval_result *r);

/* ---- extract features of many inputs (src/pipeline/extract.c, docs/extract.md) ----------- */
/* What `mer extract acoustic|audio|visual|text` runs: one call extracts a folder (or a list, or
 * a transcript CSV) into .npy files. The rules are the same for every extractor:
 *  - inputs: the array inputs[0..n) then the lines of params.list (mer_read_lines), if any;
 *  - one input and no list, and `out` not an existing directory: `out` is the .npy file itself;
 *    otherwise `out` is a directory (made if missing) receiving <name>.npy per input, name = the
 *    input's file name without directory and extension (the MERTools layout), turned into a
 *    path only by mer_name_path; params.recipe, if set, is recorded as out/recipe.json
 *    (mer_output_recipe: features made another way are refused unless overwrite);
 *  - an input whose name an earlier input already has fails (it would overwrite that output);
 *    an existing output is skipped unless params.overwrite; no output may replace an input;
 *  - each .npy is written atomically (mer_npy_write), so no output is ever half-written, also
 *    when the call is aborted (outputs completed before stay; a rerun skips them);
 *  - an input that fails (undecodable, silent, no face, ...) is recorded in its item with a
 *    one-line message naming it, and the others go on.
 * The calls return MER_OK when every input was tried, however many failed (result.failed), and
 * an error for the run as a whole (list unreadable, `out` a file where a directory is needed,
 * another recipe, out of memory, MER_ERR_ABORTED). The result is filled in either case (items
 * of inputs not reached stay MER_EXTRACT_PENDING); free it with mer_extract_result_free. */
typedef enum {
    MER_EXTRACT_PENDING = 0,   /* not reached (the run stopped before it) */
    MER_EXTRACT_WRITTEN = 1,   /* its .npy was written */
    MER_EXTRACT_SKIPPED = 2,   /* its .npy existed (params.overwrite recomputes) */
    MER_EXTRACT_FAILED = 3     /* status and error say why; nothing was written for it */
} mer_extract_outcome;

typedef struct {
    const char *input;         /* the input as given, the list's line, or (text) the clip name */
    const char *name;          /* the output's name: <out>/<name>.npy in a directory */
    mer_extract_outcome outcome;
    mer_status status;         /* FAILED: the failure's code; MER_OK otherwise */
    char *error;               /* FAILED: one line naming the input and the problem (e.g.
                                  "a.wav: no audio stream"); NULL otherwise */
    int32_t frames;            /* visual: frames decoded (1 for an image) */
    int32_t frames_no_face;    /* visual with faces: of those, skipped for want of a face */
} mer_extract_item;

typedef struct {
    mer_extract_item *items;   /* n, in input order; owned by the result */
    int64_t n;
    int64_t written, skipped, failed;
    int64_t frames, frames_no_face;        /* visual: sums over the items */
    int64_t inputs_with_faceless_frames;   /* visual with faces: inputs with frames_no_face > 0 */
    void *priv;                /* the result's own storage (list lines, names) */
} mer_extract_result;
/* Free what a result owns and zero it; NULL and a zeroed result are no-ops. */
MER_API void mer_extract_result_free(mer_extract_result *r);

typedef struct {
    const char *list;          /* a LIST file of more inputs (one path a line), or NULL */
    int32_t overwrite;         /* 1: recompute existing outputs (and replace another recipe) */
    int32_t batch;             /* speech: inputs per encoder forward (mer_speech_extract_batch;
                                  results equal one at a time up to fp32 summation order, bitwise
                                  for bf16/int8); 1 (default): one at a time. Others: ignored */
    const char *recipe;        /* JSON text of how the features are made (mer_*_recipe_to_json),
                                  recorded as recipe.json in an output directory; NULL: none */
    int32_t n_threads;         /* 0: mer_get_threads() */
    mer_progress_fn progress;  /* after each input's outcome is final: (i + 1, n) for input i, so
                                  result->items[done - 1] may be read in the callback (inputs end
                                  in order, except that a batch ends together after the skipped
                                  inputs around it) */
    void *progress_user_data;
    mer_abort_fn abort;        /* polled before each input (batch) is computed, and passed to
                                  the extractor when its own params have none (speech chunks and
                                  layers, text layers): true stops with MER_ERR_ABORTED */
    void *abort_user_data;
} mer_extract_params;
MER_API mer_extract_params mer_extract_default_params(void);

/* Acoustic descriptors of each input per the recipe (mer_acoustic_extract_file). */
MER_API mer_status mer_extract_acoustic_files(const mer_acoustic_recipe *r, const char *const *inputs,
                                              int64_t n, const char *out, const mer_extract_params *p,
                                              mer_extract_result *result);
/* The names of the features such a recipe gives (mer_acoustic_functional_name or, pool "none",
 * mer_acoustic_frame_name), one a line, written atomically to path. */
MER_API mer_status mer_extract_acoustic_names(const mer_acoustic_recipe *r, const char *path);
/* Speech-encoder features of each input (decoded at the model's rate, mer_speech_extract per
 * sp, NULL: the defaults), p->batch inputs per forward. The state is used by this call only. */
MER_API mer_status mer_extract_speech_files(mer_speech_state *s, const char *const *inputs, int64_t n,
                                            const char *out, const mer_speech_params *sp,
                                            const mer_extract_params *p, mer_extract_result *result);
/* The adapted features of a `mer finetune speech` run (mer_speech_adapter_extract). */
MER_API mer_status mer_extract_speech_adapter_files(mer_speech_adapter *a, const char *const *inputs,
                                                    int64_t n, const char *out, int32_t pool_mean,
                                                    const mer_extract_params *p,
                                                    mer_extract_result *result);
/* CLIP features of each image or video (mer_clip_extract_file per cp, NULL: the defaults);
 * frame counts in the items and sums in the result. */
MER_API mer_status mer_extract_clip_files(mer_clip_state *s, const char *const *inputs, int64_t n,
                                          const char *out, const mer_clip_extract_params *cp,
                                          const mer_extract_params *p, mer_extract_result *result);
/* Text-encoder features of the transcripts of a CSV: one item per row, named by column name_col,
 * the text from text_col (mer_text_extract per tp, NULL: the defaults), into the directory out
 * as <name>.npy. A name twice: the later rows fail. A missing column is MER_ERR_NOT_FOUND naming
 * the columns there are. p->list is not used. */
MER_API mer_status mer_extract_text_csv(mer_text_state *s, const mer_tokenizer *tok, const char *csv,
                                        const char *name_col, const char *text_col, const char *out,
                                        const mer_text_params *tp, const mer_extract_params *p,
                                        mer_extract_result *result);

/* ==== Testing: allocation failure injection =================================================
 * Every allocation the library makes goes through one check (src/core/internal.h). After
 * mer_alloc_fail_at(n), the n-th allocation from then on fails once (returns NULL, so the call
 * making it must return MER_ERR_NOMEM or another clean error); n <= 0 disarms. Allocations made
 * by other libraries (FFmpeg, libpng, cJSON, the BLAS) are not counted. Process-wide; for tests
 * (tests/test_alloc_fail.c), not for use while other threads call the library. */
MER_API void mer_alloc_fail_at(int64_t n);
/* 1 when the armed failure has happened since the last mer_alloc_fail_at. */
MER_API int mer_alloc_failed(void);
/* Allocations counted since the last mer_alloc_fail_at(n > 0). */
MER_API int64_t mer_alloc_count(void);

#ifdef __cplusplus
}
#endif
#endif /* MER_H */
