#!/usr/bin/env bash
# Issue #14: extraction throughput of EmoDB clips through HuBERT-base-size random weights, one
# clip per forward against batches of clips of similar length (mer_speech_encode_batch), the
# MERTools layers (last 4), both in the same run (rounds alternate; best of each).
#   CLIPS (200) BATCH (16) THREADS (2) ROUNDS (2) PRECISION (f32) EMODB (../shared/data/emodb/wav)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
DIR=$BUILD/bench/hubert_base
EMODB=${EMODB:-/work/shared/data/emodb/wav}
make -s -j2 BUILD="$BUILD" lib
mkdir -p "$BUILD/bench"
cc -std=c11 -D_GNU_SOURCE -O2 -march=native -fopenmp -Iinclude -o "$BUILD/bench/batch_bench" bench/batch_bench.c \
    "$BUILD/libmer.a" $(test -f /usr/include/dnnl.h && echo -ldnnl) $(pkg-config --libs openblas libavformat \
    libavcodec libswresample libswscale libavutil libcjson libpng libjpeg) -lpthread -lm
if [ ! -f "$DIR/model.safetensors" ]; then
    /usr/bin/python3 bench/make_random_hubert.py base "$DIR.tmp" && mv "$DIR.tmp" "$DIR"
fi
echo "load average: $(cat /proc/loadavg)"
"$BUILD/bench/batch_bench" "$DIR" "$EMODB" "${CLIPS:-200}" "${BATCH:-16}" "${THREADS:-2}" "${ROUNDS:-2}" "${PRECISION:-f32}"
