/*
 * prior.c -- class priors at test time: posterior correction for a known test prior, EM
 * estimation of an unknown one, priors CSV files, and the combination of several runs' class
 * probabilities (the `mer vote` ensemble).
 *
 * A classifier trained on class prior pi_train outputs p(y|x) = p(x|y) pi_train(y) / p(x). If
 * the test set has another prior pi_test but the same class-conditional densities p(x|y), the
 * Bayes posterior there is p(y|x) pi_test(y)/pi_train(y), renormalised (Saerens, Latinne and
 * Decaestecker, "Adjusting the outputs of a classifier to new a priori probabilities", Neural
 * Computation 14, 2002). When pi_test is unknown, their EM alternates that correction (E step)
 * with pi_test = mean of the corrected posteriors over the test set (M step); it is the maximum
 * likelihood estimate of the mixture weights with p(x|y) held fixed.
 */
#include "internal.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* Priors must be finite, non-negative, with a positive sum; a zero train prior makes the ratio
 * undefined. */
static mer_status check_prior(const double *p, int32_t c, const char *what, int strictly_pos) {
    double s = 0;
    for (int32_t j = 0; j < c; j++) {
        if (!isfinite(p[j]) || p[j] < 0 || (strictly_pos && p[j] <= 0))
            return mer__err(MER_ERR_INVALID_ARG, "%s prior of class %d is %g (want %s)", what, j,
                            p[j], strictly_pos ? "> 0" : ">= 0");
        s += p[j];
    }
    if (!(s > 0)) return mer__err(MER_ERR_INVALID_ARG, "%s priors sum to 0", what);
    return MER_OK;
}

mer_prior_em_params mer_prior_em_default_params(void) {
    mer_prior_em_params p = {.tol = 1e-6, .max_iter = 1000, .floor = 1e-6, .collapse = 0.99};
    return p;
}

/* One row: q_j = p_j w_j / sum_k p_k w_k. A row whose weighted mass is 0 (all probability on
 * classes with weight 0) is left as the uniform distribution over the classes with weight > 0,
 * which is what the limit of a vanishing weight gives. */
static void correct_row(float *q, const float *p, const double *w, int32_t c) {
    double s = 0;
    for (int32_t j = 0; j < c; j++) s += (double)p[j] * w[j];
    if (s > 0) {
        for (int32_t j = 0; j < c; j++) q[j] = (float)((double)p[j] * w[j] / s);
        return;
    }
    int32_t nz = 0;
    for (int32_t j = 0; j < c; j++) nz += w[j] > 0;
    for (int32_t j = 0; j < c; j++) q[j] = (w[j] > 0 && nz) ? 1.0f / (float)nz : 0.0f;
}

mer_status mer_prior_correct(float *probs, int64_t n, int32_t c, const double *pi_train,
                             const double *pi_test) {
    if (!probs || !pi_train || !pi_test || n < 0 || c < 1)
        return mer__err(MER_ERR_INVALID_ARG, "mer_prior_correct: bad arguments (n %lld, c %d)",
                        (long long)n, c);
    mer_status s = check_prior(pi_train, c, "train", 1);
    if (s == MER_OK) s = check_prior(pi_test, c, "test", 0);
    if (s != MER_OK) return s;
    double *w = mer__alloc((size_t)c * sizeof *w);
    if (!w) return MER_ERR_NOMEM;
    double st = 0, ss = 0;
    for (int32_t j = 0; j < c; j++) st += pi_train[j], ss += pi_test[j];
    for (int32_t j = 0; j < c; j++) w[j] = (pi_test[j] / ss) / (pi_train[j] / st);
    for (int64_t i = 0; i < n; i++) {
        float *row = probs + i * c;
        for (int32_t j = 0; j < c; j++)
            if (!isfinite(row[j]) || row[j] < 0) {
                mer__free(w);
                return mer__err(MER_ERR_NUMERIC, "probability row %lld class %d is %g",
                                (long long)i, j, row[j]);
            }
        correct_row(row, row, w, c);
    }
    mer__free(w);
    return MER_OK;
}

