/*
 * text_internal.h -- what the text encoders share (text_encoder.c: weights, products, attention,
 * state, extraction, quantization; bert.c and llama.c: loading and the forward of each family).
 * Internal (mer__ prefix).
 */
#ifndef MER_TEXT_INTERNAL_H
#define MER_TEXT_INTERNAL_H

#include "kernels/kernels.h"

#include <pthread.h>

/* A weight matrix (rows = outputs, cols = inputs, as torch.nn.Linear stores it) in whatever form
 * the checkpoint holds it: F32 or BF16 in place in the mapping, or I8 with float scales (blocks
 * of `block` values along a row, or one per row when block < 0). The packed copies of the BF16
 * and INT8 precisions (mer_packed, src/kernels/packed.c) are made once under the model's mutex. */
typedef struct {
    int64_t rows, cols;
    mer_dtype dtype;          /* F32, BF16 or I8 */
    const void *data;
    const int8_t *q8;         /* I8 data */
    const void *q8scale;      /* its scales: float32, or float16 when q8f16 (mer quantize files) */
    int32_t q8f16;
    int32_t q8block;          /* > 0 block size along a row, -1 one scale per row */
    mer_packed *pk[2];        /* packed for MER_PRECISION_BF16 [0] and MER_PRECISION_INT8 [1] */
    const float *bias;        /* (rows), added by mer__text_linear (and packed with the weights);
                                 NULL when the family adds its biases itself (llama's rope step) */
} mer__tw;

typedef struct {
    /* bert: q, k, v, o, ff1 = intermediate.dense, ff2 = output.dense
     * llama: q, k, v, o, ff1 = gate_proj, ff3 = up_proj, ff2 = down_proj */
    mer__tw q, k, v, o, ff1, ff2, ff3;
    const float *qb, *kb, *vb, *ob, *b1, *b2;
    const float *ln1_w, *ln1_b, *ln2_w, *ln2_b;
    mer_packed *qkv[2];       /* q | k | v packed as one matrix (per precision, as mer__tw.pk);
                                 then q, k and v hold no packed copy of their own */
} mer__text_layer;

struct mer_text_model {
    mer_text_info info;
    char dir[MER_PATH_CAP];
    mer_safetensors *st;
    float eps;
    mer__tw emb;                     /* (V, D) word / token embeddings */
    const float *pos_emb, *type_emb; /* bert: (P, D), (types, D) */
    const float *emb_ln_w, *emb_ln_b;
    const float *norm_w;             /* decoders: final RMSNorm */
    mer__text_layer *layers;
    float *inv_freq;                 /* rotary: (head_dim / 2) */
    float rope_factor;               /* linear scaling: positions / factor */
    float *slopes;                   /* ALiBi: (n_heads) */
    pthread_mutex_t mu;              /* guards the packed copies in layers */
    int32_t packed_ready[2];         /* BF16, INT8 */
};

/* Fetch a weight matrix of an exact shape (F32/BF16 in place, F16 widened once, I8 with its
 * "<name>.scale"). */
mer_status mer__text_weight(mer_text_model *m, const char *name, int64_t rows, int64_t cols,
                            mer__tw *w);
/* config.json integer key (def when absent) within [lo, hi], else one line naming path and key. */
mer_status mer__text_cfg_int(const mer_json *j, const char *path, const char *key, int64_t def, int64_t lo,
                             int64_t hi, int32_t *out);
/* The keys every family has (hidden_size, num_attention_heads, intermediate_size,
 * num_hidden_layers, vocab_size) into m->info, with the family's config-class defaults. */
mer_status mer__text_cfg_common(mer_text_model *m, const mer_json *j, const char *path, int32_t d, int32_t h,
                                int32_t i, int32_t l, int32_t v);
/* MER_ERR_SHAPE when the checkpoint holds tensor name (of layer n_layers): config.json says fewer. */
mer_status mer__text_no_extra_layer(mer_text_model *m, const char *name);
/* A float32 vector / matrix of an exact shape (converted once when stored otherwise). */
mer_status mer__text_f32(mer_text_model *m, const char *name, int32_t ndim, int64_t d0, int64_t d1,
                         const float **out);
