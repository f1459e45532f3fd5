/*
 * test_speech_train.c -- the trainable speech encoder (src/models/speech_train.c) against torch
 * autograd: logits, the gradient of every adapter / LoRA / head tensor and of the cached input,
 * and the losses of 20 AdamW steps, for post-LN (base) and stable-layer-norm (large) layers with
 * adapters and with LoRA. Fixtures: tests/fixtures/speech_train/make_speech_train_fixture.py on
 * the tiny checkpoints of tests/fixtures/hubert. Tolerance 1e-4 relative to the largest
 * reference value of each tensor (float32 against float32; measured worst ~1e-6).
 */
#include "test.h"
#include "models/speech_train.h"
#include "train/train.h"

#define STFIX "tests/fixtures/speech_train/"

typedef struct {
    const char *name, *model;
    mer__sft_config c;
    uint64_t rng_seed;   /* training forwards draw dropout / masks from mer__rng(seed) */
} st_case;

/* first, last, adapt_last, head_first, method, bottleneck, rank, alpha, lora_ffn, classes,
 * dropout, recon weight, mask prob, mask len, bf16, memo, int8 (as the fixture script's CASES) */
#define CFG(f, l, al, hf, m, b, r, a, ffn) {f, l, al, hf, m, b, r, a, ffn, 3, 0.0f, 0.0f, 0.0f, 0, 0, 0, 0}
static const st_case CASES[] = {
    {"base_adapter", "base", CFG(1, 2, 2, 1, MER__SFT_ADAPTER, 8, 0, 0.0f, 0), 0},
    {"base_lora", "base", CFG(1, 2, 1, 2, MER__SFT_LORA, 0, 4, 8.0f, 1), 0},
    {"large_adapter", "large", CFG(2, 3, 2, 2, MER__SFT_ADAPTER, 6, 0, 0.0f, 0), 0},
    {"large_lora", "large", CFG(2, 3, 3, 3, MER__SFT_LORA, 0, 2, 4.0f, 0), 0},
    /* LoRA dropout 0.25 and the masked-reconstruction loss (weight 0.5, spans of 2, p 0.3) */
    {"base_lora_drop", "base", {1, 2, 2, 1, MER__SFT_LORA, 0, 4, 8.0f, 1, 3, 0.25f, 0.5f, 0.3f, 2, 0, 0, 0}, 7},
    {"large_adapter_recon", "large", {2, 3, 2, 2, MER__SFT_ADAPTER, 6, 0, 0.0f, 0, 3, 0.0f, 1.0f, 0.4f, 3, 0, 0, 0}, 11},
};

static const float *tensor(mer_safetensors *st, const char *name, int64_t *numel) {
    mer_safetensors_entry e;
    if (mer_safetensors_find(st, name, &e) != MER_OK) return NULL;
    int64_t n = 1;
    for (int32_t i = 0; i < e.ndim; i++) n *= e.shape[i];
    if (numel) *numel = n;
    return (const float *)e.data;
}

/* max |a - b| / max |b| */
static double rel(const float *a, const float *b, int64_t n) {
    double mref = 0.0, d = mer_test_maxdiff(a, b, (size_t)n, &mref);
    return d / (mref > 1e-12 ? mref : 1e-12);
}

typedef struct {
    float *x;
    int64_t off[8], n;
    int32_t y[8];
} st_batch;

static int get_batch(mer_safetensors *st, int i, st_batch *b) {
    char name[16];
    int64_t no = 0, nx = 0, ny = 0;
    snprintf(name, sizeof name, "off%d", i);
    const float *off = tensor(st, name, &no);
    snprintf(name, sizeof name, "x%d", i);
    b->x = (float *)tensor(st, name, &nx);
    snprintf(name, sizeof name, "y%d", i);
    const float *y = tensor(st, name, &ny);
    if (!off || !b->x || !y || no > 8 || ny != no - 1) return -1;
    b->n = ny;
    for (int64_t k = 0; k < no; k++) b->off[k] = (int64_t)off[k];
    for (int64_t k = 0; k < ny; k++) b->y[k] = (int32_t)y[k];
    return 0;
}

