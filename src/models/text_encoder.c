/*
 * text_encoder.c -- the text-encoder API (mer.h "Models: text encoders"): loading dispatch by
 * config.json, weights in any stored form (F32 / BF16 in place, F16 widened, mer's int8), the
 * products at the state's precision, the attention shared by BERT and the decoders, per-thread
 * scratch, the MERTools feature, and `mer quantize`.
 *
 * Products: every weight matrix goes through mer__text_gemm. At F32 precision an F32 weight is
 * one mer_sgemm; a BF16 or int8 weight is widened exactly to float32 a tile of rows at a time (a
 * few MB of scratch) and multiplied, so a 13B checkpoint never needs 52 GB of float32. BF16 and
 * INT8 precision run the shared packed products (mer_packed_linear: bfloat16 weights with rounded
 * activations, or W8A8 dynamic int8), packed once per model from whatever the checkpoint holds
 * (a mer quantize file's block-32 int8 is widened exactly, a matrix at a time, then repacked);
 * the file pages of a packed matrix are handed back (mer_safetensors_release), so a mapped
 * checkpoint is not held twice.
 *
 * Attention runs (sequence, head) pairs as one parallel loop, each task with its two serial
 * GEMMs on the calling thread (as clip_vit.c does): scores = q k^T * scale (+ ALiBi slope * key
 * position), future keys (causal) and padded keys at -inf, row softmax, times v. The ALiBi bias
 * uses the key position alone, as Baichuan-13B's _gen_alibi_mask does (softmax is invariant to
 * the per-row shift that distinguishes it from slope * (j - i)).
 */
#include "text_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- weights ------------------------------------------------------------------------------ */

mer_status mer__text_weight(mer_text_model *m, const char *name, int64_t rows, int64_t cols,
                            mer__tw *w) {
    memset(w, 0, sizeof *w);
    w->rows = rows;
    w->cols = cols;
    mer_safetensors_entry e;
    mer_status s = mer_safetensors_find(m->st, name, &e);
    if (s != MER_OK) {
        mer__err_prefix("text checkpoint %s", m->dir);
        return s;
    }
    if (e.ndim != 2 || e.shape[0] != rows || e.shape[1] != cols)
        return mer__err(MER_ERR_SHAPE, "text checkpoint %s: tensor %s has shape (%lld%s%lld%s), expected (%lld, %lld)",
                        m->dir, name, (long long)(e.ndim > 0 ? e.shape[0] : 0), e.ndim > 1 ? ", " : "",
                        (long long)(e.ndim > 1 ? e.shape[1] : 0), e.ndim > 2 ? ", ..." : "",
                        (long long)rows, (long long)cols);
    if (e.dtype == MER_DTYPE_F32 || e.dtype == MER_DTYPE_BF16) {
        mer_tensor t;
        int64_t shape[2] = {rows, cols};
        if ((s = mer_safetensors_get(m->st, name, e.dtype, 2, shape, &t)) != MER_OK) return s;
        w->dtype = e.dtype;
        w->data = t.data;
        return MER_OK;
    }
    if (e.dtype == MER_DTYPE_F16) {
        const float *f;
        int64_t shape[2] = {rows, cols};
        if ((s = mer_safetensors_get_f32(m->st, name, 2, shape, &f)) != MER_OK) return s;
        w->dtype = MER_DTYPE_F32;
        w->data = f;
        return MER_OK;
    }
    if (e.dtype == MER_DTYPE_I8) {
        char sname[512];
        snprintf(sname, sizeof sname, "%s.scale", name);
        mer_safetensors_entry se;
        if ((s = mer_safetensors_find(m->st, sname, &se)) != MER_OK) {
            mer__err_prefix("text checkpoint %s: int8 tensor %s needs its scales", m->dir, name);
            return s;
        }
        int32_t block;
        if (se.ndim == 1 && se.shape[0] == rows) block = -1;
        else if (se.ndim == 2 && se.shape[0] == rows && se.shape[1] > 0 && cols % se.shape[1] == 0)
            block = (int32_t)(cols / se.shape[1]);
        else
            return mer__err(MER_ERR_SHAPE, "text checkpoint %s: %s does not fit int8 tensor %s (%lld, %lld)",
                            m->dir, sname, name, (long long)rows, (long long)cols);
        if (se.dtype != MER_DTYPE_F32 && se.dtype != MER_DTYPE_F16)
            return mer__err(MER_ERR_DTYPE, "text checkpoint %s: %s is %s (want F16 or F32)", m->dir, sname,
                            mer_dtype_name(se.dtype));
        mer_tensor t, ts;
        int64_t shape[2] = {rows, cols};
        if ((s = mer_safetensors_get(m->st, name, MER_DTYPE_I8, 2, shape, &t)) != MER_OK) return s;
        if ((s = mer_safetensors_get(m->st, sname, se.dtype, se.ndim, se.shape, &ts)) != MER_OK) return s;
        w->dtype = MER_DTYPE_I8;
        w->data = t.data;
        w->q8 = t.data;
        w->q8scale = ts.data;
        w->q8f16 = se.dtype == MER_DTYPE_F16;
        w->q8block = block;
        if (m->info.quantized == 0) m->info.quantized = block;
        return MER_OK;
    }
    return mer__err(MER_ERR_DTYPE, "text checkpoint %s: tensor %s has dtype %s (supported: F32, F16, BF16, I8 + scales)",
                    m->dir, name, mer_dtype_name(e.dtype));
}

mer_status mer__text_cfg_int(const mer_json *j, const char *path, const char *key, int64_t def, int64_t lo,
                             int64_t hi, int32_t *out) {
    int64_t v;
    mer_status s = mer_json_int_or(j, key, def, &v);
    if (s != MER_OK) return s;
    if (v < lo || v > hi)
        return mer__err(MER_ERR_FORMAT, "%s: %s = %lld is out of range [%lld, %lld]", path, key, (long long)v,
                        (long long)lo, (long long)hi);
    *out = (int32_t)v;
    return MER_OK;
}

mer_status mer__text_cfg_common(mer_text_model *m, const mer_json *j, const char *path, int32_t d, int32_t h,
                                int32_t i, int32_t l, int32_t v) {
    mer_text_info *c = &m->info;
    mer_status s;
    if ((s = mer__text_cfg_int(j, path, "hidden_size", d, 1, 1 << 16, &c->hidden_size)) != MER_OK ||
        (s = mer__text_cfg_int(j, path, "num_attention_heads", h, 1, 1024, &c->n_heads)) != MER_OK ||
        (s = mer__text_cfg_int(j, path, "intermediate_size", i, 1, 1 << 18, &c->intermediate_size)) != MER_OK ||
        (s = mer__text_cfg_int(j, path, "num_hidden_layers", l, 1, 1024, &c->n_layers)) != MER_OK ||
        (s = mer__text_cfg_int(j, path, "vocab_size", v, 1, 1 << 24, &c->vocab_size)) != MER_OK)
        return s;
    return MER_OK;
}

mer_status mer__text_no_extra_layer(mer_text_model *m, const char *name) {
    mer_safetensors_entry e;
    if (mer_safetensors_find(m->st, name, &e) == MER_OK)
        return mer__err(MER_ERR_SHAPE, "text checkpoint %s: has tensor %s but config.json says num_hidden_layers = %d",
                        m->dir, name, m->info.n_layers);
    mer_clear_error();
    return MER_OK;
}

