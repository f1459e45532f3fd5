#!/usr/bin/env bash
# Install what mer needs from Debian's packages; installs only what is missing (idempotent).
#   scripts/install-deps.sh          build + test dependencies
#   scripts/install-deps.sh --peers  also the Python references and peers used by
#                                    `make parity`, `make bench` and the fixture scripts
# MER_DEPS_DRY_RUN=1 prints what would be installed and installs nothing.
#
# Each dependency is checked by what it provides (a command, a Python module of
# /usr/bin/python3, a pkg-config module), not only by Debian package name, so tools that came
# from elsewhere count: a Node.js and npm installed from nodejs.org or NodeSource are used as
# they are (Debian's npm package would conflict with them), and Node is installed from Debian
# only when node and npm are both missing.
set -euo pipefail

have_cmd() { command -v "$1" >/dev/null 2>&1; }
# find_spec locates a module without importing it (importing torch takes seconds)
have_py() { /usr/bin/python3 -c "import importlib.util as u, sys; sys.exit(u.find_spec('$1') is None)" >/dev/null 2>&1; }
have_pc() { pkg-config --exists "$1" 2>/dev/null; }
have_deb() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

missing=()
need() { # package, check...: the package is needed unless the check succeeds
    local pkg=$1
    shift
    if ! "$@"; then missing+=("$pkg"); fi
}

need build-essential have_cmd cc
need build-essential have_cmd make
need pkg-config have_cmd pkg-config
need clang have_cmd clang
need libclang-rt-14-dev have_deb libclang-rt-14-dev
need libopenblas-dev have_pc openblas
need libopenblas0-pthread have_deb libopenblas0-pthread
need libdnnl-dev test -f /usr/include/dnnl.h
need libcjson-dev have_pc libcjson
need libavformat-dev have_pc libavformat
need libavcodec-dev have_pc libavcodec
need libavutil-dev have_pc libavutil
need libswresample-dev have_pc libswresample
need libswscale-dev have_pc libswscale
need libpng-dev have_pc libpng
need libjpeg-dev have_pc libjpeg
need ffmpeg have_cmd ffmpeg
# make test: the Python package's tests and `pip install ./python` (scripts/test-install.sh)
need python3-numpy have_py numpy
need python3-pip have_py pip
need python3-setuptools have_py setuptools
if [[ "${1:-}" == "--peers" ]]; then
    need python3-torch have_py torch
    need python3-torchaudio have_py torchaudio
    need python3-torchvision have_py torchvision
    need python3-pil have_py PIL
    need python3-skimage have_py skimage
    need python3-sklearn have_py sklearn
    need python3-onnx have_py onnx
    need flac have_cmd flac
    if ! have_cmd node && ! have_cmd npm; then
        missing+=(nodejs npm)
    elif ! have_cmd node || ! have_cmd npm; then
        echo "install-deps: found $(command -v node || command -v npm) but not $(have_cmd node && echo npm || echo node);" \
             "install the matching one with the Node.js you have (Debian's nodejs/npm would conflict with it)" >&2
        exit 1
    fi
fi

# one package may be listed by several checks
mapfile -t missing < <(printf '%s\n' "${missing[@]+"${missing[@]}"}" | awk 'NF && !seen[$0]++')
if [[ ${#missing[@]} -eq 0 ]]; then
    exit 0
fi
if [[ -n "${MER_DEPS_DRY_RUN:-}" ]]; then
    echo "install-deps: would install ${missing[*]}"
    exit 0
fi
echo "install-deps: installing ${missing[*]}" >&2
SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q >/dev/null
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
