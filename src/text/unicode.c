/*
 * unicode.c -- UTF-8 decoding and the few Unicode properties the tokenizers need: general
 * category, lower case, White_Space, canonical decomposition and composition (NFD/NFC). The
 * tables are generated from Python's unicodedata (scripts/gen_unicode_tables.py) so that the
 * BERT normaliser and the byte-level BPE pre-tokenizer classify characters as the references do.
 */
#include "text/text_internal.h"

#include <string.h>

#include "text/unicode_case.h"
#include "text/unicode_tables.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

const char *mer__uc_version(void) { return MER__UNICODE_VERSION; }

int mer__utf8_decode(const uint8_t *s, size_t n, uint32_t *cp) {
    if (n == 0) return 0;
    uint8_t b = s[0];
    if (b < 0x80) {
        *cp = b;
        return 1;
    }
    int len;
    uint32_t c, min;
    if ((b & 0xE0) == 0xC0) {
        len = 2, c = b & 0x1F, min = 0x80;
    } else if ((b & 0xF0) == 0xE0) {
        len = 3, c = b & 0x0F, min = 0x800;
    } else if ((b & 0xF8) == 0xF0) {
        len = 4, c = b & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if ((size_t)len > n) return 0;
    for (int i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        c = (c << 6) | (s[i] & 0x3F);
    }
    if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) return 0;
    *cp = c;
    return len;
}

int mer__utf8_encode(uint32_t cp, char out[4]) {
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

mer_status mer__utf8_to_u32(const char *text, size_t len, mer__u32buf *out) {
    const uint8_t *s = (const uint8_t *)text;
    size_t i = 0;
    while (i < len) {
        uint32_t cp;
        int k = mer__utf8_decode(s + i, len - i, &cp);
        if (!k) return mer__err(MER_ERR_FORMAT, "invalid UTF-8 at byte %zu", i);
        mer_status st = mer__u32_push(out, cp);
        if (st) return st;
        i += (size_t)k;
    }
    return MER_OK;
}

/* ---- properties --------------------------------------------------------------------------- */

int mer__uc_cat(uint32_t cp) {
    if (cp < 0x80) {
        /* ASCII fast path: the classes the pre-tokenizers test most. */
        if (cp >= 'a' && cp <= 'z') return MER__UC_Ll;
        if (cp >= 'A' && cp <= 'Z') return MER__UC_Lu;
        if (cp >= '0' && cp <= '9') return MER__UC_Nd;
    }
    if (cp >= 0x110000) return MER__UC_Cn;
    size_t lo = 0, hi = NELEM(uc_cat_start);
    while (hi - lo > 1) {
        size_t mid = (lo + hi) / 2;
        if (uc_cat_start[mid] <= cp) lo = mid;
        else hi = mid;
    }
    return uc_cat_val[lo];
}

int mer__uc_is_space(uint32_t cp) {
    switch (cp) {
    case 0x09: case 0x0A: case 0x0B: case 0x0C: case 0x0D: case 0x20: case 0x85: case 0xA0:
    case 0x1680: case 0x2028: case 0x2029: case 0x202F: case 0x205F: case 0x3000:
        return 1;
    default:
        return cp >= 0x2000 && cp <= 0x200A;
    }
}

mer_status mer__uc_lower(uint32_t cp, mer__u32buf *out) {
    if (cp < 0x80) return mer__u32_push(out, (cp >= 'A' && cp <= 'Z') ? cp + 32 : cp);
    if (cp == 0x130) {
        mer_status st = mer__u32_push(out, 'i');
        return st ? st : mer__u32_push(out, 0x307);
    }
    size_t lo = 0, hi = NELEM(uc_lower);
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (uc_lower[mid][0] < cp) lo = mid + 1;
        else hi = mid;
    }
    if (lo < NELEM(uc_lower) && uc_lower[lo][0] == cp) cp = uc_lower[lo][1];
    return mer__u32_push(out, cp);
}

static int in_runs(const uint32_t (*r)[2], size_t n, uint32_t cp) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (r[mid][1] < cp) lo = mid + 1;
        else hi = mid;
    }
    return lo < n && r[lo][0] <= cp;
}

/* Final_Sigma (SpecialCasing): a cased letter before position i and none after it, skipping
 * case-ignorable characters on both sides. */
static int final_sigma(const uint32_t *s, size_t n, size_t i) {
    size_t j = i;
    while (j > 0 && in_runs(uc_case_ignorable, NELEM(uc_case_ignorable), s[j - 1])) j--;
    if (j == 0 || !in_runs(uc_cased, NELEM(uc_cased), s[j - 1])) return 0;
    for (j = i + 1; j < n && in_runs(uc_case_ignorable, NELEM(uc_case_ignorable), s[j]); j++) {
    }
    return j == n || !in_runs(uc_cased, NELEM(uc_cased), s[j]);
}

mer_status mer__uc_lower_str(const uint32_t *s, size_t n, mer__u32buf *out) {
    mer_status st = MER_OK;
    for (size_t i = 0; i < n && !st; i++)
        st = s[i] == 0x3A3 && final_sigma(s, n, i) ? mer__u32_push(out, 0x3C2) : mer__uc_lower(s[i], out);
    return st;
}

