/*
 * wordpiece.c -- BERT's tokenizer: vocab.txt (+ tokenizer_config.json), and the WordPiece model
 * of a tokenizer.json (bpe.c hands it over through mer__wordpiece_setup).
 *
 * Semantics follow the fast tokenizer (HF tokenizers' BertNormalizer + BertPreTokenizer +
 * WordPiece, which transformers.js mirrors): drop NUL, U+FFFD and control characters (Cc, Cf,
 * Co, Cs except tab/CR/LF), turn whitespace into spaces, put spaces around CJK ideographs,
 * lower-case, strip accents (NFD, drop Mn; by default when lower-casing), split on whitespace
 * and on every punctuation character (Unicode P* plus ASCII symbols), then greedy
 * longest-match-first WordPiece with "##"; a word longer than 100 characters or with no
 * matching piece becomes [UNK]. The slow Python BertTokenizer also NFC-normalises the text
 * first; docs/text.md lists where the two differ.
 */
#include "text/text_internal.h"

#include "io/io_internal.h"

#include <string.h>

typedef struct {
    mer__strmap vocab;          /* piece -> id; keys borrowed from t->pieces */
    int lower, strip_accents, chinese, clean;
    char prefix[32];
    size_t prefix_len;
    int32_t max_chars;
} wp_impl;

static void wp_free(void *p) {
    wp_impl *w = p;
    mer__strmap_free(&w->vocab);
    free(w);
}

/* BERT's CJK ranges: the CJK Unified Ideographs blocks and compatibility ideographs (not
 * Hangul, kana or CJK punctuation). */
