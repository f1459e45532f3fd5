/*
 * test_media.c -- FFmpeg audio/video decoding: lengths, frequencies, downmix, frame sampling
 * rules and timestamps, pixel colours, missing streams, hostile files, `mer inspect` on media.
 * Test media is generated with the ffmpeg CLI (a build dependency) into a temp dir.
 */
#include "test.h"

#include <stdint.h>

/* ---- helpers ----------------------------------------------------------------------------- */

static int ffmpeg(const char *fmt_args, const char *out) {
    char log[2048];
    int rc = mer_test_run(log, sizeof log, "ffmpeg -nostdin -hide_banner -loglevel error -y %s '%s'", fmt_args, out);
    if (rc != 0) mer_test_fail(__FILE__, __LINE__, "ffmpeg failed (%d) for %s: %s", rc, out, log);
    return rc;
}

/* Power of a single frequency over x (Goertzel). */
static double tone_power(const float *x, int64_t n, double freq, double rate) {
    double w = 2 * M_PI * freq / rate, c = 2 * cos(w), s1 = 0, s2 = 0;
    for (int64_t i = 0; i < n; i++) {
        double s0 = x[i] + c * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    return s1 * s1 + s2 * s2 - c * s1 * s2;
}

/* Frequency (1 Hz grid over [lo, hi]) with the largest power in the middle second of x. */
static double peak_freq(const float *x, int64_t n, double rate, double lo, double hi) {
    int64_t len = (int64_t)rate < n ? (int64_t)rate : n;
    const float *mid = x + (n - len) / 2;
    double best = -1, best_f = 0;
    for (double f = lo; f <= hi; f += 1) {
        double p = tone_power(mid, len, f, rate);
        if (p > best) best = p, best_f = f;
    }
    return best_f;
}

static double rms(const float *x, int64_t a, int64_t b) {
    double e = 0;
    for (int64_t i = a; i < b; i++) e += (double)x[i] * x[i];
    return b > a ? sqrt(e / (b - a)) : 0;
}

static char path_buf[8][1024];
static const char *pj(int slot, const char *dir, const char *name) {
    snprintf(path_buf[slot], sizeof path_buf[slot], "%s/%s", dir, name);
    return path_buf[slot];
}

/* Left channel 0.5 sin(440), right 0.25 sin(440): the channel mean has amplitude 0.375 (a
 * centre-mix downmix would give 0.53). 2 s at 44.1 kHz. */
#define SINE_SRC "-f lavfi -i 'aevalsrc=0.5*sin(2*PI*440*t)|0.25*sin(2*PI*440*t):s=44100:d=2'"

/* ---- audio ------------------------------------------------------------------------------- */

MER_TEST(media_audio_formats_to_mono_16k) {
    const char *dir = mer_test_tmpdir("media_audio");
    static const struct {
        const char *name, *args;
        int64_t min_n, max_n; /* AAC keeps the encoder's end padding (< 1 frame of 1024) */
        double amp_tol;
    } cases[] = {
        {"s.wav", SINE_SRC " -c:a pcm_s16le", 31999, 32001, 0.002},
        {"s.flac", SINE_SRC " -c:a flac", 31999, 32001, 0.002},
        {"s.mp3", SINE_SRC " -c:a libmp3lame -b:a 192k", 31999, 32001, 0.02},
        {"s.m4a", SINE_SRC " -c:a aac -b:a 192k", 31999, 32000 + 1024 * 16000 / 44100 + 2, 0.02},
    };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        const char *p = pj(0, dir, cases[c].name);
        if (ffmpeg(cases[c].args, p)) continue;
        float *x = NULL;
        int64_t n = 0;
        CHECK_OK(mer_media_decode_audio(p, 16000, &x, &n));
        if (!x) continue;
        if (n < cases[c].min_n || n > cases[c].max_n)
            mer_test_fail(__FILE__, __LINE__, "%s: %lld samples, expected [%lld, %lld]", cases[c].name, (long long)n,
                          (long long)cases[c].min_n, (long long)cases[c].max_n);
        CHECK_NEAR(peak_freq(x, n, 16000, 300, 600), 440, 1);
        /* amplitude of the channel mean: 0.375 -> rms 0.265 (steady part, away from edges) */
        CHECK_NEAR(rms(x, 4000, 28000), 0.375 / sqrt(2), cases[c].amp_tol);
        free(x);
    }
}

