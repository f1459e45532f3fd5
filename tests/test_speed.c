/*
 * test_speed.c -- the CPU-feature dispatch, the peak loops (`mer bench peak`) and the packed
 * weight GEMM (src/kernels/packed.c) against double-precision references.
 */
#include "test.h"

MER_TEST(speed_cpu_features_and_peak) {
    uint32_t f = mer_cpu_features();
    CHECK(mer_cpu_features() == f); /* read once */
    CHECK(strlen(mer_cpu_features_str()) > 0);
    if ((f & MER_CPU_AVX512_BF16) || (f & MER_CPU_AVX512_VNNI)) CHECK(f & MER_CPU_AVX512);
    const char *off = getenv("MER_NO_AVX512");
    if (off && *off && strcmp(off, "0")) CHECK(!(f & MER_CPU_AVX512));
    double g = -1;
    CHECK_ERR(mer_peak_measure((mer_peak_kind)99, 1, 0.01, &g), MER_ERR_INVALID_ARG, "unknown kind");
    CHECK_ERR(mer_peak_measure(MER_PEAK_FP32, 1, 0.01, NULL), MER_ERR_INVALID_ARG, NULL);
    for (int k = 0; k < MER_PEAK_KINDS; k++) {
        int have = k == MER_PEAK_FP32        ? (f & (MER_CPU_AVX2 | MER_CPU_AVX512)) != 0
                   : k == MER_PEAK_BF16      ? (f & MER_CPU_AVX512_BF16) != 0
                   : k == MER_PEAK_INT8      ? (f & MER_CPU_AVX512_VNNI) != 0
                                             : (f & MER_CPU_AVX2) != 0;
        mer_status s = mer_peak_measure((mer_peak_kind)k, 1, 0.01, &g);
        if (have) {
            CHECK_OK(s);
            /* any x86-64 with these units does more than 1 GOPS on one core */
            CHECK(g > 1.0 && g < 1e5);
        } else {
            CHECK(s == MER_ERR_UNSUPPORTED && g == 0);
            CHECK(strstr(mer_last_error(), "not supported by this CPU") != NULL);
        }
    }
}

/* ---- packed weights ----------------------------------------------------------------------- */
#include "kernels/kernels.h"

static float urand(uint64_t *s) {
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((*s >> 40) & 0xffffff) / 16777216.0f * 2.0f - 1.0f;
}

static float bf16r(float f) {
    uint16_t b;
    mer_f32_to_bf16(&b, &f, 1);
    uint32_t x = (uint32_t)b << 16;
    float r;
    memcpy(&r, &x, 4);
    return r;
}

static double gelu_d(double v) { return 0.5 * v * (1.0 + erf(v / sqrt(2.0))); }

/* int8 activations in the u8 form (VNNI, mer__packed_i8_u8): per row over [min(x, 0), max(x, 0)],
 * s = range / 255, z = round(-min / s), q = clamp(round(x / s) + z, 0, 255); qa[q] = q - z */
static float u8_row(double *qa, const float *x, int64_t k) {
    float mn = 0, mx = 0;
    for (int64_t q = 0; q < k; q++) {
        mn = fminf(mn, x[q]);
        mx = fmaxf(mx, x[q]);
    }
    float sa = mx > mn ? (mx - mn) / 255.0f : 1.0f, inv = 1.0f / sa;
    long z = lrintf(-mn * inv);
    z = z > 255 ? 255 : z;
    for (int64_t q = 0; q < k; q++) qa[q] = fmax(0, fmin(255, (double)(lrintf(x[q] * inv) + z))) - (double)z;
    return sa;
}

/* ... in the AVX2 one-sided form: over [min(x, 0), max(x, 0)], s = range / 127,
 * q = clamp(round(x / s) + z, 0, 127); qa[q] = q - z */
static float u7_row(double *qa, const float *x, int64_t k) {
    float mn = 0, mx = 0;
    for (int64_t q = 0; q < k; q++) {
        mn = fminf(mn, x[q]);
        mx = fmaxf(mx, x[q]);
    }
    float sa = (mx - mn) / 127.0f, inv = 1.0f / sa;
    long z = lrintf(-mn * inv);
    for (int64_t q = 0; q < k; q++) qa[q] = fmax(0, fmin(127, (double)(lrintf(x[q] * inv) + z))) - (double)z;
    return sa;
}

