/*
 * test_core.c -- status/error text, tensors, half conversion, RNG, thread pool, arena, gemm.
 */
#include "test.h"
#include "internal.h"
#include "kernels/kernels.h"

MER_TEST(core_status_strings) {
    CHECK(strcmp(mer_status_str(MER_OK), "ok") == 0);
    CHECK(strcmp(mer_status_str(MER_ERR_FORMAT), "format error") == 0);
    CHECK(mer_status_str((mer_status)-999) != NULL);
    mer_status s = mer__err(MER_ERR_SHAPE, "%s: expected %d got %d", "w.safetensors", 3, 4);
    CHECK(s == MER_ERR_SHAPE);
    CHECK(strcmp(mer_last_error(), "w.safetensors: expected 3 got 4") == 0);
    mer__err_prefix("file %s", "x");
    CHECK(strcmp(mer_last_error(), "file x: w.safetensors: expected 3 got 4") == 0);
    mer_clear_error();
    CHECK(mer_last_error()[0] == '\0');
}

MER_TEST(core_overflow_checks) {
    int64_t r;
    CHECK(mer__mul_overflow(1 << 20, 1 << 20, &r) && r == (int64_t)1 << 40);
    CHECK(!mer__mul_overflow(INT64_MAX / 2, 3, &r));
    CHECK(!mer__mul_overflow(-1, 3, &r));
    CHECK(!mer__add_overflow(INT64_MAX, 1, &r));
    CHECK(mer__calloc(SIZE_MAX / 2, 4) == NULL);
}

MER_TEST(core_tensor_view) {
    float buf[24];
    mer_tensor t;
    int64_t shape[3] = {2, 3, 4};
    REQUIRE_OK(mer_tensor_view(&t, buf, MER_DTYPE_F32, 3, shape));
    CHECK(mer_tensor_numel(&t) == 24);
    CHECK(t.strides[0] == 12 && t.strides[1] == 4 && t.strides[2] == 1);
    CHECK(mer_tensor_is_contiguous(&t));
    t.strides[2] = 2;
    CHECK(!mer_tensor_is_contiguous(&t));
    char s[64];
    CHECK(strcmp(mer_shape_str(s, sizeof s, 3, shape), "(2, 3, 4)") == 0);
    CHECK(strcmp(mer_shape_str(s, sizeof s, 1, shape), "(2,)") == 0);
    int64_t bad[1] = {-1};
    CHECK_ERR(mer_tensor_view(&t, buf, MER_DTYPE_F32, 1, bad), MER_ERR_INVALID_ARG, NULL);
    CHECK_ERR(mer_tensor_view(&t, buf, MER_DTYPE_F32, 9, shape), MER_ERR_INVALID_ARG, NULL);
    CHECK(mer_dtype_size(MER_DTYPE_BF16) == 2 && mer_dtype_size(MER_DTYPE_I64) == 8);
    CHECK(strcmp(mer_dtype_name(MER_DTYPE_BF16), "bf16") == 0);
}

MER_TEST(core_half_conversions) {
    /* exact values and round trips */
    const float vals[] = {0.0f, -0.0f, 1.0f, -2.5f, 65504.0f, 6.103515625e-05f, 5.960464477539063e-08f, 0.333251953125f};
    for (size_t i = 0; i < sizeof vals / sizeof *vals; i++) {
        CHECK(mer__f16_to_f32(mer__f32_to_f16(vals[i])) == vals[i]);
        CHECK(mer__bf16_to_f32(mer__f32_to_bf16(vals[i])) == mer__bf16_to_f32(mer__f32_to_bf16(vals[i])));
    }
    CHECK(mer__f32_to_f16(1.0f) == 0x3c00);
    CHECK(mer__f32_to_f16(70000.0f) == 0x7c00);       /* overflow -> inf */
    CHECK(isnan(mer__f16_to_f32(0x7e00)));
    CHECK(mer__f32_to_bf16(1.0f) == 0x3f80);
    CHECK(mer__f32_to_bf16(1.00390625f) == 0x3f80);   /* tie rounds to even */
    CHECK(mer__f32_to_bf16(1.01171875f) == 0x3f82);   /* tie rounds to even (up) */
    /* every f16 bit pattern survives f16 -> f32 -> f16 (except NaN payloads) */
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = mer__f16_to_f32((uint16_t)h);
        if (isnan(f)) continue;
        if (mer__f32_to_f16(f) != h) bad++;
    }
    CHECK(bad == 0);
}

