/*
 * pseudo.c -- self-training on unlabeled clips: train, let the fold ensemble label the
 * unlabeled pool, keep the confident clips as train-only examples, retrain from scratch
 * (docs/agt.md, "Self-training on unlabeled clips").
 *
 * Round r = 0..R trains with mer_train_run on the labeled clips plus the pseudo-labelled clips
 * chosen after round r-1 (none for r = 0). Pseudo-labelled clips are train-only: the data set
 * machinery trains on them in every fold and never holds them out, so each round's
 * cross-validated WAF is measured on the same labeled clips and rounds are comparable.
 * Intermediate rounds live in RUNDIR/rounds/round-<r>; the last one is RUNDIR itself, whose
 * metrics.json gains a "pseudo" object with the per-round history.
 */
#include "train/train.h"

#include <cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

/* The published MER2024-SEMI recipe (6th place, see REFERENCES.md). */
static const struct {
    const char *name;
    double p;
} recipe[] = {
    {"neutral", 0.99}, {"angry", 0.99}, {"happy", 0.99}, {"sad", 0.99},
    {"worried", 0.85}, {"surprise", 0.85},
};

mer_status mer_pseudo_default_thresholds(const char *const *classes, int32_t c, double *thr) {
    for (int32_t j = 0; j < c; j++) {
        thr[j] = NAN;
        for (size_t k = 0; k < sizeof recipe / sizeof *recipe; k++)
            if (!strcmp(classes[j], recipe[k].name)) thr[j] = recipe[k].p;
    }
    return MER_OK;
}

mer_status mer_pseudo_parse_thresholds(const char *spec, const char *const *classes, int32_t c,
                                       double *thr) {
    if (!spec || !*spec) return mer__err(MER_ERR_INVALID_ARG, "empty --pseudo-threshold");
    char buf[2048];
    if (strlen(spec) >= sizeof buf) return mer__err(MER_ERR_INVALID_ARG, "--pseudo-threshold too long");
    snprintf(buf, sizeof buf, "%s", spec);
    char *save = NULL;
    for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(t, '=');
        const char *num = eq ? eq + 1 : t;
        char *end = NULL;
        double v = strtod(num, &end);
        if (end == num || *end || !(v > 0 && v <= 1))
            return mer__err(MER_ERR_INVALID_ARG,
                            "--pseudo-threshold: '%s' is not a probability in (0, 1]", num);
        if (!eq) {
            for (int32_t j = 0; j < c; j++) thr[j] = v;
            continue;
        }
        *eq = '\0';
        int32_t j = 0;
        while (j < c && strcmp(classes[j], t) != 0) j++;
        if (j == c) return mer__err(MER_ERR_INVALID_ARG, "--pseudo-threshold: '%s' is not a class", t);
        thr[j] = v;
    }
    return MER_OK;
}

mer_pseudo_params mer_pseudo_default_params(void) {
    mer_pseudo_params p;
    memset(&p, 0, sizeof p);
    p.rounds = 1;
    for (int32_t j = 0; j < MER_MAX_CLASSES; j++) p.threshold[j] = NAN;
    p.max_add = 0;
    return p;
}

typedef struct {
    int64_t idx;
    int32_t label;
    float conf;
} pick;

static int cmp_pick(const void *a, const void *b) {
    const pick *x = a, *y = b;
    if (x->conf != y->conf) return x->conf > y->conf ? -1 : 1;
    return x->idx < y->idx ? -1 : x->idx > y->idx;   /* stable: deterministic order */
}

/* Merge the history into dir/metrics.json (written by mer_train_run) atomically. Takes
 * ownership of hist. */
static mer_status add_history(const char *rundir, cJSON *hist) {
    char path[4096];
    snprintf(path, sizeof path, "%s/metrics.json", rundir);
    char *text = NULL;
    size_t len = 0;
    mer_status s = mer__read_file(path, &text, &len);
    if (s != MER_OK) {
        cJSON_Delete(hist);
        return s;
    }
    cJSON *root = cJSON_ParseWithLength(text, len);
    free(text);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        cJSON_Delete(hist);
        return mer__err(MER_ERR_FORMAT, "%s: not a JSON object", path);
    }
    cJSON_DeleteItemFromObject(root, "pseudo");
    cJSON_AddItemToObject(root, "pseudo", hist);
    char *out = cJSON_Print(root);
    cJSON_Delete(root);
    if (!out) return mer__err(MER_ERR_NOMEM, "%s: out of memory", path);
    size_t n = strlen(out);
    char *o2 = realloc(out, n + 2);
    if (!o2) {
        free(out);
        return mer__err(MER_ERR_NOMEM, "%s: out of memory", path);
    }
    o2[n] = '\n';
    s = mer__write_file_atomic(path, o2, n + 1);
    free(o2);
    return s;
}