mer_status mer__text_f32(mer_text_model *m, const char *name, int32_t ndim, int64_t d0, int64_t d1,
                         const float **out) {
    int64_t shape[2] = {d0, d1};
    mer_status s = mer_safetensors_get_f32(m->st, name, ndim, shape, out);
    if (s != MER_OK) mer__err_prefix("text checkpoint %s", m->dir);
    return s;
}

/* Row r of an int8 matrix widened: scale * q, per block (exact in float32). */
static void q8_row(const mer__tw *w, int64_t r, float *out) {
    const int64_t cols = w->cols, bs = w->q8block < 0 ? cols : w->q8block, nb = cols / bs;
    const int8_t *q = w->q8 + r * cols;
    for (int64_t b = 0; b < nb; b++) {
        const int64_t i = r * nb + b;
        const float sc = w->q8f16 ? mer__f16_to_f32(((const uint16_t *)w->q8scale)[i]) : ((const float *)w->q8scale)[i];
        for (int64_t k = b * bs; k < (b + 1) * bs; k++) out[k] = sc * (float)q[k];
    }
}

void mer__tw_row(const mer__tw *w, int64_t r, float *out) {
    const int64_t c = w->cols;
    if (w->dtype == MER_DTYPE_F32) memcpy(out, (const float *)w->data + r * c, (size_t)c * sizeof(float));
    else if (w->dtype == MER_DTYPE_BF16) mer_convert_to_f32(out, (const uint16_t *)w->data + r * c, MER_DTYPE_BF16, c);
    else q8_row(w, r, out);
}

mer__tw mer__tw_rows(const mer__tw *w, int64_t r0, int64_t n) {
    mer__tw v = *w;
    v.rows = n;
    v.pk[0] = v.pk[1] = NULL;
    const int64_t off = r0 * w->cols;
    if (w->dtype == MER_DTYPE_F32) v.data = (const float *)w->data + off;
    else if (w->dtype == MER_DTYPE_BF16) v.data = (const uint16_t *)w->data + off;
    else {
        const int64_t ns = r0 * (w->q8block < 0 ? 1 : w->cols / w->q8block);
        v.data = v.q8 = (const int8_t *)w->data + off;
        v.q8scale = w->q8f16 ? (const void *)((const uint16_t *)w->q8scale + ns) : (const void *)((const float *)w->q8scale + ns);
    }
    return v;
}

/* ---- products ----------------------------------------------------------------------------- */

typedef struct {
    const mer__tw *w;
    int64_t r0;
    float *tile;
} widen_job;

static void widen_rows(void *u, int64_t a, int64_t b, int t) {
    (void)t;
    const widen_job *j = u;
    const mer__tw *w = j->w;
    const int64_t c = w->cols;
    for (int64_t r = a; r < b; r++) {
        const int64_t rr = j->r0 + r;
        float *o = j->tile + r * c;
        if (w->dtype == MER_DTYPE_I8) q8_row(w, rr, o);
        else {
            /* bfloat16 is the top half of a float32: a shift, which the compiler vectorizes */
            const uint16_t *src16 = (const uint16_t *)w->data + rr * c;
            uint32_t *o32 = (uint32_t *)o;
#pragma omp simd
            for (int64_t i = 0; i < c; i++) o32[i] = (uint32_t)src16[i] << 16;
        }
    }
}

mer_status mer__text_gemm(mer__text_scratch *s, const mer__tw *w, int64_t M, const float *A,
                          int64_t lda, int accumulate, float *C, int64_t ldc) {
    const int64_t N = w->rows, K = w->cols;
    const float beta = accumulate ? 1.0f : 0.0f;
    const mer_packed *pk = s->precision == MER_PRECISION_BF16   ? w->pk[0]
                           : s->precision == MER_PRECISION_INT8 ? w->pk[1]
                                                                : NULL;
    if (pk) return mer_packed_linear(C, ldc, A, lda, M, pk, accumulate, MER_EPI_NONE);
    if (w->dtype == MER_DTYPE_F32) {
        mer_sgemm(0, 1, M, N, K, 1.0f, A, lda, (const float *)w->data, K, beta, C, ldc);
        return MER_OK;
    }
    /* widen a tile of rows at a time; the tile holds cap_tile floats */
    int64_t nc = s->cap_tile / K;
    if (nc < 1) return mer__err(MER_ERR_INTERNAL, "text encoder: weight tile too small");
    if (nc > N) nc = N;
    for (int64_t r0 = 0; r0 < N; r0 += nc) {
        const int64_t n = r0 + nc <= N ? nc : N - r0;
        widen_job j = {w, r0, s->tile};
        mer__parallel_for(n, 4, widen_rows, &j);
        mer_sgemm(0, 1, M, n, K, 1.0f, A, lda, s->tile, K, beta, C + r0, ldc);
    }
    return MER_OK;
}

typedef struct {
    float *y;
    const float *b;
    int64_t cols, ld;
    int gelu;
} tbias_job;

static void tbias_rows(void *u, int64_t r0, int64_t r1, int t) {
    (void)t;
    const tbias_job *j = u;
    for (int64_t r = r0; r < r1; r++) {
        float *y = j->y + r * j->ld;
        const float *b = j->b;
        if (b) {
#pragma omp simd
            for (int64_t i = 0; i < j->cols; i++) y[i] += b[i];
        }
        if (j->gelu) mer__gelu_fwd(y, y, j->cols);
    }
}

void mer__text_bias(float *y, const float *b, int64_t rows, int64_t cols, int64_t ld, int gelu) {
    tbias_job j = {y, b, cols, ld, gelu};
    mer__parallel_for(rows, 8, tbias_rows, &j);
}

mer_status mer__text_linear(mer__text_scratch *s, const mer__tw *w, int64_t M, const float *A,
                            int64_t lda, int accumulate, float *C, int64_t ldc, int gelu,
                            mer__range_fn done, void *user) {
    const mer_packed *pk = s->precision == MER_PRECISION_BF16   ? w->pk[0]
                           : s->precision == MER_PRECISION_INT8 ? w->pk[1]
                                                                : NULL;
    if (pk) /* the bias is in the packed copy */
        return mer__packed_linear_rows(C, ldc, A, lda, M, pk, accumulate, gelu ? MER_EPI_GELU : MER_EPI_NONE,
                                       done, user);
    mer_status st = mer__text_gemm(s, w, M, A, lda, accumulate, C, ldc);
    if (st != MER_OK) return st;
    if (w->bias || gelu) mer__text_bias(C, w->bias, M, w->rows, ldc, gelu);
    if (done) mer__parallel_for(M, 8, done, user);
    return MER_OK;
}

mer_status mer__text_qkv(mer__text_scratch *s, const mer__text_layer *L, int64_t M, const float *A,
                         int64_t lda, float *C, int64_t ldc) {
    const mer_packed *pk = s->precision == MER_PRECISION_BF16   ? L->qkv[0]
                           : s->precision == MER_PRECISION_INT8 ? L->qkv[1]
                                                                : NULL;
    if (pk) return mer_packed_linear(C, ldc, A, lda, M, pk, 0, MER_EPI_NONE);
    mer_status st;
    if ((st = mer__text_linear(s, &L->q, M, A, lda, 0, C, ldc, 0, NULL, NULL)) != MER_OK ||
        (st = mer__text_linear(s, &L->k, M, A, lda, 0, C + L->q.rows, ldc, 0, NULL, NULL)) != MER_OK)
        return st;
    return mer__text_linear(s, &L->v, M, A, lda, 0, C + L->q.rows + L->k.rows, ldc, 0, NULL, NULL);
}

