/*
 * hubert.c -- HuBERT and wav2vec 2.0 speech encoders (Hugging Face HubertModel / Wav2Vec2Model)
 * from safetensors checkpoints, forward pass only, giving every hidden state exactly as
 * transformers' output_hidden_states=True defines them.
 *
 * Architecture (transformers modeling_wav2vec2.py / modeling_hubert.py):
 *   feature encoder  7 x Conv1d(stride) -> [GroupNorm on layer 0 | LayerNorm over channels on
 *                    every layer] -> GELU, on the raw 16 kHz waveform: (T, C=512) at 50 Hz
 *   projection       [LayerNorm(C)] -> Linear(C, D)
 *   positional conv  grouped Conv1d(D, D, K, pad K/2) with weight norm over dim 2, the last
 *                    frame dropped when K is even ("same" padding), GELU, added to the input
 *   encoder          post-LN (base): LN after the add; each layer x = LN(x + attn(x)),
 *                    x = LN(x + ffn(x)).  stable-layer-norm (large): x += attn(LN(x)),
 *                    x += ffn(LN(x)), a final LN after the last layer.
 *
 * The model (weights, config) is immutable after load: F32 tensors point into the mmapped
 * safetensors file, F16/BF16 ones are converted once by the reader; the weights we hold
 * ourselves are the positional convolution's weight-normed kernel, the feature encoder's conv
 * kernels repacked for its time-major layout (about 50 MB at the large size) and the packed
 * linear layers (below). All
 * activations live in the per-run state's arena, sized from the input length before the
 * forward starts. The linear layers run on weights packed once, on first use under a mutex, by
 * the encoders' one packing facility (mer_packed, kernels/packed.c), with bias, residual and GELU
 * in the product's epilogue: in float32 by default (the mapped pages of the packed weights are
 * handed back), or in an opt-in reduced precision (speed modes, docs/speech.md):
 * MER_PRECISION_BF16 the linear layers and the feature-encoder convolutions
 * with cin > 1 in bfloat16, MER_PRECISION_INT8 the same products as W8A8; norms, GELU, attention,
 * the first convolution and the positional convolution stay float32.
 */
#include "kernels/kernels.h"
#include "speech_internal.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <immintrin.h>

#define HB_MAX_CONV 16
#define HB_NAME 256

typedef struct {
    const float *w, *b;        /* conv (cout, cin, k), bias (cout) or NULL */
    float *wp;                 /* owned repack: (cout, k*cin) taps-major, or (k, cout) if cin 1 */
    mer_packed *wpk[3];        /* it packed with the bias (cin > 1), [0] bfloat16, [1] int8, [2] float32 */
    const float *norm_g, *norm_b; /* GroupNorm (layer 0, "group") or LayerNorm ("layer"), or NULL */
    int64_t cin, cout, k, stride;
} hb_conv;

typedef struct {
    const float *ln1_g, *ln1_b;   /* "layer_norm" */
    const float *wq, *bq, *wk, *bk, *wv, *bv, *wo, *bo;
    const float *ln2_g, *ln2_b;   /* "final_layer_norm" */
    const float *w1, *b1, *w2, *b2;
    /* packed weights with their biases, [0] bfloat16 (MER_PRECISION_BF16), [1] int8
     * (MER_PRECISION_INT8), [2] float32 (MER_PRECISION_F32), NULL until first used: q, k, v as
     * one (3D, D) */
    mer_packed *p_qkv[3], *p_o[3], *p_1[3], *p_2[3];
    /* plain (n, k) bfloat16 copies of q, k, v, out, ffn1, ffn2 for the trainable encoder's
     * products in both orientations (mer__speech_layer_bf16), NULL until first asked for */
    const uint16_t *w16[6];
} hb_layer;

struct mer_speech_model {
    mer_safetensors *st;
    mer_speech_info info;
    char dir[MER_PATH_CAP];
    /* config */
    int n_conv;
    int group_norm;            /* feat_extract_norm == "group" */
    int feat_proj_ln;
    int conv_bias;
    int64_t D, H, I, L, pos_k, pos_groups;
    float eps;                 /* layer_norm_eps */
    hb_conv conv[HB_MAX_CONV];
    const float *fp_ln_g, *fp_ln_b, *fp_w, *fp_b;
    float *pos_w;              /* owned: g * v / ||v|| (D, D/groups, K) */
    const float *pos_b;
    mer_packed **pos_pk;       /* per group: (D/groups, K * D/groups) taps-major with the bias,
                                * float32, made with the first packed weights (under pack_mu) */
    mer_packed **pos_pk16;     /* the same in bfloat16 for MER_PRECISION_BF16 on CPUs whose
                                * bf16 product reads overlapping rows in place (AVX512-BF16),
                                * made with the bf16 weights; NULL elsewhere (float32 then) */
    const float *enc_ln_g, *enc_ln_b;
    hb_layer *layers;
    const char *prefix;        /* tensor-name prefix of the base model (static string) */
    /* packed weights of each precision ([0] bf16, [1] int8, [2] fp32), made on first use under
     * pack_mu: the only part of the model that changes after load, once per precision */
    pthread_mutex_t pack_mu;
    int packed_ready[3];
    mer_packed *p_fp[3];
    uint16_t *train16;         /* the block of every layer's w16 (under pack_mu), or NULL */
};

struct mer_speech_state {
    const mer_speech_model *m;
    mer_speech_state_params par; /* of mer_speech_encode */
    /* the callbacks of the call running now: per layer (encode) or only abort (extract) */
    mer_progress_fn progress;
    void *progress_user_data;
    mer_abort_fn abort;
    void *abort_user_data;
    mer__arena arena;
    mer_speech_profile prof;   /* of the last encode/extract call */
    void *pk_ws;               /* the packed products' scratch (mer__packed_linear_kept) */
    size_t pk_ws_cap;
};

/* ============================================================================================
 * Loading
 * ========================================================================================== */

typedef struct {
    mer_speech_model *m;
    const char *prefix;        /* "hubert.", "wav2vec2." or "" */
    char **expected;           /* names consumed (for the unexpected-tensor check) */
    int n_expected, cap_expected;
} hb_loader;

static mer_status note_expected(hb_loader *ld, const char *full) {
    if (ld->n_expected == ld->cap_expected) {
        int cap = ld->cap_expected ? 2 * ld->cap_expected : 256;
        char **p = realloc(ld->expected, (size_t)cap * sizeof *p);
        if (!p) return mer__err(MER_ERR_NOMEM, "out of memory");
        ld->expected = p;
        ld->cap_expected = cap;
    }
    ld->expected[ld->n_expected] = strdup(full);
    if (!ld->expected[ld->n_expected]) return mer__err(MER_ERR_NOMEM, "out of memory");
    ld->n_expected++;
    return MER_OK;
}

/* Fetch prefix+name as float32 with the given shape (ndim dims); errors name the tensor. */
static mer_status get_t(hb_loader *ld, const float **out, const char *name, int32_t ndim,
                        int64_t d0, int64_t d1, int64_t d2) {
    char full[HB_NAME];
    snprintf(full, sizeof full, "%s%s", ld->prefix, name);
    int64_t shape[3] = {d0, d1, d2};
    mer_status s = note_expected(ld, full);
    if (s) return s;
    s = mer_safetensors_get_f32(ld->m->st, full, ndim, shape, out);
    if (s) mer__err_prefix("%s", ld->m->dir);
    return s;
}