/* The reference of each type, in double: the same quantisation written independently. */
static void packed_ref(double *r, const float *x, int64_t ldx, const float *w, const float *b,
                       int64_t m, int64_t n, int64_t k, mer_pack_type type, int u8) {
    double *qw = malloc(sizeof(double) * n * k), *sw = malloc(sizeof(double) * n);
    for (int64_t j = 0; j < n; j++) {
        float amax = 0;
        for (int64_t i = 0; i < k; i++) amax = fmaxf(amax, fabsf(w[j * k + i]));
        sw[j] = amax > 0 ? amax / 127.0f : 1.0f;
        for (int64_t i = 0; i < k; i++) {
            float v = w[j * k + i];
            qw[j * k + i] = type == MER_PACK_F32 ? v : type == MER_PACK_BF16 ? bf16r(v)
                            : fmax(-127, fmin(127, (double)lrintf(v / (float)sw[j])));
        }
    }
    double *qa = malloc(sizeof(double) * k);
    for (int64_t i = 0; i < m; i++) {
        float amax = 0;
        for (int64_t q = 0; q < k; q++) amax = fmaxf(amax, fabsf(x[i * ldx + q]));
        float sa = amax > 0 ? amax / 127.0f : 1.0f;
        int os = 0; /* AVX2: a row within 1.125 max|x| of one side of zero takes the u7 form */
        if (type == MER_PACK_INT8 && !u8) {
            float mn = 0, mx = 0;
            for (int64_t q = 0; q < k; q++) {
                mn = fminf(mn, x[i * ldx + q]);
                mx = fmaxf(mx, x[i * ldx + q]);
            }
            if (amax > 0 && mx - mn <= 1.125f * amax) {
                os = 1;
                sa = u7_row(qa, x + i * ldx, k);
            }
        }
        if (type == MER_PACK_INT8 && u8) sa = u8_row(qa, x + i * ldx, k);
        for (int64_t j = 0; j < n; j++) {
            double acc = 0;
            for (int64_t q = 0; q < k; q++) {
                float v = x[i * ldx + q];
                double a = type == MER_PACK_F32 ? v : type == MER_PACK_BF16 ? bf16r(v)
                           : u8 || os ? qa[q] : fmax(-127, fmin(127, (double)lrintf(v * (1.0f / sa))));
                acc += a * qw[j * k + q];
            }
            if (type == MER_PACK_INT8) acc *= (double)sa * sw[j];
            r[i * n + j] = acc + (b ? b[j] : 0);
        }
    }
    free(qa);
    free(qw);
    free(sw);
}

