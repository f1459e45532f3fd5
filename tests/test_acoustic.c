/*
 * test_acoustic.c -- the FFT, the acoustic front end against torchaudio (committed fixtures from
 * tests/fixtures/acoustic/make_acoustic_fixture.py), and every descriptor on a signal with a
 * known answer: F0 of tones and glides, jitter/shimmer of pulse trains, HNR of tone + noise at a
 * known SNR, centroid of a pure tone, alpha ratio / Hammarberg index of two tones, spectral slope
 * of a synthetic spectrum, flux, loudness scaling, formants of an all-pole vowel, functionals.
 * The CLI tests (extract, demo on a 2-speaker subset, analyze on a muxed clip) are at the end.
 */
#include "test.h"
#include "kernels/kernels.h"
#include "models/acoustic_internal.h"

#include <sys/stat.h>
#include <unistd.h>

#define SR 16000

static float *read_npy(const char *path, int32_t want_ndim, int64_t *shape) {
    float *d = NULL;
    int32_t nd = 0;
    int64_t sh[MER_MAX_DIMS];
    if (mer_npy_read(path, &d, &nd, sh) != MER_OK || nd != want_ndim) {
        free(d);
        return NULL;
    }
    for (int i = 0; i < nd; i++) shape[i] = sh[i];
    return d;
}

/* ---- FFT ----------------------------------------------------------------------------------- */

MER_TEST(acoustic_fft_matches_naive_dft) {
    const int64_t sizes[] = {1, 2, 3, 4, 5, 7, 8, 12, 30, 97, 400, 512, 1000, 1024};
    mer__rng r;
    mer__rng_seed(&r, 7);
    for (size_t si = 0; si < sizeof sizes / sizeof *sizes; si++) {
        int64_t n = sizes[si];
        double *in = malloc(2 * n * sizeof(double)), *out = malloc(2 * n * sizeof(double));
        double *back = malloc(2 * n * sizeof(double));
        for (int64_t i = 0; i < 2 * n; i++) in[i] = mer__rng_normal(&r);
        mer__fft *f = NULL;
        REQUIRE_OK(mer__fft_init(&f, n));
        CHECK_OK(mer__fft_c2c(f, out, in, 0));
        double err = 0;
        for (int64_t k = 0; k < n; k++) {
            double re = 0, im = 0;
            for (int64_t j = 0; j < n; j++) {
                double a = -2 * M_PI * (double)((j * k) % n) / n;
                re += in[2 * j] * cos(a) - in[2 * j + 1] * sin(a);
                im += in[2 * j] * sin(a) + in[2 * j + 1] * cos(a);
            }
            err = fmax(err, fmax(fabs(re - out[2 * k]), fabs(im - out[2 * k + 1])));
        }
        CHECK(err < 1e-9 * n);
        CHECK_OK(mer__fft_c2c(f, back, out, 1)); /* unnormalised inverse: n * in */
        double err2 = 0;
        for (int64_t i = 0; i < 2 * n; i++) err2 = fmax(err2, fabs(back[i] / n - in[i]));
        CHECK(err2 < 1e-12 * n);
        if (err >= 1e-9 * n || err2 >= 1e-12 * n) fprintf(stderr, "  fft size %lld: %g %g\n", (long long)n, err, err2);
        /* real transform (half-size packing for even n) against the complex one */
        double *xr = malloc(n * sizeof(double)), *Xr = malloc((n / 2 + 1) * 2 * sizeof(double));
        double *work = malloc(4 * n * sizeof(double));
        for (int64_t i = 0; i < n; i++) {
            xr[i] = in[2 * i];
            in[2 * i + 1] = 0;
        }
        CHECK_OK(mer__fft_c2c(f, out, in, 0));
        CHECK_OK(mer__fft_r2c(f, Xr, xr, work));
        double err3 = 0;
        for (int64_t k = 0; k <= n / 2; k++)
            err3 = fmax(err3, fmax(fabs(Xr[2 * k] - out[2 * k]), fabs(Xr[2 * k + 1] - out[2 * k + 1])));
        CHECK(err3 < 1e-10 * n);
        free(xr);
        free(Xr);
        free(work);
        mer__fft_free(f);
        free(in);
        free(out);
        free(back);
    }
    mer__fft *f = NULL;
    CHECK_ERR(mer__fft_init(&f, 0), MER_ERR_INVALID_ARG, "fft");
    mer__fft_free(NULL);
}

/* ---- torchaudio parity ---------------------------------------------------------------------- */

MER_TEST(acoustic_melspec_mfcc_deltas_match_torchaudio) {
    int64_t sx[1], sm[2], sc[2], sd[2];
    float *x = read_npy("tests/fixtures/acoustic/signal.npy", 1, sx);
    float *mel_ref = read_npy("tests/fixtures/acoustic/melspec.npy", 2, sm);
    float *mfcc_ref = read_npy("tests/fixtures/acoustic/mfcc.npy", 2, sc);
    float *dl_ref = read_npy("tests/fixtures/acoustic/deltas.npy", 2, sd);
    REQUIRE(x && mel_ref && mfcc_ref && dl_ref);
    mer_acoustic_params p = mer_acoustic_default_params();
    float *mel = NULL, *mfcc = NULL;
    int64_t T = 0, T2 = 0;
    REQUIRE_OK(mer_acoustic_melspec(x, sx[0], &p, &mel, &T));
    REQUIRE_OK(mer_acoustic_mfcc(x, sx[0], &p, &mfcc, &T2));
    REQUIRE(T == sm[1] && sm[0] == p.n_mels && T2 == sc[1] && sc[0] == p.n_mfcc);
    /* log-mel: relative to the largest magnitude; mel power: per element where not tiny */
    double lmax = 0, lerr = 0, perr = 0, pmax = 0;
    for (int64_t i = 0; i < sm[0] * T; i++) pmax = fmax(pmax, mel_ref[i]);
    for (int64_t i = 0; i < sm[0] * T; i++) {
        double a = log(mel[i] + 1e-6), b = log(mel_ref[i] + 1e-6);
        lmax = fmax(lmax, fabs(b));
        lerr = fmax(lerr, fabs(a - b));
        if (mel_ref[i] > 1e-6 * pmax) perr = fmax(perr, fabs(mel[i] - mel_ref[i]) / mel_ref[i]);
    }
    CHECK(lerr <= 1e-4 * lmax);
    CHECK(perr <= 1e-4);
    double mref = 0;
    double merr = mer_test_maxdiff(mfcc, mfcc_ref, (size_t)(sc[0] * T), &mref);
    CHECK(merr <= 1e-4 * mref);
    fprintf(stderr, "  log-mel max err %.3g (rel %.3g), mel rel %.3g, mfcc max err %.3g (rel %.3g)\n",
            lerr, lerr / lmax, perr, merr, merr / mref);
    /* deltas through the frame matrix: columns NLLD + C .. NLLD + 2C */
    float *fr = NULL;
    int64_t T3 = 0;
    REQUIRE_OK(mer_acoustic_frames(x, sx[0], &p, &fr, &T3));
    REQUIRE(T3 == T);
    int32_t D = mer_acoustic_frame_dim(&p);
    double derr = 0, dmax = 0, cerr = 0;
    for (int64_t c = 0; c < p.n_mfcc; c++)
        for (int64_t t = 0; t < T; t++) {
            double a = fr[t * D + MER__AC_NLLD + p.n_mfcc + c], b = dl_ref[c * T + t];
            derr = fmax(derr, fabs(a - b));
            dmax = fmax(dmax, fabs(b));
            cerr = fmax(cerr, fabs(fr[t * D + MER__AC_NLLD + c] - mfcc_ref[c * T + t]));
        }
    CHECK(derr <= 1e-4 * dmax);
    CHECK(cerr <= 1e-4 * mref);
    free(fr);
    free(x);
    free(mel_ref);
    free(mfcc_ref);
    free(dl_ref);
    free(mel);
    free(mfcc);
}