/* dir: where the fixture and its checkpoint live (NULL: the committed tiny ones) */
static void run_case_in(const st_case *tc, const char *dir) {
    char path[1024];
    if (dir) snprintf(path, sizeof path, "%s/%s", dir, tc->model);
    else snprintf(path, sizeof path, "tests/fixtures/hubert/%s", tc->model);
    mer_speech_model *m = NULL;
    mer_safetensors *st = NULL;
    mer__sft *s = NULL;
    float *params = NULL, *grads = NULL, *dx = NULL;
    REQUIRE_OK(mer_speech_model_load(&m, path, NULL));
    if (dir) snprintf(path, sizeof path, "%s/%s.safetensors", dir, tc->name);
    else snprintf(path, sizeof path, STFIX "%s.safetensors", tc->name);
    if (mer_safetensors_open(&st, path) != MER_OK) {
        mer_test_fail(__FILE__, __LINE__, "%s: %s", path, mer_last_error());
        goto done;
    }
    if (mer__sft_init(&s, m, &tc->c) != MER_OK) {
        mer_test_fail(__FILE__, __LINE__, "%s: %s", tc->name, mer_last_error());
        goto done;
    }
    const int64_t np = mer__sft_n_params(s), D = mer__sft_dim(s), C = tc->c.n_classes;
    params = calloc((size_t)np, sizeof(float));
    grads = calloc((size_t)np, sizeof(float));
    int32_t nt = 0;
    const mer__param_info *pt = mer__sft_params(s, &nt);
    int missing = 0;
    for (int32_t i = 0; i < nt; i++) {
        int64_t n = 0;
        const float *v = tensor(st, pt[i].name, &n);
        if (!v || n != pt[i].numel) {
            mer_test_fail(__FILE__, __LINE__, "%s: tensor %s missing or mis-sized", tc->name, pt[i].name);
            missing = 1;
            continue;
        }
        memcpy(params + pt[i].offset, v, (size_t)n * sizeof(float));
    }
    st_batch b[2];
    if (missing || get_batch(st, 0, &b[0]) || get_batch(st, 1, &b[1])) {
        mer_test_fail(__FILE__, __LINE__, "%s: bad fixture", tc->name);
        goto done;
    }
    /* gradients of batch 0 */
    float logits[8 * 3], probs[8 * 3], dlog[8 * 3];
    memset(dlog, 0, sizeof dlog);
    mer__rng rng;
    mer__rng_seed(&rng, tc->rng_seed);
    CHECK_OK(mer__sft_forward(s, params, b[0].x, b[0].off, b[0].n, 1, &rng, logits, NULL));
    float loss = mer__cross_entropy_fwd(probs, logits, b[0].y, NULL, 0.0f, b[0].n, C) +
                 mer__sft_recon_loss(s);
    const float *ref_rec = tensor(st, "recon0", NULL);
    if (tc->c.recon_weight > 0.0f) /* the masks must have hit something, or nothing is tested */
        CHECK(ref_rec && ref_rec[0] > 0.0f && fabs(mer__sft_recon_loss(s) - ref_rec[0]) <= 1e-4 * ref_rec[0]);
    mer__cross_entropy_bwd(dlog, probs, b[0].y, NULL, 0.0f, b[0].n, C);
    const float *ref_log = tensor(st, "logits0", NULL), *ref_loss = tensor(st, "loss0", NULL);
    CHECK(rel(logits, ref_log, b[0].n * C) < 1e-4);
    CHECK(fabs(loss - ref_loss[0]) <= 1e-4 * fabs(ref_loss[0]));
    const int64_t rows = b[0].off[b[0].n];
    dx = calloc((size_t)(rows * D), sizeof(float));
    const int memo = tc->c.memo_mb > 0; /* the memo keeps nothing for an input gradient */
    if (memo)
        CHECK_ERR(mer__sft_backward(s, params, grads, dlog, dx), MER_ERR_INVALID_ARG, "memo");
    CHECK_OK(mer__sft_backward(s, params, grads, dlog, memo ? NULL : dx));
    double worst = 0.0;
    for (int32_t i = 0; i < nt; i++) {
        snprintf(path, sizeof path, "grad.%s", pt[i].name);
        const float *g = tensor(st, path, NULL);
        if (!g) continue;
        double e = rel(grads + pt[i].offset, g, pt[i].numel);
        if (e > worst) worst = e;
        if (!(e < 1e-4)) mer_test_fail(__FILE__, __LINE__, "%s: %s relative error %.3g", tc->name, path, e);
    }
    double ex = memo ? 0.0 : rel(dx, tensor(st, "grad.x", NULL), rows * D);
    if (!(ex < 1e-4)) mer_test_fail(__FILE__, __LINE__, "%s: grad.x relative error %.3g", tc->name, ex);
    /* 20 AdamW steps alternating the two batches */
    memset(grads, 0, (size_t)np * sizeof(float));
    mer__optim o;
    const float *lr = tensor(st, "lr", NULL);
    REQUIRE_OK(mer__optim_init(&o, MER_OPT_ADAMW, np, lr ? lr[0] : 1e-2f, 0.01f));
    const float *ref_losses = tensor(st, "losses", NULL);
    double wl = 0.0;
    mer__rng_seed(&rng, tc->rng_seed);
    int64_t steady_allocs = -1;
    for (int step = 0; step < 20; step++) {
        const st_batch *bb = &b[step % 2];
        /* once both batches have been seen the workspaces fit: later steps allocate nothing
         * (counted by the allocation-failure hook, armed far beyond reach) */
        if (step == 2) mer_alloc_fail_at(INT64_MAX);
        memset(dlog, 0, sizeof dlog);
        CHECK_OK(mer__sft_forward(s, params, bb->x, bb->off, bb->n, 1, &rng, logits, NULL));
        float l = mer__cross_entropy_fwd(probs, logits, bb->y, NULL, 0.0f, bb->n, C) +
                  mer__sft_recon_loss(s);
        mer__cross_entropy_bwd(dlog, probs, bb->y, NULL, 0.0f, bb->n, C);
        CHECK_OK(mer__sft_backward(s, params, grads, dlog, NULL));
        mer__optim_step(&o, params, grads);
        double e = fabs(l - ref_losses[step]) / fmax(fabs(ref_losses[step]), 1e-3);
        if (e > wl) wl = e;
    }
    steady_allocs = mer_alloc_count();
    mer_alloc_fail_at(0);
    mer__optim_free(&o);
    if (steady_allocs != 0)
        mer_test_fail(__FILE__, __LINE__, "%s: %lld allocations in 18 steady training steps",
                      tc->name, (long long)steady_allocs);
    if (!(wl < 1e-4)) mer_test_fail(__FILE__, __LINE__, "%s: AdamW losses relative error %.3g", tc->name, wl);
    if (getenv("MER_TEST_VERBOSE"))
        fprintf(stderr, "%s: grads %.2e, dx %.2e, 20-step losses %.2e\n", tc->name, worst, ex, wl);
done:
    free(params);
    free(grads);
    free(dx);
    mer__sft_free(s);
    mer_safetensors_free(st);
    mer_speech_model_free(m);
}