MER_TEST(core_rng_reproducible) {
    mer__rng a, b;
    mer__rng_seed(&a, 42);
    mer__rng_seed(&b, 42);
    int same = 1;
    double sum = 0, sum2 = 0;
    for (int i = 0; i < 20000; i++) {
        if (mer__rng_u64(&a) != mer__rng_u64(&b)) same = 0;
        double z = mer__rng_normal(&a);
        mer__rng_normal(&b);
        sum += z;
        sum2 += z * z;
    }
    CHECK(same);
    CHECK(fabs(sum / 20000) < 0.05);
    CHECK(fabs(sum2 / 20000 - 1.0) < 0.05);
}

typedef struct { int64_t *owner; } owner_job;
static void mark_owner(void *u, int64_t b, int64_t e, int t) {
    owner_job *j = u;
    for (int64_t i = b; i < e; i++) j->owner[i] += 1 + t * 0;
}

MER_TEST(core_parallel_for_covers_range) {
    int old = mer_get_threads();
    for (int threads = 1; threads <= 4; threads++) {
        mer_set_threads(threads);
        for (int64_t n = 0; n < 200; n += 7) {
            int64_t owner[200] = {0};
            owner_job j = {owner};
            mer__parallel_for(n, 1, mark_owner, &j);
            for (int64_t i = 0; i < n; i++) CHECK(owner[i] == 1);
        }
    }
    mer_set_threads(old);
}

MER_TEST(core_arena) {
    mer__arena a;
    REQUIRE_OK(mer__arena_init(&a, 1024));
    size_t m = mer__arena_mark(&a);
    float *x = mer__arena_f32(&a, 10);
    CHECK(x && ((uintptr_t)x % 64) == 0);
    CHECK(mer__arena_alloc(&a, 4096) == NULL);
    CHECK(strstr(mer_last_error(), "arena exhausted") != NULL);
    mer__arena_reset(&a, m);
    CHECK(mer__arena_alloc(&a, 1024) != NULL);
    mer__arena_free(&a);
}

static void ref_gemm(int ta, int tb, int M, int N, int K, const float *A, const float *B, float *C) {
    for (int i = 0; i < M; i++)
        for (int n = 0; n < N; n++) {
            double acc = 0;
            for (int k = 0; k < K; k++)
                acc += (double)(ta ? A[k * M + i] : A[i * K + k]) * (tb ? B[n * K + k] : B[k * N + n]);
            C[i * N + n] = (float)acc;
        }
}

MER_TEST(core_gemm_backends_agree) {
    mer__rng r;
    mer__rng_seed(&r, 7);
    const int M = 37, N = 53, K = 71;
    float *A = malloc(sizeof(float) * M * K), *B = malloc(sizeof(float) * K * N);
    float *C = malloc(sizeof(float) * M * N), *R = malloc(sizeof(float) * M * N);
    for (int i = 0; i < M * K; i++) A[i] = (float)mer__rng_normal(&r);
    for (int i = 0; i < K * N; i++) B[i] = (float)mer__rng_normal(&r);
    mer_gemm_backend saved = mer_gemm_get_backend();
    mer_gemm_backend all[] = {MER_GEMM_NAIVE, MER_GEMM_OPENBLAS, MER_GEMM_DNNL};
    int tested = 0;
    for (int bi = 0; bi < 3; bi++) {
        if (!mer_gemm_backend_available(all[bi])) continue;
        CHECK_OK(mer_gemm_set_backend(all[bi]));
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++) {
                ref_gemm(ta, tb, M, N, K, A, B, R);
                for (int i = 0; i < M * N; i++) C[i] = NAN; /* beta = 0 must overwrite NaN */
                mer_sgemm(ta, tb, M, N, K, 1.0f, A, ta ? M : K, B, tb ? K : N, 0.0f, C, N);
                double mr, md = mer_test_maxdiff(C, R, (size_t)M * N, &mr);
                if (!(md <= 1e-5 * mr)) mer_test_fail(__FILE__, __LINE__, "%s ta=%d tb=%d maxdiff %g",
                                                      mer_gemm_backend_name(all[bi]), ta, tb, md);
                /* beta = 1 accumulates */
                mer_sgemm(ta, tb, M, N, K, 0.5f, A, ta ? M : K, B, tb ? K : N, 1.0f, C, N);
                md = 0;
                for (int i = 0; i < M * N; i++) md = fmax(md, fabs(C[i] - 1.5 * R[i]));
                CHECK(md <= 2e-5 * mr);
            }
        tested++;
    }
    CHECK(tested >= 2); /* naive + at least one BLAS in a normal build */
    CHECK_OK(mer_gemm_set_backend(saved));
    free(A); free(B); free(C); free(R);
}

/* gemm_small.c: every tile remainder (rows, column vectors, K chunks of 256), strided operands,
 * beta 0 overwriting NaN and beta 1 accumulating, against a double-precision reference; and
 * bitwise the same result at 1 and 2 threads. */
