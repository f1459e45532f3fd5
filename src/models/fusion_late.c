/*
 * fusion_late.c -- the shared label set of `mer analyze` (MER2024's six classes), the table
 * mapping each modality's classes onto it, late fusion of the mapped distributions, and the
 * per-second timeline arithmetic (rows, analysis windows, frame-to-row assignment).
 * The table and its reasons are in docs/analyze.md ("Label mapping"); change both together.
 */
#include "internal.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

enum { NEU = 0, ANG, HAP, SAD, WOR, SUR };

static const char *const shared_names[MER_SHARED_CLASSES] = {"neutral", "angry", "happy",
                                                             "sad",     "worried", "surprise"};

const char *mer_shared_class_name(int32_t i) {
    return i >= 0 && i < MER_SHARED_CLASSES ? shared_names[i] : "?";
}

int32_t mer_shared_class_index(const char *name) {
    if (!name) return -1;
    for (int32_t k = 0; k < MER_SHARED_CLASSES; k++)
        if (!strcmp(name, shared_names[k])) return k;
    return -1;
}

/* One row per source class name. Sources: MER2024 (identity), EmoDB (anger, boredom, disgust,
 * fear, happiness, sadness, neutral), face-api (neutral, happy, sad, angry, fearful,
 * disgusted, surprised), and synonyms other corpora use (RAVDESS calm, IEMOCAP excited). */
static const struct {
    const char *name;
    float row[MER_SHARED_CLASSES]; /* neutral angry happy sad worried surprise */
} label_map[] = {
    {"neutral", {1, 0, 0, 0, 0, 0}},
    {"calm", {1, 0, 0, 0, 0, 0}},
    /* low arousal, mildly negative valence: mostly neutral, some sad (docs/analyze.md) */
    {"boredom", {0.75f, 0, 0, 0.25f, 0, 0}},
    {"bored", {0.75f, 0, 0, 0.25f, 0, 0}},
    {"angry", {0, 1, 0, 0, 0, 0}},
    {"anger", {0, 1, 0, 0, 0, 0}},
    /* MER2024 has no disgust: the nearest class is the other hostile, rejecting one */
    {"disgust", {0, 1, 0, 0, 0, 0}},
    {"disgusted", {0, 1, 0, 0, 0, 0}},
    {"contempt", {0, 1, 0, 0, 0, 0}},
    {"happy", {0, 0, 1, 0, 0, 0}},
    {"happiness", {0, 0, 1, 0, 0, 0}},
    {"joy", {0, 0, 1, 0, 0, 0}},
    {"excited", {0, 0, 1, 0, 0, 0}},
    {"sad", {0, 0, 0, 1, 0, 0}},
    {"sadness", {0, 0, 0, 1, 0, 0}},
    /* MER2024's "worried" is its fear/anxiety class */
    {"worried", {0, 0, 0, 0, 1, 0}},
    {"fear", {0, 0, 0, 0, 1, 0}},
    {"fearful", {0, 0, 0, 0, 1, 0}},
    {"anxious", {0, 0, 0, 0, 1, 0}},
    {"anxiety", {0, 0, 0, 0, 1, 0}},
    {"surprise", {0, 0, 0, 0, 0, 1}},
    {"surprised", {0, 0, 0, 0, 0, 1}},
};

mer_status mer_label_map_row(const char *class_name, float row[MER_SHARED_CLASSES]) {
    if (!class_name || !row) return mer__err(MER_ERR_INVALID_ARG, "label map: NULL argument");
    for (size_t i = 0; i < sizeof label_map / sizeof *label_map; i++) {
        if (strcasecmp(class_name, label_map[i].name)) continue;
        memcpy(row, label_map[i].row, sizeof label_map[i].row);
        return MER_OK;
    }
    return mer__err(MER_ERR_NOT_FOUND,
                    "label map: no mapping of class '%s' onto the shared labels (neutral, angry, "
                    "happy, sad, worried, surprise); docs/analyze.md lists the known classes",
                    class_name);
}

