/*
 * test_safetensors.c -- safetensors reader/writer: round trips, F16/BF16 conversion, sharded
 * checkpoints, typed lookup errors, hostile headers (each a clear error, no crash), the
 * `mer inspect` one-line failure, and a fixture written by Python per the spec.
 */
#include "test.h"
#include "internal.h"
#include "io/io_internal.h"

#include <stdint.h>

/* A file image: u64 LE header length + header + data. */
static size_t make_image(uint8_t *out, size_t cap, const char *header, const void *data, size_t n) {
    size_t hl = strlen(header);
    if (8 + hl + n > cap) return 0;
    for (int i = 0; i < 8; i++) out[i] = (uint8_t)((uint64_t)hl >> (8 * i));
    memcpy(out + 8, header, hl);
    if (n) memcpy(out + 8 + hl, data, n);
    return 8 + hl + n;
}

/* Parse header+data from memory; returns the status (handle freed). */
static mer_status parse_mem(const char *header, size_t ndata) {
    static uint8_t img[1 << 16];
    uint8_t data[4096] = {0};
    size_t n = make_image(img, sizeof img, header, data, ndata);
    mer_safetensors *st = NULL;
    mer_status s = mer__safetensors_open_memory(&st, img, n, "mem.safetensors");
    mer_safetensors_free(st);
    return s;
}

