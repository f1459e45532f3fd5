/*
 * pseudo.c -- self-training on unlabeled clips: train, let the models of the round label the
 * unlabeled pool, keep the confident clips as train-only examples, retrain from scratch
 * (docs/agt.md, "Self-training on unlabeled clips").
 *
 * Round r = 0..R trains with mer_train_run on the labeled clips plus the pseudo-labelled clips
 * chosen after round r-1 (none for r = 0). Pseudo-labelled clips are train-only: never held out,
 * so each round's cross-validated WAF is measured on the same labeled clips. Who may train on
 * them is the point of the fold source (the default): fold k's clips are labeled by fold k's
 * model of the previous round and restricted to fold k (mer__dataset_set_fold_mask), so fold
 * k's held-out clips never influence, through another fold's model, what fold k trains on.
 * The ensemble source (the fold mean labels one set for every fold) leaks exactly that, and
 * its CV WAF is optimistic. Intermediate rounds live in RUNDIR/rounds/round-<r>; the last one
 * is RUNDIR itself, whose metrics.json gains a "pseudo" object with the per-round history.
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
    p.source = MER_PSEUDO_FOLD;
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

/* The confident clips of one probability table (nu, c), most confident first, after the
 * per-class quotas (balance) and the cap (max_add). Returns their count. */
static int64_t select_picks(pick *picks, const float *probs, int64_t nu, int32_t c,
                            const mer_pseudo_params *pp, const int64_t *lab_count, int64_t nl) {
    int64_t n_pick = 0;
    for (int64_t i = 0; i < nu; i++) {
        const float *p = probs + i * c;
        int32_t b = 0;
        for (int32_t j = 1; j < c; j++)
            if (p[j] > p[b]) b = j;
        if (p[b] >= pp->threshold[b]) picks[n_pick++] = (pick){i, b, p[b]};
    }
    qsort(picks, (size_t)n_pick, sizeof *picks, cmp_pick);
    if (pp->balance) {
        /* per-class quotas from the labeled class prior, so the confident majority classes do
         * not tilt the training prior (class-balanced self-training) */
        int64_t cnt[MER_MAX_CLASSES] = {0}, quota[MER_MAX_CLASSES], kept = 0;
        int64_t total = pp->max_add > 0 && pp->max_add < n_pick ? pp->max_add : n_pick;
        for (int32_t j = 0; j < c; j++)
            quota[j] = (int64_t)ceil((double)total * (double)lab_count[j] / (double)(nl ? nl : 1));
        for (int64_t q = 0; q < n_pick; q++)
            if (cnt[picks[q].label] < quota[picks[q].label]) {
                cnt[picks[q].label]++;
                picks[kept++] = picks[q];
            }
        n_pick = kept;
    }
    if (pp->max_add > 0 && n_pick > pp->max_add) n_pick = pp->max_add;
    return n_pick;
}

/* Merge the history into dir/metrics.json (written by mer_train_run) atomically. Takes
 * ownership of hist. */
