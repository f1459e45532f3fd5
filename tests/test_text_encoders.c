/*
 * test_text_encoders.c -- the text encoders (bert.c, llama.c, text_encoder.c) against the PyTorch
 * reference tests/parity/text_ref.py through tiny seeded fixtures
 * (tests/fixtures/text/make_text_fixture.py): every hidden state of a padded batch, each
 * architecture and weight dtype; precisions, the MERTools feature, `mer quantize`, bad input.
 */
#include "test.h"

#include "kernels/kernels.h"
#include "models/text_internal.h"

#include <dirent.h>
#include <omp.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#define FX "tests/fixtures/text/"

static float *npy(const char *name, int32_t *nd, int64_t sh[MER_MAX_DIMS]) {
    char p[256];
    snprintf(p, sizeof p, FX "%s", name);
    float *d = NULL;
    if (mer_npy_read(p, &d, nd, sh) != MER_OK) {
        printf("    cannot read %s: %s\n", p, mer_last_error());
        return NULL;
    }
    return d;
}

typedef struct {
    int32_t *ids;
    uint8_t *mask;
    float *hidden;
    int32_t B, T, K, D;
} fixture;

static int load_fixture(const char *name, fixture *f) {
    char p[128];
    int32_t nd;
    int64_t sh[MER_MAX_DIMS], shm[MER_MAX_DIMS], shh[MER_MAX_DIMS];
    memset(f, 0, sizeof *f);
    snprintf(p, sizeof p, "%s_ids.npy", name);
    float *ids = npy(p, &nd, sh);
    snprintf(p, sizeof p, "%s_mask.npy", name);
    float *mask = npy(p, &nd, shm);
    snprintf(p, sizeof p, "%s_hidden.npy", name);
    f->hidden = npy(p, &nd, shh);
    if (!ids || !mask || !f->hidden || nd != 4) {
        free(ids);
        free(mask);
        return 0;
    }
    f->B = (int32_t)sh[0];
    f->T = (int32_t)sh[1];
    f->K = (int32_t)shh[0];
    f->D = (int32_t)shh[3];
    f->ids = malloc(sizeof(int32_t) * f->B * f->T);
    f->mask = malloc((size_t)f->B * f->T);
    for (int i = 0; i < f->B * f->T; i++) {
        f->ids[i] = (int32_t)ids[i];
        f->mask[i] = mask[i] != 0;
    }
    free(ids);
    free(mask);
    return 1;
}

static void free_fixture(fixture *f) {
    free(f->ids);
    free(f->mask);
    free(f->hidden);
}

static mer_text_model *load(const char *name) {
    char p[256];
    snprintf(p, sizeof p, FX "%s", name);
    mer_text_model *m = NULL;
    if (mer_text_model_load(&m, p, NULL) != MER_OK) printf("    load %s: %s\n", p, mer_last_error());
    return m;
}

static double cosine(const float *a, const float *b, int64_t n) {
    double ab = 0, aa = 0, bb = 0;
    for (int64_t i = 0; i < n; i++) {
        ab += (double)a[i] * b[i];
        aa += (double)a[i] * a[i];
        bb += (double)b[i] * b[i];
    }
    return ab / sqrt(aa * bb + 1e-300);
}

/* Every hidden state of the padded batch within 1e-4 of max|ref| (per state). */
static void check_model(const char *name, int threads, mer_text_arch arch) {
    mer_set_threads(threads);
    fixture f;
    REQUIRE(load_fixture(name, &f));
    mer_text_model *m = load(name);
    REQUIRE(m);
    mer_text_info info;
    mer_text_model_info(m, &info);
    CHECK(info.arch == arch);
    CHECK(info.n_layers + 1 == f.K && info.hidden_size == f.D);
    mer_text_state *st = NULL;
    REQUIRE_OK(mer_text_state_init(&st, m, NULL));
    const int64_t per = (int64_t)f.B * f.T * f.D;
    float *out = malloc(sizeof(float) * f.K * per);
    CHECK_OK(mer_text_encode(st, f.ids, f.mask, f.B, f.T, 0, info.n_layers, out));
    for (int k = 0; k < f.K; k++) {
        double mr;
        double md = mer_test_maxdiff(out + k * per, f.hidden + k * per, (size_t)per, &mr);
        if (!(md <= 1e-4 * mr)) printf("    %s state %d: max|diff| %.3g vs max|ref| %.3g\n", name, k, md, mr);
        CHECK(md <= 1e-4 * mr && mr > 0);
    }
    /* a sub-range gives the same states */
    float *two = malloc(sizeof(float) * 2 * per);
    CHECK_OK(mer_text_encode(st, f.ids, f.mask, f.B, f.T, info.n_layers - 1, info.n_layers, two));
    CHECK(memcmp(two, out + (int64_t)(info.n_layers - 1) * per, sizeof(float) * 2 * per) == 0);
    free(two);
    /* one sequence alone gives the batch's values */
    float *one = malloc(sizeof(float) * f.K * f.T * f.D);
    CHECK_OK(mer_text_encode(st, f.ids, f.mask, 1, f.T, 0, info.n_layers, one));
    double mr, md = mer_test_maxdiff(one + (int64_t)(f.K - 1) * f.T * f.D, f.hidden + (int64_t)(f.K - 1) * per,
                                     (size_t)f.T * f.D, &mr);
    CHECK(md <= 1e-4 * mr);
    free(one);
    free(out);
    mer_text_state_free(st);
    mer_text_model_free(m);
    free_fixture(&f);
    mer_set_threads(0);
}

MER_TEST(text_bert_padded_batch) { check_model("tiny_bert", 0, MER_TEXT_BERT); }
MER_TEST(text_bert_one_thread) { check_model("tiny_bert", 1, MER_TEXT_BERT); }
MER_TEST(text_roberta_f16_positions) { check_model("tiny_roberta", 0, MER_TEXT_BERT); }
MER_TEST(text_llama_gqa_llama3_rope) { check_model("tiny_llama", 0, MER_TEXT_LLAMA); }
MER_TEST(text_llama_one_thread) { check_model("tiny_llama", 1, MER_TEXT_LLAMA); }
MER_TEST(text_qwen2_bias_bf16) { check_model("tiny_qwen2", 0, MER_TEXT_LLAMA); }
MER_TEST(text_baichuan7_wpack_rotary) { check_model("tiny_baichuan7", 0, MER_TEXT_BAICHUAN); }
MER_TEST(text_baichuan13_alibi_sharded) { check_model("tiny_baichuan13", 0, MER_TEXT_BAICHUAN); }

