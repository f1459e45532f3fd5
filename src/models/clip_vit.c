/*
 * clip_vit.c -- the CLIP ViT vision tower (Hugging Face CLIPModel / CLIPVisionModel /
 * CLIPVisionModelWithProjection checkpoints) and CLIPImageProcessor preprocessing.
 *
 * Semantics follow transformers' modeling_clip.py:
 *   x = cat(class_embedding, conv(pixels; patch x patch, stride patch, no bias)) + position_embedding
 *   x = pre_layrnorm(x)                                   -> hidden state 0
 *   per layer (pre-LN):  x += out_proj(attn(layer_norm1(x)))
 *                        x += fc2(act(fc1(layer_norm2(x))))  -> hidden state i
 *   cls = post_layernorm(x[0]);  embeds = visual_projection(cls)  (get_image_features)
 * The patch convolution is a GEMM over unfolded patches (its stride equals its kernel, so the
 * unfold is a permutation). Every big product runs over a batch of images (rows = images x
 * tokens, about 2048) so the GEMM sees tall matrices: the layers' linear products on weights
 * packed once per precision (mer_packed; float32 by default), the patch embedding and the
 * projection through mer_sgemm; residual adds ride on the product (accumulate / beta = 1). Attention runs (image, head) pairs as one parallel loop; the bias and
 * the (quick) GELU after fc1 go row by row; GELUs, layer norm and softmax are the shared kernels.
 * When only the class token is wanted (embeds, cls) the last layer's query, output projection
 * and MLP run on the class rows alone.
 *
 * Preprocessing is CLIPImageProcessor: shortest edge to size (transformers'
 * get_resize_output_image_size: the long edge is int(size * long / short)), Pillow-exact
 * bicubic (resize.c), center crop with zero padding, x * rescale_factor (in double, then
 * float), (x - mean) / std in float, channels first.
 */
#include "kernels/kernels.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

/* ---- model ------------------------------------------------------------------------------- */

typedef struct {
    const float *ln1_w, *ln1_b, *ln2_w, *ln2_b;
    const float *q_w, *q_b, *k_w, *k_b, *v_w, *v_b, *o_w, *o_b;
    const float *fc1_w, *fc1_b, *fc2_w, *fc2_b;
    /* weights and biases packed per precision (mer_packed; each bias is its product's epilogue):
     * [0] bfloat16 (MER_PRECISION_BF16), [1] int8 W8A8 (MER_PRECISION_INT8), [2] float32
     * (MER_PRECISION_F32), NULL until first used; [.][0..5] = q, k, v, o, fc1, fc2, except that
     * every layer but the last holds q | k | v as one product (3D outputs) in [.][0] and NULL in
     * [.][1], [.][2] (the last layer's query runs on the class rows only) */
    mer_packed *pk[3][6];
} clip_layer;

struct mer_clip_model {
    mer_clip_info info;
    char dir[MER_PATH_CAP];
    mer_safetensors *st;
    const float *class_emb;  /* (D) */
    const float *patch_w;    /* (D, C * p * p), conv weight (D, C, p, p) flattened */
    const float *pos_emb;    /* (T, D) */
    const float *pre_w, *pre_b, *post_w, *post_b;
    const float *proj;       /* (P, D) or NULL */
    int proj_dim_stated;     /* config.json has projection_dim */
    clip_layer *layers;
    /* the packed weights, made on the first state of a precision under pack_mu: a lazy cache,
     * the only part of a shared model that is ever written */
    pthread_mutex_t pack_mu;
    int packed_ready[3];     /* [0] bf16, [1] int8, [2] fp32 */
};

struct mer_clip_state {
    const mer_clip_model *m;
    int32_t cap;             /* images the buffers hold */
    int32_t cap_threads;     /* threads when the buffers were sized */
    float *x, *h, *qkv, *ao, *mlp, *patches, *pooled, *pixels;
    float *scores;           /* attention workspace: mer__attention_ws_floats(T, T, H, dh) */
    void *pk_ws;             /* the packed products' scratch (mer__packed_linear_kept) */
    size_t pk_ws_cap;
    mer_clip_state_params par; /* precision of the encoder's products, threads, callbacks */
};

void mer_clip_model_free(mer_clip_model *m) {
    if (!m) return;
    mer_safetensors_free(m->st);
    if (m->layers)
        for (int32_t l = 0; l < m->info.n_layers; l++)
            for (int k = 0; k < 18; k++) mer_packed_free(m->layers[l].pk[k / 6][k % 6]);
    mer__free(m->layers);
    pthread_mutex_destroy(&m->pack_mu);
    mer__free(m);
}

void mer_clip_model_info(const mer_clip_model *m, mer_clip_info *info) {
    if (m && info) *info = m->info;
}

int64_t mer_clip_output_size(const mer_clip_model *m, mer_clip_output what) {
    if (!m) return 0;
    const mer_clip_info *c = &m->info;
    switch (what) {
    case MER_CLIP_EMBEDS: return c->projection_dim;
    case MER_CLIP_CLS: return c->hidden_size;
    case MER_CLIP_HIDDEN: return (int64_t)(c->n_layers + 1) * c->tokens * c->hidden_size;
    }
    return 0;
}

/* ---- loading ----------------------------------------------------------------------------- */

static const float OPENAI_MEAN[3] = {0.48145466f, 0.4578275f, 0.40821073f};
static const float OPENAI_STD[3] = {0.26862954f, 0.26130258f, 0.27577711f};

static mer_status cfg_int(const mer_json *j, const char *prefix, const char *key, int64_t def,
                          int64_t lo, int64_t hi, int32_t *out) {
    char path[256];
    snprintf(path, sizeof path, "%s%s", prefix, key);
    int64_t v;
    mer_status s = mer_json_int_or(j, path, def, &v);
    if (s != MER_OK) return s;
    if (v < lo || v > hi)
        return mer__err(MER_ERR_FORMAT, "config.json: %s = %lld is out of range [%lld, %lld]", path,
                        (long long)v, (long long)lo, (long long)hi);
    *out = (int32_t)v;
    return MER_OK;
}

