/*
 * main.c -- the test runner: runs every registered test (or those whose name or file contains
 * one of the arguments; `--skip S` leaves out those containing S), prints one line per test and
 * "N passed, N failed" last.
 *
 * Each test runs in its own forked process, so a crash, a hang (MER_TEST_TIMEOUT seconds,
 * default 900) or a sanitizer finding names its test and the rest still run. The child ends
 * with exit(), so under LeakSanitizer each test's leaks are checked when it ends and fail that
 * test. Sanitizer exit codes are set apart from the CLI's (1 error, 2 usage) by
 * scripts/run-tests.sh: 86 AddressSanitizer and UndefinedBehaviorSanitizer (one runtime in our
 * build, one exit code), 87 LeakSanitizer.
 * MER_TEST_NOFORK=1 runs the tests in-process (for a debugger).
 */
#include "test.h"

#include <errno.h>
#include <signal.h>
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

int mer_test_write_wav(const char *path, const void *samples, int64_t n, int32_t sr, int float32) {
    unsigned char h[44];
    const uint16_t fmt = float32 ? 3 : 1, ch = 1, bytes = float32 ? 4 : 2, bits = (uint16_t)(8 * bytes);
    const uint32_t data = (uint32_t)(n * bytes), rate = (uint32_t)sr, byte_rate = rate * bytes;
    uint32_t v = 36 + data;
    memcpy(h, "RIFF", 4);
    memcpy(h + 4, &v, 4);
    memcpy(h + 8, "WAVEfmt ", 8);
    v = 16;
    memcpy(h + 16, &v, 4);
    memcpy(h + 20, &fmt, 2);
    memcpy(h + 22, &ch, 2);
    memcpy(h + 24, &rate, 4);
    memcpy(h + 28, &byte_rate, 4);
    memcpy(h + 32, &bytes, 2);
    memcpy(h + 34, &bits, 2);
    memcpy(h + 36, "data", 4);
    memcpy(h + 40, &data, 4);
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    int ok = fwrite(h, 1, 44, f) == 44 && fwrite(samples, bytes, (size_t)n, f) == (size_t)n;
    return fclose(f) == 0 && ok ? 0 : -1;
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

/* Tests named parity_* are full-size checks that `make parity` runs (it sets up their fixtures):
 * they run only when an argument starting with "parity_" selects them, never by default, so the
 * default run holds no test that passes by having nothing to do. */
static int selected(int i, int argc, char **argv) {
    const int parity = !strncmp(tests[i].name, "parity_", 7);
    int any = 0, hit = 0;
    for (int a = 1; a < argc; a++) {
        if (!strcmp(argv[a], "--skip")) {
            if (a + 1 < argc && (strstr(tests[i].name, argv[a + 1]) || strstr(tests[i].file, argv[a + 1])))
                return 0;
            a++;
            continue;
        }
        any = 1;
        if (parity && strncmp(argv[a], "parity_", 7)) continue;
        if (strstr(tests[i].name, argv[a]) || strstr(tests[i].file, argv[a])) hit = 1;
    }
    return parity ? hit : !any || hit;
}

/* Why a test's process ended badly, or NULL when it ended normally with code 0 or 1. */
static const char *verdict(int st, char *buf, size_t cap) {
    if (WIFSIGNALED(st)) {
        int sig = WTERMSIG(st);
        snprintf(buf, cap, sig == SIGALRM ? "timed out" : "crashed: signal %d (%s)", sig,
                 strsignal(sig));
        return buf;
    }
    if (!WIFEXITED(st)) return "ended abnormally";
    switch (WEXITSTATUS(st)) {
    case 0: case 1: return NULL;
    case 86: return "AddressSanitizer/UndefinedBehaviorSanitizer error (exit 86, report above)";
    case 87: return "LeakSanitizer: memory leaked (exit 87, report above)";
    default: snprintf(buf, cap, "exited with code %d", WEXITSTATUS(st)); return buf;
    }
}

int main(int argc, char **argv) {
    int passed = 0, failed = 0;
    mer_log_set_level(MER_LOG_ERROR);
    const char *nf = getenv("MER_TEST_NOFORK");
    const int nofork = nf && *nf && strcmp(nf, "0") != 0;
    const char *to = getenv("MER_TEST_TIMEOUT");
    const unsigned timeout = to && atoi(to) > 0 ? (unsigned)atoi(to) : 900;
    for (int i = 0; i < n_tests; i++) {
        if (!selected(i, argc, argv)) continue;
        current_failed = 0;
        mer_clear_error();
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        const char *why = NULL;
        char wbuf[128];
        if (nofork) {
            tests[i].fn();
        } else {
            fflush(stdout);
            fflush(stderr);
            pid_t pid = fork();
            if (pid == 0) {
                alarm(timeout);
                tests[i].fn();
                alarm(0); /* the leak check at exit may take a while; it is not the test's time */
                fflush(stdout);
                exit(current_failed ? 1 : 0); /* exit(), not _exit(): LeakSanitizer checks here */
            }
            int st = 0;
            if (pid < 0) {
                snprintf(wbuf, sizeof wbuf, "cannot fork: %s", strerror(errno));
                why = wbuf;
            } else {
                while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {}
                why = verdict(st, wbuf, sizeof wbuf);
                if (!why && WEXITSTATUS(st) == 1) current_failed++;
            }
        }
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double ms = (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6;
        if (why) {
            failed++;
            printf("FAIL %s (%s, %.0f ms): %s\n", tests[i].name, tests[i].file, ms, why);
        } else if (current_failed) {
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

void mer_test_progress(int64_t done, int64_t total, void *user_data) {
    mer_test_calls *c = user_data;
    c->progress_calls++;
    c->last_done = done;
    c->last_total = total;
}

bool mer_test_abort(void *user_data) {
    mer_test_calls *c = user_data;
    return c->stop_at > 0 && ++c->polls >= c->stop_at;
}
