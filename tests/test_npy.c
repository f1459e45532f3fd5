/*
 * test_npy.c -- .npy reader/writer: numpy-made fixtures (float32/16/64, ranks 0..4, versions
 * 1.0-3.0), byte-identical writes to numpy.save, and hostile files (each a clear error).
 */
#include "test.h"
#include "internal.h"
#include "io/io_internal.h"

#define FIX "tests/fixtures/io/"

MER_TEST(npy_numpy_fixtures) {
    float *d;
    int32_t nd;
    int64_t sh[MER_MAX_DIMS];
    REQUIRE_OK(mer_npy_read(FIX "f16_r1.npy", &d, &nd, sh));
    CHECK(nd == 1 && sh[0] == 4);
    CHECK(d[0] == 0.5f && d[1] == -1.25f && d[2] == 1000.0f && d[3] == 6.103515625e-05f);
    free(d);

    REQUIRE_OK(mer_npy_read(FIX "f32_r0.npy", &d, &nd, sh));
    CHECK(nd == 1 && sh[0] == 1 && d[0] == 3.25f);
    free(d);
    mer_dtype t;
    REQUIRE_OK(mer_npy_read_header(FIX "f32_r0.npy", &t, &nd, sh));
    CHECK(t == MER_DTYPE_F32 && nd == 0);

    REQUIRE_OK(mer_npy_read(FIX "f32_r4.npy", &d, &nd, sh));
    CHECK(nd == 4 && sh[0] == 2 && sh[1] == 3 && sh[2] == 2 && sh[3] == 2);
    int ok = 1;
    for (int i = 0; i < 24; i++) ok &= d[i] == (float)i;
    CHECK(ok);
    free(d);

    REQUIRE_OK(mer_npy_read(FIX "f32_empty.npy", &d, &nd, sh));
    CHECK(nd == 2 && sh[0] == 0 && sh[1] == 4 && d != NULL);
    free(d);

    for (int v = 2; v <= 3; v++) {
        char p[128];
        snprintf(p, sizeof p, FIX "f32_v%d.npy", v);
        REQUIRE_OK(mer_npy_read(p, &d, &nd, sh));
        CHECK(nd == 2 && sh[0] == 2 && sh[1] == 3 && d[5] == 5.0f);
        free(d);
    }

    /* float64 converts to the nearest float; compare against the f64 values in the file */
    REQUIRE_OK(mer_npy_read(FIX "f64_r3.npy", &d, &nd, sh));
    CHECK(nd == 3 && sh[0] == 2 && sh[1] == 3 && sh[2] == 2);
    char *raw;
    size_t rn;
    REQUIRE_OK(mer__read_file(FIX "f64_r3.npy", &raw, &rn));
    REQUIRE(rn == 128 + 12 * 8);
    for (int i = 0; i < 12; i++) {
        double x;
        memcpy(&x, raw + 128 + 8 * i, 8);
        CHECK(d[i] == (float)x);
    }
    free(raw);
    free(d);

    REQUIRE_OK(mer_npy_read_header(FIX "int32.npy", &t, &nd, sh));
    CHECK(t == MER_DTYPE_I32 && nd == 1 && sh[0] == 4);
    CHECK_ERR(mer_npy_read(FIX "int32.npy", &d, &nd, sh), MER_ERR_DTYPE, "int32.npy: dtype i32 cannot be read");
    CHECK(d == NULL);
    CHECK_ERR(mer_npy_read(FIX "bad_fortran.npy", &d, &nd, sh), MER_ERR_UNSUPPORTED, "bad_fortran.npy: Fortran-order");
    CHECK_ERR(mer_npy_read(FIX "bad_bigendian.npy", &d, &nd, sh), MER_ERR_UNSUPPORTED, "big-endian data (descr '>f4')");
    CHECK_ERR(mer_npy_read(FIX "bad_object.npy", &d, &nd, sh), MER_ERR_DTYPE, "object arrays");
    CHECK_ERR(mer_npy_read("build/test-tmp/no-such.npy", &d, &nd, sh), MER_ERR_NOT_FOUND, "no-such.npy");
}