MER_TEST(text_baichuan_style_from_files) {
    mer_text_model *m = load("tiny_baichuan13");
    REQUIRE(m);
    mer_text_info info;
    mer_text_model_info(m, &info);
    CHECK(info.alibi == 1);
    mer_text_model_free(m);
    REQUIRE((m = load("tiny_baichuan7")));
    mer_text_model_info(m, &info);
    CHECK(info.alibi == 0);
    mer_text_model_free(m);
    /* the 13B-style config without its modeling file cannot be told apart: an error saying so */
    const char *d = mer_test_tmpdir("text_baichuan_style");
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "cp " FX "tiny_baichuan13/*.json " FX "tiny_baichuan13/*.safetensors %s/", d);
    REQUIRE(system(cmd) == 0);
    CHECK_ERR(mer_text_model_load(&m, d, NULL), MER_ERR_UNSUPPORTED, "position_embedding_type");
    /* the explicit key decides */
    snprintf(cmd, sizeof cmd,
             "sed -i 's/\"model_type\"/\"position_embedding_type\": \"alibi\", \"model_type\"/' %s/config.json", d);
    REQUIRE(system(cmd) == 0);
    CHECK_OK(mer_text_model_load(&m, d, NULL));
    if (m) {
        mer_text_model_info(m, &info);
        CHECK(info.alibi == 1);
    }
    mer_text_model_free(m);
}

/* MERTools feature: sum of the last 4 states, mean over the text tokens (the specials left out),
 * against the same computed from the reference states; bf16 and int8 within cosine 0.999. */
MER_TEST(text_mertools_feature_and_precisions) {
    const char *names[3] = {"tiny_bert", "tiny_llama", "tiny_baichuan13"};
    for (int t = 0; t < 3; t++) {
        fixture f;
        REQUIRE(load_fixture(names[t], &f));
        mer_text_model *m = load(names[t]);
        REQUIRE(m);
        mer_text_state *st = NULL;
        REQUIRE_OK(mer_text_state_init(&st, m, NULL));
        mer_text_params p = mer_text_mertools_params();
        p.skip_lead = 1;
        p.skip_trail = t == 0 ? 1 : 0;
        float *feat = NULL;
        int32_t nd;
        int64_t sh[3];
        /* row 0 of the batch has no padding */
        REQUIRE_OK(mer_text_extract_ids(st, f.ids, f.T, &p, &feat, &nd, sh));
        CHECK(nd == 1 && sh[0] == f.D);
        const int64_t per = (int64_t)f.B * f.T * f.D;
        int n = f.T - p.skip_lead - p.skip_trail;
        double maxd = 0, maxr = 0;
        for (int d = 0; d < f.D; d++) {
            double acc = 0;
            for (int tk = p.skip_lead; tk < p.skip_lead + n; tk++) {
                float s = 0;
                for (int k = f.K - 4; k < f.K; k++) s += f.hidden[k * per + (int64_t)tk * f.D + d];
                acc += s;
            }
            double ref = acc / n;
            maxd = fmax(maxd, fabs(ref - feat[d]));
            maxr = fmax(maxr, fabs(ref));
        }
        if (!(maxd <= 1e-4 * maxr)) printf("    %s mertools: %.3g vs %.3g\n", names[t], maxd, maxr);
        CHECK(maxd <= 1e-4 * maxr);
        const mer_precision precs[2] = {MER_PRECISION_BF16, MER_PRECISION_INT8};
        for (int q = 0; q < 2; q++) {
            p.precision = precs[q];
            float *g = NULL;
            CHECK_OK(mer_text_extract_ids(st, f.ids, f.T, &p, &g, &nd, sh));
            if (g) {
                double c = cosine(feat, g, f.D);
                if (!(c >= 0.999)) printf("    %s precision %d: cosine %.6f\n", names[t], (int)precs[q], c);
                CHECK(c >= 0.999 && c < 1.0 + 1e-9);
                CHECK(memcmp(g, feat, sizeof(float) * f.D) != 0); /* it did run another path */
            }
            free(g);
        }
        /* an empty text gives zeros (MERTools) when pooled */
        p.precision = MER_PRECISION_F32;
        float *z = NULL;
        CHECK_OK(mer_text_extract_ids(st, f.ids, p.skip_lead + p.skip_trail, &p, &z, &nd, sh));
        CHECK(z && nd == 1 && sh[0] == f.D && z[0] == 0 && z[f.D - 1] == 0);
        free(z);
        free(feat);
        mer_text_state_free(st);
        mer_text_model_free(m);
        free_fixture(&f);
    }
}

MER_TEST(text_bert_truncates_long_sequences) {
    mer_text_model *m = load("tiny_bert");
    REQUIRE(m);
    mer_text_state *st = NULL;
    REQUIRE_OK(mer_text_state_init(&st, m, NULL));
    int32_t ids[40];
    for (int i = 0; i < 40; i++) ids[i] = 5 + i;
    ids[0] = 2;
    ids[39] = 3;
    float *out = malloc(sizeof(float) * 4 * 40 * 32);
    CHECK_ERR(mer_text_encode(st, ids, NULL, 1, 40, 0, 3, out), MER_ERR_SHAPE, "positions");
    /* extraction keeps [CLS] + the first 14 text tokens + [SEP] (16 positions) */
    mer_text_params p = mer_text_mertools_params();
    p.skip_lead = p.skip_trail = 1;
    float *a = NULL, *b = NULL;
    int32_t nd;
    int64_t sh[3];
    CHECK_OK(mer_text_extract_ids(st, ids, 40, &p, &a, &nd, sh));
    int32_t cut[16];
    memcpy(cut, ids, 15 * sizeof(int32_t));
    cut[15] = 3;
    CHECK_OK(mer_text_extract_ids(st, cut, 16, &p, &b, &nd, sh));
    CHECK(a && b && memcmp(a, b, sizeof(float) * 32) == 0);
    free(a);
    free(b);
    free(out);
    mer_text_state_free(st);
    mer_text_model_free(m);
}

