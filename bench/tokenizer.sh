#!/usr/bin/env bash
# Tokenising speed, one thread, over the 2,157-line exactness corpus (tests/fixtures/text), best
# of REPS passes: mer against python3-sentencepiece (C++) on the SentencePiece models and
# against transformers.js on WordPiece and byte-level BPE (when its node_modules are installed:
# `cd tests/fixtures/text/node && npm ci`). Prints lines/s, the ratio, and the time the
# 115,595 + 5,030 MER2024 transcripts would take at mer's rate. The id counts must agree.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
REPS=${REPS:-5}
FIX=tests/fixtures/text
make -s -j2 BUILD="$BUILD" lib
mkdir -p "$BUILD/bench"
cc -std=c11 -D_GNU_SOURCE -O2 -march=native -fopenmp -Iinclude -o "$BUILD/bench/tokenizer_bench" \
    $(pkg-config --cflags libcjson) bench/tokenizer_bench.c "$BUILD/libmer.a" $(test -f /usr/include/dnnl.h && echo -ldnnl) \
    $(pkg-config --libs openblas libavformat libavcodec libswresample libswscale libavutil \
      libcjson libpng libjpeg) -lpthread -lm
compare() {   # peer-name, then lines "dir rate ids" from mer and from the peer
    join <(echo "$2" | sort) <(echo "$3" | sort) | while read -r d m mi p pi; do
        printf '%-22s mer %8d lines/s   %-18s %8d lines/s   ratio %.2fx   ids %s   MER2024 120,625 lines: %.1f s\n' \
            "$(basename "$d")" "$m" "$1" "$p" "$(echo "$m / $p" | bc -l)" \
            "$([[ $mi == "$pi" ]] && echo same || echo "DIFFER $mi vs $pi")" "$(echo "120625 / $m" | bc -l)"
    done
}
SPM="$FIX/spm_bpe_llama $FIX/spm_bpe_nfkc $FIX/spm_uni_bf $FIX/spm_uni_nfkc"
HF="$FIX/wp_lower $FIX/bpe_qwen2 $FIX/bpe_llama3"
m=$("$BUILD/bench/tokenizer_bench" $FIX/corpus.jsonl "$REPS" $SPM $HF)
p=$(/usr/bin/python3 bench/tokenizer_peer.py $FIX/corpus.jsonl "$REPS" $SPM)
compare sentencepiece "$m" "$p"
if [[ -d $FIX/node/node_modules/@huggingface/transformers ]]; then
    j=$(node bench/tokenizer_peer.mjs $FIX/corpus.jsonl "$REPS" $HF)
    compare transformers.js "$m" "$j"
else
    echo "transformers.js not installed (cd $FIX/node && npm ci): WordPiece/BPE peers skipped"
fi