/* ---- attention ---------------------------------------------------------------------------- */

typedef struct {
    const float *qkv;
    int64_t ld, koff, voff;
    float *out, *scores;
    int64_t T, H, KVH, dh;
    int causal;
    const uint8_t *kmask;
    const float *slopes;
    float scale;
} tattn_job;

static void tattn_tasks(void *u, int64_t t0, int64_t t1, int ti) {
    const tattn_job *j = u;
    const int64_t T = j->T, ld = j->ld, dh = j->dh, D = j->H * dh;
    float *S = j->scores + (int64_t)ti * T * T;
    for (int64_t task = t0; task < t1; task++) {
        const int64_t b = task / j->H, h = task % j->H, g = h / (j->H / j->KVH);
        const float *base = j->qkv + b * T * ld;
        const float *q = base + h * dh, *k = base + j->koff + g * dh, *v = base + j->voff + g * dh;
        mer_sgemm(0, 1, T, T, dh, j->scale, q, ld, k, ld, 0.0f, S, T);
        const uint8_t *km = j->kmask ? j->kmask + b * T : NULL;
        const float slope = j->slopes ? j->slopes[h] : 0.0f;
        for (int64_t i = 0; i < T; i++) {
            float *row = S + i * T;
            if (j->slopes)
                for (int64_t c = 0; c < T; c++) row[c] += slope * (float)c;
            if (j->causal)
                for (int64_t c = i + 1; c < T; c++) row[c] = -INFINITY;
            int any = 0;
            if (km) {
                for (int64_t c = 0; c < T; c++)
                    if (!km[c]) row[c] = -INFINITY;
                for (int64_t c = 0; c < (j->causal ? i + 1 : T); c++) any |= km[c];
            } else {
                any = 1;
            }
            if (any) mer__softmax_row(row, row, T);
            else memset(row, 0, (size_t)T * sizeof(float)); /* no key to attend: zeros */
        }
        mer_sgemm(0, 0, T, dh, T, 1.0f, S, T, v, ld, 0.0f, j->out + b * T * D + h * dh, D);
    }
}

void mer__text_attention(mer__text_scratch *s, const float *qkv, int64_t ld, int64_t koff,
                         int64_t voff, float *out, int64_t B, int64_t T, int64_t H, int64_t KVH,
                         int64_t dh, int causal, const uint8_t *kmask, const float *slopes) {
    tattn_job j = {qkv, ld, koff, voff, out, s->scores, T, H, KVH, dh, causal, kmask, slopes,
                   1.0f / sqrtf((float)dh)};
    mer__parallel_for(B * H, 1, tattn_tasks, &j);
}

/* ---- model -------------------------------------------------------------------------------- */

static mer__tw *layer_weights(mer__text_layer *L, int i) {
    mer__tw *ws[7] = {&L->q, &L->k, &L->v, &L->o, &L->ff1, &L->ff2, &L->ff3};
    return ws[i];
}

void mer_text_model_free(mer_text_model *m) {
    if (!m) return;
    mer_safetensors_free(m->st);
    if (m->layers)
        for (int32_t l = 0; l < m->info.n_layers; l++)
            for (int i = 0; i < 7; i++)
                for (int t = 0; t < 2; t++) mer_packed_free(layer_weights(&m->layers[l], i)->pk[t]);
    if (m->layers)
        for (int32_t l = 0; l < m->info.n_layers; l++)
            for (int t = 0; t < 2; t++) mer_packed_free(m->layers[l].qkv[t]);
    mer__free(m->layers);
    mer__free(m->inv_freq);
    mer__free(m->slopes);
    pthread_mutex_destroy(&m->mu);
    mer__free(m);
}

void mer_text_model_info(const mer_text_model *m, mer_text_info *info) {
    if (m && info) *info = m->info;
}

static mer_status model_load(mer_text_model **out, const char *dir);
static mer_status ensure_precision(const mer_text_model *cm, mer_precision p);

mer_text_model_params mer_text_model_default_params(void) {
    mer_text_model_params p;
    memset(&p, 0, sizeof p);
    p.precision = MER_PRECISION_F32;
    return p;
}

mer_status mer_text_model_load(mer_text_model **out, const char *dir, const mer_text_model_params *p) {
    if (!out || !dir) return mer__err(MER_ERR_INVALID_ARG, "mer_text_model_load: NULL argument");
    *out = NULL;
    const mer_text_model_params par = p ? *p : mer_text_model_default_params();
    mer_status s = mer__precision_check(par.precision, "text encoder");
    if (s || (s = model_load(out, dir))) return s;
    if ((s = ensure_precision(*out, par.precision))) {
        mer_text_model_free(*out);
        *out = NULL;
    }
    return s;
}

static mer_status model_load(mer_text_model **out, const char *dir) {
    mer_text_model *m = mer__calloc(1, sizeof *m);
    if (!m) return MER_ERR_NOMEM;
    pthread_mutex_init(&m->mu, NULL);
    snprintf(m->dir, sizeof m->dir, "%s", dir);
    char path[MER_PATH_CAP];
    snprintf(path, sizeof path, "%s/config.json", dir);
    mer_json *j = NULL;
    mer_status s = mer_json_load(&j, path);
    if (s != MER_OK) goto fail;
    const char *mt;
    if ((s = mer_json_get_string(j, "model_type", &mt)) != MER_OK) goto fail;
    snprintf(m->info.model_type, sizeof m->info.model_type, "%s", mt);
    int bert = !strcmp(mt, "bert") || !strcmp(mt, "roberta") || !strcmp(mt, "xlm-roberta");
    int dec = !strcmp(mt, "llama") || !strcmp(mt, "qwen2") || !strcmp(mt, "baichuan");
    if (!bert && !dec) {
        s = mer__err(MER_ERR_UNSUPPORTED, "%s: model_type \"%s\" is not a supported text encoder (bert, roberta, xlm-roberta, llama, qwen2, baichuan)",
                     path, mt);
        goto fail;
    }
    if ((s = mer_safetensors_open(&m->st, dir)) != MER_OK) goto fail;
    s = bert ? mer__bert_load(m, j, path) : mer__llama_load(m, j, path);
    if (s != MER_OK) goto fail;
    for (int64_t i = 0; i < mer_safetensors_count(m->st); i++) {
        mer_safetensors_entry e;
        if (mer_safetensors_entry_at(m->st, i, &e) == MER_OK) m->info.weight_bytes += (int64_t)e.nbytes;
    }
    mer_json_free(j);
    *out = m;
    return MER_OK;
fail:
    mer_json_free(j);
    mer_text_model_free(m);
    return s;
}

/* ---- packed weights (BF16 / INT8 precision) ---------------------------------------------- */

