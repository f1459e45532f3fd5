/*
 * extract.c -- feature extraction over many inputs as one library call: the runner behind every
 * `mer extract <kind>` (docs/extract.md). One generic loop does, for every extractor alike:
 *  - inputs from an array and/or a LIST file (mer_read_lines);
 *  - the output layout: one input (no list) and `out` not an existing directory -> `out` is the
 *    .npy itself; otherwise `out` is a directory (made if missing) of <basename>.npy (the
 *    MERTools layout), the name through mer_name_path;
 *  - two inputs with one output name: the later ones fail (they would overwrite the first);
 *    existing outputs are skipped unless overwrite; no output may replace an input;
 *  - each .npy written atomically (mer_npy_write), recipe.json recorded (mer_output_recipe);
 *  - a per-input outcome and one-line message in mer_extract_result, counts, progress per input,
 *    abort polled before each input.
 * The extractors (acoustic, speech with batching, a fine-tuned speech run, CLIP) supply one
 * group function; the text extractor walks the rows of a transcript CSV with the same items.
 */
#include "internal.h"
#include "models/speech_internal.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- the result ---------------------------------------------------------------------------- */

/* What a result owns besides its items: the list file's lines, the output names, and the
 * messages (each item's error is malloc'd). */
typedef struct {
    char **lines;
    char (*names)[256];
} result_store;

void mer_extract_result_free(mer_extract_result *r) {
    if (!r) return;
    for (int64_t i = 0; r->items && i < r->n; i++) free(r->items[i].error);
    free(r->items);
    result_store *st = r->priv;
    if (st) {
        free(st->lines);
        free(st->names);
        free(st);
    }
    memset(r, 0, sizeof *r);
}

mer_extract_params mer_extract_default_params(void) {
    mer_extract_params p;
    memset(&p, 0, sizeof p);
    p.batch = 1;
    return p;
}

/* The items of n inputs, names and store allocated; input strings are borrowed (from the caller
 * or from st->lines). */
static mer_status result_init(mer_extract_result *r, int64_t n) {
    memset(r, 0, sizeof *r);
    result_store *st = calloc(1, sizeof *st);
    if (!st) return mer__err(MER_ERR_NOMEM, "extract: out of memory");
    r->priv = st;
    r->items = calloc((size_t)(n > 0 ? n : 1), sizeof *r->items);
    st->names = malloc((size_t)(n > 0 ? n : 1) * sizeof *st->names);
    if (!r->items || !st->names) return mer__err(MER_ERR_NOMEM, "extract: out of memory for %lld inputs", (long long)n);
    r->n = n;
    for (int64_t i = 0; i < n; i++) {
        st->names[i][0] = '\0';
        r->items[i].name = st->names[i];
    }
    return MER_OK;
}

/* Item i failed with msg (copied); the message is kept even when memory is short for its copy
 * (then the status names the failure). */
static void item_fail(mer_extract_result *r, int64_t i, mer_status s, const char *fmt, ...) MER__PRINTF(4, 5);
static void item_fail(mer_extract_result *r, int64_t i, mer_status s, const char *fmt, ...) {
    mer_extract_item *it = &r->items[i];
    it->outcome = MER_EXTRACT_FAILED;
    it->status = s ? s : MER_ERR_INTERNAL;
    char buf[2 * MER_PATH_CAP];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    free(it->error);
    it->error = strdup(buf);
    r->failed++;
}

/* The message of a failed computation: the library's usually starts with the file name already. */
static void item_fail_msg(mer_extract_result *r, int64_t i, mer_status s, const char *msg) {
    const char *in = r->items[i].input;
    if (*msg && !strncmp(msg, in, strlen(in))) item_fail(r, i, s, "%s", msg);
    else item_fail(r, i, s, "%s: %s", in, *msg ? msg : mer_status_str(s));
}

