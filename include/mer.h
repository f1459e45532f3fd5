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

/* Mixed precision: C (M, N) = A @ op(B) (+ C when accumulate), with A float32 (M, K) rounded to
 * bfloat16 on the fly, B already bfloat16 (raw bits; (K, N) with ldb >= N, or (N, K) with
 * ldb >= K when trans_b), products summed in float32. About twice the fp32 throughput on CPUs
 * with AVX512-BF16 (oneDNN), at about 3 significant digits: an opt-in speed mode, never the
 * default. Without oneDNN it falls back to converting B to float32 (correct, slow).
 * ref: torch.matmul(A.bfloat16(), B).float() with float32 accumulation. */
mer_status mer_sgemm_bf16(int trans_b, int64_t M, int64_t N, int64_t K, const float *A,
                          int64_t lda, const uint16_t *B, int64_t ldb, int accumulate, float *C,
                          int64_t ldc);
/* Round n floats to bfloat16 bits (nearest even), e.g. to prepare weights for mer_sgemm_bf16. */
void mer_f32_to_bf16(uint16_t *dst, const float *src, int64_t n);

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
/* Reader: mmaps the file(s), validates the whole header before use (length, JSON, dtypes,
 * shape x dtype size == byte span, spans in bounds and not overlapping, no overflow), and hands
 * out zero-copy views into the mapping. path is a .safetensors file, a sharded checkpoint's
 * model.safetensors.index.json, or a directory holding either (model.safetensors preferred).
 * The handle is immutable after open and may be shared between threads, except
 * mer_safetensors_get_f32 on non-F32 tensors (it caches conversions; guard it or call it from
 * one thread at load time). */
typedef struct mer_safetensors mer_safetensors;

typedef struct {
    const char *name;       /* owned by the handle */
    mer_dtype dtype;
    int32_t ndim;
    int64_t shape[MER_MAX_DIMS];
    const void *data;       /* points into the mapping; valid until mer_safetensors_free */
    size_t nbytes;
    int32_t shard;          /* index of the file holding it (0 for a single file) */
} mer_safetensors_entry;

mer_status mer_safetensors_open(mer_safetensors **out, const char *path);
void mer_safetensors_free(mer_safetensors *st);
int64_t mer_safetensors_count(const mer_safetensors *st);
/* Entries in file order (shard by shard). */
mer_status mer_safetensors_entry_at(const mer_safetensors *st, int64_t i, mer_safetensors_entry *e);
/* MER_ERR_NOT_FOUND (message names the tensor and the file) when absent. */
mer_status mer_safetensors_find(const mer_safetensors *st, const char *name, mer_safetensors_entry *e);
/* Metadata value of the "__metadata__" object, or NULL. Owned by the handle. */
const char *mer_safetensors_metadata(const mer_safetensors *st, const char *key);
/* Typed lookup: the tensor must exist, have the given dtype, and (when ndim >= 0) the given
 * shape; errors say expected vs got. out views the mapping. */
mer_status mer_safetensors_get(const mer_safetensors *st, const char *name, mer_dtype dtype,
                               int32_t ndim, const int64_t *shape, mer_tensor *out);
/* Float32 view of a F32/F16/BF16 tensor with the given shape (ndim < 0: any). F32 tensors are
 * returned zero-copy from the mapping; others are converted once into a buffer owned by st
 * (valid until mer_safetensors_free). */
mer_status mer_safetensors_get_f32(mer_safetensors *st, const char *name, int32_t ndim,
                                   const int64_t *shape, const float **out);
/* Path of the (first) file, for messages. */
const char *mer_safetensors_path(const mer_safetensors *st);

/* Writer: collects tensors (data copied at add time) and writes one file atomically (temp file
 * + rename), tensors in the order added, 8-byte aligned header as the format requires. */
typedef struct mer_safetensors_writer mer_safetensors_writer;
mer_status mer_safetensors_writer_init(mer_safetensors_writer **out);
mer_status mer_safetensors_writer_add(mer_safetensors_writer *w, const char *name, mer_dtype dtype,
                                      int32_t ndim, const int64_t *shape, const void *data);