MER_TEST(npy_write_matches_numpy) {
    /* numpy.save's bytes, reproduced exactly by our writer */
    const char *names[] = {"f32_r2.npy", "f32_r0.npy", "f32_r4.npy", "f32_empty.npy"};
    const char *dir = mer_test_tmpdir("npy_write");
    for (int i = 0; i < 4; i++) {
        char src[128], dst[512];
        snprintf(src, sizeof src, FIX "%s", names[i]);
        snprintf(dst, sizeof dst, "%s/%s", dir, names[i]);
        float *d;
        int32_t nd;
        int64_t sh[MER_MAX_DIMS];
        mer_dtype t;
        REQUIRE_OK(mer_npy_read(src, &d, &nd, sh));
        REQUIRE_OK(mer_npy_read_header(src, &t, &nd, sh)); /* true rank: 0 for the scalar */
        REQUIRE_OK(mer_npy_write(dst, d, nd, sh));
        free(d);
        char *a, *b;
        size_t na, nb;
        REQUIRE_OK(mer__read_file(src, &a, &na));
        REQUIRE_OK(mer__read_file(dst, &b, &nb));
        CHECK(na == nb && memcmp(a, b, na) == 0);
        if (na != nb || memcmp(a, b, na)) printf("    differs: %s\n", names[i]);
        free(a);
        free(b);
    }
    /* and a round trip of something numpy did not write */
    char p[512];
    snprintf(p, sizeof p, "%s/big.npy", dir);
    int64_t sh[3] = {7, 123456789012LL / 123456789012LL * 5, 3};
    float v[105];
    for (int i = 0; i < 105; i++) v[i] = (float)i * 0.5f - 3.0f;
    REQUIRE_OK(mer_npy_write(p, v, 3, sh));
    float *d;
    int32_t nd;
    int64_t got[MER_MAX_DIMS];
    REQUIRE_OK(mer_npy_read(p, &d, &nd, got));
    CHECK(nd == 3 && got[0] == 7 && got[1] == 5 && got[2] == 3);
    CHECK(memcmp(d, v, sizeof v) == 0);
    free(d);
    CHECK_ERR(mer_npy_write(p, v, 1, (int64_t[]){-1}), MER_ERR_INVALID_ARG, "bad shape");
    CHECK_ERR(mer_npy_write(p, v, 9, sh), MER_ERR_INVALID_ARG, NULL);
}

/* A .npy image with the given version and header text, and n payload bytes. */
static size_t img(uint8_t *out, int major, const char *hdr, size_t n) {
    size_t hl = strlen(hdr), k = 0;
    memcpy(out, "\x93NUMPY", 6);
    out[6] = (uint8_t)major;
    out[7] = 0;
    if (major == 1) {
        out[8] = (uint8_t)hl;
        out[9] = (uint8_t)(hl >> 8);
        k = 10;
    } else {
        for (int i = 0; i < 4; i++) out[8 + i] = (uint8_t)(hl >> (8 * i));
        k = 12;
    }
    memcpy(out + k, hdr, hl);
    memset(out + k + hl, 0, n);
    return k + hl + n;
}

static mer_status parse(const uint8_t *b, size_t n) {
    float *d = NULL;
    int32_t nd;
    int64_t sh[MER_MAX_DIMS];
    mer_status s = mer_npy_parse(b, n, "x.npy", &d, &nd, sh);
    if (s != MER_OK && d) s = MER_ERR_INTERNAL;
    free(d);
    return s;
}

MER_TEST(npy_hostile) {
    static uint8_t b[4096];
    size_t n;
    const char *good = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }\n";
    n = img(b, 1, good, 24);
    CHECK_OK(parse(b, n));