static int has_t(hb_loader *ld, const char *name) {
    char full[HB_NAME];
    mer_safetensors_entry e;
    snprintf(full, sizeof full, "%s%s", ld->prefix, name);
    mer_status s = mer_safetensors_find(ld->m->st, full, &e);
    mer_clear_error();
    return s == MER_OK;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static mer_status cfg_int(const mer_json *j, const char *dir, const char *key, int64_t def,
                          int required, int64_t lo, int64_t hi, int64_t *out) {
    mer_status s = required ? mer_json_get_int(j, key, out) : mer_json_int_or(j, key, def, out);
    if (s) return s;
    if (*out < lo || *out > hi)
        return mer__err(MER_ERR_FORMAT, "%s/config.json: %s = %lld is out of range [%lld, %lld]",
                        dir, key, (long long)*out, (long long)lo, (long long)hi);
    return MER_OK;
}

/* weight = g * v / ||v||, the norm taken over dims 0 and 1 for each kernel tap k
 * (torch.nn.utils.weight_norm(conv, name="weight", dim=2)). */
static mer_status weight_norm_dim2(float *w, const float *g, const float *v, int64_t rows, int64_t k) {
    double *ss = calloc((size_t)k, sizeof(double));
    if (!ss) return mer__err(MER_ERR_NOMEM, "out of memory");
    /* row-major sweeps: a per-tap column walk would miss the cache on every element */
    for (int64_t r = 0; r < rows; r++)
        for (int64_t kk = 0; kk < k; kk++) ss[kk] += (double)v[r * k + kk] * v[r * k + kk];
    for (int64_t kk = 0; kk < k; kk++) ss[kk] = g[kk] / sqrt(ss[kk]);
    for (int64_t r = 0; r < rows; r++)
        for (int64_t kk = 0; kk < k; kk++) w[r * k + kk] = (float)(v[r * k + kk] * ss[kk]);
    free(ss);
    return MER_OK;
}

static mer_status read_config(mer_speech_model *m, const mer_json *cfg, const mer_json *pre) {
    const char *dir = m->dir;
    const char *mt = NULL;
    mer_status s = mer_json_string_or(cfg, "model_type", "", &mt);
    if (s) return s;
    if (strcmp(mt, "hubert") && strcmp(mt, "wav2vec2"))
        return mer__err(MER_ERR_UNSUPPORTED,
                        "%s/config.json: model_type '%s' is not a speech encoder this build reads "
                        "(expected 'hubert' or 'wav2vec2')", dir, mt);
    snprintf(m->info.model_type, sizeof m->info.model_type, "%s", mt);

    int64_t v;
    if ((s = cfg_int(cfg, dir, "hidden_size", 0, 1, 1, 1 << 16, &m->D))) return s;
    if ((s = cfg_int(cfg, dir, "num_hidden_layers", 0, 1, 1, 1024, &m->L))) return s;
    if ((s = cfg_int(cfg, dir, "num_attention_heads", 0, 1, 1, 4096, &m->H))) return s;
    if ((s = cfg_int(cfg, dir, "intermediate_size", 0, 1, 1, 1 << 20, &m->I))) return s;
    if ((s = cfg_int(cfg, dir, "num_conv_pos_embeddings", 128, 0, 1, 4096, &m->pos_k))) return s;
    if ((s = cfg_int(cfg, dir, "num_conv_pos_embedding_groups", 16, 0, 1, 4096, &m->pos_groups)))
        return s;
    if (m->D % m->H)
        return mer__err(MER_ERR_FORMAT, "%s/config.json: hidden_size %lld is not a multiple of num_attention_heads %lld",
                        dir, (long long)m->D, (long long)m->H);
    if (m->D % m->pos_groups)
        return mer__err(MER_ERR_FORMAT, "%s/config.json: hidden_size %lld is not a multiple of num_conv_pos_embedding_groups %lld",
                        dir, (long long)m->D, (long long)m->pos_groups);
    double eps;
    if ((s = mer_json_double_or(cfg, "layer_norm_eps", 1e-5, &eps))) return s;
    m->eps = (float)eps;

    const char *norm = NULL;
    if ((s = mer_json_string_or(cfg, "feat_extract_norm", "group", &norm))) return s;
    if (!strcmp(norm, "group")) m->group_norm = 1;
    else if (!strcmp(norm, "layer")) m->group_norm = 0;
    else
        return mer__err(MER_ERR_FORMAT, "%s/config.json: feat_extract_norm '%s' (expected 'group' or 'layer')", dir, norm);

    int b;
    if ((s = mer_json_bool_or(cfg, "do_stable_layer_norm", 0, &b))) return s;
    m->info.stable_layer_norm = b;
    if ((s = mer_json_bool_or(cfg, "feat_proj_layer_norm", 1, &b))) return s;
    m->feat_proj_ln = !strcmp(mt, "wav2vec2") ? 1 : b; /* wav2vec2 always has it */
    if ((s = mer_json_bool_or(cfg, "conv_bias", 0, &m->conv_bias))) return s;

    const char *act;
    if ((s = mer_json_string_or(cfg, "hidden_act", "gelu", &act))) return s;
    if (strcmp(act, "gelu"))
        return mer__err(MER_ERR_UNSUPPORTED, "%s/config.json: hidden_act '%s' (only 'gelu' is supported)", dir, act);
    if ((s = mer_json_string_or(cfg, "feat_extract_activation", "gelu", &act))) return s;
    if (strcmp(act, "gelu"))
        return mer__err(MER_ERR_UNSUPPORTED, "%s/config.json: feat_extract_activation '%s' (only 'gelu' is supported)", dir, act);
    if ((s = mer_json_bool_or(cfg, "conv_pos_batch_norm", 0, &b))) return s;
    if (b) return mer__err(MER_ERR_UNSUPPORTED, "%s/config.json: conv_pos_batch_norm is not supported", dir);
    if ((s = mer_json_bool_or(cfg, "add_adapter", 0, &b))) return s;
    if (b) return mer__err(MER_ERR_UNSUPPORTED, "%s/config.json: add_adapter is not supported", dir);

    int64_t dims[HB_MAX_CONV], ks[HB_MAX_CONV], strides[HB_MAX_CONV];
    int32_t nd = 0, nk = 0, ns = 0;
    if (mer_json_has(cfg, "conv_dim")) {
        if ((s = mer_json_get_int_array(cfg, "conv_dim", dims, HB_MAX_CONV, &nd))) return s;
        if ((s = mer_json_get_int_array(cfg, "conv_kernel", ks, HB_MAX_CONV, &nk))) return s;
        if ((s = mer_json_get_int_array(cfg, "conv_stride", strides, HB_MAX_CONV, &ns))) return s;
    } else { /* transformers' defaults */
        static const int64_t d0[7] = {512, 512, 512, 512, 512, 512, 512};
        static const int64_t k0[7] = {10, 3, 3, 3, 3, 2, 2};
        static const int64_t s0[7] = {5, 2, 2, 2, 2, 2, 2};
        memcpy(dims, d0, sizeof d0);
        memcpy(ks, k0, sizeof k0);
        memcpy(strides, s0, sizeof s0);
        nd = nk = ns = 7;
    }
    if (nd < 1 || nd != nk || nd != ns)
        return mer__err(MER_ERR_FORMAT, "%s/config.json: conv_dim, conv_kernel, conv_stride have lengths %d, %d, %d (expected equal, >= 1)",
                        dir, nd, nk, ns);
    if ((s = mer_json_int_or(cfg, "num_feat_extract_layers", nd, &v))) return s;
    if (v != nd)
        return mer__err(MER_ERR_FORMAT, "%s/config.json: num_feat_extract_layers %lld but conv_dim has %d entries",
                        dir, (long long)v, nd);
    m->n_conv = nd;
    int64_t cin = 1;
    for (int i = 0; i < nd; i++) {
        if (dims[i] < 1 || dims[i] > 65536 || ks[i] < 1 || ks[i] > 4096 || strides[i] < 1 || strides[i] > 4096)
            return mer__err(MER_ERR_FORMAT, "%s/config.json: conv layer %d has dim %lld kernel %lld stride %lld",
                            dir, i, (long long)dims[i], (long long)ks[i], (long long)strides[i]);
        m->conv[i].cin = cin;
        m->conv[i].cout = dims[i];
        m->conv[i].k = ks[i];
        m->conv[i].stride = strides[i];
        cin = dims[i];
    }

    m->info.sample_rate = 16000;
    m->info.do_normalize = 1;
    if (pre) {
        if ((s = mer_json_int_or(pre, "sampling_rate", 16000, &v))) return s;
        if (v < 1000 || v > 384000)
            return mer__err(MER_ERR_FORMAT, "%s/preprocessor_config.json: sampling_rate %lld", dir, (long long)v);
        m->info.sample_rate = (int32_t)v;
        if ((s = mer_json_bool_or(pre, "do_normalize", 1, &b))) return s;
        m->info.do_normalize = b;
    }
    m->info.n_layers = (int32_t)m->L;
    m->info.hidden_size = (int32_t)m->D;
    m->info.n_heads = (int32_t)m->H;
    m->info.intermediate_size = (int32_t)m->I;
    m->info.conv_layers = nd;
    return MER_OK;
}

static mer_status load_weights(mer_speech_model *m, hb_loader *ld) {
    mer_status s;
    char name[HB_NAME];
    const int64_t D = m->D, I = m->I;
    for (int i = 0; i < m->n_conv; i++) {
        hb_conv *c = &m->conv[i];
        snprintf(name, sizeof name, "feature_extractor.conv_layers.%d.conv.weight", i);
        if ((s = get_t(ld, &c->w, name, 3, c->cout, c->cin, c->k))) return s;
        /* time-major repack (see conv_tm): (k, cout) for one input channel, else (cout, k*cin) */
        c->wp = mer__alloc((size_t)(c->cout * c->cin * c->k) * sizeof(float));
        if (!c->wp) return MER_ERR_NOMEM;
        for (int64_t co = 0; co < c->cout; co++)
            for (int64_t ci = 0; ci < c->cin; ci++)
                for (int64_t kk = 0; kk < c->k; kk++) {
                    const float w = c->w[(co * c->cin + ci) * c->k + kk];
                    if (c->cin == 1) c->wp[kk * c->cout + co] = w;
                    else c->wp[co * c->k * c->cin + kk * c->cin + ci] = w;
                }
        if (m->conv_bias) {
            snprintf(name, sizeof name, "feature_extractor.conv_layers.%d.conv.bias", i);
            if ((s = get_t(ld, &c->b, name, 1, c->cout, 0, 0))) return s;
        }
        if (!m->group_norm || i == 0) {
            snprintf(name, sizeof name, "feature_extractor.conv_layers.%d.layer_norm.weight", i);
            if ((s = get_t(ld, &c->norm_g, name, 1, c->cout, 0, 0))) return s;
            snprintf(name, sizeof name, "feature_extractor.conv_layers.%d.layer_norm.bias", i);
            if ((s = get_t(ld, &c->norm_b, name, 1, c->cout, 0, 0))) return s;
        }
    }
    const int64_t C = m->conv[m->n_conv - 1].cout;
    if (m->feat_proj_ln) {
        if ((s = get_t(ld, &m->fp_ln_g, "feature_projection.layer_norm.weight", 1, C, 0, 0))) return s;
        if ((s = get_t(ld, &m->fp_ln_b, "feature_projection.layer_norm.bias", 1, C, 0, 0))) return s;
    }
    if ((s = get_t(ld, &m->fp_w, "feature_projection.projection.weight", 2, D, C, 0))) return s;
    if ((s = get_t(ld, &m->fp_b, "feature_projection.projection.bias", 1, D, 0, 0))) return s;

    /* positional convolution: weight norm in the old or the parametrizations spelling, or a
     * plain weight when the norm was folded in before saving */
    const int64_t K = m->pos_k, cg = D / m->pos_groups;
    const float *g = NULL, *vv = NULL, *plain = NULL;
    if (has_t(ld, "encoder.pos_conv_embed.conv.weight_g")) {
        if ((s = get_t(ld, &g, "encoder.pos_conv_embed.conv.weight_g", 3, 1, 1, K))) return s;
        if ((s = get_t(ld, &vv, "encoder.pos_conv_embed.conv.weight_v", 3, D, cg, K))) return s;
    } else if (has_t(ld, "encoder.pos_conv_embed.conv.parametrizations.weight.original0")) {
        if ((s = get_t(ld, &g, "encoder.pos_conv_embed.conv.parametrizations.weight.original0", 3, 1, 1, K)))
            return s;
        if ((s = get_t(ld, &vv, "encoder.pos_conv_embed.conv.parametrizations.weight.original1", 3, D, cg, K)))
            return s;
    } else if (has_t(ld, "encoder.pos_conv_embed.conv.weight")) {
        if ((s = get_t(ld, &plain, "encoder.pos_conv_embed.conv.weight", 3, D, cg, K))) return s;
    } else {
        return mer__err(MER_ERR_NOT_FOUND,
                        "%s: tensor %sencoder.pos_conv_embed.conv.weight_g (or parametrizations.weight.original0) "
                        "not found in %s", m->dir, ld->prefix, mer_safetensors_path(m->st));
    }
    m->pos_w = mer__alloc((size_t)(D * cg * K) * sizeof(float));
    if (!m->pos_w) return MER_ERR_NOMEM;
    if (plain) memcpy(m->pos_w, plain, (size_t)(D * cg * K) * sizeof(float));
    else if ((s = weight_norm_dim2(m->pos_w, g, vv, D * cg, K))) return s;
    if ((s = get_t(ld, &m->pos_b, "encoder.pos_conv_embed.conv.bias", 1, D, 0, 0))) return s;
    if ((s = get_t(ld, &m->enc_ln_g, "encoder.layer_norm.weight", 1, D, 0, 0))) return s;
    if ((s = get_t(ld, &m->enc_ln_b, "encoder.layer_norm.bias", 1, D, 0, 0))) return s;

    m->layers = mer__calloc((size_t)m->L, sizeof *m->layers);
    if (!m->layers) return MER_ERR_NOMEM;
    for (int64_t l = 0; l < m->L; l++) {
        hb_layer *y = &m->layers[l];
        struct {
            const char *n;
            const float **p;
            int32_t nd;
            int64_t d0, d1;
        } t[] = {
            {"attention.q_proj.weight", &y->wq, 2, D, D}, {"attention.q_proj.bias", &y->bq, 1, D, 0},
            {"attention.k_proj.weight", &y->wk, 2, D, D}, {"attention.k_proj.bias", &y->bk, 1, D, 0},
            {"attention.v_proj.weight", &y->wv, 2, D, D}, {"attention.v_proj.bias", &y->bv, 1, D, 0},
            {"attention.out_proj.weight", &y->wo, 2, D, D}, {"attention.out_proj.bias", &y->bo, 1, D, 0},
            {"layer_norm.weight", &y->ln1_g, 1, D, 0}, {"layer_norm.bias", &y->ln1_b, 1, D, 0},
            {"feed_forward.intermediate_dense.weight", &y->w1, 2, I, D},
            {"feed_forward.intermediate_dense.bias", &y->b1, 1, I, 0},
            {"feed_forward.output_dense.weight", &y->w2, 2, D, I},
            {"feed_forward.output_dense.bias", &y->b2, 1, D, 0},
            {"final_layer_norm.weight", &y->ln2_g, 1, D, 0}, {"final_layer_norm.bias", &y->ln2_b, 1, D, 0},
        };
        for (size_t i = 0; i < sizeof t / sizeof *t; i++) {
            snprintf(name, sizeof name, "encoder.layers.%lld.%s", (long long)l, t[i].n);
            if ((s = get_t(ld, t[i].p, name, t[i].nd, t[i].d0, t[i].d1, 0))) return s;
        }
    }
    /* used only for masked pre-training; harmless when present */
    if (has_t(ld, "masked_spec_embed")) {
        const float *unused;
        if ((s = get_t(ld, &unused, "masked_spec_embed", 1, D, 0, 0))) return s;
    }
    return MER_OK;
}

/* Every tensor under the base model's prefix must have been consumed; tensors outside it are
 * a task head (CTC, classifier, pre-training quantizer) and are ignored with one log line. */
static mer_status check_unexpected(mer_speech_model *m, hb_loader *ld) {
    qsort(ld->expected, (size_t)ld->n_expected, sizeof *ld->expected, cmp_str);
    const size_t plen = strlen(ld->prefix);
    int64_t n = mer_safetensors_count(m->st), n_head = 0;
    char first_head[128] = "";
    for (int64_t i = 0; i < n; i++) {
        mer_safetensors_entry e;
        mer_status s = mer_safetensors_entry_at(m->st, i, &e);
        if (s) return s;
        if (plen && strncmp(e.name, ld->prefix, plen)) {
            if (!n_head++) snprintf(first_head, sizeof first_head, "%s", e.name);
            continue;
        }
        const char *key = e.name;
        if (!bsearch(&key, ld->expected, (size_t)ld->n_expected, sizeof *ld->expected, cmp_str)) {
            char shp[96];
            mer_shape_str(shp, sizeof shp, e.ndim, e.shape);
            return mer__err(MER_ERR_FORMAT,
                            "%s: unexpected tensor %s %s in %s (not part of a %s model with this config.json: "
                            "%d conv layers, feat_extract_norm %s, %lld layers)",
                            m->dir, e.name, shp, mer_safetensors_path(m->st), m->info.model_type,
                            m->n_conv, m->group_norm ? "group" : "layer", (long long)m->L);
        }
    }
    if (n_head)
        MER_LOG_W("%s: ignoring %lld head tensor%s outside the base model (%s%s)", m->dir,
                  (long long)n_head, n_head == 1 ? "" : "s", first_head, n_head > 1 ? ", ..." : "");
    return MER_OK;
}

static const char *detect_prefix(mer_safetensors *st) {
    static const char *prefixes[] = {"", "hubert.", "wav2vec2."};
    for (size_t i = 0; i < sizeof prefixes / sizeof *prefixes; i++) {
        char name[HB_NAME];
        mer_safetensors_entry e;
        snprintf(name, sizeof name, "%sfeature_extractor.conv_layers.0.conv.weight", prefixes[i]);
        mer_status s = mer_safetensors_find(st, name, &e);
        mer_clear_error();
        if (s == MER_OK) return prefixes[i];
    }
    return NULL;
}

static mer_status model_load(mer_speech_model **out, const char *dir);
static mer_status ensure_precision(const mer_speech_model *cm, mer_precision p);

mer_speech_model_params mer_speech_model_default_params(void) {
    mer_speech_model_params p;
    memset(&p, 0, sizeof p);
    p.precision = MER_PRECISION_F32;
    return p;
}

mer_status mer_speech_model_load(mer_speech_model **out, const char *dir, const mer_speech_model_params *p) {
    if (!out || !dir) return mer__err(MER_ERR_INVALID_ARG, "mer_speech_model_load: NULL argument");
    *out = NULL;
    const mer_speech_model_params par = p ? *p : mer_speech_model_default_params();
    mer_status s = mer__precision_check(par.precision, "speech encoder");
    if (s) return s;
    if ((s = model_load(out, dir))) return s;
    if ((s = ensure_precision(*out, par.precision))) {
        mer_speech_model_free(*out);
        *out = NULL;
    }
    return s;
}

static mer_status model_load(mer_speech_model **out, const char *dir) {
    struct stat sb;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return mer__err(MER_ERR_IO, "%s: not a checkpoint directory (expected config.json and model.safetensors in it)", dir);
    mer_speech_model *m = mer__calloc(1, sizeof *m);
    if (!m) return MER_ERR_NOMEM;
    pthread_mutex_init(&m->pack_mu, NULL);
    snprintf(m->dir, sizeof m->dir, "%s", dir);
    mer_json *cfg = NULL, *pre = NULL;
    hb_loader ld = {m, "", NULL, 0, 0};
    char path[MER_PATH_CAP];
    mer_status s;

    snprintf(path, sizeof path, "%s/config.json", dir);
    if ((s = mer_json_load(&cfg, path))) goto fail;
    snprintf(path, sizeof path, "%s/preprocessor_config.json", dir);
    if (stat(path, &sb) == 0 && (s = mer_json_load(&pre, path))) goto fail;
    if ((s = read_config(m, cfg, pre))) goto fail;
    if ((s = mer_safetensors_open(&m->st, dir))) goto fail;
    ld.prefix = detect_prefix(m->st);
    if (!ld.prefix) {
        s = mer__err(MER_ERR_NOT_FOUND, "%s: tensor feature_extractor.conv_layers.0.conv.weight not found in %s "
                     "(nor with a hubert. or wav2vec2. prefix): not a %s checkpoint",
                     dir, mer_safetensors_path(m->st), m->info.model_type);
        goto fail;
    }
    m->prefix = ld.prefix;
    if ((s = load_weights(m, &ld))) goto fail;
    if ((s = check_unexpected(m, &ld))) goto fail;

    /* parameter count and file size for the info block */
    int64_t np = 0;
    for (int i = 0; i < ld.n_expected; i++) {
        mer_safetensors_entry e;
        if (mer_safetensors_find(m->st, ld.expected[i], &e) == MER_OK) {
            int64_t c = 1;
            for (int d = 0; d < e.ndim; d++) c *= e.shape[d];
            np += c;
            m->info.weight_bytes += (int64_t)e.nbytes;
        }
    }
    m->info.n_params = np;
    for (int i = 0; i < ld.n_expected; i++) free(ld.expected[i]);
    free(ld.expected);
    mer_json_free(cfg);
    mer_json_free(pre);
    *out = m;
    return MER_OK;
fail:
    for (int i = 0; i < ld.n_expected; i++) free(ld.expected[i]);
    free(ld.expected);
    mer_json_free(cfg);
    mer_json_free(pre);
    mer_speech_model_free(m);
    return s;
}

/* Frees the packed weights of one precision (slot 0 bf16, 1 int8, 2 fp32). */
static void free_packed(mer_speech_model *m, int slot) {
    mer_packed_free(m->p_fp[slot]);
    m->p_fp[slot] = NULL;
    if (m->layers)
        for (int64_t l = 0; l < m->L; l++) {
            hb_layer *y = &m->layers[l];
            mer_packed **p[4] = {&y->p_qkv[slot], &y->p_o[slot], &y->p_1[slot], &y->p_2[slot]};
            for (int j = 0; j < 4; j++) {
                mer_packed_free(*p[j]);
                *p[j] = NULL;
            }
        }
    for (int i = 0; i < m->n_conv; i++) {
        mer_packed_free(m->conv[i].wpk[slot]);
        m->conv[i].wpk[slot] = NULL;
    }
}

void mer_speech_model_free(mer_speech_model *m) {
    if (!m) return;
    mer_safetensors_free(m->st);
    mer__free(m->pos_w);
    mer_packed **pp[2] = {m->pos_pk, m->pos_pk16};
    for (int i = 0; i < 2; i++) {
        if (pp[i])
            for (int64_t g = 0; g < m->pos_groups; g++) mer_packed_free(pp[i][g]);
        mer__free(pp[i]);
    }
    free_packed(m, 0);
    free_packed(m, 1);
    free_packed(m, 2);
    mer__free(m->train16);
    for (int i = 0; i < m->n_conv; i++) mer__free(m->conv[i].wp);
    mer__free(m->layers);
    pthread_mutex_destroy(&m->pack_mu);
    mer__free(m);
}

void mer_speech_model_info(const mer_speech_model *m, mer_speech_info *info) {
    if (!m || !info) return;
    pthread_mutex_t *mu = (pthread_mutex_t *)&m->pack_mu; /* guards the packed fields only */
    pthread_mutex_lock(mu);
    *info = m->info;
    pthread_mutex_unlock(mu);
}

/* ---- packed weights -------------------------------------------------------------------------
 * Made once, on first use, by mer_packed (docs/gemm.md), biases included: the linear layers
 * (~80% of the forward's FLOP; feature projection, q/k/v as one (3D, D) product, out, the two
 * FFN products) in float32 (MER_PRECISION_F32: our AVX2 kernel with bias, GELU and residual in
 * its epilogue instead of mer_sgemm plus passes over the output; the mapped file pages of the
 * weights are then handed back, so the packed copy does not double the resident memory),
 * bfloat16 (MER_PRECISION_BF16) or W8A8 (MER_PRECISION_INT8), and in both also
 * the feature-encoder convolutions with cin > 1 (~13%), whose repacked (cout, k * cin) kernels
 * are a linear layer over overlapping input rows (int8: each output frame's k * cin inputs
 * quantised with their own scale; the last two stay float32). The first convolution (cin 1, the
 * raw waveform) and the positional convolution (~2%) stay float32. With all six cin > 1
 * convolutions in int8 the tiny fixtures' worst hidden state went from 0.0108 to 0.0284 x
 * max|ref| (bar 3e-2); with the last two in float32 it is 0.0186 (docs/gemm.md). */
static const char *const SLOT_NAME[3] = {"bfloat16", "int8", "float32"};

/* The positional convolution as one float32 product per group over overlapping rows (every
 * precision uses it): group g's output o at frame t is sum over taps k and the group's channels c
 * of w[o][c][k] * xpad[t + k][c], so with the padded input of the group laid out (T + K - 1, cg)
 * the K * cg inputs of frame t are contiguous from row t on, and the weights are (cg, K * cg)
 * taps-major. */
static mer_status make_pos_packed(mer_speech_model *m, mer_packed ***out, mer_pack_type type) {
    const int64_t G = m->pos_groups, cg = m->D / G, K = m->pos_k;
    mer_packed **pk = *out = mer__calloc((size_t)G, sizeof *pk);
    float *w = mer__alloc((size_t)(cg * K * cg) * sizeof(float));
    mer_status s = pk && w ? MER_OK : MER_ERR_NOMEM;
    for (int64_t g = 0; !s && g < G; g++) {
        for (int64_t o = 0; o < cg; o++)
            for (int64_t c = 0; c < cg; c++)
                for (int64_t k = 0; k < K; k++)
                    w[o * K * cg + k * cg + c] = m->pos_w[((g * cg + o) * cg + c) * K + k];
        s = mer_packed_init(&pk[g], w, MER_DTYPE_F32, m->pos_b + g * cg, cg, K * cg, type);
    }
    mer__free(w);
    if (s && pk) {
        for (int64_t g = 0; g < G; g++) mer_packed_free(pk[g]);
        mer__free(pk);
        *out = NULL;
    }
    return s;
}

static mer_status make_packed(mer_speech_model *m, int slot) {
    const mer_pack_type type = slot == 2 ? MER_PACK_F32 : slot ? MER_PACK_INT8 : MER_PACK_BF16;
    const int64_t D = m->D, I = m->I, C = m->conv[m->n_conv - 1].cout;
    mer_status s = m->pos_pk ? MER_OK : make_pos_packed(m, &m->pos_pk, MER_PACK_F32);
    if (!s && slot == 0 && !m->pos_pk16 && mer__packed_bf16_in_place() && (m->D / m->pos_groups) % 2 == 0)
        s = make_pos_packed(m, &m->pos_pk16, MER_PACK_BF16);
    if (!s) s = mer_packed_init(&m->p_fp[slot], m->fp_w, MER_DTYPE_F32, m->fp_b, D, C, type);
    float *w3 = s ? NULL : mer__alloc((size_t)(3 * D * D + 3 * D) * sizeof(float));
    if (!s && !w3) s = MER_ERR_NOMEM;
    for (int64_t l = 0; !s && l < m->L; l++) {
        hb_layer *y = &m->layers[l];
        float *b3 = w3 + 3 * D * D;
        memcpy(w3, y->wq, (size_t)(D * D) * sizeof(float));
        memcpy(w3 + D * D, y->wk, (size_t)(D * D) * sizeof(float));
        memcpy(w3 + 2 * D * D, y->wv, (size_t)(D * D) * sizeof(float));
        memcpy(b3, y->bq, (size_t)D * sizeof(float));
        memcpy(b3 + D, y->bk, (size_t)D * sizeof(float));
        memcpy(b3 + 2 * D, y->bv, (size_t)D * sizeof(float));
        if (!(s = mer_packed_init(&y->p_qkv[slot], w3, MER_DTYPE_F32, b3, 3 * D, D, type)) &&
            !(s = mer_packed_init(&y->p_o[slot], y->wo, MER_DTYPE_F32, y->bo, D, D, type)) &&
            !(s = mer_packed_init(&y->p_1[slot], y->w1, MER_DTYPE_F32, y->b1, I, D, type)))
            s = mer_packed_init(&y->p_2[slot], y->w2, MER_DTYPE_F32, y->b2, D, I, type);
        if (!s && slot == 2) { /* the packed copy serves every fp32 product: the mapped pages
                                * go back layer by layer, so the two never add up (they are
                                * refaulted from the file if another precision or training reads them) */
            const size_t DD = (size_t)(D * D) * sizeof(float), DI = (size_t)(D * I) * sizeof(float);
            const float *w[6] = {y->wq, y->wk, y->wv, y->wo, y->w1, y->w2};
            for (int j = 0; j < 6; j++) mer_safetensors_release(m->st, w[j], j < 4 ? DD : DI);
        }
    }
    if (!s && slot == 2) mer_safetensors_release(m->st, m->fp_w, (size_t)(D * C) * sizeof(float));
    mer__free(w3);
    for (int i = 0; !s && i < m->n_conv; i++) {
        hb_conv *c = &m->conv[i];
        /* int8: the last two convolutions (the fewest frames, ~2% of the convolutions' work)
         * stay float32: they set most of the int8 feature's error (below) */
        if (c->cin > 1 && !(slot == 1 && i >= m->n_conv - 2))
            s = mer_packed_init(&c->wpk[slot], c->wp, MER_DTYPE_F32, c->b, c->cout, c->k * c->cin, type);
    }
    if (s) {
        mer__err_prefix("%s: %s weights", m->dir, SLOT_NAME[slot]);
        free_packed(m, slot);
        return s;
    }
    m->packed_ready[slot] = 1;
    if (slot == 0) {
        int64_t bytes = (int64_t)mer_packed_bytes(m->p_fp[0]);
        for (int64_t l = 0; l < m->L; l++) {
            const hb_layer *y = &m->layers[l];
            bytes += (int64_t)(mer_packed_bytes(y->p_qkv[0]) + mer_packed_bytes(y->p_o[0]) +
                               mer_packed_bytes(y->p_1[0]) + mer_packed_bytes(y->p_2[0]));
        }
        for (int i = 0; i < m->n_conv; i++) bytes += (int64_t)mer_packed_bytes(m->conv[i].wpk[0]);
        m->info.bf16_bytes = bytes;
        m->info.bf16_ready = 1;
    }
    MER_LOG_I("%s: %s weights packed", m->dir, SLOT_NAME[slot]);
    return MER_OK;
}

/* The packed-weight slot of a precision. */
static int prec_slot(mer_precision p) {
    return p == MER_PRECISION_BF16 ? 0 : p == MER_PRECISION_INT8 ? 1 : 2;
}

/* Make the packed weights of precision p once; the model may be shared between threads. */
static mer_status ensure_precision(const mer_speech_model *cm, mer_precision p) {
    const int slot = prec_slot(p);
    mer_speech_model *m = (mer_speech_model *)cm; /* the packed fields are a guarded lazy cache */
    pthread_mutex_lock(&m->pack_mu);
    mer_status s = m->packed_ready[slot] ? MER_OK : make_packed(m, slot);
    pthread_mutex_unlock(&m->pack_mu);
    return s;
}

/* ---- read-only views for the trainable encoder (speech_train.c) ---- */
mer_status mer__speech_layer_get(const mer_speech_model *m, int32_t l, mer__speech_layer *out) {
    if (!m || !out || l < 0 || l >= m->L)
        return mer__err(MER_ERR_INVALID_ARG, "speech encoder: layer %d outside the model (0..%lld)",
                        (int)l, (long long)(m ? m->L - 1 : -1));
    const hb_layer *y = &m->layers[l];
    *out = (mer__speech_layer){y->ln1_g, y->ln1_b, y->wq, y->bq, y->wk, y->bk, y->wv, y->bv,
                               y->wo, y->bo, y->ln2_g, y->ln2_b, y->w1, y->b1, y->w2, y->b2};
    return MER_OK;
}

/* The trainable encoder multiplies by the frozen projections in both orientations (forward and
 * input gradient), which a packed (x @ W^T only) copy does not serve: it gets plain bfloat16
 * copies, made once on first request under pack_mu (inference never makes them). */
static mer_status make_train16(mer_speech_model *m) {
    const int64_t D = m->D, I = m->I, per = 4 * D * D + 2 * D * I;
    int64_t total;
    if (!mer__mul_overflow(per, m->L, &total) || !mer__mul_overflow(total, 2, &total))
        return mer__err(MER_ERR_NOMEM, "%s: bfloat16 weights overflow", m->dir);
    m->train16 = mer__alloc((size_t)total);
    if (!m->train16)
        return mer__err(MER_ERR_NOMEM, "%s: no memory for %lld MB of bfloat16 weights", m->dir,
                        (long long)(total >> 20));
    uint16_t *p = m->train16;
    for (int64_t l = 0; l < m->L; l++) {
        hb_layer *y = &m->layers[l];
        const float *w[6] = {y->wq, y->wk, y->wv, y->wo, y->w1, y->w2};
        const int64_t n[6] = {D * D, D * D, D * D, D * D, I * D, D * I};
        for (int j = 0; j < 6; j++) {
            mer_f32_to_bf16(p, w[j], n[j]);
            y->w16[j] = p;
            p += n[j];
        }
    }
    return MER_OK;
}

mer_status mer__speech_layer_bf16(const mer_speech_model *m, int32_t l, const uint16_t *w16[6]) {
    if (!m || l < 0 || l >= m->L)
        return mer__err(MER_ERR_INVALID_ARG, "speech encoder: layer %d outside the model", (int)l);
    mer_speech_model *mm = (mer_speech_model *)m; /* a guarded lazy cache, as the packed weights */
    pthread_mutex_lock(&mm->pack_mu);
    mer_status s = mm->train16 ? MER_OK : make_train16(mm);
    pthread_mutex_unlock(&mm->pack_mu);
    if (s) return s;
    for (int j = 0; j < 6; j++) w16[j] = m->layers[l].w16[j];
    return MER_OK;
}

void mer__speech_encoder_ln(const mer_speech_model *m, const float **g, const float **b,
                            float *eps) {
    *g = m->enc_ln_g;
    *b = m->enc_ln_b;
    *eps = m->eps;
}

int64_t mer_speech_frames(const mer_speech_model *m, int64_t n) {
    if (!m || n <= 0) return 0;
    for (int i = 0; i < m->n_conv; i++) {
        if (n < m->conv[i].k) return 0;
        n = (n - m->conv[i].k) / m->conv[i].stride + 1;
    }
    return n;
}

/* ============================================================================================
 * State
 * ========================================================================================== */

mer_speech_state_params mer_speech_state_default_params(void) {
    mer_speech_state_params p;
    memset(&p, 0, sizeof p);
    p.precision = MER_PRECISION_F32;
    return p;
}

mer_status mer_speech_state_init(mer_speech_state **out, const mer_speech_model *m,
                                 const mer_speech_state_params *p) {
    if (!out || !m) return mer__err(MER_ERR_INVALID_ARG, "mer_speech_state_init: NULL argument");
    *out = NULL;
    const mer_speech_state_params par = p ? *p : mer_speech_state_default_params();
    mer_status st = mer__precision_check(par.precision, "speech encoder");
    if (st || (st = ensure_precision(m, par.precision))) return st;
    mer_speech_state *s = mer__calloc(1, sizeof *s);
    if (!s) return MER_ERR_NOMEM;
    s->m = m;
    s->par = par;
    *out = s;
    return MER_OK;
}

mer_status mer_speech_state_set_precision(mer_speech_state *s, mer_precision p) {
    if (!s) return mer__err(MER_ERR_INVALID_ARG, "mer_speech_state_set_precision: NULL state");
    mer_status st = mer__precision_check(p, "speech encoder");
    if (st || (st = ensure_precision(s->m, p))) return st;
    s->par.precision = p;
    return MER_OK;
}

/* The callbacks of the call starting now: the state's (encode) or an extract params' abort,
 * whose progress counts chunks or utterances instead of layers. */
static void calls_set(mer_speech_state *s, mer_progress_fn progress, void *progress_user_data,
                      mer_abort_fn abort_fn, void *abort_user_data) {
    s->progress = progress;
    s->progress_user_data = progress_user_data;
    s->abort = abort_fn;
    s->abort_user_data = abort_user_data;
}

const mer_speech_model *mer__speech_state_model(const mer_speech_state *s) { return s ? s->m : NULL; }

void mer_speech_state_free(mer_speech_state *s) {
    if (!s) return;
    mer__arena_free(&s->arena);
    mer__free(s->pk_ws);
    mer__free(s);
}

/* ============================================================================================
 * Forward helpers
 * ========================================================================================== */

/* ---- the feature encoder, time-major ------------------------------------------------------
 * Activations are kept (T, C): a strided conv layer is then im2col-free, because the k*cin
 * inputs of output frame t are contiguous in memory from row stride*t on. BLAS needs lda >= K,
 * so the taps go in chunks of `stride` taps: y = sum_j X_j W_j^T with X_j rows starting at
 * (stride*t + j*stride)*cin, lda = stride*cin, and W_j a column slice of the repacked weights. */

/* First layer (cin 1): y (tout, cout) = b + sum_k x[s*t + k] * wt[k] (cout), wt (k, cout). */
typedef struct {
    float *y;
    const float *x, *wt, *b;
    const float *ln_g, *ln_b; /* a LayerNorm + GELU on finished rows (c1_rows), or NULL */
    int64_t cout, k, s;
} c1_job;

/* y[0 .. 16 floor(n / 16)) += a w (AVX-512, chosen at run time); returns the count done. */
MER_AVX512 static int64_t axpy_avx512(float *y, float a, const float *w, int64_t n) {
    const __m512 va = _mm512_set1_ps(a);
    int64_t c = 0;
    for (; c + 16 <= n; c += 16) _mm512_storeu_ps(y + c, _mm512_fmadd_ps(va, _mm512_loadu_ps(w + c), _mm512_loadu_ps(y + c)));
    return c;
}

/* Rows t0 .. t0 + R of y, columns [0, 16 floor(cout / 16)) (AVX2 + FMA): 16 columns of R rows in
 * registers over all taps, the same operations in the same order as axpy_avx512 per element
 * (y = b, then y = fma(x_k, w_k, y) for k = 0, 1, ...). Returns the columns done. */
static inline __attribute__((always_inline, target("avx2,fma"))) int64_t
c1_block_avx2(const c1_job *j, int64_t t0, const int R) {
    const int64_t co = j->cout;
    int64_t c = 0;
    for (; c + 16 <= co; c += 16) {
        __m256 acc[4][2];
        #pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            acc[r][0] = j->b ? _mm256_loadu_ps(j->b + c) : _mm256_setzero_ps();
            acc[r][1] = j->b ? _mm256_loadu_ps(j->b + c + 8) : _mm256_setzero_ps();
        }
        for (int64_t kk = 0; kk < j->k; kk++) {
            const __m256 w0 = _mm256_loadu_ps(j->wt + kk * co + c), w1 = _mm256_loadu_ps(j->wt + kk * co + c + 8);
            #pragma GCC unroll 4
            for (int r = 0; r < R; r++) {
                const __m256 xv = _mm256_broadcast_ss(j->x + (t0 + r) * j->s + kk);
                acc[r][0] = _mm256_fmadd_ps(xv, w0, acc[r][0]);
                acc[r][1] = _mm256_fmadd_ps(xv, w1, acc[r][1]);
            }
        }
        #pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            _mm256_storeu_ps(j->y + (t0 + r) * co + c, acc[r][0]);
            _mm256_storeu_ps(j->y + (t0 + r) * co + c + 8, acc[r][1]);
        }
    }
    return c;
}

