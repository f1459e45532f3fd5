/*
 * acoustic.c -- weight-free speech descriptors: log-mel, MFCC + deltas, and eGeMAPS-style
 * low-level descriptors (LLDs) per 10 ms frame. The utterance functionals over them live in
 * acoustic_functionals.c; docs/acoustic.md documents every feature.
 *
 * Pipeline of mer_acoustic_frames for a signal x (n) at params.sample_rate:
 *   1. STFT as torch.stft(center=True, pad_mode='reflect', periodic hann window of win_length
 *      centred in n_fft), power spectrum |X|^2                          -> P (T, n_freqs)
 *   2. htk mel filterbank (norm None) -> mel (T, n_mels); log(mel + off) (also kept as LLDs);
 *      DCT-II ortho -> MFCC;
 *      deltas as torchaudio.functional.compute_deltas (replicate padding)
 *   3. spectral LLDs from P: alpha ratio, Hammarberg index, spectral slopes, flux, centroid;
 *      loudness = sum of mel band powers ^ 0.3 (Stevens' power law on an auditory spectrum)
 *   4. F0: YIN (de Cheveigne & Kawahara 2002) on frames centred like the STFT's, with an
 *      octave check against the utterance median and a 3-frame median smoother; HNR from the
 *      normalised autocorrelation at the period (Boersma 1993 without the window correction)
 *   5. glottal cycles by peak picking guided by F0 -> jitter (local) and shimmer (local, dB)
 *   6. formants F1-F3 (+ F1 bandwidth) from the roots of an LPC polynomial (voiced frames)
 * Frame t is centred on sample t * hop_length; T = 1 + n / hop_length as torchaudio's.
 */
#include "acoustic_internal.h"
#include "kernels/kernels.h"

#include <complex.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

/* ============================================================================================
 * Parameters and names
 * ========================================================================================== */

mer_acoustic_params mer_acoustic_default_params(void) {
    mer_acoustic_params p;
    memset(&p, 0, sizeof p);
    p.sample_rate = 16000;
    p.n_fft = 512;
    p.win_length = 400;
    p.hop_length = 160;
    p.n_mels = 40;
    p.n_mfcc = 13;
    p.f_min = 0.0f;
    p.f_max = 0.0f;
    p.log_offset = 1e-6f;
    p.delta_win = 5;
    p.f0_min = 55.0f;
    p.f0_max = 600.0f;
    p.voicing_threshold = 0.35f;
    p.lpc_order = 0;
    return p;
}

mer_status mer__acoustic_check(const mer_acoustic_params *p) {
    if (!p) return mer__err(MER_ERR_INVALID_ARG, "acoustic: params is NULL");
    if (p->sample_rate < 4000 || p->sample_rate > 192000)
        return mer__err(MER_ERR_INVALID_ARG, "acoustic: sample_rate %d outside [4000, 192000]",
                        p->sample_rate);
    if (p->n_fft < 16 || p->n_fft > 65536)
        return mer__err(MER_ERR_INVALID_ARG, "acoustic: n_fft %d outside [16, 65536]", p->n_fft);
    if (p->win_length < 8 || p->win_length > p->n_fft)
        return mer__err(MER_ERR_INVALID_ARG, "acoustic: win_length %d must be in [8, n_fft=%d]",
                        p->win_length, p->n_fft);
    if (p->hop_length < 1 || p->hop_length > p->n_fft)
        return mer__err(MER_ERR_INVALID_ARG, "acoustic: hop_length %d must be in [1, n_fft=%d]",
                        p->hop_length, p->n_fft);
    if (p->n_mels < 2 || p->n_mels > 512)
        return mer__err(MER_ERR_INVALID_ARG, "acoustic: n_mels %d outside [2, 512]", p->n_mels);
    if (p->n_mfcc < 1 || p->n_mfcc > p->n_mels)
        return mer__err(MER_ERR_INVALID_ARG, "acoustic: n_mfcc %d must be in [1, n_mels=%d]",
                        p->n_mfcc, p->n_mels);
    double fmax = p->f_max > 0 ? p->f_max : p->sample_rate / 2.0;
    if (!(p->f_min >= 0) || !(fmax > p->f_min) || fmax > p->sample_rate / 2.0 + 1e-3)
        return mer__err(MER_ERR_INVALID_ARG, "acoustic: mel range [%g, %g] Hz invalid for %d Hz",
                        (double)p->f_min, fmax, p->sample_rate);
    if (!(p->log_offset > 0))
        return mer__err(MER_ERR_INVALID_ARG, "acoustic: log_offset must be > 0");
    if (p->delta_win < 3 || p->delta_win > 99)
        return mer__err(MER_ERR_INVALID_ARG, "acoustic: delta_win %d outside [3, 99]", p->delta_win);
    if (!(p->f0_min >= 20) || !(p->f0_max > p->f0_min) || p->f0_max > p->sample_rate / 4.0)
        return mer__err(MER_ERR_INVALID_ARG, "acoustic: pitch range [%g, %g] Hz invalid",
                        (double)p->f0_min, (double)p->f0_max);
    if (!(p->voicing_threshold > 0) || p->voicing_threshold > 1)
        return mer__err(MER_ERR_INVALID_ARG, "acoustic: voicing_threshold must be in (0, 1]");
    if (p->lpc_order < 0 || p->lpc_order > 64)
        return mer__err(MER_ERR_INVALID_ARG, "acoustic: lpc_order %d outside [0, 64]", p->lpc_order);
    if (p->functionals != MER_ACOUSTIC_EGEMAPS && p->functionals != MER_ACOUSTIC_EXTENDED)
        return mer__err(MER_ERR_INVALID_ARG, "acoustic: functionals %d is neither 0 (egemaps) nor 1 (extended)",
                        p->functionals);
    return MER_OK;
}

static const char *const lld_names[MER__AC_NLLD] = {
    "loudness",       "rms_db",         "f0_semitone",     "voicing",
    "jitter_local",   "shimmer_db",     "hnr_db",          "f1_freq",
    "f1_bandwidth",   "f2_freq",        "f3_freq",         "alpha_ratio",
    "hammarberg",     "slope_0_500",    "slope_500_1500",  "spectral_flux",
    "spectral_centroid",
};

