#!/usr/bin/env bash
# Faces: Tiny Face Detector + face expression net per 640x480 frame (one face), mer against the
# original @vladmandic/face-api on TensorFlow.js's WASM backend in Node, both at one thread, on
# the same decoded pixels. Prints ms/frame of each and the ratio (the bar: mer >= 3x faster).
# Needs node + npm (scripts/install-deps.sh --peers); installs the pinned Node packages into
# tests/fixtures/faces/node/node_modules on first use.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
REPS=${REPS:-10}
IMG=tests/fixtures/faces/frame_640x480.png
NODE_DIR=tests/fixtures/faces/node

make -s -j2 BUILD="$BUILD" lib
mkdir -p "$BUILD/bench"
cc -std=c11 -D_GNU_SOURCE -O2 -march=native -fopenmp -Iinclude -o "$BUILD/bench/faces_bench" \
    bench/faces_bench.c "$BUILD/libmer.a" $(test -f /usr/include/dnnl.h && echo -ldnnl) \
    $(pkg-config --libs openblas libavformat libavcodec libswresample libswscale libavutil \
      libcjson libpng libjpeg) -lpthread -lm
if [[ ! -d "$NODE_DIR/node_modules/@vladmandic/face-api" ]]; then
    (cd "$NODE_DIR" && npm ci --no-audit --no-fund >/dev/null)
fi
raw=$(mktemp /tmp/mer-faces-XXXXXX.rgb)
trap 'rm -f "$raw"' EXIT
for round in 1 2; do
    m=$("$BUILD/bench/faces_bench" "$IMG" "$REPS" 1 "$raw")
    n=$(cd "$NODE_DIR" && node bench_faces.js "$raw" 640 480 "$REPS")
    echo "mer (1 thread):           $m"
    echo "face-api wasm (1 thread): $n"
    awk -v a="$(echo "$m" | awk '{print $(NF-1)}')" -v b="$(echo "$n" | sed 's/.* \([0-9.]*\) ms\/frame.*/\1/')" \
        'BEGIN { r = b / a; ok = "MISSED"; if (r >= 3) ok = "ok"; printf "ratio face-api / mer: %.1fx (bar >= 3x: %s)\n", r, ok }'
done
