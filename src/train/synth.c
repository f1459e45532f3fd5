/*
 * synth.c -- a seeded synthetic multimodal data set whose Bayes-optimal rule is known, written
 * in the MERTools layout (labels.csv + one directory of <name>.npy per modality). Used by the
 * tests and benchmarks of the fusion models, self-training and prior correction.
 *
 * The generative model (documented in docs/agt.md, "Synthetic data"):
 *   y ~ Categorical(pi)                 (pi_test for the test split)
 *   x_m | y ~ N(mu_{m,y}, I_{D_m})      independently for each modality m
 *   mu_{m,y} = o_m + E_m^T g_{m,y}      o_m ~ N(0, 0.25 I) a shared offset (features are not
 *                                       centred, as real ones are not), E_m (r, D_m) orthonormal
 *                                       rows spanning a random r-dimensional signal subspace,
 *                                       g_{m,y} ~ N(0, sep_m^2 / (2 r) I_r)
 * so that E ||mu_{m,y} - mu_{m,y'}||^2 = sep_m^2: sep_m is the typical distance between two
 * class means of modality m in noise standard deviations. Given the parameters, the posterior
 * is exactly p(y|x) ∝ pi_y exp(-sum_m ||x_m - mu_{m,y}||^2 / 2), the Bayes rule is its argmax,
 * and its weighted F1 on each split is reported. Everything derives from one seed: parameters
 * from a stream of their own, clips from another, so changing a count does not move the means.
 */
#include "train/synth.h"
#include "train/train.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

/* ---- parameters -------------------------------------------------------------------------- */

mer_synth_params mer_synth_default_params(void) {
    static const char *const classes[] = {"neutral", "angry", "happy", "sad", "worried", "surprise"};
    /* MER2024-SEMI labeled counts: 1248 1208 1038 730 616 190 of 5030 */
    static const double priors[] = {1248, 1208, 1038, 730, 616, 190};
    static const char *const mods[] = {"audio", "text", "video"};
    static const int64_t dims[] = {32, 48, 24};
    static const double sep[] = {2.2, 1.6, 1.2};
    mer_synth_params p = {
        .n_classes = 6, .classes = classes, .priors = priors, .test_priors = NULL,
        .n_modalities = 3, .modalities = mods, .dims = dims, .sep = sep, .rank = 8,
        .n_labeled = 2000, .n_unlabeled = 0, .n_test = 0, .seed = 1,
    };
    return p;
}

static mer_status check_params(const mer_synth_params *p) {
    if (!p || p->n_classes < 2 || p->n_classes > 1000 || !p->classes || !p->priors ||
        p->n_modalities < 1 || p->n_modalities > 64 || !p->modalities || !p->dims || !p->sep ||
        p->rank < 1 || p->n_labeled < 0 || p->n_unlabeled < 0 || p->n_test < 0 ||
        p->n_labeled + p->n_unlabeled + p->n_test < 1 || p->n_labeled > 100000000 ||
        p->n_unlabeled > 100000000 || p->n_test > 100000000)
        return mer__err(MER_ERR_INVALID_ARG, "synth: bad parameters (classes, modalities, counts)");
    for (int32_t k = 0; k < 2; k++) {
        const double *pr = k ? p->test_priors : p->priors;
        if (!pr) continue;
        double s = 0;
        for (int32_t j = 0; j < p->n_classes; j++) {
            if (!isfinite(pr[j]) || pr[j] < 0)
                return mer__err(MER_ERR_INVALID_ARG, "synth: %s prior of '%s' is %g",
                                k ? "test" : "train", p->classes[j], pr[j]);
            s += pr[j];
        }
        if (!(s > 0)) return mer__err(MER_ERR_INVALID_ARG, "synth: priors sum to 0");
    }
    for (int32_t j = 0; j < p->n_classes; j++)
        if (!p->classes[j] || !p->classes[j][0] || strpbrk(p->classes[j], ",\"\n\r"))
            return mer__err(MER_ERR_INVALID_ARG, "synth: class %d has an empty or unquotable name", j);
    for (int32_t m = 0; m < p->n_modalities; m++) {
        const char *s = p->modalities[m];
        if (!s || !s[0] || strchr(s, '/') || !strcmp(s, ".") || !strcmp(s, ".."))
            return mer__err(MER_ERR_INVALID_ARG, "synth: modality %d has a bad name", m);
        if (p->dims[m] < 1 || p->dims[m] > 1000000)
            return mer__err(MER_ERR_INVALID_ARG, "synth: modality '%s' dim %lld not in [1, 1e6]",
                            s, (long long)p->dims[m]);
        if (!isfinite(p->sep[m]) || p->sep[m] < 0)
            return mer__err(MER_ERR_INVALID_ARG, "synth: modality '%s' separation %g", s, p->sep[m]);
    }
    return MER_OK;
}

