/*
 * bert.c -- BertModel / RobertaModel (transformers' modeling_bert.py, modeling_roberta.py):
 * RoBERTa-wwm-ext(-large), MacBERT and other BERT-architecture checkpoints.
 *
 *   x = LayerNorm(word[ids] + position[pos] + token_type[0])          -> hidden state 0
 *   per layer (post-LN):  x = LayerNorm(x + dense(attn(x)))
 *                         x = LayerNorm(x + output(gelu(intermediate(x))))   -> hidden state i
 * pos = 0..T-1 for bert; for roberta / xlm-roberta padding_idx + 1 + the running count of
 * non-pad tokens, pad tokens at padding_idx (create_position_ids_from_input_ids). Padded keys
 * are masked out of attention (the extended attention mask). Token types are all 0, as when a
 * single sentence is tokenized. Weights live under "bert." / "roberta." (the *ForMaskedLM,
 * *ForPreTraining checkpoints) or at the top level (BertModel); heads are ignored.
 */
#include "text_internal.h"

#include <stdio.h>
#include <string.h>

mer_status mer__bert_load(mer_text_model *m, const mer_json *j, const char *path) {
    mer_text_info *c = &m->info;
    c->arch = MER_TEXT_BERT;
    int32_t types = 0;
    mer_status s;
    /* BertConfig's defaults */
    if ((s = mer__text_cfg_common(m, j, path, 768, 12, 3072, 12, 30522)) != MER_OK ||
        (s = mer__text_cfg_int(j, path, "max_position_embeddings", 512, 1, 1 << 20, &c->max_positions)) != MER_OK ||
        (s = mer__text_cfg_int(j, path, "type_vocab_size", 2, 0, 1 << 16, &types)) != MER_OK ||
        (s = mer__text_cfg_int(j, path, "pad_token_id", 0, -1, 1 << 24, &c->pad_token_id)) != MER_OK)
        return s;
    if (c->hidden_size % c->n_heads)
        return mer__err(MER_ERR_FORMAT, "%s: hidden_size %d is not a multiple of num_attention_heads %d", path,
                        c->hidden_size, c->n_heads);
    c->n_kv_heads = c->n_heads;
    c->head_dim = c->hidden_size / c->n_heads;
    c->qkv_bias = 1;
    const char *act;
    if ((s = mer_json_string_or(j, "hidden_act", "gelu", &act)) != MER_OK) return s;
    if (strcmp(act, "gelu") != 0)
        return mer__err(MER_ERR_UNSUPPORTED, "%s: hidden_act \"%s\" (supported: gelu)", path, act);
    const char *pet;
    if ((s = mer_json_string_or(j, "position_embedding_type", "absolute", &pet)) != MER_OK) return s;
    if (strcmp(pet, "absolute") != 0)
        return mer__err(MER_ERR_UNSUPPORTED, "%s: position_embedding_type \"%s\" (supported: absolute)", path, pet);
    double eps;
    if ((s = mer_json_double_or(j, "layer_norm_eps", 1e-12, &eps)) != MER_OK) return s;
    m->eps = (float)eps;
    const int roberta = strcmp(c->model_type, "bert") != 0;
    if (roberta && c->max_positions <= c->pad_token_id + 1)
        return mer__err(MER_ERR_FORMAT, "%s: max_position_embeddings %d leaves no room after padding_idx %d", path,
                        c->max_positions, c->pad_token_id);

    /* where the encoder lives in the state dict */
    const char *pre = "";
    mer_safetensors_entry e;
    static const char *prefixes[] = {"bert.", "roberta.", ""};
    for (size_t k = 0; k < 3; k++) {
        char name[256];
        snprintf(name, sizeof name, "%sembeddings.word_embeddings.weight", prefixes[k]);
        if (mer_safetensors_find(m->st, name, &e) == MER_OK) {
            pre = prefixes[k];
            break;
        }
    }
    mer_clear_error();
    const int64_t D = c->hidden_size, I = c->intermediate_size;
    char n[256];
#define NAME(...) (snprintf(n, sizeof n, __VA_ARGS__), n)
    if ((s = mer__text_weight(m, NAME("%sembeddings.word_embeddings.weight", pre), c->vocab_size, D, &m->emb)) != MER_OK ||
        (s = mer__text_f32(m, NAME("%sembeddings.position_embeddings.weight", pre), 2, c->max_positions, D, &m->pos_emb)) != MER_OK ||
        (s = mer__text_f32(m, NAME("%sembeddings.LayerNorm.weight", pre), 1, D, 0, &m->emb_ln_w)) != MER_OK ||
        (s = mer__text_f32(m, NAME("%sembeddings.LayerNorm.bias", pre), 1, D, 0, &m->emb_ln_b)) != MER_OK)
        return s;
    if (types > 0 && (s = mer__text_f32(m, NAME("%sembeddings.token_type_embeddings.weight", pre), 2, types, D,
                                        &m->type_emb)) != MER_OK)
        return s;
    m->layers = mer__calloc((size_t)c->n_layers, sizeof *m->layers);
    if (!m->layers) return MER_ERR_NOMEM;
    for (int32_t l = 0; l < c->n_layers; l++) {
        mer__text_layer *L = &m->layers[l];
        char lp[128];
        snprintf(lp, sizeof lp, "%sencoder.layer.%d.", pre, (int)l);
        if ((s = mer__text_weight(m, NAME("%sattention.self.query.weight", lp), D, D, &L->q)) != MER_OK ||
            (s = mer__text_f32(m, NAME("%sattention.self.query.bias", lp), 1, D, 0, &L->qb)) != MER_OK ||
            (s = mer__text_weight(m, NAME("%sattention.self.key.weight", lp), D, D, &L->k)) != MER_OK ||
            (s = mer__text_f32(m, NAME("%sattention.self.key.bias", lp), 1, D, 0, &L->kb)) != MER_OK ||
            (s = mer__text_weight(m, NAME("%sattention.self.value.weight", lp), D, D, &L->v)) != MER_OK ||
            (s = mer__text_f32(m, NAME("%sattention.self.value.bias", lp), 1, D, 0, &L->vb)) != MER_OK ||
            (s = mer__text_weight(m, NAME("%sattention.output.dense.weight", lp), D, D, &L->o)) != MER_OK ||
            (s = mer__text_f32(m, NAME("%sattention.output.dense.bias", lp), 1, D, 0, &L->ob)) != MER_OK ||
            (s = mer__text_f32(m, NAME("%sattention.output.LayerNorm.weight", lp), 1, D, 0, &L->ln1_w)) != MER_OK ||
            (s = mer__text_f32(m, NAME("%sattention.output.LayerNorm.bias", lp), 1, D, 0, &L->ln1_b)) != MER_OK ||
            (s = mer__text_weight(m, NAME("%sintermediate.dense.weight", lp), I, D, &L->ff1)) != MER_OK ||
            (s = mer__text_f32(m, NAME("%sintermediate.dense.bias", lp), 1, I, 0, &L->b1)) != MER_OK ||
            (s = mer__text_weight(m, NAME("%soutput.dense.weight", lp), D, I, &L->ff2)) != MER_OK ||
            (s = mer__text_f32(m, NAME("%soutput.dense.bias", lp), 1, D, 0, &L->b2)) != MER_OK ||
            (s = mer__text_f32(m, NAME("%soutput.LayerNorm.weight", lp), 1, D, 0, &L->ln2_w)) != MER_OK ||
            (s = mer__text_f32(m, NAME("%soutput.LayerNorm.bias", lp), 1, D, 0, &L->ln2_b)) != MER_OK)
            return s;
        /* biases ride with the products (packed into the BF16 / INT8 copies) */
        L->q.bias = L->qb;
        L->k.bias = L->kb;
        L->v.bias = L->vb;
        L->o.bias = L->ob;
        L->ff1.bias = L->b1;
        L->ff2.bias = L->b2;
    }
    if ((s = mer__text_no_extra_layer(m, NAME("%sencoder.layer.%d.attention.self.query.weight", pre, (int)c->n_layers))) != MER_OK)
        return s;
#undef NAME
    c->n_params = (int64_t)c->vocab_size * D + (int64_t)c->max_positions * D + (int64_t)types * D + 2 * D +
                  (int64_t)c->n_layers * (4 * D * D + 4 * D + 2 * D * I + I + D + 4 * D);
    return MER_OK;
}

