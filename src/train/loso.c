/*
 * loso.c -- leave-one-group-out evaluation (speaker-independent: group = speaker) on top of the
 * trainer, with an honest protocol: for each held-out group, models are trained on the other
 * groups for a FIXED number of epochs (mer_train_run with folds = 1: no epoch is selected on the
 * held-out data), an ensemble of `seeds` models is averaged, and only then the held-out group is
 * predicted. Feature standardisation is computed without labels:
 *   MER_NORM_TRAIN  column mean/std of the training groups, applied to the held-out group
 *   MER_NORM_GROUP  each group standardised by its own statistics (speaker normalisation: at test
 *                   time it needs a few unlabeled clips of the same speaker, never their labels)
 *   MER_NORM_GROUP_SINGLE  the model of MER_NORM_GROUP (training groups standardised by their own
 *                   statistics) applied to single clips: the held-out group is standardised with the
 *                   pooled raw statistics of the training rows, as `mer predict` without --adapt
 *                   does with a run trained on speaker-normalised features
 * Train-only rows (mer_dataset_add(..., train_only = 1), e.g. augmented copies of a clip) join the
 * training set of every fold whose held-out group is not theirs and are never predicted or
 * scored. lp->norm_groups (optional) names the statistics group of each row for the per-group
 * modes, so that an augmented copy of a speaker is standardised as a speaker of its own.
 * Writes dir/metrics.json, dir/confusion.png and dir/predictions.csv. Used by `mer demo`.
 */
#include "train/train.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <pthread.h>

/* one fold (job) at a time reports progress (a named omp critical would export a symbol) */
static pthread_mutex_t progress_mu = PTHREAD_MUTEX_INITIALIZER;

mer_loso_params mer_loso_default_params(void) {
    mer_loso_params p;
    memset(&p, 0, sizeof p);
    p.seeds = 3;
    p.norm = MER_NORM_GROUP;
    p.title = "leave-one-group-out";
    return p;
}

mer_status mer_column_stats(const float *X, int64_t n, int64_t D, double *mean, double *std) {
    if (!X || !mean || !std || n < 1 || D < 1)
        return mer__err(MER_ERR_INVALID_ARG, "column stats: empty input");
    for (int64_t d = 0; d < D; d++) mean[d] = std[d] = 0;
    for (int64_t i = 0; i < n; i++)
        for (int64_t d = 0; d < D; d++) mean[d] += X[i * D + d];
    for (int64_t d = 0; d < D; d++) mean[d] /= (double)n;
    for (int64_t i = 0; i < n; i++)
        for (int64_t d = 0; d < D; d++) {
            double v = X[i * D + d] - mean[d];
            std[d] += v * v;
        }
    for (int64_t d = 0; d < D; d++) std[d] = sqrt(std[d] / (double)n);
    return MER_OK;
}

/* (x - mean) / std per column; a constant column (std ~ 0) becomes 0. */
static void apply_stats(float *X, int64_t n, int64_t D, const double *mean, const double *std) {
    for (int64_t i = 0; i < n; i++)
        for (int64_t d = 0; d < D; d++)
            X[i * D + d] = std[d] > 1e-12 ? (float)((X[i * D + d] - mean[d]) / std[d]) : 0.0f;
}

