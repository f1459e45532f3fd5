/*
 * test_torch.c -- PyTorch checkpoints (src/io/torch.c, pickle.c, zip.c) through the safetensors
 * handle every loader uses. Fixtures: tests/fixtures/torch/make_torch_fixtures.py (Debian's
 * torch saves the tiny hubert / CLIP fixtures as zip, legacy and sharded .bin, a state dict of
 * strided and shared views, and 30+ hostile files with the error each must give).
 */
#include "test.h"

#include "internal.h"
#include "io/io_internal.h"

#include <sys/stat.h>

#define TFIX "tests/fixtures/torch/"

/* Every tensor of `ref` is in `got` with the same dtype, shape and bytes, and nothing more. */
static void same_tensors(const char *ref_path, const char *got_path) {
    mer_safetensors *a = NULL, *b = NULL;
    CHECK_OK(mer_safetensors_open(&a, ref_path));
    CHECK_OK(mer_safetensors_open(&b, got_path));
    if (!a || !b) goto out;
    if (mer_safetensors_count(a) != mer_safetensors_count(b))
        mer_test_fail(__FILE__, __LINE__, "%s: %lld tensors, %s: %lld", ref_path, (long long)mer_safetensors_count(a),
                      got_path, (long long)mer_safetensors_count(b));
    for (int64_t i = 0; i < mer_safetensors_count(a); i++) {
        mer_safetensors_entry x, y;
        REQUIRE_OK(mer_safetensors_entry_at(a, i, &x));
        mer_status s = mer_safetensors_find(b, x.name, &y);
        if (s != MER_OK) {
            mer_test_fail(__FILE__, __LINE__, "%s: %s", got_path, mer_last_error());
            continue;
        }
        int same = x.dtype == y.dtype && x.ndim == y.ndim && x.nbytes == y.nbytes;
        for (int32_t d = 0; same && d < x.ndim; d++) same = x.shape[d] == y.shape[d];
        if (same && x.nbytes) same = !memcmp(x.data, y.data, x.nbytes);
        if (same && x.nbytes) same = (uintptr_t)y.data % mer_dtype_size(y.dtype) == 0;
        if (!same) mer_test_fail(__FILE__, __LINE__, "%s: tensor %s differs from %s", got_path, x.name, ref_path);
    }
out:
    mer_safetensors_free(a);
    mer_safetensors_free(b);
}

MER_TEST(torch_bin_tensors_bitwise) {
    static const char *const pairs[][2] = {
        {"tests/fixtures/hubert/base", TFIX "hubert_base_zip"},
        {"tests/fixtures/hubert/base", TFIX "hubert_base_legacy"},
        {"tests/fixtures/hubert/base", TFIX "hubert_base_sharded"},
        {"tests/fixtures/hubert/base_f16", TFIX "hubert_f16_zip"},
        {"tests/fixtures/hubert/base_f16", TFIX "hubert_f16_legacy_sharded"},
        {"tests/fixtures/hubert/large_bf16", TFIX "hubert_bf16_zip"},
        {"tests/fixtures/hubert/large_bf16", TFIX "hubert_bf16_legacy"},
        {"tests/fixtures/clip/tiny_clip", TFIX "clip_zip"},
        {"tests/fixtures/clip/tiny_clip", TFIX "clip_legacy"},
        /* a single .bin file and one shard of an index open directly too */
        {"tests/fixtures/hubert/base/model.safetensors", TFIX "hubert_base_zip/pytorch_model.bin"},
        {"tests/fixtures/hubert/base", TFIX "hubert_base_sharded/pytorch_model.bin.index.json"},
    };
    for (size_t i = 0; i < sizeof pairs / sizeof *pairs; i++) same_tensors(pairs[i][0], pairs[i][1]);
}

/* Views: transposed, sliced, strided, expanded (stride 0), shared storages, a Parameter, 0-d,
 * empty, odd offsets, every dtype; the reference holds them contiguous. Non-tensors skipped. */
