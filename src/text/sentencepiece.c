/*
 * sentencepiece.c -- SentencePiece `tokenizer.model` files (LLaMA-1/2, Baichuan, Baichuan2):
 * a protobuf reader of our own for ModelProto, the normaliser (the precompiled character map
 * of nmt_nfkc & co. is a darts-clone double-array trie, walked here; identity models have
 * none), BPE (highest-scoring adjacent pair first, ties to the left) and unigram (Viterbi over
 * the pieces, as sentencepiece's "optimized" encoder: same float/double arithmetic, same tie
 * rule), user-defined pieces, byte fallback (<0xNN>) and merged runs of unknowns.
 * ref: sentencepiece 0.1.97 normalizer.cc, bpe_model.cc, unigram_model.cc,
 *      sentencepiece_processor.cc (PopulateSentencePieceText).
 */
#include "text/text_internal.h"

#include "io/io_internal.h"

#include <ctype.h>
#include <float.h>
#include <string.h>

enum { PT_NORMAL = 1, PT_UNKNOWN = 2, PT_CONTROL = 3, PT_USER = 4, PT_UNUSED = 5, PT_BYTE = 6 };
enum { MT_UNIGRAM = 1, MT_BPE = 2, MT_WORD = 3, MT_CHAR = 4 };

typedef struct {
    int model_type;
    float *scores;               /* (vocab) */
    uint8_t *types;              /* (vocab) */
    mer__strmap pieces;          /* normal/user/unused piece -> id; proper prefixes -> -2 */
    mer__strmap reserved;        /* control/unknown/byte piece -> id */
    int32_t byte_ids[256];       /* <0xNN> ids with byte fallback, else -1 */
    int byte_fallback;
    int32_t n_user;
    int32_t *user_ids;           /* user-defined pieces, matched before normalisation */
    uint8_t user_first[256];     /* 1 where some user-defined piece starts with that byte */
    float min_score, max_score;
    /* normaliser */
    int add_dummy_prefix, remove_extra_ws, escape_ws, ws_suffix;
    uint8_t *charsmap;           /* owned copy of precompiled_charsmap */
    size_t charsmap_size;
    const uint32_t *trie;        /* into charsmap (4-byte aligned copy) */
    size_t trie_units;
    const char *norm;            /* normalised strings */
    size_t norm_size;
    char name[64];
} spm_impl;

static void spm_free(void *p) {
    spm_impl *m = p;
    free(m->scores);
    free(m->types);
    mer__strmap_free(&m->pieces);
    mer__strmap_free(&m->reserved);
    free(m->user_ids);
    free(m->charsmap);
    free(m);
}

/* ---- protobuf ----------------------------------------------------------------------------- */

typedef struct {
    const uint8_t *p, *end;
} pb;

static int pb_varint(pb *b, uint64_t *v) {
    uint64_t x = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (b->p >= b->end) return 0;
        uint8_t c = *b->p++;
        x |= (uint64_t)(c & 0x7F) << shift;
        if (!(c & 0x80)) {
            *v = x;
            return 1;
        }
    }
    return 0;
}

/* Next field: number, wire type, and for length-delimited fields the payload. Returns 1, 0 at
 * the end, -1 when malformed. Fixed-width payloads come back in *v (32-bit: low bits). */
static int pb_next(pb *b, uint32_t *field, int *wire, uint64_t *v, pb *sub) {
    if (b->p >= b->end) return 0;
    uint64_t key;
    if (!pb_varint(b, &key)) return -1;
    *field = (uint32_t)(key >> 3);
    *wire = (int)(key & 7);
    if (*field == 0 || key >> 32) return -1;
    switch (*wire) {
    case 0:
        return pb_varint(b, v) ? 1 : -1;
    case 1:
        if (b->end - b->p < 8) return -1;
        memcpy(v, b->p, 8);
        b->p += 8;
        return 1;
    case 2: {
        uint64_t len;
        if (!pb_varint(b, &len) || len > (uint64_t)(b->end - b->p)) return -1;
        sub->p = b->p;
        sub->end = b->p + len;
        b->p += len;
        return 1;
    }
    case 5: {
        if (b->end - b->p < 4) return -1;
        uint32_t u;
        memcpy(&u, b->p, 4);
        *v = u;
        b->p += 4;
        return 1;
    }
    default:
        return -1;   /* groups (3, 4) and reserved types are not used by ModelProto */
    }
}