static void free_packed(mer_text_model *m, int t) {
    for (int32_t l = 0; l < m->info.n_layers; l++) {
        mer_packed_free(m->layers[l].qkv[t]);
        m->layers[l].qkv[t] = NULL;
    }
    for (int32_t l = 0; l < m->info.n_layers; l++)
        for (int i = 0; i < 7; i++) {
            mer__tw *w = layer_weights(&m->layers[l], i);
            mer_packed_free(w->pk[t]);
            w->pk[t] = NULL;
        }
}

/* Pack every layer matrix for precision t (0 BF16, 1 INT8). Called with m->mu held. */
static mer_status make_packed(mer_text_model *m, int t) {
    if (m->packed_ready[t]) return MER_OK;
    float *tmp = NULL;
    int64_t tmp_n = 0;
    mer_status s = MER_OK;
    for (int32_t l = 0; l < m->info.n_layers && s == MER_OK; l++) {
        mer__text_layer *L = &m->layers[l];
        for (int i = 0; i < 7 && s == MER_OK; i++) {
            mer__tw *w = layer_weights(L, i);
            if (!w->rows) continue;
            const void *src = w->data;
            mer_dtype dt = w->dtype;
            const int64_t n = w->rows * w->cols;
            if (dt == MER_DTYPE_I8) { /* exact widening; the packing requantizes per channel */
                if (n > tmp_n) {
                    mer__free(tmp);
                    tmp = mer__alloc((size_t)n * sizeof(float));
                    tmp_n = tmp ? n : 0;
                    if (!tmp) {
                        s = mer__err(MER_ERR_NOMEM, "text encoder: no memory to repack a %lld x %lld matrix",
                                     (long long)w->rows, (long long)w->cols);
                        break;
                    }
                }
                for (int64_t r = 0; r < w->rows; r++) q8_row(w, r, tmp + r * w->cols);
                src = tmp;
                dt = MER_DTYPE_F32;
            }
            /* int8: 7-bit weights, the faster AVX2 product; the text bar (MERTools feature at
             * cosine >= 0.999 against fp32) holds with them (docs/text.md) */
            s = t ? mer__packed_init_w7(&w->pk[t], src, dt, w->bias, w->rows, w->cols)
                  : mer_packed_init(&w->pk[t], src, dt, w->bias, w->rows, w->cols, MER_PACK_BF16);
            if (s == MER_OK) {
                /* the packed copy serves this precision; the file pages are re-read if F32 needs them */
                mer_safetensors_release(m->st, w->data, (size_t)n * mer_dtype_size(w->dtype));
                if (w->dtype == MER_DTYPE_I8)
                    mer_safetensors_release(m->st, w->q8scale,
                                            (size_t)(w->q8block < 0 ? w->rows : n / w->q8block) * (w->q8f16 ? 2 : 4));
            }
        }
        /* q | k | v as one matrix: one pass over x (one quantisation at INT8) and one parallel
         * region instead of three; kept apart when the shapes do not allow it */
        mer_packed *parts[3] = {L->q.pk[t], L->k.pk[t], L->v.pk[t]};
        if (s == MER_OK && parts[0] && parts[1] && parts[2]) {
            if (mer__packed_concat(&L->qkv[t], parts, 3) == MER_OK) {
                for (int i = 0; i < 3; i++) {
                    mer_packed_free(parts[i]);
                    layer_weights(L, i)->pk[t] = NULL;
                }
            } else {
                mer_clear_error();
            }
        }
    }
    mer__free(tmp);
    if (s != MER_OK) {
        mer__err_prefix("text checkpoint %s: %s weights", m->dir, t ? "int8" : "bfloat16");
        free_packed(m, t);
        return s;
    }
    m->packed_ready[t] = 1;
    return MER_OK;
}

/* ---- state -------------------------------------------------------------------------------- */

static void scratch_release(mer__text_scratch *s) {
    mer__free(s->x);
    mer__free(s->h);
    mer__free(s->qkv);
    mer__free(s->ao);
    mer__free(s->f1);
    mer__free(s->f3);
    mer__free(s->scores);
    mer__free(s->tile);
    mer__free(s->pos);
    s->x = s->h = s->qkv = s->ao = s->f1 = s->f3 = s->scores = s->tile = NULL;
    s->pos = NULL;
    s->cap_rows = s->cap_t = s->cap_threads = s->cap_tile = 0;
}

mer_status mer__text_reserve(mer__text_scratch *s, int64_t B, int64_t T) {
    const int64_t threads = mer__threads(), R = B * T;
    if (R <= s->cap_rows && T <= s->cap_t && threads <= s->cap_threads) return MER_OK;
    const mer_text_info *c = &s->m->info;
    int64_t rows = R > s->cap_rows ? R : s->cap_rows, tt = T > s->cap_t ? T : s->cap_t;
    int64_t th = threads > s->cap_threads ? threads : s->cap_threads;
    scratch_release(s);
    const int64_t D = c->hidden_size, I = c->intermediate_size;
    const int64_t QKV = D + 2 * (int64_t)c->n_kv_heads * c->head_dim;
    int64_t maxk = D > I ? D : I;
    /* tile: ~4M floats (16 MB), at least 16 rows of the widest matrix: each tile is two parallel
     * regions (widen, multiply), and on a busy machine every region's barrier can cost a time
     * slice, so fewer, larger tiles (1M floats made 43 tiles of an 11008-row matrix) */
    int64_t tile = (int64_t)1 << 22;
    if (tile < 16 * maxk) tile = 16 * maxk;
    if (rows > ((int64_t)1 << 24) || tt > ((int64_t)1 << 16))
        return mer__err(MER_ERR_NOMEM, "text encoder: batch of %lld tokens is too large", (long long)rows);
    s->x = mer__alloc((size_t)(rows * D) * sizeof(float));
    s->h = mer__alloc((size_t)(rows * D) * sizeof(float));
    s->qkv = mer__alloc((size_t)(rows * QKV) * sizeof(float));
    s->ao = mer__alloc((size_t)(rows * D) * sizeof(float));
    s->f1 = mer__alloc((size_t)(rows * I) * sizeof(float));
    s->f3 = mer__alloc((size_t)(rows * I) * sizeof(float));
    s->scores = mer__alloc((size_t)(th * tt * tt) * sizeof(float));
    s->tile = mer__alloc((size_t)tile * sizeof(float));
    s->pos = mer__alloc((size_t)rows * sizeof(int32_t));
    if (!s->x || !s->h || !s->qkv || !s->ao || !s->f1 || !s->f3 || !s->scores || !s->tile || !s->pos) {
        scratch_release(s);
        return mer__err(MER_ERR_NOMEM, "text encoder: no memory for a batch of %lld tokens", (long long)rows);
    }
    s->cap_rows = rows;
    s->cap_t = tt;
    s->cap_threads = th;
    s->cap_tile = tile;
    return MER_OK;
}

/* The packed copies of precision p exist on the model (made once: a guarded lazy cache). */
static mer_status ensure_precision(const mer_text_model *cm, mer_precision p) {
    mer_status st = mer__precision_check(p, "text encoder");
    if (st || p == MER_PRECISION_F32) return st;
    mer_text_model *m = (mer_text_model *)cm;
    pthread_mutex_lock(&m->mu);
    st = make_packed(m, p == MER_PRECISION_INT8);
    pthread_mutex_unlock(&m->mu);
    return st;
}

mer_text_state_params mer_text_state_default_params(void) {
    mer_text_state_params p;
    memset(&p, 0, sizeof p);
    p.precision = MER_PRECISION_F32;
    return p;
}