mer_status mer_safetensors_writer_set_metadata(mer_safetensors_writer *w, const char *key,
                                               const char *value);
mer_status mer_safetensors_writer_save(mer_safetensors_writer *w, const char *path);
void mer_safetensors_writer_free(mer_safetensors_writer *w);

/* ============================================================================================
 * IO: .npy
 * ========================================================================================== */
/* NumPy .npy files (format 1.0-3.0): read float32/float16/float64 (little-endian, C order,
 * rank 1..4; rank 0 is read as shape (1,)) into float32; write float32 C-order atomically.
 * Fortran order, object arrays, big-endian data and truncated payloads are errors naming the
 * file and the problem. *data is malloc'd; the caller frees it with free(). */
mer_status mer_npy_read(const char *path, float **data, int32_t *ndim, int64_t shape[MER_MAX_DIMS]);
/* Header only: dtype and shape without reading the payload. */
mer_status mer_npy_read_header(const char *path, mer_dtype *dtype, int32_t *ndim,
                               int64_t shape[MER_MAX_DIMS]);
/* Parse from memory (for fuzzing and embedded data); name is used in messages. */
mer_status mer_npy_parse(const void *buf, size_t size, const char *name, float **data,
                         int32_t *ndim, int64_t shape[MER_MAX_DIMS]);
mer_status mer_npy_write(const char *path, const float *data, int32_t ndim, const int64_t *shape);

/* ============================================================================================
 * IO: JSON config, CSV
 * ========================================================================================== */
/* JSON documents (Hugging Face config.json, preprocessor_config.json, run configs), parsed with
 * cJSON. Getters take a dotted path ("vision_config.hidden_size"); a missing key gives
 * MER_ERR_NOT_FOUND, a value of the wrong type MER_ERR_FORMAT, both naming the file and the key.
 * Returned strings are owned by the document. */
typedef struct mer_json mer_json;
mer_status mer_json_load(mer_json **out, const char *path);
mer_status mer_json_parse(mer_json **out, const char *text, size_t len, const char *name);
void mer_json_free(mer_json *j);
int mer_json_has(const mer_json *j, const char *path);
mer_status mer_json_get_int(const mer_json *j, const char *path, int64_t *out);
mer_status mer_json_get_double(const mer_json *j, const char *path, double *out);
mer_status mer_json_get_bool(const mer_json *j, const char *path, int *out);
mer_status mer_json_get_string(const mer_json *j, const char *path, const char **out);
/* Arrays of numbers: up to cap values, *n set to the array length (an error if > cap). */
mer_status mer_json_get_int_array(const mer_json *j, const char *path, int64_t *out, int32_t cap,
                                  int32_t *n);
mer_status mer_json_get_double_array(const mer_json *j, const char *path, double *out,
                                     int32_t cap, int32_t *n);
/* With a default when the key is absent (a present key of the wrong type is still an error). */
mer_status mer_json_int_or(const mer_json *j, const char *path, int64_t def, int64_t *out);
mer_status mer_json_double_or(const mer_json *j, const char *path, double def, double *out);
mer_status mer_json_bool_or(const mer_json *j, const char *path, int def, int *out);
mer_status mer_json_string_or(const mer_json *j, const char *path, const char *def, const char **out);

/* CSV (RFC 4180: header row, quoted fields with "" escapes and embedded newlines, UTF-8 with an
 * optional BOM, CRLF or LF). Cells are owned by the table. */
typedef struct mer_csv mer_csv;
mer_status mer_csv_load(mer_csv **out, const char *path);
mer_status mer_csv_parse(mer_csv **out, const char *text, size_t len, const char *name);
void mer_csv_free(mer_csv *c);
int64_t mer_csv_rows(const mer_csv *c);   /* data rows, header excluded */
int32_t mer_csv_cols(const mer_csv *c);
const char *mer_csv_header(const mer_csv *c, int32_t col);
/* Column index by header name, or MER_ERR_NOT_FOUND naming the file, the column and the
 * columns that exist. */
