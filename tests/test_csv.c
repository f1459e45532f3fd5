/*
 * test_csv.c -- CSV reading (RFC 4180 quoting, CRLF/LF, BOM, UTF-8, lookup by name), writing
 * fields back, a file made by Python's csv module, and malformed tables (each a clear error).
 */
#include "test.h"
#include "internal.h"

static mer_status parse(const char *text) {
    mer_csv *c = NULL;
    mer_status s = mer_csv_parse(&c, text, strlen(text), "t.csv");
    if (s != MER_OK && c) s = MER_ERR_INTERNAL;
    mer_csv_free(c);
    return s;
}

MER_TEST(csv_python_fixture) {
    mer_csv *c;
    REQUIRE_OK(mer_csv_load(&c, "tests/fixtures/io/ref.csv"));
    CHECK(mer_csv_rows(c) == 3 && mer_csv_cols(c) == 4);
    CHECK(strcmp(mer_csv_header(c, 2), "note, with comma") == 0);
    int32_t col;
    REQUIRE_OK(mer_csv_col(c, "note, with comma", &col));
    CHECK(col == 2);
    CHECK(strcmp(mer_csv_cell(c, 0, col), "she said \"hi\"") == 0);
    CHECK(strcmp(mer_csv_cell(c, 1, col), "two\nlines") == 0);
    CHECK(strcmp(mer_csv_cell(c, 2, col), "\xe4\xb8\xad\xe6\x96\x87 \xc3\xbcn\xc3\xaf" "c\xc3\xb6" "d\xc3\xa9") == 0);
    REQUIRE_OK(mer_csv_col(c, "valence", &col));
    CHECK(strcmp(mer_csv_cell(c, 2, col), "") == 0);
    CHECK(strcmp(mer_csv_cell(c, 1, col), "-0.25") == 0);
    CHECK(mer_csv_cell(c, 3, 0) == NULL && mer_csv_cell(c, 0, 4) == NULL && mer_csv_cell(c, -1, 0) == NULL);
    CHECK(mer_csv_header(c, 4) == NULL);
    CHECK_ERR(mer_csv_col(c, "arousal", &col), MER_ERR_NOT_FOUND,
              "ref.csv: no column \"arousal\" (columns: \"name\", \"label\", \"note, with comma\", \"valence\")");

    /* write every cell back with write_field: the same bytes as Python's csv.writer */
    const char *dir = mer_test_tmpdir("csv_write");
    char p[512];
    snprintf(p, sizeof p, "%s/out.csv", dir);
    FILE *f = fopen(p, "wb");
    REQUIRE(f);
    for (int64_t r = -1; r < mer_csv_rows(c); r++) {
        for (int32_t k = 0; k < mer_csv_cols(c); k++) {
            if (k) fputc(',', f);
            mer_csv_write_field(f, r < 0 ? mer_csv_header(c, k) : mer_csv_cell(c, r, k));
        }
        fputs("\r\n", f);
    }
    fclose(f);
    char *a, *b;
    size_t na, nb;
    REQUIRE_OK(mer__read_file("tests/fixtures/io/ref.csv", &a, &na));
    REQUIRE_OK(mer__read_file(p, &b, &nb));
    CHECK(na == nb && memcmp(a, b, na) == 0);
    free(a);
    free(b);
    mer_csv_free(c);
    mer_csv_free(NULL);
}

