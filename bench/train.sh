#!/usr/bin/env bash
# Training speed: 5 folds x 100 epochs of the MERTools `attention` model on a synthetic set shaped
# like MER2024 (5,030 clips; audio 1024-d, text 5120-d, video 768-d), `mer train` against the same
# protocol in PyTorch (bench/train_torch.py, OpenBLAS) at the same thread count, in the same run.
# PyTorch runs TORCH_EPOCHS (default 4) epochs per fold and its time is extrapolated linearly to
# EPOCHS (per-epoch cost is constant); set TORCH_EPOCHS=$EPOCHS for a full run. On a loaded
# machine the two wall times are taken at different moments: compare the CPU-time line too.
# Env: THREADS (2), FOLDS (5), EPOCHS (100), TORCH_EPOCHS (4), N (5030 clips).
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS=${THREADS:-2}; FOLDS=${FOLDS:-5}; EPOCHS=${EPOCHS:-100}; TORCH_EPOCHS=${TORCH_EPOCHS:-4}
N=${N:-5030}
BUILD=${BUILD:-build}
PY=/usr/bin/python3
DATA=$BUILD/bench-train/data-$N
make -s -j2 BUILD=$BUILD $BUILD/mer >/dev/null 2>&1 || { echo "bench train: build failed (make BUILD=$BUILD)"; exit 1; }
if [[ ! -f $DATA/labels.csv ]]; then
    $PY bench/train_data.py "$DATA.tmp" "$N" >/dev/null && rm -rf "$DATA" && mv "$DATA.tmp" "$DATA"
fi
RUN=$BUILD/bench-train/run
rm -rf "$RUN"
export OPENBLAS_NUM_THREADS=$THREADS OMP_NUM_THREADS=$THREADS MER_NO_PROGRESS=1
# Both sides run GEMMs in OpenMP threads (oneDNN in mer, PyTorch's intra-op pool); libgomp's
# default spin-waiting fights with mer's own worker pool on a busy 2-core machine (measured: 35x
# slower at 2 threads). Passive waiting is set for both peers alike; override by exporting it.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
# Both sides report their training time (data loading excluded). CPU seconds (user + sys, from
# /usr/bin/time) are printed too: on a shared machine they are the steadier measure. PyTorch's
# import + loading cost is removed from its per-epoch CPU time by differencing a 1-epoch run;
# mer's CPU time includes its loading (so its CPU ratio is conservative).
TIMEF=$BUILD/bench-train/time.txt
out=$(/usr/bin/time -o $TIMEF -f "%U %S" $BUILD/mer train --labels $DATA/labels.csv --feature audio=$DATA/audio \
      --feature text=$DATA/text --feature video=$DATA/video --model attention --folds $FOLDS --epochs $EPOCHS \
      --threads $THREADS --no-plots --out "$RUN" 2>/dev/null)
mer_cpu=$(awk '{print $1 + $2}' $TIMEF)
mer_s=$(sed -n 's/.*(\([0-9.]*\) s)$/\1/p' <<<"$out")
mer_waf=$(sed -n 's/.*WAF \([0-9.]*\) .*/\1/p' <<<"$out")
echo "mer     : $FOLDS folds x $EPOCHS epochs in ${mer_s} s wall, ${mer_cpu} s CPU incl. loading (mean held-out WAF $mer_waf)"
tout=$(/usr/bin/time -o $TIMEF -f "%U %S" $PY bench/train_torch.py "$DATA" "$THREADS" "$FOLDS" "$TORCH_EPOCHS")
t_cpu2=$(awk '{print $1 + $2}' $TIMEF)
tout1=$(/usr/bin/time -o $TIMEF -f "%U %S" $PY bench/train_torch.py "$DATA" "$THREADS" "$FOLDS" 1)
t_cpu1=$(awk '{print $1 + $2}' $TIMEF)
t_s=$(awk '{print $2}' <<<"$tout")
t_waf=$(awk '{print $6}' <<<"$tout")
t_full=$(awk -v s="$t_s" -v a="$TORCH_EPOCHS" -v b="$EPOCHS" 'BEGIN{printf "%.1f", s*b/a}')
echo "pytorch : $FOLDS folds x $TORCH_EPOCHS epochs in ${t_s} s wall -> ${t_full} s for $EPOCHS epochs (WAF $t_waf after $TORCH_EPOCHS)"
awk -v t="$t_full" -v m="$mer_s" -v th="$THREADS" 'BEGIN{printf "train attention, %d threads: mer is %.1fx faster than PyTorch in wall time (bar: 5x)\n", th, t/m}'
awk -v c1="$t_cpu1" -v c2="$t_cpu2" -v a="$TORCH_EPOCHS" -v b="$EPOCHS" -v m="$mer_cpu" -v th="$THREADS" \
    'BEGIN{per=(c2-c1)/(a-1); if (a>1) printf "train attention, %d threads: CPU time per epoch (all folds): PyTorch %.2f s, mer %.2f s incl. loading -> %.1fx\n", th, per, m/b, per*b/m}'