mer_status mer_group_standardize(float *X, int64_t n, int64_t D, const char *const *groups) {
    if (!X || !groups || n < 1 || D < 1)
        return mer__err(MER_ERR_INVALID_ARG, "group standardise: empty input");
    double *mean = malloc((size_t)D * sizeof(double)), *std = malloc((size_t)D * sizeof(double));
    float *tmp = malloc((size_t)n * D * sizeof(float));
    int64_t *rows = malloc((size_t)n * sizeof(int64_t));
    uint8_t *done = calloc((size_t)n, 1);
    if (!mean || !std || !tmp || !rows || !done) {
        free(mean);
        free(std);
        free(tmp);
        free(rows);
        free(done);
        return mer__err(MER_ERR_NOMEM, "group standardise: out of memory");
    }
    for (int64_t i = 0; i < n; i++) {
        if (done[i]) continue;
        int64_t m = 0;
        for (int64_t j = i; j < n; j++) {
            int same = (!groups[i] && !groups[j]) ||
                       (groups[i] && groups[j] && !strcmp(groups[i], groups[j]));
            if (!done[j] && same) {
                rows[m] = j;
                memcpy(tmp + m * D, X + j * D, (size_t)D * sizeof(float));
                m++;
                done[j] = 1;
            }
        }
        mer_column_stats(tmp, m, D, mean, std);
        apply_stats(tmp, m, D, mean, std);
        for (int64_t k = 0; k < m; k++) memcpy(X + rows[k] * D, tmp + k * D, (size_t)D * sizeof(float));
    }
    free(mean);
    free(std);
    free(tmp);
    free(rows);
    free(done);
    return MER_OK;
}

/* Run directories are made by the trainer (marked); one holding anything else stays. */
static mer_status rm_tree(const char *path) { return mer_dir_remove_made(path); }

/* A one-modality data set of clips idx[0..m) of ds with features X rows (already normalised). */
static mer_status subset(mer_dataset **out, const mer_dataset *ds, const int64_t *idx, int64_t m,
                         const float *X, int64_t D) {
    int32_t C = mer_dataset_n_classes(ds);
    const char *classes[MER_MAX_CLASSES];
    for (int32_t c = 0; c < C; c++) classes[c] = mer_dataset_class(ds, c);
    const char *mod[1] = {mer_dataset_modality(ds, 0)};
    mer_status s = mer_dataset_init(out, classes, C, mod, 1);
    if (s) return s;
    for (int64_t k = 0; k < m; k++) {
        int64_t i = idx[k];
        mer_tensor t;
        int64_t shape[1] = {D};
        mer_tensor_view(&t, (void *)(X + i * D), MER_DTYPE_F32, 1, shape);
        s = mer_dataset_add(*out, mer_dataset_name(ds, i), mer_dataset_label(ds, i),
                            mer_dataset_group(ds, i), 0, &t);
        if (s) {
            mer_dataset_free(*out);
            *out = NULL;
            return s;
        }
    }
    return MER_OK;
}

static void json_metrics(mer__sb *b, const mer_metrics *m) {
    mer__sb_printf(b, "\"waf\": %.6f, \"accuracy\": %.6f, \"uar\": %.6f, \"macro_f1\": %.6f, \"n\": %lld",
                   m->waf, m->accuracy, m->uar, m->macro_f1, (long long)m->n);
}

