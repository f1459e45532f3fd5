/*
 * bpe.c -- Hugging Face `tokenizer.json`: byte-level BPE (GPT-2, Qwen2, LLaMA-3 styles) and the
 * WordPiece model of BERT-style files (handed to wordpiece.c).
 *
 * Supported components, each checked by name; anything else is MER_ERR_UNSUPPORTED naming the
 * component, never a silent difference:
 *   normalizer      null, NFC, NFD, Sequence of those; BertNormalizer (with WordPiece)
 *   pre_tokenizer   ByteLevel (GPT-2 regex or use_regex false), Split with the Qwen2 or LLaMA-3
 *                   regex (behavior Isolated, invert false), Sequence of those; BertPreTokenizer
 *   model           BPE (merges as "a b" or ["a", "b"], ignore_merges, unk_token,
 *                   no dropout / prefix / suffix / byte_fallback), WordPiece
 *   post_processor  null, ByteLevel, TemplateProcessing, BertProcessing, RobertaProcessing,
 *                   Sequence of those (only the single-sequence template is used)
 *   added_tokens    matched in the raw text, longest first, with lstrip / rstrip
 * The split regexes are matched by hand-written code, alternative by alternative, with the
 * backtracking the regex engines do; \s is Unicode White_Space, case-insensitivity is ASCII.
 * ref: tokenizers (Rust) / transformers.js: pre_tokenizers/byte_level.rs, models/bpe/word.rs.
 */
#include "text/text_internal.h"

#include "io/io_internal.h"

#include <string.h>

enum { SPLIT_NONE = 0, SPLIT_GPT2, SPLIT_LLAMA3, SPLIT_QWEN2 };
enum { NORM_NONE = 0, NORM_NFC, NORM_NFD };

#define MAX_STAGES 4

typedef struct {
    int norm[MAX_STAGES];
    int n_norm;
    int split;                  /* the regex of a Split (or of ByteLevel use_regex) */
    int byte_level, add_prefix_space;
    mer__strmap vocab;          /* piece -> id (keys borrowed from t->pieces) */
    mer__u64map ranks;          /* (left id << 32 | right id) -> merge rank */
    int32_t *merge_result;      /* (n_merges) id of the merged piece */
    int ignore_merges;
    int32_t unk;                /* -1: unknown pieces are dropped (as transformers.js) */
    uint32_t byte_map[256];     /* GPT-2's bytes_to_unicode */
} bpe_impl;

static void bpe_free(void *p) {
    bpe_impl *b = p;
    mer__strmap_free(&b->vocab);
    mer__u64map_free(&b->ranks);
    free(b->merge_result);
    free(b);
}

/* ---- pre-tokenizer regexes ---------------------------------------------------------------- */