MER_TEST(text_quantize_roundtrip) {
    const char *names[2] = {"tiny_llama", "tiny_bert"};
    for (int t = 0; t < 2; t++)
        for (int blk = 0; blk < 2; blk++) {
            const int32_t block = blk ? -1 : 32;
            char src[128], dst[512];
            snprintf(src, sizeof src, FX "%s", names[t]);
            snprintf(dst, sizeof dst, "%s/q", mer_test_tmpdir("text_quantize"));
            mer_text_quantize_params qp = mer_text_quantize_default_params();
            CHECK(qp.block == 32 && !qp.progress && !qp.abort);
            qp.block = block;
            CHECK_OK(mer_text_quantize(src, dst, &qp));
            mer_text_model *m = load(names[t]), *q = NULL;
            REQUIRE(m);
            CHECK_OK(mer_text_model_load(&q, dst, NULL));
            if (!q) {
                mer_text_model_free(m);
                continue;
            }
            mer_text_info iq;
            mer_text_model_info(q, &iq);
            CHECK(iq.quantized == block);
            fixture f;
            REQUIRE(load_fixture(names[t], &f));
            mer_text_state *s1 = NULL, *s2 = NULL;
            REQUIRE_OK(mer_text_state_init(&s1, m, NULL));
            REQUIRE_OK(mer_text_state_init(&s2, q, NULL));
            mer_text_params p = mer_text_mertools_params();
            float *a = NULL, *b = NULL;
            int32_t nd;
            int64_t sh[3];
            CHECK_OK(mer_text_extract_ids(s1, f.ids, f.T, &p, &a, &nd, sh));
            CHECK_OK(mer_text_extract_ids(s2, f.ids, f.T, &p, &b, &nd, sh));
            if (a && b) {
                double c = cosine(a, b, f.D);
                printf("    %s int8 %s: cosine %.6f\n", names[t], blk ? "per-row" : "block32", c);
                CHECK(c >= 0.999);
            }
            /* quantizing an int8 checkpoint again is refused; so is writing over the input */
            char dst2[600];
            snprintf(dst2, sizeof dst2, "%s2", dst);
            CHECK_ERR(mer_text_quantize(dst, dst2, NULL), MER_ERR_INVALID_ARG, "already int8");
            CHECK_ERR(mer_text_quantize(src, src, NULL), MER_ERR_INVALID_ARG, "input");
            free(a);
            free(b);
            mer_text_state_free(s1);
            mer_text_state_free(s2);
            mer_text_model_free(m);
            mer_text_model_free(q);
            free_fixture(&f);
        }
}

/* Loader, state and quantize params: precision packed at load, the state's callbacks polled
 * per layer, an extract's abort reaching the layers, a stopped quantize writing nothing. */
MER_TEST(text_params_abort_progress) {
    mer_text_model *m = NULL;
    mer_text_model_params mp = mer_text_model_default_params();
    CHECK(mp.precision == MER_PRECISION_F32);
    mp.precision = (mer_precision)7;
    CHECK_ERR(mer_text_model_load(&m, FX "tiny_llama", &mp), MER_ERR_INVALID_ARG, "precision");
    CHECK(m == NULL);
    mp.precision = MER_PRECISION_BF16;
    REQUIRE_OK(mer_text_model_load(&m, FX "tiny_llama", &mp));
    CHECK(m->packed_ready[0] == 1 && m->packed_ready[1] == 0); /* packed at load, not on first use */
    mer_text_info info;
    mer_text_model_info(m, &info);
    const int32_t L = info.n_layers, D = info.hidden_size, T = 6;
    REQUIRE(L >= 3);
    const int32_t ids[6] = {1, 5, 9, 12, 7, 2};
    const size_t sz = (size_t)(L + 1) * T * D;
    float *ref = malloc(sz * sizeof(float)), *y = malloc(sz * sizeof(float));
    REQUIRE(ref && y);
    mer_text_state_params sp = mer_text_state_default_params();
    CHECK(sp.precision == MER_PRECISION_F32 && sp.n_threads == 0 && !sp.progress && !sp.abort);
    sp.n_threads = 1;
    mer_text_state *plain = NULL, *st = NULL;
    REQUIRE_OK(mer_text_state_init(&plain, m, &sp));
    REQUIRE_OK(mer_text_encode(plain, ids, NULL, 1, T, 0, L, ref));
    mer_test_calls cc = {0};
    sp.progress = mer_test_progress;
    sp.progress_user_data = &cc;
    sp.abort = mer_test_abort;
    sp.abort_user_data = &cc;
    REQUIRE_OK(mer_text_state_init(&st, m, &sp));
    CHECK_OK(mer_text_encode(st, ids, NULL, 1, T, 0, L, y));
    CHECK(cc.progress_calls == L && cc.last_done == L && cc.last_total == L);
    CHECK(memcmp(y, ref, sz * sizeof(float)) == 0);
    /* stop before the second layer: one layer reported, then MER_ERR_ABORTED */
    memset(&cc, 0, sizeof cc);
    cc.stop_at = 2;
    CHECK_ERR(mer_text_encode(st, ids, NULL, 1, T, 0, L, y), MER_ERR_ABORTED, "stopped by the caller");
    CHECK(cc.progress_calls == 1 && cc.polls == 2);
    /* the state is whole afterwards */
    cc.stop_at = 0;
    CHECK_OK(mer_text_encode(st, ids, NULL, 1, T, 0, L, y));
    CHECK(memcmp(y, ref, sz * sizeof(float)) == 0);
    /* extract: its own abort, polled before each layer; progress once per sequence; its
     * precision for this call only */
    mer_text_params ep = mer_text_mertools_params();
    mer_test_calls ec = {0};
    ep.progress = mer_test_progress;
    ep.progress_user_data = &ec;
    ep.abort = mer_test_abort;
    ep.abort_user_data = &ec;
    ep.precision = MER_PRECISION_BF16;
    float *feat = NULL;
    int32_t nd = 0;
    int64_t shape[3];
    CHECK_OK(mer_text_extract_ids(plain, ids, T, &ep, &feat, &nd, shape));
    CHECK(ec.progress_calls == 1 && ec.last_done == 1 && ec.last_total == 1 && nd == 1 && shape[0] == D);
    free(feat);
    feat = NULL;
    memset(&ec, 0, sizeof ec);
    ec.stop_at = L; /* before the last layer */
    CHECK_ERR(mer_text_extract_ids(plain, ids, T, &ep, &feat, &nd, shape), MER_ERR_ABORTED, "stopped by the caller");
    CHECK(feat == NULL && ec.progress_calls == 0 && ec.polls == L);
    CHECK_OK(mer_text_encode(plain, ids, NULL, 1, T, 0, L, y)); /* still float32 */
    CHECK(memcmp(y, ref, sz * sizeof(float)) == 0);
    /* quantize: stopped before its second tensor, nothing left in the output directory */
    char dst[512];
    snprintf(dst, sizeof dst, "%s/q", mer_test_tmpdir("text_params"));
    mer_text_quantize_params qp = mer_text_quantize_default_params();
    mer_test_calls qc = {0};
    qc.stop_at = 2;
    qp.progress = mer_test_progress;
    qp.progress_user_data = &qc;
    qp.abort = mer_test_abort;
    qp.abort_user_data = &qc;
    CHECK_ERR(mer_text_quantize(FX "tiny_llama", dst, &qp), MER_ERR_ABORTED, "quantize: stopped by the caller");
    CHECK(qc.progress_calls == 1 && qc.polls == 2);
    DIR *dd = opendir(dst);
    int entries = 0;
    for (struct dirent *e; dd && (e = readdir(dd));) entries += e->d_name[0] != '.' || strlen(e->d_name) > 2;
    if (dd) closedir(dd);
    CHECK(dd && entries == 0);
    /* bad state params */
    mer_text_state *bad = NULL;
    sp.precision = (mer_precision)9;
    CHECK_ERR(mer_text_state_init(&bad, m, &sp), MER_ERR_INVALID_ARG, "precision");
    CHECK(bad == NULL);
    mer_text_state_free(st);
    mer_text_state_free(plain);
    mer_text_model_free(m);
    free(ref);
    free(y);
}