mer_status mer_text_state_init(mer_text_state **out, const mer_text_model *m, const mer_text_state_params *p) {
    if (!out || !m) return mer__err(MER_ERR_INVALID_ARG, "mer_text_state_init: NULL argument");
    *out = NULL;
    const mer_text_state_params par = p ? *p : mer_text_state_default_params();
    mer_status st = ensure_precision(m, par.precision);
    if (st) return st;
    mer_text_state *s = mer__calloc(1, sizeof *s);
    if (!s) return MER_ERR_NOMEM;
    s->sc.m = m;
    s->sc.precision = par.precision;
    s->par = par;
    *out = s;
    return MER_OK;
}

mer_status mer__text_layer_poll(const mer__text_scratch *s) {
    return mer__abort_check(s->abort, s->abort_user_data, "text encoder");
}

void mer__text_layer_done(const mer__text_scratch *s, int32_t done, int32_t last) {
    if (s->progress) s->progress(done, last, s->progress_user_data);
}

/* The callbacks of the call starting now: the state's (encode) or an extract params' abort,
 * whose progress counts sequences instead of layers. */
static void calls_set(mer__text_scratch *s, mer_progress_fn progress, void *progress_user_data,
                      mer_abort_fn abort_fn, void *abort_user_data) {
    s->progress = progress;
    s->progress_user_data = progress_user_data;
    s->abort = abort_fn;
    s->abort_user_data = abort_user_data;
}

void mer_text_state_free(mer_text_state *s) {
    if (!s) return;
    scratch_release(&s->sc);
    mer__free(s);
}

mer_status mer_text_state_set_precision(mer_text_state *s, mer_precision p) {
    if (!s) return mer__err(MER_ERR_INVALID_ARG, "mer_text_state_set_precision: NULL state");
    mer_status st = ensure_precision(s->sc.m, p);
    if (st) return st;
    s->par.precision = p;
    return MER_OK;
}

/* ---- encode ------------------------------------------------------------------------------- */

static mer_status encode(mer_text_state *s, const int32_t *ids, const uint8_t *mask, int32_t B, int32_t T,
                         int32_t layer_first, int32_t layer_last, float *out);

mer_status mer_text_encode(mer_text_state *s, const int32_t *ids, const uint8_t *mask, int32_t B,
                           int32_t T, int32_t layer_first, int32_t layer_last, float *out) {
    if (!s || !ids || !out) return mer__err(MER_ERR_INVALID_ARG, "mer_text_encode: NULL argument");
    s->sc.precision = s->par.precision;
    calls_set(&s->sc, s->par.progress, s->par.progress_user_data, s->par.abort, s->par.abort_user_data);
    const int threads = mer__threads_use(s->par.n_threads);
    mer_status st = encode(s, ids, mask, B, T, layer_first, layer_last, out);
    mer__threads_use(threads);
    return st;
}

static mer_status encode(mer_text_state *s, const int32_t *ids, const uint8_t *mask, int32_t B, int32_t T,
                         int32_t layer_first, int32_t layer_last, float *out) {
    const mer_text_info *c = &s->sc.m->info;
    if (B < 1 || T < 1) return mer__err(MER_ERR_SHAPE, "text encoder: empty batch (%d x %d tokens)", B, T);
    if (layer_first < 0 || layer_first > layer_last || layer_last > c->n_layers)
        return mer__err(MER_ERR_INVALID_ARG, "text encoder: hidden states %d..%d out of 0..%d", layer_first,
                        layer_last, c->n_layers);
    if (c->arch == MER_TEXT_BERT && T > c->max_positions)
        return mer__err(MER_ERR_SHAPE, "text encoder: %d tokens exceed the model's %d positions", T,
                        c->max_positions);
    for (int64_t i = 0; i < (int64_t)B * T; i++)
        if (ids[i] < 0 || ids[i] >= c->vocab_size)
            return mer__err(MER_ERR_INVALID_ARG, "text encoder: token id %d at %lld is outside the vocabulary (%d)",
                            ids[i], (long long)i, c->vocab_size);
    if (mask)
        for (int32_t b = 0; b < B; b++) {
            int any = 0;
            for (int32_t t = 0; t < T; t++) any |= mask[(int64_t)b * T + t] != 0;
            if (!any) return mer__err(MER_ERR_SHAPE, "text encoder: sequence %d of the batch has no real token", b);
        }
    mer_status st = mer__text_reserve(&s->sc, B, T);
    if (st != MER_OK) return st;
    return c->arch == MER_TEXT_BERT ? mer__bert_forward(&s->sc, ids, mask, B, T, layer_first, layer_last, out)
                                    : mer__llama_forward(&s->sc, ids, mask, B, T, layer_first, layer_last, out);
}

/* ---- features ----------------------------------------------------------------------------- */

mer_text_params mer_text_default_params(void) {
    mer_text_params p;
    memset(&p, 0, sizeof p);
    p.layer_first = p.layer_last = -1;
    p.combine = MER_SPEECH_STACK;
    p.precision = MER_PRECISION_F32;
    return p;
}

mer_text_params mer_text_mertools_params(void) {
    mer_text_params p = mer_text_default_params();
    p.layer_first = -4; /* resolved against the model: the last 4 (all when fewer) */
    p.layer_last = -1;
    p.combine = MER_SPEECH_SUM;
    p.pool_mean = 1;
    p.skip_lead = p.skip_trail = -1;
    return p;
}

