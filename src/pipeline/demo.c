/*
 * demo.c -- mer_demo: the main job end to end on a labeled speech data set (the bundled EmoDB
 * subset by default), with no model weights: weight-free acoustic features (cached), a
 * leave-one-speaker-out evaluation with the project's trainer (src/train/loso.c: fixed epochs, a
 * seed ensemble, speaker normalisation), a final model on every speaker whose recipe records the
 * extraction and the standardisation, and that model applied to one file. docs/demo.md.
 */
#include "internal.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

mer_demo_params mer_demo_default_params(void) {
    mer_demo_params p;
    memset(&p, 0, sizeof p);
    p.out = "out/demo";
    p.seeds = 3;
    p.epochs = 100;
    snprintf(p.model, sizeof p.model, "linear");
    p.hidden = 128;
    p.dropout = 0.5f;
    p.lr = 1e-3;
    p.l2 = 1e-3;
    p.speeds[0] = 1.0;
    p.speeds[1] = 0.9;
    p.speeds[2] = 1.1;
    p.n_speeds = 3;
    p.single_clip = 1;
    p.functionals = MER_ACOUSTIC_EXTENDED;
    return p;
}

void mer_demo_result_free(mer_demo_result *r) {
    if (!r) return;
    free(r->data);
    free(r->feature_dir);
    free(r->report_dir);
    free(r->model_dir);
    free(r->example_path);
    free(r);
}

/* ---- helpers ----------------------------------------------------------------------------- */

static int file_exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* The media file of a clip: DIR/flac/<name>.flac, DIR/<name>.flac, DIR/wav/<name>.wav or
 * DIR/<name>.wav (the first that exists; else the first form, for the message). */
static int clip_path(char *buf, size_t n, const char *dir, const char *name) {
    const char *fmts[] = {"%s/flac/%s.flac", "%s/%s.flac", "%s/wav/%s.wav", "%s/%s.wav"};
    for (size_t i = 0; i < 4; i++) {
        snprintf(buf, n, fmts[i], dir, name);
        if (file_exists(buf)) return 0;
    }
    snprintf(buf, n, fmts[0], dir, name);
    return -1;
}

/* The cached feature file of clip `name` at speed factor f ("<name>.npy" for the clip itself,
 * "<name>@speed0.9.npy" for a copy); names become paths only through mer_name_path. */
static mer_status feature_path(char *buf, size_t n, const char *dir, const char *name, double f) {
    char sfx[64];
    if (f == 1.0)
        snprintf(sfx, sizeof sfx, ".npy");
    else
        snprintf(sfx, sizeof sfx, "@speed%g.npy", f);
    return mer_name_path(buf, n, dir, name, sfx, NULL, 0);
}

static char *join(const char *dir, const char *leaf) {
    size_t n = strlen(dir) + strlen(leaf) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", dir, leaf);
    return p;
}

/* v as written with 9 significant digits (what the run's recipe has always stored: float
 * precision, and the same doubles for `mer predict` to read back) */
static double sig9(double v) {
    char b[40];
    snprintf(b, sizeof b, "%.9g", v);
    return strtod(b, NULL);
}

/* The final model's recipe: the extraction recipe plus "adapt": "group" (the model was trained
 * on per-speaker standardised features, so `mer predict --adapt` standardises a batch of one
 * speaker's clips by its own statistics) and "norm" (the training set's pooled statistics, for
 * a single clip). */
static mer_status model_recipe(const char *base, const double *mean, const double *std, int32_t D,
                               char **out) {
    mer__json w = {cJSON_Parse(base), 0};
    if (!w.root) return mer__err(MER_ERR_INTERNAL, "demo: the acoustic recipe is not JSON");
    mer__json_str(&w, w.root, "adapt", "group");
    struct cJSON *norm = mer__json_obj(&w, w.root, "norm");
    struct cJSON *m = mer__json_arr(&w, norm, "mean"), *sd = mer__json_arr(&w, norm, "std");
    for (int32_t d = 0; d < D; d++) {
        mer__json_num(&w, m, NULL, sig9(mean[d]));
        mer__json_num(&w, sd, NULL, sig9(std[d] > 1e-12 ? std[d] : 1.0));
    }
    mer_status s = mer__json_take(&w, 0, out);
    if (s == MER_OK) (*out)[strcspn(*out, "\n")] = '\0'; /* one line, as config.json embeds it */
    return s;
}

/* ---- features ---------------------------------------------------------------------------- */