static const char RE_GPT2[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
static const char RE_LLAMA3[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+"
    "[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char RE_QWEN2[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+"
    "[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

static int is_L(uint32_t c) { return mer__uc_is_letter(c); }
static int is_N(uint32_t c) { return mer__uc_is_number(c); }
static int is_S(uint32_t c) { return mer__uc_is_space(c); }
static int is_crlf(uint32_t c) { return c == '\r' || c == '\n'; }
static int is_other(uint32_t c) { return !is_S(c) && !is_L(c) && !is_N(c); }
static uint32_t ascii_lower(uint32_t c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; }

/* The contraction alternatives: end of the match or 0. */
static size_t match_contraction(const uint32_t *c, size_t i, size_t n, int fold) {
    if (c[i] != '\'' || i + 1 >= n) return 0;
    uint32_t a = fold ? ascii_lower(c[i + 1]) : c[i + 1];
    if (a == 's' || a == 't' || a == 'm' || a == 'd') return i + 2;
    if (i + 2 >= n) return 0;
    uint32_t b = fold ? ascii_lower(c[i + 2]) : c[i + 2];
    if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return i + 3;
    return 0;
}

/* The end of the regex match starting at i (always > i for these patterns). */
static size_t match_at(int style, const uint32_t *c, size_t i, size_t n) {
    size_t j, k;
    if (style == SPLIT_GPT2) {
        if ((j = match_contraction(c, i, n, 0))) return j;
        k = c[i] == ' ' && i + 1 < n ? i + 1 : i;
        if (is_L(c[k])) {
            for (j = k; j < n && is_L(c[j]); j++) {}
            return j;
        }
        if (is_L(c[i])) {}
        if (is_N(c[k])) {
            for (j = k; j < n && is_N(c[j]); j++) {}
            return j;
        }
        if (is_other(c[k])) {
            for (j = k; j < n && is_other(c[j]); j++) {}
            return j;
        }
    } else {
        if ((j = match_contraction(c, i, n, 1))) return j;
        /* [^\r\n\p{L}\p{N}]?\p{L}+ */
        k = !is_crlf(c[i]) && !is_L(c[i]) && !is_N(c[i]) && i + 1 < n && is_L(c[i + 1]) ? i + 1 : i;
        if (is_L(c[k])) {
            for (j = k; j < n && is_L(c[j]); j++) {}
            return j;
        }
        /* \p{N}{1,3} or \p{N} */
        if (is_N(c[i])) {
            size_t max = style == SPLIT_LLAMA3 ? 3 : 1;
            for (j = i; j < n && j - i < max && is_N(c[j]); j++) {}
            return j;
        }
        /* ' ?[^\s\p{L}\p{N}]+[\r\n]*' */
        k = c[i] == ' ' && i + 1 < n && is_other(c[i + 1]) ? i + 1 : i;
        if (is_other(c[k])) {
            for (j = k; j < n && is_other(c[j]); j++) {}
            while (j < n && is_crlf(c[j])) j++;
            return j;
        }
        /* \s*[\r\n]+ : the whitespace run up to its last CR/LF */
        if (is_S(c[i])) {
            size_t last = (size_t)-1;
            for (j = i; j < n && is_S(c[j]); j++)
                if (is_crlf(c[j])) last = j;
            if (last != (size_t)-1) return last + 1;
        }
    }
    /* \s+(?!\S) then \s+ */
    if (is_S(c[i])) {
        for (j = i; j < n && is_S(c[j]); j++) {}
        if (j == n || j - i < 2) return j;
        return j - 1;
    }
    return i + 1;
}

/* ---- BPE ---------------------------------------------------------------------------------- */

typedef struct {
    int32_t id, prev, next;
    int alive;
} msym;

static mer_status add_pair(const bpe_impl *b, msym *s, int32_t l, int32_t r, mer__mergeheap *h) {
    if (l < 0 || r < 0 || s[l].id < 0 || s[r].id < 0) return MER_OK;
    int32_t rank = mer__u64map_get(&b->ranks, ((uint64_t)(uint32_t)s[l].id << 32) | (uint32_t)s[r].id);
    if (rank < 0) return MER_OK;
    return mer__mergeheap_push(h, (mer__merge){(double)rank, l, r, rank});
}

typedef struct {
    msym *sym;
    size_t cap;
    mer__mergeheap heap;
    mer__chbuf word;
} bpe_scratch;

/* BPE over the characters of word (UTF-8 of byte-mapped characters): the lowest-ranked
 * adjacent pair first, the leftmost among equal ranks. */
static mer_status bpe_word(const mer_tokenizer *t, const bpe_impl *b, const char *w, size_t len,
                           bpe_scratch *sc, mer__i32buf *out) {
    if (b->ignore_merges) {
        int32_t id = mer__strmap_get(&b->vocab, w, len);
        if (id >= 0) return mer__i32_push(out, id);
    }
    if (sc->cap < len + 1) {
        msym *p = realloc(sc->sym, (len + 1) * sizeof *p);
        if (!p) return mer__err(MER_ERR_NOMEM, "out of memory");
        sc->sym = p;
        sc->cap = len + 1;
    }
    msym *s = sc->sym;
    int32_t ns = 0;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        int k = mer__utf8_decode((const uint8_t *)w + i, len - i, &cp);
        if (!k) k = 1;
        s[ns] = (msym){mer__strmap_get(&b->vocab, w + i, (size_t)k), ns - 1, -1, 1};
        if (ns) s[ns - 1].next = ns;
        ns++;
        i += (size_t)k;
    }
    sc->heap.n = 0;
    mer_status st = MER_OK;
    for (int32_t i = 1; i < ns && !st; i++) st = add_pair(b, s, i - 1, i, &sc->heap);
    while (!st && sc->heap.n) {
        mer__merge p = mer__mergeheap_pop(&sc->heap);
        msym *L = &s[p.left], *R = &s[p.right];
        if (!L->alive || !R->alive || L->next != p.right) continue;
        /* Stale when either side changed since the pair was queued. */
        int32_t rank = mer__u64map_get(&b->ranks, ((uint64_t)(uint32_t)L->id << 32) | (uint32_t)R->id);
        if (rank != p.aux) continue;
        L->id = b->merge_result[rank];
        L->next = R->next;
        if (R->next >= 0) s[R->next].prev = p.left;
        R->alive = 0;
        st = add_pair(b, s, L->prev, p.left, &sc->heap);
        if (!st) st = add_pair(b, s, p.left, L->next, &sc->heap);
    }
    for (int32_t i = ns ? 0 : -1; i >= 0 && !st; i = s[i].next) {
        int32_t id = s[i].id >= 0 ? s[i].id : b->unk;
        if (id >= 0) st = mer__i32_push(out, id);
    }
    return st;
}

static mer_status bpe_encode(const mer_tokenizer *t, const uint32_t *cps, size_t n,
                             const char *text, size_t len, mer__i32buf *out) {
    (void)text, (void)len;
    const bpe_impl *b = t->impl;
    mer__u32buf a = {0}, c = {0};
    bpe_scratch sc = {0};
    mer_status st = MER_OK;
    const uint32_t *v = cps;
    size_t m = n;
    for (int k = 0; k < b->n_norm && !st; k++) {
        c.n = 0;
        st = b->norm[k] == NORM_NFC ? mer__uc_nfc(v, m, &c) : mer__uc_nfd(v, m, &c);
        mer__u32buf tmp = a;
        a = c;
        c = tmp;
        v = a.v;
        m = a.n;
    }
    if (!st && b->add_prefix_space && m && v[0] != ' ') {
        c.n = 0;
        st = mer__u32_push(&c, ' ');
        for (size_t i = 0; i < m && !st; i++) st = mer__u32_push(&c, v[i]);
        mer__u32buf tmp = a;
        a = c;
        c = tmp;
        v = a.v;
        m = a.n;
    }
    for (size_t i = 0; i < m && !st;) {
        size_t j = b->split ? match_at(b->split, v, i, m) : m;
        sc.word.n = 0;
        for (size_t k = i; k < j && !st; k++) {
            if (!b->byte_level) {
                st = mer__ch_push_cp(&sc.word, v[k]);
                continue;
            }
            char u[4];
            int q = mer__utf8_encode(v[k], u);
            for (int r = 0; r < q && !st; r++)
                st = mer__ch_push_cp(&sc.word, b->byte_map[(uint8_t)u[r]]);
        }
        if (!st && sc.word.n) st = bpe_word(t, b, sc.word.v, sc.word.n, &sc, out);
        i = j;
    }
    free(a.v);
    free(c.v);
    free(sc.sym);
    free(sc.heap.v);
    free(sc.word.v);
    return st;
}

/* ---- tokenizer.json ----------------------------------------------------------------------- */

static const char *type_of(const cJSON *o) {
    const cJSON *ty = cJSON_GetObjectItemCaseSensitive(o, "type");
    return cJSON_IsString(ty) ? ty->valuestring : NULL;
}

static int get_bool(const cJSON *o, const char *k, int def) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsBool(v) ? cJSON_IsTrue(v) : def;
}

