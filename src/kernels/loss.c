/*
 * loss.c -- softmax cross-entropy over class logits, with optional class weights and label
 * smoothing, forward and backward.
 *
 * Follows torch.nn.functional.cross_entropy(reduction='mean') exactly, including how it
 * combines the two options: with W = sum_i w[y_i],
 *   loss = [ (1 - eps) sum_i w[y_i] (-log p_i[y_i]) + (eps / C) sum_i sum_c w[c] (-log p_i[c]) ] / W
 * (torch normalises the smoothing term by the same W when weights are given). Sums are kept in
 * double so the loss does not depend on the batch order beyond float rounding of each row.
 */
#include "kernels.h"

#include <math.h>

// ref: torch.nn.functional.cross_entropy(weight=, label_smoothing=, reduction='mean')
float mer__cross_entropy_fwd(float *probs, const float *logits, const int32_t *target,
                             const float *class_weight, float label_smoothing, int64_t n,
                             int64_t c) {
    double num = 0.0, wsum = 0.0;
    const double eps = label_smoothing;
    for (int64_t i = 0; i < n; i++) {
        const float *z = logits + i * c;
        float mx = z[0];
        for (int64_t j = 1; j < c; j++) mx = z[j] > mx ? z[j] : mx;
        double se = 0.0;
        for (int64_t j = 0; j < c; j++) se += exp((double)z[j] - mx);
        double lse = mx + log(se);
        if (probs)
            for (int64_t j = 0; j < c; j++) probs[i * c + j] = (float)exp((double)z[j] - lse);
        int32_t y = target[i];
        double wy = class_weight ? class_weight[y] : 1.0;
        double nll = lse - z[y];
        double row = (1.0 - eps) * wy * nll;
        if (eps > 0.0) {
            double sm = 0.0;
            for (int64_t j = 0; j < c; j++) sm += (class_weight ? class_weight[j] : 1.0) * (lse - z[j]);
            row += eps / (double)c * sm;
        }
        num += row;
        wsum += wy;
    }
    return wsum > 0.0 ? (float)(num / wsum) : 0.0f;
}

// ref: autograd of torch.nn.functional.cross_entropy as above
void mer__cross_entropy_bwd(float *dlogits, const float *probs, const int32_t *target,
                            const float *class_weight, float label_smoothing, int64_t n,
                            int64_t c) {
    double wsum = 0.0, wall = 0.0;
    for (int64_t i = 0; i < n; i++) wsum += class_weight ? class_weight[target[i]] : 1.0;
    if (!(wsum > 0.0)) return;
    for (int64_t j = 0; j < c; j++) wall += class_weight ? class_weight[j] : 1.0;
    const double eps = label_smoothing;
    for (int64_t i = 0; i < n; i++) {
        const float *p = probs + i * c;
        float *d = dlogits + i * c;
        int32_t y = target[i];
        double wy = class_weight ? class_weight[y] : 1.0;
        for (int64_t j = 0; j < c; j++) {
            double g = (1.0 - eps) * wy * ((double)p[j] - (j == y ? 1.0 : 0.0));
            if (eps > 0.0)
                g += eps / (double)c * (wall * p[j] - (class_weight ? class_weight[j] : 1.0));
            d[j] += (float)(g / wsum);
        }
    }
}