/* config.json -> architecture. Defaults are CLIPVisionConfig's for keys a config omits. */
static mer_status read_config(mer_clip_info *c, int *proj_stated, const char *dir) {
    char path[MER_PATH_CAP];
    snprintf(path, sizeof path, "%s/config.json", dir);
    mer_json *j = NULL;
    mer_status s = mer_json_load(&j, path);
    if (s != MER_OK) return s;
    const char *mt = NULL;
    if ((s = mer_json_string_or(j, "model_type", "clip", &mt)) != MER_OK) goto done;
    if (strcmp(mt, "clip") != 0 && strcmp(mt, "clip_vision_model") != 0) {
        s = mer__err(MER_ERR_UNSUPPORTED, "%s: model_type \"%s\" is not a CLIP model (want \"clip\" or \"clip_vision_model\")",
                     path, mt);
        goto done;
    }
    const char *p = mer_json_has(j, "vision_config") ? "vision_config." : "";
    int32_t proj_dim;
    if ((s = cfg_int(j, p, "hidden_size", 768, 1, 1 << 16, &c->hidden_size)) != MER_OK ||
        (s = cfg_int(j, p, "intermediate_size", 3072, 1, 1 << 18, &c->intermediate_size)) != MER_OK ||
        (s = cfg_int(j, p, "num_hidden_layers", 12, 1, 1024, &c->n_layers)) != MER_OK ||
        (s = cfg_int(j, p, "num_attention_heads", 12, 1, 1024, &c->n_heads)) != MER_OK ||
        (s = cfg_int(j, p, "image_size", 224, 1, 1 << 14, &c->image_size)) != MER_OK ||
        (s = cfg_int(j, p, "patch_size", 32, 1, 1 << 14, &c->patch_size)) != MER_OK ||
        (s = cfg_int(j, p, "num_channels", 3, 3, 3, &c->num_channels)) != MER_OK ||
        (s = cfg_int(j, "", "projection_dim", 512, 1, 1 << 16, &proj_dim)) != MER_OK)
        goto done;
    c->projection_dim = proj_dim; /* confirmed (or zeroed) against the tensors later */
    *proj_stated = mer_json_has(j, "projection_dim");
    char key[256];
    snprintf(key, sizeof key, "%shidden_act", p);
    const char *act;
    if ((s = mer_json_string_or(j, key, "quick_gelu", &act)) != MER_OK) goto done;
    if (!strcmp(act, "quick_gelu")) c->quick_gelu = 1;
    else if (!strcmp(act, "gelu")) c->quick_gelu = 0;
    else {
        s = mer__err(MER_ERR_UNSUPPORTED, "%s: %s = \"%s\" (supported: quick_gelu, gelu)", path, key, act);
        goto done;
    }
    snprintf(key, sizeof key, "%slayer_norm_eps", p);
    double eps;
    if ((s = mer_json_double_or(j, key, 1e-5, &eps)) != MER_OK) goto done;
    c->layer_norm_eps = (float)eps;
    if (c->hidden_size % c->n_heads != 0) {
        s = mer__err(MER_ERR_FORMAT, "%s: hidden_size %d is not a multiple of num_attention_heads %d",
                     path, c->hidden_size, c->n_heads);
        goto done;
    }
    if (c->image_size % c->patch_size != 0) {
        s = mer__err(MER_ERR_FORMAT, "%s: image_size %d is not a multiple of patch_size %d", path,
                     c->image_size, c->patch_size);
        goto done;
    }
    int64_t g = c->image_size / c->patch_size;
    if (g * g + 1 > (1 << 20)) {
        s = mer__err(MER_ERR_FORMAT, "%s: %lld patches is too many", path, (long long)(g * g));
        goto done;
    }
    c->tokens = (int32_t)(g * g + 1);
done:
    mer_json_free(j);
    return s;
}

/* "size"/"crop_size" may be an int, {"shortest_edge": n} or {"height": h, "width": w}. */
static mer_status size_dict(const mer_json *j, const char *key, int32_t *shortest, int32_t *w,
                            int32_t *h) {
    char a[128], b[128];
    int64_t v, v2;
    mer_status s;
    *shortest = 0;
    snprintf(a, sizeof a, "%s.shortest_edge", key);
    if (mer_json_has(j, a)) {
        if ((s = mer_json_get_int(j, a, &v)) != MER_OK) return s;
        if (v < 1 || v > (1 << 14)) return mer__err(MER_ERR_FORMAT, "preprocessor_config.json: %s out of range", a);
        *shortest = (int32_t)v;
        return MER_OK;
    }
    snprintf(a, sizeof a, "%s.height", key);
    snprintf(b, sizeof b, "%s.width", key);
    if (mer_json_has(j, a) || mer_json_has(j, b)) {
        if ((s = mer_json_get_int(j, a, &v)) != MER_OK || (s = mer_json_get_int(j, b, &v2)) != MER_OK)
            return s;
        if (v < 1 || v > (1 << 14) || v2 < 1 || v2 > (1 << 14))
            return mer__err(MER_ERR_FORMAT, "preprocessor_config.json: %s out of range", key);
        *h = (int32_t)v;
        *w = (int32_t)v2;
        return MER_OK;
    }
    if ((s = mer_json_get_int(j, key, &v)) != MER_OK) return s;
    if (v < 1 || v > (1 << 14)) return mer__err(MER_ERR_FORMAT, "preprocessor_config.json: %s out of range", key);
    *shortest = (int32_t)v;
    *w = *h = (int32_t)v;
    return MER_OK;
}

static mer_status read_preprocessor(mer_clip_info *c, const char *dir) {
    /* CLIPImageProcessor's defaults, with the model's own image size */
    c->do_resize = c->do_center_crop = c->do_rescale = c->do_normalize = 1;
    c->resize_shortest_edge = c->image_size;
    c->resize_w = c->resize_h = c->image_size;
    c->crop_w = c->crop_h = c->image_size;
    c->rescale_factor = 1.0 / 255.0;
    memcpy(c->image_mean, OPENAI_MEAN, sizeof OPENAI_MEAN);
    memcpy(c->image_std, OPENAI_STD, sizeof OPENAI_STD);
    char path[MER_PATH_CAP];
    snprintf(path, sizeof path, "%s/preprocessor_config.json", dir);
    FILE *f = fopen(path, "rb");
    if (!f) {
        MER_LOG_W("%s: not found; using CLIPImageProcessor defaults (size %d, OpenAI mean/std)",
                  path, c->image_size);
        return MER_OK;
    }
    fclose(f);
    mer_json *j = NULL;
    mer_status s = mer_json_load(&j, path);
    if (s != MER_OK) return s;
    int32_t dummy;
    int64_t resample;
    double mean[3], std[3];
    int32_t nm = 3, ns = 3;
    if ((s = mer_json_bool_or(j, "do_resize", 1, &c->do_resize)) != MER_OK ||
        (s = mer_json_bool_or(j, "do_center_crop", 1, &c->do_center_crop)) != MER_OK ||
        (s = mer_json_bool_or(j, "do_rescale", 1, &c->do_rescale)) != MER_OK ||
        (s = mer_json_bool_or(j, "do_normalize", 1, &c->do_normalize)) != MER_OK ||
        (s = mer_json_double_or(j, "rescale_factor", 1.0 / 255.0, &c->rescale_factor)) != MER_OK ||
        (s = mer_json_int_or(j, "resample", 3, &resample)) != MER_OK)
        goto done;
    if (resample != 3) {
        s = mer__err(MER_ERR_UNSUPPORTED, "%s: resample = %lld; only 3 (bicubic, CLIP's) is supported",
                     path, (long long)resample);
        goto done;
    }
    if (mer_json_has(j, "size") &&
        (s = size_dict(j, "size", &c->resize_shortest_edge, &c->resize_w, &c->resize_h)) != MER_OK)
        goto done;
    if (mer_json_has(j, "crop_size")) {
        if ((s = size_dict(j, "crop_size", &dummy, &c->crop_w, &c->crop_h)) != MER_OK) goto done;
    }
    if (mer_json_has(j, "image_mean")) {
        if ((s = mer_json_get_double_array(j, "image_mean", mean, 3, &nm)) != MER_OK) goto done;
        if ((s = mer_json_get_double_array(j, "image_std", std, 3, &ns)) != MER_OK) goto done;
        if (nm != 3 || ns != 3) {
            s = mer__err(MER_ERR_FORMAT, "%s: image_mean/image_std need 3 values, got %d and %d", path, nm, ns);
            goto done;
        }
        for (int i = 0; i < 3; i++) {
            if (!(std[i] > 0)) {
                s = mer__err(MER_ERR_FORMAT, "%s: image_std[%d] = %g must be > 0", path, i, std[i]);
                goto done;
            }
            c->image_mean[i] = (float)mean[i];
            c->image_std[i] = (float)std[i];
        }
    }
done:
    mer_json_free(j);
    return s;
}

