#!/usr/bin/env bash
# Issue #14's comparison in one command: HuBERT-large on 10 s and CLIP ViT-L/14 on a batch of 8
# (random weights, real configurations, encoder only), every engine at THREADS threads in every
# round: mer fp32 / bf16 / int8, ONNX Runtime fp32 / int8 (onnxruntime-node 1.30.0; int8 = each
# MatMul rewritten into DynamicQuantizeLinear + MatMulInteger), PyTorch fp32 and
# torch.quantization.quantize_dynamic int8. `mer bench peak` first; the table (best of all
# rounds) gives GFLOPS, % of the fp32 peak, time / floor, the ratios to the peers and the bars.
#
#   bench/speed.sh                       the issue's sizes (first run: checkpoints + ONNX exports,
#                                        cached in $SPEED_DIR and reused by later runs)
#   SIZE=tiny bench/speed.sh             the same chain on tiny models (a minute; a check)
#   THREADS (2) REPS (3, timed runs after one warm-up) ROUNDS (2) SPEED_DIR
#   (build/bench/speed_$SIZE) EXPORT_TIMEOUT (s, 3600: per model, making + export; a stopped
#   export resumes on the next run) RUN_TIMEOUT (s, 1800: per timed engine run)
#   ONLY=hubert|clip                     one model
#   ACCURACY=0                           skip the accuracy of bf16/int8 against fp32 (run last)
# A peer that fails or times out is reported and left out of the table; the run goes on.
# Needs /usr/bin/python3 with torch, torchaudio and onnx, and node + npm (onnxruntime-node is
# installed into $BUILD/ort with ONNXRUNTIME_NODE_INSTALL=skip: its postinstall fetches GPU files).
set -uo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
THREADS=${THREADS:-2}
REPS=${REPS:-3}
ROUNDS=${ROUNDS:-2}
SIZE=${SIZE:-full}
DIR=${SPEED_DIR:-$BUILD/bench/speed_$SIZE}
EXPORT_TIMEOUT=${EXPORT_TIMEOUT:-3600}
RUN_TIMEOUT=${RUN_TIMEOUT:-1800}
MODELS=${ONLY:-hubert clip}
PY=/usr/bin/python3
T0=$(date +%s)

set -e
make -s -j2 BUILD="$BUILD" lib "$BUILD/mer"
mkdir -p "$BUILD/bench" "$BUILD/ort" "$DIR"
LIBS="$BUILD/libmer.a $(test -f /usr/include/dnnl.h && echo -ldnnl) $(pkg-config --libs openblas libavformat \
      libavcodec libswresample libswscale libavutil libcjson libpng libjpeg) -lpthread -lm"
for b in hubert_bench clip_bench; do
    # shellcheck disable=SC2086
    cc -std=c11 -D_GNU_SOURCE -O2 -march=native -fopenmp -Iinclude -o "$BUILD/bench/$b" bench/$b.c $LIBS
done
set +e
if [ ! -d "$BUILD/ort/node_modules/onnxruntime-node" ]; then
    (cd "$BUILD/ort" && ONNXRUNTIME_NODE_INSTALL=skip timeout 900 npm install onnxruntime-node@1.30.0 \
        --no-audit --no-fund) || echo "speed.sh: npm install onnxruntime-node failed: no ORT columns"
fi
echo "load average: $(cat /proc/loadavg)"
if ! timeout "$EXPORT_TIMEOUT" $PY bench/speed_peer.py make "$DIR" "$SIZE"; then
    echo "speed.sh: making the random-weight checkpoints failed or timed out (rerun resumes)" >&2
    exit 1
fi
for m in $MODELS; do
    timeout "$EXPORT_TIMEOUT" $PY bench/speed_peer.py export "$DIR" "$SIZE" "$m" ||
        echo "speed.sh: the ONNX export of $m failed or timed out: no ORT rows for it (rerun resumes)"
done
echo "export and setup: $(( $(date +%s) - T0 )) s"

# the machine's peak at THREADS threads: the 'GOPS n thr' column
PEAKS="$DIR/peaks.txt"
"$BUILD/mer" bench peak --threads "$THREADS" --seconds 1 | tee "$DIR/peak.out"
awk '/^fp32 fma/ {print "fp32", $(NF-1)} /^bf16 vdpbf16ps/ && $(NF-1) != "-" {print "bf16", $(NF-1)}
     /^int8 vpdpbusd/ && $(NF-1) != "-" {print "int8", $(NF-1); v = 1}
     /^int8 vpmaddubsw/ {a = $(NF-1)} END {if (!v && a != "") print "int8", a}' "$DIR/peak.out" > "$PEAKS"

# libgomp's threads spin between parallel regions: right on a quiet machine, very wrong on a
# loaded one; decide as the mer CLI does (docs/gemm.md, "Waiting threads on a busy machine")
if [ -z "${OMP_WAIT_POLICY:-}${GOMP_SPINCOUNT:-}" ] &&
   awk -v n="$(nproc)" '{exit !($1 >= n - 0.5)}' /proc/loadavg; then
    export OMP_WAIT_POLICY=PASSIVE
    echo "loaded machine: OMP_WAIT_POLICY=PASSIVE for mer and PyTorch (as the mer CLI does)"
