/*
 * speech_internal.h -- what the trainable speech encoder (speech_train.c) needs from the frozen
 * one (hubert.c): read-only views of a loaded model's transformer-layer weights. Internal.
 */
#ifndef MER_SPEECH_INTERNAL_H
#define MER_SPEECH_INTERNAL_H
#include "internal.h"

/* One transformer layer's weights as HF names them (encoder.layers.N.*), torch Linear layout
 * (out, in). Pointers into the model (mmapped or converted at load); valid while it lives. */
typedef struct {
    const float *ln1_g, *ln1_b;   /* layer_norm */
    const float *wq, *bq, *wk, *bk, *wv, *bv, *wo, *bo;
    const float *ln2_g, *ln2_b;   /* final_layer_norm */
    const float *w1, *b1, *w2, *b2;
} mer__speech_layer;

/* Layer l (0-based, 0 <= l < n_layers) of m; MER_ERR_INVALID_ARG outside the model. */
mer_status mer__speech_layer_get(const mer_speech_model *m, int32_t l, mer__speech_layer *out);
/* The bfloat16 copies of layer l's six projection weights (q, k, v, out, intermediate,
 * output; (out, in) raw bits), made on first use as for MER_PRECISION_BF16 (thread safe). */
mer_status mer__speech_layer_bf16(const mer_speech_model *m, int32_t l, const uint16_t *w16[6]);
/* The encoder's own LayerNorm (encoder.layer_norm: before layer 0 in post-LN models, after the
 * last layer in stable-layer-norm ones) and layer_norm_eps. */
void mer__speech_encoder_ln(const mer_speech_model *m, const float **g, const float **b,
                            float *eps);
/* The model a state is bound to (NULL for NULL): the batch extractor (src/pipeline/extract.c)
 * decodes media at its sample rate. */
const mer_speech_model *mer__speech_state_model(const mer_speech_state *s);
#endif /* MER_SPEECH_INTERNAL_H */