/* mer_acoustic_frames computes the spectrum frame by frame (memory bounded by the output, #16);
 * each spectral column must be the very bits of the whole-spectrogram path (mer__acoustic_stft
 * and the replicate-padded deltas over the whole MFCC matrix), on EmoDB speech and on the
 * short signals where padding and the delta ring's edges meet (T <= N, T = 2N + 1). */
MER_TEST(acoustic_frames_streamed_equal_whole_spectrogram) {
    mer_acoustic_params p = mer_acoustic_default_params();
    const char *clips[] = {"data/emodb/flac/03a01Fa.flac", "data/emodb/flac/08a02Tb.flac"};
    const int64_t shorts[] = {1, 100, 257, 300, 481, 800, 1601};
    for (int k = 0; k < 2 + (int)(sizeof shorts / sizeof *shorts); k++) {
        float *x = NULL;
        int64_t n = 0;
        if (k < 2) {
            REQUIRE_OK(mer_media_decode_audio(clips[k], SR, &x, &n));
        } else {
            n = shorts[k - 2];
            x = malloc((size_t)n * sizeof(float));
            REQUIRE(x);
            for (int64_t i = 0; i < n; i++) x[i] = (float)(0.3 * sin(0.05 * i) + 0.01 * ((i * 7919) % 13 - 6));
        }
        for (int dw = 0; dw < 2; dw++) {
            p.delta_win = dw ? 9 : 5;
            float *fr = NULL;
            int64_t T = 0;
            REQUIRE_OK(mer_acoustic_frames(x, n, &p, &fr, &T));
            mer__acoustic_spec sp;
            REQUIRE_OK(mer__acoustic_stft(&p, x, n, &sp));
            REQUIRE(sp.T == T);
            const int64_t C = p.n_mfcc, M = p.n_mels, nf = sp.n_freqs;
            const int32_t D = mer_acoustic_frame_dim(&p), N = (p.delta_win - 1) / 2;
            double *mf = malloc((size_t)(T * C) * sizeof(double));
            REQUIRE(mf);
            REQUIRE_OK(mer__acoustic_mfcc_from_mel(&p, sp.mel, T, mf));
            int64_t bad = 0;
            const double denom = (double)N * (N + 1) * (2 * N + 1) / 3.0;
            for (int64_t t = 0; t < T; t++) {
                const float *row = fr + t * D;
                double loud = 0, al, hb, s0, s1, fl, ce;
                for (int64_t m = 0; m < M; m++) loud += pow(sp.mel[t * M + m], 0.3);
                mer__acoustic_spectral_llds(sp.power + t * nf, t > 0 ? sp.power + (t - 1) * nf : NULL, nf,
                                            (double)p.sample_rate / p.n_fft, &al, &hb, &s0, &s1, &fl, &ce);
                bad += row[MER__AC_LOUDNESS] != (float)loud || row[MER__AC_ALPHA] != (float)al ||
                       row[MER__AC_HAMMARBERG] != (float)hb || row[MER__AC_SLOPE_LO] != (float)s0 ||
                       row[MER__AC_SLOPE_HI] != (float)s1 || row[MER__AC_FLUX] != (float)fl ||
                       row[MER__AC_CENTROID] != (float)ce;
                for (int64_t m = 0; m < M; m++)
                    bad += row[MER__AC_NLLD + 2 * C + m] != (float)log(sp.mel[t * M + m] + (double)p.log_offset);
                for (int64_t c = 0; c < C; c++) {
                    double acc = 0; /* torchaudio.functional.compute_deltas, replicate padding */
                    for (int32_t q = 1; q <= N; q++) {
                        int64_t a = t + q < T ? t + q : T - 1, b = t - q >= 0 ? t - q : 0;
                        acc += q * (mf[a * C + c] - mf[b * C + c]);
                    }
                    bad += row[MER__AC_NLLD + c] != (float)mf[t * C + c];
                    bad += row[MER__AC_NLLD + C + c] != (float)(acc / denom);
                }
            }
            if (bad) mer_test_fail(__FILE__, __LINE__, "signal %d (n %lld, delta_win %d): %lld values differ", k,
                                   (long long)n, p.delta_win, (long long)bad);
            free(mf);
            mer__acoustic_spec_free(&sp);
            free(fr);
        }
        p.delta_win = 5;
        free(x);
    }
}

/* ---- pitch ----------------------------------------------------------------------------------- */

/* F0 (Hz) of frame t from the LLD matrix, 0 if unvoiced. */
static double frame_f0(const float *fr, int32_t D, int64_t t) {
    float st = fr[t * D + MER__AC_F0];
    return st > 0 ? 27.5 * pow(2.0, st / 12.0) : 0;
}

