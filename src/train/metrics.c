/*
 * metrics.c -- classification metrics on argmax predictions, matching scikit-learn:
 * precision/recall/F1 per class with zero_division=0; weighted F1 (WAF) = sum_c F1_c support_c /
 * n; macro F1 and UAR (macro recall) average over the labels present in the truth or the
 * predictions (sklearn's default label set, unique_labels(y_true, y_pred)).
 */
#include "internal.h"

#include <string.h>

void mer_argmax_rows(const float *probs, int64_t n, int32_t c, int32_t *pred) {
    for (int64_t i = 0; i < n; i++) {
        const float *p = probs + i * c;
        int32_t best = 0;
        for (int32_t j = 1; j < c; j++)
            if (p[j] > p[best]) best = j;
        pred[i] = best;
    }
}

mer_status mer_metrics_compute(const int32_t *truth, const int32_t *pred, int64_t n,
                               int32_t c, mer_metrics *m) {
    memset(m, 0, sizeof *m);
    if (c < 1 || c > MER_MAX_CLASSES)
        return mer__err(MER_ERR_INVALID_ARG, "metrics: %d classes (1..%d)", c, MER_MAX_CLASSES);
    m->n_classes = c;
    m->n = n;
    for (int64_t i = 0; i < n; i++) {
        if (truth[i] < 0 || truth[i] >= c || pred[i] < 0 || pred[i] >= c)
            return mer__err(MER_ERR_INVALID_ARG, "metrics: label out of range at %lld", (long long)i);
        m->confusion[truth[i] * c + pred[i]]++;
    }
    if (n == 0) return MER_OK;
    int64_t correct = 0;
    double wsum = 0.0, fsum = 0.0, rsum = 0.0;
    int32_t present = 0;
    for (int32_t k = 0; k < c; k++) {
        int64_t tp = m->confusion[k * c + k], sup = 0, predc = 0;
        for (int32_t j = 0; j < c; j++) {
            sup += m->confusion[k * c + j];
            predc += m->confusion[j * c + k];
        }
        correct += tp;
        m->support[k] = sup;
        m->precision[k] = predc ? (double)tp / (double)predc : 0.0;
        m->recall[k] = sup ? (double)tp / (double)sup : 0.0;
        double pr = m->precision[k] + m->recall[k];
        m->f1[k] = pr > 0.0 ? 2.0 * m->precision[k] * m->recall[k] / pr : 0.0;
        wsum += m->f1[k] * (double)sup;
        if (sup || predc) {
            present++;
            fsum += m->f1[k];
            rsum += m->recall[k];
        }
    }
    m->accuracy = (double)correct / (double)n;
    m->waf = wsum / (double)n;
    m->macro_f1 = present ? fsum / present : 0.0;
    m->uar = present ? rsum / present : 0.0;
    return MER_OK;
}