__attribute__((target("avx2,fma"))) static void c1_rows_avx2(const c1_job *j, int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1;) {
        const int R = t1 - t >= 4 ? 4 : 1;
        const int64_t c = R == 4 ? c1_block_avx2(j, t, 4) : c1_block_avx2(j, t, 1);
        for (int r = 0; r < R; r++) /* the columns past the last 16 */
            for (int64_t cc = c; cc < j->cout; cc++) {
                float v = j->b ? j->b[cc] : 0.0f;
                for (int64_t kk = 0; kk < j->k; kk++) v = fmaf(j->x[(t + r) * j->s + kk], j->wt[kk * j->cout + cc], v);
                j->y[(t + r) * j->cout + cc] = v;
            }
        t += R;
    }
}

static void c1_rows_plain(const c1_job *j, int64_t t0, int64_t t1) {
    const int64_t co = j->cout;
    const int wide = mer__use_avx512();
    if (!wide && (mer_cpu_features() & MER_CPU_AVX2)) {
        c1_rows_avx2(j, t0, t1);
        return;
    }
    for (int64_t t = t0; t < t1; t++) {
        float *y = j->y + t * co;
        const float *x = j->x + t * j->s;
        if (j->b) memcpy(y, j->b, (size_t)co * sizeof(float));
        else memset(y, 0, (size_t)co * sizeof(float));
        for (int64_t kk = 0; kk < j->k; kk++) {
            const float xv = x[kk];
            const float *w = j->wt + kk * co;
            int64_t c = wide ? axpy_avx512(y, xv, w, co) : 0;
            for (; c < co; c++) y[c] += xv * w[c];
        }
    }
}

