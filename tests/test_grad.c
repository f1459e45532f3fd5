/*
 * test_grad.c -- every backward kernel and trainable layer checked against central finite
 * differences of its forward.
 *
 * Method: a scalar L = sum_i r_i y_i (r fixed random weights, sum in double) of the forward
 * output; the analytic gradient comes from the backward given dy = r. For sampled inputs x_j,
 * numeric = (L(x_j + h) - L(x_j - h)) / 2h in float32 forward passes. With h = 1e-2 the
 * truncation error of smooth kernels is O(h^2 |f'''|) ~ 1e-4 and the float rounding error is
 * ~ 1e-7 |L| / h ~ 1e-5 |L|, so a tolerance of 2e-3 + 2e-2 |g| separates rounding from a wrong
 * formula (which is off by O(|g|)). ReLU/dropout are checked away from their kinks. Each check
 * also verifies that backward ACCUMULATES (+=) by starting from a non-zero gradient buffer.
 */
#include "test.h"
#include "train/train.h"

#include <math.h>

typedef double (*loss_fn)(void *ctx);

static void fill(float *x, int64_t n, double scale, mer__rng *r) {
    for (int64_t i = 0; i < n; i++) x[i] = (float)(mer__rng_normal(r) * scale);
}

static double dot(const float *a, const float *b, int64_t n) {
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

/* grad_acc is the analytic gradient accumulated on top of `base` (the initial buffer value). */
static int kinks_skipped;

/* kink_aware: networks with ReLU are piecewise smooth; when the one-sided differences disagree
 * the step crossed a kink and the point is skipped (counted in kinks_skipped). */
static int fd_check_k(const char *what, float *x, int64_t n, const float *grad_acc, float base,
                      loss_fn f, void *ctx, double h, int kink_aware) {
    int bad = 0;
    int64_t step = n > 48 ? n / 48 : 1;
    for (int64_t i = 0; i < n; i += step) {
        float save = x[i];
        double l0 = kink_aware ? f(ctx) : 0.0;
        x[i] = save + (float)h;
        double lp = f(ctx);
        x[i] = save - (float)h;
        double lm = f(ctx);
        x[i] = save;
        double num = (lp - lm) / (2 * h);
        if (kink_aware) {
            double fw = (lp - l0) / h, bw = (l0 - lm) / h;
            if (fabs(fw - bw) > 4e-3 + 0.05 * fabs(num)) {
                kinks_skipped++;
                continue;
            }
        }
        double ana = (double)grad_acc[i] - base;
        double tol = 2e-3 + 2e-2 * fabs(num);
        if (!(fabs(num - ana) <= tol)) {
            if (bad < 3)
                mer_test_fail(__FILE__, __LINE__, "%s[%lld]: analytic %.6g vs numeric %.6g", what,
                              (long long)i, ana, num);
            bad++;
        }
    }
    return bad;
}

static int fd_check(const char *what, float *x, int64_t n, const float *grad_acc, float base,
                    loss_fn f, void *ctx, double h) {
    return fd_check_k(what, x, n, grad_acc, base, f, ctx, h, 0);
}

/* ---- linear ----------------------------------------------------------------------------- */

typedef struct {
    float *y, *x, *w, *b, *r;
    int64_t n, in, out;
} lin_ctx;

static double lin_loss(void *u) {
    lin_ctx *c = u;
    mer__linear_fwd(c->y, c->x, c->w, c->b, c->n, c->in, c->out);
    return dot(c->y, c->r, c->n * c->out);
}

MER_TEST(grad_linear) {
    mer__rng rng;
    mer__rng_seed(&rng, 1);
    enum { N = 5, IN = 7, OUT = 4 };
    float y[N * OUT], x[N * IN], w[OUT * IN], b[OUT], r[N * OUT];
    float dx[N * IN], dw[OUT * IN], db[OUT];
    fill(x, N * IN, 1, &rng);
    fill(w, OUT * IN, 0.5, &rng);
    fill(b, OUT, 0.5, &rng);
    fill(r, N * OUT, 1, &rng);
    for (int i = 0; i < N * IN; i++) dx[i] = 0.25f;
    for (int i = 0; i < OUT * IN; i++) dw[i] = 0.25f;
    for (int i = 0; i < OUT; i++) db[i] = 0.25f;
    lin_ctx c = {y, x, w, b, r, N, IN, OUT};
    mer__linear_bwd(dx, dw, db, r, x, w, N, IN, OUT);
    CHECK(fd_check("linear dx", x, N * IN, dx, 0.25f, lin_loss, &c, 1e-2) == 0);
    CHECK(fd_check("linear dw", w, OUT * IN, dw, 0.25f, lin_loss, &c, 1e-2) == 0);
    CHECK(fd_check("linear db", b, OUT, db, 0.25f, lin_loss, &c, 1e-2) == 0);
    /* forward against a naive loop */
    lin_loss(&c);
    for (int i = 0; i < N; i++)
        for (int o = 0; o < OUT; o++) {
            double s = b[o];
            for (int k = 0; k < IN; k++) s += (double)x[i * IN + k] * w[o * IN + k];
            CHECK_NEAR(y[i * OUT + o], s, 1e-5);
        }
}

/* ---- element-wise activations ----------------------------------------------------------- */

typedef struct {
    void (*fwd)(float *, const float *, int64_t);
    float *y, *x, *r;
    int64_t n;
} ew_ctx;

static double ew_loss(void *u) {
    ew_ctx *c = u;
    c->fwd(c->y, c->x, c->n);
    return dot(c->y, c->r, c->n);
}

static void check_elementwise(const char *name, void (*fwd)(float *, const float *, int64_t),
                              void (*bwd)(float *, const float *, const float *, int64_t),
                              int use_output, int avoid_zero) {
    mer__rng rng;
    mer__rng_seed(&rng, 2);
    enum { N = 40 };
    float y[N], x[N], r[N], dx[N];
    fill(x, N, 2, &rng);
    if (avoid_zero)
        for (int i = 0; i < N; i++)
            if (fabsf(x[i]) < 0.1f) x[i] = x[i] < 0 ? -0.1f - x[i] : 0.1f + x[i];
    fill(r, N, 1, &rng);
    for (int i = 0; i < N; i++) dx[i] = 0.5f;
    fwd(y, x, N);
    bwd(dx, r, use_output ? y : x, N);
    ew_ctx c = {fwd, y, x, r, N};
    CHECK(fd_check(name, x, N, dx, 0.5f, ew_loss, &c, 1e-2) == 0);
}

MER_TEST(grad_activations) {
    check_elementwise("gelu", mer__gelu_fwd, mer__gelu_bwd, 0, 0);
    check_elementwise("quick_gelu", mer__quick_gelu_fwd, mer__quick_gelu_bwd, 0, 0);
    check_elementwise("relu", mer__relu_fwd, mer__relu_bwd, 0, 1);
    check_elementwise("sigmoid", mer__sigmoid_fwd, mer__sigmoid_bwd, 1, 0);
    /* exact values: gelu(1) = 0.8413447, quick_gelu(1) = 1/(1+e^-1.702) */
    float v = 1.0f, o;
    mer__gelu_fwd(&o, &v, 1);
    CHECK_NEAR(o, 0.841344746, 1e-6);
    mer__quick_gelu_fwd(&o, &v, 1);
    CHECK_NEAR(o, 1.0 / (1.0 + exp(-1.702)), 1e-6);
}

MER_TEST(grad_dropout) {
    mer__rng rng;
    mer__rng_seed(&rng, 3);
    enum { N = 4000 };
    static float x[N], y[N], mask[N], dx[N], dy[N];
    for (int i = 0; i < N; i++) x[i] = 1.0f, dy[i] = 1.0f;
    mer__dropout_fwd(y, mask, x, 0.25f, N, &rng);
    int kept = 0;
    for (int i = 0; i < N; i++) {
        CHECK(y[i] == 0.0f || fabsf(y[i] - 1.0f / 0.75f) < 1e-6f);
        kept += y[i] != 0.0f;
    }
    CHECK(kept > N * 0.72 && kept < N * 0.78);
    mer__dropout_bwd(dx, dy, mask, N);
    for (int i = 0; i < N; i++) CHECK(dx[i] == y[i]); /* linear in x with slope mask */
    mer__dropout_fwd(y, NULL, x, 0.0f, N, &rng);
    for (int i = 0; i < N; i++) CHECK(y[i] == x[i]);
}

/* ---- cross-entropy ---------------------------------------------------------------------- */

typedef struct {
    float *z, *p;
    int32_t *t;
    float *w, ls;
    int64_t n, c;
} ce_ctx;

static double ce_loss(void *u) {
    ce_ctx *c = u;
    return mer__cross_entropy_fwd(c->p, c->z, c->t, c->w, c->ls, c->n, c->c);
}

MER_TEST(grad_cross_entropy) {
    mer__rng rng;
    mer__rng_seed(&rng, 4);
    enum { N = 6, C = 4 };
    float z[N * C], p[N * C], dz[N * C], w[C] = {0.5f, 2.0f, 1.0f, 1.5f};
    int32_t t[N] = {0, 1, 2, 3, 1, 1};
    fill(z, N * C, 2, &rng);
    for (int variant = 0; variant < 4; variant++) {
        ce_ctx c = {z, p, t, (variant & 1) ? w : NULL, (variant & 2) ? 0.1f : 0.0f, N, C};
        for (int i = 0; i < N * C; i++) dz[i] = 0.125f;
        ce_loss(&c);
        mer__cross_entropy_bwd(dz, p, t, c.w, c.ls, N, C);
        CHECK(fd_check("cross_entropy", z, N * C, dz, 0.125f, ce_loss, &c, 1e-2) == 0);
    }
    /* a hand value: logits (0, 0) target 0 -> log 2; smoothing 0.2 with two classes is the same */
    float z2[2] = {0, 0};
    int32_t t2[1] = {0};
    CHECK_NEAR(mer__cross_entropy_fwd(NULL, z2, t2, NULL, 0.0f, 1, 2), log(2.0), 1e-6);
    /* torch: F.cross_entropy(tensor([[1., 2., 0.5]]), tensor([1]), label_smoothing=0.3) */
    float z3[3] = {1.0f, 2.0f, 0.5f};
    int32_t t3[1] = {1};
    double lse = log(exp(1.0) + exp(2.0) + exp(0.5));
    double want = 0.7 * (lse - 2.0) + 0.1 * ((lse - 1.0) + (lse - 2.0) + (lse - 0.5));
    CHECK_NEAR(mer__cross_entropy_fwd(NULL, z3, t3, NULL, 0.3f, 1, 3), want, 1e-6);
}

/* ---- pooling ---------------------------------------------------------------------------- */

typedef struct {
    float *y, *a, *x, *w, *b, *r;
    int64_t t, d;
    int attn;
} pool_ctx;

static double pool_loss(void *u) {
    pool_ctx *c = u;
    if (c->attn) mer__attn_pool_fwd(c->y, c->a, c->x, c->w, *c->b, c->t, c->d);
    else mer__mean_pool_fwd(c->y, c->x, c->t, c->d);
    return dot(c->y, c->r, c->d);
}

MER_TEST(grad_pooling) {
    mer__rng rng;
    mer__rng_seed(&rng, 5);
    enum { T = 7, D = 5 };
    float x[T * D], y[D], a[T], w[D], b = 0.3f, r[D], dx[T * D], dw[D], db = 0.5f;
    fill(x, T * D, 1, &rng);
    fill(w, D, 1, &rng);
    fill(r, D, 1, &rng);
    for (int i = 0; i < T * D; i++) dx[i] = 0.5f;
    pool_ctx c = {y, a, x, w, &b, r, T, D, 0};
    mer__mean_pool_bwd(dx, r, T, D);
    CHECK(fd_check("mean_pool dx", x, T * D, dx, 0.5f, pool_loss, &c, 1e-2) == 0);
    c.attn = 1;
    for (int i = 0; i < T * D; i++) dx[i] = 0.5f;
    for (int i = 0; i < D; i++) dw[i] = 0.5f;
    pool_loss(&c);
    double asum = 0;
    for (int i = 0; i < T; i++) asum += a[i];
    CHECK_NEAR(asum, 1.0, 1e-6);
    mer__attn_pool_bwd(dx, dw, &db, r, a, x, w, T, D);
    CHECK(fd_check("attn_pool dx", x, T * D, dx, 0.5f, pool_loss, &c, 1e-2) == 0);
    CHECK(fd_check("attn_pool dw", w, D, dw, 0.5f, pool_loss, &c, 1e-2) == 0);
    CHECK(fd_check("attn_pool db", &b, 1, &db, 0.5f, pool_loss, &c, 1e-2) == 0);
}

/* ---- layernorm, softmax ------------------------------------------------------------------ */

typedef struct {
    float *y, *mean, *rstd, *x, *g, *b, *r;
    int64_t n, c;
} ln_ctx;

static double ln_loss(void *u) {
    ln_ctx *c = u;
    mer__layernorm_fwd(c->y, c->mean, c->rstd, c->x, c->g, c->b, c->n, c->c, 1e-5f);
    return dot(c->y, c->r, c->n * c->c);
}

MER_TEST(grad_layernorm) {
    mer__rng rng;
    mer__rng_seed(&rng, 6);
    enum { N = 4, C = 9 };
    float y[N * C], mean[N], rstd[N], x[N * C], g[C], b[C], r[N * C];
    float dx[N * C], dg[C], dbb[C];
    fill(x, N * C, 1.5, &rng);
    fill(g, C, 1, &rng);
    fill(b, C, 1, &rng);
    fill(r, N * C, 1, &rng);
    for (int i = 0; i < N * C; i++) dx[i] = 0.5f;
    for (int i = 0; i < C; i++) dg[i] = dbb[i] = 0.5f;
    ln_ctx c = {y, mean, rstd, x, g, b, r, N, C};
    ln_loss(&c);
    mer__layernorm_bwd(dx, dg, dbb, r, x, mean, rstd, g, N, C);
    CHECK(fd_check("layernorm dx", x, N * C, dx, 0.5f, ln_loss, &c, 1e-2) == 0);
    CHECK(fd_check("layernorm dgamma", g, C, dg, 0.5f, ln_loss, &c, 1e-2) == 0);
    CHECK(fd_check("layernorm dbeta", b, C, dbb, 0.5f, ln_loss, &c, 1e-2) == 0);
}

typedef struct {
    float *y, *x, *r;
    int64_t rows, cols;
} sm_ctx;

static double sm_loss(void *u) {
    sm_ctx *c = u;
    mer__softmax_fwd(c->y, c->x, c->rows, c->cols);
    return dot(c->y, c->r, c->rows * c->cols);
}

MER_TEST(grad_softmax) {
    mer__rng rng;
    mer__rng_seed(&rng, 7);
    enum { R = 3, C = 6 };
    float y[R * C], x[R * C], r[R * C], dx[R * C];
    fill(x, R * C, 2, &rng);
    fill(r, R * C, 1, &rng);
    for (int i = 0; i < R * C; i++) dx[i] = 0.5f;
    sm_ctx c = {y, x, r, R, C};
    sm_loss(&c);
    mer__softmax_bwd(dx, r, y, R, C);
    CHECK(fd_check("softmax dx", x, R * C, dx, 0.5f, sm_loss, &c, 1e-2) == 0);
}

/* ---- attention --------------------------------------------------------------------------- */

typedef struct {
    float *out, *probs, *q, *k, *v, *r;
    const uint8_t *mask;
    int64_t tq, tk, h, dh;
} at_ctx;

static double at_loss(void *u) {
    at_ctx *c = u;
    int64_t d = c->h * c->dh;
    if (mer__attention_fwd(c->out, d, c->probs, c->q, d, c->k, d, c->v, d, c->mask, c->tq, c->tk,
                           c->h, c->dh, 1.0f / sqrtf((float)c->dh), NULL) != MER_OK)
        return NAN;
    return dot(c->out, c->r, c->tq * d);
}

MER_TEST(grad_attention) {
    mer__rng rng;
    mer__rng_seed(&rng, 8);
    enum { TQ = 3, TK = 5, H = 2, DH = 4, D = H * DH };
    float out[TQ * D], probs[H * TQ * TK], q[TQ * D], k[TK * D], v[TK * D], r[TQ * D];
    float dq[TQ * D], dk[TK * D], dv[TK * D];
    uint8_t mask[TK] = {1, 1, 0, 1, 1};
    for (int with_mask = 0; with_mask < 2; with_mask++) {
        fill(q, TQ * D, 1, &rng);
        fill(k, TK * D, 1, &rng);
        fill(v, TK * D, 1, &rng);
        fill(r, TQ * D, 1, &rng);
        for (int i = 0; i < TQ * D; i++) dq[i] = 0.5f;
        for (int i = 0; i < TK * D; i++) dk[i] = dv[i] = 0.5f;
        at_ctx c = {out, probs, q, k, v, r, with_mask ? mask : NULL, TQ, TK, H, DH};
        at_loss(&c);
        REQUIRE_OK(mer__attention_bwd(dq, dk, dv, r, D, probs, q, D, k, D, v, D, TQ, TK, H, DH,
                                      1.0f / sqrtf((float)DH), NULL));
        CHECK(fd_check("attention dq", q, TQ * D, dq, 0.5f, at_loss, &c, 1e-2) == 0);
        CHECK(fd_check("attention dk", k, TK * D, dk, 0.5f, at_loss, &c, 1e-2) == 0);
        CHECK(fd_check("attention dv", v, TK * D, dv, 0.5f, at_loss, &c, 1e-2) == 0);
    }
}

/* ---- whole models and layers: gradients of every parameter tensor ------------------------ */

typedef struct {
    mer__model *m;
    mer__batch *b;
    float *logits, *r;
} model_ctx;

static double model_loss(void *u) {
    model_ctx *c = u;
    mer__act_reset(&c->m->nn.act);
    c->m->ops->forward(c->m, c->b, 0, NULL, c->logits);
    return dot(c->logits, c->r, c->b->n * c->m->cfg.n_classes);
}

MER_TEST(grad_attention_model) {
    mer__model_config cfg;
    memset(&cfg, 0, sizeof cfg);
    snprintf(cfg.model, sizeof cfg.model, "attention");
    cfg.n_classes = 4;
    cfg.n_mod = 3;
    const int64_t dims[3] = {6, 9, 5};
    const char *names[3] = {"audio", "text", "video"};
    for (int i = 0; i < 3; i++) {
        cfg.dim[i] = dims[i];
        snprintf(cfg.modality[i], MER_NAME_MAX, "%s", names[i]);
    }
    cfg.hidden = 8;
    cfg.dropout = 0.0f;
    mer__rng rng;
    mer__rng_seed(&rng, 9);
    mer__model *m = NULL;
    REQUIRE_OK(mer__model_create(&m, &cfg, &rng));
    enum { N = 5 };
    float xa[N * 6], xt[N * 9], xv[N * 5], logits[N * 4], r[N * 4];
    fill(xa, N * 6, 1, &rng);
    fill(xt, N * 9, 1, &rng);
    fill(xv, N * 5, 1, &rng);
    fill(r, N * 4, 1, &rng);
    mer__batch b = {.n = N, .n_mod = 3, .x = {xa, xt, xv}, .dim = {6, 9, 5}};
    model_ctx c = {m, &b, logits, r};
    for (int64_t i = 0; i < m->nn.n_params; i++) m->nn.grads[i] = 0.5f;
    mer__act_reset(&m->nn.act);
    REQUIRE_OK(m->ops->forward(m, &b, 1, &rng, logits));
    REQUIRE_OK(m->ops->backward(m, &b, r));
    kinks_skipped = 0;
    int checked = 0;
    for (int32_t t = 0; t < m->nn.n_info; t++) {
        const mer__param_info *p = &m->nn.info[t];
        CHECK(fd_check_k(p->name, m->nn.params + p->offset, p->numel, m->nn.grads + p->offset, 0.5f,
                         model_loss, &c, 3e-3, 1) == 0);
        checked += (int)(p->numel > 48 ? 48 : p->numel);
    }
    CHECK(kinks_skipped < checked / 10); /* the check must mostly run */
    mer__model_free(m);
}

/* A tiny test-only model composing LayerNorm + multi-head attention (self then cross) over
 * sequences, to check the layers agt builds on. */
typedef struct {
    mer__ln ln;
    mer__ln_saved lns;
    mer__mha self, cross;
    mer__lin head;
    float *pooled, *z1, *z2, *z3;
    const float *x0;
    int64_t n;
} seq_priv;

static mer_status seq_build(mer__model *m) {
    seq_priv *p = calloc(1, sizeof *p);
    m->priv = p;
    int64_t d = m->cfg.dim[0];
    mer_status s = mer__ln_declare(&m->nn, &p->ln, "ln", d);
    if (s == MER_OK) s = mer__mha_declare(&m->nn, &p->self, "self", d, m->cfg.heads);
    if (s == MER_OK) s = mer__mha_declare(&m->nn, &p->cross, "cross", d, m->cfg.heads);
    if (s == MER_OK) s = mer__lin_declare(&m->nn, &p->head, "head", d, m->cfg.n_classes);
    return s;
}
static void seq_init(mer__model *m, mer__rng *rng) {
    seq_priv *p = m->priv;
    mer__ln_init(&m->nn, &p->ln);
    for (int64_t i = 0; i < p->ln.c; i++) {
        m->nn.params[p->ln.g + i] = 1.0f + 0.3f * (float)mer__rng_normal(rng);
        m->nn.params[p->ln.b + i] = 0.3f * (float)mer__rng_normal(rng);
    }
    mer__mha_init(&m->nn, &p->self, rng);
    mer__mha_init(&m->nn, &p->cross, rng);
    /* non-zero biases so their gradients are exercised */
    for (int64_t i = 0; i < m->nn.n_params; i++)
        if (m->nn.params[i] == 0.0f) m->nn.params[i] = 0.1f * (float)mer__rng_normal(rng);
    mer__lin_init(&m->nn, &p->head, rng);
}
/* x (modality 0) -> LN -> self-attention -> cross-attention with modality 1 as keys/values ->
 * mean pool per clip -> head */
static mer_status seq_forward(mer__model *m, const mer__batch *b, int train, mer__rng *rng,
                              float *logits) {
    seq_priv *p = m->priv;
    int64_t d = m->cfg.dim[0], rows = b->off[0][b->n];
    p->n = b->n;
    mer_status s = mer__ln_fwd(&m->nn, &p->ln, &p->lns, &p->z1, b->x[0], rows);
    if (s == MER_OK) s = mer__mha_fwd(&m->nn, &p->self, &p->z2, p->z1, b->off[0], p->z1, b->off[0], NULL, b->n,
                                      train);
    if (s == MER_OK) s = mer__mha_fwd(&m->nn, &p->cross, &p->z3, p->z2, b->off[0], b->x[1], b->off[1], NULL,
                                      b->n, train);
    if (s != MER_OK) return s;
    p->pooled = mer__nn_act(&m->nn, b->n * d);
    for (int64_t i = 0; i < b->n; i++)
        mer__mean_pool_fwd(p->pooled + i * d, p->z3 + b->off[0][i] * d, b->off[0][i + 1] - b->off[0][i], d);
    mer__lin_fwd(&m->nn, &p->head, logits, p->pooled, b->n);
    return MER_OK;
}
static mer_status seq_backward(mer__model *m, const mer__batch *b, const float *dlogits) {
    seq_priv *p = m->priv;
    int64_t d = m->cfg.dim[0], rows = b->off[0][b->n];
    float *dpool = mer__nn_act(&m->nn, b->n * d), *dz3 = mer__nn_act(&m->nn, rows * d);
    float *dz2 = mer__nn_act(&m->nn, rows * d), *dz1 = mer__nn_act(&m->nn, rows * d);
    memset(dpool, 0, (size_t)(b->n * d) * sizeof(float));
    memset(dz3, 0, (size_t)(rows * d) * sizeof(float));
    memset(dz2, 0, (size_t)(rows * d) * sizeof(float));
    memset(dz1, 0, (size_t)(rows * d) * sizeof(float));
    mer__lin_bwd(&m->nn, &p->head, dpool, dlogits, p->pooled, b->n);
    for (int64_t i = 0; i < b->n; i++)
        mer__mean_pool_bwd(dz3 + b->off[0][i] * d, dpool + i * d, b->off[0][i + 1] - b->off[0][i], d);
    mer__mha_bwd(&m->nn, &p->cross, dz2, NULL, dz3);
    mer__mha_bwd(&m->nn, &p->self, dz1, dz1, dz2);
    mer__ln_bwd(&m->nn, &p->ln, &p->lns, NULL, dz1);
    return MER_OK;
}
static void seq_destroy(mer__model *m) { free(m->priv); }
static const mer__model_ops seq_ops = {"test_seq", "", seq_build, seq_init, seq_forward,
                                       seq_backward, seq_destroy};

MER_TEST(grad_layers_ln_mha) {
    mer__model *m = calloc(1, sizeof *m);
    REQUIRE(m);
    m->ops = &seq_ops;
    m->cfg.n_classes = 3;
    m->cfg.n_mod = 2;
    m->cfg.dim[0] = m->cfg.dim[1] = 8;
    m->cfg.heads = 2;
    REQUIRE_OK(seq_ops.build(m));
    REQUIRE_OK(mer__nn_alloc(&m->nn));
    mer__rng rng;
    mer__rng_seed(&rng, 10);
    seq_ops.init(m, &rng);
    enum { N = 2 };
    int64_t offa[N + 1] = {0, 3, 7}, offb[N + 1] = {0, 4, 6};
    float xa[7 * 8], xb[6 * 8], logits[N * 3], r[N * 3];
    fill(xa, 7 * 8, 1, &rng);
    fill(xb, 6 * 8, 1, &rng);
    fill(r, N * 3, 1, &rng);
    mer__batch b = {.n = N, .n_mod = 2, .x = {xa, xb}, .off = {offa, offb}, .dim = {8, 8}};
    model_ctx c = {m, &b, logits, r};
    for (int64_t i = 0; i < m->nn.n_params; i++) m->nn.grads[i] = 0.5f;
    mer__act_reset(&m->nn.act);
    REQUIRE_OK(seq_forward(m, &b, 1, &rng, logits));
    REQUIRE_OK(seq_backward(m, &b, r));
    for (int32_t t = 0; t < m->nn.n_info; t++) {
        const mer__param_info *p = &m->nn.info[t];
        CHECK(fd_check(p->name, m->nn.params + p->offset, p->numel, m->nn.grads + p->offset, 0.5f,
                       model_loss, &c, 1e-2) == 0);
    }
    seq_ops.destroy(m);
    m->ops = NULL;
    mer__nn_free(&m->nn);
    free(m);
}

/* ---- LoRA and the bottleneck adapter (src/nn/peft.c) ---------------------------------------- */

typedef struct {
    mer__nn *nn;
    mer__lora *lo;
    mer__adapter *ad;
    float *x, *y, *r;
    int64_t n;
} peft_ctx;

/* dot(r, branch(x)); the dropout masks are drawn from the same seed every time */
static double peft_loss(void *u) {
    peft_ctx *c = u;
    mer__rng rng;
    mer__rng_seed(&rng, 77);
    mer__act_reset(&c->nn->act);
    const int64_t out = c->lo ? c->lo->out : c->ad->up.out;
    memset(c->y, 0, (size_t)(c->n * out) * sizeof(float));
    if (c->lo) mer__lora_fwd(c->nn, c->lo, c->y, c->x, c->n, 1, &rng);
    else mer__adapter_fwd(c->nn, c->ad, c->y, c->x, c->n, 1);
    return dot(c->r, c->y, c->n * out);
}

MER_TEST(grad_lora_adapter) {
    enum { N = 7, IN = 6, OUT = 5, R = 3 };
    mer__nn nn = {0};
    mer__lora lo;
    mer__adapter ad;
    REQUIRE_OK(mer__lora_declare(&nn, &lo, "q_proj", IN, OUT, R, 6.0f, 0.3f));
    REQUIRE_OK(mer__adapter_declare(&nn, &ad, "adapter", IN, 4));
    CHECK(mer__nn_find(&nn, "q_proj.lora_A.weight") && mer__nn_find(&nn, "q_proj.lora_B.weight") &&
          mer__nn_find(&nn, "adapter.up.bias"));
    REQUIRE_OK(mer__nn_alloc(&nn));
    mer__rng rng;
    mer__rng_seed(&rng, 5);
    mer__lora_init(&nn, &lo, &rng);
    mer__adapter_init(&nn, &ad, &rng);
    /* peft / Houlsby starts: B and up zero (the branch adds nothing) */
    CHECK(nn.params[lo.b] == 0.0f && nn.params[ad.up.w] == 0.0f && nn.params[lo.a] != 0.0f);
    fill(nn.params, nn.n_params, 0.5, &rng); /* then non-zero everywhere, so no gradient is trivially 0 */
    float x[N * IN], y[N * IN], r[N * IN], dx[N * IN];
    fill(x, N * IN, 1, &rng);
    fill(r, N * IN, 1, &rng);
    for (int pass = 0; pass < 2; pass++) {
        peft_ctx c = {&nn, pass ? NULL : &lo, pass ? &ad : NULL, x, y, r, N};
        for (int64_t i = 0; i < nn.n_params; i++) nn.grads[i] = 0.5f;
        memset(dx, 0, sizeof dx);
        peft_loss(&c);
        if (pass) mer__adapter_bwd(&nn, &ad, dx, r);
        else mer__lora_bwd(&nn, &lo, dx, r);
        if (!pass) CHECK(lo.mask != NULL); /* dropout really ran */
        const char *names[2][4] = {{"q_proj.lora_A.weight", "q_proj.lora_B.weight", NULL, NULL},
                                   {"adapter.down.weight", "adapter.down.bias", "adapter.up.weight",
                                    "adapter.up.bias"}};
        for (int t = 0; t < 4 && names[pass][t]; t++) {
            const mer__param_info *p = mer__nn_find(&nn, names[pass][t]);
            REQUIRE(p);
            CHECK(fd_check_k(p->name, nn.params + p->offset, p->numel, nn.grads + p->offset, 0.5f,
                             peft_loss, &c, 1e-2, pass) == 0);
        }
        CHECK(fd_check_k(pass ? "adapter dx" : "lora dx", x, N * IN, dx, 0.0f, peft_loss, &c, 1e-2,
                         pass) == 0);
    }
    mer__nn_free(&nn);
}

/* ---- optimizer --------------------------------------------------------------------------- */

MER_TEST(optim_adam_matches_formula) {
    /* two steps by hand in double for one parameter, coupled L2 */
    float p = 0.5f, g = 0.2f;
    mer__optim o;
    REQUIRE_OK(mer__optim_init(&o, MER_OPT_ADAM, 1, 0.01f, 0.1f));
    double pd = 0.5, m = 0, v = 0;
    for (int t = 1; t <= 2; t++) {
        double gd = 0.2 + 0.1 * pd;
        m = 0.9 * m + 0.1 * gd;
        v = 0.999 * v + 0.001 * gd * gd;
        pd -= 0.01 / (1 - pow(0.9, t)) * m / (sqrt(v) / sqrt(1 - pow(0.999, t)) + 1e-8);
        g = 0.2f;
        mer__optim_step(&o, &p, &g);
        CHECK(g == 0.0f); /* the step consumes the gradient */
    }
    /* the vector path and the scalar tail agree: 37 parameters with the same values */
    {
        float pv[37], gv[37];
        mer__optim ov;
        REQUIRE_OK(mer__optim_init(&ov, MER_OPT_ADAM, 37, 0.01f, 0.1f));
        for (int t = 1; t <= 2; t++) {
            for (int i = 0; i < 37; i++) gv[i] = 0.2f;
            if (t == 1) for (int i = 0; i < 37; i++) pv[i] = 0.5f;
            mer__optim_step(&ov, pv, gv);
        }
        for (int i = 0; i < 37; i++) CHECK(pv[i] == p);
        mer__optim_free(&ov);
    }
    CHECK_NEAR(p, pd, 1e-6);
    mer__optim_free(&o);
    /* AdamW: decoupled decay */
    p = 0.5f;
    g = 0.2f;
    REQUIRE_OK(mer__optim_init(&o, MER_OPT_ADAMW, 1, 0.01f, 0.1f));
    mer__optim_step(&o, &p, &g);
    CHECK_NEAR(p, 0.5 * (1 - 0.001) - 0.01, 1e-6);
    mer__optim_free(&o);
    float gs[3] = {3, -4, 0.5f};
    CHECK_NEAR(mer__clip_grad_norm(gs, 2, 1.0f), 5.0, 1e-6);
    CHECK_NEAR(gs[0], 0.6, 1e-5);
    CHECK_NEAR(gs[1], -0.8, 1e-5);
    mer__clip_grad_value(gs, 3, 0.55f);
    CHECK(gs[0] == 0.55f && gs[1] == -0.55f && gs[2] == 0.5f);
}

/* The step fused into the weight gradient (optim.c) gives the bits of gradient GEMM + plain step:
 * a flat buffer holding two weights (13 x 70 and 9 x 33, batches of 5) between other
 * parameters, three steps, Adam and AdamW, 1 and 2 threads. */
MER_TEST(optim_fused_step_equals_plain) {
    const int64_t n = 5, o1 = 13, i1 = 70, o2 = 9, i2 = 33;
    const int64_t w1 = 7, w2 = w1 + o1 * i1 + 11, N = w2 + o2 * i2 + 19;
    mer__rng r;
    mer__rng_seed(&r, 5);
    float *p0 = malloc(sizeof(float) * N), *pa = malloc(sizeof(float) * N), *pb = malloc(sizeof(float) * N);
    float *ga = calloc((size_t)N, sizeof(float)), *gb = calloc((size_t)N, sizeof(float));
    float *x1 = malloc(sizeof(float) * n * i1), *x2 = malloc(sizeof(float) * n * i2);
    float *d1 = malloc(sizeof(float) * n * o1), *d2 = malloc(sizeof(float) * n * o2);
    for (int64_t i = 0; i < N; i++) p0[i] = (float)mer__rng_normal(&r);
    int saved = mer_get_threads(), fused_ran = 1;
    for (int type = 0; type < 2; type++)
        for (int th = 1; th <= 2; th++) {
            mer_set_threads(th);
            mer_optimizer ot = type ? MER_OPT_ADAMW : MER_OPT_ADAM;
            mer__optim oa, ob;
            REQUIRE_OK(mer__optim_init(&oa, ot, N, 1e-2f, 1e-2f));
            REQUIRE_OK(mer__optim_init(&ob, ot, N, 1e-2f, 1e-2f));
            memcpy(pa, p0, sizeof(float) * N);
            memcpy(pb, p0, sizeof(float) * N);
            for (int step = 0; step < 3; step++) {
                for (int64_t i = 0; i < n * i1; i++) x1[i] = (float)mer__rng_normal(&r);
                for (int64_t i = 0; i < n * i2; i++) x2[i] = (float)mer__rng_normal(&r);
                for (int64_t i = 0; i < n * o1; i++) d1[i] = (float)mer__rng_normal(&r);
                for (int64_t i = 0; i < n * o2; i++) d2[i] = step == 1 && i % 3 ? -0.0f : (float)mer__rng_normal(&r);
                for (int64_t i = 0; i < N; i++)
                    if (i < w1 || (i >= w1 + o1 * i1 && i < w2) || i >= w2 + o2 * i2)
                        ga[i] = gb[i] = (float)mer__rng_normal(&r); /* the other parameters */
                /* plain: gradient GEMMs into the zeroed weight gradients, then one step */
                mer__linear_bwd(NULL, ga + w1, NULL, d1, x1, NULL, n, i1, o1);
                mer__linear_bwd(NULL, ga + w2, NULL, d2, x2, NULL, n, i2, o2);
                mer__optim_step(&oa, pa, ga);
                /* fused */
                mer__optim_fused f;
                mer__optim_fused_begin(&ob, &f);
                /* declined (no AVX-512): the caller takes the plain path for that weight */
                if (!mer__optim_fused_wgrad(&f, pb, w2, d2, x2, n, i2, o2)) {
                    fused_ran = 0;
                    mer__linear_bwd(NULL, gb + w2, NULL, d2, x2, NULL, n, i2, o2);
                }
                if (!mer__optim_fused_wgrad(&f, pb, w1, d1, x1, n, i1, o1)) {
                    fused_ran = 0;
                    mer__linear_bwd(NULL, gb + w1, NULL, d1, x1, NULL, n, i1, o1);
                }
                mer__optim_step_fused(&ob, pb, gb, &f);
                CHECK(oa.t == ob.t);
            }
            CHECK(memcmp(pa, pb, sizeof(float) * N) == 0);
            CHECK(memcmp(oa.m, ob.m, sizeof(float) * N) == 0);
            CHECK(memcmp(oa.v, ob.v, sizeof(float) * N) == 0);
            int zero = 1;
            for (int64_t i = 0; i < N; i++) zero &= ga[i] == 0.0f && gb[i] == 0.0f;
            CHECK(zero);
            mer__optim_free(&oa);
            mer__optim_free(&ob);
        }
    mer_set_threads(saved);
    CHECK(fused_ran == mer__use_avx512()); /* the fused path runs exactly where AVX-512 is dispatched */
    free(p0); free(pa); free(pb); free(ga); free(gb); free(x1); free(x2); free(d1); free(d2);
}
