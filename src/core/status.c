/*
 * status.c -- status codes, per-thread error messages, logging, checked allocation, files.
 */
#define MER__ALLOC_IMPL /* the real allocator lives here */
#include "internal.h"

#include <errno.h>
#ifdef MER_ALLOC_BACKTRACE
#include <execinfo.h>
#endif
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MER__ERR_CAP 1024
#define MER__MSG_MAX 16384 /* formatted before the head/tail cut: two paths of PATH_MAX and more */

static _Thread_local char tls_err[MER__ERR_CAP];

const char *mer_status_str(mer_status s) {
    switch (s) {
    case MER_OK: return "ok";
    case MER_ERR_INVALID_ARG: return "invalid argument";
    case MER_ERR_IO: return "i/o error";
    case MER_ERR_FORMAT: return "format error";
    case MER_ERR_NOT_FOUND: return "not found";
    case MER_ERR_DTYPE: return "wrong dtype";
    case MER_ERR_SHAPE: return "wrong shape";
    case MER_ERR_NOMEM: return "out of memory";
    case MER_ERR_UNSUPPORTED: return "unsupported";
    case MER_ERR_NUMERIC: return "non-finite value";
    case MER_ERR_ABORTED: return "aborted";
    case MER_ERR_MEDIA: return "media error";
    case MER_ERR_INTERNAL: return "internal error";
    }
    return "unknown status";
}

const char *mer_last_error(void) { return tls_err; }

void mer_clear_error(void) { tls_err[0] = '\0'; }

/* Copy msg (len bytes) into dst[cap]. One longer than that keeps its head and its tail with
 * " ... " between them: a message is "<file>: <problem>", and with a path near PATH_MAX the
 * problem at the end must survive. */
static void cut_copy(char *dst, size_t cap, const char *msg, size_t len) {
    if (!cap) return;
    if (len < cap) {
        memmove(dst, msg, len);
        dst[len] = '\0';
        return;
    }
    static const char gap[] = " ... ";
    const size_t g = sizeof gap - 1, room = cap - 1;
    if (room <= g + 2) {
        memmove(dst, msg, room);
        dst[room] = '\0';
        return;
    }
    const size_t head = (room - g) / 5, tail = room - g - head; /* most of it for the tail */
    char buf[MER__ERR_CAP];
    char *out = cap <= sizeof buf ? buf : dst; /* msg may overlap dst only when cap is small */
    memmove(out, msg, head);
    memcpy(out + head, gap, g);
    memmove(out + head + g, msg + len - tail, tail);
    out[room] = '\0';
    if (out != dst) memcpy(dst, out, cap);
}

void mer__err_copy(char *dst, size_t cap) { cut_copy(dst, cap, tls_err, strlen(tls_err)); }

static void set_err(const char *msg, size_t len) { cut_copy(tls_err, sizeof tls_err, msg, len); }

