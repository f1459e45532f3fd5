/*
 * kernels.h -- compute kernels shared by the models (inference) and the trainer (training).
 * Internal (mer__ prefix). Conventions (../STYLE): outputs first, then inputs, then dimensions;
 * backward kernels ACCUMULATE into parameter gradients (+=) and into dx (+=) so that branches
 * sum naturally; callers zero gradients once per step. Row-major float32. Each kernel names the
 * PyTorch op whose semantics it follows in a `// ref:` comment at its definition. Kernels that
 * are worth it split rows over the thread pool (mer__parallel_for); none allocates files.
 *
 * File map:  gemm.c (mer_sgemm, public) | gemm_small.c (batch-sized products) | packed.c
 *            (mer_packed_*: packed-weight products of the encoders) | peak.c (mer bench peak) | linear.c |
 *            norm.c | act.c | softmax.c | attn.c | attn_bwd.c (batched attention backward) | conv.c | loss.c | pool.c | conv2d.c (NHWC 2-D conv/pool, face models) |
 *            fft.c (mixed-radix FFT, acoustic front end)
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

/* ---- gemm_small.c ------------------------------------------------------------------------ */
/* C (M, N) = beta * C + op(A) op(B) without packing, for products with a small side (a training
 * batch): NN and TN (ta = 1, A stored (K, M)) for any M, NT (tb = 1, B stored (N, K)) for
 * M <= 48, all as broadcast tiles. Bitwise the same at any thread count. Returns 0 without
 * touching C when it cannot run (no AVX-512, ta && tb, NT with M > 48, an empty dimension): the
 * caller then uses mer_sgemm. */
int mer__sgemm_small(int ta, int tb, int64_t M, int64_t N, int64_t K, const float *A, int64_t lda,
                     const float *B, int64_t ldb, float beta, float *C, int64_t ldc);

/* The TN product C = A^T B (A stored (K, M)) tile by tile, each tile handed to fn instead of
 * stored: rows [i0, i0 + mr) x columns [j0, j0 + w) of C at tile[r * ldt + c]; tiles are
 * disjoint and may be handed to fn from several threads at once. Each value is what
 * mer__sgemm_small(1, 0, ..., beta = 1) leaves in a zeroed C. Lets a weight gradient be consumed
 * (an optimizer step) without being written out. Returns 0 when it cannot run (no AVX-512). */
typedef void (*mer__tile_fn)(void *user, int64_t i0, int64_t j0, int mr, int64_t w,
                             const float *tile, int64_t ldt);
int mer__sgemm_small_tn_apply(int64_t M, int64_t N, int64_t K, const float *A, int64_t lda,
                              const float *B, int64_t ldb, mer__tile_fn fn, void *user);

/* ---- packed.c (besides the public mer_packed_*) ---------------------------------------------- */
/* mer_packed_linear in one parallel region that also hands each block of finished rows [r0, r1)
 * of y (bias, residual and epilogue applied) to done(user, r0, r1, thread) on the thread that
 * finished it: a per-row step (a LayerNorm) runs while the rows are in cache and without another
 * region. done runs inside the region, so kernels it calls run serially there. */
mer_status mer__packed_linear_rows(float *y, int64_t ldy, const float *x, int64_t ldx, int64_t m,
                                   const mer_packed *w, int accumulate, mer_epilogue epi,
                                   mer__range_fn done, void *user);
/* MER_PACK_INT8 with 7-bit weights (per channel in [-63, 63], stored as q_w + 64): the AVX2
 * product then needs no sign instructions (vpmaddubsw takes the weights as its unsigned operand;
 * 64 * sum_k q_x is removed per row): a BERT-large int8 forward took 1.3x less CPU time than
 * with 8-bit weights (sign instructions), with twice the weights' rounding error. For encoders whose int8 bar allows it (the text encoders). */
mer_status mer__packed_init_w7(mer_packed **out, const void *w, mer_dtype wtype, const float *bias,
                               int64_t n, int64_t k);
/* mer_packed_linear on the caller's scratch ws of mer__packed_ws_bytes(w, m) bytes (64-byte
 * aligned): no allocation, so a training step can run it in steady state without allocating.
 * The same results as mer_packed_linear. ws NULL (or a BF16 matrix kept for oneDNN, whose
 * mer__packed_ws_bytes is 0): mer_packed_linear itself. */