MER_TEST(acoustic_f0_tones_within_1_percent) {
    mer_acoustic_params p = mer_acoustic_default_params();
    const double freqs[] = {70, 100, 147.3, 220, 330.5, 440, 580};
    int64_t n = SR; /* 1 s */
    float *x = malloc(n * sizeof(float));
    int32_t D = mer_acoustic_frame_dim(&p);
    for (size_t fi = 0; fi < sizeof freqs / sizeof *freqs; fi++) {
        for (int harmonic = 0; harmonic < 2; harmonic++) {
            for (int64_t i = 0; i < n; i++) {
                double ph = 2 * M_PI * freqs[fi] * i / SR;
                x[i] = (float)(harmonic ? 0.4 * sin(ph) + 0.3 * sin(2 * ph + 1) + 0.2 * sin(3 * ph + 2)
                                        : 0.5 * sin(ph));
            }
            float *fr = NULL;
            int64_t T = 0;
            REQUIRE_OK(mer_acoustic_frames(x, n, &p, &fr, &T));
            int bad = 0, voiced = 0;
            for (int64_t t = 5; t < T - 5; t++) {
                double f = frame_f0(fr, D, t);
                voiced += f > 0;
                if (!(fabs(f - freqs[fi]) <= 0.01 * freqs[fi])) bad++;
            }
            if (bad) fprintf(stderr, "  tone %.1f Hz (harmonic %d): %d frames off, e.g. %.2f\n",
                             freqs[fi], harmonic, bad, frame_f0(fr, D, T / 2));
            CHECK(bad == 0);
            CHECK(voiced == T - 10);
            free(fr);
        }
    }
    /* silence and white noise are unvoiced */
    mer__rng r;
    mer__rng_seed(&r, 3);
    for (int64_t i = 0; i < n; i++) x[i] = (float)(0.3 * mer__rng_normal(&r));
    float *fr = NULL;
    int64_t T = 0;
    REQUIRE_OK(mer_acoustic_frames(x, n, &p, &fr, &T));
    int voiced = 0;
    for (int64_t t = 0; t < T; t++) voiced += fr[t * D + MER__AC_F0] > 0;
    CHECK(voiced <= T / 20);
    free(fr);
    memset(x, 0, n * sizeof(float));
    REQUIRE_OK(mer_acoustic_frames(x, n, &p, &fr, &T));
    voiced = 0;
    for (int64_t t = 0; t < T; t++) voiced += fr[t * D + MER__AC_F0] > 0;
    CHECK(voiced == 0);
    free(fr);
    free(x);
}

MER_TEST(acoustic_f0_glides_within_1_percent) {
    mer_acoustic_params p = mer_acoustic_default_params();
    const double ends[][2] = {{100, 200}, {300, 120}, {180, 420}};
    int64_t n = SR * 3 / 2;
    float *x = malloc(n * sizeof(float));
    int32_t D = mer_acoustic_frame_dim(&p);
    for (size_t g = 0; g < 3; g++) {
        double f0 = ends[g][0], f1 = ends[g][1], dur = (double)n / SR, ph = 0;
        for (int64_t i = 0; i < n; i++) { /* exponential glide: constant semitones per second */
            double f = f0 * pow(f1 / f0, (double)i / n);
            x[i] = (float)(0.4 * sin(ph) + 0.2 * sin(2 * ph));
            ph += 2 * M_PI * f / SR;
        }
        float *fr = NULL;
        int64_t T = 0;
        REQUIRE_OK(mer_acoustic_frames(x, n, &p, &fr, &T));
        int bad = 0;
        for (int64_t t = 5; t < T - 5; t++) {
            double want = f0 * pow(f1 / f0, (double)(t * p.hop_length) / n);
            double got = frame_f0(fr, D, t);
            if (!(fabs(got - want) <= 0.01 * want)) bad++;
        }
        if (bad) fprintf(stderr, "  glide %g->%g: %d frames off\n", f0, f1, bad);
        CHECK(bad == 0);
        /* the F0 slope functional sees a steady rise/fall of 12 log2(f1/f0)/dur semitones/s */
        int32_t F = mer_acoustic_functional_dim(&p);
        float *fu = malloc(F * sizeof(float));
        REQUIRE_OK(mer_acoustic_functionals_from_frames(fr, T, &p, fu));
        double slope = 12 * log2(f1 / f0) / dur;
        int32_t base = mer_acoustic_frame_dim(&p) * MER__AC_NSTAT;
        double got = f1 > f0 ? fu[base + 2] : fu[base + 4];
        CHECK(fabs(got - slope) < 0.15 * fabs(slope));
        if (!(fabs(got - slope) < 0.15 * fabs(slope)))
            fprintf(stderr, "  glide slope %g vs %g st/s\n", got, slope);
        free(fu);
        free(fr);
    }
    free(x);
}

/* ---- voice quality ---------------------------------------------------------------------------- */

static double median_voiced(const float *fr, int32_t D, int64_t T, int col) {
    double *v = malloc(T * sizeof(double));
    int64_t m = 0;
    for (int64_t t = 3; t < T - 3; t++)
        if (fr[t * D + MER__AC_F0] > 0) v[m++] = fr[t * D + col];
    double med = 0;
    if (m) {
        for (int64_t i = 1; i < m; i++)
            for (int64_t j = i; j > 0 && v[j] < v[j - 1]; j--) {
                double tmp = v[j];
                v[j] = v[j - 1];
                v[j - 1] = tmp;
            }
        med = v[m / 2];
    }
    free(v);
    return med;
}

/* A pulse train with the given period sequence (pattern repeated), pulses of amplitude amp[k]
 * smoothed by a short decaying resonance so it looks like a glottal source. */
static void pulse_train(float *x, int64_t n, const int *periods, const double *amps, int np) {
    memset(x, 0, n * sizeof(float));
    int64_t pos = 100;
    int k = 0;
    while (pos < n) {
        x[pos] = (float)amps[k % np];
        pos += periods[k % np];
        k++;
    }
    /* two-pole resonance at 500 Hz keeps each pulse's peak at the pulse instant */
    double r = 0.9, w = 2 * M_PI * 500.0 / SR, a1 = 2 * r * cos(w), a2 = -r * r, y1 = 0, y2 = 0;
    for (int64_t i = 0; i < n; i++) {
        double y = x[i] + a1 * y1 + a2 * y2;
        y2 = y1;
        y1 = y;
        x[i] = (float)(0.1 * y);
    }
}

