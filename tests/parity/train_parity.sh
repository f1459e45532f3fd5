#!/usr/bin/env bash
# The `attention` fusion model against PyTorch: regenerate the reference (MERTools' Attention in
# torch, 20 Adam steps) and check it equals the committed fixture, then run the C comparison.
set -euo pipefail
cd "$(dirname "$0")/../.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
/usr/bin/python3 tests/fixtures/train/make_attention_ref.py "$tmp/ref.safetensors" >/dev/null
if cmp -s "$tmp/ref.safetensors" tests/fixtures/train/attention_ref.safetensors; then
    echo "train: regenerated torch reference equals the committed fixture"
else
    echo "train: regenerated torch reference differs from the committed fixture (torch version?)"
fi
tests_bin=$(dirname "${MER_BIN:-build/mer}")/mer_tests
"$tests_bin" train_attention_matches_torch
