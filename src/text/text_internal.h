/*
 * text_internal.h -- what the tokenizer files of src/text share: UTF-8 and Unicode helpers
 * (unicode.c), growable buffers and hash maps (textutil.c), and the tokenizer object that
 * tokenizer.c dispatches over (one loader per format: wordpiece.c, sentencepiece.c, bpe.c).
 */
#ifndef MER_TEXT_INTERNAL_H
#define MER_TEXT_INTERNAL_H

#include "internal.h"

#include <stddef.h>
#include <stdint.h>

/* ---- UTF-8 ------------------------------------------------------------------------------- */

/* Length (1-4) of the well-formed UTF-8 sequence at s (n bytes available), its code point in
 * *cp; 0 when malformed (overlong, surrogate, > U+10FFFF, truncated, stray continuation). */
int mer__utf8_decode(const uint8_t *s, size_t n, uint32_t *cp);
/* Bytes written to out (1-4). */
int mer__utf8_encode(uint32_t cp, char out[4]);

/* ---- growable buffers --------------------------------------------------------------------- */

typedef struct { uint32_t *v; size_t n, cap; } mer__u32buf;
typedef struct { int32_t *v; size_t n, cap; } mer__i32buf;
typedef struct { char *v; size_t n, cap; } mer__chbuf;     /* v NUL-terminated when n > 0 */
mer_status mer__u32_push(mer__u32buf *b, uint32_t x);
mer_status mer__i32_push(mer__i32buf *b, int32_t x);
mer_status mer__ch_append(mer__chbuf *b, const char *s, size_t n);
mer_status mer__ch_push_cp(mer__chbuf *b, uint32_t cp);

/* Decode text (len bytes) into code points; MER_ERR_FORMAT "invalid UTF-8 at byte N". */
mer_status mer__utf8_to_u32(const char *text, size_t len, mer__u32buf *out);

/* ---- Unicode properties (tables from scripts/gen_unicode_tables.py) ----------------------- */

enum {
    MER__UC_Cn, MER__UC_Lu, MER__UC_Ll, MER__UC_Lt, MER__UC_Lm, MER__UC_Lo, MER__UC_Mn,
    MER__UC_Mc, MER__UC_Me, MER__UC_Nd, MER__UC_Nl, MER__UC_No, MER__UC_Pc, MER__UC_Pd,
    MER__UC_Ps, MER__UC_Pe, MER__UC_Pi, MER__UC_Pf, MER__UC_Po, MER__UC_Sm, MER__UC_Sc,
    MER__UC_Sk, MER__UC_So, MER__UC_Zs, MER__UC_Zl, MER__UC_Zp, MER__UC_Cc, MER__UC_Cf,
    MER__UC_Cs, MER__UC_Co
};
int mer__uc_cat(uint32_t cp);
static inline int mer__uc_is_letter(uint32_t cp) {
    int c = mer__uc_cat(cp);
    return c >= MER__UC_Lu && c <= MER__UC_Lo;
}
static inline int mer__uc_is_number(uint32_t cp) {
    int c = mer__uc_cat(cp);
    return c >= MER__UC_Nd && c <= MER__UC_No;
}
static inline int mer__uc_is_punct(uint32_t cp) {
    int c = mer__uc_cat(cp);
    return c >= MER__UC_Pc && c <= MER__UC_Po;
}
/* The Unicode White_Space property (what Oniguruma's and Rust's \s match). */
int mer__uc_is_space(uint32_t cp);
/* Append the lower case of cp (str.lower(); U+0130 gives two code points). */
mer_status mer__uc_lower(uint32_t cp, mer__u32buf *out);
/* Append the lower case of the string s (str.lower(), JavaScript's toLowerCase): per code point,
 * except a capital sigma that ends a word (Final_Sigma: cased letter before, none after,
 * case-ignorable characters skipped) becomes final sigma U+03C2. */
mer_status mer__uc_lower_str(const uint32_t *s, size_t n, mer__u32buf *out);
/* Canonical decomposition (NFD) / composition (NFC) of in[0..n) appended to out. */
mer_status mer__uc_nfd(const uint32_t *in, size_t n, mer__u32buf *out);
mer_status mer__uc_nfc(const uint32_t *in, size_t n, mer__u32buf *out);
const char *mer__uc_version(void);

/* ---- hash maps ---------------------------------------------------------------------------- */

/* Byte string -> int32 (open addressing; keys are borrowed and must outlive the map). */
typedef struct {
    const char **keys;
    uint32_t *klen;
    int32_t *vals;
    size_t cap, n;
} mer__strmap;
mer_status mer__strmap_init(mer__strmap *m, size_t expected);
/* Insert; when key exists, keeps the first value and returns MER_OK with *dup = 1. */
mer_status mer__strmap_put(mer__strmap *m, const char *key, size_t len, int32_t val, int *dup);
/* Insert or overwrite (the key pointer too). */
mer_status mer__strmap_set(mer__strmap *m, const char *key, size_t len, int32_t val);
/* Value or -1. */
int32_t mer__strmap_get(const mer__strmap *m, const char *key, size_t len);
void mer__strmap_free(mer__strmap *m);

