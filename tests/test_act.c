/*
 * test_act.c -- the vectorised GELU and quick GELU of src/kernels/act.c (forward and backward)
 * against double-precision references: a dense grid over [-20, 20], magnitudes out to 3e38,
 * NaN/Inf (torch's results), lengths that are not multiples of the 16 AVX-512 lanes (the masked
 * tail must not write past n and must give the same bits as the full blocks), in-place use,
 * and backward accumulation into dx. The bounds are the ones documented in act.c.
 */
#include "test.h"

#include "kernels/kernels.h"

#define QG_K_D ((double)1.702f) /* the float constant the kernels use, so only their error counts */

static double gelu_ref(double x) { return 0.5 * x * erfc(-x / sqrt(2.0)); }
static double gelu_grad_ref(double x) {
    return 0.5 * erfc(-x / sqrt(2.0)) + x * exp(-0.5 * x * x) / sqrt(2.0 * M_PI);
}
static double qgelu_ref(double x) { return x / (1.0 + exp(-QG_K_D * x)); }
static double qgelu_grad_ref(double x) {
    const double s = 1.0 / (1.0 + exp(-QG_K_D * x));
    return s + x * (QG_K_D * s * (1.0 - s));
}

typedef struct {
    const char *name;
    void (*fwd)(float *, const float *, int64_t);
    void (*bwd)(float *, const float *, const float *, int64_t);
    double (*ref)(double), (*grad_ref)(double);
} act_case;

static const act_case CASES[] = {
    {"gelu", mer__gelu_fwd, mer__gelu_bwd, gelu_ref, gelu_grad_ref},
    {"quick_gelu", mer__quick_gelu_fwd, mer__quick_gelu_bwd, qgelu_ref, qgelu_grad_ref},
};

/* got vs ref: NaN must match NaN, infinities exactly, else |got - ref| <= tol max(1, |ref|).
 * Returns the scaled error (0 for matching non-finite values, HUGE_VAL on a mismatch). */
static double scaled_err(float got, double ref) {
    if (isnan(ref)) return isnan(got) ? 0.0 : HUGE_VAL;
    if (isinf(ref)) return (double)got == ref ? 0.0 : HUGE_VAL;
    if (!isfinite(got)) return HUGE_VAL;
    return fabs((double)got - ref) / fmax(1.0, fabs(ref));
}

/* Test inputs: a grid over [-20, 20] (n is odd, so not a multiple of 16, and larger than the
 * kernels' parallel chunk), then wide magnitudes and the non-finite values. */
static float *make_inputs(int64_t *n_out) {
    const int64_t grid = 200003;
    static const float extra[] = {0.0f, -0.0f, 1e-30f, -1e-30f, 1e-3f, -1e-3f, 30.0f, -30.0f,
                                  51.9f, -51.9f, 52.2f, -52.2f, 88.0f, -88.0f, 1e4f, -1e4f,
                                  1e20f, -1e20f, 3e38f, -3e38f, NAN, INFINITY, -INFINITY};
    const int64_t ne = (int64_t)(sizeof extra / sizeof extra[0]);
    float *x = malloc((size_t)(grid + ne) * sizeof *x);
    if (!x) return NULL;
    for (int64_t i = 0; i < grid; i++) x[i] = (float)(-20.0 + 40.0 * (double)i / (double)(grid - 1));
    memcpy(x + grid, extra, sizeof extra);
    *n_out = grid + ne;
    return x;
}