mer_status mer_csv_col(const mer_csv *c, const char *name, int32_t *col);
const char *mer_csv_cell(const mer_csv *c, int64_t row, int32_t col);
/* Write one field to f with RFC 4180 quoting when needed. */
void mer_csv_write_field(FILE *f, const char *s);

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
mer_status mer_media_probe(const char *path, mer_media_info *info);

/* Decode the best audio stream, downmix to mono and resample to sample_rate, as float32 in
 * [-1, 1]. *samples is malloc'd (free()); an empty stream gives *n == 0 and MER_OK. */
mer_status mer_media_decode_audio(const char *path, int32_t sample_rate, float **samples,
                                  int64_t *n);

/* An 8-bit RGB image, rows packed (stride = width * 3). */
typedef struct {
    int32_t width, height;
    uint8_t *rgb;             /* malloc'd, owned by whoever owns the struct */
    double time;              /* seconds from the start (video frames), 0 for images */
    int64_t index;            /* frame index in the stream (video), 0 for images */
} mer_image;
void mer_image_free(mer_image *img);   /* frees rgb, zeroes the struct; NULL ok */

/* How to sample frames from a video: exactly one of fps > 0 (frames at t = 0, 1/fps, ...),
 * count > 0 (count frames uniformly over the duration), every > 0 (every N-th decoded frame);
 * all zero: every frame. max_frames > 0 caps the result. */
typedef struct {
    double fps;
    int32_t count;
    int32_t every;
    int32_t max_frames;
} mer_frame_sampling;

/* Decode video frames to RGB at their native size. *frames is a malloc'd array of *n images;
 * free with mer_frames_free. */
mer_status mer_media_decode_video(const char *path, const mer_frame_sampling *sampling,
                                  mer_image **frames, int32_t *n);
void mer_frames_free(mer_image *frames, int32_t n);

/* Load a still image (PNG, JPEG; anything FFmpeg decodes as one picture) as RGB. */
mer_status mer_image_load(const char *path, mer_image *out);
/* Write RGB (channels 3) or grey (1) or RGBA (4) 8-bit pixels as PNG, atomically. */
mer_status mer_image_write_png(const char *path, const uint8_t *pixels, int32_t width,
                               int32_t height, int32_t channels);

/* ============================================================================================
 * Models
 * ========================================================================================== */
/* (one subsection per model file in src/models/) */

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
mer_dataset_params mer_dataset_default_params(void);

/* Load labels and every feature file. All clips lacking a feature file are listed in one
 * MER_ERR_NOT_FOUND error ("audio: 3 clips have no feature file in DIR: a, b, c"); a feature of
 * the wrong rank or dimension is MER_ERR_SHAPE naming the file, expected vs got; NaN/Inf is
 * MER_ERR_NUMERIC naming the file. */
mer_status mer_dataset_load(mer_dataset **out, const mer_dataset_params *p);

/* In-memory construction (features computed in process, pseudo-labels): an empty set with the
 * given classes and modality names; dims are fixed by the first clip added. */
mer_status mer_dataset_init(mer_dataset **out, const char *const *classes, int32_t n_classes,
                            const char *const *modalities, int32_t n_modalities);
/* Append one clip. feats[m] is modality m: ndim 1 (D) or 2 (T, D), data copied. label -1 =
 * unlabeled; group NULL = none; train_only marks a pseudo-labelled clip. */
mer_status mer_dataset_add(mer_dataset *ds, const char *name, int32_t label, const char *group,
                           int train_only, const mer_tensor *feats);
/* Append clip i of src (same modalities and dims) with a new label (pseudo-labelling). */
mer_status mer_dataset_add_from(mer_dataset *ds, const mer_dataset *src, int64_t i,
                                int32_t label, int train_only);
void mer_dataset_free(mer_dataset *ds);

