/*
 * acoustic_functionals.c -- utterance functionals over the frame LLDs of acoustic.c, after
 * eGeMAPS (Eyben et al. 2016): per frame feature the mean, standard deviation, 20th/50th/80th
 * percentiles and the 20-80 range (F0, jitter, shimmer, HNR and formants over voiced frames
 * only, everything else over all frames); then coefficients of variation, rising/falling slopes
 * of the F0 and loudness contours, the rate of loudness peaks, voiced/unvoiced segment
 * statistics and the equivalent sound level. docs/acoustic.md lists them all.
 */
#include "acoustic_internal.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static const char *const stat_names[MER__AC_NSTAT] = {"mean", "std", "p20", "p50", "p80", "range20_80"};
static const char *const extra_names[MER__AC_NEXTRA] = {
    "loudness_cv",
    "f0_semitone_cv",
    "f0_rising_slope_mean",
    "f0_rising_slope_std",
    "f0_falling_slope_mean",
    "f0_falling_slope_std",
    "loudness_rising_slope_mean",
    "loudness_falling_slope_mean",
    "loudness_peaks_per_sec",
    "voiced_ratio",
    "voiced_segments_per_sec",
    "voiced_segment_len_mean",
    "voiced_segment_len_std",
    "unvoiced_segment_len_mean",
    "unvoiced_segment_len_std",
    "equivalent_sound_level_db",
};

static const char *const ext_names[MER__AC_NEXT] = {"delta_absmean", "delta_std", "range10_90", "skewness",
                                                      "kurtosis"};

int32_t mer_acoustic_functional_dim(const mer_acoustic_params *p) {
    if (!p) return 0;
    const int32_t F = mer_acoustic_frame_dim(p);
    return F * MER__AC_NSTAT + MER__AC_NEXTRA + (p->functionals == MER_ACOUSTIC_EXTENDED ? F * MER__AC_NEXT : 0);
}

