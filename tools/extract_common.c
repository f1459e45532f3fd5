/*
 * extract_common.c -- batch runner shared by the `mer extract` subcommands (see the header
 * for the contract: inputs, output layout, skipping, atomic writes, failure reporting).
 */
#include "extract_common.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

void extract_opts_init(extract_opts *o, const char *cmd) {
    memset(o, 0, sizeof *o);
    o->cmd = cmd;
}

void extract_opts_free(extract_opts *o) {
    free(o->inputs);
    o->inputs = NULL;
    o->n_inputs = o->cap_inputs = 0;
}

static int push_input(extract_opts *o, char *s) {
    if (o->n_inputs == o->cap_inputs) {
        int cap = o->cap_inputs ? 2 * o->cap_inputs : 16;
        char **p = realloc(o->inputs, (size_t)cap * sizeof *p);
        if (!p) return -1;
        o->inputs = p;
        o->cap_inputs = cap;
    }
    o->inputs[o->n_inputs++] = s;
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

void extract_basename(char *buf, size_t n, const char *input) {
    const char *b = strrchr(input, '/');
    b = b ? b + 1 : input;
    const char *dot = strrchr(b, '.');
    size_t len = dot && dot != b ? (size_t)(dot - b) : strlen(b);
    if (len >= n) len = n - 1;
    memcpy(buf, b, len);
    buf[len] = '\0';
}

static int path_exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0;
}

typedef struct {
    const char *name;
    int idx;
} name_idx;

static int cmp_name_idx(const void *a, const void *b) {
    const name_idx *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : (x->idx > y->idx) - (x->idx < y->idx);
}