/* Fetch a vision tensor as float32 with an exact shape; a missing one names the tensor, the
 * file and the checkpoint kind expected. */
static mer_status tensor(mer_clip_model *m, const char *prefix, const char *name, int32_t ndim,
                         int64_t d0, int64_t d1, const float **out) {
    char full[256];
    snprintf(full, sizeof full, "%s%s", prefix, name);
    int64_t shape[2] = {d0, d1};
    mer_status s = mer_safetensors_get_f32(m->st, full, ndim, shape, out);
    if (s != MER_OK) mer__err_prefix("CLIP vision checkpoint %s", m->dir);
    return s;
}

static mer_status model_load(mer_clip_model **out, const char *dir);
static mer_status ensure_precision(const mer_clip_model *cm, mer_precision p);

mer_clip_model_params mer_clip_model_default_params(void) {
    mer_clip_model_params p;
    memset(&p, 0, sizeof p);
    p.precision = MER_PRECISION_F32;
    return p;
}

mer_status mer_clip_model_load(mer_clip_model **out, const char *dir, const mer_clip_model_params *p) {
    if (!out || !dir) return mer__err(MER_ERR_INVALID_ARG, "mer_clip_model_load: NULL argument");
    *out = NULL;
    const mer_clip_model_params par = p ? *p : mer_clip_model_default_params();
    mer_status s = mer__precision_check(par.precision, "visual encoder");
    if (s || (s = model_load(out, dir))) return s;
    if ((s = ensure_precision(*out, par.precision))) {
        mer_clip_model_free(*out);
        *out = NULL;
    }
    return s;
}

static mer_status model_load(mer_clip_model **out, const char *dir) {
    if (!out || !dir) return mer__err(MER_ERR_INVALID_ARG, "mer_clip_model_load: NULL argument");
    *out = NULL;
    mer_clip_model *m = mer__calloc(1, sizeof *m);
    if (!m) return MER_ERR_NOMEM;
    pthread_mutex_init(&m->pack_mu, NULL);
    snprintf(m->dir, sizeof m->dir, "%s", dir);
    mer_clip_info *c = &m->info;
    mer_status s;
    if ((s = read_config(c, &m->proj_dim_stated, dir)) != MER_OK || (s = read_preprocessor(c, dir)) != MER_OK) goto fail;
    if ((s = mer_safetensors_open(&m->st, dir)) != MER_OK) goto fail;

    /* transformers nests the tower under "vision_model." in every CLIP class */
    mer_safetensors_entry e;
    const char *pre = "vision_model.";
    if (mer_safetensors_find(m->st, "vision_model.embeddings.class_embedding", &e) != MER_OK &&
        mer_safetensors_find(m->st, "embeddings.class_embedding", &e) == MER_OK)
        pre = "";
    mer_clear_error();
    const int64_t D = c->hidden_size, I = c->intermediate_size, T = c->tokens;
    const int64_t K = (int64_t)c->num_channels * c->patch_size * c->patch_size;
    const float *pw;
    if ((s = tensor(m, pre, "embeddings.class_embedding", 1, D, 0, &m->class_emb)) != MER_OK) goto fail;
    {
        /* the conv weight is (D, C, p, p); view it as (D, C*p*p) */
        char full[256];
        snprintf(full, sizeof full, "%sembeddings.patch_embedding.weight", pre);
        int64_t shape[4] = {D, c->num_channels, c->patch_size, c->patch_size};
        if ((s = mer_safetensors_get_f32(m->st, full, 4, shape, &pw)) != MER_OK) {
            mer__err_prefix("CLIP vision checkpoint %s", dir);
            goto fail;
        }
        m->patch_w = pw;
    }
    if ((s = tensor(m, pre, "embeddings.position_embedding.weight", 2, T, D, &m->pos_emb)) != MER_OK ||
        (s = tensor(m, pre, "pre_layrnorm.weight", 1, D, 0, &m->pre_w)) != MER_OK ||
        (s = tensor(m, pre, "pre_layrnorm.bias", 1, D, 0, &m->pre_b)) != MER_OK ||
        (s = tensor(m, pre, "post_layernorm.weight", 1, D, 0, &m->post_w)) != MER_OK ||
        (s = tensor(m, pre, "post_layernorm.bias", 1, D, 0, &m->post_b)) != MER_OK)
        goto fail;
    m->layers = mer__calloc((size_t)c->n_layers, sizeof *m->layers);
    if (!m->layers) {
        s = MER_ERR_NOMEM;
        goto fail;
    }
    for (int32_t l = 0; l < c->n_layers; l++) {
        clip_layer *L = &m->layers[l];
        char lp[128];
        snprintf(lp, sizeof lp, "%sencoder.layers.%d.", pre, (int)l);
        if ((s = tensor(m, lp, "layer_norm1.weight", 1, D, 0, &L->ln1_w)) != MER_OK ||
            (s = tensor(m, lp, "layer_norm1.bias", 1, D, 0, &L->ln1_b)) != MER_OK ||
            (s = tensor(m, lp, "self_attn.q_proj.weight", 2, D, D, &L->q_w)) != MER_OK ||
            (s = tensor(m, lp, "self_attn.q_proj.bias", 1, D, 0, &L->q_b)) != MER_OK ||
            (s = tensor(m, lp, "self_attn.k_proj.weight", 2, D, D, &L->k_w)) != MER_OK ||
            (s = tensor(m, lp, "self_attn.k_proj.bias", 1, D, 0, &L->k_b)) != MER_OK ||
            (s = tensor(m, lp, "self_attn.v_proj.weight", 2, D, D, &L->v_w)) != MER_OK ||
            (s = tensor(m, lp, "self_attn.v_proj.bias", 1, D, 0, &L->v_b)) != MER_OK ||
            (s = tensor(m, lp, "self_attn.out_proj.weight", 2, D, D, &L->o_w)) != MER_OK ||
            (s = tensor(m, lp, "self_attn.out_proj.bias", 1, D, 0, &L->o_b)) != MER_OK ||
            (s = tensor(m, lp, "layer_norm2.weight", 1, D, 0, &L->ln2_w)) != MER_OK ||
            (s = tensor(m, lp, "layer_norm2.bias", 1, D, 0, &L->ln2_b)) != MER_OK ||
            (s = tensor(m, lp, "mlp.fc1.weight", 2, I, D, &L->fc1_w)) != MER_OK ||
            (s = tensor(m, lp, "mlp.fc1.bias", 1, I, 0, &L->fc1_b)) != MER_OK ||
            (s = tensor(m, lp, "mlp.fc2.weight", 2, D, I, &L->fc2_w)) != MER_OK ||
            (s = tensor(m, lp, "mlp.fc2.bias", 1, D, 0, &L->fc2_b)) != MER_OK)
            goto fail;
    }
    /* a layer beyond num_hidden_layers means the config does not describe this checkpoint */
    {
        char extra[160];
        snprintf(extra, sizeof extra, "%sencoder.layers.%d.layer_norm1.weight", pre, (int)c->n_layers);
        if (mer_safetensors_find(m->st, extra, &e) == MER_OK) {
            s = mer__err(MER_ERR_SHAPE, "CLIP vision checkpoint %s: has tensor %s but config.json says num_hidden_layers = %d",
                         dir, extra, c->n_layers);
            goto fail;
        }
        mer_clear_error();
    }
    if (mer_safetensors_find(m->st, "visual_projection.weight", &e) == MER_OK) {
        /* a config without projection_dim takes the tensor's; a stated one must match it */
        if (!m->proj_dim_stated && e.ndim == 2 && e.shape[0] > 0 && e.shape[0] <= (1 << 16))
            c->projection_dim = (int32_t)e.shape[0];
        if ((s = tensor(m, "", "visual_projection.weight", 2, c->projection_dim, D, &m->proj)) != MER_OK)
            goto fail;
    } else {
        mer_clear_error();
        c->projection_dim = 0; /* CLIPVisionModel: cls and hidden states only */
    }
    /* parameters of the tower */
    c->n_params = D + D * K + T * D + 4 * D +
                  (int64_t)c->n_layers * (4 * D * D + 4 * D + 4 * D + 2 * D * I + I + D) +
                  (int64_t)c->projection_dim * D;
    *out = m;
    return MER_OK;
fail:
    mer_clip_model_free(m);
    return s;
}

