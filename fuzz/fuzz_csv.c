/*
 * fuzz_csv.c -- libFuzzer target for the CSV reader: parse, then touch every cell and look up
 * every header name.
 */
#include "io/io_internal.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    mer_csv *c = NULL;
    if (mer_csv_parse(&c, (const char *)data, size, "fuzz.csv") != MER_OK) return 0;
    volatile size_t sink = 0;
    for (int32_t k = 0; k < mer_csv_cols(c); k++) {
        const char *h = mer_csv_header(c, k);
        int32_t col;
        if (mer_csv_col(c, h, &col) == MER_OK && strcmp(mer_csv_header(c, col), h)) __builtin_trap();
        for (int64_t r = 0; r < mer_csv_rows(c); r++) sink += strlen(mer_csv_cell(c, r, k));
    }
    mer_csv_free(c);
    (void)sink;
    return 0;
}