MER_TEST(media_audio_resample_length) {
    const char *dir = mer_test_tmpdir("media_len");
    /* 22050 Hz, 12345 samples -> 16000 Hz: ceil(12345 * 16000 / 22050) = 8958 = round(...) */
    const char *p = pj(0, dir, "odd.wav");
    if (ffmpeg("-f lavfi -i 'sine=frequency=1000:sample_rate=22050' -af atrim=end_sample=12345 -c:a pcm_s16le", p))
        return;
    float *x = NULL;
    int64_t n = 0;
    REQUIRE_OK(mer_media_decode_audio(p, 16000, &x, &n));
    CHECK(n == 8958);
    CHECK_NEAR(peak_freq(x, n, 16000, 900, 1100), 1000, 1);
    /* No loss at the end: the last 100 ms still carry the tone (resampler flushed). */
    CHECK(rms(x, n - 1600, n - 16) > 0.05);
    free(x);
    /* Same rate: samples pass through untouched in number. */
    REQUIRE_OK(mer_media_decode_audio(p, 22050, &x, &n));
    CHECK(n == 12345);
    free(x);
    /* Upsampling: ceil(12345 * 48000 / 22050) = ceil(26873.47) = 26874 */
    REQUIRE_OK(mer_media_decode_audio(p, 48000, &x, &n));
    CHECK(n == 26874);
    free(x);
    /* A WAV with a header and no samples: an empty result, not an error. */
    static const unsigned char empty_wav[44] = {'R', 'I', 'F', 'F', 36, 0, 0, 0, 'W', 'A', 'V', 'E',
                                                'f', 'm', 't', ' ', 16, 0, 0, 0, 1, 0, 1, 0,
                                                0x22, 0x56, 0, 0, 0x44, 0xac, 0, 0, 2, 0, 16, 0,
                                                'd', 'a', 't', 'a', 0, 0, 0, 0};
    p = pj(1, dir, "empty.wav");
    REQUIRE(mer_test_write(p, empty_wav, sizeof empty_wav) == 0);
    n = -1;
    REQUIRE_OK(mer_media_decode_audio(p, 16000, &x, &n));
    CHECK(n == 0 && x != NULL);
    free(x);
}

/* FNV-1a 64 over the int16 little-endian bytes of x * 32768. */
static uint64_t pcm16_hash(const float *x, int64_t n) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (int64_t i = 0; i < n; i++) {
        long v = lrintf(x[i] * 32768.0f);
        if (v > 32767) v = 32767;
        if (v < -32768) v = -32768;
        uint16_t u = (uint16_t)(int16_t)v;
        uint8_t b[2] = {(uint8_t)(u & 0xff), (uint8_t)(u >> 8)};
        for (int k = 0; k < 2; k++) {
            h ^= b[k];
            h *= 0x100000001b3ull;
        }
    }
    return h;
}

MER_TEST(media_emodb_flac_exact) {
    const char *flac = "data/emodb/flac/03a01Fa.flac";
    float *x = NULL;
    int64_t n = 0;
    REQUIRE_OK(mer_media_decode_audio(flac, 22050, &x, &n));
    CHECK(n == 44100);
    /* Checksum of the original EmoDB WAV's int16 samples (tests/fixtures notes: computed with
     * Python's wave module from /work/shared/data/emodb/wav/03a01Fa.wav). */
    CHECK(pcm16_hash(x, n) == 0xbffc7ee716c58416ull);
    const char *wav = "/work/shared/data/emodb/wav/03a01Fa.wav";
    FILE *f = fopen(wav, "rb");
    if (f) { /* the original is around: compare sample by sample too */
        fclose(f);
        float *y = NULL;
        int64_t m = 0;
        CHECK_OK(mer_media_decode_audio(wav, 22050, &y, &m));
        CHECK(m == n);
        if (y && m == n) CHECK(memcmp(x, y, (size_t)n * sizeof *x) == 0);
        free(y);
    }
    free(x);
    /* 22050 -> 16000: exactly 32000 samples, energy preserved (speech is band-limited) */
    REQUIRE_OK(mer_media_decode_audio(flac, 16000, &x, &n));
    CHECK(n == 32000);
    CHECK_NEAR(rms(x, 0, n), 0.0802, 0.001);
    free(x);
}