mer_status mer_loso_run(const mer_dataset *ds, const mer_train_params *tp,
                        const mer_loso_params *lp, const char *dir, float *probs_out,
                        mer_metrics *out) {
    if (!tp || !lp || !ds || !dir) return mer__err(MER_ERR_INVALID_ARG, "loso: NULL argument");
    if (mer_dataset_n_modalities(ds) != 1 || mer_dataset_is_sequence(ds, 0))
        return mer__err(MER_ERR_UNSUPPORTED, "loso: needs one modality of utterance vectors");
    if (lp->seeds < 1 || lp->seeds > 100)
        return mer__err(MER_ERR_INVALID_ARG, "loso: seeds %d outside [1, 100]", lp->seeds);
    const int64_t N = mer_dataset_count(ds), D = mer_dataset_dim(ds, 0);
    const int32_t C = mer_dataset_n_classes(ds);
    /* distinct groups in order of appearance */
    const char **gname = calloc((size_t)N, sizeof *gname);
    int32_t *gid = malloc((size_t)N * sizeof(int32_t));
    float *X = malloc((size_t)N * D * sizeof(float)), *Xn = malloc((size_t)N * D * sizeof(float));
    float *probs = calloc((size_t)N * C, sizeof(float));
    float *pp = malloc((size_t)N * C * sizeof(float));
    int64_t *tr = malloc((size_t)N * sizeof(int64_t)), *te = malloc((size_t)N * sizeof(int64_t));
    int32_t *truth = malloc((size_t)N * sizeof(int32_t)), *pred = malloc((size_t)N * sizeof(int32_t));
    double *mean = malloc((size_t)D * sizeof(double)), *std = malloc((size_t)D * sizeof(double));
    double *gwaf = calloc((size_t)N, sizeof(double));
    mer_status s = MER_OK;
    int32_t G = 0;
    mer_dataset **dtrs = NULL, **dtes = NULL;
    int64_t **tes = NULL, *ntes = NULL;
    float **jprobs = NULL;
    mer_status *jstat = NULL;
    char *jmsg = NULL;
    int32_t n_jobs = 0;
    if (!gname || !gid || !X || !Xn || !probs || !pp || !tr || !te || !truth || !pred || !mean ||
        !std || !gwaf) {
        s = mer__err(MER_ERR_NOMEM, "loso: out of memory");
        goto done;
    }
    for (int64_t i = 0; i < N; i++) {
        const char *g = mer_dataset_group(ds, i);
        if (!g) {
            s = mer__err(MER_ERR_INVALID_ARG, "loso: clip %s has no group", mer_dataset_name(ds, i));
            goto done;
        }
        int32_t k = 0;
        while (k < G && strcmp(gname[k], g)) k++;
        if (k == G) gname[G++] = g;
        gid[i] = k;
        int64_t rows;
        const float *f = mer__dataset_feat(ds, i, 0, &rows);
        memcpy(X + i * D, f, (size_t)D * sizeof(float));
        truth[i] = mer_dataset_label(ds, i);
        if (truth[i] < 0) {
            s = mer__err(MER_ERR_INVALID_ARG, "loso: clip %s is unlabeled", mer_dataset_name(ds, i));
            goto done;
        }
    }
    if (G < 2) {
        s = mer__err(MER_ERR_INVALID_ARG, "loso: needs at least 2 groups, got %d", G);
        goto done;
    }
    if ((s = mer__mkdir(dir))) goto done;
    if (lp->norm == MER_NORM_GROUP || lp->norm == MER_NORM_GROUP_SINGLE) {
        memcpy(Xn, X, (size_t)N * D * sizeof(float));
        const char **gs = malloc((size_t)N * sizeof *gs);
        if (!gs) {
            s = mer__err(MER_ERR_NOMEM, "loso: out of memory");
            goto done;
        }
        for (int64_t i = 0; i < N; i++) gs[i] = lp->norm_groups && lp->norm_groups[i] ? lp->norm_groups[i] : gname[gid[i]];
        s = mer_group_standardize(Xn, N, D, gs);
        free(gs);
        if (s) goto done;
    }
    char runs[MER_PATH_CAP];
    snprintf(runs, sizeof runs, "%s/runs", dir);
    if ((s = mer_mkdir_made(runs))) goto done;
    /* the train / held-out data sets of every group first (normalisation per group), then
     * every (group, seed) model as an independent job: jobs run in parallel on the thread team,
     * each single-threaded inside (a nested mer__parallel_for runs serially), so the result does
     * not depend on the thread count; probabilities are summed in job order afterwards. */
    dtrs = calloc((size_t)G, sizeof *dtrs);
    dtes = calloc((size_t)G, sizeof *dtes);
    tes = calloc((size_t)G, sizeof *tes);
    ntes = calloc((size_t)G, sizeof *ntes);
    if (!dtrs || !dtes || !tes || !ntes) {
        s = mer__err(MER_ERR_NOMEM, "loso: out of memory");
        goto done;
    }
    for (int32_t g = 0; g < G; g++) {
        int64_t ntr = 0, nte = 0;
        for (int64_t i = 0; i < N; i++) {
            if (gid[i] != g)
                tr[ntr++] = i;
            else if (!mer__dataset_train_only(ds, i))
                te[nte++] = i;
        }
        if (lp->norm == MER_NORM_GROUP_SINGLE) {
            /* held-out rows: raw features standardised with the training rows' pooled stats */
            float *tmp = malloc((size_t)(ntr > 0 ? ntr : 1) * D * sizeof(float));
            if (!tmp) {
                s = mer__err(MER_ERR_NOMEM, "loso: out of memory");
                goto done;
            }
            for (int64_t k = 0; k < ntr; k++) memcpy(tmp + k * D, X + tr[k] * D, (size_t)D * sizeof(float));
            mer_column_stats(tmp, ntr, D, mean, std);
            free(tmp);
            for (int64_t k = 0; k < nte; k++) memcpy(Xn + te[k] * D, X + te[k] * D, (size_t)D * sizeof(float));
            for (int64_t k = 0; k < nte; k++) apply_stats(Xn + te[k] * D, 1, D, mean, std);
        }
        if (lp->norm == MER_NORM_TRAIN || lp->norm == MER_NORM_NONE) {
            memcpy(Xn, X, (size_t)N * D * sizeof(float));
            if (lp->norm == MER_NORM_TRAIN) {
                float *tmp = malloc((size_t)ntr * D * sizeof(float));
                if (!tmp) {
                    s = mer__err(MER_ERR_NOMEM, "loso: out of memory");
                    goto done;
                }
                for (int64_t k = 0; k < ntr; k++) memcpy(tmp + k * D, X + tr[k] * D, (size_t)D * sizeof(float));
                mer_column_stats(tmp, ntr, D, mean, std);
                free(tmp);
                apply_stats(Xn, N, D, mean, std);
            }
        }
        if ((s = subset(&dtrs[g], ds, tr, ntr, Xn, D)) || (s = subset(&dtes[g], ds, te, nte, Xn, D))) goto done;
        tes[g] = malloc((size_t)(nte > 0 ? nte : 1) * sizeof(int64_t));
        if (!tes[g]) {
            s = mer__err(MER_ERR_NOMEM, "loso: out of memory");
            goto done;
        }
        memcpy(tes[g], te, (size_t)nte * sizeof(int64_t));
        ntes[g] = nte;
    }
    const int32_t J = G * lp->seeds;
    jprobs = calloc((size_t)J, sizeof *jprobs);
    jstat = calloc((size_t)J, sizeof *jstat);
    jmsg = calloc((size_t)J, 256);
    if (!jprobs || !jstat || !jmsg) {
        s = mer__err(MER_ERR_NOMEM, "loso: out of memory");
        goto done;
    }
    int32_t jobs_done = 0, stop = 0;
#pragma omp parallel for schedule(dynamic) num_threads(tp->n_threads > 0 ? tp->n_threads : mer__threads())
    for (int32_t jb = 0; jb < J; jb++) {
        int32_t g = jb / lp->seeds, k = jb % lp->seeds;
        mer_status st = MER_OK;
        int halt;
#pragma omp atomic read
        halt = stop;
        if (halt) st = MER_ERR_ABORTED;
        mer_train_params p = *tp;
        p.folds = 1;
        p.seed = tp->seed + (uint64_t)k;
        p.plots = 0;
        p.checkpoint_every = 0;
        p.resume = 0;
        p.search = 0;
        p.recipe_json = NULL;
        p.progress = NULL;
        p.abort = NULL;
        p.n_threads = 0;
        char rd[4200], seed_sfx[32];
        snprintf(seed_sfx, sizeof seed_sfx, "-seed%d", k);
        /* a group (speaker) name is data: it names a directory only through mer_name_path */
        if (!st) st = mer_name_path(rd, sizeof rd, runs, gname[g], seed_sfx, "group", 0);
        mer_run *jr = NULL;
        float *pj = malloc((size_t)(ntes[g] > 0 ? ntes[g] : 1) * C * sizeof(float));
        if (!st && !pj) st = mer__err(MER_ERR_NOMEM, "loso: out of memory");
        if (!st) st = rm_tree(rd);
        if (!st) st = mer_train_run(dtrs[g], NULL, &p, rd, NULL);
        if (!st) st = mer_run_open(&jr, rd);
        if (!st) st = mer_run_predict(jr, dtes[g], pj);
        mer_run_free(jr);
        if (!st && !lp->keep_runs) st = rm_tree(rd);
        jstat[jb] = st;
        if (st) {
            mer__err_copy(jmsg + (size_t)jb * 256, 256);
            free(pj);
            pj = NULL;
        }
        jprobs[jb] = pj;
        pthread_mutex_lock(&progress_mu);
        jobs_done++;
        if (st) stop = 1;
        if (lp->progress && (jobs_done % lp->seeds == 0 || jobs_done == J))
            lp->progress((jobs_done * G) / J, G, lp->progress_user_data);
        if (lp->abort && lp->abort(lp->abort_user_data)) stop = 1;
        pthread_mutex_unlock(&progress_mu);
    }
    for (int32_t jb = 0; jb < J; jb++)
        if (jstat[jb]) {
            s = jstat[jb] == MER_ERR_ABORTED && !jmsg[(size_t)jb * 256]
                    ? mer__err(MER_ERR_ABORTED, "loso: stopped by the caller")
                    : mer__err(jstat[jb], "%s", jmsg + (size_t)jb * 256);
            goto done;
        }
    for (int32_t jb = 0; jb < J; jb++) {
        int32_t g = jb / lp->seeds;
        for (int64_t k2 = 0; k2 < ntes[g]; k2++)
            for (int32_t c = 0; c < C; c++) probs[tes[g][k2] * C + c] += jprobs[jb][k2 * C + c] / lp->seeds;
    }
    /* per-group WAF */
    for (int32_t g = 0; g < G; g++) {
        int64_t nte = ntes[g];
        int32_t *t1 = malloc((size_t)(nte ? nte : 1) * sizeof(int32_t)), *p1 = malloc((size_t)(nte ? nte : 1) * sizeof(int32_t));
        if (t1 && p1) {
            for (int64_t k2 = 0; k2 < nte; k2++) {
                t1[k2] = truth[tes[g][k2]];
                mer_argmax_rows(probs + tes[g][k2] * C, 1, C, &p1[k2]);
            }
            mer_metrics gm;
            if (mer_metrics_compute(t1, p1, nte, C, &gm) == MER_OK) gwaf[g] = gm.waf;
        }
        free(t1);
        free(p1);
    }
    if (!lp->keep_runs && rm_tree(runs) != MER_OK) MER_LOG_W("%s", mer_last_error());
    /* scores over the predicted rows only (train-only rows are never held out) */
    int64_t n_tested = 0;
    for (int32_t g = 0; g < G; g++)
        for (int64_t k2 = 0; k2 < ntes[g]; k2++) te[n_tested++] = tes[g][k2];
    for (int64_t k2 = 0; k2 < n_tested; k2++) {
        truth[k2] = mer_dataset_label(ds, te[k2]);
        mer_argmax_rows(probs + te[k2] * C, 1, C, &pred[k2]);
    }
    mer_metrics m;
    if ((s = mer_metrics_compute(truth, pred, n_tested, C, &m))) goto done;
    /* report files */
    {
        const char *classes[MER_MAX_CLASSES];
        for (int32_t c = 0; c < C; c++) classes[c] = mer_dataset_class(ds, c);
        char path[MER_PATH_CAP];
        snprintf(path, sizeof path, "%s/predictions.csv", dir);
        if (n_tested == N) {
            s = mer_write_predictions(path, ds, probs, classes, C, 0);
        } else { /* the predicted rows only, in data-set order */
            mer_dataset *dt = NULL;
            float *pt = malloc((size_t)(n_tested > 0 ? n_tested : 1) * C * sizeof(float));
            int64_t *order = malloc((size_t)(N > 0 ? N : 1) * sizeof(int64_t));
            s = pt && order ? MER_OK : mer__err(MER_ERR_NOMEM, "loso: out of memory");
            int64_t k3 = 0;
            for (int64_t i = 0; !s && i < N; i++) {
                int tested = 0;
                for (int64_t k2 = 0; k2 < n_tested && !tested; k2++) tested = te[k2] == i;
                if (tested) {
                    memcpy(pt + k3 * C, probs + i * C, (size_t)C * sizeof(float));
                    order[k3++] = i;
                }
            }
            if (!s) s = subset(&dt, ds, order, k3, X, D);
            if (!s) s = mer_write_predictions(path, dt, pt, classes, C, 0);
            mer_dataset_free(dt);
            free(pt);
            free(order);
        }
        if (s) goto done;
        snprintf(path, sizeof path, "%s/confusion.png", dir);
        if ((s = mer__plot_confusion(path, m.confusion, C, classes, lp->title))) goto done;
        mer__sb b = {0};
        mer__sb_printf(&b, "{\n  \"protocol\": ");
        mer__sb_json_str(&b, "leave-one-group-out, fixed epochs, seed ensemble");
        mer__sb_printf(&b, ",\n  \"normalisation\": \"%s\",\n  \"seeds\": %d, \"epochs\": %d, \"model\": ",
                       lp->norm == MER_NORM_GROUP          ? "per-group"
                       : lp->norm == MER_NORM_GROUP_SINGLE ? "per-group training, train-set for held-out"
                       : lp->norm == MER_NORM_TRAIN        ? "train-set"
                                                           : "none",
                       lp->seeds, tp->epochs);
        mer__sb_json_str(&b, tp->model);
        mer__sb_printf(&b, ", \"hidden\": %d, \"dropout\": %.3f, \"lr\": %g,\n  ", tp->hidden,
                       (double)tp->dropout, tp->lr);
        json_metrics(&b, &m);
        mer__sb_printf(&b, ",\n  \"classes\": [");
        for (int32_t c = 0; c < C; c++) {
            mer__sb_printf(&b, c ? ", " : "");
            mer__sb_json_str(&b, classes[c]);
        }
        mer__sb_printf(&b, "],\n  \"per_class\": {");
        for (int32_t c = 0; c < C; c++) {
            mer__sb_printf(&b, c ? ", " : "");
            mer__sb_json_str(&b, classes[c]);
            mer__sb_printf(&b, ": {\"precision\": %.6f, \"recall\": %.6f, \"f1\": %.6f, \"support\": %lld}",
                           m.precision[c], m.recall[c], m.f1[c], (long long)m.support[c]);
        }
        mer__sb_printf(&b, "},\n  \"per_group_waf\": {");
        for (int32_t g = 0; g < G; g++) {
            mer__sb_printf(&b, g ? ", " : "");
            mer__sb_json_str(&b, gname[g]);
            mer__sb_printf(&b, ": %.6f", gwaf[g]);
        }
        mer__sb_printf(&b, "},\n  \"confusion\": [");
        for (int32_t t = 0; t < C; t++) {
            mer__sb_printf(&b, "%s[", t ? ", " : "");
            for (int32_t c = 0; c < C; c++)
                mer__sb_printf(&b, "%s%lld", c ? ", " : "", (long long)m.confusion[t * C + c]);
            mer__sb_printf(&b, "]");
        }
        mer__sb_printf(&b, "]\n}\n");
        snprintf(path, sizeof path, "%s/metrics.json", dir);
        s = mer__sb_save(&b, path);
        mer__sb_free(&b);
        if (s) goto done;
    }
    if (out) *out = m;
    if (probs_out) memcpy(probs_out, probs, (size_t)N * C * sizeof(float));
done:
    for (int32_t g = 0; g < G && dtrs; g++) mer_dataset_free(dtrs[g]);
    for (int32_t g = 0; g < G && dtes; g++) mer_dataset_free(dtes[g]);
    for (int32_t g = 0; g < G && tes; g++) free(tes[g]);
    n_jobs = jprobs ? G * lp->seeds : 0;
    for (int32_t jb = 0; jb < n_jobs; jb++) free(jprobs[jb]);
    free(dtrs);
    free(dtes);
    free(tes);
    free(ntes);
    free(jprobs);
    free(jstat);
    free(jmsg);
    free(gname);
    free(gid);
    free(X);
    free(Xn);
    free(probs);
    free(pp);
    free(tr);
    free(te);
    free(truth);
    free(pred);
    free(mean);
    free(std);
    free(gwaf);
    return s;
}
