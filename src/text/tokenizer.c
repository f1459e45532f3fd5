/*
 * tokenizer.c -- the public tokenizer API: picks the reader by the files a model directory
 * holds (tokenizer.json, tokenizer.model, vocab.txt), splits added/special tokens out of the
 * text before the model sees it (as Hugging Face's AddedVocabulary does), and adds BOS/EOS or
 * [CLS]/[SEP] as the model's configuration asks.
 */
#include "text/text_internal.h"

#include "io/io_internal.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>

mer_status mer__tok_add_special(mer_tokenizer *t, const char *text, int32_t id) {
    if (!text || id < 0) return MER_OK;
    for (int32_t i = 0; i < t->n_specials; i++)
        if (t->specials[i].id == id && !strcmp(t->specials[i].text, text)) return MER_OK;
    mer__special *s = realloc(t->specials, (size_t)(t->n_specials + 1) * sizeof *s);
    if (!s) return mer__err(MER_ERR_NOMEM, "out of memory");
    t->specials = s;
    char *c = strdup(text);
    if (!c) return mer__err(MER_ERR_NOMEM, "out of memory");
    s[t->n_specials].text = c;
    s[t->n_specials].id = id;
    t->n_specials++;
    return MER_OK;
}

mer_status mer__tok_add_added(mer_tokenizer *t, const char *text, size_t len, int32_t id,
                              int lstrip, int rstrip) {
    if (!len) return MER_OK;
    mer__added *a = realloc(t->added, (size_t)(t->n_added + 1) * sizeof *a);
    if (!a) return mer__err(MER_ERR_NOMEM, "out of memory");
    t->added = a;
    char *c = malloc(len + 1);
    if (!c) return mer__err(MER_ERR_NOMEM, "out of memory");
    memcpy(c, text, len);
    c[len] = '\0';
    a[t->n_added] = (mer__added){c, len, id, lstrip, rstrip};
    t->n_added++;
    t->added_first[(uint8_t)c[0]] = 1;
    return MER_OK;
}

mer_status mer__tok_read_json(const char *path, cJSON **out, int *missing) {
    *out = NULL;
    if (missing) *missing = 0;
    struct stat sb;
    if (stat(path, &sb) != 0) {
        if (missing && errno == ENOENT) {
            *missing = 1;
            return MER_OK;
        }
        return mer__err(MER_ERR_IO, "%s: %s", path, strerror(errno));
    }
    char *data;
    size_t size;
    mer_status st = mer__read_file(path, &data, &size);
    if (st) return st;
    st = mer__json_parse_text(out, data, size, path);
    free(data);
    return st;
}

const char *mer__tok_json_token(const cJSON *v) {
    if (cJSON_IsString(v)) return v->valuestring;
    if (cJSON_IsObject(v)) {
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(v, "content");
        if (cJSON_IsString(c)) return c->valuestring;
    }
    return NULL;
}

/* ---- loading ------------------------------------------------------------------------------ */

static int is_file(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISREG(sb.st_mode);
}

