#!/usr/bin/env bash
# CLIP ViT-L/14 images per second: `mer extract visual` (exact fp32 path, and the --precision bf16 speed
# mode) against PyTorch (OpenBLAS, fp32) at the same thread count, ratios printed (bar: 2.5x),
# and the deviation of --precision bf16 from fp32. See bench/clip_peer.py for the method.
#   THREADS (default: online CPUs), IMAGES (default 16), REPS (default 3), CONFIG (default L/14)
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS=${THREADS:-$(nproc)}
MER_BIN=${MER_BIN:-build/mer}
[[ -x "$MER_BIN" ]] || make -j"$(nproc)" all >/dev/null
# torch's BLAS is the system libblas.so.3 (OpenBLAS with libopenblas0-pthread): same threads
export OPENBLAS_NUM_THREADS=$THREADS OMP_NUM_THREADS=$THREADS
exec /usr/bin/python3 bench/clip_peer.py --config "${CONFIG:-L/14}" --threads "$THREADS" \
    --images "${IMAGES:-16}" --reps "${REPS:-3}" --mer "$MER_BIN"