#define PB_BAD(what) mer__err(MER_ERR_FORMAT, "%s: truncated or malformed protobuf (%s)", name, what)

typedef struct {
    pb piece;
    float score;
    int type;
} raw_piece;

static mer_status parse_piece(pb b, raw_piece *rp, const char *name) {
    rp->piece.p = rp->piece.end = NULL;
    rp->score = 0;
    rp->type = PT_NORMAL;
    uint32_t f;
    int w, r;
    uint64_t v;
    pb sub;
    while ((r = pb_next(&b, &f, &w, &v, &sub)) == 1) {
        if (f == 1 && w == 2) rp->piece = sub;
        else if (f == 2 && w == 5) {
            uint32_t u = (uint32_t)v;
            memcpy(&rp->score, &u, 4);
        } else if (f == 3 && w == 0) rp->type = (int)v;
    }
    return r < 0 ? PB_BAD("a piece") : MER_OK;
}

static mer_status spm_encode(const mer_tokenizer *t, const uint32_t *cps, size_t ncp,
                             const char *text, size_t len, mer__i32buf *out);

static int32_t as_int32(uint64_t v) { return (int32_t)(uint32_t)v; }

mer_status mer__spm_parse(mer_tokenizer *t, const uint8_t *data, size_t size, const char *name) {
    spm_impl *m = calloc(1, sizeof *m);
    if (!m) return mer__err(MER_ERR_NOMEM, "out of memory");
    t->impl = m;
    t->free_impl = spm_free;
    m->model_type = MT_UNIGRAM;
    m->add_dummy_prefix = m->remove_extra_ws = m->escape_ws = 1;
    int32_t unk_id = 0, bos_id = 1, eos_id = 2, pad_id = -1;
    for (int i = 0; i < 256; i++) m->byte_ids[i] = -1;

    /* Pass 1: count pieces and read the specs. */
    pb b = {data, data + size}, sub, sub2;
    uint32_t f, f2;
    int w, w2, r, r2;
    uint64_t v, v2;
    int64_t n = 0;
    pb charsmap = {NULL, NULL};
    while ((r = pb_next(&b, &f, &w, &v, &sub)) == 1) {
        if (f == 1 && w == 2) {
            n++;
        } else if (f == 2 && w == 2) {
            while ((r2 = pb_next(&sub, &f2, &w2, &v2, &sub2)) == 1) {
                if (w2 != 0) continue;
                switch (f2) {
                case 3: m->model_type = (int)v2; break;
                case 24: m->ws_suffix = v2 != 0; break;
                case 35: m->byte_fallback = v2 != 0; break;
                case 40: unk_id = as_int32(v2); break;
                case 41: bos_id = as_int32(v2); break;
                case 42: eos_id = as_int32(v2); break;
                case 43: pad_id = as_int32(v2); break;
                default: break;
                }
            }
            if (r2 < 0) return PB_BAD("trainer_spec");
        } else if (f == 3 && w == 2) {
            while ((r2 = pb_next(&sub, &f2, &w2, &v2, &sub2)) == 1) {
                if (f2 == 1 && w2 == 2) {
                    size_t l = (size_t)(sub2.end - sub2.p);
                    if (l >= sizeof m->name) l = sizeof m->name - 1;
                    memcpy(m->name, sub2.p, l);
                    m->name[l] = '\0';
                } else if (f2 == 2 && w2 == 2) {
                    charsmap = sub2;
                } else if (w2 == 0 && f2 == 3) {
                    m->add_dummy_prefix = v2 != 0;
                } else if (w2 == 0 && f2 == 4) {
                    m->remove_extra_ws = v2 != 0;
                } else if (w2 == 0 && f2 == 5) {
                    m->escape_ws = v2 != 0;
                }
            }
            if (r2 < 0) return PB_BAD("normalizer_spec");
        }
    }
    if (r < 0) return PB_BAD("ModelProto");
    if (n == 0) return mer__err(MER_ERR_FORMAT, "%s: no pieces (not a SentencePiece model?)", name);
    if (n > INT32_MAX / 2) return mer__err(MER_ERR_FORMAT, "%s: too many pieces", name);
    if (m->model_type == MT_WORD || m->model_type == MT_CHAR)
        return mer__err(MER_ERR_UNSUPPORTED, "%s: SentencePiece model_type %s is not supported "
                        "(BPE and UNIGRAM are)", name, m->model_type == MT_WORD ? "WORD" : "CHAR");
    if (m->model_type != MT_BPE && m->model_type != MT_UNIGRAM)
        return mer__err(MER_ERR_FORMAT, "%s: unknown SentencePiece model_type %d", name,
                        m->model_type);
    t->kind = m->model_type == MT_BPE ? "sentencepiece-bpe" : "sentencepiece-unigram";
    t->encode = spm_encode;
    t->add_bos = 1;   /* LlamaTokenizer's defaults: add_bos_token true, add_eos_token false */
    t->add_eos = 0;

    /* Pass 2: the pieces. */
    t->vocab_size = n;
    t->pieces = calloc((size_t)n, sizeof *t->pieces);
    m->scores = calloc((size_t)n, sizeof *m->scores);
    m->types = calloc((size_t)n, sizeof *m->types);
    if (!t->pieces || !m->scores || !m->types) return mer__err(MER_ERR_NOMEM, "out of memory");
    mer_status st = mer__strmap_init(&m->pieces, (size_t)n * 4);
    if (!st) st = mer__strmap_init(&m->reserved, 300);
    if (st) return st;
    b.p = data;
    int64_t i = 0;
    int32_t unk_found = -1;
    int byte_found = 0;
    m->min_score = FLT_MAX;
    m->max_score = FLT_MIN;   /* as sentencepiece: FLT_MIN, the smallest positive float */
    while (!st && pb_next(&b, &f, &w, &v, &sub) == 1) {
        if (!(f == 1 && w == 2)) continue;
        raw_piece rp;
        st = parse_piece(sub, &rp, name);
        if (st) break;
        size_t len = (size_t)(rp.piece.end - rp.piece.p);
        if (!rp.piece.p || len == 0) {
            st = mer__err(MER_ERR_FORMAT, "%s: piece %lld is empty", name, (long long)i);
            break;
        }
        if (rp.type < PT_NORMAL || rp.type > PT_BYTE) {
            st = mer__err(MER_ERR_FORMAT, "%s: piece %lld has unknown type %d", name,
                          (long long)i, rp.type);
            break;
        }
        for (size_t k = 0; k < len;) {
            uint32_t cp;
            int q = mer__utf8_decode(rp.piece.p + k, len - k, &cp);
            if (!q) {
                st = mer__err(MER_ERR_FORMAT, "%s: piece %lld is not valid UTF-8", name,
                              (long long)i);
                break;
            }
            k += (size_t)q;
        }
        if (st) break;
        char *s = malloc(len + 1);
        if (!s) {
            st = mer__err(MER_ERR_NOMEM, "out of memory");
            break;
        }
        memcpy(s, rp.piece.p, len);
        s[len] = '\0';
        t->pieces[i] = s;
        m->scores[i] = rp.score;
        m->types[i] = (uint8_t)rp.type;
        int normal = rp.type == PT_NORMAL || rp.type == PT_USER || rp.type == PT_UNUSED;
        int dup = 0;
        if (normal) {
            /* A proper prefix inserted earlier holds -2: the piece's id replaces it. */
            int32_t old = mer__strmap_get(&m->pieces, s, len);
            if (old == -2) st = mer__strmap_set(&m->pieces, s, len, (int32_t)i);
            else st = mer__strmap_put(&m->pieces, s, len, (int32_t)i, &dup);
            for (size_t k = 1; k < len && !st; k++)
                st = mer__strmap_put(&m->pieces, s, k, -2, NULL);
        } else {
            st = mer__strmap_put(&m->reserved, s, len, (int32_t)i, &dup);
        }
        if (st) break;
        if (dup) {
            st = mer__err(MER_ERR_FORMAT, "%s: piece '%s' is defined twice", name, s);
            break;
        }
        if (rp.type == PT_NORMAL) {
            if (rp.score < m->min_score) m->min_score = rp.score;
            if (rp.score > m->max_score) m->max_score = rp.score;
        }
        if (rp.type == PT_UNKNOWN) {
            if (unk_found >= 0) {
                st = mer__err(MER_ERR_FORMAT, "%s: two unknown pieces", name);
                break;
            }
            unk_found = (int32_t)i;
        }
        if (rp.type == PT_USER) {
            int32_t *u = realloc(m->user_ids, (size_t)(m->n_user + 1) * sizeof *u);
            if (!u) {
                st = mer__err(MER_ERR_NOMEM, "out of memory");
                break;
            }
            m->user_ids = u;
            u[m->n_user++] = (int32_t)i;
            m->user_first[(uint8_t)s[0]] = 1;
        }
        if (rp.type == PT_BYTE) {
            unsigned hex;
            char tail;
            if (!m->byte_fallback) {
                st = mer__err(MER_ERR_FORMAT, "%s: byte piece %s but byte_fallback is off", name, s);
                break;
            }
            /* two hex digits exactly: %X alone would also take a sign ("<0x-1>") */
            if (len != 6 || !isxdigit((unsigned char)s[3]) || !isxdigit((unsigned char)s[4]) ||
                sscanf(s, "<0x%2X%c", &hex, &tail) != 2 || tail != '>' || hex > 0xFF ||
                m->byte_ids[hex] >= 0) {
                st = mer__err(MER_ERR_FORMAT, "%s: invalid byte piece '%s'", name, s);
                break;
            }
            m->byte_ids[hex] = (int32_t)i;
            byte_found++;
        }
        i++;
    }
    if (st) return st;
    if (unk_found < 0) return mer__err(MER_ERR_FORMAT, "%s: no unknown piece", name);
    if (m->byte_fallback && byte_found != 256)
        return mer__err(MER_ERR_FORMAT, "%s: byte_fallback is on but only %d of 256 byte pieces "
                        "exist", name, byte_found);
    (void)unk_id;
    t->unk_id = unk_found;
    t->bos_id = bos_id >= 0 && bos_id < n ? bos_id : -1;
    t->eos_id = eos_id >= 0 && eos_id < n ? eos_id : -1;
    t->pad_id = pad_id >= 0 && pad_id < n ? pad_id : -1;

    /* Precompiled character map: <u32 trie bytes><double-array units><NUL-terminated strings>. */
    if (charsmap.p && charsmap.end > charsmap.p) {
        size_t cs = (size_t)(charsmap.end - charsmap.p);
        uint32_t tsize;
        if (cs <= 4) return mer__err(MER_ERR_FORMAT, "%s: precompiled_charsmap is broken", name);
        memcpy(&tsize, charsmap.p, 4);
        if (tsize >= cs - 4 + 1 || tsize % 4 || tsize == 0)
            return mer__err(MER_ERR_FORMAT, "%s: precompiled_charsmap trie size %u exceeds the "
                            "map (%zu bytes)", name, tsize, cs);
        m->charsmap = malloc(cs);
        if (!m->charsmap) return mer__err(MER_ERR_NOMEM, "out of memory");
        memcpy(m->charsmap, charsmap.p, cs);
        m->charsmap_size = cs;
        m->trie = (const uint32_t *)(m->charsmap + 4);
        m->trie_units = tsize / 4;
        m->norm = (const char *)m->charsmap + 4 + tsize;
        m->norm_size = cs - 4 - tsize;
    }
    return MER_OK;
}

