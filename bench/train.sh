#!/usr/bin/env bash
# Training speed: 5 folds x 100 epochs of the MERTools `attention` model on a synthetic set shaped
# like MER2024 (5,030 clips; audio 1024-d, text 5120-d, video 768-d), `mer train` against the same
# protocol in PyTorch (bench/train_torch.py, OpenBLAS) at the same thread count, in the same run.
# PyTorch runs TORCH_EPOCHS (default 10) epochs per fold and its time is extrapolated linearly to
# EPOCHS (per-epoch cost is constant); set TORCH_EPOCHS=$EPOCHS for a full run.
# Env: THREADS (2), FOLDS (5), EPOCHS (100), TORCH_EPOCHS (10), N (5030 clips).
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS=${THREADS:-2}; FOLDS=${FOLDS:-5}; EPOCHS=${EPOCHS:-100}; TORCH_EPOCHS=${TORCH_EPOCHS:-10}
N=${N:-5030}
BUILD=${BUILD:-build}
PY=/usr/bin/python3
DATA=$BUILD/bench-train/data-$N
make -s -j2 BUILD=$BUILD $BUILD/mer >/dev/null
if [[ ! -f $DATA/labels.csv ]]; then
    $PY bench/train_data.py "$DATA.tmp" "$N" >/dev/null && rm -rf "$DATA" && mv "$DATA.tmp" "$DATA"
fi
RUN=$BUILD/bench-train/run
rm -rf "$RUN"
export OPENBLAS_NUM_THREADS=$THREADS OMP_NUM_THREADS=$THREADS MER_NO_PROGRESS=1
out=$($BUILD/mer train --labels $DATA/labels.csv --feature audio=$DATA/audio --feature text=$DATA/text \
      --feature video=$DATA/video --model attention --folds $FOLDS --epochs $EPOCHS --threads $THREADS \
      --no-plots --out "$RUN" 2>/dev/null)
mer_s=$(sed -n 's/.*(\([0-9.]*\) s)$/\1/p' <<<"$out")
mer_waf=$(sed -n 's/.*WAF \([0-9.]*\) .*/\1/p' <<<"$out")
echo "mer     : $FOLDS folds x $EPOCHS epochs in ${mer_s} s (mean held-out WAF $mer_waf)"
tout=$($PY bench/train_torch.py "$DATA" "$THREADS" "$FOLDS" "$TORCH_EPOCHS")
t_s=$(awk '{print $2}' <<<"$tout")
t_waf=$(awk '{print $6}' <<<"$tout")
t_full=$(awk -v s="$t_s" -v a="$TORCH_EPOCHS" -v b="$EPOCHS" 'BEGIN{printf "%.1f", s*b/a}')
echo "pytorch : $FOLDS folds x $TORCH_EPOCHS epochs in ${t_s} s -> ${t_full} s for $EPOCHS epochs (WAF $t_waf after $TORCH_EPOCHS)"
awk -v t="$t_full" -v m="$mer_s" -v th="$THREADS" 'BEGIN{printf "train attention, %d threads: mer is %.1fx faster than PyTorch (bar: 5x)\n", th, t/m}'
