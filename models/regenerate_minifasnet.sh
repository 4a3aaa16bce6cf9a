#!/bin/sh
# Regenerates the bundled liveness models: minivision's MiniFASNetV2 (crop scale 2.7) and
# MiniFASNetV1SE (scale 4.0), Apache-2.0 (see LICENSE.minifasnet), from their PyTorch state dicts
# in the shared data, through `fastface export --liveness` (pnnx; parity gate: softmax within
# 1e-4 of PyTorch on reference crops of the liveness samples and the deepface-sample photos).
# Needs the [export] extra and ../shared/data beside the checkout (or FASTFACE_TEST_DATA).
# Usage: sh models/regenerate_minifasnet.sh [output folder, default: models/]
set -e
MODELS="$(cd "$(dirname "$0")" && pwd)"
OUT="${1:-$MODELS}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
DATA="${FASTFACE_TEST_DATA:-$MODELS/../../shared/data}"
PYTHON="${PYTHON:-python}"
# Relative source paths, so the cards record no machine's folders.
cd "$DATA/models/minifasnet"
PHOTOS=../../faces/liveness-samples,../../faces/deepface-sample
"$PYTHON" -m fastface.cli export 2.7_80x80_MiniFASNetV2.pth --liveness --name minifasnet_v2 --out "$OUT" \
    --images "$PHOTOS" --quiet
"$PYTHON" -m fastface.cli export 4_0_0_80x80_MiniFASNetV1SE.pth --liveness --name minifasnet_v1se --out "$OUT" \
    --images "$PHOTOS" --quiet
rm -f "$OUT/LICENSE.minifasnet"
cat LICENSE > "$OUT/LICENSE.minifasnet"