/* ---- packed weights ------------------------------------------------------------------------ */

static const char *const SLOT_NAME[3] = {"bfloat16", "int8", "float32"};

/* Every layer's linear products packed once (mer_packed, docs/gemm.md) in bfloat16 (slot 0),
 * int8 W8A8 (slot 1) or float32 (slot 2, the default precision: our AVX2 kernel instead of
 * mer_sgemm, the mapped file pages of the weights handed back afterwards so that the packed copy
 * does not double the resident memory); the patch embedding, attention and the projection stay
 * mer_sgemm. Called with pack_mu held. */
static mer_status make_packed(mer_clip_model *m, int slot) {
    const mer_clip_info *c = &m->info;
    const int64_t D = c->hidden_size, I = c->intermediate_size;
    const mer_pack_type type = slot == 2 ? MER_PACK_F32 : slot ? MER_PACK_INT8 : MER_PACK_BF16;
    /* q | k | v of a layer side by side (3D, D) with their biases, for one product */
    float *w3 = mer__alloc((size_t)(3 * D * D + 3 * D) * sizeof(float));
    mer_status s = w3 ? MER_OK : MER_ERR_NOMEM;
    for (int32_t l = 0; !s && l < c->n_layers; l++) {
        clip_layer *L = &m->layers[l];
        const float *src[6] = {L->q_w, L->k_w, L->v_w, L->o_w, L->fc1_w, L->fc2_w};
        const float *bias[6] = {L->q_b, L->k_b, L->v_b, L->o_b, L->fc1_b, L->fc2_b};
        const int64_t n[6] = {D, D, D, D, I, D}, k[6] = {D, D, D, D, D, I};
        const int fused = l + 1 < c->n_layers;
        if (fused) {
            float *b3 = w3 + 3 * D * D;
            for (int j = 0; j < 3; j++) {
                memcpy(w3 + j * D * D, src[j], (size_t)(D * D) * sizeof(float));
                memcpy(b3 + j * D, bias[j], (size_t)D * sizeof(float));
            }
            s = mer_packed_init(&L->pk[slot][0], w3, MER_DTYPE_F32, b3, 3 * D, D, type);
        }
        for (int j = fused ? 3 : 0; !s && j < 6; j++)
            s = mer_packed_init(&L->pk[slot][j], src[j], MER_DTYPE_F32, bias[j], n[j], k[j], type);
        /* fp32: the mapped pages go back as soon as their packed copy exists, so the two never
         * add up (refaulted from the file if another precision reads them) */
        for (int j = 0; !s && slot == 2 && j < 6; j++)
            mer_safetensors_release(m->st, src[j], (size_t)(n[j] * k[j]) * sizeof(float));
    }
    mer__free(w3);
    if (s) {
        mer__err_prefix("%s: %s weights", m->dir, SLOT_NAME[slot]);
        for (int32_t l = 0; l < c->n_layers; l++)
            for (int j = 0; j < 6; j++) {
                mer_packed_free(m->layers[l].pk[slot][j]);
                m->layers[l].pk[slot][j] = NULL;
            }
        return s;
    }
    m->packed_ready[slot] = 1;
    return MER_OK;
}

/* The packed-weight slot of a precision. */
static int prec_slot(mer_precision p) {
    return p == MER_PRECISION_BF16 ? 0 : p == MER_PRECISION_INT8 ? 1 : 2;
}

/* Make the packed weights of precision p once; the model may be shared between threads. */
static mer_status ensure_precision(const mer_clip_model *cm, mer_precision p) {
    const int slot = prec_slot(p);
    mer_clip_model *m = (mer_clip_model *)cm; /* the packed fields are a guarded lazy cache */
    pthread_mutex_lock(&m->pack_mu);
    mer_status s = m->packed_ready[slot] ? MER_OK : make_packed(m, slot);
    pthread_mutex_unlock(&m->pack_mu);
    return s;
}

/* ---- preprocessing ----------------------------------------------------------------------- */

