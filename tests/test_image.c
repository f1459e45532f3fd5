/*
 * test_image.c -- PNG/JPEG loading against PIL's decodes (fixtures made by
 * tests/fixtures/image/make_images.py), PNG conversions to RGB8, PNG write/load round trips,
 * the FFmpeg fallback, and corrupt or missing images.
 */
#include "test.h"

#include <stdint.h>

#define FIX "tests/fixtures/image/"

/* Max |a - b| over two loaded images of the same size (-1 if sizes differ). */
static int img_maxdiff(const mer_image *a, const mer_image *b) {
    if (a->width != b->width || a->height != b->height || !a->rgb || !b->rgb) return -1;
    int m = 0;
    for (size_t i = 0; i < (size_t)a->width * a->height * 3; i++) {
        int d = abs(a->rgb[i] - b->rgb[i]);
        if (d > m) m = d;
    }
    return m;
}

static void check_same(const char *path, const char *ref, int tol) {
    mer_image a, b;
    CHECK_OK(mer_image_load(path, &a));
    CHECK_OK(mer_image_load(ref, &b));
    int d = img_maxdiff(&a, &b);
    if (d < 0 || d > tol)
        mer_test_fail(__FILE__, __LINE__, "%s vs %s: max diff %d (tol %d), sizes %dx%d / %dx%d", path, ref, d, tol,
                      a.width, a.height, b.width, b.height);
    mer_image_free(&a);
    mer_image_free(&b);
}

MER_TEST(image_png_astronaut) {
    mer_image im;
    REQUIRE_OK(mer_image_load(FIX "astronaut.png", &im));
    CHECK(im.width == 512 && im.height == 512 && im.time == 0 && im.index == 0);
    int64_t sum[3] = {0, 0, 0};
    for (size_t i = 0; i < 512 * 512; i++)
        for (int c = 0; c < 3; c++) sum[c] += im.rgb[i * 3 + c];
    /* per-channel sums and two pixels as read by PIL */
    CHECK(sum[0] == 37109758 && sum[1] == 27724204 && sum[2] == 25290362);
    const uint8_t *p = im.rgb + (100 * 512 + 200) * 3, *q = im.rgb + (511 * 512 + 0) * 3;
    CHECK(p[0] == 81 && p[1] == 57 && p[2] == 17);
    CHECK(q[0] == 184 && q[1] == 167 && q[2] == 172);
    mer_image_free(&im);
    CHECK(im.rgb == NULL && im.width == 0);
    mer_image_free(NULL);
}

MER_TEST(image_png_conversions) {
    check_same(FIX "grey.png", FIX "grey_ref.png", 0);
    check_same(FIX "grey16.png", FIX "grey_ref.png", 0);
    check_same(FIX "rgba.png", FIX "variants_ref.png", 0);   /* alpha dropped, not composited */
    check_same(FIX "rgb16.png", FIX "variants_ref.png", 0);
    check_same(FIX "palette.png", FIX "palette_ref.png", 0);
}

MER_TEST(image_more_layouts_match_pil) {
    static const char *names[][2] = {
        {FIX "la.png", FIX "la_png_ref.png"},             /* grey + alpha */
        {FIX "bw1.png", FIX "bw1_png_ref.png"},           /* 1-bit */
        {FIX "trns.png", FIX "trns_png_ref.png"},         /* tRNS colour key */
        {FIX "grey.jpg", FIX "grey_jpg_ref.png"},         /* greyscale JPEG */
        {FIX "lossless.webp", FIX "lossless_webp_ref.png"}, /* FFmpeg fallback */
        {FIX "pic.gif", FIX "pic_gif_ref.png"},
        {FIX "pic.tif", FIX "pic_tif_ref.png"},
    };
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) check_same(names[i][0], names[i][1], 0);
}

MER_TEST(image_jpeg_matches_pil) {
    /* libjpeg-turbo with islow IDCT and fancy upsampling, as PIL: identical pixels */
    check_same(FIX "small.jpg", FIX "small_jpg_ref.png", 0);
    mer_image im;
    REQUIRE_OK(mer_image_load(FIX "small.jpg", &im));
    CHECK(im.width == 40 && im.height == 30);
    const uint8_t *p = im.rgb + (10 * 40 + 20) * 3; /* inside the flat (200, 30, 60) block */
    CHECK(abs(p[0] - 200) <= 4 && abs(p[1] - 30) <= 4 && abs(p[2] - 60) <= 4);
    mer_image_free(&im);
}

