/*
 * test_alloc_fail.c -- allocation-failure injection, SQLite style: for n = 1, 2, ... the n-th
 * library allocation of a scenario fails (mer_alloc_fail_at), until a run makes fewer than n
 * allocations. Each failing run must return an error status with a message (or succeed with
 * the same result as the clean run, when the failed allocation had a fallback); a crash fails
 * the test (each test is its own process) and a leak fails it in the LeakSanitizer leg.
 * Scenarios: model loads (HuBERT, CLIP, face-api, BERT with its tokenizer and int8 packing), an
 * encoder forward of each, the
 * acoustic descriptors of an EmoDB clip, a
 * training run (agt, 2 folds: data, model, steps, optimizer, checkpoints; every 7th allocation)
 * and each file reader. The face-api walk takes every 3rd allocation. This file includes only
 * mer.h, so its own allocations are not counted.
 */
#include "test.h"

#include <stdio.h>
#include <string.h>

typedef mer_status (*scenario_fn)(void *ctx);

/* Walks n = 1, 1 + stride, ... through fn; returns the allocations the scenario makes. */
static int64_t walk_stride(const char *what, scenario_fn fn, void *ctx, int64_t max_n,
                           int64_t stride) {
    mer_alloc_fail_at(0);
    mer_status s0 = fn(ctx);   /* the clean run */
    if (s0 != MER_OK) {
        mer_test_fail(__FILE__, __LINE__, "%s: the clean run failed: %s: %s", what,
                      mer_status_str(s0), mer_last_error());
        return 0;
    }
    int64_t n = 1;
    for (; n <= max_n; n += stride) {
        mer_clear_error();
        mer_alloc_fail_at(n);
        mer_status s = fn(ctx);
        int fired = mer_alloc_failed();
        mer_alloc_fail_at(0);
        if (!fired) {
            if (getenv("MER_TEST_VERBOSE"))
                printf("    %s: about %lld allocations, every %lld-th failed once\n", what,
                       (long long)n, (long long)stride);
            if (s != MER_OK)
                mer_test_fail(__FILE__, __LINE__, "%s: n=%lld: no injected failure, yet %s: %s",
                              what, (long long)n, mer_status_str(s), mer_last_error());
            return n;
        }
        if (s != MER_OK && !mer_last_error()[0]) {
            mer_test_fail(__FILE__, __LINE__, "%s: allocation %lld failed: %s without a message",
                          what, (long long)n, mer_status_str(s));
            return n;
        }
    }
    mer_test_fail(__FILE__, __LINE__, "%s: still allocating after %lld allocations", what,
                  (long long)max_n);
    return n;
}

static int64_t walk(const char *what, scenario_fn fn, void *ctx, int64_t max_n) {
    return walk_stride(what, fn, ctx, max_n, 1);
}

/* ---- readers ----------------------------------------------------------------------------- */

static mer_status read_npy(void *u) {
    (void)u;
    float *d = NULL;
    int32_t nd;
    int64_t sh[MER_MAX_DIMS];
    mer_status s = mer_npy_read("tests/fixtures/io/f32_r2.npy", &d, &nd, sh);
    free(d);
    return s;
}

static mer_status read_safetensors(void *u) {
    (void)u;
    mer_safetensors *st = NULL;
    mer_status s = mer_safetensors_open(&st, "tests/fixtures/io/ref.safetensors");
    mer_safetensors_free(st);
    return s;
}

static mer_status read_csv(void *u) {
    (void)u;
    mer_csv *c = NULL;
    mer_status s = mer_csv_load(&c, "tests/fixtures/io/ref.csv");
    mer_csv_free(c);
    return s;
}

static mer_status read_json(void *u) {
    (void)u;
    mer_json *j = NULL;
    mer_status s = mer_json_load(&j, "tests/fixtures/io/config.json");
    mer_json_free(j);
    return s;
}

static mer_status read_tfjs(void *u) {
    (void)u;
    mer_tfjs *w = NULL;
    mer_status s = mer_tfjs_load(&w, "models/face-api/face_expression_model-weights_manifest.json");
    mer_tfjs_free(w);
    return s;
}

static mer_status read_image(void *u) {
    (void)u;
    mer_image img;
    memset(&img, 0, sizeof img);
    mer_status s = mer_image_load("tests/fixtures/faces/astronaut_crop.png", &img);
    mer_image_free(&img);
    return s;
}

MER_TEST(alloc_fail_readers) {
    int64_t k = 0;
    k += walk("npy", read_npy, NULL, 1000);
    k += walk("safetensors", read_safetensors, NULL, 1000);
    k += walk("csv", read_csv, NULL, 1000);
    k += walk("json", read_json, NULL, 1000);
    k += walk("tfjs", read_tfjs, NULL, 1000);
    k += walk("image", read_image, NULL, 1000);
    CHECK(k >= 6);   /* every reader allocates, so every reader was walked */
}

