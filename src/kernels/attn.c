/*
 * attn.c -- scaled dot-product attention over heads packed in the feature dim.
 *
 * Head by head: scores = scale * Q_h K_h^T and out_h = P V_h are two mer_sgemm calls (the GEMM
 * backend threads them), the row softmax in between is split over the thread pool. Scratch is
 * one (tq, tk) block reused by every head when the caller does not keep the probabilities.
 */
#include "kernels.h"

#include <math.h>
#include <stdlib.h>

void mer__softmax_row(float *y, const float *x, int64_t n); /* softmax.c */

typedef struct {
    float *s;
    const uint8_t *mask;
    int64_t tk;
} attn_sm_job;

static void attn_softmax_rows(void *u, int64_t r0, int64_t r1, int t) {
    (void)t;
    const attn_sm_job *j = u;
    for (int64_t r = r0; r < r1; r++) {
        float *row = j->s + r * j->tk;
        if (j->mask)
            for (int64_t c = 0; c < j->tk; c++)
                if (!j->mask[c]) row[c] = -INFINITY;
        mer__softmax_row(row, row, j->tk);
    }
}

// ref: torch.nn.functional.scaled_dot_product_attention (no dropout, no causal mask)
void mer__attention_fwd(float *out, int64_t ldo, float *probs, const float *q, int64_t ldq,
                        const float *k, int64_t ldk, const float *v, int64_t ldv,
                        const uint8_t *key_mask, int64_t tq, int64_t tk, int64_t h, int64_t dh,
                        float scale) {
    if (tq <= 0 || tk <= 0 || h <= 0 || dh <= 0) return;
    float *scratch = NULL;
    if (!probs) {
        scratch = malloc((size_t)tq * (size_t)tk * sizeof(float));
        if (!scratch) { /* no way to report from a kernel: fall back to a row at a time */
            float *row = malloc((size_t)tk * sizeof(float));
            if (!row) return;
            for (int64_t hh = 0; hh < h; hh++)
                for (int64_t i = 0; i < tq; i++) {
                    mer_sgemm(0, 1, 1, tk, dh, scale, q + i * ldq + hh * dh, ldq, k + hh * dh,
                              ldk, 0.0f, row, tk);
                    attn_sm_job j = {row, key_mask, tk};
                    attn_softmax_rows(&j, 0, 1, 0);
                    mer_sgemm(0, 0, 1, dh, tk, 1.0f, row, tk, v + hh * dh, ldv, 0.0f,
                              out + i * ldo + hh * dh, ldo);
                }
            free(row);
            return;
        }
    }
    for (int64_t hh = 0; hh < h; hh++) {
        float *s = probs ? probs + hh * tq * tk : scratch;
        mer_sgemm(0, 1, tq, tk, dh, scale, q + hh * dh, ldq, k + hh * dh, ldk, 0.0f, s, tk);
        attn_sm_job j = {s, key_mask, tk};
        int64_t min_rows = tk >= 2048 ? 1 : 2048 / tk;
        mer__parallel_for(tq, min_rows, attn_softmax_rows, &j);
        mer_sgemm(0, 0, tq, dh, tk, 1.0f, s, tk, v + hh * dh, ldv, 0.0f, out + hh * dh, ldo);
    }
    free(scratch);
}

/* ---- backward (training) ------------------------------------------------------------------ */

// ref: autograd of torch.nn.functional.scaled_dot_product_attention (no dropout)
// Per head, with P the saved probabilities: dV += P^T dO; dP = dO V^T; dS = P * (dP - rowsum(dP * P));
// dQ += scale dS K; dK += scale dS^T Q. dq, dk, dv use the row strides of q, k, v.
void mer__attention_bwd(float *dq, float *dk, float *dv, const float *dout, int64_t ldo,
                        const float *probs, const float *q, int64_t ldq, const float *k,
                        int64_t ldk, const float *v, int64_t ldv, int64_t tq, int64_t tk,
                        int64_t h, int64_t dh, float scale) {
    if (tq <= 0 || tk <= 0 || h <= 0 || dh <= 0) return;
    float *ds = malloc((size_t)tq * (size_t)tk * sizeof(float));
    if (!ds) return;
    for (int64_t hh = 0; hh < h; hh++) {
        const float *p = probs + hh * tq * tk;
        const float *doh = dout + hh * dh;
        if (dv) mer_sgemm(1, 0, tk, dh, tq, 1.0f, p, tk, doh, ldo, 1.0f, dv + hh * dh, ldv);
        mer_sgemm(0, 1, tq, tk, dh, 1.0f, doh, ldo, v + hh * dh, ldv, 0.0f, ds, tk);
        for (int64_t i = 0; i < tq; i++) {
            float *r = ds + i * tk;
            const float *pr = p + i * tk;
            double dot = 0.0;
            for (int64_t j = 0; j < tk; j++) dot += (double)r[j] * pr[j];
            float d = (float)dot;
            for (int64_t j = 0; j < tk; j++) r[j] = pr[j] * (r[j] - d);
        }
        if (dq) mer_sgemm(0, 0, tq, dh, tk, scale, ds, tk, k + hh * dh, ldk, 1.0f, dq + hh * dh, ldq);
        if (dk) mer_sgemm(1, 0, tk, dh, tq, scale, ds, tk, q + hh * dh, ldq, 1.0f, dk + hh * dh, ldk);
    }
    free(ds);
}
