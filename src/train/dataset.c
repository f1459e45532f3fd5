/*
 * dataset.c -- training data in memory: clip names, labels, groups, train-only flags and one
 * feature per modality (float32 rows, contiguous per modality), loaded from a labels CSV and
 * per-modality directories of <name>.npy (the MERTools layout) or built in memory. Also the
 * seeded (grouped) fold split, the batcher that gathers clips into contiguous rows, and LIST
 * files.
 */
#include "train/train.h"

#include <ctype.h>
#include <dirent.h>
#include <strings.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

struct mer_dataset {
    int32_t n_classes;
    char classes[MER_MAX_CLASSES][MER_NAME_MAX];
    int32_t n_mod;
    char mod[MER_MAX_MODALITIES][MER_NAME_MAX];
    int64_t dim[MER_MAX_MODALITIES];
    int32_t is_seq[MER_MAX_MODALITIES];
    int32_t dims_set[MER_MAX_MODALITIES];
    int64_t n, cap;
    char **names;
    int32_t *labels;
    char **groups;
    uint8_t *train_only;
    uint64_t *fold_mask;  /* train-only clips: bit f set = fold f trains on it (all bits: every
                             fold; fold-wise pseudo-labels set fewer) */
    float *feat[MER_MAX_MODALITIES];
    int64_t rows[MER_MAX_MODALITIES], rows_cap[MER_MAX_MODALITIES];
    int64_t *off[MER_MAX_MODALITIES]; /* (cap + 1) row offsets */
    char *source;                     /* the labels CSV it was loaded from (absolute), or NULL */
};

const char *mer__dataset_source(const mer_dataset *ds) { return ds->source; }

mer_dataset_params mer_dataset_default_params(void) {
    mer_dataset_params p;
    memset(&p, 0, sizeof p);
    p.name_col = "name";
    p.label_col = "emotion";
    return p;
}

/* ---- accessors ---------------------------------------------------------------------------- */

int64_t mer_dataset_count(const mer_dataset *ds) { return ds ? ds->n : 0; }
int32_t mer_dataset_n_classes(const mer_dataset *ds) { return ds->n_classes; }
const char *mer_dataset_class(const mer_dataset *ds, int32_t c) {
    return c >= 0 && c < ds->n_classes ? ds->classes[c] : NULL;
}
int32_t mer_dataset_n_modalities(const mer_dataset *ds) { return ds->n_mod; }
const char *mer_dataset_modality(const mer_dataset *ds, int32_t m) {
    return m >= 0 && m < ds->n_mod ? ds->mod[m] : NULL;
}
int64_t mer_dataset_dim(const mer_dataset *ds, int32_t m) { return ds->dim[m]; }
int mer_dataset_is_sequence(const mer_dataset *ds, int32_t m) { return ds->is_seq[m]; }
const char *mer_dataset_name(const mer_dataset *ds, int64_t i) { return ds->names[i]; }
int32_t mer_dataset_label(const mer_dataset *ds, int64_t i) { return ds->labels[i]; }
const char *mer_dataset_group(const mer_dataset *ds, int64_t i) { return ds->groups[i]; }
int mer__dataset_train_only(const mer_dataset *ds, int64_t i) { return ds->train_only[i]; }
uint64_t mer__dataset_fold_mask(const mer_dataset *ds, int64_t i) { return ds->fold_mask[i]; }
int mer__dataset_trains_in_fold(const mer_dataset *ds, int64_t i, int32_t f) {
    return ds->fold_mask[i] == MER__ALL_FOLDS || (f >= 0 && f < 64 && (ds->fold_mask[i] >> f & 1));
}

mer_status mer__dataset_set_fold_mask(mer_dataset *ds, int64_t i, uint64_t mask) {
    if (i < 0 || i >= ds->n || !ds->train_only[i] || !mask)
        return mer__err(MER_ERR_INVALID_ARG, "fold mask for clip %lld: needs a train-only clip and "
                        "at least one fold", (long long)i);
    ds->fold_mask[i] = mask;
    return MER_OK;
}

int64_t mer_dataset_find(const mer_dataset *ds, const char *name) {
    for (int64_t i = 0; i < ds->n; i++)
        if (!strcmp(ds->names[i], name)) return i;
    return -1;
}

const float *mer_dataset_feature(const mer_dataset *ds, int64_t i, int32_t m, int64_t *rows) {
    if (rows) *rows = 0;
    if (!ds || i < 0 || i >= ds->n || m < 0 || m >= ds->n_mod || !rows) return NULL;
    return mer__dataset_feat(ds, i, m, rows);
}

const float *mer__dataset_feat(const mer_dataset *ds, int64_t i, int32_t m, int64_t *rows) {
    *rows = ds->off[m][i + 1] - ds->off[m][i];
    return ds->feat[m] + ds->off[m][i] * ds->dim[m];
}

/* ---- construction ------------------------------------------------------------------------- */

static mer_status check_name(const char *what, const char *s) {
    size_t l = strlen(s);
    if (l == 0 || l >= MER_NAME_MAX)
        return mer__err(MER_ERR_INVALID_ARG, "%s name '%s' must have 1..%d characters", what, s,
                        MER_NAME_MAX - 1);
    return MER_OK;
}