/* The output name of an input: its file name without directory and extension. */
static void basename_noext(char *buf, size_t n, const char *input) {
    const char *b = strrchr(input, '/');
    b = b ? b + 1 : input;
    const char *dot = strrchr(b, '.');
    size_t len = dot && dot != b ? (size_t)(dot - b) : strlen(b);
    if (len >= n) len = n - 1;
    memcpy(buf, b, len);
    buf[len] = '\0';
}

typedef struct {
    const char *name;
    int64_t idx;
} name_idx;

static int cmp_name_idx(const void *a, const void *b) {
    const name_idx *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : (x->idx > y->idx) - (x->idx < y->idx);
}

/* dup[i] = 1 for every item whose name an earlier item has (sorted, O(n log n)). */
static mer_status mark_duplicates(const mer_extract_result *r, unsigned char *dup) {
    name_idx *order = malloc((size_t)(r->n > 0 ? r->n : 1) * sizeof *order);
    if (!order) return mer__err(MER_ERR_NOMEM, "extract: out of memory");
    for (int64_t i = 0; i < r->n; i++) order[i] = (name_idx){r->items[i].name, i};
    qsort(order, (size_t)r->n, sizeof *order, cmp_name_idx);
    for (int64_t i = 1; i < r->n; i++)
        if (!strcmp(order[i].name, order[i - 1].name)) dup[order[i].idx] = 1;
    free(order);
    return MER_OK;
}

/* The directory of outputs: made, stale temporaries of dead runs removed, the recipe recorded
 * (not over an input). */
static mer_status prepare_dir(const char *out, const mer_input_set *inset, const mer_extract_params *p) {
    mer_status s = mer_mkdir_p(out);
    if (s) return s;
    mer_tmp_cleanup(out, NULL);
    if (!p->recipe) return MER_OK;
    char rp[MER_PATH_CAP];
    if (snprintf(rp, sizeof rp, "%s/recipe.json", out) >= (int)sizeof rp)
        return mer__err(MER_ERR_INVALID_ARG, "%s: path too long", out);
    if ((s = mer_input_set_check(inset, rp))) return s;
    return mer_output_recipe(out, p->recipe, p->overwrite);
}

/* ---- the generic runner over files ----------------------------------------------------------- */

/* One computed feature (data malloc'd, the runner frees it) or the input's failure. */
typedef struct {
    float *data;
    int32_t ndim;
    int64_t shape[MER_MAX_DIMS];
    mer_status status;
    char error[MER_PATH_CAP + 512];
    int32_t frames, frames_no_face;
} slot;

/* Compute k inputs into out[0..k). Returns non-zero only for a failure of the group as a whole
 * (message through mer_last_error); an input's own failure goes into its slot. */
typedef mer_status (*group_fn)(void *user, int32_t k, const char *const *inputs, slot *out);

static void slot_error(slot *sl, mer_status s) {
    sl->status = s;
    mer__err_copy(sl->error, sizeof sl->error);
}

