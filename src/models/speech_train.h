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
 *   recon    recon.weight (D, D), recon.bias (D), with recon_weight > 0: the masked-reconstruction
 *            loss. In a training forward, spans of frames of the cached input (hidden state
 *            first-1) are zeroed (per clip floor(mask_prob T / mask_len + u) spans of mask_len
 *            frames, u and the starts uniform from the rng, as transformers' _compute_mask_indices
 *            but without its minimum), the layers run on the masked input, and recon(hidden state
 *            adapt_last) is regressed onto the original frames at the masked positions:
 *            loss = CE + recon_weight * mean((recon(h) - x)^2) over masked frames and features.
 *            The target is data (no gradient flows into it).
 * bf16: the six frozen projection products of every layer (forward y = x W^T and backward
 * dx = dy W) run through mer_sgemm_bf16 on the model's bfloat16 weight copies (activations
 * rounded to bfloat16, float32 accumulation); LoRA/adapter branches, heads, norms, attention
 * and every gradient of a trainable tensor stay float32.
 * int8: the same six products, forward and backward, as int8 W8A8 dynamic (mer_packed
 * MER_PACK_INT8: per-channel weights packed once, W for the forward and W^T for dx, the
 * activations / output gradients quantised per row at each product, int32 sums); float32
 * otherwise exactly as bf16.
 * With method lora every name carries peft's "base_model.model." prefix (a fold checkpoint is an
 * adapter_model.safetensors peft loads with modules_to_save ["head"]).
 * Random draws of a training forward, from the rng, in this order: the reconstruction spans
 * (clip by clip: u, then each span's start), then per layer the LoRA dropout masks of q, k, v,
 * out, intermediate, output (mer__dropout_fwd over the batch's rows, one rng word each).
 */
#ifndef MER_SPEECH_TRAIN_H
#define MER_SPEECH_TRAIN_H
#include "internal.h"
#include "nn/nn.h"

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
    float dropout;           /* LoRA dropout p on each branch's input (peft's lora_dropout), 0..<1 */
    float recon_weight;      /* masked-reconstruction loss weight W (0: off) */
    float mask_prob;         /* reconstruction masks: share of frames that start a span (0.05) */
    int32_t mask_len;        /* span length in frames (10) */
    int32_t bf16;            /* frozen projections in bfloat16 (mer_sgemm_bf16), see below */
    int32_t memo_mb;         /* adapters: keep the first layer's frozen part per clip (MB, 0: off) */
    int32_t int8;            /* frozen projections in int8 W8A8 (mer__plin), see below */
} mer__sft_config;

typedef struct mer__sft mer__sft;

/* Checks c against m (layers outside the model, bad sizes: MER_ERR_INVALID_ARG naming the
 * problem) and lays out the trainable parameters. *out owned by the caller (mer__sft_free). */
mer_status mer__sft_init(mer__sft **out, const mer_speech_model *m, const mer__sft_config *c);
void mer__sft_free(mer__sft *s);
int64_t mer__sft_n_params(const mer__sft *s);
/* The trainable tensors (names, shapes, offsets into the flat buffers), in declaration order. */
const mer__param_info *mer__sft_params(const mer__sft *s, int32_t *n);
int64_t mer__sft_dim(const mer__sft *s);
/* peft / torch initial values, drawn in declaration order: adapter down and head as
 * torch.nn.Linear, adapter up zero (the adapter starts as the identity); LoRA A
 * kaiming_uniform(a=sqrt(5)) = U(-1/sqrt(in), 1/sqrt(in)), B zero. */
void mer__sft_init_params(mer__sft *s, float *params, mer__rng *rng);

/* Forward over n clips whose cached inputs are x (rows, D), clip i at rows off[i]..off[i+1]
 * (no padding). logits (n, C) if non-NULL. train != 0 keeps what backward needs (the state's
 * memory grows to fit the largest batch, then is reused) and applies LoRA dropout and the
 * reconstruction masks with draws from rng (which may be NULL when neither is on). feat, if
 * non-NULL, receives the head's pooled utterance feature (n, D). NaN/Inf in x: MER_ERR_NUMERIC. */
mer_status mer__sft_forward(mer__sft *s, const float *params, const float *x, const int64_t *off,
                            int64_t n, int train, mer__rng *rng, float *logits, float *feat);
/* The head's input per frame of the last forward: the sum of hidden states head_first..last,
 * (rows, D), valid until the next forward. */
const float *mer__sft_hidden(const mer__sft *s);
/* The masked-reconstruction loss of the last training forward (recon_weight times the MSE;
 * 0 when off or no frame was masked). */
float mer__sft_recon_loss(const mer__sft *s);
/* Backward of the last forward(train = 1): grads (n_params) += d(loss)/d(params) given
 * dlogits (n, C), plus the reconstruction loss's gradient when it is on; dx (rows, D), if
 * non-NULL, += d(loss)/d(x) through the layers (masked frames get none; refused when the
 * memo is on, which keeps no activations below the first adapter).
 *
 * The memo (memo_mb > 0, method adapter, no reconstruction loss): in the first adapted layer
 * everything below its adapter (attention, feed-forward) is a frozen function of the clip's
 * cached input, so it is computed once per clip, alone (one clip at a time, so the values do
 * not depend on which clips share a batch), and kept in memory keyed by a 128-bit hash of the
 * clip's input rows (up to memo_mb MB; clips beyond it are computed per clip each time). Every
 * later forward of that clip only runs the adapter and above. */
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
 *    method=adapter;bottleneck=32;rank=0;alpha=0;lora_ffn=0;dropout=0;recon=0;mask_prob=0.05;
 *    mask_len=10;bf16=0;memo=512" (the last six optional: older runs lack them; memo only
 *    when on)
 * parse: fills c and model (cap bytes); MER_ERR_FORMAT naming the bad field. */
mer_status mer__sft_spec_parse(const char *spec, mer__sft_config *c, char *model, size_t cap,
                               char digest[17]);
void mer__sft_spec_format(char *out, size_t cap, const char *model, const char *digest,
                          const mer__sft_config *c);
#endif /* MER_SPEECH_TRAIN_H */