mer_status mer_dataset_init(mer_dataset **out, const char *const *classes, int32_t n_classes,
                            const char *const *modalities, int32_t n_modalities) {
    *out = NULL;
    if (n_classes < 0 || n_classes > MER_MAX_CLASSES)
        return mer__err(MER_ERR_INVALID_ARG, "%d classes (at most %d)", n_classes, MER_MAX_CLASSES);
    if (n_modalities < 1 || n_modalities > MER_MAX_MODALITIES)
        return mer__err(MER_ERR_INVALID_ARG, "%d modalities (need 1..%d)", n_modalities,
                        MER_MAX_MODALITIES);
    mer_dataset *ds = calloc(1, sizeof *ds);
    if (!ds) return mer__err(MER_ERR_NOMEM, "out of memory");
    mer_status s = MER_OK;
    ds->n_classes = n_classes;
    for (int32_t c = 0; c < n_classes && s == MER_OK; c++) {
        s = check_name("class", classes[c]);
        if (s == MER_OK) snprintf(ds->classes[c], MER_NAME_MAX, "%s", classes[c]);
        for (int32_t k = 0; k < c && s == MER_OK; k++)
            if (!strcmp(classes[k], classes[c]))
                s = mer__err(MER_ERR_INVALID_ARG, "class '%s' listed twice", classes[c]);
    }
    ds->n_mod = n_modalities;
    for (int32_t m = 0; m < n_modalities && s == MER_OK; m++) {
        s = check_name("modality", modalities[m]);
        if (s == MER_OK) snprintf(ds->mod[m], MER_NAME_MAX, "%s", modalities[m]);
        for (int32_t k = 0; k < m && s == MER_OK; k++)
            if (!strcmp(modalities[k], modalities[m]))
                s = mer__err(MER_ERR_INVALID_ARG, "modality '%s' given twice", modalities[m]);
        if (s == MER_OK) {
            ds->off[m] = calloc(1, sizeof(int64_t));
            if (!ds->off[m]) s = mer__err(MER_ERR_NOMEM, "out of memory");
        }
    }
    if (s != MER_OK) {
        mer_dataset_free(ds);
        return s;
    }
    *out = ds;
    return MER_OK;
}

void mer_dataset_free(mer_dataset *ds) {
    if (!ds) return;
    for (int64_t i = 0; i < ds->n; i++) {
        free(ds->names[i]);
        free(ds->groups[i]);
    }
    free(ds->names);
    free(ds->groups);
    free(ds->source);
    free(ds->labels);
    free(ds->train_only);
    free(ds->fold_mask);
    for (int32_t m = 0; m < MER_MAX_MODALITIES; m++) {
        free(ds->feat[m]);
        free(ds->off[m]);
    }
    free(ds);
}

static mer_status grow_clips(mer_dataset *ds) {
    if (ds->n < ds->cap) return MER_OK;
    int64_t nc = ds->cap ? ds->cap * 2 : 64;
    char **nn = realloc(ds->names, (size_t)nc * sizeof *nn);
    if (nn) ds->names = nn;
    char **ng = realloc(ds->groups, (size_t)nc * sizeof *ng);
    if (ng) ds->groups = ng;
    int32_t *nl = realloc(ds->labels, (size_t)nc * sizeof *nl);
    if (nl) ds->labels = nl;
    uint8_t *nt = realloc(ds->train_only, (size_t)nc);
    if (nt) ds->train_only = nt;
    uint64_t *nf = realloc(ds->fold_mask, (size_t)nc * sizeof *nf);
    if (nf) ds->fold_mask = nf;
    if (!nn || !ng || !nl || !nt || !nf) return mer__err(MER_ERR_NOMEM, "out of memory");
    for (int32_t m = 0; m < ds->n_mod; m++) {
        int64_t *no = realloc(ds->off[m], (size_t)(nc + 1) * sizeof *no);
        if (!no) return mer__err(MER_ERR_NOMEM, "out of memory");
        ds->off[m] = no;
    }
    ds->cap = nc;
    return MER_OK;
}

/* Append `rows` rows of modality m (data may be NULL: reserve only, returns the destination). */
static float *append_rows(mer_dataset *ds, int32_t m, int64_t rows) {
    int64_t need;
    if (!mer__add_overflow(ds->rows[m], rows, &need)) return NULL;
    if (need > ds->rows_cap[m]) {
        int64_t nc = ds->rows_cap[m] ? ds->rows_cap[m] : 256;
        while (nc < need) nc *= 2;
        int64_t bytes;
        if (!mer__mul_overflow(nc, ds->dim[m] * (int64_t)sizeof(float), &bytes)) {
            mer__err(MER_ERR_NOMEM, "feature memory overflow");
            return NULL;
        }
        float *nf = realloc(ds->feat[m], (size_t)bytes);
        if (!nf) {
            mer__err(MER_ERR_NOMEM, "out of memory for features of %s", ds->mod[m]);
            return NULL;
        }
        ds->feat[m] = nf;
        ds->rows_cap[m] = nc;
    }
    float *dst = ds->feat[m] + ds->rows[m] * ds->dim[m];
    ds->rows[m] = need;
    return dst;
}

