/*
 * model_speech.c -- the "speech" trainable model: the top transformer layers of a frozen
 * HuBERT / wav2vec 2.0 checkpoint with adapters or LoRA and a linear head
 * (src/models/speech_train.c), trained by the ordinary trainer on cached hidden states (one
 * sequence modality, (T, D) per clip: hidden state first-1). Its configuration is the encoder
 * spec string of the run (mer_train_params.encoder, config.json "encoder"): the checkpoint
 * directory and its digest, the layers, the method and its sizes. The checkpoint is loaded
 * (mmapped) per model instance; a checkpoint whose digest differs from the spec's is refused.
 */
#include "train/train.h"

#include "models/speech_train.h"

#include <string.h>

typedef struct {
    mer_speech_model *sm;
    mer__sft *sft;
    int64_t base;   /* offset of the first trainable tensor in m->nn.params */
} speech_priv;

static mer_status sp_build(mer__model *m) {
    const mer__model_config *c = &m->cfg;
    if (!c->encoder[0])
        return mer__err(MER_ERR_INVALID_ARG, "speech: no encoder given (use `mer finetune speech`)");
    if (c->n_mod != 1 || !c->is_seq[0])
        return mer__err(MER_ERR_INVALID_ARG, "speech: needs exactly one sequence feature (the "
                        "cached hidden states), got %d modalities", (int)c->n_mod);
    mer__sft_config sc;
    char dir[MER_PATH_CAP], digest[17], have[17];
    mer_status s = mer__sft_spec_parse(c->encoder, &sc, dir, sizeof dir, digest);
    if (s) return s;
    sc.n_classes = c->n_classes;
    speech_priv *p = mer__calloc(1, sizeof *p);
    if (!p) return MER_ERR_NOMEM;
    m->priv = p;
    if ((s = mer_speech_model_load(&p->sm, dir, NULL))) return s;
    mer__speech_digest(p->sm, have);
    if (digest[0] && strcmp(digest, have))
        return mer__err(MER_ERR_INVALID_ARG, "%s: checkpoint digest %s, but the adapter was made "
                        "for %s (another model or config)", dir, have, digest);
    if ((s = mer__sft_init(&p->sft, p->sm, &sc))) return s;
    if (mer__sft_dim(p->sft) != c->dim[0])
        return mer__err(MER_ERR_SHAPE, "speech: cached features have dim %lld, the model %lld",
                        (long long)c->dim[0], (long long)mer__sft_dim(p->sft));
    int32_t nt = 0;
    const mer__param_info *pt = mer__sft_params(p->sft, &nt);
    for (int32_t i = 0; i < nt; i++) {
        int64_t off = mer__nn_param(&m->nn, pt[i].name, pt[i].ndim, pt[i].shape);
        if (off < 0) return MER_ERR_INTERNAL;
        if (i == 0) p->base = off;
        if (off != p->base + pt[i].offset)
            return mer__err(MER_ERR_INTERNAL, "speech: parameter %s not contiguous", pt[i].name);
    }
    return MER_OK;
}

static void sp_init(mer__model *m, mer__rng *rng) {
    speech_priv *p = m->priv;
    mer__sft_init_params(p->sft, m->nn.params + p->base, rng);
}

static mer_status sp_forward(mer__model *m, const mer__batch *b, int train, mer__rng *rng,
                             float *logits) {
    speech_priv *p = m->priv;
    return mer__sft_forward(p->sft, m->nn.params + p->base, b->x[0], b->off[0], b->n, train, rng,
                            logits, NULL);
}

static mer_status sp_backward(mer__model *m, const mer__batch *b, const float *dlogits) {
    speech_priv *p = m->priv;
    return mer__sft_backward(p->sft, m->nn.params + p->base, m->nn.grads + p->base, dlogits, NULL);
}

static void sp_destroy(mer__model *m) {
    speech_priv *p = m->priv;
    if (!p) return;
    mer__sft_free(p->sft);
    mer_speech_model_free(p->sm);
    free(p);
    m->priv = NULL;
}

const mer__model_ops mer__model_speech = {
    "speech",
    "top layers of a speech encoder with adapters/LoRA on cached hidden states (mer finetune speech)",
    sp_build, sp_init, sp_forward, sp_backward, sp_destroy,
};
