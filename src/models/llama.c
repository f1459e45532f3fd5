/*
 * llama.c -- the decoder-only families on one code path: LLaMA / LLaMA-2 / LLaMA-3
 * (modeling_llama.py), Qwen2 (modeling_qwen2.py: q/k/v biases), Baichuan-7B / Baichuan2-7B
 * (their modeling_baichuan.py: fused W_pack, rotary) and Baichuan-13B / Baichuan2-13B (W_pack,
 * ALiBi, no rotary).
 *
 *   x = embed_tokens[ids]                                              -> hidden state 0
 *   per layer:  x += o_proj(attn(rope(q), rope(k), v; causal [+ ALiBi]))   (on RMSNorm(x))
 *               x += down(silu(gate(h)) * up(h)),  h = RMSNorm(x)          -> hidden state i
 *   the last state is norm(x) (transformers appends it after the final RMSNorm)
 * Rotary is rotate_half style (the HF layout, not interleaved): for i < dh/2,
 * q'[i] = q[i] cos - q[i + dh/2] sin, q'[i + dh/2] = q[i + dh/2] cos + q[i] sin, with angle
 * pos * inv_freq[i], inv_freq = 1 / theta^(2i / dh), rescaled by rope_scaling (linear: pos /
 * factor; llama3: the low/high frequency bands of _compute_llama3_parameters). Positions are
 * 0..T-1 whatever the padding (transformers' default position_ids). Grouped-query attention:
 * head h reads kv head h / (H / KVH). ALiBi slopes follow Baichuan-13B's _get_interleave.
 */
#include "text_internal.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* Baichuan-13B's _get_interleave(n): slopes of n heads (n not a power of 2: the power-of-2
 * slopes of the closest smaller power, then every other slope of twice that). */
static void interleave(double *out, int n) {
    double l2 = log2((double)n);
    if (l2 == floor(l2)) {
        double start = pow(2.0, -pow(2.0, -(l2 - 3)));
        for (int i = 0; i < n; i++) out[i] = start * pow(start, i);
        return;
    }
    int c = 1 << (int)floor(l2);
    interleave(out, c);
    double tmp[2 * 1024];
    interleave(tmp, 2 * c);
    for (int i = 0; i < n - c; i++) out[c + i] = tmp[2 * i];
}

/* Rotary or ALiBi for a baichuan checkpoint, from its files (mer.h explains the order). */
static mer_status baichuan_style(const mer_text_model *m, const mer_json *j, const char *path, int *alibi) {
    const char *pe = NULL;
    mer_status s;
    if ((s = mer_json_string_or(j, "position_embedding_type", NULL, &pe)) != MER_OK) return s;
    if (pe) {
        if (!strcmp(pe, "alibi")) *alibi = 1;
        else if (!strcmp(pe, "rope") || !strcmp(pe, "rotary")) *alibi = 0;
        else return mer__err(MER_ERR_UNSUPPORTED, "%s: position_embedding_type \"%s\" (want \"alibi\" or \"rope\")", path, pe);
        return MER_OK;
    }
    const char *arch = NULL;
    if ((s = mer_json_string_or(j, "architectures.0", "", &arch)) != MER_OK) mer_clear_error();
    if (arch && !strcmp(arch, "BaiChuanForCausalLM")) { /* Baichuan-7B's own class name */
        *alibi = 0;
        return MER_OK;
    }
    char mp[MER_PATH_CAP];
    snprintf(mp, sizeof mp, "%s/modeling_baichuan.py", m->dir);
    FILE *f = fopen(mp, "rb");
    if (f) {
        int has_alibi = 0, has_rope = 0;
        char line[4096];
        while (fgets(line, sizeof line, f)) {
            if (strstr(line, "alibi")) has_alibi = 1;
            if (strstr(line, "RotaryEmbedding") || strstr(line, "rotary_emb")) has_rope = 1;
        }
        fclose(f);
        if (has_alibi != has_rope) {
            *alibi = has_alibi;
            return MER_OK;
        }
    }
    return mer__err(MER_ERR_UNSUPPORTED,
                    "%s: cannot tell a rotary Baichuan (Baichuan-7B, Baichuan2-7B) from an ALiBi one (Baichuan-13B, "
                    "Baichuan2-13B): no modeling_baichuan.py that says; add \"position_embedding_type\": \"alibi\" or "
                    "\"rope\" to config.json",
                    path);
}