/* Shape check of one clip's feature for modality m: fixes dims on the first clip. */
static mer_status check_feat_shape(mer_dataset *ds, int32_t m, int32_t ndim, const int64_t *shape,
                                   const char *what, int64_t *rows) {
    if (ndim < 1 || ndim > 2)
        return mer__err(MER_ERR_SHAPE, "%s: expected a 1-D (D) or 2-D (T, D) feature, got rank %d",
                        what, ndim);
    int64_t d = shape[ndim - 1];
    int64_t t = ndim == 2 ? shape[0] : 1;
    if (d < 1 || t < 1)
        return mer__err(MER_ERR_SHAPE, "%s: empty feature (%lld rows of dimension %lld)", what,
                        (long long)t, (long long)d);
    if (!ds->dims_set[m]) {
        ds->dims_set[m] = 1;
        ds->dim[m] = d;
        ds->is_seq[m] = ndim == 2 && t > 1;
    } else if (d != ds->dim[m]) {
        return mer__err(MER_ERR_SHAPE, "%s: expected dimension %lld for modality %s, got %lld", what,
                        (long long)ds->dim[m], ds->mod[m], (long long)d);
    }
    if (!ds->is_seq[m] && t != 1) {
        /* a sequence among vectors: the modality becomes a sequence modality (T = 1 rows so far) */
        ds->is_seq[m] = 1;
    }
    *rows = t;
    return MER_OK;
}

static mer_status check_finite(const float *x, int64_t n, const char *what) {
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return mer__err(MER_ERR_NUMERIC, "%s: %s at element %lld", what,
                            isnan(x[i]) ? "NaN" : "Inf", (long long)i);
    return MER_OK;
}

static char *dupstr(const char *s) {
    size_t l = strlen(s) + 1;
    char *d = malloc(l);
    if (d) memcpy(d, s, l);
    return d;
}

static mer_status add_meta(mer_dataset *ds, const char *name, int32_t label, const char *group,
                           int train_only) {
    if (label < -1 || label >= ds->n_classes)
        return mer__err(MER_ERR_INVALID_ARG, "clip %s: label %d out of range (%d classes)", name,
                        label, ds->n_classes);
    mer_status s = grow_clips(ds);
    if (s != MER_OK) return s;
    ds->names[ds->n] = dupstr(name);
    ds->groups[ds->n] = group ? dupstr(group) : NULL;
    if (!ds->names[ds->n] || (group && !ds->groups[ds->n])) {
        free(ds->names[ds->n]);
        free(ds->groups[ds->n]);
        return mer__err(MER_ERR_NOMEM, "out of memory");
    }
    ds->labels[ds->n] = label;
    ds->train_only[ds->n] = train_only ? 1 : 0;
    ds->fold_mask[ds->n] = MER__ALL_FOLDS;
    return MER_OK;
}

mer_status mer_dataset_add(mer_dataset *ds, const char *name, int32_t label, const char *group,
                           int train_only, const mer_tensor *feats) {
    if (!ds || !name || !feats) return mer__err(MER_ERR_INVALID_ARG, "dataset_add: NULL argument");
    int64_t rows[MER_MAX_MODALITIES];
    char what[256];
    for (int32_t m = 0; m < ds->n_mod; m++) {
        snprintf(what, sizeof what, "clip %s, modality %s", name, ds->mod[m]);
        if (feats[m].dtype != MER_DTYPE_F32 || !mer_tensor_is_contiguous(&feats[m]))
            return mer__err(MER_ERR_DTYPE, "%s: need a contiguous f32 tensor", what);
        mer_status s = check_feat_shape(ds, m, feats[m].ndim, feats[m].shape, what, &rows[m]);
        if (s == MER_OK) s = check_finite(feats[m].data, rows[m] * ds->dim[m], what);
        if (s != MER_OK) return s;
    }
    mer_status s = add_meta(ds, name, label, group, train_only);
    if (s != MER_OK) return s;
    for (int32_t m = 0; m < ds->n_mod; m++) {
        float *dst = append_rows(ds, m, rows[m]);
        if (!dst) return MER_ERR_NOMEM;
        memcpy(dst, feats[m].data, (size_t)(rows[m] * ds->dim[m]) * sizeof(float));
        ds->off[m][ds->n + 1] = ds->rows[m];
    }
    ds->n++;
    return MER_OK;
}

mer_status mer_dataset_add_from(mer_dataset *ds, const mer_dataset *src, int64_t i,
                                int32_t label, int train_only) {
    if (i < 0 || i >= src->n) return mer__err(MER_ERR_INVALID_ARG, "clip index %lld out of range", (long long)i);
    if (src->n_mod != ds->n_mod)
        return mer__err(MER_ERR_SHAPE, "data sets have %d and %d modalities", src->n_mod, ds->n_mod);
    mer_tensor t[MER_MAX_MODALITIES];
    for (int32_t m = 0; m < ds->n_mod; m++) {
        int64_t rows;
        const float *x = mer__dataset_feat(src, i, m, &rows);
        int64_t shape[2] = {rows, src->dim[m]};
        if (src->is_seq[m])
            mer_tensor_view(&t[m], (void *)x, MER_DTYPE_F32, 2, shape);
        else
            mer_tensor_view(&t[m], (void *)x, MER_DTYPE_F32, 1, shape + 1);
    }
    return mer_dataset_add(ds, src->names[i], label, src->groups[i], train_only, t);
}

/* ---- loading ------------------------------------------------------------------------------ */