#define BAD(hdr, payload, st, sub)                                                            \
    do {                                                                                      \
        n = img(b, 1, hdr, payload);                                                          \
        CHECK_ERR(parse(b, n), st, sub);                                                      \
    } while (0)
    /* truncation at every point of a valid file */
    n = img(b, 1, good, 24);
    for (size_t cut = 0; cut < n; cut++) {
        mer_status s = parse(b, cut);
        if (s == MER_OK) printf("    cut at %zu accepted\n", cut);
        CHECK(s == MER_ERR_FORMAT);
    }
    CHECK_ERR(parse(b, 5), MER_ERR_FORMAT, "x.npy: truncated");
    CHECK_ERR(parse(b, 30), MER_ERR_FORMAT, "truncated: header length");
    CHECK_ERR(parse(b, n - 1), MER_ERR_FORMAT, "truncated: shape needs 24 bytes of data, file has 23");
    BAD(good, 28, MER_ERR_FORMAT, "4 trailing bytes");
    memcpy(b, "\x93NUMPZ", 6);
    CHECK_ERR(parse(b, n), MER_ERR_FORMAT, "bad magic");
    CHECK_ERR(parse((const uint8_t *)"PK\x03\x04 this is a zip", 20), MER_ERR_FORMAT, "bad magic");
    n = img(b, 4, good, 24);
    CHECK_ERR(parse(b, n), MER_ERR_UNSUPPORTED, "version 4.0");
    n = img(b, 2, good, 24);
    CHECK_OK(parse(b, n));
    n = img(b, 2, good, 24);
    b[11] = 0x7f; /* 2 GB header length */
    CHECK_ERR(parse(b, n), MER_ERR_FORMAT, "exceeds");
    BAD("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", 24, MER_ERR_UNSUPPORTED, "Fortran-order");
    BAD("{'descr': '>f4', 'fortran_order': False, 'shape': (2, 3), }", 24, MER_ERR_UNSUPPORTED, "big-endian");
    BAD("{'descr': '|O', 'fortran_order': False, 'shape': (2, 3), }", 48, MER_ERR_DTYPE, "object arrays");
    BAD("{'descr': '<c8', 'fortran_order': False, 'shape': (2, 3), }", 48, MER_ERR_DTYPE, "unsupported dtype descr '<c8'");
    BAD("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,), }", 8, MER_ERR_DTYPE, "structured");
    BAD("{'descr': 'f4', 'fortran_order': False, 'shape': (2, 3), }", 24, MER_ERR_FORMAT, "malformed dtype descr");
    BAD("{'descr': '<f4', 'fortran_order': False, 'shape': (2, -3), }", 24, MER_ERR_FORMAT, "negative dimension");
    BAD("{'descr': '<f4', 'fortran_order': False, 'shape': (2.5, 3), }", 24, MER_ERR_FORMAT, "malformed 'shape'");
    BAD("{'descr': '<f4', 'fortran_order': False, 'shape': (a, 3), }", 24, MER_ERR_FORMAT, "non-integer");
    BAD("{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296, 4294967296), }", 24,
        MER_ERR_FORMAT, "overflows");
    BAD("{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999999), }", 24, MER_ERR_FORMAT,
        "too large");
    BAD("{'descr': '<f4', 'fortran_order': False, 'shape': (2305843009213693952,), }", 24, MER_ERR_FORMAT,
        "overflows the byte size");
    BAD("{'descr': '<f4', 'fortran_order': False, 'shape': (1,1,1,1,1,1,1,1,1), }", 4, MER_ERR_UNSUPPORTED, "rank");
    BAD("{'descr': '<f4', 'fortran_order': False}", 24, MER_ERR_FORMAT, "lacks 'shape'");
    BAD("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), 'extra': 1}", 24, MER_ERR_FORMAT,
        "unexpected key 'extra'");
    BAD("{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (2, 3)}", 24, MER_ERR_FORMAT, "twice");
    BAD("{'descr': '<f4', 'fortran_order': Maybe, 'shape': (2, 3)}", 24, MER_ERR_FORMAT, "True or False");
    BAD("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3)", 24, MER_ERR_FORMAT, "expected ',' or '}'");
    BAD("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3)} junk", 24, MER_ERR_FORMAT, "after the dict");
    BAD("['descr']", 24, MER_ERR_FORMAT, "not a Python dict");
    BAD("{'descr: '<f4'}", 24, MER_ERR_FORMAT, "header dict");
    BAD("", 0, MER_ERR_FORMAT, "not a Python dict");
    /* accepted variants numpy also accepts */
    n = img(b, 1, "{\"shape\": (3,), \"fortran_order\": True, \"descr\": \"<f8\"}", 24);
    CHECK_OK(parse(b, n));
    n = img(b, 1, "{'descr': '<f2', 'fortran_order': False, 'shape': (3L,), }", 6);
    CHECK_OK(parse(b, n));
#undef BAD

    /* the same through files */
    const char *dir = mer_test_tmpdir("npy_hostile");
    char p[512];
    snprintf(p, sizeof p, "%s/cut.npy", dir);
    n = img(b, 1, good, 24);
    REQUIRE(mer_test_write(p, b, n - 4) == 0);
    float *d;
    int32_t nd;
    int64_t sh[MER_MAX_DIMS];
    CHECK_ERR(mer_npy_read(p, &d, &nd, sh), MER_ERR_FORMAT, "cut.npy: truncated: shape needs 24 bytes of data, file has 20");
    CHECK_ERR(mer_npy_read_header(p, NULL, &nd, sh), MER_ERR_FORMAT, "cut.npy: truncated");
    REQUIRE(mer_test_write(p, b, 40) == 0);
    CHECK_ERR(mer_npy_read(p, &d, &nd, sh), MER_ERR_FORMAT, "cut.npy: truncated: header length");
    REQUIRE(mer_test_write(p, b, 3) == 0);
    CHECK_ERR(mer_npy_read(p, &d, &nd, sh), MER_ERR_FORMAT, "cut.npy: truncated");
    CHECK_ERR(mer_npy_read(dir, &d, &nd, sh), MER_ERR_IO, "not a regular file");
}

MER_TEST(npy_inspect_cli) {
    char out[2048];
    int rc = mer_test_run(out, sizeof out, "%s inspect " FIX "f64_r3.npy " FIX "f32_r0.npy", mer_test_bin());
    CHECK(rc == 0);
    CHECK(strstr(out, "f64") && strstr(out, "(2, 3, 2)"));
    CHECK(strstr(out, "()"));
    rc = mer_test_run(out, sizeof out, "%s inspect " FIX "bad_fortran.npy", mer_test_bin());
    CHECK(rc == 1 && strstr(out, "bad_fortran.npy") && strstr(out, "Fortran"));
}
