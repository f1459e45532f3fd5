/*
 * cpu.c -- the one CPU-feature dispatch: what the running CPU (and its OS) can execute, read once
 * from cpuid through the compiler's __builtin_cpu_supports. Kernels compiled for wider ISAs
 * (target attributes) ask here before running; MER_NO_AVX512=1 in the environment hides every
 * AVX-512 feature, so the AVX2 paths can be tested on an AVX-512 machine.
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

static unsigned detect(void) {
    unsigned f = 0;
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) f |= MER_CPU_AVX2;
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
        f |= MER_CPU_AVX512;
    if ((f & MER_CPU_AVX512) && __builtin_cpu_supports("avx512vnni")) f |= MER_CPU_AVX512_VNNI;
    if ((f & MER_CPU_AVX512) && __builtin_cpu_supports("avx512bf16")) f |= MER_CPU_AVX512_BF16;
#endif
    const char *off = getenv("MER_NO_AVX512");
    if (off && *off && strcmp(off, "0") != 0)
        f &= ~(unsigned)(MER_CPU_AVX512 | MER_CPU_AVX512_VNNI | MER_CPU_AVX512_BF16);
    return f;
}

static volatile unsigned limit = ~0u; /* mer__cpu_features_limit */

uint32_t mer_cpu_features(void) {
    /* racing first calls compute the same value; the store is a single aligned word */
    static volatile int done;
    static volatile unsigned feats;
    if (!done) {
        feats = detect();
        done = 1;
    }
    return feats & limit;
}

uint32_t mer__cpu_features_limit(uint32_t keep) {
    uint32_t old = limit;
    limit = keep;
    return old;
}

const char *mer_cpu_features_str(void) {
    uint32_t f = mer_cpu_features();
    if (f & MER_CPU_AVX512)
        return (f & MER_CPU_AVX512_BF16) ? ((f & MER_CPU_AVX512_VNNI) ? "avx512+bf16+vnni" : "avx512+bf16")
                                         : ((f & MER_CPU_AVX512_VNNI) ? "avx512+vnni" : "avx512");
    return (f & MER_CPU_AVX2) ? "avx2+fma" : "baseline x86-64";
}
