#!/usr/bin/env bash
# Builds build/bench/text_bench (bench/text_bench.c against libmer.a), the driver shared by
# bench/text.sh and tests/parity/text_parity.py.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
make -s -j2 BUILD="$BUILD" lib "$BUILD/mer"
mkdir -p "$BUILD/bench"
cc -std=c11 -D_GNU_SOURCE -O2 -march=native -fopenmp -Iinclude -o "$BUILD/bench/text_bench" \
    bench/text_bench.c "$BUILD/libmer.a" $(test -f /usr/include/dnnl.h && echo -ldnnl) \
    $(pkg-config --libs openblas libavformat libavcodec libswresample libswscale libavutil \
      libcjson libpng libjpeg) -lpthread -lm