/* rows of the first layer per block of C1_POST rows, then (ln_g) the block's LayerNorm and GELU
 * while it is in L1: the first layer's output is the feature encoder's largest (32 k x 512 at
 * 10 s: 65 MB), and separate passes would stream it from memory twice more. Row-wise, the same
 * operations as separate passes (the same bits). */
#define C1_POST 16

static void c1_rows(void *u, int64_t t0, int64_t t1, int th) {
    (void)th;
    const c1_job *j = u;
    if (!j->ln_g) {
        c1_rows_plain(j, t0, t1);
        return;
    }
    for (int64_t t = t0; t < t1; t += C1_POST) {
        const int64_t e = t1 - t < C1_POST ? t1 : t + C1_POST;
        float *y = j->y + t * j->cout;
        c1_rows_plain(j, t, e);
        mer__layernorm_fwd(y, NULL, NULL, y, j->ln_g, j->ln_b, e - t, j->cout, 1e-5f);
        mer__gelu_fwd(y, y, (e - t) * j->cout);
    }
}

typedef struct {
    float *y;
    const float *b;
    int64_t n;
} fill_job;

static void fill_rows(void *u, int64_t r0, int64_t r1, int th) {
    (void)th;
    const fill_job *j = u;
    for (int64_t r = r0; r < r1; r++) memcpy(j->y + r * j->n, j->b, (size_t)j->n * sizeof(float));
}