/* ---- models: load + forward -------------------------------------------------------------- */

typedef struct {
    float *x, *ref, *out;
    int64_t n, n_out;
} enc_ctx;

static mer_status hubert_run(void *u) {
    enc_ctx *c = u;
    mer_speech_model *m = NULL;
    mer_speech_state *st = NULL;
    mer_status s = mer_speech_model_load(&m, "tests/fixtures/hubert/base", NULL);
    if (s == MER_OK) s = mer_speech_state_init(&st, m, NULL);
    if (s == MER_OK) s = mer_speech_encode(st, c->x, c->n, 0, 2, c->out);
    mer_speech_state_free(st);
    mer_speech_model_free(m);
    if (s == MER_OK && c->ref && memcmp(c->out, c->ref, (size_t)c->n_out * sizeof(float)))
        return MER_ERR_INTERNAL;   /* "succeeded" with other numbers */
    return s;
}

MER_TEST(alloc_fail_hubert_load_and_encode) {
    enc_ctx c;
    memset(&c, 0, sizeof c);
    REQUIRE_OK(mer_media_decode_audio("tests/fixtures/hubert/a2.wav", 16000, &c.x, &c.n));
    mer_speech_model *m = NULL;
    REQUIRE_OK(mer_speech_model_load(&m, "tests/fixtures/hubert/base", NULL));
    mer_speech_info info;
    mer_speech_model_info(m, &info);
    c.n_out = 3 * mer_speech_frames(m, c.n) * info.hidden_size;
    mer_speech_model_free(m);
    c.out = malloc((size_t)c.n_out * sizeof(float));
    REQUIRE(c.out);
    REQUIRE_OK(hubert_run(&c));
    c.ref = malloc((size_t)c.n_out * sizeof(float));
    REQUIRE(c.ref);
    memcpy(c.ref, c.out, (size_t)c.n_out * sizeof(float));
    CHECK(walk("hubert", hubert_run, &c, 5000) > 10);
    free(c.x);
    free(c.out);
    free(c.ref);
}

static mer_status clip_run(void *u) {
    enc_ctx *c = u;
    mer_clip_model *m = NULL;
    mer_clip_state *st = NULL;
    mer_image img;
    memset(&img, 0, sizeof img);
    mer_status s = mer_clip_model_load(&m, "tests/fixtures/clip/tiny_clip", NULL);
    if (s == MER_OK) s = mer_clip_state_init(&st, m, NULL);
    if (s == MER_OK) s = mer_image_load("tests/fixtures/faces/astronaut_crop.png", &img);
    if (s == MER_OK) s = mer_clip_encode_images(st, &img, 1, MER_CLIP_EMBEDS, c->out);
    mer_image_free(&img);
    mer_clip_state_free(st);
    mer_clip_model_free(m);
    if (s == MER_OK && c->ref && memcmp(c->out, c->ref, (size_t)c->n_out * sizeof(float)))
        return MER_ERR_INTERNAL;
    return s;
}

MER_TEST(alloc_fail_clip_load_and_forward) {
    enc_ctx c;
    memset(&c, 0, sizeof c);
    mer_clip_model *m = NULL;
    REQUIRE_OK(mer_clip_model_load(&m, "tests/fixtures/clip/tiny_clip", NULL));
    c.n_out = mer_clip_output_size(m, MER_CLIP_EMBEDS);
    mer_clip_model_free(m);
    REQUIRE(c.n_out > 0);
    c.out = malloc((size_t)c.n_out * sizeof(float));
    REQUIRE(c.out);
    REQUIRE_OK(clip_run(&c));
    c.ref = malloc((size_t)c.n_out * sizeof(float));
    REQUIRE(c.ref);
    memcpy(c.ref, c.out, (size_t)c.n_out * sizeof(float));
    CHECK(walk("clip", clip_run, &c, 5000) > 10);
    free(c.out);
    free(c.ref);
}

static mer_status faces_run(void *u) {
    (void)u;
    mer_faces *m = NULL;
    mer_faces_state *st = NULL;
    mer_image img;
    memset(&img, 0, sizeof img);
    mer_face *faces = NULL;
    int32_t n = 0;
    mer_status s = mer_faces_load(&m, "models/face-api", NULL);
    if (s == MER_OK) s = mer_faces_state_init(&st, NULL);
    if (s == MER_OK) s = mer_image_load("tests/fixtures/faces/astronaut_crop.png", &img);
    if (s == MER_OK) s = mer_faces_detect(m, st, &img, NULL, &faces, &n);
    free(faces);
    mer_image_free(&img);
    mer_faces_state_free(st);
    mer_faces_free(m);
    return s;
}

