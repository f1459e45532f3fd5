#!/usr/bin/env bash
# Issue #14: extraction throughput of EmoDB clips (2-10 s, as MER2024's) through HuBERT-base-size
# random weights, one clip per forward against batches of clips in one forward, both in the same
# run (rounds alternate; best of each):
#   lib  the encoder alone (clips decoded and normalised first, not timed): mer_speech_encode
#        against mer_speech_encode_batch on groups of similar length, the MERTools layers;
#   cli  the whole user path: `mer extract audio --preset mertools --batch 1` against
#        `--batch BATCH` (decoding, normalisation, 10 s chunks, layer sum, mean pooling, atomic
#        .npy writes), and the largest difference between the two runs' features.
#   CLIPS (200) BATCH (16) THREADS (2) ROUNDS (1) PRECISION (f32) PART (both: lib cli)
#   EMODB (data/emodb/flac, the bundled clips)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
DIR=$BUILD/bench/hubert_base
EMODB=${EMODB:-data/emodb/flac}
CLIPS=${CLIPS:-200} BATCH=${BATCH:-16} THREADS=${THREADS:-2} ROUNDS=${ROUNDS:-1} PRECISION=${PRECISION:-f32}
PART=${PART:-lib cli}
make -s -j2 BUILD="$BUILD" lib "$BUILD/mer"
mkdir -p "$BUILD/bench"
if [ ! -f "$DIR/model.safetensors" ]; then
    /usr/bin/python3 bench/make_random_hubert.py base "$DIR.tmp" && mv "$DIR.tmp" "$DIR"
fi
echo "load average: $(cat /proc/loadavg)"
case " $PART " in *" lib "*)
    cc -std=c11 -D_GNU_SOURCE -O2 -march=native -fopenmp -Iinclude -o "$BUILD/bench/batch_bench" bench/batch_bench.c \
        "$BUILD/libmer.a" $(test -f /usr/include/dnnl.h && echo -ldnnl) $(pkg-config --libs openblas libavformat \
        libavcodec libswresample libswscale libavutil libcjson libpng libjpeg) -lpthread -lm
    "$BUILD/bench/batch_bench" "$DIR" "$EMODB" "$CLIPS" "$BATCH" "$THREADS" "$ROUNDS" "$PRECISION" ;;
esac
case " $PART " in *" cli "*)
    W=$BUILD/bench/batch_cli
    rm -rf "$W" && mkdir -p "$W"
    find "$EMODB" -maxdepth 1 \( -name '*.wav' -o -name '*.flac' \) | sort | head -n "$CLIPS" > "$W/list"
    n=$(wc -l < "$W/list")
    best1=1e30 bestb=1e30
    for r in $(seq 1 "$ROUNDS"); do
        for b in 1 "$BATCH"; do
            t0=$(date +%s.%N)
            "$BUILD/mer" extract audio --model "$DIR" --preset mertools --precision "$PRECISION" --threads "$THREADS" \
                --batch "$b" --overwrite --list "$W/list" --out "$W/b$b" 2> "$W/b$b.log"
            t=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.3f", b - a }')
            echo "round $r: --batch $b: $t s"
            if [ "$b" = 1 ]; then best1=$(awk -v a="$t" -v b="$best1" 'BEGIN { print (a < b ? a : b) }')
            else bestb=$(awk -v a="$t" -v b="$bestb" 'BEGIN { print (a < b ? a : b) }'); fi
        done
    done
    diff=$(/usr/bin/python3 - "$W/b1" "$W/b$BATCH" <<'PY'
import glob, os, sys
import numpy as np
md = mr = 0.0
files = sorted(glob.glob(os.path.join(sys.argv[1], "*.npy")))
for f in files:
    a = np.load(f); b = np.load(os.path.join(sys.argv[2], os.path.basename(f)))
    md = max(md, float(np.abs(a - b).max())); mr = max(mr, float(np.abs(a).max()))
print("%d features, max|diff| %.3g of max|feature| %.3g" % (len(files), md, mr))
PY
)
    awk -v n="$n" -v p="$PRECISION" -v th="$THREADS" -v b="$BATCH" -v t1="$best1" -v tb="$bestb" -v d="$diff" 'BEGIN {
        printf "mer extract audio --preset mertools, %d clips, %s, %s threads: --batch 1 %.2f clips/s, --batch %s %.2f clips/s (%.2fx); %s\n", n, p, th, n / t1, b, n / tb, t1 / tb, d
        printf "RESULT cli_single_cps %.3f\nRESULT cli_batch_cps %.3f\n", n / t1, n / tb }' ;;
esac