/* SNR (dB) of x against the reference ref (n float32 samples read from a raw .f32 file). */
static double snr_vs_file(const float *x, int64_t n, const char *ref_path) {
    FILE *f = fopen(ref_path, "rb");
    if (!f) return -1;
    float *ref = malloc((size_t)n * sizeof *ref);
    size_t got = ref ? fread(ref, sizeof *ref, (size_t)n, f) : 0;
    fclose(f);
    double sig = 0, err = 0;
    for (size_t i = 0; i < got; i++) {
        sig += (double)ref[i] * ref[i];
        err += ((double)x[i] - ref[i]) * ((double)x[i] - ref[i]);
    }
    free(ref);
    if (got != (size_t)n) return -1;
    return err > 0 ? 10 * log10(sig / err) : 999;
}

MER_TEST(media_resampler_matches_sox) {
    float *x = NULL;
    int64_t n = 0;
    REQUIRE_OK(mer_media_decode_audio("data/emodb/flac/03a01Fa.flac", 16000, &x, &n));
    REQUIRE(n == 32000);
    /* references from tests/fixtures/media/make_resample_ref.py */
    double snr_sox = snr_vs_file(x, n, "tests/fixtures/media/03a01Fa_16k_sox.f32");
    double snr_ta = snr_vs_file(x, n, "tests/fixtures/media/03a01Fa_16k_torchaudio.f32");
    if (!(snr_sox >= 80)) mer_test_fail(__FILE__, __LINE__, "SNR vs sox rate -v: %.1f dB (want >= 80)", snr_sox);
    if (!(snr_ta >= 40)) mer_test_fail(__FILE__, __LINE__, "SNR vs torchaudio resample: %.1f dB (want >= 40)", snr_ta);
    free(x);
}

/* ---- video ------------------------------------------------------------------------------- */

/* 3 s at 10 fps, 64x48: the left half is grey 8 * N (N = frame number), the right half is red
 * for 0-1 s, green for 1-2 s, blue for 2-3 s. Lossless H.264 in MP4. */
static const char *make_video(const char *dir) {
    const char *p = pj(1, dir, "v.mp4");
    if (ffmpeg("-f lavfi -i \"nullsrc=s=64x48:r=10:d=3,format=rgb24,"
               "geq=r='if(lt(X,W/2),N*8,if(lt(N,10),220,20))':"
               "g='if(lt(X,W/2),N*8,if(between(N,10,19),220,20))':"
               "b='if(lt(X,W/2),N*8,if(gte(N,20),220,20))'\" -c:v libx264 -qp 0 -pix_fmt yuv420p",
               p))
        return NULL;
    return p;
}

/* Frame f must be source frame `index`: timestamps and pixel colours say so. */
static void check_frame(const mer_image *f, int64_t index, const char *what) {
    if (f->index != index || fabs(f->time - index * 0.1) > 1e-6 || f->width != 64 || f->height != 48) {
        mer_test_fail(__FILE__, __LINE__, "%s: frame index %lld t %.4f %dx%d, expected index %lld", what,
                      (long long)f->index, f->time, f->width, f->height, (long long)index);
        return;
    }
    const uint8_t *l = f->rgb + (24 * 64 + 8) * 3, *r = f->rgb + (24 * 64 + 56) * 3;
    int grey = (int)(index * 8);
    int seg = (int)(index / 10);
    for (int c = 0; c < 3; c++) {
        int want = seg == c ? 220 : 20;
        if (abs(l[c] - grey) > 3 || abs(r[c] - want) > 6) {
            mer_test_fail(__FILE__, __LINE__, "%s: frame %lld channel %d: left %d (want %d) right %d (want %d)",
                          what, (long long)index, c, l[c], grey, r[c], want);
            return;
        }
    }
}

static void check_sampling(const char *p, mer_frame_sampling smp, const int64_t *want, int32_t nwant,
                           const char *what) {
    mer_image *fr = NULL;
    int32_t n = 0;
    CHECK_OK(mer_media_decode_video(p, &smp, &fr, &n));
    if (n != nwant) mer_test_fail(__FILE__, __LINE__, "%s: %d frames, expected %d", what, n, nwant);
    for (int32_t i = 0; i < n && i < nwant; i++) check_frame(&fr[i], want[i], what);
    mer_frames_free(fr, n);
}

