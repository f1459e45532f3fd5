#!/usr/bin/env bash
# `make install` into a fresh temporary prefix, then, from a directory outside the repository:
# build tests/install/example.c against the installed pkg-config file (shared and static), run
# it, run the installed CLI on the bundled models, and import the Python package from the
# prefix's libmer.so. Prints "N passed, N failed" last (scripts/run-tests.sh counts it).
set -uo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
prefix=$(mktemp -d /tmp/mer-prefix.XXXXXX)
work=$(mktemp -d /tmp/mer-outside.XXXXXX)
trap 'rm -rf "$prefix" "$work"' EXIT
passed=0
failed=0
check() { # name, command...
    local name=$1
    shift
    if out=$("$@" 2>&1); then
        echo "ok   install: $name"
        passed=$((passed + 1))
    else
        echo "FAIL install: $name"
        echo "$out" | tail -15 | sed 's/^/    /'
        failed=$((failed + 1))
    fi
}
check "make install PREFIX=$prefix" make -C "$src" -s install PREFIX="$prefix"
cd "$work"
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
check "pkg-config mer" bash -c "pkg-config --modversion mer | grep -qx '$(sed -n 's/^#define MER_VERSION "\(.*\)"/\1/p' "$src/include/mer.h")'"
check "soname" bash -c "readelf -d '$prefix/lib/libmer.so' | grep -q 'SONAME.*libmer.so.[0-9]'"
check "example (shared) builds" bash -c "cc -o example '$src/tests/install/example.c' \$(pkg-config --cflags --libs mer) -Wl,-rpath,'$prefix/lib'"
check "example (shared) finds share/mer" bash -c "./example '$src/tests/fixtures/torch/hubert_base_legacy' | tee /dev/stderr | grep -q '^face models: $prefix/share/mer/models/face-api' && ./example | grep -q ' ok$'"
check "example links libmer.so" bash -c "ldd ./example | grep -q '$prefix/lib/libmer.so'"
# static: libmer.a plus its dependencies' shared libraries (Debian ships no static FFmpeg)
check "example (static) builds and runs" bash -c "cc -o example_static '$src/tests/install/example.c' \$(pkg-config --cflags mer) '$prefix/lib/libmer.a' \$(pkg-config --libs \$(pkg-config --print-requires-private mer)) \$(pkg-config --variable=libs_private mer) && ./example_static | grep -q ' ok$' && ! ldd ./example_static | grep -q libmer"
check "installed mer faces outside the tree" bash -c "'$prefix/bin/mer' faces '$src/tests/fixtures/faces/astronaut_crop.png' 2>&1 | grep -qi 'happy' || '$prefix/bin/mer' faces '$src/tests/fixtures/faces/astronaut_crop.png'"
check "MER_DATA_DIR wins" bash -c "mkdir -p d/models && cp -R '$prefix/share/mer/models/face-api' d/models/ && MER_DATA_DIR=\$PWD/d ./example | grep -q \"face models: \$PWD/d/models/face-api\""
if /usr/bin/python3 -c 'import numpy, pip' 2>/dev/null; then
    # pip builds in place: install from a copy so the source tree stays clean
    check "pip install ./python (offline)" bash -c "cp -R '$src/python' pysrc && /usr/bin/python3 -m pip install -q --no-index --no-deps --no-build-isolation --target pylib ./pysrc"
    check "python: import mer outside the tree, libmer.so from the prefix" bash -c "LD_LIBRARY_PATH='$prefix/lib' PYTHONPATH=pylib /usr/bin/python3 -c 'import mer; assert mer.lib._name == \"libmer.so.0\", mer.lib._name; print(mer.data_path(\"models/face-api\")); print(len(mer.Checkpoint(\"$src/tests/fixtures/torch/clip_legacy\")))' | grep -q '^$prefix/share/mer/models/face-api'"
fi
echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
