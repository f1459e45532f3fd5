#!/usr/bin/env bash
# Peak memory of the streaming paths (issue #16, docs/safety.md): `mer faces` and `mer extract
# visual` on 60 s of 1080p video, `mer extract acoustic` on 2 hours of audio. Prints the peak RSS
# (getrusage via /usr/bin/time), the bar, and the peak as a multiple of the input it would take
# to hold every decoded frame / sample (the pre-streaming cost). Media are made once with ffmpeg
# into build/bench-media/. Usage: bash bench/memory.sh [MER_BIN]
set -uo pipefail
cd "$(dirname "$0")/.."
MER=${1:-build/mer}
D=build/bench-media
mkdir -p "$D"
V=$D/testsrc-1080p-60s.mp4
A=$D/sine-2h.flac
[[ -s $V ]] || ffmpeg -v error -y -f lavfi -i testsrc=size=1920x1080:rate=25 -t 60 -pix_fmt yuv420p \
    -c:v libx264 -preset ultrafast "$V" || { echo "cannot make $V"; exit 1; }
[[ -s $A ]] || ffmpeg -v error -y -f lavfi -i "sine=frequency=220:sample_rate=16000:duration=7200" \
    -ac 1 -c:a flac "$A" || { echo "cannot make $A"; exit 1; }
CLIP=${CLIP_MODEL:-tests/fixtures/clip/tiny_clip}
weights_mb=$(du -m --apparent-size "$CLIP"/*.safetensors 2>/dev/null | awk '{s+=$1} END {print s+0}')
fps=${FPS:-2}
frames=$((60 * fps))
frame_mb=$((1920 * 1080 * 3 / 1048576))
fail=0
peak() { # label, bar in MB, what-all-decoded-would-take in MB, command...
    local label=$1 bar=$2 full=$3
    shift 3
    local log
    log=$(mktemp)
    if ! /usr/bin/time -f "%M %e" -o "$log" "$@" >/dev/null 2>"$log.err"; then
        echo "FAIL $label: $(tail -1 "$log.err")"
        fail=1
        rm -f "$log" "$log.err"
        return
    fi
    read -r kb secs <"$log"
    local mb=$((kb / 1024))
    printf '%-44s peak %5d MB  bar %5d MB  (%s)  %.2fx of holding it all (%d MB)  %.1f s\n' "$label" "$mb" "$bar" \
        "$([[ $mb -lt $bar ]] && echo ok || echo OVER)" "$(echo "$mb / $full" | bc -l)" "$full" "$secs"
    [[ $mb -lt $bar ]] || fail=1
    rm -f "$log" "$log.err"
}
echo "peak memory (bars from issue #16; 'holding it all' = every sampled RGB frame or decoded sample)"
peak "faces 60 s 1080p, --fps $fps ($frames frames)" 300 $((frames * frame_mb)) \
    "$MER" faces "$V" --fps "$fps"
peak "extract visual 60 s 1080p, --fps $fps" $((weights_mb + 300)) $((frames * frame_mb)) \
    "$MER" extract visual --model "$CLIP" --fps "$fps" --overwrite --out "$D/vis.npy" "$V"
peak "extract acoustic 2 h at 16 kHz" 1024 $((7200 * 16000 * 4 / 1048576)) \
    "$MER" extract acoustic --overwrite --out "$D/acoustic.npy" "$A"
exit $fail