MER_TEST(media_video_sampling) {
    const char *dir = mer_test_tmpdir("media_video");
    const char *p = make_video(dir);
    REQUIRE(p);
    int64_t all[60];
    for (int i = 0; i < 30; i++) all[i] = i;
    check_sampling(p, (mer_frame_sampling){0}, all, 30, "all");
    /* fps: the frame shown at t = k / fps (last frame with time <= t) */
    check_sampling(p, (mer_frame_sampling){.fps = 2}, (const int64_t[]){0, 5, 10, 15, 20, 25}, 6, "fps 2");
    check_sampling(p, (mer_frame_sampling){.fps = 3}, (const int64_t[]){0, 3, 6, 10, 13, 16, 20, 23, 26}, 9, "fps 3");
    int64_t dup[60];
    for (int i = 0; i < 60; i++) dup[i] = i / 2;
    check_sampling(p, (mer_frame_sampling){.fps = 20}, dup, 60, "fps 20");
    /* count: centres of count equal segments, t = (k + 0.5) * 3 / count */
    check_sampling(p, (mer_frame_sampling){.count = 4}, (const int64_t[]){3, 11, 18, 26}, 4, "count 4");
    check_sampling(p, (mer_frame_sampling){.count = 1}, (const int64_t[]){15}, 1, "count 1");
    /* a count above the 30 frames the clip has is clamped to them: each frame once (#16) */
    check_sampling(p, (mer_frame_sampling){.count = 30}, all, 30, "count 30");
    check_sampling(p, (mer_frame_sampling){.count = 31}, all, 30, "count 31");
    check_sampling(p, (mer_frame_sampling){.count = 1000000}, all, 30, "count 1e6");
    check_sampling(p, (mer_frame_sampling){.count = 1000000, .max_frames = 5}, all, 5, "count 1e6 max 5");
    check_sampling(p, (mer_frame_sampling){.every = 7}, (const int64_t[]){0, 7, 14, 21, 28}, 5, "every 7");
    check_sampling(p, (mer_frame_sampling){.every = 7, .max_frames = 2}, (const int64_t[]){0, 7}, 2, "every 7 max 2");
    check_sampling(p, (mer_frame_sampling){.max_frames = 3}, all, 3, "max 3");
    /* a raw H.264 stream states no duration: count sampling measures it from the packets */
    char raw[1100], args[1200];
    snprintf(raw, sizeof raw, "%s/v.h264", dir);
    snprintf(args, sizeof args, "-i '%s' -c:v copy", p);
    if (ffmpeg(args, raw) == 0) {
        check_sampling(raw, (mer_frame_sampling){.count = 4}, (const int64_t[]){3, 11, 18, 26}, 4, "raw count 4");
        check_sampling(raw, (mer_frame_sampling){.count = 500}, all, 30, "raw count 500");
        check_sampling(raw, (mer_frame_sampling){.fps = 2}, (const int64_t[]){0, 5, 10, 15, 20, 25}, 6, "raw fps 2");
    }
    /* bad sampling requests */
    mer_image *fr = NULL;
    int32_t n = 0;
    CHECK_ERR(mer_media_decode_video(p, &(mer_frame_sampling){.fps = 2, .count = 3}, &fr, &n), MER_ERR_INVALID_ARG, "only one");
    CHECK_ERR(mer_media_decode_video(p, &(mer_frame_sampling){.every = -1}, &fr, &n), MER_ERR_INVALID_ARG, NULL);
    CHECK_ERR(mer_media_decode_video(p, &(mer_frame_sampling){.fps = NAN}, &fr, &n), MER_ERR_INVALID_ARG, NULL);
    CHECK(fr == NULL && n == 0);

    mer_media_info info;
    REQUIRE_OK(mer_media_probe(p, &info));
    CHECK(info.has_video && !info.has_audio);
    CHECK(info.width == 64 && info.height == 48 && info.frames == 30);
    CHECK_NEAR(info.fps, 10, 1e-9);
    CHECK_NEAR(info.duration, 3, 0.01);
    CHECK(strcmp(info.video_codec, "h264") == 0);
}