MER_TEST(csv_dialect) {
    mer_csv *c;
    const char *t = "\xef\xbb\xbfid,text\n1,plain\r\n2,\"a,b\"\r3,\"x\"\"y\"\n\n4,\n5,\"\"";
    REQUIRE_OK(mer_csv_parse(&c, t, strlen(t), "t.csv"));
    CHECK(mer_csv_rows(c) == 5 && mer_csv_cols(c) == 2);
    CHECK(strcmp(mer_csv_header(c, 0), "id") == 0); /* BOM stripped */
    CHECK(strcmp(mer_csv_cell(c, 1, 1), "a,b") == 0);
    CHECK(strcmp(mer_csv_cell(c, 2, 1), "x\"y") == 0);
    CHECK(strcmp(mer_csv_cell(c, 3, 0), "4") == 0 && strcmp(mer_csv_cell(c, 3, 1), "") == 0);
    CHECK(strcmp(mer_csv_cell(c, 4, 1), "") == 0);
    mer_csv_free(c);
    /* header only, and a single column */
    REQUIRE_OK(mer_csv_parse(&c, "a,b", 3, "t.csv"));
    CHECK(mer_csv_rows(c) == 0 && mer_csv_cols(c) == 2);
    mer_csv_free(c);
    REQUIRE_OK(mer_csv_parse(&c, "x\n1\n2\n", 6, "t.csv"));
    CHECK(mer_csv_rows(c) == 2 && mer_csv_cols(c) == 1);
    mer_csv_free(c);
    /* duplicate header names: fine until looked up */
    REQUIRE_OK(mer_csv_parse(&c, "a,a,b\n1,2,3\n", 12, "t.csv"));
    int32_t col;
    CHECK_ERR(mer_csv_col(c, "a", &col), MER_ERR_FORMAT, "ambiguous");
    CHECK_OK(mer_csv_col(c, "b", &col));
    mer_csv_free(c);
    /* write_field quoting */
    char buf[256] = {0};
    FILE *f = fmemopen(buf, sizeof buf, "w");
    REQUIRE(f);
    mer_csv_write_field(f, "plain");
    fputc('|', f);
    mer_csv_write_field(f, "a,b");
    fputc('|', f);
    mer_csv_write_field(f, "say \"x\"");
    fputc('|', f);
    mer_csv_write_field(f, "l1\nl2");
    fclose(f);
    CHECK(strcmp(buf, "plain|\"a,b\"|\"say \"\"x\"\"\"|\"l1\nl2\"") == 0);
}

MER_TEST(csv_hostile) {
    CHECK_ERR(parse(""), MER_ERR_FORMAT, "t.csv: empty: no header row");
    CHECK_ERR(parse("\xef\xbb\xbf\r\n\n"), MER_ERR_FORMAT, "no header row");
    CHECK_ERR(parse("a,b\n1,2\n3\n"), MER_ERR_FORMAT, "t.csv: line 3: 1 fields, but the header has 2");
    CHECK_ERR(parse("a,b\n1,2,3\n"), MER_ERR_FORMAT, "line 2: 3 fields");
    CHECK_ERR(parse("a,b\n\"x\ny\",2\n1,2,3\n"), MER_ERR_FORMAT, "line 4: 3 fields"); /* lines counted inside quotes */
    CHECK_ERR(parse("a,b\n\"unterminated,2\n"), MER_ERR_FORMAT, "line 2: unterminated quoted field");
    CHECK_ERR(parse("a,b\n\"x\"y,2\n"), MER_ERR_FORMAT, "line 2: unexpected text after a closing quote");
    CHECK_ERR(parse("a,b\nx\"y,2\n"), MER_ERR_FORMAT, "line 2: quote inside an unquoted field");
    CHECK_ERR(parse("a,b\n1,\xff\n"), MER_ERR_FORMAT, "line 2: invalid UTF-8");
    CHECK_ERR(parse("a,b\n1,\xc0\xaf\n"), MER_ERR_FORMAT, "invalid UTF-8");     /* overlong */
    CHECK_ERR(parse("a,b\n1,\xed\xa0\x80\n"), MER_ERR_FORMAT, "invalid UTF-8"); /* surrogate */
    CHECK_ERR(parse("a,b\n1,\xe4\xb8\n"), MER_ERR_FORMAT, "invalid UTF-8");     /* cut sequence */
    mer_csv *c = NULL;
    CHECK_ERR(mer_csv_parse(&c, "a,b\n1,\0\n", 8, "t.csv"), MER_ERR_FORMAT, "line 2: NUL byte");
    CHECK(c == NULL);
    CHECK_ERR(mer_csv_load(&c, "build/test-tmp/none.csv"), MER_ERR_IO, "none.csv");
    /* a long ragged table stays fast and names the right line */
    size_t n = 200000;
    char *big = malloc(n * 6 + 32);
    REQUIRE(big);
    size_t k = (size_t)sprintf(big, "x,y\n");
    for (size_t i = 0; i < n; i++) k += (size_t)sprintf(big + k, "1,2\n");
    k += (size_t)sprintf(big + k, "1\n");
    CHECK_ERR(mer_csv_parse(&c, big, k, "big.csv"), MER_ERR_FORMAT, "big.csv: line 200002: 1 fields");
    free(big);
}
