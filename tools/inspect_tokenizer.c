/*
 * inspect_tokenizer.c -- `mer inspect` on a tokenizer file (vocab.txt, tokenizer.model,
 * tokenizer.json): its kind, vocabulary size, special tokens and what add_special adds.
 */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *piece_or_dash(const mer_tokenizer *t, int32_t id, char *buf, size_t n) {
    const char *p;
    if (id < 0 || mer_tokenizer_decode_piece(t, id, &p) != MER_OK) return "-";
    snprintf(buf, n, "%d %s", id, p);
    return buf;
}

int inspect_tokenizer(const char *path) {
    mer_tokenizer *t;
    if (mer_tokenizer_load(&t, path) != MER_OK) return cli_fail("inspect", "%s", mer_last_error());
    printf("%s: tokenizer %s, vocabulary %lld\n", path, mer_tokenizer_kind(t),
           (long long)mer_tokenizer_vocab_size(t));
    char b[4][256];
    printf("  bos %s, eos %s, unk %s, pad %s\n",
           piece_or_dash(t, mer_tokenizer_bos_id(t), b[0], sizeof b[0]),
           piece_or_dash(t, mer_tokenizer_eos_id(t), b[1], sizeof b[1]),
           piece_or_dash(t, mer_tokenizer_unk_id(t), b[2], sizeof b[2]),
           piece_or_dash(t, mer_tokenizer_pad_id(t), b[3], sizeof b[3]));
    int32_t n = mer_tokenizer_special_count(t);
    printf("  special tokens (%d):", n);
    for (int32_t i = 0; i < n && i < 64; i++) {
        const char *s;
        int32_t id;
        if (mer_tokenizer_special(t, i, &s, &id) == MER_OK) printf(" %s=%d", s, id);
    }
    printf(n > 64 ? " ...\n" : "\n");
    /* What the encoder adds around a text: encode an empty string with and without. */
    int32_t *ids;
    int64_t k;
    if (mer_tokenizer_encode(t, "", 0, 1, &ids, &k) == MER_OK) {
        printf("  add_special adds:");
        for (int64_t i = 0; i < k; i++) printf(" %d", ids[i]);
        printf(k ? "\n" : " nothing\n");
        free(ids);
    }
    mer_tokenizer_free(t);
    return 0;
}