MER_TEST(torch_bin_views) {
    same_tensors(TFIX "views_ref.safetensors", TFIX "views.bin");
    same_tensors(TFIX "views_ref.safetensors", TFIX "views_legacy.bin");
    mer_safetensors *st = NULL;
    REQUIRE_OK(mer_safetensors_open(&st, TFIX "views.bin"));
    mer_safetensors_entry e;
    CHECK_ERR(mer_safetensors_find(st, "step", &e), MER_ERR_NOT_FOUND, "step");
    CHECK_OK(mer_safetensors_find(st, "scalar", &e));
    CHECK(e.ndim == 0 && e.nbytes == 4 && *(const float *)e.data == 2.5f);
    const float *t;
    int64_t sh[2] = {8, 6};
    REQUIRE_OK(mer_safetensors_get_f32(st, "transposed", 2, sh, &t));
    const float *b;
    int64_t shb[2] = {6, 8};
    REQUIRE_OK(mer_safetensors_get_f32(st, "base", 2, shb, &b));
    CHECK(t[1 * 6 + 2] == b[2 * 8 + 1]);
    mer_safetensors_free(st);
}

/* Same weights -> the same encoder outputs, bit for bit, whichever file they came from. */
static float *speech_out(const char *dir, int64_t *n_out) {
    mer_speech_model *m = NULL;
    mer_speech_state *st = NULL;
    float *hs = NULL;
    if (mer_speech_model_load(&m, dir, NULL) != MER_OK || mer_speech_state_init(&st, m, NULL) != MER_OK) {
        mer_test_fail(__FILE__, __LINE__, "%s: %s", dir, mer_last_error());
        goto out;
    }
    mer_speech_info info;
    mer_speech_model_info(m, &info);
    enum { N = 4000 };
    static float x[N];
    for (int i = 0; i < N; i++) x[i] = 0.3f * sinf(0.013f * (float)i * (1.0f + 0.0007f * (float)i));
    int64_t T = mer_speech_frames(m, N);
    *n_out = (int64_t)(info.n_layers + 1) * T * info.hidden_size;
    hs = malloc((size_t)*n_out * sizeof *hs);
    if (mer_speech_encode(st, x, N, 0, info.n_layers, hs) != MER_OK) {
        mer_test_fail(__FILE__, __LINE__, "%s: %s", dir, mer_last_error());
        free(hs);
        hs = NULL;
    }
out:
    mer_speech_state_free(st);
    mer_speech_model_free(m);
    return hs;
}

static void same_speech(const char *ref_dir, const char *dir) {
    int64_t n1 = 0, n2 = 0;
    float *a = speech_out(ref_dir, &n1), *b = speech_out(dir, &n2);
    if (a && b && (n1 != n2 || memcmp(a, b, (size_t)n1 * sizeof *a)))
        mer_test_fail(__FILE__, __LINE__, "%s: hidden states differ from %s", dir, ref_dir);
    free(a);
    free(b);
}

MER_TEST(torch_bin_speech_outputs) {
    same_speech("tests/fixtures/hubert/base", TFIX "hubert_base_zip");
    same_speech("tests/fixtures/hubert/base", TFIX "hubert_base_legacy");
    same_speech("tests/fixtures/hubert/base", TFIX "hubert_base_sharded");
    same_speech("tests/fixtures/hubert/base_f16", TFIX "hubert_f16_legacy_sharded");
    same_speech("tests/fixtures/hubert/large_bf16", TFIX "hubert_bf16_zip");
    same_speech("tests/fixtures/hubert/large_bf16", TFIX "hubert_bf16_legacy");
}

