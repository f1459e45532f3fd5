/*
 * extract_common.c -- the options and the report of the `mer extract` subcommands (see the
 * header); the batch itself is the library's (src/pipeline/extract.c).
 */
#include "extract_common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void extract_opts_init(extract_opts *o, const char *cmd) {
    memset(o, 0, sizeof *o);
    o->cmd = cmd;
}

void extract_opts_free(extract_opts *o) {
    free(o->inputs_);
    o->inputs_ = NULL;
    o->inputs = NULL;
    o->n_inputs = o->cap_inputs = 0;
}

static int push_input(extract_opts *o, char *s) {
    if (o->n_inputs == o->cap_inputs) {
        int cap = o->cap_inputs ? 2 * o->cap_inputs : 16;
        char **p = realloc(o->inputs_, (size_t)cap * sizeof *p);
        if (!p) return -1;
        o->inputs_ = p;
        o->inputs = (const char *const *)p;
        o->cap_inputs = cap;
    }
    o->inputs_[o->n_inputs++] = s;
    return 0;
}

int extract_parse_common(extract_opts *o, int argc, char **argv, int *i) {
    const char *v;
    const char *a = argv[*i];
    if (cli_opt(argc, argv, i, "--out", &v)) {
        if (!v) return cli_usage(o->cmd, "%s", cli_error()), -1;
        o->out = v;
        return 1;
    }
    if (cli_opt(argc, argv, i, "--list", &v)) {
        if (!v) return cli_usage(o->cmd, "%s", cli_error()), -1;
        o->list = v;
        return 1;
    }
    if (cli_opt(argc, argv, i, "--threads", &v)) {
        if (!v) return cli_usage(o->cmd, "%s", cli_error()), -1;
        if (!cli_parse_int(v, 0, 1024, &o->threads))
            return cli_usage(o->cmd, "--threads wants an integer in 0..1024, got '%s'", v), -1;
        o->threads_set = true;
        return 1;
    }
    if (cli_flag(a, "--overwrite")) {
        o->overwrite = true;
        return 1;
    }
    if (cli_is_option(a)) return 0;
    if (push_input(o, argv[*i]) != 0) return cli_fail(o->cmd, "out of memory"), -1;
    return 1;
}

int extract_check(extract_opts *o) {
    if (!o->out) return cli_usage(o->cmd, "--out PATH is required");
    if (o->n_inputs == 0 && !o->list) return cli_usage(o->cmd, "no INPUT given (or --list FILE)");
    if (o->threads_set) cli_set_threads(o->threads);
    return 0;
}

/* Each input as the library finishes it: a failure on its own line (above the bar), the bar. */
static void on_input(int64_t done, int64_t total, void *user) {
    extract_report *r = user;
    if (!r->started) {
        cli_progress_start(&r->bar, r->cmd, total);
        r->started = true;
    }
    const mer_extract_item *it = &r->res->items[done - 1];
    if (it->outcome == MER_EXTRACT_FAILED) {
        if (r->bar.tty) fputc('\r', stderr);
        fprintf(stderr, "mer %s: %s%s\n", r->cmd, it->error ? it->error : mer_status_str(it->status),
                r->bar.tty ? "\033[K" : "");
    }
    cli_progress_update(&r->bar, done, it->name);
}

mer_extract_params extract_params(const extract_opts *o, const char *recipe, extract_report *rep,
                                  mer_extract_result *res) {
    memset(rep, 0, sizeof *rep);
    memset(res, 0, sizeof *res);
    rep->cmd = o->cmd;
    rep->res = res;
    mer_extract_params p = mer_extract_default_params();
    p.list = o->list;
    p.overwrite = o->overwrite;
    p.recipe = recipe;
    p.progress = on_input;
    p.progress_user_data = rep;
    p.abort = cli_interrupted;
    cli_catch_sigint(1);
    return p;
}

int extract_finish(extract_report *rep, mer_status s, mer_extract_result *res) {
    cli_catch_sigint(0);
    if (rep->started) cli_progress_end(&rep->bar);
    const char *cmd = rep->cmd;
    int rc = 0;
    if (s != MER_OK) {
        rc = cli_fail_status(cmd, s, NULL);
    } else {
        const int64_t skipped = res->skipped, failed = res->failed, n = res->n;
        if (skipped)
            fprintf(stderr, "mer %s: %lld output%s already existed and %s skipped (--overwrite recomputes)\n", cmd,
                    (long long)skipped, skipped == 1 ? "" : "s", skipped == 1 ? "was" : "were");
        if (failed) {
            fprintf(stderr, "mer %s: %lld of %lld input%s failed\n", cmd, (long long)failed, (long long)n,
                    n == 1 ? "" : "s");
            rc = 1;
        }
    }
    mer_extract_result_free(res);
    return rc;
}
