/*
 * test_nn.c -- the layer kit (src/nn): masked attention and RMSNorm against naive double
 * references, every parameter and input gradient of a stack of kit layers by central finite
 * differences (RMSNorm -> causal + key-padded self-attention -> GELU feed-forward -> frozen
 * linear head -> mean pooling), frozen layers leave no gradient, and a training step allocates
 * nothing once the arena has grown.
 */
#include "test.h"
#include "nn/nn.h"

#include <math.h>

static void fill(float *x, int64_t n, double scale, mer__rng *r) {
    for (int64_t i = 0; i < n; i++) x[i] = (float)(mer__rng_normal(r) * scale);
}

enum { D = 8, HEADS = 2, HID = 12, OUT = 3, NCLIP = 2 };
static const int64_t OFF[NCLIP + 1] = {0, 4, 9};   /* clips of 4 and 5 tokens */
#define ROWS 9

typedef struct {
    mer__nn nn;
    mer__rms rms;
    mer__mha att;
    mer__ffn ffn;
    mer__lin head;      /* frozen */
    float head_w[OUT * D], head_b[OUT];
    mer__rms_saved rs;
    uint8_t km[ROWS];
    float x[ROWS * D], r[NCLIP * OUT];
    float *z1, *z2, *z3, *z4, *pooled;
} stack;

static mer_status stack_fwd(stack *s, int train) {
    mer__nn *nn = &s->nn;
    mer__act_reset(&nn->act);
    mer_status st = mer__rms_fwd(nn, &s->rms, &s->rs, &s->z1, s->x, ROWS);
    if (!st) st = mer__mha_fwd(nn, &s->att, &s->z2, s->z1, OFF, s->z1, OFF, s->km, NCLIP, train);
    if (!st) st = mer__ffn_fwd(nn, &s->ffn, &s->z3, s->z2, ROWS, train);
    if (st) return st;
    if (!(s->z4 = mer__nn_act(nn, ROWS * OUT)) || !(s->pooled = mer__nn_act(nn, NCLIP * OUT)))
        return MER_ERR_NOMEM;
    mer__lin_fwd(nn, &s->head, s->z4, s->z3, ROWS);
    mer__mean_rows(s->pooled, OUT, s->z4, OFF, NCLIP, OUT);
    return MER_OK;
}

static double stack_loss(stack *s) {
    if (stack_fwd(s, 0) != MER_OK) return NAN;
    double l = 0;
    for (int i = 0; i < NCLIP * OUT; i++) l += (double)s->pooled[i] * s->r[i];
    return l;
}

/* dx (ROWS, D) of the input; parameter gradients accumulate into s->nn.grads. */
static mer_status stack_bwd(stack *s, float *dx) {
    mer__nn *nn = &s->nn;
    float *d4 = mer__nn_act0(nn, ROWS * OUT), *d3 = mer__nn_act0(nn, ROWS * D);
    float *d2 = mer__nn_act0(nn, ROWS * D), *d1 = mer__nn_act0(nn, ROWS * D);
    if (!d4 || !d3 || !d2 || !d1) return MER_ERR_NOMEM;
    mer__mean_rows_bwd(d4, s->r, OUT, OFF, NCLIP, OUT);
    mer__lin_bwd(nn, &s->head, d3, d4, s->z3, ROWS);
    mer__ffn_bwd(nn, &s->ffn, d2, d3);
    mer__mha_bwd(nn, &s->att, d1, d1, d2);
    mer__rms_bwd(nn, &s->rms, &s->rs, dx, d1);
    return MER_OK;
}

static void stack_init(stack *s, uint64_t seed) {
    memset(s, 0, sizeof *s);
    mer__rng rng;
    mer__rng_seed(&rng, seed);
    s->att.causal = 1;
    if (mer__rms_declare(&s->nn, &s->rms, "norm", D, 1e-6f) ||
        mer__mha_declare(&s->nn, &s->att, "attn", D, HEADS) ||
        mer__ffn_declare(&s->nn, &s->ffn, "mlp", D, HID, MER__ACTFN_GELU) ||
        mer__nn_alloc(&s->nn))
        return;
    s->att.causal = 1;   /* declare resets the struct */
    fill(s->head_w, OUT * D, 0.5, &rng);
    fill(s->head_b, OUT, 0.5, &rng);
    mer__lin_frozen(&s->head, s->head_w, s->head_b, D, OUT);
    /* random everything (norm weights and biases too, so every gradient is exercised) */
    fill(s->nn.params, s->nn.n_params, 0.4, &rng);
    for (int64_t i = 0; i < D; i++) s->nn.params[s->rms.g + i] += 1.0f;
    fill(s->x, ROWS * D, 1.0, &rng);
    fill(s->r, NCLIP * OUT, 1.0, &rng);
    for (int i = 0; i < ROWS; i++) s->km[i] = 1;
    s->km[2] = 0;   /* clip 0: key 2 padded */
    s->km[4] = 0;   /* clip 1: its first key padded, so its query 0 sees nothing */
}