mer_status mer_prior_estimate_em(const float *probs, int64_t n, int32_t c, const double *pi_train,
                                 const mer_prior_em_params *params, double *pi_test,
                                 int32_t *iters) {
    mer_prior_em_params def = mer_prior_em_default_params();
    const mer_prior_em_params *p = params ? params : &def;
    if (!pi_test || !probs || !pi_train || n < 1 || c < 1 || p->max_iter < 1 || !(p->tol > 0))
        return mer__err(MER_ERR_INVALID_ARG,
                        "mer_prior_estimate_em: bad arguments (n %lld, c %d, max_iter %d)",
                        (long long)n, c, p->max_iter);
    mer_status s = check_prior(pi_train, c, "train", 1);
    if (s != MER_OK) return s;
    for (int64_t i = 0; i < n * c; i++)
        if (!isfinite(probs[i]) || probs[i] < 0)
            return mer__err(MER_ERR_NUMERIC, "probability row %lld class %d is %g",
                            (long long)(i / c), (int)(i % c), probs[i]);
    double *tr = mer__alloc((size_t)c * sizeof *tr);
    double *cur = mer__alloc((size_t)c * sizeof *cur);
    double *acc = mer__alloc((size_t)c * sizeof *acc);
    double *w = mer__alloc((size_t)c * sizeof *w);
    float *q = mer__alloc((size_t)c * sizeof *q);
    if (!tr || !cur || !acc || !w || !q) {
        mer__free(tr), mer__free(cur), mer__free(acc), mer__free(w), mer__free(q);
        return MER_ERR_NOMEM;
    }
    double st = 0;
    for (int32_t j = 0; j < c; j++) st += pi_train[j];
    for (int32_t j = 0; j < c; j++) tr[j] = pi_train[j] / st, cur[j] = tr[j];
    int32_t it = 0;
    double delta = INFINITY;
    while (it < p->max_iter && delta > p->tol) {
        /* The floor keeps a class from being absorbed at exactly 0, from which EM cannot leave
         * (its ratio would stay 0 in every later E step). */
        for (int32_t j = 0; j < c; j++) w[j] = fmax(cur[j], p->floor) / tr[j];
        memset(acc, 0, (size_t)c * sizeof *acc);
        for (int64_t i = 0; i < n; i++) {
            correct_row(q, probs + i * c, w, c);
            for (int32_t j = 0; j < c; j++) acc[j] += q[j];
        }
        delta = 0;
        double sum = 0;
        for (int32_t j = 0; j < c; j++) sum += acc[j];
        for (int32_t j = 0; j < c; j++) {
            double v = sum > 0 ? acc[j] / sum : tr[j];
            delta = fmax(delta, fabs(v - cur[j]));
            cur[j] = v;
        }
        it++;
    }
    int32_t top = 0;
    for (int32_t j = 1; j < c; j++)
        if (cur[j] > cur[top]) top = j;
    if (c >= 2 && p->collapse < 1 && cur[top] > p->collapse) {
        MER_LOG_W("prior EM: the estimate collapsed onto class %d (%.4f of the test set), which would "
                  "predict it for every clip; using the training prior instead", top, cur[top]);
        memcpy(cur, tr, (size_t)c * sizeof *cur);
    }
    memcpy(pi_test, cur, (size_t)c * sizeof *cur);
    if (iters) *iters = it;
    if (delta > p->tol)
        MER_LOG_W("prior EM: no convergence after %d iterations (last change %.3g > tol %.3g)",
                  it, delta, p->tol);
    mer__free(tr), mer__free(cur), mer__free(acc), mer__free(w), mer__free(q);
    return MER_OK;
}