/* ---- per-call thread counts ---------------------------------------------------------------- */

/* The threads a call really used: the distinct threads mer__parallel_for's hook saw and their
 * largest team, and the OpenMP count the GEMM backend reads on the calling thread
 * (omp_get_max_threads, sampled by the progress callback between layers). */
typedef struct {
    pthread_mutex_t mu;
    pthread_t seen[16];
    int n_seen, max_team, omp_max;
} thread_seen;

static void seen_reset(thread_seen *t) {
    t->n_seen = t->max_team = t->omp_max = 0;
}

static void seen_hook(int part, int team, void *u) {
    thread_seen *t = u;
    pthread_mutex_lock(&t->mu);
    int known = 0;
    for (int i = 0; i < t->n_seen; i++) known |= pthread_equal(t->seen[i], pthread_self());
    if (!known && t->n_seen < 16) t->seen[t->n_seen++] = pthread_self();
    if (team > t->max_team) t->max_team = team;
    pthread_mutex_unlock(&t->mu);
}

static void seen_progress(int64_t done, int64_t total, void *u) {
    thread_seen *t = u;
    const int m = omp_get_max_threads();
    if (m > t->omp_max) t->omp_max = m;
}

/* n_threads of a state or a call is the number of threads its kernels run on, whatever the
 * process-wide count (set to the other value here), and the calling thread's count is restored
 * afterwards: text encode (state), text extract (call), face detection (state). */
MER_TEST(threads_per_call_are_used) {
    static thread_seen ts = {.mu = PTHREAD_MUTEX_INITIALIZER};
    mer_text_model *m = load("tiny_llama");
    REQUIRE(m);
    mer_text_info info;
    mer_text_model_info(m, &info);
    mer_faces *fm = NULL;
    mer_faces_model_params fmp = mer_faces_model_default_params();
    fmp.expressions = 0;
    REQUIRE_OK(mer_faces_load(&fm, "models/face-api", &fmp));
    mer_image img = {0};
    REQUIRE_OK(mer_image_load("tests/fixtures/image/astronaut.png", &img));
    enum { T = 64 };
    int32_t ids[T];
    for (int i = 0; i < T; i++) ids[i] = 1 + (i * 7) % (info.vocab_size - 1);
    float *out = malloc(sizeof(float) * (size_t)(info.n_layers + 1) * T * info.hidden_size);
    REQUIRE(out);
    mer__parallel_set_hook(seen_hook, &ts);
    for (int want = 1; want <= 2; want++) {
        const int other = 3 - want;
        mer_set_threads(other);
        mer_text_state_params sp = mer_text_state_default_params();
        sp.n_threads = want;
        sp.progress = seen_progress;
        sp.progress_user_data = &ts;
        mer_text_state *st = NULL;
        REQUIRE_OK(mer_text_state_init(&st, m, &sp));
        seen_reset(&ts);
        CHECK_OK(mer_text_encode(st, ids, NULL, 1, T, 0, info.n_layers, out));
        if (ts.n_seen != want || ts.max_team != want || ts.omp_max != want)
            printf("    encode, n_threads %d: %d threads, team %d, OpenMP %d\n", want, ts.n_seen, ts.max_team, ts.omp_max);
        CHECK(ts.n_seen == want && ts.max_team == want && ts.omp_max == want);
        CHECK(omp_get_max_threads() == other);
        mer_text_state_free(st);
        /* extract: the call's count, not the state's */
        sp = mer_text_state_default_params();
        sp.n_threads = other;
        REQUIRE_OK(mer_text_state_init(&st, m, &sp));
        mer_text_params ep = mer_text_mertools_params();
        ep.n_threads = want;
        float *feat = NULL;
        int32_t nd;
        int64_t sh[3];
        seen_reset(&ts);
        CHECK_OK(mer_text_extract_ids(st, ids, T, &ep, &feat, &nd, sh));
        CHECK(ts.n_seen == want && ts.max_team == want);
        free(feat);
        mer_text_state_free(st);
        /* faces */
        mer_faces_state_params fp = mer_faces_state_default_params();
        fp.n_threads = want;
        mer_faces_state *fst = NULL;
        REQUIRE_OK(mer_faces_state_init(&fst, &fp));
        mer_faces_params dp = mer_faces_default_params();
        dp.input_size = 160; /* small: only the threads matter here */
        dp.expressions = 0;
        mer_face *faces = NULL;
        int32_t n = 0;
        seen_reset(&ts);
        CHECK_OK(mer_faces_detect(fm, fst, &img, &dp, &faces, &n));
        CHECK(ts.n_seen == want && ts.max_team == want);
        CHECK(omp_get_max_threads() == other);
        free(faces);
        mer_faces_state_free(fst);
    }
    mer__parallel_set_hook(NULL, NULL);
    mer_set_threads(0);
    free(out);
    mer_image_free(&img);
    mer_faces_free(fm);
    mer_text_model_free(m);
}