MER_TEST(act_gelu_matches_double) {
    int64_t n = 0;
    float *x = make_inputs(&n);
    float *y = malloc((size_t)n * sizeof *y), *dx = malloc((size_t)n * sizeof *dx);
    float *dy = malloc((size_t)n * sizeof *dy);
    REQUIRE(x && y && dx && dy);
    for (size_t c = 0; c < sizeof CASES / sizeof CASES[0]; c++) {
        const act_case *k = &CASES[c];
        /* forward, then the same in place */
        k->fwd(y, x, n);
        double worst = 0.0, worst_x = 0.0;
        for (int64_t i = 0; i < n; i++) {
            double e = scaled_err(y[i], k->ref(x[i]));
            if (!(e <= worst)) worst = e, worst_x = x[i];
        }
        if (!(worst <= 2.5e-7))
            mer_test_fail(__FILE__, __LINE__, "%s: worst |y - ref| / max(1, |ref|) %.3g at x = %.9g "
                          "(bound 2.5e-7)", k->name, worst, worst_x);
        memcpy(dx, x, (size_t)n * sizeof *dx);
        k->fwd(dx, dx, n);
        CHECK(memcmp(dx, y, (size_t)n * sizeof *y) == 0);

        /* backward: dx = 0.25 + dy * f'(x), dy = 1 first (the derivative itself) */
        for (int64_t i = 0; i < n; i++) dy[i] = 1.0f, dx[i] = 0.0f;
        k->bwd(dx, dy, x, n);
        worst = 0.0;
        for (int64_t i = 0; i < n; i++) {
            double e = scaled_err(dx[i], k->grad_ref(x[i]));
            if (!(e <= worst)) worst = e, worst_x = x[i];
        }
        if (!(worst <= 4e-7))
            mer_test_fail(__FILE__, __LINE__, "%s: worst |dx - ref| / max(1, |ref|) %.3g at x = %.9g "
                          "(bound 4e-7)", k->name, worst, worst_x);
        for (int64_t i = 0; i < n; i++) dy[i] = (float)((i % 7) - 3) * 0.5f, dx[i] = 0.25f;
        k->bwd(dx, dy, x, n);
        worst = 0.0;
        for (int64_t i = 0; i < n; i++) {
            double g = dy[i] == 0.0f ? 0.0 : (double)dy[i] * k->grad_ref(x[i]);
            double e = scaled_err(dx[i], 0.25 + g);
            if (!(e <= worst)) worst = e, worst_x = x[i];
        }
        if (!(worst <= 1e-6))
            mer_test_fail(__FILE__, __LINE__, "%s: accumulated dx off by %.3g at x = %.9g", k->name,
                          worst, worst_x);
    }
    free(x), free(y), free(dx), free(dy);
}

/* Spot values torch gives (F.gelu and x * sigmoid(1.702 x) with autograd). */
MER_TEST(act_gelu_special_values) {
    const float in[] = {NAN, INFINITY, -INFINITY, 3e38f, -3e38f, 0.0f, 1.0f};
    enum { N = sizeof in / sizeof in[0] };
    float y[N], g[N], one[N];
    for (int i = 0; i < N; i++) one[i] = 1.0f, g[i] = 0.0f;
    mer__gelu_fwd(y, in, N);
    mer__gelu_bwd(g, one, in, N);
    CHECK(isnan(y[0]) && isnan(g[0]));
    CHECK(y[1] == INFINITY && isnan(g[1]));
    CHECK(isnan(y[2]) && isnan(g[2]));
    CHECK(y[3] == 3e38f && g[3] == 1.0f);
    CHECK(y[4] == 0.0f && g[4] == 0.0f);
    CHECK(y[5] == 0.0f && g[5] == 0.5f);
    CHECK_NEAR(y[6], 0.841344746, 2e-7);
    CHECK_NEAR(g[6], 1.083315470, 3e-7);
    for (int i = 0; i < N; i++) g[i] = 0.0f;
    mer__quick_gelu_fwd(y, in, N);
    mer__quick_gelu_bwd(g, one, in, N);
    CHECK(isnan(y[0]) && isnan(g[0]));
    CHECK(y[1] == INFINITY && isnan(g[1]));
    CHECK(isnan(y[2]) && isnan(g[2]));
    CHECK(y[3] == 3e38f && g[3] == 1.0f);
    CHECK(y[4] == 0.0f && g[4] == 0.0f);
    CHECK(y[5] == 0.0f && g[5] == 0.5f);
    CHECK_NEAR(y[6], 1.0 / (1.0 + exp(-QG_K_D)), 2e-7);
}

/* Every length 1..40 at every offset 0..15: values equal (bitwise) to the same inputs computed
 * in one long call, nothing written past n. */