MER_TEST(acoustic_jitter_shimmer_of_pulse_trains) {
    mer_acoustic_params p = mer_acoustic_default_params();
    int32_t D = mer_acoustic_frame_dim(&p);
    int64_t n = SR;
    float *x = malloc(n * sizeof(float));
    float *fr = NULL;
    int64_t T = 0;
    /* perfectly periodic: jitter 0, shimmer 0 */
    int per0[] = {160};
    double amp0[] = {1.0};
    pulse_train(x, n, per0, amp0, 1);
    REQUIRE_OK(mer_acoustic_frames(x, n, &p, &fr, &T));
    CHECK(fabs(frame_f0(fr, D, T / 2) - 100) < 1);
    double j0 = median_voiced(fr, D, T, MER__AC_JITTER), s0 = median_voiced(fr, D, T, MER__AC_SHIMMER);
    CHECK(j0 < 1e-4);
    CHECK(s0 < 0.01);
    free(fr);
    /* alternating periods 156/164: |dP| = 8 every cycle, mean 160 -> jitter 0.05;
     * alternating amplitudes 1 / 0.8: |20 log10 0.8| = 1.938 dB shimmer */
    int per1[] = {156, 164};
    double amp1[] = {1.0, 0.8};
    pulse_train(x, n, per1, amp1, 2);
    REQUIRE_OK(mer_acoustic_frames(x, n, &p, &fr, &T));
    double j1 = median_voiced(fr, D, T, MER__AC_JITTER), s1 = median_voiced(fr, D, T, MER__AC_SHIMMER);
    fprintf(stderr, "  jitter %.5f / %.5f, shimmer %.4f / %.4f dB\n", j0, j1, s0, s1);
    CHECK_NEAR(j1, 0.05, 0.005);
    CHECK_NEAR(s1, 20 * log10(1 / 0.8), 0.15);
    free(fr);
    free(x);
}

MER_TEST(acoustic_hnr_of_tone_plus_noise) {
    mer_acoustic_params p = mer_acoustic_default_params();
    int32_t D = mer_acoustic_frame_dim(&p);
    int64_t n = SR;
    float *x = malloc(n * sizeof(float));
    const double snrs[] = {0, 10, 20};
    for (int k = 0; k < 3; k++) {
        mer__rng r;
        mer__rng_seed(&r, 11 + k);
        /* tone power 0.5 * a^2 = 0.02; noise power 0.02 / 10^(snr/10) */
        double a = 0.2, sn = sqrt(0.5 * a * a / pow(10, snrs[k] / 10));
        for (int64_t i = 0; i < n; i++)
            x[i] = (float)(a * sin(2 * M_PI * 200.0 * i / SR) + sn * mer__rng_normal(&r));
        p.voicing_threshold = 0.6f; /* keep the 0 dB frames voiced */
        float *fr = NULL;
        int64_t T = 0;
        REQUIRE_OK(mer_acoustic_frames(x, n, &p, &fr, &T));
        double h = median_voiced(fr, D, T, MER__AC_HNR);
        fprintf(stderr, "  SNR %g dB -> HNR %.2f dB\n", snrs[k], h);
        CHECK_NEAR(h, snrs[k], 1.5);
        free(fr);
    }
    free(x);
}

/* ---- spectral descriptors ------------------------------------------------------------------- */

MER_TEST(acoustic_spectral_descriptors_known_answers) {
    mer_acoustic_params p = mer_acoustic_default_params();
    int32_t D = mer_acoustic_frame_dim(&p);
    int64_t n = SR / 2;
    float *x = malloc(n * sizeof(float));
    float *fr = NULL;
    int64_t T = 0;
    /* centroid of a pure tone is its frequency; flux of a steady tone is 0 */
    for (int64_t i = 0; i < n; i++) x[i] = (float)(0.5 * sin(2 * M_PI * 1000.0 * i / SR));
    REQUIRE_OK(mer_acoustic_frames(x, n, &p, &fr, &T));
    CHECK_NEAR(fr[(T / 2) * D + MER__AC_CENTROID], 1000.0, 5.0);
    CHECK(fr[(T / 2) * D + MER__AC_FLUX] < 1e-6);
    double loud1 = fr[(T / 2) * D + MER__AC_LOUDNESS];
    double rms1 = fr[(T / 2) * D + MER__AC_RMS_DB];
    free(fr);
    /* loudness follows amplitude^0.6 (power^0.3); rms_db rises 6.02 dB */
    for (int64_t i = 0; i < n; i++) x[i] *= 2;
    REQUIRE_OK(mer_acoustic_frames(x, n, &p, &fr, &T));
    CHECK_NEAR(fr[(T / 2) * D + MER__AC_LOUDNESS] / loud1, pow(2.0, 0.6), 1e-3);
    CHECK_NEAR(fr[(T / 2) * D + MER__AC_RMS_DB] - rms1, 20 * log10(2.0), 1e-3);
    free(fr);
    /* alpha ratio of tones at 500 Hz (a) and 2000 Hz (b): 20 log10(a/b); Hammarberg index of
     * tones at 1000 Hz and 3000 Hz: the same */
    for (int64_t i = 0; i < n; i++)
        x[i] = (float)(0.5 * sin(2 * M_PI * 500.0 * i / SR) + 0.05 * sin(2 * M_PI * 2000.0 * i / SR));
    REQUIRE_OK(mer_acoustic_frames(x, n, &p, &fr, &T));
    CHECK_NEAR(fr[(T / 2) * D + MER__AC_ALPHA], 20.0, 0.2);
    free(fr);
    for (int64_t i = 0; i < n; i++)
        x[i] = (float)(0.05 * sin(2 * M_PI * 1000.0 * i / SR) + 0.5 * sin(2 * M_PI * 3000.0 * i / SR));
    REQUIRE_OK(mer_acoustic_frames(x, n, &p, &fr, &T));
    CHECK_NEAR(fr[(T / 2) * D + MER__AC_HAMMARBERG], -20.0, 0.2);
    free(fr);
    free(x);
    /* slopes and flux on synthetic spectra */
    int64_t nf = 257;
    double df = 31.25, *P = malloc(nf * sizeof(double)), *Q = malloc(nf * sizeof(double));
    for (int64_t k = 0; k < nf; k++) {
        double fk = k * df / 1000.0;
        P[k] = pow(10, (fk < 0.5 ? 30 - 12 * fk : 30 - 6 - 3 * (fk - 0.5)) / 10);
        Q[k] = k % 2 ? P[k] : 0;
    }
    double al, hb, s0, s1, fl, ce;
    mer__acoustic_spectral_llds(P, P, nf, df, &al, &hb, &s0, &s1, &fl, &ce);
    CHECK_NEAR(s0, -12.0, 1e-6);
    CHECK_NEAR(s1, -3.0, 0.2); /* the 500 Hz bin sits on the knee */
    CHECK(fl < 1e-12);
    for (int64_t k = 0; k < nf; k++) P[k] = k % 2 ? 0 : 1; /* disjoint from Q's support */
    for (int64_t k = 0; k < nf; k++) Q[k] = k % 2 ? 1 : 0;
    mer__acoustic_spectral_llds(P, Q, nf, df, &al, &hb, &s0, &s1, &fl, &ce);
    CHECK_NEAR(fl, 2.0, 1e-9);
    free(P);
    free(Q);
}

