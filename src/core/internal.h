/*
 * internal.h -- helpers shared between library files (not part of the public API).
 * Everything here is mer__-prefixed.
 */
#ifndef MER_INTERNAL_H
#define MER_INTERNAL_H

#include "mer.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#if defined(__GNUC__)
#define MER__PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define MER__PRINTF(a, b)
#endif

/* ---- errors ------------------------------------------------------------------------------ */

/* Record a detailed message for mer_last_error() and return s, so a failing path reads
 * `return mer__err(MER_ERR_FORMAT, "%s: header length %llu exceeds file size", path, n);` */
mer_status mer__err(mer_status s, const char *fmt, ...) MER__PRINTF(2, 3);
/* Copy mer_last_error() into dst[cap]; a longer message keeps its head and its tail (the
 * problem) with " ... " between them. */
void mer__err_copy(char *dst, size_t cap);

/* Prefix the current thread's last error with "prefix: " (used to add a file name). */
void mer__err_prefix(const char *fmt, ...) MER__PRINTF(1, 2);

/* ---- logging ----------------------------------------------------------------------------- */

void mer__log(mer_log_level level, const char *fmt, ...) MER__PRINTF(2, 3);
#define MER_LOG_D(...) mer__log(MER_LOG_DEBUG, __VA_ARGS__)
#define MER_LOG_I(...) mer__log(MER_LOG_INFO, __VA_ARGS__)
#define MER_LOG_W(...) mer__log(MER_LOG_WARN, __VA_ARGS__)
#define MER_LOG_E(...) mer__log(MER_LOG_ERROR, __VA_ARGS__)

/* ---- checked sizes ----------------------------------------------------------------------- */

/* *out = a * b; returns false on overflow (or negative inputs). */
bool mer__mul_overflow(int64_t a, int64_t b, int64_t *out);
bool mer__add_overflow(int64_t a, int64_t b, int64_t *out);

/* malloc/calloc that record MER_ERR_NOMEM in the last error on failure (return NULL). Sizes are
 * checked for overflow. Aligned to 64 bytes; free with mer__free. */
void *mer__alloc(size_t n);
void *mer__calloc(size_t count, size_t size);
void mer__free(void *p);

/* ---- allocation failure injection (SQLite style) ------------------------------------------ */

/* Every allocation of the library goes through one check: mer__alloc and the malloc, calloc,
 * realloc and strdup calls of every file that includes this header (redirected below to
 * mer__malloc ...). mer_alloc_fail_at(n), declared in mer.h's testing section, makes the n-th
 * allocation from now fail once, so a test can walk n = 1, 2, ... through a load, a forward or
 * a training step and require a clean error each time. The memory is ordinary heap memory:
 * free() and mer__free() release any of it. */
int mer__alloc_should_fail(void);
void *mer__malloc(size_t n);
void *mer__xcalloc(size_t count, size_t size);
void *mer__realloc(void *p, size_t n);
char *mer__strdup(const char *s);
#ifndef MER__ALLOC_IMPL
#define malloc(n) mer__malloc(n)
#define calloc(c, s) mer__xcalloc(c, s)
#define realloc(p, n) mer__realloc(p, n)
#define strdup(s) mer__strdup(s)
#endif

/* ---- arena: bump allocator for activations ----------------------------------------------- */

typedef struct mer__arena {
    uint8_t *base;
    size_t cap;
    size_t used;
    size_t peak;
} mer__arena;

/* Reserve cap bytes (64-byte aligned). */
mer_status mer__arena_init(mer__arena *a, size_t cap);
/* 64-byte aligned block of n bytes, or NULL (with MER_ERR_NOMEM set) when full. */
void *mer__arena_alloc(mer__arena *a, size_t n);
/* Floats convenience. */
float *mer__arena_f32(mer__arena *a, int64_t n);
/* Save/restore marks: everything allocated after mark is released by reset. */
static inline size_t mer__arena_mark(const mer__arena *a) { return a->used; }
static inline void mer__arena_reset(mer__arena *a, size_t mark) { a->used = mark; }
void mer__arena_free(mer__arena *a);

/* ---- thread pool ------------------------------------------------------------------------- */

/* fn(user, begin, end, thread_index) is called over disjoint ranges covering [0, n). The
 * split depends only on n and the thread count, so results are reproducible for a fixed count.
 * Runs inline when n is small or one thread is configured. Not reentrant: a task must not call
 * mer__parallel_for itself (nested calls run serially). */
typedef void (*mer__range_fn)(void *user, int64_t begin, int64_t end, int thread_index);
void mer__parallel_for(int64_t n, int64_t min_chunk, mer__range_fn fn, void *user);
/* The threads of the CALLING thread's kernels (mer__parallel_for and the GEMM backend's OpenMP
 * team) are n (<= 0: the process-wide mer_get_threads()) until the returned previous value is
 * restored: old = mer__threads_use(n); ... mer__threads_use(old). The per-call n_threads of
 * the API. Other threads and mer_get_threads() are unaffected. */