MER_TEST(safetensors_round_trip) {
    const char *dir = mer_test_tmpdir("st_round");
    char path[512];
    snprintf(path, sizeof path, "%s/w.safetensors", dir);
    float a[6] = {1, -2, 3.5f, 4, 5, 6};
    uint16_t h[3] = {mer__f32_to_f16(0.5f), mer__f32_to_f16(-1.25f), mer__f32_to_f16(1000.0f)};
    uint16_t b[2] = {mer__f32_to_bf16(3.0f), mer__f32_to_bf16(-0.125f)};
    int64_t ids[4] = {1, -2, (int64_t)1 << 40, 7};
    uint8_t u[5] = {0, 1, 2, 250, 255};
    double d1 = 2.25;
    int64_t s23[2] = {2, 3}, s3[1] = {3}, s2[1] = {2}, s4[1] = {4}, s5[1] = {5}, s0[2] = {0, 7};

    mer_safetensors_writer *w;
    REQUIRE_OK(mer_safetensors_writer_init(&w));
    CHECK_OK(mer_safetensors_writer_add(w, "layer.0.weight", MER_DTYPE_F32, 2, s23, a));
    CHECK_OK(mer_safetensors_writer_add(w, "half", MER_DTYPE_F16, 1, s3, h));
    CHECK_OK(mer_safetensors_writer_add(w, "brain", MER_DTYPE_BF16, 1, s2, b));
    CHECK_OK(mer_safetensors_writer_add(w, "ids", MER_DTYPE_I64, 1, s4, ids));
    CHECK_OK(mer_safetensors_writer_add(w, "bytes", MER_DTYPE_U8, 1, s5, u));
    CHECK_OK(mer_safetensors_writer_add(w, "scalar", MER_DTYPE_F64, 0, NULL, &d1));
    CHECK_OK(mer_safetensors_writer_add(w, "empty", MER_DTYPE_F32, 2, s0, NULL));
    CHECK_ERR(mer_safetensors_writer_add(w, "half", MER_DTYPE_F16, 1, s3, h), MER_ERR_INVALID_ARG, "twice");
    CHECK_OK(mer_safetensors_writer_set_metadata(w, "format", "pt"));
    CHECK_OK(mer_safetensors_writer_set_metadata(w, "note", "quote \" and \\ and \n"));
    REQUIRE_OK(mer_safetensors_writer_save(w, path));
    mer_safetensors_writer_free(w);

    /* the header is padded to 8 bytes, so the buffer is aligned */
    char *raw;
    size_t rn;
    REQUIRE_OK(mer__read_file(path, &raw, &rn));
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = (hl << 8) | (uint8_t)raw[i];
    CHECK(hl % 8 == 0);
    CHECK(raw[8] == '{');
    free(raw);

    mer_safetensors *st;
    REQUIRE_OK(mer_safetensors_open(&st, path));
    CHECK(mer_safetensors_count(st) == 7);
    CHECK(strcmp(mer_safetensors_metadata(st, "format"), "pt") == 0);
    CHECK(strcmp(mer_safetensors_metadata(st, "note"), "quote \" and \\ and \n") == 0);
    CHECK(mer_safetensors_metadata(st, "nope") == NULL);
    /* entries in file order: the writer puts 8-byte types first, then 4, 2, 1 (order added
     * within a size), so every tensor is aligned */
    mer_safetensors_entry e;
    const char *order[7] = {"ids", "scalar", "layer.0.weight", "empty", "half", "brain", "bytes"};
    for (int i = 0; i < 7; i++) {
        REQUIRE_OK(mer_safetensors_entry_at(st, i, &e));
        CHECK(strcmp(e.name, order[i]) == 0);
        CHECK((uintptr_t)e.data % mer_dtype_size(e.dtype) == 0);
    }
    REQUIRE_OK(mer_safetensors_entry_at(st, 2, &e));
    CHECK(strcmp(e.name, "layer.0.weight") == 0 && e.nbytes == 24);
    CHECK_ERR(mer_safetensors_entry_at(st, 7, &e), MER_ERR_INVALID_ARG, NULL);

    mer_tensor t;
    REQUIRE_OK(mer_safetensors_get(st, "layer.0.weight", MER_DTYPE_F32, 2, s23, &t));
    CHECK(memcmp(t.data, a, sizeof a) == 0 && t.shape[1] == 3);
    CHECK(((uintptr_t)t.data % 4) == 0);
    REQUIRE_OK(mer_safetensors_get(st, "ids", MER_DTYPE_I64, 1, s4, &t));
    CHECK(memcmp(t.data, ids, sizeof ids) == 0);
    REQUIRE_OK(mer_safetensors_get(st, "bytes", MER_DTYPE_U8, -1, NULL, &t));
    CHECK(memcmp(t.data, u, sizeof u) == 0);
    REQUIRE_OK(mer_safetensors_get(st, "scalar", MER_DTYPE_F64, 0, NULL, &t));
    CHECK(t.ndim == 0 && *(const double *)t.data == 2.25);
    REQUIRE_OK(mer_safetensors_find(st, "empty", &e));
    CHECK(e.nbytes == 0 && e.ndim == 2 && e.shape[0] == 0 && e.shape[1] == 7);

    /* F32 is zero-copy, F16/BF16 converted once and cached */
    const float *f;
    REQUIRE_OK(mer_safetensors_get_f32(st, "layer.0.weight", 2, s23, &f));
    CHECK(f == t.data || f[2] == 3.5f);
    mer_safetensors_entry ew;
    REQUIRE_OK(mer_safetensors_find(st, "layer.0.weight", &ew));
    CHECK(f == (const float *)ew.data);
    REQUIRE_OK(mer_safetensors_get_f32(st, "half", 1, s3, &f));
    CHECK(f[0] == 0.5f && f[1] == -1.25f && f[2] == 1000.0f);
    const float *f2;
    REQUIRE_OK(mer_safetensors_get_f32(st, "half", -1, NULL, &f2));
    CHECK(f2 == f);
    REQUIRE_OK(mer_safetensors_get_f32(st, "brain", 1, s2, &f));
    CHECK(f[0] == 3.0f && f[1] == -0.125f);

    /* typed errors */
    CHECK_ERR(mer_safetensors_get(st, "missing", MER_DTYPE_F32, -1, NULL, &t), MER_ERR_NOT_FOUND,
              "tensor \"missing\" not found");
    CHECK_ERR(mer_safetensors_find(st, "missing", &e), MER_ERR_NOT_FOUND, "w.safetensors");
    CHECK_ERR(mer_safetensors_get(st, "half", MER_DTYPE_F32, -1, NULL, &t), MER_ERR_DTYPE,
              "expected dtype f32, got f16");
    int64_t s32[2] = {3, 2};
    CHECK_ERR(mer_safetensors_get(st, "layer.0.weight", MER_DTYPE_F32, 2, s32, &t), MER_ERR_SHAPE,
              "expected shape (3, 2), got (2, 3)");
    CHECK_ERR(mer_safetensors_get(st, "layer.0.weight", MER_DTYPE_F32, 1, s3, &t), MER_ERR_SHAPE,
              "expected shape (3,), got (2, 3)");
    CHECK_ERR(mer_safetensors_get_f32(st, "ids", -1, NULL, &f), MER_ERR_DTYPE, "got i64");
    CHECK_ERR(mer_safetensors_get_f32(st, "half", 1, s2, &f), MER_ERR_SHAPE, "expected shape (2,), got (3,)");
    mer_safetensors_free(st);
    mer_safetensors_free(NULL);
    mer_safetensors_writer_free(NULL);

    /* the same file through its directory */
    char mp[512];
    snprintf(mp, sizeof mp, "%s/model.safetensors", dir);
    CHECK(rename(path, mp) == 0);
    REQUIRE_OK(mer_safetensors_open(&st, dir));
    CHECK(mer_safetensors_count(st) == 7);
    mer_safetensors_free(st);
}