MER_TEST(image_png_roundtrip) {
    const char *dir = mer_test_tmpdir("image_rt");
    char path[1100];
    const int w = 37, h = 23;
    uint8_t px[37 * 23 * 4];
    for (size_t i = 0; i < sizeof px; i++) px[i] = (uint8_t)((i * 2654435761u) >> 11);
    for (int ch = 1; ch <= 4; ch++) {
        if (ch == 2) {
            snprintf(path, sizeof path, "%s/two.png", dir);
            CHECK_ERR(mer_image_write_png(path, px, w, h, 2), MER_ERR_INVALID_ARG, "channels");
            continue;
        }
        snprintf(path, sizeof path, "%s/rt%d.png", dir, ch);
        REQUIRE_OK(mer_image_write_png(path, px, w, h, ch));
        mer_image im;
        REQUIRE_OK(mer_image_load(path, &im));
        CHECK(im.width == w && im.height == h);
        int bad = 0;
        for (int i = 0; i < w * h; i++)
            for (int c = 0; c < 3; c++) {
                uint8_t want = ch == 1 ? px[i] : px[i * ch + c]; /* grey replicated; alpha dropped */
                if (im.rgb[i * 3 + c] != want) bad++;
            }
        if (bad) mer_test_fail(__FILE__, __LINE__, "%d channels: %d pixel values differ", ch, bad);
        mer_image_free(&im);
    }
    /* atomic: no temp file left behind; overwriting works */
    snprintf(path, sizeof path, "%s/rt3.png", dir);
    CHECK_OK(mer_image_write_png(path, px, 5, 5, 3));
    char out[256];
    CHECK(mer_test_run(out, sizeof out, "ls '%s' | grep -c tmp", dir) != 0);
    /* bad arguments and an unwritable destination */
    CHECK_ERR(mer_image_write_png(path, px, 0, 5, 3), MER_ERR_INVALID_ARG, NULL);
    CHECK_ERR(mer_image_write_png(path, px, 5, 1 << 20, 3), MER_ERR_INVALID_ARG, NULL);
    snprintf(path, sizeof path, "%s/no/such/dir/x.png", dir);
    CHECK_ERR(mer_image_write_png(path, px, 5, 5, 3), MER_ERR_IO, NULL);
}

MER_TEST(image_ffmpeg_fallback) {
    const char *dir = mer_test_tmpdir("image_ff");
    char bmp[1100], out[2048];
    snprintf(bmp, sizeof bmp, "%s/v.bmp", dir);
    int rc = mer_test_run(out, sizeof out, "ffmpeg -nostdin -hide_banner -loglevel error -y -i %s '%s'",
                          FIX "variants_ref.png", bmp);
    REQUIRE(rc == 0);
    check_same(bmp, FIX "variants_ref.png", 0);
}

MER_TEST(image_corrupt_and_missing) {
    const char *dir = mer_test_tmpdir("image_bad");
    char path[1100];
    mer_image im;
    snprintf(path, sizeof path, "%s/missing.png", dir);
    CHECK_ERR(mer_image_load(path, &im), MER_ERR_IO, path);

    snprintf(path, sizeof path, "%s/empty.png", dir);
    REQUIRE(mer_test_write(path, "", 0) == 0);
    CHECK_ERR(mer_image_load(path, &im), MER_ERR_FORMAT, path);

    snprintf(path, sizeof path, "%s/garbage.png", dir);
    char junk[3000];
    for (size_t i = 0; i < sizeof junk; i++) junk[i] = (char)((i * 2654435761u) >> 13);
    REQUIRE(mer_test_write(path, junk, sizeof junk) == 0);
    CHECK_ERR(mer_image_load(path, &im), MER_ERR_FORMAT, path);

    /* truncated PNG and JPEG; a PNG whose header claims a huge size; a bad CRC */
    FILE *f = fopen(FIX "astronaut.png", "rb");
    REQUIRE(f);
    static uint8_t buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    snprintf(path, sizeof path, "%s/cut.png", dir);
    REQUIRE(mer_test_write(path, buf, n / 3) == 0);
    CHECK_ERR(mer_image_load(path, &im), MER_ERR_FORMAT, "corrupt PNG");
    CHECK(im.rgb == NULL);
    snprintf(path, sizeof path, "%s/huge.png", dir);
    uint8_t hdr[64];
    memcpy(hdr, buf, sizeof hdr);
    hdr[16] = 0x7f; /* width 0x7f000200 */
    REQUIRE(mer_test_write(path, hdr, sizeof hdr) == 0);
    CHECK_ERR(mer_image_load(path, &im), MER_ERR_FORMAT, path);
    snprintf(path, sizeof path, "%s/crc.png", dir);
    buf[40] ^= 0xff; /* inside the first IDAT/header chunks */
    REQUIRE(mer_test_write(path, buf, n) == 0);
    CHECK_ERR(mer_image_load(path, &im), MER_ERR_FORMAT, path);

    f = fopen(FIX "small.jpg", "rb");
    REQUIRE(f);
    n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    snprintf(path, sizeof path, "%s/cut.jpg", dir);
    REQUIRE(mer_test_write(path, buf, 200) == 0); /* ends inside the tables */
    CHECK_ERR(mer_image_load(path, &im), MER_ERR_FORMAT, "corrupt JPEG");
    snprintf(path, sizeof path, "%s/cut_scan.jpg", dir);
    REQUIRE(mer_test_write(path, buf, n * 3 / 4) == 0); /* ends inside the entropy-coded data */
    CHECK_ERR(mer_image_load(path, &im), MER_ERR_FORMAT, "truncated");
    snprintf(path, sizeof path, "%s/sof.jpg", dir);
    for (size_t i = 0; i + 9 < n; i++) /* SOF0 with width 0 */
        if (buf[i] == 0xFF && buf[i + 1] == 0xC0) {
            buf[i + 7] = 0;
            buf[i + 8] = 0;
            break;
        }
    REQUIRE(mer_test_write(path, buf, n) == 0);
    CHECK_ERR(mer_image_load(path, &im), MER_ERR_FORMAT, path);
    CHECK_ERR(mer_image_load(NULL, &im), MER_ERR_INVALID_ARG, NULL);
}