mer_status mer_prior_read_csv(const char *path, const char *const *classes, int32_t c,
                              double *prior) {
    if (!path || !classes || c < 1 || !prior)
        return mer__err(MER_ERR_INVALID_ARG, "mer_prior_read_csv: bad arguments");
    mer_csv *csv = NULL;
    mer_status s = mer_csv_load(&csv, path);
    if (s != MER_OK) return s;
    int32_t cc = -1, cp = -1;
    if ((s = mer_csv_col(csv, "class", &cc)) != MER_OK || (s = mer_csv_col(csv, "prior", &cp)) != MER_OK) {
        mer_csv_free(csv);
        return s;
    }
    uint8_t *seen = mer__calloc((size_t)c, 1);
    if (!seen) {
        mer_csv_free(csv);
        return MER_ERR_NOMEM;
    }
    int64_t rows = mer_csv_rows(csv);
    for (int64_t r = 0; r < rows && s == MER_OK; r++) {
        const char *name = mer_csv_cell(csv, r, cc);
        const char *val = mer_csv_cell(csv, r, cp);
        int32_t j = 0;
        while (j < c && strcmp(classes[j], name ? name : "") != 0) j++;
        char *end = NULL;
        double v = val ? strtod(val, &end) : NAN;
        if (j == c)
            s = mer__err(MER_ERR_FORMAT, "%s: row %lld: class '%s' is not one of the run's %d classes",
                         path, (long long)r + 2, name ? name : "", c);
        else if (seen[j])
            s = mer__err(MER_ERR_FORMAT, "%s: row %lld: class '%s' listed twice", path,
                         (long long)r + 2, name);
        else if (!val || end == val || *end != '\0' || !isfinite(v) || v < 0)
            s = mer__err(MER_ERR_FORMAT, "%s: row %lld: prior '%s' of class '%s' is not a number >= 0",
                         path, (long long)r + 2, val ? val : "", name);
        else {
            seen[j] = 1;
            prior[j] = v;
        }
    }
    double sum = 0;
    for (int32_t j = 0; j < c && s == MER_OK; j++) {
        if (!seen[j]) s = mer__err(MER_ERR_FORMAT, "%s: class '%s' has no prior", path, classes[j]);
        sum += prior[j];
    }
    /* Percentages or counts are as clear as fractions; only an all-zero file is meaningless. */
    if (s == MER_OK && !(sum > 0)) s = mer__err(MER_ERR_FORMAT, "%s: priors sum to 0", path);
    if (s == MER_OK)
        for (int32_t j = 0; j < c; j++) prior[j] /= sum;
    mer__free(seen);
    mer_csv_free(csv);
    return s;
}

mer_status mer_vote_combine(const float *const *probs, int32_t runs, int64_t n, int32_t c,
                            mer_vote_mode mode, float *out) {
    if (!out || !probs || runs < 1 || n < 0 || c < 1 ||
        (mode != MER_VOTE_MEAN && mode != MER_VOTE_MAJORITY))
        return mer__err(MER_ERR_INVALID_ARG, "mer_vote_combine: bad arguments (runs %d, c %d)",
                        runs, c);
    for (int64_t i = 0; i < n; i++) {
        float *o = out + i * c;
        for (int32_t j = 0; j < c; j++) {
            double m = 0;
            for (int32_t r = 0; r < runs; r++) m += probs[r][i * c + j];
            o[j] = (float)(m / runs);
        }
        if (mode == MER_VOTE_MEAN) continue;
        /* Majority: vote fractions; a tie between classes is broken by the mean probability,
         * which a tiny epsilon share adds without changing any vote count's order. */
        double votes[256];
        double *v = c <= 256 ? votes : mer__calloc((size_t)c, sizeof *v);
        if (!v) return MER_ERR_NOMEM;
        memset(v, 0, (size_t)c * sizeof *v);
        for (int32_t r = 0; r < runs; r++) {
            const float *p = probs[r] + i * c;
            int32_t b = 0;
            for (int32_t j = 1; j < c; j++)
                if (p[j] > p[b]) b = j;
            v[b] += 1;
        }
        double tot = 0;
        for (int32_t j = 0; j < c; j++) {
            v[j] = v[j] / runs + 1e-4 * o[j] / runs;
            tot += v[j];
        }
        for (int32_t j = 0; j < c; j++) o[j] = (float)(v[j] / tot);
        if (v != votes) mer__free(v);
    }
    return MER_OK;
}

/* The training prior of a run: config.json "class_counts" (every clip the final models trained
 * on, pseudo-labelled ones included) when the trainer recorded it, else the label column of
 * oof.csv (the labeled clips). */