static int run_inputs(const extract_opts *o, extract_fn fn, extract_batch_fn bfn, int batch_size, void *user) {
    char **list_paths = NULL;
    int64_t n_list64 = 0;
    if (o->list && mer_read_lines(o->list, &list_paths, &n_list64) != MER_OK)
        return cli_fail(o->cmd, "%s", mer_last_error());
    if (n_list64 > INT32_MAX - o->n_inputs) {
        free(list_paths);
        return cli_fail(o->cmd, "%s: too many lines", o->list);
    }
    const int n_list = (int)n_list64;
    const int n = o->n_inputs + n_list;
    mer_input_set *inset = NULL;
    struct stat out_st;
    /* an existing directory as PATH also takes a single input as <basename>.npy */
    const bool dir_mode = o->list != NULL || o->n_inputs > 1 ||
                          (stat(o->out, &out_st) == 0 && S_ISDIR(out_st.st_mode));
    int rc = 0;
    const char **in = malloc((size_t)(n > 0 ? n : 1) * sizeof *in);
    char (*names)[256] = malloc((size_t)(n > 0 ? n : 1) * sizeof *names);
    name_idx *order = malloc((size_t)(n > 0 ? n : 1) * sizeof *order);
    unsigned char *dup = calloc((size_t)(n > 0 ? n : 1), 1);
    if (!in || !names || !order || !dup) {
        rc = cli_fail(o->cmd, "out of memory");
        goto done;
    }
    for (int i = 0; i < o->n_inputs; i++) in[i] = o->inputs[i];
    for (int i = 0; i < n_list; i++) in[o->n_inputs + i] = list_paths[i];
    if (n == 0) {
        rc = cli_fail(o->cmd, "%s: the list names no input", o->list);
        goto done;
    }
    /* Same basename twice: the later one would clobber the earlier output. */
    for (int i = 0; i < n; i++) {
        extract_basename(names[i], sizeof names[i], in[i]);
        order[i].name = names[i];
        order[i].idx = i;
    }
    qsort(order, (size_t)n, sizeof *order, cmp_name_idx);
    for (int i = 1; i < n; i++)
        if (!strcmp(order[i].name, order[i - 1].name)) dup[order[i].idx] = 1;
    /* no output may replace an input (same device and inode: links and other spellings too) */
    if (mer_input_set_init(&inset, in, n) != MER_OK) {
        rc = cli_fail(o->cmd, "%s", mer_last_error());
        goto done;
    }
    if (!dir_mode && mer_input_set_check(inset, o->out) != MER_OK) {
        rc = cli_fail(o->cmd, "%s", mer_last_error());
        goto done;
    }

    if (dir_mode) {
        struct stat st;
        if (stat(o->out, &st) == 0) {
            if (!S_ISDIR(st.st_mode)) {
                rc = cli_fail(o->cmd, "%s: exists and is not a directory (several inputs need an output directory)", o->out);
                goto done;
            }
        }
        if (mer_mkdir_p(o->out) != MER_OK) {
            rc = cli_fail(o->cmd, "%s", mer_last_error());
            goto done;
        }
        mer_tmp_cleanup(o->out, NULL);
        char rp[4200];
        snprintf(rp, sizeof rp, "%s/recipe.json", o->out);
        if (o->recipe && (mer_input_set_check(inset, rp) != MER_OK ||
                          mer_output_recipe(o->out, o->recipe, o->overwrite) != MER_OK)) {
            rc = cli_fail(o->cmd, "%s", mer_last_error());
            goto done;
        }
    }

    cli_progress prog;
    cli_progress_start(&prog, o->cmd, n);
    int failed = 0, skipped = 0, written = 0;
    /* inputs due for computing, in groups of `batch` (1 without a batch function) */
    const int batch = bfn && batch_size > 1 ? batch_size : 1;
    int *due = malloc((size_t)batch * sizeof *due);
    char (*due_out)[4096] = malloc((size_t)batch * sizeof *due_out);
    extract_result *res = calloc((size_t)batch, sizeof *res);
    const char **due_in = malloc((size_t)batch * sizeof *due_in);
    if (!due || !due_out || !res || !due_in) {
        free(due);
        free(due_out);
        free(res);
        free(due_in);
        rc = cli_fail(o->cmd, "out of memory");
        goto done;
    }
    int nd = 0;
    char out_path[4096];
    for (int i = 0; i < n; i++) {
        if (dir_mode) {
            /* the output name comes from the input's name: through the one name-to-path check */
            if (mer_name_path(out_path, sizeof out_path, o->out, names[i], ".npy",
                              i >= o->n_inputs ? o->list : NULL, i >= o->n_inputs ? i - o->n_inputs + 1 : 0) != MER_OK) {
                if (prog.tty) fputc('\r', stderr);
                fprintf(stderr, "mer %s: %s: %s%s\n", o->cmd, in[i], mer_last_error(), prog.tty ? "\033[K" : "");
                failed++;
                cli_progress_update(&prog, i + 1, names[i]);
                goto next;
            }
        } else {
            snprintf(out_path, sizeof out_path, "%s", o->out);
        }
        if (dup[i]) {
            if (prog.tty) fputc('\r', stderr);
            fprintf(stderr, "mer %s: %s: output name %s.npy is already used by another input; skipped%s\n",
                    o->cmd, in[i], names[i], prog.tty ? "\033[K" : "");
            failed++;
            cli_progress_update(&prog, i + 1, names[i]);
            goto next;
        }
        if (!o->overwrite && path_exists(out_path)) {
            skipped++;
            cli_progress_update(&prog, i + 1, names[i]);
            goto next;
        }
        if (mer_input_set_check(inset, out_path) != MER_OK) {
            if (prog.tty) fputc('\r', stderr);
            fprintf(stderr, "mer %s: %s%s\n", o->cmd, mer_last_error(), prog.tty ? "\033[K" : "");
            failed++;
            cli_progress_update(&prog, i + 1, names[i]);
            goto next;
        }
        due[nd] = i;
        due_in[nd] = in[i];
        snprintf(due_out[nd], sizeof due_out[nd], "%s", out_path);
        nd++;
    next:
        if (nd == 0 || (nd < batch && i + 1 < n)) continue;
        /* compute the due inputs, then write each result or report its failure */
        memset(res, 0, (size_t)nd * sizeof *res);
        mer_clear_error();
        if (batch > 1) {
            mer_status bs = bfn(nd, due_in, res, user);
            for (int k = 0; k < nd && bs; k++)
                if (!res[k].status) {
                    res[k].status = bs;
                    snprintf(res[k].error, sizeof res[k].error, "%s", mer_last_error());
                }
        } else {
            res[0].status = fn(due_in[0], &res[0].data, &res[0].ndim, res[0].shape, user);
            if (res[0].status) snprintf(res[0].error, sizeof res[0].error, "%s", mer_last_error());
        }
        for (int k = 0; k < nd; k++) {
            const int j = due[k];
            mer_status s = res[k].status;
            if (s == MER_OK) {
                mer_clear_error();
                s = mer_npy_write(due_out[k], res[k].data, res[k].ndim, res[k].shape);
                if (s) snprintf(res[k].error, sizeof res[k].error, "%s", mer_last_error());
            }
            free(res[k].data);
            res[k].data = NULL;
            if (s != MER_OK) {
                const char *msg = res[k].error;
                if (prog.tty) fputc('\r', stderr);
                /* messages from the library usually start with the file name already */
                if (*msg && !strncmp(msg, in[j], strlen(in[j])))
                    fprintf(stderr, "mer %s: %s%s\n", o->cmd, msg, prog.tty ? "\033[K" : "");
                else
                    fprintf(stderr, "mer %s: %s: %s%s\n", o->cmd, in[j], *msg ? msg : mer_status_str(s),
                            prog.tty ? "\033[K" : "");
                failed++;
            } else {
                written++;
            }
            cli_progress_update(&prog, j + 1, names[j]);
        }
        nd = 0;
    }
    free(due);
    free(due_out);
    free(res);
    free(due_in);
    cli_progress_end(&prog);
    if (skipped)
        fprintf(stderr, "mer %s: %d output%s already existed and %s skipped (--overwrite recomputes)\n",
                o->cmd, skipped, skipped == 1 ? "" : "s", skipped == 1 ? "was" : "were");
    if (failed) {
        fprintf(stderr, "mer %s: %d of %d input%s failed\n", o->cmd, failed, n, n == 1 ? "" : "s");
        rc = 1;
    }
    (void)written;
done:
    free(in);
    free(names);
    free(order);
    free(dup);
    free(list_paths);
    mer_input_set_free(inset);
    return rc;
}

int extract_run(const extract_opts *o, extract_fn fn, void *user) { return run_inputs(o, fn, NULL, 1, user); }

int extract_run_batch(const extract_opts *o, extract_fn fn, extract_batch_fn bfn, int batch, void *user) {
    return run_inputs(o, fn, bfn, batch, user);
}