MER_TEST(alloc_fail_faces_load_and_detect) {
    /* every 3rd allocation (1, 4, 7, ...): a run parses both weight manifests */
    CHECK(walk_stride("faces", faces_run, NULL, 5000, 3) > 10);
}

/* The text encoder: BERT fixture packed for int8 at load, its tokenizer, one MERTools feature
 * at int8 precision (so the packed products run too). */
static mer_status text_run(void *u) {
    enc_ctx *c = u;
    mer_text_model *m = NULL;
    mer_text_state *st = NULL;
    mer_tokenizer *tok = NULL;
    float *feat = NULL;
    int32_t nd = 0;
    int64_t sh[3] = {0};
    const char *txt = "今天天气真好";
    mer_text_model_params mp = mer_text_model_default_params();
    mp.precision = MER_PRECISION_INT8;
    mer_text_params p = mer_text_mertools_params();
    p.precision = MER_PRECISION_INT8;
    mer_status s = mer_text_model_load(&m, "tests/fixtures/text/tiny_bert", &mp);
    if (s == MER_OK) s = mer_tokenizer_load(&tok, "tests/fixtures/text/tiny_bert");
    if (s == MER_OK) s = mer_text_state_init(&st, m, NULL);
    if (s == MER_OK) s = mer_text_extract(st, tok, txt, strlen(txt), &p, &feat, &nd, sh);
    if (s == MER_OK && (nd != 1 || sh[0] != c->n_out)) s = MER_ERR_INTERNAL;
    if (s == MER_OK && c->ref && memcmp(feat, c->ref, (size_t)c->n_out * sizeof(float))) s = MER_ERR_INTERNAL;
    if (s == MER_OK) memcpy(c->out, feat, (size_t)c->n_out * sizeof(float));
    free(feat);
    mer_text_state_free(st);
    mer_tokenizer_free(tok);
    mer_text_model_free(m);
    return s;
}

MER_TEST(alloc_fail_text_load_and_extract) {
    enc_ctx c;
    memset(&c, 0, sizeof c);
    c.n_out = 32; /* tiny_bert's hidden size */
    c.out = malloc((size_t)c.n_out * sizeof(float));
    REQUIRE(c.out);
    REQUIRE_OK(text_run(&c));
    c.ref = malloc((size_t)c.n_out * sizeof(float));
    REQUIRE(c.ref);
    memcpy(c.ref, c.out, (size_t)c.n_out * sizeof(float));
    CHECK(walk("text", text_run, &c, 5000) > 10);
    free(c.out);
    free(c.ref);
}

static mer_status acoustic_run(void *u) {
    enc_ctx *c = u;
    mer_acoustic_params p = mer_acoustic_default_params();
    float *fr = NULL;
    int64_t T = 0;
    mer_status s = mer_acoustic_frames(c->x, c->n, &p, &fr, &T);
    if (s == MER_OK) s = mer_acoustic_functionals(c->x, c->n, &p, c->out);
    free(fr);
    if (s == MER_OK && c->ref && memcmp(c->out, c->ref, (size_t)c->n_out * sizeof(float)))
        return MER_ERR_INTERNAL;
    return s;
}

MER_TEST(alloc_fail_acoustic_features) {
    enc_ctx c;
    memset(&c, 0, sizeof c);
    REQUIRE_OK(mer_media_decode_audio("data/emodb/flac/03a01Fa.flac", 16000, &c.x, &c.n));
    if (c.n > 8000) c.n = 8000;   /* half a second: the same allocations, less time per run */
    mer_acoustic_params p = mer_acoustic_default_params();
    c.n_out = mer_acoustic_functional_dim(&p);
    c.out = malloc((size_t)c.n_out * sizeof(float));
    REQUIRE(c.out);
    REQUIRE_OK(acoustic_run(&c));
    c.ref = malloc((size_t)c.n_out * sizeof(float));
    REQUIRE(c.ref);
    memcpy(c.ref, c.out, (size_t)c.n_out * sizeof(float));
    CHECK(walk("acoustic", acoustic_run, &c, 5000) > 5);
    free(c.x);
    free(c.out);
    free(c.ref);
}

/* ---- a training run ---------------------------------------------------------------------- */

typedef struct {
    mer_dataset *ds;
    char dir[1024];
} train_ctx;