MER_TEST(speed_packed_linear_matches_reference) {
    /* every tile remainder: rows around 4/6/192, columns around 16/128, k around 4/256
     * (a fourth number: a row stride ldx < k, overlapping rows as a strided convolution reads them;
     * fp32 reads them in place, a last partial tile of rows packed) */
    static const int64_t shapes[][4] = {{1, 1, 1},     {5, 17, 3},    {6, 16, 256},  {7, 33, 257},
                                        {13, 130, 515}, {193, 40, 64}, {200, 129, 300}, {50, 24, 72, 48},
                                        {110, 20, 300, 70}};
    uint64_t seed = 42;
    double worst[3] = {0, 0, 0};
    for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++) {
        int64_t m = shapes[si][0], n = shapes[si][1], k = shapes[si][2], ldy = n + 5;
        int64_t ldx = shapes[si][3] ? shapes[si][3] : k + 3, xn = (m - 1) * ldx + k;
        float *x = malloc(sizeof(float) * xn), *w = malloc(sizeof(float) * n * k),
              *b = malloc(sizeof(float) * n), *y = malloc(sizeof(float) * m * ldy),
              *y2 = malloc(sizeof(float) * m * ldy);
        double *r = malloc(sizeof(double) * m * n);
        uint16_t *w16 = malloc(sizeof(uint16_t) * n * k);
        REQUIRE(x && w && b && y && y2 && r && w16);
        for (int64_t i = 0; i < xn; i++) x[i] = urand(&seed);
        for (int64_t i = 0; i < n * k; i++) w[i] = urand(&seed) * 0.1f;
        for (int64_t i = 0; i < n; i++) b[i] = urand(&seed);
        for (int type = 0; type < 3; type++) {
            mer_packed *p = NULL;
            REQUIRE_OK(mer_packed_init(&p, w, MER_DTYPE_F32, b, n, k, (mer_pack_type)type));
            CHECK(mer_packed_n(p) == n && mer_packed_k(p) == k && mer_packed_bytes(p) > 0);
            packed_ref(r, x, ldx, w, b, m, n, k, (mer_pack_type)type, mer__packed_i8_u8(p));
            for (int64_t i = 0; i < m * ldy; i++) y[i] = 7.0f; /* the padding must survive */
            CHECK_OK(mer_packed_linear(y, ldy, x, ldx, m, p, 0, MER_EPI_NONE));
            /* fp32 sums of k products: |err| <~ k * 2^-23 * sum|a w| (bounded by k * 0.1); int8 sums
             * are exact, only the scaling rounds */
            double tol = 4e-7 * k * 0.1 + 1e-6;
            double md = 0;
            for (int64_t i = 0; i < m; i++) {
                for (int64_t j = 0; j < n; j++) md = fmax(md, fabs(y[i * ldy + j] - r[i * n + j]));
                for (int64_t j = n; j < ldy; j++) CHECK(y[i * ldy + j] == 7.0f);
            }
            if (md > worst[type]) worst[type] = md;
            if (!(md <= tol))
                mer_test_fail(__FILE__, __LINE__, "type %d %lldx%lldx%lld: max diff %.3g > %.3g", type,
                              (long long)m, (long long)n, (long long)k, md, tol);
            /* accumulate + GELU epilogue: gelu(y_old + x W^T + b) */
            for (int64_t i = 0; i < m * ldy; i++) y2[i] = 0.25f;
            CHECK_OK(mer_packed_linear(y2, ldy, x, ldx, m, p, 1, MER_EPI_GELU));
            double mg = 0;
            for (int64_t i = 0; i < m; i++)
                for (int64_t j = 0; j < n; j++)
                    mg = fmax(mg, fabs(y2[i * ldy + j] - gelu_d(r[i * n + j] + 0.25)));
            CHECK(mg <= tol + 1e-6);
            /* one thread gives the same bits */
            int saved = mer_get_threads();
            mer_set_threads(1);
            for (int64_t i = 0; i < m * ldy; i++) y2[i] = 7.0f;
            CHECK_OK(mer_packed_linear(y2, ldy, x, ldx, m, p, 0, MER_EPI_NONE));
            mer_set_threads(saved);
            CHECK(memcmp(y, y2, sizeof(float) * m * ldy) == 0);
            mer_packed_free(p);
        }
        /* a bfloat16 source packs to the same weights as its float32 widening */
        mer_f32_to_bf16(w16, w, n * k);
        for (int64_t i = 0; i < n * k; i++) w[i] = bf16r(w[i]);
        mer_packed *p1 = NULL, *p2 = NULL;
        REQUIRE_OK(mer_packed_init(&p1, w, MER_DTYPE_F32, NULL, n, k, MER_PACK_F32));
        REQUIRE_OK(mer_packed_init(&p2, w16, MER_DTYPE_BF16, NULL, n, k, MER_PACK_F32));
        CHECK_OK(mer_packed_linear(y, ldy, x, ldx, m, p1, 0, MER_EPI_NONE));
        CHECK_OK(mer_packed_linear(y2, ldy, x, ldx, m, p2, 0, MER_EPI_NONE));
        for (int64_t i = 0; i < m; i++) CHECK(memcmp(y + i * ldy, y2 + i * ldy, sizeof(float) * n) == 0);
        mer_packed_free(p1);
        mer_packed_free(p2);
        free(x); free(w); free(b); free(y); free(y2); free(r); free(w16);
    }
    printf("    packed linear max |diff| vs reference: f32 %.2e, bf16 %.2e, int8 %.2e\n", worst[0],
           worst[1], worst[2]);
}