/* ---- normaliser --------------------------------------------------------------------------- */

/* Longest user-defined piece at s, as its byte length (0: none). */
static size_t match_user(const mer_tokenizer *t, const spm_impl *m, const char *s, size_t n) {
    size_t best = 0;
    if (!m->user_first[(uint8_t)s[0]]) return 0;
    for (int32_t k = 0; k < m->n_user; k++) {
        const char *p = t->pieces[m->user_ids[k]];
        size_t l = strlen(p);
        if (l > best && l <= n && !memcmp(s, p, l)) best = l;
    }
    return best;
}

/* darts-clone commonPrefixSearch, keeping the longest match: its value (offset of the
 * replacement in the strings) and length; 0 when nothing matches. */
static size_t trie_longest(const spm_impl *m, const uint8_t *key, size_t n, uint32_t *value) {
    const uint32_t *a = m->trie;
    size_t units = m->trie_units, best = 0;
#define OFFSET(u) (((u) >> 10) << (((u) & (1u << 9)) >> 6))
    size_t pos = OFFSET(a[0]);
    for (size_t i = 0; i < n; i++) {
        pos ^= key[i];
        if (pos >= units) return best;
        uint32_t u = a[pos];
        if ((u & ((1u << 31) | 0xFF)) != key[i]) return best;
        pos ^= OFFSET(u);
        if (pos >= units) return best;
        if ((u >> 8) & 1) {
            best = i + 1;
            *value = a[pos] & ((1u << 31) - 1);
        }
    }
#undef OFFSET
    return best;
}