int mer__acoustic_lld_voiced_only(int i) {
    return i == MER__AC_F0 || i == MER__AC_JITTER || i == MER__AC_SHIMMER || i == MER__AC_HNR ||
           i == MER__AC_F1 || i == MER__AC_F1BW || i == MER__AC_F2 || i == MER__AC_F3;
}

int32_t mer_acoustic_frame_dim(const mer_acoustic_params *p) {
    if (!p) return 0;
    return MER__AC_NLLD + 2 * p->n_mfcc + p->n_mels;
}

mer_status mer_acoustic_frame_name(const mer_acoustic_params *p, int32_t i, char *buf, size_t cap) {
    int32_t d = mer_acoustic_frame_dim(p);
    if (!buf || cap == 0 || i < 0 || i >= d)
        return mer__err(MER_ERR_INVALID_ARG, "acoustic: frame feature %d out of range [0, %d)", i, d);
    if (i < MER__AC_NLLD)
        snprintf(buf, cap, "%s", lld_names[i]);
    else if (i < MER__AC_NLLD + p->n_mfcc)
        snprintf(buf, cap, "mfcc%d", i - MER__AC_NLLD);
    else if (i < MER__AC_NLLD + 2 * p->n_mfcc)
        snprintf(buf, cap, "mfcc%d_delta", i - MER__AC_NLLD - p->n_mfcc);
    else
        snprintf(buf, cap, "logmel%d", i - MER__AC_NLLD - 2 * p->n_mfcc);
    return MER_OK;
}

/* ============================================================================================
 * Spectrogram, mel, MFCC
 * ========================================================================================== */

static double hz_to_mel(double f) { return 2595.0 * log10(1.0 + f / 700.0); }
static double mel_to_hz(double m) { return 700.0 * (pow(10.0, m / 2595.0) - 1.0); }

/* Signals shorter than torch's reflect padding allows are zero-padded (documented in mer.h). */
static int64_t padded_len(const mer_acoustic_params *p, int64_t n) {
    int64_t need = p->n_fft / 2 + 1;
    return n < need ? need : n;
}

void mer__acoustic_spec_free(mer__acoustic_spec *s) {
    if (!s) return;
    free(s->power);
    free(s->mel);
    memset(s, 0, sizeof *s);
}

/* One frame at a time of the STFT and mel filterbank below, so that a long signal never needs
 * its whole spectrogram: mer_acoustic_frames keeps one power spectrum (and the previous one, for
 * the flux); mer__acoustic_stft fills the (T, n_freqs) arrays from the same code, so both give
 * the same bits. */
typedef struct {
    int64_t nfft, nf, hop, pad, np, T;
    int32_t M;
    double *win, *frame, *X, *work, *fb; /* fb (n_mels, nf) */
    int64_t lo[512], hi[512];            /* the non-zero bins of each mel triangle */
    mer__fft *plan;
} stft_ctx;

static void stft_free(stft_ctx *c) {
    mer__fft_free(c->plan);
    free(c->win);
    free(c->frame);
    free(c->X);
    free(c->work);
    free(c->fb);
    memset(c, 0, sizeof *c);
}

/* ref: torchaudio.functional.melscale_fbanks (norm None, htk); periodic hann of win_length
 * centred in n_fft as torch.stft pads it. */
static mer_status stft_init(stft_ctx *c, const mer_acoustic_params *p, const float *x, int64_t n) {
    memset(c, 0, sizeof *c);
    mer_status s = mer__acoustic_check(p);
    if (s) return s;
    if (!x || n < 1) return mer__err(MER_ERR_INVALID_ARG, "acoustic: empty signal");
    if (n > ((int64_t)1 << 34)) return mer__err(MER_ERR_NOMEM, "acoustic: signal too long");
    c->nfft = p->n_fft;
    c->nf = c->nfft / 2 + 1;
    c->hop = p->hop_length;
    c->pad = c->nfft / 2;
    c->np = padded_len(p, n);
    c->T = 1 + c->np / c->hop;
    c->M = p->n_mels;
    const int64_t nfft = c->nfft, nf = c->nf;
    c->win = calloc((size_t)nfft, sizeof(double));
    c->frame = malloc((size_t)nfft * sizeof(double));
    c->X = malloc((size_t)(nf * 2) * sizeof(double));
    c->work = malloc((size_t)nfft * 4 * sizeof(double));
    c->fb = calloc((size_t)nf * c->M, sizeof(double));
    if (!c->win || !c->frame || !c->X || !c->work || !c->fb) {
        stft_free(c);
        return mer__err(MER_ERR_NOMEM, "acoustic: out of memory for the STFT");
    }
    if ((s = mer__fft_init(&c->plan, nfft))) {
        stft_free(c);
        return s;
    }
    int64_t wl = p->win_length, woff = (nfft - wl) / 2;
    for (int64_t i = 0; i < wl; i++) c->win[woff + i] = 0.5 - 0.5 * cos(2.0 * M_PI * (double)i / (double)wl);
    const int32_t M = c->M;
    double fmax = p->f_max > 0 ? p->f_max : p->sample_rate / 2.0;
    double mmin = hz_to_mel(p->f_min), mmax = hz_to_mel(fmax);
    double fpts[514];
    for (int32_t i = 0; i < M + 2; i++) fpts[i] = mel_to_hz(mmin + (mmax - mmin) * i / (M + 1));
    for (int64_t k = 0; k < nf; k++) {
        double f = (double)(p->sample_rate / 2) * (double)k / (double)(nf - 1);
        for (int32_t m = 0; m < M; m++) {
            double down = (f - fpts[m]) / (fpts[m + 1] - fpts[m]);
            double up = (fpts[m + 2] - f) / (fpts[m + 2] - fpts[m + 1]);
            double v = down < up ? down : up;
            c->fb[m * nf + k] = v > 0 ? v : 0;
        }
    }
    for (int32_t m = 0; m < M; m++) {
        c->lo[m] = nf;
        c->hi[m] = 0;
        for (int64_t k = 0; k < nf; k++)
            if (c->fb[m * nf + k] != 0) {
                if (k < c->lo[m]) c->lo[m] = k;
                c->hi[m] = k + 1;
            }
    }
    return MER_OK;
}