/* Labels equal after trimming blanks and ignoring ASCII case. */
static int same_label(const char *a, const char *b) {
    while (isspace((unsigned char)*a)) a++;
    while (isspace((unsigned char)*b)) b++;
    size_t na = strlen(a), nb = strlen(b);
    while (na && isspace((unsigned char)a[na - 1])) na--;
    while (nb && isspace((unsigned char)b[nb - 1])) nb--;
    return na == nb && strncasecmp(a, b, na) == 0;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static mer_status load_features(mer_dataset *ds, const mer_dataset_params *p) {
    char path[MER_PATH_CAP];
    /* every missing file first, reported together */
    for (int32_t m = 0; m < ds->n_mod; m++) {
        int64_t missing = 0;
        char list[1024];
        size_t lo = 0;
        list[0] = '\0';
        for (int64_t i = 0; i < ds->n; i++) {
            mer_status s = mer_name_path(path, sizeof path, p->modalities[m].dir, ds->names[i], ".npy",
                                         p->labels_csv ? p->labels_csv : "clip list", 0);
            if (s != MER_OK) return s;
            if (access(path, R_OK) == 0) continue;
            if (missing < 10 && lo + strlen(ds->names[i]) + 8 < sizeof list)
                lo += (size_t)snprintf(list + lo, sizeof list - lo, "%s%s", missing ? ", " : "",
                                       ds->names[i]);
            missing++;
        }
        if (missing)
            return mer__err(MER_ERR_NOT_FOUND, "%s: %lld clip%s ha%s no feature file in %s: %s%s",
                            ds->mod[m], (long long)missing, missing == 1 ? "" : "s",
                            missing == 1 ? "s" : "ve", p->modalities[m].dir, list,
                            missing > 10 ? ", ..." : "");
    }
    for (int32_t m = 0; m < ds->n_mod; m++) {
        ds->off[m][0] = 0;
        char first[4096] = "";
        for (int64_t i = 0; i < ds->n; i++) {
            mer_status s = mer_name_path(path, sizeof path, p->modalities[m].dir, ds->names[i], ".npy",
                                         NULL, 0);
            if (s != MER_OK) return s;
            float *data = NULL;
            int32_t nd = 0;
            int64_t shape[MER_MAX_DIMS];
            s = mer_npy_read(path, &data, &nd, shape);
            int64_t rows = 0;
            /* the dimension is set by the first file; when they differ either may be the wrong
             * one, so the message names both */
            if (s == MER_OK && ds->dims_set[m] && nd >= 1 && nd <= 2 && shape[nd - 1] != ds->dim[m])
                s = mer__err(MER_ERR_SHAPE, "%s: feature dimension %lld, but %s (the first clip of "
                             "modality %s) has %lld: one of the two files is not of this feature",
                             path, (long long)shape[nd - 1], first, ds->mod[m], (long long)ds->dim[m]);
            if (s == MER_OK && !first[0]) snprintf(first, sizeof first, "%s", path);
            if (s == MER_OK) s = check_feat_shape(ds, m, nd, shape, path, &rows);
            if (s == MER_OK) s = check_finite(data, rows * ds->dim[m], path);
            float *dst = s == MER_OK ? append_rows(ds, m, rows) : NULL;
            if (s == MER_OK && !dst) s = MER_ERR_NOMEM;
            if (s == MER_OK) memcpy(dst, data, (size_t)(rows * ds->dim[m]) * sizeof(float));
            free(data);
            if (s != MER_OK) return s;
            ds->off[m][i + 1] = ds->rows[m];
        }
    }
    return MER_OK;
}

mer_status mer_dataset_load(mer_dataset **out, const mer_dataset_params *p) {
    *out = NULL;
    if (!p || !p->modalities || p->n_modalities < 1)
        return mer__err(MER_ERR_INVALID_ARG, "no feature modality given");
    const char *mods[MER_MAX_MODALITIES];
    if (p->n_modalities > MER_MAX_MODALITIES)
        return mer__err(MER_ERR_INVALID_ARG, "%d modalities (at most %d)", p->n_modalities,
                        MER_MAX_MODALITIES);
    for (int32_t m = 0; m < p->n_modalities; m++) mods[m] = p->modalities[m].name;
    mer_status s;
    mer_dataset *ds = NULL;
    if (!p->labels_csv) {
        s = mer_dataset_init(&ds, p->classes, p->classes ? p->n_classes : 0, mods, p->n_modalities);
        for (int64_t i = 0; s == MER_OK && i < p->n_names; i++) {
            if ((s = mer_name_check(p->names[i], "clip list", i + 1)) != MER_OK) break;
            if (mer_dataset_find(ds, p->names[i]) >= 0)
                s = mer__err(MER_ERR_FORMAT, "clip '%s' listed twice", p->names[i]);
            else
                s = add_meta(ds, p->names[i], -1, NULL, 0);
            if (s == MER_OK) ds->n++;
        }
    } else {
        mer_csv *csv = NULL;
        s = mer_csv_load(&csv, p->labels_csv);
        if (s != MER_OK) return s;
        int32_t cn = -1, cl = -1, cg = -1;
        s = mer_csv_col(csv, p->name_col ? p->name_col : "name", &cn);
        if (s == MER_OK) s = mer_csv_col(csv, p->label_col ? p->label_col : "emotion", &cl);
        if (s == MER_OK && p->group_col) s = mer_csv_col(csv, p->group_col, &cg);
        int64_t rows = s == MER_OK ? mer_csv_rows(csv) : 0;
        /* the class list */
        const char *cls[MER_MAX_CLASSES];
        int32_t nc = 0;
        if (s == MER_OK && p->classes) {
            if (p->n_classes < 2)
                s = mer__err(MER_ERR_INVALID_ARG, "need at least 2 classes, got %d", p->n_classes);
            for (int32_t c = 0; c < p->n_classes && s == MER_OK; c++) cls[nc++] = p->classes[c];
        } else if (s == MER_OK) {
            const char **all = malloc((size_t)(rows ? rows : 1) * sizeof *all);
            if (!all) s = mer__err(MER_ERR_NOMEM, "out of memory");
            for (int64_t r = 0; s == MER_OK && r < rows; r++) all[r] = mer_csv_cell(csv, r, cl);
            if (s == MER_OK) qsort(all, (size_t)rows, sizeof *all, cmp_str);
            for (int64_t r = 0; s == MER_OK && r < rows; r++) {
                if (r && !strcmp(all[r], all[r - 1])) continue;
                if (!all[r][0]) {
                    s = mer__err(MER_ERR_FORMAT, "%s: empty label in column '%s'", p->labels_csv,
                                 p->label_col ? p->label_col : "emotion");
                } else if (nc == MER_MAX_CLASSES) {
                    s = mer__err(MER_ERR_FORMAT, "%s: more than %d distinct labels", p->labels_csv,
                                 MER_MAX_CLASSES);
                } else {
                    cls[nc++] = all[r];
                }
            }
            if (s == MER_OK && nc < 2)
                s = mer__err(MER_ERR_FORMAT, "%s: %d distinct label%s (need at least 2 classes)",
                             p->labels_csv, nc, nc == 1 ? "" : "s");
            /* " sad" or "NEUTRAL" beside "sad" and "neutral" would become classes of their own */
            for (int32_t a = 0; s == MER_OK && a < nc; a++)
                for (int32_t b = 0; b < nc; b++) {
                    int blank = isspace((unsigned char)cls[a][0]) ||
                                (cls[a][0] && isspace((unsigned char)cls[a][strlen(cls[a]) - 1]));
                    if (a == b ? !blank : !same_label(cls[a], cls[b])) continue;
                    if (a != b && a > b) continue;
                    int64_t ka = 0, kb = 0;
                    for (int64_t r = 0; r < rows; r++) {
                        const char *l = mer_csv_cell(csv, r, cl);
                        ka += !strcmp(l, cls[a]);
                        kb += !strcmp(l, cls[b]);
                    }
                    if (a == b)
                        MER_LOG_W("%s: label '%s' (%lld clip%s) has spaces around it, so it is a class of "
                                  "its own; fix the file or give --classes", p->labels_csv, cls[a],
                                  (long long)ka, ka == 1 ? "" : "s");
                    else
                        MER_LOG_W("%s: labels '%s' (%lld clip%s) and '%s' (%lld clip%s) differ only in "
                                  "case or spaces, so they are two classes; fix the file or give "
                                  "--classes", p->labels_csv, cls[a], (long long)ka, ka == 1 ? "" : "s",
                                  cls[b], (long long)kb, kb == 1 ? "" : "s");
                }
            if (s == MER_OK) s = mer_dataset_init(&ds, cls, nc, mods, p->n_modalities);
            free(all);
        }
        if (s == MER_OK && !ds) s = mer_dataset_init(&ds, cls, nc, mods, p->n_modalities);
        /* optional subset filter */
        const char **filt = NULL;
        if (s == MER_OK && p->names && p->n_names > 0) {
            filt = malloc((size_t)p->n_names * sizeof *filt);
            if (!filt) s = mer__err(MER_ERR_NOMEM, "out of memory");
            for (int64_t i = 0; s == MER_OK && i < p->n_names; i++) filt[i] = p->names[i];
            if (s == MER_OK) qsort(filt, (size_t)p->n_names, sizeof *filt, cmp_str);
        }
        int64_t count[MER_MAX_CLASSES] = {0};
        const char **seen = s == MER_OK ? malloc((size_t)(rows ? rows : 1) * sizeof *seen) : NULL;
        if (s == MER_OK && !seen) s = mer__err(MER_ERR_NOMEM, "out of memory");
        for (int64_t r = 0; s == MER_OK && r < rows; r++) {
            const char *name = mer_csv_cell(csv, r, cn);
            const char *lab = mer_csv_cell(csv, r, cl);
            if (filt && !bsearch(&name, filt, (size_t)p->n_names, sizeof *filt, cmp_str)) continue;
            /* a clip name becomes a feature file name (and prediction rows, run directories) */
            if ((s = mer_name_check(name, p->labels_csv, r + 2)) != MER_OK) break;
            int32_t y = -1;
            for (int32_t c = 0; c < ds->n_classes; c++)
                if (!strcmp(ds->classes[c], lab)) y = c;
            if (y < 0) {
                s = mer__err(MER_ERR_FORMAT, "%s: row %lld (%s): label '%s' is not one of the classes",
                             p->labels_csv, (long long)r + 2, name, lab);
                break;
            }
            seen[ds->n] = name;
            s = add_meta(ds, name, y, cg >= 0 ? mer_csv_cell(csv, r, cg) : NULL, 0);
            if (s != MER_OK) break;
            ds->n++;
            count[y]++;
        }
        if (s == MER_OK) {
            qsort(seen, (size_t)ds->n, sizeof *seen, cmp_str);
            for (int64_t i = 1; i < ds->n && s == MER_OK; i++)
                if (!strcmp(seen[i], seen[i - 1]))
                    s = mer__err(MER_ERR_FORMAT, "%s: clip '%s' appears twice", p->labels_csv, seen[i]);
        }
        for (int32_t c = 0; s == MER_OK && c < ds->n_classes; c++)
            if (count[c] == 0)
                s = mer__err(MER_ERR_FORMAT, "%s: class '%s' has no examples", p->labels_csv,
                             ds->classes[c]);
        free(seen);
        free(filt);
        mer_csv_free(csv);
    }
    if (s == MER_OK && ds->n == 0)
        s = mer__err(MER_ERR_INVALID_ARG, "%s: no clips", p->labels_csv ? p->labels_csv : "list");
    if (s == MER_OK) s = load_features(ds, p);
    if (s == MER_OK && p->labels_csv) ds->source = realpath(p->labels_csv, NULL);
    if (s != MER_OK) {
        mer_dataset_free(ds);
        return s;
    }
    *out = ds;
    return MER_OK;
}

/* ---- LIST files --------------------------------------------------------------------------- */

mer_status mer_read_name_list(const char *path, char ***names, int64_t *n) {
    int64_t *line = NULL;
    mer_status s = mer__read_lines_n(path, names, &line, n);
    if (s != MER_OK) return s;
    /* a "name" header line, as in a labels CSV's first column */
    int64_t skip = *n > 0 && !strcmp((*names)[0], "name");
    if (skip) {
        memmove(*names, *names + 1, (size_t)(*n - 1) * sizeof **names);
        (*n)--;
    }
    /* clip names become file names (features, crops, runs): checked here, naming the line */
    for (int64_t i = 0; s == MER_OK && i < *n; i++) s = mer_name_check((*names)[i], path, line[i + skip]);
    free(line);
    if (s != MER_OK) {
        free(*names);
        *names = NULL;
        *n = 0;
        return s;
    }
    if (*n == 0) {
        free(*names);
        *names = NULL;
        return mer__err(MER_ERR_FORMAT, "%s: no clip names", path);
    }
    return MER_OK;
}

mer_status mer_list_feature_names(const char *dir, char ***names, int64_t *n) {
    if (!dir || !names || !n) return mer__err(MER_ERR_INVALID_ARG, "mer_list_feature_names: bad arguments");
    *names = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (!d) return mer__err(MER_ERR_IO, "%s: cannot open the feature directory: %s", dir, strerror(errno));
    /* the names one after another in text, then one block of pointers and text */
    char *text = NULL;
    size_t len = 0, cap = 0, cnt = 0;
    mer_status s = MER_OK;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (l <= 4 || strcmp(e->d_name + l - 4, ".npy") != 0) continue;
        if (len + l - 3 > cap) {
            size_t nc = cap ? 2 * cap : 4096;
            while (nc < len + l - 3) nc *= 2;
            char *t = realloc(text, nc);
            if (!t) {
                s = mer__err(MER_ERR_NOMEM, "%s: out of memory listing the directory", dir);
                break;
            }
            text = t;
            cap = nc;
        }
        memcpy(text + len, e->d_name, l - 4);
        text[len + l - 4] = '\0';
        len += l - 3;
        cnt++;
    }
    closedir(d);
    if (s == MER_OK && !cnt) s = mer__err(MER_ERR_NOT_FOUND, "%s: no .npy files", dir);
    char **blk = NULL;
    if (s == MER_OK && !(blk = malloc(cnt * sizeof(char *) + len)))
        s = mer__err(MER_ERR_NOMEM, "%s: out of memory listing the directory", dir);
    if (s != MER_OK) {
        free(text);
        return s;
    }
    char *p = (char *)(blk + cnt);
    memcpy(p, text, len);
    free(text);
    for (size_t i = 0; i < cnt; i++) {
        blk[i] = p;
        p += strlen(p) + 1;
    }
    qsort(blk, cnt, sizeof *blk, cmp_str);
    *names = blk;
    *n = (int64_t)cnt;
    return MER_OK;
}