/* ---- the model --------------------------------------------------------------------------- */

struct mer__synth {
    mer_synth_params p;          /* pointers borrowed from the caller's params */
    double *pi, *pi_test;        /* (c) normalised */
    float **mu;                  /* per modality (c, D_m) class means */
    int64_t dsum;
};

void mer__synth_free(mer__synth *s) {
    if (!s) return;
    if (s->mu)
        for (int32_t m = 0; m < s->p.n_modalities; m++) mer__free(s->mu[m]);
    mer__free(s->mu);
    mer__free(s->pi);
    mer__free(s->pi_test);
    mer__free(s);
}

mer_status mer__synth_init(mer__synth **out, const mer_synth_params *p) {
    *out = NULL;
    mer_status st = check_params(p);
    if (st != MER_OK) return st;
    mer__synth *s = mer__calloc(1, sizeof *s);
    if (!s) return MER_ERR_NOMEM;
    s->p = *p;
    int32_t c = p->n_classes;
    s->pi = mer__alloc((size_t)c * sizeof(double));
    s->pi_test = mer__alloc((size_t)c * sizeof(double));
    s->mu = mer__calloc((size_t)p->n_modalities, sizeof(float *));
    if (!s->pi || !s->pi_test || !s->mu) goto oom;
    double a = 0, b = 0;
    for (int32_t j = 0; j < c; j++) {
        a += p->priors[j];
        b += p->test_priors ? p->test_priors[j] : p->priors[j];
    }
    for (int32_t j = 0; j < c; j++) {
        s->pi[j] = p->priors[j] / a;
        s->pi_test[j] = (p->test_priors ? p->test_priors[j] : p->priors[j]) / b;
    }
    mer__rng r;
    mer__rng_seed(&r, p->seed * 0x9E3779B97F4A7C15ull + 1);
    for (int32_t m = 0; m < p->n_modalities; m++) {
        int64_t d = p->dims[m];
        int32_t rank = p->rank < d ? p->rank : (int32_t)d;
        s->dsum += d;
        float *mu = s->mu[m] = mer__alloc((size_t)(c * d) * sizeof(float));
        double *e = mer__alloc((size_t)(rank * d) * sizeof(double));
        double *o = mer__alloc((size_t)d * sizeof(double));
        if (!mu || !e || !o) {
            mer__free(e), mer__free(o);
            goto oom;
        }
        for (int64_t i = 0; i < d; i++) o[i] = 0.5 * mer__rng_normal(&r);
        /* Gram-Schmidt on Gaussian vectors: a uniformly random orthonormal frame */
        for (int32_t k = 0; k < rank; k++) {
            double *v = e + k * d;
            for (;;) {
                for (int64_t i = 0; i < d; i++) v[i] = mer__rng_normal(&r);
                for (int32_t q = 0; q < k; q++) {
                    double dot = 0;
                    for (int64_t i = 0; i < d; i++) dot += v[i] * e[q * d + i];
                    for (int64_t i = 0; i < d; i++) v[i] -= dot * e[q * d + i];
                }
                double nn = 0;
                for (int64_t i = 0; i < d; i++) nn += v[i] * v[i];
                if (nn > 1e-6) {
                    nn = 1.0 / sqrt(nn);
                    for (int64_t i = 0; i < d; i++) v[i] *= nn;
                    break;
                }
            }
        }
        double gs = p->sep[m] / sqrt(2.0 * rank);
        for (int32_t y = 0; y < c; y++) {
            double g[4096];
            int32_t rr = rank < 4096 ? rank : 4096;
            for (int32_t k = 0; k < rr; k++) g[k] = gs * mer__rng_normal(&r);
            for (int64_t i = 0; i < d; i++) {
                double v = o[i];
                for (int32_t k = 0; k < rr; k++) v += g[k] * e[k * d + i];
                mu[y * d + i] = (float)v;
            }
        }
        mer__free(e), mer__free(o);
    }
    *out = s;
    return MER_OK;
oom:
    mer__synth_free(s);
    return MER_ERR_NOMEM;
}