MER_TEST(safetensors_sharded) {
    const char *dir = mer_test_tmpdir("st_shard");
    char p1[512], p2[512], idx[512];
    snprintf(p1, sizeof p1, "%s/model-00001-of-00002.safetensors", dir);
    snprintf(p2, sizeof p2, "%s/model-00002-of-00002.safetensors", dir);
    snprintf(idx, sizeof idx, "%s/model.safetensors.index.json", dir);
    float a[4] = {1, 2, 3, 4}, b[2] = {5, 6};
    int64_t s4[1] = {4}, s2[1] = {2};
    mer_safetensors_writer *w;
    REQUIRE_OK(mer_safetensors_writer_init(&w));
    CHECK_OK(mer_safetensors_writer_add(w, "a", MER_DTYPE_F32, 1, s4, a));
    CHECK_OK(mer_safetensors_writer_set_metadata(w, "format", "pt"));
    REQUIRE_OK(mer_safetensors_writer_save(w, p1));
    mer_safetensors_writer_free(w);
    REQUIRE_OK(mer_safetensors_writer_init(&w));
    CHECK_OK(mer_safetensors_writer_add(w, "b", MER_DTYPE_F32, 1, s2, b));
    CHECK_OK(mer_safetensors_writer_add(w, "c", MER_DTYPE_BF16, 0, NULL, (uint16_t[]){0x3f80}));
    REQUIRE_OK(mer_safetensors_writer_save(w, p2));
    mer_safetensors_writer_free(w);
    const char *index = "{\"metadata\": {\"total_size\": 26}, \"weight_map\": {"
                        "\"b\": \"model-00002-of-00002.safetensors\", "
                        "\"a\": \"model-00001-of-00002.safetensors\", "
                        "\"c\": \"model-00002-of-00002.safetensors\"}}";
    REQUIRE(mer_test_write(idx, index, strlen(index)) == 0);

    for (int via_dir = 0; via_dir < 2; via_dir++) {
        mer_safetensors *st;
        REQUIRE_OK(mer_safetensors_open(&st, via_dir ? dir : idx));
        CHECK(mer_safetensors_count(st) == 3);
        mer_safetensors_entry e;
        REQUIRE_OK(mer_safetensors_entry_at(st, 0, &e));
        CHECK(strcmp(e.name, "a") == 0 && e.shard == 0);
        REQUIRE_OK(mer_safetensors_find(st, "b", &e));
        CHECK(e.shard == 1 && ((const float *)e.data)[1] == 6.0f);
        const float *f;
        REQUIRE_OK(mer_safetensors_get_f32(st, "c", 0, NULL, &f));
        CHECK(f[0] == 1.0f);
        CHECK(strcmp(mer_safetensors_metadata(st, "format"), "pt") == 0);
        CHECK_ERR(mer_safetensors_find(st, "zz", &e), MER_ERR_NOT_FOUND, "1 more shards");
        mer_safetensors_free(st);
    }
    char out[4096];
    int rc = mer_test_run(out, sizeof out, "%s inspect '%s'", mer_test_bin(), dir);
    CHECK(rc == 0 && strstr(out, "3 tensors, 7 parameters") && strstr(out, "2 shards"));
    CHECK(strstr(out, "[shard 1]") != NULL);

    /* index errors */
    mer_safetensors *st = NULL;
    const char *bad1 = "{\"weight_map\": {\"a\": \"model-00001-of-00002.safetensors\", \"x\": \"model-00001-of-00002.safetensors\"}}";
    REQUIRE(mer_test_write(idx, bad1, strlen(bad1)) == 0);
    CHECK_ERR(mer_safetensors_open(&st, idx), MER_ERR_NOT_FOUND, "\"x\"");
    CHECK(st == NULL);
    const char *bad2 = "{\"weight_map\": {\"a\": \"../etc/passwd\"}}";
    REQUIRE(mer_test_write(idx, bad2, strlen(bad2)) == 0);
    CHECK_ERR(mer_safetensors_open(&st, idx), MER_ERR_FORMAT, "outside the checkpoint directory");
    const char *bad3 = "{\"weight_map\": {\"a\": \"missing.safetensors\"}}";
    REQUIRE(mer_test_write(idx, bad3, strlen(bad3)) == 0);
    CHECK_ERR(mer_safetensors_open(&st, idx), MER_ERR_NOT_FOUND, "missing.safetensors");
    const char *bad4 = "{\"weight_map\": {\"b\": \"model-00001-of-00002.safetensors\", \"a\": \"model-00001-of-00002.safetensors\"}}";
    REQUIRE(mer_test_write(idx, bad4, strlen(bad4)) == 0);
    CHECK_ERR(mer_safetensors_open(&st, idx), MER_ERR_NOT_FOUND, "\"b\"");
    const char *bad5 = "{\"weights\": {}}";
    REQUIRE(mer_test_write(idx, bad5, strlen(bad5)) == 0);
    CHECK_ERR(mer_safetensors_open(&st, idx), MER_ERR_FORMAT, "weight_map");
    /* the same tensor in two shards */
    REQUIRE_OK(mer_safetensors_writer_init(&w));
    CHECK_OK(mer_safetensors_writer_add(w, "a", MER_DTYPE_F32, 1, s2, b));
    REQUIRE_OK(mer_safetensors_writer_save(w, p2));
    mer_safetensors_writer_free(w);
    const char *bad6 = "{\"weight_map\": {\"a\": \"model-00001-of-00002.safetensors\", \"b\": \"model-00002-of-00002.safetensors\"}}";
    REQUIRE(mer_test_write(idx, bad6, strlen(bad6)) == 0);
    CHECK_ERR(mer_safetensors_open(&st, idx), MER_ERR_FORMAT, "appears twice");
    CHECK_ERR(mer_safetensors_open(&st, "build/test-tmp/does-not-exist"), MER_ERR_NOT_FOUND, "does-not-exist");
    char empty_dir[600];
    snprintf(empty_dir, sizeof empty_dir, "%s/sub", dir);
    REQUIRE(mer_test_run(NULL, 0, "mkdir -p '%s'", empty_dir) == 0);
    CHECK_ERR(mer_safetensors_open(&st, empty_dir), MER_ERR_NOT_FOUND, "holds no model.safetensors");
}

