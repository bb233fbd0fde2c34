#!/usr/bin/env bash
# Quick start, command 1: install what is missing, build idlegrid, and run the main job on the
# embedded default: a video transcoded through a throw-away local grid (coordinator + one
# worker per core on this machine, SQLite records, local blobs), then print what was verified.
#
#   scripts/demo.sh [VIDEO]      (default: a 20 s 1280x720 test clip with audio, made by FFmpeg)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh

cargo build --release --quiet -p idlegrid
bin=target/release/idlegrid

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
if [ $# -ge 1 ]; then
  input="$1"
else
  input="$work/clip.mp4"
  echo "making a 20 s 1280x720 test clip with FFmpeg's test sources"
  ffmpeg -v error -f lavfi -i testsrc2=size=1280x720:rate=30:duration=20 \
    -f lavfi -i sine=frequency=440:duration=20 \
    -c:v libx264 -g 60 -bf 2 -c:a aac -shortest "$input"
fi

echo "transcoding $input to H.264 + AAC on a local grid"
# No coordinator configured: `idlegrid transcode` starts a throw-away local grid by itself.
env -u IDLEGRID_URL -u IDLEGRID_API_KEY IDLEGRID_HOME="$work/home" \
  "$bin" transcode "$input" -o "$work/out.mp4" --preset 720p --chunk-seconds 5

echo "ffprobe of the output:"
ffprobe -v error -count_frames \
  -show_entries stream=codec_name,profile,width,height,nb_read_frames,duration \
  -of compact=p=0 "$work/out.mp4"