/* ---- folds -------------------------------------------------------------------------------- */

mer_status mer__make_folds(int32_t *fold, const mer_dataset *ds, int32_t k, uint64_t seed) {
    int64_t n = ds->n;
    mer__rng rng;
    mer__rng_seed(&rng, seed ^ 0x5f0d5eedULL);
    int has_groups = 0;
    for (int64_t i = 0; i < n; i++) has_groups |= ds->groups[i] != NULL;
    int64_t *idx = malloc((size_t)(n ? n : 1) * sizeof *idx);
    if (!idx) return mer__err(MER_ERR_NOMEM, "out of memory");
    int64_t m = 0;
    for (int64_t i = 0; i < n; i++) {
        fold[i] = -1;
        if (!ds->train_only[i] && ds->labels[i] >= 0) idx[m++] = i;
    }
    mer_status s = MER_OK;
    if (!has_groups) {
        if (k > m) s = mer__err(MER_ERR_INVALID_ARG, "%d folds but only %lld labeled clips", k, (long long)m);
        for (int64_t i = m - 1; s == MER_OK && i > 0; i--) {
            int64_t j = (int64_t)(mer__rng_u64(&rng) % (uint64_t)(i + 1));
            int64_t t = idx[i]; idx[i] = idx[j]; idx[j] = t;
        }
        for (int64_t i = 0; s == MER_OK && i < m; i++) fold[idx[i]] = (int32_t)(i % k);
        free(idx);
        return s;
    }
    /* groups: distinct group ids in first-seen order (clip order), shuffled, then largest first
     * onto the fold with the fewest clips (lowest index on ties) */
    int64_t *gid = malloc((size_t)(n ? n : 1) * sizeof *gid);
    int64_t *gsize = calloc((size_t)(m ? m : 1), sizeof *gsize);
    int64_t *gorder = malloc((size_t)(m ? m : 1) * sizeof *gorder);
    int64_t *grep = malloc((size_t)(m ? m : 1) * sizeof *grep);
    int64_t fsize[1024];
    if (!gid || !gsize || !gorder || !grep) s = mer__err(MER_ERR_NOMEM, "out of memory");
    if (k > 1024) s = mer__err(MER_ERR_INVALID_ARG, "%d folds (at most 1024)", k);
    int64_t ng = 0;
    for (int64_t a = 0; s == MER_OK && a < m; a++) {
        int64_t i = idx[a];
        const char *g = ds->groups[i] ? ds->groups[i] : "";
        int64_t found = -1;
        for (int64_t q = 0; q < ng; q++) {
            const char *h = ds->groups[grep[q]] ? ds->groups[grep[q]] : "";
            if (!strcmp(g, h)) { found = q; break; }
        }
        if (found < 0) { grep[ng] = i; found = ng++; }
        gid[i] = found;
        gsize[found]++;
    }
    if (s == MER_OK && k > ng)
        s = mer__err(MER_ERR_INVALID_ARG, "%d folds but only %lld groups", k, (long long)ng);
    if (s == MER_OK) {
        for (int64_t q = 0; q < ng; q++) gorder[q] = q;
        for (int64_t q = ng - 1; q > 0; q--) {
            int64_t j = (int64_t)(mer__rng_u64(&rng) % (uint64_t)(q + 1));
            int64_t t = gorder[q]; gorder[q] = gorder[j]; gorder[j] = t;
        }
        /* stable insertion sort by size, descending (keeps the shuffled order among equals) */
        for (int64_t a = 1; a < ng; a++) {
            int64_t v = gorder[a], b = a;
            while (b > 0 && gsize[gorder[b - 1]] < gsize[v]) { gorder[b] = gorder[b - 1]; b--; }
            gorder[b] = v;
        }
        int32_t *gfold = (int32_t *)grep; /* reuse: groups' folds */
        for (int32_t f = 0; f < k; f++) fsize[f] = 0;
        int32_t *tmp = malloc((size_t)(ng ? ng : 1) * sizeof *tmp);
        if (!tmp) s = mer__err(MER_ERR_NOMEM, "out of memory");
        for (int64_t a = 0; s == MER_OK && a < ng; a++) {
            int32_t best = 0;
            for (int32_t f = 1; f < k; f++) if (fsize[f] < fsize[best]) best = f;
            tmp[gorder[a]] = best;
            fsize[best] += gsize[gorder[a]];
        }
        for (int64_t a = 0; s == MER_OK && a < m; a++) fold[idx[a]] = tmp[gid[idx[a]]];
        (void)gfold;
        free(tmp);
    }
    free(idx);
    free(gid);
    free(gsize);
    free(gorder);
    free(grep);
    return s;
}