mer_status mer_label_map_probs(const char *const *classes, int32_t n, const float *probs,
                               float out[MER_SHARED_CLASSES]) {
    if (!classes || !probs || !out || n <= 0)
        return mer__err(MER_ERR_INVALID_ARG, "label map: NULL argument or no classes");
    double acc[MER_SHARED_CLASSES] = {0};
    for (int32_t c = 0; c < n; c++) {
        float row[MER_SHARED_CLASSES];
        mer_status s = mer_label_map_row(classes[c], row);
        if (s) return s;
        if (!isfinite(probs[c]) || probs[c] < 0)
            return mer__err(MER_ERR_NUMERIC, "label map: probability of '%s' is %g", classes[c],
                            (double)probs[c]);
        for (int k = 0; k < MER_SHARED_CLASSES; k++) acc[k] += (double)probs[c] * row[k];
    }
    double sum = 0;
    for (int k = 0; k < MER_SHARED_CLASSES; k++) sum += acc[k];
    if (!(sum > 0)) return mer__err(MER_ERR_INVALID_ARG, "label map: the probabilities are all zero");
    for (int k = 0; k < MER_SHARED_CLASSES; k++) out[k] = (float)(acc[k] / sum);
    return MER_OK;
}

mer_status mer_late_fuse(const float *const *dists, const double *weights, int32_t n_modalities,
                         int32_t n_classes, float *out, int32_t *used) {
    if (used) *used = 0;
    if (!dists || !weights || !out || n_modalities <= 0 || n_classes <= 0)
        return mer__err(MER_ERR_INVALID_ARG, "late fusion: NULL argument or empty input");
    double *acc = calloc((size_t)n_classes, sizeof *acc);
    if (!acc) return mer__err(MER_ERR_NOMEM, "late fusion: out of memory");
    double wsum = 0;
    int32_t n_used = 0;
    mer_status s = MER_OK;
    for (int32_t m = 0; m < n_modalities && !s; m++) {
        double w = weights[m];
        if (!isfinite(w) || w < 0) {
            s = mer__err(MER_ERR_INVALID_ARG, "late fusion: weight %d is %g, expected finite >= 0", m, w);
            break;
        }
        if (!dists[m] || w == 0) continue;
        double psum = 0;
        for (int32_t c = 0; c < n_classes; c++) {
            float p = dists[m][c];
            if (!isfinite(p) || p < 0) {
                s = mer__err(MER_ERR_NUMERIC, "late fusion: modality %d class %d probability %g", m, c,
                             (double)p);
                break;
            }
            psum += p;
        }
        if (s) break;
        if (!(psum > 0)) {
            s = mer__err(MER_ERR_NUMERIC, "late fusion: modality %d has an all-zero distribution", m);
            break;
        }
        for (int32_t c = 0; c < n_classes; c++) acc[c] += w * dists[m][c] / psum;
        wsum += w;
        n_used++;
    }
    if (!s && n_used == 0) s = mer__err(MER_ERR_NOT_FOUND, "late fusion: no modality to fuse");
    if (!s)
        for (int32_t c = 0; c < n_classes; c++) out[c] = (float)(acc[c] / wsum);
    free(acc);
    if (!s && used) *used = n_used;
    return s;
}

int32_t mer_probs_argmax(const float *p, int32_t n) {
    if (!p || n <= 0) return -1;
    int32_t best = 0;
    for (int32_t i = 1; i < n; i++)
        if (p[i] > p[best]) best = i;
    return best;
}

/* ---- timeline ------------------------------------------------------------------------------ */

/* A last piece shorter than this gets no row of its own: containers often end a few
 * milliseconds after a whole second (audio priming, the last video frame's duration). */
#define TAIL_SLACK 0.05

int32_t mer_timeline_rows(double duration) {
    if (!(duration > 0) || !isfinite(duration)) return 0;
    double r = ceil(duration - TAIL_SLACK);
    if (r < 1) r = 1;
    if (r > 1e7) r = 1e7; /* ~115 days: keeps the count an int32 */
    return (int32_t)r;
}

void mer_timeline_window(int32_t k, double width, double duration, double *t0, double *t1) {
    double c = k + 0.5, a = c - width / 2, b = c + width / 2;
    if (a < 0) a = 0;
    if (b > duration) b = duration;
    if (b < a) b = a;
    if (t0) *t0 = a;
    if (t1) *t1 = b;
}

int32_t mer_timeline_row(double t, int32_t rows) {
    if (rows <= 0) return 0;
    if (!(t > 0)) return 0;
    double f = floor(t);
    return f >= rows - 1 ? rows - 1 : (int32_t)f;
}
