/*
 * test_agt.c -- the `agt` and `afusion` fusion models (src/models/fusion_agt.c):
 *  - forward against the PyTorch reference of the documented design
 *    (tests/fixtures/agt/make_agt_ref.py: weights + inputs + logits), 1e-5 relative;
 *  - central finite-difference gradient checks of every parameter tensor (hence of every layer:
 *    projection/sub-token split, intra self-attention blocks, audio-queried cross-attention
 *    blocks, pooling, gate, classifier), with dropout on (masks replayed from a fixed seed),
 *    utterance and frame-level inputs mixed, and with audio alone (one stream).
 */
#include "test.h"
#include "train/train.h"

#define FIX "tests/fixtures/agt/"

static mer__model_config small_cfg(const char *model, int hidden, int heads, int layers,
                                   int tokens) {
    mer__model_config c;
    memset(&c, 0, sizeof c);
    snprintf(c.model, sizeof c.model, "%s", model);
    c.n_classes = 6;
    c.n_mod = 3;
    const char *names[3] = {"audio", "text", "video"};
    const int64_t dims[3] = {12, 10, 8};
    for (int i = 0; i < 3; i++) {
        snprintf(c.modality[i], sizeof c.modality[i], "%s", names[i]);
        c.dim[i] = dims[i];
    }
    c.is_seq[2] = 1;
    c.hidden = hidden;
    c.heads = heads;
    c.layers = layers;
    c.tokens = tokens;
    c.dropout = 0;
    return c;
}

static void check_reference(const char *model, const char *weights, const char *logits_name) {
    mer_safetensors *io = NULL;
    REQUIRE_OK(mer_safetensors_open(&io, FIX "io.safetensors"));
    const float *audio, *text, *video, *voff, *want;
    int64_t sa[2] = {5, 12}, st[2] = {5, 10}, sv[2] = {15, 8}, so[1] = {6}, sl[2] = {5, 6};
    REQUIRE_OK(mer_safetensors_get_f32(io, "audio", 2, sa, &audio));
    REQUIRE_OK(mer_safetensors_get_f32(io, "text", 2, st, &text));
    REQUIRE_OK(mer_safetensors_get_f32(io, "video", 2, sv, &video));
    REQUIRE_OK(mer_safetensors_get_f32(io, "video_off", 1, so, &voff));
    REQUIRE_OK(mer_safetensors_get_f32(io, logits_name, 2, sl, &want));

    mer__model_config cfg = small_cfg(model, 16, 2, 2, 3);
    mer__model *m = NULL;
    REQUIRE_OK(mer__model_create(&m, &cfg, NULL));
    REQUIRE_OK(mer__model_load(m, weights));
    int64_t off[6];
    for (int i = 0; i < 6; i++) off[i] = (int64_t)voff[i];
    mer__batch b;
    memset(&b, 0, sizeof b);
    b.n = 5;
    b.n_mod = 3;
    b.x[0] = audio, b.x[1] = text, b.x[2] = video;
    b.dim[0] = 12, b.dim[1] = 10, b.dim[2] = 8;
    b.off[2] = off;
    float logits[30];
    mer__act_reset(&m->nn.act);
    REQUIRE_OK(m->ops->forward(m, &b, 0, NULL, logits));
    double ref_max = 0, d = mer_test_maxdiff(logits, want, 30, &ref_max);
    printf("    %s: max |diff| %.3g, max |ref| %.3g\n", model, d, ref_max);
    CHECK(d <= 1e-5 * ref_max);
    mer__model_free(m);
    mer_safetensors_free(io);
}

MER_TEST(agt_forward_matches_pytorch) {
    check_reference("agt", FIX "agt.safetensors", "agt_logits");
}

MER_TEST(afusion_forward_matches_pytorch) {
    check_reference("afusion", FIX "afusion.safetensors", "afusion_logits");
}

/* ---- gradient checks --------------------------------------------------------------------- */

typedef struct {
    mer__model *m;
    mer__batch b;
    float *R;        /* (n, C) weights of the scalar loss sum(R * logits) */
    float *logits;
    uint64_t seed;
} gc_ctx;

static double loss_at(gc_ctx *g) {
    mer__rng r;
    mer__rng_seed(&r, g->seed);   /* the same dropout masks every time */
    mer__act_reset(&g->m->nn.act);
    if (g->m->ops->forward(g->m, &g->b, 1, &r, g->logits) != MER_OK) return NAN;
    double l = 0;
    for (int64_t i = 0; i < g->b.n * g->m->cfg.n_classes; i++) l += (double)g->R[i] * g->logits[i];
    return l;
}

/* Analytic vs central differences on up to `per` entries of every parameter tensor; returns
 * the number of tensors whose relative error norm exceeds tol. */
