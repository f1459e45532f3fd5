/*
 * cli.c -- option parsing, error printing and the progress bar shared by the subcommands.
 */
#include "cli.h"

#include <errno.h>
#include <signal.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static char opt_err[256];

int cli_fail(const char *cmd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "mer %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 1;
}

int cli_fail_status(const char *cmd, mer_status s, const char *what) {
    const char *detail = mer_last_error();
    /* the library's message usually names the file first: do not say it twice */
    if (what && *what && strncmp(detail, what, strlen(what)) != 0)
        fprintf(stderr, "mer %s: %s: %s\n", cmd, what, *detail ? detail : mer_status_str(s));
    else
        fprintf(stderr, "mer %s: %s\n", cmd, *detail ? detail : mer_status_str(s));
    return 1;
}

int cli_usage(const char *cmd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "mer %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, " (see 'mer %s --help')\n", cmd);
    va_end(ap);
    return 2;
}

bool cli_opt(int argc, char **argv, int *i, const char *name, const char **value) {
    const char *a = argv[*i];
    size_t n = strlen(name);
    if (strncmp(a, name, n) != 0) return false;
    if (a[n] == '=') {
        *value = a + n + 1;
        return true;
    }
    if (a[n] != '\0') return false;
    if (*i + 1 >= argc) {
        snprintf(opt_err, sizeof opt_err, "option %s needs a value", name);
        *value = NULL;
        return true;
    }
    *value = argv[++*i];
    return true;
}

bool cli_flag(const char *arg, const char *name) { return strcmp(arg, name) == 0; }

bool cli_is_option(const char *arg) { return arg[0] == '-' && arg[1] != '\0'; }

const char *cli_error(void) { return opt_err[0] ? opt_err : NULL; }

bool cli_parse_int(const char *s, long lo, long hi, long *out) {
    if (!s || !*s) return false;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < lo || v > hi) return false;
    *out = v;
    return true;
}

bool cli_parse_double(const char *s, double lo, double hi, double *out) {
    if (!s || !*s) return false;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || !isfinite(v) || v < lo || v > hi) return false;
    *out = v;
    return true;
}

double cli_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

void cli_progress_start(cli_progress *p, const char *label, int64_t total) {
    p->label = label;
    p->total = total;
    p->t0 = cli_now();
    p->last_draw = 0;
    p->tty = isatty(2) && !getenv("MER_NO_PROGRESS");
}

void cli_progress_update(cli_progress *p, int64_t done, const char *detail) {
    if (!p->tty) return;
    double now = cli_now();
    if (done < p->total && now - p->last_draw < 0.1) return;
    p->last_draw = now;
    double el = now - p->t0;
    double frac = p->total > 0 ? (double)done / p->total : 1.0;
    double eta = done > 0 ? el * (p->total - done) / done : 0;
    int w = 30, filled = (int)(frac * w);
    char bar[64];
    for (int i = 0; i < w; i++) bar[i] = i < filled ? '#' : '.';
    bar[w] = '\0';
    fprintf(stderr, "\r%s [%s] %lld/%lld %3.0f%% %.0fs ETA %.0fs %s\033[K", p->label, bar,
            (long long)done, (long long)p->total, frac * 100, el, eta, detail ? detail : "");
    fflush(stderr);
}

void cli_progress_end(cli_progress *p) {
    if (p->tty) fputc('\n', stderr);
}

void cli_set_threads(long n) { mer_set_threads((int)n); }

bool cli_json_str(FILE *f, const char *s) {
    char *q = mer_json_quote(s);
    if (!q) return false;
    fputs(q, f);
    free(q);
    return true;
}

int cli_feature_add(const char *cmd, cli_features *f, const char *arg) {
    const char *eq = arg ? strchr(arg, '=') : NULL;
    if (!eq || eq == arg || !eq[1]) return cli_usage(cmd, "--feature wants NAME=DIR, got '%s'", arg ? arg : "");
    size_t len = (size_t)(eq - arg);
    if (len >= MER_NAME_MAX)
        return cli_usage(cmd, "--feature: the name '%.*s' is longer than %d bytes", (int)len, arg, MER_NAME_MAX - 1);
    if (f->n == MER_MAX_MODALITIES) return cli_usage(cmd, "at most %d --feature modalities", MER_MAX_MODALITIES);
    for (int32_t k = 0; k < f->n; k++)
        if (strlen(f->name[k]) == len && !memcmp(f->name[k], arg, len))
            return cli_usage(cmd, "--feature %.*s is given twice", (int)len, arg);
    memcpy(f->name[f->n], arg, len);
    f->name[f->n][len] = '\0';
    f->spec[f->n].name = f->name[f->n];
    f->spec[f->n].dir = eq + 1;
    f->n++;
    return 0;
}

static volatile sig_atomic_t sigint_seen = 0;
static void on_sigint(int sig) {
    (void)sig;
    sigint_seen = 1;
}

void cli_catch_sigint(int on) {
    sigint_seen = 0;
    signal(SIGINT, on ? on_sigint : SIG_DFL);
}

bool cli_interrupted(void *user_data) {
    (void)user_data;
    return sigint_seen != 0;
}