int mer__threads_use(int n);
/* The thread count of the calling thread's kernels now (mer__threads_use, else mer_get_threads()). */
int mer__threads(void);
/* Test hook: fn(part, team, user) runs on every thread that executes parts of a
 * mer__parallel_for (team: the threads of the region; an inline call reports part 0, team 1),
 * so a test can see which threads a call really used. NULL: none (the default). */
void mer__parallel_set_hook(void (*fn)(int part, int team, void *user), void *user);

/* MER_ERR_ABORTED ("<what>: stopped by the caller") when abort is set and returns true, else
 * MER_OK: the one poll of the API's abort callbacks. */
mer_status mer__abort_check(mer_abort_fn abort_fn, void *user_data, const char *what);
/* MER_ERR_INVALID_ARG ("<who>: unknown precision N (expected F32, BF16 or INT8)") unless p is
 * one of the three precisions. */
mer_status mer__precision_check(mer_precision p, const char *who);

/* ---- small numeric helpers --------------------------------------------------------------- */

float mer__f16_to_f32(uint16_t h);
uint16_t mer__f32_to_f16(float f);
float mer__bf16_to_f32(uint16_t h);
uint16_t mer__f32_to_bf16(float f); /* round to nearest even */

/* Deterministic RNG (splitmix64-seeded xoshiro256**), for init, dropout, shuffles. */
typedef struct { uint64_t s[4]; } mer__rng;
void mer__rng_seed(mer__rng *r, uint64_t seed);
uint64_t mer__rng_u64(mer__rng *r);
double mer__rng_uniform(mer__rng *r);    /* [0, 1) */
double mer__rng_normal(mer__rng *r);     /* standard normal (Box-Muller) */

/* Monotonic seconds (CLOCK_MONOTONIC), for durations. */
double mer__now(void);

/* ---- files ------------------------------------------------------------------------------- */

/* All of fs.c (docs/safety.md); the public half (names, outputs, atomic writes, marked
 * directories) is in mer.h. */

/* Read a whole file into a NUL-terminated malloc'd buffer (free with free()). "-" is stdin;
 * pipes, FIFOs and devices are read as streams; a directory is refused as "is a directory". */
/* The size of every path buffer: PATH_MAX (4096) plus room for what mer appends to a directory
 * (a checked name of at most 200 bytes and a fixed tail). A path formatted into it is either
 * whole, or cut at more than PATH_MAX bytes, which the kernel refuses (ENAMETOOLONG) instead of
 * opening a shortened name. */
#define MER_PATH_CAP 4608
mer_status mer__read_file(const char *path, char **data, size_t *size);
/* Read fd to its end (path names it in messages). */
mer_status mer__read_fd(int fd, const char *path, char **data, size_t *size);
/* mer_read_lines that also returns each entry's 1-based line number (*lineno malloc'd). */
mer_status mer__read_lines_n(const char *path, char ***lines, int64_t **lineno, int64_t *n);
/* mer_name_check on a name of len bytes (catches an embedded NUL). */
mer_status mer__name_check_n(const char *name, size_t len, const char *src, int64_t row);
/* Write data atomically (the implementation of mer_write_file_atomic). */
mer_status mer__write_file_atomic(const char *path, const void *data, size_t size);
/* Copy the file `from` to `to` through the atomic writer (small files: configs, tokenizers). */
mer_status mer__copy_file_atomic(const char *from, const char *to);
/* An atomic file written in pieces: open, write..., commit (or abort). A failed write aborts
 * (the temporary is removed) and names strerror; commit fsyncs, renames and fsyncs the directory. */
typedef struct {
    int fd;
    char path[4096];
    char tmp[4096];
} mer__afile;
mer_status mer__afile_open(mer__afile *f, const char *path);
mer_status mer__afile_write(mer__afile *f, const void *data, size_t n);
mer_status mer__afile_commit(mer__afile *f);
void mer__afile_abort(mer__afile *f);
/* Bulk writers of many small files (one data set in one call): between mer__afile_defer(1) and
 * mer__afile_settle(dir), this thread's commits still write a temporary and rename it, but skip
 * the two fsyncs per file; settle turns deferral off and makes everything written durable at once
 * (syncfs of dir's file system). Write the file that marks the set complete after settle, so a
 * crash can never leave the marker beside an unsynced file. */
void mer__afile_defer(int on);
mer_status mer__afile_settle(const char *dir);
/* mkdir -p (an existing directory is fine; mer_mkdir_p is the public name). */
mer_status mer__mkdir(const char *path);
int mer__file_exists(const char *path);
/* A 64-bit digest of byte streams, to notice changed inputs and corrupted checkpoints (not a
 * cryptographic hash). The same bytes in the same pieces give the same value everywhere. */