mer_status mer_prior_from_run(const char *rundir, const char *const *classes, int32_t c,
                              double *prior) {
    if (!rundir || !classes || c < 1 || c > MER_MAX_CLASSES || !prior)
        return mer__err(MER_ERR_INVALID_ARG, "mer_prior_from_run: bad arguments");
    char path[MER_PATH_CAP];
    snprintf(path, sizeof path, "%s/config.json", rundir);
    mer_json *j = NULL;
    if (mer_json_load(&j, path) == MER_OK && mer_json_has(j, "class_counts")) {
        double v[MER_MAX_CLASSES];
        int32_t k = 0;
        mer_status s = mer_json_get_double_array(j, "class_counts", v, MER_MAX_CLASSES, &k);
        mer_json_free(j);
        if (s != MER_OK) return s;
        if (k != c)
            return mer__err(MER_ERR_FORMAT, "%s: class_counts has %d entries, the run %d classes",
                            path, k, c);
        for (int32_t i = 0; i < c; i++) prior[i] = v[i];
        if ((s = check_prior(prior, c, path, 1)) != MER_OK) return s;
        double t = 0;
        for (int32_t i = 0; i < c; i++) t += prior[i];
        for (int32_t i = 0; i < c; i++) prior[i] /= t;
        return MER_OK;
    }
    mer_json_free(j);
    snprintf(path, sizeof path, "%s/oof.csv", rundir);
    mer_csv *csv = NULL;
    mer_status s = mer_csv_load(&csv, path);
    if (s != MER_OK) return s;
    int32_t col = -1;
    if ((s = mer_csv_col(csv, "label", &col)) != MER_OK) {
        mer_csv_free(csv);
        return s;
    }
    for (int32_t i = 0; i < c; i++) prior[i] = 0;
    for (int64_t r = 0; r < mer_csv_rows(csv); r++) {
        const char *v = mer_csv_cell(csv, r, col);
        int32_t i = 0;
        while (i < c && strcmp(classes[i], v ? v : "") != 0) i++;
        if (i == c) {
            s = mer__err(MER_ERR_FORMAT, "%s: row %lld: label '%s' is not a class of the run", path,
                         (long long)r + 2, v ? v : "");
            break;
        }
        prior[i] += 1;
    }
    mer_csv_free(csv);
    if (s != MER_OK) return s;
    for (int32_t i = 0; i < c; i++)
        if (prior[i] <= 0)
            return mer__err(MER_ERR_FORMAT, "%s: class '%s' has no training clip, so no prior",
                            path, classes[i]);
    double t = 0;
    for (int32_t i = 0; i < c; i++) t += prior[i];
    for (int32_t i = 0; i < c; i++) prior[i] /= t;
    return MER_OK;
}

/* ---- a correction resolved from its mode (`--prior`) ---------------------------------------- */

mer_status mer_prior_target(mer_prior_mode mode, const char *csv, const char *const *classes,
                            int32_t c, const float *probs, int64_t n, const double *pi_train,
                            mer_prior_info *info) {
    if (!info || !classes || !pi_train || c < 1 || c > MER_MAX_CLASSES)
        return mer__err(MER_ERR_INVALID_ARG, "mer_prior_target: bad arguments (c %d)", c);
    memset(info, 0, sizeof *info);
    info->mode = mode;
    info->n_classes = c;
    mer_status s = check_prior(pi_train, c, "train", 1);
    if (s != MER_OK) return s;
    double st = 0;
    for (int32_t j = 0; j < c; j++) st += pi_train[j];
    for (int32_t j = 0; j < c; j++) info->train[j] = info->target[j] = pi_train[j] / st;
    switch (mode) {
    case MER_PRIOR_NONE:
        return MER_OK;
    case MER_PRIOR_UNIFORM:
        for (int32_t j = 0; j < c; j++) info->target[j] = 1.0 / c;
        return MER_OK;
    case MER_PRIOR_CSV:
        if (!csv) return mer__err(MER_ERR_INVALID_ARG, "prior: no priors CSV given");
        return mer_prior_read_csv(csv, classes, c, info->target);
    case MER_PRIOR_AUTO:
        if (n < 1 || !probs)
            return mer__err(MER_ERR_INVALID_ARG, "prior auto: no clips to estimate the test prior from");
        return mer_prior_estimate_em(probs, n, c, pi_train, NULL, info->target, &info->em_iters);
    }
    return mer__err(MER_ERR_INVALID_ARG, "prior: unknown mode %d", (int)mode);
}

mer_status mer_prior_apply_run(float *probs, const char *rundir, const char *const *classes,
                               int32_t c, int64_t n, mer_prior_mode mode,
                               const char *csv, mer_prior_info *info) {
    mer_prior_info local;
    if (!info) info = &local;
    memset(info, 0, sizeof *info);
    if (mode == MER_PRIOR_NONE) return MER_OK;
    if (!probs || !rundir || !classes || c < 1 || n < 0)
        return mer__err(MER_ERR_INVALID_ARG, "mer_prior_apply_run: bad arguments");
    if (c > MER_MAX_CLASSES)
        return mer__err(MER_ERR_INVALID_ARG, "%s: %d classes (max %d)", rundir, c, MER_MAX_CLASSES);
    double tr[MER_MAX_CLASSES];
    mer_status s = mer_prior_from_run(rundir, classes, c, tr);
    if (s == MER_OK) s = mer_prior_target(mode, csv, classes, c, probs, n, tr, info);
    if (s == MER_OK) s = mer_prior_correct(probs, n, c, tr, info->target);
    return s;
}