mer_status mer_text_extract_ids(mer_text_state *s, const int32_t *ids, int64_t n,
                                const mer_text_params *p, float **out, int32_t *ndim,
                                int64_t shape[3]) {
    if (!s || !p || !out || !ndim || !shape || (n > 0 && !ids))
        return mer__err(MER_ERR_INVALID_ARG, "mer_text_extract_ids: NULL argument");
    *out = NULL;
    const mer_text_info *c = &s->sc.m->info;
    const int64_t D = c->hidden_size, L = c->n_layers;
    int32_t first = p->layer_first, last = p->layer_last;
    if (first == -1 && last == -1) {
        first = 0;
        last = (int32_t)L;
    } else if (first < 0 && last == -1) { /* -k: the last k states */
        first = (int32_t)(L + 1 + first);
        if (first < 0) first = 0;
        last = (int32_t)L;
    }
    if (first < 0 || first > last || last > L)
        return mer__err(MER_ERR_INVALID_ARG, "text features: hidden states %d..%d out of 0..%lld", first, last, (long long)L);
    mer_status st = ensure_precision(s->sc.m, p->precision);
    if (st != MER_OK) return st;
    const int64_t K = last - first + 1;
    int64_t lead = p->skip_lead > 0 ? p->skip_lead : 0, trail = p->skip_trail > 0 ? p->skip_trail : 0;
    if (lead + trail > n) lead = trail = 0;
    int64_t body = n - lead - trail;
    /* a sequence longer than BERT's positions keeps its special tokens and loses the text's end */
    const int32_t *use = ids;
    int32_t *cut = NULL;
    int64_t m = n;
    if (c->arch == MER_TEXT_BERT && n > c->max_positions) {
        m = c->max_positions;
        int64_t keep = m - lead - trail;
        if (keep < 0) return mer__err(MER_ERR_SHAPE, "text features: %d positions cannot hold the special tokens", c->max_positions);
        cut = malloc((size_t)m * sizeof(int32_t));
        if (!cut) return MER_ERR_NOMEM;
        memcpy(cut, ids, (size_t)(lead + keep) * sizeof(int32_t));
        memcpy(cut + lead + keep, ids + n - trail, (size_t)trail * sizeof(int32_t));
        MER_LOG_W("text features: %lld tokens exceed the model's %d positions; the last %lld text tokens are dropped",
                  (long long)n, c->max_positions, (long long)(n - m));
        use = cut;
        body = keep;
    }
    if (body <= 0) {
        free(cut);
        if (!p->pool_mean) return mer__err(MER_ERR_INVALID_ARG, "text features: no text token (empty transcript)");
        float *z = calloc((size_t)D, sizeof(float));
        if (!z) return MER_ERR_NOMEM;
        *out = z;
        *ndim = 1;
        shape[0] = D;
        return MER_OK;
    }
    float *hs = malloc((size_t)(K * m * D) * sizeof(float));
    if (!hs) {
        free(cut);
        return MER_ERR_NOMEM;
    }
    /* this call's precision, threads and abort (polled per layer) reach the forward; its
     * progress counts sequences */
    s->sc.precision = p->precision;
    calls_set(&s->sc, NULL, NULL, p->abort, p->abort_user_data);
    const int threads = mer__threads_use(p->n_threads);
    st = encode(s, use, NULL, 1, (int32_t)m, first, last, hs);
    mer__threads_use(threads);
    free(cut);
    if (st != MER_OK) {
        free(hs);
        return st;
    }
    /* keep tokens [lead, lead + body) */
    const int64_t T = body;
    float *res;
    if (p->combine == MER_SPEECH_STACK) {
        res = malloc((size_t)(K * T * D) * sizeof(float));
        if (!res) {
            free(hs);
            return MER_ERR_NOMEM;
        }
        for (int64_t k = 0; k < K; k++)
            memcpy(res + k * T * D, hs + (k * m + lead) * D, (size_t)(T * D) * sizeof(float));
    } else {
        res = calloc((size_t)(T * D), sizeof(float));
        if (!res) {
            free(hs);
            return MER_ERR_NOMEM;
        }
        /* the sum runs in float32 in layer order, as torch.stack(...).sum(0) */
        for (int64_t k = 0; k < K; k++)
            for (int64_t i = 0; i < T * D; i++) res[i] += hs[(k * m + lead) * D + i];
        if (p->combine == MER_SPEECH_MEAN)
            for (int64_t i = 0; i < T * D; i++) res[i] /= (float)K;
    }
    free(hs);
    int64_t Kd = p->combine == MER_SPEECH_STACK ? K : 1;
    if (p->pool_mean) {
        float *pooled = malloc((size_t)(Kd * D) * sizeof(float));
        if (!pooled) {
            free(res);
            return MER_ERR_NOMEM;
        }
        for (int64_t k = 0; k < Kd; k++)
            for (int64_t d = 0; d < D; d++) {
                double acc = 0;
                for (int64_t t = 0; t < T; t++) acc += res[(k * T + t) * D + d];
                pooled[k * D + d] = (float)(acc / (double)T);
            }
        free(res);
        res = pooled;
        if (Kd == 1) {
            *ndim = 1;
            shape[0] = D;
        } else {
            *ndim = 2;
            shape[0] = Kd;
            shape[1] = D;
        }
    } else if (Kd == 1) {
        *ndim = 2;
        shape[0] = T;
        shape[1] = D;
    } else {
        *ndim = 3;
        shape[0] = Kd;
        shape[1] = T;
        shape[2] = D;
    }
    *out = res;
    if (p->progress) p->progress(1, 1, p->progress_user_data);
    return MER_OK;
}

mer_status mer_text_extract(mer_text_state *s, const mer_tokenizer *tok, const char *text, size_t len,
                            const mer_text_params *p, float **out, int32_t *ndim, int64_t shape[3]) {
    if (!s || !tok || !p || (len && !text)) return mer__err(MER_ERR_INVALID_ARG, "mer_text_extract: NULL argument");
    int32_t *ids = NULL, *plain = NULL;
    int64_t n = 0, np = 0;
    mer_status st = mer_tokenizer_encode(tok, text ? text : "", len, 1, &ids, &n);
    if (st != MER_OK) return st;
    mer_text_params q = *p;
    if (q.skip_lead < 0 || q.skip_trail < 0) {
        if ((st = mer_tokenizer_encode(tok, text ? text : "", len, 0, &plain, &np)) != MER_OK) {
            free(ids);
            return st;
        }
        int64_t found = -1;
        for (int64_t o = 0; np <= n && o <= n - np && found < 0; o++)
            if (!np || !memcmp(ids + o, plain, (size_t)np * sizeof(int32_t))) found = o;
        if (found >= 0) {
            q.skip_lead = (int32_t)found;
            q.skip_trail = (int32_t)(n - np - found);
        } else {
            /* the specials changed the text's tokens: fall back to dropping BOS / EOS */
            q.skip_lead = n > 0 && ids[0] == mer_tokenizer_bos_id(tok);
            q.skip_trail = n > q.skip_lead && ids[n - 1] == mer_tokenizer_eos_id(tok);
        }
        free(plain);
    }
    st = mer_text_extract_ids(s, ids, n, &q, out, ndim, shape);
    free(ids);
    return st;
}

/* ---- recipe ------------------------------------------------------------------------------- */

static const char *combine_name(mer_speech_combine c) {
    return c == MER_SPEECH_SUM ? "sum" : c == MER_SPEECH_MEAN ? "mean" : "stack";
}

static void json_str(char *dst, size_t cap, const char *s) {
    size_t o = 0;
    dst[o++] = '"';
    for (; *s && o + 8 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') o += (size_t)snprintf(dst + o, cap - o, "\\%c", c);
        else if (c < 0x20) o += (size_t)snprintf(dst + o, cap - o, "\\u%04x", c);
        else dst[o++] = (char)c;
    }
    dst[o++] = '"';
    dst[o] = 0;
}

mer_status mer_text_recipe_to_json(const char *model_dir, const char *tokenizer_dir,
                                   const mer_text_params *p, char **json) {
    if (!model_dir || !p || !json) return mer__err(MER_ERR_INVALID_ARG, "mer_text_recipe_to_json: NULL argument");
    char *am = realpath(model_dir, NULL), *at = realpath(tokenizer_dir ? tokenizer_dir : model_dir, NULL);
    if (!am || !at) {
        free(am);
        free(at);
        return mer__err(MER_ERR_IO, "%s: cannot resolve the path", model_dir);
    }
    char qm[8300], qt[8300];
    json_str(qm, sizeof qm, am);
    json_str(qt, sizeof qt, at);
    free(am);
    free(at);
    const char *prec = p->precision == MER_PRECISION_BF16 ? "bf16" : p->precision == MER_PRECISION_INT8 ? "int8" : "f32";
    size_t cap = strlen(qm) + strlen(qt) + 512;
    *json = malloc(cap);
    if (!*json) return MER_ERR_NOMEM;
    snprintf(*json, cap,
             "{\"text\": {\"model\": %s, \"tokenizer\": %s, \"layer_first\": %d, \"layer_last\": %d, "
             "\"combine\": \"%s\", \"pool_mean\": %d, \"skip_lead\": %d, \"skip_trail\": %d, \"precision\": \"%s\"}}\n",
             qm, qt, p->layer_first, p->layer_last, combine_name(p->combine), p->pool_mean, p->skip_lead, p->skip_trail, prec);
    return MER_OK;
}