MER_TEST(act_gelu_tail_lengths) {
    enum { M = 64 };
    float x[M], full[M], out[M + 16];
    for (int i = 0; i < M; i++) x[i] = (float)(i - 30) * 0.37f - 0.11f;
    for (size_t c = 0; c < sizeof CASES / sizeof CASES[0]; c++) {
        const act_case *k = &CASES[c];
        for (int bwd = 0; bwd < 2; bwd++) {
            if (bwd) {
                for (int i = 0; i < M; i++) full[i] = 0.0f;
                k->bwd(full, x, x, M); /* dy = x */
            } else {
                k->fwd(full, x, M);
            }
            for (int off = 0; off < 16; off++)
                for (int n = 1; n <= 40; n++) {
                    for (int i = 0; i < M + 16; i++) out[i] = -7.0f;
                    for (int i = 0; i < n; i++) out[i] = bwd ? 0.0f : -7.0f;
                    if (bwd) k->bwd(out, x + off, x + off, n);
                    else k->fwd(out, x + off, n);
                    int bad = 0;
                    for (int i = 0; i < n; i++) bad += memcmp(&out[i], &full[off + i], sizeof(float)) != 0;
                    for (int i = n; i < M + 16; i++) bad += out[i] != -7.0f;
                    if (bad) {
                        mer_test_fail(__FILE__, __LINE__, "%s %s: n = %d offset %d: %d wrong values",
                                      k->name, bwd ? "bwd" : "fwd", n, off, bad);
                        return;
                    }
                }
        }
    }
}

/* The vector GELU forward (AVX2 8 lanes, or AVX-512 16 lanes) gives the same bits as the
 * one-element path, special values included (each value alone runs the scalar loop). */
MER_TEST(act_gelu_vector_same_bits) {
    enum { N = 4099 };
    float *x = malloc(N * sizeof *x), *y = malloc(N * sizeof *y);
    REQUIRE(x && y);
    const float special[] = {NAN, INFINITY, -INFINITY, 3e38f, -3e38f, 0.0f, -0.0f, 1.0f, -5.9f, -13.2f, 1e-30f, -87.5f};
    for (int i = 0; i < N; i++) x[i] = -20.0f + 40.0f * (float)i / (float)(N - 1);
    for (size_t k = 0; k < sizeof special / sizeof *special; k++) x[17 * k + 3] = special[k];
    mer__gelu_fwd(y, x, N);
    int bad = 0;
    for (int i = 0; i < N && bad < 5; i++) {
        float one;
        mer__gelu_fwd(&one, &x[i], 1);
        if (memcmp(&one, &y[i], sizeof one) != 0 && !(isnan(one) && isnan(y[i]))) {
            printf("    gelu(%.9g): vector %.9g, scalar %.9g\n", x[i], y[i], one);
            bad++;
        }
    }
    CHECK(bad == 0);
    free(x), free(y);
}

/* mer__gelu_block (the packed products' epilogue: one tile of rows at a time) on blocks inside
 * a wider matrix: every value of the block as the one-element path gives it, nothing outside
 * the block touched; shapes with and without an 8-lane tail, fewer vectors than four. */
MER_TEST(act_gelu_block_same_bits) {
    enum { LD = 40, ROWS = 9 };
    const int shapes[][2] = {{6, 16}, {7, 13}, {1, 8}, {3, 5}, {9, 37}, {2, 24}};
    float x[ROWS * LD], y[ROWS * LD];
    for (int i = 0; i < ROWS * LD; i++) x[i] = -7.0f + 14.0f * (float)((i * 37) % 101) / 100.0f;
    int bad = 0;
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
        const int rows = shapes[s][0], cols = shapes[s][1], off = 1;
        memcpy(y, x, sizeof y);
        mer__gelu_block(y + off, LD, rows, cols);
        for (int r = 0; r < ROWS; r++)
            for (int c = 0; c < LD; c++) {
                const int i = r * LD + c, in = r < rows && c >= off && c < off + cols;
                float want = x[i];
                if (in) mer__gelu_fwd(&want, &x[i], 1);
                if (memcmp(&want, &y[i], sizeof want) != 0 && bad++ < 5)
                    printf("    block %dx%d, (%d, %d): %.9g, want %.9g\n", rows, cols, r, c, y[i], want);
            }
    }
    CHECK(bad == 0);
}