mer_status mer_clip_preprocess(const mer_clip_model *m, const mer_image *img, float *pixels) {
    if (!m || !img || !pixels) return mer__err(MER_ERR_INVALID_ARG, "mer_clip_preprocess: NULL argument");
    if (!img->rgb || img->width <= 0 || img->height <= 0)
        return mer__err(MER_ERR_INVALID_ARG, "mer_clip_preprocess: empty image (%dx%d)", img->width, img->height);
    const mer_clip_info *c = &m->info;
    int32_t w = img->width, h = img->height;
    const uint8_t *cur = img->rgb;
    uint8_t *resized = NULL, *cropped = NULL;
    mer_status s = MER_OK;
    if (c->do_resize) {
        int32_t nw, nh;
        if (c->resize_shortest_edge > 0) {
            /* transformers: new_long = int(size * long / short) in double */
            int32_t sz = c->resize_shortest_edge;
            if (w <= h) {
                nw = sz;
                nh = (int32_t)((double)sz * h / w);
            } else {
                nh = sz;
                nw = (int32_t)((double)sz * w / h);
            }
        } else {
            nw = c->resize_w;
            nh = c->resize_h;
        }
        if (nw < 1 || nh < 1 || (int64_t)nw * nh > ((int64_t)1 << 28))
            return mer__err(MER_ERR_SHAPE, "clip preprocess: image %dx%d resizes to %dx%d", w, h, nw, nh);
        resized = mer__alloc((size_t)nw * nh * 3);
        if (!resized) return MER_ERR_NOMEM;
        if ((s = mer__resize_bicubic_u8(resized, nw, nh, cur, w, h, 3)) != MER_OK) goto done;
        cur = resized;
        w = nw;
        h = nh;
    }
    if (c->do_center_crop) {
        cropped = mer__alloc((size_t)c->crop_w * c->crop_h * 3);
        if (!cropped) {
            s = MER_ERR_NOMEM;
            goto done;
        }
        mer__center_crop_u8(cropped, c->crop_w, c->crop_h, cur, w, h, 3);
        cur = cropped;
        w = c->crop_w;
        h = c->crop_h;
    }
    if (w != c->image_size || h != c->image_size) {
        s = mer__err(MER_ERR_SHAPE, "clip preprocess: preprocessor_config gives %dx%d pixels, the model wants %dx%d",
                     w, h, c->image_size, c->image_size);
        goto done;
    }
    const int64_t hw = (int64_t)w * h;
    for (int ch = 0; ch < 3; ch++) {
        float *o = pixels + ch * hw;
        const float mean = c->image_mean[ch], std = c->image_std[ch];
        for (int64_t i = 0; i < hw; i++) {
            float v = c->do_rescale ? (float)((double)cur[i * 3 + ch] * c->rescale_factor) : (float)cur[i * 3 + ch];
            o[i] = c->do_normalize ? (v - mean) / std : v;
        }
    }
done:
    mer__free(resized);
    mer__free(cropped);
    return s;
}

/* ---- state ------------------------------------------------------------------------------- */

static void state_release(mer_clip_state *s) {
    mer__free(s->x);
    mer__free(s->h);
    mer__free(s->qkv);
    mer__free(s->ao);
    mer__free(s->mlp);
    mer__free(s->patches);
    mer__free(s->pooled);
    mer__free(s->pixels);
    mer__free(s->scores);
    mer__free(s->pk_ws);
    s->pk_ws = NULL;
    s->pk_ws_cap = 0;
    s->x = s->h = s->qkv = s->ao = s->mlp = s->patches = s->pooled = s->pixels = s->scores = NULL;
    s->cap = s->cap_threads = 0;
}

void mer_clip_state_free(mer_clip_state *s) {
    if (!s) return;
    state_release(s);
    mer__free(s);
}

mer_clip_state_params mer_clip_state_default_params(void) {
    mer_clip_state_params p;
    memset(&p, 0, sizeof p);
    p.precision = MER_PRECISION_F32;
    return p;
}

mer_status mer_clip_state_init(mer_clip_state **out, const mer_clip_model *m, const mer_clip_state_params *p) {
    if (!out || !m) return mer__err(MER_ERR_INVALID_ARG, "mer_clip_state_init: NULL argument");
    *out = NULL;
    const mer_clip_state_params par = p ? *p : mer_clip_state_default_params();
    mer_status st = mer__precision_check(par.precision, "visual encoder");
    if (st || (st = ensure_precision(m, par.precision))) return st;
    *out = mer__calloc(1, sizeof **out);
    if (!*out) return MER_ERR_NOMEM;
    (*out)->m = m;
    (*out)->par = par;
    return MER_OK;
}

mer_status mer_clip_state_set_precision(mer_clip_state *s, mer_precision p) {
    if (!s) return mer__err(MER_ERR_INVALID_ARG, "mer_clip_state_set_precision: NULL state");
    mer_status st = mer__precision_check(p, "visual encoder");
    if (st || (st = ensure_precision(s->m, p))) return st;
    s->par.precision = p;
    return MER_OK;
}

/* Images per forward batch: enough rows (images x tokens) for the GEMM to run near peak,
 * without growing scratch beyond a few tens of MB. */
static int32_t batch_cap(const mer_clip_info *c) {
    int32_t b = (2048 + c->tokens - 1) / c->tokens;
    return b < 1 ? 1 : b;
}

static mer_status state_reserve(mer_clip_state *s, int32_t n) {
    const int32_t threads = mer__threads();
    if (n <= s->cap && threads <= s->cap_threads) return MER_OK;
    state_release(s);
    const mer_clip_info *c = &s->m->info;
    const int64_t R = (int64_t)n * c->tokens, D = c->hidden_size, I = c->intermediate_size;
    const int64_t K = (int64_t)c->num_channels * c->patch_size * c->patch_size;
    const int64_t np = c->tokens - 1, S = c->image_size;
    int64_t rd, r3d, ri, pk, px;
    if (!mer__mul_overflow(R, D, &rd) || !mer__mul_overflow(rd, 3, &r3d) ||
        !mer__mul_overflow(R, I, &ri) || !mer__mul_overflow(np, K, &pk) ||
        !mer__mul_overflow((int64_t)n * 3 * S, S, &px) || ri > ((int64_t)1 << 40))
        return mer__err(MER_ERR_NOMEM, "clip: batch of %d images is too large", n);
    s->x = mer__alloc((size_t)rd * sizeof(float));
    s->h = mer__alloc((size_t)rd * sizeof(float));
    s->qkv = mer__alloc((size_t)r3d * sizeof(float));
    s->ao = mer__alloc((size_t)rd * sizeof(float));
    s->mlp = mer__alloc((size_t)ri * sizeof(float));
    s->patches = mer__alloc((size_t)pk * sizeof(float));
    s->pooled = mer__alloc((size_t)n * D * sizeof(float));
    s->pixels = mer__alloc((size_t)px * sizeof(float));
    s->scores = mer__alloc((size_t)mer__attention_ws_floats(c->tokens, c->tokens, c->n_heads,
                                                           D / c->n_heads) * sizeof(float));
    if (!s->x || !s->h || !s->qkv || !s->ao || !s->mlp || !s->patches || !s->pooled || !s->pixels ||
        !s->scores) {
        state_release(s);
        return mer__err(MER_ERR_NOMEM, "clip: no memory for a batch of %d images", n);
    }
    s->cap = n;
    s->cap_threads = threads;
    return MER_OK;
}

/* ---- forward ----------------------------------------------------------------------------- */

typedef struct {
    float *y;
    int64_t cols;
} act_job;