mer_status mer_text_recipe_extract(const char *recipe_json, const char *text, float **out,
                                   int32_t *ndim, int64_t shape[3]) {
    if (!recipe_json || !text || !out) return mer__err(MER_ERR_INVALID_ARG, "mer_text_recipe_extract: NULL argument");
    mer_json *j = NULL;
    mer_status s = mer_json_parse(&j, recipe_json, strlen(recipe_json), "recipe");
    if (s != MER_OK) return s;
    mer_text_model *m = NULL;
    mer_text_state *st = NULL;
    mer_tokenizer *tok = NULL;
    const char *md, *td, *comb, *prec;
    int64_t lf, ll, pm, sl, stl;
    if ((s = mer_json_get_string(j, "text.model", &md)) != MER_OK || (s = mer_json_get_string(j, "text.tokenizer", &td)) != MER_OK ||
        (s = mer_json_int_or(j, "text.layer_first", -4, &lf)) != MER_OK || (s = mer_json_int_or(j, "text.layer_last", -1, &ll)) != MER_OK ||
        (s = mer_json_string_or(j, "text.combine", "sum", &comb)) != MER_OK || (s = mer_json_int_or(j, "text.pool_mean", 1, &pm)) != MER_OK ||
        (s = mer_json_int_or(j, "text.skip_lead", -1, &sl)) != MER_OK || (s = mer_json_int_or(j, "text.skip_trail", -1, &stl)) != MER_OK ||
        (s = mer_json_string_or(j, "text.precision", "f32", &prec)) != MER_OK)
        goto done;
    mer_text_params p = mer_text_default_params();
    p.layer_first = (int32_t)lf;
    p.layer_last = (int32_t)ll;
    p.combine = !strcmp(comb, "sum") ? MER_SPEECH_SUM : !strcmp(comb, "mean") ? MER_SPEECH_MEAN : MER_SPEECH_STACK;
    p.pool_mean = (int32_t)pm;
    p.skip_lead = (int32_t)sl;
    p.skip_trail = (int32_t)stl;
    p.precision = !strcmp(prec, "bf16") ? MER_PRECISION_BF16 : !strcmp(prec, "int8") ? MER_PRECISION_INT8 : MER_PRECISION_F32;
    if ((s = mer_text_model_load(&m, md, NULL)) != MER_OK || (s = mer_tokenizer_load(&tok, td)) != MER_OK ||
        (s = mer_text_state_init(&st, m, NULL)) != MER_OK)
        goto done;
    s = mer_text_extract(st, tok, text, strlen(text), &p, out, ndim, shape);
done:
    mer_text_state_free(st);
    mer_tokenizer_free(tok);
    mer_text_model_free(m);
    mer_json_free(j);
    return s;
}

/* ---- mer quantize ------------------------------------------------------------------------- */

/* Quantize one row of cols floats into q with scales sc (blocks of block, or one when < 0).
 * f16: the scales will be stored as float16, so q is rounded against the rounded scale. */
static void quantize_row(int8_t *q, float *sc, const float *x, int64_t cols, int32_t block, int f16) {
    const int64_t bs = block < 0 ? cols : block;
    for (int64_t b0 = 0; b0 < cols; b0 += bs) {
        float mx = 0;
        for (int64_t k = b0; k < b0 + bs; k++) mx = fmaxf(mx, fabsf(x[k]));
        float d = mx / 127.0f;
        if (f16) d = mer__f16_to_f32(mer__f32_to_f16(d));
        const float id = d > 0 ? 1.0f / d : 0.0f;
        sc[b0 / bs] = d;
        for (int64_t k = b0; k < b0 + bs; k++) {
            long v = lrintf(x[k] * id);
            q[k] = (int8_t)(v > 127 ? 127 : v < -127 ? -127 : v);
        }
    }
}

static int is_matrix_to_quantize(const mer_safetensors_entry *e, int32_t block) {
    if (e->ndim != 2 || (e->dtype != MER_DTYPE_F32 && e->dtype != MER_DTYPE_F16 && e->dtype != MER_DTYPE_BF16))
        return 0;
    if (block > 0 && e->shape[1] % block) return 0;
    const size_t n = strlen(e->name);
    /* position / token-type tables stay float (small; BERT adds them unscaled) */
    if (strstr(e->name, "position_embeddings") || strstr(e->name, "token_type_embeddings")) return 0;
    return n > 7 && !strcmp(e->name + n - 7, ".weight");
}

/* Copy dir/name to out_dir/name atomically when it exists (the tokenizer and config files). */
static mer_status copy_small_file(const char *dir, const char *out_dir, const char *name) {
    char src[MER_PATH_CAP], dst[MER_PATH_CAP];
    snprintf(src, sizeof src, "%s/%s", dir, name);
    snprintf(dst, sizeof dst, "%s/%s", out_dir, name);
    if (!mer__file_exists(src)) return MER_OK; /* optional files */
    return mer__copy_file_atomic(src, dst);
}

mer_text_quantize_params mer_text_quantize_default_params(void) {
    mer_text_quantize_params p;
    memset(&p, 0, sizeof p);
    p.block = 32;
    return p;
}

