#!/usr/bin/env bash
# check-isa.sh FILE...: the portable build's promise, checked on the machine code. The default
# build targets AVX2 + FMA; AVX-512 code is compiled per function (MER_AVX512, a target
# attribute) and only run after mer_cpu_features() says the CPU has it. So in each FILE (a
# binary, shared library or object), every instruction that needs AVX-512 -- EVEX-encoded, or
# naming a zmm or opmask register -- must sit in a function whose name contains "avx512".
# Prints the AVX-512 functions found (with --list) and each offending function; exits 1 if any
# instruction is outside, 2 on a usage error. MIN_AVX512_FUNCS=N also requires at least N
# dispatched functions (the kernels are really compiled in, not silently dropped).
set -euo pipefail
list=0
if [[ ${1:-} == --list ]]; then list=1; shift; fi
[[ $# -ge 1 ]] || { echo "usage: check-isa.sh [--list] FILE..." >&2; exit 2; }
command -v objdump >/dev/null || { echo "check-isa.sh: objdump not found (binutils)" >&2; exit 2; }
rc=0
for f in "$@"; do
    [[ -r $f ]] || { echo "check-isa.sh: $f: cannot read" >&2; exit 2; }
    # --insn-width keeps each instruction's bytes on one line; a legacy prefix may precede the
    # EVEX escape byte 0x62 (in 64-bit mode 0x62 as the opcode byte is always EVEX).
    out=$(objdump -d --insn-width=16 "$f" | awk -v list="$list" -v file="$f" '
        /^[0-9a-f]+ <.*>:$/ { fn = $2; gsub(/[<>:]/, "", fn); next }
        /^ *[0-9a-f]+:\t/ {
            n = split($0, col, "\t"); if (n < 3) next
            nb = split(col[2], b, " "); i = 1
            while (i <= nb && b[i] ~ /^(66|67|f2|f3|2e|3e|26|36|64|65)$/) i++
            if ((i <= nb && b[i] == "62") || col[3] ~ /%zmm|%k[0-7]/) {
                if (fn ~ /avx512/) good[fn]++
                else { bad[fn]++; if (!(fn in first)) first[fn] = col[3] }
            }
        }
        END {
            ng = 0; for (g in good) { ng++; if (list) printf "  avx512 ok: %s (%d instructions)\n", g, good[g] }
            nbad = 0
            for (x in bad) { nbad++; printf "%s: AVX-512 outside a dispatched function: %s (%d instructions, e.g. %s)\n", file, x, bad[x], first[x] }
            printf "%s: %d dispatched AVX-512 functions, %d offending\n", file, ng, nbad
        }')
    echo "$out"
    if grep -q "AVX-512 outside" <<<"$out"; then rc=1; fi
    ng=$(sed -n 's/.*: \([0-9]*\) dispatched AVX-512 functions.*/\1/p' <<<"$out" | tail -1)
    if [[ -n ${MIN_AVX512_FUNCS:-} && ${ng:-0} -lt $MIN_AVX512_FUNCS ]]; then
        echo "$f: only ${ng:-0} dispatched AVX-512 functions (expected at least $MIN_AVX512_FUNCS)"
        rc=1
    fi
done
exit $rc