void mer__synth_priors(const mer__synth *s, double *pi_train, double *pi_test) {
    if (pi_train) memcpy(pi_train, s->pi, (size_t)s->p.n_classes * sizeof(double));
    if (pi_test) memcpy(pi_test, s->pi_test, (size_t)s->p.n_classes * sizeof(double));
}

static int32_t draw_class(mer__rng *r, const double *pi, int32_t c) {
    double u = mer__rng_uniform(r), cum = 0;
    for (int32_t j = 0; j < c; j++) {
        cum += pi[j];
        if (u < cum) return j;
    }
    return c - 1;
}

void mer__synth_sample(const mer__synth *s, mer__rng *r, int test_split, int32_t *y,
                      float *const *x) {
    int32_t k = draw_class(r, test_split ? s->pi_test : s->pi, s->p.n_classes);
    *y = k;
    for (int32_t m = 0; m < s->p.n_modalities; m++) {
        int64_t d = s->p.dims[m];
        const float *mu = s->mu[m] + k * d;
        for (int64_t i = 0; i < d; i++) x[m][i] = mu[i] + (float)mer__rng_normal(r);
    }
}

void mer__synth_posterior(const mer__synth *s, int test_split, const float *const *x, float *post) {
    int32_t c = s->p.n_classes;
    const double *pi = test_split ? s->pi_test : s->pi;
    double l[1000], mx = -INFINITY, z = 0;
    for (int32_t y = 0; y < c; y++) {
        double v = pi[y] > 0 ? log(pi[y]) : -INFINITY;
        for (int32_t m = 0; m < s->p.n_modalities; m++) {
            int64_t d = s->p.dims[m];
            const float *mu = s->mu[m] + y * d;
            double q = 0;
            for (int64_t i = 0; i < d; i++) {
                double t = (double)x[m][i] - mu[i];
                q += t * t;
            }
            v -= 0.5 * q;
        }
        l[y] = v;
        if (v > mx) mx = v;
    }
    for (int32_t y = 0; y < c; y++) z += (l[y] = exp(l[y] - mx));
    for (int32_t y = 0; y < c; y++) post[y] = (float)(l[y] / z);
}

/* Weighted F1 as scikit-learn's f1_score(average='weighted'). */
static double weighted_f1(const int32_t *truth, const int32_t *pred, int64_t n, int32_t c) {
    if (n <= 0) return 0;
    int64_t *tp = calloc((size_t)c * 3, sizeof(int64_t));
    if (!tp) return NAN;
    int64_t *fp = tp + c, *fn = tp + 2 * c;
    for (int64_t i = 0; i < n; i++) {
        if (truth[i] == pred[i]) tp[truth[i]]++;
        else fp[pred[i]]++, fn[truth[i]]++;
    }
    double w = 0;
    for (int32_t k = 0; k < c; k++) {
        int64_t sup = tp[k] + fn[k];
        if (sup) w += (double)sup * (2.0 * tp[k] / (double)(2 * tp[k] + fp[k] + fn[k]));
    }
    free(tp);
    return w / (double)n;
}