static int gradcheck(gc_ctx *g, int per, double tol) {
    mer__model *m = g->m;
    memset(m->nn.grads, 0, (size_t)m->nn.n_params * sizeof(float));
    if (!isfinite(loss_at(g))) return 1000;
    if (m->ops->backward(m, &g->b, g->R) != MER_OK) return 1000;
    float *an = malloc((size_t)m->nn.n_params * sizeof(float));
    memcpy(an, m->nn.grads, (size_t)m->nn.n_params * sizeof(float));
    mer__rng pick;
    mer__rng_seed(&pick, 99);
    int bad = 0, skipped = 0, total = 0;
    for (int32_t t = 0; t < m->nn.n_info; t++) {
        const mer__param_info *p = &m->nn.info[t];
        double num = 0, den = 0;
        int k = p->numel < per ? (int)p->numel : per, used = 0;
        for (int q = 0; q < k; q++) {
            int64_t j = p->offset + (k == p->numel ? q : (int64_t)(mer__rng_uniform(&pick) * p->numel));
            float save = m->nn.params[j];
            double fd[2];
            for (int e = 0; e < 2; e++) {
                const float h = e ? 1.5e-3f : 3e-3f;
                m->nn.params[j] = save + h;
                double lp = loss_at(g);
                m->nn.params[j] = save - h;
                double lm = loss_at(g);
                m->nn.params[j] = save;
                fd[e] = (lp - lm) / (2.0 * h);
            }
            /* Two step sizes disagreeing means a ReLU kink lies within the step: central
             * differences are meaningless there, so the entry is skipped (and counted). */
            total++;
            if (fabs(fd[0] - fd[1]) > 0.03 * fabs(fd[0]) + 3e-4) {
                skipped++;
                continue;
            }
            used++;
            if (getenv("GC_DEBUG") && strstr(p->name, getenv("GC_DEBUG"))) printf("      %lld fd %.6g %.6g an %.6g\n", (long long)(j - p->offset), fd[0], fd[1], an[j]);
            num += (fd[0] - an[j]) * (fd[0] - an[j]);
            den += (double)an[j] * an[j];
        }
        /* float32 forward: each difference quotient carries ~1e-4 of rounding noise, so
         * tensors with (near-)zero true gradients, like k_proj.bias, get an absolute floor */
        double rel = sqrt(num) / (sqrt(den) + 1.5e-4 * sqrt((double)(used ? used : 1)) / tol);
        if (!(rel <= tol) || used == 0) {
            printf("    %s: relative gradient error %.3g (|grad| %.3g, %d entries)\n", p->name, rel,
                   sqrt(den), used);
            bad++;
        }
    }
    printf("    %d of %d entries skipped at ReLU kinks\n", skipped, total);
    if (skipped * 10 > total) {
        printf("    %d of %d entries skipped at kinks: too many\n", skipped, total);
        bad++;
    }
    free(an);
    return bad;
}

static void run_gradcheck(const char *model, int n_mod, int with_seq, float dropout) {
    /* tiny GEMMs: one thread avoids OpenMP barriers that crawl on a loaded machine */
    int threads = mer_get_threads();
    mer_set_threads(1);
    mer__model_config cfg = small_cfg(model, 8, 2, 2, 2);
    cfg.n_mod = n_mod;
    cfg.dim[0] = 5, cfg.dim[1] = 4, cfg.dim[2] = 3;
    cfg.is_seq[2] = with_seq;
    cfg.n_classes = 4;
    cfg.dropout = dropout;
    mer__rng r;
    mer__rng_seed(&r, 5);
    gc_ctx g;
    memset(&g, 0, sizeof g);
    mer_status st = mer__model_create(&g.m, &cfg, &r);
    CHECK_OK(st);
    if (st != MER_OK) {
        mer_set_threads(threads);
        return;
    }
    /* LayerNorm affine parameters away from (1, 0) so their gradients are exercised fully */
    for (int32_t t = 0; t < g.m->nn.n_info; t++)
        if (strstr(g.m->nn.info[t].name, ".ln"))
            for (int64_t i = 0; i < g.m->nn.info[t].numel; i++)
                g.m->nn.params[g.m->nn.info[t].offset + i] += (float)(0.3 * mer__rng_normal(&r));
    const int64_t n = 3;
    int64_t off[4] = {0, 2, 5, 6};
    float *x[3];
    for (int i = 0; i < n_mod; i++) {
        int64_t rows = (i == 2 && with_seq) ? off[n] : n;
        x[i] = malloc((size_t)(rows * cfg.dim[i]) * sizeof(float));
        for (int64_t j = 0; j < rows * cfg.dim[i]; j++) x[i][j] = (float)mer__rng_normal(&r);
        g.b.x[i] = x[i];
        g.b.dim[i] = cfg.dim[i];
    }
    if (n_mod > 2 && with_seq) g.b.off[2] = off;
    g.b.n = n;
    g.b.n_mod = n_mod;
    g.R = malloc((size_t)(n * cfg.n_classes) * sizeof(float));
    g.logits = malloc((size_t)(n * cfg.n_classes) * sizeof(float));
    for (int64_t i = 0; i < n * cfg.n_classes; i++) g.R[i] = (float)mer__rng_normal(&r);
    g.seed = 11;
    int bad = gradcheck(&g, 8, 5e-2);
    CHECK(bad == 0);
    printf("    %s: %d parameter tensors checked, %d bad\n", model, g.m->nn.n_info, bad);
    for (int i = 0; i < n_mod; i++) free(x[i]);
    free(g.R), free(g.logits);
    mer__model_free(g.m);
    mer_set_threads(threads);
}

MER_TEST(agt_gradcheck_three_modalities_frames_dropout) { run_gradcheck("agt", 3, 1, 0.25f); }
MER_TEST(agt_gradcheck_utterance_only) { run_gradcheck("agt", 3, 0, 0.0f); }
MER_TEST(agt_gradcheck_audio_alone) { run_gradcheck("agt", 1, 0, 0.1f); }
MER_TEST(afusion_gradcheck) { run_gradcheck("afusion", 3, 1, 0.25f); }

MER_TEST(agt_bad_config) {
    mer__model_config cfg = small_cfg("agt", 10, 4, 1, 2);  /* 10 not a multiple of 4 heads */
    mer__model *m = NULL;
    CHECK_ERR(mer__model_create(&m, &cfg, NULL), MER_ERR_INVALID_ARG, "multiple of heads");
    cfg = small_cfg("agt", 8, 2, 9, 2);
    CHECK_ERR(mer__model_create(&m, &cfg, NULL), MER_ERR_INVALID_ARG, "layers 9");
    CHECK(m == NULL);
}