/* Frame t: P (nf) = |STFT|^2, mel (n_mels) = the filterbank on P. The signal is zero-padded to
 * np samples (short signals), then reflect-padded by n_fft / 2 (no edge repeat; np > pad so one
 * reflection suffices). */
static mer_status stft_frame(stft_ctx *c, const float *x, int64_t n, int64_t t, double *P, double *mel) {
    const int64_t nfft = c->nfft, nf = c->nf, np = c->np;
    for (int64_t k = 0; k < nfft; k++) {
        int64_t j = t * c->hop + k - c->pad;
        if (j < 0) j = -j;
        if (j >= np) j = 2 * (np - 1) - j;
        c->frame[k] = (j < n ? (double)x[j] : 0.0) * c->win[k];
    }
    mer_status s = mer__fft_r2c(c->plan, c->X, c->frame, c->work);
    if (s) return s;
    const double *X = c->X;
    for (int64_t k = 0; k < nf; k++) P[k] = X[2 * k] * X[2 * k] + X[2 * k + 1] * X[2 * k + 1];
    for (int32_t m = 0; m < c->M; m++) {
        const double *w = c->fb + m * nf;
        double acc = 0;
        for (int64_t k = c->lo[m]; k < c->hi[m]; k++) acc += w[k] * P[k];
        mel[m] = acc;
    }
    return MER_OK;
}

/* ref: torchaudio.transforms.MelSpectrogram (power=2, center=True, pad_mode='reflect',
 * norm=None, mel_scale='htk'), computed in double. */
mer_status mer__acoustic_stft(const mer_acoustic_params *p, const float *x, int64_t n,
                              mer__acoustic_spec *out) {
    memset(out, 0, sizeof *out);
    stft_ctx c;
    mer_status s = stft_init(&c, p, x, n);
    if (s) return s;
    const int64_t T = c.T, nf = c.nf;
    out->T = T;
    out->n_freqs = nf;
    out->n_mels = p->n_mels;
    int64_t cells;
    if (!mer__mul_overflow(T, nf, &cells) || cells > ((int64_t)1 << 31)) {
        stft_free(&c);
        return mer__err(MER_ERR_NOMEM, "acoustic: spectrogram of %lld frames too large", (long long)T);
    }
    out->power = malloc((size_t)cells * sizeof(double));
    out->mel = malloc((size_t)T * p->n_mels * sizeof(double));
    if (!out->power || !out->mel)
        s = mer__err(MER_ERR_NOMEM, "acoustic: out of memory for %lld frames", (long long)T);
    for (int64_t t = 0; !s && t < T; t++) s = stft_frame(&c, x, n, t, out->power + t * nf, out->mel + t * c.M);
    stft_free(&c);
    if (s) mer__acoustic_spec_free(out);
    return s;
}

/* The DCT-II (ortho) table (n_mfcc, n_mels). ref: torchaudio.functional.create_dct(norm='ortho') */
static double *dct_table(const mer_acoustic_params *p) {
    const int32_t M = p->n_mels, C = p->n_mfcc;
    double *dct = malloc((size_t)C * M * sizeof(double));
    if (!dct) return NULL;
    for (int32_t c = 0; c < C; c++)
        for (int32_t m = 0; m < M; m++)
            dct[c * M + m] = cos(M_PI / M * (m + 0.5) * c) * sqrt(2.0 / M) * (c == 0 ? 1.0 / sqrt(2.0) : 1.0);
    return dct;
}

/* One frame's MFCC (n_mfcc) from its mel powers (n_mels). */
static void mfcc_row(const mer_acoustic_params *p, const double *dct, const double *mel, double *mfcc) {
    const int32_t M = p->n_mels, C = p->n_mfcc;
    double lm[512];
    for (int32_t m = 0; m < M; m++) lm[m] = log(mel[m] + (double)p->log_offset);
    for (int32_t c = 0; c < C; c++) {
        double acc = 0;
        for (int32_t m = 0; m < M; m++) acc += lm[m] * dct[c * M + m];
        mfcc[c] = acc;
    }
}

/* mfcc (T, n_mfcc) from the mel powers. ref: torchaudio.transforms.MFCC(log_mels=True) */
mer_status mer__acoustic_mfcc_from_mel(const mer_acoustic_params *p, const double *mel,
                                       int64_t T, double *mfcc) {
    double *dct = dct_table(p);
    if (!dct) return mer__err(MER_ERR_NOMEM, "acoustic: out of memory for the DCT table");
    for (int64_t t = 0; t < T; t++) mfcc_row(p, dct, mel + t * p->n_mels, mfcc + t * p->n_mfcc);
    free(dct);
    return MER_OK;
}

/* Row u of the deltas along time of x (T, C): d (C). ref: torchaudio.functional.compute_deltas
 * (mode='replicate'): d_t = sum_k k (x_{t+k} - x_{t-k}) / (2 sum_k k^2), k = 1..N. Row r of x
 * is read at x + (r % R) * C: a ring of the last R >= 2N + 1 rows. */
static void delta_row(double *d, const double *x, int64_t R, int64_t u, int64_t T, int64_t C, int32_t N) {
    double denom = (double)N * (N + 1) * (2 * N + 1) / 3.0;
    for (int64_t c = 0; c < C; c++) {
        double acc = 0;
        for (int32_t k = 1; k <= N; k++) {
            int64_t a = u + k < T ? u + k : T - 1, b = u - k >= 0 ? u - k : 0;
            acc += k * (x[(a % R) * C + c] - x[(b % R) * C + c]);
        }
        d[c] = acc / denom;
    }
}