typedef struct {
    float *y;
    const hb_conv *c;
} conv_post_job;

/* LayerNorm then GELU on finished rows [r0, r1) of a packed convolution, inside its region
 * while the rows are still in cache (the kernels run serially there) */
static void conv_ln_gelu_rows(void *u, int64_t r0, int64_t r1, int th) {
    (void)th;
    const conv_post_job *j = u;
    const int64_t co = j->c->cout;
    float *y = j->y + r0 * co;
    mer__layernorm_fwd(y, NULL, NULL, y, j->c->norm_g, j->c->norm_b, r1 - r0, co, 1e-5f);
    mer__gelu_fwd(y, y, (r1 - r0) * co);
}

// ref: torch.nn.functional.conv1d on (1, cin, tin), output transposed to (tout, cout)
// *post is set when the layer's norm (a LayerNorm) and GELU were applied too.
static mer_status conv_tm(float *y, const float *x, const hb_conv *c, int64_t tin, int64_t tout,
                          int slot, int group_norm, int *post) {
    (void)tin;
    *post = 0;
    if (c->wpk[slot]) { /* the packed product reads the overlapping input rows in place */
        const int64_t ldx = c->stride * c->cin;
        if (!c->norm_g) { /* GELU in the product's epilogue */
            *post = 1;
            return mer_packed_linear(y, c->cout, x, ldx, tout, c->wpk[slot], 0, MER_EPI_GELU);
        }
        if (!group_norm) { /* LayerNorm + GELU on each finished block of rows */
            conv_post_job pj = {y, c};
            *post = 1;
            return mer__packed_linear_rows(y, c->cout, x, ldx, tout, c->wpk[slot], 0, MER_EPI_NONE,
                                           conv_ln_gelu_rows, &pj);
        }
        return mer_packed_linear(y, c->cout, x, ldx, tout, c->wpk[slot], 0, MER_EPI_NONE);
    }
    if (c->cin == 1) { /* with a LayerNorm (not GroupNorm, which needs every frame) fused */
        const int ln = c->norm_g && !group_norm;
        c1_job j = {y, x, c->wp, c->b, ln ? c->norm_g : NULL, ln ? c->norm_b : NULL, c->cout, c->k, c->stride};
        mer__parallel_for(tout, 64, c1_rows, &j);
        *post = ln;
        return MER_OK;
    }
    float beta = 0.0f;
    if (c->b) {
        fill_job f = {y, c->b, c->cout};
        mer__parallel_for(tout, 64, fill_rows, &f);
        beta = 1.0f;
    }
    const int64_t s = c->stride, cin = c->cin, kc = c->k * cin;
    for (int64_t t0 = 0; t0 < c->k; t0 += s) {
        const int64_t nt = c->k - t0 < s ? c->k - t0 : s;
        mer_sgemm(0, 1, tout, c->cout, nt * cin, 1.0f, x + t0 * cin, s * cin, c->wp + t0 * cin, kc,
                  beta, y, c->cout);
        beta = 1.0f;
    }
    return MER_OK;
}

/* GroupNorm with one group per channel on a time-major (t, c) buffer, in place, then GELU:
 * threads split channels; sums in double (the first layer normalizes over ~30 k frames), each
 * channel's in row order. Rows are walked outer with a thread's channels (up to GN_BLK) inner,
 * so each pass reads contiguous rows: with blocks of 128 channels (a quarter of a 512-channel
 * row) and scalar sums, the normalisation took ~0.2 s of CPU on 10 s of audio, 4x the first
 * convolution. With AVX2 the channels go 4 (double) or 8 (float) to a vector: the same
 * operations per channel in the same order, so the same bits; GELU on each finished row while
 * it is in L1. */
typedef struct {
    float *y;
    const float *g, *b;
    int64_t t, c;
    float eps;
} gn_tm_job;

#define GN_BLK 512

/* sum (nb) = mean over the t rows of y0 (t, nb) [ld], sq (nb) = sum of squared deviations */
__attribute__((target("avx2"))) static void gn_stats_avx2(const float *y0, int64_t ld, int64_t t, int64_t nb,
                                                         double *sum, double *sq) {
    const int64_t n8 = nb / 8 * 8;
    for (int64_t i = 0; i < nb; i++) sum[i] = sq[i] = 0.0;
    for (int64_t r = 0; r < t; r++) {
        const float *y = y0 + r * ld;
        for (int64_t i = 0; i < n8; i += 8) {
            const __m256 v = _mm256_loadu_ps(y + i);
            _mm256_storeu_pd(sum + i, _mm256_add_pd(_mm256_loadu_pd(sum + i), _mm256_cvtps_pd(_mm256_castps256_ps128(v))));
            _mm256_storeu_pd(sum + i + 4, _mm256_add_pd(_mm256_loadu_pd(sum + i + 4), _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1))));
        }
        for (int64_t i = n8; i < nb; i++) sum[i] += y[i];
    }
    for (int64_t i = 0; i < nb; i++) sum[i] /= (double)t;
    for (int64_t r = 0; r < t; r++) {
        const float *y = y0 + r * ld;
        for (int64_t i = 0; i < n8; i += 8) {
            const __m256 v = _mm256_loadu_ps(y + i);
            const __m256d d0 = _mm256_sub_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(v)), _mm256_loadu_pd(sum + i));
            const __m256d d1 = _mm256_sub_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)), _mm256_loadu_pd(sum + i + 4));
            _mm256_storeu_pd(sq + i, _mm256_add_pd(_mm256_loadu_pd(sq + i), _mm256_mul_pd(d0, d0)));
            _mm256_storeu_pd(sq + i + 4, _mm256_add_pd(_mm256_loadu_pd(sq + i + 4), _mm256_mul_pd(d1, d1)));
        }
        for (int64_t i = n8; i < nb; i++) {
            double d = y[i] - sum[i];
            sq[i] += d * d;
        }
    }
}

static void gn_stats(const float *y0, int64_t ld, int64_t t, int64_t nb, double *sum, double *sq) {
    for (int64_t i = 0; i < nb; i++) sum[i] = sq[i] = 0.0;
    for (int64_t r = 0; r < t; r++)
        for (int64_t i = 0; i < nb; i++) sum[i] += y0[r * ld + i];
    for (int64_t i = 0; i < nb; i++) sum[i] /= (double)t;
    for (int64_t r = 0; r < t; r++)
        for (int64_t i = 0; i < nb; i++) {
            double d = y0[r * ld + i] - sum[i];
            sq[i] += d * d;
        }
}

/* y = y * scale + shift, then GELU */
__attribute__((target("avx2"))) static int64_t gn_apply_avx2(float *y, const float *scale, const float *shift,
                                                            int64_t nb) {
    int64_t i = 0;
    for (; i + 8 <= nb; i += 8)
        _mm256_storeu_ps(y + i, _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(y + i), _mm256_loadu_ps(scale + i)),
                                              _mm256_loadu_ps(shift + i)));
    return i;
}

static void gn_tm_range(void *u, int64_t c0, int64_t c1, int th) {
    (void)th;
    const gn_tm_job *j = u;
    const int avx2 = (mer_cpu_features() & MER_CPU_AVX2) != 0;
    double sum[GN_BLK], sq[GN_BLK];
    float scale[GN_BLK], shift[GN_BLK];
    for (int64_t a = c0; a < c1; a += GN_BLK) {
        const int64_t nb = c1 - a < GN_BLK ? c1 - a : GN_BLK;
        if (avx2) gn_stats_avx2(j->y + a, j->c, j->t, nb, sum, sq);
        else gn_stats(j->y + a, j->c, j->t, nb, sum, sq);
        for (int64_t i = 0; i < nb; i++) {
            double rs = 1.0 / sqrt(sq[i] / (double)j->t + j->eps);
            scale[i] = (float)(rs * j->g[a + i]);
            shift[i] = (float)(j->b[a + i] - sum[i] * rs * j->g[a + i]);
        }
        for (int64_t r = 0; r < j->t; r++) {
            float *y = j->y + r * j->c + a;
            int64_t i = avx2 ? gn_apply_avx2(y, scale, shift, nb) : 0;
            for (; i < nb; i++) y[i] = y[i] * scale[i] + shift[i];
            mer__gelu_block(y, nb, 1, nb);
        }
    }
}

// ref: torch.nn.GroupNorm(num_groups=c, num_channels=c) on the (1, c, t) transpose, then
// torch.nn.functional.gelu
static void groupnorm_gelu_tm(float *y, const float *g, const float *b, int64_t t, int64_t c, float eps) {
    gn_tm_job j = {y, g, b, t, c, eps};
    mer__parallel_for(c, 16, gn_tm_range, &j);
}

/* ============================================================================================
 * Forward
 * ========================================================================================== */

/* Floats the forward needs for n samples (T frames). */
static int64_t arena_floats(const mer_speech_model *m, int64_t n, int64_t T) {
    int64_t even = 0, odd = 0, t = n;
    for (int i = 0; i < m->n_conv; i++) {
        t = (t - m->conv[i].k) / m->conv[i].stride + 1;
        int64_t sz = m->conv[i].cout * t;
        if (i % 2 == 0) even = sz > even ? sz : even;
        else odd = sz > odd ? sz : odd;
    }
    const int64_t C = m->conv[m->n_conv - 1].cout, D = m->D;
    int64_t enc = 6 * T * D             /* x, xn, q, k, v, attn */
                  + T * m->I            /* ffn hidden */
                  + T * D               /* positional conv output (T, D) */
                  + D * (T + m->pos_k - 1); /* its padded input per group (G, T + K - 1, D / G) */
    int64_t fe = even + odd;
    /* [features (T, C) | feature-encoder buffers, later reused by the encoder] */
    int64_t total = T * C + (fe > enc ? fe : enc);
    return total + 16 * 64; /* alignment slack */
}

/* ---- Profiling: the op helpers below (linear, attend, feature_encoder, pos_conv) charge
 * their wall time and work to the state's profile, so the forward carries no timing; the rest
 * of a call (norms, copies, residual adds) is its total minus those (mer_speech_state_profile).
 * ---- */
static void prof_charge(double *seconds, double *flop, double t0, double work) {
    *seconds += mer__now() - t0;
    if (flop) *flop += work;
}