static mer_status read_rope(mer_text_model *m, const mer_json *j, const char *path) {
    const mer_text_info *c = &m->info;
    const int64_t half = c->head_dim / 2;
    double theta;
    mer_status s;
    if ((s = mer_json_double_or(j, "rope_theta", 10000.0, &theta)) != MER_OK) return s;
    if (!(theta > 1.0)) return mer__err(MER_ERR_FORMAT, "%s: rope_theta %g must be > 1", path, theta);
    m->inv_freq = mer__alloc((size_t)half * sizeof(float));
    if (!m->inv_freq) return MER_ERR_NOMEM;
    for (int64_t i = 0; i < half; i++)
        m->inv_freq[i] = (float)(1.0 / pow(theta, (double)(float)((double)(2 * i) / (double)c->head_dim)));
    m->rope_factor = 1.0f;
    if (!mer_json_has(j, "rope_scaling")) return MER_OK;
    const char *kind = NULL;
    if ((s = mer_json_string_or(j, "rope_scaling.rope_type", NULL, &kind)) != MER_OK) return s;
    if (!kind && (s = mer_json_string_or(j, "rope_scaling.type", "default", &kind)) != MER_OK) return s;
    double factor;
    if (!strcmp(kind, "default")) return MER_OK;
    if ((s = mer_json_get_double(j, "rope_scaling.factor", &factor)) != MER_OK) return s;
    if (!(factor > 0)) return mer__err(MER_ERR_FORMAT, "%s: rope_scaling.factor %g must be > 0", path, factor);
    if (!strcmp(kind, "linear")) {
        m->rope_factor = (float)factor;
        return MER_OK;
    }
    if (!strcmp(kind, "llama3")) {
        double lo, hi, old;
        if ((s = mer_json_get_double(j, "rope_scaling.low_freq_factor", &lo)) != MER_OK ||
            (s = mer_json_get_double(j, "rope_scaling.high_freq_factor", &hi)) != MER_OK ||
            (s = mer_json_get_double(j, "rope_scaling.original_max_position_embeddings", &old)) != MER_OK)
            return s;
        if (!(hi > lo) || !(lo > 0) || !(old > 0))
            return mer__err(MER_ERR_FORMAT, "%s: rope_scaling llama3 needs high_freq_factor > low_freq_factor > 0", path);
        const double lo_wl = old / lo, hi_wl = old / hi;
        for (int64_t i = 0; i < half; i++) {
            const double f = m->inv_freq[i], wl = 2 * M_PI / f;
            double g = wl > lo_wl ? f / factor : f;
            if (!(wl < hi_wl) && !(wl > lo_wl)) {
                const double sm = (old / wl - lo) / (hi - lo);
                g = (1 - sm) * g / factor + sm * g;
            }
            m->inv_freq[i] = (float)g;
        }
        return MER_OK;
    }
    return mer__err(MER_ERR_UNSUPPORTED, "%s: rope_scaling type \"%s\" (supported: linear, llama3)", path, kind);
}