static float *clip_out(const char *dir, int64_t *n_out) {
    mer_clip_model *m = NULL;
    mer_clip_state *st = NULL;
    float *px = NULL, *out = NULL;
    if (mer_clip_model_load(&m, dir, NULL) != MER_OK || mer_clip_state_init(&st, m, NULL) != MER_OK) {
        mer_test_fail(__FILE__, __LINE__, "%s: %s", dir, mer_last_error());
        goto done;
    }
    mer_clip_info info;
    mer_clip_model_info(m, &info);
    int64_t np = 3 * (int64_t)info.image_size * info.image_size;
    px = malloc((size_t)np * sizeof *px);
    for (int64_t i = 0; i < np; i++) px[i] = 0.01f * (float)((i * 7919) % 401) - 2.0f;
    *n_out = mer_clip_output_size(m, MER_CLIP_HIDDEN);
    out = malloc((size_t)*n_out * sizeof *out);
    if (mer_clip_forward(st, px, 1, MER_CLIP_HIDDEN, out) != MER_OK) {
        mer_test_fail(__FILE__, __LINE__, "%s: %s", dir, mer_last_error());
        free(out);
        out = NULL;
    }
done:
    free(px);
    mer_clip_state_free(st);
    mer_clip_model_free(m);
    return out;
}

MER_TEST(torch_bin_clip_outputs) {
    const char *dirs[] = {TFIX "clip_zip", TFIX "clip_legacy"};
    int64_t n1 = 0;
    float *a = clip_out("tests/fixtures/clip/tiny_clip", &n1);
    for (int i = 0; i < 2; i++) {
        int64_t n2 = 0;
        float *b = clip_out(dirs[i], &n2);
        if (a && b && (n1 != n2 || memcmp(a, b, (size_t)n1 * sizeof *a)))
            mer_test_fail(__FILE__, __LINE__, "%s: CLIP hidden states differ", dirs[i]);
        free(b);
    }
    free(a);
}

/* Each hostile checkpoint: a one-line error naming the file and the problem, no crash. */
MER_TEST(torch_hostile_checkpoints) {
    char *list;
    size_t len;
    REQUIRE_OK(mer__read_file(TFIX "hostile/expected.txt", &list, &len));
    int n = 0;
    for (char *line = strtok(list, "\n"); line; line = strtok(NULL, "\n")) {
        char *tab = strchr(line, '\t');
        if (!tab) continue;
        *tab = '\0';
        const char *want = tab + 1;
        char path[512];
        snprintf(path, sizeof path, TFIX "hostile/%s.bin", line);
        mer_safetensors *st = NULL;
        mer_status s = mer_safetensors_open(&st, path);
        if (!*want) {
            if (s != MER_OK) mer_test_fail(__FILE__, __LINE__, "%s: %s", path, mer_last_error());
            mer_safetensors_entry e;
            if (st) CHECK_OK(mer_safetensors_find(st, "w", &e));
            if (st) CHECK(e.nbytes == 24 && ((const float *)e.data)[5] == 5.0f);
            mer_safetensors_free(st);
            continue;
        }
        n++;
        const char *msg = mer_last_error();
        if (s == MER_OK || st) {
            mer_test_fail(__FILE__, __LINE__, "%s: opened", path);
            mer_safetensors_free(st);
        } else if (!strstr(msg, want) || !strstr(msg, path) || strchr(msg, '\n')) {
            mer_test_fail(__FILE__, __LINE__, "%s: message '%s' lacks '%s'", path, msg, want);
        }
    }
    free(list);
    CHECK(n >= 15);
}