MER_TEST(text_bad_input) {
    mer_text_model *m = NULL;
    CHECK_ERR(mer_text_model_load(&m, FX "nonexistent", NULL), MER_ERR_IO, "config.json");
    const char *d = mer_test_tmpdir("text_bad_input");
    char p[512], cmd[1200];
    /* wrong model_type */
    snprintf(p, sizeof p, "%s/config.json", d);
    const char *cfg = "{\"model_type\": \"gpt2\"}";
    REQUIRE(mer_test_write(p, cfg, strlen(cfg)) == 0);
    CHECK_ERR(mer_text_model_load(&m, d, NULL), MER_ERR_UNSUPPORTED, "gpt2");
    /* a config that does not match the tensors names the tensor */
    snprintf(cmd, sizeof cmd, "cp " FX "tiny_llama/model.safetensors %s/ && sed 's/\"hidden_size\": 32/\"hidden_size\": 64/' " FX "tiny_llama/config.json > %s/config.json", d, d);
    REQUIRE(system(cmd) == 0);
    CHECK_ERR(mer_text_model_load(&m, d, NULL), MER_ERR_SHAPE, "embed_tokens");
    snprintf(cmd, sizeof cmd, "sed 's/\"num_hidden_layers\": 3/\"num_hidden_layers\": 2/' " FX "tiny_llama/config.json > %s/config.json", d);
    REQUIRE(system(cmd) == 0);
    CHECK_ERR(mer_text_model_load(&m, d, NULL), MER_ERR_SHAPE, "num_hidden_layers");
    snprintf(cmd, sizeof cmd, "sed 's/\"num_hidden_layers\": 3/\"num_hidden_layers\": 4/' " FX "tiny_llama/config.json > %s/config.json", d);
    REQUIRE(system(cmd) == 0);
    CHECK_ERR(mer_text_model_load(&m, d, NULL), MER_ERR_NOT_FOUND, "layers.3");
    /* ids outside the vocabulary, empty batches, bad layer ranges */
    REQUIRE((m = load("tiny_llama")));
    mer_text_state *st = NULL;
    REQUIRE_OK(mer_text_state_init(&st, m, NULL));
    int32_t ids[3] = {1, 60, 2};
    float out[4 * 3 * 32];
    CHECK_ERR(mer_text_encode(st, ids, NULL, 1, 3, 0, 3, out), MER_ERR_INVALID_ARG, "vocabulary");
    ids[1] = -1;
    CHECK_ERR(mer_text_encode(st, ids, NULL, 1, 3, 0, 3, out), MER_ERR_INVALID_ARG, "vocabulary");
    ids[1] = 5;
    CHECK_ERR(mer_text_encode(st, ids, NULL, 1, 0, 0, 3, out), MER_ERR_SHAPE, "empty");
    CHECK_ERR(mer_text_encode(st, ids, NULL, 1, 3, 0, 4, out), MER_ERR_INVALID_ARG, "0..3");
    uint8_t mask[3] = {0, 0, 0};
    CHECK_ERR(mer_text_encode(st, ids, mask, 1, 3, 0, 3, out), MER_ERR_SHAPE, "no real token");
    CHECK_ERR(mer_text_state_set_precision(st, (mer_precision)7), MER_ERR_INVALID_ARG, "precision");
    mer_text_state_free(st);
    mer_text_model_free(m);
    mer_text_model_free(NULL);
    mer_text_state_free(NULL);
}

/* ---- mer extract text / mer quantize (CLI) -------------------------------------------------- */