static mer_status run_files(const char *const *inputs, int64_t n_in, const char *out, const mer_extract_params *p,
                            int32_t batch, group_fn fn, void *user, mer_extract_result *res) {
    char **lines = NULL;
    int64_t n_list = 0, *lineno = NULL;
    if (p->list) {
        mer_status ls = mer__read_lines_n(p->list, &lines, &lineno, &n_list);
        if (ls) return ls;
    }
    if (n_list > INT32_MAX - n_in) {
        free(lines);
        free(lineno);
        return mer__err(MER_ERR_INVALID_ARG, "%s: too many lines", p->list);
    }
    const int64_t n = n_in + n_list;
    mer_status s = result_init(res, n);
    if (res->priv) ((result_store *)res->priv)->lines = lines;
    else free(lines);
    if (s) {
        free(lineno);
        return s;
    }
    if (n == 0) {
        free(lineno);
        return p->list ? mer__err(MER_ERR_INVALID_ARG, "%s: the list names no input", p->list)
                       : mer__err(MER_ERR_INVALID_ARG, "extract: no input");
    }
    for (int64_t i = 0; i < n; i++) {
        res->items[i].input = i < n_in ? inputs[i] : lines[i - n_in];
        basename_noext(((result_store *)res->priv)->names[i], 256, res->items[i].input);
    }
    struct stat out_st;
    /* an existing directory as out also takes a single input as <basename>.npy */
    const bool dir_mode = p->list != NULL || n_in > 1 || (stat(out, &out_st) == 0 && S_ISDIR(out_st.st_mode));
    mer_input_set *inset = NULL;
    unsigned char *dup = calloc((size_t)n, 1);
    const char **due_in = malloc((size_t)batch * sizeof *due_in);
    int64_t *due = malloc((size_t)batch * sizeof *due);
    char (*due_out)[MER_PATH_CAP] = malloc((size_t)batch * sizeof *due_out);
    slot *sl = calloc((size_t)batch, sizeof *sl);
    const char **ins = malloc((size_t)n * sizeof *ins);
    if (!dup || !due_in || !due || !due_out || !sl || !ins) {
        s = mer__err(MER_ERR_NOMEM, "extract: out of memory");
        goto done;
    }
    for (int64_t i = 0; i < n; i++) ins[i] = res->items[i].input;
    if ((s = mark_duplicates(res, dup))) goto done;
    /* no output may replace an input (same device and inode: links and other spellings too) */
    if ((s = mer_input_set_init(&inset, ins, n))) goto done;
    if (!dir_mode && (s = mer_input_set_check(inset, out))) goto done;
    if (dir_mode) {
        struct stat st;
        if (stat(out, &st) == 0 && !S_ISDIR(st.st_mode)) {
            s = mer__err(MER_ERR_INVALID_ARG, "%s: exists and is not a directory (several inputs need an output directory)", out);
            goto done;
        }
        if ((s = prepare_dir(out, inset, p))) goto done;
    }
    int32_t nd = 0; /* inputs due for computing, in groups of `batch` */
    char out_path[MER_PATH_CAP];
    for (int64_t i = 0; i < n; i++) {
        mer_extract_item *it = &res->items[i];
        if (dir_mode) {
            /* the output name comes from the input's name: through the one name-to-path check */
            if (mer_name_path(out_path, sizeof out_path, out, it->name, ".npy", i >= n_in ? p->list : NULL,
                              i >= n_in ? lineno[i - n_in] : 0) != MER_OK) {
                item_fail(res, i, MER_ERR_FORMAT, "%s: %s", it->input, mer_last_error());
                goto reported;
            }
        } else {
            snprintf(out_path, sizeof out_path, "%s", out);
        }
        if (dup[i]) {
            item_fail(res, i, MER_ERR_INVALID_ARG, "%s: output name %s.npy is already used by another input; skipped",
                      it->input, it->name);
            goto reported;
        }
        if (!p->overwrite && access(out_path, F_OK) == 0) {
            it->outcome = MER_EXTRACT_SKIPPED;
            res->skipped++;
            goto reported;
        }
        if (mer_input_set_check(inset, out_path) != MER_OK) {
            item_fail(res, i, MER_ERR_INVALID_ARG, "%s", mer_last_error());
            goto reported;
        }
        due[nd] = i;
        due_in[nd] = it->input;
        snprintf(due_out[nd], sizeof due_out[nd], "%s", out_path);
        nd++;
        goto next;
    reported:
        if (p->progress) p->progress(i + 1, n, p->progress_user_data);
    next:
        if (nd == 0 || (nd < batch && i + 1 < n)) continue;
        if ((s = mer__abort_check(p->abort, p->abort_user_data, due_in[0]))) goto done;
        /* compute the due inputs, then write each result or record its failure */
        memset(sl, 0, (size_t)nd * sizeof *sl);
        mer_clear_error();
        mer_status gs = fn(user, nd, due_in, sl);
        for (int32_t k = 0; k < nd; k++)
            if (gs && !sl[k].status && !sl[k].data) slot_error(&sl[k], gs);
        for (int32_t k = 0; k < nd; k++) {
            if (sl[k].status == MER_ERR_ABORTED) { /* the caller's abort inside a long input */
                s = mer__err(MER_ERR_ABORTED, "%s", sl[k].error);
                goto done;
            }
        }
        for (int32_t k = 0; k < nd; k++) {
            const int64_t j = due[k];
            mer_status ws = sl[k].status;
            if (ws == MER_OK) {
                mer_clear_error();
                ws = mer_npy_write(due_out[k], sl[k].data, sl[k].ndim, sl[k].shape);
                if (ws) slot_error(&sl[k], ws);
            }
            free(sl[k].data);
            sl[k].data = NULL;
            res->items[j].frames = sl[k].frames;
            res->items[j].frames_no_face = sl[k].frames_no_face;
            res->frames += sl[k].frames;
            res->frames_no_face += sl[k].frames_no_face;
            if (sl[k].frames_no_face) res->inputs_with_faceless_frames++;
            if (ws) {
                item_fail_msg(res, j, ws, sl[k].error);
            } else {
                res->items[j].outcome = MER_EXTRACT_WRITTEN;
                res->written++;
            }
            if (p->progress) p->progress(j + 1, n, p->progress_user_data);
        }
        nd = 0;
    }
done:
    if (sl)
        for (int32_t k = 0; k < batch; k++) free(sl[k].data);
    free(dup);
    free(due_in);
    free(due);
    free(due_out);
    free(sl);
    free(ins);
    free(lineno);
    mer_input_set_free(inset);
    return s;
}