mer_status mer__err(mer_status s, const char *fmt, ...) {
    /* through a copy: an argument may be mer_last_error() itself (adding a hint to a message) */
    char buf[MER__MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    set_err(buf, n < 0 ? 0 : (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
    return s;
}

void mer__err_prefix(const char *fmt, ...) {
    char prefix[MER__MSG_MAX / 2], buf[MER__MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    int n = snprintf(buf, sizeof buf, "%s: %s", prefix, tls_err);
    set_err(buf, n < 0 ? 0 : (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
}

/* ---- logging ----------------------------------------------------------------------------- */

static void default_log(mer_log_level level, const char *msg, void *user_data) {
    (void)user_data;
    static const char *names[] = {"debug", "info", "warning", "error"};
    fprintf(stderr, "mer: %s: %s\n", names[level], msg);
}

static mer_log_fn log_fn = default_log;
static void *log_user;
static mer_log_level log_level = MER_LOG_WARN;

void mer_log_set(mer_log_fn fn, void *user_data) {
    log_fn = fn;
    log_user = user_data;
}

void mer_log_set_level(mer_log_level level) { log_level = level; }

void mer__log(mer_log_level level, const char *fmt, ...) {
    if (!log_fn || level < log_level) return;
    char buf[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    log_fn(level, buf, log_user);
}

/* ---- checked sizes and allocation -------------------------------------------------------- */

bool mer__mul_overflow(int64_t a, int64_t b, int64_t *out) {
    if (a < 0 || b < 0) return false;
    return !__builtin_mul_overflow(a, b, out);
}

bool mer__add_overflow(int64_t a, int64_t b, int64_t *out) {
    if (a < 0 || b < 0) return false;
    return !__builtin_add_overflow(a, b, out);
}

/* ---- allocation failure injection -------------------------------------------------------- */

static long long alloc_fail_at, alloc_seen; /* armed when alloc_fail_at > 0 */
static int alloc_fired;

int mer__alloc_should_fail(void) {
    if (__atomic_load_n(&alloc_fail_at, __ATOMIC_RELAXED) <= 0) return 0;
    long long k = __atomic_add_fetch(&alloc_seen, 1, __ATOMIC_RELAXED);
    if (k != __atomic_load_n(&alloc_fail_at, __ATOMIC_RELAXED)) return 0;
    __atomic_store_n(&alloc_fired, 1, __ATOMIC_RELAXED);
#ifdef MER_ALLOC_BACKTRACE
    void *bt[32];
    backtrace_symbols_fd(bt, backtrace(bt, 32), 2);
#endif
    return 1;
}

void mer_alloc_fail_at(int64_t n) {
    __atomic_store_n(&alloc_fail_at, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&alloc_seen, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&alloc_fired, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&alloc_fail_at, n > 0 ? (long long)n : 0, __ATOMIC_RELAXED);
}

int mer_alloc_failed(void) { return __atomic_load_n(&alloc_fired, __ATOMIC_RELAXED); }

int64_t mer_alloc_count(void) { return __atomic_load_n(&alloc_seen, __ATOMIC_RELAXED); }

/* The redirected malloc family records the failure in the last error, as mer__alloc does, so a
 * caller that returns MER_ERR_NOMEM on NULL never leaves an empty message (a caller with a
 * message of its own overwrites it). */
static void *nomem(size_t n) {
    mer__err(MER_ERR_NOMEM, "cannot allocate %zu bytes", n);
    return NULL;
}

void *mer__malloc(size_t n) {
    if (mer__alloc_should_fail()) return nomem(n);
    void *p = malloc(n);
    return p || !n ? p : nomem(n);
}

void *mer__xcalloc(size_t count, size_t size) {
    if (mer__alloc_should_fail()) return nomem(count * size);
    void *p = calloc(count, size);
    return p || !count || !size ? p : nomem(count * size);
}

void *mer__realloc(void *p, size_t n) {
    if (mer__alloc_should_fail()) return nomem(n);
    void *q = realloc(p, n);
    return q || !n ? q : nomem(n);
}

char *mer__strdup(const char *s) {
    if (mer__alloc_should_fail()) return nomem(strlen(s) + 1);
    char *d = strdup(s);
    return d ? d : nomem(strlen(s) + 1);
}

void *mer__alloc(size_t n) {
    void *p = NULL;
    size_t rounded = (n + 63) & ~(size_t)63;
    if (mer__alloc_should_fail() || rounded < n ||
        posix_memalign(&p, 64, rounded ? rounded : 64) != 0) {
        mer__err(MER_ERR_NOMEM, "cannot allocate %zu bytes", n);
        return NULL;
    }
    return p;
}

void *mer__calloc(size_t count, size_t size) {
    size_t n;
    if (__builtin_mul_overflow(count, size, &n)) {
        mer__err(MER_ERR_NOMEM, "allocation of %zu x %zu bytes overflows", count, size);
        return NULL;
    }
    void *p = mer__alloc(n);
    if (p) memset(p, 0, n);
    return p;
}

void mer__free(void *p) { free(p); }

/* ---- files ------------------------------------------------------------------------------- */


double mer__now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

mer_status mer__abort_check(mer_abort_fn abort_fn, void *user_data, const char *what) {
    if (abort_fn && abort_fn(user_data)) return mer__err(MER_ERR_ABORTED, "%s: stopped by the caller", what);
    return MER_OK;
}

mer_status mer__precision_check(mer_precision p, const char *who) {
    if (p != MER_PRECISION_F32 && p != MER_PRECISION_BF16 && p != MER_PRECISION_INT8)
        return mer__err(MER_ERR_INVALID_ARG, "%s: unknown precision %d (expected F32, BF16 or INT8)", who, (int)p);
    return MER_OK;
}