static void run_case(const st_case *tc) { run_case_in(tc, NULL); }

/* `make parity` (tests/parity/speech_train_parity.py, which makes the fixtures and sets
 * MER_SPEECH_TRAIN_PARITY): the same checks at HuBERT-large width. A parity_* test runs only when
 * named (tests/main.c), and fails when its fixtures are missing. */
MER_TEST(parity_speech_train) {
    const char *dir = getenv("MER_SPEECH_TRAIN_PARITY");
    if (!dir) {
        mer_test_fail(__FILE__, __LINE__, "MER_SPEECH_TRAIN_PARITY unset (run make parity)");
        return;
    }
    static const st_case big[] = {
        {"large_adapter", "model", CFG(1, 2, 2, 1, MER__SFT_ADAPTER, 64, 0, 0.0f, 0), 0},
        {"large_lora", "model", CFG(1, 2, 2, 2, MER__SFT_LORA, 0, 8, 16.0f, 1), 0},
    };
    run_case_in(&big[0], dir);
    run_case_in(&big[1], dir);
}

MER_TEST(speech_train_base_adapter) { run_case(&CASES[0]); }
MER_TEST(speech_train_base_lora) { run_case(&CASES[1]); }
MER_TEST(speech_train_large_adapter) { run_case(&CASES[2]); }
MER_TEST(speech_train_large_lora) { run_case(&CASES[3]); }
MER_TEST(speech_train_lora_dropout_recon) { run_case(&CASES[4]); }
MER_TEST(speech_train_adapter_recon) { run_case(&CASES[5]); }
/* The first-layer memo: the same logits, gradients and 20 AdamW losses against torch, post-LN
 * and stable-LN (the second visit of each batch takes the first layer from the memo), and no
 * allocation once both batches are in it. */
MER_TEST(speech_train_memo) {
    st_case a = CASES[0], b = CASES[2];
    a.c.memo_mb = b.c.memo_mb = 1;
    run_case(&a);
    run_case(&b);
}