MER_TEST(media_missing_streams) {
    const char *dir = mer_test_tmpdir("media_streams");
    const char *v = make_video(dir);
    const char *a = pj(2, dir, "a.wav");
    REQUIRE(v);
    REQUIRE(ffmpeg(SINE_SRC, a) == 0);
    float *x = NULL;
    int64_t n = 0;
    CHECK_ERR(mer_media_decode_audio(v, 16000, &x, &n), MER_ERR_MEDIA, "no audio stream");
    CHECK(strstr(mer_last_error(), v) != NULL);
    CHECK(strstr(mer_last_error(), "h264") != NULL); /* says what the file does hold */
    CHECK(x == NULL && n == 0);
    mer_image *fr = NULL;
    int32_t nf = 0;
    CHECK_ERR(mer_media_decode_video(a, NULL, &fr, &nf), MER_ERR_MEDIA, "no video stream");
    CHECK(strstr(mer_last_error(), a) != NULL);
    CHECK(fr == NULL && nf == 0);

    mer_media_info info;
    REQUIRE_OK(mer_media_probe(a, &info));
    CHECK(info.has_audio && !info.has_video);
    CHECK(info.sample_rate == 44100 && info.channels == 2);
    CHECK_NEAR(info.duration, 2, 0.01);

    /* a file with both: audio and video decode from the same file */
    const char *av = pj(3, dir, "av.mp4");
    char args[1024];
    snprintf(args, sizeof args, "-i '%s' -i '%s' -c:v copy -c:a aac", v, a);
    REQUIRE(ffmpeg(args, av) == 0);
    mer_media_stream *ss = NULL;
    int32_t ns = 0;
    REQUIRE_OK(mer_media_streams(av, &ss, &ns));
    CHECK(ns == 2);
    int saw_a = 0, saw_v = 0;
    for (int32_t i = 0; i < ns; i++) {
        if (!strcmp(ss[i].type, "audio")) saw_a = ss[i].sample_rate == 44100 && !strcmp(ss[i].codec, "aac");
        if (!strcmp(ss[i].type, "video")) saw_v = ss[i].width == 64 && ss[i].frames == 30;
    }
    CHECK(saw_a && saw_v);
    free(ss);
    CHECK_OK(mer_media_decode_audio(av, 16000, &x, &n));
    CHECK(n >= 31999 && n < 32400);
    free(x);
    CHECK_OK(mer_media_decode_video(av, &(mer_frame_sampling){.fps = 1}, &fr, &nf));
    CHECK(nf == 3);
    mer_frames_free(fr, nf);
}

