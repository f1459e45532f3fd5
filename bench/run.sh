#!/usr/bin/env bash
# `make bench`: every benchmark in bench/*.sh, each printing its numbers and the ratio against a
# peer measured in the same run. The peers (PyTorch with OpenBLAS, Node face-api, ...) are
# installed by `scripts/install-deps.sh --peers`. Select some with BENCH="gemm hubert".
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh --peers
status=0
for f in bench/*.sh; do
    name=$(basename "$f" .sh)
    [[ "$name" == run ]] && continue
    if [[ -n "${BENCH:-}" && " $BENCH " != *" $name "* ]]; then continue; fi
    echo "== bench $name"
    bash "$f" || { echo "bench $name failed"; status=1; }
done
exit $status