MER_TEST(text_cli_extract_mertools) {
    const char *d = mer_test_tmpdir("text_cli_extract");
    char csv[512], out[512], buf[8192];
    snprintf(csv, sizeof csv, "%s/t.csv", d);
    snprintf(out, sizeof out, "%s/feats", d);
    const char *rows = "name,chinese,english\n"
                       "clip_a,今天天气真好,\n"
                       "clip_b,我很高兴！,\n"
                       "clip_empty,,\n"
                       "clip_long,今天天气真好今天天气真好今天天气真好,\n";
    REQUIRE(mer_test_write(csv, rows, strlen(rows)) == 0);
    int rc = mer_test_run(buf, sizeof buf, "%s extract text --model " FX "tiny_bert --csv %s --preset mertools --out %s",
                          mer_test_bin(), csv, out);
    if (rc != 0) printf("%s\n", buf);
    CHECK(rc == 0);
    CHECK(strstr(buf, "positions") != NULL); /* the long row was cut, with a warning */
    /* the file equals the library call on the tokenizer's ids without [CLS]/[SEP] */
    mer_text_model *m = load("tiny_bert");
    mer_tokenizer *tok = NULL;
    REQUIRE(m);
    REQUIRE_OK(mer_tokenizer_load(&tok, FX "tiny_bert"));
    int32_t *ids = NULL;
    int64_t n = 0;
    const char *txt = "今天天气真好";
    REQUIRE_OK(mer_tokenizer_encode(tok, txt, strlen(txt), 1, &ids, &n));
    const int32_t want[8] = {2, 5, 6, 6, 7, 8, 9, 3};
    CHECK(n == 8 && !memcmp(ids, want, sizeof want));
    mer_text_state *st = NULL;
    REQUIRE_OK(mer_text_state_init(&st, m, NULL));
    mer_text_params p = mer_text_mertools_params();
    p.skip_lead = p.skip_trail = 1;
    float *ref = NULL;
    int32_t nd;
    int64_t sh[3];
    REQUIRE_OK(mer_text_extract_ids(st, ids, n, &p, &ref, &nd, sh));
    char f[600];
    snprintf(f, sizeof f, "%s/clip_a.npy", out);
    float *got = NULL;
    int64_t gsh[MER_MAX_DIMS];
    REQUIRE_OK(mer_npy_read(f, &got, &nd, gsh));
    CHECK(nd == 1 && gsh[0] == 32 && !memcmp(got, ref, 32 * sizeof(float)));
    free(got);
    snprintf(f, sizeof f, "%s/clip_empty.npy", out);
    REQUIRE_OK(mer_npy_read(f, &got, &nd, gsh));
    CHECK(nd == 1 && gsh[0] == 32 && got[0] == 0 && got[31] == 0);
    free(got);
    /* recipe.json beside the features extracts the same feature again */
    {
        char rp[600], *recipe = calloc(1, 65536);
        snprintf(rp, sizeof rp, "%s/recipe.json", out);
        FILE *fr = fopen(rp, "rb");
        CHECK(fr != NULL);
        if (fr) {
            size_t nr = fread(recipe, 1, 65535, fr);
            fclose(fr);
            CHECK(nr > 0 && strstr(recipe, "\"combine\": \"sum\""));
            float *again = NULL;
            int32_t nd2;
            int64_t sh2[3];
            CHECK_OK(mer_text_recipe_extract(recipe, txt, &again, &nd2, sh2));
            CHECK(again && nd2 == 1 && sh2[0] == 32 && !memcmp(again, ref, 32 * sizeof(float)));
            free(again);
        }
        free(recipe);
    }
    /* resumable: a second run skips all four */
    rc = mer_test_run(buf, sizeof buf, "%s extract text --model " FX "tiny_bert --csv %s --preset mertools --out %s",
                      mer_test_bin(), csv, out);
    CHECK(rc == 0 && strstr(buf, "0 written, 4 skipped"));
    /* int8 and bf16 stay within cosine 0.999 of f32 */
    const char *precs[2] = {"int8", "bf16"};
    for (int q = 0; q < 2; q++) {
        rc = mer_test_run(buf, sizeof buf, "%s extract text --model " FX "tiny_bert --csv %s --preset mertools --precision %s --out %s/%s",
                          mer_test_bin(), csv, precs[q], d, precs[q]);
        CHECK(rc == 0);
        snprintf(f, sizeof f, "%s/%s/clip_a.npy", d, precs[q]);
        got = NULL;
        CHECK_OK(mer_npy_read(f, &got, &nd, gsh));
        if (got) CHECK(cosine(got, ref, 32) >= 0.999);
        free(got);
    }
    free(ref);
    free(ids);
    mer_text_state_free(st);
    mer_tokenizer_free(tok);
    mer_text_model_free(m);
}

MER_TEST(text_cli_bad_input) {
    const char *d = mer_test_tmpdir("text_cli_bad");
    char csv[512], buf[8192];
    snprintf(csv, sizeof csv, "%s/t.csv", d);
    const char *rows = "name,text\nok1,今天\n../evil,今天\nok1,很好\n";
    REQUIRE(mer_test_write(csv, rows, strlen(rows)) == 0);
    /* the named column is missing: one line naming the file, the column and the columns there */
    int rc = mer_test_run(buf, sizeof buf, "%s extract text --model " FX "tiny_bert --csv %s --out %s/o", mer_test_bin(), csv, d);
    CHECK(rc == 1 && strstr(buf, "no column 'chinese'") && strstr(buf, "name, text"));
    /* a name that is a path and a repeated name fail their rows only */
    rc = mer_test_run(buf, sizeof buf, "%s extract text --model " FX "tiny_bert --csv %s --text-col text --out %s/o",
                      mer_test_bin(), csv, d);
    CHECK(rc == 1 && strstr(buf, "row 3: name '../evil'") && strstr(buf, "a name is not a path") &&
          strstr(buf, "appears twice"));
    char f[600];
    snprintf(f, sizeof f, "%s/o/ok1.npy", d);
    CHECK(access(f, F_OK) == 0);
    snprintf(f, sizeof f, "%s/evil.npy", d);
    CHECK(access(f, F_OK) != 0);
    /* an output that would replace the transcript CSV itself is refused, the CSV kept */
    char csv2[600], dir2[600];
    snprintf(dir2, sizeof dir2, "%s/o3", d);
    REQUIRE(mkdir(dir2, 0777) == 0);
    snprintf(csv2, sizeof csv2, "%s/clip.npy", dir2);
    const char *rows2 = "name,text\nclip,今天\n";
    REQUIRE(mer_test_write(csv2, rows2, strlen(rows2)) == 0);
    rc = mer_test_run(buf, sizeof buf, "%s extract text --model " FX "tiny_bert --csv %s --text-col text --overwrite --out %s",
                      mer_test_bin(), csv2, dir2);
    CHECK(rc == 1 && strstr(buf, "clip.npy"));
    FILE *cf = fopen(csv2, "rb");
    char head[16] = {0};
    CHECK(cf && fread(head, 1, 9, cf) == 9 && !memcmp(head, "name,text", 9));
    if (cf) fclose(cf);
    /* a positional argument is not an input here */
    rc = mer_test_run(buf, sizeof buf, "%s extract text --model " FX "tiny_bert --csv %s a.txt --out %s/o", mer_test_bin(),
                      csv, d);
    CHECK(rc == 2 && strstr(buf, "a.txt"));
    /* a missing model directory or tokenizer */
    rc = mer_test_run(buf, sizeof buf, "%s extract text --model %s/none --csv %s --text-col text --out %s/o", mer_test_bin(), d,
                      csv, d);
    CHECK(rc == 1 && strstr(buf, "/none: no such file or directory")); /* mer_model_resolve's line */
    rc = mer_test_run(buf, sizeof buf, "%s extract text --model %s --csv %s --text-col text --out %s/o", mer_test_bin(), d,
                      csv, d);
    CHECK(rc == 1 && strstr(buf, "config.json")); /* a directory without a checkpoint */
    rc = mer_test_run(buf, sizeof buf, "%s extract text --model " FX "tiny_llama --csv %s --text-col text --out %s/o2",
                      mer_test_bin(), csv, d);
    CHECK(rc == 1);
    rc = mer_test_run(buf, sizeof buf, "%s extract text --model " FX "tiny_bert --csv %s --precision fp8 --out %s/o",
                      mer_test_bin(), csv, d);
    CHECK(rc == 2 && strstr(buf, "--precision"));
    /* mer quantize: usage and a refused output */
    rc = mer_test_run(buf, sizeof buf, "%s quantize " FX "tiny_bert", mer_test_bin());
    CHECK(rc == 2 && strstr(buf, "--out"));
    rc = mer_test_run(buf, sizeof buf, "%s quantize " FX "tiny_bert --out %s/q", mer_test_bin(), d);
    CHECK(rc == 0);
    snprintf(f, sizeof f, "%s/q/vocab.txt", d);
    CHECK(access(f, F_OK) == 0);
    rc = mer_test_run(buf, sizeof buf, "%s extract text --model %s/q --csv %s --text-col text --preset mertools --out %s/oq",
                      mer_test_bin(), d, csv, d);
    CHECK(rc == 1 && strstr(buf, "1 written"));
}