/* NormalizePrefix: the replacement of the longest rule at s (or the character itself) and how
 * many input bytes it consumes. */
static void norm_prefix(const mer_tokenizer *t, const spm_impl *m, const char *s, size_t n,
                        const char **out, size_t *out_len, size_t *consumed) {
    size_t u = m->n_user ? match_user(t, m, s, n) : 0;
    if (u) {
        *out = s;
        *out_len = *consumed = u;
        return;
    }
    if (m->trie) {
        uint32_t val = 0;
        size_t l = trie_longest(m, (const uint8_t *)s, n, &val);
        if (l && val < m->norm_size) {
            const char *r = m->norm + val;
            const char *z = memchr(r, '\0', m->norm_size - val);
            *out = r;
            *out_len = z ? (size_t)(z - r) : m->norm_size - val;
            *consumed = l;
            return;
        }
    }
    uint32_t cp;
    int k = mer__utf8_decode((const uint8_t *)s, n, &cp);
    *out = s;
    *out_len = *consumed = k ? (size_t)k : 1;
}

static mer_status spm_normalize(const mer_tokenizer *t, const spm_impl *m, const char *in,
                                size_t n, mer__chbuf *out) {
    static const char ws[] = "\xe2\x96\x81";
    out->n = 0;
    mer_status st = mer__ch_append(out, "", 0);
    if (st || n == 0) return st;
    const char *r;
    size_t rl, c;
    if (m->remove_extra_ws) {
        while (n) {
            norm_prefix(t, m, in, n, &r, &rl, &c);
            if (!(rl == 1 && r[0] == ' ')) break;
            in += c;
            n -= c;
        }
    }
    if (n == 0) return MER_OK;
    const char *sp = m->escape_ws ? ws : " ";
    size_t spl = m->escape_ws ? 3 : 1;
    if (!m->ws_suffix && m->add_dummy_prefix) st = mer__ch_append(out, sp, spl);
    int prev_space = m->remove_extra_ws;
    while (!st && n) {
        norm_prefix(t, m, in, n, &r, &rl, &c);
        while (prev_space && rl && r[0] == ' ') r++, rl--;
        if (rl) {
            for (size_t k = 0; k < rl && !st; k++)
                st = r[k] == ' ' && m->escape_ws ? mer__ch_append(out, ws, 3)
                                                 : mer__ch_append(out, r + k, 1);
            prev_space = r[rl - 1] == ' ';
        }
        in += c;
        n -= c;
        if (!m->remove_extra_ws) prev_space = 0;
    }
    if (!st && m->remove_extra_ws)
        while (out->n >= spl && !memcmp(out->v + out->n - spl, sp, spl)) out->n -= spl;
    if (!st && m->ws_suffix && m->add_dummy_prefix) st = mer__ch_append(out, sp, spl);
    return st;
}