/* quick_gelu (x * sigmoid(1.702 x)) of rows [r0, r1): CLIP's activation, the one the packed
 * product's epilogue does not have */
static void quick_gelu_rows(void *u, int64_t r0, int64_t r1, int t) {
    (void)t;
    const act_job *j = u;
    /* nested in a parallel range, the shared kernel runs serially on this row */
    for (int64_t r = r0; r < r1; r++) mer__quick_gelu_fwd(j->y + r * j->cols, j->y + r * j->cols, j->cols);
}

/* y (rows, I) = act(h (rows, D) @ W1^T + b1): the first MLP product */
static void mlp_up(mer_status *err, mer_clip_state *s, const mer_clip_info *c, float *y, const float *h,
                   int64_t rows, const mer_packed *w1) {
    const int64_t D = c->hidden_size, I = c->intermediate_size;
    if (*err) return;
    *err = mer__packed_linear_kept(y, I, h, D, rows, w1, 0, c->quick_gelu ? MER_EPI_NONE : MER_EPI_GELU,
                                   &s->pk_ws, &s->pk_ws_cap);
    if (*err == MER_OK && c->quick_gelu) {
        act_job j = {y, I};
        mer__parallel_for(rows, 8, quick_gelu_rows, &j);
    }
}

/* Unfold image (C, S, S) into patches (g*g, C*p*p), columns in the conv weight's (c, ky, kx)
 * order, rows in the flatten(2) order of the conv output (gy, gx). */
static void unfold_patches(float *patches, const float *img, int32_t C, int32_t S, int32_t p) {
    const int32_t g = S / p;
    const int64_t K = (int64_t)C * p * p;
    for (int32_t gy = 0; gy < g; gy++)
        for (int32_t gx = 0; gx < g; gx++) {
            float *row = patches + ((int64_t)gy * g + gx) * K;
            for (int32_t c = 0; c < C; c++)
                for (int32_t ky = 0; ky < p; ky++)
                    memcpy(row + ((int64_t)c * p + ky) * p,
                           img + ((int64_t)c * S + (int64_t)gy * p + ky) * S + (int64_t)gx * p,
                           (size_t)p * sizeof(float));
        }
}

/* C (M, N) (+)= A (M, K) @ W^T for a weight W (N, K) of the encoder, packed in P for the
 * state's precision, on the state's kept scratch; *err keeps the first failure (no memory for
 * the packed activations) and later calls do nothing. */
static void gemm_w(mer_status *err, mer_clip_state *s, int64_t M, const float *A, int64_t lda,
                   const mer_packed *P, int accumulate, float *C, int64_t ldc) {
    if (*err == MER_OK)
        *err = mer__packed_linear_kept(C, ldc, A, lda, M, P, accumulate, MER_EPI_NONE, &s->pk_ws, &s->pk_ws_cap);
}

/* Self-attention of each image: the fused kernel (mer__attention_fwd, heads x query blocks over
 * the threads, scores never materialised beyond one block); tq query rows per image (T, or 1:
 * the class token only) against all T keys.
 * ref: torch.nn.functional.scaled_dot_product_attention (no mask) */
static void attend(mer_status *err, float *ao, const float *qkv, int32_t n, int64_t tq, int64_t T,
                   int64_t D, int64_t H, float scale, float *ws, int bf16) {
    for (int32_t b = 0; b < n && *err == MER_OK; b++) {
        const float *q = qkv + (int64_t)b * T * 3 * D;
        /* bf16: the attention's products in bfloat16 too (vdpbf16ps where the CPU has it) */
        *err = (bf16 ? mer__attention_fwd_bf16 : mer__attention_fwd)(ao + (int64_t)b * T * D, D, NULL, q, 3 * D,
                                                                      q + D, 3 * D, q + 2 * D, 3 * D, NULL, tq, T,
                                                                      H, D / H, scale, ws);
    }
}

/* One batch of n <= cap images; MER_ERR_ABORTED when the state's abort callback stops it
 * before a layer. */
static mer_status forward_batch(mer_clip_state *s, const float *pixels, int32_t n, mer_clip_output what,
                          float *out) {
    const mer_clip_model *m = s->m;
    const mer_clip_info *c = &m->info;
    const int64_t D = c->hidden_size, I = c->intermediate_size, T = c->tokens, R = (int64_t)n * T;
    const int64_t S = c->image_size, K = (int64_t)c->num_channels * c->patch_size * c->patch_size;
    const int64_t H = c->n_heads, dh = D / H, L = c->n_layers;
    const float eps = c->layer_norm_eps;
    float *x = s->x, *h = s->h, *qkv = s->qkv, *ao = s->ao, *mlp = s->mlp;
    /* the packed weights are read only by a state of their precision, which made sure they exist */
    const int slot = prec_slot(s->par.precision);
    mer_status st, err = MER_OK; /* err: the first failed packed product (gemm_w) */
#define PK(j) (ly->pk[slot][j])

    /* embeddings: class token, patch GEMM, position embedding, pre-LN */
    for (int32_t b = 0; b < n; b++) {
        unfold_patches(s->patches, pixels + (int64_t)b * c->num_channels * S * S, c->num_channels,
                       (int32_t)S, c->patch_size);
        float *xb = x + (int64_t)b * T * D;
        memcpy(xb, m->class_emb, (size_t)D * sizeof(float));
        mer_sgemm(0, 1, T - 1, D, K, 1.0f, s->patches, K, m->patch_w, K, 0.0f, xb + D, D);
        for (int64_t t = 0; t < T; t++)
            for (int64_t i = 0; i < D; i++) xb[t * D + i] += m->pos_emb[t * D + i];
    }
    mer__layernorm_fwd(x, NULL, NULL, x, m->pre_w, m->pre_b, R, D, eps);

    const int64_t per_img = (L + 1) * T * D;
    if (what == MER_CLIP_HIDDEN)
        for (int32_t b = 0; b < n; b++)
            memcpy(out + b * per_img, x + (int64_t)b * T * D, (size_t)(T * D) * sizeof(float));

    const float scale = 1.0f / sqrtf((float)dh);
    /* Without hidden states only the class token leaves the last layer: its keys and values
     * need every token, but its query, output projection and MLP only the class rows. */
    const int64_t full_layers = what == MER_CLIP_HIDDEN ? L : L - 1;
    for (int64_t l = 0; l < full_layers; l++) {
        if ((st = mer__abort_check(s->par.abort, s->par.abort_user_data, "visual encoder"))) return st;
        const clip_layer *ly = &m->layers[l];
        mer__layernorm_fwd(h, NULL, NULL, x, ly->ln1_w, ly->ln1_b, R, D, eps);
        gemm_w(&err, s, R, h, D, PK(0), 0, qkv, 3 * D); /* q | k | v, or q alone (last layer) */
        if (PK(1)) {
            gemm_w(&err, s, R, h, D, PK(1), 0, qkv + D, 3 * D);
            gemm_w(&err, s, R, h, D, PK(2), 0, qkv + 2 * D, 3 * D);
        }
        attend(&err, ao, qkv, n, T, T, D, H, scale, s->scores, s->par.precision == MER_PRECISION_BF16);
        /* x += ao @ Wo^T + b: the residual add is the product's accumulate */
        gemm_w(&err, s, R, ao, D, PK(3), 1, x, D);
        mer__layernorm_fwd(h, NULL, NULL, x, ly->ln2_w, ly->ln2_b, R, D, eps);
        mlp_up(&err, s, c, mlp, h, R, PK(4));
        gemm_w(&err, s, R, mlp, I, PK(5), 1, x, D);
        if (what == MER_CLIP_HIDDEN)
            for (int32_t b = 0; b < n; b++)
                memcpy(out + b * per_img + (l + 1) * T * D, x + (int64_t)b * T * D,
                       (size_t)(T * D) * sizeof(float));
    }
    if (what == MER_CLIP_HIDDEN || err) return err;
    if ((st = mer__abort_check(s->par.abort, s->par.abort_user_data, "visual encoder"))) return st;

    /* last layer, class rows: xc (n, D) in s->pooled, scratch rows in h */
    const clip_layer *ly = &m->layers[L - 1];
    float *xc = s->pooled, *aoc = h + R * D - 2 * (int64_t)n * D, *hc = aoc + (int64_t)n * D;
    mer__layernorm_fwd(h, NULL, NULL, x, ly->ln1_w, ly->ln1_b, R, D, eps);
    gemm_w(&err, s, n, h, T * D, PK(0), 0, qkv, T * 3 * D); /* rows b * T */
    gemm_w(&err, s, R, h, D, PK(1), 0, qkv + D, 3 * D);
    gemm_w(&err, s, R, h, D, PK(2), 0, qkv + 2 * D, 3 * D);
    attend(&err, ao, qkv, n, 1, T, D, H, scale, s->scores, s->par.precision == MER_PRECISION_BF16);
    for (int32_t b = 0; b < n; b++) {
        memcpy(xc + (int64_t)b * D, x + (int64_t)b * T * D, (size_t)D * sizeof(float));
        memcpy(aoc + (int64_t)b * D, ao + (int64_t)b * T * D, (size_t)D * sizeof(float));
    }
    gemm_w(&err, s, n, aoc, D, PK(3), 1, xc, D);
    mer__layernorm_fwd(hc, NULL, NULL, xc, ly->ln2_w, ly->ln2_b, n, D, eps);
    mlp_up(&err, s, c, mlp, hc, n, PK(4));
    gemm_w(&err, s, n, mlp, I, PK(5), 1, xc, D);

    /* pooled = post_layernorm(class token); embeds = pooled @ proj^T */
    float *pooled = what == MER_CLIP_CLS ? out : hc;
    mer__layernorm_fwd(pooled, NULL, NULL, xc, m->post_w, m->post_b, n, D, eps);
    if (what == MER_CLIP_EMBEDS)
        mer_sgemm(0, 1, n, c->projection_dim, D, 1.0f, pooled, D, m->proj, D, 0.0f, out,
                  c->projection_dim);
#undef PK
    return err;
}