/* ---- batches ------------------------------------------------------------------------------ */

mer_status mer__batcher_fill(mer__batcher *bt, const mer_dataset *ds, const int64_t *idx,
                             int64_t n) {
    if (n > bt->cap_n) {
        int32_t *nl = realloc(bt->labels, (size_t)n * sizeof *nl);
        if (!nl) return mer__err(MER_ERR_NOMEM, "out of memory");
        bt->labels = nl;
        for (int32_t m = 0; m < ds->n_mod; m++) {
            int64_t *no = realloc(bt->offs[m], (size_t)(n + 1) * sizeof *no);
            if (!no) return mer__err(MER_ERR_NOMEM, "out of memory");
            bt->offs[m] = no;
        }
        bt->cap_n = n;
    }
    mer__batch *b = &bt->b;
    b->n = n;
    b->n_mod = ds->n_mod;
    int has_label = 1;
    for (int64_t i = 0; i < n; i++) {
        bt->labels[i] = ds->labels[idx[i]];
        if (bt->labels[i] < 0) has_label = 0;
    }
    b->y = has_label ? bt->labels : NULL;
    for (int32_t m = 0; m < ds->n_mod; m++) {
        int64_t d = ds->dim[m], rows = 0;
        for (int64_t i = 0; i < n; i++) rows += ds->off[m][idx[i] + 1] - ds->off[m][idx[i]];
        if (rows * d > bt->cap[m]) {
            mer__free(bt->buf[m]);
            bt->buf[m] = mer__alloc((size_t)(rows * d) * sizeof(float));
            if (!bt->buf[m]) { bt->cap[m] = 0; return mer__err(MER_ERR_NOMEM, "batch: out of memory"); }
            bt->cap[m] = rows * d;
        }
        int64_t r = 0;
        bt->offs[m][0] = 0;
        for (int64_t i = 0; i < n; i++) {
            int64_t t;
            const float *src = mer__dataset_feat(ds, idx[i], m, &t);
            memcpy(bt->buf[m] + r * d, src, (size_t)(t * d) * sizeof(float));
            r += t;
            bt->offs[m][i + 1] = r;
        }
        b->x[m] = bt->buf[m];
        b->off[m] = ds->is_seq[m] ? bt->offs[m] : NULL;
        b->dim[m] = d;
    }
    return MER_OK;
}