/* The runner with the call's thread count and the argument checks every entry point shares. */
static mer_status run_checked(const char *who, const void *obj, const char *const *inputs, int64_t n, const char *out,
                              const mer_extract_params *p, int32_t batch, group_fn fn, void *user,
                              mer_extract_result *res) {
    if (res) memset(res, 0, sizeof *res);
    if (!obj || !res || !out || n < 0 || (n > 0 && !inputs) || (n == 0 && !p->list))
        return mer__err(MER_ERR_INVALID_ARG, "%s: bad arguments (a model, an output path, inputs or a list)", who);
    if (batch < 1 || batch > 4096) return mer__err(MER_ERR_INVALID_ARG, "%s: batch %d outside [1, 4096]", who, (int)batch);
    const int old = mer__threads_use(p->n_threads);
    mer_status s = run_files(inputs, n, out, p, batch, fn, user, res);
    mer__threads_use(old);
    return s;
}

/* ---- the extractors -------------------------------------------------------------------------- */

static void slot_take(slot *sl, float *data, int32_t ndim, const int64_t *shape) {
    sl->data = data;
    sl->ndim = ndim;
    for (int32_t d = 0; d < ndim; d++) sl->shape[d] = shape[d];
}

static mer_status acoustic_group(void *user, int32_t k, const char *const *inputs, slot *out) {
    const mer_acoustic_recipe *r = user;
    for (int32_t i = 0; i < k; i++) {
        float *d = NULL;
        int32_t nd = 0;
        int64_t sh[2] = {0, 0};
        mer_status s = mer_acoustic_extract_file(r, inputs[i], &d, &nd, sh);
        if (s) slot_error(&out[i], s);
        else slot_take(&out[i], d, nd, sh);
    }
    return MER_OK;
}

mer_status mer_extract_acoustic_files(const mer_acoustic_recipe *r, const char *const *inputs, int64_t n,
                                      const char *out, const mer_extract_params *p, mer_extract_result *res) {
    const mer_extract_params d = mer_extract_default_params();
    return run_checked("mer_extract_acoustic_files", r, inputs, n, out, p ? p : &d, 1, acoustic_group, (void *)r, res);
}

