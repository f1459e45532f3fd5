/*
 * eval.c -- `mer eval` as a library call: a predictions CSV (mer predict, a run's oof.csv or
 * test.csv, the MER2024 submission layout) scored against a labels CSV. The clips are joined by
 * name (each at most once in either file), the classes are the sorted union of true and
 * predicted labels, and the metrics are mer_metrics_compute's (scikit-learn semantics).
 */
#include "internal.h"

#include <stdio.h>
#include <string.h>

mer_eval_params mer_eval_default_params(void) {
    mer_eval_params p;
    memset(&p, 0, sizeof p);
    p.name_col = "name";
    p.label_col = "emotion";
    return p;
}

void mer_eval_result_free(mer_eval_result *r) {
    if (!r) return;
    for (int32_t k = 0; k < r->n_classes && k < MER_MAX_CLASSES; k++) free(r->classes[k]);
    memset(r, 0, sizeof *r);
}

typedef struct {
    const char *name;
    int64_t row;
} name_row;

static int cmp_nr(const void *a, const void *b) {
    return strcmp(((const name_row *)a)->name, ((const name_row *)b)->name);
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The rows of column col sorted by name; a name twice is an error naming both rows. */
static mer_status sorted_names(const mer_csv *c, int32_t col, const char *path, const char *twice, name_row **out) {
    const int64_t n = mer_csv_rows(c);
    name_row *r = malloc((size_t)(n ? n : 1) * sizeof *r);
    if (!r) return mer__err(MER_ERR_NOMEM, "%s: out of memory", path);
    for (int64_t i = 0; i < n; i++) r[i] = (name_row){mer_csv_cell(c, i, col), i};
    qsort(r, (size_t)n, sizeof *r, cmp_nr);
    for (int64_t i = 1; i < n; i++)
        if (!strcmp(r[i].name, r[i - 1].name)) {
            const int64_t a = r[i - 1].row < r[i].row ? r[i - 1].row : r[i].row;
            const int64_t b = r[i - 1].row < r[i].row ? r[i].row : r[i - 1].row;
            mer_status s = mer__err(MER_ERR_FORMAT, "%s: clip '%s' %s (rows %lld and %lld)%s", path, r[i].name, twice,
                                    (long long)a + 2, (long long)b + 2,
                                    strstr(twice, "predicted") ? "; each clip may have one prediction" : "");
            free(r);
            return s;
        }
    *out = r;
    return MER_OK;
}

mer_status mer_eval_csv(const char *labels, const char *pred, const mer_eval_params *params, mer_eval_result *out) {
    const mer_eval_params d = mer_eval_default_params();
    const mer_eval_params *p = params ? params : &d;
    if (out) memset(out, 0, sizeof *out);
    if (!labels || !pred || !out || !p->name_col || !p->label_col)
        return mer__err(MER_ERR_INVALID_ARG, "mer_eval_csv: bad arguments");
    mer_csv *lc = NULL, *pc = NULL;
    name_row *lr = NULL, *pr = NULL;
    const char **all = NULL;
    int32_t *truth = NULL, *guess = NULL;
    int32_t ln, ll, pn, pp;
    mer_status s = mer_csv_load(&lc, labels);
    if (s == MER_OK) s = mer_csv_load(&pc, pred);
    if (s == MER_OK && (s = mer_csv_col(lc, p->name_col, &ln)) == MER_OK && (s = mer_csv_col(lc, p->label_col, &ll)) == MER_OK &&
        (s = mer_csv_col(pc, p->name_col, &pn)) == MER_OK) {
        if (p->pred_col) s = mer_csv_col(pc, p->pred_col, &pp);
        else if (mer_csv_col(pc, "pred", &pp) != MER_OK) s = mer_csv_col(pc, "discrete", &pp);
    }
    if (s) goto done;
    const int64_t nl = mer_csv_rows(lc), np = mer_csv_rows(pc);
    /* a clip twice in either file would be scored twice (or against either label): refused */
    if ((s = sorted_names(lc, ln, labels, "appears twice", &lr)) || (s = sorted_names(pc, pn, pred, "is predicted twice", &pr)))
        goto done;
    all = malloc((size_t)(nl + np + 1) * sizeof *all);
    truth = malloc((size_t)(np ? np : 1) * sizeof *truth);
    guess = malloc((size_t)(np ? np : 1) * sizeof *guess);
    if (!all || !truth || !guess) {
        s = mer__err(MER_ERR_NOMEM, "%s: out of memory", pred);
        goto done;
    }
    /* classes: sorted union of labels and predictions */
    int64_t na = 0;
    for (int64_t r = 0; r < nl; r++) all[na++] = mer_csv_cell(lc, r, ll);
    for (int64_t r = 0; r < np; r++) all[na++] = mer_csv_cell(pc, r, pp);
    qsort(all, (size_t)na, sizeof *all, cmp_str);
    const char *cls[MER_MAX_CLASSES];
    int32_t C = 0;
    for (int64_t k = 0; k < na; k++) {
        if (k && !strcmp(all[k], all[k - 1])) continue;
        if (C == MER_MAX_CLASSES) {
            s = mer__err(MER_ERR_UNSUPPORTED, "%s: more than %d classes", labels, MER_MAX_CLASSES);
            goto done;
        }
        cls[C++] = all[k];
    }
    int64_t n = 0, unlabeled = 0;
    for (int64_t r = 0; r < np; r++) {
        name_row key = {mer_csv_cell(pc, r, pn), 0};
        name_row *hit = bsearch(&key, lr, (size_t)nl, sizeof *lr, cmp_nr);
        if (!hit) {
            unlabeled++;
            continue;
        }
        const char *t = mer_csv_cell(lc, hit->row, ll), *g = mer_csv_cell(pc, r, pp);
        for (int32_t k = 0; k < C; k++) {
            if (!strcmp(cls[k], t)) truth[n] = k;
            if (!strcmp(cls[k], g)) guess[n] = k;
        }
        n++;
    }
    if (!n) {
        s = mer__err(MER_ERR_NOT_FOUND, "%s: no predicted clip has a label in %s", pred, labels);
        goto done;
    }
    if ((s = mer_metrics_compute(truth, guess, n, C, &out->metrics))) goto done;
    for (int32_t k = 0; k < C; k++)
        if (!(out->classes[k] = strdup(cls[k]))) {
            out->n_classes = k;
            s = mer__err(MER_ERR_NOMEM, "%s: out of memory", labels);
            goto done;
        }
    out->n_classes = C;
    out->n = n;
    out->unlabeled = unlabeled;
    out->labels = nl;
done:
    if (s) mer_eval_result_free(out);
    free(lr);
    free(pr);
    free(all);
    free(truth);
    free(guess);
    mer_csv_free(lc);
    mer_csv_free(pc);
    return s;
}
