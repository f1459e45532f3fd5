#!/usr/bin/env bash
# Text encoders: mer against PyTorch (tests/parity/text_ref.py, torch.inference_mode) at the same
# thread count, both measured in this run, ratios printed.
#  1. BERT-large (chinese-roberta-wwm-ext-large config, 24 layers or the first BERT_LAYERS, random
#     F32 weights) on a batch of 32 transcripts x 40 tokens: mer BERT_PRECISIONS (f32 bf16 int8)
#     vs PyTorch fp32 (bar: mer >= 2x), interleaved over ROUNDS (2) rounds, the best of each kept.
#  2. LLM prefill of one prompt of 32 / 128 / 512 tokens through 2-layer slices at the LLaMA-2-7B
#     and Baichuan-13B widths (random BF16 weights, bench/text_peer.py make-llm): mer f32 / bf16 /
#     int8 vs PyTorch bf16 and fp32 and llama.cpp's CPU backend (node-llama-cpp 3.21.1, prebuilt;
#     GGUF Q8_0 and BF16 copies of the same weights written by bench/text_gguf.py); seconds per
#     layer and tokens/s extrapolated to the full depth (32 / 40 layers; the 2-layer time includes
#     the final norm, < 0.1%). Bars (issue #17): mer's fastest >= 1.2x the fastest peer at every
#     length, mer int8 >= llama.cpp Q8_0. PyTorch bf16 is timed once (no warm-up) and only at
#     the prompt lengths in TORCH_BF16_PROMPTS (default 32): on CPUs without AVX512-BF16 (Zen 3)
#     torch 1.13's bf16 matmuls ran 18x slower than its fp32 ones (38 s per 7B layer at 32
#     tokens), and a 512-token run would take about an hour; set TORCH_BF16_PROMPTS="32 128 512"
#     on a CPU that has the instructions.
# Peak RSS of each mer run is printed; docs/text.md extrapolates the 13B figure.
# Needs /usr/bin/python3 with torch, node + npm (node-llama-cpp is installed into
# $BUILD/llamacpp on the first run). One command: bash bench/text.sh (env: REPS, THREADS, SKIP_BERT=1,
# SKIP_LLM=1, BERT_LAYERS=24, BERT_PRECISIONS="f32 bf16 int8", ROUNDS=2, PROMPTS="32 128 512",
# CONFIGS="llama2-7b:llama:32 baichuan-13b:baichuan_alibi:40"). BERT alone, quickly:
#   SKIP_LLM=1 BERT_LAYERS=4 BERT_PRECISIONS=int8 bash bench/text.sh
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

T_START=$(date +%s)
echo "load average at start: $(cat /proc/loadavg)"
if [[ "${SKIP_LLM:-0}" != 1 && ! -d "$BUILD/llamacpp/node_modules/node-llama-cpp" ]]; then
    mkdir -p "$BUILD/llamacpp"
    [[ -f "$BUILD/llamacpp/package.json" ]] || echo '{"name": "mer-llamacpp-peer", "private": true}' > "$BUILD/llamacpp/package.json"
    (cd "$BUILD/llamacpp" && npm i -E node-llama-cpp@3.21.1 --no-audit --no-fund >/dev/null)
fi
LCPP_JS="$PWD/bench/text_llamacpp.mjs"

if [[ "${SKIP_BERT:-0}" != 1 ]]; then
BL=${BERT_LAYERS:-24}
bd="$DIR/bert-large"
[[ $BL == 24 ]] || bd="$DIR/bert-large-$BL"
echo "-- BERT-large ($BL of 24 layers), batch 32 x 40 tokens, $THREADS threads, $REPS reps x ${ROUNDS:-2} rounds interleaved"
b_start=$(date +%s)
$PY bench/text_peer.py make-bert "$bd" "$BL"
declare -A best=()
for ((round = 1; round <= ${ROUNDS:-2}; round++)); do
    p=$(OMP_NUM_THREADS=$THREADS $PY bench/text_peer.py time-bert "$bd" 32 40 "$THREADS" "$REPS" | awk '/^RESULT/ {print $2}')
    echo "round $round: torch fp32 $p s, load $(cut -d' ' -f1 /proc/loadavg)"
    best[torch]=$(awk -v a="${best[torch]:-1e30}" -v b="$p" 'BEGIN { print (b < a ? b : a) }')
    for prec in ${BERT_PRECISIONS:-f32 bf16 int8}; do
        r=$("$TB" time "$bd" 32 40 "$prec" "$THREADS" "$REPS" | awk '/^RESULT/ {print $2, $4}')
        set -- $r
        echo "round $round: mer $prec $1 s (torch / mer $(awk -v p="$p" -v m="$1" 'BEGIN { printf "%.2f", p / m }')), peak RSS $2 MB"
        best[$prec]=$(awk -v a="${best[$prec]:-1e30}" -v b="$1" 'BEGIN { print (b < a ? b : a) }')
    done
