/*
 * test_tokenizer.c -- the tokenizers of src/text against committed reference ids
 * (tests/fixtures/text: corpus.jsonl, one <model>/ref_ids.txt per tokenizer, made by the
 * scripts beside them from transformers.js and Python sentencepiece), plus bad input.
 */
#include "test.h"

#include <cJSON.h>

#define CORPUS "tests/fixtures/text/corpus.jsonl"

typedef struct {
    char **text;
    size_t *len;
    int64_t n;
} corpus;

static void corpus_free(corpus *c) {
    for (int64_t i = 0; i < c->n; i++) free(c->text[i]);
    free(c->text);
    free(c->len);
    memset(c, 0, sizeof *c);
}

static char *slurp(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *d = malloc((size_t)n + 1);
    if (d && fread(d, 1, (size_t)n, f) != (size_t)n) {
        free(d);
        d = NULL;
    }
    fclose(f);
    if (d) d[n] = '\0';
    if (size) *size = (size_t)n;
    return d;
}

static int corpus_load(corpus *c) {
    memset(c, 0, sizeof *c);
    char *d = slurp(CORPUS, NULL);
    if (!d) return -1;
    int64_t cap = 0;
    for (char *p = d; *p; p++) cap += *p == '\n';
    c->text = calloc((size_t)cap, sizeof *c->text);
    c->len = calloc((size_t)cap, sizeof *c->len);
    char *line = d;
    for (char *p = d; *p; p++) {
        if (*p != '\n') continue;
        *p = '\0';
        cJSON *j = cJSON_Parse(line);
        if (!cJSON_IsString(j)) {
            cJSON_Delete(j);
            free(d);
            return -1;
        }
        /* JSON strings may hold U+0000; cJSON stops there, and the corpus has none. */
        c->len[c->n] = strlen(j->valuestring);
        c->text[c->n++] = strdup(j->valuestring);
        cJSON_Delete(j);
        line = p + 1;
    }
    free(d);
    return 0;
}

/* Encodes every corpus line with the tokenizer at path and compares with ref (one line of ids
 * per corpus line). Returns the number of differing lines (printing the first few). */
static int64_t compare_corpus(const char *path, const char *ref) {
    corpus c;
    if (corpus_load(&c) != 0) {
        mer_test_fail(__FILE__, __LINE__, "cannot read %s", CORPUS);
        return -1;
    }
    mer_tokenizer *t = NULL;
    mer_status s = mer_tokenizer_load(&t, path);
    if (s != MER_OK) {
        mer_test_fail(__FILE__, __LINE__, "load %s: %s", path, mer_last_error());
        corpus_free(&c);
        return -1;
    }
    char *r = slurp(ref, NULL);
    if (!r) {
        mer_test_fail(__FILE__, __LINE__, "cannot read %s", ref);
        mer_tokenizer_free(t);
        corpus_free(&c);
        return -1;
    }
    int64_t bad = 0, ids_total = 0;
    char *line = r;
    for (int64_t i = 0; i < c.n; i++) {
        char *nl = strchr(line, '\n');
        if (!nl) {
            mer_test_fail(__FILE__, __LINE__, "%s: only %lld lines", ref, (long long)i);
            bad++;
            break;
        }
        *nl = '\0';
        int32_t *ids = NULL;
        int64_t n = 0;
        s = mer_tokenizer_encode(t, c.text[i], c.len[i], 1, &ids, &n);
        if (s != MER_OK) {
            if (bad++ < 3)
                mer_test_fail(__FILE__, __LINE__, "%s line %lld: %s", path, (long long)i + 1,
                              mer_last_error());
            line = nl + 1;
            continue;
        }
        int64_t k = 0, diff = 0;
        char *p = line;
        while (*p) {
            char *e;
            long v = strtol(p, &e, 10);
            if (e == p) break;
            if (k >= n || ids[k] != v) diff = 1;
            k++;
            p = e;
        }
        if (k != n) diff = 1;
        ids_total += n;
        if (diff && bad++ < 3) {
            char got[600] = "";
            size_t g = 0;
            for (int64_t q = 0; q < n && g < 500; q++)
                g += (size_t)snprintf(got + g, sizeof got - g, "%d ", ids[q]);
            mer_test_fail(__FILE__, __LINE__, "%s line %lld differs:\n      want %.500s\n      got  %s",
                          path, (long long)i + 1, line, got);
        }
        free(ids);
        line = nl + 1;
    }
    if (bad) printf("    %s: %lld of %lld lines differ\n", path, (long long)bad, (long long)c.n);
    else printf("    %s: %lld lines, %lld ids, 0 differ\n", path, (long long)c.n, (long long)ids_total);
    free(r);
    mer_tokenizer_free(t);
    corpus_free(&c);
    return bad;
}