mer_status mer_extract_acoustic_names(const mer_acoustic_recipe *r, const char *path) {
    if (!r || !path) return mer__err(MER_ERR_INVALID_ARG, "mer_extract_acoustic_names: bad arguments");
    const int pooled = !strcmp(r->pool, "mean");
    const int32_t D = pooled ? mer_acoustic_functional_dim(&r->params) : mer_acoustic_frame_dim(&r->params);
    size_t cap = (size_t)D * 64 + 1, len = 0;
    char *buf = malloc(cap);
    if (!buf) return mer__err(MER_ERR_NOMEM, "%s: out of memory", path);
    for (int32_t i = 0; i < D; i++) {
        char name[64];
        if (pooled) mer_acoustic_functional_name(&r->params, i, name, sizeof name);
        else mer_acoustic_frame_name(&r->params, i, name, sizeof name);
        len += (size_t)snprintf(buf + len, cap - len, "%s\n", name);
    }
    mer_status s = mer_write_file_atomic(path, buf, len);
    free(buf);
    return s;
}

typedef struct {
    mer_speech_state *st;
    mer_speech_params sp;
    int32_t sample_rate;
} speech_ctx;

/* The inputs of a group decoded, then one mer_speech_extract_batch (mer_speech_extract for one,
 * so --batch 1 is exactly one clip at a time); an input that does not decode or fails its own
 * checks is recorded in its slot. */
static mer_status speech_group(void *user, int32_t k, const char *const *inputs, slot *out) {
    speech_ctx *c = user;
    if (k == 1) {
        float *x = NULL, *d = NULL;
        int64_t n = 0, sh[3] = {0, 0, 0};
        int32_t nd = 0;
        mer_status s = mer_media_decode_audio(inputs[0], c->sample_rate, &x, &n);
        if (s == MER_OK) s = mer_speech_extract(c->st, x, n, &c->sp, &d, &nd, sh);
        free(x);
        if (s) slot_error(&out[0], s);
        else slot_take(&out[0], d, nd, sh);
        return MER_OK;
    }
    float **x = calloc((size_t)k, sizeof *x);
    int64_t *n = calloc((size_t)k, sizeof *n);
    int32_t *at = calloc((size_t)k, sizeof *at);
    mer_speech_feature *f = calloc((size_t)k, sizeof *f);
    mer_status s = x && n && at && f ? MER_OK : mer__err(MER_ERR_NOMEM, "extract: out of memory");
    int32_t m = 0; /* decoded inputs */
    for (int32_t i = 0; i < k && !s; i++) {
        mer_clear_error();
        mer_status d = mer_media_decode_audio(inputs[i], c->sample_rate, &x[m], &n[m]);
        if (d) {
            slot_error(&out[i], d);
            continue;
        }
        at[m++] = i;
    }
    if (!s && m > 0) s = mer_speech_extract_batch(c->st, m, (const float *const *)x, n, &c->sp, f);
    for (int32_t j = 0; j < m && !s; j++) {
        slot *o = &out[at[j]];
        if (f[j].status) {
            o->status = f[j].status;
            snprintf(o->error, sizeof o->error, "%s", f[j].error);
        } else {
            slot_take(o, f[j].data, f[j].ndim, f[j].shape);
        }
    }
    for (int32_t j = 0; x && j < m; j++) free(x[j]);
    free(x);
    free(n);
    free(at);
    free(f);
    return s;
}