/* ---- forward ------------------------------------------------------------------------------- */

typedef struct {
    const mer_text_model *m;
    const int32_t *ids, *pos;
    float *x;
    int64_t D;
} emb_job;

static void emb_rows(void *u, int64_t r0, int64_t r1, int t) {
    (void)t;
    const emb_job *j = u;
    const int64_t D = j->D;
    for (int64_t r = r0; r < r1; r++) {
        float *x = j->x + r * D;
        mer__tw_row(&j->m->emb, j->ids[r], x);
        const float *p = j->m->pos_emb + (int64_t)j->pos[r] * D;
        /* transformers: (inputs_embeds + token_type_embeddings) + position_embeddings */
        if (j->m->type_emb)
            for (int64_t i = 0; i < D; i++) x[i] += j->m->type_emb[i];
        for (int64_t i = 0; i < D; i++) x[i] += p[i];
    }
}

static void copy_state(float *out, const float *x, int64_t R, int64_t D) {
    memcpy(out, x, (size_t)(R * D) * sizeof(float));
}

typedef struct {
    float *x;
    const float *w, *b;
    int64_t D;
    float eps;
} ln_job;

/* LayerNorm of finished rows [r0, r1), in place (called inside the product's region) */
static void ln_done(void *u, int64_t r0, int64_t r1, int t) {
    (void)t;
    const ln_job *j = u;
    float *x = j->x + r0 * j->D;
    mer__layernorm_fwd(x, NULL, NULL, x, j->w, j->b, r1 - r0, j->D, j->eps);
}