/* `mer analyze --text-model RUN`: a run trained on `mer extract text` features (with their recipe)
 * replaces the word lists; the transcript goes through the recipe's encoder and the run. */
MER_TEST(text_analyze_with_text_run) {
    const char *d = mer_test_tmpdir("text_analyze_run");
    char buf[16384];
    const char *bin = mer_test_bin();
    REQUIRE(mer_test_run(NULL, 0,
                         "set -e; printf 'name,chinese,emotion\\n"
                         "a1,今天天气真好,happy\\na2,我很高兴,happy\\na3,太好了,happy\\na4,真开心,happy\\n"
                         "b1,我很难过,sad\\nb2,真伤心,sad\\nb3,我想哭,sad\\nb4,心里很痛,sad\\n' > %s/t.csv",
                         d) == 0);
    REQUIRE(mer_test_run(buf, sizeof buf, "%s extract text --model " FX "tiny_bert --csv %s/t.csv --preset mertools --out %s/feat",
                         bin, d, d) == 0);
    REQUIRE(mer_test_run(buf, sizeof buf,
                         "%s train --labels %s/t.csv --feature text=%s/feat --recipe %s/feat/recipe.json --folds 2 --epochs 3 "
                         "--hidden 8 --seed 1 --threads 1 --out %s/run",
                         bin, d, d, d, d) == 0);
    const char *clip = "data/emodb/flac/03a01Fa.flac";
    static char js[16384], js2[16384];
    int rc = mer_test_run(js, sizeof js, "%s analyze %s --text 我很高兴 --text-model %s/run --weights audio=0 --json 2>/dev/null",
                          bin, clip, d);
    CHECK(rc == 0);
    CHECK(strstr(js, "\"method\":\t\"trained text run\"") && strstr(js, "/run\"") && strstr(js, "\"native\"") &&
          strstr(js, "\"happy\""));
    /* the text takes part in the fusion (it is the only modality here) */
    const char *fu = strstr(js, "\"modalities\":\t[\"text\"]");
    CHECK(fu != NULL);
    /* a different transcript gives a different distribution: the text flows through the run */
    CHECK(mer_test_run(js2, sizeof js2, "%s analyze %s --text 我想哭 --text-model %s/run --weights audio=0 --json 2>/dev/null", bin,
                       clip, d) == 0);
    const char *t1 = strstr(js, "\"native\""), *t2 = strstr(js2, "\"native\"");
    CHECK(t1 && t2 && strncmp(t1, t2, 80) != 0);
    /* the text run is named in the plain output */
    CHECK(mer_test_run(buf, sizeof buf, "%s analyze %s --text 我很高兴 --text-model %s/run --weights audio=0", bin, clip, d) == 0);
    CHECK(strstr(buf, "text (run)") && strstr(buf, "text run ("));
    /* a speech run is not a text run; --text-model without --text is a usage error */
    rc = mer_test_run(buf, sizeof buf, "%s analyze %s --text hi --text-model models/emodb-acoustic --weights audio=0", bin, clip);
    CHECK(rc == 1 && strstr(buf, "not a text run"));
    rc = mer_test_run(buf, sizeof buf, "%s analyze %s --text-model %s/run", bin, clip, d);
    CHECK(rc == 2 && strstr(buf, "--text-model needs --text"));
}

/* ---- the packed products the text forwards use (src/kernels/packed.c) -------------------- */

typedef struct {
    const float *y;
    int64_t ldy, n;
    float *snap;   /* rows as done saw them */
    int32_t *seen; /* times each row was handed over */
} rows_seen;

static void note_rows(void *u, int64_t r0, int64_t r1, int t) {
    (void)t;
    rows_seen *j = u;
    for (int64_t r = r0; r < r1; r++) {
        __atomic_fetch_add(&j->seen[r], 1, __ATOMIC_RELAXED);
        memcpy(j->snap + r * j->n, j->y + r * j->ldy, sizeof(float) * (size_t)j->n);
    }
}

/* A q | k | v matrix made by mer__packed_concat gives the bits of its three parts, and
 * mer__packed_linear_rows the bits of mer_packed_linear, handing over every row once, finished,
 * at 1 and 2 threads, for every packed type (and int8 with 7-bit weights, checked against a
 * double-precision reference that quantises independently), rows around the 192-row blocks. */