typedef struct {
    const mer_demo_params *p;
    const mer_acoustic_recipe *recipe;
    const char *data, *fdir;
    const char *const *names;
    int64_t N;
    int32_t D;
    float *X;                 /* (NA, D), row a * N + i: clip i at speeds[a] */
    const uint8_t *need;
    int64_t done, total, failed;
    int aborted;
} feat_job;

/* Extract every row that is not cached (clips in parallel, one per thread at a time), writing
 * each to the cache; failures are logged and counted. */
static void extract_rows(feat_job *j) {
    const int64_t NA = j->N * j->p->n_speeds;
#pragma omp parallel for schedule(dynamic) num_threads(mer__threads())
    for (int64_t q = 0; q < NA; q++) {
        if (!j->need[q] || __atomic_load_n(&j->aborted, __ATOMIC_RELAXED)) continue;
        const int64_t i = q % j->N;
        const double f = j->p->speeds[q / j->N];
        char media[4200], fp[4200];
        float *d = NULL;
        int32_t nd;
        int64_t sh[2];
        mer_status st = MER_ERR_NOT_FOUND;
        if (clip_path(media, sizeof media, j->data, j->names[i]) == 0)
            st = mer_acoustic_extract_file_speed(j->recipe, media, f, &d, &nd, sh);
        else
            mer_clear_error();
        if (st == MER_OK) {
            memcpy(j->X + q * j->D, d, (size_t)j->D * sizeof(float));
            int64_t shape[1] = {j->D};
            st = feature_path(fp, sizeof fp, j->fdir, j->names[i], f);
            if (st == MER_OK) st = mer_npy_write(fp, d, 1, shape);
        }
#pragma omp critical
        {
            if (st != MER_OK) {
                MER_LOG_E("%s: %s", media, mer_last_error()[0] ? mer_last_error() : "file not found");
                j->failed++;
            }
            j->done++;
            if (j->p->progress) j->p->progress(j->done, j->total, j->p->progress_user_data);
            if (j->p->abort && j->p->abort(j->p->abort_user_data))
                __atomic_store_n(&j->aborted, 1, __ATOMIC_RELAXED);
        }
        free(d);
    }
}

/* ---- the demo ---------------------------------------------------------------------------- */

static void stage_done(const mer_demo_params *p, mer_demo_stage st, const mer_demo_result *r) {
    if (p->stage) p->stage(st, r, p->stage_user_data);
}

static mer_status demo_run(const mer_demo_params *p, mer_demo_result **out);

mer_status mer_demo(const mer_demo_params *params, mer_demo_result **out) {
    if (!out) return mer__err(MER_ERR_INVALID_ARG, "mer_demo: NULL result");
    *out = NULL;
    mer_demo_params def = mer_demo_default_params();
    const mer_demo_params *p = params ? params : &def;
    const int threads = mer__threads_use(p->n_threads);
    mer_status s = demo_run(p, out);
    mer__threads_use(threads);
    return s;
}

