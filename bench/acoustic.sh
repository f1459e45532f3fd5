#!/usr/bin/env bash
# Acoustic front end on a 2 s clip at 16 kHz, one thread: mer's MFCC (double precision, own FFT)
# against torchaudio's MFCC (float32, pocketfft) with the same settings, best of REPS,
# and mer's full descriptor set (pitch, voice quality, formants, spectral LLDs, functionals),
# which has no torchaudio counterpart. Needs /usr/bin/python3 with torchaudio (--peers).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
REPS=${REPS:-50}
make -s -j2 BUILD="$BUILD" lib
mkdir -p "$BUILD/bench"
cc -std=c11 -D_GNU_SOURCE -O2 -march=native -fopenmp -Iinclude -o "$BUILD/bench/acoustic_bench" \
    bench/acoustic_bench.c "$BUILD/libmer.a" $(test -f /usr/include/dnnl.h && echo -ldnnl) \
    $(pkg-config --libs openblas libavformat libavcodec libswresample libswscale libavutil \
      libcjson libpng libjpeg) -lpthread -lm
raw=$(mktemp /tmp/mer-acoustic-XXXXXX.f32)
trap 'rm -f "$raw"' EXIT
for round in 1 2; do
    m=$("$BUILD/bench/acoustic_bench" "$REPS" "$raw")
    t=$(/usr/bin/python3 bench/acoustic_peer.py "$raw" "$REPS")
    mm=$(echo "$m" | awk '/^mfcc/ {print $2}')
    ma=$(echo "$m" | awk '/^all/ {print $2}')
    tm=$(echo "$t" | awk '/^mfcc/ {print $2}')
    echo "mer MFCC:        $mm ms/clip"
    echo "torchaudio MFCC: $tm ms/clip"
    echo "mer all 83 LLDs + 514 functionals: $ma ms/clip"
    awk -v a="$mm" -v b="$tm" 'BEGIN { printf "ratio torchaudio / mer (MFCC): %.2fx\n", b / a }'
done