MER_TEST(text_packed_concat_and_row_blocks) {
    const int64_t n[3] = {32, 48, 21}, N = 101, k = 70;
    const int64_t ms[3] = {5, 193, 400};
    uint64_t seed = 7;
    float *w = malloc(sizeof(float) * N * k), *b = malloc(sizeof(float) * N);
    float *x = malloc(sizeof(float) * 400 * k);
    float *y1 = malloc(sizeof(float) * 400 * (N + 3)), *y2 = malloc(sizeof(float) * 400 * (N + 3));
    float *snap = malloc(sizeof(float) * 400 * N);
    int32_t *seen = malloc(sizeof(int32_t) * 400);
    REQUIRE(w && b && x && y1 && y2 && snap && seen);
    for (int64_t i = 0; i < N * k; i++) w[i] = (float)((seed = seed * 6364136223846793005ull + 1442695040888963407ull) >> 40) / (1 << 24) - 0.5f;
    for (int64_t i = 0; i < 400 * k; i++) x[i] = (float)((seed = seed * 6364136223846793005ull + 1442695040888963407ull) >> 40) / (1 << 24) - 0.5f;
    for (int64_t i = 0; i < N; i++) b[i] = 0.01f * (float)i;
    const int saved = mer_get_threads();
    for (int type = 0; type < 4; type++) { /* 3: int8 with 7-bit weights */
        mer_packed *part[3] = {NULL, NULL, NULL}, *cat = NULL;
        for (int i = 0, r0 = 0; i < 3; r0 += (int)n[i], i++) { /* the middle part has no bias */
            const float *bi = i == 1 ? NULL : b + r0;
            if (type == 3) REQUIRE_OK(mer__packed_init_w7(&part[i], w + r0 * k, MER_DTYPE_F32, bi, n[i], k));
            else REQUIRE_OK(mer_packed_init(&part[i], w + r0 * k, MER_DTYPE_F32, bi, n[i], k, (mer_pack_type)type));
        }
        REQUIRE_OK(mer__packed_concat(&cat, part, 3));
        CHECK(mer_packed_n(cat) == N && mer_packed_k(cat) == k);
        mer_packed *bad[2] = {part[2], part[0]}; /* 21 outputs are not whole panels */
        mer_packed *tmp = NULL;
        CHECK(mer__packed_concat(&tmp, bad, 2) == MER_ERR_UNSUPPORTED && tmp == NULL);
        mer_clear_error();
        for (int mi = 0; mi < 3; mi++) {
            const int64_t m = ms[mi], ld = N + 3;
            for (int th = 1; th <= 2; th++) {
                mer_set_threads(th);
                for (int64_t i = 0; i < m * ld; i++) y1[i] = y2[i] = 0.5f;
                for (int i = 0, c0 = 0; i < 3; c0 += (int)n[i], i++)
                    CHECK_OK(mer_packed_linear(y1 + c0, ld, x, k, m, part[i], 1, MER_EPI_GELU));
                CHECK_OK(mer_packed_linear(y2, ld, x, k, m, cat, 1, MER_EPI_GELU));
                CHECK(memcmp(y1, y2, sizeof(float) * (size_t)(m * ld)) == 0);
                for (int64_t i = 0; i < m * ld; i++) y2[i] = 0.5f;
                memset(seen, 0, sizeof(int32_t) * 400);
                rows_seen rs = {y2, ld, N, snap, seen};
                CHECK_OK(mer__packed_linear_rows(y2, ld, x, k, m, cat, 1, MER_EPI_GELU, note_rows, &rs));
                CHECK(memcmp(y1, y2, sizeof(float) * (size_t)(m * ld)) == 0);
                int once = 1, finished = 1;
                for (int64_t r = 0; r < m; r++) {
                    once &= seen[r] == 1;
                    finished &= memcmp(snap + r * N, y1 + r * ld, sizeof(float) * (size_t)N) == 0;
                }
                if (!once || !finished) printf("    type %d, %lld rows, %d threads: once %d finished %d\n", type, (long long)m, th, once, finished);
                CHECK(once && finished);
                if (type == 3) { /* gelu(0.5 + s_x s_w sum q_x q_w + b), q_w in [-63, 63]; with VNNI
                                  * 8-bit weights and the u8 activation form (kernels.h) */
                    const int w7 = mer__packed_i8_w7(cat), u8 = mer__packed_i8_u8(cat);
                    const float wl = w7 ? 63.0f : 127.0f;
                    CHECK(w7 != u8);
                    double md = 0, mr = 0;
                    for (int64_t r = 0; r < m; r++) {
                        float ax = 0, mn = 0, mx = 0;
                        for (int64_t q = 0; q < k; q++) {
                            ax = fmaxf(ax, fabsf(x[r * k + q]));
                            mn = fminf(mn, x[r * k + q]);
                            mx = fmaxf(mx, x[r * k + q]);
                        }
                        float sx = u8 ? (mx > mn ? (mx - mn) / 255.0f : 1.0f) : ax > 0 ? ax / 127.0f : 1.0f;
                        long z = u8 ? lrintf(-mn * (1.0f / sx)) : 0;
                        for (int64_t c = 0; c < N; c++) {
                            float aw = 0;
                            for (int64_t q = 0; q < k; q++) aw = fmaxf(aw, fabsf(w[c * k + q]));
                            float sw = aw > 0 ? aw / wl : 1.0f;
                            double acc = 0;
                            for (int64_t q = 0; q < k; q++)
                                acc += (u8 ? fmax(0, fmin(255, (double)(lrintf(x[r * k + q] * (1.0f / sx)) + z))) - (double)z
                                           : fmax(-127, fmin(127, (double)lrintf(x[r * k + q] * (1.0f / sx))))) *
                                       fmax(-wl, fmin(wl, (double)lrintf(w[c * k + q] / sw)));
                            double v = 0.5 + (double)sx * sw * acc + (c >= 32 && c < 80 ? 0 : b[c]);
                            v = 0.5 * v * (1.0 + erf(v / sqrt(2.0)));
                            md = fmax(md, fabs(v - y2[r * ld + c]));
                            mr = fmax(mr, fabs(v));
                        }
                    }
                    if (!(md <= 1e-5 * mr)) printf("    int8 w7 %lld rows: max|diff| %.3g, max|ref| %.3g\n", (long long)m, md, mr);
                    CHECK(md <= 1e-5 * mr);
                }
            }
        }
        for (int i = 0; i < 3; i++) mer_packed_free(part[i]);
        mer_packed_free(cat);
    }
    mer_set_threads(saved);
    free(w); free(b); free(x); free(y1); free(y2); free(snap); free(seen);
}
