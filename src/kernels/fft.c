/*
 * fft.c -- discrete Fourier transforms for the acoustic front end (STFT, autocorrelation).
 *
 * Our own mixed-radix FFT in double precision, for any size: n is factored into 4, 2, 3, 5 and
 * whatever primes remain; each stage is a decimation-in-time butterfly of its radix r done as a
 * small r-point DFT, so a large prime factor degrades gracefully to a plain DFT of that size
 * (O(n * r)) instead of failing. The sizes mer uses (512, 1024) are powers of two.
 *
 * Why not FFTW: the work is tiny (a 2 s clip is ~200 frames of 512 points, well under a
 * millisecond), a few hundred lines keep the build free of another dependency, and double
 * precision keeps the log-mel/MFCC within 1e-6 of torchaudio's float32 reference.
 *
 * The plan is immutable after mer__fft_init and may be shared between threads; callers pass
 * their own output and work buffers. Complex numbers are interleaved (re, im) doubles.
 */
#include "kernels.h"

#include <math.h>
#include <string.h>

#define FFT_MAX_FACTORS 64

struct mer__fft {
    struct mer__fft *half;            /* n even: the n/2 plan of the real transform */
    int64_t n;
    int32_t nfactors;
    int32_t factors[FFT_MAX_FACTORS]; /* radices, outermost first */
    int32_t max_radix;
    double *tw;                       /* (n) complex: exp(-2 pi i k / n), k < n */
};

mer_status mer__fft_init(mer__fft **out, int64_t n) {
    *out = NULL;
    if (n < 1 || n > ((int64_t)1 << 28))
        return mer__err(MER_ERR_INVALID_ARG, "fft: size %lld out of range [1, 2^28]", (long long)n);
    mer__fft *f = mer__calloc(1, sizeof *f);
    if (!f) return MER_ERR_NOMEM;
    f->n = n;
    int64_t m = n;
    static const int32_t pref[] = {4, 2, 3, 5};
    for (int i = 0; i < 4 && m > 1; i++)
        while (m % pref[i] == 0 && f->nfactors < FFT_MAX_FACTORS) {
            f->factors[f->nfactors++] = pref[i];
            m /= pref[i];
        }
    for (int64_t p = 7; m > 1; p += 2) {
        if (p * p > m) p = m;
        while (m % p == 0 && f->nfactors < FFT_MAX_FACTORS) {
            f->factors[f->nfactors++] = (int32_t)p;
            m /= p;
        }
    }
    f->max_radix = 1;
    for (int i = 0; i < f->nfactors; i++)
        if (f->factors[i] > f->max_radix) f->max_radix = f->factors[i];
    f->tw = mer__alloc((size_t)n * 2 * sizeof(double));
    if (!f->tw) {
        mer__free(f);
        return MER_ERR_NOMEM;
    }
    for (int64_t k = 0; k < n; k++) {
        double a = -2.0 * M_PI * (double)k / (double)n;
        f->tw[2 * k] = cos(a);
        f->tw[2 * k + 1] = sin(a);
    }
    if (n % 2 == 0 && n >= 4) {
        mer_status s = mer__fft_init(&f->half, n / 2);
        if (s) {
            mer__fft_free(f);
            return s;
        }
    }
    *out = f;
    return MER_OK;
}

void mer__fft_free(mer__fft *f) {
    if (!f) return;
    mer__fft_free(f->half);
    mer__free(f->tw);
    mer__free(f);
}

int64_t mer__fft_size(const mer__fft *f) { return f->n; }

/* One level of the recursion: out (n complex) = DFT of in[0], in[s], in[2s], ... where the
 * twiddle table is for N = n * tws (so W_n^j = tw[j * tws]). inv conjugates the twiddles. */
