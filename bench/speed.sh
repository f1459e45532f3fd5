#!/usr/bin/env bash
# Issue #14's table for HuBERT-large on 10 s (random weights, real config), 2 threads, every
# engine measured in the same round: mer fp32 / bf16 / int8, ONNX Runtime fp32 / int8 (dynamic,
# MatMulInteger; bench/ort_peer.py + .js, onnxruntime-node 1.30.0) and PyTorch fp32; the
# machine's peak (`mer bench peak`) first, ratios printed per round; the best round of each is
# what to report. Needs /usr/bin/python3 with torch + onnx and node; onnxruntime-node is
# installed into $BUILD/ort (ONNXRUNTIME_NODE_INSTALL=skip: its postinstall fetches GPU files).
# CLIP-L/14 is not in it yet (no ONNX export of it was made).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
THREADS=${THREADS:-2}
REPS=${REPS:-3}
ROUNDS=${ROUNDS:-2}
DIR=${HUBERT_BENCH_DIR:-$BUILD/bench/hubert}
PY=/usr/bin/python3

make -s -j2 BUILD="$BUILD" lib "$BUILD/mer"
mkdir -p "$BUILD/bench" "$BUILD/ort"
cc -std=c11 -D_GNU_SOURCE -O2 -march=native -fopenmp -Iinclude -o "$BUILD/bench/hubert_bench" \
    bench/hubert_bench.c "$BUILD/libmer.a" $(test -f /usr/include/dnnl.h && echo -ldnnl) \
    $(pkg-config --libs openblas libavformat libavcodec libswresample libswscale libavutil \
      libcjson libpng libjpeg) -lpthread -lm
if [ ! -d "$BUILD/ort/node_modules/onnxruntime-node" ]; then
    (cd "$BUILD/ort" && ONNXRUNTIME_NODE_INSTALL=skip npm install onnxruntime-node@1.30.0 --no-audit --no-fund)
fi
$PY bench/hubert_peer.py make "$DIR"
$PY bench/ort_peer.py export "$DIR"
"$BUILD/mer" bench peak --threads "$THREADS"

res() { awk '/^RESULT/ {print $3}'; }
for round in $(seq "$ROUNDS"); do
    echo "-- round $round"
    declare -A t
    for p in f32 bf16 int8; do
        o=$("$BUILD/bench/hubert_bench" "$DIR/large" "$DIR/a10.wav" "$THREADS" "$REPS" default $p)
        echo "$o" | head -1
        t[mer_$p]=$(echo "$o" | res)
    done
    for m in hubert_large hubert_large_int8; do
        o=$(NODE_PATH="$BUILD/ort/node_modules" node bench/ort_peer.js "$DIR/$m.onnx" "$DIR/a10.wav" "$THREADS" "$REPS")
        echo "$o" | head -1
        t[$m]=$(echo "$o" | res)
    done
    o=$(OMP_NUM_THREADS=$THREADS $PY bench/hubert_peer.py time "$DIR" "$THREADS" "$REPS")
    echo "$o" | head -1
    t[torch]=$(echo "$o" | res)
    awk -v a="${t[mer_f32]}" -v b="${t[mer_bf16]}" -v c="${t[mer_int8]}" -v o="${t[hubert_large]}" \
        -v q="${t[hubert_large_int8]}" -v p="${t[torch]}" 'BEGIN {
        printf "mer fp32 %.3f s, bf16 %.3f s, int8 %.3f s | ORT fp32 %.3f s, int8 %.3f s | torch fp32 %.3f s\n", a, b, c, o, q, p
        printf "bars: ORT fp32 / mer fp32 = %.2f (> 1 wanted); ORT int8 / mer bf16 = %.2f, ORT int8 / mer int8 = %.2f (> 1 wanted); torch / mer fp32 = %.2f\n", o / a, q / b, q / c, p / a
    }'
done