/* ---- normalisation ------------------------------------------------------------------------ */

enum { SBase = 0xAC00, LBase = 0x1100, VBase = 0x1161, TBase = 0x11A7, LCount = 19,
       VCount = 21, TCount = 28, NCount = VCount * TCount, SCount = LCount * NCount };

static int ccc_of(uint32_t cp) {
    if (cp < 0x300) return 0;
    size_t lo = 0, hi = NELEM(uc_ccc);
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (uc_ccc[mid][1] < cp) lo = mid + 1;
        else hi = mid;
    }
    if (lo < NELEM(uc_ccc) && uc_ccc[lo][0] <= cp) return (int)uc_ccc[lo][2];
    return 0;
}

mer_status mer__uc_nfd(const uint32_t *in, size_t n, mer__u32buf *out) {
    size_t start = out->n;
    mer_status st = MER_OK;
    for (size_t i = 0; i < n && !st; i++) {
        uint32_t cp = in[i];
        if (cp < 0xC0) {
            st = mer__u32_push(out, cp);
        } else if (cp >= SBase && cp < SBase + SCount) {
            uint32_t s = cp - SBase;
            st = mer__u32_push(out, LBase + s / NCount);
            if (!st) st = mer__u32_push(out, VBase + (s % NCount) / TCount);
            if (!st && s % TCount) st = mer__u32_push(out, TBase + s % TCount);
        } else {
            size_t lo = 0, hi = NELEM(uc_decomp);
            while (lo < hi) {
                size_t mid = (lo + hi) / 2;
                if (uc_decomp[mid][0] < cp) lo = mid + 1;
                else hi = mid;
            }
            if (lo < NELEM(uc_decomp) && uc_decomp[lo][0] == cp) {
                for (uint32_t k = 0; k < uc_decomp[lo][2] && !st; k++)
                    st = mer__u32_push(out, uc_decomp_pool[uc_decomp[lo][1] + k]);
            } else {
                st = mer__u32_push(out, cp);
            }
        }
    }
    if (st) return st;
    /* Canonical ordering: a stable sort of each run of non-starters by combining class. */
    uint32_t *v = out->v;
    for (size_t i = start + 1; i < out->n; i++) {
        int c = ccc_of(v[i]);
        if (!c) continue;
        size_t j = i;
        uint32_t x = v[i];
        while (j > start && ccc_of(v[j - 1]) > c) {
            v[j] = v[j - 1];
            j--;
        }
        v[j] = x;
    }
    return MER_OK;
}

static uint32_t compose_pair(uint32_t a, uint32_t b) {
    if (a >= LBase && a < LBase + LCount && b >= VBase && b < VBase + VCount)
        return SBase + ((a - LBase) * VCount + (b - VBase)) * TCount;
    if (a >= SBase && a < SBase + SCount && (a - SBase) % TCount == 0 && b > TBase &&
        b < TBase + TCount)
        return a + (b - TBase);
    size_t lo = 0, hi = NELEM(uc_comp);
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (uc_comp[mid][0] < a || (uc_comp[mid][0] == a && uc_comp[mid][1] < b)) lo = mid + 1;
        else hi = mid;
    }
    if (lo < NELEM(uc_comp) && uc_comp[lo][0] == a && uc_comp[lo][1] == b) return uc_comp[lo][2];
    return 0;
}

/* Characters that are NFC_Quick_Check=Yes with combining class 0 and that no following
 * character of this set can compose with: a text made only of them is already NFC. Covers
 * ASCII/Latin-1, CJK ideographs, full-width forms and emoji, the bulk of MER transcripts. */
static int nfc_inert(uint32_t c) {
    return c < 0x300 || (c >= 0x3000 && c <= 0x3029) || (c >= 0x3400 && c <= 0x4DBF) ||
           (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0xFF01 && c <= 0xFF5E) ||
           (c >= 0x1F300 && c <= 0x1FAFF);
}

mer_status mer__uc_nfc(const uint32_t *in, size_t n, mer__u32buf *out) {
    size_t start = out->n;
    size_t k = 0;
    while (k < n && nfc_inert(in[k])) k++;
    if (k == n) {
        mer_status st = MER_OK;
        for (size_t i = 0; i < n && !st; i++) st = mer__u32_push(out, in[i]);
        return st;
    }
    mer_status st = mer__uc_nfd(in, n, out);
    if (st) return st;
    /* Canonical composition (UAX #15): each character combines with the last starter unless
     * blocked by a character of the same or higher class between them. */
    uint32_t *v = out->v;
    size_t w = start, starter = (size_t)-1;
    int last_cc = 0;   /* class of the last character kept after the starter */
    for (size_t i = start; i < out->n; i++) {
        uint32_t c = v[i];
        int cc = ccc_of(c);
        if (starter != (size_t)-1) {
            int adjacent = w == starter + 1;
            if (adjacent || (last_cc != 0 && last_cc < cc)) {
                uint32_t comp = compose_pair(v[starter], c);
                if (comp) {
                    v[starter] = comp;
                    continue;
                }
            }
        }
        if (cc == 0) starter = w;
        last_cc = cc;
        v[w++] = c;
    }
    out->n = w;
    return MER_OK;
}