/* y (n, out) = epi(x (n, in) @ W^T + b), or y = epi(y + x @ W^T + b) when acc (the residual),
 * W and b packed in p (the precision's weights); the bias, the residual and GELU are the
 * product's epilogue, applied to each tile while it is in cache.
 * ref: torch.nn.functional.linear */
static mer_status linear(mer_speech_state *st, float *y, const float *x, const mer_packed *p,
                         int64_t n, int acc, mer_epilogue epi) {
    const double t0 = mer__now();
    const int64_t in = mer_packed_k(p), out = mer_packed_n(p);
    mer_status s = mer__packed_linear_kept(y, out, x, in, n, p, acc, epi, &st->pk_ws, &st->pk_ws_cap);
    prof_charge(&st->prof.linear_s, &st->prof.linear_flop, t0, 2.0 * (double)n * (double)in * (double)out);
    return s;
}

/* att (T, D) = softmax(q k^T * scale) v per head, q/k/v rows ld apart.
 * ref: torch.nn.functional.scaled_dot_product_attention */
static mer_status attend(mer_speech_state *st, float *att, const float *q, const float *k,
                         const float *v, int64_t ld, int64_t T, int64_t H, int64_t dh, float scale,
                         mer_precision prec) {
    const double t0 = mer__now();
    const int64_t D = H * dh;
    /* BF16: the attention's products in bfloat16 too (vdpbf16ps where the CPU has it) */
    mer_status s = prec == MER_PRECISION_BF16
                       ? mer__attention_fwd_bf16(att, D, NULL, q, ld, k, ld, v, ld, NULL, T, T, H, dh, scale, NULL)
                       : mer__attention_fwd(att, D, NULL, q, ld, k, ld, v, ld, NULL, T, T, H, dh, scale, NULL);
    prof_charge(&st->prof.attention_s, &st->prof.attention_flop, t0, 4.0 * (double)T * (double)T * (double)D);
    return s;
}

/* The utterances of one forward: rows [t0, t0 + T) of the stacked frames; out receives its
 * hidden states lf..ll as (ll - lf + 1, T, D). */
typedef struct {
    int64_t t0, T;
    float *out;
} hb_seg;

/* The transformer layers on the stacked frames x (R, D) of nseg utterances (hidden state 0 in
 * x): every row-wise step (norms, linear layers, GELU) runs on all R rows at once, attention
 * within each utterance, so each utterance's results are those of running it alone. Scratch:
 * xn, att (R, D), qkv (R, 3D), hid (R, I). */
static mer_status run_layers(mer_speech_state *st, float *x, float *xn, float *qkv, float *att,
                             float *hid, int64_t R, const hb_seg *seg, int nseg, int32_t lf,
                             int32_t ll, mer_precision prec) {
    const mer_speech_model *m = st->m;
    const int64_t D = m->D, H = m->H, dh = D / H, L = m->L;
    const int slot = prec_slot(prec);
    mer_status s = MER_OK;
    const int stable = m->info.stable_layer_norm;
    if (lf == 0)
        for (int i = 0; i < nseg; i++)
            memcpy(seg[i].out, x + seg[i].t0 * D, (size_t)(seg[i].T * D) * sizeof(float));

    const float scale = 1.0f / sqrtf((float)dh);
    for (int64_t l = 0; l < ll; l++) { /* layers after the last wanted state are skipped */
        if ((s = mer__abort_check(st->abort, st->abort_user_data, "speech encoder"))) return s;
        const hb_layer *y = &m->layers[l];
        const float *a_in = x;
        if (stable) {
            mer__layernorm_fwd(xn, NULL, NULL, x, y->ln1_g, y->ln1_b, R, D, m->eps);
            a_in = xn;
        }
        /* one (R, 3D) product: q | k | v interleaved per row */
        if ((s = linear(st, qkv, a_in, y->p_qkv[slot], R, 0, MER_EPI_NONE))) return s;
        const int64_t ldqkv = 3 * D;
        const float *q = qkv, *k = qkv + D, *v = qkv + 2 * D;
        for (int i = 0; i < nseg; i++) { /* attention within each utterance */
            const int64_t o = seg[i].t0 * ldqkv;
            if ((s = attend(st, att + seg[i].t0 * D, q + o, k + o, v + o, ldqkv, seg[i].T, H, dh, scale, prec)))
                return s;
        }
        /* x += att @ wo^T + bo: the residual in the product's epilogue */
        s = linear(st, x, att, y->p_o[slot], R, 1, MER_EPI_NONE);
        if (s) return s;
        const float *f_in = x;
        if (stable) {
            mer__layernorm_fwd(xn, NULL, NULL, x, y->ln2_g, y->ln2_b, R, D, m->eps);
            f_in = xn;
        } else {
            mer__layernorm_fwd(x, NULL, NULL, x, y->ln1_g, y->ln1_b, R, D, m->eps);
        }
        s = linear(st, hid, f_in, y->p_1[slot], R, 0, MER_EPI_GELU);
        if (s) return s;
        s = linear(st, x, hid, y->p_2[slot], R, 1, MER_EPI_NONE);
        if (s) return s;
        if (!stable) mer__layernorm_fwd(x, NULL, NULL, x, y->ln2_g, y->ln2_b, R, D, m->eps);

        const int64_t idx = l + 1;
        if (idx >= lf && idx <= ll)
            for (int i = 0; i < nseg; i++) {
                const int64_t TD = seg[i].T * D;
                float *dst = seg[i].out + (idx - lf) * TD;
                const float *src = x + seg[i].t0 * D;
                if (stable && idx == L)
                    mer__layernorm_fwd(dst, NULL, NULL, src, m->enc_ln_g, m->enc_ln_b, seg[i].T, D, m->eps);
                else
                    memcpy(dst, src, (size_t)TD * sizeof(float));
            }
        if (st->progress) st->progress(l + 1, ll, st->progress_user_data);
    }
    return MER_OK;
}

/* The feature encoder: samples (n) -> feat (T, C) through the convolutions, ping-ponging
 * between buf[0] and buf[1] (time-major). */
static mer_status feature_encoder(mer_speech_state *st, float *feat, float *const buf[2],
                                  const float *samples, int64_t n, int slot) {
    const mer_speech_model *m = st->m;
    const double t0 = mer__now();
    double work = 0.0;
    mer_status s = MER_OK;
    const float *in = samples;
    int64_t tin = n;
    for (int i = 0; i < m->n_conv && !s; i++) {
        const hb_conv *c = &m->conv[i];
        float *y = i == m->n_conv - 1 ? feat : buf[i % 2];
        const int64_t tout = (tin - c->k) / c->stride + 1;
        int post;
        if ((s = conv_tm(y, in, c, tin, tout, slot, m->group_norm, &post))) break;
        work += 2.0 * (double)c->cout * (double)(c->cin * c->k) * (double)tout;
        if (!post) {
            if (c->norm_g && m->group_norm) {
                groupnorm_gelu_tm(y, c->norm_g, c->norm_b, tout, c->cout, 1e-5f);
            } else {
                if (c->norm_g) mer__layernorm_fwd(y, NULL, NULL, y, c->norm_g, c->norm_b, tout, c->cout, 1e-5f);
                mer__gelu_fwd(y, y, c->cout * tout);
            }
        }
        in = y;
        tin = tout;
    }
    prof_charge(&st->prof.feature_s, &st->prof.feature_flop, t0, work);
    return s;
}

typedef struct {
    float *xg, *pc;
    const float *x;
    mer_packed *const *pk;
    mer_status *status;
    int64_t T, D, cg, K, pad;
} pos_job;

/* xg (G, T + K - 1, cg): group g's channels of x (T, D), pad zero rows before and after. */
static void pos_pad_groups(void *u, int64_t g0, int64_t g1, int th) {
    (void)th;
    const pos_job *j = u;
    const int64_t rows = j->T + j->K - 1;
    for (int64_t g = g0; g < g1; g++)
        for (int64_t r = 0; r < rows; r++) {
            float *d = j->xg + (g * rows + r) * j->cg;
            const int64_t t = r - j->pad;
            if (t >= 0 && t < j->T) memcpy(d, j->x + t * j->D + g * j->cg, (size_t)j->cg * sizeof(float));
            else memset(d, 0, (size_t)j->cg * sizeof(float));
        }
}

/* pc[:, g cg : (g + 1) cg] = gelu(conv of group g): one thread per group (the product inside
 * runs serially), so 16 small products (cg = 64 outputs) do not each split over the threads. */
static void pos_conv_groups(void *u, int64_t g0, int64_t g1, int th) {
    (void)th;
    const pos_job *j = u;
    const int64_t rows = j->T + j->K - 1;
    for (int64_t g = g0; g < g1; g++)
        j->status[g] = mer_packed_linear(j->pc + g * j->cg, j->D, j->xg + g * rows * j->cg, j->cg,
                                         j->T, j->pk[g], 0, MER_EPI_GELU);
}

static void add_rows(void *u, int64_t r0, int64_t r1, int th) {
    (void)th;
    const pos_job *j = u;
    float *x = (float *)j->x;
    for (int64_t i = r0 * j->D; i < r1 * j->D; i++) x[i] += j->pc[i];
}

/* The positional convolution: x (T, D) += gelu(conv(x^T))^T, "same" length (the first T
 * frames). Scratch: xg (D * (T + K - 1)), pc (T, D). */
static mer_status pos_conv(mer_speech_state *st, float *x, float *xg, float *pc, int64_t T, mer_precision prec) {
    const mer_speech_model *m = st->m;
    const double t0 = mer__now();
    const int64_t D = m->D, K = m->pos_k, G = m->pos_groups, cg = D / G;
    mer_status status[64], s = MER_OK;
    if (G > 64) return mer__err(MER_ERR_UNSUPPORTED, "%s: %lld positional-convolution groups (at most 64)",
                                m->dir, (long long)G);
    mer_packed *const *pk = prec == MER_PRECISION_BF16 && m->pos_pk16 ? m->pos_pk16 : m->pos_pk;
    pos_job j = {xg, pc, x, pk, status, T, D, cg, K, K / 2};
    mer__parallel_for(G, 1, pos_pad_groups, &j);
    mer__parallel_for(G, 1, pos_conv_groups, &j);
    for (int64_t g = 0; g < G && !s; g++) s = status[g];
    if (s) /* the message was set on the thread that failed */
        s = mer__err(s, "%s: positional convolution: %s", m->dir, mer_status_str(s));
    else
        mer__parallel_for(T, 16, add_rows, &j);
    prof_charge(&st->prof.pos_conv_s, &st->prof.pos_conv_flop, t0, 2.0 * (double)D * (double)(cg * K) * (double)T);
    return s;
}

/* Run the model on samples (n) and store hidden states [lf, ll] into out (ll-lf+1, T, D);
 * prec: BF16 runs the linear layers and feature convolutions in bfloat16, INT8 the same products
 * as W8A8 (ensure_precision done by the caller). */
