/*
 * fuzz_tokenizer_json.c -- libFuzzer target for the Hugging Face tokenizer.json parser: parse
 * from memory, and when it loads, encode a few texts (split regexes, BPE merges, WordPiece,
 * added tokens).
 */
#include "text/text_internal.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    mer_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return 0;
    t->path = strdup("fuzz.json");
    t->bos_id = t->eos_id = t->unk_id = t->pad_id = -1;
    if (mer__hfjson_parse(t, (const char *)data, size, "fuzz.json") == MER_OK) {
        t->template_set = 1;
        static const char *texts[] = {"", "Hello world's 12345!!\r\n\n  x", "我今天<|im_start|>开心",
                                      "ab<x>ba  \t", "caf\xc3\xa9 \xf0\x9f\x98\x80 [CLS] a"};
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