MER_TEST(safetensors_misaligned_header_is_copied) {
    /* header length 61: F32 data at an odd address in the file, still readable and aligned */
    char header[128];
    snprintf(header, sizeof header, "{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}");
    while (strlen(header) < 61) strcat(header, " ");
    uint8_t img[256];
    float v[2] = {1.5f, -7.0f};
    size_t n = make_image(img, sizeof img, header, v, sizeof v);
    mer_safetensors *st;
    REQUIRE_OK(mer__safetensors_open_memory(&st, img, n, "odd.safetensors"));
    const float *f;
    REQUIRE_OK(mer_safetensors_get_f32(st, "x", 1, (int64_t[]){2}, &f));
    CHECK(((uintptr_t)f % 4) == 0);
    CHECK(f[0] == 1.5f && f[1] == -7.0f);
    mer_safetensors_free(st);

    /* a writer that did not group by alignment: F32 after one byte */
    uint8_t data[5] = {7, 0, 0, 0x80, 0x3f};
    n = make_image(img, sizeof img,
                   "{\"b\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
                   "\"f\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[1,5]}}      ",
                   data, 5);
    REQUIRE_OK(mer__safetensors_open_memory(&st, img, n, "odd2.safetensors"));
    mer_tensor t;
    REQUIRE_OK(mer_safetensors_get(st, "f", MER_DTYPE_F32, 0, NULL, &t));
    CHECK(((uintptr_t)t.data % 4) == 0 && *(const float *)t.data == 1.0f);
    REQUIRE_OK(mer_safetensors_get(st, "b", MER_DTYPE_U8, 1, (int64_t[]){1}, &t));
    CHECK(*(const uint8_t *)t.data == 7);
    mer_safetensors_free(st);
}