/* Reduced-precision frozen projections (bf16: forward and dx in bfloat16; int8: the forward
 * products W8A8): the same step within that rounding of the float32 reference, and not the
 * float32 path (the logits must move). */
static void reduced_precision_case(int bf16, int int8, const char *label) {
    mer_speech_model *m = NULL;
    mer_safetensors *st = NULL;
    mer__sft *s = NULL;
    REQUIRE_OK(mer_speech_model_load(&m, "tests/fixtures/hubert/large", NULL));
    if (mer_safetensors_open(&st, STFIX "large_adapter.safetensors") != MER_OK) {
        mer_test_fail(__FILE__, __LINE__, "%s", mer_last_error());
        mer_speech_model_free(m);
        return;
    }
    mer__sft_config c = CASES[2].c;
    c.bf16 = bf16;
    c.int8 = int8;
    REQUIRE_OK(mer__sft_init(&s, m, &c));
    char spec[512], model[64], dg[17];
    mer__sft_config back;
    mer__sft_spec_format(spec, sizeof spec, "m", "0123456789abcdef", &c);
    CHECK_OK(mer__sft_spec_parse(spec, &back, model, sizeof model, dg));
    CHECK(back.bf16 == bf16 && back.int8 == int8); /* a run reopens in its precision */
    const int64_t np = mer__sft_n_params(s), D = mer__sft_dim(s);
    float *params = calloc((size_t)np, sizeof(float)), *grads = calloc((size_t)np, sizeof(float));
    int32_t nt = 0;
    const mer__param_info *pt = mer__sft_params(s, &nt);
    for (int32_t i = 0; i < nt; i++) {
        int64_t n = 0;
        const float *v = tensor(st, pt[i].name, &n);
        if (v && n == pt[i].numel) memcpy(params + pt[i].offset, v, (size_t)n * sizeof(float));
    }
    st_batch b;
    REQUIRE(get_batch(st, 0, &b) == 0);
    float logits[8 * 3], probs[8 * 3], dlog[8 * 3] = {0};
    CHECK_OK(mer__sft_forward(s, params, b.x, b.off, b.n, 1, NULL, logits, NULL));
    mer__cross_entropy_fwd(probs, logits, b.y, NULL, 0.0f, b.n, 3);
    mer__cross_entropy_bwd(dlog, probs, b.y, NULL, 0.0f, b.n, 3);
    float *dx = calloc((size_t)(b.off[b.n] * D), sizeof(float));
    CHECK_OK(mer__sft_backward(s, params, grads, dlog, dx));
    const float *ref = tensor(st, "logits0", NULL);
    const double el = rel(logits, ref, b.n * 3);
    CHECK(el > 1e-6 && el < 2e-2);
    double worst = 0.0;
    for (int32_t i = 0; i < nt; i++) {
        char name[128];
        snprintf(name, sizeof name, "grad.%s", pt[i].name);
        const float *g = tensor(st, name, NULL);
        if (g) worst = fmax(worst, rel(grads + pt[i].offset, g, pt[i].numel));
    }
    const double ex = rel(dx, tensor(st, "grad.x", NULL), b.off[b.n] * D);
    CHECK(worst < 5e-2 && ex < 5e-2);
    if (getenv("MER_TEST_VERBOSE"))
        fprintf(stderr, "%s: logits %.2e, grads %.2e, dx %.2e\n", label, el, worst, ex);
    free(dx);
    free(params);
    free(grads);
    mer__sft_free(s);
    mer_safetensors_free(st);
    mer_speech_model_free(m);
}

MER_TEST(speech_train_bf16) { reduced_precision_case(1, 0, "bf16"); }
MER_TEST(speech_train_int8) { reduced_precision_case(0, 1, "int8"); }