/* Row r of w widened to float32 (embedding lookup). */
void mer__tw_row(const mer__tw *w, int64_t r, float *out);
/* A view of rows [r0, r0 + n) of w (Baichuan's fused W_pack). */
mer__tw mer__tw_rows(const mer__tw *w, int64_t r0, int64_t n);

/* Family loaders, called by mer_text_model_load with config.json open. */
mer_status mer__bert_load(mer_text_model *m, const mer_json *cfg, const char *cfg_path);
mer_status mer__llama_load(mer_text_model *m, const mer_json *cfg, const char *cfg_path);

/* The per-thread scratch of a forward over R = B * T rows. */
typedef struct {
    const mer_text_model *m;
    mer_precision precision;
    int64_t cap_rows, cap_t, cap_threads, cap_tile;
    float *x, *h, *qkv, *ao, *f1, *f3, *scores, *tile;
    int32_t *pos;
    /* the callbacks of the call running now: per layer (encode) or only abort (extract) */
    mer_progress_fn progress;
    void *progress_user_data;
    mer_abort_fn abort;
    void *abort_user_data;
} mer__text_scratch;

struct mer_text_state {
    mer__text_scratch sc;
    mer_text_state_params par;
};

/* Before layer l of `last`: MER_ERR_ABORTED when the call's abort says stop. After it
 * (done = l + 1): the call's progress. The forwards call these between layers. */
mer_status mer__text_layer_poll(const mer__text_scratch *s);
void mer__text_layer_done(const mer__text_scratch *s, int32_t done, int32_t last);

/* C (M, N) (+)= A (M, K) @ W^T through the state's precision. */
mer_status mer__text_gemm(mer__text_scratch *s, const mer__tw *w, int64_t M, const float *A,
                          int64_t lda, int accumulate, float *C, int64_t ldc);
/* C (M, N) (+)= A @ W^T + w->bias, GELU after when gelu; then done(user, r0, r1, thread) on
 * blocks of finished rows (NULL: none), inside the product's parallel region at BF16 / INT8
 * precision (mer__packed_linear_rows), over the rows in a parallel loop at F32. */
mer_status mer__text_linear(mer__text_scratch *s, const mer__tw *w, int64_t M, const float *A,
                            int64_t lda, int accumulate, float *C, int64_t ldc, int gelu,
                            mer__range_fn done, void *user);
/* C (M, q | k | v) = A @ [Wq; Wk; Wv]^T (+ their biases, as mer__text_linear): one product on the
 * fused packed matrix when the precision has one. */
mer_status mer__text_qkv(mer__text_scratch *s, const mer__text_layer *L, int64_t M, const float *A,
                         int64_t lda, float *C, int64_t ldc);
/* Attention over a batch, heads packed: q at qkv + 0, k at koff, v at voff, row stride ld; out
 * (R, H * dh). causal: keys after the query are masked; kmask (B, T) masks padded keys; slopes
 * (H): ALiBi bias slope * key position added to the scaled scores. */
void mer__text_attention(mer__text_scratch *s, const float *qkv, int64_t ld, int64_t koff,
                         int64_t voff, float *out, int64_t B, int64_t T, int64_t H, int64_t KVH,
                         int64_t dh, int causal, const uint8_t *kmask, const float *slopes);
/* y = x + b over rows (bias of a product), optional GELU after. */
void mer__text_bias(float *y, const float *b, int64_t rows, int64_t cols, int64_t ld, int gelu);

/* Forwards: write hidden states [first, last] into out (K, B, T, D). */
mer_status mer__bert_forward(mer__text_scratch *s, const int32_t *ids, const uint8_t *mask,
                             int64_t B, int64_t T, int32_t first, int32_t last, float *out);
mer_status mer__llama_forward(mer__text_scratch *s, const int32_t *ids, const uint8_t *mask,
                              int64_t B, int64_t T, int32_t first, int32_t last, float *out);
/* Grow the scratch for B x T rows. */
mer_status mer__text_reserve(mer__text_scratch *s, int64_t B, int64_t T);

#endif
