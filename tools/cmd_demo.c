/*
 * cmd_demo.c -- `mer demo`: the main job end to end on the bundled EmoDB subset, with no model
 * weights. Extract weight-free acoustic features (cached under OUT/features), evaluate
 * leave-one-speaker-out with the project's trainer (src/train/loso.c: fixed epochs, a seed
 * ensemble, speaker normalisation), print WAF / accuracy / UAR / the confusion matrix, write
 * OUT/report/, train a final model on every speaker into OUT/model/ (a run directory that
 * `mer predict --run OUT/model --input FILE...` applies to raw media: it records the extraction
 * recipe and the feature standardisation), and apply it to one file. docs/demo.md.
 */
#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *usage_text =
    "usage: mer demo [--data DIR] [--out DIR] [--seeds N] [--epochs N] [--threads N]\n"
    "\n"
    "Speech emotion recognition on the bundled EmoDB subset, end to end (docs/demo.md):\n"
    "acoustic features -> leave-one-speaker-out evaluation -> report -> final model -> one file.\n"
    "  --data DIR     labels.csv (name,emotion,speaker) + flac/<name>.flac (default: the bundled\n"
    "                 data/emodb of the install or source tree, or $MER_DATA_DIR/data/emodb)\n"
    "  --out DIR      features/, report/, model/ go here (default out/demo)\n"
    "  --seeds N      models averaged per held-out speaker (default 3)\n"
    "  --epochs N     training epochs of every model (default 100)\n"
    "  --threads N    worker threads (default: all CPUs)\n"
    "  --model NAME   trainer model (default linear: logistic regression; attention: MLP)\n"
    "  --dropout P --lr X --l2 X --hidden N   model settings (0.5, 1e-3, 1e-3, 128)\n"
    "  --augment F,F,...|none   speed-perturbed training copies (default 0.9,1.1)\n"
    "  --functionals egemaps|extended   acoustic functionals (514, or 929: the default;\n"
    "                 docs/acoustic.md)\n"
    "  --no-single-clip   skip the second evaluation (training-set normalisation)\n";

static const char *cmd = "demo";

static int file_exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

static char *read_text(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = malloc(1 << 16);
    size_t n = buf ? fread(buf, 1, (1 << 16) - 1, f) : 0;
    fclose(f);
    if (buf) buf[n] = 0;
    return buf;
}

static int write_text(const char *path, const char *text) {
    return mer_write_file_atomic(path, text, strlen(text)) == MER_OK ? 0 : -1;
}

/* The media file of a clip: DIR/flac/<name>.flac, DIR/<name>.flac, DIR/wav/<name>.wav or
 * DIR/<name>.wav. */
static int clip_path(char *buf, size_t n, const char *dir, const char *name) {
    const char *fmts[] = {"%s/flac/%s.flac", "%s/%s.flac", "%s/wav/%s.wav", "%s/%s.wav"};
    for (size_t i = 0; i < 4; i++) {
        snprintf(buf, n, fmts[i], dir, name);
        if (file_exists(buf)) return 0;
    }
    snprintf(buf, n, fmts[0], dir, name);
    return -1;
}

typedef struct {
    double t0;
    const char *label;
} loso_prog;

#define MAX_AUG 4