/* ---- formants --------------------------------------------------------------------------------- */

MER_TEST(acoustic_formants_of_all_pole_vowel) {
    mer_acoustic_params p = mer_acoustic_default_params();
    int32_t D = mer_acoustic_frame_dim(&p);
    const double F[3] = {730, 1090, 2440}, B[3] = {60, 100, 120};
    int64_t n = SR;
    float *x = malloc(n * sizeof(float));
    double *src = calloc(n, sizeof(double));
    for (int64_t i = 50; i < n; i += 133) src[i] = 1.0; /* 120.3 Hz impulse train */
    /* cascade of three two-pole resonators */
    for (int k = 0; k < 3; k++) {
        double r = exp(-M_PI * B[k] / SR), w = 2 * M_PI * F[k] / SR;
        double a1 = 2 * r * cos(w), a2 = -r * r, y1 = 0, y2 = 0;
        for (int64_t i = 0; i < n; i++) {
            double y = src[i] + a1 * y1 + a2 * y2;
            y2 = y1;
            y1 = y;
            src[i] = y;
        }
    }
    double mx = 0;
    for (int64_t i = 0; i < n; i++) mx = fmax(mx, fabs(src[i]));
    for (int64_t i = 0; i < n; i++) x[i] = (float)(0.5 * src[i] / mx);
    float *fr = NULL;
    int64_t T = 0;
    REQUIRE_OK(mer_acoustic_frames(x, n, &p, &fr, &T));
    double f1 = median_voiced(fr, D, T, MER__AC_F1), f2 = median_voiced(fr, D, T, MER__AC_F2);
    double f3 = median_voiced(fr, D, T, MER__AC_F3), b1 = median_voiced(fr, D, T, MER__AC_F1BW);
    fprintf(stderr, "  formants %.1f %.1f %.1f Hz, F1 bandwidth %.1f Hz\n", f1, f2, f3, b1);
    CHECK(fabs(f1 - F[0]) < 0.05 * F[0]);
    CHECK(fabs(f2 - F[1]) < 0.05 * F[1]);
    CHECK(fabs(f3 - F[2]) < 0.05 * F[2]);
    CHECK(b1 > 20 && b1 < 200);
    free(fr);
    free(x);
    free(src);
}

/* ---- functionals, names, errors ------------------------------------------------------------ */

MER_TEST(acoustic_functionals_known_answers) {
    mer_acoustic_params p = mer_acoustic_default_params();
    int32_t D = mer_acoustic_frame_dim(&p), F = mer_acoustic_functional_dim(&p);
    const int64_t T = 101;
    float *fr = calloc(T * D, sizeof(float));
    for (int64_t t = 0; t < T; t++) {
        fr[t * D + MER__AC_LOUDNESS] = (float)t;                 /* 0..100 */
        fr[t * D + MER__AC_RMS_DB] = -20.0f;
        fr[t * D + MER__AC_F0] = t >= 20 && t < 60 ? 40.0f : 0.f; /* 40 frames voiced */
    }
    float *o = malloc(F * sizeof(float));
    REQUIRE_OK(mer_acoustic_functionals_from_frames(fr, T, &p, o));
    const float *l = o + MER__AC_LOUDNESS * MER__AC_NSTAT;
    CHECK_NEAR(l[0], 50.0, 1e-4);                 /* mean */
    CHECK_NEAR(l[1], sqrt((T * T - 1) / 12.0), 1e-3); /* population std of 0..100 */
    CHECK_NEAR(l[2], 20.0, 1e-4);                 /* numpy percentiles */
    CHECK_NEAR(l[3], 50.0, 1e-4);
    CHECK_NEAR(l[4], 80.0, 1e-4);
    CHECK_NEAR(l[5], 60.0, 1e-4);
    const float *f0 = o + MER__AC_F0 * MER__AC_NSTAT;
    CHECK_NEAR(f0[0], 40.0, 1e-5); /* voiced frames only */
    CHECK_NEAR(f0[1], 0.0, 1e-5);
    const float *e = o + D * MER__AC_NSTAT;
    CHECK_NEAR(e[9], 40.0 / 101.0, 1e-6);  /* voiced ratio */
    CHECK_NEAR(e[10], 1 / 1.01, 1e-5);     /* one voiced segment in 1.01 s */
    CHECK_NEAR(e[11], 0.40, 1e-6);         /* voiced segment 0.4 s */
    CHECK_NEAR(e[13], (0.20 + 0.41) / 2, 1e-6);
    CHECK_NEAR(e[6], 99.0, 1e-3); /* (99.5 - 0.5) over 1 s: the 3-frame smoother halves the edges */
    CHECK_NEAR(e[15], -20.0, 1e-4);
    char name[64];
    CHECK_OK(mer_acoustic_functional_name(&p, MER__AC_F0 * MER__AC_NSTAT + 3, name, sizeof name));
    CHECK(strcmp(name, "f0_semitone_p50") == 0);
    CHECK_OK(mer_acoustic_functional_name(&p, F - 1, name, sizeof name));
    CHECK(strcmp(name, "equivalent_sound_level_db") == 0);
    CHECK_OK(mer_acoustic_frame_name(&p, MER__AC_NLLD + p.n_mfcc + 2, name, sizeof name));
    CHECK(strcmp(name, "mfcc2_delta") == 0);
    CHECK_ERR(mer_acoustic_frame_name(&p, D, name, sizeof name), MER_ERR_INVALID_ARG, "out of range");
    free(fr);
    free(o);
}

/* The extended functionals (929): the first 514 equal the eGeMAPS-style set bitwise, then per
 * LLD mean |delta|, delta std, p10-p90 range, skewness and kurtosis, checked against the
 * formulas on a known contour (loudness t^2 / 100 over all frames; jitter over the voiced frames
 * only, as its other statistics); names, dimension and the recipe round trip. */