size_t mer__packed_ws_bytes(const mer_packed *w, int64_t m);
/* mer__packed_linear_ws on a scratch the caller keeps between calls (*ws, *cap bytes; NULL, 0 at
 * first; the caller frees *ws): grown here when a product needs more. The encoders keep one per
 * state: allocated per call, the packed activations of a large product (33 MB for CLIP-L/14's
 * fc2 on 8 images) were mapped, faulted and zeroed every time (14% of that product's CPU). */
mer_status mer__packed_linear_kept(float *y, int64_t ldy, const float *x, int64_t ldx, int64_t m,
                                   const mer_packed *w, int accumulate, mer_epilogue epi, void **ws,
                                   size_t *cap);
mer_status mer__packed_linear_ws(float *y, int64_t ldy, const float *x, int64_t ldx, int64_t m,
                                 const mer_packed *w, int accumulate, mer_epilogue epi, void *ws);
/* One packed matrix whose outputs are those of parts[0..n) in turn (a fused q|k|v projection:
 * one quantisation of x, one region). The parts must share type and k, and every part but the
 * last must have a multiple of 16 outputs (MER_ERR_UNSUPPORTED otherwise); a part without bias
 * gets zeros when another has one. *out is the caller's (mer_packed_free); the parts are kept. */
mer_status mer__packed_concat(mer_packed **out, mer_packed *const *parts, int n);
/* int8, what a product of p does with its operands (tests write their references from it):
 * u8 1 when the activations are quantised per row to u8 with a zero point over [min(x, 0),
 * max(x, 0)] (255 levels, vpdpbusd on AVX512-VNNI CPUs), 0 for the AVX2 forms (symmetric s8,
 * or per 4-row group one-sided u7); w7 1 when the weights keep 7 bits (mer__packed_init_w7
 * without VNNI). */
int mer__packed_i8_u8(const mer_packed *p);
/* 1 when MER_PACK_BF16 products read overlapping rows (ldx < k, ldx even) in place, converted
 * to bfloat16 once (AVX512-BF16 CPUs); elsewhere such rows are packed, k / ldx copies */
int mer__packed_bf16_in_place(void);
int mer__packed_i8_w7(const mer_packed *p);
/* AVX2 only (call where mer_cpu_features() reports it): rows c = 0..7 of d [ldd] = column c of
 * the 8 x 8 block whose row i is s[i][0..8) (a NULL row reads as zeros); dcols 8, or 6 to store
 * only each row's first 6 (a 6-row register tile's packing). */
void mer__transpose8_avx2(float *d, int64_t ldd, int dcols, const float *const *s);
/* AVX2 + FMA only: the packed fp32 product's register tile, c (6, 16) [ldc] (+= when load)
 * A (6, kc) @ b (kc, 16), A's rows lda apart, b k-major (16 floats a step). */
void mer__tile6x16_avx2(int64_t kc, const float *a, int64_t lda, const float *b, float *c,
                        int64_t ldc, int load);

/* ---- norm.c ------------------------------------------------------------------------------ */
/* LayerNorm over the last dim c of x (n, c); gamma/beta may be NULL (identity). mean and rstd
 * (n) are saved for backward when non-NULL. y may alias x. ref: torch.nn.functional.layer_norm */
void mer__layernorm_fwd(float *y, float *mean, float *rstd, const float *x, const float *gamma,
                        const float *beta, int64_t n, int64_t c, float eps);
void mer__layernorm_bwd(float *dx, float *dgamma, float *dbeta, const float *dy, const float *x,
                        const float *mean, const float *rstd, const float *gamma, int64_t n,
                        int64_t c);
/* RMSNorm over the last dim: y = x * rstd * gamma (gamma may be NULL), rstd (n) saved when
 * non-NULL; y may alias x. ref: transformers LlamaRMSNorm (float32) */
void mer__rmsnorm_fwd(float *y, float *rstd, const float *x, const float *gamma, int64_t n,
                      int64_t c, float eps);
/* dx (may be NULL) +=, dgamma (may be NULL) += given the saved rstd. */
void mer__rmsnorm_bwd(float *dx, float *dgamma, const float *dy, const float *x,
                      const float *rstd, const float *gamma, int64_t n, int64_t c);
/* GroupNorm with groups == channels over time, x (c, t) channel-major (wav2vec2 feature
 * extractor's first layer). ref: torch.nn.GroupNorm(num_groups=c, num_channels=c) */
void mer__groupnorm_ct_fwd(float *y, const float *x, const float *gamma, const float *beta,
                           int64_t c, int64_t t, float eps);

