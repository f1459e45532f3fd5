/*
 * peak.c -- register-only loops that measure the arithmetic peak of the running machine
 * (`mer bench peak`): fp32 FMA, bf16 vdpbf16ps, int8 vpdpbusd and the AVX2 integer dot products.
 * Each loop keeps enough independent accumulators in registers to cover latency x pipes, never
 * touches memory, and is compiled for its ISA with a target attribute; mer_cpu_features()
 * decides at run time which may run. The compiler barrier (empty asm on an input) keeps the
 * loop-invariant products from being hoisted.
 */
#include "internal.h"

#include <immintrin.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#define NACC 12

/* Each loop returns a value derived from every accumulator so nothing is dead code; `ops` is
 * what one call of n iterations computes. */
__attribute__((target("avx2,fma"))) static float fp32_avx2(int64_t n) {
    __m256 a[NACC], x = _mm256_set1_ps(0.999f), y = _mm256_set1_ps(1e-3f);
    for (int i = 0; i < NACC; i++) a[i] = _mm256_set1_ps((float)i);
    for (int64_t r = 0; r < n; r++) {
#pragma GCC unroll 12
        for (int i = 0; i < NACC; i++) a[i] = _mm256_fmadd_ps(a[i], x, y);
    }
    for (int i = 1; i < NACC; i++) a[0] = _mm256_add_ps(a[0], a[i]);
    return _mm256_cvtss_f32(a[0]);
}

__attribute__((target("avx2"))) static float int8_avx2(int64_t n) {
    __m256i a[NACC], x = _mm256_set1_epi8(3), y = _mm256_set1_epi8(-5), one = _mm256_set1_epi16(1);
    for (int i = 0; i < NACC; i++) a[i] = _mm256_set1_epi32(i);
    for (int64_t r = 0; r < n; r++) {
#pragma GCC unroll 12
        for (int i = 0; i < NACC; i++) {
            __asm__("" : "+x"(x));
            a[i] = _mm256_add_epi32(a[i], _mm256_madd_epi16(_mm256_maddubs_epi16(x, y), one));
        }
    }
    for (int i = 1; i < NACC; i++) a[0] = _mm256_add_epi32(a[0], a[i]);
    return (float)_mm256_extract_epi32(a[0], 0);
}

__attribute__((target("avx2"))) static float int16_avx2(int64_t n) {
    __m256i a[NACC], x = _mm256_set1_epi16(3), y = _mm256_set1_epi16(-5);
    for (int i = 0; i < NACC; i++) a[i] = _mm256_set1_epi32(i);
    for (int64_t r = 0; r < n; r++) {
#pragma GCC unroll 12
        for (int i = 0; i < NACC; i++) {
            __asm__("" : "+x"(x));
            a[i] = _mm256_add_epi32(a[i], _mm256_madd_epi16(x, y));
        }
    }
    for (int i = 1; i < NACC; i++) a[0] = _mm256_add_epi32(a[0], a[i]);
    return (float)_mm256_extract_epi32(a[0], 0);
}

/* The AVX-512 loops are compiled everywhere and run only where cpuid reports the ISA (they
 * could not be run on the machine this was written on: AMD Zen 3, AVX2 only). */
__attribute__((target("avx512f"))) static float fp32_avx512(int64_t n) {
    __m512 a[NACC], x = _mm512_set1_ps(0.999f), y = _mm512_set1_ps(1e-3f);
    for (int i = 0; i < NACC; i++) a[i] = _mm512_set1_ps((float)i);
    for (int64_t r = 0; r < n; r++) {
#pragma GCC unroll 12
        for (int i = 0; i < NACC; i++) a[i] = _mm512_fmadd_ps(a[i], x, y);
    }
    for (int i = 1; i < NACC; i++) a[0] = _mm512_add_ps(a[0], a[i]);
    return _mm512_reduce_add_ps(a[0]);
}

__attribute__((target("avx512f,avx512bf16"))) static float bf16_avx512(int64_t n) {
    __m512 a[NACC];
    __m512bh x = (__m512bh)_mm512_set1_epi16(0x3f80), y = (__m512bh)_mm512_set1_epi16(0x3a83);
    for (int i = 0; i < NACC; i++) a[i] = _mm512_set1_ps((float)i);
    for (int64_t r = 0; r < n; r++) {
#pragma GCC unroll 12
        for (int i = 0; i < NACC; i++) a[i] = _mm512_dpbf16_ps(a[i], x, y);
    }
    for (int i = 1; i < NACC; i++) a[0] = _mm512_add_ps(a[0], a[i]);
    return _mm512_reduce_add_ps(a[0]);
}

