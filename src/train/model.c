/*
 * model.c -- the engine side of a model: creation from the registry, parameter declaration
 * into flat buffers, activation memory, checkpoints (safetensors, tensors by their PyTorch
 * names) and batched prediction. The model files only declare, initialise and compute.
 */
#include "train/train.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* ---- activation memory -------------------------------------------------------------------- */

static void *act_alloc(mer__act *a, size_t n) {
    n = (n + 63) & ~(size_t)63;
    if (a->cur && a->used + n <= a->cap) {
        void *p = a->cur + a->used;
        a->used += n;
        return p;
    }
    if (a->cur) {
        if (a->n_old == a->cap_old) {
            int32_t nc = a->cap_old ? 2 * a->cap_old : 8;
            void **o = realloc(a->old, (size_t)nc * sizeof(void *));
            if (!o) {
                mer__err(MER_ERR_NOMEM, "out of memory for activations");
                return NULL;
            }
            a->old = o;
            a->cap_old = nc;
        }
        a->old[a->n_old++] = a->cur;
        a->old_bytes += a->cap;
        a->cur = NULL;
    }
    size_t cap = a->cap * 2 > n ? a->cap * 2 : n;
    if (cap < ((size_t)1 << 20)) cap = (size_t)1 << 20;
    a->cur = mer__alloc(cap);
    if (!a->cur) {
        a->cap = 0;
        return NULL;
    }
    a->cap = cap;
    a->used = n;
    return a->cur;
}

void mer__act_reset(mer__act *a) {
    if (a->n_old) {
        size_t total = a->old_bytes + a->cap;
        for (int32_t i = 0; i < a->n_old; i++) mer__free(a->old[i]);
        a->n_old = 0;
        a->old_bytes = 0;
        mer__free(a->cur);
        a->cur = mer__alloc(total);
        a->cap = a->cur ? total : 0;
    }
    a->used = 0;
}

void mer__act_release(mer__act *a) {
    for (int32_t i = 0; i < a->n_old; i++) mer__free(a->old[i]);
    free(a->old);
    mer__free(a->cur);
    memset(a, 0, sizeof *a);
}

float *mer__act_f32(mer__model *m, int64_t n) {
    if (n < 0 || (uint64_t)n > SIZE_MAX / 8) {
        mer__err(MER_ERR_NOMEM, "activation size overflow");
        return NULL;
    }
    return act_alloc(&m->act, (size_t)(n > 0 ? n : 1) * sizeof(float));
}

/* ---- creation ----------------------------------------------------------------------------- */

int64_t mer__model_param(mer__model *m, const char *name, int32_t ndim, const int64_t *shape) {
    if (ndim < 1 || ndim > 4) {
        mer__err(MER_ERR_INTERNAL, "parameter %s: rank %d", name, ndim);
        return -1;
    }
    for (int32_t i = 0; i < m->n_info; i++)
        if (!strcmp(m->info[i].name, name)) {
            mer__err(MER_ERR_INTERNAL, "parameter %s declared twice", name);
            return -1;
        }
    int64_t numel = 1;
    for (int32_t i = 0; i < ndim; i++)
        if (shape[i] <= 0 || !mer__mul_overflow(numel, shape[i], &numel)) {
            mer__err(MER_ERR_NOMEM, "parameter %s: bad size", name);
            return -1;
        }
    if (m->n_info == m->cap_info) {
        int32_t nc = m->cap_info ? 2 * m->cap_info : 32;
        mer__param_info *ni = realloc(m->info, (size_t)nc * sizeof *ni);
        if (!ni) {
            mer__err(MER_ERR_NOMEM, "out of memory");
            return -1;
        }
        m->info = ni;
        m->cap_info = nc;
    }
    mer__param_info *p = &m->info[m->n_info++];
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "%s", name);
    p->ndim = ndim;
    for (int32_t i = 0; i < ndim; i++) p->shape[i] = shape[i];
    p->offset = m->n_params;
    p->numel = numel;
    int64_t tot;
    if (!mer__add_overflow(m->n_params, numel, &tot)) {
        mer__err(MER_ERR_NOMEM, "parameter count overflow");
        return -1;
    }
    m->n_params = tot;
    return p->offset;
}