mer_status mer_acoustic_melspec(const float *x, int64_t n, const mer_acoustic_params *p,
                                float **out, int64_t *T) {
    if (!out || !T) return mer__err(MER_ERR_INVALID_ARG, "acoustic: NULL output");
    *out = NULL;
    *T = 0;
    mer__acoustic_spec sp;
    mer_status s = mer__acoustic_stft(p, x, n, &sp);
    if (s) return s;
    float *o = malloc((size_t)sp.T * sp.n_mels * sizeof(float));
    if (!o) {
        mer__acoustic_spec_free(&sp);
        return mer__err(MER_ERR_NOMEM, "acoustic: out of memory");
    }
    for (int64_t m = 0; m < sp.n_mels; m++)
        for (int64_t t = 0; t < sp.T; t++) o[m * sp.T + t] = (float)sp.mel[t * sp.n_mels + m];
    *out = o;
    *T = sp.T;
    mer__acoustic_spec_free(&sp);
    return MER_OK;
}

mer_status mer_acoustic_mfcc(const float *x, int64_t n, const mer_acoustic_params *p,
                             float **out, int64_t *T) {
    if (!out || !T) return mer__err(MER_ERR_INVALID_ARG, "acoustic: NULL output");
    *out = NULL;
    *T = 0;
    mer__acoustic_spec sp;
    mer_status s = mer__acoustic_stft(p, x, n, &sp);
    if (s) return s;
    const int64_t C = p->n_mfcc;
    double *mf = malloc((size_t)sp.T * C * sizeof(double));
    float *o = malloc((size_t)sp.T * C * sizeof(float));
    if (!mf || !o) {
        free(mf);
        free(o);
        mer__acoustic_spec_free(&sp);
        return mer__err(MER_ERR_NOMEM, "acoustic: out of memory");
    }
    s = mer__acoustic_mfcc_from_mel(p, sp.mel, sp.T, mf);
    if (s != MER_OK) {
        free(mf);
        free(o);
        mer__acoustic_spec_free(&sp);
        return s;
    }
    for (int64_t c = 0; c < C; c++)
        for (int64_t t = 0; t < sp.T; t++) o[c * sp.T + t] = (float)mf[t * C + c];
    *out = o;
    *T = sp.T;
    free(mf);
    mer__acoustic_spec_free(&sp);
    return MER_OK;
}

/* ============================================================================================
 * Spectral LLDs of one power spectrum
 * ========================================================================================== */

static double band_sum(const double *P, int64_t nf, double df, double lo, double hi) {
    double acc = 0;
    for (int64_t k = 0; k < nf; k++) {
        double f = k * df;
        if (f >= lo && f < hi) acc += P[k];
    }
    return acc;
}

static double band_max(const double *P, int64_t nf, double df, double lo, double hi) {
    double mx = 0;
    for (int64_t k = 0; k < nf; k++) {
        double f = k * df;
        if (f > lo && f <= hi && P[k] > mx) mx = P[k];
    }
    return mx;
}

/* Least-squares slope of 10 log10(P) against frequency in kHz over bins with lo <= f <= hi. */
static double band_slope(const double *P, int64_t nf, double df, double lo, double hi) {
    double sx = 0, sy = 0, sxx = 0, sxy = 0;
    int cnt = 0;
    for (int64_t k = 0; k < nf; k++) {
        double f = k * df;
        if (f < lo || f > hi) continue;
        double xk = f / 1000.0, yk = 10.0 * log10(P[k] + 1e-20);
        sx += xk;
        sy += yk;
        sxx += xk * xk;
        sxy += xk * yk;
        cnt++;
    }
    double den = cnt * sxx - sx * sx;
    if (cnt < 2 || den <= 0) return 0;
    return (cnt * sxy - sx * sy) / den;
}

void mer__acoustic_spectral_llds(const double *P, const double *Pprev, int64_t nf, double df,
                                 double *alpha, double *hammarberg, double *slope_lo,
                                 double *slope_hi, double *flux, double *centroid) {
    const double eps = 1e-20;
    *alpha = 10.0 * log10((band_sum(P, nf, df, 50, 1000) + eps) / (band_sum(P, nf, df, 1000, 5000) + eps));
    *hammarberg = 10.0 * log10((band_max(P, nf, df, 0, 2000) + eps) / (band_max(P, nf, df, 2000, 5000) + eps));
    *slope_lo = band_slope(P, nf, df, 0, 500);
    *slope_hi = band_slope(P, nf, df, 500, 1500);
    double tot = 0, fs = 0;
    for (int64_t k = 0; k < nf; k++) {
        tot += P[k];
        fs += k * df * P[k];
    }
    *centroid = tot > 0 ? fs / tot : 0;
    /* flux between L2-normalised magnitude spectra (0 = same shape, 2 = disjoint) */
    *flux = 0;
    if (Pprev) {
        double ta = 0, tb = 0;
        for (int64_t k = 0; k < nf; k++) {
            ta += P[k];
            tb += Pprev[k];
        }
        if (ta > 0 && tb > 0) {
            double acc = 0, ia = 1.0 / sqrt(ta), ib = 1.0 / sqrt(tb);
            for (int64_t k = 0; k < nf; k++) {
                double dlt = sqrt(P[k]) * ia - sqrt(Pprev[k]) * ib;
                acc += dlt * dlt;
            }
            *flux = acc;
        }
    }
}

/* ============================================================================================
 * Pitch (YIN) and HNR
 * ========================================================================================== */

/* Signal value with zeros outside [0, n). */
static inline double sig(const float *x, int64_t n, int64_t i) { return i >= 0 && i < n ? x[i] : 0.0; }