fi
RES="$DIR/results.txt"
: > "$RES"
run() {  # run MODEL "ENGINE NAME" command...: time one engine, record its best seconds
    local model=$1 engine=$2 out rc
    shift 2
    out=$(timeout "$RUN_TIMEOUT" "$@" 2>&1)
    rc=$?
    if [ $rc -ne 0 ]; then
        echo "  $model $engine: FAILED (exit $rc): $(echo "$out" | tail -1)"
        return
    fi
    echo "  $(echo "$out" | grep -v '^RESULT' | head -1)"
    echo "$out" | awk -v m="$model" -v e="$engine" '/^RESULT s / {print m, e, $3} /^RESULT flop / {print m, "flop", $3}' >> "$RES"
}
ortrun() {  # ortrun MODEL VARIANT INPUT_NAME INPUT_FILE
    local model=$1 v=$2 shape e="ORT fp32"
    [ -n "$v" ] && e="ORT int8"
    if [ ! -f "$DIR/$model$v.onnx" ]; then echo "  $model ORT$v: no ONNX file"; return; fi
    shape=$($PY bench/speed_peer.py shape "$DIR" "$SIZE" "$model")
    run "$model" "$e" env NODE_PATH="$BUILD/ort/node_modules" node bench/ort_peer.js \
        "$DIR/$model$v.onnx" "$4" "$3" "$shape" "$THREADS" "$REPS"
}
for m in $MODELS; do
    case $m in
        hubert) echo "hubert what $SIZE, $(( $(stat -c %s "$DIR/wave.f32") / 64000 )) s of audio, every hidden state" >> "$RES" ;;
        clip) echo "clip what $SIZE, batch $($PY bench/speed_peer.py shape "$DIR" "$SIZE" clip), get_image_features" >> "$RES" ;;
    esac
done
for round in $(seq "$ROUNDS"); do
    echo "-- round $round, load average $(cut -d' ' -f1-3 /proc/loadavg)"
    for m in $MODELS; do
        for p in f32 bf16 int8; do
            e="mer ${p/f32/fp32}"
            if [ "$m" = hubert ]; then
                run hubert "$e" "$BUILD/bench/hubert_bench" "$DIR/hubert" "$DIR/a10.wav" "$THREADS" "$REPS" default $p
            else
                run clip "$e" "$BUILD/bench/clip_bench" "$DIR/clip" "$DIR/pixels.f32" "$THREADS" "$REPS" $p
            fi
        done
        inp=$([ "$m" = hubert ] && echo "wave $DIR/wave.f32" || echo "pixels $DIR/pixels.f32")
        # shellcheck disable=SC2086
        ortrun "$m" "" $inp
        # shellcheck disable=SC2086
        ortrun "$m" _int8 $inp
        for p in f32 int8; do
            run "$m" "torch ${p/f32/fp32}" env OMP_NUM_THREADS="$THREADS" \
                $PY bench/speed_peer.py time "$DIR" "$SIZE" "$m" $p "$THREADS" "$REPS"
        done
    done
done
echo "-- best of $ROUNDS rounds x $REPS runs, $THREADS threads, load average now $(cut -d' ' -f1-3 /proc/loadavg)"
$PY bench/speed_peer.py table "$RES" "$PEAKS"
if [ "${ACCURACY:-1}" = 1 ]; then
    # the reduced precisions against mer fp32: per-layer max|diff|/max|fp32| and the MERTools
    # feature's cosine (bar 0.9995), through `mer extract` as a user runs it
    echo "-- accuracy of bf16 and int8 against fp32 (ACCURACY=0 skips)"
    for m in $MODELS; do
        case $m in
            hubert) timeout "$RUN_TIMEOUT" $PY tests/parity/hubert_int8.py --mer "$BUILD/mer" --model "$DIR/hubert" \
                        --wav "$DIR/a10.wav" || echo "speed.sh: hubert accuracy: failed or below the bar" ;;
            clip) timeout "$RUN_TIMEOUT" $PY tests/parity/clip_precision.py --mer "$BUILD/mer" --dir "$DIR" ||
                      echo "speed.sh: clip accuracy: failed or below the bar"
                  # the peers' own reduced precision on the same batch: every engine's embeddings
                  rm -f "$DIR"/acc_*.f32
                  for p in f32 bf16 int8; do
                      CLIP_DUMP="$DIR/acc_mer_$p.f32" timeout "$RUN_TIMEOUT" "$BUILD/bench/clip_bench" "$DIR/clip" \
                          "$DIR/pixels.f32" "$THREADS" 1 $p > /dev/null
                  done
                  shape=$($PY bench/speed_peer.py shape "$DIR" "$SIZE" clip)
                  for v in "" _int8; do
                      [ -f "$DIR/clip$v.onnx" ] && ORT_DUMP="$DIR/acc_ort$v.f32" NODE_PATH="$BUILD/ort/node_modules" \
                          timeout "$RUN_TIMEOUT" node bench/ort_peer.js "$DIR/clip$v.onnx" "$DIR/pixels.f32" pixels \
                          "$shape" "$THREADS" 1 > /dev/null
                  done
                  $PY bench/speed_peer.py peer_accuracy "$DIR" "$SIZE" clip ;;
        esac
    done
fi
echo "total: $(( $(date +%s) - T0 )) s"
