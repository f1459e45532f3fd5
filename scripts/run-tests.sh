#!/usr/bin/env bash
# The whole test suite (what `make test` and CI run):
#   1. unit + CLI tests of the optimised build
#   2. the same tests under AddressSanitizer + UndefinedBehaviorSanitizer + LeakSanitizer, and
#      a planted defect of each kind, which must be caught
#   1b. the portable build: no AVX-512 instruction outside the run-time dispatched functions
#   2b. on an AVX-512 CPU, the unit tests (not the CLI ones) again with MER_NO_AVX512=1: the AVX2
#       kernels (on other CPUs the first stage already ran them)
#   3. each libFuzzer target for a bounded time on its committed seed corpus
# Prints one summary line per stage and "N passed, N failed" last; exits non-zero on failure.
set -uo pipefail
cd "$(dirname "$0")/.."
FUZZ_SECONDS=${FUZZ_SECONDS:-20}
JOBS=${JOBS:-$(nproc)}
passed=0
failed=0

count() { # add the "N passed, N failed" line of a log to the totals
    local line
    line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$1" | tail -1)
    if [[ -z "$line" ]]; then
        echo "  (no summary line: counted as 1 failure)"
        failed=$((failed + 1))
        return
    fi
    passed=$((passed + $(echo "$line" | cut -d' ' -f1)))
    failed=$((failed + $(echo "$line" | cut -d' ' -f3)))
}