/* ---- writing the data set ---------------------------------------------------------------- */

static mer_status make_dir(const char *path) { return mer__mkdir(path); }

mer_status mer_synth_write(const char *dir, const mer_synth_params *p, mer_synth_report *rep) {
    if (!dir || !dir[0]) return mer__err(MER_ERR_INVALID_ARG, "synth: no output directory");
    mer__synth *s = NULL;
    mer_status st = mer__synth_init(&s, p);
    if (st != MER_OK) return st;
    int32_t c = p->n_classes, M = p->n_modalities;
    int64_t n_all = p->n_labeled + p->n_unlabeled + p->n_test;
    float **x = mer__calloc((size_t)M, sizeof(float *));
    float *post = mer__alloc((size_t)c * sizeof(float));
    int32_t *truth = mer__alloc((size_t)n_all * sizeof(int32_t));
    int32_t *pred = mer__alloc((size_t)n_all * sizeof(int32_t));
    mer__sb labels = {0}, unl = {0}, unl_truth = {0}, test = {0}, test_labels = {0}, bayes = {0}, js = {0};
    char path[MER_PATH_CAP];
    if (!x || !post || !truth || !pred) {
        st = MER_ERR_NOMEM;
        goto done;
    }
    for (int32_t m = 0; m < M && st == MER_OK; m++)
        if (!(x[m] = mer__alloc((size_t)p->dims[m] * sizeof(float)))) st = MER_ERR_NOMEM;
    if (st != MER_OK) goto done;
    if ((st = make_dir(dir)) != MER_OK) goto done;
    for (int32_t m = 0; m < M && st == MER_OK; m++) {
        snprintf(path, sizeof path, "%s/%s", dir, p->modalities[m]);
        st = make_dir(path);
    }
    if (st != MER_OK) goto done;

    mer__sb_printf(&labels, "name,emotion\n");
    mer__sb_printf(&unl_truth, "name,emotion\n");
    mer__sb_printf(&test_labels, "name,emotion\n");
    mer__sb_printf(&bayes, "name,split");
    for (int32_t j = 0; j < c; j++) mer__sb_printf(&bayes, ",%s", p->classes[j]);
    mer__sb_printf(&bayes, ",pred\n");
    mer__rng r;
    mer__rng_seed(&r, p->seed * 0xD1B54A32D192ED03ull + 7);
    static const char *const split_name[3] = {"labeled", "unlabeled", "test"};
    const int64_t split_n[3] = {p->n_labeled, p->n_unlabeled, p->n_test};
    const char *const prefix[3] = {"l", "u", "t"};
    int64_t i = 0;
    /* thousands of small feature files: one sync for all of them, before the files that say
     * the set is complete */
    mer__afile_defer(1);
    for (int sp = 0; sp < 3; sp++) {
        for (int64_t k = 0; k < split_n[sp] && st == MER_OK; k++, i++) {
            char name[64];
            snprintf(name, sizeof name, "%s%06lld", prefix[sp], (long long)k);
            mer__synth_sample(s, &r, sp == 2, &truth[i], x);
            mer__synth_posterior(s, sp == 2, (const float *const *)x, post);
            int32_t b = 0;
            for (int32_t j = 1; j < c; j++)
                if (post[j] > post[b]) b = j;
            pred[i] = b;
            for (int32_t m = 0; m < M && st == MER_OK; m++) {
                snprintf(path, sizeof path, "%s/%s/%s.npy", dir, p->modalities[m], name);
                int64_t shape[1] = {p->dims[m]};
                st = mer_npy_write(path, x[m], 1, shape);
            }
            const char *lab = p->classes[truth[i]];
            if (sp == 0) mer__sb_printf(&labels, "%s,%s\n", name, lab);
            if (sp == 1) mer__sb_printf(&unl, "%s\n", name), mer__sb_printf(&unl_truth, "%s,%s\n", name, lab);
            if (sp == 2) mer__sb_printf(&test, "%s\n", name), mer__sb_printf(&test_labels, "%s,%s\n", name, lab);
            mer__sb_printf(&bayes, "%s,%s", name, split_name[sp]);
            for (int32_t j = 0; j < c; j++) mer__sb_printf(&bayes, ",%.6g", post[j]);
            mer__sb_printf(&bayes, ",%s\n", p->classes[b]);
        }
    }
    mer__afile_defer(0);
    if (st == MER_OK) st = mer__afile_settle(dir);
    if (st != MER_OK) goto done;

    mer_synth_report rp = {0};
    int64_t off = 0;
    for (int sp = 0; sp < 3; sp++) {
        rp.bayes_waf[sp] = weighted_f1(truth + off, pred + off, split_n[sp], c);
        off += split_n[sp];
    }
    mer__sb_printf(&js, "{\n  \"generator\": \"mer synth (src/train/synth.c; docs/agt.md)\",\n");
    mer__sb_printf(&js, "  \"seed\": %llu,\n  \"rank\": %d,\n", (unsigned long long)p->seed, p->rank);
    mer__sb_printf(&js, "  \"classes\": [");
    for (int32_t j = 0; j < c; j++) {
        mer__sb_printf(&js, "%s", j ? ", " : "");
        mer__sb_json_str(&js, p->classes[j]);
    }
    mer__sb_printf(&js, "],\n  \"priors\": [");
    for (int32_t j = 0; j < c; j++) mer__sb_printf(&js, "%s%.6f", j ? ", " : "", s->pi[j]);
    mer__sb_printf(&js, "],\n  \"test_priors\": [");
    for (int32_t j = 0; j < c; j++) mer__sb_printf(&js, "%s%.6f", j ? ", " : "", s->pi_test[j]);
    mer__sb_printf(&js, "],\n  \"modalities\": [");
    for (int32_t m = 0; m < M; m++) {
        mer__sb_printf(&js, "%s{\"name\": ", m ? ", " : "");
        mer__sb_json_str(&js, p->modalities[m]);
        mer__sb_printf(&js, ", \"dim\": %lld, \"sep\": %g}", (long long)p->dims[m], p->sep[m]);
    }
    mer__sb_printf(&js, "],\n  \"counts\": {\"labeled\": %lld, \"unlabeled\": %lld, \"test\": %lld},\n",
              (long long)p->n_labeled, (long long)p->n_unlabeled, (long long)p->n_test);
    mer__sb_printf(&js, "  \"bayes_waf\": {\"labeled\": %.6f, \"unlabeled\": %.6f, \"test\": %.6f}\n}\n",
              rp.bayes_waf[0], rp.bayes_waf[1], rp.bayes_waf[2]);

    struct {
        mer__sb *b;
        const char *file;
        int want;
    } outs[] = {
        {&bayes, "bayes.csv", 1},
        {&unl, "unlabeled.txt", p->n_unlabeled > 0},
        {&unl_truth, "unlabeled_truth.csv", p->n_unlabeled > 0},
        {&test, "test.txt", p->n_test > 0},
        {&test_labels, "test_labels.csv", p->n_test > 0},
        {&js, "synth.json", 1},
        {&labels, "labels.csv", 1}, /* last: its presence marks a complete data set */
    };
    for (size_t k = 0; k < sizeof outs / sizeof *outs && st == MER_OK; k++) {
        if (!outs[k].want) continue;
        snprintf(path, sizeof path, "%s/%s", dir, outs[k].file);
        st = mer__sb_save(outs[k].b, path);
    }
    if (st == MER_OK && rep) *rep = rp;
done:
    if (x)
        for (int32_t m = 0; m < M; m++) mer__free(x[m]);
    mer__free(x), mer__free(post), mer__free(truth), mer__free(pred);
    mer__sb_free(&labels), mer__sb_free(&unl), mer__sb_free(&unl_truth), mer__sb_free(&test);
    mer__sb_free(&test_labels), mer__sb_free(&bayes), mer__sb_free(&js);
    mer__synth_free(s);
    return st;
}
