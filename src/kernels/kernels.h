/*
 * kernels.h -- compute kernels shared by the models (inference) and the trainer (training).
 * Internal (mer__ prefix). Conventions (../STYLE): outputs first, then inputs, then dimensions;
 * backward kernels ACCUMULATE into parameter gradients (+=) and into dx (+=) so that branches
 * sum naturally; callers zero gradients once per step. Row-major float32. Each kernel names the
 * PyTorch op whose semantics it follows in a `// ref:` comment at its definition. Kernels that
 * are worth it split rows over the thread pool (mer__parallel_for); none allocates files.
 *
 * File map:  gemm.c (mer_sgemm, public) | linear.c | norm.c | act.c | softmax.c | attn.c |
 *            conv.c | loss.c | pool.c
 * A naive reference of each kernel lives in tests/ as the oracle.
 */
#ifndef MER_KERNELS_H
#define MER_KERNELS_H

#include "internal.h"

/* ---- linear.c ---------------------------------------------------------------------------- */
/* y (n, out) = x (n, in) @ w^T + b, w is (out, in) as torch.nn.Linear stores it; b may be NULL.
 * ref: torch.nn.functional.linear */
void mer__linear_fwd(float *y, const float *x, const float *w, const float *b, int64_t n,
                     int64_t in, int64_t out);
/* dx (n, in) += dy @ w; dw (out, in) += dy^T @ x; db (out) += sum_n dy. Any of dx, dw, db may
 * be NULL (not wanted). */
void mer__linear_bwd(float *dx, float *dw, float *db, const float *dy, const float *x,
                     const float *w, int64_t n, int64_t in, int64_t out);

/* ---- norm.c ------------------------------------------------------------------------------ */
/* LayerNorm over the last dim c of x (n, c); gamma/beta may be NULL (identity). mean and rstd
 * (n) are saved for backward when non-NULL. y may alias x. ref: torch.nn.functional.layer_norm */
void mer__layernorm_fwd(float *y, float *mean, float *rstd, const float *x, const float *gamma,
                        const float *beta, int64_t n, int64_t c, float eps);
void mer__layernorm_bwd(float *dx, float *dgamma, float *dbeta, const float *dy, const float *x,
                        const float *mean, const float *rstd, const float *gamma, int64_t n,
                        int64_t c);
/* GroupNorm with groups == channels over time, x (c, t) channel-major (wav2vec2 feature
 * extractor's first layer). ref: torch.nn.GroupNorm(num_groups=c, num_channels=c) */
void mer__groupnorm_ct_fwd(float *y, const float *x, const float *gamma, const float *beta,
                           int64_t c, int64_t t, float eps);

/* ---- act.c ------------------------------------------------------------------------------- */
/* In-place allowed (y == x). ref: torch.nn.functional.gelu (approximate='none', erf) */
void mer__gelu_fwd(float *y, const float *x, int64_t n);
void mer__gelu_bwd(float *dx, const float *dy, const float *x, int64_t n);
/* x * sigmoid(1.702 x). ref: transformers.activations.QuickGELUActivation */
void mer__quick_gelu_fwd(float *y, const float *x, int64_t n);
void mer__quick_gelu_bwd(float *dx, const float *dy, const float *x, int64_t n);
/* ref: torch.relu */
void mer__relu_fwd(float *y, const float *x, int64_t n);
void mer__relu_bwd(float *dx, const float *dy, const float *x, int64_t n);
/* ref: torch.tanh / torch.sigmoid */
void mer__sigmoid_fwd(float *y, const float *x, int64_t n);

/* ---- softmax.c --------------------------------------------------------------------------- */
/* Row softmax of x (rows, cols); y may alias x. ref: torch.softmax(dim=-1) */
void mer__softmax_fwd(float *y, const float *x, int64_t rows, int64_t cols);
/* dx += y * (dy - sum(dy * y)) per row. */
void mer__softmax_bwd(float *dx, const float *dy, const float *y, int64_t rows, int64_t cols);

/* ---- attn.c ------------------------------------------------------------------------------ */
/* Scaled dot-product attention, heads packed in the feature dim:
 *   q (tq, h*dh) with row stride ldq, k and v (tk, h*dh) with row strides ldk, ldv,
 *   out (tq, h*dh) with row stride ldo; scale usually 1/sqrt(dh).
 * probs (h, tq, tk), if non-NULL, receives the attention probabilities (for backward);
 * otherwise scratch memory comes from a per-thread buffer. key_mask (tk), if non-NULL, marks
 * valid keys with 1 and padded ones with 0. ref: torch.nn.functional.scaled_dot_product_attention */
void mer__attention_fwd(float *out, int64_t ldo, float *probs, const float *q, int64_t ldq,
                        const float *k, int64_t ldk, const float *v, int64_t ldv,
                        const uint8_t *key_mask, int64_t tq, int64_t tk, int64_t h, int64_t dh,
                        float scale);
/* Backward of the above given saved probs; dq, dk, dv accumulate (+=). */
void mer__attention_bwd(float *dq, float *dk, float *dv, const float *dout, int64_t ldo,
                        const float *probs, const float *q, int64_t ldq, const float *k,
                        int64_t ldk, const float *v, int64_t ldv, int64_t tq, int64_t tk,
                        int64_t h, int64_t dh, float scale);

/* ---- conv.c ------------------------------------------------------------------------------ */
/* 1-D convolution, channel-major: x (cin, tin) -> y (cout, tout), w (cout, cin/groups, k),
 * b (cout) or NULL, tout = (tin + 2*pad - k) / stride + 1. ref: torch.nn.functional.conv1d */
void mer__conv1d_fwd(float *y, const float *x, const float *w, const float *b, int64_t cin,
                     int64_t tin, int64_t cout, int64_t k, int64_t stride, int64_t pad,
                     int64_t groups);

/* ---- loss.c ------------------------------------------------------------------------------ */
/* Mean softmax cross-entropy over n rows of logits (n, c) with integer targets; class_weight
 * (c) may be NULL; label_smoothing in [0, 1). Writes probabilities (n, c) if probs != NULL.
 * Returns the loss. ref: torch.nn.functional.cross_entropy (weighted mean as torch does it) */
float mer__cross_entropy_fwd(float *probs, const float *logits, const int32_t *target,
                             const float *class_weight, float label_smoothing, int64_t n,
                             int64_t c);
/* dlogits += d(loss)/d(logits), given the probs of the forward. */
void mer__cross_entropy_bwd(float *dlogits, const float *probs, const int32_t *target,
                            const float *class_weight, float label_smoothing, int64_t n,
                            int64_t c);

#endif /* MER_KERNELS_H */