int64_t mer_dataset_count(const mer_dataset *ds);
int32_t mer_dataset_n_classes(const mer_dataset *ds);
const char *mer_dataset_class(const mer_dataset *ds, int32_t c);      /* owned by ds */
int32_t mer_dataset_n_modalities(const mer_dataset *ds);
const char *mer_dataset_modality(const mer_dataset *ds, int32_t m);   /* owned by ds */
int64_t mer_dataset_dim(const mer_dataset *ds, int32_t m);            /* feature dim D */
int mer_dataset_is_sequence(const mer_dataset *ds, int32_t m);        /* 2-D (T, D) features */
const char *mer_dataset_name(const mer_dataset *ds, int64_t i);       /* owned by ds */
int32_t mer_dataset_label(const mer_dataset *ds, int64_t i);          /* -1: unlabeled */
const char *mer_dataset_group(const mer_dataset *ds, int64_t i);      /* NULL: none */
/* Index of a clip by name, or -1. */
int64_t mer_dataset_find(const mer_dataset *ds, const char *name);

/* Read a LIST file: one clip name per line (blank lines and surrounding spaces ignored; a
 * header line "name" is skipped). *names is one malloc'd block: free(*names) frees it all. */
mer_status mer_read_name_list(const char *path, char ***names, int64_t *n);

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
mer_status mer_metrics_compute(mer_metrics *m, const int32_t *truth, const int32_t *pred,
                               int64_t n, int32_t n_classes);
/* Argmax of each row of probs (n, c) (first maximum on ties, like numpy.argmax). */
void mer_argmax_rows(int32_t *pred, const float *probs, int64_t n, int32_t c);

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
/* Called after every epoch; return nonzero to stop (the run fails with MER_ERR_ABORTED and
 * stays resumable). */
typedef int (*mer_train_progress_fn)(const mer_train_progress *p, void *user_data);

typedef struct {
    char model[MER_NAME_MAX];    /* "attention" */
    int32_t hidden;              /* 128 */
    float dropout;               /* 0.3 */
    int32_t heads;               /* attention heads of transformer models (4) */
    int32_t layers;              /* transformer layers (1) */
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
    uint64_t seed;               /* 0 */
    int32_t search;              /* > 0: random search over hidden/dropout/lr, N trials */
    int32_t resume;              /* continue an interrupted run in the same directory */
    int32_t checkpoint_every;    /* save a resumable state every N epochs (1); 0 = never */
    int32_t plots;               /* write confusion.png and curves.png (1) */
    const char *recipe_json;     /* verbatim JSON object stored as config.json "recipe" (for
                                    `mer predict --input`), or NULL */
    mer_train_progress_fn progress;
    void *progress_user;
} mer_train_params;
mer_train_params mer_train_default_params(void);

/* Train with K-fold cross-validation on the labeled clips of train (train-only clips join the
 * training part of every fold) and write the run directory:
 *   config.json           parameters, classes, modalities + dims, recipe
 *   fold-K.safetensors    best-epoch weights of fold K (+ fold-K.json: epoch, WAF, history)
 *   oof.csv               out-of-fold probabilities: name, one column per class, pred, label
 *   test.csv              (test != NULL) fold-averaged test probabilities: name, classes, pred
 *   confusion.png, curves.png
 *   metrics.json          written LAST: per fold and mean WAF, accuracy, macro F1, UAR,
 *                         confusion; its presence marks a complete run
 * Folds are seeded and stratified by class; with groups, whole groups go to one fold. Each fold
 * keeps the epoch with the best held-out WAF (first best on ties). Same seed and thread count
 * give bitwise the same files. *out (may be NULL) receives the mean out-of-fold metrics. */
mer_status mer_train_run(const mer_train_params *p, const mer_dataset *train,
                         const mer_dataset *test, const char *rundir, mer_metrics *out);

/* ---- trained runs and prediction (src/train/run.c) ---------------------------------------- */
/* A complete run directory opened for prediction: the fold models (immutable after open). */
typedef struct mer_run mer_run;
mer_status mer_run_open(mer_run **out, const char *rundir);
void mer_run_free(mer_run *run);
int32_t mer_run_n_classes(const mer_run *run);
const char *mer_run_class(const mer_run *run, int32_t c);
int32_t mer_run_n_modalities(const mer_run *run);
const char *mer_run_modality(const mer_run *run, int32_t m);
int64_t mer_run_dim(const mer_run *run, int32_t m);
/* The "recipe" object of config.json as JSON text (owned by run), or NULL when none. */
const char *mer_run_recipe(const mer_run *run);
/* Class probabilities (n, C) for every clip of ds: the mean over the run's fold models of their
 * softmax. ds's modalities are matched to the run's by name (extra ones ignored; a missing one
 * or another dim is an error). Single-threaded per call apart from the GEMM threads. */
