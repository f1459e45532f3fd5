#!/usr/bin/env bash
# The include graph check (make test): every #include "..." in src/ and tools/ must follow an
# edge allowed by the table between the include-graph markers of docs/architecture.md.
# Includes resolve as the compiler resolves them (the including file's folder, then the -I
# folders: include, src, src/core). Usage: check-includes.sh [ROOT]; exits 1 on a violation,
# printing one line per offending include.
set -uo pipefail
root=${1:-$(cd "$(dirname "$0")/.." && pwd)}
cd "$root" || exit 2
doc=docs/architecture.md
declare -A allow
while IFS='|' read -r _ folder deps _; do
    folder=$(echo "$folder" | xargs)
    [[ -z "$folder" || "$folder" == folder || "$folder" == -* ]] && continue
    allow[$folder]=" $(echo "$deps" | xargs) "
done < <(sed -n '/<!-- include-graph: begin -->/,/<!-- include-graph: end -->/p' "$doc" | grep '^|')
if [[ ${#allow[@]} -eq 0 ]]; then
    echo "check-includes: no include-graph table in $doc"
    exit 1
fi

folder_of() { # path -> its layer folder (src/X, tools, include) in $folder
    case "$1" in
        include/*) folder=include ;;
        tools/*) folder=tools ;;
        src/*/*) folder=${1#src/}; folder=src/${folder%%/*} ;;
        *) folder="?" ;;
    esac
}

normalise() { # a relative path without . and .. components, in $norm
    local IFS=/ part out=()
    for part in $1; do
        case "$part" in
            ""|.) ;;
            ..) [[ ${#out[@]} -gt 0 ]] && unset 'out[${#out[@]}-1]' ;;
            *) out+=("$part") ;;
        esac
    done
    norm="${out[*]}"
}

bad=0
files=0
edges=0
while IFS= read -r f; do
    files=$((files + 1))
    folder_of "$f"
    from=$folder
    if [[ -z "${allow[$from]+x}" ]]; then
        echo "$f: folder $from is not in the include-graph table of $doc"
        bad=$((bad + 1))
        continue
    fi
    dir=$(dirname "$f")
    while IFS=: read -r line inc; do
        edges=$((edges + 1))
        target=""
        for c in "$dir/$inc" "include/$inc" "src/$inc" "src/core/$inc"; do
            if [[ -f "$c" ]]; then normalise "$c"; target=$norm; break; fi
        done
        if [[ -z "$target" ]]; then
            echo "$f:$line: #include \"$inc\" does not resolve to a file of the tree"
            bad=$((bad + 1))
            continue
        fi
        folder_of "$target"
        to=$folder
        [[ "$to" == "$from" || "${allow[$from]}" == *" $to "* ]] && continue
        echo "$f:$line: #include \"$inc\" ($to) points against the layers: $from may include" \
             "only$(echo "${allow[$from]}" | sed 's/ $//') (table in $doc)"
        bad=$((bad + 1))
    done < <(grep -n '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "$f" |
             sed -E 's/^([0-9]+):[[:space:]]*#[[:space:]]*include[[:space:]]*"([^"]+)".*/\1:\2/')
done < <(find src tools -type f \( -name '*.c' -o -name '*.h' \) | sort)
if [[ $bad -ne 0 ]]; then
    echo "check-includes: $bad include(s) against the layers"
    exit 1
fi
echo "check-includes: $files files, $edges includes, all along the layers"