/* The zip reader and unpickler on their own: ZIP64 fields and the opcode limits. */
MER_TEST(torch_pickle_limits) {
    mer__pickle pk = {.path = "mem"};
    mer__pv *v;
    size_t pos = 0;
    /* protocol 4 framing, MEMOIZE, SHORT_BINUNICODE, STACK_GLOBAL of an allowed name */
    static const uint8_t ok[] = "\x80\x04\x95\x10\x00\x00\x00\x00\x00\x00\x00\x8c\x0b" "collections\x94"
                                "\x8c\x0bOrderedDict\x94\x93\x94)R\x94.";
    REQUIRE_OK(mer__pickle_load(&pk, ok, sizeof ok - 1, &pos, &v));
    CHECK(v->kind == MER__PV_DICT && pos == sizeof ok - 1);
    mer__pickle_free(&pk);
    pk.path = "mem";
    pos = 0;
    static const uint8_t call_storage[] = "\x80\x02" "ctorch\nFloatStorage\n)R.";
    CHECK_ERR(mer__pickle_load(&pk, call_storage, sizeof call_storage - 1, &pos, &v), MER_ERR_FORMAT,
              "called directly");
    mer__pickle_free(&pk);
    pk.path = "mem";
    pos = 0;
    static const uint8_t pop_empty[] = "\x80\x02(0.";
    CHECK_ERR(mer__pickle_load(&pk, pop_empty, sizeof pop_empty - 1, &pos, &v), MER_ERR_FORMAT, "empty stack");
    mer__pickle_free(&pk);
}

/* ---- mer convert, mer inspect, the Hugging Face cache ---------------------------------------- */

MER_TEST(torch_convert_cli) {
    const char *dir = mer_test_tmpdir("torch_convert");
    char out[4096], p[1024];
    const char *bin = mer_test_bin();
    /* legacy sharded F16 -> one safetensors + config copied, bitwise the same tensors */
    CHECK(mer_test_run(out, sizeof out, "%s convert %s --out %s/a", bin, TFIX "hubert_f16_legacy_sharded", dir) == 0);
    CHECK(strstr(out, "50 tensors") != NULL);
    snprintf(p, sizeof p, "%s/a/model.safetensors", dir);
    same_tensors("tests/fixtures/hubert/base_f16/model.safetensors", p);
    snprintf(p, sizeof p, "%s/a", dir);
    same_speech("tests/fixtures/hubert/base_f16", p);
    snprintf(p, sizeof p, "%s/a/pytorch_model.bin.index.json", dir);
    struct stat sb;
    CHECK(stat(p, &sb) != 0); /* weights and their index are not copied */
    mer_safetensors *st = NULL;
    snprintf(p, sizeof p, "%s/a/model.safetensors", dir);
    if (mer_safetensors_open(&st, p) == MER_OK) {
        const char *f = mer_safetensors_metadata(st, "format");
        CHECK(f && !strcmp(f, "pt"));
        CHECK(!strcmp(mer_safetensors_format(st), "safetensors"));
    }
    mer_safetensors_free(st);
    /* inspect names the format; a hostile file is one line on stderr and exit 1 */
    CHECK(mer_test_run(out, sizeof out, "%s inspect %s", bin, TFIX "views_legacy.bin") == 0);
    CHECK(strstr(out, "pytorch legacy, 17 tensors") != NULL);
    CHECK(mer_test_run(out, sizeof out, "%s inspect %s", bin, TFIX "hostile/global_builtins_eval.bin") == 1);
    CHECK(strstr(out, "refusing global builtins.eval") && strchr(out, '\n') == out + strlen(out) - 1);
    CHECK(mer_test_run(out, sizeof out, "%s convert %s --out %s/b", bin, TFIX "hostile/negative_stride.bin", dir) == 1);
    CHECK(strstr(out, "negative stride") != NULL);
    snprintf(p, sizeof p, "%s/b/model.safetensors", dir);
    CHECK(stat(p, &sb) != 0); /* nothing half-written */
    /* the output may not be the input's directory */
    snprintf(p, sizeof p, "%s/c", dir);
    CHECK(mer_test_run(out, sizeof out, "cp -r %s %s && %s convert %s --out %s", TFIX "hubert_base_zip", p, bin, p,
                       p) == 1);
    CHECK(strstr(out, "checkpoint's own directory") != NULL);
    CHECK(mer_test_run(out, sizeof out, "%s convert --out %s/d", bin, dir) == 2);
}