static mer_status forward_ops(mer_speech_state *st, const float *samples, int64_t n, int32_t lf,
                              int32_t ll, mer_precision prec, float *out) {
    const mer_speech_model *m = st->m;
    const int slot = prec_slot(prec); /* the precision's packed weights */
    const int64_t T = mer_speech_frames(m, n);
    const int64_t D = m->D, I = m->I;
    const int64_t C = m->conv[m->n_conv - 1].cout;
    const size_t need = (size_t)arena_floats(m, n, T) * sizeof(float);
    if (st->arena.cap < need) {
        mer__arena_free(&st->arena);
        mer_status s = mer__arena_init(&st->arena, need);
        if (s) return s;
    }
    mer__arena_reset(&st->arena, 0);

    /* ---- feature encoder: ping-pong between two time-major buffers; the last layer writes
     * the features (T, C) before them, so the encoder can reuse their space ---- */
    int64_t sz_even = 0, sz_odd = 0, t = n;
    for (int i = 0; i < m->n_conv; i++) {
        t = (t - m->conv[i].k) / m->conv[i].stride + 1;
        int64_t sz = m->conv[i].cout * t;
        if (i % 2 == 0) sz_even = sz > sz_even ? sz : sz_even;
        else sz_odd = sz > sz_odd ? sz : sz_odd;
    }
    float *feat = mer__arena_f32(&st->arena, T * C);
    const size_t mark = mer__arena_mark(&st->arena);
    float *buf[2];
    buf[0] = mer__arena_f32(&st->arena, sz_even);
    buf[1] = sz_odd ? mer__arena_f32(&st->arena, sz_odd) : NULL;
    if (!feat || !buf[0] || (sz_odd && !buf[1]))
        return mer__err(MER_ERR_INTERNAL, "speech encoder: arena too small");
    mer_status s = feature_encoder(st, feat, buf, samples, n, slot);
    if (s) return s;
    /* the feature-encoder buffers are dead now: the encoder's are carved from their space */
    mer__arena_reset(&st->arena, mark);
    float *x = mer__arena_f32(&st->arena, T * D);
    float *xn = mer__arena_f32(&st->arena, T * D);
    /* q, k, v as three (T, D) blocks, or interleaved (T, 3D) rows by the fused packed product */
    float *qkv = mer__arena_f32(&st->arena, 3 * T * D);
    float *att = mer__arena_f32(&st->arena, T * D);
    float *hid = mer__arena_f32(&st->arena, T * I);
    float *pc = mer__arena_f32(&st->arena, T * D);
    float *xg = mer__arena_f32(&st->arena, D * (T + m->pos_k - 1));
    if (!x || !xn || !qkv || !att || !hid || !pc || !xg || !feat)
        return mer__err(MER_ERR_INTERNAL, "speech encoder: arena too small");

    /* ---- feature projection ---- */
    if (m->feat_proj_ln) mer__layernorm_fwd(feat, NULL, NULL, feat, m->fp_ln_g, m->fp_ln_b, T, C, m->eps);
    if ((s = linear(st, x, feat, m->p_fp[slot], T, 0, MER_EPI_NONE))) return s;

    /* ---- positional convolution ---- */
    if ((s = pos_conv(st, x, xg, pc, T, prec))) return s;

    if (!m->info.stable_layer_norm)
        mer__layernorm_fwd(x, NULL, NULL, x, m->enc_ln_g, m->enc_ln_b, T, D, m->eps);
    hb_seg seg = {0, T, out};
    return run_layers(st, x, xn, qkv, att, hid, T, &seg, 1, lf, ll, prec);
}

/* forward_ops, its wall time added to the profile's total */
static mer_status forward(mer_speech_state *st, const float *samples, int64_t n, int32_t lf,
                          int32_t ll, mer_precision prec, float *out) {
    const double t0 = mer__now();
    mer_status s = forward_ops(st, samples, n, lf, ll, prec, out);
    st->prof.total_s += mer__now() - t0;
    return s;
}

void mer_speech_normalize(float *x, int64_t n) {
    if (!x || n <= 0) return;
    double s = 0.0;
    for (int64_t i = 0; i < n; i++) s += x[i];
    const double mean = s / (double)n;
    double ss = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double d = x[i] - mean;
        ss += d * d;
    }
    const double inv = 1.0 / sqrt(ss / (double)n + 1e-7);
    for (int64_t i = 0; i < n; i++) x[i] = (float)((x[i] - mean) * inv);
}

static mer_status check_samples(const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return mer__err(MER_ERR_NUMERIC, "sample %lld is %g (audio must be finite)", (long long)i, x[i]);
    return MER_OK;
}

mer_status mer_speech_encode(mer_speech_state *s, const float *samples, int64_t n,
                             int32_t layer_first, int32_t layer_last, float *out) {
    if (!s || !samples || !out) return mer__err(MER_ERR_INVALID_ARG, "mer_speech_encode: NULL argument");
    const mer_speech_model *m = s->m;
    if (layer_first < 0 || layer_last < layer_first || layer_last > m->L)
        return mer__err(MER_ERR_INVALID_ARG, "hidden-state range %d..%d is outside 0..%lld", layer_first,
                        layer_last, (long long)m->L);
    if (mer_speech_frames(m, n) <= 0)
        return mer__err(MER_ERR_SHAPE, "%lld samples are too short for one frame of the speech encoder",
                        (long long)n);
    mer_status st = check_samples(samples, n);
    if (st) return st;
    memset(&s->prof, 0, sizeof s->prof);
    calls_set(s, s->par.progress, s->par.progress_user_data, s->par.abort, s->par.abort_user_data);
    const int threads = mer__threads_use(s->par.n_threads);
    st = forward(s, samples, n, layer_first, layer_last, s->par.precision, out);
    mer__threads_use(threads);
    return st;
}

static mer_status encode_batch(mer_speech_state *s, int32_t b, const float *const *samples, const int64_t *n,
                               int32_t layer_first, int32_t layer_last, mer_precision prec, float *const *outs);

mer_status mer_speech_encode_batch(mer_speech_state *s, int32_t b, const float *const *samples,
                                   const int64_t *n, int32_t layer_first, int32_t layer_last,
                                   float *const *outs) {
    if (!s) return mer__err(MER_ERR_INVALID_ARG, "mer_speech_encode_batch: NULL argument or no utterance");
    calls_set(s, s->par.progress, s->par.progress_user_data, s->par.abort, s->par.abort_user_data);
    const int threads = mer__threads_use(s->par.n_threads);
    mer_status st = encode_batch(s, b, samples, n, layer_first, layer_last, s->par.precision, outs);
    mer__threads_use(threads);
    return st;
}

/* mer_speech_encode_batch at the given precision (extraction passes its params' precision) */
static mer_status encode_batch(mer_speech_state *s, int32_t b, const float *const *samples, const int64_t *n,
                               int32_t layer_first, int32_t layer_last, mer_precision prec, float *const *outs) {
    if (!s || b < 1 || !samples || !n || !outs)
        return mer__err(MER_ERR_INVALID_ARG, "mer_speech_encode_batch: NULL argument or no utterance");
    const mer_speech_model *m = s->m;
    if (layer_first < 0 || layer_last < layer_first || layer_last > m->L)
        return mer__err(MER_ERR_INVALID_ARG, "hidden-state range %d..%d is outside 0..%lld", layer_first,
                        layer_last, (long long)m->L);
    const int64_t D = m->D, I = m->I;
    int64_t R = 0;
    mer_status st;
    for (int32_t i = 0; i < b; i++) {
        if (!samples[i] || !outs[i])
            return mer__err(MER_ERR_INVALID_ARG, "mer_speech_encode_batch: utterance %d: NULL buffer", (int)i);
        const int64_t T = mer_speech_frames(m, n[i]);
        if (T <= 0)
            return mer__err(MER_ERR_SHAPE, "utterance %d: %lld samples are too short for one frame of the speech encoder",
                            (int)i, (long long)n[i]);
        if ((st = check_samples(samples[i], n[i]))) {
            mer__err_prefix("utterance %d", (int)i);
            return st;
        }
        R += T;
    }
    int64_t need;
    if (!mer__mul_overflow(R, 6 * D + I, &need) || need > ((int64_t)1 << 36))
        return mer__err(MER_ERR_NOMEM, "a batch of %lld frames is too large", (long long)R);
    if ((st = ensure_precision(m, prec))) return st;
    memset(&s->prof, 0, sizeof s->prof);
    float *x = mer__alloc((size_t)(R * D) * sizeof(float));
    hb_seg *seg = calloc((size_t)b, sizeof *seg);
    if (!x || !seg) {
        mer__free(x);
        free(seg);
        return MER_ERR_NOMEM;
    }
    /* each utterance alone up to hidden state 0 (its feature encoder, projection and
     * positional convolution), stacked into x */
    int64_t t0 = 0;
    for (int32_t i = 0; i < b && !st; i++) {
        seg[i] = (hb_seg){t0, mer_speech_frames(m, n[i]), outs[i]};
        st = forward(s, samples[i], n[i], 0, 0, prec, x + t0 * D);
        t0 += seg[i].T;
    }
    /* the layers on all frames at once */
    const size_t bytes = (size_t)(R * (5 * D + I) + 16 * 64) * sizeof(float);
    if (!st && s->arena.cap < bytes) {
        mer__arena_free(&s->arena);
        st = mer__arena_init(&s->arena, bytes);
    }
    if (!st) {
        mer__arena_reset(&s->arena, 0);
        float *xn = mer__arena_f32(&s->arena, R * D), *qkv = mer__arena_f32(&s->arena, 3 * R * D);
        float *att = mer__arena_f32(&s->arena, R * D), *hid = mer__arena_f32(&s->arena, R * I);
        if (!xn || !qkv || !att || !hid) {
            st = mer__err(MER_ERR_INTERNAL, "speech encoder: arena too small");
        } else {
            const double t1 = mer__now();
            st = run_layers(s, x, xn, qkv, att, hid, R, seg, b, layer_first, layer_last, prec);
            s->prof.total_s += mer__now() - t1;
        }
    }
    mer__free(x);
    free(seg);
    return st;
}

/* ============================================================================================
 * Utterance features
 * ========================================================================================== */

mer_speech_params mer_speech_default_params(void) {
    mer_speech_params p;
    memset(&p, 0, sizeof p);
    p.layer_first = -1;
    p.layer_last = -1;
    p.combine = MER_SPEECH_STACK;
    p.normalize = -1;
    return p;
}

mer_speech_params mer_speech_mertools_params(void) {
    mer_speech_params p = mer_speech_default_params();
    p.layer_first = -4; /* resolved against L: the last four hidden states */
    p.layer_last = -1;
    p.combine = MER_SPEECH_SUM;
    p.pool_mean = 1;
    p.chunk_seconds = 10.0;
    return p;
}

/* One utterance's extraction plan: the resolved layer range, its chunks and the output shape. */
typedef struct {
    int64_t lf, ll, K;     /* hidden states lf..ll, K of them */
    int64_t n_chunks, clen, Tc, T; /* chunks of clen samples, Tc frames each; T = Tc n_chunks */
    int norm;
} extract_plan;

/* The checks mer_speech_extract makes before any work, and its plan. */
static mer_status extract_check_plan(const mer_speech_state *s, const float *samples, int64_t n,
                                     const mer_speech_params *p, extract_plan *pl) {
    const mer_speech_model *m = s->m;
    const int64_t L = m->L, D = m->D;
    /* layer range: negative indices count from the end (-1 = L), as Python does */
    int64_t lf = p->layer_first, ll = p->layer_last;
    if (lf < 0) lf = p->layer_first == -1 && p->layer_last == -1 ? 0 : L + 1 + lf;
    if (ll < 0) ll = L + 1 + ll;
    if (lf < 0 || ll > L || lf > ll)
        return mer__err(MER_ERR_INVALID_ARG, "hidden-state range %d..%d is outside 0..%lld",
                        p->layer_first, p->layer_last, (long long)L);
    mer_status ps = mer__precision_check(p->precision, "speech encoder");
    if (ps) return ps;
    if (n <= 0) return mer__err(MER_ERR_INVALID_ARG, "no audio samples (empty audio stream)");
    if (!samples) return mer__err(MER_ERR_INVALID_ARG, "mer_speech_extract: NULL samples");
    mer_status st = check_samples(samples, n);
    if (st) return st;
    float peak = 0.0f;
    if (mer_audio_is_silent(samples, n, &peak))
        return mer__err(MER_ERR_INVALID_ARG, "silent audio (%lld samples, peak %.3g): no speech to encode",
                        (long long)n, peak);
    const int64_t chunk = p->chunk_seconds > 0 ? (int64_t)llround(p->chunk_seconds * m->info.sample_rate) : 0;
    if (p->chunk_seconds > 0 && mer_speech_frames(m, chunk) <= 0)
        return mer__err(MER_ERR_INVALID_ARG, "chunk of %g s is too short for one frame", p->chunk_seconds);
    /* MERTools: only audio longer than one chunk is cut; the last piece is zero-padded */
    pl->n_chunks = chunk > 0 && n > chunk ? (n + chunk - 1) / chunk : 1;
    pl->clen = pl->n_chunks > 1 ? chunk : n;
    pl->Tc = mer_speech_frames(m, pl->clen);
    if (pl->Tc <= 0)
        return mer__err(MER_ERR_SHAPE, "audio of %lld samples (%.3f s) is too short for one frame of the speech encoder",
                        (long long)n, (double)n / m->info.sample_rate);
    pl->lf = lf;
    pl->ll = ll;
    pl->K = ll - lf + 1;
    pl->T = pl->Tc * pl->n_chunks;
    pl->norm = p->normalize < 0 ? m->info.do_normalize : p->normalize;
    int64_t tot;
    if (!mer__mul_overflow(pl->K, pl->T, &tot) || !mer__mul_overflow(tot, D, &tot) || tot > ((int64_t)1 << 40))
        return mer__err(MER_ERR_NOMEM, "audio of %lld samples needs too much memory for %lld hidden states",
                        (long long)n, (long long)pl->K);
    return MER_OK;
}

