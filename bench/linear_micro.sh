#!/usr/bin/env bash
# One fp32 linear product per encoder shape: mer's packed kernel against oneDNN sgemm and
# OpenBLAS in the same run, and the register tile alone in L1 (bench/linear_micro.c).
# Usage: bash bench/linear_micro.sh [threads] [rounds]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
make -s -j2 "$BUILD/libmer.a"
mkdir -p "$BUILD/bench"
LIBS="$BUILD/libmer.a $(test -f /usr/include/dnnl.h && echo -ldnnl) $(pkg-config --libs openblas libavformat \
    libavcodec libswresample libswscale libavutil libcjson libpng libjpeg 2>/dev/null) -lpthread -lm"
cc -std=c11 -D_GNU_SOURCE -O2 -march=x86-64-v3 -fopenmp -Iinclude -Isrc -Isrc/core \
    -o "$BUILD/bench/linear_micro" bench/linear_micro.c $LIBS
echo "load average: $(cat /proc/loadavg)"
for t in ${1:-1 2}; do
    OMP_WAIT_POLICY=PASSIVE "$BUILD/bench/linear_micro" "$t" "${2:-5}"
done
echo "load average: $(cat /proc/loadavg)"
