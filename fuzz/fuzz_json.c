/*
 * fuzz_json.c -- libFuzzer target for JSON config documents: parse, then query typical
 * Hugging Face config keys through every typed getter.
 */
#include "io/io_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    mer_json *j = NULL;
    if (mer_json_parse(&j, (const char *)data, size, "fuzz.json") != MER_OK) return 0;
    static const char *keys[] = {"hidden_size", "a", "a.b", "a.0", "a.0.b", "vision_config.hidden_size",
                                 "conv_kernel", "x.1", "", ".", "a..b"};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
        int64_t iv, ia[8];
        double dv, da[8];
        int b;
        int32_t n;
        const char *s;
        (void)mer_json_has(j, keys[i]);
        (void)mer_json_get_int(j, keys[i], &iv);
        (void)mer_json_get_double(j, keys[i], &dv);
        (void)mer_json_get_bool(j, keys[i], &b);
        (void)mer_json_get_string(j, keys[i], &s);
        (void)mer_json_get_int_array(j, keys[i], ia, 8, &n);
        (void)mer_json_get_double_array(j, keys[i], da, 8, &n);
        (void)mer_json_int_or(j, keys[i], 0, &iv);
        (void)mer_json_string_or(j, keys[i], "", &s);
    }
    mer_json_free(j);
    return 0;
}