/* "none" or "0.9,1.1": speed factors of the augmented copies; speeds[0] stays 1 (the clip). */
static int parse_speeds(const char *v, double *speeds, int32_t *n) {
    *n = 1;
    if (!strcmp(v, "none")) return 1;
    const char *p = v;
    while (*p) {
        char *end;
        double f = strtod(p, &end);
        if (end == p || !(f >= 0.5 && f <= 2.0) || f == 1.0 || *n > MAX_AUG) return 0;
        for (int32_t k = 0; k < *n; k++)
            if (speeds[k] == f) return 0;
        speeds[(*n)++] = f;
        if (*end == ',') end++;
        else if (*end) return 0;
        p = end;
    }
    return *n > 1;
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

static int loso_progress(int32_t done, int32_t total, void *user) {
    loso_prog *lp = user;
    if (isatty(2)) fprintf(stderr, "\r  %s: speaker %d/%d (%.0f s)   ", lp->label, done, total, cli_now() - lp->t0);
    if (done == total && isatty(2)) fprintf(stderr, "\r%60s\r", "");
    return 0;
}

/* Library messages already name the file: print them as they are. */
static int fail_msg(mer_status s) {
    return cli_fail(cmd, "%s", mer_last_error()[0] ? mer_last_error() : mer_status_str(s));
}

static void print_metrics(const char *title, const mer_metrics *m) {
    printf("%s\n  WAF %.3f   accuracy %.3f   UAR %.3f   (macro F1 %.3f, %lld clips)\n", title,
           m->waf, m->accuracy, m->uar, m->macro_f1, (long long)m->n);
}

static void print_confusion(const mer_metrics *m, const char *const *classes, int32_t C) {
    printf("  confusion (rows: truth, columns: predicted)\n  %-10s", "");
    for (int32_t c = 0; c < C; c++) printf(" %6.6s", classes[c]);
    printf("   recall\n");
    for (int32_t t = 0; t < C; t++) {
        printf("  %-10s", classes[t]);
        for (int32_t c = 0; c < C; c++) printf(" %6lld", (long long)m->confusion[t * C + c]);
        printf("   %5.2f\n", m->recall[t]);
    }
}

int cmd_demo(int argc, char **argv) {
    const char *data = NULL, *out = "out/demo", *model = "linear";
    char *bundled_data = NULL; /* data/emodb of the install or source tree, not the working directory */
    long seeds = 3, epochs = 100, threads = 0, hidden = 128;
    double dropout = 0.5, lr = 1e-3, l2 = 1e-3;
    int single = 1;
    int32_t functionals = MER_ACOUSTIC_EXTENDED; /* docs/demo.md: +0.02 adapted, +0.04 single clip */
    /* speed-perturbed copies of every training clip (docs/demo.md "Augmentation") */
    double speeds[MAX_AUG + 1] = {1.0, 0.9, 1.1};
    int32_t n_speed = 3;
    for (int i = 1; i < argc; i++) {
        const char *v;
        if (cli_flag(argv[i], "--help") || cli_flag(argv[i], "-h")) {
            fputs(usage_text, stdout);
            return 0;
        } else if (cli_opt(argc, argv, &i, "--data", &v)) {
            data = v;
        } else if (cli_opt(argc, argv, &i, "--out", &v)) {
            out = v;
        } else if (cli_opt(argc, argv, &i, "--seeds", &v)) {
            if (!cli_parse_int(v, 1, 50, &seeds)) return cli_usage(cmd, "--seeds must be in [1, 50], got '%s'", v);
        } else if (cli_opt(argc, argv, &i, "--epochs", &v)) {
            if (!cli_parse_int(v, 1, 10000, &epochs)) return cli_usage(cmd, "--epochs must be in [1, 10000], got '%s'", v);
        } else if (cli_opt(argc, argv, &i, "--model", &v)) {
            model = v;
        } else if (cli_opt(argc, argv, &i, "--hidden", &v)) {
            if (!cli_parse_int(v, 4, 4096, &hidden)) return cli_usage(cmd, "--hidden must be in [4, 4096], got '%s'", v);
        } else if (cli_opt(argc, argv, &i, "--dropout", &v)) {
            if (!cli_parse_double(v, 0, 0.95, &dropout)) return cli_usage(cmd, "--dropout must be in [0, 0.95], got '%s'", v);
        } else if (cli_opt(argc, argv, &i, "--lr", &v)) {
            if (!cli_parse_double(v, 1e-6, 1, &lr)) return cli_usage(cmd, "--lr must be in [1e-6, 1], got '%s'", v);
        } else if (cli_opt(argc, argv, &i, "--l2", &v)) {
            if (!cli_parse_double(v, 0, 1, &l2)) return cli_usage(cmd, "--l2 must be in [0, 1], got '%s'", v);
        } else if (cli_opt(argc, argv, &i, "--augment", &v)) {
            if (!parse_speeds(v, speeds, &n_speed))
                return cli_usage(cmd, "--augment takes 'none' or up to %d speed factors in [0.5, 2] "
                                 "other than 1, separated by commas, got '%s'", MAX_AUG, v);
        } else if (cli_opt(argc, argv, &i, "--functionals", &v)) {
            if (strcmp(v, "egemaps") && strcmp(v, "extended"))
                return cli_usage(cmd, "--functionals must be egemaps or extended, got '%s'", v);
            functionals = strcmp(v, "extended") ? MER_ACOUSTIC_EGEMAPS : MER_ACOUSTIC_EXTENDED;
        } else if (cli_flag(argv[i], "--no-single-clip")) {
            single = 0;
        } else if (cli_opt(argc, argv, &i, "--threads", &v)) {
            if (!cli_parse_int(v, 0, 1024, &threads)) return cli_usage(cmd, "--threads must be in [0, 1024], got '%s'", v);
        } else {
            return cli_usage(cmd, "unexpected argument %s", argv[i]);
        }
    }
    if (cli_error()) return cli_usage(cmd, "%s", cli_error());
    if (!data) {
        if (mer_data_path("data/emodb", &bundled_data) != MER_OK) return cli_fail(cmd, "%s", mer_last_error());
        data = bundled_data;
    }
    if (strlen(data) > 2000 || strlen(out) > 2000) {
        free(bundled_data);
        return cli_usage(cmd, "--data/--out path too long");
    }
    cli_set_threads(threads);
    const double t0 = cli_now();
    int rc = 1;
    mer_status s;
    char path[4096], fdir[2600], rdir[2600], mdir[2600];
    mer_csv *csv = NULL;
    mer_dataset *ds = NULL, *dsg = NULL, *one = NULL;
    mer_run *run = NULL;
    float *X = NULL, *probs = NULL, *feat = NULL;
    char *recipe = NULL, *full_recipe = NULL, *cached = NULL;
    const char **names = NULL, **groups = NULL;
    char **ngroups = NULL;
    int64_t n_ngroups = 0;
    char **classes = NULL;
    int32_t *labels = NULL;
    double *mean = NULL, *std = NULL;
    int32_t C = 0;

    /* ---- labels ---- */
    snprintf(path, sizeof path, "%s/labels.csv", data);
    if ((s = mer_csv_load(&csv, path))) {
        rc = fail_msg(s);
        goto done;
    }
    int32_t cn, ce, cs;
    if ((s = mer_csv_col(csv, "name", &cn)) || (s = mer_csv_col(csv, "emotion", &ce)) ||
        (s = mer_csv_col(csv, "speaker", &cs))) {
        rc = fail_msg(s);
        goto done;
    }
    const int64_t N = mer_csv_rows(csv);
    if (N < 2) {
        rc = cli_fail(cmd, "%s: needs at least 2 labeled clips, has %lld", path, (long long)N);
        goto done;
    }
    names = calloc((size_t)N, sizeof *names);
    groups = calloc((size_t)N, sizeof *groups);
    labels = calloc((size_t)N, sizeof *labels);
    classes = calloc(MER_MAX_CLASSES, sizeof *classes);
    if (!names || !groups || !labels || !classes) {
        rc = cli_fail(cmd, "out of memory");
        goto done;
    }
    for (int64_t i = 0; i < N; i++) {
        names[i] = mer_csv_cell(csv, i, cn);
        groups[i] = mer_csv_cell(csv, i, cs);
        /* clip names become feature files, speakers become run directories */
        if ((s = mer_name_check(names[i], path, i + 2)) || (s = mer_name_check(groups[i], path, i + 2))) {
            rc = fail_msg(s);
            goto done;
        }
        const char *e = mer_csv_cell(csv, i, ce);
        int32_t c = 0;
        while (c < C && strcmp(classes[c], e)) c++;
        if (c == C) {
            if (C == MER_MAX_CLASSES) {
                rc = cli_fail(cmd, "%s: more than %d classes", path, MER_MAX_CLASSES);
                goto done;
            }
            classes[C++] = (char *)e;
        }
    }
    /* sorted class names, as the trainer orders classes read from a file */
    for (int32_t a = 1; a < C; a++)
        for (int32_t b = a; b > 0 && strcmp(classes[b], classes[b - 1]) < 0; b--) {
            char *t = classes[b];
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
    printf("mer demo: %lld clips, %d speakers, %d classes from %s\n", (long long)N, G, C, data);
    if (G < 2) {
        rc = cli_fail(cmd, "%s: leave-one-speaker-out needs at least 2 speakers, has %d", path, G);
        goto done;
    }

    /* ---- features (cached) ---- */
    mer_acoustic_recipe r = mer_acoustic_default_recipe();
    r.params.functionals = functionals;
    const int32_t D = mer_acoustic_functional_dim(&r.params);
    if ((s = mer_acoustic_recipe_to_json(&r, &recipe))) {
        rc = cli_fail_status(cmd, s, "recipe");
        goto done;
    }
    snprintf(fdir, sizeof fdir, "%s/features", out);
    snprintf(rdir, sizeof rdir, "%s/report", out);
    snprintf(mdir, sizeof mdir, "%s/model", out);
    if ((s = mer_mkdir_p(fdir)) || (s = mer_mkdir_p(rdir))) {
        rc = fail_msg(s);
        goto done;
    }
    snprintf(path, sizeof path, "%s/recipe.json", fdir);
    cached = read_text(path);
    int cache_ok = cached && !strcmp(cached, recipe);
    const int64_t NA = N * n_speed; /* row a * N + i: clip i at speeds[a] */
    X = malloc((size_t)NA * D * sizeof(float));
    if (!X) {
        rc = cli_fail(cmd, "out of memory");
        goto done;
    }
    int64_t n_cached = 0, n_failed = 0;
    uint8_t *need = calloc((size_t)NA, 1);
    if (!need) {
        rc = cli_fail(cmd, "out of memory");
        goto done;
    }
    for (int64_t q = 0; q < NA; q++) {
        const int64_t i = q % N;
        char fp[4200];
        if ((s = feature_path(fp, sizeof fp, fdir, names[i], speeds[q / N]))) {
            free(need);
            rc = fail_msg(s);
            goto done;
        }
        float *d = NULL;
        int32_t nd = 0;
        int64_t sh[MER_MAX_DIMS];
        if (cache_ok && mer_npy_read(fp, &d, &nd, sh) == MER_OK && nd == 1 && sh[0] == D) {
            memcpy(X + q * D, d, (size_t)D * sizeof(float));
            n_cached++;
        } else {
            need[q] = 1;
        }
        free(d);
    }
    mer_clear_error();
    double tf = cli_now();
    if (n_cached < NA) {
        /* write the recipe first: a cache with a stale recipe.json is recomputed whole */
        if (write_text(path, recipe)) {
            free(need);
            rc = cli_fail(cmd, "%s", mer_last_error());
            goto done;
        }
        cli_progress prog;
        cli_progress_start(&prog, "features", NA - n_cached);
        int64_t done_n = 0;
#pragma omp parallel for schedule(dynamic) num_threads(mer_get_threads())
        for (int64_t q = 0; q < NA; q++) {
            if (!need[q]) continue;
            const int64_t i = q % N;
            const double f = speeds[q / N];
            char media[4200], fp[4200];
            float *d = NULL;
            int32_t nd;
            int64_t sh[2];
            mer_status st = MER_ERR_NOT_FOUND;
            if (clip_path(media, sizeof media, data, names[i]) == 0)
                st = mer_acoustic_extract_file_speed(&r, media, f, &d, &nd, sh);
            else
                mer_clear_error();
            if (st == MER_OK) {
                memcpy(X + q * D, d, (size_t)D * sizeof(float));
                int64_t shape[1] = {D};
                st = feature_path(fp, sizeof fp, fdir, names[i], f);
                if (st == MER_OK) st = mer_npy_write(fp, d, 1, shape);
            }
#pragma omp critical
            {
                if (st != MER_OK) {
                    fprintf(stderr, "mer demo: %s: %s\n", media,
                            mer_last_error()[0] ? mer_last_error() : "file not found");
                    n_failed++;
                }
                done_n++;
                cli_progress_update(&prog, done_n, names[i]);
            }
            free(d);
        }
        cli_progress_end(&prog);
    }
    free(need);
    if (n_failed) {
        rc = cli_fail(cmd, "%s: %lld clips could not be read", data, (long long)n_failed);
        goto done;
    }
    printf("features: %d acoustic functionals per clip (eGeMAPS-style + MFCC%s, docs/acoustic.md)", D,
           functionals == MER_ACOUSTIC_EXTENDED ? ", extended" : "");
    if (n_speed > 1) {
        printf(", + speed-perturbed training copies at");
        for (int32_t a = 1; a < n_speed; a++) printf("%s %g", a > 1 ? "," : "", speeds[a]);
    }
    printf(";\n  %lld cached, %lld extracted in %.1f s -> %s\n", (long long)n_cached,
           (long long)(NA - n_cached), cli_now() - tf, fdir);

    /* ---- data sets: raw features (LOSO normalises inside) ---- */
    const char *mods[1] = {"acoustic"};
    if ((s = mer_dataset_init(&ds, (const char *const *)classes, C, mods, 1))) {
        rc = cli_fail_status(cmd, s, "dataset");
        goto done;
    }
    /* the copies train only (never held out or scored); each copy of a speaker is standardised
     * as a speaker of its own */
    ngroups = calloc((size_t)NA, sizeof *ngroups);
    if (!ngroups) {
        rc = cli_fail(cmd, "out of memory");
        goto done;
    }
    n_ngroups = NA;
    for (int64_t q = 0; q < NA; q++) {
        const int64_t i = q % N;
        mer_tensor t;
        int64_t shape[1] = {D};
        char rowname[600], ng[600];
        snprintf(rowname, sizeof rowname, "%s%s%g", names[i], q < N ? "" : "@speed", speeds[q / N]);
        if (q < N) rowname[strlen(names[i])] = '\0';
        snprintf(ng, sizeof ng, "%s@%g", groups[i], speeds[q / N]);
        ngroups[q] = strdup(ng);
        mer_tensor_view(&t, X + q * D, MER_DTYPE_F32, 1, shape);
        if (!ngroups[q]) {
            rc = cli_fail(cmd, "out of memory");
            goto done;
        }
        if ((s = mer_dataset_add(ds, rowname, labels[i], groups[i], q >= N, &t))) {
            rc = cli_fail_status(cmd, s, names[i]);
            goto done;
        }
    }
    mer_train_params tp = mer_train_default_params();
    tp.folds = 1;
    tp.epochs = (int32_t)epochs;
    snprintf(tp.model, sizeof tp.model, "%s", model);
    tp.hidden = (int32_t)hidden;
    tp.dropout = (float)dropout;
    tp.lr = lr;
    tp.l2 = l2;
    tp.plots = 0;
    tp.checkpoint_every = 0;
    mer_loso_params lp = mer_loso_default_params();
    lp.seeds = (int32_t)seeds;
    lp.norm_groups = (const char *const *)ngroups;
    lp.progress = loso_progress;

    /* ---- leave-one-speaker-out: speaker-normalised (headline) ---- */
    printf("leave-one-speaker-out: %d speakers x %ld models (trainer model '%s', %ld epochs, fixed; "
           "no epoch chosen on the held-out speaker)\n", G, seeds, tp.model, epochs);
    mer_metrics m_spk, m_glob;
    loso_prog pr = {cli_now(), "speaker-normalised"};
    lp.norm = MER_NORM_GROUP;
    lp.title = "EmoDB leave-one-speaker-out (speaker-normalised)";
    lp.progress_user = &pr;
    double tl = cli_now();
    if ((s = mer_loso_run(&tp, &lp, ds, rdir, NULL, &m_spk))) {
        rc = cli_fail_status(cmd, s, "leave-one-speaker-out");
        goto done;
    }
    print_metrics("speaker-normalised features (each speaker z-scored with its own clips, labels unused):", &m_spk);
    print_confusion(&m_spk, (const char *const *)classes, C);
    /* ---- the same for a single clip of an unseen speaker: training-set statistics ---- */
    if (!single) goto final_model;
    snprintf(path, sizeof path, "%s/single-clip", rdir);
    pr.label = "single-clip";
    pr.t0 = cli_now();
    lp.norm = MER_NORM_GROUP_SINGLE;
    lp.title = "EmoDB leave-one-speaker-out (single clip, training-set statistics)";
    if ((s = mer_loso_run(&tp, &lp, ds, path, NULL, &m_glob))) {
        rc = cli_fail_status(cmd, s, "leave-one-speaker-out");
        goto done;
    }
    print_metrics("single clip of an unseen speaker (the same models, the clip standardised with the training set's\n"
                  "statistics: `mer predict` without --adapt):", &m_glob);
    printf("  (%.1f s) report: %s/metrics.json, %s/confusion.png, %s/single-clip/\n", cli_now() - tl,
           rdir, rdir, rdir);

    /* ---- final model on every speaker ---- */
final_model:
    mean = malloc((size_t)D * sizeof(double));
    std = malloc((size_t)D * sizeof(double));
    if (!mean || !std) {
        rc = cli_fail(cmd, "out of memory");
        goto done;
    }
    mer_column_stats(X, NA, D, mean, std);
    size_t cap = strlen(recipe) + (size_t)D * 2 * 32 + 256, len;
    full_recipe = malloc(cap);
    if (!full_recipe) {
        rc = cli_fail(cmd, "out of memory");
        goto done;
    }
    /* the recipe object plus the standardisation: {"extractor": ..., "adapt": "group",
     * "norm": {...}}: the model was trained on per-speaker standardised features, so
     * `mer predict --adapt` standardises a batch of one speaker's clips by its own statistics;
     * a single clip gets the training set's pooled statistics ("norm") */
    len = (size_t)snprintf(full_recipe, cap, "%.*s, \"adapt\": \"group\", \"norm\": {\"mean\": [",
                           (int)(strlen(recipe) - 1), recipe);
    for (int32_t d = 0; d < D; d++) len += (size_t)snprintf(full_recipe + len, cap - len, "%s%.9g", d ? ", " : "", mean[d]);
    len += (size_t)snprintf(full_recipe + len, cap - len, "], \"std\": [");
    for (int32_t d = 0; d < D; d++)
        len += (size_t)snprintf(full_recipe + len, cap - len, "%s%.9g", d ? ", " : "", std[d] > 1e-12 ? std[d] : 1.0);
    snprintf(full_recipe + len, cap - len, "]}}");
    float *Xg = malloc((size_t)NA * D * sizeof(float));
    if (!Xg) {
        rc = cli_fail(cmd, "out of memory");
        goto done;
    }
    memcpy(Xg, X, (size_t)NA * D * sizeof(float));
    s = mer_group_standardize(Xg, NA, D, (const char *const *)ngroups);
    if (!s) s = mer_dataset_init(&dsg, (const char *const *)classes, C, mods, 1);
    for (int64_t q = 0; !s && q < NA; q++) {
        mer_tensor t;
        int64_t shape[1] = {D};
        mer_tensor_view(&t, Xg + q * D, MER_DTYPE_F32, 1, shape);
        s = mer_dataset_add(dsg, mer_dataset_name(ds, q), labels[q % N], groups[q % N], 0, &t);
    }
    free(Xg);
    if (s) {
        rc = cli_fail_status(cmd, s, "dataset");
        goto done;
    }
    /* a rerun replaces the previous model, but only a directory mer made that holds nothing
     * else is removed (docs/safety.md) */
    if ((s = mer_dir_remove_made(mdir))) {
        rc = fail_msg(s);
        goto done;
    }
    mer_train_params fp = tp;
    fp.recipe_json = full_recipe;
    fp.plots = 1;
    double tm = cli_now();
    if ((s = mer_train_run(&fp, dsg, NULL, mdir, NULL))) {
        rc = fail_msg(s);
        goto done;
    }
    printf("final model: all %d speakers, %ld epochs (%.1f s) -> %s\n"
           "  apply it to any audio or video: mer predict --run %s --input FILE... --out pred.csv\n",
           G, epochs, cli_now() - tm, mdir, mdir);

    /* ---- apply it to one file, through the recipe as `mer predict` does ---- */
    {
        char media[4200];
        if (clip_path(media, sizeof media, data, names[0])) {
            rc = cli_fail(cmd, "%s: not found", media);
            goto done;
        }
        if ((s = mer_run_open(&run, mdir))) {
            rc = fail_msg(s);
            goto done;
        }
        int32_t nd;
        int64_t sh[MER_MAX_DIMS];
        if ((s = mer_acoustic_extract(mer_run_recipe(run), media, "acoustic", &feat, &nd, sh))) {
            rc = fail_msg(s);
            goto done;
        }
        if ((s = mer_dataset_init(&one, (const char *const *)classes, C, mods, 1))) {
            rc = cli_fail_status(cmd, s, "dataset");
            goto done;
        }
        mer_tensor t;
        mer_tensor_view(&t, feat, MER_DTYPE_F32, nd, sh);
        probs = malloc((size_t)C * sizeof(float));
        if (!probs || (s = mer_dataset_add(one, names[0], -1, NULL, 0, &t)) ||
            (s = mer_run_predict(run, one, probs))) {
            rc = fail_msg(s);
            goto done;
        }
        int32_t best = 0;
        for (int32_t c = 1; c < C; c++)
            if (probs[c] > probs[best]) best = c;
        printf("%s: %s (p = %.2f; labeled %s)\n ", media, classes[best], probs[best], classes[labels[0]]);
        /* classes by decreasing probability */
        int32_t order[MER_MAX_CLASSES];
        for (int32_t c = 0; c < C; c++) order[c] = c;
        for (int32_t a = 1; a < C; a++)
            for (int32_t b = a; b > 0 && probs[order[b]] > probs[order[b - 1]]; b--) {
                int32_t tmp = order[b];
                order[b] = order[b - 1];
                order[b - 1] = tmp;
            }
        for (int32_t c = 0; c < C; c++) printf(" %s %.2f", classes[order[c]], probs[order[c]]);
        printf("\n");
    }
    printf("done in %.1f s\n", cli_now() - t0);
    rc = 0;
done:
    mer_run_free(run);
    mer_dataset_free(one);
    mer_dataset_free(ds);
    mer_dataset_free(dsg);
    mer_csv_free(csv);
    free(X);
    free(probs);
    free(feat);
    free(recipe);
    free(full_recipe);
    free(cached);
    free(names);
    free(groups);
    for (int64_t q = 0; q < n_ngroups; q++) free(ngroups[q]);
    free(ngroups);
    free(labels);
    free(classes);
    free(mean);
    free(std);
    free(bundled_data);
    return rc;
}