static int is_cjk(uint32_t c) {
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) ||
           (c >= 0x20000 && c <= 0x2A6DF) || (c >= 0x2A700 && c <= 0x2B73F) ||
           (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B820 && c <= 0x2CEAF) ||
           (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

static int is_control(uint32_t c) {
    if (c == '\t' || c == '\n' || c == '\r') return 0;
    int k = mer__uc_cat(c);
    return k == MER__UC_Cc || k == MER__UC_Cf || k == MER__UC_Co || k == MER__UC_Cs;
}

static int is_bert_space(uint32_t c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || mer__uc_is_space(c) ||
           c == 0xFEFF;
}

static int is_bert_punct(uint32_t c) {
    if ((c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) ||
        (c >= 123 && c <= 126))
        return 1;
    return mer__uc_is_punct(c);
}

static mer_status wp_word(const mer_tokenizer *t, const wp_impl *w, const uint32_t *cp,
                          size_t n, mer__chbuf *buf, mer__i32buf *out) {
    if (n > (size_t)w->max_chars) return mer__i32_push(out, t->unk_id);
    /* Byte offset of each character in the word's UTF-8 (buf holds prefix + word). */
    size_t offs_stack[128], *offs = n + 1 <= 128 ? offs_stack : malloc((n + 1) * sizeof *offs);
    if (!offs) return mer__err(MER_ERR_NOMEM, "out of memory");
    buf->n = 0;
    mer_status st = mer__ch_append(buf, w->prefix, w->prefix_len);
    for (size_t i = 0; i < n && !st; i++) {
        offs[i] = buf->n - w->prefix_len;
        st = mer__ch_push_cp(buf, cp[i]);
    }
    offs[n] = buf->n - w->prefix_len;
    size_t mark = out->n;
    size_t start = 0;
    while (!st && start < n) {
        int32_t id = -1;
        size_t end = n;
        for (; end > start; end--) {
            const char *s = buf->v + w->prefix_len + offs[start];
            size_t len = offs[end] - offs[start];
            if (start > 0) {
                /* Look up prefix + piece: the prefix sits right before the piece only for the
                 * first character, so copy into the scratch area past the word. */
                size_t need = w->prefix_len + len;
                char tmp[512];
                char *k = need <= sizeof tmp ? tmp : malloc(need);
                if (!k) {
                    st = mer__err(MER_ERR_NOMEM, "out of memory");
                    break;
                }
                memcpy(k, w->prefix, w->prefix_len);
                memcpy(k + w->prefix_len, s, len);
                id = mer__strmap_get(&w->vocab, k, need);
                if (k != tmp) free(k);
            } else {
                id = mer__strmap_get(&w->vocab, s, len);
            }
            if (id >= 0) break;
        }
        if (st) break;
        if (id < 0) {
            out->n = mark;
            st = mer__i32_push(out, t->unk_id);
            break;
        }
        st = mer__i32_push(out, id);
        start = end;
    }
    if (offs != offs_stack) free(offs);
    return st;
}

static mer_status wp_encode(const mer_tokenizer *t, const uint32_t *cps, size_t n,
                            const char *text, size_t len, mer__i32buf *out) {
    (void)text, (void)len;
    const wp_impl *w = t->impl;
    mer__u32buf a = {0}, b = {0};
    mer__chbuf buf = {0};
    mer_status st = MER_OK;
    /* Normalise: clean, space out CJK, lower-case (the whole text: a word-final capital sigma
     * becomes final sigma, as JavaScript's toLowerCase and Rust's to_lowercase do). */
    for (size_t i = 0; i < n && !st; i++) {
        uint32_t c = cps[i];
        if (w->clean) {
            if (c == 0 || c == 0xFFFD || is_control(c)) continue;
            if (is_bert_space(c)) c = ' ';
        }
        if (w->chinese && is_cjk(c)) {
            st = mer__u32_push(&a, ' ');
            if (!st) st = mer__u32_push(&a, c);
            if (!st) st = mer__u32_push(&a, ' ');
        } else {
            st = mer__u32_push(&a, c);
        }
    }
    if (!st && w->lower) {
        st = mer__uc_lower_str(a.v, a.n, &b);
        mer__u32buf tmp = a;
        a = b;
        b = tmp;
        b.n = 0;
    }
    const uint32_t *v = a.v;
    size_t m = a.n;
    if (!st && w->strip_accents) {
        st = mer__uc_nfd(a.v, a.n, &b);
        size_t k = 0;
        for (size_t i = 0; i < b.n; i++)
            if (mer__uc_cat(b.v[i]) != MER__UC_Mn) b.v[k++] = b.v[i];
        b.n = k;
        v = b.v;
        m = b.n;
    }
    /* Pre-tokenise: words between whitespace, each punctuation character alone. */
    size_t i = 0;
    while (!st && i < m) {
        if (is_bert_space(v[i])) {
            i++;
            continue;
        }
        if (is_bert_punct(v[i])) {
            st = wp_word(t, w, v + i, 1, &buf, out);
            i++;
            continue;
        }
        size_t j = i;
        while (j < m && !is_bert_space(v[j]) && !is_bert_punct(v[j])) j++;
        st = wp_word(t, w, v + i, j - i, &buf, out);
        i = j;
    }
    free(a.v);
    free(b.v);
    free(buf.v);
    return st;
}

mer_status mer__wordpiece_setup(mer_tokenizer *t, int lower, int strip_accents, int chinese,
                                int clean, const char *prefix, int32_t max_chars,
                                const char *unk) {
    wp_impl *w = calloc(1, sizeof *w);
    if (!w) return mer__err(MER_ERR_NOMEM, "out of memory");
    t->impl = w;
    t->free_impl = wp_free;
    t->encode = wp_encode;
    t->kind = "wordpiece";
    w->lower = lower;
    w->strip_accents = strip_accents;
    w->chinese = chinese;
    w->clean = clean;
    w->max_chars = max_chars;
    w->prefix_len = strlen(prefix);
    if (w->prefix_len >= sizeof w->prefix)
        return mer__err(MER_ERR_FORMAT, "%s: continuing_subword_prefix too long", t->path);
    memcpy(w->prefix, prefix, w->prefix_len + 1);
    mer_status st = mer__strmap_init(&w->vocab, (size_t)t->vocab_size);
    /* Later duplicates win, as in both references (a dict filled in file order). */
    for (int64_t i = t->vocab_size - 1; i >= 0 && !st; i--)
        if (t->pieces[i]) st = mer__strmap_put(&w->vocab, t->pieces[i], strlen(t->pieces[i]),
                                               (int32_t)i, NULL);
    if (st) return st;
    t->unk_id = mer__strmap_get(&w->vocab, unk, strlen(unk));
    if (t->unk_id < 0)
        return mer__err(MER_ERR_FORMAT, "%s: the unknown token '%s' is not in the vocabulary",
                        t->path, unk);
    return MER_OK;
}

int32_t mer__wordpiece_lookup(const mer_tokenizer *t, const char *piece) {
    const wp_impl *w = t->impl;
    return mer__strmap_get(&w->vocab, piece, strlen(piece));
}

/* ---- vocab.txt ---------------------------------------------------------------------------- */

static mer_status cfg_bool(const cJSON *cfg, const char *key, int def, int *out,
                           const char *path) {
    *out = def;
    const cJSON *v = cfg ? cJSON_GetObjectItemCaseSensitive(cfg, key) : NULL;
    if (!v || cJSON_IsNull(v)) return MER_OK;
    if (!cJSON_IsBool(v))
        return mer__err(MER_ERR_FORMAT, "%s: '%s' is not true/false", path, key);
    *out = cJSON_IsTrue(v);
    return MER_OK;
}

static const char *cfg_token(const cJSON *cfg, const cJSON *map, const char *key,
                             const char *def) {
    const char *s = cfg ? mer__tok_json_token(cJSON_GetObjectItemCaseSensitive(cfg, key)) : NULL;
    if (!s && map) s = mer__tok_json_token(cJSON_GetObjectItemCaseSensitive(map, key));
    return s ? s : def;
}

mer_status mer__wordpiece_load(mer_tokenizer *t, const char *file, const char *dir) {
    char *data = NULL;
    size_t size = 0;
    cJSON *cfg = NULL, *map = NULL;
    char p[MER_PATH_CAP];
    mer_status st = mer__read_file(file, &data, &size);
    if (st) return st;
    int64_t lines = 0;
    for (size_t i = 0; i < size; i++) lines += data[i] == '\n';
    if (size && data[size - 1] != '\n') lines++;
    if (lines == 0) {
        free(data);
        return mer__err(MER_ERR_FORMAT, "%s: empty vocabulary", file);
    }
    if (lines > INT32_MAX) {
        free(data);
        return mer__err(MER_ERR_FORMAT, "%s: too many lines", file);
    }
    t->pieces = calloc((size_t)lines, sizeof *t->pieces);
    if (!t->pieces) {
        free(data);
        return mer__err(MER_ERR_NOMEM, "out of memory");
    }
    t->vocab_size = lines;
    size_t pos = 0;
    for (int64_t i = 0; i < lines && !st; i++) {
        size_t e = pos;
        while (e < size && data[e] != '\n') e++;
        size_t l = e - pos;
        if (l && data[pos + l - 1] == '\r') l--;
        for (size_t k = 0; k < l; k++) {
            uint32_t cp;
            int n = mer__utf8_decode((const uint8_t *)data + pos + k, l - k, &cp);
            if (!n) {
                st = mer__err(MER_ERR_FORMAT, "%s: line %lld: invalid UTF-8", file,
                              (long long)i + 1);
                break;
            }
            k += (size_t)n - 1;
        }
        if (st) break;
        t->pieces[i] = malloc(l + 1);
        if (!t->pieces[i]) {
            st = mer__err(MER_ERR_NOMEM, "out of memory");
            break;
        }
        memcpy(t->pieces[i], data + pos, l);
        t->pieces[i][l] = '\0';
        pos = e + 1;
    }
    free(data);
    if (st) return st;

    snprintf(p, sizeof p, "%s/tokenizer_config.json", dir);
    st = mer__tok_read_json(p, &cfg, (int[]){0});
    if (!st) {
        snprintf(p, sizeof p, "%s/special_tokens_map.json", dir);
        st = mer__tok_read_json(p, &map, (int[]){0});
    }
    int lower = 1, strip = -1, chinese = 1;
    snprintf(p, sizeof p, "%s/tokenizer_config.json", dir);
    if (!st) st = cfg_bool(cfg, "do_lower_case", 1, &lower, p);
    if (!st) st = cfg_bool(cfg, "tokenize_chinese_chars", 1, &chinese, p);
    if (!st) st = cfg_bool(cfg, "strip_accents", -1, &strip, p);
    const char *unk = cfg_token(cfg, map, "unk_token", "[UNK]");
    const char *cls = cfg_token(cfg, map, "cls_token", "[CLS]");
    const char *sep = cfg_token(cfg, map, "sep_token", "[SEP]");
    const char *pad = cfg_token(cfg, map, "pad_token", "[PAD]");
    const char *mask = cfg_token(cfg, map, "mask_token", "[MASK]");
    if (!st) st = mer__wordpiece_setup(t, lower, strip < 0 ? lower : strip, chinese, 1, "##",
                                       100, unk);
    if (!st) {
        t->bos_id = mer__wordpiece_lookup(t, cls);
        t->eos_id = mer__wordpiece_lookup(t, sep);
        t->pad_id = mer__wordpiece_lookup(t, pad);
        t->add_bos = t->add_eos = 1;
        int32_t mask_id = mer__wordpiece_lookup(t, mask);
        const char *names[5] = {cls, sep, unk, pad, mask};
        int32_t ids[5] = {t->bos_id, t->eos_id, t->unk_id, t->pad_id, mask_id};
        /* BertTokenizer never splits its special tokens: they are matched in the raw text. */
        for (int i = 0; i < 5 && !st; i++) {
            if (ids[i] < 0) continue;
            st = mer__tok_add_special(t, names[i], ids[i]);
            if (!st) st = mer__tok_add_added(t, names[i], strlen(names[i]), ids[i], 0, 0);
        }
    }
    cJSON_Delete(cfg);
    cJSON_Delete(map);
    return st;
}
