/*
 * nn.c -- the parameter set of the layer kit: tensor declaration into flat buffers, the
 * activation arena, and the uniform init the layers share.
 */
#include "nn/nn.h"

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
        /* on failure the arena is empty and the next forward fails cleanly (or regrows) */
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

float *mer__nn_act(mer__nn *nn, int64_t n) {
    if (n < 0 || (uint64_t)n > SIZE_MAX / 8) {
        mer__err(MER_ERR_NOMEM, "activation size overflow");
        return NULL;
    }
    return act_alloc(&nn->act, (size_t)(n > 0 ? n : 1) * sizeof(float));
}

float *mer__nn_act0(mer__nn *nn, int64_t n) {
    float *p = mer__nn_act(nn, n);
    if (p && n > 0) memset(p, 0, (size_t)n * sizeof *p);
    return p;
}

int64_t *mer__nn_act_off(mer__nn *nn, int64_t n) {
    /* int64 offsets live in the float arena: 2 floats each (blocks are 64-byte aligned) */
    return (int64_t *)mer__nn_act(nn, 2 * (n + 1));
}

/* ---- parameters --------------------------------------------------------------------------- */

int64_t mer__nn_param(mer__nn *nn, const char *name, int32_t ndim, const int64_t *shape) {
    if (ndim < 1 || ndim > 4) {
        mer__err(MER_ERR_INTERNAL, "parameter %s: rank %d", name, ndim);
        return -1;
    }
    if (nn->params) {
        mer__err(MER_ERR_INTERNAL, "parameter %s declared after allocation", name);
        return -1;
    }
    for (int32_t i = 0; i < nn->n_info; i++)
        if (!strcmp(nn->info[i].name, name)) {
            mer__err(MER_ERR_INTERNAL, "parameter %s declared twice", name);
            return -1;
        }
    int64_t numel = 1;
    for (int32_t i = 0; i < ndim; i++)
        if (shape[i] <= 0 || !mer__mul_overflow(numel, shape[i], &numel)) {
            mer__err(MER_ERR_NOMEM, "parameter %s: bad size", name);
            return -1;
        }
    if (nn->n_info == nn->cap_info) {
        int32_t nc = nn->cap_info ? 2 * nn->cap_info : 32;
        mer__param_info *ni = realloc(nn->info, (size_t)nc * sizeof *ni);
        if (!ni) {
            mer__err(MER_ERR_NOMEM, "out of memory");
            return -1;
        }
        nn->info = ni;
        nn->cap_info = nc;
    }
    int64_t tot;
    if (!mer__add_overflow(nn->n_params, numel, &tot)) {
        mer__err(MER_ERR_NOMEM, "parameter count overflow");
        return -1;
    }
    mer__param_info *p = &nn->info[nn->n_info++];
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "%s", name);
    p->ndim = ndim;
    for (int32_t i = 0; i < ndim; i++) p->shape[i] = shape[i];
    p->offset = nn->n_params;
    p->numel = numel;
    nn->n_params = tot;
    return p->offset;
}

mer_status mer__nn_alloc(mer__nn *nn) {
    if (nn->params) return mer__err(MER_ERR_INTERNAL, "parameters allocated twice");
    nn->params = mer__calloc((size_t)(nn->n_params ? nn->n_params : 1), sizeof(float));
    nn->grads = mer__calloc((size_t)(nn->n_params ? nn->n_params : 1), sizeof(float));
    if (!nn->params || !nn->grads) {
        mer__free(nn->params);
        mer__free(nn->grads);
        nn->params = nn->grads = NULL;
        return mer__err(MER_ERR_NOMEM, "%lld parameters do not fit in memory",
                        (long long)nn->n_params);
    }
    return MER_OK;
}

void mer__nn_free(mer__nn *nn) {
    if (!nn) return;
    mer__free(nn->params);
    mer__free(nn->grads);
    free(nn->info);
    mer__act_release(&nn->act);
    memset(nn, 0, sizeof *nn);
}

const mer__param_info *mer__nn_find(const mer__nn *nn, const char *name) {
    for (int32_t i = 0; i < nn->n_info; i++)
        if (!strcmp(nn->info[i].name, name)) return &nn->info[i];
    return NULL;
}

void mer__init_uniform(float *p, int64_t n, float bound, mer__rng *rng) {
    for (int64_t i = 0; i < n; i++) p[i] = (float)((2.0 * mer__rng_uniform(rng) - 1.0) * bound);
}
