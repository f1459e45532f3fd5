/*
 * test_speed.c -- the CPU-feature dispatch, the peak loops (`mer bench peak`) and the packed
 * weight GEMM (src/kernels/packed.c) against double-precision references.
 */
#include "test.h"

MER_TEST(speed_cpu_features_and_peak) {
    uint32_t f = mer_cpu_features();
    CHECK(mer_cpu_features() == f); /* read once */
    CHECK(strlen(mer_cpu_features_str()) > 0);
    if ((f & MER_CPU_AVX512_BF16) || (f & MER_CPU_AVX512_VNNI)) CHECK(f & MER_CPU_AVX512);
    const char *off = getenv("MER_NO_AVX512");
    if (off && *off && strcmp(off, "0")) CHECK(!(f & MER_CPU_AVX512));
    double g = -1;
    CHECK_ERR(mer_peak_measure((mer_peak_kind)99, 1, 0.01, &g), MER_ERR_INVALID_ARG, "unknown kind");
    CHECK_ERR(mer_peak_measure(MER_PEAK_FP32, 1, 0.01, NULL), MER_ERR_INVALID_ARG, NULL);
    for (int k = 0; k < MER_PEAK_KINDS; k++) {
        int have = k == MER_PEAK_FP32        ? (f & (MER_CPU_AVX2 | MER_CPU_AVX512)) != 0
                   : k == MER_PEAK_BF16      ? (f & MER_CPU_AVX512_BF16) != 0
                   : k == MER_PEAK_INT8      ? (f & MER_CPU_AVX512_VNNI) != 0
                                             : (f & MER_CPU_AVX2) != 0;
        mer_status s = mer_peak_measure((mer_peak_kind)k, 1, 0.01, &g);
        if (have) {
            CHECK_OK(s);
            /* any x86-64 with these units does more than 1 GOPS on one core */
            CHECK(g > 1.0 && g < 1e5);
        } else {
            CHECK(s == MER_ERR_UNSUPPORTED && g == 0);
            CHECK(strstr(mer_last_error(), "not supported by this CPU") != NULL);
        }
    }
}