MER_TEST(acoustic_extended_functionals_known_answers) {
    mer_acoustic_params p = mer_acoustic_default_params(), q = p;
    q.functionals = MER_ACOUSTIC_EXTENDED;
    const int32_t D = mer_acoustic_frame_dim(&p), F = mer_acoustic_functional_dim(&p);
    const int32_t FX = mer_acoustic_functional_dim(&q);
    CHECK(F == 514 && FX == 514 + 5 * D && FX == 929);
    const int64_t T = 60;
    float *fr = calloc(T * D, sizeof(float));
    REQUIRE(fr);
    for (int64_t t = 0; t < T; t++) {
        fr[t * D + MER__AC_LOUDNESS] = (float)(t * t) / 100.0f;
        fr[t * D + MER__AC_F0] = t % 3 ? 30.0f + (float)t : 0.0f; /* 40 voiced frames */
        fr[t * D + MER__AC_JITTER] = (float)((t * 7) % 11);       /* read on voiced frames only */
        fr[t * D + 20] = 1.5f;                                     /* a constant contour */
    }
    float *o = malloc(FX * sizeof(float)), *o0 = malloc(F * sizeof(float));
    REQUIRE(o && o0);
    REQUIRE_OK(mer_acoustic_functionals_from_frames(fr, T, &p, o0));
    REQUIRE_OK(mer_acoustic_functionals_from_frames(fr, T, &q, o));
    CHECK(memcmp(o, o0, F * sizeof(float)) == 0);
    for (int which = 0; which < 2; which++) {
        const int col = which ? MER__AC_JITTER : MER__AC_LOUDNESS;
        double v[60];
        int m = 0;
        for (int64_t t = 0; t < T; t++)
            if (!which || t % 3) v[m++] = fr[t * D + col];
        double mean = 0, var = 0, ad = 0, dm = 0, dv = 0, m3 = 0, m4 = 0;
        for (int i = 0; i < m; i++) mean += v[i] / m;
        for (int i = 0; i < m; i++) var += (v[i] - mean) * (v[i] - mean) / m;
        for (int i = 0; i + 1 < m; i++) {
            ad += fabs(v[i + 1] - v[i]) / (m - 1);
            dm += (v[i + 1] - v[i]) / (m - 1);
        }
        for (int i = 0; i + 1 < m; i++) dv += (v[i + 1] - v[i] - dm) * (v[i + 1] - v[i] - dm) / (m - 1);
        for (int i = 0; i < m; i++) {
            double z = (v[i] - mean) / sqrt(var);
            m3 += z * z * z / m;
            m4 += z * z * z * z / m;
        }
        double sv[60]; /* numpy percentiles of the sorted values */
        memcpy(sv, v, sizeof sv);
        for (int i = 1; i < m; i++)
            for (int j = i; j > 0 && sv[j] < sv[j - 1]; j--) {
                double tmp = sv[j];
                sv[j] = sv[j - 1];
                sv[j - 1] = tmp;
            }
        double pos10 = 0.1 * (m - 1), pos90 = 0.9 * (m - 1);
        int i10 = (int)pos10, i90 = (int)pos90;
        double p10 = sv[i10] + (pos10 - i10) * (sv[i10 + 1] - sv[i10]);
        double p90 = sv[i90] + (pos90 - i90) * (sv[i90 + 1] - sv[i90]);
        const float *x = o + F + col * 5;
        CHECK_NEAR(x[0], ad, 1e-4 * fabs(ad));
        CHECK_NEAR(x[1], sqrt(dv), 1e-4 * sqrt(dv));
        CHECK_NEAR(x[2], p90 - p10, 1e-4 * fabs(p90 - p10));
        CHECK_NEAR(x[3], m3, 1e-4);
        CHECK_NEAR(x[4], m4, 1e-4);
    }
    const float *c = o + F + 20 * 5; /* constant: no change, no spread, no shape */
    for (int k = 0; k < 5; k++) CHECK(c[k] == 0.0f);
    char name[64];
    CHECK_OK(mer_acoustic_functional_name(&q, F, name, sizeof name));
    CHECK(strcmp(name, "loudness_delta_absmean") == 0);
    CHECK_OK(mer_acoustic_functional_name(&q, FX - 1, name, sizeof name));
    CHECK(strcmp(name, "logmel39_kurtosis") == 0);
    CHECK_ERR(mer_acoustic_functional_name(&q, FX, name, sizeof name), MER_ERR_INVALID_ARG, "out of range");
    /* the recipe: default unchanged (no "functionals" key), extended round-trips */
    mer_acoustic_recipe r = mer_acoustic_default_recipe();
    char *js = NULL;
    REQUIRE_OK(mer_acoustic_recipe_to_json(&r, &js));
    CHECK(strstr(js, "functionals") == NULL && strstr(js, "\"dim\": 514"));
    free(js);
    r.params.functionals = MER_ACOUSTIC_EXTENDED;
    REQUIRE_OK(mer_acoustic_recipe_to_json(&r, &js));
    CHECK(strstr(js, "\"functionals\": 1") && strstr(js, "\"dim\": 929"));
    mer_json *j = NULL;
    REQUIRE_OK(mer_json_parse(&j, js, strlen(js), "recipe"));
    mer_acoustic_recipe back;
    REQUIRE_OK(mer_acoustic_recipe_from_json(j, NULL, &back));
    CHECK(back.params.functionals == MER_ACOUSTIC_EXTENDED);
    mer_json_free(j);
    free(js);
    p.functionals = 2;
    CHECK_ERR(mer_acoustic_functionals_from_frames(fr, T, &p, o), MER_ERR_INVALID_ARG, "functionals");
    free(fr);
    free(o);
    free(o0);
}