void mer__init_uniform(float *p, int64_t n, float bound, mer__rng *rng) {
    for (int64_t i = 0; i < n; i++) p[i] = (float)((2.0 * mer__rng_uniform(rng) - 1.0) * bound);
}

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
    m->params = mer__calloc((size_t)m->n_params, sizeof(float));
    m->grads = mer__calloc((size_t)m->n_params, sizeof(float));
    if (!m->params || !m->grads) {
        mer__model_free(m);
        return mer__err(MER_ERR_NOMEM, "model %s: %lld parameters do not fit in memory",
                        cfg->model, (long long)m->n_params);
    }
    if (rng) ops->init(m, rng);
    *out = m;
    return MER_OK;
}

void mer__model_free(mer__model *m) {
    if (!m) return;
    if (m->ops && m->ops->destroy) m->ops->destroy(m);
    mer__free(m->params);
    mer__free(m->grads);
    free(m->info);
    mer__act_release(&m->act);
    free(m);
}

/* ---- checkpoints -------------------------------------------------------------------------- */

/* The checksum of a checkpoint: the digest of its tensors' float32 bytes in parameter order,
 * recorded as metadata "checksum" and verified at load, so a flipped bit in a weight file is an
 * error rather than silently other predictions. */
static void checksum_hex(char out[17], const mer__model *m, const float *params) {
    mer__digest d;
    mer__digest_init(&d);
    for (int32_t i = 0; i < m->n_info; i++)
        mer__digest_add(&d, params + m->info[i].offset, (size_t)m->info[i].numel * sizeof(float));
    snprintf(out, 17, "%016llx", (unsigned long long)mer__digest_final(&d));
}