mer_status mer__llama_load(mer_text_model *m, const mer_json *j, const char *path) {
    mer_text_info *c = &m->info;
    const int baichuan = !strcmp(c->model_type, "baichuan");
    c->arch = baichuan ? MER_TEXT_BAICHUAN : MER_TEXT_LLAMA;
    mer_status s;
    /* LlamaConfig's defaults */
    if ((s = mer__text_cfg_common(m, j, path, 4096, 32, 11008, 32, 32000)) != MER_OK ||
        (s = mer__text_cfg_int(j, path, "num_key_value_heads", c->n_heads, 1, 1024, &c->n_kv_heads)) != MER_OK ||
        (s = mer__text_cfg_int(j, path, "pad_token_id", -1, -1, 1 << 24, &c->pad_token_id)) != MER_OK)
        return s;
    int32_t mp = 0;
    if ((s = mer__text_cfg_int(j, path, "max_position_embeddings", 0, 0, 1 << 24, &mp)) != MER_OK) return s;
    if (!mp && (s = mer__text_cfg_int(j, path, "model_max_length", 4096, 1, 1 << 24, &mp)) != MER_OK) return s;
    c->max_positions = mp;
    if (c->hidden_size % c->n_heads || c->n_heads % c->n_kv_heads || (c->hidden_size / c->n_heads) % 2)
        return mer__err(MER_ERR_FORMAT, "%s: hidden_size %d, %d heads, %d kv heads do not divide into even heads", path,
                        c->hidden_size, c->n_heads, c->n_kv_heads);
    if (baichuan && c->n_kv_heads != c->n_heads)
        return mer__err(MER_ERR_FORMAT, "%s: Baichuan's W_pack has no grouped-query attention", path);
    c->head_dim = c->hidden_size / c->n_heads;
    const char *act;
    if ((s = mer_json_string_or(j, "hidden_act", "silu", &act)) != MER_OK) return s;
    if (strcmp(act, "silu") != 0)
        return mer__err(MER_ERR_UNSUPPORTED, "%s: hidden_act \"%s\" (supported: silu)", path, act);
    double eps;
    if ((s = mer_json_double_or(j, "rms_norm_eps", 1e-6, &eps)) != MER_OK) return s;
    m->eps = (float)eps;
    if (!strcmp(c->model_type, "qwen2")) {
        int sw = 0;
        if ((s = mer_json_bool_or(j, "use_sliding_window", 0, &sw)) != MER_OK) return s;
        if (sw) return mer__err(MER_ERR_UNSUPPORTED, "%s: use_sliding_window = true is not supported", path);
    }
    if (baichuan && (s = baichuan_style(m, j, path, &c->alibi)) != MER_OK) return s;
    if (c->alibi) {
        if (c->n_heads > 1024) return mer__err(MER_ERR_FORMAT, "%s: too many heads for ALiBi", path);
        double sl[1024];
        interleave(sl, c->n_heads);
        m->slopes = mer__alloc((size_t)c->n_heads * sizeof(float));
        if (!m->slopes) return MER_ERR_NOMEM;
        for (int i = 0; i < c->n_heads; i++) m->slopes[i] = (float)sl[i];
    } else if ((s = read_rope(m, j, path)) != MER_OK) {
        return s;
    }

    const int64_t D = c->hidden_size, I = c->intermediate_size, KV = (int64_t)c->n_kv_heads * c->head_dim;
    char n[256];
    mer_safetensors_entry e;
#define NAME(...) (snprintf(n, sizeof n, __VA_ARGS__), n)
    /* LlamaForCausalLM keeps the model under "model."; a bare LlamaModel at the top */
    const char *pre = mer_safetensors_find(m->st, "model.embed_tokens.weight", &e) == MER_OK ? "model." : "";
    mer_clear_error();
    if ((s = mer__text_weight(m, NAME("%sembed_tokens.weight", pre), c->vocab_size, D, &m->emb)) != MER_OK ||
        (s = mer__text_f32(m, NAME("%snorm.weight", pre), 1, D, 0, &m->norm_w)) != MER_OK)
        return s;
    m->layers = mer__calloc((size_t)c->n_layers, sizeof *m->layers);
    if (!m->layers) return MER_ERR_NOMEM;
    for (int32_t l = 0; l < c->n_layers; l++) {
        mer__text_layer *L = &m->layers[l];
        char lp[128];
        snprintf(lp, sizeof lp, "%slayers.%d.", pre, (int)l);
        if (baichuan) {
            mer__tw pack;
            if ((s = mer__text_weight(m, NAME("%sself_attn.W_pack.weight", lp), 3 * D, D, &pack)) != MER_OK) return s;
            L->q = mer__tw_rows(&pack, 0, D);
            L->k = mer__tw_rows(&pack, D, D);
            L->v = mer__tw_rows(&pack, 2 * D, D);
        } else {
            if ((s = mer__text_weight(m, NAME("%sself_attn.q_proj.weight", lp), D, D, &L->q)) != MER_OK ||
                (s = mer__text_weight(m, NAME("%sself_attn.k_proj.weight", lp), KV, D, &L->k)) != MER_OK ||
                (s = mer__text_weight(m, NAME("%sself_attn.v_proj.weight", lp), KV, D, &L->v)) != MER_OK)
                return s;
            /* biases: Qwen2 has them on q/k/v; a llama checkpoint with attention_bias too */
            if (mer_safetensors_find(m->st, NAME("%sself_attn.q_proj.bias", lp), &e) == MER_OK) {
                c->qkv_bias = 1;
                if ((s = mer__text_f32(m, n, 1, D, 0, &L->qb)) != MER_OK ||
                    (s = mer__text_f32(m, NAME("%sself_attn.k_proj.bias", lp), 1, KV, 0, &L->kb)) != MER_OK ||
                    (s = mer__text_f32(m, NAME("%sself_attn.v_proj.bias", lp), 1, KV, 0, &L->vb)) != MER_OK)
                    return s;
            } else if (!strcmp(c->model_type, "qwen2")) {
                return mer__err(MER_ERR_NOT_FOUND, "text checkpoint %s: Qwen2 tensor %s is missing", m->dir, n);
            }
            mer_clear_error();
        }
        if ((s = mer__text_weight(m, NAME("%sself_attn.o_proj.weight", lp), D, D, &L->o)) != MER_OK ||
            (s = mer__text_weight(m, NAME("%smlp.gate_proj.weight", lp), I, D, &L->ff1)) != MER_OK ||
            (s = mer__text_weight(m, NAME("%smlp.up_proj.weight", lp), I, D, &L->ff3)) != MER_OK ||
            (s = mer__text_weight(m, NAME("%smlp.down_proj.weight", lp), D, I, &L->ff2)) != MER_OK ||
            (s = mer__text_f32(m, NAME("%sinput_layernorm.weight", lp), 1, D, 0, &L->ln1_w)) != MER_OK ||
            (s = mer__text_f32(m, NAME("%spost_attention_layernorm.weight", lp), 1, D, 0, &L->ln2_w)) != MER_OK)
            return s;
    }
    if ((s = mer__text_no_extra_layer(m, NAME("%slayers.%d.input_layernorm.weight", pre, (int)c->n_layers))) != MER_OK)
        return s;
#undef NAME
    c->n_params = (int64_t)c->vocab_size * D + D +
                  (int64_t)c->n_layers * (2 * D * D + 2 * D * KV + 3 * D * I + 2 * D + (c->qkv_bias ? D + 2 * KV : 0));
    return MER_OK;
}