MER_TEST(acoustic_bad_input_errors) {
    mer_acoustic_params p = mer_acoustic_default_params();
    float x[4000] = {0};
    float *out = NULL;
    int64_t T;
    p.win_length = 1000;
    CHECK_ERR(mer_acoustic_frames(x, 4000, &p, &out, &T), MER_ERR_INVALID_ARG, "win_length");
    p = mer_acoustic_default_params();
    CHECK_ERR(mer_acoustic_frames(x, 0, &p, &out, &T), MER_ERR_INVALID_ARG, "empty");
    x[7] = NAN;
    CHECK_ERR(mer_acoustic_frames(x, 4000, &p, &out, &T), MER_ERR_NUMERIC, "sample 7");
    x[7] = 0;
    /* a very short signal is zero-padded, not rejected */
    REQUIRE_OK(mer_acoustic_frames(x, 10, &p, &out, &T));
    CHECK(T == 2);
    free(out);
    /* recipe round trip */
    mer_acoustic_recipe r = mer_acoustic_default_recipe(), r2;
    r.params.n_mfcc = 20;
    snprintf(r.pool, sizeof r.pool, "none");
    char *js = NULL;
    REQUIRE_OK(mer_acoustic_recipe_to_json(&r, &js));
    mer_json *j = NULL;
    REQUIRE_OK(mer_json_parse(&j, js, strlen(js), "recipe"));
    CHECK_OK(mer_acoustic_recipe_from_json(j, NULL, &r2));
    CHECK(r2.params.n_mfcc == 20 && strcmp(r2.pool, "none") == 0);
    mer_json_free(j);
    free(js);
    const char *bad = "{\"extractor\": \"hubert\"}";
    REQUIRE_OK(mer_json_parse(&j, bad, strlen(bad), "recipe"));
    CHECK_ERR(mer_acoustic_recipe_from_json(j, NULL, &r2), MER_ERR_FORMAT, "hubert");
    mer_json_free(j);
    float *d = NULL;
    int32_t nd;
    int64_t sh[2];
    CHECK_ERR(mer_acoustic_extract_file(&r, "tests/fixtures/acoustic/no-such.wav", &d, &nd, sh),
              MER_ERR_MEDIA, "no-such.wav");
}

/* ---- CLI: extract, demo on a small subset, predict from raw media ------------------------- */

static int slurp_contains(const char *path, const char *needle) {
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    return strstr(buf, needle) != NULL;
}

MER_TEST(acoustic_cli_extract) {
    const char *dir = mer_test_tmpdir("acoustic_cli_extract");
    char out[4096], p[1200];
    mer_acoustic_params ap = mer_acoustic_default_params();
    int rc = mer_test_run(out, sizeof out, "%s extract acoustic --out %s/a.npy data/emodb/flac/03a01Wa.flac",
                          mer_test_bin(), dir);
    CHECK(rc == 0);
    snprintf(p, sizeof p, "%s/a.npy", dir);
    mer_dtype dt;
    int32_t nd = 0;
    int64_t sh[MER_MAX_DIMS];
    REQUIRE_OK(mer_npy_read_header(p, &dt, &nd, sh));
    CHECK(nd == 1 && sh[0] == mer_acoustic_functional_dim(&ap));
    rc = mer_test_run(out, sizeof out,
                      "%s extract acoustic --pool none --names %s/names.txt --out %s/frames "
                      "data/emodb/flac/03a01Wa.flac data/emodb/flac/03a01Nc.flac",
                      mer_test_bin(), dir, dir);
    CHECK(rc == 0);
    snprintf(p, sizeof p, "%s/frames/03a01Nc.npy", dir);
    REQUIRE_OK(mer_npy_read_header(p, &dt, &nd, sh));
    CHECK(nd == 2 && sh[0] == 201 && sh[1] == mer_acoustic_frame_dim(&ap)); /* 2.0 s at 10 ms */
    snprintf(p, sizeof p, "%s/names.txt", dir);
    CHECK(slurp_contains(p, "f0_semitone\nvoicing\n"));
    /* a file that is not media: one line naming it, exit 1, nothing written */
    snprintf(p, sizeof p, "%s/bad.wav", dir);
    mer_test_write(p, "not audio", 9);
    rc = mer_test_run(out, sizeof out, "%s extract acoustic --out %s/bad.npy %s", mer_test_bin(), dir, p);
    CHECK(rc == 1);
    CHECK(strstr(out, "bad.wav") != NULL);
    snprintf(p, sizeof p, "%s/bad.npy", dir);
    FILE *f = fopen(p, "rb");
    CHECK(f == NULL);
    if (f) fclose(f);
    rc = mer_test_run(out, sizeof out, "%s extract acoustic --pool max --out x.npy a.wav", mer_test_bin());
    CHECK(rc == 2);
}

/* `mer demo` end to end on 3 speakers x 3 emotions x 4 clips, then `mer predict --input` on raw
 * media with the model it leaves. */
