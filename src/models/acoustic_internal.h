/*
 * acoustic_internal.h -- pieces of the acoustic front end shared between acoustic*.c and the
 * tests (which check each descriptor on signals with a known answer). Not public API.
 */
#ifndef MER_ACOUSTIC_INTERNAL_H
#define MER_ACOUSTIC_INTERNAL_H

#include "internal.h"

/* Frame LLD columns before the MFCCs (names in acoustic.c, meaning in docs/acoustic.md). */
enum {
    MER__AC_LOUDNESS = 0,
    MER__AC_RMS_DB,
    MER__AC_F0,        /* semitones re 27.5 Hz; 0 = unvoiced */
    MER__AC_VOICING,
    MER__AC_JITTER,
    MER__AC_SHIMMER,
    MER__AC_HNR,
    MER__AC_F1,
    MER__AC_F1BW,
    MER__AC_F2,
    MER__AC_F3,
    MER__AC_ALPHA,
    MER__AC_HAMMARBERG,
    MER__AC_SLOPE_LO,
    MER__AC_SLOPE_HI,
    MER__AC_FLUX,
    MER__AC_CENTROID,
    MER__AC_NLLD
};

/* Statistics per frame feature, then utterance-level extras (acoustic_functionals.c). */
#define MER__AC_NSTAT 6
#define MER__AC_NEXTRA 16
#define MER__AC_NEXT 5 /* extended functionals per LLD */

mer_status mer__acoustic_check(const mer_acoustic_params *p);
int mer__acoustic_lld_voiced_only(int i);

typedef struct {
    int64_t T, n_freqs, n_mels;
    double *power; /* (T, n_freqs) |STFT|^2 */
    double *mel;   /* (T, n_mels) */
} mer__acoustic_spec;
mer_status mer__acoustic_stft(const mer_acoustic_params *p, const float *x, int64_t n,
                              mer__acoustic_spec *out);
void mer__acoustic_spec_free(mer__acoustic_spec *s);
mer_status mer__acoustic_mfcc_from_mel(const mer_acoustic_params *p, const double *mel,
                                       int64_t T, double *mfcc);
/* Spectral LLDs of one power spectrum P (nf bins spaced df Hz); Pprev NULL: flux 0. */
void mer__acoustic_spectral_llds(const double *P, const double *Pprev, int64_t nf, double df,
                                 double *alpha, double *hammarberg, double *slope_lo,
                                 double *slope_hi, double *flux, double *centroid);
/* YIN per frame: f0 (Hz, before the voicing decision), aperiodicity in [0, 1], HNR (dB). */
mer_status mer__acoustic_pitch(const mer_acoustic_params *p, const float *x, int64_t n, int64_t T,
                               double *f0, double *aper, double *hnr);
mer_status mer__acoustic_pitch_post(const mer_acoustic_params *p, double *f0, const double *aper,
                                    uint8_t *voiced, int64_t T);
mer_status mer__acoustic_cycles(const mer_acoustic_params *p, const float *x, int64_t n,
                                const double *f0, const uint8_t *voiced, int64_t T,
                                double *jitter, double *shimmer);
int mer__acoustic_lpc(const double *frame, int64_t len, int32_t order, double *a);
/* zs (64) carries the LPC roots from frame to frame as starting points; *warm = 0 first. */
void mer__acoustic_formants(const mer_acoustic_params *p, const double *frame, int64_t len,
                            double *F, double *bw1, double _Complex *zs, int *warm);

#endif