mer_status mer_text_quantize(const char *dir, const char *out_dir, const mer_text_quantize_params *p) {
    if (!dir || !out_dir) return mer__err(MER_ERR_INVALID_ARG, "mer_text_quantize: NULL argument");
    const mer_text_quantize_params par = p ? *p : mer_text_quantize_default_params();
    const int32_t block = par.block;
    if (block != -1 && block != 32)
        return mer__err(MER_ERR_INVALID_ARG, "quantize: block must be 32 or -1 (per row), got %d", block);
    struct stat sa, sb;
    if (stat(dir, &sa) == 0 && stat(out_dir, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino)
        return mer__err(MER_ERR_INVALID_ARG, "quantize: --out %s is the input checkpoint", out_dir);
    /* load first: a checkpoint mer cannot run is refused before anything is written */
    mer_text_model *m = NULL;
    mer_status s = mer_text_model_load(&m, dir, NULL);
    if (s != MER_OK) return s;
    if (m->info.quantized) {
        mer_text_model_free(m);
        return mer__err(MER_ERR_INVALID_ARG, "quantize: %s is already int8", dir);
    }
    if (mkdir(out_dir, 0777) != 0 && errno != EEXIST) {
        mer_text_model_free(m);
        return mer__err(MER_ERR_IO, "%s: cannot create: %s", out_dir, strerror(errno));
    }
    const mer_safetensors *st = m->st;
    const int64_t n = mer_safetensors_count(st);
    /* header: float tensors first (4-byte aligned after the 8-aligned header), int8 last */
    size_t cap = 1 << 16, len = 0;
    char *hdr = malloc(cap);
    int64_t *off = calloc((size_t)(2 * n + 1), sizeof(int64_t));
    if (!hdr || !off) {
        free(hdr);
        free(off);
        mer_text_model_free(m);
        return MER_ERR_NOMEM;
    }
#define HAPPEND(...)                                                                               \
    do {                                                                                           \
        int need_ = snprintf(NULL, 0, __VA_ARGS__);                                                \
        if (len + (size_t)need_ + 1 > cap) {                                                       \
            cap = (len + (size_t)need_ + 1) * 2;                                                   \
            char *nh_ = realloc(hdr, cap);                                                         \
            if (!nh_) { s = MER_ERR_NOMEM; goto done; }                                            \
            hdr = nh_;                                                                             \
        }                                                                                          \
        len += (size_t)snprintf(hdr + len, cap - len, __VA_ARGS__);                                \
    } while (0)
    int64_t pos = 0;
    char final[MER_PATH_CAP];
    mer__afile af = {.fd = -1};
    float *row = NULL, *sc = NULL;
    int8_t *qrow = NULL;
    HAPPEND("{\"__metadata__\":{\"format\":\"mer-int8\",\"mer.quant\":\"%s\"}", block > 0 ? "q8_block32" : "q8_row");
    /* pass 0: float tensors kept (as F32), 1: the F16 scales, 2: the I8 matrices; so every
     * tensor is aligned for its dtype after the 8-aligned header */
    for (int pass = 0; pass < 3; pass++)
        for (int64_t i = 0; i < n; i++) {
            mer_safetensors_entry e;
            if ((s = mer_safetensors_entry_at(st, i, &e)) != MER_OK) goto done;
            int q = is_matrix_to_quantize(&e, block);
            if (e.dtype != MER_DTYPE_F32 && e.dtype != MER_DTYPE_F16 && e.dtype != MER_DTYPE_BF16) continue;
            int64_t numel = 1;
            for (int d = 0; d < e.ndim; d++) numel *= e.shape[d];
            char shp[128] = "";
            size_t sl = 0;
            for (int d = 0; d < e.ndim; d++)
                sl += (size_t)snprintf(shp + sl, sizeof shp - sl, "%s%lld", d ? "," : "", (long long)e.shape[d]);
            if (pass == 0 && !q) {
                HAPPEND(",\"%s\":{\"dtype\":\"F32\",\"shape\":[%s],\"data_offsets\":[%lld,%lld]}", e.name, shp,
                        (long long)pos, (long long)(pos + numel * 4));
                pos += numel * 4;
            } else if (pass == 1 && q) {
                int64_t ns = block > 0 ? e.shape[0] * (e.shape[1] / block) : e.shape[0];
                if (block > 0)
                    HAPPEND(",\"%s.scale\":{\"dtype\":\"F16\",\"shape\":[%lld,%lld],\"data_offsets\":[%lld,%lld]}", e.name,
                            (long long)e.shape[0], (long long)(e.shape[1] / block), (long long)pos, (long long)(pos + ns * 2));
                else
                    HAPPEND(",\"%s.scale\":{\"dtype\":\"F16\",\"shape\":[%lld],\"data_offsets\":[%lld,%lld]}", e.name,
                            (long long)e.shape[0], (long long)pos, (long long)(pos + ns * 2));
                pos += ns * 2;
            } else if (pass == 2 && q) {
                HAPPEND(",\"%s\":{\"dtype\":\"I8\",\"shape\":[%s],\"data_offsets\":[%lld,%lld]}", e.name, shp,
                        (long long)pos, (long long)(pos + numel));
                pos += numel;
            }
        }
    HAPPEND("}");
    while (len % 8) HAPPEND(" ");
    snprintf(final, sizeof final, "%s/model.safetensors", out_dir);
    if ((s = mer__afile_open(&af, final)) != MER_OK) goto done;
    uint64_t hl = len;
    if ((s = mer__afile_write(&af, &hl, 8)) != MER_OK || (s = mer__afile_write(&af, hdr, len)) != MER_OK) goto done;
    int64_t maxc = 1;
    for (int64_t i = 0; i < n; i++) {
        mer_safetensors_entry e;
        mer_safetensors_entry_at(st, i, &e);
        if (e.ndim >= 1 && e.shape[e.ndim - 1] > maxc) maxc = e.shape[e.ndim - 1];
    }
    row = malloc((size_t)maxc * sizeof(float));
    sc = malloc((size_t)maxc * sizeof(float));
    qrow = malloc((size_t)maxc);
    if (!row || !sc || !qrow) {
        s = MER_ERR_NOMEM;
        goto done;
    }
    int64_t done_t = 0;
    for (int pass = 0; pass < 3; pass++)
        for (int64_t i = 0; i < n; i++) {
            mer_safetensors_entry e;
            mer_safetensors_entry_at(st, i, &e);
            int q = is_matrix_to_quantize(&e, block);
            if (e.dtype != MER_DTYPE_F32 && e.dtype != MER_DTYPE_F16 && e.dtype != MER_DTYPE_BF16) continue;
            if ((pass == 0) == (q != 0)) continue;
            if ((s = mer__abort_check(par.abort, par.abort_user_data, "quantize"))) goto done;
            const int64_t cols = e.ndim >= 1 ? e.shape[e.ndim - 1] : 1;
            int64_t rows = 1;
            for (int d = 0; d + 1 < e.ndim; d++) rows *= e.shape[d];
            const size_t es = mer_dtype_size(e.dtype);
            const int64_t nsc = block > 0 ? cols / block : 1;
            for (int64_t r = 0; r < rows; r++) {
                const uint8_t *src = (const uint8_t *)e.data + (size_t)(r * cols) * es;
                if ((s = mer_convert_to_f32(row, src, e.dtype, cols)) != MER_OK) goto done;
                if (pass == 0) {
                    if ((s = mer__afile_write(&af, row, (size_t)cols * 4)) != MER_OK) goto done;
                    continue;
                }
                quantize_row(qrow, sc, row, cols, block, 1);
                if (pass == 1) {
                    uint16_t h[4096];
                    for (int64_t k = 0; k < nsc; k += 4096) {
                        int64_t c = nsc - k < 4096 ? nsc - k : 4096;
                        for (int64_t u = 0; u < c; u++) h[u] = mer__f32_to_f16(sc[k + u]);
                        if ((s = mer__afile_write(&af, h, (size_t)c * 2)) != MER_OK) goto done;
                    }
                } else if ((s = mer__afile_write(&af, qrow, (size_t)cols)) != MER_OK) {
                    goto done;
                }
            }
            if (pass != 1) {
                done_t++;
                if (par.progress) par.progress(done_t, n, par.progress_user_data);
            }
        }
    if ((s = mer__afile_commit(&af)) != MER_OK) goto done;
    {
        static const char *files[] = {"config.json", "tokenizer.json", "tokenizer.model", "tokenizer_config.json",
                                      "special_tokens_map.json", "vocab.txt", "merges.txt", "vocab.json",
                                      "generation_config.json", "modeling_baichuan.py", "configuration_baichuan.py",
                                      "tokenization_baichuan.py", "added_tokens.json"};
        for (size_t k = 0; k < sizeof files / sizeof *files && s == MER_OK; k++)
            s = copy_small_file(dir, out_dir, files[k]);
    }
done:
#undef HAPPEND
    mer__afile_abort(&af);
    free(row);
    free(sc);
    free(qrow);
    free(hdr);
    free(off);
    mer_text_model_free(m);
    return s;
}