static int small_case(mer__rng *r, int ta, int tb, int M, int N, int K, double *worst) {
    const int lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 5, ldc = N + 2;
    float *A = malloc(sizeof(float) * (ta ? K : M) * lda), *B = malloc(sizeof(float) * (tb ? N : K) * ldb);
    float *Ad = malloc(sizeof(float) * M * K), *Bd = malloc(sizeof(float) * K * N);
    float *C = malloc(sizeof(float) * M * ldc), *R = malloc(sizeof(float) * M * N);
    for (int i = 0; i < (ta ? K : M) * lda; i++) A[i] = (float)mer__rng_normal(r);
    for (int i = 0; i < (tb ? N : K) * ldb; i++) B[i] = (float)mer__rng_normal(r);
    /* dense copies for the reference */
    for (int i = 0; i < (ta ? K : M); i++)
        for (int k = 0; k < (ta ? M : K); k++) Ad[i * (ta ? M : K) + k] = A[i * lda + k];
    for (int i = 0; i < (tb ? N : K); i++)
        for (int k = 0; k < (tb ? K : N); k++) Bd[i * (tb ? K : N) + k] = B[i * ldb + k];
    ref_gemm(ta, tb, M, N, K, Ad, Bd, R);
    for (int i = 0; i < M * ldc; i++) C[i] = NAN;
    int ran = mer__sgemm_small(ta, tb, M, N, K, A, lda, B, ldb, 0.0f, C, ldc);
    double scale = sqrt((double)K) * 4.0, md = 0, md1 = 0;
    int pad_ok = 1;
    for (int i = 0; i < M; i++) {
        for (int n = 0; n < N; n++) md = fmax(md, fabs((double)C[i * ldc + n] - R[i * N + n]));
        for (int n = N; n < ldc && i + 1 < M; n++) pad_ok &= isnan(C[i * ldc + n]);
    }
    if (isnan(md)) md = INFINITY;
    /* beta = 1 adds onto what is there */
    if (ran) mer__sgemm_small(ta, tb, M, N, K, A, lda, B, ldb, 1.0f, C, ldc);
    for (int i = 0; i < M; i++)
        for (int n = 0; n < N; n++) md1 = fmax(md1, fabs((double)C[i * ldc + n] - 2.0 * R[i * N + n]));
    if (isnan(md1)) md1 = INFINITY;
    *worst = fmax(*worst, fmax(md, md1 / 2) / scale);
    free(A); free(B); free(Ad); free(Bd); free(C); free(R);
    return ran && pad_ok ? 1 : 0;
}

MER_TEST(core_gemm_small_matches_reference) {
    mer__rng r;
    mer__rng_seed(&r, 11);
    double worst = 0;
    int cases = 0, ran = 0;
    /* NT (forward x w^T): rows 1..48, columns across 8-row strips, K across 16 lanes and chunks */
    const int ntm[] = {1, 3, 4, 5, 16, 17, 33, 48}, ntn[] = {1, 7, 8, 9, 130}, ntk[] = {1, 15, 17, 300, 530};
    for (int a = 0; a < 8; a++)
        for (int b = 0; b < 5; b++)
            for (int c = 0; c < 5; c++, cases++) ran += small_case(&r, 0, 1, ntm[a], ntn[b], ntk[c], &worst);
    /* NN and TN (input and weight gradients): rows across 8, columns across 16 / 48 */
    const int bm[] = {1, 7, 8, 9, 33}, bn[] = {1, 15, 16, 17, 47, 48, 49, 100}, bk[] = {1, 5, 32};
    for (int ta = 0; ta < 2; ta++)
        for (int a = 0; a < 5; a++)
            for (int b = 0; b < 8; b++)
                for (int c = 0; c < 3; c++, cases++) ran += small_case(&r, ta, 0, bm[a], bn[b], bk[c], &worst);
    CHECK(ran == (mer__use_avx512() ? cases : 0)); /* AVX-512 only, chosen at run time */
    CHECK(worst < 1e-5); /* rounding is ~1e-7; a wrong tile element is off by ~1 */
    printf("    gemm_small: %d cases, worst |diff| / (4 sqrt(K)) = %.2e\n", cases, worst);
    /* outside its domain it declines and leaves C alone */
    float one = 1.0f, c0 = 5.0f;
    CHECK(mer__sgemm_small(1, 1, 1, 1, 1, &one, 1, &one, 1, 0.0f, &c0, 1) == 0 && c0 == 5.0f);
    float *big = calloc(49 * 8, sizeof(float));
    CHECK(mer__sgemm_small(0, 1, 49, 1, 8, big, 8, big, 8, 0.0f, &c0, 1) == 0 && c0 == 5.0f);
    free(big);
    /* products large enough to be split over threads give the same bits at 1 and 2 threads */
    int saved = mer_get_threads();
    const int M = 32, N = 128, K = 1100;
    float *X = malloc(sizeof(float) * M * K), *W = malloc(sizeof(float) * N * K);
    float *Y1 = malloc(sizeof(float) * M * N), *Y2 = malloc(sizeof(float) * M * N);
    float *G1 = malloc(sizeof(float) * N * K), *G2 = malloc(sizeof(float) * N * K);
    for (int i = 0; i < M * K; i++) X[i] = (float)mer__rng_normal(&r);
    for (int i = 0; i < N * K; i++) W[i] = (float)mer__rng_normal(&r);
    int ok = 1;
    for (int t = 1; t <= 2; t++) {
        mer_set_threads(t);
        ok &= mer__sgemm_small(0, 1, M, N, K, X, K, W, K, 0.0f, t == 1 ? Y1 : Y2, N);
        ok &= mer__sgemm_small(1, 0, N, K, M, t == 1 ? Y1 : Y2, N, X, K, 0.0f, t == 1 ? G1 : G2, K);
    }
    mer_set_threads(saved);
    CHECK(ok == mer__use_avx512());
    if (ok) {
        CHECK(memcmp(Y1, Y2, sizeof(float) * M * N) == 0);
        CHECK(memcmp(G1, G2, sizeof(float) * N * K) == 0);
    }
    free(X); free(W); free(Y1); free(Y2); free(G1); free(G2);
}