/* Layers outside the model, adapted or head layers outside the trained ones, NaN input. */
MER_TEST(speech_train_bad_config) {
    mer_speech_model *m = NULL;
    REQUIRE_OK(mer_speech_model_load(&m, "tests/fixtures/hubert/large", NULL));
    mer__sft *s = NULL;
    mer__sft_config c = CFG(2, 4, 2, 2, MER__SFT_ADAPTER, 4, 0, 0.0f, 0);
    CHECK_ERR(mer__sft_init(&s, m, &c), MER_ERR_INVALID_ARG, "outside the model");
    c = (mer__sft_config)CFG(0, 2, 2, 2, MER__SFT_ADAPTER, 4, 0, 0.0f, 0);
    CHECK_ERR(mer__sft_init(&s, m, &c), MER_ERR_INVALID_ARG, "outside the model");
    c = (mer__sft_config)CFG(2, 2, 3, 2, MER__SFT_ADAPTER, 4, 0, 0.0f, 0);
    CHECK_ERR(mer__sft_init(&s, m, &c), MER_ERR_INVALID_ARG, "adapted layers");
    c = (mer__sft_config)CFG(2, 3, 3, 1, MER__SFT_LORA, 0, 4, 8.0f, 0);
    CHECK_ERR(mer__sft_init(&s, m, &c), MER_ERR_INVALID_ARG, "head layers");
    c = (mer__sft_config)CFG(2, 3, 3, 3, MER__SFT_LORA, 0, 0, 8.0f, 0);
    CHECK_ERR(mer__sft_init(&s, m, &c), MER_ERR_INVALID_ARG, "rank");
    c = (mer__sft_config)CFG(2, 3, 3, 3, MER__SFT_LORA, 0, 4, 8.0f, 0);
    c.dropout = 1.0f;
    CHECK_ERR(mer__sft_init(&s, m, &c), MER_ERR_INVALID_ARG, "dropout");
    c.dropout = 0.0f;
    c.recon_weight = 1.0f;
    CHECK_ERR(mer__sft_init(&s, m, &c), MER_ERR_INVALID_ARG, "span length");
    c.recon_weight = 0.0f;
    c.memo_mb = 16; /* the memo needs adapters (LoRA trains below them) */
    CHECK_ERR(mer__sft_init(&s, m, &c), MER_ERR_INVALID_ARG, "memo");
    CHECK(s == NULL);
    c = (mer__sft_config)CFG(2, 3, 3, 3, MER__SFT_ADAPTER, 4, 0, 0.0f, 0);
    REQUIRE_OK(mer__sft_init(&s, m, &c));
    float *p = calloc((size_t)mer__sft_n_params(s), sizeof(float));
    float x[10 * 48];
    for (int i = 0; i < 10 * 48; i++) x[i] = (float)((i % 7) - 3) * 0.25f;
    x[123] = NAN;
    int64_t off[2] = {0, 10};
    float logits[3];
    CHECK_ERR(mer__sft_forward(s, p, x, off, 1, 1, NULL, logits, NULL), MER_ERR_NUMERIC, "NaN");
    free(p);
    mer__sft_free(s);
    mer_speech_model_free(m);
}

/* ---- mer_finetune_speech on the tiny base checkpoint and 16 EmoDB clips ------------------- */

static const char *ft_labels(const char *dir) {
    static char path[512];
    snprintf(path, sizeof path, "%s/labels.csv", dir);
    FILE *in = fopen("data/emodb/labels.csv", "r"), *out = fopen(path, "w");
    char line[512];
    int n03 = 0, n08 = 0, first = 1;
    while (in && out && fgets(line, sizeof line, in)) {
        if (first) {
            fputs(line, out);
            first = 0;
        } else if (!strncmp(line, "03", 2) && n03 < 8) {
            fputs(line, out);
            n03++;
        } else if (!strncmp(line, "08", 2) && n08 < 8) {
            fputs(line, out);
            n08++;
        }
    }
    if (in) fclose(in);
    if (out) fclose(out);
    return path;
}

static mer_finetune_params ft_params(const char *labels) {
    mer_finetune_params p = mer_finetune_default_params();
    p.model_dir = "tests/fixtures/hubert/base";
    p.labels_csv = labels;
    p.group_col = "speaker";
    p.audio_dir = "data/emodb";
    p.first = 1;
    p.adapt_last = 2;
    p.bottleneck = 8;
    p.train.folds = 2;
    p.train.epochs = 3;
    p.train.batch = 4;
    p.train.seed = 7;
    p.train.plots = 0;
    return p;
}

static void count_epochs(const mer_train_progress *t, void *user) {
    int *calls = user;
    ++*calls;
}
static bool after_first_epoch(void *user) { return *(const int *)user >= 1; }

static int same_file(const char *a, const char *b) {
    char *x = NULL, *y = NULL;
    size_t nx = 0, ny = 0;
    FILE *f = fopen(a, "rb"), *g = fopen(b, "rb");
    int same = 0;
    if (f && g) {
        fseek(f, 0, SEEK_END);
        fseek(g, 0, SEEK_END);
        nx = (size_t)ftell(f);
        ny = (size_t)ftell(g);
        rewind(f);
        rewind(g);
        x = malloc(nx + 1);
        y = malloc(ny + 1);
        same = x && y && nx == ny && fread(x, 1, nx, f) == nx && fread(y, 1, ny, g) == ny &&
               !memcmp(x, y, nx);
    }
    if (f) fclose(f);
    if (g) fclose(g);
    free(x);
    free(y);
    return same;
}

