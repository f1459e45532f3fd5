#!/usr/bin/env bash
# agt training speed: `mer train --model agt` against the same model and protocol in PyTorch
# (bench/agt_torch.py) on the MER2024-shaped synthetic set (mer synth --preset mer2024: 5,030
# clips; 1024-d audio, 5120-d text, 768-d video), 5 folds, same thread count. Each side runs
# E1 and E2 epochs; (time(E2) - time(E1)) / (5 * (E2 - E1)) is the cost of one epoch (train +
# held-out evaluation) with loading and set-up cancelled. Prints epochs/s of both and the
# ratio (bar: >= 3x).
# Usage: bench/agt.sh   (MER=build/mer THREADS=2 E1=1 E2=3 PY=/usr/bin/python3)
set -euo pipefail
cd "$(dirname "$0")/.."
MER=${MER:-build/mer}
T=${THREADS:-2}
E1=${E1:-1}
E2=${E2:-3}
PY=${PY:-/usr/bin/python3}
W=${W:-build/bench-agt}
mkdir -p "$W"
if [[ ! -f "$W/data/labels.csv" ]]; then
    "$MER" synth --preset mer2024 --out "$W/data" --seed 1 >/dev/null
fi
D=$W/data
now() { date +%s.%N; }

mer_run() { # epochs -> seconds
    local t0 t1
    rm -rf "$W/run"
    t0=$(now)
    "$MER" train --labels "$D/labels.csv" --feature audio="$D/audio" --feature text="$D/text" \
        --feature video="$D/video" --model agt --hidden 128 --heads 4 --layers 1 --tokens 4 \
        --dropout 0.3 --folds 5 --epochs "$1" --threads "$T" --no-plots --checkpoint-every 0 \
        --out "$W/run" >/dev/null 2>&1
    t1=$(now)
    "$PY" -c "import sys; print(float(sys.argv[2]) - float(sys.argv[1]))" "$t0" "$t1"
}
torch_run() { # epochs -> seconds (the script times its training loops)
    OMP_NUM_THREADS=$T "$PY" bench/agt_torch.py "$D" --epochs "$1" --folds 5 --threads "$T" \
        --hidden 128 --heads 4 --layers 1 --tokens 4 --dropout 0.3 | awk '{print $6}'
}

m1=$(mer_run "$E1"); m2=$(mer_run "$E2")
p1=$(torch_run "$E1"); p2=$(torch_run "$E2")
"$PY" - "$m1" "$m2" "$p1" "$p2" "$E1" "$E2" "$T" <<'EOF'
import sys
m1, m2, p1, p2 = map(float, sys.argv[1:5]); e1, e2, t = int(sys.argv[5]), int(sys.argv[6]), sys.argv[7]
me = (m2 - m1) / (5 * (e2 - e1)); pe = (p2 - p1) / (5 * (e2 - e1))
print(f"agt training, MER2024-shaped synthetic set, 5 folds, {t} threads: "
      f"mer {1 / me:.2f} epochs/s ({me:.3f} s/epoch), PyTorch {1 / pe:.2f} epochs/s "
      f"({pe:.3f} s/epoch; loops only), ratio {pe / me:.2f}x (bar >= 3x)")
EOF