/* ---- act.c ------------------------------------------------------------------------------- */
/* GELU and quick GELU are AVX-512 polynomials (exp, erfc) with a scalar fallback that gives the
 * same bits; |error| <= 1.4e-7 x max(1, |y|) forward, 2.7e-7 for the derivatives (act.c).
 * In-place allowed (y == x). ref: torch.nn.functional.gelu (approximate='none', erf) */
void mer__gelu_fwd(float *y, const float *x, int64_t n);
/* The same GELU in place on rows (rows, cols) [ldy], on the calling thread: a product's
 * epilogue on a finished tile. */
void mer__gelu_block(float *y, int64_t ldy, int64_t rows, int64_t cols);
void mer__gelu_bwd(float *dx, const float *dy, const float *x, int64_t n);
/* x * sigmoid(1.702 x). ref: transformers.activations.QuickGELUActivation */
void mer__quick_gelu_fwd(float *y, const float *x, int64_t n);
void mer__quick_gelu_bwd(float *dx, const float *dy, const float *x, int64_t n);
/* ref: torch.relu */
void mer__relu_fwd(float *y, const float *x, int64_t n);
void mer__relu_bwd(float *dx, const float *dy, const float *x, int64_t n);
/* ref: torch.tanh / torch.sigmoid */
void mer__sigmoid_fwd(float *y, const float *x, int64_t n);
/* Given the forward OUTPUT y: dx += dy * y * (1 - y). */
void mer__sigmoid_bwd(float *dx, const float *dy, const float *y, int64_t n);
/* Inverted dropout: keep each element with probability 1-p and scale it by 1/(1-p); mask (n),
 * if non-NULL, receives the per-element factor (0 or 1/(1-p)) for backward. The mask is a
 * counter-based hash keyed by one draw from rng (reproducible for a seed, any thread count).
 * ref: torch.nn.functional.dropout(training=True) */
void mer__dropout_fwd(float *y, float *mask, const float *x, float p, int64_t n, mer__rng *rng);
/* dx += dy * mask. */
void mer__dropout_bwd(float *dx, const float *dy, const float *mask, int64_t n);

/* ---- softmax.c --------------------------------------------------------------------------- */
/* Row softmax of x (rows, cols); y may alias x. ref: torch.softmax(dim=-1) */
void mer__softmax_fwd(float *y, const float *x, int64_t rows, int64_t cols);
/* One row, on the calling thread (for kernels that already split work over threads). */
void mer__softmax_row(float *y, const float *x, int64_t n);
/* y = exp(x - max x) on the calling thread, returning sum(y): the softmax before its division
 * (kernels that fold 1 / sum into a later product). y may alias x. */
float mer__exp_sum_row(float *y, const float *x, int64_t n);
/* dx += y * (dy - sum(dy * y)) per row. */
void mer__softmax_bwd(float *dx, const float *dy, const float *y, int64_t rows, int64_t cols);

/* ---- attn.c ------------------------------------------------------------------------------ */
/* Scaled dot-product attention, heads packed in the feature dim:
 *   q (tq, h*dh) with row stride ldq, k and v (tk, h*dh) with row strides ldk, ldv,
 *   out (tq, h*dh) with row stride ldo; scale usually 1/sqrt(dh).
 * probs (h, tq, tk), if non-NULL, receives the attention probabilities (for backward).
 * key_mask (tk), if non-NULL, marks valid keys with 1 and padded ones with 0.
 * ws: mer__attention_ws_floats(tq, tk, h, dh) floats of scratch (a workspace sized at init), or
 * NULL to allocate it for this call; the fused AVX2 path also allocates each thread's score
 * block (48 x tk floats) per call (mer__attention_fwd_all takes those from ws too). Fails only
 * with MER_ERR_NOMEM. Without probs and key_mask the AVX2 path divides each output row by its
 * softmax sum after P V instead of normalising P first (one pass less; the result differs from
 * the probs path by float rounding only).
 * ref: torch.nn.functional.scaled_dot_product_attention */
int64_t mer__attention_ws_floats(int64_t tq, int64_t tk, int64_t h, int64_t dh);
mer_status mer__attention_fwd(float *out, int64_t ldo, float *probs, const float *q, int64_t ldq,
                              const float *k, int64_t ldk, const float *v, int64_t ldv,
                              const uint8_t *key_mask, int64_t tq, int64_t tk, int64_t h,
                              int64_t dh, float scale, float *ws);
