/*
 * test_json.c -- JSON config reading: dotted paths, typed getters with defaults, errors that
 * name the file and the key, and malformed documents (each a clear error).
 */
#include "test.h"
#include "internal.h"
#include "io/io_internal.h"

MER_TEST(json_config_fixture) {
    mer_json *j;
    REQUIRE_OK(mer_json_load(&j, "tests/fixtures/io/config.json"));
    int64_t i;
    double d;
    int b;
    const char *s;
    CHECK_OK(mer_json_get_int(j, "hidden_size", &i));
    CHECK(i == 1024);
    CHECK_OK(mer_json_get_int(j, "vision_config.patch_size", &i));
    CHECK(i == 14);
    CHECK_OK(mer_json_get_double(j, "layer_norm_eps", &d));
    CHECK(d == 1e-5);
    CHECK_OK(mer_json_get_double(j, "hidden_size", &d)); /* an integer is a number */
    CHECK(d == 1024.0);
    CHECK_OK(mer_json_get_bool(j, "do_stable_layer_norm", &b));
    CHECK(b == 1);
    CHECK_OK(mer_json_get_string(j, "feat_extract_norm", &s));
    CHECK(strcmp(s, "layer") == 0);
    CHECK_OK(mer_json_get_string(j, "architectures.0", &s));
    CHECK(strcmp(s, "HubertModel") == 0);
    int64_t k[16];
    int32_t n;
    CHECK_OK(mer_json_get_int_array(j, "conv_kernel", k, 16, &n));
    CHECK(n == 7 && k[0] == 10 && k[6] == 2);
    double dk[16];
    CHECK_OK(mer_json_get_double_array(j, "conv_dim", dk, 16, &n));
    CHECK(n == 7 && dk[3] == 512.0);
    CHECK_ERR(mer_json_get_int_array(j, "conv_kernel", k, 3, &n), MER_ERR_FORMAT, "7 values, at most 3");
    CHECK(n == 7);

    CHECK(mer_json_has(j, "vision_config.image_size"));
    CHECK(!mer_json_has(j, "vision_config.nope"));
    CHECK(!mer_json_has(j, "pad_token_id")); /* null counts as absent */
    CHECK_OK(mer_json_int_or(j, "pad_token_id", -1, &i));
    CHECK(i == -1);
    CHECK_OK(mer_json_int_or(j, "num_layers", 24, &i));
    CHECK(i == 24);
    CHECK_OK(mer_json_int_or(j, "hidden_size", 24, &i));
    CHECK(i == 1024);
    CHECK_OK(mer_json_double_or(j, "dropout", 0.1, &d));
    CHECK(d == 0.1);
    CHECK_OK(mer_json_bool_or(j, "x.y.z", 0, &b));
    CHECK(b == 0);
    CHECK_OK(mer_json_string_or(j, "model_type", "none", &s));
    CHECK(strcmp(s, "hubert") == 0);

    /* errors name the file and the key */
    CHECK_ERR(mer_json_get_int(j, "num_layers", &i), MER_ERR_NOT_FOUND, "config.json: key \"num_layers\" not found");
    CHECK_ERR(mer_json_get_int(j, "layer_norm_eps", &i), MER_ERR_FORMAT,
              "config.json: key \"layer_norm_eps\": expected an integer, got 1.0000000000000001e-05");
    CHECK_ERR(mer_json_get_int(j, "feat_extract_norm", &i), MER_ERR_FORMAT, "expected an integer, got a string");
    CHECK_ERR(mer_json_get_string(j, "hidden_size", &s), MER_ERR_FORMAT, "expected a string, got 1024");
    CHECK_ERR(mer_json_get_bool(j, "vision_config", &b), MER_ERR_FORMAT, "expected a boolean, got an object");
    CHECK_ERR(mer_json_get_int(j, "pad_token_id", &i), MER_ERR_FORMAT, "got null");
    CHECK_ERR(mer_json_int_or(j, "model_type", 3, &i), MER_ERR_FORMAT, "key \"model_type\"");
    CHECK_ERR(mer_json_get_int(j, "hidden_size.x", &i), MER_ERR_NOT_FOUND, "hidden_size.x");
    CHECK_ERR(mer_json_get_int(j, "conv_kernel.99", &i), MER_ERR_NOT_FOUND, NULL);
    CHECK_ERR(mer_json_get_int_array(j, "feat_extract_norm", k, 16, &n), MER_ERR_FORMAT, "expected an array");
    mer_json_free(j);
    mer_json_free(NULL);
}

static mer_status parse(const char *text) {
    mer_json *j = NULL;
    mer_status s = mer_json_parse(&j, text, strlen(text), "cfg.json");
    if (s != MER_OK && j) s = MER_ERR_INTERNAL;
    mer_json_free(j);
    return s;
}