# Each stage's wall time and the CPU time (user + sys) of the processes it ran, printed when the
# next stage starts and at the end: what the 15-minute CI bar is judged on when the machine is
# shared (wall time then depends on the load; CPU time much less).
stage_name=""
stage_t0=0
stage_cpu0=0
children_cpu() { # cpu=user + sys seconds of all finished children so far (bash `times`, line 2;
    # run in this shell, not in a $(...) subshell, which would report its own children)
    times >build/.times
    cpu=$(awk 'NR == 2 { n = split($0, f, " "); t = 0
        for (i = 1; i <= n; i++) { split(f[i], a, "m"); sub("s", "", a[2]); t += a[1] * 60 + a[2] }
        printf "%.1f", t }' build/.times)
}
stage() { # stage NAME: report the previous one, start NAME
    local now cpu
    now=$(date +%s.%N)
    children_cpu
    if [[ -n "$stage_name" ]]; then
        awk -v n="$stage_name" -v a="$stage_t0" -v b="$now" -v c="$stage_cpu0" -v d="$cpu" \
            'BEGIN { printf "   (stage %s: %.0f s wall, %.0f s cpu)\n", n, b - a, d - c }'
    fi
    stage_name=${1%% (*}
    stage_t0=$now
    stage_cpu0=$cpu
    [[ -n "$1" ]] && echo "== $1"
    return 0
}

mkdir -p build
stage "build"
if ! make -j"$JOBS" all >build/build.log 2>&1; then
    tail -30 build/build.log
    echo "0 passed, 1 failed"
    exit 1
fi

stage "include graph (docs/architecture.md)"
if bash scripts/check-includes.sh; then
    passed=$((passed + 1))
else
    echo "FAIL include graph"
    failed=$((failed + 1))
fi
# ... and the check can fail: an include pointing up the layers, planted in a copy, must be caught
planted=build/include-check-selftest
rm -rf "$planted"; mkdir -p "$planted"
cp -r src tools include docs "$planted"/
echo '#include "train/train.h"' >>"$planted"/src/nn/nn.h
if bash scripts/check-includes.sh "$planted" >/dev/null; then
    echo "FAIL include graph self-test: a planted src/nn -> src/train include was not caught"
    failed=$((failed + 1))
else
    passed=$((passed + 1))
fi
rm -rf "$planted"

stage "portable build (scripts/check-isa.sh: AVX-512 only in dispatched functions)"
if MIN_AVX512_FUNCS=8 bash scripts/check-isa.sh build/mer build/libmer.so; then
    passed=$((passed + 1))
else
    echo "FAIL portable build: AVX-512 instructions outside the functions chosen at run time"
    failed=$((failed + 1))
fi
# ... and the check can fail: a loop compiled with -mavx512f, not dispatched, must be caught
planted=build/isa-check-selftest.o
if printf 'void planted(float *x, int n) { for (int i = 0; i < n; i++) x[i] = x[i] * 2.0f + 1.0f; }\n' |
       cc -O3 -mavx512f -mprefer-vector-width=512 -x c -c - -o "$planted" 2>/dev/null &&
   ! bash scripts/check-isa.sh "$planted" >/dev/null; then
    passed=$((passed + 1))
else
    echo "FAIL check-isa self-test: a planted -mavx512f function was not caught"
    failed=$((failed + 1))
fi
rm -f "$planted"

stage "exported symbols (scripts/check-exports.sh: libmer.so exports mer.h's MER_API and nothing else)"
if bash scripts/check-exports.sh build/libmer.so include/mer.h; then
    passed=$((passed + 1))
else
    echo "FAIL exported symbols"
    failed=$((failed + 1))
fi
# ... and the check can fail both ways: against a header that lost one declaration and gained
# one the library lacks, it must name both
planted=build/exports-check-selftest.h
sed -e '/^MER_API const char \*mer_status_str(/d' include/mer.h >"$planted"
echo 'MER_API void mer_planted_missing(void);' >>"$planted"
out=$(bash scripts/check-exports.sh build/libmer.so "$planted" || true)
if grep -q '^  mer_status_str$' <<<"$out" && grep -q '^  mer_planted_missing$' <<<"$out"; then
    passed=$((passed + 1))
else
    echo "FAIL check-exports self-test: a planted extra export and missing function were not both caught"
    failed=$((failed + 1))
fi
rm -f "$planted"

stage "unit and CLI tests"
MER_BIN=build/mer build/mer_tests | tee build/unit.log | grep -v '^ok ' || true
count build/unit.log
# a crash and a hang, planted, name their test and leave the runner standing
for plant in "crash|crashed: signal 11" "hang|timed out"; do
    IFS='|' read -r kind want <<<"$plant"
    out=$(MER_PLANT=$kind MER_TEST_TIMEOUT=3 build/mer_tests harness_planted_defect 2>&1)
    if grep -q "^FAIL harness_planted_defect.*$want" <<<"$out" && grep -q '^0 passed, 1 failed' <<<"$out"; then
        passed=$((passed + 1))
    else
        echo "FAIL harness self-test: a planted $kind was not reported as '$want'"
        tail -5 <<<"$out"
        failed=$((failed + 1))
    fi
done

stage "sanitizers (address, undefined, leaks)"
# Sanitizer findings exit with codes of their own, never the CLI's 1 (error) or 2 (usage), so a
# CLI test expecting a clean failure cannot pass on a sanitizer report: 86 AddressSanitizer and
# UndefinedBehaviorSanitizer (combined in one runtime, they share the exit code), 87
# LeakSanitizer. Each test runs in its own process (tests/main.c), so a leak fails the test
# that made it.
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:exitcode=86
export LSAN_OPTIONS=exitcode=87
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:exitcode=86
if make -j"$JOBS" asan >build/asan-build.log 2>&1; then
    MER_BIN=build/asan/mer MER_SANITIZE=1 build/asan/mer_tests | tee build/asan.log | grep -v '^ok ' || true
    count build/asan.log
    # ... and each kind of defect, planted, is caught and named
    for plant in "leak|LeakSanitizer: memory leaked|detected memory leaks" \
                 "heap|exit 86|heap-buffer-overflow\\|insufficient space" "ub|exit 86|signed integer overflow"; do
        IFS='|' read -r kind want report <<<"$plant"
        out=$(MER_PLANT=$kind build/asan/mer_tests harness_planted_defect 2>&1)
        if grep -q "^FAIL harness_planted_defect.*$want" <<<"$out" && grep -q "$report" <<<"$out"; then
            passed=$((passed + 1))
        else
            echo "FAIL harness self-test: a planted $kind was not reported as '$want'"
            tail -5 <<<"$out"
            failed=$((failed + 1))
        fi
    done
else
    tail -30 build/asan-build.log
    failed=$((failed + 1))
fi

stage "unit tests without AVX-512 (MER_NO_AVX512=1: the AVX2 kernels)"
unset ASAN_OPTIONS LSAN_OPTIONS UBSAN_OPTIONS
# Every AVX-512 kernel is chosen at run time (mer_cpu_features), so the same binary runs the
# AVX2 paths with the variable set. On a CPU without AVX-512 the first stage already did.
if grep -qw avx512f /proc/cpuinfo 2>/dev/null; then
    MER_NO_AVX512=1 OPENBLAS_CORETYPE=Haswell MER_BIN=build/mer build/mer_tests --skip cli | tee build/noavx512.log | grep -v '^ok ' || true
    count build/noavx512.log
else
    echo "  skipped: this CPU has no AVX-512, the unit and CLI tests above ran the AVX2 kernels"
fi

stage "install (make install into a temporary prefix; example program and CLI outside the tree)"
bash scripts/test-install.sh 2>&1 | tee build/install.log | grep -v '^ok ' || true
count build/install.log

stage "python (python/mer over build/libmer.so, against the CLI)"
if /usr/bin/python3 -c 'import numpy' 2>/dev/null; then
    MER_LIB=build/libmer.so /usr/bin/python3 python/tests/test_mer.py build/mer 2>&1 | tee build/python.log | grep -v '^ok ' || true
    count build/python.log
else
    echo "  SKIPPED: /usr/bin/python3 has no numpy (scripts/install-deps.sh installs python3-numpy)"
fi

stage "fuzzers (${FUZZ_SECONDS}s each)"
# all targets built first, in parallel (the parsers compiled once); a target that fails to
# build is reported by its own make below
make -j"$JOBS" fuzz >build/fuzz-build.log 2>&1 || true
for f in fuzz/fuzz_*.c; do
    [[ -e "$f" ]] || continue
    name=$(basename "$f" .c)
    corpus=fuzz/corpus/${name#fuzz_}
    work=build/fuzz/work-$name
    if ! make build/fuzz/"$name" >build/fuzz-build-"$name".log 2>&1; then
        echo "FAIL $name (does not build)"; tail -20 build/fuzz-build-"$name".log
        failed=$((failed + 1))
        continue
    fi
    rm -rf "$work"; mkdir -p "$work"
    if build/fuzz/"$name" -max_total_time="$FUZZ_SECONDS" -rss_limit_mb=2048 -timeout=10 \
         -artifact_prefix=build/fuzz/ "$work" "$corpus" >build/fuzz/"$name".log 2>&1; then
        echo "ok   $name ($(grep -oE '^Done [0-9]+ runs' build/fuzz/"$name".log | tail -1))"
        passed=$((passed + 1))
    else
        echo "FAIL $name"; tail -20 build/fuzz/"$name".log
        failed=$((failed + 1))
    fi
done

stage ""
echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
