/*
 * speech_train.h -- the trainable top of a speech encoder (speech_train.c): transformer layers
 * first..last of a loaded HuBERT / wav2vec 2.0 model run forward and backward over cached
 * hidden states, with parameter-efficient modules (bottleneck adapters or LoRA) in layers
 * first..adapt_last and a classification head. The base weights stay frozen where the model
 * keeps them (mmapped); only the modules and the head are trainable. Internal (mer__ prefix).
 *
 * Numbering follows transformers' hidden states: hidden state k is the output of layer k
 * (1-based), hidden state 0 the encoder input. Layers first..last (1 <= first <= last <= L)
 * take hidden state first-1 (the cache, `mer extract audio --layers first-1 --pool none`) and
 * give hidden states first..last; for a stable-layer-norm model hidden state L includes the
 * encoder's final LayerNorm, exactly as transformers returns it.
 *
 * Modules (names are the PyTorch state_dict names of the reference in
 * tests/fixtures/speech_train/make_speech_train_fixture.py; LoRA names are peft's without its
 * "base_model.model." prefix):
 *   adapter  encoder.layers.N.adapter.{down,up}.{weight,bias}: h -> h + up(relu(down(h))) on the
 *            feed-forward block's output h, before that block's residual add (Houlsby's placement
 *            "after the feed-forward block"; in a post-LN layer also before final_layer_norm).
 *   lora     encoder.layers.N.attention.{q,k,v,out}_proj.lora_{A,B}.weight (and
 *            feed_forward.{intermediate,output}_dense.lora_{A,B}.weight with lora_ffn):
 *            W x + b + (alpha / r) B A x, as peft's LoraLayer (dropout 0).
 *   head     head.weight (C, D), head.bias (C): logits of the per-clip mean over frames of the
 *            sum of hidden states head_first..last (the MERTools combination of layers).
 */
#ifndef MER_SPEECH_TRAIN_H
#define MER_SPEECH_TRAIN_H
#include "internal.h"

enum { MER__SFT_NONE = 0, MER__SFT_ADAPTER = 1, MER__SFT_LORA = 2 };

typedef struct {
    int32_t first, last;     /* hidden states computed: layers first..last run */
    int32_t adapt_last;      /* modules in layers first..adapt_last (<= last) */
    int32_t head_first;      /* head sums hidden states head_first..last (first <= . <= last) */
    int32_t method;          /* MER__SFT_* */
    int32_t bottleneck;      /* adapter width */
    int32_t rank;            /* LoRA r */
    float alpha;             /* LoRA alpha (scaling alpha / r) */
    int32_t lora_ffn;        /* LoRA also on the feed-forward projections */
    int32_t n_classes;
} mer__sft_config;

typedef struct {
    char name[96];
    int32_t ndim;
    int64_t shape[2];
    int64_t off, numel;
} mer__sft_param;

typedef struct mer__sft mer__sft;

/* Checks c against m (layers outside the model, bad sizes: MER_ERR_INVALID_ARG naming the
 * problem) and lays out the trainable parameters. *out owned by the caller (mer__sft_free). */
mer_status mer__sft_init(mer__sft **out, const mer_speech_model *m, const mer__sft_config *c);
void mer__sft_free(mer__sft *s);
int64_t mer__sft_n_params(const mer__sft *s);
const mer__sft_param *mer__sft_params(const mer__sft *s, int32_t *n);
int64_t mer__sft_dim(const mer__sft *s);
/* peft / torch initial values, drawn in declaration order: adapter down and head as
 * torch.nn.Linear, adapter up zero (the adapter starts as the identity); LoRA A
 * kaiming_uniform(a=sqrt(5)) = U(-1/sqrt(in), 1/sqrt(in)), B zero. */
void mer__sft_init_params(const mer__sft *s, float *params, mer__rng *rng);

/* Forward over n clips whose cached inputs are x (rows, D), clip i at rows off[i]..off[i+1]
 * (no padding). logits (n, C) if non-NULL. train != 0 keeps what backward needs (the state's
 * memory grows to fit the largest batch, then is reused). hs, if non-NULL, receives the head's
 * pooled utterance feature (n, D). NaN/Inf in x: MER_ERR_NUMERIC. */
mer_status mer__sft_forward(mer__sft *s, const float *params, const float *x, const int64_t *off,
                            int64_t n, int train, float *logits, float *feat);
/* Backward of the last forward(train = 1): grads (n_params) += d(loss)/d(params) given
 * dlogits (n, C); dx (rows, D), if non-NULL, += d(loss)/d(x). */
mer_status mer__sft_backward(mer__sft *s, const float *params, float *grads, const float *dlogits,
                             float *dx);
/* Bytes of activation memory the state holds now (its peak so far). */
size_t mer__sft_act_bytes(const mer__sft *s);

/* A 16-hex-digit fingerprint of a loaded model: its configuration (type, sizes, layout,
 * parameter count, weight bytes) and the bits of a sample of every layer's weights, so an
 * adapter or a cache made with another checkpoint, even one of the same configuration, is
 * refused. out holds 17 chars. */
void mer__speech_digest(const mer_speech_model *m, char out[17]);

/* The encoder spec string stored in a run's config.json ("encoder"), e.g.
 *   "model=/abs/dir;digest=0123abcd0123abcd;first=10;last=12;adapt_last=12;head_first=12;
 *    method=adapter;bottleneck=32;rank=0;alpha=0;lora_ffn=0"
 * parse: fills c and model (cap bytes); MER_ERR_FORMAT naming the bad field. */
mer_status mer__sft_spec_parse(const char *spec, mer__sft_config *c, char *model, size_t cap,
                               char digest[17]);
void mer__sft_spec_format(char *out, size_t cap, const char *model, const char *digest,
                          const mer__sft_config *c);
#endif /* MER_SPEECH_TRAIN_H */
