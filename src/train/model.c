/*
 * model.c -- the engine side of a model: creation from the registry, checkpoints (safetensors,
 * tensors by their PyTorch names) and batched prediction. The model files (src/models) only
 * declare, initialise and compute, on the layer kit (src/nn).
 */
#include "train/train.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* ---- creation ----------------------------------------------------------------------------- */

mer_status mer__model_create(mer__model **out, const mer__model_config *cfg, mer__rng *rng) {
    *out = NULL;
    const mer__model_ops *ops = mer__model_lookup(cfg->model);
    if (!ops)
        return mer__err(MER_ERR_INVALID_ARG, "unknown model '%s' (known: %s)", cfg->model,
                        mer__model_names());
    if (cfg->n_classes < 2 || cfg->n_classes > MER_MAX_CLASSES)
        return mer__err(MER_ERR_INVALID_ARG, "model %s: %d classes (need 2..%d)", cfg->model,
                        cfg->n_classes, MER_MAX_CLASSES);
    if (cfg->n_mod < 1 || cfg->n_mod > MER_MAX_MODALITIES)
        return mer__err(MER_ERR_INVALID_ARG, "model %s: %d modalities (need 1..%d)", cfg->model,
                        cfg->n_mod, MER_MAX_MODALITIES);
    mer__model *m = calloc(1, sizeof *m);
    if (!m) return mer__err(MER_ERR_NOMEM, "out of memory");
    m->ops = ops;
    m->cfg = *cfg;
    mer_status s = ops->build(m);
    if (s != MER_OK) {
        mer__model_free(m);
        return s;
    }
    s = mer__nn_alloc(&m->nn);
    if (s != MER_OK) {
        mer__err_prefix("model %s", cfg->model);
        mer__model_free(m);
        return s;
    }
    if (rng) ops->init(m, rng);
    *out = m;
    return MER_OK;
}

void mer__model_free(mer__model *m) {
    if (!m) return;
    if (m->ops && m->ops->destroy) m->ops->destroy(m);
    mer__nn_free(&m->nn);
    free(m);
}

/* ---- checkpoints -------------------------------------------------------------------------- */

/* The checksum of a checkpoint: the digest of its tensors' float32 bytes in parameter order,
 * recorded as metadata "checksum" and verified at load, so a flipped bit in a weight file is an
 * error rather than silently other predictions. */
static void checksum_hex(char out[17], const mer__model *m, const float *params) {
    mer__digest d;
    mer__digest_init(&d);
    for (int32_t i = 0; i < m->nn.n_info; i++)
        mer__digest_add(&d, params + m->nn.info[i].offset, (size_t)m->nn.info[i].numel * sizeof(float));
    snprintf(out, 17, "%016llx", (unsigned long long)mer__digest_final(&d));
}

mer_status mer__model_save(const mer__model *m, const float *params, const char *path,
                           const char *meta_key, const char *meta_json) {
    mer_safetensors_writer *w = NULL;
    mer_status s = mer_safetensors_writer_init(&w);
    char sum[17];
    checksum_hex(sum, m, params);
    if (s == MER_OK) s = mer_safetensors_writer_set_metadata(w, "checksum", sum);
    for (int32_t i = 0; s == MER_OK && i < m->nn.n_info; i++) {
        const mer__param_info *p = &m->nn.info[i];
        s = mer_safetensors_writer_add(w, p->name, MER_DTYPE_F32, p->ndim, p->shape,
                                       params + p->offset);
    }
    if (s == MER_OK && meta_key && meta_json)
        s = mer_safetensors_writer_set_metadata(w, meta_key, meta_json);
    if (s == MER_OK) s = mer_safetensors_writer_save(w, path);
    mer_safetensors_writer_free(w);
    return s;
}

mer_status mer__model_load(mer__model *m, const char *path) {
    mer_safetensors *st = NULL;
    mer_status s = mer_safetensors_open(&st, path);
    if (s != MER_OK) return s;
    for (int32_t i = 0; s == MER_OK && i < m->nn.n_info; i++) {
        const mer__param_info *p = &m->nn.info[i];
        const float *src = NULL;
        s = mer_safetensors_get_f32(st, p->name, p->ndim, p->shape, &src);
        if (s == MER_OK) memcpy(m->nn.params + p->offset, src, (size_t)p->numel * sizeof(float));
    }
    const char *want = s == MER_OK ? mer_safetensors_metadata(st, "checksum") : NULL;
    if (s == MER_OK && want) {
        char got[17];
        checksum_hex(got, m, m->nn.params);
        if (strcmp(got, want) != 0)
            s = mer__err(MER_ERR_FORMAT, "%s: checksum mismatch (recorded %s, the weights give %s): "
                         "the file was changed or corrupted after training", path, want, got);
    } else if (s == MER_OK) {
        MER_LOG_W("%s: no checksum (written before mer recorded one): not verified", path);
    }
    for (int64_t i = 0; s == MER_OK && i < m->nn.n_params; i++)
        if (!isfinite(m->nn.params[i]))
            s = mer__err(MER_ERR_NUMERIC, "%s: non-finite weight", path);
    mer_safetensors_free(st);
    return s;
}

/* ---- prediction --------------------------------------------------------------------------- */

mer_status mer__model_predict_idx(mer__model *m, const mer_dataset *ds, const int64_t *idx,
                                  int64_t n, float *probs, int64_t batch) {
    int32_t c = m->cfg.n_classes;
    if (batch <= 0) batch = 256;
    mer__batcher bt;
    memset(&bt, 0, sizeof bt);
    float *logits = malloc((size_t)(batch * c) * sizeof *logits);
    mer_status s = logits ? MER_OK : mer__err(MER_ERR_NOMEM, "out of memory");
    for (int64_t b0 = 0; s == MER_OK && b0 < n; b0 += batch) {
        int64_t nb = n - b0 < batch ? n - b0 : batch;
        s = mer__batcher_fill(&bt, ds, idx + b0, nb);
        if (s != MER_OK) break;
        mer__act_reset(&m->nn.act);
        s = m->ops->forward(m, &bt.b, 0, NULL, logits);
        if (s != MER_OK) break;
        mer__softmax_fwd(probs + b0 * c, logits, nb, c);
    }
    mer__batcher_free(&bt);
    free(logits);
    return s;
}

mer_status mer__model_predict(mer__model *m, const mer_dataset *ds, float *probs, int64_t batch) {
    int64_t n = mer_dataset_count(ds);
    int64_t *idx = malloc((size_t)(n ? n : 1) * sizeof *idx);
    if (!idx) return mer__err(MER_ERR_NOMEM, "out of memory");
    for (int64_t i = 0; i < n; i++) idx[i] = i;
    mer_status s = mer__model_predict_idx(m, ds, idx, n, probs, batch);
    free(idx);
    return s;
}