MER_TEST(nn_rmsnorm_matches_reference) {
    mer__rng rng;
    mer__rng_seed(&rng, 3);
    enum { N = 5, C = 37 };
    float x[N * C], g[C], y[N * C], rs[N];
    fill(x, N * C, 2.0, &rng);
    fill(g, C, 1.0, &rng);
    mer__rmsnorm_fwd(y, rs, x, g, N, C, 1e-5f);
    double worst = 0;
    for (int r = 0; r < N; r++) {
        double ss = 0;
        for (int i = 0; i < C; i++) ss += (double)x[r * C + i] * x[r * C + i];
        double k = 1.0 / sqrt(ss / C + 1e-5);
        for (int i = 0; i < C; i++) {
            double want = x[r * C + i] * k * g[i];
            double e = fabs(y[r * C + i] - want) / (1.0 + fabs(want));
            if (e > worst) worst = e;
        }
    }
    CHECK(worst < 1e-6);
}

/* Naive double attention with the same masks: the reference for the masked forward. */
MER_TEST(nn_masked_attention_matches_reference) {
    stack s;
    stack_init(&s, 11);
    REQUIRE(s.nn.params);
    REQUIRE_OK(stack_fwd(&s, 0));
    const float *P = s.nn.params;
    const mer__mha *a = &s.att;
    const int64_t dh = D / HEADS;
    double worst = 0;
    for (int c = 0; c < NCLIP; c++) {
        int64_t r0 = OFF[c], T = OFF[c + 1] - OFF[c];
        double q[16][D], k[16][D], v[16][D];
        for (int64_t t = 0; t < T; t++)
            for (int j = 0; j < D; j++) {
                double sq = P[a->q.b + j], sk = P[a->k.b + j], sv = P[a->v.b + j];
                for (int i = 0; i < D; i++) {
                    double xi = s.z1[(r0 + t) * D + i];
                    sq += xi * P[a->q.w + j * D + i];
                    sk += xi * P[a->k.w + j * D + i];
                    sv += xi * P[a->v.w + j * D + i];
                }
                q[t][j] = sq, k[t][j] = sk, v[t][j] = sv;
            }
        for (int64_t t = 0; t < T; t++) {
            double ctx[D] = {0};
            for (int h = 0; h < HEADS; h++) {
                double sc[16], mx = -INFINITY, sum = 0;
                int any = 0;
                for (int64_t u = 0; u <= t; u++) {
                    if (!s.km[r0 + u]) continue;
                    double z = 0;
                    for (int64_t e = 0; e < dh; e++) z += q[t][h * dh + e] * k[u][h * dh + e];
                    sc[u] = z / sqrt((double)dh);
                    if (sc[u] > mx) mx = sc[u];
                    any = 1;
                }
                if (!any) continue;   /* no visible key: zero context */
                for (int64_t u = 0; u <= t; u++)
                    if (s.km[r0 + u]) sum += exp(sc[u] - mx);
                for (int64_t u = 0; u <= t; u++)
                    if (s.km[r0 + u])
                        for (int64_t e = 0; e < dh; e++)
                            ctx[h * dh + e] += exp(sc[u] - mx) / sum * v[u][h * dh + e];
            }
            for (int j = 0; j < D; j++) {
                double want = P[a->o.b + j];
                for (int i = 0; i < D; i++) want += ctx[i] * P[a->o.w + j * D + i];
                double e = fabs(s.z2[(r0 + t) * D + j] - want) / (1.0 + fabs(want));
                if (e > worst) worst = e;
            }
        }
    }
    CHECK(worst < 2e-6);
    /* the fully masked query (clip 1, token 0) attends to nothing: output is out_proj's bias */
    for (int j = 0; j < D; j++) CHECK(s.z2[4 * D + j] == P[a->o.b + j]);
    mer__nn_free(&s.nn);
}