mer_status mer_acoustic_functional_name(const mer_acoustic_params *p, int32_t i, char *buf,
                                        size_t cap) {
    int32_t D = mer_acoustic_functional_dim(p), F = mer_acoustic_frame_dim(p);
    if (!buf || cap == 0 || i < 0 || i >= D)
        return mer__err(MER_ERR_INVALID_ARG, "acoustic: functional %d out of range [0, %d)", i, D);
    const int32_t base = F * MER__AC_NSTAT + MER__AC_NEXTRA;
    char lld[64];
    mer_status s;
    if (i >= base) { /* extended */
        if ((s = mer_acoustic_frame_name(p, (i - base) / MER__AC_NEXT, lld, sizeof lld))) return s;
        snprintf(buf, cap, "%s_%s", lld, ext_names[(i - base) % MER__AC_NEXT]);
        return MER_OK;
    }
    if (i >= F * MER__AC_NSTAT) {
        snprintf(buf, cap, "%s", extra_names[i - F * MER__AC_NSTAT]);
        return MER_OK;
    }
    s = mer_acoustic_frame_name(p, i / MER__AC_NSTAT, lld, sizeof lld);
    if (s) return s;
    snprintf(buf, cap, "%s_%s", lld, stat_names[i % MER__AC_NSTAT]);
    return MER_OK;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Linear-interpolated percentile of sorted v (n >= 1), as numpy.percentile. */
static double pct(const double *v, int64_t n, double q) {
    double pos = q * (double)(n - 1);
    int64_t i = (int64_t)floor(pos);
    if (i >= n - 1) return v[n - 1];
    double fr = pos - (double)i;
    return v[i] + fr * (v[i + 1] - v[i]);
}

static void mean_std(const double *v, int64_t n, double *mean, double *std) {
    *mean = *std = 0;
    if (n < 1) return;
    double s = 0, s2 = 0;
    for (int64_t i = 0; i < n; i++) s += v[i];
    *mean = s / (double)n;
    for (int64_t i = 0; i < n; i++) s2 += (v[i] - *mean) * (v[i] - *mean);
    *std = sqrt(s2 / (double)n);
}

/* Slopes (units per second) of the monotone rising and falling parts of contour c[0..n):
 * each maximal run of same-sign first differences gives one slope (total change / duration).
 * Appends into rise[]/fall[] (capacity n each). */
static void contour_slopes(const double *c, int64_t n, double frame_sec, double *rise,
                           int64_t *nr, double *fall, int64_t *nfall) {
    int64_t i = 0;
    while (i + 1 < n) {
        double d0 = c[i + 1] - c[i];
        if (d0 == 0) {
            i++;
            continue;
        }
        int64_t j = i + 1;
        while (j + 1 < n && (c[j + 1] - c[j]) * d0 > 0) j++;
        double slope = (c[j] - c[i]) / ((double)(j - i) * frame_sec);
        if (d0 > 0)
            rise[(*nr)++] = slope;
        else
            fall[(*nfall)++] = slope;
        i = j;
    }
}

/* The extended functionals of the frames' values v[0..m) (in time order; mean and population
 * std given): mean |first difference| and the differences' population std (over consecutive
 * selected frames: voiced frames for the voiced-only LLDs), skewness and kurtosis (population
 * moments, 0 for a constant contour). d is scratch of m doubles. out[2] (the p10-p90 range) is
 * set by the caller from the sorted values. */
static void ext_functionals(const double *v, int64_t m, double mean, double std, double *d, float *out) {
    if (m >= 2) {
        double dm, ds, a = 0;
        for (int64_t i = 0; i + 1 < m; i++) {
            d[i] = v[i + 1] - v[i];
            a += fabs(d[i]);
        }
        mean_std(d, m - 1, &dm, &ds);
        out[0] = (float)(a / (double)(m - 1));
        out[1] = (float)ds;
    }
    if (std > 1e-12) {
        double m3 = 0, m4 = 0;
        for (int64_t i = 0; i < m; i++) {
            double z = (v[i] - mean) / std;
            m3 += z * z * z;
            m4 += z * z * z * z;
        }
        out[3] = (float)(m3 / (double)m);
        out[4] = (float)(m4 / (double)m);
    }
}

mer_status mer_acoustic_functionals_from_frames(const float *frames,
                                                int64_t T, const mer_acoustic_params *p, float *out) {
    mer_status s = mer__acoustic_check(p);
    if (s) return s;
    if (!frames || !out || T < 1)
        return mer__err(MER_ERR_INVALID_ARG, "acoustic: functionals need at least one frame");
    const int32_t F = mer_acoustic_frame_dim(p);
    const int ext = p->functionals == MER_ACOUSTIC_EXTENDED;
    const double fsec = (double)p->hop_length / p->sample_rate;
    double *v = malloc((size_t)T * sizeof(double)), *w = malloc((size_t)T * sizeof(double));
    double *r1 = malloc((size_t)T * sizeof(double)), *r2 = malloc((size_t)T * sizeof(double));
    if (!v || !w || !r1 || !r2) {
        free(v);
        free(w);
        free(r1);
        free(r2);
        return mer__err(MER_ERR_NOMEM, "acoustic: out of memory (functionals)");
    }
    for (int32_t d = 0; d < F; d++) {
        int64_t m = 0;
        int vo = d < MER__AC_NLLD && mer__acoustic_lld_voiced_only(d);
        for (int64_t t = 0; t < T; t++) {
            if (vo && !(frames[t * F + MER__AC_F0] > 0)) continue;
            v[m++] = frames[t * F + d];
        }
        float *o = out + d * MER__AC_NSTAT;
        float *x5 = ext ? out + F * MER__AC_NSTAT + MER__AC_NEXTRA + d * MER__AC_NEXT : NULL;
        if (x5) memset(x5, 0, MER__AC_NEXT * sizeof(float));
        if (m == 0) {
            for (int k = 0; k < MER__AC_NSTAT; k++) o[k] = 0;
            continue;
        }
        double mean, std;
        mean_std(v, m, &mean, &std);
        if (x5) ext_functionals(v, m, mean, std, w, x5);
        qsort(v, (size_t)m, sizeof(double), cmp_double);
        if (x5) x5[2] = (float)(pct(v, m, 0.9) - pct(v, m, 0.1));
        double p20 = pct(v, m, 0.2), p50 = pct(v, m, 0.5), p80 = pct(v, m, 0.8);
        o[0] = (float)mean;
        o[1] = (float)std;
        o[2] = (float)p20;
        o[3] = (float)p50;
        o[4] = (float)p80;
        o[5] = (float)(p80 - p20);
    }
    float *e = out + F * MER__AC_NSTAT;
    memset(e, 0, MER__AC_NEXTRA * sizeof(float));
    /* coefficients of variation */
    {
        const float *lm = out + MER__AC_LOUDNESS * MER__AC_NSTAT, *fm = out + MER__AC_F0 * MER__AC_NSTAT;
        e[0] = lm[0] > 0 ? lm[1] / lm[0] : 0;
        e[1] = fm[0] > 0 ? fm[1] / fm[0] : 0;
    }
    /* F0 slopes within voiced runs */
    {
        int64_t nr = 0, nfl = 0, t = 0;
        while (t < T) {
            if (!(frames[t * F + MER__AC_F0] > 0)) {
                t++;
                continue;
            }
            int64_t m = 0;
            while (t < T && frames[t * F + MER__AC_F0] > 0) v[m++] = frames[(t++) * F + MER__AC_F0];
            contour_slopes(v, m, fsec, r1, &nr, r2, &nfl);
        }
        double mn, sd;
        mean_std(r1, nr, &mn, &sd);
        e[2] = (float)mn;
        e[3] = (float)sd;
        mean_std(r2, nfl, &mn, &sd);
        e[4] = (float)mn;
        e[5] = (float)sd;
    }
    /* loudness: 3-frame moving average, slopes, peaks above the mean */
    {
        double lmean = 0;
        for (int64_t t = 0; t < T; t++) {
            double acc = 0;
            int c = 0;
            for (int64_t u = t - 1; u <= t + 1; u++)
                if (u >= 0 && u < T) {
                    acc += frames[u * F + MER__AC_LOUDNESS];
                    c++;
                }
            w[t] = acc / c;
            lmean += w[t];
        }
        lmean /= (double)T;
        int64_t nr = 0, nfl = 0;
        contour_slopes(w, T, fsec, r1, &nr, r2, &nfl);
        double mn, sd;
        mean_std(r1, nr, &mn, &sd);
        e[6] = (float)mn;
        mean_std(r2, nfl, &mn, &sd);
        e[7] = (float)mn;
        int64_t peaks = 0;
        for (int64_t t = 1; t + 1 < T; t++)
            if (w[t] > w[t - 1] && w[t] >= w[t + 1] && w[t] > lmean) peaks++;
        e[8] = (float)(peaks / (T * fsec));
    }
    /* voiced / unvoiced segments (lengths in seconds) */
    {
        int64_t nv = 0, nvs = 0, nus = 0, t = 0;
        while (t < T) {
            int voiced = frames[t * F + MER__AC_F0] > 0;
            int64_t t0 = t;
            while (t < T && (frames[t * F + MER__AC_F0] > 0) == voiced) t++;
            double len = (double)(t - t0) * fsec;
            if (voiced) {
                nv += t - t0;
                r1[nvs++] = len;
            } else {
                r2[nus++] = len;
            }
        }
        double mn, sd;
        e[9] = (float)((double)nv / (double)T);
        e[10] = (float)(nvs / (T * fsec));
        mean_std(r1, nvs, &mn, &sd);
        e[11] = (float)mn;
        e[12] = (float)sd;
        mean_std(r2, nus, &mn, &sd);
        e[13] = (float)mn;
        e[14] = (float)sd;
    }
    {
        double acc = 0;
        for (int64_t t = 0; t < T; t++) acc += pow(10.0, frames[t * F + MER__AC_RMS_DB] / 10.0);
        e[15] = (float)(10.0 * log10(acc / (double)T + 1e-10));
    }
    free(v);
    free(w);
    free(r1);
    free(r2);
    return MER_OK;
}

mer_status mer_acoustic_functionals(const float *x, int64_t n, const mer_acoustic_params *p,
                                    float *out) {
    float *fr = NULL;
    int64_t T = 0;
    mer_status s = mer_acoustic_frames(x, n, p, &fr, &T);
    if (s) return s;
    s = mer_acoustic_functionals_from_frames(fr, T, p, out);
    free(fr);
    return s;
}
