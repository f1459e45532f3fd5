#!/usr/bin/env bash
# check-exports.sh LIB [HEADER]: the shared library exports the public API and nothing else.
# libmer is built with -fvisibility=hidden and MER_API (default visibility) on each function of
# include/mer.h, so `nm -D --defined-only LIB` must list exactly the functions HEADER declares
# with MER_API: an exported symbol that the header does not declare (a mer__ internal, a helper
# that lost its static, an OpenMP named critical) fails, and so does a declared function the
# library does not export (a missing MER_API or definition). Exits 1 on a mismatch (each named),
# 2 on a usage error.
set -euo pipefail
lib=${1:-}
header=${2:-include/mer.h}
[[ -n $lib && -r $lib && -r $header ]] || { echo "usage: check-exports.sh LIB [HEADER]" >&2; exit 2; }
command -v nm >/dev/null || { echo "check-exports.sh: nm not found (binutils)" >&2; exit 2; }
exported=$(nm -D --defined-only "$lib" | awk 'NF >= 3 { print $3 }' | sed 's/@.*//' | sort -u)
# the name before the first '(' of each declaration that starts with MER_API (joined lines)
declared=$(awk '/^MER_API/ { decl = $0; while (decl !~ /\(/ && (getline line) > 0) decl = decl " " line;
                            sub(/\(.*/, "", decl); n = split(decl, w, /[ *]+/); print w[n] }' "$header" | sort -u)
rc=0
extra=$(comm -23 <(echo "$exported") <(echo "$declared"))
missing=$(comm -13 <(echo "$exported") <(echo "$declared"))
if [[ -n $extra ]]; then
    echo "check-exports.sh: $lib exports symbols that $header does not declare with MER_API:"
    echo "$extra" | sed 's/^/  /'
    rc=1
fi
if [[ -n $missing ]]; then
    echo "check-exports.sh: $header declares functions that $lib does not export:"
    echo "$missing" | sed 's/^/  /'
    rc=1
fi
[[ $rc == 0 ]] && echo "check-exports.sh: $lib exports the $(echo "$declared" | wc -l) functions of $header, nothing else"
exit $rc