done
echo "torch fp32: ${best[torch]} s (best of the rounds)"
fastest=1e30
for prec in ${BERT_PRECISIONS:-f32 bf16 int8}; do
    awk -v m="${best[$prec]}" -v p="${best[torch]}" -v prec="$prec" -v L="$BL" 'BEGIN {
        printf "mer %-4s: %.3f s (%.0f tokens/s, %.3f s per layer), %.2fx torch fp32\n",
               prec, m, 1280 / m, m / L, p / m }'
    fastest=$(awk -v a="$fastest" -v b="${best[$prec]}" 'BEGIN { print (b < a ? b : a) }')
done
awk -v m="$fastest" -v p="${best[torch]}" 'BEGIN {
    printf "  mer fastest vs torch fp32: %.2fx (bar 2x: %s)\n", p / m, (p / m >= 2 ? "met" : "not met") }'
echo "BERT part: $(( $(date +%s) - b_start )) s, load average $(cat /proc/loadavg)"
fi

[[ "${SKIP_LLM:-0}" == 1 ]] && { echo "load average at end: $(cat /proc/loadavg); bench/text.sh took $(( $(date +%s) - T_START )) s"; exit 0; }

for cfg in ${CONFIGS:-llama2-7b:llama:32 baichuan-13b:baichuan_alibi:40}; do
    IFS=: read -r name style depth <<< "$cfg"
    d="$DIR/$name"
    $PY bench/text_peer.py make-llm "$name" "$d"
    for q in q8_0 bf16; do
        [[ -f "$d/$q.gguf" ]] || $PY bench/text_gguf.py "$d" "$d/$q.gguf" "$q"
    done
    for T in ${PROMPTS:-32 128 512}; do
        echo "-- $name slice (2 layers), prompt of $T tokens, $THREADS threads (extrapolated to $depth layers), load $(cut -d' ' -f1 /proc/loadavg)"
        best_peer=1e30
        best_who=none
        q8=1e30
        line() { awk -v s="$2" -v T="$T" -v L="$depth" -v who="$1" 'BEGIN {
            printf "%-16s %.3f s per layer, %7.2f tokens/s full depth\n", who, s / 2, T / (s / 2 * L) }'; }
        for dt in bf16 fp32; do
            if [[ $dt == bf16 && " ${TORCH_BF16_PROMPTS-32} " != *" $T "* ]]; then
                echo "torch bf16       not timed at $T tokens (TORCH_BF16_PROMPTS; see its time at 32 tokens)"
                continue
            fi
            # torch bf16 is one cold run: without AVX512-BF16 its products are the slowest here by far
            reps=$REPS; [[ $dt == bf16 ]] && reps=0
            p=$(OMP_NUM_THREADS=$THREADS $PY bench/text_peer.py time-llm "$d" "$style" "$T" "$THREADS" "$reps" "$dt" | awk '/^RESULT/ {print $2}')
            line "torch $dt" "$p"
            if awk -v a="$p" -v b="$best_peer" 'BEGIN { exit !(a < b) }'; then best_peer=$p; best_who="torch $dt"; fi
        done
        for q in q8_0 bf16; do
            g=$(realpath "$d/$q.gguf")
            p=$(cd "$BUILD/llamacpp" && node "$LCPP_JS" "$g" "$T" "$THREADS" "$REPS" | awk '/^RESULT/ {print $2}')
            line "llama.cpp $q" "$p"
            [[ $q == q8_0 ]] && q8=$p
            if awk -v a="$p" -v b="$best_peer" 'BEGIN { exit !(a < b) }'; then best_peer=$p; best_who="llama.cpp $q"; fi
        done
        best_mer=1e30
        for prec in f32 bf16 int8; do
            r=$("$TB" time "$d" 1 "$T" "$prec" "$THREADS" "$REPS" | awk '/^RESULT/ {print $2, $4}')
            set -- $r
            awk -v s="$1" -v T="$T" -v L="$depth" -v who="mer $prec" -v bp="$best_peer" -v rss="$2" 'BEGIN {
                printf "%-16s %.3f s per layer, %7.2f tokens/s full depth, %.2fx the fastest peer, peak RSS %d MB\n",
                       who, s / 2, T / (s / 2 * L), bp / s, rss }'
            [[ $prec == int8 ]] && awk -v s="$1" -v q="$q8" 'BEGIN {
                printf "  mer int8 vs llama.cpp Q8_0: %.2fx (bar 1x: %s)\n", q / s, (q / s >= 1 ? "met" : "not met") }'
            best_mer=$(awk -v a="$best_mer" -v b="$1" 'BEGIN { print (b < a ? b : a) }')
        done
        awk -v m="$best_mer" -v p="$best_peer" -v who="$best_who" 'BEGIN {
            printf "  mer fastest vs fastest peer (%s): %.2fx (bar 1.2x: %s)\n", who, p / m, (p / m >= 1.2 ? "met" : "not met") }'
    done
done
echo "load average at end: $(cat /proc/loadavg); bench/text.sh took $(( $(date +%s) - T_START )) s"
