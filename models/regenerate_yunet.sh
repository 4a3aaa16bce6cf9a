#!/bin/sh
# Regenerates the bundled default detector: YuNet-s (Apache-2.0, see LICENSE.yunet) from the
# dynamic-shape ONNX in the shared data, through `fastface export` (pnnx with two input shapes,
# so the ncnn graph runs at any size; parity gate on two real photos at 640x640 and 320x256).
# Needs the [export] extra and ../shared/data beside the checkout (or FASTFACE_TEST_DATA).
# Usage: sh models/regenerate_yunet.sh [output folder, default: models/]
set -e
MODELS="$(cd "$(dirname "$0")" && pwd)"
OUT="${1:-$MODELS}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
DATA="${FASTFACE_TEST_DATA:-$MODELS/../../shared/data}"
PYTHON="${PYTHON:-python}"
# Relative source paths, so the card records no machine's folders.
cd "$DATA/models/yunet"
"$PYTHON" -m fastface.cli export yunet_s_dynamic.onnx --detector yunet --name yunet_s --out "$OUT" \
    --images ../../faces/deepface-sample --num-faces 2 --quiet
rm -f "$OUT/LICENSE.yunet"
cat LICENSE > "$OUT/LICENSE.yunet"