static mer_status unsupported(const char *name, const char *what, const char *type) {
    return mer__err(MER_ERR_UNSUPPORTED, "%s: %s '%s' is not supported", name, what,
                    type ? type : "(no type)");
}

typedef struct {
    int norm[MAX_STAGES], n_norm;
    int bert_norm, lower, strip, chinese, clean;
    int split, byte_level, add_prefix_space, bert_pre;
} comp;

static mer_status parse_normalizer(const cJSON *o, comp *c, const char *name, int depth) {
    if (!o || cJSON_IsNull(o)) return MER_OK;
    const char *ty = type_of(o);
    if (ty && !strcmp(ty, "Sequence") && depth == 0) {
        const cJSON *arr = cJSON_GetObjectItemCaseSensitive(o, "normalizers");
        if (!cJSON_IsArray(arr)) return mer__err(MER_ERR_FORMAT, "%s: normalizer Sequence without normalizers", name);
        for (const cJSON *e = arr->child; e; e = e->next) {
            mer_status st = parse_normalizer(e, c, name, 1);
            if (st) return st;
        }
        return MER_OK;
    }
    if (ty && (!strcmp(ty, "NFC") || !strcmp(ty, "NFD"))) {
        if (c->n_norm == MAX_STAGES) return unsupported(name, "normalizer", "Sequence (too long)");
        c->norm[c->n_norm++] = !strcmp(ty, "NFC") ? NORM_NFC : NORM_NFD;
        return MER_OK;
    }
    if (ty && !strcmp(ty, "BertNormalizer") && depth == 0) {
        c->bert_norm = 1;
        c->clean = get_bool(o, "clean_text", 1);
        c->chinese = get_bool(o, "handle_chinese_chars", 1);
        c->lower = get_bool(o, "lowercase", 1);
        const cJSON *s = cJSON_GetObjectItemCaseSensitive(o, "strip_accents");
        c->strip = cJSON_IsBool(s) ? cJSON_IsTrue(s) : c->lower;
        return MER_OK;
    }
    return unsupported(name, "normalizer", ty);
}

