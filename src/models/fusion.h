/*
 * fusion.h -- the interface of the trainable fusion models (fusion_attention.c, fusion_agt.c,
 * linear_softmax.c, ...): what a model is to the training engine (src/train), which creates,
 * trains, saves and applies it. Internal (mer__ prefix).
 *
 * ---- How a model plugs in (llm.c style) -----------------------------------------------------
 * A model is a table of functions (mer__model_ops) plus private state, built from the layer kit
 * (src/nn/nn.h). Its parameters, gradients and activations live in m->nn, a parameter set whose
 * flat buffers the engine's optimizer updates in one loop.
 *
 *   1. build(m): read m->cfg (dims, classes, hidden, dropout, heads, layers) and declare every
 *      layer (mer__lin_declare(&m->nn, ...), ...; the PyTorch state_dict names of the equivalent
 *      torch module, so a checkpoint maps 1:1 onto a torch reference); keep the layers in your
 *      private state, m->priv. After build() returns, the engine allocates the buffers.
 *   2. init(m, rng): draw the initial weights (the layers' *_init, in torch's module order).
 *   3. forward(m, batch, train, rng, logits): logits (batch->n, n_classes). train != 0 enables
 *      dropout (masks from rng, drawn serially), keeps the activations backward needs and
 *      reserves every buffer it will use, in the arena (the engine resets it before every
 *      forward). train == 0 must be a pure function of the inputs (prediction).
 *   4. backward(m, batch, dlogits): ACCUMULATE d(loss)/d(params) into m->nn.grads (+=) using the
 *      activations of the last forward(train=1); it allocates nothing. Grads are zero on entry.
 *   5. destroy(m): free m->priv (not the parameter set).
 * Then add one line to the registry table in src/train/registry.c.
 * See fusion_attention.c for a complete example.
 *
 * ---- Batches --------------------------------------------------------------------------------
 * A batch gathers clips into contiguous rows per modality: utterance features (n, D); sequence
 * features as the concatenation of every clip's frames (sum_i T_i, D) with row offsets
 * off[m] (n + 1), off[m][0] = 0 (no padding).
 */
#ifndef MER_FUSION_H
#define MER_FUSION_H

#include "nn/nn.h"

typedef struct {
    int64_t n;                                     /* clips */
    int32_t n_mod;
    const float *x[MER_MAX_MODALITIES];            /* (n, D) or (sum T_i, D) */
    const int64_t *off[MER_MAX_MODALITIES];        /* sequences: (n + 1) row offsets; else NULL */
    int64_t dim[MER_MAX_MODALITIES];
    const int32_t *y;                              /* (n) labels, NULL when predicting */
} mer__batch;

typedef struct {
    char model[MER_NAME_MAX];
    int32_t n_classes, n_mod;
    int64_t dim[MER_MAX_MODALITIES];
    int32_t is_seq[MER_MAX_MODALITIES];
    char modality[MER_MAX_MODALITIES][MER_NAME_MAX];
    int32_t hidden, heads, layers;
    float dropout;
    int32_t tokens;             /* agt: sub-tokens per utterance vector (--tokens; 0 = 4) */
    char encoder[1536];         /* speech: the encoder spec (mer_train_params.encoder), or "" */
} mer__model_config;

typedef struct mer__model mer__model;
typedef struct {
    const char *name;
    const char *summary;
    mer_status (*build)(mer__model *m);
    void (*init)(mer__model *m, mer__rng *rng);
    mer_status (*forward)(mer__model *m, const mer__batch *b, int train, mer__rng *rng,
                          float *logits);
    mer_status (*backward)(mer__model *m, const mer__batch *b, const float *dlogits);
    void (*destroy)(mer__model *m);
} mer__model_ops;

struct mer__model {
    const mer__model_ops *ops;
    mer__model_config cfg;
    mer__nn nn;                     /* parameters, gradients, activations */
    void *priv;                     /* the model's own state */
};

/* The models (one file each). */
extern const mer__model_ops mer__model_attention, mer__model_agt, mer__model_afusion,
    mer__model_linear;

#endif /* MER_FUSION_H */
