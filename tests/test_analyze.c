/*
 * test_analyze.c -- `mer analyze` and its library parts: the label mapping onto the shared
 * MER2024 classes, late fusion and the timeline arithmetic (hand-computed values), the text
 * lexicon baseline (sentences with known answers, negation, German umlauts), and the CLI on
 * clips made here with the ffmpeg CLI: an EmoDB recording muxed with the astronaut still
 * (text and JSON output, timeline, audio-only, video-only, no stream). The speech model is a
 * tiny run trained in-process on 14 EmoDB files (its accuracy is not the point here).
 */
#include "test.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- label mapping --------------------------------------------------------------------- */

MER_TEST(analyze_shared_classes) {
    const char *want[] = {"neutral", "angry", "happy", "sad", "worried", "surprise"};
    for (int k = 0; k < MER_SHARED_CLASSES; k++) {
        CHECK(strcmp(mer_shared_class_name(k), want[k]) == 0);
        CHECK(mer_shared_class_index(want[k]) == k);
    }
    CHECK(strcmp(mer_shared_class_name(6), "?") == 0);
    CHECK(mer_shared_class_index("boredom") == -1);
}

MER_TEST(analyze_label_map_rows) {
    float r[MER_SHARED_CLASSES];
    REQUIRE_OK(mer_label_map_row("boredom", r));
    CHECK_NEAR(r[0], 0.75, 1e-7);
    CHECK_NEAR(r[3], 0.25, 1e-7);
    REQUIRE_OK(mer_label_map_row("Fearful", r)); /* case-insensitive */
    CHECK(r[4] == 1.0f);
    REQUIRE_OK(mer_label_map_row("disgusted", r));
    CHECK(r[1] == 1.0f);
    REQUIRE_OK(mer_label_map_row("surprised", r));
    CHECK(r[5] == 1.0f);
    /* every row sums to 1, for every class name of the three label sets */
    const char *names[] = {"anger", "boredom", "disgust", "fear", "happiness", "sadness", "neutral",
                           "happy", "sad", "angry", "fearful", "disgusted", "surprised", "worried",
                           "surprise"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        REQUIRE_OK(mer_label_map_row(names[i], r));
        double s = 0;
        for (int k = 0; k < MER_SHARED_CLASSES; k++) s += r[k];
        CHECK_NEAR(s, 1.0, 1e-6);
    }
    CHECK_ERR(mer_label_map_row("contentment", r), MER_ERR_NOT_FOUND, "contentment");
}

MER_TEST(analyze_label_map_probs) {
    /* EmoDB in the run's (sorted) order */
    const char *emodb[] = {"anger", "boredom", "disgust", "fear", "happiness", "neutral", "sadness"};
    const float p[] = {0.1f, 0.2f, 0.1f, 0.1f, 0.3f, 0.1f, 0.1f};
    float out[MER_SHARED_CLASSES];
    REQUIRE_OK(mer_label_map_probs(emodb, 7, p, out));
    /* neutral 0.2*0.75 + 0.1, angry 0.1 + 0.1, happy 0.3, sad 0.2*0.25 + 0.1, worried 0.1 */
    const double want[] = {0.25, 0.2, 0.3, 0.15, 0.1, 0.0};
    for (int k = 0; k < MER_SHARED_CLASSES; k++) CHECK_NEAR(out[k], want[k], 1e-6);
    /* face-api */
    const char *face[] = {"neutral", "happy", "sad", "angry", "fearful", "disgusted", "surprised"};
    const float q[] = {0.1f, 0.2f, 0.1f, 0.1f, 0.2f, 0.1f, 0.2f};
    REQUIRE_OK(mer_label_map_probs(face, 7, q, out));
    const double want2[] = {0.1, 0.2, 0.2, 0.1, 0.2, 0.2};
    for (int k = 0; k < MER_SHARED_CLASSES; k++) CHECK_NEAR(out[k], want2[k], 1e-6);
    /* unnormalised input is renormalised */
    const float u[] = {2, 0, 0, 0, 2, 0, 0};
    REQUIRE_OK(mer_label_map_probs(face, 7, u, out));
    CHECK_NEAR(out[0], 0.5, 1e-6);
    CHECK_NEAR(out[4], 0.5, 1e-6);
    const char *bad[] = {"neutral", "contempt?"};
    CHECK_ERR(mer_label_map_probs(bad, 2, p, out), MER_ERR_NOT_FOUND, "contempt?");
    const float neg[] = {0.5f, -0.1f};
    CHECK_ERR(mer_label_map_probs(face, 2, neg, out), MER_ERR_NUMERIC, "happy");
    const float zero[] = {0, 0};
    CHECK_ERR(mer_label_map_probs(face, 2, zero, out), MER_ERR_INVALID_ARG, NULL);
}