static const char *base_name(const char *p) {
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

static int ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

static mer_status load_file(mer_tokenizer *t, const char *file, const char *dir) {
    t->path = strdup(file);
    if (!t->path) return mer__err(MER_ERR_NOMEM, "out of memory");
    t->bos_id = t->eos_id = t->unk_id = t->pad_id = -1;
    const char *b = base_name(file);
    if (ends_with(b, ".json")) return mer__hfjson_load(t, file, dir);
    if (ends_with(b, ".txt")) return mer__wordpiece_load(t, file, dir);
    return mer__spm_load(t, file, dir);
}

static void tok_clear(mer_tokenizer *t) {
    if (t->free_impl && t->impl) t->free_impl(t->impl);
    if (t->pieces)
        for (int64_t i = 0; i < t->vocab_size; i++) free(t->pieces[i]);
    free(t->pieces);
    for (int32_t i = 0; i < t->n_specials; i++) free(t->specials[i].text);
    free(t->specials);
    for (int32_t i = 0; i < t->n_added; i++) free(t->added[i].text);
    free(t->added);
    free(t->path);
    memset(t, 0, sizeof *t);
}

void mer_tokenizer_free(mer_tokenizer *t) {
    if (!t) return;
    tok_clear(t);
    free(t);
}

mer_status mer_tokenizer_load(mer_tokenizer **out, const char *path) {
    if (!out || !path) return mer__err(MER_ERR_INVALID_ARG, "mer_tokenizer_load: NULL argument");
    *out = NULL;
    struct stat sb;
    if (stat(path, &sb) != 0) return mer__err(MER_ERR_IO, "%s: %s", path, strerror(errno));
    mer_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return mer__err(MER_ERR_NOMEM, "out of memory");
    mer_status st;
    if (S_ISDIR(sb.st_mode)) {
        static const char *const names[] = {"tokenizer.json", "tokenizer.model", "vocab.txt"};
        char cand[3][4096];
        int have[3], any = 0;
        for (int i = 0; i < 3; i++) {
            snprintf(cand[i], sizeof cand[i], "%s/%s", path, names[i]);
            have[i] = is_file(cand[i]);
            any |= have[i];
        }
        if (!any) {
            free(t);
            return mer__err(MER_ERR_NOT_FOUND,
                            "%s: no tokenizer.json, tokenizer.model or vocab.txt in the directory",
                            path);
        }
        st = MER_ERR_NOT_FOUND;
        for (int i = 0; i < 3; i++) {
            if (!have[i]) continue;
            st = load_file(t, cand[i], path);
            if (st != MER_ERR_UNSUPPORTED) break;
            /* A tokenizer.json this reader does not support (e.g. LLaMA-2's Metaspace BPE):
             * the slow tokenizer's file beside it is what transformers used before fast ones
             * existed, so take it, and say so. */
            int later = 0;
            for (int k = i + 1; k < 3; k++) later |= have[k];
            if (!later) break;
            mer__log(MER_LOG_INFO, "%s (using the next tokenizer file)", mer_last_error());
            tok_clear(t);
        }
    } else {
        char dir[MER_PATH_CAP];
        snprintf(dir, sizeof dir, "%s", path);
        char *slash = strrchr(dir, '/');
        if (slash) *slash = '\0';
        else snprintf(dir, sizeof dir, ".");
        st = load_file(t, path, dir);
    }
    if (st) {
        mer_tokenizer_free(t);
        return st;
    }
    *out = t;
    return MER_OK;
}

/* ---- encoding ----------------------------------------------------------------------------- */

static int is_ws_byte_at(const char *s, size_t n, size_t *k) {
    uint32_t cp;
    int len = mer__utf8_decode((const uint8_t *)s, n, &cp);
    if (len && mer__uc_is_space(cp)) {
        *k = (size_t)len;
        return 1;
    }
    return 0;
}

/* Trailing / leading whitespace of [a, b) removed (for lstrip / rstrip added tokens). */
static size_t trim_end(const char *s, size_t a, size_t b) {
    while (b > a) {
        size_t p = b - 1, k;
        while (p > a && ((uint8_t)s[p] & 0xC0) == 0x80) p--;
        if (!is_ws_byte_at(s + p, b - p, &k) || p + k != b) break;
        b = p;
    }
    return b;
}

static size_t trim_start(const char *s, size_t a, size_t b) {
    size_t k;
    while (a < b && is_ws_byte_at(s + a, b - a, &k)) a += k;
    return a;
}

/* Longest added token starting at text[i], or -1. */
static int32_t match_added(const mer_tokenizer *t, const char *text, size_t len, size_t i) {
    int32_t best = -1;
    size_t best_len = 0;
    for (int32_t k = 0; k < t->n_added; k++) {
        const mer__added *a = &t->added[k];
        if (a->len > best_len && a->len <= len - i && !memcmp(text + i, a->text, a->len)) {
            best = k;
            best_len = a->len;
        }
    }
    return best;
}

static mer_status encode_segment(const mer_tokenizer *t, const char *text, size_t a, size_t b,
                                 mer__u32buf *cps, mer__i32buf *out) {
    if (a >= b) return MER_OK;
    cps->n = 0;
    mer_status st = mer__utf8_to_u32(text + a, b - a, cps);
    if (st) return st;
    return t->encode(t, cps->v, cps->n, text + a, b - a, out);
}

mer_status mer_tokenizer_encode(const mer_tokenizer *t, const char *text, size_t len,
                                int add_special, int32_t **ids, int64_t *n) {
    if (!t || (!text && len) || !ids || !n)
        return mer__err(MER_ERR_INVALID_ARG, "mer_tokenizer_encode: NULL argument");
    *ids = NULL;
    *n = 0;
    /* Validate the whole text first so the error names the offset in the caller's text. */
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        int k = mer__utf8_decode((const uint8_t *)text + i, len - i, &cp);
        if (!k) return mer__err(MER_ERR_FORMAT, "text: invalid UTF-8 at byte %zu", i);
        i += (size_t)k;
    }
    mer__i32buf out = {0};
    mer__u32buf cps = {0};
    mer_status st = MER_OK;
    if (add_special && t->template_set)
        for (int32_t k = 0; k < t->n_pre && !st; k++) st = mer__i32_push(&out, t->pre[k]);
    else if (add_special && t->add_bos && t->bos_id >= 0)
        st = mer__i32_push(&out, t->bos_id);
    size_t seg = 0, i = 0;
    int pending_rstrip = 0;
    while (!st && i < len) {
        int32_t k = t->added_first[(uint8_t)text[i]] ? match_added(t, text, len, i) : -1;
        if (k < 0) {
            i++;
            continue;
        }
        const mer__added *a = &t->added[k];
        size_t end = a->lstrip ? trim_end(text, seg, i) : i;
        if (pending_rstrip) seg = trim_start(text, seg, end);
        st = encode_segment(t, text, seg, end, &cps, &out);
        if (!st) st = mer__i32_push(&out, a->id);
        i += a->len;
        seg = i;
        pending_rstrip = a->rstrip;
    }
    if (!st) {
        if (pending_rstrip) seg = trim_start(text, seg, len);
        st = encode_segment(t, text, seg, len, &cps, &out);
    }
    if (add_special && t->template_set)
        for (int32_t k = 0; k < t->n_post && !st; k++) st = mer__i32_push(&out, t->post[k]);
    else if (!st && add_special && t->add_eos && t->eos_id >= 0)
        st = mer__i32_push(&out, t->eos_id);
    free(cps.v);
    if (st) {
        free(out.v);
        return st;
    }
    if (!out.v) {
        out.v = malloc(sizeof *out.v);
        if (!out.v) return mer__err(MER_ERR_NOMEM, "out of memory");
    }
    *ids = out.v;
    *n = (int64_t)out.n;
    return MER_OK;
}