mer_status mer_extract_speech_files(mer_speech_state *st, const char *const *inputs, int64_t n, const char *out,
                                    const mer_speech_params *sp, const mer_extract_params *p,
                                    mer_extract_result *res) {
    const mer_extract_params d = mer_extract_default_params();
    if (!p) p = &d;
    speech_ctx c = {.st = st, .sp = sp ? *sp : mer_speech_default_params()};
    if (st) {
        mer_speech_info info;
        mer_speech_model_info(mer__speech_state_model(st), &info);
        c.sample_rate = info.sample_rate;
    }
    /* the caller's abort also stops a long input between its chunks and layers */
    if (!c.sp.abort) {
        c.sp.abort = p->abort;
        c.sp.abort_user_data = p->abort_user_data;
    }
    return run_checked("mer_extract_speech_files", st, inputs, n, out, p, p->batch, speech_group, &c, res);
}

typedef struct {
    mer_speech_adapter *a;
    int32_t pool_mean;
} adapter_ctx;

static mer_status adapter_group(void *user, int32_t k, const char *const *inputs, slot *out) {
    adapter_ctx *c = user;
    for (int32_t i = 0; i < k; i++) {
        float *d = NULL;
        int32_t nd = 0;
        int64_t sh[MER_MAX_DIMS] = {0};
        mer_status s = mer_speech_adapter_extract(c->a, inputs[i], c->pool_mean, &d, &nd, sh);
        if (s) slot_error(&out[i], s);
        else slot_take(&out[i], d, nd, sh);
    }
    return MER_OK;
}

mer_status mer_extract_speech_adapter_files(mer_speech_adapter *a, const char *const *inputs, int64_t n,
                                            const char *out, int32_t pool_mean, const mer_extract_params *p,
                                            mer_extract_result *res) {
    const mer_extract_params d = mer_extract_default_params();
    adapter_ctx c = {a, pool_mean};
    return run_checked("mer_extract_speech_adapter_files", a, inputs, n, out, p ? p : &d, 1, adapter_group, &c, res);
}

typedef struct {
    mer_clip_state *st;
    const mer_clip_extract_params *cp;
} clip_ctx;

static mer_status clip_group(void *user, int32_t k, const char *const *inputs, slot *out) {
    clip_ctx *c = user;
    for (int32_t i = 0; i < k; i++) {
        float *d = NULL;
        int32_t nd = 0;
        int64_t sh[4] = {0};
        mer_clip_extract_stats stats = {0, 0};
        mer_status s = mer_clip_extract_file(c->st, inputs[i], c->cp, &d, &nd, sh, &stats);
        out[i].frames = stats.frames;
        out[i].frames_no_face = stats.frames_no_face;
        if (s) slot_error(&out[i], s);
        else slot_take(&out[i], d, nd, sh);
    }
    return MER_OK;
}

mer_status mer_extract_clip_files(mer_clip_state *st, const char *const *inputs, int64_t n, const char *out,
                                  const mer_clip_extract_params *cp, const mer_extract_params *p,
                                  mer_extract_result *res) {
    const mer_extract_params d = mer_extract_default_params();
    const mer_clip_extract_params dc = mer_clip_default_extract_params();
    clip_ctx c = {st, cp ? cp : &dc};
    return run_checked("mer_extract_clip_files", st, inputs, n, out, p ? p : &d, 1, clip_group, &c, res);
}

/* ---- text: one feature per row of a transcript CSV ------------------------------------------ */