static mer_status check_what(const mer_clip_model *m, mer_clip_output what) {
    if (what != MER_CLIP_EMBEDS && what != MER_CLIP_CLS && what != MER_CLIP_HIDDEN)
        return mer__err(MER_ERR_INVALID_ARG, "clip: unknown output %d", (int)what);
    if (what == MER_CLIP_EMBEDS && !m->proj)
        return mer__err(MER_ERR_UNSUPPORTED,
                        "CLIP checkpoint %s has no visual_projection.weight (a CLIPVisionModel): "
                        "embeds need CLIPModel or CLIPVisionModelWithProjection; use cls or hidden",
                        m->dir);
    return MER_OK;
}

mer_status mer_clip_forward(mer_clip_state *s, const float *pixels, int32_t n,
                            mer_clip_output what, float *out) {
    if (!s || (n > 0 && (!pixels || !out)) || n < 0)
        return mer__err(MER_ERR_INVALID_ARG, "mer_clip_forward: bad arguments");
    const mer_clip_model *m = s->m;
    mer_status st = check_what(m, what);
    if (st != MER_OK) return st;
    const mer_clip_info *c = &m->info;
    const int64_t px = (int64_t)c->num_channels * c->image_size * c->image_size;
    for (int64_t i = 0; i < (int64_t)n * px; i++)
        if (!isfinite(pixels[i]))
            return mer__err(MER_ERR_NUMERIC, "clip: pixel %lld of image %lld is not finite",
                            (long long)(i % px), (long long)(i / px));
    const int32_t cap = batch_cap(c);
    const int threads = mer__threads_use(s->par.n_threads);
    const int64_t osz = mer_clip_output_size(m, what);
    st = state_reserve(s, n < cap ? n : cap);
    for (int32_t b0 = 0; b0 < n && !st; b0 += cap) {
        int32_t nb = n - b0 < cap ? n - b0 : cap;
        st = forward_batch(s, pixels + b0 * px, nb, what, out + b0 * osz);
        if (!st && s->par.progress) s->par.progress(b0 + nb, n, s->par.progress_user_data);
    }
    mer__threads_use(threads);
    return st;
}

mer_status mer_clip_encode_images(mer_clip_state *s, const mer_image *imgs, int32_t n,
                                  mer_clip_output what, float *out) {
    if (!s || (n > 0 && (!imgs || !out)) || n < 0)
        return mer__err(MER_ERR_INVALID_ARG, "mer_clip_encode_images: bad arguments");
    const mer_clip_model *m = s->m;
    mer_status st = check_what(m, what);
    if (st != MER_OK) return st;
    const mer_clip_info *c = &m->info;
    const int32_t cap = batch_cap(c);
    const int threads = mer__threads_use(s->par.n_threads);
    const int64_t px = (int64_t)c->num_channels * c->image_size * c->image_size;
    const int64_t osz = mer_clip_output_size(m, what);
    st = state_reserve(s, n < cap ? n : cap);
    for (int32_t b0 = 0; b0 < n && !st; b0 += cap) {
        int32_t nb = n - b0 < cap ? n - b0 : cap;
        for (int32_t i = 0; i < nb && !st; i++) st = mer_clip_preprocess(m, &imgs[b0 + i], s->pixels + i * px);
        if (!st) st = forward_batch(s, s->pixels, nb, what, out + b0 * osz);
        if (!st && s->par.progress) s->par.progress(b0 + nb, n, s->par.progress_user_data);
    }
    mer__threads_use(threads);
    return st;
}

/* ---- files: images and videos, optionally through face crops ----------------------------- */

mer_clip_extract_params mer_clip_default_extract_params(void) {
    mer_clip_extract_params p;
    memset(&p, 0, sizeof p);
    p.what = MER_CLIP_EMBEDS;
    p.pool_mean = 1;
    return p;
}