MER_TEST(json_integers_and_values) {
    mer_json *j;
    const char *t = "{\"a\": 3.5, \"b\": 3.0, \"c\": -7, \"big\": 1e300, \"huge\": 9007199254740993, "
                    "\"arr\": [1, 2.5], \"neg\": -0.0, \"s\": \"x\\u00e9\\n\"}";
    REQUIRE_OK(mer_json_parse(&j, t, strlen(t), "cfg.json"));
    int64_t i;
    CHECK_ERR(mer_json_get_int(j, "a", &i), MER_ERR_FORMAT, "cfg.json: key \"a\": expected an integer, got 3.5");
    CHECK_OK(mer_json_get_int(j, "b", &i));
    CHECK(i == 3);
    CHECK_OK(mer_json_get_int(j, "c", &i));
    CHECK(i == -7);
    CHECK_OK(mer_json_get_int(j, "neg", &i));
    CHECK(i == 0);
    CHECK_ERR(mer_json_get_int(j, "big", &i), MER_ERR_FORMAT, "expected an integer");
    CHECK_ERR(mer_json_get_int(j, "huge", &i), MER_ERR_FORMAT, "expected an integer");
    int64_t arr[4];
    int32_t n;
    CHECK_ERR(mer_json_get_int_array(j, "arr", arr, 4, &n), MER_ERR_FORMAT, "key \"arr[1]\": expected an integer, got 2.5");
    const char *s;
    CHECK_OK(mer_json_get_string(j, "s", &s));
    CHECK(strcmp(s, "x\xc3\xa9\n") == 0);
    mer_json_free(j);
}

MER_TEST(json_hostile) {
    CHECK_OK(parse("{}"));
    CHECK_OK(parse("  {\"a\": [1, {\"b\": null}]}  \n"));
    CHECK_ERR(parse(""), MER_ERR_FORMAT, "cfg.json: empty");
    CHECK_ERR(parse("{"), MER_ERR_FORMAT, "cfg.json: invalid JSON at line 1");
    CHECK_ERR(parse("{\"a\": 1,\n\"b\": }"), MER_ERR_FORMAT, "invalid JSON at line 2");
    CHECK_ERR(parse("{\"a\": 1} {\"b\": 2}"), MER_ERR_FORMAT, "unexpected data after the JSON value");
    CHECK_ERR(parse("{\"a\": 1, \"a\": 2}"), MER_ERR_FORMAT, "duplicate key \"a\"");
    CHECK_ERR(parse("{\"x\": {\"k\": 1, \"k\": 2}}"), MER_ERR_FORMAT, "duplicate key \"k\"");
    CHECK_ERR(parse("{\"a\": 'single'}"), MER_ERR_FORMAT, "invalid JSON");
    CHECK_ERR(parse("{\"a\": NaN}"), MER_ERR_FORMAT, "invalid JSON");
    CHECK_ERR(parse("{\"a\": \"unterminated}"), MER_ERR_FORMAT, "invalid JSON");
    CHECK_ERR(parse("{a: 1}"), MER_ERR_FORMAT, "invalid JSON");
    CHECK_ERR(parse("[1, 2,]"), MER_ERR_FORMAT, "invalid JSON");
    CHECK_ERR(parse("{\"a\": 01x}"), MER_ERR_FORMAT, NULL);
    CHECK_ERR(parse("\xef\xbb\xbf{\"a\": tru}"), MER_ERR_FORMAT, "invalid JSON");
    /* deep nesting is refused, not a stack overflow */
    char deep[6001];
    memset(deep, '[', 6000);
    deep[6000] = '\0';
    CHECK_ERR(parse(deep), MER_ERR_FORMAT, "invalid JSON");
    /* not NUL-terminated: only len bytes are read */
    const char buf[] = {'{', '}', 'x'};
    mer_json *j;
    CHECK_OK(mer_json_parse(&j, buf, 2, "cfg.json"));
    mer_json_free(j);
    CHECK_ERR(mer_json_load(&j, "build/test-tmp/nope.json"), MER_ERR_IO, "nope.json");
}

/* The one JSON escaper and string builder (src/core/strbuf.c): what they write parses back to
 * the same bytes, including quotes, backslashes, control characters and UTF-8. */
MER_TEST(json_quote_roundtrip) {
    static const char *const cases[] = {"", "plain", "quo\"te", "back\\slash", "tab\tnew\nline\r",
                                        "\x01\x1f ctl", "Grüße 情绪", "a/b/../c"};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *q = mer_json_quote(cases[i]);
        REQUIRE(q != NULL);
        mer__sb b = {0};
        mer__sb_printf(&b, "{\"k\": %s, \"n\": %d}", q, (int)i);
        free(q);
        REQUIRE(!b.oom && b.len == strlen(b.p));
        mer_json *j = NULL;
        REQUIRE_OK(mer_json_parse(&j, b.p, b.len, "quoted"));
        const char *s = NULL;
        int64_t n = -1;
        CHECK_OK(mer_json_get_string(j, "k", &s));
        CHECK(s && strcmp(s, cases[i]) == 0);
        CHECK_OK(mer_json_get_int(j, "n", &n));
        CHECK(n == (int64_t)i);
        mer_json_free(j);
        mer__sb_free(&b);
    }
    /* long appends grow the buffer; take hands it over and resets the builder */
    mer__sb b = {0};
    for (int i = 0; i < 2000; i++) mer__sb_printf(&b, "%04d,", i);
    CHECK(b.len == 10000);
    mer__sb_csv_field(&b, "a,\"b\"");
    char *t = mer__sb_take(&b);
    REQUIRE(t != NULL);
    CHECK(strcmp(t + 10000, "\"a,\"\"b\"\"\"") == 0);
    CHECK(b.p == NULL && b.len == 0);
    free(t);
}