/* ---- fusion and timeline ------------------------------------------------------------------ */

MER_TEST(analyze_late_fuse) {
    const float a[] = {0.5f, 0.5f, 0, 0, 0, 0};
    const float f[] = {0, 0.25f, 0.75f, 0, 0, 0};
    const float t[] = {0, 0, 0, 1, 0, 0};
    const float *d[3] = {a, f, t};
    double w[3] = {1, 1, 0.5};
    float out[MER_SHARED_CLASSES];
    int32_t used = 0;
    REQUIRE_OK(mer_late_fuse(d, w, 3, MER_SHARED_CLASSES, out, &used));
    CHECK(used == 3);
    /* (a + f + 0.5 t) / 2.5 */
    const double want[] = {0.2, 0.3, 0.3, 0.2, 0, 0};
    for (int k = 0; k < MER_SHARED_CLASSES; k++) CHECK_NEAR(out[k], want[k], 1e-6);
    /* renormalised over the modalities present: face absent */
    d[1] = NULL;
    REQUIRE_OK(mer_late_fuse(d, w, 3, MER_SHARED_CLASSES, out, &used));
    CHECK(used == 2);
    const double want2[] = {0.5 / 1.5, 0.5 / 1.5, 0, 0.5 / 1.5, 0, 0};
    for (int k = 0; k < MER_SHARED_CLASSES; k++) CHECK_NEAR(out[k], want2[k], 1e-6);
    /* weight 0 drops a modality; an unnormalised one is normalised first */
    const float a2[] = {1, 1, 0, 0, 0, 0};
    d[0] = a2;
    d[1] = f;
    w[2] = 0;
    REQUIRE_OK(mer_late_fuse(d, w, 3, MER_SHARED_CLASSES, out, &used));
    CHECK(used == 2);
    CHECK_NEAR(out[0], 0.25, 1e-6);
    CHECK_NEAR(out[1], 0.375, 1e-6);
    CHECK_NEAR(out[2], 0.375, 1e-6);
    const float *none[3] = {NULL, NULL, NULL};
    CHECK_ERR(mer_late_fuse(none, w, 3, MER_SHARED_CLASSES, out, &used), MER_ERR_NOT_FOUND, "no modality");
    w[0] = -1;
    CHECK_ERR(mer_late_fuse(d, w, 3, MER_SHARED_CLASSES, out, NULL), MER_ERR_INVALID_ARG, "weight");
    w[0] = 1;
    const float nan_[] = {NAN, 0, 0, 0, 0, 0};
    d[1] = nan_;
    CHECK_ERR(mer_late_fuse(d, w, 3, MER_SHARED_CLASSES, out, NULL), MER_ERR_NUMERIC, NULL);
    CHECK(mer_probs_argmax(a, 0) == -1);
    const float tie[] = {0.4f, 0.4f, 0.2f};
    CHECK(mer_probs_argmax(tie, 3) == 0);
}

MER_TEST(analyze_timeline_math) {
    CHECK(mer_timeline_rows(2.0) == 2);
    CHECK(mer_timeline_rows(2.023) == 2); /* a 23 ms tail gets no row */
    CHECK(mer_timeline_rows(2.3) == 3);
    CHECK(mer_timeline_rows(0.01) == 1);
    CHECK(mer_timeline_rows(0) == 0);
    CHECK(mer_timeline_rows(NAN) == 0);
    double a, b;
    mer_timeline_window(0, 2.0, 2.0, &a, &b);
    CHECK_NEAR(a, 0.0, 1e-12);
    CHECK_NEAR(b, 1.5, 1e-12);
    mer_timeline_window(1, 2.0, 2.0, &a, &b);
    CHECK_NEAR(a, 0.5, 1e-12);
    CHECK_NEAR(b, 2.0, 1e-12);
    mer_timeline_window(2, 2.0, 5.0, &a, &b);
    CHECK_NEAR(a, 1.5, 1e-12);
    CHECK_NEAR(b, 3.5, 1e-12);
    CHECK(mer_timeline_row(0.0, 2) == 0);
    CHECK(mer_timeline_row(0.99, 2) == 0);
    CHECK(mer_timeline_row(1.0, 2) == 1);
    CHECK(mer_timeline_row(2.0, 2) == 1); /* the last frame at the very end */
    CHECK(mer_timeline_row(-0.1, 2) == 0);
}