void mer__batcher_free(mer__batcher *bt) {
    for (int32_t m = 0; m < MER_MAX_MODALITIES; m++) {
        mer__free(bt->buf[m]);
        free(bt->offs[m]);
    }
    free(bt->labels);
    memset(bt, 0, sizeof *bt);
}

mer_status mer__dataset_select(mer_dataset **out, const mer_dataset *ds, const int32_t *map,
                               int32_t n_map) {
    *out = NULL;
    const char *cls[MER_MAX_CLASSES], *mods[MER_MAX_MODALITIES];
    for (int32_t c = 0; c < ds->n_classes; c++) cls[c] = ds->classes[c];
    for (int32_t m = 0; m < n_map; m++) mods[m] = ds->mod[map[m]];
    mer_dataset *o = NULL;
    mer_status s = mer_dataset_init(&o, cls, ds->n_classes, mods, n_map);
    mer_tensor t[MER_MAX_MODALITIES];
    for (int64_t i = 0; s == MER_OK && i < ds->n; i++) {
        for (int32_t m = 0; m < n_map; m++) {
            int64_t rows;
            const float *x = mer__dataset_feat(ds, i, map[m], &rows);
            int64_t shape[2] = {rows, ds->dim[map[m]]};
            if (ds->is_seq[map[m]])
                mer_tensor_view(&t[m], (void *)x, MER_DTYPE_F32, 2, shape);
            else
                mer_tensor_view(&t[m], (void *)x, MER_DTYPE_F32, 1, shape + 1);
        }
        s = mer_dataset_add(o, ds->names[i], ds->labels[i], ds->groups[i], ds->train_only[i], t);
        if (s == MER_OK) o->fold_mask[i] = ds->fold_mask[i];
    }
    if (s != MER_OK) {
        mer_dataset_free(o);
        return s;
    }
    *out = o;
    return MER_OK;
}