typedef struct {
    uint64_t h, n;
} mer__digest;
void mer__digest_init(mer__digest *d);
void mer__digest_add(mer__digest *d, const void *data, size_t n);
uint64_t mer__digest_final(const mer__digest *d);
/* Remove "*.tmp.<pid>" files of dead processes in dir; returns how many. */
int mer__tmp_cleanup(const char *dir);

/* ---- string builder (strbuf.c): the one growable string ---------------------------------- */

/* A growable NUL-terminated string (also fine for bytes); on allocation failure `oom` is set
 * and further appends are dropped, so a writer checks once at the end (mer__sb_save/take). */
typedef struct {
    char *p;
    size_t len, cap;
    int oom;
} mer__sb;
void mer__sb_put(mer__sb *b, const void *data, size_t n);
void mer__sb_str(mer__sb *b, const char *s);
void mer__sb_printf(mer__sb *b, const char *fmt, ...) MER__PRINTF(2, 3);
void mer__sb_vprintf(mer__sb *b, const char *fmt, va_list ap);
/* A quoted JSON string literal, escaped by cJSON (the one JSON escaper). */
void mer__sb_json_str(mer__sb *b, const char *s);
/* A CSV field, quoted when needed (RFC 4180, as mer_csv_write_field). */
void mer__sb_csv_field(mer__sb *b, const char *s);
/* The text, malloc'd (free()), and b reset; NULL with MER_ERR_NOMEM recorded after an oom. */
char *mer__sb_take(mer__sb *b);
void mer__sb_free(mer__sb *b);
/* Atomic write of the text (MER_ERR_NOMEM naming path if the builder ran out of memory). */
mer_status mer__sb_save(const mer__sb *b, const char *path);

/* ---- JSON writing through cJSON (jsonw.c) ------------------------------------------------- */

/* A document being built: every adder takes the parent (object: under key; array: key NULL)
 * and returns the new item, or NULL after an allocation failure, which is remembered in oom and
 * reported once by mer__json_take/save (a NULL parent is such a failure too, so calls chain
 * without checks). */
struct cJSON;
typedef struct {
    struct cJSON *root;
    int oom;
} mer__json;
struct cJSON *mer__json_root(mer__json *w);   /* a new empty object as the root */
struct cJSON *mer__json_obj(mer__json *w, struct cJSON *parent, const char *key);
struct cJSON *mer__json_arr(mer__json *w, struct cJSON *parent, const char *key);
struct cJSON *mer__json_num(mer__json *w, struct cJSON *parent, const char *key, double v);
/* v rounded to `decimals` places (the value "%.*f" shows); non-finite values become null. */
struct cJSON *mer__json_fixed(mer__json *w, struct cJSON *parent, const char *key, double v,
                              int decimals);
struct cJSON *mer__json_int(mer__json *w, struct cJSON *parent, const char *key, int64_t v);
struct cJSON *mer__json_str(mer__json *w, struct cJSON *parent, const char *key, const char *s);
struct cJSON *mer__json_bool(mer__json *w, struct cJSON *parent, const char *key, int b);
struct cJSON *mer__json_null(mer__json *w, struct cJSON *parent, const char *key);
/* The document as text (pretty: indented) ending in a newline, malloc'd (free()); the
 * document is released either way. */
mer_status mer__json_take(mer__json *w, int pretty, char **text);
/* The document written atomically to path (pretty), released either way. */
mer_status mer__json_save(mer__json *w, const char *path);
void mer__json_discard(mer__json *w);

/* ---- CPU dispatch (cpu.c) ---------------------------------------------------------------
 * The default build targets AVX2 + FMA (Makefile: -march=x86-64-v3), so the binary runs on any
 * such x86-64. AVX-512 code is compiled per function with MER_AVX512 (a target attribute, not a
 * build flag) and runs only behind mer__use_avx512(): mer_cpu_features() from cpuid, with
 * MER_NO_AVX512=1 honoured. Every function so marked carries "avx512" in its name, or is
 * static inline and called only from one that does (scripts/check-isa.sh checks the binary). */
#define MER_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq")))
/* the same with vdpbf16ps (run behind MER_CPU_AVX512_BF16) and vpdpbusd (MER_CPU_AVX512_VNNI) */
#define MER_AVX512BF16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16")))
#define MER_AVX512VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")))
static inline int mer__use_avx512(void) { return (mer_cpu_features() & MER_CPU_AVX512) != 0; }
/* Tests: restrict dispatch to the detected features AND `keep` (~0u restores them), so both
 * paths can be compared in one process; returns the previous mask. Not thread safe. */
uint32_t mer__cpu_features_limit(uint32_t keep);
/* Whether the GEMM backend may run AVX-512 code of its own: 1 / 0 for oneDNN (capped at AVX2
 * before its first kernel when mer_cpu_features() has no AVX-512), -1 when unknown (OpenBLAS:
 * OPENBLAS_CORETYPE=Haswell caps it; it is read when the library loads). kernels/gemm.c. */
int mer__gemm_blas_avx512(void);

#endif /* MER_INTERNAL_H */