/* ---- forward ------------------------------------------------------------------------------- */

typedef struct {
    float *y;
    const float *x, *w;
    int64_t D;
    float eps;
} rms_job;

/* ref: LlamaRMSNorm: w * (x * rsqrt(mean(x^2) + eps)) in float32 */
static void rms_rows(void *u, int64_t r0, int64_t r1, int t) {
    (void)t;
    const rms_job *j = u;
    for (int64_t r = r0; r < r1; r++) {
        const float *x = j->x + r * j->D;
        float *y = j->y + r * j->D;
        double ss = 0;
        for (int64_t i = 0; i < j->D; i++) ss += (double)x[i] * x[i];
        const float rs = 1.0f / sqrtf((float)(ss / (double)j->D) + j->eps);
        for (int64_t i = 0; i < j->D; i++) y[i] = j->w[i] * (x[i] * rs);
    }
}

static void rms_norm(float *y, const float *x, const float *w, int64_t R, int64_t D, float eps) {
    rms_job j = {y, x, w, D, eps};
    mer__parallel_for(R, 8, rms_rows, &j);
}

typedef struct {
    float *qkv;
    int64_t ld, T, H, KVH, dh, koff;
    const float *inv_freq;
    float factor;
    const float *qb, *kb, *vb;
    int64_t D, KV;
} rope_job;

static void rope_vec(float *v, const float *cs, const float *sn, int64_t half) {
    for (int64_t i = 0; i < half; i++) {
        const float a = v[i], b = v[i + half];
        v[i] = a * cs[i] - b * sn[i];
        v[i + half] = b * cs[i] + a * sn[i];
    }
}

