#!/usr/bin/env bash
# `make parity`: full-size exactness checks against independent PyTorch references, random
# weights at the real configurations (slow; needs /usr/bin/python3 with torch, see
# scripts/install-deps.sh --peers). Each line prints its checks; the exit code is non-zero if
# any failed.
set -uo pipefail
cd "$(dirname "$0")/../.."
export MER_BIN=${MER_BIN:-build/mer}
status=0
run() { echo "== parity $1"; shift; "$@" || status=1; }
run clip /usr/bin/python3 tests/parity/clip_parity.py --configs B/32,L/14
run faces bash tests/parity/faces_parity.sh
run hubert /usr/bin/python3 tests/parity/hubert_parity.py --mer "$MER_BIN"
run hubert-int8 /usr/bin/python3 tests/parity/hubert_int8.py --mer "$MER_BIN"
run speech_train /usr/bin/python3 tests/parity/speech_train_parity.py --mer-tests build/mer_tests
run train bash tests/parity/train_parity.sh
run text bash -c "bash bench/text_build.sh && /usr/bin/python3 tests/parity/text_parity.py --mer $MER_BIN"
run demo bash tests/parity/demo_bar.sh
exit $status
