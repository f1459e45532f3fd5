/*
 * vote.c -- mer_vote: an ensemble of trained runs over one set of clips, each run's posteriors
 * corrected for the test prior when asked, combined by mean or majority (`mer vote`; the prior
 * math and the combination are in src/train/prior.c, docs/agt.md "Test priors and voting").
 */
#include "internal.h"

#include <stdio.h>
#include <string.h>

mer_vote_params mer_vote_default_params(void) {
    mer_vote_params p;
    memset(&p, 0, sizeof p);
    p.mode = MER_VOTE_MEAN;
    p.prior = MER_PRIOR_NONE;
    return p;
}

void mer_vote_result_free(mer_vote_result *r) {
    if (!r) return;
    free(r->names);
    free(r->probs);
    free(r);
}

/* The output may not replace what the vote reads: the list, a run's config.json and the labels
 * it was trained on (checked before any work), nor a feature file (checked once the clips are
 * known, still before anything is written). */
static mer_status check_out(const mer_vote_params *p, mer_run *run, const char *rundir) {
    char cfg[4200];
    if (snprintf(cfg, sizeof cfg, "%s/config.json", rundir) >= (int)sizeof cfg)
        return mer__err(MER_ERR_INVALID_ARG, "%s: run directory path too long", rundir);
    const char *ins[] = {p->list, cfg, mer_run_labels(run)};
    return mer_output_check(p->out, ins, 3);
}

/* Column j of run r in the first run's order, or -1. */
static int32_t class_index(const mer_vote_result *res, const char *name) {
    for (int32_t q = 0; q < res->n_classes; q++)
        if (!strcmp(res->classes[q], name)) return q;
    return -1;
}

/* The clip names of ds in one block (free() frees all). */
static mer_status copy_names(const mer_dataset *ds, char ***out) {
    int64_t n = mer_dataset_count(ds);
    size_t bytes = 0;
    for (int64_t i = 0; i < n; i++) bytes += strlen(mer_dataset_name(ds, i)) + 1;
    char **blk = malloc((size_t)n * sizeof(char *) + bytes + 1);
    if (!blk) return mer__err(MER_ERR_NOMEM, "vote: out of memory for %lld clip names", (long long)n);
    char *p = (char *)(blk + n);
    for (int64_t i = 0; i < n; i++) {
        size_t l = strlen(mer_dataset_name(ds, i)) + 1;
        memcpy(p, mer_dataset_name(ds, i), l);
        blk[i] = p;
        p += l;
    }
    *out = blk;
    return MER_OK;
}

static mer_status vote_run(const mer_vote_params *p, mer_vote_result **out);

mer_status mer_vote(const mer_vote_params *p, mer_vote_result **out) {
    if (!p || !out) return mer__err(MER_ERR_INVALID_ARG, "mer_vote: NULL argument");
    const int threads = mer__threads_use(p->n_threads);
    mer_status s = vote_run(p, out);
    mer__threads_use(threads);
    return s;
}