MER_TEST(torch_hf_cache_resolution) {
    const char *tmp = mer_test_tmpdir("torch_hf");
    char dir[600], out[4096];
    snprintf(dir, sizeof dir, "%s", tmp);
    /* a cache as huggingface_hub leaves it: refs/main -> snapshots/<hash>/ with symlinks */
    const char *hash = "0123456789abcdef0123456789abcdef01234567";
    REQUIRE(mer_test_run(NULL, 0,
                         "set -e; r=%s/hub/models--Org--tiny-hubert; mkdir -p $r/refs $r/snapshots/%s $r/snapshots/old;"
                         " printf %s > $r/refs/main; for f in config.json pytorch_model.bin; do"
                         " ln -s $PWD/%s/$f $r/snapshots/%s/$f; done",
                         dir, hash, hash, TFIX "hubert_base_zip", hash) == 0);
    char cache[700];
    snprintf(cache, sizeof cache, "%s/hub", dir);
    setenv("HF_HUB_CACHE", cache, 1);
    char *res = NULL;
    CHECK_OK(mer_model_resolve("Org/tiny-hubert", &res));
    char want[900];
    snprintf(want, sizeof want, "%s/models--Org--tiny-hubert/snapshots/%s", cache, hash);
    CHECK(res && !strcmp(res, want));
    free(res);
    res = NULL;
    CHECK_OK(mer_model_resolve("Org/tiny-hubert@old", &res)); /* a snapshot named directly */
    free(res);
    res = NULL;
    /* HF_HOME/hub when HF_HUB_CACHE is unset */
    unsetenv("HF_HUB_CACHE");
    setenv("HF_HOME", dir, 1);
    CHECK_OK(mer_model_resolve("Org/tiny-hubert", &res));
    CHECK(res && !strcmp(res, want));
    free(res);
    res = NULL;
    /* an existing path wins; absent models and bad names give one line saying where it looked */
    CHECK_OK(mer_model_resolve(TFIX "clip_zip", &res));
    CHECK(res && !strcmp(res, TFIX "clip_zip"));
    free(res);
    CHECK_ERR(mer_model_resolve("Org/absent", &res), MER_ERR_NOT_FOUND, "huggingface-cli download Org/absent");
    CHECK(strstr(mer_last_error(), "models--Org--absent") != NULL);
    CHECK_ERR(mer_model_resolve("Org/../etc", &res), MER_ERR_NOT_FOUND, "not a Hugging Face ORG/NAME");
    CHECK_ERR(mer_model_resolve("a/b/c", &res), MER_ERR_NOT_FOUND, "a/b/c");
    /* the CLI's --model goes through it */
    CHECK(mer_test_run(out, sizeof out, "HF_HOME=%s %s convert Org/tiny-hubert --out %s/conv", dir, mer_test_bin(),
                       dir) == 0);
    CHECK(mer_test_run(out, sizeof out, "HF_HOME=%s %s extract audio --model Org/nope --out %s/x.npy x.wav", dir,
                       mer_test_bin(), dir) == 1);
    CHECK(strstr(out, "huggingface-cli download Org/nope") != NULL);
    unsetenv("HF_HOME");
}

/* --model ORG/NAME reaches every model flag: extract text (model and tokenizer) and analyze's
 * --audio-model give the same numbers as the directories themselves; an absent one is one line. */
