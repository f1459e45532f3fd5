#!/usr/bin/env bash
# Load time of a HuBERT-large-sized PyTorch checkpoint (random weights, 1.26 GB F32): mer reading
# the .bin directly (zip and legacy format) and its `mer convert` safetensors, against
# torch.load (Debian's python3-torch) of the same files, all measured in this run (min of REPS,
# page cache warm). mer's open is lazy (mmap): "touch" adds reading every byte once, which is
# what torch.load always does; "speech load" is mer_speech_model_load (config + weights bound).
# The checkpoints are made once into $TORCH_BENCH_DIR (default $BUILD/bench/torch, ~3.8 GB on
# disk, never committed); peak RAM stays under ~3 GB (torch.load holds one copy).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
REPS=${REPS:-3}
DIR=${TORCH_BENCH_DIR:-$BUILD/bench/torch}
PY=/usr/bin/python3

make -s -j2 BUILD="$BUILD" lib "$BUILD/mer"
mkdir -p "$BUILD/bench" "$DIR"
cc -std=c11 -D_GNU_SOURCE -O2 -march=native -fopenmp -Iinclude -o "$BUILD/bench/torch_load_bench" \
    bench/torch_load_bench.c "$BUILD/libmer.a" $(test -f /usr/include/dnnl.h && echo -ldnnl) \
    $(pkg-config --libs openblas libavformat libavcodec libswresample libswscale libavutil \
      libcjson libpng libjpeg) -lpthread -lm
$PY bench/torch_load_peer.py make "$DIR"
t0=$(date +%s.%N)
"$BUILD/mer" convert "$DIR/bin" --out "$DIR/st" >/dev/null
printf "mer convert (zip .bin -> safetensors): %.2f s\n" "$(echo "$(date +%s.%N) - $t0" | bc)"

printf "%-34s %10s %10s %12s %12s\n" "checkpoint" "mer open" "+touch" "speech load" "torch.load"
for kind in bin legacy st; do
    read -r o t s n b < <("$BUILD/bench/torch_load_bench" "$DIR/$kind" "$REPS")
    if [[ $kind == st ]]; then
        file="$DIR/st/model.safetensors"; peer="-"; ratio=""
    else
        file="$DIR/$kind/pytorch_model.bin"
        read -r peer _ < <($PY bench/torch_load_peer.py load "$file" "$REPS")
        ratio=$(echo "scale=1; $peer / $t" | bc)
    fi
    printf "%-34s %9.3fs %9.3fs %11.3fs %11ss" "$kind ($n tensors, $((b / 1000000)) MB)" "$o" "$t" "$s" "$peer"
    [[ -n $ratio ]] && printf "   torch.load / (mer open+touch) = %sx" "$ratio"
    printf "\n"
done