static void fft_rec(const mer__fft *f, double *out, const double *in, int64_t s, int64_t n,
                    const int32_t *fac, int64_t tws, int inv, double *scratch) {
    const int32_t r = fac[0];
    const int64_t m = n / r;
    const double sg = inv ? -1.0 : 1.0;
    if (m == 1) {
        for (int32_t q = 0; q < r; q++) {
            out[2 * q] = in[2 * q * s];
            out[2 * q + 1] = in[2 * q * s + 1];
        }
    } else {
        for (int32_t q = 0; q < r; q++)
            fft_rec(f, out + 2 * q * m, in + 2 * q * s, s * r, m, fac + 1, tws * r, inv, scratch);
    }
    const double *tw = f->tw;
    const int64_t N = f->n;
    if (r == 2) {
        for (int64_t k = 0; k < m; k++) {
            double wr = tw[2 * k * tws], wi = sg * tw[2 * k * tws + 1];
            double *a = out + 2 * k, *b = out + 2 * (k + m);
            double br = b[0] * wr - b[1] * wi, bi = b[0] * wi + b[1] * wr;
            b[0] = a[0] - br;
            b[1] = a[1] - bi;
            a[0] += br;
            a[1] += bi;
        }
        return;
    }
    if (r == 4) {
        for (int64_t k = 0; k < m; k++) {
            double t[8];
            for (int q = 0; q < 4; q++) {
                const double *x = out + 2 * (k + q * m);
                int64_t j = q * k * tws; /* < r * m * tws = N */
                double wr = tw[2 * j], wi = sg * tw[2 * j + 1];
                t[2 * q] = x[0] * wr - x[1] * wi;
                t[2 * q + 1] = x[0] * wi + x[1] * wr;
            }
            /* 4-point DFT; multiplying by -i (forward) or +i (inverse) for the odd terms */
            double s0r = t[0] + t[4], s0i = t[1] + t[5], d0r = t[0] - t[4], d0i = t[1] - t[5];
            double s1r = t[2] + t[6], s1i = t[3] + t[7], d1r = t[2] - t[6], d1i = t[3] - t[7];
            double *o0 = out + 2 * k, *o1 = out + 2 * (k + m), *o2 = out + 2 * (k + 2 * m),
                   *o3 = out + 2 * (k + 3 * m);
            o0[0] = s0r + s1r;
            o0[1] = s0i + s1i;
            o2[0] = s0r - s1r;
            o2[1] = s0i - s1i;
            /* -i * d1 = (d1i, -d1r) forward; +i * d1 = (-d1i, d1r) inverse */
            o1[0] = d0r + sg * d1i;
            o1[1] = d0i - sg * d1r;
            o3[0] = d0r - sg * d1i;
            o3[1] = d0i + sg * d1r;
        }
        return;
    }
    /* generic radix r: an r-point DFT of the twiddled inputs */
    const int64_t rstep = N / r; /* W_r^x = W_N^(x * N / r) */
    for (int64_t k = 0; k < m; k++) {
        for (int32_t q = 0; q < r; q++) {
            const double *x = out + 2 * (k + q * m);
            int64_t j = (int64_t)q * k * tws;
            double wr = tw[2 * j], wi = sg * tw[2 * j + 1];
            scratch[2 * q] = x[0] * wr - x[1] * wi;
            scratch[2 * q + 1] = x[0] * wi + x[1] * wr;
        }
        for (int32_t u = 0; u < r; u++) {
            double ar = 0, ai = 0;
            for (int32_t q = 0; q < r; q++) {
                int64_t j = (((int64_t)u * q) % r) * rstep;
                double wr = tw[2 * j], wi = sg * tw[2 * j + 1];
                ar += scratch[2 * q] * wr - scratch[2 * q + 1] * wi;
                ai += scratch[2 * q] * wi + scratch[2 * q + 1] * wr;
            }
            out[2 * (k + u * m)] = ar;
            out[2 * (k + u * m) + 1] = ai;
        }
    }
}

/* ref: torch.fft.fft (inverse: torch.fft.ifft times n, i.e. unnormalised) */
mer_status mer__fft_c2c(const mer__fft *f, double *out, const double *in, int inverse) {
    if (f->n == 1) {
        out[0] = in[0];
        out[1] = in[1];
        return MER_OK;
    }
    double stack[2 * 16];
    double *scratch = stack;
    if (f->max_radix > 16) {
        scratch = mer__alloc((size_t)f->max_radix * 2 * sizeof(double));
        if (!scratch) return MER_ERR_NOMEM;
    }
    fft_rec(f, out, in, 1, f->n, f->factors, 1, inverse, scratch);
    if (scratch != stack) mer__free(scratch);
    return MER_OK;
}

/* ref: torch.fft.rfft. X receives n/2 + 1 complex bins; work holds 4 n doubles. For even n the
 * real signal is packed as n/2 complex values z_k = x_2k + i x_2k+1, transformed at half size,
 * and the spectrum untangled: X_k = (Z_k + conj Z_h-k) / 2 - i W^k (Z_k - conj Z_h-k) / 2. */
mer_status mer__fft_r2c(const mer__fft *f, double *X, const double *x, double *work) {
    const int64_t n = f->n;
    double *cin = work, *cout = work + 2 * n;
    mer_status s;
    if (f->half) {
        const int64_t h = n / 2;
        if ((s = mer__fft_c2c(f->half, cout, x, 0))) return s; /* x viewed as h complex */
        for (int64_t k = 0; k <= h; k++) {
            int64_t a = k % h, b = (h - k) % h;
            double zr = cout[2 * a], zi = cout[2 * a + 1];
            double cr = cout[2 * b], ci = -cout[2 * b + 1]; /* conj Z_(h-k) */
            double er = 0.5 * (zr + cr), ei = 0.5 * (zi + ci);   /* even part */
            double or_ = 0.5 * (zr - cr), oi = 0.5 * (zi - ci);  /* (Z - conj) / 2 */
            /* odd part = -i W^k (Z - conj Z) / 2, W = exp(-2 pi i / n) */
            double wr = k < n ? f->tw[2 * k] : 1.0, wi = k < n ? f->tw[2 * k + 1] : 0.0;
            double tr = or_ * wr - oi * wi, ti = or_ * wi + oi * wr;
            X[2 * k] = er + ti;
            X[2 * k + 1] = ei - tr;
        }
        return MER_OK;
    }
    for (int64_t i = 0; i < n; i++) {
        cin[2 * i] = x[i];
        cin[2 * i + 1] = 0.0;
    }
    if ((s = mer__fft_c2c(f, cout, cin, 0))) return s;
    memcpy(X, cout, (size_t)(n / 2 + 1) * 2 * sizeof(double));
    return MER_OK;
}
