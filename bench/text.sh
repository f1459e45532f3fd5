#!/usr/bin/env bash
# Text encoders: mer against PyTorch (tests/parity/text_ref.py, torch.inference_mode) at the same
# thread count, both measured in this run, ratios printed.
#  1. BERT-large (chinese-roberta-wwm-ext-large config, 24 layers, random F32 weights) on a batch
#     of 32 transcripts x 40 tokens: mer f32 / bf16 / int8 vs PyTorch fp32 (bar: mer >= 2x).
#  2. LLM prefill of one prompt of 32 / 128 / 512 tokens through 2-layer slices at the LLaMA-2-7B
#     and Baichuan-13B widths (BF16 checkpoints made by tests/parity/text_parity.py): mer f32 /
#     bf16 / int8 vs PyTorch bf16 and fp32; seconds per layer and tokens/s extrapolated to the
#     full depth (32 / 40 layers; the 2-layer time includes the final norm, < 0.1%).
#     Bar (issue #17): mer's fastest >= 1.2x the fastest peer at every length. llama.cpp is not
#     measured here (see docs/text.md).
# Peak RSS of the int8 run is printed per slice; docs/text.md extrapolates the 13B figure.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
THREADS=${THREADS:-2}
REPS=${REPS:-2}
DIR=${TEXT_BENCH_DIR:-$BUILD/bench/text}
PY=/usr/bin/python3
bash bench/text_build.sh
TB="$BUILD/bench/text_bench"
mkdir -p "$DIR"

echo "-- BERT-large, batch 32 x 40 tokens, $THREADS threads"
$PY bench/text_peer.py make-bert "$DIR/bert-large"
p=$(OMP_NUM_THREADS=$THREADS $PY bench/text_peer.py time-bert "$DIR/bert-large" 32 40 "$THREADS" "$REPS" | awk '/^RESULT/ {print $2}')
echo "torch fp32: $p s"
for prec in f32 bf16 int8; do
    r=$("$TB" time "$DIR/bert-large" 32 40 "$prec" "$THREADS" "$REPS" | awk '/^RESULT/ {print $2, $4}')
    set -- $r
    awk -v m="$1" -v p="$p" -v prec="$prec" -v rss="$2" 'BEGIN {
        printf "mer %-4s: %.3f s (%.0f tokens/s), %.2fx torch fp32 (bar 2x: %s), peak RSS %d MB\n",
               prec, m, 1280 / m, p / m, p / m >= 2 ? "met" : "not met", rss }'
done

for cfg in llama2-7b:llama:32 baichuan-13b:baichuan_alibi:40; do
    IFS=: read -r name style depth <<< "$cfg"
    d="$DIR/$name"
    if [[ ! -f "$d/model.safetensors" ]]; then
        $PY tests/parity/text_parity.py --configs "$name" --work "$DIR" --keep --mer "$BUILD/mer" > /dev/null
    fi
    for T in 32 128 512; do
        echo "-- $name slice (2 layers), prompt of $T tokens, $THREADS threads (extrapolated to $depth layers)"
        best_peer=1e30
        for dt in bf16 fp32; do
            p=$(OMP_NUM_THREADS=$THREADS $PY bench/text_peer.py time-llm "$d" "$style" "$T" "$THREADS" "$REPS" "$dt" | awk '/^RESULT/ {print $2}')
            awk -v s="$p" -v T="$T" -v L="$depth" -v who="torch $dt" 'BEGIN {
                printf "%-10s %.3f s per layer, %.2f tokens/s full depth\n", who, s / 2, T / (s / 2 * L) }'
            best_peer=$(awk -v a="$best_peer" -v b="$p" 'BEGIN { print (b < a ? b : a) }')
        done
        for prec in f32 bf16 int8; do
            r=$("$TB" time "$d" 1 "$T" "$prec" "$THREADS" "$REPS" | awk '/^RESULT/ {print $2, $4}')
            set -- $r
            awk -v s="$1" -v T="$T" -v L="$depth" -v who="mer $prec" -v bp="$best_peer" -v rss="$2" 'BEGIN {
                printf "%-10s %.3f s per layer, %.2f tokens/s full depth, %.2fx the fastest torch (bar 1.2x: %s), peak RSS %d MB\n",
                       who, s / 2, T / (s / 2 * L), bp / s, bp / s >= 1.2 ? "met" : "not met", rss }'
        done
    done
done