#define FIX "tests/fixtures/text/"

MER_TEST(tokenizer_wordpiece_lower_exact) {
    CHECK(compare_corpus(FIX "wp_lower/vocab.txt", FIX "wp_lower/ref_ids.txt") == 0);
}
MER_TEST(tokenizer_wordpiece_cased_exact) {
    CHECK(compare_corpus(FIX "wp_cased/vocab.txt", FIX "wp_cased/ref_ids.txt") == 0);
}
MER_TEST(tokenizer_wordpiece_nocjk_exact) {
    CHECK(compare_corpus(FIX "wp_nocjk/vocab.txt", FIX "wp_nocjk/ref_ids.txt") == 0);
}

MER_TEST(tokenizer_wordpiece_api) {
    mer_tokenizer *t = NULL;
    REQUIRE_OK(mer_tokenizer_load(&t, FIX "wp_lower/vocab.txt"));
    CHECK(!strcmp(mer_tokenizer_kind(t), "wordpiece"));
    CHECK(mer_tokenizer_vocab_size(t) > 1000);
    const char *piece = NULL;
    CHECK_OK(mer_tokenizer_decode_piece(t, mer_tokenizer_bos_id(t), &piece));
    CHECK(piece && !strcmp(piece, "[CLS]"));
    CHECK_ERR(mer_tokenizer_decode_piece(t, -1, &piece), MER_ERR_INVALID_ARG, "out of range");
    CHECK_ERR(mer_tokenizer_decode_piece(t, (int32_t)mer_tokenizer_vocab_size(t), &piece),
              MER_ERR_INVALID_ARG, "out of range");
    CHECK(mer_tokenizer_special_count(t) == 5);
    int32_t *ids = NULL, *ids2 = NULL;
    int64_t n = 0, n2 = 0;
    const char *text = "我今天非常开心 Hello!";
    REQUIRE_OK(mer_tokenizer_encode(t, text, strlen(text), 1, &ids, &n));
    REQUIRE_OK(mer_tokenizer_encode(t, text, strlen(text), 0, &ids2, &n2));
    CHECK(n == n2 + 2 && ids[0] == mer_tokenizer_bos_id(t) && ids[n - 1] == mer_tokenizer_eos_id(t));
    CHECK(n2 > 0 && !memcmp(ids + 1, ids2, (size_t)n2 * sizeof *ids));
    free(ids);
    free(ids2);
    /* Empty text: only the specials; no specials: zero ids and a freeable pointer. */
    REQUIRE_OK(mer_tokenizer_encode(t, "", 0, 1, &ids, &n));
    CHECK(n == 2);
    free(ids);
    REQUIRE_OK(mer_tokenizer_encode(t, "", 0, 0, &ids, &n));
    CHECK(n == 0);
    free(ids);
    /* Invalid UTF-8: an error naming the byte offset, for every kind of malformation. */
    const char *bad[] = {"ab\xff", "a\xc3", "\xc0\xaf", "x\xed\xa0\x80", "\xf4\x90\x80\x80",
                         "\x80"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        CHECK_ERR(mer_tokenizer_encode(t, bad[i], strlen(bad[i]), 1, &ids, &n), MER_ERR_FORMAT,
                  "invalid UTF-8 at byte");
    mer_tokenizer_free(t);
    mer_tokenizer_free(NULL);
}

MER_TEST(tokenizer_bad_files) {
    const char *dir = mer_test_tmpdir("tokenizer_bad_files");
    char p[1024];
    mer_tokenizer *t = NULL;
    CHECK_ERR(mer_tokenizer_load(&t, "tests/fixtures/text/no-such-dir"), MER_ERR_IO, "no-such-dir");
    CHECK_ERR(mer_tokenizer_load(&t, dir), MER_ERR_NOT_FOUND, "no tokenizer.json");
    snprintf(p, sizeof p, "%s/vocab.txt", dir);
    mer_test_write(p, "", 0);
    CHECK_ERR(mer_tokenizer_load(&t, p), MER_ERR_FORMAT, "empty vocabulary");
    mer_test_write(p, "[PAD]\nhello\n", 12);
    CHECK_ERR(mer_tokenizer_load(&t, p), MER_ERR_FORMAT, "'[UNK]' is not in the vocabulary");
    mer_test_write(p, "[UNK]\n\xff\xfe\n", 9);
    CHECK_ERR(mer_tokenizer_load(&t, p), MER_ERR_FORMAT, "line 2: invalid UTF-8");
    mer_test_write(p, "[UNK]\nhello\n", 12);
    snprintf(p, sizeof p, "%s/tokenizer_config.json", dir);
    mer_test_write(p, "{\"do_lower_case\": 1", 19);
    snprintf(p, sizeof p, "%s/vocab.txt", dir);
    CHECK_ERR(mer_tokenizer_load(&t, p), MER_ERR_FORMAT, "tokenizer_config.json");
    snprintf(p, sizeof p, "%s/tokenizer_config.json", dir);
    mer_test_write(p, "{\"do_lower_case\": 1}", 20);
    snprintf(p, sizeof p, "%s/vocab.txt", dir);
    CHECK_ERR(mer_tokenizer_load(&t, p), MER_ERR_FORMAT, "'do_lower_case' is not true/false");
    CHECK(t == NULL);
}

MER_TEST(tokenizer_spm_bpe_llama_exact) {
    CHECK(compare_corpus(FIX "spm_bpe_llama", FIX "spm_bpe_llama/ref_ids.txt") == 0);
}
MER_TEST(tokenizer_spm_bpe_nfkc_exact) {
    CHECK(compare_corpus(FIX "spm_bpe_nfkc", FIX "spm_bpe_nfkc/ref_ids.txt") == 0);
}
MER_TEST(tokenizer_spm_unigram_bytefallback_exact) {
    CHECK(compare_corpus(FIX "spm_uni_bf", FIX "spm_uni_bf/ref_ids.txt") == 0);
}
MER_TEST(tokenizer_spm_unigram_nfkc_exact) {
    CHECK(compare_corpus(FIX "spm_uni_nfkc/tokenizer.model", FIX "spm_uni_nfkc/ref_ids.txt") == 0);
}

MER_TEST(tokenizer_spm_api) {
    mer_tokenizer *t = NULL;
    REQUIRE_OK(mer_tokenizer_load(&t, FIX "spm_bpe_llama"));
    CHECK(!strcmp(mer_tokenizer_kind(t), "sentencepiece-bpe"));
    CHECK(mer_tokenizer_vocab_size(t) == 1200);
    CHECK(mer_tokenizer_bos_id(t) == 1 && mer_tokenizer_eos_id(t) == 2 && mer_tokenizer_unk_id(t) == 0);
    const char *piece;
    REQUIRE_OK(mer_tokenizer_decode_piece(t, 3, &piece));
    CHECK(!strcmp(piece, "<sep>"));     /* the user-defined symbols follow the controls */
    REQUIRE_OK(mer_tokenizer_decode_piece(t, 5, &piece));
    CHECK(!strcmp(piece, "<0x00>"));
    /* BOS only (tokenizer_config.json: add_bos_token true, add_eos_token false). */
    int32_t *ids;
    int64_t n;
    REQUIRE_OK(mer_tokenizer_encode(t, "hello", 5, 1, &ids, &n));
    CHECK(n >= 2 && ids[0] == 1 && ids[n - 1] != 2);
    free(ids);
    mer_tokenizer_free(t);
    REQUIRE_OK(mer_tokenizer_load(&t, FIX "spm_uni_nfkc"));
    CHECK(!strcmp(mer_tokenizer_kind(t), "sentencepiece-unigram"));
    mer_tokenizer_free(t);
}

static void write_bytes(const char *path, const void *d, size_t n) {
    CHECK(mer_test_write(path, d, n) == 0);
}

MER_TEST(tokenizer_spm_bad_files) {
    const char *dir = mer_test_tmpdir("tokenizer_spm_bad");
    char p[1024];
    snprintf(p, sizeof p, "%s/tokenizer.model", dir);
    size_t size;
    char *m = slurp(FIX "spm_bpe_llama/tokenizer.model", &size);
    REQUIRE(m && size > 1000);
    mer_tokenizer *t = NULL;
    /* Truncated anywhere: a clear error, never a crash (the fuzz target covers the rest). */
    const size_t cuts[] = {1, 2, 7, 100, 999, size / 2, size - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof *cuts; i++) {
        write_bytes(p, m, cuts[i]);
        mer_status s = mer_tokenizer_load(&t, p);
        CHECK(s == MER_ERR_FORMAT);
        CHECK(strstr(mer_last_error(), "tokenizer.model") != NULL);
        CHECK(t == NULL);
    }
    free(m);
    write_bytes(p, "not a model at all", 18);
    CHECK_ERR(mer_tokenizer_load(&t, p), MER_ERR_FORMAT, "tokenizer.model");
    /* ModelProto { pieces { piece "<unk>" type UNKNOWN } trainer_spec { model_type WORD } } */
    const unsigned char word[] = {0x0a, 0x09, 0x0a, 0x05, '<', 'u', 'n', 'k', '>', 0x18, 0x02,
                                  0x12, 0x02, 0x18, 0x03};
    write_bytes(p, word, sizeof word);
    CHECK_ERR(mer_tokenizer_load(&t, p), MER_ERR_UNSUPPORTED, "model_type WORD");
    /* The same as BPE but without an unknown piece (type NORMAL). */
    const unsigned char nounk[] = {0x0a, 0x09, 0x0a, 0x05, '<', 'u', 'n', 'k', '>', 0x18, 0x01,
                                   0x12, 0x02, 0x18, 0x02};
    write_bytes(p, nounk, sizeof nounk);
    CHECK_ERR(mer_tokenizer_load(&t, p), MER_ERR_FORMAT, "no unknown piece");
    /* A byte piece while byte_fallback is off. */
    const unsigned char byte[] = {0x0a, 0x09, 0x0a, 0x05, '<', 'u', 'n', 'k', '>', 0x18, 0x02,
                                  0x0a, 0x0a, 0x0a, 0x06, '<', '0', 'x', '4', '1', '>', 0x18, 0x06};
    write_bytes(p, byte, sizeof byte);
    CHECK_ERR(mer_tokenizer_load(&t, p), MER_ERR_FORMAT, "byte_fallback is off");
    /* A length running past the end. */
    const unsigned char past[] = {0x0a, 0x7f, 0x0a};
    write_bytes(p, past, sizeof past);
    CHECK_ERR(mer_tokenizer_load(&t, p), MER_ERR_FORMAT, "truncated or malformed protobuf");
    CHECK(t == NULL);
}

MER_TEST(tokenizer_bpe_qwen2_exact) {
    CHECK(compare_corpus(FIX "bpe_qwen2", FIX "bpe_qwen2/ref_ids.txt") == 0);
}
MER_TEST(tokenizer_bpe_llama3_exact) {
    CHECK(compare_corpus(FIX "bpe_llama3/tokenizer.json", FIX "bpe_llama3/ref_ids.txt") == 0);
}
/* The BERT-style tokenizer.json beside each vocab.txt: the same ids through the other reader. */
MER_TEST(tokenizer_wordpiece_json_exact) {
    CHECK(compare_corpus(FIX "wp_lower", FIX "wp_lower/ref_ids.txt") == 0);
    CHECK(compare_corpus(FIX "wp_cased/tokenizer.json", FIX "wp_cased/ref_ids.txt") == 0);
    CHECK(compare_corpus(FIX "wp_nocjk/tokenizer.json", FIX "wp_nocjk/ref_ids.txt") == 0);
}

static mer_status load_json_text(const char *dir, const char *json) {
    char p[1024];
    snprintf(p, sizeof p, "%s/tokenizer.json", dir);
    mer_test_write(p, json, strlen(json));
    mer_tokenizer *t = NULL;
    mer_status s = mer_tokenizer_load(&t, p);
    mer_tokenizer_free(t);
    return s;
}

MER_TEST(tokenizer_json_bad_files) {
    const char *dir = mer_test_tmpdir("tokenizer_json_bad");
    char buf[1024];
    const char *v = "\"vocab\": {\"a\": 0, \"b\": 1, \"ab\": 2}";
    CHECK_ERR(load_json_text(dir, "{\"model\": "), MER_ERR_FORMAT, "tokenizer.json");
    CHECK_ERR(load_json_text(dir, "[]"), MER_ERR_FORMAT, "no 'model' object");
    snprintf(buf, sizeof buf, "{\"model\": {\"type\": \"Unigram\", %s}}", v);
    CHECK_ERR(load_json_text(dir, buf), MER_ERR_UNSUPPORTED, "model 'Unigram' is not supported");
    snprintf(buf, sizeof buf, "{\"normalizer\": {\"type\": \"Precompiled\"}, \"pre_tokenizer\": "
             "{\"type\": \"ByteLevel\"}, \"model\": {\"type\": \"BPE\", %s, \"merges\": []}}", v);
    CHECK_ERR(load_json_text(dir, buf), MER_ERR_UNSUPPORTED, "normalizer 'Precompiled' is not supported");
    snprintf(buf, sizeof buf, "{\"pre_tokenizer\": {\"type\": \"Metaspace\"}, \"model\": "
             "{\"type\": \"BPE\", %s, \"merges\": []}}", v);
    CHECK_ERR(load_json_text(dir, buf), MER_ERR_UNSUPPORTED, "pre_tokenizer 'Metaspace' is not supported");
    snprintf(buf, sizeof buf, "{\"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": {\"Regex\": "
             "\"\\\\w+\"}, \"behavior\": \"Isolated\"}, \"model\": {\"type\": \"BPE\", %s, \"merges\": []}}", v);
    CHECK_ERR(load_json_text(dir, buf), MER_ERR_UNSUPPORTED, "Split regex '\\w+' is not supported");
    snprintf(buf, sizeof buf, "{\"pre_tokenizer\": {\"type\": \"ByteLevel\"}, \"model\": {\"type\": "
             "\"BPE\", \"byte_fallback\": true, %s, \"merges\": []}}", v);
    CHECK_ERR(load_json_text(dir, buf), MER_ERR_UNSUPPORTED, "byte_fallback");
    snprintf(buf, sizeof buf, "{\"pre_tokenizer\": {\"type\": \"ByteLevel\"}, \"post_processor\": "
             "{\"type\": \"Weird\"}, \"model\": {\"type\": \"BPE\", %s, \"merges\": [\"a b\"]}}", v);
    CHECK_ERR(load_json_text(dir, buf), MER_ERR_UNSUPPORTED, "post_processor 'Weird' is not supported");
    snprintf(buf, sizeof buf, "{\"pre_tokenizer\": {\"type\": \"ByteLevel\"}, \"model\": {\"type\": "
             "\"BPE\", %s, \"merges\": [\"a c\"]}}", v);
    CHECK_ERR(load_json_text(dir, buf), MER_ERR_FORMAT, "not in the vocabulary");
    snprintf(buf, sizeof buf, "{\"pre_tokenizer\": {\"type\": \"ByteLevel\"}, \"model\": {\"type\": "
             "\"BPE\", \"vocab\": {\"a\": 0, \"b\": 0}, \"merges\": []}}");
    CHECK_ERR(load_json_text(dir, buf), MER_ERR_FORMAT, "id 0 is given to both");
    snprintf(buf, sizeof buf, "{\"pre_tokenizer\": {\"type\": \"ByteLevel\"}, \"model\": {\"type\": "
             "\"BPE\", \"vocab\": {\"a\": -1}, \"merges\": []}}");
    CHECK_ERR(load_json_text(dir, buf), MER_ERR_FORMAT, "no valid id");
    /* one id near 2^31: a table of 2^31 pieces (tens of GB) is refused before it is allocated */
    snprintf(buf, sizeof buf, "{\"added_tokens\": [{\"id\": 2147483646, \"content\": \"<x>\"}], "
             "\"pre_tokenizer\": {\"type\": \"ByteLevel\"}, \"model\": {\"type\": \"BPE\", %s, \"merges\": []}}", v);
    CHECK_ERR(load_json_text(dir, buf), MER_ERR_FORMAT, "ids unused");
    snprintf(buf, sizeof buf, "{\"added_tokens\": [{\"id\": 3, \"content\": \"x\", \"single_word\": true}], "
             "\"pre_tokenizer\": {\"type\": \"ByteLevel\"}, \"model\": {\"type\": \"BPE\", %s, \"merges\": []}}", v);
    CHECK_ERR(load_json_text(dir, buf), MER_ERR_UNSUPPORTED, "single_word");
    /* A minimal valid file: "ab" merges, an added token is matched in the raw text. */
    snprintf(buf, sizeof buf, "{\"added_tokens\": [{\"id\": 3, \"content\": \"<x>\", \"special\": true}], "
             "\"pre_tokenizer\": {\"type\": \"ByteLevel\", \"add_prefix_space\": false}, "
             "\"model\": {\"type\": \"BPE\", %s, \"merges\": [\"a b\"]}}", v);
    char p[1024];
    snprintf(p, sizeof p, "%s/tokenizer.json", dir);
    mer_test_write(p, buf, strlen(buf));
    mer_tokenizer *t = NULL;
    REQUIRE_OK(mer_tokenizer_load(&t, dir));
    int32_t *ids;
    int64_t n;
    REQUIRE_OK(mer_tokenizer_encode(t, "ab<x>ba", 7, 1, &ids, &n));
    CHECK(n == 4 && ids[0] == 2 && ids[1] == 3 && ids[2] == 1 && ids[3] == 0);
    free(ids);
    CHECK(mer_tokenizer_special_count(t) == 1 && mer_tokenizer_vocab_size(t) == 4);
    mer_tokenizer_free(t);
}

/* A custom rule table (multi-character rules, longest match first): the charsmap trie. */
MER_TEST(tokenizer_spm_rules_exact) {
    CHECK(compare_corpus(FIX "spm_rules", FIX "spm_rules/ref_ids.txt") == 0);
}

MER_TEST(tokenizer_cli_inspect) {
    char out[4096];
    int rc = mer_test_run(out, sizeof out, "%s inspect " FIX "wp_lower/vocab.txt "
                          FIX "spm_bpe_llama/tokenizer.model " FIX "bpe_qwen2/tokenizer.json",
                          mer_test_bin());
    CHECK(rc == 0);
    CHECK(strstr(out, "tokenizer wordpiece, vocabulary 1410") != NULL);
    CHECK(strstr(out, "[CLS]=21 [SEP]=22 [UNK]=20 [PAD]=0 [MASK]=23") != NULL);
    CHECK(strstr(out, "tokenizer sentencepiece-bpe, vocabulary 1200") != NULL);
    CHECK(strstr(out, "bos 1 <s>, eos 2 </s>, unk 0 <unk>") != NULL);
    CHECK(strstr(out, "tokenizer bpe-bytelevel, vocabulary 1759") != NULL);
    CHECK(strstr(out, "<|im_start|>=1757") != NULL);
    CHECK(strstr(out, "add_special adds: nothing") != NULL);
    const char *dir = mer_test_tmpdir("tokenizer_cli_inspect");
    char p[1024];
    snprintf(p, sizeof p, "%s/tokenizer.model", dir);
    mer_test_write(p, "\x0a\x7f", 2);
    rc = mer_test_run(out, sizeof out, "%s inspect %s", mer_test_bin(), p);
    CHECK(rc == 1);
    CHECK(strstr(out, "tokenizer.model: truncated or malformed protobuf") != NULL);
    CHECK(strchr(out, '\n') == strrchr(out, '\n'));   /* one line */
}

/* LLaMA-2's layout: a tokenizer.json this reader refuses (Metaspace, byte-fallback BPE) beside a
 * tokenizer.model: the directory loads the SentencePiece file, with the same ids. Without the
 * tokenizer.model, the refusal names the component. */
MER_TEST(tokenizer_dir_fallback) {
    const char *dir = mer_test_tmpdir("tokenizer_dir_fallback");
    char p[1024];
    snprintf(p, sizeof p, "%s/tokenizer.json", dir);
    const char *js = "{\"pre_tokenizer\": {\"type\": \"Metaspace\"}, \"model\": {\"type\": \"BPE\", "
                     "\"byte_fallback\": true, \"vocab\": {\"a\": 0}, \"merges\": []}}";
    mer_test_write(p, js, strlen(js));
    mer_tokenizer *t = NULL;
    CHECK_ERR(mer_tokenizer_load(&t, dir), MER_ERR_UNSUPPORTED, "pre_tokenizer 'Metaspace'");
    size_t size;
    char *m = slurp(FIX "spm_bpe_llama/tokenizer.model", &size);
    REQUIRE(m);
    snprintf(p, sizeof p, "%s/tokenizer.model", dir);
    mer_test_write(p, m, size);
    free(m);
    REQUIRE_OK(mer_tokenizer_load(&t, dir));
    CHECK(!strcmp(mer_tokenizer_kind(t), "sentencepiece-bpe"));
    mer_tokenizer *ref = NULL;
    REQUIRE_OK(mer_tokenizer_load(&ref, FIX "spm_bpe_llama/tokenizer.model"));
    const char *text = "我今天非常开心 Hello  world 2024!";
    int32_t *a, *b;
    int64_t na, nb;
    REQUIRE_OK(mer_tokenizer_encode(t, text, strlen(text), 1, &a, &na));
    REQUIRE_OK(mer_tokenizer_encode(ref, text, strlen(text), 1, &b, &nb));
    CHECK(na == nb && !memcmp(a, b, (size_t)na * sizeof *a));
    free(a);
    free(b);
    mer_tokenizer_free(t);
    mer_tokenizer_free(ref);
}

/* Lower-casing a WordPiece text follows Final_Sigma as transformers.js (toLowerCase) and the Rust
 * BertNormalizer do: a word-final capital sigma becomes ς, over the whole normalised text (so
 * punctuation and combining marks between letters count as case-ignorable). Expected lower
 * cases from Python's str.lower() and node's toLowerCase (they agree on these). */
MER_TEST(tokenizer_wordpiece_final_sigma) {
    const char *d = mer_test_tmpdir("tok_sigma");
    char path[512];
    snprintf(path, sizeof path, "%s/vocab.txt", d);
    const char *vocab = "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nοδος\nοδοσ\nκαι\nσας\nσασ\nασ\nας\n'\nβ\n.\na\nσ\nς\n1\n##σ\n##ς\n";
    REQUIRE(mer_test_write(path, vocab, strlen(vocab)) == 0);
    mer_tokenizer *t = NULL;
    REQUIRE_OK(mer_tokenizer_load(&t, path));
    static const struct {
        const char *text;
        int32_t ids[4];
        int64_t n;
    } cases[] = {
        {"ΟΔΟΣ ΚΑΙ ΣΑΣ", {5, 7, 8}, 3}, /* οδος και σας */
        {"ΑΣ'Β", {10, 12, 13}, 3},      /* ασ ' β: the apostrophe is case-ignorable, β follows */
        {"ΑΣ.", {11, 14}, 2},           /* ας . */
        {"A.Σ", {15, 14, 17}, 3},       /* a . ς: a cased letter before, across the period */
        {"1Σ", {18, 19}, 2},            /* 1 ##σ: a digit is not cased */
        {"Σ", {16}, 1},                 /* alone: σ */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        int32_t *ids = NULL;
        int64_t n = 0;
        REQUIRE_OK(mer_tokenizer_encode(t, cases[i].text, strlen(cases[i].text), 0, &ids, &n));
        int same = n == cases[i].n;
        for (int64_t k = 0; same && k < n; k++) same = ids[k] == cases[i].ids[k];
        if (!same) printf("    %s: %lld ids, first %d\n", cases[i].text, (long long)n, n ? ids[0] : -1);
        CHECK(same);
        free(ids);
    }
    mer_tokenizer_free(t);
}
