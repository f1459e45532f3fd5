#!/usr/bin/env bash
# GEMM: each compiled-in backend on the encoders' shapes at 1 and 2 threads; the last column
# but one is the default backend's rate over the best library's (the bar: >= 0.90 everywhere).
set -euo pipefail
cd "$(dirname "$0")/.."
for t in 1 2; do
    build/mer bench gemm --threads "$t" --reps 7
done