MER_TEST(speed_packed_rejects_bad_input) {
    mer_packed *p = (mer_packed *)1;
    float w[4] = {1, 2, 3, NAN}, x[4] = {0}, y[4];
    CHECK_ERR(mer_packed_init(&p, w, MER_DTYPE_F32, NULL, 0, 4, MER_PACK_F32), MER_ERR_INVALID_ARG, "empty");
    CHECK(p == NULL);
    CHECK_ERR(mer_packed_init(&p, w, MER_DTYPE_I32, NULL, 1, 4, MER_PACK_F32), MER_ERR_UNSUPPORTED, "dtype");
    CHECK_ERR(mer_packed_init(&p, w, MER_DTYPE_F32, NULL, 1, 4, MER_PACK_INT8), MER_ERR_INVALID_ARG, "not finite");
    /* the same refusal from the AVX2 packing loop (8 weights at a time): inf or NaN in row 1 */
    float w16[2 * 16];
    for (int i = 0; i < 2 * 16; i++) w16[i] = 0.5f * (float)(i % 7) - 1.0f;
    w16[16 + 5] = INFINITY;
    CHECK_ERR(mer_packed_init(&p, w16, MER_DTYPE_F32, NULL, 2, 16, MER_PACK_INT8), MER_ERR_INVALID_ARG, "row 1 is not finite");
    w16[16 + 5] = NAN;
    CHECK_ERR(mer__packed_init_w7(&p, w16, MER_DTYPE_F32, NULL, 2, 16), MER_ERR_INVALID_ARG, "row 1 is not finite");
    CHECK(p == NULL);
    CHECK_ERR(mer_packed_init(&p, w, MER_DTYPE_F32, NULL, INT64_MAX / 2, 4, MER_PACK_F32), MER_ERR_NOMEM, "overflows");
    REQUIRE_OK(mer_packed_init(&p, w, MER_DTYPE_F32, NULL, 1, 4, MER_PACK_F32));
    CHECK_ERR(mer_packed_linear(y, 0, x, 4, 1, p, 0, MER_EPI_NONE), MER_ERR_INVALID_ARG, "bad shape");
    CHECK_ERR(mer_packed_linear(y, 1, x, 0, 1, p, 0, MER_EPI_NONE), MER_ERR_INVALID_ARG, "bad shape");
    CHECK_OK(mer_packed_linear(y, 1, x, 4, 0, p, 0, MER_EPI_NONE));
    mer_packed_free(p);
    mer_packed_free(NULL);
}

/* Outlier channels (a few input features 100x the rest, as real transformers show after their
 * norms): int8 W8A8 with per-token activation scales loses the small features, whose
 * quantisation step becomes 1/127 of the outlier. Measured and bounded here; the limit is
 * stated in docs/gemm.md. */
static double rel_err_int8(const float *x, const float *w, int64_t m, int64_t n, int64_t k) {
    mer_packed *p8 = NULL, *p32 = NULL;
    float *y8 = malloc(sizeof(float) * m * n), *y32 = malloc(sizeof(float) * m * n);
    double num = 0, den = 0;
    if (y8 && y32 && mer_packed_init(&p8, w, MER_DTYPE_F32, NULL, n, k, MER_PACK_INT8) == MER_OK &&
        mer_packed_init(&p32, w, MER_DTYPE_F32, NULL, n, k, MER_PACK_F32) == MER_OK &&
        mer_packed_linear(y8, n, x, k, m, p8, 0, MER_EPI_NONE) == MER_OK &&
        mer_packed_linear(y32, n, x, k, m, p32, 0, MER_EPI_NONE) == MER_OK)
        for (int64_t i = 0; i < m * n; i++) {
            num += ((double)y8[i] - y32[i]) * ((double)y8[i] - y32[i]);
            den += (double)y32[i] * y32[i];
        }
    else
        num = 1, den = 0;
    mer_packed_free(p8);
    mer_packed_free(p32);
    free(y8);
    free(y32);
    return den > 0 ? sqrt(num / den) : INFINITY;
}