MER_TEST(safetensors_hostile_headers) {
    /* each malformed variant: the right status and a message naming the problem */
    const char *T = "mem.safetensors";
    (void)T;
    CHECK_ERR(parse_mem("{}", 0), MER_OK, NULL);
#define BAD(hdr, ndata, st, sub) CHECK_ERR(parse_mem(hdr, ndata), st, sub)
    BAD("{\"x\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,20]}}", 24, MER_ERR_FORMAT,
        "shape (2, 3) x F32 needs 24 bytes but data_offsets span 20");
    BAD("{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4, MER_ERR_FORMAT, "out of bounds");
    BAD("{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
        "\"y\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, MER_ERR_FORMAT, "overlaps");
    BAD("{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, MER_ERR_FORMAT, "hole");
    BAD("{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 8, MER_ERR_FORMAT, "4 trailing bytes");
    BAD("{\"x\":{\"dtype\":\"F33\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, MER_ERR_DTYPE, "unknown dtype \"F33\"");
    BAD("{\"x\":{\"dtype\":\"U16\",\"shape\":[1],\"data_offsets\":[0,2]}}", 2, MER_ERR_DTYPE, "U16 is not supported");
    BAD("{\"x\":{\"dtype\":7,\"shape\":[1],\"data_offsets\":[0,4]}}", 4, MER_ERR_FORMAT, "dtype is not a string");
    BAD("{\"x\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4, MER_ERR_FORMAT, "negative dimension");
    BAD("{\"x\":{\"dtype\":\"F32\",\"shape\":[2.5],\"data_offsets\":[0,4]}}", 4, MER_ERR_FORMAT,
        "shape[0] is not a non-negative integer");
    BAD("{\"x\":{\"dtype\":\"F32\",\"shape\":[\"2\"],\"data_offsets\":[0,8]}}", 8, MER_ERR_FORMAT, "shape[0]");
    BAD("{\"x\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],\"data_offsets\":[0,4]}}", 4,
        MER_ERR_FORMAT, "overflows");
    BAD("{\"x\":{\"dtype\":\"F64\",\"shape\":[1152921504606846976],\"data_offsets\":[0,4]}}", 4, MER_ERR_FORMAT,
        "not a non-negative integer");
    BAD("{\"x\":{\"dtype\":\"F64\",\"shape\":[1125899906842624,1024],\"data_offsets\":[0,4]}}", 4, MER_ERR_FORMAT,
        "overflow");
    BAD("{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
        "\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, MER_ERR_FORMAT, "duplicate key \"x\"");
    BAD("{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,0]}}", 4, MER_ERR_FORMAT, "end before");
    BAD("{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", 4, MER_ERR_FORMAT, "[begin, end] pair");
    BAD("{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,-4]}}", 4, MER_ERR_FORMAT, "data_offsets");
    BAD("{\"x\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, MER_ERR_FORMAT, "missing \"data_offsets\"");
    BAD("{\"x\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 4, MER_ERR_UNSUPPORTED,
        "rank 9");
    BAD("{\"x\":[1,2]}", 0, MER_ERR_FORMAT, "not an object");
    BAD("{\"__metadata__\":{\"a\":1}}", 0, MER_ERR_FORMAT, "__metadata__ value of \"a\" is not a string");
    BAD("{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]", 4, MER_ERR_FORMAT, "invalid JSON at line 1");
    BAD("{\"x\":1}garbage", 0, MER_ERR_FORMAT, "unexpected data after the JSON value");
    BAD("[1,2,3]", 0, MER_ERR_FORMAT, "must start with '{'");
    BAD("", 0, MER_ERR_FORMAT, "must start with '{'");
#undef BAD

    /* length field problems, through real files as `mer inspect` sees them */
    const char *dir = mer_test_tmpdir("st_hostile");
    char p[512];
    uint8_t img[64];
    mer_safetensors *st = NULL;
    snprintf(p, sizeof p, "%s/empty.safetensors", dir);
    REQUIRE(mer_test_write(p, "", 0) == 0);
    CHECK_ERR(mer_safetensors_open(&st, p), MER_ERR_FORMAT, "empty.safetensors: truncated: 0 bytes");
    snprintf(p, sizeof p, "%s/short.safetensors", dir);
    REQUIRE(mer_test_write(p, "\x10\0\0", 3) == 0);
    CHECK_ERR(mer_safetensors_open(&st, p), MER_ERR_FORMAT, "truncated: 3 bytes");
    snprintf(p, sizeof p, "%s/huge.safetensors", dir);
    memset(img, 0, sizeof img);
    img[5] = 1; /* 2^40 */
    memcpy(img + 8, "{}", 2);
    REQUIRE(mer_test_write(p, img, 10) == 0);
    CHECK_ERR(mer_safetensors_open(&st, p), MER_ERR_FORMAT, "header length 1099511627776 exceeds the 100000000-byte limit");
    memset(img, 0xff, 8);
    REQUIRE(mer_test_write(p, img, 10) == 0);
    CHECK_ERR(mer_safetensors_open(&st, p), MER_ERR_FORMAT, "exceeds");
    snprintf(p, sizeof p, "%s/trunc.safetensors", dir);
    size_t n = make_image(img, sizeof img, "{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", "", 0);
    (void)n;
    uint8_t big[256];
    n = make_image(big, sizeof big, "{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", "abcd", 4);
    REQUIRE(mer_test_write(p, big, 30) == 0); /* cut inside the header */
    CHECK_ERR(mer_safetensors_open(&st, p), MER_ERR_FORMAT, "truncated: header length 54 but only 22 bytes follow");
    REQUIRE(mer_test_write(p, big, n - 2) == 0); /* cut inside the data */
    CHECK_ERR(mer_safetensors_open(&st, p), MER_ERR_FORMAT, "out of bounds");
    CHECK(st == NULL);
}

MER_TEST(safetensors_inspect_cli) {
    const char *dir = mer_test_tmpdir("st_cli");
    char p[512], out[4096];
    snprintf(p, sizeof p, "%s/w.safetensors", dir);
    float a[6] = {0};
    mer_safetensors_writer *w;
    REQUIRE_OK(mer_safetensors_writer_init(&w));
    CHECK_OK(mer_safetensors_writer_add(w, "enc.weight", MER_DTYPE_F32, 2, (int64_t[]){2, 3}, a));
    CHECK_OK(mer_safetensors_writer_add(w, "enc.bias", MER_DTYPE_BF16, 1, (int64_t[]){2}, a));
    REQUIRE_OK(mer_safetensors_writer_save(w, p));
    mer_safetensors_writer_free(w);
    int rc = mer_test_run(out, sizeof out, "%s inspect '%s'", mer_test_bin(), p);
    CHECK(rc == 0);
    CHECK(strstr(out, "enc.weight") && strstr(out, "F32") && strstr(out, "(2, 3)"));
    CHECK(strstr(out, "enc.bias") && strstr(out, "BF16"));
    CHECK(strstr(out, "8 parameters"));

    /* truncated: non-zero exit, exactly one line naming the file and the problem */
    char *raw;
    size_t rn;
    REQUIRE_OK(mer__read_file(p, &raw, &rn));
    char tp[512];
    snprintf(tp, sizeof tp, "%s/cut.safetensors", dir);
    REQUIRE(mer_test_write(tp, raw, rn - 3) == 0);
    free(raw);
    rc = mer_test_run(out, sizeof out, "%s inspect '%s' 2>&1 >/dev/null", mer_test_bin(), tp);
    CHECK(rc != 0 && rc < 128);
    CHECK(strstr(out, "cut.safetensors") != NULL);
    CHECK(strstr(out, "out of bounds") != NULL);
    int lines = 0;
    for (const char *c = out; *c; c++) lines += *c == '\n';
    CHECK(lines == 1);
    CHECK(strncmp(out, "mer inspect: ", 13) == 0);
    REQUIRE(mer_test_write(tp, "\x05\0\0", 3) == 0);
    rc = mer_test_run(out, sizeof out, "%s inspect '%s'", mer_test_bin(), tp);
    CHECK(rc == 1 && strstr(out, "truncated"));
    rc = mer_test_run(out, sizeof out, "%s inspect", mer_test_bin());
    CHECK(rc == 2);
}

MER_TEST(safetensors_python_fixture) {
    /* written by tests/fixtures/io/make_io_fixtures.py with struct + json per the spec, the
     * values also saved by numpy for comparison */
    mer_safetensors *st;
    REQUIRE_OK(mer_safetensors_open(&st, "tests/fixtures/io/ref.safetensors"));
    CHECK(mer_safetensors_count(st) == 5);
    CHECK(strcmp(mer_safetensors_metadata(st, "format"), "pt") == 0);
    const float *w, *h, *b;
    REQUIRE_OK(mer_safetensors_get_f32(st, "linear.weight", 2, (int64_t[]){3, 4}, &w));
    REQUIRE_OK(mer_safetensors_get_f32(st, "linear.weight_f16", 2, (int64_t[]){3, 4}, &h));
    REQUIRE_OK(mer_safetensors_get_f32(st, "linear.weight_bf16", 2, (int64_t[]){3, 4}, &b));
    float *ref;
    int32_t nd;
    int64_t shape[MER_MAX_DIMS];
    REQUIRE_OK(mer_npy_read("tests/fixtures/io/ref_f32.npy", &ref, &nd, shape));
    CHECK(nd == 2 && shape[0] == 3 && shape[1] == 4);
    /* torch's own conversions to f16/bf16 and back, saved as float32 */
    float *rh, *rb;
    REQUIRE_OK(mer_npy_read("tests/fixtures/io/ref_f16_as_f32.npy", &rh, &nd, shape));
    REQUIRE_OK(mer_npy_read("tests/fixtures/io/ref_bf16_as_f32.npy", &rb, &nd, shape));
    for (int i = 0; i < 12; i++) {
        CHECK(w[i] == ref[i]);
        CHECK(h[i] == rh[i]);
        CHECK(b[i] == rb[i]);
    }
    mer_tensor t;
    REQUIRE_OK(mer_safetensors_get(st, "step", MER_DTYPE_I64, 0, NULL, &t));
    CHECK(*(const int64_t *)t.data == 1234567890123LL);
    REQUIRE_OK(mer_safetensors_get(st, "mask", MER_DTYPE_BOOL, 1, (int64_t[]){3}, &t));
    CHECK(((const uint8_t *)t.data)[0] == 1 && ((const uint8_t *)t.data)[1] == 0);
    free(ref);
    free(rh);
    free(rb);

    /* our writer, given the same tensors in the same order, reproduces the Python file */
    const char *dir = mer_test_tmpdir("st_fixture");
    char p[512];
    snprintf(p, sizeof p, "%s/again.safetensors", dir);
    mer_safetensors_writer *wr;
    REQUIRE_OK(mer_safetensors_writer_init(&wr));
    CHECK_OK(mer_safetensors_writer_set_metadata(wr, "format", "pt"));
    for (int64_t i = 0; i < mer_safetensors_count(st); i++) {
        mer_safetensors_entry e;
        REQUIRE_OK(mer_safetensors_entry_at(st, i, &e));
        CHECK_OK(mer_safetensors_writer_add(wr, e.name, e.dtype, e.ndim, e.shape, e.data));
    }
    REQUIRE_OK(mer_safetensors_writer_save(wr, p));
    mer_safetensors_writer_free(wr);
    mer_safetensors_free(st);
    char *a, *bb;
    size_t na, nb;
    REQUIRE_OK(mer__read_file("tests/fixtures/io/ref.safetensors", &a, &na));
    REQUIRE_OK(mer__read_file(p, &bb, &nb));
    CHECK(na == nb && memcmp(a, bb, na) == 0);
    free(a);
    free(bb);
}