static mer_status add_history(const char *rundir, cJSON *hist) {
    char path[MER_PATH_CAP];
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

/* The leakage guard of the fold source: fold k of the run in dir must have trained on its
 * labeled training part plus the clips restricted to fold k, nothing else. A trainer that
 * ignored the restriction would train every fold on every fold's pseudo-labels. */
static mer_status check_fold_training(const char *dir, const mer_dataset *ds, int32_t K,
                                      uint64_t seed) {
    const int64_t n = mer_dataset_count(ds);
    int32_t *fold = malloc((size_t)(n ? n : 1) * sizeof *fold);
    if (!fold) return mer__err(MER_ERR_NOMEM, "out of memory");
    mer_status s = mer__make_folds(fold, ds, K, seed);
    for (int32_t k = 0; k < K && s == MER_OK; k++) {
        int64_t want = 0, got = -1;
        for (int64_t i = 0; i < n; i++)
            want += fold[i] != k && mer__dataset_trains_in_fold(ds, i, k);
        char path[MER_PATH_CAP];
        snprintf(path, sizeof path, "%s/fold-%d.json", dir, k);
        mer_json *j = NULL;
        s = mer_json_load(&j, path);
        if (s == MER_OK) s = mer_json_get_int(j, "n_train", &got);
        mer_json_free(j);
        if (s == MER_OK && got != want)
            s = mer__err(MER_ERR_INVALID_ARG,
                         "%s: fold %d trained on %lld clips, expected %lld (its labeled part plus "
                         "its own pseudo-labels): the trainer ignores fold-wise pseudo-labels, "
                         "which would leak held-out clips (use --pseudo-source ensemble)",
                         path, k, (long long)got, (long long)want);
    }
    free(fold);
    return s;
}

/* Mean over the folds of the held-out WAF after the last epoch: the CV estimate without the
 * maximum over epochs that the best-epoch selection takes (NaN when there is none). */
static double last_epoch_waf(const char *dir, int32_t K, int32_t E) {
    double sum = 0;
    for (int32_t k = 0; k < K; k++) {
        char path[MER_PATH_CAP], key[32];
        snprintf(path, sizeof path, "%s/fold-%d.json", dir, k);
        snprintf(key, sizeof key, "waf.%d", E - 1);
        mer_json *j = NULL;
        double w = NAN;
        if (mer_json_load(&j, path) != MER_OK || mer_json_double_or(j, key, NAN, &w) != MER_OK)
            w = NAN;
        mer_json_free(j);
        sum += w;
    }
    return sum / K;
}

static cJSON *class_counts_json(const int64_t *cnt, const char *const *classes, int32_t c,
                                double scale) {
    cJSON *o = cJSON_CreateObject();
    for (int32_t j = 0; o && j < c; j++) cJSON_AddNumberToObject(o, classes[j], (double)cnt[j] * scale);
    return o;
}

mer_status mer_train_pseudo(const mer_dataset *labeled, const mer_dataset *unlabeled,
                            const mer_dataset *test, const mer_train_params *tp,
                            const mer_pseudo_params *pp, const char *rundir, mer_metrics *out) {
    if (!tp || !pp || !labeled || !unlabeled || !rundir || pp->rounds < 0 || pp->rounds > 100)
        return mer__err(MER_ERR_INVALID_ARG, "self-training: bad arguments (rounds 0..100)");
    if (pp->source != MER_PSEUDO_FOLD && pp->source != MER_PSEUDO_ENSEMBLE)
        return mer__err(MER_ERR_INVALID_ARG, "self-training: unknown pseudo-label source %d",
                        (int)pp->source);
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
    /* one fold has no held-out part to protect: the ensemble is its only model */
    const int fold_src = pp->source == MER_PSEUDO_FOLD && tp->folds > 1;
    if (fold_src && tp->folds > 64)
        return mer__err(MER_ERR_INVALID_ARG, "self-training: the fold source handles up to 64 "
                        "folds, got %d (use --pseudo-source ensemble)", tp->folds);
    const int32_t K = fold_src ? tp->folds : 1;   /* pick sets per round */

    char dir[MER_PATH_CAP], sub[MER_PATH_CAP];
    if (mkdir(rundir, 0755) != 0 && errno != EEXIST)
        return mer__err(MER_ERR_IO, "%s: cannot create: %s", rundir, strerror(errno));
    snprintf(sub, sizeof sub, "%s/rounds", rundir);
    if (pp->rounds > 0 && mkdir(sub, 0755) != 0 && errno != EEXIST)
        return mer__err(MER_ERR_IO, "%s: cannot create: %s", sub, strerror(errno));

    const int64_t nu = mer_dataset_count(unlabeled), nl = mer_dataset_count(labeled);
    int64_t lab_count[MER_MAX_CLASSES] = {0};
    for (int64_t i = 0; i < nl; i++)
        if (mer_dataset_label(labeled, i) >= 0) lab_count[mer_dataset_label(labeled, i)]++;
    float *probs = mer__alloc((size_t)(nu > 0 ? nu : 1) * c * sizeof(float));
    pick *picks = mer__alloc((size_t)(nu > 0 ? nu : 1) * sizeof(pick));
    int64_t *gain = mer__calloc((size_t)K * c, sizeof(int64_t));   /* (K, c) picks in use */
    /* (nu, c): the folds that gave clip i label y (one data set row per (clip, label)) */
    uint64_t *mask = mer__calloc((size_t)(nu > 0 ? nu : 1) * c, sizeof(uint64_t));
    cJSON *hist = cJSON_CreateObject();
    cJSON *rounds = cJSON_CreateArray();
    if (!probs || !picks || !gain || !mask || !hist || !rounds) {
        mer__free(probs), mer__free(picks), mer__free(gain), mer__free(mask);
        cJSON_Delete(hist), cJSON_Delete(rounds);
        return mer__err(MER_ERR_NOMEM, "self-training: out of memory");
    }
    cJSON_AddStringToObject(hist, "source", fold_src ? "fold" : "ensemble");
    cJSON_AddItemToObject(hist, "rounds", rounds);
    cJSON *th = cJSON_AddObjectToObject(hist, "thresholds");
    for (int32_t j = 0; j < c; j++) cJSON_AddNumberToObject(th, classes[j], pp->threshold[j]);
    cJSON_AddNumberToObject(hist, "max_add", (double)pp->max_add);
    cJSON_AddBoolToObject(hist, "balance", pp->balance != 0);
    cJSON_AddNumberToObject(hist, "unlabeled", (double)nu);

    mer_dataset *cur = NULL;          /* NULL: the labeled set itself */
    mer_status s = MER_OK;
    mer_metrics met;
    for (int32_t r = 0; r <= pp->rounds && s == MER_OK; r++) {
        const int last = r == pp->rounds;
        if (last) snprintf(dir, sizeof dir, "%s", rundir);
        else snprintf(dir, sizeof dir, "%s/rounds/round-%d", rundir, r);
        int64_t tot[MER_MAX_CLASSES] = {0}, n_tot = 0;
        for (int32_t k = 0; k < K; k++)
            for (int32_t j = 0; j < c; j++) tot[j] += gain[k * c + j], n_tot += gain[k * c + j];
        MER_LOG_I("self-training round %d/%d: %lld labeled + %.1f pseudo-labelled clips%s", r,
                  pp->rounds, (long long)nl, (double)n_tot / K, fold_src ? " per fold" : "");
        s = mer_train_run(cur ? cur : labeled, last ? test : NULL, tp, dir, &met);
        if (s == MER_OK && cur && fold_src) s = check_fold_training(dir, cur, K, tp->seed);
        if (s != MER_OK) {
            mer__err_prefix("self-training round %d", r);
            break;
        }
        cJSON *e = cJSON_CreateObject();
        cJSON_AddNumberToObject(e, "round", r);
        cJSON_AddNumberToObject(e, "labeled_clips", (double)nl);
        /* per fold model: what one model of this round trained on beyond the labeled clips */
        cJSON_AddNumberToObject(e, "pseudo_clips", (double)n_tot / K);
        cJSON_AddItemToObject(e, "pseudo_per_class", class_counts_json(tot, classes, c, 1.0 / K));
        if (fold_src) {
            cJSON *pf = cJSON_AddArrayToObject(e, "per_fold");
            for (int32_t k = 0; k < K; k++) {
                int64_t nk = 0;
                for (int32_t j = 0; j < c; j++) nk += gain[k * c + j];
                cJSON *o = cJSON_CreateObject();
                cJSON_AddNumberToObject(o, "fold", k);
                cJSON_AddNumberToObject(o, "pseudo_clips", (double)nk);
                cJSON_AddItemToObject(o, "pseudo_per_class", class_counts_json(gain + k * c, classes, c, 1.0));
                cJSON_AddItemToArray(pf, o);
            }
        }
        cJSON_AddNumberToObject(e, "cv_waf", met.waf);
        cJSON_AddNumberToObject(e, "cv_accuracy", met.accuracy);
        double wl = tp->folds > 1 ? last_epoch_waf(dir, tp->folds, tp->epochs) : NAN;
        if (isfinite(wl)) cJSON_AddNumberToObject(e, "cv_waf_last_epoch", wl);
        cJSON_AddStringToObject(e, "rundir", dir);
        cJSON_AddItemToArray(rounds, e);
        MER_LOG_I("self-training round %d: CV WAF %.4f", r, met.waf);
        if (last) break;

        /* this round's models label the whole pool: fold k's model for fold k, or the
         * ensemble for every fold */
        mer_run *run = NULL;
        mer_dataset *next = NULL;
        mer__sb csv = {0};
        mer__sb_printf(&csv, "name,fold,label,confidence\n");
        if ((s = mer_run_open(&run, dir)) == MER_OK && fold_src && mer__run_n_folds(run) != K)
            s = mer__err(MER_ERR_FORMAT, "%s: %d fold models, expected %d", dir,
                         mer__run_n_folds(run), K);
        if (s == MER_OK) s = mer_dataset_init(&next, classes, c, mods, M);
        for (int64_t i = 0; i < nl && s == MER_OK; i++)
            s = mer_dataset_add_from(next, labeled, i, mer_dataset_label(labeled, i),
                                     mer__dataset_train_only(labeled, i));
        memset(gain, 0, (size_t)K * c * sizeof *gain);
        memset(mask, 0, (size_t)(nu > 0 ? nu : 1) * c * sizeof *mask);
        for (int32_t k = 0; k < K && s == MER_OK && nu > 0; k++) {
            s = mer__run_predict_fold(run, fold_src ? k : -1, unlabeled, probs);
            if (s != MER_OK) break;
            int64_t n_pick = select_picks(picks, probs, nu, c, pp, lab_count, nl);
            for (int64_t q = 0; q < n_pick; q++) {
                mask[picks[q].idx * c + picks[q].label] |= fold_src ? 1ULL << k : MER__ALL_FOLDS;
                gain[k * c + picks[q].label]++;
                mer__sb_csv_field(&csv, mer_dataset_name(unlabeled, picks[q].idx));
                mer__sb_printf(&csv, ",%d,", fold_src ? k : -1);
                mer__sb_csv_field(&csv, classes[picks[q].label]);
                mer__sb_printf(&csv, ",%.6f\n", picks[q].conf);
            }
        }
        mer_run_free(run);
        for (int64_t i = 0; i < nu && s == MER_OK; i++)
            for (int32_t y = 0; y < c && s == MER_OK; y++) {
                if (!mask[i * c + y]) continue;
                s = mer_dataset_add_from(next, unlabeled, i, y, 1);
                if (s == MER_OK)
                    s = mer__dataset_set_fold_mask(next, mer_dataset_count(next) - 1, mask[i * c + y]);
            }
        snprintf(sub, sizeof sub, "%s/rounds/pseudo-%d.csv", rundir, r + 1);
        if (s == MER_OK) s = mer__sb_save(&csv, sub);
        mer__sb_free(&csv);
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
    mer__free(probs), mer__free(picks), mer__free(gain), mer__free(mask);
    return s;
}
