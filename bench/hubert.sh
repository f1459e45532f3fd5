#!/usr/bin/env bash
# HuBERT-large forward on 10 s of audio: mer against PyTorch (the same model in torchaudio's
# wav2vec2_model, torch.inference_mode, OpenBLAS via the system BLAS alternative) at the same
# thread count, both measured in this run; ratio printed (the bar: mer >= 2.5x faster), for the
# default fp32 forward and the opt-in bf16 one (--precision bf16, docs/speech.md). Also:
# the GFLOPS of the encoder's matrix products inside the forward against mer_sgemm alone on the
# same shapes (bar >= 70%), `mer bench gemm`, and the peak RSS of `mer extract audio` against the
# weight file (bar: <= weights + 400 MB). The checkpoint (random weights, real hubert-large
# config, 1.26 GB) is made once into $HUBERT_BENCH_DIR (default $BUILD/bench/hubert).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
THREADS=${THREADS:-2}
REPS=${REPS:-3}
DIR=${HUBERT_BENCH_DIR:-$BUILD/bench/hubert}
PY=/usr/bin/python3

make -s -j2 BUILD="$BUILD" lib "$BUILD/mer"
mkdir -p "$BUILD/bench"
cc -std=c11 -D_GNU_SOURCE -O2 -march=native -fopenmp -Iinclude -o "$BUILD/bench/hubert_bench" \
    bench/hubert_bench.c "$BUILD/libmer.a" $(test -f /usr/include/dnnl.h && echo -ldnnl) \
    $(pkg-config --libs openblas libavformat libavcodec libswresample libswscale libavutil \
      libcjson libpng libjpeg) -lpthread -lm
$PY bench/hubert_peer.py make "$DIR"
$PY -c 'import re, torch; print("torch", torch.__version__, "build:", " ".join(re.findall(r"(?:BLAS_INFO|LAPACK_INFO)=\w+", torch.__config__.show())))'
readlink -f /usr/lib/x86_64-linux-gnu/libblas.so.3 | sed 's/^/system libblas.so.3 -> /'

for round in 1 2; do
    echo "-- round $round"
    m=$("$BUILD/bench/hubert_bench" "$DIR/large" "$DIR/a10.wav" "$THREADS" "$REPS" default f32)
    echo "$m" | grep -v '^RESULT'
    h=$("$BUILD/bench/hubert_bench" "$DIR/large" "$DIR/a10.wav" "$THREADS" "$REPS" default bf16)
    echo "$h" | grep -v '^RESULT'
    p=$(OMP_NUM_THREADS=$THREADS $PY bench/hubert_peer.py time "$DIR" "$THREADS" "$REPS")
    echo "$p" | grep -v '^RESULT'
    a=$(echo "$m" | awk '/^RESULT s / {print $3}')
    c=$(echo "$h" | awk '/^RESULT s / {print $3}')
    b=$(echo "$p" | awk '/^RESULT/ {print $3}')
    awk -v a="$a" -v c="$c" -v b="$b" 'BEGIN {
        printf "mer fp32 %.3f s, mer bf16 %.3f s, torch %.3f s (best of each)\n", a, c, b
        r = b / a; ok = (r >= 2.5) ? "ok" : "MISSED";
        printf "ratio torch / mer fp32: %.2fx (bar >= 2.5x: %s); fp32 floor ~1.9 s (384 GFLOP at the ~200 GFLOPS fp32 peak of 2 Zen 4 cores, docs/gemm.md): mer is %.2fx the floor\n", r, ok, a / 1.9
        r = b / c; ok = (r >= 2.5) ? "ok" : "MISSED";
        printf "ratio torch / mer bf16: %.2fx (bar >= 2.5x: %s); bf16 speedup over fp32 %.2fx\n", r, ok, a / c }'
done

echo "-- mer bench gemm ($THREADS threads)"
"$BUILD/mer" bench gemm --threads "$THREADS" --reps 3 || true

echo "-- memory: mer extract audio, 10 s, large"
wbytes=$(stat -c %s "$DIR/large/model.safetensors")
rss=$( { /usr/bin/time -v "$BUILD/mer" extract audio --model "$DIR/large" --threads "$THREADS" --overwrite \
          --out "$BUILD/bench/hubert_a10.npy" "$DIR/a10.wav" >/dev/null; } 2>&1 | awk '/Maximum resident/ {print $6}')
awk -v r="$rss" -v w="$wbytes" 'BEGIN { extra = r / 1024 - w / 1048576; ok = (extra <= 400) ? "ok" : "MISSED";
    printf "peak RSS %.0f MB, weights %.0f MB, extra %.0f MB (bar <= 400 MB: %s)\n", r / 1024, w / 1048576, extra, ok }'