static mer_status parse_pre(const cJSON *o, comp *c, const char *name, int depth) {
    if (!o || cJSON_IsNull(o)) return MER_OK;
    const char *ty = type_of(o);
    if (ty && !strcmp(ty, "Sequence") && depth == 0) {
        const cJSON *arr = cJSON_GetObjectItemCaseSensitive(o, "pretokenizers");
        if (!cJSON_IsArray(arr)) return mer__err(MER_ERR_FORMAT, "%s: pre_tokenizer Sequence without pretokenizers", name);
        for (const cJSON *e = arr->child; e; e = e->next) {
            mer_status st = parse_pre(e, c, name, 1);
            if (st) return st;
        }
        return MER_OK;
    }
    if (ty && !strcmp(ty, "Split")) {
        const cJSON *pat = cJSON_GetObjectItemCaseSensitive(o, "pattern");
        const cJSON *re = pat ? cJSON_GetObjectItemCaseSensitive(pat, "Regex") : NULL;
        const cJSON *beh = cJSON_GetObjectItemCaseSensitive(o, "behavior");
        if (!cJSON_IsString(re))
            return mer__err(MER_ERR_UNSUPPORTED, "%s: pre_tokenizer Split without a Regex pattern is not supported", name);
        int style = !strcmp(re->valuestring, RE_LLAMA3) ? SPLIT_LLAMA3
                    : !strcmp(re->valuestring, RE_QWEN2) ? SPLIT_QWEN2
                    : !strcmp(re->valuestring, RE_GPT2) ? SPLIT_GPT2 : 0;
        if (!style)
            return mer__err(MER_ERR_UNSUPPORTED, "%s: pre_tokenizer Split regex '%.120s' is not supported "
                            "(the GPT-2, Qwen2 and LLaMA-3 patterns are)", name, re->valuestring);
        if (!cJSON_IsString(beh) || strcmp(beh->valuestring, "Isolated") || get_bool(o, "invert", 0))
            return mer__err(MER_ERR_UNSUPPORTED, "%s: pre_tokenizer Split behavior other than Isolated "
                            "(not inverted) is not supported", name);
        if (c->split || c->byte_level)
            return unsupported(name, "pre_tokenizer", "Split after another splitting stage");
        c->split = style;
        return MER_OK;
    }
    if (ty && !strcmp(ty, "ByteLevel")) {
        if (c->byte_level) return unsupported(name, "pre_tokenizer", "ByteLevel twice");
        c->byte_level = 1;
        c->add_prefix_space = get_bool(o, "add_prefix_space", 1);
        if (c->add_prefix_space && c->split)
            return mer__err(MER_ERR_UNSUPPORTED, "%s: pre_tokenizer ByteLevel with add_prefix_space "
                            "after a Split is not supported", name);
        if (get_bool(o, "use_regex", 1)) {
            if (c->split) return unsupported(name, "pre_tokenizer", "ByteLevel use_regex after a Split");
            c->split = SPLIT_GPT2;
        }
        return MER_OK;
    }
    if (ty && !strcmp(ty, "BertPreTokenizer") && depth == 0) {
        c->bert_pre = 1;
        return MER_OK;
    }
    return unsupported(name, "pre_tokenizer", ty);
}