mer_status mer__model_save(const mer__model *m, const float *params, const char *path,
                           const char *meta_key, const char *meta_json) {
    mer_safetensors_writer *w = NULL;
    mer_status s = mer_safetensors_writer_init(&w);
    char sum[17];
    checksum_hex(sum, m, params);
    if (s == MER_OK) s = mer_safetensors_writer_set_metadata(w, "checksum", sum);
    for (int32_t i = 0; s == MER_OK && i < m->n_info; i++) {
        const mer__param_info *p = &m->info[i];
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
    for (int32_t i = 0; s == MER_OK && i < m->n_info; i++) {
        const mer__param_info *p = &m->info[i];
        const float *src = NULL;
        s = mer_safetensors_get_f32(st, p->name, p->ndim, p->shape, &src);
        if (s == MER_OK) memcpy(m->params + p->offset, src, (size_t)p->numel * sizeof(float));
    }
    const char *want = s == MER_OK ? mer_safetensors_metadata(st, "checksum") : NULL;
    if (s == MER_OK && want) {
        char got[17];
        checksum_hex(got, m, m->params);
        if (strcmp(got, want) != 0)
            s = mer__err(MER_ERR_FORMAT, "%s: checksum mismatch (recorded %s, the weights give %s): "
                         "the file was changed or corrupted after training", path, want, got);
    } else if (s == MER_OK) {
        MER_LOG_W("%s: no checksum (written before mer recorded one): not verified", path);
    }
    for (int64_t i = 0; s == MER_OK && i < m->n_params; i++)
        if (!isfinite(m->params[i]))
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
        mer__act_reset(&m->act);
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

/* ---- layers: linear ----------------------------------------------------------------------- */

mer_status mer__lin_declare(mer__model *m, mer__lin *l, const char *prefix, int64_t in,
                            int64_t out) {
    char name[96];
    l->in = in;
    l->out = out;
    snprintf(name, sizeof name, "%s.weight", prefix);
    l->w = mer__model_param(m, name, 2, (int64_t[]){out, in});
    snprintf(name, sizeof name, "%s.bias", prefix);
    l->b = mer__model_param(m, name, 1, (int64_t[]){out});
    return (l->w < 0 || l->b < 0) ? MER_ERR_INTERNAL : MER_OK;
}

void mer__lin_init(mer__model *m, const mer__lin *l, mer__rng *rng) {
    float bound = 1.0f / sqrtf((float)l->in);
    mer__init_uniform(m->params + l->w, l->out * l->in, bound, rng);
    mer__init_uniform(m->params + l->b, l->out, bound, rng);
}

void mer__lin_fwd(const mer__model *m, const mer__lin *l, float *y, const float *x, int64_t n) {
    mer__linear_fwd(y, x, m->params + l->w, m->params + l->b, n, l->in, l->out);
}

void mer__lin_bwd(mer__model *m, const mer__lin *l, float *dx, const float *dy, const float *x,
                  int64_t n) {
    mer__linear_bwd(dx, m->grads + l->w, m->grads + l->b, dy, x, m->params + l->w, n, l->in,
                    l->out);
}

/* ---- layers: MERTools MLPEncoder ---------------------------------------------------------- */

mer_status mer__mlp_enc_declare(mer__model *m, mer__mlp_enc *e, const char *prefix, int64_t in,
                                int64_t hidden, float p) {
    char name[96];
    memset(e, 0, sizeof *e);
    e->p = p;
    mer_status s = MER_OK;
    for (int k = 0; k < 3 && s == MER_OK; k++) {
        snprintf(name, sizeof name, "%s.linear_%d", prefix, k + 1);
        s = mer__lin_declare(m, &e->l[k], name, k == 0 ? in : hidden, hidden);
    }
    return s;
}

void mer__mlp_enc_init(mer__model *m, const mer__mlp_enc *e, mer__rng *rng) {
    for (int k = 0; k < 3; k++) mer__lin_init(m, &e->l[k], rng);
}

mer_status mer__mlp_enc_fwd(mer__model *m, mer__mlp_enc *e, float **y, const float *x,
                            int64_t n, int train, mer__rng *rng) {
    int64_t in = e->l[0].in, h = e->l[0].out;
    e->n = n;
    e->x = x;
    e->mask = NULL;
    e->xd = (float *)x;
    if (train && e->p > 0.0f) {
        /* the mask is only needed for dx; the dropped values come out the same without it */
        if (!e->input_is_data && !(e->mask = mer__act_f32(m, n * in))) return MER_ERR_NOMEM;
        e->xd = mer__act_f32(m, n * in);
        if (!e->xd) return MER_ERR_NOMEM;
        mer__dropout_fwd(e->xd, e->mask, x, e->p, n * in, rng);
    }
    const float *cur = e->xd;
    for (int k = 0; k < 3; k++) {
        e->h[k] = mer__act_f32(m, n * h);
        if (!e->h[k]) return MER_ERR_NOMEM;
        mer__lin_fwd(m, &e->l[k], e->h[k], cur, n);
        mer__relu_fwd(e->h[k], e->h[k], n * h);
        cur = e->h[k];
    }
    *y = e->h[2];
    return MER_OK;
}

void mer__mlp_enc_bwd(mer__model *m, mer__mlp_enc *e, float *dx, float *dy) {
    int64_t n = e->n, in = e->l[0].in, h = e->l[0].out;
    /* dy is reused: ReLU mask applied in place, then the linear backward writes the gradient of
     * the layer input into a fresh buffer. Activations are the post-ReLU outputs (same sign
     * pattern as the pre-activations, which is what torch's relu backward uses). */
    float *g = dy;
    for (int k = 2; k >= 0; k--) {
        /* branch-free select so the mask pass vectorises */
        const float *restrict hk = e->h[k];
        float *restrict gr = g;
#pragma omp simd
        for (int64_t i = 0; i < n * h; i++) gr[i] = hk[i] > 0.0f ? gr[i] : 0.0f;
        const float *xin = k ? e->h[k - 1] : e->xd;
        if (k == 0) {
            if (!dx || e->input_is_data) { /* data input: no dx (forward kept no mask) */
                const mer__lin *l = &e->l[0];
                if (m->fused && mer__optim_fused_wgrad(m->fused, m->params, l->w, g, xin, n,
                                                       l->in, l->out))
                    mer__linear_bwd(NULL, NULL, m->grads + l->b, g, xin, NULL, n, l->in, l->out);
                else
                    mer__lin_bwd(m, l, NULL, g, xin, n);
            } else if (!e->mask) {
                mer__lin_bwd(m, &e->l[0], dx, g, xin, n);
            } else {
                float *dxd = mer__act_f32(m, n * in);
                if (!dxd) return;
                memset(dxd, 0, (size_t)(n * in) * sizeof(float));
                mer__lin_bwd(m, &e->l[0], dxd, g, xin, n);
                mer__dropout_bwd(dx, dxd, e->mask, n * in);
            }
        } else {
            float *gp = mer__act_f32(m, n * h);
            if (!gp) return;
            memset(gp, 0, (size_t)(n * h) * sizeof(float));
            mer__lin_bwd(m, &e->l[k], gp, g, xin, n);
            g = gp;
        }
    }
}