/* The same in bfloat16 where the CPU has AVX512-BF16 and dh is a multiple of 16 (q, k, v and
 * the probabilities rounded to bfloat16, vdpbf16ps with float32 sums, the softmax in float32:
 * the precision of the encoders' BF16 mode); elsewhere, or with probs, mer__attention_fwd. ws as
 * for mer__attention_fwd (its size covers both). */
mer_status mer__attention_fwd_bf16(float *out, int64_t ldo, float *probs, const float *q, int64_t ldq,
                                   const float *k, int64_t ldk, const float *v, int64_t ldv,
                                   const uint8_t *key_mask, int64_t tq, int64_t tk, int64_t h,
                                   int64_t dh, float scale, float *ws);
/* mer__attention_fwd with all of its scratch in ws, the per-thread buffers included, for at
 * most `threads` threads (fewer run if the calling thread's count is lower): ws holds
 * mer__attention_ws_floats_all(tq, tk, h, dh, threads) floats. Never allocates (a training step
 * in steady state). */
int64_t mer__attention_ws_floats_all(int64_t tq, int64_t tk, int64_t h, int64_t dh, int threads);
mer_status mer__attention_fwd_all(float *out, int64_t ldo, float *probs, const float *q,
                                  int64_t ldq, const float *k, int64_t ldk, const float *v,
                                  int64_t ldv, const uint8_t *key_mask, int64_t tq, int64_t tk,
                                  int64_t h, int64_t dh, float scale, float *ws, int threads);
/* Backward of the above given saved probs; dq, dk, dv accumulate (+=) (each may be NULL).
 * ws: tq * tk floats of scratch, or NULL to allocate them for this call. */
mer_status mer__attention_bwd(float *dq, float *dk, float *dv, const float *dout, int64_t ldo,
                              const float *probs, const float *q, int64_t ldq, const float *k,
                              int64_t ldk, const float *v, int64_t ldv, int64_t tq, int64_t tk,
                              int64_t h, int64_t dh, float scale, float *ws);

/* ---- attn_bwd.c --------------------------------------------------------------------------- */
/* Backward of self-attention (tq = tk = T_i, no mask) over a batch of n clips whose rows are
 * concatenated (offsets off (n + 1)), heads packed in the feature dim, all rows ld floats apart
 * (q, k, v, dout, dq, dk, dv); probs: clip c's (h, T_c, T_c) probabilities of the forward at
 * probs + poff[c]. dq, dk, dv accumulate (+=). The (clip, head) pairs are split over the threads;
 * ws: ws_floats floats of scratch, mer__attention_bwd_batch_ws_floats(max T_c) for the calling
 * thread's kernel thread count (fewer threads run when it holds less). Results do not depend on
 * the thread count. */
int64_t mer__attention_bwd_batch_ws_floats(int64_t tmax);
void mer__attention_bwd_batch(float *dq, float *dk, float *dv, const float *dout,
                              const float *probs, const int64_t *poff, const float *q,
                              const float *k, const float *v, int64_t ld, const int64_t *off,
                              int64_t n, int64_t h, int64_t dh, float scale, float *ws,
                              int64_t ws_floats);

/* ---- conv.c ------------------------------------------------------------------------------ */
/* 1-D convolution, channel-major: x (cin, tin) -> y (cout, tout), w (cout, cin/groups, k),
 * b (cout) or NULL, tout = (tin + 2*pad - k) / stride + 1. Fails on bad groups/stride/kernel
 * or when its im2col scratch cannot be allocated. ref: torch.nn.functional.conv1d */