/* biases (Qwen2) and rotary on the q and k rows */
static void rope_rows(void *u, int64_t r0, int64_t r1, int t) {
    (void)t;
    const rope_job *j = u;
    const int64_t half = j->dh / 2;
    float cs[512], sn[512];
    for (int64_t r = r0; r < r1; r++) {
        float *row = j->qkv + r * j->ld;
        if (j->qb) {
            for (int64_t i = 0; i < j->D; i++) row[i] += j->qb[i];
            for (int64_t i = 0; i < j->KV; i++) row[j->koff + i] += j->kb[i];
            for (int64_t i = 0; i < j->KV; i++) row[j->koff + j->KV + i] += j->vb[i];
        }
        if (!j->inv_freq) continue;
        const float p = (float)(r % j->T) / j->factor;
        for (int64_t i = 0; i < half; i++) {
            const float a = p * j->inv_freq[i];
            cs[i] = (float)cos((double)a);
            sn[i] = (float)sin((double)a);
        }
        for (int64_t h = 0; h < j->H; h++) rope_vec(row + h * j->dh, cs, sn, half);
        for (int64_t h = 0; h < j->KVH; h++) rope_vec(row + j->koff + h * j->dh, cs, sn, half);
    }
}

typedef struct {
    float *g;
    const float *u;
    int64_t n;
} swiglu_job;

/* g = silu(g) * u. ref: torch.nn.functional.silu(gate) * up */
static void swiglu_rows(void *uu, int64_t r0, int64_t r1, int t) {
    (void)t;
    const swiglu_job *j = uu;
    for (int64_t r = r0; r < r1; r++) {
        float *g = j->g + r * j->n;
        const float *u = j->u + r * j->n;
        for (int64_t i = 0; i < j->n; i++) g[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
    }
}

mer_status mer__llama_forward(mer__text_scratch *s, const int32_t *ids, const uint8_t *mask,
                              int64_t B, int64_t T, int32_t first, int32_t last, float *out) {
    const mer_text_model *m = s->m;
    const mer_text_info *c = &m->info;
    const int64_t D = c->hidden_size, I = c->intermediate_size, H = c->n_heads, KVH = c->n_kv_heads;
    const int64_t dh = c->head_dim, KV = KVH * dh, LD = D + 2 * KV, R = B * T;
    if (dh / 2 > 512) return mer__err(MER_ERR_UNSUPPORTED, "text encoder: head_dim %lld > 1024", (long long)dh);
    float *x = s->x, *h = s->h, *qkv = s->qkv, *ao = s->ao, *f1 = s->f1, *f3 = s->f3;
    mer_status st;
    for (int64_t r = 0; r < R; r++) mer__tw_row(&m->emb, ids[r], x + r * D);
    int64_t k = 0;
    if (first == 0) memcpy(out + (k++) * R * D, x, (size_t)(R * D) * sizeof(float));
    for (int32_t l = 0; l < last; l++) {
        const mer__text_layer *L = &m->layers[l];
        if ((st = mer__text_layer_poll(s)) != MER_OK) return st;
        rms_norm(h, x, L->ln1_w, R, D, m->eps);
        if ((st = mer__text_qkv(s, L, R, h, D, qkv, LD)) != MER_OK) return st;
        rope_job rj = {qkv, LD, T, H, KVH, dh, D, c->alibi ? NULL : m->inv_freq, m->rope_factor,
                       L->qb, L->kb, L->vb, D, KV};
        mer__parallel_for(R, 8, rope_rows, &rj);
        mer__text_attention(s, qkv, LD, D, D + KV, ao, B, T, H, KVH, dh, 1, mask, c->alibi ? m->slopes : NULL);
        if ((st = mer__text_gemm(s, &L->o, R, ao, D, 1, x, D)) != MER_OK) return st;
        rms_norm(h, x, L->ln2_w, R, D, m->eps);
        if ((st = mer__text_gemm(s, &L->ff1, R, h, D, 0, f1, I)) != MER_OK ||
            (st = mer__text_gemm(s, &L->ff3, R, h, D, 0, f3, I)) != MER_OK)
            return st;
        swiglu_job sj = {f1, f3, I};
        mer__parallel_for(R, 4, swiglu_rows, &sj);
        if ((st = mer__text_gemm(s, &L->ff2, R, f1, I, 1, x, D)) != MER_OK) return st;
        if (l + 1 >= first) {
            float *o = out + (k++) * R * D;
            if (l + 1 == c->n_layers) rms_norm(o, x, m->norm_w, R, D, m->eps);
            else memcpy(o, x, (size_t)(R * D) * sizeof(float));
        }
        mer__text_layer_done(s, l + 1, last);
    }
    return MER_OK;
}