__attribute__((target("avx512f,avx512vnni"))) static float int8_avx512(int64_t n) {
    __m512i a[NACC], x = _mm512_set1_epi8(3), y = _mm512_set1_epi8(-5);
    for (int i = 0; i < NACC; i++) a[i] = _mm512_set1_epi32(i);
    for (int64_t r = 0; r < n; r++) {
#pragma GCC unroll 12
        for (int i = 0; i < NACC; i++) a[i] = _mm512_dpbusd_epi32(a[i], x, y);
    }
    for (int i = 1; i < NACC; i++) a[0] = _mm512_add_epi32(a[0], a[i]);
    return (float)_mm512_reduce_add_epi32(a[0]);
}

typedef float (*loop_fn)(int64_t);

/* The loop of kind k for this CPU and the ops one iteration computes, or NULL. */
static loop_fn pick(mer_peak_kind k, double *ops_per_iter) {
    uint32_t f = mer_cpu_features();
    switch (k) {
    case MER_PEAK_FP32:
        if (f & MER_CPU_AVX512) { *ops_per_iter = NACC * 16 * 2; return fp32_avx512; }
        if (f & MER_CPU_AVX2) { *ops_per_iter = NACC * 8 * 2; return fp32_avx2; }
        return NULL;
    case MER_PEAK_BF16:
        if (f & MER_CPU_AVX512_BF16) { *ops_per_iter = NACC * 32 * 2; return bf16_avx512; }
        return NULL;
    case MER_PEAK_INT8:
        if (f & MER_CPU_AVX512_VNNI) { *ops_per_iter = NACC * 64 * 2; return int8_avx512; }
        return NULL;
    case MER_PEAK_INT8_AVX2:
        if (f & MER_CPU_AVX2) { *ops_per_iter = NACC * 32 * 2; return int8_avx2; }
        return NULL;
    case MER_PEAK_INT16_AVX2:
        if (f & MER_CPU_AVX2) { *ops_per_iter = NACC * 16 * 2; return int16_avx2; }
        return NULL;
    }
    return NULL;
}

const char *mer_peak_name(mer_peak_kind k) {
    uint32_t f = mer_cpu_features();
    switch (k) {
    case MER_PEAK_FP32: return (f & MER_CPU_AVX512) ? "fp32 fma (zmm)" : "fp32 fma (ymm)";
    case MER_PEAK_BF16: return "bf16 vdpbf16ps";
    case MER_PEAK_INT8: return "int8 vpdpbusd";
    case MER_PEAK_INT8_AVX2: return "int8 vpmaddubsw (ymm)";
    case MER_PEAK_INT16_AVX2: return "int16 vpmaddwd (ymm)";
    }
    return "?";
}

static volatile float sink;

/* Wall time of every thread running n iterations at once. */
static double run(loop_fn fn, int threads, int64_t n) {
    double t0 = mer__now();
#ifdef _OPENMP
#pragma omp parallel num_threads(threads)
    {
        float v = fn(n);
#pragma omp critical
        sink += v;
    }
#else
    (void)threads;
    sink += fn(n);
#endif
    return mer__now() - t0;
}

mer_status mer_peak_measure(mer_peak_kind k, int32_t threads, double seconds, double *gops) {
    if (!gops) return mer__err(MER_ERR_INVALID_ARG, "mer_peak_measure: NULL result");
    *gops = 0;
    if ((int)k < 0 || (int)k >= MER_PEAK_KINDS)
        return mer__err(MER_ERR_INVALID_ARG, "mer_peak_measure: unknown kind %d", (int)k);
    double per_iter = 0;
    loop_fn fn = pick(k, &per_iter);
    if (!fn)
        return mer__err(MER_ERR_UNSUPPORTED, "%s: not supported by this CPU (%s)", mer_peak_name(k),
                        mer_cpu_features_str());
    if (threads <= 0) threads = mer_get_threads();
    if (!(seconds > 0)) seconds = 0.2;
    /* calibrate on one short run, then split the time into 3 rounds and keep the best */
    int64_t n = 100000;
    double t = run(fn, threads, n);
    if (t < 1e-4) t = 1e-4;
    n = (int64_t)((double)n * (seconds / 3) / t);
    if (n < 1000) n = 1000;
    double best = 1e30;
    for (int r = 0; r < 3; r++) {
        double tr = run(fn, threads, n);
        if (tr < best) best = tr;
    }
    *gops = per_iter * (double)n * threads / best / 1e9;
    return MER_OK;
}