MER_TEST(speed_int8_outlier_channels) {
    const int64_t m = 64, n = 256, k = 1024;
    float *x = malloc(sizeof(float) * m * k), *w = malloc(sizeof(float) * n * k);
    REQUIRE(x && w);
    uint64_t seed = 7;
    for (int64_t i = 0; i < m * k; i++) x[i] = urand(&seed) + urand(&seed) + urand(&seed);
    for (int64_t i = 0; i < n * k; i++) w[i] = 0.05f * (urand(&seed) + urand(&seed));
    double plain = rel_err_int8(x, w, m, n, k);
    static const int64_t outl[4] = {3, 100, 517, 900};
    for (int64_t i = 0; i < m; i++)
        for (int j = 0; j < 4; j++) x[i * k + outl[j]] *= 100.0f;
    double outlier = rel_err_int8(x, w, m, n, k);
    printf("    int8 relative error (Frobenius): plain %.4f, 4 of 1024 channels x100: %.4f\n", plain, outlier);
    /* measured 0.0083 with 8-bit weights and activations; the 7-bit weights used until session 5
     * gave 0.0126, which this bound refuses */
    CHECK(plain < 0.011);
    /* the stated limit (docs/gemm.md): with 4 channels at 100x the output error grows ~4.5x
     * (measured 0.0556; 0.0565 with 7-bit weights); the small channels' contribution is what is lost */
    CHECK(outlier < 0.08);
    CHECK(outlier > plain); /* the test would notice a change that hides the effect */
    free(x);
    free(w);
}

/* The one-sided int8 form (docs/gemm.md): a row group whose activations keep to one side of zero
 * (a GELU's output) is quantised to u7 with a zero point and multiplied without vpsignb. Checked
 * against a double reference written independently, and its error against the symmetric form's
 * on the same data (forced by one negative outlier per row that makes the range two-sided). */
static void onesided_ref(double *r, const float *x, const float *w, int64_t m, int64_t n, int64_t k, int u8) {
    double *qa = malloc(sizeof(double) * k);
    for (int64_t i = 0; i < m; i++) {
        /* VNNI: every row in the u8 form */
        const float sa = u8 ? u8_row(qa, x + i * k, k) : u7_row(qa, x + i * k, k);
        for (int64_t j = 0; j < n; j++) {
            float amax = 0;
            for (int64_t q = 0; q < k; q++) amax = fmaxf(amax, fabsf(w[j * k + q]));
            float sw = amax / 127.0f;
            double acc = 0;
            for (int64_t q = 0; q < k; q++) acc += qa[q] * fmax(-127, fmin(127, (double)lrintf(w[j * k + q] / sw)));
            r[i * n + j] = acc * sa * sw;
        }
    }
    free(qa);
}

MER_TEST(speed_int8_onesided_form) {
    static const int64_t shapes[][3] = {{4, 16, 64}, {7, 33, 257}, {13, 130, 515}, {200, 40, 300}};
    uint64_t seed = 11;
    for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++) {
        int64_t m = shapes[si][0], n = shapes[si][1], k = shapes[si][2];
        float *x = malloc(sizeof(float) * m * k), *w = malloc(sizeof(float) * n * k), *y = malloc(sizeof(float) * m * n),
              *y32 = malloc(sizeof(float) * m * n);
        double *r = malloc(sizeof(double) * m * n);
        REQUIRE(x && w && y && y32 && r);
        for (int64_t i = 0; i < m * k; i++) x[i] = (float)gelu_d(3.0 * urand(&seed));
        for (int64_t i = 0; i < n * k; i++) w[i] = urand(&seed) * 0.1f;
        mer_packed *p = NULL, *p32 = NULL;
        REQUIRE_OK(mer_packed_init(&p, w, MER_DTYPE_F32, NULL, n, k, MER_PACK_INT8));
        REQUIRE_OK(mer_packed_init(&p32, w, MER_DTYPE_F32, NULL, n, k, MER_PACK_F32));
        onesided_ref(r, x, w, m, n, k, mer__packed_i8_u8(p));
        CHECK_OK(mer_packed_linear(y, n, x, k, m, p, 0, MER_EPI_NONE));
        double md = 0, e1 = 0, e2 = 0, den = 0;
        for (int64_t i = 0; i < m * n; i++) md = fmax(md, fabs(y[i] - r[i]));
        if (!(md <= 4e-7 * k * 0.1 + 1e-6))
            mer_test_fail(__FILE__, __LINE__, "%lldx%lldx%lld: one-sided max diff %.3g", (long long)m, (long long)n,
                          (long long)k, md);
        CHECK_OK(mer_packed_linear(y32, n, x, k, m, p32, 0, MER_EPI_NONE));
        for (int64_t i = 0; i < m * n; i++) {
            e1 += ((double)y[i] - y32[i]) * ((double)y[i] - y32[i]);
            den += (double)y32[i] * y32[i];
        }
        /* the same rows made two-sided by a last feature of -max: the symmetric form; its error
         * on the first k - 1 features, against the one-sided form's on all k */
        float *x2 = malloc(sizeof(float) * m * (k + 1)), *w2 = malloc(sizeof(float) * n * (k + 1));
        REQUIRE(x2 && w2);
        for (int64_t i = 0; i < m; i++) {
            float mx = 0;
            for (int64_t q = 0; q < k; q++) mx = fmaxf(mx, x2[i * (k + 1) + q] = x[i * k + q]);
            x2[i * (k + 1) + k] = -mx;
        }
        for (int64_t j = 0; j < n; j++) {
            memcpy(w2 + j * (k + 1), w + j * k, sizeof(float) * k);
            w2[j * (k + 1) + k] = 0;
        }
        mer_packed *p2 = NULL;
        REQUIRE_OK(mer_packed_init(&p2, w2, MER_DTYPE_F32, NULL, n, k + 1, MER_PACK_INT8));
        CHECK_OK(mer_packed_linear(y, n, x2, k + 1, m, p2, 0, MER_EPI_NONE));
        for (int64_t i = 0; i < m * n; i++) e2 += ((double)y[i] - y32[i]) * ((double)y[i] - y32[i]);
        printf("    %lldx%lldx%lld: relative error one-sided %.5f, symmetric %.5f\n", (long long)m, (long long)n,
               (long long)k, sqrt(e1 / den), sqrt(e2 / den));
        CHECK(e1 <= 1.3 * e2);
        mer_packed_free(p);
        mer_packed_free(p2);
        mer_packed_free(p32);
        free(x); free(w); free(y); free(y32); free(r); free(x2); free(w2);
    }
}