/* uint64 -> int32 (BPE merge ranks keyed by (left id << 32 | right id)). */
typedef struct {
    uint64_t *keys;
    int32_t *vals;
    size_t cap, n;
} mer__u64map;
mer_status mer__u64map_init(mer__u64map *m, size_t expected);
mer_status mer__u64map_put(mer__u64map *m, uint64_t key, int32_t val);  /* keeps the first */
int32_t mer__u64map_get(const mer__u64map *m, uint64_t key);            /* -1 if absent */
void mer__u64map_free(mer__u64map *m);

/* The merge queue of both BPEs (tokenizer.json ranks, SentencePiece scores): a binary heap
 * popping the smallest key, the smaller left index among equal keys (the leftmost pair). The
 * key is exact for an int32 rank and for a negated float score. */
typedef struct {
    double key;
    int32_t left, right;
    int64_t aux;  /* the caller's: a rank, a merged length */
} mer__merge;
typedef struct {
    mer__merge *v;
    size_t n, cap;
} mer__mergeheap;
mer_status mer__mergeheap_push(mer__mergeheap *h, mer__merge p);
mer__merge mer__mergeheap_pop(mer__mergeheap *h); /* h->n > 0 */

/* ---- the tokenizer object ------------------------------------------------------------------ */

typedef struct {
    char *text;
    int32_t id;
} mer__special;

/* A token matched in the raw text before the model runs (HF added tokens; BERT's specials). */
typedef struct {
    char *text;
    size_t len;
    int32_t id;
    int lstrip, rstrip;
} mer__added;

struct mer_tokenizer {
    const char *kind;
    char *path;                 /* the tokenizer file, for messages */
    int64_t vocab_size;
    char **pieces;              /* (vocab_size) piece of each id, owned */
    int32_t bos_id, eos_id, unk_id, pad_id;
    int add_bos, add_eos;       /* what add_special adds (also [CLS]/[SEP]) */
    int32_t pre[4], post[4];    /* a post-processor template's ids, used instead when set */
    int32_t n_pre, n_post, template_set;
    mer__special *specials;
    int32_t n_specials;
    mer__added *added;
    int32_t n_added;
    uint8_t added_first[256];   /* 1 where some added token starts with that byte */
    /* Appends the ids of text (valid UTF-8, already checked) without specials. */
    mer_status (*encode)(const mer_tokenizer *t, const uint32_t *cps, size_t n,
                         const char *text, size_t len, mer__i32buf *out);
    void (*free_impl)(void *impl);
    void *impl;
};

/* Loaders: fill t (zeroed, path set) from the file; dir is the folder holding it (config
 * files are looked up there). */
mer_status mer__wordpiece_load(mer_tokenizer *t, const char *file, const char *dir);
mer_status mer__spm_load(mer_tokenizer *t, const char *file, const char *dir);
mer_status mer__hfjson_load(mer_tokenizer *t, const char *file, const char *dir);

/* Shared config helpers (tokenizer.c). Adds a special token to t->specials (copying text). */
mer_status mer__tok_add_special(mer_tokenizer *t, const char *text, int32_t id);
/* Adds a token matched in the raw text (copied). */
mer_status mer__tok_add_added(mer_tokenizer *t, const char *text, size_t len, int32_t id,
                              int lstrip, int rstrip);
/* Parse a JSON file; with missing != NULL a file that does not exist gives MER_OK, *out NULL
 * and *missing = 1. *out is freed with cJSON_Delete. */
struct cJSON;
mer_status mer__tok_read_json(const char *path, struct cJSON **out, int *missing);
/* A special-token value of tokenizer_config.json: "text" or {"content": "text", ...}. */
const char *mer__tok_json_token(const struct cJSON *v);

/* WordPiece over t->pieces (set by the caller): options as BertNormalizer's. */
mer_status mer__wordpiece_setup(mer_tokenizer *t, int lower, int strip_accents, int chinese,
                                int clean, const char *prefix, int32_t max_chars,
                                const char *unk);
int32_t mer__wordpiece_lookup(const mer_tokenizer *t, const char *piece);  /* id or -1 */

/* The protobuf reader of sentencepiece.c, exposed for its fuzz target: parses a ModelProto
 * from memory into t (as mer__spm_load does, config files not consulted). */
mer_status mer__spm_parse(mer_tokenizer *t, const uint8_t *data, size_t size, const char *name);
/* The tokenizer.json parser of bpe.c from memory (for its fuzz target). */
mer_status mer__hfjson_parse(mer_tokenizer *t, const char *json, size_t size, const char *name);

#endif /* MER_TEXT_INTERNAL_H */
