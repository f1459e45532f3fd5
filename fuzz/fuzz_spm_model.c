/*
 * fuzz_spm_model.c -- libFuzzer target for the SentencePiece protobuf reader: parse a
 * tokenizer.model image from memory, and when it loads, encode a few texts through its
 * normaliser (precompiled-charsmap trie) and model (BPE or unigram).
 */
#include "text/text_internal.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    mer_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return 0;
    t->path = strdup("fuzz.model");
    t->bos_id = t->eos_id = t->unk_id = t->pad_id = -1;
    if (mer__spm_parse(t, data, size, "fuzz.model") == MER_OK) {
        static const char *texts[] = {"", " ", "Hello  world\t!", "我今天非常开心，。！",
                                      "\xef\xbc\xa1\xef\xbc\xa2 \xe2\x91\xa0 caf\xc3\xa9 \xf0\x9f\x98\x80",
                                      "   a  b   "};
        for (size_t i = 0; i < sizeof texts / sizeof *texts; i++) {
            int32_t *ids = NULL;
            int64_t n = 0;
            if (mer_tokenizer_encode(t, texts[i], strlen(texts[i]), 1, &ids, &n) == MER_OK) {
                for (int64_t k = 0; k < n; k++)
                    if (ids[k] < 0 || ids[k] >= mer_tokenizer_vocab_size(t)) __builtin_trap();
                free(ids);
            }
        }
    }
    mer_tokenizer_free(t);
    return 0;
}