MER_TEST(core_gemm_bf16_matches_rounded_reference) {
    /* Reference: A and B rounded to bf16, products summed in double. The bf16 path must match
     * it to float32 accumulation accuracy, for both layouts of B and with accumulation. */
    mer__rng r;
    mer__rng_seed(&r, 11);
    const int M = 29, N = 67, K = 130;
    float *A = malloc(sizeof(float) * M * K), *B = malloc(sizeof(float) * K * N);
    float *Bt = malloc(sizeof(float) * K * N);
    uint16_t *B16 = malloc(2 * K * N), *Bt16 = malloc(2 * K * N);
    float *C = malloc(sizeof(float) * M * N), *R = malloc(sizeof(float) * M * N);
    float *Ar = malloc(sizeof(float) * M * K), *Br = malloc(sizeof(float) * K * N);
    for (int i = 0; i < M * K; i++) A[i] = (float)mer__rng_normal(&r);
    for (int i = 0; i < K * N; i++) B[i] = (float)mer__rng_normal(&r);
    for (int k = 0; k < K; k++)
        for (int n = 0; n < N; n++) Bt[n * K + k] = B[k * N + n];
    mer_f32_to_bf16(B16, B, (int64_t)K * N);
    mer_f32_to_bf16(Bt16, Bt, (int64_t)K * N);
    for (int i = 0; i < M * K; i++) Ar[i] = mer__bf16_to_f32(mer__f32_to_bf16(A[i]));
    for (int i = 0; i < K * N; i++) Br[i] = mer__bf16_to_f32(B16[i]);
    ref_gemm(0, 0, M, N, K, Ar, Br, R);
    for (int tb = 0; tb < 2; tb++) {
        for (int i = 0; i < M * N; i++) C[i] = NAN;
        REQUIRE_OK(mer_sgemm_bf16(tb, M, N, K, A, K, tb ? Bt16 : B16, tb ? K : N, 0, C, N));
        double mr, md = mer_test_maxdiff(C, R, (size_t)M * N, &mr);
        if (!(md <= 1e-5 * mr)) mer_test_fail(__FILE__, __LINE__, "bf16 tb=%d maxdiff %g of %g", tb, md, mr);
        REQUIRE_OK(mer_sgemm_bf16(tb, M, N, K, A, K, tb ? Bt16 : B16, tb ? K : N, 1, C, N));
        md = 0;
        for (int i = 0; i < M * N; i++) md = fmax(md, fabs(C[i] - 2.0 * R[i]));
        CHECK(md <= 2e-5 * mr);
    }
    /* and it is only ~3 digits away from the fp32 product: the reason it is opt-in */
    ref_gemm(0, 0, M, N, K, A, B, R);
    REQUIRE_OK(mer_sgemm_bf16(0, M, N, K, A, K, B16, N, 0, C, N));
    double mr, md = mer_test_maxdiff(C, R, (size_t)M * N, &mr);
    CHECK(md > 1e-5 * mr && md < 3e-2 * mr);
    free(A); free(B); free(Bt); free(B16); free(Bt16); free(C); free(R); free(Ar); free(Br);
}