static int fd_one(stack *s, float *x, int64_t i, double ana, const char *what) {
    const double h = 1e-2;
    float save = x[i];
    x[i] = save + (float)h;
    double lp = stack_loss(s);
    x[i] = save - (float)h;
    double lm = stack_loss(s);
    x[i] = save;
    double num = (lp - lm) / (2 * h);
    if (fabs(num - ana) <= 2e-3 + 2e-2 * fabs(num)) return 0;
    mer_test_fail(__FILE__, __LINE__, "%s[%lld]: analytic %.6g vs numeric %.6g", what,
                  (long long)i, ana, num);
    return 1;
}

MER_TEST(nn_stack_gradients) {
    stack s;
    stack_init(&s, 12);
    REQUIRE(s.nn.params);
    float head_before[OUT * D];
    memcpy(head_before, s.head_w, sizeof head_before);
    REQUIRE_OK(stack_fwd(&s, 1));
    float dx[ROWS * D] = {0};
    REQUIRE_OK(stack_bwd(&s, dx));
    float *an = malloc((size_t)s.nn.n_params * sizeof(float));
    REQUIRE(an);
    memcpy(an, s.nn.grads, (size_t)s.nn.n_params * sizeof(float));
    int bad = 0, nonzero = 0;
    for (int32_t t = 0; t < s.nn.n_info; t++) {
        const mer__param_info *p = &s.nn.info[t];
        for (int64_t i = 0; i < p->numel; i += p->numel > 24 ? p->numel / 24 : 1) {
            bad += fd_one(&s, s.nn.params + p->offset, i, an[p->offset + i], p->name);
            nonzero += an[p->offset + i] != 0.0f;
        }
    }
    for (int64_t i = 0; i < ROWS * D; i++) bad += fd_one(&s, s.x, i, dx[i], "input");
    CHECK(bad == 0);
    CHECK(nonzero > 100);   /* the check looked at real gradients */
    /* the frozen head was read, never written, and declared nothing */
    CHECK(!memcmp(head_before, s.head_w, sizeof head_before));
    CHECK(mer__nn_find(&s.nn, "head.weight") == NULL);
    CHECK(mer__nn_find(&s.nn, "attn.q_proj.weight") != NULL);
    free(an);
    mer__nn_free(&s.nn);
}

MER_TEST(nn_steady_state_steps_do_not_allocate) {
    stack s;
    stack_init(&s, 13);
    REQUIRE(s.nn.params);
    float dx[ROWS * D];
    REQUIRE_OK(stack_fwd(&s, 1));
    REQUIRE_OK(stack_bwd(&s, dx));
    CHECK(s.nn.act.n_old == 0 && s.nn.act.cap > 0);
    const uint8_t *block = s.nn.act.cur;
    size_t cap = s.nn.act.cap;
    for (int step = 0; step < 3; step++) {
        REQUIRE_OK(stack_fwd(&s, 1));
        REQUIRE_OK(stack_bwd(&s, dx));
        CHECK(s.nn.act.cur == block && s.nn.act.cap == cap && s.nn.act.n_old == 0);
    }
    mer__nn_free(&s.nn);
}

MER_TEST(nn_bad_declarations) {
    mer__nn nn;
    memset(&nn, 0, sizeof nn);
    mer__mha a;
    CHECK_ERR(mer__mha_declare(&nn, &a, "att", 10, 3), MER_ERR_INVALID_ARG, "not divisible");
    mer__lin l;
    CHECK_OK(mer__lin_declare(&nn, &l, "fc", 4, 2));
    CHECK_ERR(mer__lin_declare(&nn, &l, "fc", 4, 2), MER_ERR_INTERNAL, NULL);
    CHECK(strstr(mer_last_error(), "declared twice") != NULL);
    CHECK_OK(mer__nn_alloc(&nn));
    CHECK(mer__nn_param(&nn, "late", 1, (int64_t[]){3}) < 0);
    CHECK(strstr(mer_last_error(), "after allocation") != NULL);
    /* causal attention needs as many keys as queries per clip */
    mer__nn nn2;
    memset(&nn2, 0, sizeof nn2);
    mer__mha c;
    CHECK_OK(mer__mha_declare(&nn2, &c, "att", 4, 2));
    CHECK_OK(mer__nn_alloc(&nn2));
    c.causal = 1;
    float x[5 * 4] = {0}, *y = NULL;
    int64_t oq[2] = {0, 2}, ok[2] = {0, 3};
    CHECK_ERR(mer__mha_fwd(&nn2, &c, &y, x, oq, x, ok, NULL, 1, 0), MER_ERR_SHAPE, "causal");
    mer__nn_free(&nn);
    mer__nn_free(&nn2);
}