/* ---- test-time adaptation ----------------------------------------------------------------- */

mer_status mer_dataset_adapt(mer_dataset *ds, const char *const *groups, int32_t min_clips,
                             int64_t *n_unadapted) {
    return mer_dataset_adapt_ref(ds, groups, NULL, min_clips, n_unadapted);
}

mer_status mer_dataset_adapt_ref(mer_dataset *ds, const char *const *groups, const uint8_t *ref,
                                 int32_t min_clips, int64_t *n_unadapted) {
    if (!ds || !groups || min_clips < 2)
        return mer__err(MER_ERR_INVALID_ARG, "adapt: NULL argument or min_clips < 2");
    if (n_unadapted) *n_unadapted = 0;
    const int64_t n = ds->n;
    uint8_t *done = calloc((size_t)(n > 0 ? n : 1), 1);
    int64_t *members = malloc((size_t)(n > 0 ? n : 1) * sizeof(int64_t));
    double *mean = NULL, *var = NULL;
    int64_t Dmax = 1;
    for (int32_t m = 0; m < ds->n_mod; m++)
        if (ds->dim[m] > Dmax) Dmax = ds->dim[m];
    mean = malloc((size_t)Dmax * sizeof(double));
    var = malloc((size_t)Dmax * sizeof(double));
    mer_status s = done && members && mean && var ? MER_OK : mer__err(MER_ERR_NOMEM, "adapt: out of memory");
    for (int64_t i = 0; !s && i < n; i++) {
        if (done[i]) continue;
        if (!groups[i]) {
            s = mer__err(MER_ERR_INVALID_ARG, "adapt: clip %s has no group", ds->names[i]);
            break;
        }
        int64_t k = 0;
        for (int64_t j = i; j < n; j++)
            if (!done[j] && groups[j] && !strcmp(groups[j], groups[i])) {
                members[k++] = j;
                done[j] = 1;
            }
        int64_t k_ref = 0; /* the members that give the statistics */
        for (int64_t q = 0; q < k; q++) k_ref += !ref || ref[members[q]];
        if (k_ref < min_clips) { /* too few clips to estimate a group's statistics */
            if (n_unadapted) *n_unadapted += k;
            continue;
        }
        for (int32_t m = 0; m < ds->n_mod; m++) {
            const int64_t D = ds->dim[m];
            int64_t rows = 0;
            for (int64_t d = 0; d < D; d++) mean[d] = var[d] = 0;
            /* every row of the group's reference clips (frames too, for sequence features) */
            for (int64_t q = 0; q < k; q++) {
                if (ref && !ref[members[q]]) continue;
                for (int64_t r = ds->off[m][members[q]]; r < ds->off[m][members[q] + 1]; r++, rows++)
                    for (int64_t d = 0; d < D; d++) mean[d] += ds->feat[m][r * D + d];
            }
            if (rows == 0) continue;
            for (int64_t d = 0; d < D; d++) mean[d] /= (double)rows;
            for (int64_t q = 0; q < k; q++) {
                if (ref && !ref[members[q]]) continue;
                for (int64_t r = ds->off[m][members[q]]; r < ds->off[m][members[q] + 1]; r++)
                    for (int64_t d = 0; d < D; d++) {
                        double v = ds->feat[m][r * D + d] - mean[d];
                        var[d] += v * v;
                    }
            }
            /* population std, as mer_group_standardize and the LOSO evaluation; a constant
             * column becomes 0 */
            for (int64_t d = 0; d < D; d++) var[d] = sqrt(var[d] / (double)rows);
            for (int64_t q = 0; q < k; q++)
                for (int64_t r = ds->off[m][members[q]]; r < ds->off[m][members[q] + 1]; r++)
                    for (int64_t d = 0; d < D; d++) {
                        float *x = &ds->feat[m][r * D + d];
                        *x = var[d] > 1e-12 ? (float)((*x - mean[d]) / var[d]) : 0.0f;
                    }
        }
    }
    free(done);
    free(members);
    free(mean);
    free(var);
    return s;
}