mer_status mer__bert_forward(mer__text_scratch *s, const int32_t *ids, const uint8_t *mask,
                             int64_t B, int64_t T, int32_t first, int32_t last, float *out) {
    const mer_text_model *m = s->m;
    const mer_text_info *c = &m->info;
    const int64_t D = c->hidden_size, I = c->intermediate_size, H = c->n_heads, dh = c->head_dim;
    const int64_t R = B * T;
    const float eps = m->eps;
    float *x = s->x, *qkv = s->qkv, *ao = s->ao, *f1 = s->f1;
    mer_status st;
    const int roberta = strcmp(c->model_type, "bert") != 0;
    for (int64_t b = 0; b < B; b++) {
        int32_t run = 0;
        for (int64_t t = 0; t < T; t++) {
            const int32_t id = ids[b * T + t];
            if (!roberta) s->pos[b * T + t] = (int32_t)t;
            else if (id == c->pad_token_id) s->pos[b * T + t] = c->pad_token_id;
            else s->pos[b * T + t] = c->pad_token_id + (++run);
            if (s->pos[b * T + t] >= c->max_positions)
                return mer__err(MER_ERR_SHAPE, "text encoder: position %d exceeds the model's %d positions",
                                s->pos[b * T + t], c->max_positions);
        }
    }
    emb_job ej = {m, ids, s->pos, x, D};
    mer__parallel_for(R, 16, emb_rows, &ej);
    mer__layernorm_fwd(x, NULL, NULL, x, m->emb_ln_w, m->emb_ln_b, R, D, eps);
    int64_t k = 0;
    if (first == 0) copy_state(out + (k++) * R * D, x, R, D);
    for (int32_t l = 0; l < last; l++) {
        const mer__text_layer *L = &m->layers[l];
        if ((st = mer__text_layer_poll(s)) != MER_OK) return st;
        if ((st = mer__text_qkv(s, L, R, x, D, qkv, 3 * D)) != MER_OK) return st;
        mer__text_attention(s, qkv, 3 * D, D, 2 * D, ao, B, T, H, H, dh, 0, mask, NULL);
        /* x = LN(x + ao Wo^T + bo): the residual is the product's accumulator, the LayerNorm runs
         * on each block of rows as the product finishes it; the same for the feed-forward */
        ln_job ln1 = {x, L->ln1_w, L->ln1_b, D, eps}, ln2 = {x, L->ln2_w, L->ln2_b, D, eps};
        if ((st = mer__text_linear(s, &L->o, R, ao, D, 1, x, D, 0, ln_done, &ln1)) != MER_OK ||
            (st = mer__text_linear(s, &L->ff1, R, x, D, 0, f1, I, 1, NULL, NULL)) != MER_OK ||
            (st = mer__text_linear(s, &L->ff2, R, f1, I, 1, x, D, 0, ln_done, &ln2)) != MER_OK)
            return st;
        if (l + 1 >= first) copy_state(out + (k++) * R * D, x, R, D);
        mer__text_layer_done(s, l + 1, last);
    }
    return MER_OK;
}
