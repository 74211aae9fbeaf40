#!/usr/bin/env bash
# Regenerates the seeds of fuzz/corpus/ that are made by programs (run it after changing the formats;
# the hand-written seeds (config/full.json, package/synthetic_ops.vpk: every op of the IR) and the
# regression-* inputs of fixed bugs are kept as they are):
#   fuzz/corpus/onnx, package, sei: fuzz_make_seeds (fuzz/make_seeds.cpp), from the fuzz build
#   fuzz/corpus/demux: a few KB of H.264/H.265 in the containers a source reads, made with ffmpeg from
#                      Debian's vtest.avi (tiny size, few frames)
#   fuzz/corpus/config: configs/*.json copied
#
#   bash fuzz/make_seeds.sh            (after bash scripts/fuzz.sh has built build-fuzz/)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
build_dir=${FUZZ_BUILD_DIR:-build-fuzz}
corpus=fuzz/corpus
cmake --build "$build_dir" --target fuzz_make_seeds
"$build_dir/fuzz/fuzz_make_seeds" "$corpus"

mkdir -p "$corpus/demux" "$corpus/config"
cp configs/*.json "$corpus/config/"
video=/usr/share/doc/opencv-doc/examples/data/vtest.avi
clip() {  # name, ffmpeg output arguments
  timeout 60 ffmpeg -nostdin -v error -y -i "$video" -frames:v 3 -vf scale=64:48 -an "${@:2}" "$corpus/demux/$1"
}
clip h264.h264 -c:v libx264 -preset ultrafast -g 2 -bf 1 -f h264
clip h265.h265 -c:v libx265 -preset ultrafast -x265-params log-level=error -f hevc
clip h264.ts -c:v libx264 -preset ultrafast -f mpegts
clip h264.mp4 -c:v libx264 -preset ultrafast -f mp4
clip h265.mkv -c:v libx265 -preset ultrafast -x265-params log-level=error -f matroska
clip h264.flv -c:v libx264 -preset ultrafast -f flv
ls -l "$corpus"/*