static mer_status vote_run(const mer_vote_params *p, mer_vote_result **out) {
    if (!p || !out || !p->runs || p->n_runs < 1 || !p->features || p->n_features < 1 ||
        (p->prior == MER_PRIOR_CSV && !p->prior_csv))
        return mer__err(MER_ERR_INVALID_ARG, "mer_vote: needs runs, features (and a priors CSV for "
                        "MER_PRIOR_CSV)");
    *out = NULL;
    const int32_t R = p->n_runs;
    mer_vote_result *res = calloc(1, sizeof *res);
    mer_run **run = calloc((size_t)R, sizeof *run);
    float **probs = calloc((size_t)R, sizeof *probs);
    double *tr = calloc((size_t)R * MER_MAX_CLASSES, sizeof *tr);   /* (R, c) training priors */
    char **names = NULL;
    float *raw = NULL;
    mer_dataset *ds = NULL;
    mer_status s = MER_OK;
    if (!res || !run || !probs || !tr) s = mer__err(MER_ERR_NOMEM, "vote: out of memory");

    /* the runs, each checked against the output and the first run's classes */
    for (int32_t r = 0; s == MER_OK && r < R; r++) {
        if ((s = mer_run_open(&run[r], p->runs[r])) != MER_OK) break;
        if (p->out && (s = check_out(p, run[r], p->runs[r])) != MER_OK) break;
        const int32_t cr = mer_run_n_classes(run[r]);
        if (r == 0) {
            res->n_classes = cr;
            for (int32_t j = 0; j < cr; j++)
                snprintf(res->classes[j], MER_NAME_MAX, "%s", mer_run_class(run[0], j));
            continue;
        }
        int same = cr == res->n_classes;
        for (int32_t j = 0; j < cr && same; j++) same = class_index(res, mer_run_class(run[r], j)) >= 0;
        if (!same)
            s = mer__err(MER_ERR_FORMAT, "%s: its classes differ from those of %s", p->runs[r],
                         p->runs[0]);
    }
    const int32_t c = res ? res->n_classes : 0;
    const char *cls[MER_MAX_CLASSES];
    for (int32_t j = 0; j < c; j++) cls[j] = res->classes[j];

    /* the clips */
    int64_t n = 0;
    if (s == MER_OK)
        s = p->list ? mer_read_name_list(p->list, &names, &n)
                    : mer_list_feature_names(p->features[0].dir, &names, &n);
    if (s == MER_OK) {
        mer_dataset_params dp = mer_dataset_default_params();
        dp.labels_csv = NULL;
        dp.names = (const char *const *)names;
        dp.n_names = n;
        dp.classes = cls;
        dp.n_classes = c;
        dp.modalities = p->features;
        dp.n_modalities = p->n_features;
        s = mer_dataset_load(&ds, &dp);
    }
    if (s == MER_OK) n = mer_dataset_count(ds);
    for (int64_t i = 0; s == MER_OK && p->out && i < n; i++)
        for (int32_t m = 0; s == MER_OK && m < p->n_features; m++) {
            char fp[4200];
            const char *one[1] = {fp};
            if (mer_name_path(fp, sizeof fp, p->features[m].dir, mer_dataset_name(ds, i), ".npy",
                              NULL, 0) == MER_OK)
                s = mer_output_check(p->out, one, 1);
        }

    /* each run's probabilities, in the first run's class order */
    const size_t tab = (size_t)(n > 0 ? n : 1) * (size_t)c * sizeof(float);
    if (s == MER_OK && !(raw = malloc(tab))) s = mer__err(MER_ERR_NOMEM, "vote: out of memory");
    for (int32_t r = 0; s == MER_OK && r < R; r++) {
        const int32_t cr = mer_run_n_classes(run[r]);
        if (!(probs[r] = malloc(tab))) {
            s = mer__err(MER_ERR_NOMEM, "vote: out of memory");
            break;
        }
        if ((s = mer__abort_check(p->abort, p->abort_user_data, p->runs[r])) != MER_OK) break;
        if ((s = mer_run_predict(run[r], ds, raw)) != MER_OK) break;
        for (int32_t j = 0; j < cr; j++) {
            const int32_t q = class_index(res, mer_run_class(run[r], j));
            for (int64_t i = 0; i < n; i++) probs[r][i * c + q] = raw[i * cr + j];
        }
        if (p->progress) p->progress(r + 1, R, p->progress_user_data);
    }

    /* the prior correction: each run from its own training prior to one target */
    if (s == MER_OK && !(res->probs = malloc(tab))) s = mer__err(MER_ERR_NOMEM, "vote: out of memory");
    if (s == MER_OK && p->prior != MER_PRIOR_NONE) {
        double mean_tr[MER_MAX_CLASSES] = {0};
        for (int32_t r = 0; s == MER_OK && r < R; r++) {
            s = mer_prior_from_run(p->runs[r], cls, c, tr + r * MER_MAX_CLASSES);
            for (int32_t j = 0; j < c && s == MER_OK; j++) mean_tr[j] += tr[r * MER_MAX_CLASSES + j] / R;
        }
        /* the target is estimated on the mean of the uncorrected posteriors */
        if (s == MER_OK)
            s = mer_vote_combine((const float *const *)probs, R, n, c, MER_VOTE_MEAN, res->probs);
        if (s == MER_OK)
            s = mer_prior_target(p->prior, p->prior_csv, cls, c, res->probs, n, mean_tr, &res->prior);
        for (int32_t r = 0; s == MER_OK && r < R; r++)
            s = mer_prior_correct(probs[r], n, c, tr + r * MER_MAX_CLASSES, res->prior.target);
    }
    if (s == MER_OK) s = mer_vote_combine((const float *const *)probs, R, n, c, p->mode, res->probs);
    if (s == MER_OK && p->out) s = mer_write_predictions(p->out, ds, res->probs, cls, c, p->mer2024);
    if (s == MER_OK) s = copy_names(ds, &res->names);
    if (s == MER_OK) {
        res->n = n;
        res->n_runs = R;
        if (p->prior == MER_PRIOR_NONE) {
            res->prior.mode = MER_PRIOR_NONE;
            res->prior.n_classes = c;
        }
    }

    for (int32_t r = 0; run && r < R; r++) mer_run_free(run[r]);
    for (int32_t r = 0; probs && r < R; r++) free(probs[r]);
    free(run);
    free(probs);
    free(tr);
    free(raw);
    free(names);
    mer_dataset_free(ds);
    if (s != MER_OK) {
        mer_vote_result_free(res);
        return s;
    }
    *out = res;
    return MER_OK;
}