/* ---- models ------------------------------------------------------------------------------- */

typedef struct {
    size_t start, len;
    int32_t id;
} seg;

typedef struct {
    seg *v;
    size_t n, cap;
} segbuf;

static mer_status seg_push(segbuf *b, size_t start, size_t len, int32_t id) {
    if (b->n == b->cap) {
        size_t nc = b->cap ? b->cap * 2 : 64;
        seg *p = realloc(b->v, nc * sizeof *p);
        if (!p) return mer__err(MER_ERR_NOMEM, "out of memory");
        b->v = p;
        b->cap = nc;
    }
    b->v[b->n++] = (seg){start, len, id};
    return MER_OK;
}

static int32_t piece_to_id(const spm_impl *m, const mer_tokenizer *t, const char *s, size_t n) {
    int32_t id = mer__strmap_get(&m->reserved, s, n);
    if (id >= 0) return id;
    id = mer__strmap_get(&m->pieces, s, n);
    return id >= 0 ? id : t->unk_id;
}

static size_t one_char_len(const char *s, size_t n) {
    static const uint8_t len[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    size_t l = len[(uint8_t)s[0] >> 4];
    return l < n ? l : n;
}

typedef struct {
    size_t start, len;
    int32_t prev, next;
    int freeze;
} bpe_sym;

typedef struct {
    size_t start, len, left_len;
} rev_merge;

typedef struct {
    rev_merge *v;
    size_t n, cap;
} revbuf;

static mer_status bpe_add_pair(const spm_impl *m, const char *s, bpe_sym *sym, int32_t l,
                               int32_t r, mer__mergeheap *h, revbuf *rev) {
    if (l < 0 || r < 0 || sym[l].freeze || sym[r].freeze) return MER_OK;
    size_t len = sym[l].len + sym[r].len;
    int32_t id = mer__strmap_get(&m->pieces, s + sym[l].start, len);
    if (id < 0) return MER_OK;
    /* the highest score first: the smallest negated score */
    mer_status st = mer__mergeheap_push(h, (mer__merge){-(double)m->scores[id], l, r, (int64_t)len});
    if (st || m->types[id] != PT_UNUSED) return st;
    if (rev->n == rev->cap) {
        size_t nc = rev->cap ? rev->cap * 2 : 16;
        rev_merge *q = realloc(rev->v, nc * sizeof *q);
        if (!q) return mer__err(MER_ERR_NOMEM, "out of memory");
        rev->v = q;
        rev->cap = nc;
    }
    rev->v[rev->n++] = (rev_merge){sym[l].start, len, sym[l].len};
    return MER_OK;
}

/* An unused piece is split back into the pieces it was merged from. The last recorded merge
 * with the same text wins, as sentencepiece's map assignment. */
static mer_status bpe_resegment(const mer_tokenizer *t, const spm_impl *m, const char *s,
                                size_t start, size_t len, const revbuf *rev, segbuf *out,
                                int depth) {
    int32_t id = piece_to_id(m, t, s + start, len);
    if (m->types[id] == PT_UNUSED && depth < 64) {
        for (size_t k = rev->n; k-- > 0;) {
            const rev_merge *r = &rev->v[k];
            if (r->len == len && !memcmp(s + r->start, s + start, len)) {
                size_t ll = r->left_len;
                mer_status st = bpe_resegment(t, m, s, start, ll, rev, out, depth + 1);
                return st ? st : bpe_resegment(t, m, s, start + ll, len - ll, rev, out, depth + 1);
            }
        }
    }
    return seg_push(out, start, len, id);
}

static mer_status bpe_encode(const mer_tokenizer *t, const spm_impl *m, const char *s, size_t n,
                             segbuf *out) {
    bpe_sym *sym = malloc((n + 1) * sizeof *sym);
    mer__mergeheap h = {0};
    revbuf rev = {0};
    if (!sym) return mer__err(MER_ERR_NOMEM, "out of memory");
    int32_t ns = 0;
    for (size_t i = 0; i < n;) {
        size_t u = m->n_user ? match_user(t, m, s + i, n - i) : 0;
        size_t l = u ? u : one_char_len(s + i, n - i);
        sym[ns] = (bpe_sym){i, l, ns - 1, -1, u != 0};
        if (ns > 0) sym[ns - 1].next = ns;
        ns++;
        i += l;
    }
    mer_status st = MER_OK;
    for (int32_t i = 1; i < ns && !st; i++) st = bpe_add_pair(m, s, sym, i - 1, i, &h, &rev);
    while (!st && h.n) {
        mer__merge top = mer__mergeheap_pop(&h);
        bpe_sym *L = &sym[top.left], *R = &sym[top.right];
        if (L->len == 0 || R->len == 0 || L->len + R->len != (size_t)top.aux) continue;
        L->len += R->len;
        L->next = R->next;
        if (R->next >= 0) sym[R->next].prev = top.left;
        R->len = 0;
        st = bpe_add_pair(m, s, sym, L->prev, top.left, &h, &rev);
        if (!st) st = bpe_add_pair(m, s, sym, top.left, L->next, &h, &rev);
    }
    for (int32_t i = ns ? 0 : -1; !st && i >= 0; i = sym[i].next)
        st = bpe_resegment(t, m, s, sym[i].start, sym[i].len, &rev, out, 0);
    free(sym);
    free(h.v);
    free(rev.v);
    return st;
}

static mer_status unigram_encode(const mer_tokenizer *t, const spm_impl *m, const char *s,
                                 size_t n, segbuf *out) {
    typedef struct {
        int32_t id;
        float score;
        int64_t starts_at;
    } node;
    node *best = malloc((n + 1) * sizeof *best);
    if (!best) return mer__err(MER_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i <= n; i++) best[i] = (node){-1, 0.0f, -1};
    const float unk_score = m->min_score - 10.0f;
    for (size_t start = 0; start < n;) {
        const float till_here = best[start].score;
        int single = 0;
        size_t mblen = one_char_len(s + start, n - start);
        for (size_t end = start + 1; end <= n; end++) {
            int32_t id = mer__strmap_get(&m->pieces, s + start, end - start);
            if (id == -1) break;            /* not even a prefix of a piece */
            if (id < 0 || m->types[id] == PT_UNUSED) continue;
            size_t length = end - start;
            /* The C++ takes the score as double (the ternary mixes double and float). */
            double score = m->types[id] == PT_USER ? (double)((float)length * m->max_score) - 0.1
                                                   : (double)m->scores[id];
            double cand = score + (double)till_here;
            node *tn = &best[end];
            if (tn->starts_at == -1 || cand > (double)tn->score) {
                tn->score = (float)cand;
                tn->starts_at = (int64_t)start;
                tn->id = id;
            }
            if (length == mblen) single = 1;
        }
        if (!single) {
            node *tn = &best[start + mblen];
            float cand = unk_score + till_here;
            if (tn->starts_at == -1 || cand > tn->score) {
                tn->score = cand;
                tn->starts_at = (int64_t)start;
                tn->id = t->unk_id;
            }
        }
        start += mblen;
    }
    /* Backtrack, then reverse in place. */
    size_t first = out->n;
    mer_status st = MER_OK;
    for (size_t end = n; end > 0 && !st;) {
        const node *nd = &best[end];
        size_t st_at = (size_t)nd->starts_at;
        st = seg_push(out, st_at, end - st_at, nd->id);
        end = st_at;
    }
    for (size_t a = first, b = out->n; !st && a + 1 < b; a++, b--) {
        seg tmp = out->v[a];
        out->v[a] = out->v[b - 1];
        out->v[b - 1] = tmp;
    }
    free(best);
    return st;
}

static mer_status spm_encode(const mer_tokenizer *t, const uint32_t *cps, size_t ncp,
                             const char *text, size_t len, mer__i32buf *out) {
    (void)cps, (void)ncp;
    const spm_impl *m = t->impl;
    mer__chbuf norm = {0};
    segbuf segs = {0};
    mer_status st = spm_normalize(t, m, text, len, &norm);
    if (!st && norm.n) st = m->model_type == MT_BPE ? bpe_encode(t, m, norm.v, norm.n, &segs)
                                                    : unigram_encode(t, m, norm.v, norm.n, &segs);
    int prev_unk = 0;
    for (size_t i = 0; i < segs.n && !st; i++) {
        int32_t id = segs.v[i].id;
        int unk = m->types[id] == PT_UNKNOWN;
        if (unk && m->byte_fallback) {
            for (size_t k = 0; k < segs.v[i].len && !st; k++)
                st = mer__i32_push(out, m->byte_ids[(uint8_t)norm.v[segs.v[i].start + k]]);
        } else if (!(unk && prev_unk)) {
            /* A run of unknown pieces is one unknown token. */
            st = mer__i32_push(out, id);
        }
        prev_unk = unk;
    }
    free(norm.v);
    free(segs.v);
    return st;
}

/* ---- loading ------------------------------------------------------------------------------ */

mer_status mer__spm_load(mer_tokenizer *t, const char *file, const char *dir) {
    char *data = NULL;
    size_t size = 0;
    mer_status st = mer__read_file(file, &data, &size);
    if (st) return st;
    st = mer__spm_parse(t, (const uint8_t *)data, size, file);
    free(data);
    if (st) return st;
    char p[MER_PATH_CAP];
    cJSON *cfg = NULL;
    snprintf(p, sizeof p, "%s/tokenizer_config.json", dir);
    st = mer__tok_read_json(p, &cfg, (int[]){0});
    if (st) return st;
    if (cfg) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, "add_bos_token");
        if (cJSON_IsBool(v)) t->add_bos = cJSON_IsTrue(v);
        else if (v && !cJSON_IsNull(v))
            st = mer__err(MER_ERR_FORMAT, "%s: 'add_bos_token' is not true/false", p);
        v = cJSON_GetObjectItemCaseSensitive(cfg, "add_eos_token");
        if (cJSON_IsBool(v)) t->add_eos = cJSON_IsTrue(v);
        else if (v && !cJSON_IsNull(v))
            st = mer__err(MER_ERR_FORMAT, "%s: 'add_eos_token' is not true/false", p);
        /* A model whose config names other BOS/EOS pieces than the trainer's ids. */
        const char *bos = mer__tok_json_token(cJSON_GetObjectItemCaseSensitive(cfg, "bos_token"));
        const char *eos = mer__tok_json_token(cJSON_GetObjectItemCaseSensitive(cfg, "eos_token"));
        const spm_impl *m = t->impl;
        if (bos && mer__strmap_get(&m->reserved, bos, strlen(bos)) >= 0)
            t->bos_id = mer__strmap_get(&m->reserved, bos, strlen(bos));
        if (eos && mer__strmap_get(&m->reserved, eos, strlen(eos)) >= 0)
            t->eos_id = mer__strmap_get(&m->reserved, eos, strlen(eos));
        cJSON_Delete(cfg);
    }
    if (st) return st;
    const int32_t ids[4] = {t->bos_id, t->eos_id, t->unk_id, t->pad_id};
    for (int i = 0; i < 4 && !st; i++)
        if (ids[i] >= 0) st = mer__tok_add_special(t, t->pieces[ids[i]], ids[i]);
    const spm_impl *m = t->impl;
    for (int64_t i = 0; i < t->vocab_size && !st; i++)
        if (m->types[i] == PT_CONTROL || m->types[i] == PT_USER)
            st = mer__tok_add_special(t, t->pieces[i], (int32_t)i);
    return st;
}
