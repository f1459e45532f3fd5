#!/usr/bin/env bash
# The acceptance bar of `mer demo` on the bundled EmoDB (issue 5): leave-one-speaker-out WAF at
# least 0.72 over the 8 speakers, the whole command under 2 minutes. Uses a fresh output
# directory so feature extraction is timed too.
set -uo pipefail
cd "$(dirname "$0")/../.."
MER_BIN=${MER_BIN:-build/mer}
out=build/parity-demo
rm -rf "$out"
t0=$(date +%s.%N)
"$MER_BIN" demo --data data/emodb --out "$out" || { echo "FAIL demo exited non-zero"; exit 1; }
t1=$(date +%s.%N)
waf=$(/usr/bin/python3 -c "import json; print(json.load(open('$out/report/metrics.json'))['waf'])" 2>/dev/null ||
      grep -o '"waf": [0-9.]*' "$out/report/metrics.json" | head -1 | cut -d' ' -f2)
secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
echo "demo: LOSO WAF $waf (bar 0.72), $secs s (bar 120 s)"
ok=1
awk -v w="$waf" 'BEGIN { exit !(w >= 0.72) }' || { echo "FAIL WAF below 0.72"; ok=0; }
awk -v s="$secs" 'BEGIN { exit !(s < 120) }' || { echo "FAIL slower than 2 minutes"; ok=0; }
[[ $ok == 1 ]] && echo "ok   demo bar"
[[ $ok == 1 ]]