/* int8 at the extremes of both operands over a long k: every activation at its row's max and
 * every weight at -max (u8 255 or u7 127 times -127, summed over 4096), and a row of +-1 against
 * the same signs. Products that saturate an int16 pair (vpmaddubsw with 8-bit operands) or wrap
 * would be far off; the exact sums are within the rounding of the scales. */
MER_TEST(speed_int8_extremes_exact) {
    const int64_t m = 4, n = 32, k = 4096;
    float *x = malloc(sizeof(float) * m * k), *w = malloc(sizeof(float) * n * k), *y = malloc(sizeof(float) * m * n);
    REQUIRE(x && w && y);
    for (int64_t q = 0; q < k; q++) {
        const float sg = (q * 7 + q / 3) % 2 ? -1.0f : 1.0f;
        x[0 * k + q] = 1.0f;  /* one-sided, all at max */
        x[1 * k + q] = -2.0f; /* one-sided below zero */
        x[2 * k + q] = sg;    /* two-sided */
        x[3 * k + q] = 0.5f * sg;
        for (int64_t j = 0; j < n; j++) w[j * k + q] = j % 2 ? -0.25f : 0.25f * sg;
    }
    mer_packed *p = NULL;
    REQUIRE_OK(mer_packed_init(&p, w, MER_DTYPE_F32, NULL, n, k, MER_PACK_INT8));
    CHECK_OK(mer_packed_linear(y, n, x, k, m, p, 0, MER_EPI_NONE));
    double worst = 0;
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) {
            double ref = 0;
            for (int64_t q = 0; q < k; q++) ref += (double)x[i * k + q] * w[j * k + q];
            const double scale = fabs(ref) > 1 ? fabs(ref) : 0.25 * k; /* ~0 for sign-mixed pairs */
            worst = fmax(worst, fabs(y[i * n + j] - ref) / scale);
        }
    printf("    int8 at the extremes, k %lld: worst relative error %.2g (%s form)\n", (long long)k, worst,
           mer__packed_i8_u8(p) ? "u8" : "AVX2");
    CHECK(worst < 0.01);
    mer_packed_free(p);
    free(x);
    free(w);
    free(y);
}

