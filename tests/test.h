/*
 * test.h -- the tiny test harness. Each test_<unit>.c defines tests with MER_TEST(name); they
 * register themselves at start-up and tests/main.c runs them (optionally filtered by substrings
 * given on the command line). A failed CHECK marks the test failed and continues; REQUIRE
 * returns from the test. The runner prints "N passed, N failed" last and exits non-zero on any
 * failure.
 */
#ifndef MER_TEST_H
#define MER_TEST_H

#include "mer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef void (*mer_test_fn)(void);
void mer_test_register(const char *name, const char *file, mer_test_fn fn);
void mer_test_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define MER_TEST(name)                                                                      \
    static void test_##name(void);                                                          \
    __attribute__((constructor)) static void register_##name(void) {                        \
        mer_test_register(#name, __FILE__, test_##name);                                    \
    }                                                                                       \
    static void test_##name(void)

#define CHECK(cond)                                                                         \
    do {                                                                                    \
        if (!(cond)) mer_test_fail(__FILE__, __LINE__, "CHECK(%s)", #cond);                 \
    } while (0)
#define REQUIRE(cond)                                                                       \
    do {                                                                                    \
        if (!(cond)) {                                                                      \
            mer_test_fail(__FILE__, __LINE__, "REQUIRE(%s)", #cond);                        \
            return;                                                                         \
        }                                                                                   \
    } while (0)
/* s must be MER_OK; prints mer_last_error() otherwise. */
#define CHECK_OK(expr)                                                                      \
    do {                                                                                    \
        mer_status s_ = (expr);                                                             \
        if (s_ != MER_OK)                                                                   \
            mer_test_fail(__FILE__, __LINE__, "%s -> %s: %s", #expr, mer_status_str(s_),    \
                          mer_last_error());                                                \
    } while (0)
#define REQUIRE_OK(expr)                                                                    \
    do {                                                                                    \
        mer_status s_ = (expr);                                                             \
        if (s_ != MER_OK) {                                                                 \
            mer_test_fail(__FILE__, __LINE__, "%s -> %s: %s", #expr, mer_status_str(s_),    \
                          mer_last_error());                                                \
            return;                                                                         \
        }                                                                                   \
    } while (0)
/* expr must fail with status want, and the message must contain substring sub (or NULL). */
#define CHECK_ERR(expr, want, sub)                                                          \
    do {                                                                                    \
        mer_status s_ = (expr);                                                             \
        const char *sub_ = (sub);                                                           \
        if (s_ != (want))                                                                   \
            mer_test_fail(__FILE__, __LINE__, "%s -> %s (%s), wanted %s", #expr,            \
                          mer_status_str(s_), mer_last_error(), mer_status_str(want));      \
        else if (sub_ && !strstr(mer_last_error(), sub_))                                   \
            mer_test_fail(__FILE__, __LINE__, "%s: message '%s' lacks '%s'", #expr,         \
                          mer_last_error(), sub_);                                          \
    } while (0)
#define CHECK_NEAR(a, b, tol)                                                               \
    do {                                                                                    \
        double a_ = (a), b_ = (b), t_ = (tol);                                              \
        if (!(fabs(a_ - b_) <= t_))                                                         \
            mer_test_fail(__FILE__, __LINE__, "%s = %.9g vs %s = %.9g (tol %.3g)", #a, a_,  \
                          #b, b_, t_);                                                      \
    } while (0)

/* ---- helpers (tests/main.c) -------------------------------------------------------------- */

/* A fresh empty directory for this test (under build/test-tmp/), path in a static buffer that
 * stays valid until the next call. */
const char *mer_test_tmpdir(const char *name);
/* Path of the CLI binary under test ($MER_BIN, default build/mer). */
const char *mer_test_bin(void);
/* Run a shell command; returns its exit code; stdout+stderr captured into out (may be NULL). */
int mer_test_run(char *out, size_t out_cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Write bytes to a file; returns 0 on success. */
int mer_test_write(const char *path, const void *data, size_t n);
/* Write a mono WAV of n samples at sr Hz: float32 (format 3) or 16-bit PCM; 0 on success. */
int mer_test_write_wav(const char *path, const void *samples, int64_t n, int32_t sr, int float32);
/* Max |a - b| over n floats, and max |b| (for relative tolerances). */
double mer_test_maxdiff(const float *a, const float *b, size_t n, double *max_ref);
/* Counting callbacks for the API's long calls (user_data: a mer_test_calls): mer_test_progress
 * (a mer_progress_fn) counts calls and keeps the last (done, total); mer_test_abort (a
 * mer_abort_fn) counts polls and answers true from poll stop_at on (stop_at <= 0: never). */
typedef struct {
    int64_t progress_calls, last_done, last_total;
    int polls, stop_at;
} mer_test_calls;
void mer_test_progress(int64_t done, int64_t total, void *user_data);
bool mer_test_abort(void *user_data);

#endif
