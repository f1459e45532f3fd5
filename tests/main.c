/*
 * main.c -- the test runner: runs every registered test (or those whose name or file contains
 * one of the arguments), prints one line per test and "N passed, N failed" last.
 */
#include "test.h"

#include <errno.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_TESTS 4096

static struct {
    const char *name, *file;
    mer_test_fn fn;
} tests[MAX_TESTS];
static int n_tests;
static int current_failed;

void mer_test_register(const char *name, const char *file, mer_test_fn fn) {
    if (n_tests < MAX_TESTS) {
        tests[n_tests].name = name;
        tests[n_tests].file = file;
        tests[n_tests].fn = fn;
        n_tests++;
    }
}

void mer_test_fail(const char *file, int line, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stdout, "    %s:%d: ", file, line);
    vfprintf(stdout, fmt, ap);
    fprintf(stdout, "\n");
    va_end(ap);
    fflush(stdout);
    current_failed++;
}

static char tmp_buf[1024];

const char *mer_test_tmpdir(const char *name) {
    mkdir("build", 0755);
    mkdir("build/test-tmp", 0755);
    snprintf(tmp_buf, sizeof tmp_buf, "build/test-tmp/%s.%ld", name, (long)getpid());
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s'", tmp_buf, tmp_buf);
    if (system(cmd) != 0) fprintf(stderr, "cannot make %s\n", tmp_buf);
    return tmp_buf;
}

const char *mer_test_bin(void) {
    const char *b = getenv("MER_BIN");
    return b && *b ? b : "build/mer";
}

int mer_test_run(char *out, size_t out_cap, const char *fmt, ...) {
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    char full[8300];
    snprintf(full, sizeof full, "( %s ) 2>&1", cmd);
    FILE *p = popen(full, "r");
    if (!p) return -1;
    size_t k = 0;
    char buf[4096];
    size_t r;
    while ((r = fread(buf, 1, sizeof buf, p)) > 0) {
        if (out && k + 1 < out_cap) {
            size_t c = r < out_cap - 1 - k ? r : out_cap - 1 - k;
            memcpy(out + k, buf, c);
            k += c;
        }
    }
    if (out && out_cap) out[k] = '\0';
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
}

int mer_test_write(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = fwrite(data, 1, n, f);
    return (fclose(f) == 0 && w == n) ? 0 : -1;
}

double mer_test_maxdiff(const float *a, const float *b, size_t n, double *max_ref) {
    double md = 0, mr = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (!(d <= md)) md = d; /* NaN propagates as a failure */
        if (fabs(b[i]) > mr) mr = fabs(b[i]);
    }
    if (max_ref) *max_ref = mr;
    return md;
}

static int selected(int i, int argc, char **argv) {
    if (argc <= 1) return 1;
    for (int a = 1; a < argc; a++)
        if (strstr(tests[i].name, argv[a]) || strstr(tests[i].file, argv[a])) return 1;
    return 0;
}

int main(int argc, char **argv) {
    int passed = 0, failed = 0;
    mer_log_set_level(MER_LOG_ERROR);
    for (int i = 0; i < n_tests; i++) {
        if (!selected(i, argc, argv)) continue;
        current_failed = 0;
        mer_clear_error();
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        tests[i].fn();
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double ms = (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6;
        if (current_failed) {
            failed++;
            printf("FAIL %s (%s, %.0f ms)\n", tests[i].name, tests[i].file, ms);
        } else {
            passed++;
            printf("ok   %s (%.0f ms)\n", tests[i].name, ms);
        }
        fflush(stdout);
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