mer_status mer_run_predict(const mer_run *run, const mer_dataset *ds, float *probs);

/* Write name, one probability column per class, pred (class name) atomically. With mer2024
 * set: the MER2024 submission layout instead (name, discrete). */
mer_status mer_write_predictions(const char *path, const mer_dataset *ds, const float *probs,
                                 const char *const *classes, int32_t n_classes, int mer2024);

/* ---- feature extraction for raw media (implemented by src/acoustic, helper "acoustic") ---- */
/* `mer predict --input FILE...` on a run whose config.json holds a "recipe" object calls this
 * for every input file and every modality of the run: extract the feature of `modality` from
 * media_path following recipe_json (the recipe object's JSON text). *data is malloc'd (free()),
 * shape as mer_npy_read. tools/cmd_predict.c references it weakly, so a build without it still
 * links and reports "no extractor". */
mer_status mer_acoustic_extract(const char *recipe_json, const char *media_path,
                                const char *modality, float **data, int32_t *ndim,
                                int64_t shape[MER_MAX_DIMS]);

/* ---- priors and voting (src/train/prior.c) ---------------------------------------------- */
/* Test-time class priors (Saerens, Latinne and Decaestecker, Neural Computation 14, 2002).
 * Probabilities are row-major (n, c) float32 rows summing to 1; priors are c doubles (they need
 * not sum to 1: they are normalised). All functions are reentrant. */

/* In place: p'(y|x) = p(y|x) pi_test(y)/pi_train(y), each row renormalised. pi_train must be
 * > 0 for every class, pi_test >= 0. A negative or non-finite probability is MER_ERR_NUMERIC. */
mer_status mer_prior_correct(float *probs, int64_t n, int32_t c, const double *pi_train,
                             const double *pi_test);

typedef struct {
    double tol;        /* stop when no prior moves by more than tol in one iteration (1e-6) */
    int32_t max_iter;  /* iteration cap (1000); reaching it logs a warning, not an error */
    double floor;      /* lower bound of a prior inside the iteration (1e-6), so no class dies */
} mer_prior_em_params;
mer_prior_em_params mer_prior_em_default_params(void);

/* EM estimate of the test prior from the unlabeled test posteriors probs (n >= 1 rows) of a
 * classifier trained with prior pi_train: starts at pi_train, alternates the correction above
 * with pi = mean corrected posterior. pi_test (c, out) sums to 1; *iters (may be NULL) gets the
 * iteration count. params NULL: defaults. */
mer_status mer_prior_estimate_em(double *pi_test, int32_t *iters, const float *probs, int64_t n,
                                 int32_t c, const double *pi_train,
                                 const mer_prior_em_params *params);

/* Read a priors CSV with columns `class,prior` (other columns ignored): every one of the c
 * classes exactly once, values finite and >= 0 (fractions, percentages or counts), not all 0.
 * prior (c, out) is normalised to sum 1. Errors name the file, the row and the class. */
mer_status mer_prior_read_csv(const char *path, const char *const *classes, int32_t c,
                              double *prior);

typedef enum { MER_VOTE_MEAN = 0, MER_VOTE_MAJORITY = 1 } mer_vote_mode;
/* Combine runs probability tables probs[r] (n, c) into out (n, c): MEAN averages them;
 * MAJORITY gives each class its fraction of the runs' argmax votes (ties broken by the mean
 * probability, rows still sum to 1). */
mer_status mer_vote_combine(float *out, const float *const *probs, int32_t runs, int64_t n,
                            int32_t c, mer_vote_mode mode);

#ifdef __cplusplus
}
#endif
#endif /* MER_H */
