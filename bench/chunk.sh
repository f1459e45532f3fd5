#!/usr/bin/env bash
# `mer extract audio` on long inputs, 10 s chunks (the default since #16, as MERTools) against one
# pass of full attention (--chunk-seconds 0), with the tiny HuBERT of tests/fixtures (2 layers,
# 4 heads of 8): time and peak RSS per length, and the full/chunked time ratio of each length,
# measured in the same run (min of ROUNDS interleaved rounds). Full attention costs time
# quadratic in the length; at 30 minutes it does not even get its attention workspace on an
# AVX2 CPU (89999 x 89999 scores) and says so. Usage: bash bench/chunk.sh [MER_BIN]
set -uo pipefail
cd "$(dirname "$0")/.."
MER=${1:-build/mer}
MODEL=tests/fixtures/hubert/base
D=build/bench-media
mkdir -p "$D"
ROUNDS=${ROUNDS:-2}
LENGTHS=${LENGTHS:-"1 3 6 30"}
echo "load average: $(cat /proc/loadavg)"
run() { # file, options -> "seconds peak_kb" or "FAIL message"
    local log
    log=$(mktemp)
    if /usr/bin/time -f "%e %M" -o "$log" "$MER" extract audio --model "$MODEL" --threads 2 --overwrite --pool mean \
        $2 --out "$D/chunk-bench.npy" "$1" >/dev/null 2>"$log.err"; then
        cat "$log"
    else
        echo "FAIL $(head -1 "$log.err")"
    fi
    rm -f "$log" "$log.err"
}
printf '%-8s %-22s %-22s %s\n' length "chunked (default)" "full (--chunk-seconds 0)" "full / chunked"
for m in $LENGTHS; do
    A=$D/noise-${m}min.wav
    [[ -s $A ]] || ffmpeg -v error -y -f lavfi -i "anoisesrc=r=16000:a=0.1:d=$((m * 60)):seed=7" -ac 1 "$A" || exit 1
    best_c="" best_f="" kc=0 kf=0 ffail=""
    for ((r = 0; r < ROUNDS; r++)); do
        read -r t k <<<"$(run "$A" "")"
        [[ -z $best_c || $(echo "$t < $best_c" | bc) == 1 ]] && best_c=$t && kc=$k
        # full attention on 30 min: one try (it fails at once or takes the better part of an hour)
        if [[ -z $ffail && ( $m -lt 30 || $r -eq 0 ) ]]; then
            out=$(run "$A" "--chunk-seconds 0")
            if [[ $out == FAIL* ]]; then ffail=${out#FAIL }; else
                read -r t k <<<"$out"
                [[ -z $best_f || $(echo "$t < $best_f" | bc) == 1 ]] && best_f=$t && kf=$k
            fi
        fi
    done
    if [[ -n $ffail ]]; then
        printf '%-8s %6.2f s %6d MB      %s\n' "${m} min" "$best_c" $((kc / 1024)) "full: $ffail"
    else
        printf '%-8s %6.2f s %6d MB      %6.2f s %6d MB      %.1fx\n' "${m} min" "$best_c" $((kc / 1024)) "$best_f" \
            $((kf / 1024)) "$(echo "$best_f / $best_c" | bc -l)"
    fi
done