/* Attention in bfloat16 (mer__attention_fwd_bf16: AVX512-BF16 and dh % 16 == 0; elsewhere the
 * float32 path, bit for bit) against a double reference: q, k, v and the probabilities rounded
 * to bfloat16 (8 significant bits) put the outputs within ~1% of max|ref|; every tail of the
 * kernels: 48-row blocks + 5, 6-row tiles + 5 rows, 64-key blocks + 16-key ones, a key mask. */
MER_TEST(speed_attention_bf16) {
    static const int64_t shapes[][4] = {{53, 140, 2, 16}, {29, 29, 3, 64}, {7, 499, 1, 32}};
    uint64_t seed = 5;
    for (int si = 0; si < 3; si++) {
        const int64_t tq = shapes[si][0], tk = shapes[si][1], h = shapes[si][2], dh = shapes[si][3], D = h * dh;
        float *q = malloc(sizeof(float) * tq * D), *k = malloc(sizeof(float) * tk * D), *v = malloc(sizeof(float) * tk * D);
        float *o = malloc(sizeof(float) * tq * D), *o32 = malloc(sizeof(float) * tq * D);
        double *r = malloc(sizeof(double) * tq * D), *sc = malloc(sizeof(double) * tk);
        uint8_t *mask = malloc((size_t)tk);
        REQUIRE(q && k && v && o && o32 && r && sc && mask);
        for (int64_t i = 0; i < tq * D; i++) q[i] = 2.0f * urand(&seed);
        for (int64_t i = 0; i < tk * D; i++) k[i] = 2.0f * urand(&seed);
        for (int64_t i = 0; i < tk * D; i++) v[i] = urand(&seed);
        for (int64_t i = 0; i < tk; i++) mask[i] = i % 5 != 2;
        const float scale = 1.0f / sqrtf((float)dh);
        for (int pass = 0; pass < 2; pass++) {
            const uint8_t *mk = pass ? mask : NULL;
            for (int64_t hh = 0; hh < h; hh++)
                for (int64_t i = 0; i < tq; i++) {
                    double mx = -1e300, sum = 0;
                    for (int64_t j = 0; j < tk; j++) {
                        double a = 0;
                        for (int64_t d = 0; d < dh; d++) a += (double)q[i * D + hh * dh + d] * k[j * D + hh * dh + d];
                        sc[j] = mk && !mk[j] ? -1e300 : a * scale;
                        mx = fmax(mx, sc[j]);
                    }
                    for (int64_t j = 0; j < tk; j++) sum += (sc[j] = mk && !mk[j] ? 0 : exp(sc[j] - mx));
                    for (int64_t d = 0; d < dh; d++) {
                        double a = 0;
                        for (int64_t j = 0; j < tk; j++) a += sc[j] / sum * v[j * D + hh * dh + d];
                        r[i * D + hh * dh + d] = a;
                    }
                }
            REQUIRE_OK(mer__attention_fwd_bf16(o, D, NULL, q, D, k, D, v, D, mk, tq, tk, h, dh, scale, NULL));
            REQUIRE_OK(mer__attention_fwd(o32, D, NULL, q, D, k, D, v, D, mk, tq, tk, h, dh, scale, NULL));
            double md = 0, md32 = 0, mref = 0;
            for (int64_t i = 0; i < tq * D; i++) {
                md = fmax(md, fabs(o[i] - r[i]));
                md32 = fmax(md32, fabs(o32[i] - r[i]));
                mref = fmax(mref, fabs(r[i]));
            }
            const int bf = (mer_cpu_features() & MER_CPU_AVX512_BF16) && dh % 16 == 0;
            printf("    %lldx%lld h%lld dh%lld%s: max|diff| bf16 %.3g, fp32 %.3g (max|ref| %.3g, %s)\n", (long long)tq,
                   (long long)tk, (long long)h, (long long)dh, mk ? " masked" : "", md, md32, mref,
                   bf ? "vdpbf16ps" : "the fp32 path");
            CHECK(md32 <= 1e-5 * mref);
            CHECK(md <= 1e-2 * mref);
            if (bf) CHECK(md > md32); /* the bfloat16 path ran: its rounding shows */
            else CHECK(memcmp(o, o32, sizeof(float) * (size_t)(tq * D)) == 0);
        }
        free(q), free(k), free(v), free(o), free(o32), free(r), free(sc), free(mask);
    }
}