static mer_status demo_run(const mer_demo_params *p, mer_demo_result **out) {
    if (!p->out || p->seeds < 1 || p->epochs < 1 || p->n_speeds < 1 ||
        p->n_speeds > MER_DEMO_MAX_SPEEDS || p->speeds[0] != 1.0)
        return mer__err(MER_ERR_INVALID_ARG, "mer_demo: bad parameters (out, seeds %d, epochs %d, "
                        "%d speeds starting at 1)", p->seeds, p->epochs, p->n_speeds);
    for (int32_t a = 1; a < p->n_speeds; a++)
        if (!(p->speeds[a] >= 0.5 && p->speeds[a] <= 2.0) || p->speeds[a] == 1.0)
            return mer__err(MER_ERR_INVALID_ARG, "mer_demo: speed factor %g (want [0.5, 2], not 1)",
                            p->speeds[a]);
    const double t0 = mer__now();
    mer_demo_result *r = calloc(1, sizeof *r);
    if (!r) return mer__err(MER_ERR_NOMEM, "demo: out of memory");
    mer_status s = MER_OK;
    char path[4096];
    mer_csv *csv = NULL;
    mer_dataset *ds = NULL, *dsg = NULL, *one = NULL;
    mer_run *run = NULL;
    float *X = NULL, *Xg = NULL, *feat = NULL;
    char *recipe = NULL, *full_recipe = NULL, *cached = NULL;
    const char **names = NULL, **groups = NULL, *classes[MER_MAX_CLASSES];
    char **ngroups = NULL;
    int64_t n_ngroups = 0;
    int32_t *labels = NULL;
    uint8_t *need = NULL;
    double *mean = NULL, *std = NULL;
    int32_t C = 0;

    /* ---- labels ---- */
    if (p->data) {
        if (!(r->data = strdup(p->data))) s = mer__err(MER_ERR_NOMEM, "demo: out of memory");
    } else {
        s = mer_data_path("data/emodb", &r->data);
    }
    if (s) goto done;
    if (strlen(r->data) > 2000 || strlen(p->out) > 2000) {
        s = mer__err(MER_ERR_INVALID_ARG, "demo: data or output path too long");
        goto done;
    }
    snprintf(path, sizeof path, "%s/labels.csv", r->data);
    int32_t cn, ce, cs;
    if ((s = mer_csv_load(&csv, path)) || (s = mer_csv_col(csv, "name", &cn)) ||
        (s = mer_csv_col(csv, "emotion", &ce)) || (s = mer_csv_col(csv, "speaker", &cs)))
        goto done;
    const int64_t N = mer_csv_rows(csv);
    if (N < 2) {
        s = mer__err(MER_ERR_FORMAT, "%s: needs at least 2 labeled clips, has %lld", path, (long long)N);
        goto done;
    }
    names = calloc((size_t)N, sizeof *names);
    groups = calloc((size_t)N, sizeof *groups);
    labels = calloc((size_t)N, sizeof *labels);
    if (!names || !groups || !labels) {
        s = mer__err(MER_ERR_NOMEM, "demo: out of memory");
        goto done;
    }
    for (int64_t i = 0; i < N; i++) {
        names[i] = mer_csv_cell(csv, i, cn);
        groups[i] = mer_csv_cell(csv, i, cs);
        /* clip names become feature files, speakers become run directories */
        if ((s = mer_name_check(names[i], path, i + 2)) || (s = mer_name_check(groups[i], path, i + 2)))
            goto done;
        const char *e = mer_csv_cell(csv, i, ce);
        int32_t c = 0;
        while (c < C && strcmp(classes[c], e)) c++;
        if (c == C) {
            if (C == MER_MAX_CLASSES) {
                s = mer__err(MER_ERR_FORMAT, "%s: more than %d classes", path, MER_MAX_CLASSES);
                goto done;
            }
            if (strlen(e) >= MER_NAME_MAX) {
                s = mer__err(MER_ERR_FORMAT, "%s: row %lld: class name longer than %d bytes", path,
                             (long long)i + 2, MER_NAME_MAX - 1);
                goto done;
            }
            classes[C++] = e;
        }
    }
    /* sorted class names, as the trainer orders classes read from a file */
    for (int32_t a = 1; a < C; a++)
        for (int32_t b = a; b > 0 && strcmp(classes[b], classes[b - 1]) < 0; b--) {
            const char *t = classes[b];
            classes[b] = classes[b - 1];
            classes[b - 1] = t;
        }
    for (int64_t i = 0; i < N; i++) {
        const char *e = mer_csv_cell(csv, i, ce);
        for (int32_t c = 0; c < C; c++)
            if (!strcmp(classes[c], e)) labels[i] = c;
    }
    int32_t G = 0;
    for (int64_t i = 0; i < N; i++) {
        int64_t j = 0;
        while (j < i && strcmp(groups[j], groups[i])) j++;
        if (j == i) G++;
    }
    r->n_clips = N;
    r->n_speakers = G;
    r->n_classes = C;
    for (int32_t c = 0; c < C; c++) snprintf(r->classes[c], MER_NAME_MAX, "%s", classes[c]);
    stage_done(p, MER_DEMO_DATA, r);
    if (G < 2) {
        s = mer__err(MER_ERR_FORMAT, "%s: leave-one-speaker-out needs at least 2 speakers, has %d",
                     path, G);
        goto done;
    }

    /* ---- features (cached) ---- */
    mer_acoustic_recipe ar = mer_acoustic_default_recipe();
    ar.params.functionals = p->functionals;
    const int32_t D = mer_acoustic_functional_dim(&ar.params);
    r->feature_dim = D;
    if ((s = mer_acoustic_recipe_to_json(&ar, &recipe))) goto done;
    if (!(r->feature_dir = join(p->out, "features")) || !(r->report_dir = join(p->out, "report")) ||
        !(r->model_dir = join(p->out, "model"))) {
        s = mer__err(MER_ERR_NOMEM, "demo: out of memory");
        goto done;
    }
    if ((s = mer_mkdir_p(r->feature_dir)) || (s = mer_mkdir_p(r->report_dir))) goto done;
    snprintf(path, sizeof path, "%s/recipe.json", r->feature_dir);
    size_t clen = 0;
    if (mer__read_file(path, &cached, &clen) != MER_OK) cached = NULL;
    mer_clear_error();
    const int cache_ok = cached && !strcmp(cached, recipe);
    const int64_t NA = N * p->n_speeds; /* row a * N + i: clip i at speeds[a] */
    X = malloc((size_t)NA * D * sizeof(float));
    need = calloc((size_t)NA, 1);
    if (!X || !need) {
        s = mer__err(MER_ERR_NOMEM, "demo: out of memory for %lld feature rows", (long long)NA);
        goto done;
    }
    for (int64_t q = 0; q < NA; q++) {
        char fp[4200];
        if ((s = feature_path(fp, sizeof fp, r->feature_dir, names[q % N], p->speeds[q / N]))) goto done;
        float *d = NULL;
        int32_t nd = 0;
        int64_t sh[MER_MAX_DIMS];
        if (cache_ok && mer_npy_read(fp, &d, &nd, sh) == MER_OK && nd == 1 && sh[0] == D) {
            memcpy(X + q * D, d, (size_t)D * sizeof(float));
            r->n_cached++;
        } else {
            need[q] = 1;
        }
        free(d);
    }
    mer_clear_error();
    const double tf = mer__now();
    if (r->n_cached < NA) {
        /* the recipe first: a cache with a stale recipe.json is recomputed whole */
        if ((s = mer_write_file_atomic(path, recipe, strlen(recipe)))) goto done;
        feat_job fj = {p, &ar, r->data, r->feature_dir, names, N, D, X, need, 0, NA - r->n_cached, 0, 0};
        extract_rows(&fj);
        if (fj.aborted) {
            s = mer__err(MER_ERR_ABORTED, "demo: stopped during feature extraction");
            goto done;
        }
        if (fj.failed) {
            s = mer__err(MER_ERR_MEDIA, "%s: %lld clips could not be read", r->data, (long long)fj.failed);
            goto done;
        }
    }
    r->n_extracted = NA - r->n_cached;
    r->extract_seconds = mer__now() - tf;
    stage_done(p, MER_DEMO_FEATURES, r);

    /* ---- data set: raw features (the evaluation standardises inside) ---- */
    const char *mods[1] = {"acoustic"};
    if ((s = mer_dataset_init(&ds, classes, C, mods, 1))) goto done;
    /* the copies train only (never held out or scored); each copy of a speaker is standardised
     * as a speaker of its own */
    if (!(ngroups = calloc((size_t)NA, sizeof *ngroups))) {
        s = mer__err(MER_ERR_NOMEM, "demo: out of memory");
        goto done;
    }
    n_ngroups = NA;
    for (int64_t q = 0; q < NA; q++) {
        const int64_t i = q % N;
        mer_tensor t;
        int64_t shape[1] = {D};
        char rowname[600], ng[600];
        if (q < N) snprintf(rowname, sizeof rowname, "%s", names[i]);
        else snprintf(rowname, sizeof rowname, "%s@speed%g", names[i], p->speeds[q / N]);
        snprintf(ng, sizeof ng, "%s@%g", groups[i], p->speeds[q / N]);
        if (!(ngroups[q] = strdup(ng))) {
            s = mer__err(MER_ERR_NOMEM, "demo: out of memory");
            goto done;
        }
        mer_tensor_view(&t, X + q * D, MER_DTYPE_F32, 1, shape);
        if ((s = mer_dataset_add(ds, rowname, labels[i], groups[i], q >= N, &t))) goto done;
    }
    mer_train_params tp = mer_train_default_params();
    tp.folds = 1;
    tp.epochs = p->epochs;
    snprintf(tp.model, sizeof tp.model, "%s", p->model);
    tp.hidden = p->hidden;
    tp.dropout = p->dropout;
    tp.lr = p->lr;
    tp.l2 = p->l2;
    tp.plots = 0;
    tp.checkpoint_every = 0;
    tp.abort = p->abort;
    tp.abort_user_data = p->abort_user_data;
    mer_loso_params lp = mer_loso_default_params();
    lp.seeds = p->seeds;
    lp.norm_groups = (const char *const *)ngroups;
    lp.progress = p->progress;
    lp.progress_user_data = p->progress_user_data;
    lp.abort = p->abort;
    lp.abort_user_data = p->abort_user_data;

    /* ---- leave-one-speaker-out: speaker-normalised (the headline), then single clips ---- */
    const double tl = mer__now();
    lp.norm = MER_NORM_GROUP;
    lp.title = "EmoDB leave-one-speaker-out (speaker-normalised)";
    if ((s = mer_loso_run(ds, &tp, &lp, r->report_dir, NULL, &r->loso))) goto done;
    r->eval_seconds = mer__now() - tl;
    stage_done(p, MER_DEMO_LOSO, r);
    if (p->single_clip) {
        snprintf(path, sizeof path, "%s/single-clip", r->report_dir);
        lp.norm = MER_NORM_GROUP_SINGLE;
        lp.title = "EmoDB leave-one-speaker-out (single clip, training-set statistics)";
        if ((s = mer_loso_run(ds, &tp, &lp, path, NULL, &r->single))) goto done;
        r->has_single = 1;
        r->eval_seconds = mer__now() - tl;
        stage_done(p, MER_DEMO_SINGLE, r);
    }

    /* ---- final model on every speaker ---- */
    mean = malloc((size_t)D * sizeof(double));
    std = malloc((size_t)D * sizeof(double));
    Xg = malloc((size_t)NA * D * sizeof(float));
    if (!mean || !std || !Xg) {
        s = mer__err(MER_ERR_NOMEM, "demo: out of memory");
        goto done;
    }
    if ((s = mer_column_stats(X, NA, D, mean, std)) || (s = model_recipe(recipe, mean, std, D, &full_recipe)))
        goto done;
    memcpy(Xg, X, (size_t)NA * D * sizeof(float));
    s = mer_group_standardize(Xg, NA, D, (const char *const *)ngroups);
    if (!s) s = mer_dataset_init(&dsg, classes, C, mods, 1);
    for (int64_t q = 0; !s && q < NA; q++) {
        mer_tensor t;
        int64_t shape[1] = {D};
        mer_tensor_view(&t, Xg + q * D, MER_DTYPE_F32, 1, shape);
        s = mer_dataset_add(dsg, mer_dataset_name(ds, q), labels[q % N], groups[q % N], 0, &t);
    }
    if (s) goto done;
    /* a rerun replaces the previous model, but only a directory mer made that holds nothing
     * else is removed (docs/safety.md) */
    if ((s = mer_dir_remove_made(r->model_dir))) goto done;
    mer_train_params fp = tp;
    fp.recipe_json = full_recipe;
    fp.plots = 1;
    const double tm = mer__now();
    if ((s = mer_train_run(dsg, NULL, &fp, r->model_dir, NULL))) goto done;
    r->model_seconds = mer__now() - tm;
    stage_done(p, MER_DEMO_MODEL, r);

    /* ---- the model applied to one file, through its recipe as `mer predict --input` ---- */
    {
        char media[4200];
        if (clip_path(media, sizeof media, r->data, names[0])) {
            s = mer__err(MER_ERR_NOT_FOUND, "%s: not found", media);
            goto done;
        }
        if (!(r->example_path = strdup(media))) {
            s = mer__err(MER_ERR_NOMEM, "demo: out of memory");
            goto done;
        }
        r->example_label = labels[0];
        int32_t nd;
        int64_t sh[MER_MAX_DIMS];
        mer_tensor t;
        if ((s = mer_run_open(&run, r->model_dir)) ||
            (s = mer_acoustic_extract(mer_run_recipe(run), media, "acoustic", &feat, &nd, sh)) ||
            (s = mer_dataset_init(&one, classes, C, mods, 1)) ||
            (s = mer_tensor_view(&t, feat, MER_DTYPE_F32, nd, sh)) ||
            (s = mer_dataset_add(one, names[0], -1, NULL, 0, &t)) ||
            (s = mer_run_predict(run, one, r->example_probs)))
            goto done;
        /* classes by decreasing probability: a stable insertion sort keeps ties in class order */
        int32_t *ord = r->example_order;
        const float *pr = r->example_probs;
        for (int32_t c = 0; c < C; c++) ord[c] = c;
        for (int32_t a = 1; a < C; a++)
            for (int32_t b = a; b > 0 && pr[ord[b]] > pr[ord[b - 1]]; b--) {
                int32_t tmp = ord[b];
                ord[b] = ord[b - 1];
                ord[b - 1] = tmp;
            }
    }
    r->seconds = mer__now() - t0;
    stage_done(p, MER_DEMO_EXAMPLE, r);

done:
    mer_run_free(run);
    mer_dataset_free(one);
    mer_dataset_free(ds);
    mer_dataset_free(dsg);
    mer_csv_free(csv);
    free(X);
    free(Xg);
    free(feat);
    free(need);
    free(recipe);
    free(full_recipe);
    free(cached);
    free(names);
    free(groups);
    for (int64_t q = 0; q < n_ngroups; q++) free(ngroups[q]);
    free(ngroups);
    free(labels);
    free(mean);
    free(std);
    if (s != MER_OK) {
        mer_demo_result_free(r);
        return s;
    }
    *out = r;
    return MER_OK;
}
