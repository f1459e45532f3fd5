#!/usr/bin/env bash
# Install what mer needs from Debian's packages; installs only what is missing (idempotent).
#   scripts/install-deps.sh          build + test dependencies
#   scripts/install-deps.sh --peers  also the Python references and peers used by
#                                    `make parity`, `make bench` and the fixture scripts
set -euo pipefail

pkgs=(build-essential pkg-config clang libclang-rt-14-dev
      libopenblas-dev libopenblas0-pthread libdnnl-dev libcjson-dev
      libavformat-dev libavcodec-dev libavutil-dev libswresample-dev libswscale-dev
      libpng-dev libjpeg-dev ffmpeg)
if [[ "${1:-}" == "--peers" ]]; then
    pkgs+=(python3-torch python3-torchaudio python3-torchvision python3-numpy python3-pil
           python3-skimage python3-sklearn ffmpeg flac nodejs npm)
fi

missing=()
for p in "${pkgs[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done
if [[ ${#missing[@]} -eq 0 ]]; then
    exit 0
fi
echo "install-deps: installing ${missing[*]}" >&2
SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q >/dev/null
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
