#!/usr/bin/env bash
# One training step of adapter fine-tuning (issue 13): HuBERT-large layers 16-24 on cached
# hidden states, bottleneck-64 adapters in 16-21, head on layer 24, batch CLIPS x SECONDS
# (default 8 x 10 s = 500 frames each), cross-entropy + backward + AdamW, against the same step
# in PyTorch (bench/speech_train_peer.py) at the same thread count, both in this run; prints the
# ratio (bar: mer >= 2x faster) and each side's peak RSS. Layers 16-24 of the 24-layer model are
# the layers of a 9-layer checkpoint at the same width (1-9, adapters 1-6, the final encoder
# LayerNorm after 9 as after 24): that is what is made (random weights, 470 MB) into
# $SPEECH_TRAIN_BENCH_DIR (default $BUILD/bench/speech_train).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
THREADS=${THREADS:-2}
REPS=${REPS:-2}
CLIPS=${CLIPS:-8}
SECONDS_PER_CLIP=${SECONDS_PER_CLIP:-10}
FRAMES=$((SECONDS_PER_CLIP * 50 - 1))
DIR=${SPEECH_TRAIN_BENCH_DIR:-$BUILD/bench/speech_train}
PY=/usr/bin/python3
make -s -j2 BUILD="$BUILD" lib
mkdir -p "$BUILD/bench"
cc -std=c11 -D_GNU_SOURCE -O2 -march=native -fopenmp -Iinclude -Isrc -Isrc/core \
    -o "$BUILD/bench/speech_train_bench" bench/speech_train_bench.c "$BUILD/libmer.a" \
    $(test -f /usr/include/dnnl.h && echo -ldnnl) \
    $(pkg-config --libs openblas libavformat libavcodec libswresample libswscale libavutil \
      libcjson libpng libjpeg) -lpthread -lm
[[ -f "$DIR/model.safetensors" ]] || $PY bench/make_random_hubert.py large "$DIR" --layers 9
echo "batch $CLIPS x $SECONDS_PER_CLIP s ($FRAMES frames), layers 16-24 (adapters 16-21), $THREADS threads"
m=$("$BUILD/bench/speech_train_bench" "$DIR" 1 6 9 "$CLIPS" "$FRAMES" "$THREADS" "$REPS")
echo "$m" | grep -v '^RESULT'
p=$(OMP_NUM_THREADS=$THREADS $PY bench/speech_train_peer.py "$DIR" 1 6 9 "$CLIPS" "$FRAMES" "$THREADS" "$REPS")
echo "$p" | grep -v '^RESULT'
a=$(echo "$m" | awk '/^RESULT/ {print $3 " " $4 " " $5}')
b=$(echo "$p" | awk '/^RESULT/ {print $3 " " $4}')
echo "$a $b" | awk '{ printf "mer %.3f s/step (peak RSS %d MB, activations %d MB), torch %.3f s/step (peak RSS %d MB): mer %.2fx faster (bar 2x)\n", $1, $2, $3, $4, $5, $4 / $1 }'
