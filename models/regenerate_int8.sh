#!/bin/sh
# Regenerates the int8 variants of the bundled models (dlib_resnet_v1.int8.*, yunet_s.int8.*) with
# `fastface quantize`: calibrated on the faces (recognizer) or photos (detector) of LFW View 1's
# images, at most 600 of them (every 5th held out for the gate), gated on the held-out ones and,
# for the recognizer, on View 1's 3,200 pairs. Same licences as the float models they come from.
# Needs the ncnn Python package and ../shared/data beside the checkout (or FASTFACE_TEST_DATA).
# Usage: sh models/regenerate_int8.sh [output folder, default: models/]
set -e
MODELS="$(cd "$(dirname "$0")" && pwd)"
OUT="${1:-$MODELS}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
DATA="${FASTFACE_TEST_DATA:-$MODELS/../../shared/data}"
PYTHON="${PYTHON:-python}"
# Relative data paths, so the cards record no machine's folders.
cd "$DATA/faces"
"$PYTHON" -m fastface.cli quantize "$MODELS/dlib_resnet_v1.param" --images lfw-view1/images --max-faces 600 \
    --pairs lfw-view1/pairsDevTrain.txt --pairs lfw-view1/pairsDevTest.txt --out "$OUT" --quiet
"$PYTHON" -m fastface.cli quantize "$MODELS/yunet_s.param" --images lfw-view1/images --max-faces 600 \
    --out "$OUT" --quiet