mer_status mer__conv1d_fwd(float *y, const float *x, const float *w, const float *b, int64_t cin,
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

/* ---- pool.c ------------------------------------------------------------------------------ */
/* Mean over time of x (t, d) -> y (d); t == 0 gives zeros. ref: torch.mean(x, dim=0) */
void mer__mean_pool_fwd(float *y, const float *x, int64_t t, int64_t d);
/* dx (t, d) += dy / t broadcast over time. */
void mer__mean_pool_bwd(float *dx, const float *dy, int64_t t, int64_t d);
/* Attention pooling: score_i = x_i . w + b (w (d), b scalar), a = softmax_t(score),
 * y (d) = sum_i a_i x_i. a (t) receives the weights (needed by backward).
 * ref: softmax(nn.Linear(d, 1)(x), dim=0).T @ x */
void mer__attn_pool_fwd(float *y, float *a, const float *x, const float *w, float b, int64_t t,
                        int64_t d);
/* dx (t, d) +=, dw (d) +=, *db += (db may be NULL), given a from the forward. */
void mer__attn_pool_bwd(float *dx, float *dw, float *db, const float *dy, const float *a,
                        const float *x, const float *w, int64_t t, int64_t d);

/* ---- resize.c ---------------------------------------------------------------------------- */
/* Resize 8-bit interleaved pixels (channels 1..4, rows packed) from (sw, sh) to (dw, dh)
 * exactly as Pillow's bicubic (antialiased when shrinking, 22-bit fixed point, 8-bit
 * intermediate). Allocates its scratch; fails only on bad sizes or no memory.
 * ref: PIL.Image.Image.resize(resample=BICUBIC) */
mer_status mer__resize_bicubic_u8(uint8_t *dst, int32_t dw, int32_t dh, const uint8_t *src,
                                  int32_t sw, int32_t sh, int32_t channels);
/* Center crop to (cw, ch), zero-padding where the source is smaller.
 * ref: transformers.image_transforms.center_crop */
void mer__center_crop_u8(uint8_t *dst, int32_t cw, int32_t ch, const uint8_t *src, int32_t sw,
                         int32_t sh, int32_t channels);

/* ---- fft.c ------------------------------------------------------------------------------- */
/* Mixed-radix FFT of any size n (double precision, complex interleaved re/im). The plan is
 * immutable and shareable between threads; free with mer__fft_free (NULL ok). */
typedef struct mer__fft mer__fft;
mer_status mer__fft_init(mer__fft **out, int64_t n);
void mer__fft_free(mer__fft *f);
int64_t mer__fft_size(const mer__fft *f);
/* out (n complex) = DFT of in (n complex), out != in; inverse is unnormalised (no 1/n).
 * ref: torch.fft.fft */
mer_status mer__fft_c2c(const mer__fft *f, double *out, const double *in, int inverse);
/* X (n/2 + 1 complex) = DFT of real x (n); work holds 4 n doubles. ref: torch.fft.rfft */
mer_status mer__fft_r2c(const mer__fft *f, double *X, const double *x, double *work);

/* ---- conv2d.c ---------------------------------------------------------------------------- */
/* One image, NHWC (channels innermost), filters as TensorFlow stores them. Padding: explicit
 * pad_t/pad_l; the bottom/right padding is implied by (oh, ow); padded taps add zero.
 * TensorFlow 'same' padding: out = ceil(in / stride), pad_before = floor(total / 2). */
void mer__conv_same_padding(int64_t in, int64_t k, int64_t stride, int64_t *out,
                            int64_t *pad_before);
/* y (oh, ow, cout) = conv(x (h, wd, cin), w (kh, kw, cin, cout)) + b (cout, or NULL).
 * ref: tf.conv2d (NHWC, HWIO) */
void mer__conv2d_nhwc_fwd(float *y, const float *x, const float *w, const float *b, int64_t h,
                          int64_t wd, int64_t cin, int64_t cout, int64_t kh, int64_t kw,
                          int64_t stride, int64_t pad_t, int64_t pad_l, int64_t oh, int64_t ow);
/* Depthwise, channel multiplier 1: w (kh, kw, c). ref: tf.depthwiseConv2d */
void mer__dwconv2d_nhwc_fwd(float *y, const float *x, const float *w, const float *b, int64_t h,
                            int64_t wd, int64_t c, int64_t kh, int64_t kw, int64_t stride,
                            int64_t pad_t, int64_t pad_l, int64_t oh, int64_t ow);
/* 1x1 convolution over p pixels: y (p, cout) = x (p, cin) @ w (cin, cout) + b. One GEMM. */
void mer__pwconv_fwd(float *y, const float *x, const float *w, const float *b, int64_t p,
                     int64_t cin, int64_t cout);
/* k x k pooling; padded taps are skipped (max never picks them; avg divides by the count of
 * taps inside the image). ref: tf.maxPool / tf.avgPool */
void mer__maxpool2d_nhwc_fwd(float *y, const float *x, int64_t h, int64_t wd, int64_t c,
                             int64_t k, int64_t stride, int64_t pad_t, int64_t pad_l, int64_t oh,
                             int64_t ow);
void mer__avgpool2d_nhwc_fwd(float *y, const float *x, int64_t h, int64_t wd, int64_t c,
                             int64_t k, int64_t stride, int64_t pad_t, int64_t pad_l, int64_t oh,
                             int64_t ow);

#endif /* MER_KERNELS_H */