mer_status mer__acoustic_pitch(const mer_acoustic_params *p, const float *x, int64_t n, int64_t T,
                               double *f0, double *aper, double *hnr) {
    const int64_t sr = p->sample_rate;
    const int64_t tmin = (int64_t)floor(sr / (double)p->f0_max);
    const int64_t tmax = (int64_t)ceil(sr / (double)p->f0_min);
    const int64_t W = p->win_length > tmax ? p->win_length : tmax;
    int64_t L = 1;
    while (L < W + tmax + 2) L *= 2;
    mer_status s = MER_OK;
    mer__fft *plan = NULL;
    double *a = malloc((size_t)L * 2 * sizeof(double)), *A = malloc((size_t)L * 2 * sizeof(double));
    double *r = malloc((size_t)L * 2 * sizeof(double));
    double *seg = malloc((size_t)(W + tmax + 1) * sizeof(double));
    double *cum = malloc((size_t)(W + tmax + 2) * sizeof(double));
    double *d = malloc((size_t)(tmax + 2) * sizeof(double)), *cm = malloc((size_t)(tmax + 2) * sizeof(double));
    if (!a || !A || !r || !seg || !cum || !d || !cm) {
        s = mer__err(MER_ERR_NOMEM, "acoustic: out of memory (pitch)");
        goto done;
    }
    if ((s = mer__fft_init(&plan, L))) goto done;
    const double thr = 0.1; /* YIN absolute threshold: the first dip below it wins */
    for (int64_t t = 0; t < T; t++) {
        int64_t start = t * p->hop_length - (W + tmax) / 2;
        for (int64_t i = 0; i < W + tmax; i++) seg[i] = sig(x, n, start + i);
        cum[0] = 0;
        for (int64_t i = 0; i < W + tmax; i++) cum[i + 1] = cum[i] + seg[i] * seg[i];
        double E0 = cum[W];
        f0[t] = 0;
        aper[t] = 1;
        hnr[t] = 0;
        if (E0 < 1e-10 * (double)W) continue; /* digital silence: below -100 dBFS */
        /* both real FFTs in one complex one: z = a + i b, then A_k = (Z_k + conj Z_-k) / 2 and
         * B_k = (Z_k - conj Z_-k) / 2i */
        memset(a, 0, (size_t)L * 2 * sizeof(double));
        for (int64_t i = 0; i < W + tmax; i++) {
            a[2 * i] = i < W ? seg[i] : 0.0;
            a[2 * i + 1] = seg[i];
        }
        if ((s = mer__fft_c2c(plan, A, a, 0))) goto done;
        for (int64_t k = 0; k < L; k++) { /* conj(A) * B */
            int64_t mk = (L - k) % L;
            double zr = A[2 * k], zi = A[2 * k + 1], cr = A[2 * mk], ci = -A[2 * mk + 1];
            double ar = 0.5 * (zr + cr), ai = 0.5 * (zi + ci);
            double br = 0.5 * (zi - ci), bi = -0.5 * (zr - cr);
            ai = -ai;
            a[2 * k] = ar * br - ai * bi;
            a[2 * k + 1] = ar * bi + ai * br;
        }
        if ((s = mer__fft_c2c(plan, r, a, 1))) goto done;
        /* d(tau) = E0 + E_tau - 2 r(tau), cumulative mean normalised */
        d[0] = 0;
        cm[0] = 1;
        double run = 0;
        for (int64_t tau = 1; tau <= tmax; tau++) {
            double rt = r[2 * tau] / (double)L;
            double Et = cum[tau + W] - cum[tau];
            double dv = E0 + Et - 2 * rt;
            d[tau] = dv > 0 ? dv : 0;
            run += d[tau];
            cm[tau] = run > 0 ? d[tau] * tau / run : 1;
        }
        int64_t best = -1;
        for (int64_t tau = tmin > 2 ? tmin : 2; tau <= tmax; tau++) {
            if (cm[tau] < thr) {
                while (tau + 1 <= tmax && cm[tau + 1] < cm[tau]) tau++;
                best = tau;
                break;
            }
        }
        if (best < 0) {
            best = tmin > 2 ? tmin : 2;
            for (int64_t tau = best; tau <= tmax; tau++)
                if (cm[tau] < cm[best]) best = tau;
        }
        /* parabolic refinement on d (the raw difference is smooth around the period) */
        double period = (double)best;
        if (best > 1 && best < tmax) {
            double y0 = d[best - 1], y1 = d[best], y2 = d[best + 1];
            double den = y0 - 2 * y1 + y2;
            if (den > 0) {
                double dl = 0.5 * (y0 - y2) / den;
                if (dl > -1 && dl < 1) period += dl;
            }
        }
        f0[t] = (double)sr / period;
        aper[t] = cm[best] < 1 ? cm[best] : 1;
        /* HNR from the normalised autocorrelation at the best integer lag near the period */
        double rn = 0;
        for (int64_t tau = best - 1; tau <= best + 1; tau++) {
            if (tau < 1 || tau > tmax) continue;
            double Et = cum[tau + W] - cum[tau];
            double rt = r[2 * tau] / (double)L;
            double v = Et > 0 ? rt / sqrt(E0 * Et) : 0;
            if (v > rn) rn = v;
        }
        if (rn < 1e-6) rn = 1e-6;
        if (rn > 1 - 1e-9) rn = 1 - 1e-9;
        hnr[t] = 10.0 * log10(rn / (1 - rn));
    }
done:
    mer__fft_free(plan);
    free(a);
    free(A);
    free(r);
    free(seg);
    free(cum);
    free(d);
    free(cm);
    return s;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Voicing decision, octave correction against the utterance median, 3-frame median smoothing.
 * f0 is set to 0 on unvoiced frames. */
mer_status mer__acoustic_pitch_post(const mer_acoustic_params *p, double *f0, const double *aper,
                                    uint8_t *voiced, int64_t T) {
    int64_t nv = 0;
    for (int64_t t = 0; t < T; t++) {
        voiced[t] = f0[t] > 0 && aper[t] < p->voicing_threshold;
        if (!voiced[t]) f0[t] = 0;
        nv += voiced[t];
    }
    if (nv == 0) return MER_OK;
    double *tmp = malloc((size_t)nv * sizeof(double));
    double *orig = malloc((size_t)T * sizeof(double));
    if (!tmp || !orig) {
        free(tmp);
        free(orig);
        return mer__err(MER_ERR_NOMEM, "acoustic: out of memory for the pitch of %lld frames",
                        (long long)T);
    }
    int64_t j = 0;
    for (int64_t t = 0; t < T; t++)
        if (voiced[t]) tmp[j++] = f0[t];
    qsort(tmp, (size_t)nv, sizeof(double), cmp_double);
    double med = tmp[nv / 2];
    /* a frame an octave away from the median, among neighbours that agree with the median, is
     * an octave error of the per-frame estimate */
    for (int64_t t = 0; t < T; t++) {
        if (!voiced[t]) continue;
        double ratio = f0[t] / med;
        if (ratio > 1.8 && ratio < 2.2) {
            int agree = 0;
            for (int64_t u = t - 2; u <= t + 2; u++)
                if (u != t && u >= 0 && u < T && voiced[u] && fabs(f0[u] / med - 1) < 0.25) agree++;
            if (agree >= 2) f0[t] *= 0.5;
        } else if (ratio > 0.45 && ratio < 0.55) {
            int agree = 0;
            for (int64_t u = t - 2; u <= t + 2; u++)
                if (u != t && u >= 0 && u < T && voiced[u] && fabs(f0[u] / med - 1) < 0.25) agree++;
            if (agree >= 2) f0[t] *= 2;
        }
    }
    memcpy(orig, f0, (size_t)T * sizeof(double));
    for (int64_t t = 1; t + 1 < T; t++) {
        if (!voiced[t] || !voiced[t - 1] || !voiced[t + 1]) continue;
        double v[3] = {orig[t - 1], orig[t], orig[t + 1]};
        qsort(v, 3, sizeof(double), cmp_double);
        f0[t] = v[1];
    }
    free(tmp);
    free(orig);
    return MER_OK;
}

/* ============================================================================================
 * Glottal cycles: jitter and shimmer
 * ========================================================================================== */

/* Peak picking guided by the F0 track, per voiced run; then for each voiced frame the local
 * jitter (mean |P_k - P_k-1| / mean P) and local shimmer (mean |20 log10(A_k+1 / A_k)|) of the
 * cycles whose peak lies within win_length of the frame centre. */
mer_status mer__acoustic_cycles(const mer_acoustic_params *p, const float *x, int64_t n,
                                const double *f0, const uint8_t *voiced, int64_t T,
                                double *jitter, double *shimmer) {
    const int64_t hop = p->hop_length;
    for (int64_t t = 0; t < T; t++) jitter[t] = shimmer[t] = 0;
    int64_t cap = 1024, np = 0;
    double *pos = malloc((size_t)cap * sizeof(double)), *amp = malloc((size_t)cap * sizeof(double));
    if (!pos || !amp) {
        free(pos);
        free(amp);
        return mer__err(MER_ERR_NOMEM, "acoustic: out of memory (cycles)");
    }
    int64_t t = 0;
    while (t < T) {
        if (!voiced[t]) {
            t++;
            continue;
        }
        int64_t t1 = t;
        while (t1 + 1 < T && voiced[t1 + 1]) t1++;
        /* run of voiced frames [t, t1]: samples [t*hop - hop/2, t1*hop + hop/2) */
        int64_t s0 = t * hop - hop / 2, s1 = t1 * hop + hop / 2;
        if (s0 < 0) s0 = 0;
        if (s1 > n) s1 = n;
        np = 0;
        if (s1 - s0 > 4) {
            /* polarity: the sign of the largest excursion in the run */
            double mx = 0, mn = 0;
            for (int64_t i = s0; i < s1; i++) {
                if (x[i] > mx) mx = x[i];
                if (x[i] < mn) mn = x[i];
            }
            double pol = mx >= -mn ? 1.0 : -1.0;
            double per0 = p->sample_rate / f0[t];
            int64_t lo = s0, hi = s0 + (int64_t)ceil(per0);
            if (hi > s1) hi = s1;
            while (lo < s1) {
                int64_t bi = lo;
                for (int64_t i = lo; i < hi; i++)
                    if (pol * x[i] > pol * x[bi]) bi = i;
                double pk = (double)bi, av = pol * x[bi];
                if (bi > 0 && bi + 1 < n) {
                    double y0 = pol * x[bi - 1], y1 = pol * x[bi], y2 = pol * x[bi + 1];
                    double den = y0 - 2 * y1 + y2;
                    if (den < 0) {
                        double dl = 0.5 * (y0 - y2) / den;
                        if (dl > -1 && dl < 1) {
                            pk += dl;
                            av = y1 - 0.25 * (y0 - y2) * dl;
                        }
                    }
                }
                if (np == cap) {
                    cap *= 2;
                    double *np1 = realloc(pos, (size_t)cap * sizeof(double));
                    if (np1) pos = np1;
                    double *np2 = realloc(amp, (size_t)cap * sizeof(double));
                    if (np2) amp = np2;
                    if (!np1 || !np2) {
                        free(pos);
                        free(amp);
                        return mer__err(MER_ERR_NOMEM, "acoustic: out of memory (cycles)");
                    }
                }
                pos[np] = pk;
                amp[np] = av;
                np++;
                int64_t ft = (int64_t)llround(pk / hop);
                if (ft < t) ft = t;
                if (ft > t1) ft = t1;
                double per = p->sample_rate / f0[ft];
                lo = bi + (int64_t)floor(0.8 * per);
                hi = bi + (int64_t)ceil(1.2 * per) + 1;
                if (hi > s1) hi = s1;
                if (lo >= hi) break;
            }
        }
        /* pos rises strictly (each peak is at least 0.8 periods >= 3 samples after the last), so
         * the cycles k with pos[k - 1] >= c - w and pos[k] <= c + w are a run [k0, k1) that
         * moves right with the frame: linear in the run's length, not quadratic */
        int64_t k0 = 1, k1 = 1;
        for (int64_t u = t; u <= t1; u++) {
            double c = (double)(u * hop), w = p->win_length;
            double sp = 0, sdp = 0, sa = 0;
            int cp = 0, cd = 0;
            while (k0 < np && pos[k0 - 1] < c - w) k0++;
            if (k1 < k0) k1 = k0;
            while (k1 < np && pos[k1] <= c + w) k1++;
            for (int64_t k = k0; k < k1; k++) {
                double P1 = pos[k] - pos[k - 1];
                sp += P1;
                cp++;
                if (amp[k - 1] > 0 && amp[k] > 0) {
                    sa += fabs(20.0 * log10(amp[k] / amp[k - 1]));
                    cd++;
                }
                if (k >= 2 && pos[k - 2] >= c - w) sdp += fabs(P1 - (pos[k - 1] - pos[k - 2]));
            }
            if (cp >= 2 && sp > 0) jitter[u] = (sdp / (cp - 1)) / (sp / cp);
            if (cd >= 1) shimmer[u] = sa / cd;
        }
        t = t1 + 1;
    }
    free(pos);
    free(amp);
    return MER_OK;
}

/* ============================================================================================
 * Formants from LPC roots
 * ========================================================================================== */

/* Autocorrelation LPC by Levinson-Durbin: a[0] = 1, a[1..order]. Returns 0 on a degenerate
 * (silent) frame. */
int mer__acoustic_lpc(const double *frame, int64_t len, int32_t order, double *a) {
    double R[65] = {0}, tmp[65];
    for (int32_t k = 0; k <= order; k++) {
        double acc = 0;
        for (int64_t i = k; i < len; i++) acc += frame[i] * frame[i - k];
        R[k] = acc;
    }
    if (R[0] <= 0) return 0;
    R[0] *= 1.0 + 1e-9; /* white-noise correction keeps the recursion stable */
    for (int32_t i = 0; i <= order; i++) a[i] = 0;
    a[0] = 1;
    double err = R[0];
    for (int32_t i = 1; i <= order; i++) {
        double acc = R[i];
        for (int32_t j = 1; j < i; j++) acc += a[j] * R[i - j];
        double k = -acc / err;
        for (int32_t j = 0; j <= i; j++) tmp[j] = a[j];
        for (int32_t j = 1; j < i; j++) a[j] = tmp[j] + k * tmp[i - j];
        a[i] = k;
        err *= 1 - k * k;
        if (err <= 0) return 0;
    }
    return 1;
}

/* Roots of z^p + a[1] z^(p-1) + ... + a[p] by the Aberth-Ehrlich iteration. */
/* a / b without the overflow-guarded library division (the values here are well scaled) */
static inline double complex cdiv(double complex a, double complex b) {
    double br = creal(b), bi = cimag(b), d = br * br + bi * bi;
    return CMPLX((creal(a) * br + cimag(a) * bi) / d, (cimag(a) * br - creal(a) * bi) / d);
}

/* z holds the starting points on entry (warm start from the previous frame's roots converges
 * in a few iterations) and the roots on return. */
static void poly_roots(const double *a, int32_t p, double complex *z) {
    for (int iter = 0; iter < 500; iter++) {
        double mx = 0;
        for (int32_t k = 0; k < p; k++) {
            double complex v = 1, dv = 0;
            for (int32_t i = 1; i <= p; i++) {
                dv = dv * z[k] + v;
                v = v * z[k] + a[i];
            }
            if (creal(dv) == 0 && cimag(dv) == 0) continue;
            double complex ratio = cdiv(v, dv), sum = 0;
            for (int32_t j = 0; j < p; j++)
                if (j != k) sum += cdiv(1.0, z[k] - z[j]);
            double complex w = cdiv(ratio, 1.0 - ratio * sum);
            if (!isfinite(creal(w)) || !isfinite(cimag(w))) continue;
            z[k] -= w;
            double w2 = creal(w) * creal(w) + cimag(w) * cimag(w);
            if (w2 > mx) mx = w2;
        }
        if (mx < 1e-20) break;
    }
}

/* F1..F3 frequencies and the F1 bandwidth (Hz) of one frame; 0 when not found. */
void mer__acoustic_formants(const mer_acoustic_params *p, const double *frame, int64_t len,
                            double *F, double *bw1, double complex *zs, int *warm) {
    int32_t order = p->lpc_order > 0 ? p->lpc_order : 2 + p->sample_rate / 1000;
    if (order > 64) order = 64;
    double a[65];
    F[0] = F[1] = F[2] = *bw1 = 0;
    if (!mer__acoustic_lpc(frame, len, order, a)) return;
    double complex z[64];
    for (int32_t k = 0; k < order; k++) {
        /* distinct, finite starting points: the previous roots, else a circle */
        double complex z0 = 0.9 * cexp(I * (2.0 * M_PI * k / order + 0.4));
        z[k] = *warm && isfinite(creal(zs[k])) && isfinite(cimag(zs[k])) ? zs[k] * 0.999 + 1e-3 * z0 : z0;
    }
    poly_roots(a, order, z);
    for (int32_t k = 0; k < order; k++) zs[k] = z[k];
    *warm = 1;
    double fr[64], bw[64];
    int nc = 0;
    const double sr = p->sample_rate;
    for (int32_t k = 0; k < order; k++) {
        if (cimag(z[k]) <= 0) continue;
        double f = carg(z[k]) * sr / (2 * M_PI);
        double b = -log(cabs(z[k])) * sr / M_PI;
        if (f < 90 || f > sr / 2 - 90 || b > 500 || b <= 0) continue;
        fr[nc] = f;
        bw[nc] = b;
        nc++;
    }
    for (int i = 1; i < nc; i++) /* insertion sort by frequency */
        for (int j = i; j > 0 && fr[j] < fr[j - 1]; j--) {
            double tf = fr[j], tb = bw[j];
            fr[j] = fr[j - 1];
            bw[j] = bw[j - 1];
            fr[j - 1] = tf;
            bw[j - 1] = tb;
        }
    for (int i = 0; i < 3 && i < nc; i++) F[i] = fr[i];
    if (nc > 0) *bw1 = bw[0];
}

/* ============================================================================================
 * All frame LLDs
 * ========================================================================================== */

mer_status mer_acoustic_frames(const float *x, int64_t n, const mer_acoustic_params *p,
                               float **out, int64_t *T_out) {
    if (!out || !T_out) return mer__err(MER_ERR_INVALID_ARG, "acoustic: NULL output");
    *out = NULL;
    *T_out = 0;
    stft_ctx sc;
    mer_status s = stft_init(&sc, p, x, n);
    if (s) return s;
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(x[i])) {
            stft_free(&sc);
            return mer__err(MER_ERR_NUMERIC, "acoustic: sample %lld is not finite", (long long)i);
        }
    /* Memory: the output (T, D) and six numbers per frame; the spectra, the MFCCs for the deltas
     * (a ring of delta_win rows) and the LPC frame are per frame. */
    const int64_t T = sc.T, nf = sc.nf, C = p->n_mfcc, M = p->n_mels, hop = p->hop_length;
    const int32_t D = mer_acoustic_frame_dim(p);
    const int32_t N = (p->delta_win - 1) / 2;
    const int64_t R = 2 * (int64_t)N + 1;
    const double df = (double)p->sample_rate / p->n_fft;
    int64_t cells;
    if (!mer__mul_overflow(T, D, &cells) || cells > ((int64_t)1 << 36)) {
        stft_free(&sc);
        return mer__err(MER_ERR_NOMEM, "acoustic: %lld frames are too many", (long long)T);
    }
    double *P = malloc((size_t)nf * 2 * sizeof(double)), *mel = malloc((size_t)M * sizeof(double));
    double *ring = malloc((size_t)(R * C) * sizeof(double)), *dm = malloc((size_t)C * sizeof(double));
    double *dct = dct_table(p);
    double *f0 = malloc((size_t)T * sizeof(double)), *ap = malloc((size_t)T * sizeof(double));
    double *hnr = malloc((size_t)T * sizeof(double)), *jit = malloc((size_t)T * sizeof(double));
    double *shim = malloc((size_t)T * sizeof(double));
    uint8_t *voiced = malloc((size_t)T);
    double *frame = malloc((size_t)p->win_length * sizeof(double));
    double *hamming = malloc((size_t)p->win_length * sizeof(double));
    float *o = calloc((size_t)cells, sizeof(float));
    if (!P || !mel || !ring || !dm || !dct || !f0 || !ap || !hnr || !jit || !shim || !voiced || !frame ||
        !hamming || !o) {
        s = mer__err(MER_ERR_NOMEM, "acoustic: out of memory for %lld frames", (long long)T);
        goto done;
    }
    /* frame by frame: spectrum, mel, MFCC and the spectral LLDs; deltas N frames behind */
    const int64_t wl = p->win_length;
    for (int64_t t = 0; t < T; t++) {
        double *Pt = P + (t % 2) * nf, *Pprev = P + ((t + 1) % 2) * nf, *mf = ring + (t % R) * C;
        if ((s = stft_frame(&sc, x, n, t, Pt, mel))) goto done;
        mfcc_row(p, dct, mel, mf);
        float *row = o + t * D;
        double loud = 0;
        for (int64_t m = 0; m < M; m++) loud += pow(mel[m], 0.3);
        double e = 0;
        for (int64_t i = 0; i < wl; i++) {
            double v = sig(x, n, t * hop - wl / 2 + i);
            e += v * v;
        }
        double al, hb, s0, s1, fl, ce;
        mer__acoustic_spectral_llds(Pt, t > 0 ? Pprev : NULL, nf, df, &al, &hb, &s0, &s1, &fl, &ce);
        row[MER__AC_LOUDNESS] = (float)loud;
        row[MER__AC_RMS_DB] = (float)(10.0 * log10(e / wl + 1e-10));
        row[MER__AC_ALPHA] = (float)al;
        row[MER__AC_HAMMARBERG] = (float)hb;
        row[MER__AC_SLOPE_LO] = (float)s0;
        row[MER__AC_SLOPE_HI] = (float)s1;
        row[MER__AC_FLUX] = (float)fl;
        row[MER__AC_CENTROID] = (float)ce;
        for (int64_t c = 0; c < C; c++) row[MER__AC_NLLD + c] = (float)mf[c];
        for (int64_t m = 0; m < M; m++) row[MER__AC_NLLD + 2 * C + m] = (float)log(mel[m] + (double)p->log_offset);
        if (t >= N) { /* frames t - 2N .. t are in the ring */
            delta_row(dm, ring, R, t - N, T, C, N);
            for (int64_t c = 0; c < C; c++) o[(t - N) * D + MER__AC_NLLD + C + c] = (float)dm[c];
        }
    }
    for (int64_t u = T - N > 0 ? T - N : 0; u < T; u++) { /* the last N: replicate padding */
        delta_row(dm, ring, R, u, T, C, N);
        for (int64_t c = 0; c < C; c++) o[u * D + MER__AC_NLLD + C + c] = (float)dm[c];
    }
    /* pitch, voicing, cycles and formants: the voicing needs the utterance's median F0 */
    if ((s = mer__acoustic_pitch(p, x, n, T, f0, ap, hnr))) goto done;
    if ((s = mer__acoustic_pitch_post(p, f0, ap, voiced, T))) goto done;
    if ((s = mer__acoustic_cycles(p, x, n, f0, voiced, T, jit, shim))) goto done;
    const double pre = exp(-2.0 * M_PI * 50.0 / p->sample_rate);
    double complex zroots[64];
    int zwarm = 0;
    for (int64_t i = 0; i < wl; i++) hamming[i] = 0.54 - 0.46 * cos(2.0 * M_PI * i / (wl - 1));
    for (int64_t t = 0; t < T; t++) {
        float *row = o + t * D;
        row[MER__AC_VOICING] = (float)(1.0 - ap[t]);
        if (!voiced[t]) continue;
        row[MER__AC_F0] = (float)(12.0 * log2(f0[t] / 27.5));
        row[MER__AC_JITTER] = (float)jit[t];
        row[MER__AC_SHIMMER] = (float)shim[t];
        row[MER__AC_HNR] = (float)hnr[t];
        /* pre-emphasised, Hamming-windowed frame for LPC */
        for (int64_t i = 0; i < wl; i++) {
            int64_t j = t * hop - wl / 2 + i;
            double v = sig(x, n, j) - pre * sig(x, n, j - 1);
            frame[i] = v * hamming[i];
        }
        double F[3], b1;
        mer__acoustic_formants(p, frame, wl, F, &b1, zroots, &zwarm);
        row[MER__AC_F1] = (float)F[0];
        row[MER__AC_F1BW] = (float)b1;
        row[MER__AC_F2] = (float)F[1];
        row[MER__AC_F3] = (float)F[2];
    }
    *out = o;
    *T_out = T;
    o = NULL;
done:
    stft_free(&sc);
    free(P);
    free(mel);
    free(ring);
    free(dm);
    free(dct);
    free(f0);
    free(ap);
    free(hnr);
    free(jit);
    free(shim);
    free(voiced);
    free(frame);
    free(hamming);
    free(o);
    return s;
}