mer_status mer_extract_text_csv(mer_text_state *st, const mer_tokenizer *tok, const char *csv_path,
                                const char *name_col, const char *text_col, const char *out,
                                const mer_text_params *tp, const mer_extract_params *p, mer_extract_result *res) {
    const mer_extract_params dp = mer_extract_default_params();
    const mer_text_params dt = mer_text_default_params();
    if (!p) p = &dp;
    if (!tp) tp = &dt;
    if (res) memset(res, 0, sizeof *res);
    if (!st || !tok || !csv_path || !name_col || !text_col || !out || !res)
        return mer__err(MER_ERR_INVALID_ARG, "mer_extract_text_csv: bad arguments");
    mer_csv *csv = NULL;
    mer_input_set *inset = NULL;
    unsigned char *dup = NULL;
    const int old = mer__threads_use(p->n_threads);
    mer_status s = mer_csv_load(&csv, csv_path);
    if (s) goto done;
    int32_t cn, ct;
    if (mer_csv_col(csv, name_col, &cn) != MER_OK || mer_csv_col(csv, text_col, &ct) != MER_OK) {
        char cols[512] = "";
        size_t l = 0;
        for (int32_t c = 0; c < mer_csv_cols(csv) && l < sizeof cols - 64; c++)
            l += (size_t)snprintf(cols + l, sizeof cols - l, "%s%s", c ? ", " : "", mer_csv_header(csv, c));
        s = mer__err(MER_ERR_NOT_FOUND, "%s: no column '%s' (columns: %s); see --name-col / --text-col", csv_path,
                     mer_csv_col(csv, name_col, &cn) != MER_OK ? name_col : text_col, cols);
        goto done;
    }
    const int64_t rows = mer_csv_rows(csv);
    if ((s = result_init(res, rows))) goto done;
    result_store *rs = res->priv;
    for (int64_t r = 0; r < rows; r++) {
        snprintf(rs->names[r], sizeof rs->names[r], "%s", mer_csv_cell(csv, r, cn));
        res->items[r].input = rs->names[r];
    }
    /* no output may replace the transcript CSV (the set borrows the path) */
    const char *csv_inputs[1] = {csv_path};
    if ((s = mer_input_set_init(&inset, csv_inputs, 1)) || (s = prepare_dir(out, inset, p))) goto done;
    if (!(dup = calloc((size_t)(rows > 0 ? rows : 1), 1))) {
        s = mer__err(MER_ERR_NOMEM, "extract: out of memory");
        goto done;
    }
    if ((s = mark_duplicates(res, dup))) goto done;
    mer_text_params tpr = *tp; /* the caller's abort also stops a long transcript between layers */
    if (!tpr.abort) {
        tpr.abort = p->abort;
        tpr.abort_user_data = p->abort_user_data;
    }
    for (int64_t r = 0; r < rows; r++) {
        const char *name = mer_csv_cell(csv, r, cn), *text = mer_csv_cell(csv, r, ct);
        /* the clip name becomes a file name only through the one name-to-path check */
        char path[MER_PATH_CAP];
        if (mer_name_path(path, sizeof path, out, name, ".npy", csv_path, r + 2) != MER_OK ||
            mer_input_set_check(inset, path) != MER_OK) {
            item_fail(res, r, MER_ERR_FORMAT, "%s", mer_last_error());
        } else if (dup[r]) {
            item_fail(res, r, MER_ERR_INVALID_ARG, "%s: row %lld: clip '%s' appears twice; the second is skipped",
                      csv_path, (long long)r + 2, name);
        } else if (!p->overwrite && access(path, F_OK) == 0) {
            res->items[r].outcome = MER_EXTRACT_SKIPPED;
            res->skipped++;
        } else {
            if ((s = mer__abort_check(p->abort, p->abort_user_data, csv_path))) goto done;
            float *feat = NULL;
            int32_t nd = 0;
            int64_t sh[3];
            mer_clear_error();
            mer_status es = mer_text_extract(st, tok, text, strlen(text), &tpr, &feat, &nd, sh);
            if (es == MER_ERR_ABORTED) {
                s = es;
                goto done;
            }
            if (es == MER_OK) es = mer_npy_write(path, feat, nd, sh);
            free(feat);
            if (es) {
                item_fail(res, r, es, "%s: row %lld (%s): %s", csv_path, (long long)r + 2, name, mer_last_error());
            } else {
                res->items[r].outcome = MER_EXTRACT_WRITTEN;
                res->written++;
            }
        }
        if (p->progress) p->progress(r + 1, rows, p->progress_user_data);
    }
done:
    mer__threads_use(old);
    free(dup);
    mer_input_set_free(inset);
    mer_csv_free(csv);
    return s;
}