int64_t mer_tokenizer_vocab_size(const mer_tokenizer *t) { return t ? t->vocab_size : 0; }
const char *mer_tokenizer_kind(const mer_tokenizer *t) { return t ? t->kind : ""; }

mer_status mer_tokenizer_decode_piece(const mer_tokenizer *t, int32_t id, const char **piece) {
    if (!t || !piece) return mer__err(MER_ERR_INVALID_ARG, "mer_tokenizer_decode_piece: NULL");
    if (id < 0 || id >= t->vocab_size || !t->pieces[id])
        return mer__err(MER_ERR_INVALID_ARG, "%s: token id %d out of range [0, %lld)", t->path,
                        id, (long long)t->vocab_size);
    *piece = t->pieces[id];
    return MER_OK;
}

int32_t mer_tokenizer_special_count(const mer_tokenizer *t) { return t ? t->n_specials : 0; }

mer_status mer_tokenizer_special(const mer_tokenizer *t, int32_t i, const char **text,
                                 int32_t *id) {
    if (!t || i < 0 || i >= t->n_specials)
        return mer__err(MER_ERR_INVALID_ARG, "special token index %d out of range", i);
    if (text) *text = t->specials[i].text;
    if (id) *id = t->specials[i].id;
    return MER_OK;
}

int32_t mer_tokenizer_bos_id(const mer_tokenizer *t) { return t ? t->bos_id : -1; }
int32_t mer_tokenizer_eos_id(const mer_tokenizer *t) { return t ? t->eos_id : -1; }
int32_t mer_tokenizer_unk_id(const mer_tokenizer *t) { return t ? t->unk_id : -1; }
int32_t mer_tokenizer_pad_id(const mer_tokenizer *t) { return t ? t->pad_id : -1; }