/* The single-sequence part of a post-processor: ids before and after $A. */
static mer_status parse_post(mer_tokenizer *t, const cJSON *o, const mer__strmap *vocab,
                             const char *name, int depth) {
    if (!o || cJSON_IsNull(o)) return MER_OK;
    const char *ty = type_of(o);
    if (ty && !strcmp(ty, "ByteLevel")) return MER_OK;
    if (ty && !strcmp(ty, "Sequence") && depth == 0) {
        const cJSON *arr = cJSON_GetObjectItemCaseSensitive(o, "processors");
        if (!cJSON_IsArray(arr)) return mer__err(MER_ERR_FORMAT, "%s: post_processor Sequence without processors", name);
        for (const cJSON *e = arr->child; e; e = e->next) {
            mer_status st = parse_post(t, e, vocab, name, 1);
            if (st) return st;
        }
        return MER_OK;
    }
    if (ty && (!strcmp(ty, "BertProcessing") || !strcmp(ty, "RobertaProcessing"))) {
        const cJSON *cls = cJSON_GetObjectItemCaseSensitive(o, "cls");
        const cJSON *sep = cJSON_GetObjectItemCaseSensitive(o, "sep");
        const cJSON *ci = cJSON_IsArray(cls) ? cJSON_GetArrayItem(cls, 1) : NULL;
        const cJSON *si = cJSON_IsArray(sep) ? cJSON_GetArrayItem(sep, 1) : NULL;
        int64_t a, b;
        if (!mer__json_integral(ci, 0, INT32_MAX, &a) || !mer__json_integral(si, 0, INT32_MAX, &b))
            return mer__err(MER_ERR_FORMAT, "%s: %s without cls/sep ids", name, ty);
        t->template_set = 1;
        t->n_pre = t->n_post = 1;
        t->pre[0] = (int32_t)a;
        t->post[0] = (int32_t)b;
        return MER_OK;
    }
    if (ty && !strcmp(ty, "TemplateProcessing")) {
        const cJSON *single = cJSON_GetObjectItemCaseSensitive(o, "single");
        const cJSON *sp = cJSON_GetObjectItemCaseSensitive(o, "special_tokens");
        if (!cJSON_IsArray(single)) return mer__err(MER_ERR_FORMAT, "%s: TemplateProcessing without 'single'", name);
        int seen_a = 0;
        t->template_set = 1;
        t->n_pre = t->n_post = 0;
        for (const cJSON *e = single->child; e; e = e->next) {
            const cJSON *seq = cJSON_GetObjectItemCaseSensitive(e, "Sequence");
            const cJSON *spc = cJSON_GetObjectItemCaseSensitive(e, "SpecialToken");
            if (seq) {
                if (seen_a) return unsupported(name, "post_processor", "TemplateProcessing with $A twice");
                seen_a = 1;
                continue;
            }
            const cJSON *idv = spc ? cJSON_GetObjectItemCaseSensitive(spc, "id") : NULL;
            if (!cJSON_IsString(idv))
                return mer__err(MER_ERR_FORMAT, "%s: TemplateProcessing piece without an id", name);
            const cJSON *def = sp ? cJSON_GetObjectItemCaseSensitive(sp, idv->valuestring) : NULL;
            const cJSON *ids = def ? cJSON_GetObjectItemCaseSensitive(def, "ids") : NULL;
            if (!cJSON_IsArray(ids))
                return mer__err(MER_ERR_FORMAT, "%s: TemplateProcessing special token '%s' has no ids",
                                name, idv->valuestring);
            for (const cJSON *x = ids->child; x; x = x->next) {
                int64_t id;
                if (!mer__json_integral(x, 0, INT32_MAX, &id))
                    return mer__err(MER_ERR_FORMAT, "%s: bad id of special token '%s'", name, idv->valuestring);
                int32_t *dst = seen_a ? t->post : t->pre;
                int32_t *cnt = seen_a ? &t->n_post : &t->n_pre;
                if (*cnt == 4) return unsupported(name, "post_processor", "TemplateProcessing with more than 4 special ids");
                dst[(*cnt)++] = (int32_t)id;
            }
        }
        return MER_OK;
    }
    (void)vocab;
    return unsupported(name, "post_processor", ty);
}

static void make_byte_map(uint32_t map[256]) {
    int n = 0;
    for (int b = 0; b < 256; b++) {
        if ((b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF))
            map[b] = (uint32_t)b;
        else
            map[b] = 256u + (uint32_t)n++;
    }
}

static mer_status set_piece(mer_tokenizer *t, int64_t id, const char *s, const char *name) {
    if (id < 0 || id >= t->vocab_size) return mer__err(MER_ERR_FORMAT, "%s: token id %lld out of range", name, (long long)id);
    if (t->pieces[id]) {
        if (!strcmp(t->pieces[id], s)) return MER_OK;
        return mer__err(MER_ERR_FORMAT, "%s: id %lld is given to both '%s' and '%s'", name,
                        (long long)id, t->pieces[id], s);
    }
    t->pieces[id] = strdup(s);
    return t->pieces[id] ? MER_OK : mer__err(MER_ERR_NOMEM, "out of memory");
}

