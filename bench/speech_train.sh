#!/usr/bin/env bash
# One training step of adapter fine-tuning (issue 13): HuBERT-large layers 16-24 on cached
# hidden states, bottleneck-64 adapters in 16-21, head on layer 24, batch CLIPS x SECONDS
# (default 8 x 10 s = 499 frames each), cross-entropy + backward + AdamW, against the same step
# in PyTorch (bench/speech_train_peer.py) at the same thread count, both in this run; prints the
# ratio (bar: mer >= 2x faster) and each side's peak RSS. Layers 16-24 of the 24-layer model are
# the layers of a 9-layer checkpoint at the same width (1-9, adapters 1-6, the final encoder
# LayerNorm after 9 as after 24): that is what is made (random weights, 470 MB) into
# $SPEECH_TRAIN_BENCH_DIR (default $BUILD/bench/speech_train).
# ROUNDS rounds (default 3), each one mer process and one torch process (REPS timed steps after
# a warm-up step each), the order alternating per round, so that a change of machine load hits
# both sides; each side's time is its minimum over all rounds, and the load average is printed
# before and after. REPS defaults to 2: mer's first step after the warm-up consolidates its
# activation arena into one block (fresh pages: ~4 GB of page faults), the steps after it are the
# steady state of a training run; torch's CPU allocator frees and maps its buffers every step.
# INT8=1 (default) adds a third process per round, mer with --precision int8 (the frozen
# forward products W8A8; a different precision from torch's float32 step, printed apart).
# BF16=1 (default 0) adds a fourth, mer with --precision bf16 (the frozen products in bfloat16:
# vdpbf16ps on AVX512-BF16 CPUs, where it is the way to the 2x bar; emulated through fp32 FMA,
# and slower than fp32, on CPUs without it), printed apart as well.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
THREADS=${THREADS:-2}
REPS=${REPS:-2}
INT8=${INT8:-1}
BF16=${BF16:-0}
ROUNDS=${ROUNDS:-3}
CLIPS=${CLIPS:-8}
SECONDS_PER_CLIP=${SECONDS_PER_CLIP:-10}
FRAMES=$((SECONDS_PER_CLIP * 50 - 1))
DIR=${SPEECH_TRAIN_BENCH_DIR:-$BUILD/bench/speech_train}
PY=/usr/bin/python3
make -s -j2 BUILD="$BUILD" lib
mkdir -p "$BUILD/bench"
for prog in speech_train_bench speech_train_precision; do # the second: docs/finetune.md, int8
    cc -std=c11 -D_GNU_SOURCE -O2 -march=native -fopenmp -Iinclude -Isrc -Isrc/core \
        -o "$BUILD/bench/$prog" "bench/$prog.c" "$BUILD/libmer.a" \
        $(test -f /usr/include/dnnl.h && echo -ldnnl) \
        $(pkg-config --libs openblas libavformat libavcodec libswresample libswscale libavutil \
          libcjson libpng libjpeg) -lpthread -lm
done
[[ -f "$DIR/model.safetensors" ]] || $PY bench/make_random_hubert.py large "$DIR" --layers 9
echo "batch $CLIPS x $SECONDS_PER_CLIP s ($FRAMES frames), layers 16-24 (adapters 16-21), $THREADS threads, $ROUNDS rounds x $REPS steps"
echo "load average before: $(cat /proc/loadavg)"
run_mer() { "$BUILD/bench/speech_train_bench" "$DIR" 1 6 9 "$CLIPS" "$FRAMES" "$THREADS" "$REPS"; }
run_int8() { "$BUILD/bench/speech_train_bench" "$DIR" 1 6 9 "$CLIPS" "$FRAMES" "$THREADS" "$REPS" 64 int8 | sed 's/mer/mer-int8/'; }
run_bf16() { "$BUILD/bench/speech_train_bench" "$DIR" 1 6 9 "$CLIPS" "$FRAMES" "$THREADS" "$REPS" 64 bf16 | sed 's/mer/mer-bf16/'; }
run_torch() { OMP_NUM_THREADS=$THREADS $PY bench/speech_train_peer.py "$DIR" 1 6 9 "$CLIPS" "$FRAMES" "$THREADS" "$REPS"; }
res=""
for ((r = 1; r <= ROUNDS; r++)); do
    if ((r % 2)); then order="mer torch"; else order="torch mer"; fi
    ((INT8)) && order="$order int8"
    ((BF16)) && order="$order bf16"
    for side in $order; do
        out=$(run_$side)
        echo "$out" | grep -v '^RESULT' | sed "s/^/round $r: /"
        res+="$(echo "$out" | grep '^RESULT')"$'\n'
    done
done
echo "load average after: $(cat /proc/loadavg)"
# the step's multiply-adds: the frozen products (q, k, v, out, two feed-forward: 4 D^2 + 2 D I
# per frame) and attention (2 H T^2 dh per clip) forward in all 9 layers, and their input
# gradients (attention backward 4 H T^2 dh) in the 8 above the first adapter (nothing below
# layer 16's adapter needs a gradient); adapters and head are < 0.1 %
echo -n "$res" | awk -v n="$CLIPS" -v T="$FRAMES" '
    $2 == "mer" { if (!m || $3 < m) m = $3; if ($4 > mr) mr = $4; ma = $5 }
    $2 == "torch" { if (!t || $3 < t) t = $3; if ($4 > tr) tr = $4 }
    $2 == "mer-int8" { if (!q || $3 < q) q = $3; if ($4 > qr) qr = $4 }
    $2 == "mer-bf16" { if (!h || $3 < h) h = $3; if ($4 > hr) hr = $4 }
    END {
        D = 1024; I = 4096; H = 16; dh = 64; rows = n * T
        proj = rows * (4 * D * D + 2 * D * I); att = n * H * T * T * dh
        gf = 2 * (9 * (proj + 2 * att) + 8 * (proj + 4 * att)) / 1e9
        printf "step: %.0f GFLOP; mer %.3f s/step (%.0f GFLOP/s, peak RSS %d MB, activation arena %d MB reserved), torch %.3f s/step (%.0f GFLOP/s, peak RSS %d MB): mer %.2fx faster (bar 2x; minimum over rounds)\n", gf, m, gf / m, mr, ma, t, gf / t, tr, t / m
        if (q) printf "mer --precision int8 (frozen forward products W8A8, not the float32 step torch runs): %.3f s/step, peak RSS %d MB: %.2fx torch float32\n", q, qr, t / q
        if (h) printf "mer --precision bf16 (frozen products in bfloat16, not the float32 step torch runs): %.3f s/step, peak RSS %d MB: %.2fx torch float32\n", h, hr, t / h }'