MER_TEST(torch_hf_cache_text_and_analyze) {
    const char *dir = mer_test_tmpdir("torch_hf_more");
    char out[8192];
    REQUIRE(mer_test_run(NULL, 0,
                         "set -e; for m in tiny-bert:tests/fixtures/text/tiny_bert emo:models/emodb-acoustic; do"
                         " r=%s/hub/models--Org--${m%%%%:*}; mkdir -p $r/refs $r/snapshots/c0ffee; printf c0ffee > $r/refs/main;"
                         " for f in $PWD/${m#*:}/*; do ln -s $f $r/snapshots/c0ffee/; done; done;"
                         " printf 'name,chinese\\na,今天天气真好\\nb,我很高兴\\n' > %s/t.csv",
                         dir, dir) == 0);
    const char *bin = mer_test_bin();
    CHECK(mer_test_run(out, sizeof out, "%s extract text --model tests/fixtures/text/tiny_bert --csv %s/t.csv "
                       "--preset mertools --out %s/dir", bin, dir, dir) == 0);
    CHECK(mer_test_run(out, sizeof out, "HF_HUB_CACHE=%s/hub %s extract text --model Org/tiny-bert --tokenizer "
                       "Org/tiny-bert --csv %s/t.csv --preset mertools --out %s/hub_out", dir, bin, dir, dir) == 0);
    CHECK(mer_test_run(out, sizeof out, "cmp %s/dir/a.npy %s/hub_out/a.npy && cmp %s/dir/b.npy %s/hub_out/b.npy",
                       dir, dir, dir, dir) == 0);
    CHECK(mer_test_run(out, sizeof out, "HF_HUB_CACHE=%s/hub %s extract text --model Org/absent --csv %s/t.csv "
                       "--out %s/x", dir, bin, dir, dir) == 1);
    CHECK(strstr(out, "huggingface-cli download Org/absent") && strchr(out, '\n') == out + strlen(out) - 1);
    /* analyze: the same JSON but for the model's path */
    const char *clip = "data/emodb/flac/03a01Fa.flac";
    CHECK(mer_test_run(out, sizeof out, "%s analyze %s --json --audio-model models/emodb-acoustic 2>/dev/null"
                       " | grep -v '\"model\":' > %s/a.json", bin, clip, dir) == 0);
    CHECK(mer_test_run(out, sizeof out, "HF_HUB_CACHE=%s/hub %s analyze %s --json --audio-model Org/emo 2>/dev/null"
                       " | grep -v '\"model\":' > %s/b.json && grep -q probs %s/b.json && cmp %s/a.json %s/b.json",
                       dir, bin, clip, dir, dir, dir, dir) == 0);
    CHECK(mer_test_run(out, sizeof out, "HF_HUB_CACHE=%s/hub %s analyze %s --audio-model Org/nope", dir, bin, clip) == 1);
    CHECK(strstr(out, "huggingface-cli download Org/nope") != NULL);
}

/* scripts/install-deps.sh --peers checks Node by what it provides: node + npm from anywhere are
 * used as they are; Debian's nodejs/npm only when both are missing; one without the other is a
 * clear error (installing Debian's npm would conflict with a foreign node). */
MER_TEST(install_deps_peers_node) {
    const char *dir = mer_test_tmpdir("deps_node");
    char out[4096];
    /* a PATH with the tools the script uses, but no node or npm */
    REQUIRE(mer_test_run(NULL, 0,
                         "set -e; mkdir -p %s/bin; for b in bash sh cc make pkg-config clang dpkg-query grep awk"
                         " ffmpeg flac id env cat; do p=$(command -v $b) && ln -s $p %s/bin/$b || true; done",
                         dir, dir) == 0);
    CHECK(mer_test_run(out, sizeof out, "PATH=%s/bin MER_DEPS_DRY_RUN=1 bash scripts/install-deps.sh --peers", dir) ==
          0);
    CHECK(strstr(out, "nodejs npm") != NULL);
    REQUIRE(mer_test_run(NULL, 0, "printf '#!/bin/sh\\necho v20\\n' > %s/bin/node && chmod +x %s/bin/node", dir, dir) ==
            0);
    CHECK(mer_test_run(out, sizeof out, "PATH=%s/bin MER_DEPS_DRY_RUN=1 bash scripts/install-deps.sh --peers", dir) ==
          1);
    CHECK(strstr(out, "but not npm") != NULL);
    REQUIRE(mer_test_run(NULL, 0, "cp %s/bin/node %s/bin/npm", dir, dir) == 0);
    CHECK(mer_test_run(out, sizeof out, "PATH=%s/bin MER_DEPS_DRY_RUN=1 bash scripts/install-deps.sh --peers", dir) ==
          0);
    CHECK(strstr(out, "nodejs") == NULL && strstr(out, "npm") == NULL);
}