/* The encoder input of a planned utterance: normalized as a whole (if the checkpoint wants it),
 * zero-padded to n_chunks * clen samples. */
static float *extract_input(const extract_plan *pl, const float *samples, int64_t n) {
    float *x = mer__alloc((size_t)(pl->n_chunks * pl->clen) * sizeof(float));
    if (!x) return NULL;
    memcpy(x, samples, (size_t)n * sizeof(float));
    if (pl->norm) mer_speech_normalize(x, n); /* over the whole utterance, before chunking */
    memset(x + n, 0, (size_t)(pl->n_chunks * pl->clen - n) * sizeof(float));
    return x;
}

/* The feature being assembled from an utterance's chunks: layers combined, frames pooled. */
typedef struct {
    float *res;   /* (Kout, rows, D) */
    double *acc;  /* (Kout, D) frame sums when pooling */
    float *frame; /* (D) */
} extract_acc;

static void extract_acc_free(extract_acc *a) {
    free(a->res);
    free(a->acc);
    free(a->frame);
    memset(a, 0, sizeof *a);
}

static mer_status extract_acc_init(extract_acc *a, const extract_plan *pl, const mer_speech_params *p, int64_t D) {
    const int64_t Kout = p->combine == MER_SPEECH_STACK ? pl->K : 1;
    const int64_t rows = p->pool_mean ? 1 : pl->T;
    a->res = calloc((size_t)(Kout * rows * D), sizeof(float));
    a->acc = p->pool_mean ? calloc((size_t)(Kout * D), sizeof(double)) : NULL;
    a->frame = malloc((size_t)D * sizeof(float));
    if (!a->res || !a->frame || (p->pool_mean && !a->acc)) {
        extract_acc_free(a);
        return mer__err(MER_ERR_NOMEM, "out of memory for the features");
    }
    return MER_OK;
}

/* Chunk c's hidden states hs (K, Tc, D) into the feature: stacked, or summed / averaged over
 * the K layers; accumulated over frames when pooling. */
static void extract_acc_chunk(extract_acc *a, const extract_plan *pl, const mer_speech_params *p, int64_t D,
                              int64_t c, const float *hs) {
    const int64_t K = pl->K, Tc = pl->Tc, T = pl->T;
    const int64_t Kout = p->combine == MER_SPEECH_STACK ? K : 1;
    const float kdiv = p->combine == MER_SPEECH_MEAN ? 1.0f / (float)K : 1.0f;
    for (int64_t kk = 0; kk < Kout; kk++) {
        for (int64_t tt = 0; tt < Tc; tt++) {
            /* frame (D): hidden state kk, or the sum/mean of all K */
            float *dst = p->pool_mean ? a->frame : a->res + (kk * T + c * Tc + tt) * D;
            if (p->combine == MER_SPEECH_STACK) {
                memcpy(dst, hs + (kk * Tc + tt) * D, (size_t)D * sizeof(float));
            } else {
                memcpy(dst, hs + tt * D, (size_t)D * sizeof(float));
                for (int64_t j = 1; j < K; j++) {
                    const float *h = hs + (j * Tc + tt) * D;
                    for (int64_t d = 0; d < D; d++) dst[d] += h[d];
                }
                if (kdiv != 1.0f)
                    for (int64_t d = 0; d < D; d++) dst[d] *= kdiv;
            }
            if (p->pool_mean)
                for (int64_t d = 0; d < D; d++) a->acc[kk * D + d] += dst[d];
        }
    }
}

/* The finished feature: pooled means, shape; a->res handed to *out. */
static void extract_acc_finish(extract_acc *a, const extract_plan *pl, const mer_speech_params *p, int64_t D,
                               float **out, int32_t *ndim, int64_t shape[3]) {
    const int64_t K = pl->K, T = pl->T;
    const int64_t Kout = p->combine == MER_SPEECH_STACK ? K : 1;
    if (p->pool_mean)
        for (int64_t i = 0; i < Kout * D; i++) a->res[i] = (float)(a->acc[i] / (double)T);
    if (p->combine == MER_SPEECH_STACK) {
        shape[0] = K;
        if (p->pool_mean) {
            shape[1] = D;
            *ndim = 2;
        } else {
            shape[1] = T;
            shape[2] = D;
            *ndim = 3;
        }
    } else if (p->pool_mean) {
        shape[0] = D;
        *ndim = 1;
    } else {
        shape[0] = T;
        shape[1] = D;
        *ndim = 2;
    }
    *out = a->res;
    a->res = NULL;
}

mer_status mer_speech_extract(mer_speech_state *s, const float *samples, int64_t n,
                              const mer_speech_params *p, float **out, int32_t *ndim,
                              int64_t shape[3]) {
    if (!s || !p || !out || !ndim || !shape || (n > 0 && !samples))
        return mer__err(MER_ERR_INVALID_ARG, "mer_speech_extract: NULL argument");
    *out = NULL;
    const int64_t D = s->m->D;
    extract_plan pl;
    mer_status st = extract_check_plan(s, samples, n, p, &pl);
    if (st || (st = ensure_precision(s->m, p->precision))) return st;
    float *x = extract_input(&pl, samples, n);
    float *hs = mer__alloc((size_t)(pl.K * pl.Tc * D) * sizeof(float));
    extract_acc a = {0};
    int threads = -1; /* the calling thread's count before this call, once changed */
    if (!x || !hs) {
        st = MER_ERR_NOMEM;
        goto done;
    }
    memset(&s->prof, 0, sizeof s->prof);
    if ((st = extract_acc_init(&a, &pl, p, D))) goto done;
    /* this call's abort reaches the layers; its progress counts chunks */
    calls_set(s, NULL, NULL, p->abort, p->abort_user_data);
    threads = mer__threads_use(p->n_threads);
    for (int64_t c = 0; c < pl.n_chunks; c++) {
        if ((st = mer__abort_check(p->abort, p->abort_user_data, "speech encoder"))) goto done;
        st = forward(s, x + c * pl.clen, pl.clen, (int32_t)pl.lf, (int32_t)pl.ll, p->precision, hs);
        if (st) goto done;
        extract_acc_chunk(&a, &pl, p, D, c, hs);
        if (p->progress) p->progress(c + 1, pl.n_chunks, p->progress_user_data);
    }
    extract_acc_finish(&a, &pl, p, D, out, ndim, shape);
    st = MER_OK;
done:
    if (threads >= 0) mer__threads_use(threads);
    mer__free(x);
    mer__free(hs);
    extract_acc_free(&a);
    return st;
}

mer_status mer_speech_extract_batch(mer_speech_state *s, int32_t b, const float *const *samples,
                                    const int64_t *n, const mer_speech_params *p, mer_speech_feature *outs) {
    if (!s || !p || b < 1 || !samples || !n || !outs)
        return mer__err(MER_ERR_INVALID_ARG, "mer_speech_extract_batch: NULL argument or no utterance");
    const int64_t D = s->m->D;
    for (int32_t i = 0; i < b; i++) memset(&outs[i], 0, sizeof outs[i]);
    extract_plan *pl = calloc((size_t)b, sizeof *pl);
    float **x = calloc((size_t)b, sizeof *x);
    extract_acc *a = calloc((size_t)b, sizeof *a);
    mer_status st = pl && x && a ? MER_OK : mer__err(MER_ERR_NOMEM, "out of memory for a batch of %d utterances", (int)b);
    if (!st) st = ensure_precision(s->m, p->precision); /* a model-wide failure is every utterance's */
    /* each utterance's own checks; a failing one is reported in its slot and left out */
    int64_t n_pieces = 0, hs_floats = 0;
    for (int32_t i = 0; i < b && !st; i++) {
        mer_status si = extract_check_plan(s, samples[i], n[i], p, &pl[i]);
        if (!si && !(x[i] = extract_input(&pl[i], samples[i], n[i]))) si = mer__err(MER_ERR_NOMEM, "out of memory for the audio");
        if (!si) si = extract_acc_init(&a[i], &pl[i], p, D);
        if (si) {
            outs[i].status = si;
            mer__err_copy(outs[i].error, sizeof outs[i].error);
            continue;
        }
        n_pieces += pl[i].n_chunks;
        hs_floats += pl[i].n_chunks * pl[i].K * pl[i].Tc * D;
    }
    const float **px = NULL;
    int64_t *pn = NULL;
    float **po = NULL, *hs = NULL;
    if (!st && n_pieces > 0) {
        if (n_pieces > INT32_MAX) {
            st = mer__err(MER_ERR_NOMEM, "a batch of %lld chunks is too large", (long long)n_pieces);
        } else {
            px = malloc((size_t)n_pieces * sizeof *px);
            pn = malloc((size_t)n_pieces * sizeof *pn);
            po = malloc((size_t)n_pieces * sizeof *po);
            hs = mer__alloc((size_t)hs_floats * sizeof(float));
            if (!px || !pn || !po || !hs) st = mer__err(MER_ERR_NOMEM, "out of memory for a batch of %lld chunks", (long long)n_pieces);
        }
    }
    /* every chunk of every planned utterance through one batched forward; the layer range is
     * the same for all (one params) */
    int32_t lf = 0, ll = 0;
    if (!st && n_pieces > 0) {
        int64_t k = 0, off = 0;
        for (int32_t i = 0; i < b; i++) {
            if (outs[i].status) continue;
            lf = (int32_t)pl[i].lf;
            ll = (int32_t)pl[i].ll;
            for (int64_t c = 0; c < pl[i].n_chunks; c++, k++) {
                px[k] = x[i] + c * pl[i].clen;
                pn[k] = pl[i].clen;
                po[k] = hs + off;
                off += pl[i].K * pl[i].Tc * D;
            }
        }
        calls_set(s, NULL, NULL, p->abort, p->abort_user_data);
        const int threads = mer__threads_use(p->n_threads);
        st = encode_batch(s, (int32_t)n_pieces, px, pn, lf, ll, p->precision, po);
        mer__threads_use(threads);
    }
    if (!st && n_pieces > 0) {
        int64_t k = 0;
        for (int32_t i = 0; i < b; i++) {
            if (outs[i].status) continue;
            for (int64_t c = 0; c < pl[i].n_chunks; c++, k++) extract_acc_chunk(&a[i], &pl[i], p, D, c, po[k]);
            extract_acc_finish(&a[i], &pl[i], p, D, &outs[i].data, &outs[i].ndim, outs[i].shape);
        }
        if (p->progress) p->progress(b, b, p->progress_user_data);
    }
    if (st) /* a failure of the batch as a whole: no utterance has a result */
        for (int32_t i = 0; i < b; i++) {
            free(outs[i].data);
            outs[i].data = NULL;
            if (!outs[i].status) {
                outs[i].status = st;
                mer__err_copy(outs[i].error, sizeof outs[i].error);
            }
        }
    for (int32_t i = 0; i < b && x; i++) mer__free(x[i]);
    for (int32_t i = 0; i < b && a; i++) extract_acc_free(&a[i]);
    free(pl);
    free(x);
    free(a);
    free(px);
    free(pn);
    free(po);
    mer__free(hs);
    return st;
}

void mer_speech_state_profile(const mer_speech_state *s, mer_speech_profile *out) {
    if (!out) return;
    memset(out, 0, sizeof *out);
    if (!s) return;
    *out = s->prof;
    /* what the op helpers did not charge */
    const double ops = out->feature_s + out->linear_s + out->attention_s + out->pos_conv_s;
    out->other_s = out->total_s > ops ? out->total_s - ops : 0.0;
}
