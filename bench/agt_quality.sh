#!/usr/bin/env bash
# The "must show" experiments of the agt issue on synthetic data with a known Bayes rule
# (mer synth; docs/agt.md). Prints one line per result:
#  1. agt and afusion learn the Bayes rule: cross-validated WAF vs the Bayes rule's WAF on the
#     same labeled clips (bar: within 0.03).
#  2. prior shift: the test split has other class priors; `--prior auto` estimates them by EM
#     (bar: each within 0.05 of the test split's class frequencies) and raises test WAF over
#     `--prior none`.
#  (self-training with 10% labeled, the third experiment of the issue: bench/selftrain.sh)
# Usage: bench/agt_quality.sh [WORKDIR]   (MER=path/to/mer, THREADS=1 by default: the fusion
# models' GEMMs are small and single-threaded is fastest for them)
set -euo pipefail
cd "$(dirname "$0")/.."
MER=${MER:-build/mer}
T=${THREADS:-1}
W=${1:-build/bench-agt-quality}
PY=${PY:-python3}
rm -rf "$W"
mkdir -p "$W"

waf_of() { # labels.csv pred.csv -> WAF
    "$MER" eval --labels "$1" --pred "$2" | awk '$1 == "WAF" {print $2}'
}
json_get() { # file key.path -> value
    "$PY" -c "import json,sys; d=json.load(open(sys.argv[1]))
for k in sys.argv[2].split('.'): d = d[int(k)] if isinstance(d, list) else d[k]
print(d)" "$1" "$2"
}
feats() { echo "--feature audio=$1/audio --feature text=$1/text --feature video=$1/video"; }

# Low-dimensional modalities (16/16/12, signal rank 8) so that 10,000 clips pin the linear
# Bayes rule down: logistic regression, the well-specified model, is within 0.01 of it there.
MODS="--modality audio=16:2.2 --modality text=16:1.6 --modality video=12:1.2"

# ---- 1 + 2: one data set, test priors reversed -----------------------------------------------
S=$W/shift
# shellcheck disable=SC2086
"$MER" synth --out "$S" --n 10000 --test 4000 --seed 3 $MODS --test-priors 190,616,730,1038,1208,1248
bayes_cv=$(json_get "$S/synth.json" bayes_waf.labeled)
bayes_test=$(json_get "$S/synth.json" bayes_waf.test)
COMMON="--epochs 15 --hidden 32 --heads 4 --tokens 2 --dropout 0.3 --threads $T --no-plots"
for model in agt afusion; do
    # shellcheck disable=SC2046
    "$MER" train --labels "$S/labels.csv" $(feats "$S") --model "$model" $COMMON \
        --test "$S/test.txt" --out "$W/run-$model" 2>/dev/null | tail -1
    cv=$(json_get "$W/run-$model/metrics.json" mean.waf)
    "$PY" -c "import sys; cv, b = float(sys.argv[2]), float(sys.argv[3])
print(f'{sys.argv[1]}: CV WAF {cv:.4f}, Bayes rule {b:.4f}, gap {b - cv:.4f} (bar 0.03): ' + ('PASS' if b - cv <= 0.03 else 'FAIL'))" \
        "$model" "$cv" "$bayes_cv"
done

# shellcheck disable=SC2046
"$MER" predict --run "$W/run-agt" $(feats "$S") --list "$S/test.txt" --out "$W/none.csv" --prior none 2>/dev/null
# shellcheck disable=SC2046
"$MER" predict --run "$W/run-agt" $(feats "$S") --list "$S/test.txt" --out "$W/auto.csv" --prior auto 2>/dev/null | tee "$W/auto.txt"
w_none=$(waf_of "$S/test_labels.csv" "$W/none.csv")
w_auto=$(waf_of "$S/test_labels.csv" "$W/auto.csv")
"$PY" - "$S/test_labels.csv" "$W/auto.txt" "$w_none" "$w_auto" "$bayes_test" <<'EOF'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
freq = {}
for r in rows: freq[r["emotion"]] = freq.get(r["emotion"], 0) + 1 / len(rows)
est = {}
for tok in open(sys.argv[2]).read().split():
    if "=" in tok:
        k, v = tok.split("="); est[k] = float(v)
worst = max(abs(est[k] - freq[k]) for k in freq)
print("prior auto:", " ".join(f"{k} {est[k]:.3f}/{freq[k]:.3f}" for k in freq),
      f"(estimate/true); worst error {worst:.3f} (bar 0.05): " + ("PASS" if worst <= 0.05 else "FAIL"))
wn, wa, wb = map(float, sys.argv[3:6])
print(f"prior shift test WAF: none {wn:.4f}, auto {wa:.4f}, Bayes rule {wb:.4f}: "
      + ("PASS" if wa > wn else "FAIL"))
EOF

echo "Bayes rule WAF: shift set labeled $bayes_cv, test $bayes_test"