/* ---- text lexicon ---------------------------------------------------------------------------- */

static int top(const mer_text_scores *s) { return mer_probs_argmax(s->probs, MER_SHARED_CLASSES); }

static double sum6(const float *p) {
    double s = 0;
    for (int k = 0; k < MER_SHARED_CLASSES; k++) s += p[k];
    return s;
}

MER_TEST(analyze_lexicon_known_sentences) {
    mer_text_scores s;
    const struct {
        const char *text;
        const char *want;
        int cues;
    } cases[] = {
        {"I am so happy today, this is wonderful!", "happy", 2},
        {"Ich bin heute sehr traurig und einsam.", "sad", 2},
        {"I'm furious, this is completely unacceptable.", "angry", 2},
        {"Ich habe große Angst vor morgen.", "worried", 1},
        {"Wow, what a surprise!", "surprise", 2},
        {"DAS IST EINE ÜBERRASCHUNG", "surprise", 1}, /* upper-case umlaut folded */
        {"It was an ordinary day, everything normal.", "neutral", 2},
        {"Ich bin WÜTEND!!!", "angry", 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        REQUIRE_OK(mer_text_lexicon_score(cases[i].text, &s));
        if (strcmp(mer_shared_class_name(top(&s)), cases[i].want) || s.cues != cases[i].cues)
            mer_test_fail(__FILE__, __LINE__, "'%s': top %s with %d cues, want %s with %d", cases[i].text,
                          mer_shared_class_name(top(&s)), s.cues, cases[i].want, cases[i].cues);
        CHECK_NEAR(sum6(s.probs), 1.0, 1e-6);
        CHECK(s.negated == 0);
    }
    /* hand-computed smoothing: one happy cue -> (1 + 0.5) / (1 + 3) */
    REQUIRE_OK(mer_text_lexicon_score("glad", &s));
    CHECK_NEAR(s.probs[2], 0.375, 1e-6);
    CHECK_NEAR(s.probs[0], 0.125, 1e-6);
    CHECK(s.words == 1);
}

MER_TEST(analyze_lexicon_negation_and_no_cue) {
    mer_text_scores s;
    REQUIRE_OK(mer_text_lexicon_score("I am not happy with this.", &s));
    CHECK(s.cues == 1 && s.negated == 1);
    CHECK(strcmp(mer_shared_class_name(top(&s)), "sad") == 0);
    REQUIRE_OK(mer_text_lexicon_score("Ich bin nicht glücklich.", &s));
    CHECK(strcmp(mer_shared_class_name(top(&s)), "sad") == 0 && s.negated == 1);
    /* "keine Sorge": reassurance, half neutral, half happy; worried gets only smoothing */
    REQUIRE_OK(mer_text_lexicon_score("Keine Sorge.", &s));
    CHECK(s.negated == 1);
    CHECK_NEAR(s.votes[0], 0.5, 1e-6);
    CHECK_NEAR(s.votes[2], 0.5, 1e-6);
    CHECK_NEAR(s.probs[4], 0.5 / 4.0, 1e-6);
    /* don't (and don’t) negate; a clause break ends the scope */
    REQUIRE_OK(mer_text_lexicon_score("I don't hate you, I am furious", &s));
    CHECK(s.cues == 2 && s.negated == 1);
    CHECK_NEAR(s.votes[0], 1.0, 1e-6); /* not hate -> neutral */
    CHECK_NEAR(s.votes[1], 1.0, 1e-6); /* furious, outside the scope */
    REQUIRE_OK(mer_text_lexicon_score("I don\xe2\x80\x99t hate you", &s));
    CHECK(s.negated == 1);
    /* beyond 3 words the negation no longer reaches */
    REQUIRE_OK(mer_text_lexicon_score("never in all those years happy", &s));
    CHECK(s.negated == 0 && top(&s) == 2);
    REQUIRE_OK(mer_text_lexicon_score("never really happy", &s));
    CHECK(s.negated == 1 && top(&s) == 3);
    /* no cue word: uniform */
    REQUIRE_OK(mer_text_lexicon_score("The meeting is on Tuesday at ten.", &s));
    CHECK(s.cues == 0 && s.words == 7);
    for (int k = 0; k < MER_SHARED_CLASSES; k++) CHECK_NEAR(s.probs[k], 1.0 / 6, 1e-6);
    REQUIRE_OK(mer_text_lexicon_score("", &s));
    CHECK(s.cues == 0 && s.words == 0);
    /* junk bytes do not hang or crash */
    REQUIRE_OK(mer_text_lexicon_score("\xff\xfe \xc3 \xe2\x80 happy \xf0\x9f\x98\x80", &s));
    CHECK(s.cues == 1);
    /* random bytes (ASan run): no overrun, always a distribution */
    uint64_t x = 88172645463325252ull;
    char buf[96];
    for (int it = 0; it < 1000; it++) {
        size_t len = (size_t)(it % 95);
        for (size_t i = 0; i < len; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            buf[i] = (char)(x % 7 == 0 ? ' ' : (x >> 8) % 255 + 1);
        }
        buf[len] = '\0';
        REQUIRE_OK(mer_text_lexicon_score(buf, &s));
        CHECK_NEAR(sum6(s.probs), 1.0, 1e-5);
    }
    CHECK(mer_text_lexicon_lookup("traurigen") == 3); /* stem traurig* */
    CHECK(mer_text_lexicon_lookup("table") == -1);
    CHECK_ERR(mer_text_lexicon_score(NULL, &s), MER_ERR_INVALID_ARG, NULL);
}

/* ---- CLI ----------------------------------------------------------------------------------- */

static char model_dir[PATH_MAX];
static char clip_dir[PATH_MAX];

static int sh(const char *what, const char *cmd) {
    char log[4096];
    int rc = mer_test_run(log, sizeof log, "%s", cmd);
    if (rc) mer_test_fail(__FILE__, __LINE__, "%s failed (%d): %s", what, rc, log);
    return rc;
}

/* A tiny speech model: 2 EmoDB files per class, standardised functionals, folds = 1. Its
 * config.json records the recipe with the standardisation as `mer demo` does. */
static int ensure_model(void) {
    if (model_dir[0]) return 0;
    const char *files[] = {"03a01Wa", "03a02Wb", "03a04Lc", "08a01Lc", "03b10Ec", "09a01Ea",
                           "03a04Ad", "08a01Ab", "03a01Fa", "03a02Fc", "03a01Nc", "03a02Nc",
                           "03a02Ta", "08a02Tb"};
    const char *labels[] = {"anger", "anger", "boredom", "boredom", "disgust", "disgust", "fear",
                            "fear", "happiness", "happiness", "neutral", "neutral", "sadness", "sadness"};
    const char *classes[] = {"anger", "boredom", "disgust", "fear", "happiness", "neutral", "sadness"};
    enum { N = 14 };
    mer_acoustic_recipe r = mer_acoustic_default_recipe();
    int32_t D = mer_acoustic_functional_dim(&r.params);
    float *X = calloc((size_t)N * D, sizeof *X);
    double *mu = calloc((size_t)D, sizeof *mu), *sd = calloc((size_t)D, sizeof *sd);
    char *recipe = NULL, *full = NULL;
    mer_dataset *ds = NULL;
    int rc = -1;
    if (!X || !mu || !sd) goto out;
    for (int i = 0; i < N; i++) {
        char p[256];
        snprintf(p, sizeof p, "data/emodb/flac/%s.flac", files[i]);
        float *f = NULL;
        int32_t nd = 0;
        int64_t shp[2];
        mer_status s = mer_acoustic_extract_file(&r, p, &f, &nd, shp);
        if (s) {
            mer_test_fail(__FILE__, __LINE__, "%s: %s", p, mer_last_error());
            goto out;
        }
        memcpy(X + (size_t)i * D, f, (size_t)D * sizeof *f);
        free(f);
    }
    if (mer_column_stats(X, N, D, mu, sd)) goto out;
    for (int i = 0; i < N; i++)
        for (int d = 0; d < D; d++) X[i * D + d] = (float)((X[i * D + d] - mu[d]) / (sd[d] > 1e-12 ? sd[d] : 1.0));
    if (mer_acoustic_recipe_to_json(&r, &recipe)) goto out;
    size_t cap = strlen(recipe) + (size_t)D * 64 + 64, len;
    full = malloc(cap);
    if (!full) goto out;
    len = (size_t)snprintf(full, cap, "%.*s, \"norm\": {\"mean\": [", (int)(strlen(recipe) - 1), recipe);
    for (int d = 0; d < D; d++) len += (size_t)snprintf(full + len, cap - len, "%s%.9g", d ? ", " : "", mu[d]);
    len += (size_t)snprintf(full + len, cap - len, "], \"std\": [");
    for (int d = 0; d < D; d++)
        len += (size_t)snprintf(full + len, cap - len, "%s%.9g", d ? ", " : "", sd[d] > 1e-12 ? sd[d] : 1.0);
    snprintf(full + len, cap - len, "]}}");
    const char *mods[] = {"acoustic"};
    if (mer_dataset_init(&ds, classes, 7, mods, 1)) goto out;
    for (int i = 0; i < N; i++) {
        int32_t lab = 0;
        while (strcmp(classes[lab], labels[i])) lab++;
        mer_tensor t;
        int64_t shp[1] = {D};
        mer_tensor_view(&t, X + (size_t)i * D, MER_DTYPE_F32, 1, shp);
        if (mer_dataset_add(ds, files[i], lab, NULL, 0, &t)) goto out;
    }
    mer_train_params tp = mer_train_default_params();
    tp.folds = 1;
    tp.epochs = 30;
    tp.hidden = 16;
    tp.batch = 7;
    tp.plots = 0;
    tp.checkpoint_every = 0;
    tp.recipe_json = full;
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s/model", mer_test_tmpdir("analyze_model"));
    if (mer_train_run(ds, NULL, &tp, dir, NULL)) {
        mer_test_fail(__FILE__, __LINE__, "training the tiny model: %s", mer_last_error());
        goto out;
    }
    if (!realpath(dir, model_dir)) goto out;
    rc = 0;
out:
    if (rc && !model_dir[0]) mer_test_fail(__FILE__, __LINE__, "cannot build the tiny speech model");
    if (rc) model_dir[0] = '\0';
    mer_dataset_free(ds);
    free(recipe);
    free(full);
    free(X);
    free(mu);
    free(sd);
    return rc;
}

/* clip.mp4 (EmoDB 03a01Fa, happy speech, + the astronaut still, 2.0 s), audio.flac,
 * video.mp4 (no audio), subs.mkv (a subtitle stream only). */
static int ensure_clips(void) {
    if (clip_dir[0]) return 0;
    char dir[PATH_MAX], cmd[4 * PATH_MAX + 512];
    if (!realpath(mer_test_tmpdir("analyze_clips"), dir)) return -1;
    snprintf(cmd, sizeof cmd,
             "ffmpeg -nostdin -hide_banner -loglevel error -y -loop 1 -framerate 10 -t 2 "
             "-i tests/fixtures/image/astronaut.png -i data/emodb/flac/03a01Fa.flac -t 2 "
             "-vf scale=256:256,format=yuv420p -c:v mpeg4 -q:v 5 -c:a aac '%s/clip.mp4'", dir);
    if (sh("ffmpeg clip", cmd)) return -1;
    snprintf(cmd, sizeof cmd, "cp data/emodb/flac/03a01Fa.flac '%s/audio.flac'", dir);
    if (sh("cp", cmd)) return -1;
    snprintf(cmd, sizeof cmd,
             "ffmpeg -nostdin -hide_banner -loglevel error -y -loop 1 -framerate 10 -t 2 "
             "-i tests/fixtures/image/astronaut.png -vf scale=256:256,format=yuv420p -c:v mpeg4 "
             "-q:v 5 '%s/video.mp4'", dir);
    if (sh("ffmpeg video", cmd)) return -1;
    snprintf(cmd, sizeof cmd,
             "printf '1\\n00:00:00,000 --> 00:00:01,000\\nhello\\n\\n' > '%s/subs.srt' && "
             "ffmpeg -nostdin -hide_banner -loglevel error -y -i '%s/subs.srt' '%s/subs.mkv'",
             dir, dir, dir);
    if (sh("ffmpeg subtitles", cmd)) return -1;
    snprintf(clip_dir, sizeof clip_dir, "%s", dir);
    return 0;
}

static char outbuf[1 << 17];

/* Run `mer analyze ARGS` with stderr discarded (JSON) or kept; returns the exit code. */
static int analyze(int keep_stderr, const char *args) {
    return mer_test_run(outbuf, sizeof outbuf, "%s analyze %s%s", mer_test_bin(), args,
                        keep_stderr ? "" : " 2>/dev/null");
}

static mer_json *parse_out(void) {
    mer_json *j = NULL;
    if (mer_json_parse(&j, outbuf, strlen(outbuf), "analyze output")) {
        mer_test_fail(__FILE__, __LINE__, "JSON: %s\n%s", mer_last_error(), outbuf);
        return NULL;
    }
    return j;
}

/* The distribution object at path sums to 1 (each of the six labels present). */
static void check_dist(const mer_json *j, const char *path) {
    double s = 0;
    char key[256];
    for (int k = 0; k < MER_SHARED_CLASSES; k++) {
        double v = -1;
        snprintf(key, sizeof key, "%s.%s", path, mer_shared_class_name(k));
        if (mer_json_get_double(j, key, &v)) mer_test_fail(__FILE__, __LINE__, "%s missing", key);
        CHECK(v >= 0 && v <= 1);
        s += v;
    }
    if (fabs(s - 1) > 1e-4) mer_test_fail(__FILE__, __LINE__, "%s sums to %.6f", path, s);
}

static int str_is(const mer_json *j, const char *path, const char *want) {
    const char *v = NULL;
    return mer_json_get_string(j, path, &v) == MER_OK && !strcmp(v, want);
}

MER_TEST(analyze_cli_text_output) {
    REQUIRE(ensure_model() == 0 && ensure_clips() == 0);
    char args[3 * PATH_MAX];
    snprintf(args, sizeof args, "'%s/clip.mp4' --audio-model '%s' --fps 1", clip_dir, model_dir);
    int rc = analyze(1, args);
    if (rc) mer_test_fail(__FILE__, __LINE__, "rc %d: %s", rc, outbuf);
    CHECK(strstr(outbuf, "speech (audio)") && strstr(outbuf, "face (video)") && strstr(outbuf, "fused"));
    CHECK(strstr(outbuf, "face in 2 of 2 frames") != NULL);
    CHECK(strstr(outbuf, "verdict: ") != NULL);
    CHECK(strstr(outbuf, "missing: no --text given") != NULL);
    CHECK(strstr(outbuf, "neutral") && strstr(outbuf, "surprise"));
}

MER_TEST(analyze_cli_json_timeline_text) {
    REQUIRE(ensure_model() == 0 && ensure_clips() == 0);
    char args[3 * PATH_MAX];
    snprintf(args, sizeof args,
             "'%s/clip.mp4' --audio-model '%s' --json --timeline --fps 2 "
             "--text 'Ich bin so glücklich, das ist wunderbar!'", clip_dir, model_dir);
    int rc = analyze(0, args);
    REQUIRE(rc == 0);
    mer_json *j = parse_out();
    REQUIRE(j);
    CHECK(str_is(j, "labels.4", "worried"));
    double dur = 0;
    CHECK_OK(mer_json_get_double(j, "duration", &dur));
    CHECK(dur > 1.9 && dur < 2.2);
    int b = 0;
    CHECK_OK(mer_json_get_bool(j, "modalities.audio.present", &b));
    CHECK(b);
    CHECK_OK(mer_json_get_bool(j, "modalities.face.present", &b));
    CHECK(b);
    CHECK_OK(mer_json_get_bool(j, "modalities.text.present", &b));
    CHECK(b);
    check_dist(j, "modalities.audio.probs");
    check_dist(j, "modalities.face.probs");
    check_dist(j, "modalities.text.probs");
    check_dist(j, "fused.probs");
    /* the astronaut smiles: a face in ~every frame, happy */
    double frac = 0;
    CHECK_OK(mer_json_get_double(j, "modalities.face.face_fraction", &frac));
    CHECK(frac >= 0.9);
    CHECK(str_is(j, "modalities.face.top", "happy"));
    double ph = 0;
    CHECK_OK(mer_json_get_double(j, "modalities.face.probs.happy", &ph));
    CHECK(ph > 0.8);
    CHECK(str_is(j, "modalities.text.top", "happy"));
    int64_t cues = 0;
    CHECK_OK(mer_json_get_int(j, "modalities.text.cue_words", &cues));
    CHECK(cues == 2);
    CHECK(str_is(j, "modalities.text.method", "lexicon baseline (not Baichuan)"));
    CHECK(str_is(j, "modalities.audio.model", model_dir));
    /* EmoDB's seven classes came out of the run, summing to 1 */
    double s = 0, v;
    const char *emodb[] = {"anger", "boredom", "disgust", "fear", "happiness", "neutral", "sadness"};
    for (int k = 0; k < 7; k++) {
        char key[64];
        snprintf(key, sizeof key, "modalities.audio.native.%s", emodb[k]);
        if (mer_json_get_double(j, key, &v) == MER_OK) s += v;
    }
    CHECK_NEAR(s, 1.0, 1e-4);
    CHECK(str_is(j, "fused.modalities.2", "text"));
    CHECK(!mer_json_has(j, "missing.0"));
    /* with face and text happy and weights 1/1/0.5, fused is happy whatever the tiny model says */
    CHECK(str_is(j, "fused.top", "happy"));
    /* timeline: one row per second, each with speech, faces and their fusion */
    int32_t rows = mer_timeline_rows(dur);
    CHECK(rows == 2);
    for (int32_t r = 0; r < rows; r++) {
        char p[64];
        snprintf(p, sizeof p, "timeline.%d.audio", r);
        check_dist(j, p);
        snprintf(p, sizeof p, "timeline.%d.face", r);
        check_dist(j, p);
        snprintf(p, sizeof p, "timeline.%d.fused", r);
        check_dist(j, p);
        int64_t fr = 0;
        snprintf(p, sizeof p, "timeline.%d.frames", r);
        CHECK_OK(mer_json_get_int(j, p, &fr));
        CHECK(fr == 2);
        snprintf(p, sizeof p, "timeline.%d.face_top", r);
        CHECK(str_is(j, p, "happy"));
    }
    char p[64];
    snprintf(p, sizeof p, "timeline.%d", rows);
    CHECK(!mer_json_has(j, p));
    double w0 = -1, w1 = -1;
    CHECK_OK(mer_json_get_double(j, "timeline.1.audio_window.0", &w0));
    CHECK_OK(mer_json_get_double(j, "timeline.1.audio_window.1", &w1));
    CHECK_NEAR(w0, 0.5, 1e-3);
    CHECK_NEAR(w1, dur, 1e-3);
    mer_json_free(j);
}

MER_TEST(analyze_cli_audio_only_video_only) {
    REQUIRE(ensure_model() == 0 && ensure_clips() == 0);
    char args[3 * PATH_MAX];
    snprintf(args, sizeof args, "'%s/audio.flac' --audio-model '%s' --json --timeline", clip_dir, model_dir);
    REQUIRE(analyze(0, args) == 0);
    mer_json *j = parse_out();
    REQUIRE(j);
    int b = 1;
    CHECK_OK(mer_json_get_bool(j, "has_video", &b));
    CHECK(!b);
    CHECK_OK(mer_json_get_bool(j, "modalities.face.present", &b));
    CHECK(!b);
    CHECK(str_is(j, "modalities.face.note", "no video stream"));
    CHECK(str_is(j, "missing.0", "face") && str_is(j, "missing.1", "text"));
    check_dist(j, "fused.probs");
    /* fused == audio alone */
    double a = 0, f = 1;
    CHECK_OK(mer_json_get_double(j, "modalities.audio.probs.neutral", &a));
    CHECK_OK(mer_json_get_double(j, "fused.probs.neutral", &f));
    CHECK_NEAR(a, f, 1e-5);
    CHECK(mer_json_has(j, "timeline.1.audio") && !mer_json_has(j, "timeline.2"));
    /* the whole-clip speech probabilities are those of `mer predict --input` on the file */
    char cmd[4 * PATH_MAX];
    snprintf(cmd, sizeof cmd, "%s predict --run '%s' --input '%s/audio.flac' --out '%s/pred.csv'",
             mer_test_bin(), model_dir, clip_dir, clip_dir);
    if (sh("mer predict", cmd) == 0) {
        char pp[PATH_MAX + 16];
        snprintf(pp, sizeof pp, "%s/pred.csv", clip_dir);
        mer_csv *csv = NULL;
        REQUIRE_OK(mer_csv_load(&csv, pp));
        int checked = 0;
        for (int32_t c = 1; c + 1 < mer_csv_cols(csv); c++) {
            char key[128];
            double v = -1;
            snprintf(key, sizeof key, "modalities.audio.native.%s", mer_csv_header(csv, c));
            CHECK_OK(mer_json_get_double(j, key, &v));
            CHECK_NEAR(v, atof(mer_csv_cell(csv, 0, c)), 2e-6);
            checked++;
        }
        CHECK(checked == 7);
        mer_csv_free(csv);
    }
    mer_json_free(j);

    /* video only: no speech model needed (none given, and none at the default places) */
    char cwd[PATH_MAX], bin[PATH_MAX];
    REQUIRE(getcwd(cwd, sizeof cwd) && realpath(mer_test_bin(), bin));
    int rc = mer_test_run(outbuf, sizeof outbuf, "cd '%s' && '%s' analyze video.mp4 --json --fps 1 "
                          "--faces-models '%s/models/face-api' 2>/dev/null", clip_dir, bin, cwd);
    REQUIRE(rc == 0);
    j = parse_out();
    REQUIRE(j);
    CHECK_OK(mer_json_get_bool(j, "has_audio", &b));
    CHECK(!b);
    CHECK(str_is(j, "modalities.audio.note", "no audio stream"));
    CHECK(str_is(j, "modalities.face.top", "happy"));
    CHECK(str_is(j, "fused.top", "happy"));
    CHECK(str_is(j, "missing.0", "audio"));
    mer_json_free(j);

    /* with audio and no --audio-model, away from the source tree's working directory: the
     * bundled model is found through mer_data_path (#16 item 9), not the working directory */
    rc = mer_test_run(outbuf, sizeof outbuf, "cd '%s' && '%s' analyze audio.flac --json 2>/dev/null", clip_dir, bin);
    CHECK(rc == 0);
    j = parse_out();
    REQUIRE(j);
    CHECK_OK(mer_json_get_bool(j, "modalities.audio.present", &b));
    CHECK(b);
    const char *model = NULL;
    CHECK_OK(mer_json_get_string(j, "modalities.audio.model", &model));
    CHECK(model && strstr(model, "models/emodb-acoustic") && model[0] == '/');
    mer_json_free(j);
}

MER_TEST(analyze_cli_errors) {
    REQUIRE(ensure_clips() == 0);
    char args[3 * PATH_MAX];
    snprintf(args, sizeof args, "'%s/subs.mkv' --weights audio=0", clip_dir);
    CHECK(analyze(1, args) == 1);
    CHECK(strstr(outbuf, "no audio or video stream") != NULL);
    snprintf(args, sizeof args, "'%s/nope.mp4'", clip_dir);
    CHECK(analyze(1, args) == 1);
    CHECK(strncmp(outbuf, "mer analyze: ", 13) == 0);
    snprintf(args, sizeof args, "'%s/audio.flac' --audio-model '%s/no-such-run'", clip_dir, clip_dir);
    CHECK(analyze(1, args) == 1);
    CHECK(strstr(outbuf, "no-such-run") != NULL);
    CHECK(analyze(1, "x.mp4 --weights audio=1,smell=2") == 2);
    CHECK(analyze(1, "x.mp4 --weights audio=-1") == 2);
    CHECK(analyze(1, "x.mp4 --fps 0") == 2);
    CHECK(analyze(1, "") == 2);
    CHECK(analyze(1, "a.mp4 b.mp4") == 2);
}

/* examples/analyze.c, built by `make` beside the CLI (build/examples/analyze next to
 * build/mer), analyses through the public API alone: its JSON must be byte-identical to
 * `mer analyze --json` on the bundled face clip (default models) and on a clip with speech and
 * a face (the tiny speech model); a missing clip is a one-line error and exit 1. */
MER_TEST(analyze_example_program_matches_cli) {
    REQUIRE(ensure_model() == 0 && ensure_clips() == 0);
    char ex[PATH_MAX];
    const char *bin = mer_test_bin();
    const char *slash = strrchr(bin, '/');
    snprintf(ex, sizeof ex, "%.*sexamples/analyze", slash ? (int)(slash - bin + 1) : 0, bin);
    REQUIRE(access(ex, X_OK) == 0);
    static char want[1 << 17];
    char clip[PATH_MAX + 16];
    for (int k = 0; k < 2; k++) {
        const char *model = k ? model_dir : "";
        if (k) snprintf(clip, sizeof clip, "%s/clip.mp4", clip_dir);
        else snprintf(clip, sizeof clip, "tests/fixtures/faces/talk.mp4");
        int rc = mer_test_run(want, sizeof want, "%s analyze '%s' --json %s%s%s 2>/dev/null", bin, clip,
                              k ? "--audio-model '" : "", model, k ? "'" : "");
        REQUIRE(rc == 0);
        rc = mer_test_run(outbuf, sizeof outbuf, "'%s' '%s' %s%s%s 2>/dev/null", ex, clip, k ? "'" : "", model,
                          k ? "'" : "");
        CHECK(rc == 0);
        CHECK(strlen(outbuf) > 100 && strcmp(outbuf, want) == 0);
        mer_json *j = parse_out();
        REQUIRE(j != NULL);
        int b = 0;
        CHECK_OK(mer_json_get_bool(j, "modalities.face.present", &b));
        CHECK(b == 1);
        CHECK_OK(mer_json_get_bool(j, "modalities.audio.present", &b));
        CHECK(b == k);
        mer_json_free(j);
    }
    CHECK(mer_test_run(outbuf, sizeof outbuf, "'%s' '%s/nope.mp4'", ex, clip_dir) == 1);
    CHECK(strncmp(outbuf, "analyze: ", 9) == 0 && strstr(outbuf, "nope.mp4") && !strchr(outbuf, '\n')[1]);
}
