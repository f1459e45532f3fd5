#!/usr/bin/env bash
# Faces parity: run the original @vladmandic/face-api (Node, tfjs WASM) afresh on the fixture
# images and check mer against that output (boxes 1 px, scores and probabilities 1e-3), without
# touching the committed tests/fixtures/faces/expected.json. Needs node + npm.
set -euo pipefail
cd "$(dirname "$0")/../.."
NODE_DIR=tests/fixtures/faces/node
if [[ ! -d "$NODE_DIR/node_modules/@vladmandic/face-api" ]]; then
    (cd "$NODE_DIR" && npm ci --no-audit --no-fund >/dev/null)
fi
out=$(mktemp /tmp/mer-faces-parity-XXXXXX.json)
trap 'rm -f "$out"' EXIT
/usr/bin/python3 tests/fixtures/faces/make_faces_fixture.py --out "$out" >/dev/null
MER_FACES_EXPECTED="$out" "${MER_TESTS:-build/mer_tests}" faces_match_faceapi
