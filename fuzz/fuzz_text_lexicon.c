/*
 * fuzz_text_lexicon.c -- libFuzzer target for the transcript tokenizer and scorer of the text
 * lexicon baseline: any bytes (UTF-8 or not) must give a distribution summing to 1 with
 * counts that agree.
 */
#include "mer.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    mer_text_scores s;
    if (mer_text_lexicon_score(text, &s) != MER_OK) __builtin_trap();
    double sum = 0, votes = 0;
    for (int k = 0; k < MER_SHARED_CLASSES; k++) {
        if (!(s.probs[k] > 0)) __builtin_trap();
        sum += s.probs[k];
        votes += s.votes[k];
    }
    if (fabs(sum - 1) > 1e-4 || fabs(votes - s.cues) > 1e-3 || s.negated > s.cues || s.cues > s.words)
        __builtin_trap();
    free(text);
    return 0;
}
