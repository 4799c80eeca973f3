#!/usr/bin/env bash
# Copy an export's model and model card into the Android app's assets (the .tflite carries
# the vocabulary and labels as MediaPipe metadata; vocab.txt and labels.txt are copied too,
# for apps that run the file with LiteRT and bertlogic instead):
#   ./copy_assets.sh ../../exports/sst2 [dynamic|float16|float32|int8]
# (mode defaults to dynamic). Replaces any model copied before.
set -euo pipefail
if [ $# -lt 1 ] || [ $# -gt 2 ]; then
    echo "usage: $0 EXPORT_DIR [MODE]   (MODE: dynamic, float16, float32 or int8; default dynamic)" >&2
    exit 2
fi
export_dir="$1"
mode="${2:-dynamic}"
assets="$(cd "$(dirname "$0")" && pwd)/app/src/main/assets"
model="$export_dir/tflite/model_$mode.tflite"
for f in "$model" "$export_dir/vocab.txt" "$export_dir/labels.txt" "$export_dir/model_card.json"; do
    [ -f "$f" ] || { echo "$0: $f not found (make it with: kbert export MODEL_DIR --format tflite --out $export_dir)" >&2; exit 1; }
done
mkdir -p "$assets"
rm -f "$assets"/model_*.tflite
cp "$model" "$export_dir/vocab.txt" "$export_dir/labels.txt" "$export_dir/model_card.json" "$assets/"
echo "copied model_$mode.tflite, vocab.txt, labels.txt, model_card.json -> $assets"