/* p run into dir, stopped after its first epoch, then resumed (after a refused second start
 * without --resume): its fold checkpoints must be bitwise those of ref, the same run made
 * without a stop. */
static void stop_resume_matches(mer_finetune_params p, const char *ref, const char *dir) {
    mer_metrics m;
    char pa[700], pb[700];
    int calls = 0;
    p.train.progress = count_epochs;
    p.train.progress_user_data = &calls;
    p.abort = after_first_epoch;
    p.abort_user_data = &calls;
    CHECK_ERR(mer_finetune_speech(&p, dir, &m), MER_ERR_ABORTED, "stopped by the caller");
    CHECK(calls >= 1); /* an epoch ran; concurrent folds may each finish theirs */
    p.train.progress = NULL;
    p.abort = NULL;
    CHECK_ERR(mer_finetune_speech(&p, dir, &m), MER_ERR_INVALID_ARG, "already exists");
    p.train.resume = 1;
    CHECK_OK(mer_finetune_speech(&p, dir, &m));
    for (int f = 0; f < 2; f++) {
        snprintf(pa, sizeof pa, "%s/fold-%d.safetensors", ref, f);
        snprintf(pb, sizeof pb, "%s/fold-%d.safetensors", dir, f);
        if (!same_file(pa, pb)) mer_test_fail(__FILE__, __LINE__, "%s differs from %s", pb, pa);
    }
}