MER_TEST(acoustic_cli_demo_small) {
    const char *tmp = mer_test_tmpdir("acoustic_cli_demo");
    char dir[1100], out[16384], p[1300];
    snprintf(dir, sizeof dir, "%s", tmp);
    snprintf(p, sizeof p, "%s/data/flac", dir);
    char cmdline[1500];
    snprintf(cmdline, sizeof cmdline, "mkdir -p %s", p);
    REQUIRE(system(cmdline) == 0);
    mer_csv *csv = NULL;
    REQUIRE_OK(mer_csv_load(&csv, "data/emodb/labels.csv"));
    int32_t cn, ce, cs;
    REQUIRE_OK(mer_csv_col(csv, "name", &cn));
    REQUIRE_OK(mer_csv_col(csv, "emotion", &ce));
    REQUIRE_OK(mer_csv_col(csv, "speaker", &cs));
    snprintf(p, sizeof p, "%s/data/labels.csv", dir);
    FILE *f = fopen(p, "w");
    REQUIRE(f);
    fprintf(f, "name,emotion,speaker\n");
    const char *spk[3] = {"03", "08", "11"}, *emo[3] = {"anger", "neutral", "sadness"};
    int count[3][3] = {{0}}, total = 0;
    char first[64] = "";
    for (int64_t i = 0; i < mer_csv_rows(csv); i++) {
        for (int a = 0; a < 3; a++)
            for (int b = 0; b < 3; b++)
                if (!strcmp(mer_csv_cell(csv, i, cs), spk[a]) && !strcmp(mer_csv_cell(csv, i, ce), emo[b]) &&
                    count[a][b] < 2) { /* 2 clips per speaker and class: 18 (6 a speaker, >= adapt_min) */
                    const char *nm = mer_csv_cell(csv, i, cn);
                    fprintf(f, "%s,%s,%s\n", nm, emo[b], spk[a]);
                    char src[1400], dst[1400];
                    snprintf(src, sizeof src, "%s/data/emodb/flac/%s.flac", getcwd(out, sizeof out), nm);
                    snprintf(dst, sizeof dst, "%s/data/flac/%s.flac", dir, nm);
                    CHECK(symlink(src, dst) == 0);
                    if (!first[0]) snprintf(first, sizeof first, "%s", nm);
                    count[a][b]++;
                    total++;
                }
    }
    fclose(f);
    mer_csv_free(csv);
    REQUIRE(total == 18);
    int rc = mer_test_run(out, sizeof out, "%s demo --data %s/data --out %s/out --seeds 1 --epochs 20 --threads 2",
                          mer_test_bin(), dir, dir);
    if (rc != 0) fprintf(stderr, "%s\n", out);
    REQUIRE(rc == 0);
    CHECK(strstr(out, "18 clips, 3 speakers, 3 classes") != NULL);
    CHECK(strstr(out, "WAF") != NULL && strstr(out, "UAR") != NULL && strstr(out, "confusion") != NULL);
    {
        /* the example clip: its predicted class, then every class by decreasing probability
         * (mer_demo_result.example_order), the first of them the prediction */
        const char *e = strstr(out, " (p = ");
        REQUIRE(e);
        char top[32] = "", first[32] = "";
        const char *c = e;
        while (c > out && c[-1] != ' ') c--;
        CHECK(sscanf(c, "%31[^ ] (p = ", top) == 1);
        const char *l = strchr(e, '\n');
        REQUIRE(l);
        double prev = 2, pv;
        int n = 0, pos = 0;
        char cls[32];
        while (sscanf(l + 1 + pos, " %31s %lf%n", cls, &pv, &n) == 2 && n > 0 && pv <= 1.0) {
            if (!first[0]) snprintf(first, sizeof first, "%s", cls);
            CHECK(pv <= prev);
            prev = pv;
            pos += n;
            if (l[1 + pos] == '\n') break;
        }
        CHECK(first[0] && !strcmp(first, top));
    }
    /* each clip and its two speed-perturbed training copies */
    CHECK(strstr(out, "54 extracted") != NULL);
    snprintf(p, sizeof p, "%s/out/report/metrics.json", dir);
    CHECK(slurp_contains(p, "\"waf\""));
    CHECK(slurp_contains(p, "\"per_group_waf\""));
    CHECK(slurp_contains(p, "\"n\": 18")); /* the copies train only: never scored */
    snprintf(p, sizeof p, "%s/out/report/predictions.csv", dir);
    CHECK(!slurp_contains(p, "@speed"));
    snprintf(p, sizeof p, "%s/out/report/confusion.png", dir);
    f = fopen(p, "rb");
    CHECK(f != NULL);
    if (f) fclose(f);
    snprintf(p, sizeof p, "%s/out/model/metrics.json", dir);
    CHECK(slurp_contains(p, "\"complete\": true"));
    snprintf(p, sizeof p, "%s/out/model/recipe.json", dir);
    {
        mer_json *j = NULL;
        const char *ex = NULL, *ad = NULL;
        double mu[1000], sd[1000];
        int32_t nm = 0, ns = 0;
        REQUIRE_OK(mer_json_load(&j, p));
        CHECK(mer_json_get_string(j, "extractor", &ex) == MER_OK && !strcmp(ex, "acoustic"));
        CHECK(mer_json_get_string(j, "adapt", &ad) == MER_OK && !strcmp(ad, "group"));
        CHECK_OK(mer_json_get_double_array(j, "norm.mean", mu, 1000, &nm));
        CHECK_OK(mer_json_get_double_array(j, "norm.std", sd, 1000, &ns));
        CHECK(nm == 929 && ns == 929 && sd[0] > 0);
        mer_json_free(j);
    }
    /* the rerun takes the cached features and replaces the model */
    rc = mer_test_run(out, sizeof out, "%s demo --data %s/data --out %s/out --seeds 1 --epochs 20 --no-single-clip",
                      mer_test_bin(), dir, dir);
    CHECK(rc == 0);
    CHECK(strstr(out, "54 cached, 0 extracted") != NULL);
    /* --adapt group: groups from a regex on the clip name or from the labels' speaker column
     * give the same file; bad combinations are refused */
    rc = mer_test_run(out, sizeof out, "%s predict --run %s/out/model --input %s/data/flac/*.flac --adapt group "
                      "--group-regex '^(..)' --out %s/pa.csv && %s predict --run %s/out/model --input "
                      "%s/data/flac/*.flac --adapt group --groups %s/data/labels.csv --out %s/pb.csv && "
                      "%s predict --run %s/out/model --input %s/data/flac/*.flac --out %s/pn.csv && "
                      "cmp %s/pa.csv %s/pb.csv && ! cmp -s %s/pa.csv %s/pn.csv",
                      mer_test_bin(), dir, dir, dir, mer_test_bin(), dir, dir, dir, dir, mer_test_bin(), dir,
                      dir, dir, dir, dir, dir, dir);
    CHECK(rc == 0);
    rc = mer_test_run(out, sizeof out, "%s predict --run %s/out/model --input %s/data/flac/*.flac --adapt group "
                      "--out %s/pc.csv", mer_test_bin(), dir, dir, dir);
    CHECK(rc == 2 && strstr(out, "--group-regex") != NULL);
    rc = mer_test_run(out, sizeof out, "%s predict --run %s/out/model --input %s/data/flac/*.flac --adapt group "
                      "--group-regex '^x' --out %s/pc.csv", mer_test_bin(), dir, dir, dir);
    CHECK(rc == 1 && strstr(out, "does not match") != NULL);
    rc = mer_test_run(out, sizeof out, "%s predict --run %s/out/model --input %s/data/flac/*.flac --adapt some "
                      "--out %s/pc.csv", mer_test_bin(), dir, dir, dir);
    CHECK(rc == 2 && strstr(out, "--adapt") != NULL);
    /* --augment none: the clips alone */
    rc = mer_test_run(out, sizeof out, "%s demo --data %s/data --out %s/out3 --seeds 1 --epochs 5 --augment none "
                      "--no-single-clip", mer_test_bin(), dir, dir);
    CHECK(rc == 0 && strstr(out, "18 extracted") != NULL);
    rc = mer_test_run(out, sizeof out, "%s demo --data %s/data --out %s/out3 --augment 1", mer_test_bin(), dir, dir);
    CHECK(rc == 2);
    /* mer predict on raw media through the recorded recipe; rows named by file name */
    rc = mer_test_run(out, sizeof out, "%s predict --run %s/out/model --input %s/data/flac/%s.flac --out %s/pred.csv",
                      mer_test_bin(), dir, dir, first, dir);
    if (rc != 0) fprintf(stderr, "%s\n", out);
    CHECK(rc == 0);
    snprintf(p, sizeof p, "%s/pred.csv", dir);
    CHECK(slurp_contains(p, first));
    /* bad input: a data dir without labels */
    rc = mer_test_run(out, sizeof out, "%s demo --data %s/nothing --out %s/out2", mer_test_bin(), dir, dir);
    CHECK(rc == 1);
    CHECK(strstr(out, "labels.csv") != NULL);
}