mer_status mer__hfjson_parse(mer_tokenizer *t, const char *json, size_t size, const char *name) {
    cJSON *root = NULL;
    mer_status st = mer__json_parse_text(&root, json, size, name);
    if (st) return st;
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    const cJSON *vocab = model ? cJSON_GetObjectItemCaseSensitive(model, "vocab") : NULL;
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    const char *mty = model ? type_of(model) : NULL;
    comp c = {0};
    if (!cJSON_IsObject(model)) {
        st = mer__err(MER_ERR_FORMAT, "%s: no 'model' object (not a tokenizer.json?)", name);
        goto done;
    }
    if (!mty || (strcmp(mty, "BPE") && strcmp(mty, "WordPiece"))) {
        st = unsupported(name, "model", mty);
        goto done;
    }
    if (!cJSON_IsObject(vocab)) {
        st = mer__err(MER_ERR_FORMAT, "%s: model.vocab is not an object", name);
        goto done;
    }
    if ((st = parse_normalizer(cJSON_GetObjectItemCaseSensitive(root, "normalizer"), &c, name, 0)) ||
        (st = parse_pre(cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer"), &c, name, 0)))
        goto done;
    int wordpiece = !strcmp(mty, "WordPiece");
    if (wordpiece != c.bert_pre || (c.bert_norm && !wordpiece) || (wordpiece && (c.split || c.byte_level || c.n_norm))) {
        st = mer__err(MER_ERR_UNSUPPORTED, "%s: model %s with these normalizer/pre_tokenizer "
                      "components is not supported (BPE goes with NFC/ByteLevel/Split, WordPiece "
                      "with BertNormalizer/BertPreTokenizer)", name, mty);
        goto done;
    }
    if (!wordpiece) {
        const char *bad[] = {"dropout", "continuing_subword_prefix", "end_of_word_suffix"};
        for (int i = 0; i < 3; i++) {
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(model, bad[i]);
            if (v && !cJSON_IsNull(v) && !(cJSON_IsString(v) && !*v->valuestring)) {
                st = mer__err(MER_ERR_UNSUPPORTED, "%s: BPE model option '%s' is not supported", name, bad[i]);
                goto done;
            }
        }
        if (get_bool(model, "byte_fallback", 0)) {
            st = mer__err(MER_ERR_UNSUPPORTED, "%s: BPE model option 'byte_fallback' is not supported "
                          "(use the model's tokenizer.model)", name);
            goto done;
        }
        if (!c.byte_level) {
            st = mer__err(MER_ERR_UNSUPPORTED, "%s: BPE without a ByteLevel pre_tokenizer is not supported", name);
            goto done;
        }
    }
    /* Vocabulary size: one past the largest id of the vocab and of the added tokens. */
    int64_t max_id = -1;
    for (const cJSON *e = vocab->child; e; e = e->next) {
        int64_t id;
        if (!mer__json_integral(e, 0, INT32_MAX - 1, &id)) {
            st = mer__err(MER_ERR_FORMAT, "%s: vocab entry '%.60s' has no valid id", name, e->string);
            goto done;
        }
        if (id > max_id) max_id = id;
    }
    if (added && !cJSON_IsArray(added)) {
        st = mer__err(MER_ERR_FORMAT, "%s: added_tokens is not an array", name);
        goto done;
    }
    for (const cJSON *e = added ? added->child : NULL; e; e = e->next) {
        int64_t id;
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(e, "content");
        if (!mer__json_integral(cJSON_GetObjectItemCaseSensitive(e, "id"), 0, INT32_MAX - 1, &id) ||
            !cJSON_IsString(content)) {
            st = mer__err(MER_ERR_FORMAT, "%s: an added token lacks an id or content", name);
            goto done;
        }
        if (get_bool(e, "single_word", 0)) {
            st = mer__err(MER_ERR_UNSUPPORTED, "%s: added token '%s' with single_word is not supported",
                          name, content->valuestring);
            goto done;
        }
        if (id > max_id) max_id = id;
    }
    if (max_id < 0) {
        st = mer__err(MER_ERR_FORMAT, "%s: empty vocabulary", name);
        goto done;
    }
    /* the ids index a table of max_id + 1 pieces: a few bytes of JSON naming id 2^31 - 2 would
     * ask for gigabytes, so the unused ids may number at most 2^20 (real vocabularies are dense,
     * a few reserved ids aside) */
    const int64_t entries = cJSON_GetArraySize(vocab) + (added ? cJSON_GetArraySize(added) : 0);
    if (max_id + 1 - entries > ((int64_t)1 << 20)) {
        st = mer__err(MER_ERR_FORMAT, "%s: token id %lld with %lld entries leaves more than 1048576 ids unused", name,
                      (long long)max_id, (long long)entries);
        goto done;
    }
    t->vocab_size = max_id + 1;
    t->pieces = calloc((size_t)t->vocab_size, sizeof *t->pieces);
    if (!t->pieces) {
        st = mer__err(MER_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (const cJSON *e = vocab->child; e && !st; e = e->next)
        st = set_piece(t, (int64_t)e->valuedouble, e->string, name);
    for (const cJSON *e = added ? added->child : NULL; e && !st; e = e->next)
        st = set_piece(t, (int64_t)cJSON_GetObjectItemCaseSensitive(e, "id")->valuedouble,
                       cJSON_GetObjectItemCaseSensitive(e, "content")->valuestring, name);
    if (st) goto done;

    if (wordpiece) {
        const cJSON *unk = cJSON_GetObjectItemCaseSensitive(model, "unk_token");
        const cJSON *pre = cJSON_GetObjectItemCaseSensitive(model, "continuing_subword_prefix");
        int64_t maxc = 100;
        const cJSON *mc = cJSON_GetObjectItemCaseSensitive(model, "max_input_chars_per_word");
        if (mc && !mer__json_integral(mc, 1, INT32_MAX, &maxc)) {
            st = mer__err(MER_ERR_FORMAT, "%s: bad max_input_chars_per_word", name);
            goto done;
        }
        st = mer__wordpiece_setup(t, c.lower, c.strip, c.chinese, c.clean,
                                  cJSON_IsString(pre) ? pre->valuestring : "##", (int32_t)maxc,
                                  cJSON_IsString(unk) ? unk->valuestring : "[UNK]");
        if (st) goto done;
    } else {
        bpe_impl *b = calloc(1, sizeof *b);
        if (!b) {
            st = mer__err(MER_ERR_NOMEM, "out of memory");
            goto done;
        }
        t->impl = b;
        t->free_impl = bpe_free;
        t->encode = bpe_encode;
        t->kind = "bpe-bytelevel";
        memcpy(b->norm, c.norm, sizeof b->norm);
        b->n_norm = c.n_norm;
        b->split = c.split;
        b->byte_level = c.byte_level;
        b->add_prefix_space = c.add_prefix_space;
        b->ignore_merges = get_bool(model, "ignore_merges", 0);
        make_byte_map(b->byte_map);
        st = mer__strmap_init(&b->vocab, (size_t)t->vocab_size);
        for (int64_t i = 0; i < t->vocab_size && !st; i++)
            if (t->pieces[i]) st = mer__strmap_put(&b->vocab, t->pieces[i], strlen(t->pieces[i]), (int32_t)i, NULL);
        if (st) goto done;
        const cJSON *unk = cJSON_GetObjectItemCaseSensitive(model, "unk_token");
        b->unk = cJSON_IsString(unk) ? mer__strmap_get(&b->vocab, unk->valuestring, strlen(unk->valuestring)) : -1;
        t->unk_id = b->unk;
        const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
        if (!cJSON_IsArray(merges)) {
            st = mer__err(MER_ERR_FORMAT, "%s: model.merges is not an array", name);
            goto done;
        }
        int nm = cJSON_GetArraySize(merges);
        b->merge_result = malloc(((size_t)nm + 1) * sizeof *b->merge_result);
        if (!b->merge_result) {
            st = mer__err(MER_ERR_NOMEM, "out of memory");
            goto done;
        }
        if ((st = mer__u64map_init(&b->ranks, (size_t)nm))) goto done;
        /* Later duplicates win (a map filled in order), so insert from the end. */
        const cJSON **arr = malloc(((size_t)nm + 1) * sizeof *arr);
        if (!arr) {
            st = mer__err(MER_ERR_NOMEM, "out of memory");
            goto done;
        }
        int k = 0;
        for (const cJSON *e = merges->child; e; e = e->next) arr[k++] = e;
        mer__chbuf cat = {0};
        for (int r = nm - 1; r >= 0 && !st; r--) {
            const cJSON *e = arr[r];
            const char *l = NULL, *rr = NULL;
            size_t ll = 0, rl = 0;
            if (cJSON_IsString(e)) {
                const char *sp = strchr(e->valuestring, ' ');
                if (sp) {
                    l = e->valuestring;
                    ll = (size_t)(sp - l);
                    rr = sp + 1;
                    rl = strcspn(rr, " ");
                }
            } else if (cJSON_IsArray(e) && cJSON_GetArraySize(e) == 2 &&
                       cJSON_IsString(e->child) && cJSON_IsString(e->child->next)) {
                l = e->child->valuestring;
                ll = strlen(l);
                rr = e->child->next->valuestring;
                rl = strlen(rr);
            }
            if (!l) {
                st = mer__err(MER_ERR_FORMAT, "%s: merge %d is not 'a b' or [a, b]", name, r);
                break;
            }
            int32_t a = mer__strmap_get(&b->vocab, l, ll), bb = mer__strmap_get(&b->vocab, rr, rl);
            cat.n = 0;
            st = mer__ch_append(&cat, l, ll);
            if (!st) st = mer__ch_append(&cat, rr, rl);
            if (st) break;
            int32_t res = mer__strmap_get(&b->vocab, cat.v, cat.n);
            if (a < 0 || bb < 0 || res < 0) {
                st = mer__err(MER_ERR_FORMAT, "%s: merge %d ('%.*s' + '%.*s') uses a piece that is "
                              "not in the vocabulary", name, r, (int)ll, l, (int)rl, rr);
                break;
            }
            if (mer__u64map_get(&b->ranks, ((uint64_t)(uint32_t)a << 32) | (uint32_t)bb) >= 0) continue;
            st = mer__u64map_put(&b->ranks, ((uint64_t)(uint32_t)a << 32) | (uint32_t)bb, r);
            b->merge_result[r] = res;
        }
        free(cat.v);
        free(arr);
        if (st) goto done;
    }
    /* Added tokens: matched in the raw text; the special ones listed for inspect. */
    for (const cJSON *e = added ? added->child : NULL; e && !st; e = e->next) {
        int32_t id = (int32_t)cJSON_GetObjectItemCaseSensitive(e, "id")->valuedouble;
        const char *s = cJSON_GetObjectItemCaseSensitive(e, "content")->valuestring;
        st = mer__tok_add_added(t, s, strlen(s), id, get_bool(e, "lstrip", 0), get_bool(e, "rstrip", 0));
        if (!st && get_bool(e, "special", 0)) st = mer__tok_add_special(t, s, id);
    }
    if (!st) st = parse_post(t, cJSON_GetObjectItemCaseSensitive(root, "post_processor"), NULL, name, 0);
    for (int32_t i = 0; !st && i < t->n_pre + t->n_post; i++) {
        int32_t id = i < t->n_pre ? t->pre[i] : t->post[i - t->n_pre];
        if (id >= t->vocab_size)
            st = mer__err(MER_ERR_FORMAT, "%s: post_processor token id %d is outside the "
                          "vocabulary (%lld)", name, id, (long long)t->vocab_size);
    }
done:
    cJSON_Delete(root);
    return st;
}

mer_status mer__hfjson_load(mer_tokenizer *t, const char *file, const char *dir) {
    char *data = NULL;
    size_t size = 0;
    mer_status st = mer__read_file(file, &data, &size);
    if (st) return st;
    st = mer__hfjson_parse(t, data, size, file);
    free(data);
    if (st) return st;
    /* BOS/EOS/PAD as tokenizer_config.json names them (for the API and inspect). */
    char p[MER_PATH_CAP];
    cJSON *cfg = NULL;
    snprintf(p, sizeof p, "%s/tokenizer_config.json", dir);
    st = mer__tok_read_json(p, &cfg, (int[]){0});
    if (st) return st;
    const char *keys[4] = {"bos_token", "eos_token", "unk_token", "pad_token"};
    int32_t *dst[4] = {&t->bos_id, &t->eos_id, &t->unk_id, &t->pad_id};
    if (!strcmp(t->kind, "wordpiece")) {
        keys[0] = "cls_token";
        keys[1] = "sep_token";
    }
    for (int i = 0; i < 4; i++) {
        const char *s = cfg ? mer__tok_json_token(cJSON_GetObjectItemCaseSensitive(cfg, keys[i])) : NULL;
        if (!s) continue;
        for (int64_t k = 0; k < t->vocab_size; k++)
            if (t->pieces[k] && !strcmp(t->pieces[k], s)) {
                *dst[i] = (int32_t)k;
                break;
            }
    }
    cJSON_Delete(cfg);
    /* Without a template, add_special adds nothing, as the fast tokenizer. */
    t->template_set = 1;
    return MER_OK;
}