MER_TEST(media_hostile_files) {
    const char *dir = mer_test_tmpdir("media_bad");
    float *x = NULL;
    int64_t n = 0;
    mer_image *fr = NULL;
    int32_t nf = 0;
    mer_media_info info;
    const char *missing = pj(0, dir, "missing.wav");
    CHECK_ERR(mer_media_decode_audio(missing, 16000, &x, &n), MER_ERR_MEDIA, missing);
    CHECK_ERR(mer_media_decode_video(missing, NULL, &fr, &nf), MER_ERR_MEDIA, missing);
    CHECK_ERR(mer_media_probe(missing, &info), MER_ERR_MEDIA, missing);
    CHECK_ERR(mer_media_decode_audio(dir, 16000, &x, &n), MER_ERR_MEDIA, "directory");

    const char *empty = pj(1, dir, "empty.mp3");
    REQUIRE(mer_test_write(empty, "", 0) == 0);
    CHECK_ERR(mer_media_decode_audio(empty, 16000, &x, &n), MER_ERR_MEDIA, empty);

    const char *garbage = pj(2, dir, "garbage.wav");
    char junk[4096];
    for (size_t i = 0; i < sizeof junk; i++) junk[i] = (char)((i * 2654435761u) >> 13);
    REQUIRE(mer_test_write(garbage, junk, sizeof junk) == 0);
    CHECK_ERR(mer_media_decode_audio(garbage, 16000, &x, &n), MER_ERR_MEDIA, garbage);
    CHECK_ERR(mer_media_decode_video(garbage, NULL, &fr, &nf), MER_ERR_MEDIA, garbage);

    /* A WAV header that promises far more data than present, and one with a bogus format. */
    const char *hdr = pj(3, dir, "hdr.wav");
    static const unsigned char wav_hdr[44] = {'R', 'I', 'F', 'F', 0xff, 0xff, 0xff, 0x7f, 'W', 'A', 'V', 'E',
                                              'f', 'm', 't', ' ', 16, 0, 0, 0, 0x37, 0x13, 0xff, 0xff,
                                              0x44, 0xac, 0, 0, 0x10, 0xb1, 2, 0, 4, 0, 16, 0,
                                              'd', 'a', 't', 'a', 0xff, 0xff, 0xff, 0x7f};
    REQUIRE(mer_test_write(hdr, wav_hdr, sizeof wav_hdr) == 0);
    CHECK_ERR(mer_media_decode_audio(hdr, 16000, &x, &n), MER_ERR_MEDIA, hdr);

    /* MP4 cut in half: the index (moov, written last) is gone. */
    const char *v = make_video(dir);
    REQUIRE(v);
    FILE *f = fopen(v, "rb");
    REQUIRE(f);
    static char buf[1 << 16];
    size_t len = fread(buf, 1, sizeof buf, f);
    fclose(f);
    const char *cut = pj(4, dir, "cut.mp4");
    REQUIRE(mer_test_write(cut, buf, len / 2) == 0);
    CHECK_ERR(mer_media_decode_video(cut, NULL, &fr, &nf), MER_ERR_MEDIA, cut);
    CHECK_ERR(mer_media_probe(cut, &info), MER_ERR_MEDIA, cut);

    /* Corrupted payload bytes: decoding must not crash; whatever comes back is well formed. */
    for (size_t i = len / 8; i < len * 3 / 4; i += 7) buf[i] ^= 0x5a;
    const char *bad = pj(5, dir, "bad.mp4");
    REQUIRE(mer_test_write(bad, buf, len) == 0);
    mer_status s = mer_media_decode_video(bad, NULL, &fr, &nf);
    if (s == MER_OK) {
        for (int32_t i = 0; i < nf; i++) CHECK(fr[i].rgb && fr[i].width == 64 && fr[i].height == 48);
        mer_frames_free(fr, nf);
    } else {
        CHECK(s == MER_ERR_MEDIA && strstr(mer_last_error(), bad));
    }

    /* Truncated FLAC: what is there decodes, the rest is simply missing. */
    const char *flac = pj(6, dir, "cut.flac");
    REQUIRE(ffmpeg(SINE_SRC " -c:a flac", flac) == 0);
    f = fopen(flac, "rb");
    REQUIRE(f);
    len = fread(buf, 1, sizeof buf, f);
    fclose(f);
    REQUIRE(mer_test_write(flac, buf, len / 2) == 0);
    s = mer_media_decode_audio(flac, 16000, &x, &n);
    CHECK(s == MER_OK || s == MER_ERR_MEDIA);
    if (s == MER_OK) CHECK(n > 0 && n < 32000);
    free(x);
    x = NULL;

    /* MP3 with damaged frames in the middle: the damaged packets are skipped, the rest decodes. */
    const char *mp3 = pj(7, dir, "damaged.mp3");
    REQUIRE(ffmpeg(SINE_SRC " -c:a libmp3lame -b:a 192k", mp3) == 0);
    f = fopen(mp3, "rb");
    REQUIRE(f);
    len = fread(buf, 1, sizeof buf, f);
    fclose(f);
    for (size_t i = len / 3; i < len / 3 + 3000 && i < len; i += 3) buf[i] ^= 0x5a;
    REQUIRE(mer_test_write(mp3, buf, len) == 0);
    REQUIRE_OK(mer_media_decode_audio(mp3, 16000, &x, &n));
    CHECK(n > 16000 && n <= 32000);
    CHECK_NEAR(peak_freq(x, n, 16000, 300, 600), 440, 1);
    free(x);
    x = NULL;

    CHECK_ERR(mer_media_decode_audio(v, 0, &x, &n), MER_ERR_INVALID_ARG, NULL);
    CHECK_ERR(mer_media_decode_audio(NULL, 16000, &x, &n), MER_ERR_INVALID_ARG, NULL);
    mer_frames_free(NULL, 3);
}

/* ---- CLI --------------------------------------------------------------------------------- */

MER_TEST(media_inspect_cli) {
    const char *dir = mer_test_tmpdir("media_cli");
    const char *a = pj(0, dir, "a.flac");
    REQUIRE(ffmpeg(SINE_SRC " -c:a flac", a) == 0);
    char out[4096];
    int rc = mer_test_run(out, sizeof out, "%s inspect '%s'", mer_test_bin(), a);
    CHECK(rc == 0);
    CHECK(strstr(out, "flac") && strstr(out, "44100 Hz") && strstr(out, "2 channels"));
    const char *g = pj(1, dir, "junk.mp4");
    REQUIRE(mer_test_write(g, "this is not a video at all, not even close", 42) == 0);
    rc = mer_test_run(out, sizeof out, "%s inspect '%s'", mer_test_bin(), g);
    CHECK(rc == 1);
    char want[1100];
    snprintf(want, sizeof want, "mer inspect: %s: ", g);
    CHECK(strncmp(out, want, strlen(want)) == 0);
    CHECK(strchr(out, '\n') == out + strlen(out) - 1); /* one line */
}