static mer_status train_run(void *u) {
    train_ctx *c = u;
    mer_train_params p = mer_train_default_params();
    snprintf(p.model, sizeof p.model, "agt");
    p.hidden = 8;
    p.heads = 2;
    p.tokens = 2;
    p.folds = 2;
    p.epochs = 1;
    p.batch = 8;
    p.plots = 0;            /* libpng's own allocations are not ours */
    p.checkpoint_seconds = 0;
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", c->dir);
    if (system(cmd) != 0) return MER_ERR_IO;
    return mer_train_run(c->ds, NULL, &p, c->dir, NULL);
}

MER_TEST(alloc_fail_training_run) {
    train_ctx c;
    const char *classes[] = {"a", "b"}, *mods[] = {"audio", "text"};
    REQUIRE_OK(mer_dataset_init(&c.ds, classes, 2, mods, 2));
    for (int i = 0; i < 16; i++) {
        float fa[4], ft[6 * 3];
        for (int j = 0; j < 4; j++) fa[j] = (float)((i * 7 + j * 3) % 11) / 11.0f + (i & 1);
        for (int j = 0; j < 18; j++) ft[j] = (float)((i * 5 + j) % 13) / 13.0f - (i & 1);
        mer_tensor f[2];
        memset(f, 0, sizeof f);
        f[0].data = fa, f[0].dtype = MER_DTYPE_F32, f[0].ndim = 1, f[0].shape[0] = 4;
        f[0].strides[0] = 1;
        f[1].data = ft, f[1].dtype = MER_DTYPE_F32, f[1].ndim = 2, f[1].shape[0] = 3;
        f[1].shape[1] = 6, f[1].strides[0] = 6, f[1].strides[1] = 1;
        char name[16];
        snprintf(name, sizeof name, "c%02d", i);
        REQUIRE_OK(mer_dataset_add(c.ds, name, i & 1, NULL, 0, f));
    }
    snprintf(c.dir, sizeof c.dir, "%s/run", mer_test_tmpdir("alloc_fail_train"));
    /* every 7th allocation (offsets 1, 8, 15, ...): each run writes and fsyncs its files, so
     * the full walk (about 600 runs) would take over a minute */
    CHECK(walk_stride("training run", train_run, &c, 20000, 7) > 50);
    mer_dataset_free(c.ds);
}

/* ---- the extraction runner over files (src/pipeline/extract.c) ----------------------------- */

typedef struct {
    const char *in[3];
    char out[700];
    char *recipe;
} files_ctx;

/* A good tone, an undecodable file and a second file with the tone's name, into a directory with
 * its recipe, every output recomputed: a failed allocation is a clean error of the run or of one
 * input (the bad file and the clash fail whatever happens), never a crash or a leak. */
static mer_status files_run(void *u) {
    files_ctx *c = u;
    mer_acoustic_recipe r = mer_acoustic_default_recipe();
    mer_extract_params p = mer_extract_default_params();
    p.overwrite = 1;
    p.recipe = c->recipe;
    mer_extract_result res;
    mer_status s = mer_extract_acoustic_files(&r, c->in, 3, c->out, &p, &res);
    if (s == MER_OK && (res.n != 3 || res.items[1].outcome != MER_EXTRACT_FAILED ||
                        res.items[2].outcome != MER_EXTRACT_FAILED || res.written + res.failed != 3))
        s = MER_ERR_INTERNAL; /* no message: the walk reports it */
    mer_extract_result_free(&res);
    return s;
}

MER_TEST(alloc_fail_extract_files) {
    files_ctx c;
    memset(&c, 0, sizeof c);
    const char *dir = mer_test_tmpdir("alloc_fail_extract_files");
    static char g[700], bad[700], clash[700], sub[700];
    snprintf(g, sizeof g, "%s/g.wav", dir);
    snprintf(bad, sizeof bad, "%s/bad.wav", dir);
    snprintf(sub, sizeof sub, "%s/sub", dir);
    snprintf(clash, sizeof clash, "%s/sub/g.wav", dir);
    snprintf(c.out, sizeof c.out, "%s/feats", dir);
    float x[4000];
    for (int i = 0; i < 4000; i++) x[i] = (float)(0.3 * sin(0.0864 * i) + 0.01 * sin(1.7 * i));
    REQUIRE(mer_test_write_wav(g, x, 4000, 16000, 1) == 0);
    REQUIRE(mer_mkdir_p(sub) == MER_OK);
    REQUIRE(mer_test_write_wav(clash, x, 4000, 16000, 1) == 0);
    REQUIRE(mer_test_write(bad, "RIFF, but not audio", 19) == 0);
    c.in[0] = g;
    c.in[1] = bad;
    c.in[2] = clash;
    mer_acoustic_recipe r = mer_acoustic_default_recipe();
    REQUIRE_OK(mer_acoustic_recipe_to_json(&r, &c.recipe));
    CHECK(walk("extract files", files_run, &c, 5000) > 5);
    free(c.recipe);
}