MER_TEST(speech_finetune_resume_and_bad_input) {
    const char *tmp = mer_test_tmpdir("speech_finetune");
    char base[512], a[600], b[600], c[600], pa[700], pb[700];
    snprintf(base, sizeof base, "%s", tmp);
    const char *labels = ft_labels(base);
    snprintf(a, sizeof a, "%s/a", base);
    snprintf(b, sizeof b, "%s/b", base);
    /* LoRA with dropout and the reconstruction loss: the resume must restore the random draws */
    mer_finetune_params p = ft_params(labels);
    p.method = MER_FINETUNE_LORA;
    p.rank = 4;
    p.lora_dropout = 0.1f;
    p.recon_weight = 0.5f;
    p.mask_prob = 0.2f;
    p.mask_len = 2;
    mer_metrics m;
    REQUIRE_OK(mer_finetune_speech(&p, a, &m));
    CHECK(m.n == 16);
    /* peft's names in the fold checkpoints, and peft's config beside them */
    mer_safetensors *st = NULL;
    snprintf(pa, sizeof pa, "%s/fold-0.safetensors", a);
    if (mer_safetensors_open(&st, pa) == MER_OK) {
        mer_safetensors_entry e;
        CHECK_OK(mer_safetensors_find(st, "base_model.model.encoder.layers.1.attention.out_proj.lora_B.weight", &e));
        CHECK(e.ndim == 2 && e.shape[0] == 32 && e.shape[1] == 4);
        CHECK_OK(mer_safetensors_find(st, "base_model.model.head.weight", &e));
        CHECK_OK(mer_safetensors_find(st, "base_model.model.recon.bias", &e));
        CHECK(mer_safetensors_find(st, "encoder.layers.1.attention.out_proj.lora_B.weight", &e) != MER_OK);
        mer_safetensors_free(st);
    } else {
        mer_test_fail(__FILE__, __LINE__, "%s: %s", pa, mer_last_error());
    }
    snprintf(pa, sizeof pa, "%s/adapter_config.json", a);
    char *cfg = NULL;
    size_t ncfg = 0;
    REQUIRE_OK(mer__read_file(pa, &cfg, &ncfg));
    size_t k = 0; /* without white space */
    for (size_t i = 0; i < ncfg; i++)
        if (!strchr(" \t\r\n", cfg[i])) cfg[k++] = cfg[i];
    cfg[k] = '\0';
    CHECK(strstr(cfg, "\"peft_type\":\"LORA\"") && strstr(cfg, "\"r\":4,") &&
          strstr(cfg, "\"lora_dropout\":0.1,") && strstr(cfg, "\"layers_to_transform\":[0,1]"));
    free(cfg);
    /* a stop after the first epoch, then --resume: the same weights bitwise */
    stop_resume_matches(p, a, b);
    /* The first-layer memo across a stop and --resume: the resumed run rebuilds the memo (each
     * clip computed alone, so the same values) and its fold checkpoints are bitwise those of an
     * uninterrupted run with the same seed and threads (both on run a's cache) */
    {
        char ma[700], mb[700], cache[700];
        mer_finetune_params q = ft_params(labels);
        snprintf(ma, sizeof ma, "%s/memo-a", base);
        snprintf(mb, sizeof mb, "%s/memo-b", base);
        snprintf(cache, sizeof cache, "%s/cache", a);
        q.cache_dir = cache;
        q.memo_mb = 64;
        q.train.epochs = 2;
        CHECK_OK(mer_finetune_speech(&q, ma, &m));
        stop_resume_matches(q, ma, mb);
    }
    /* the run predicts from its cache, and from media as from its cache (bitwise) */
    mer_run *run = NULL;
    CHECK_OK(mer_run_open(&run, a));
    CHECK(run && mer_run_encoder(run) && strstr(mer_run_encoder(run), "method=lora"));
    mer_run_free(run);
    {
        char out[4096], l[700];
        snprintf(l, sizeof l, "%s/list.txt", base);
        REQUIRE(mer_test_write(l, "03a01Fa\n08a01Na\n", 16) == 0);
        int rc = mer_test_run(out, sizeof out, "%s predict --run %s --feature audio=%s/cache --list %s "
                              "--out %s/p1.csv && %s predict --run %s --input data/emodb/flac/03a01Fa.flac "
                              "data/emodb/flac/08a01Na.flac --out %s/p2.csv", mer_test_bin(), a, a, l,
                              base, mer_test_bin(), a, base);
        if (rc) mer_test_fail(__FILE__, __LINE__, "predict: %s", out);
        snprintf(pa, sizeof pa, "%s/p1.csv", base);
        snprintf(pb, sizeof pb, "%s/p2.csv", base);
        if (!rc && !same_file(pa, pb)) mer_test_fail(__FILE__, __LINE__, "%s differs from %s", pb, pa);
    }
    /* extract --adapter: fold 0's head on the adapted pooled feature gives fold 0's prediction */
    {
        mer_speech_adapter *ad = NULL;
        float *f = NULL;
        int32_t nd = 0;
        int64_t sh[MER_MAX_DIMS] = {0};
        REQUIRE_OK(mer_speech_adapter_open(&ad, a, NULL, 0));
        CHECK_OK(mer_speech_adapter_extract(ad, "data/emodb/flac/03a01Fa.flac", 1, &f, &nd, sh));
        mer_speech_adapter_free(ad);
        mer_dataset *ds = NULL;
        mer_modality_spec mod = {"audio", NULL};
        char cdir[700];
        snprintf(cdir, sizeof cdir, "%s/cache", a);
        mod.dir = cdir;
        mer_dataset_params dp = mer_dataset_default_params();
        dp.labels_csv = labels;
        dp.modalities = &mod;
        dp.n_modalities = 1;
        float probs[16 * 7];
        run = NULL;
        CHECK_OK(mer_dataset_load(&ds, &dp));
        CHECK_OK(mer_run_open(&run, a));
        int64_t row = -1;
        for (int64_t i = 0; ds && i < mer_dataset_count(ds); i++)
            if (!strcmp(mer_dataset_name(ds, i), "03a01Fa")) row = i;
        const int32_t C = run ? mer_run_n_classes(run) : 0;
        if (f && nd == 1 && sh[0] == 32 && row >= 0 && C > 1 && C <= 7 &&
            mer__run_predict_fold(run, 0, ds, probs) == MER_OK) {
            mer_safetensors *w = NULL;
            mer_safetensors_entry hw, hb;
            snprintf(pa, sizeof pa, "%s/fold-0.safetensors", a);
            REQUIRE_OK(mer_safetensors_open(&w, pa));
            CHECK_OK(mer_safetensors_find(w, "base_model.model.head.weight", &hw));
            CHECK_OK(mer_safetensors_find(w, "base_model.model.head.bias", &hb));
            double z[7], mx = -1e30, sum = 0.0, worst = 0.0;
            for (int32_t q = 0; q < C; q++) {
                z[q] = ((const float *)hb.data)[q];
                for (int j = 0; j < 32; j++) z[q] += (double)((const float *)hw.data)[q * 32 + j] * f[j];
                if (z[q] > mx) mx = z[q];
            }
            for (int32_t q = 0; q < C; q++) sum += exp(z[q] - mx);
            for (int32_t q = 0; q < C; q++)
                worst = fmax(worst, fabs(exp(z[q] - mx) / sum - probs[row * C + q]));
            mer_safetensors_free(w);
            if (!(worst < 1e-5))
                mer_test_fail(__FILE__, __LINE__, "adapted feature -> head differs from fold 0 by %.3g", worst);
        } else {
            mer_test_fail(__FILE__, __LINE__, "extract --adapter: nd %d dim %lld row %lld: %s", (int)nd,
                          (long long)sh[0], (long long)row, mer_last_error());
        }
        /* the CLI writes the same vector */
        char out[4096];
        float *g = NULL;
        int rc = mer_test_run(out, sizeof out, "%s extract audio --adapter %s --pool mean --out %s/x.npy "
                              "data/emodb/flac/03a01Fa.flac", mer_test_bin(), a, base);
        snprintf(pa, sizeof pa, "%s/x.npy", base);
        if (rc || mer_npy_read(pa, &g, &nd, sh) != MER_OK || nd != 1 || sh[0] != 32 || !f ||
            memcmp(f, g, 32 * sizeof(float)))
            mer_test_fail(__FILE__, __LINE__, "extract audio --adapter: rc %d, %s", rc, out);
        free(g);
        free(f);
        mer_run_free(run);
        mer_dataset_free(ds);
    }
    /* layers outside the model (it has 2) */
    p = ft_params(labels);
    p.adapt_last = 3;
    snprintf(c, sizeof c, "%s/c", base);
    CHECK_ERR(mer_finetune_speech(&p, c, &m), MER_ERR_INVALID_ARG, "outside the model");
    /* a clip name that is a path */
    {
        char bad[700];
        snprintf(bad, sizeof bad, "%s/bad.csv", base);
        REQUIRE(mer_test_write(bad, "name,emotion,speaker\n03a01Fa,happiness,03\n../03a01Nc,neutral,03\n", 64) == 0);
        p = ft_params(bad);
        snprintf(c, sizeof c, "%s/g", base);
        CHECK_ERR(mer_finetune_speech(&p, c, &m), MER_ERR_FORMAT, "bad.csv: row 3");
    }
    /* a cache made from another model */
    p = ft_params(labels);
    p.model_dir = "tests/fixtures/hubert/large";
    snprintf(pa, sizeof pa, "%s/cache", a);
    p.cache_dir = pa;
    snprintf(c, sizeof c, "%s/f", base);
    CHECK_ERR(mer_finetune_speech(&p, c, &m), MER_ERR_INVALID_ARG, "another model or layer");
    /* a cache made for another layer */
    p = ft_params(labels);
    p.first = p.adapt_last = 2;
    snprintf(pa, sizeof pa, "%s/cache", a);
    p.cache_dir = pa;
    snprintf(c, sizeof c, "%s/d", base);
    CHECK_ERR(mer_finetune_speech(&p, c, &m), MER_ERR_INVALID_ARG, "another model or layer");
    /* NaN in a cached activation */
    p = ft_params(labels);
    snprintf(pb, sizeof pb, "%s/cache/03a01Fa.npy", b);
    float bad[2 * 32];
    for (int i = 0; i < 64; i++) bad[i] = 0.5f;
    bad[40] = NAN;
    REQUIRE_OK(mer_npy_write(pb, bad, 2, (int64_t[]){2, 32}));
    snprintf(pb, sizeof pb, "%s/cache", b);
    p.cache_dir = pb;
    snprintf(c, sizeof c, "%s/e", base);
    CHECK_ERR(mer_finetune_speech(&p, c, &m), MER_ERR_NUMERIC, "03a01Fa");
    /* a run whose adapters were made for another checkpoint */
    snprintf(pa, sizeof pa, "%s/config.json", a);
    char *txt = NULL;
    FILE *f = fopen(pa, "rb");
    REQUIRE(f);
    txt = calloc(1, 1 << 16);
    size_t n = fread(txt, 1, (1 << 16) - 1, f);
    fclose(f);
    char *d = strstr(txt, "digest=");
    REQUIRE(d && n > 0);
    d[7] = d[7] == '0' ? '1' : '0';
    REQUIRE(mer_test_write(pa, txt, strlen(txt)) == 0);
    free(txt);
    run = NULL;
    CHECK_ERR(mer_run_open(&run, a), MER_ERR_INVALID_ARG, "another model or config");
    mer_run_free(run);
}