mer_status mer_train_pseudo(const mer_train_params *tp, const mer_pseudo_params *pp,
                            const mer_dataset *labeled, const mer_dataset *unlabeled,
                            const mer_dataset *test, const char *rundir, mer_metrics *out) {
    if (!tp || !pp || !labeled || !unlabeled || !rundir || pp->rounds < 0 || pp->rounds > 100)
        return mer__err(MER_ERR_INVALID_ARG, "self-training: bad arguments (rounds 0..100)");
    const int32_t c = mer_dataset_n_classes(labeled), M = mer_dataset_n_modalities(labeled);
    const char *classes[MER_MAX_CLASSES], *mods[MER_MAX_MODALITIES];
    for (int32_t j = 0; j < c; j++) classes[j] = mer_dataset_class(labeled, j);
    for (int32_t m = 0; m < M; m++) mods[m] = mer_dataset_modality(labeled, m);
    for (int32_t j = 0; j < c; j++)
        if (!(pp->threshold[j] > 0 && pp->threshold[j] <= 1))
            return mer__err(MER_ERR_INVALID_ARG,
                            "self-training: no threshold for class '%s' (give --pseudo-threshold P "
                            "or CLASS=P,...)", classes[j]);
    if (mer_dataset_n_modalities(unlabeled) != M)
        return mer__err(MER_ERR_SHAPE, "self-training: the unlabeled set has %d modalities, the "
                        "labeled one %d", mer_dataset_n_modalities(unlabeled), M);
    for (int32_t m = 0; m < M; m++)
        if (strcmp(mer_dataset_modality(unlabeled, m), mods[m]) ||
            mer_dataset_dim(unlabeled, m) != mer_dataset_dim(labeled, m))
            return mer__err(MER_ERR_SHAPE, "self-training: unlabeled modality %d is %s (%lld-d), "
                            "labeled %s (%lld-d)", m, mer_dataset_modality(unlabeled, m),
                            (long long)mer_dataset_dim(unlabeled, m), mods[m],
                            (long long)mer_dataset_dim(labeled, m));

    char dir[4096], sub[4096];
    if (mkdir(rundir, 0755) != 0 && errno != EEXIST)
        return mer__err(MER_ERR_IO, "%s: cannot create: %s", rundir, strerror(errno));
    snprintf(sub, sizeof sub, "%s/rounds", rundir);
    if (pp->rounds > 0 && mkdir(sub, 0755) != 0 && errno != EEXIST)
        return mer__err(MER_ERR_IO, "%s: cannot create: %s", sub, strerror(errno));

    const int64_t nu = mer_dataset_count(unlabeled), nl = mer_dataset_count(labeled);
    float *probs = mer__alloc((size_t)(nu > 0 ? nu : 1) * c * sizeof(float));
    pick *picks = mer__alloc((size_t)(nu > 0 ? nu : 1) * sizeof(pick));
    cJSON *hist = cJSON_CreateObject();
    cJSON *rounds = cJSON_CreateArray();
    if (!probs || !picks || !hist || !rounds) {
        mer__free(probs), mer__free(picks);
        cJSON_Delete(hist), cJSON_Delete(rounds);
        return mer__err(MER_ERR_NOMEM, "self-training: out of memory");
    }
    cJSON_AddItemToObject(hist, "rounds", rounds);
    cJSON *th = cJSON_AddObjectToObject(hist, "thresholds");
    for (int32_t j = 0; j < c; j++) cJSON_AddNumberToObject(th, classes[j], pp->threshold[j]);
    cJSON_AddNumberToObject(hist, "max_add", (double)pp->max_add);
    cJSON_AddBoolToObject(hist, "balance", pp->balance != 0);
    cJSON_AddNumberToObject(hist, "unlabeled", (double)nu);

    mer_dataset *cur = NULL;          /* NULL: the labeled set itself */
    int64_t n_pick = 0;
    mer_status s = MER_OK;
    mer_metrics met;
    for (int32_t r = 0; r <= pp->rounds && s == MER_OK; r++) {
        const int last = r == pp->rounds;
        if (last) snprintf(dir, sizeof dir, "%s", rundir);
        else snprintf(dir, sizeof dir, "%s/rounds/round-%d", rundir, r);
        MER_LOG_I("self-training round %d/%d: %lld labeled + %lld pseudo-labelled clips", r,
                  pp->rounds, (long long)nl, (long long)n_pick);
        s = mer_train_run(tp, cur ? cur : labeled, last ? test : NULL, dir, &met);
        if (s != MER_OK) {
            mer__err_prefix("self-training round %d", r);
            break;
        }
        cJSON *e = cJSON_CreateObject();
        cJSON_AddNumberToObject(e, "round", r);
        cJSON_AddNumberToObject(e, "train_clips", (double)(nl + n_pick));
        cJSON_AddNumberToObject(e, "pseudo_clips", (double)n_pick);
        cJSON *gain = cJSON_AddObjectToObject(e, "pseudo_per_class");
        for (int32_t j = 0; j < c; j++) {
            int64_t k = 0;
            for (int64_t q = 0; q < n_pick; q++) k += picks[q].label == j;
            cJSON_AddNumberToObject(gain, classes[j], (double)k);
        }
        cJSON_AddNumberToObject(e, "cv_waf", met.waf);
        cJSON_AddNumberToObject(e, "cv_accuracy", met.accuracy);
        cJSON_AddStringToObject(e, "rundir", dir);
        cJSON_AddItemToArray(rounds, e);
        MER_LOG_I("self-training round %d: CV WAF %.4f", r, met.waf);
        if (last) break;

        /* the ensemble of this round labels the whole pool */
        mer_run *run = NULL;
        if ((s = mer_run_open(&run, dir)) != MER_OK) break;
        s = nu > 0 ? mer_run_predict(run, unlabeled, probs) : MER_OK;
        mer_run_free(run);
        if (s != MER_OK) break;
        n_pick = 0;
        for (int64_t i = 0; i < nu; i++) {
            const float *p = probs + i * c;
            int32_t b = 0;
            for (int32_t j = 1; j < c; j++)
                if (p[j] > p[b]) b = j;
            if (p[b] >= pp->threshold[b]) picks[n_pick++] = (pick){i, b, p[b]};
        }
        qsort(picks, (size_t)n_pick, sizeof *picks, cmp_pick);
        if (pp->balance) {
            /* per-class quotas from the labeled class prior, so the confident majority
             * classes do not tilt the training prior (class-balanced self-training) */
            int64_t cnt[MER_MAX_CLASSES] = {0}, quota[MER_MAX_CLASSES], kept = 0;
            int64_t total = pp->max_add > 0 && pp->max_add < n_pick ? pp->max_add : n_pick;
            for (int64_t i = 0; i < nl; i++)
                if (mer_dataset_label(labeled, i) >= 0) cnt[mer_dataset_label(labeled, i)]++;
            for (int32_t j = 0; j < c; j++) {
                quota[j] = (int64_t)ceil((double)total * (double)cnt[j] / (double)(nl ? nl : 1));
                cnt[j] = 0;
            }
            for (int64_t q = 0; q < n_pick; q++)
                if (cnt[picks[q].label] < quota[picks[q].label]) {
                    cnt[picks[q].label]++;
                    picks[kept++] = picks[q];
                }
            n_pick = kept;
        }
        if (pp->max_add > 0 && n_pick > pp->max_add) n_pick = pp->max_add;

        mer_dataset *next = NULL;
        if ((s = mer_dataset_init(&next, classes, c, mods, M)) != MER_OK) break;
        for (int64_t i = 0; i < nl && s == MER_OK; i++)
            s = mer_dataset_add_from(next, labeled, i, mer_dataset_label(labeled, i),
                                     mer__dataset_train_only(labeled, i));
        for (int64_t q = 0; q < n_pick && s == MER_OK; q++)
            s = mer_dataset_add_from(next, unlabeled, picks[q].idx, picks[q].label, 1);
        mer_dataset_free(cur);
        cur = next;
    }
    if (s == MER_OK) {
        s = add_history(rundir, hist);
        hist = NULL;
    }
    if (s == MER_OK && out) *out = met;
    cJSON_Delete(hist);
    mer_dataset_free(cur);
    mer__free(probs), mer__free(picks);
    return s;
}