static int is_image_path(const char *path) {
    static const char *ext[] = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".ppm"};
    const char *dot = strrchr(path, '.');
    if (!dot || strchr(dot, '/')) return 0;
    for (size_t i = 0; i < sizeof ext / sizeof *ext; i++) {
        const char *a = dot, *b = ext[i];
        while (*a && *b && (*a | 0x20) == *b) a++, b++;
        if (!*a && !*b) return 1;
    }
    return 0;
}

/* Frames stream through extraction (mer_media_each_video_frame): each is face-cropped if asked,
 * preprocessed into a batch of at most batch_cap pixel tensors, and the batch is encoded when
 * full. Memory is one decoded frame plus one batch of 224x224 tensors whatever the clip length
 * (the output of pool none grows with the frames, by design); the batches are those
 * mer_clip_encode_images would form, so results are the same bits. */
typedef struct {
    mer_clip_state *s;
    const mer_clip_extract_params *p;
    const char *path;
    int64_t px, osz;
    int32_t cap, nb;        /* batch capacity, images in it */
    float *pixels;          /* (cap, 3, S, S) */
    float *chunk;           /* (cap, osz): a batch's outputs when pooling */
    float *acc;             /* pool: (osz) sums; none: (n_out, osz) rows, grown */
    int64_t acc_rows;
    int32_t decoded, no_face, n_out;
} clip_stream;

static mer_status stream_flush(clip_stream *cs) {
    if (cs->nb == 0) return MER_OK;
    float *dst;
    if (cs->p->pool_mean) {
        dst = cs->chunk;
    } else {
        int64_t need = (int64_t)cs->n_out + cs->nb, total;
        if (!mer__mul_overflow(need, cs->osz, &total) || total > ((int64_t)1 << 34))
            return mer__err(MER_ERR_NOMEM, "%s: %lld frames of %lld floats is too large an output", cs->path,
                            (long long)need, (long long)cs->osz);
        if (need > cs->acc_rows) {
            int64_t rows = cs->acc_rows ? cs->acc_rows * 2 : 64;
            if (rows < need) rows = need;
            float *na = realloc(cs->acc, (size_t)(rows * cs->osz) * sizeof(float));
            if (!na) return mer__err(MER_ERR_NOMEM, "%s: no memory for the features", cs->path);
            cs->acc = na;
            cs->acc_rows = rows;
        }
        dst = cs->acc + (int64_t)cs->n_out * cs->osz;
    }
    mer_status st = mer_clip_forward(cs->s, cs->pixels, cs->nb, cs->p->what, dst);
    if (st != MER_OK) {
        mer__err_prefix("%s", cs->path);
        return st;
    }
    if (cs->p->pool_mean)
        for (int32_t i = 0; i < cs->nb; i++)
            for (int64_t k = 0; k < cs->osz; k++) cs->acc[k] += cs->chunk[(int64_t)i * cs->osz + k];
    cs->n_out += cs->nb;
    cs->nb = 0;
    return MER_OK;
}

static mer_status stream_frame(const mer_image *img, void *user) {
    clip_stream *cs = user;
    const mer_clip_extract_params *p = cs->p;
    cs->decoded++;
    mer_image crop = {0};
    const mer_image *use = img;
    if (p->faces) { /* the crop of its best face (the detector's first); none: the frame is skipped */
        mer_faces_params fp = mer_faces_default_params();
        fp.expressions = 0;
        mer_face *faces = NULL;
        int32_t nf = 0;
        mer_status s = mer_faces_detect(p->faces, p->faces_state, img, &fp, &faces, &nf);
        if (s != MER_OK) return s;
        if (nf > 0) s = mer_faces_crop(img, &faces[0], &crop);
        free(faces);
        if (nf == 0 || s == MER_ERR_NOT_FOUND) {
            mer_clear_error();
            cs->no_face++;
            return MER_OK;
        }
        if (s != MER_OK) return s;
        use = &crop;
    }
    mer_status st = mer_clip_preprocess(cs->s->m, use, cs->pixels + (int64_t)cs->nb * cs->px);
    mer_image_free(&crop);
    if (st != MER_OK) return st;
    if (++cs->nb == cs->cap) return stream_flush(cs);
    return MER_OK;
}

mer_status mer_clip_extract_file(mer_clip_state *s, const char *path,
                                 const mer_clip_extract_params *p, float **out, int32_t *ndim,
                                 int64_t shape[4], mer_clip_extract_stats *stats) {
    if (!s || !path || !p || !out || !ndim || !shape)
        return mer__err(MER_ERR_INVALID_ARG, "mer_clip_extract_file: NULL argument");
    *out = NULL;
    *ndim = 0;
    const mer_clip_model *m = s->m;
    mer_status st = check_what(m, p->what);
    if (st != MER_OK) return st;
    const mer_clip_info *c = &m->info;
    clip_stream cs = {.s = s, .p = p, .path = path, .cap = batch_cap(c),
                      .px = (int64_t)c->num_channels * c->image_size * c->image_size,
                      .osz = mer_clip_output_size(m, p->what)};
    cs.pixels = malloc((size_t)(cs.cap * cs.px) * sizeof(float));
    if (p->pool_mean) {
        cs.chunk = malloc((size_t)(cs.cap * cs.osz) * sizeof(float));
        cs.acc = calloc((size_t)cs.osz, sizeof(float));
    }
    if (!cs.pixels || (p->pool_mean && (!cs.chunk || !cs.acc))) {
        st = mer__err(MER_ERR_NOMEM, "%s: no memory for the features", path);
        goto done;
    }
    if (is_image_path(path)) {
        mer_image img = {0};
        if ((st = mer_image_load(path, &img)) != MER_OK) goto done;
        st = stream_frame(&img, &cs);
        mer_image_free(&img);
    } else {
        st = mer_media_each_video_frame(path, &p->sampling, stream_frame, &cs, NULL);
    }
    if (st == MER_OK) st = stream_flush(&cs);
    if (st != MER_OK) goto done;
    if (stats) {
        stats->frames = cs.decoded;
        stats->frames_no_face = cs.no_face;
    }
    if (cs.decoded == 0) {
        st = mer__err(MER_ERR_NOT_FOUND, "%s: no video frames decoded", path);
        goto done;
    }
    if (cs.n_out == 0) {
        st = mer__err(MER_ERR_NOT_FOUND, "%s: no face found in any of the %d frame%s", path,
                      cs.decoded, cs.decoded == 1 ? "" : "s");
        goto done;
    }
    if (p->pool_mean)
        for (int64_t k = 0; k < cs.osz; k++) cs.acc[k] /= (float)cs.n_out;
    int32_t d = 0;
    if (!p->pool_mean) shape[d++] = cs.n_out;
    if (p->what == MER_CLIP_HIDDEN) {
        shape[d++] = c->n_layers + 1;
        shape[d++] = c->tokens;
        shape[d++] = c->hidden_size;
    } else {
        shape[d++] = cs.osz;
    }
    *ndim = d;
    *out = cs.acc;
    cs.acc = NULL;
done:
    free(cs.acc);
    free(cs.chunk);
    free(cs.pixels);
    return st;
}
