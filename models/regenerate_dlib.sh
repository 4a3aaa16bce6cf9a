#!/bin/sh
# Regenerates the bundled recognizer dlib_resnet_v1.{param,bin,json} and LICENSE.dlib_resnet_v1
# from dlib's published files (CC0): dlib's network file converted by fastface's own reader,
# fp16 weights, parity-gated on 16 ORL faces against dlib (dlib-bin) or fastface's numpy forward.
# Usage: sh models/regenerate_dlib.sh [SHARED_DATA]   (default: ../shared/data beside the checkout)
set -e
cd "$(dirname "$0")"
DATA="${1:-../../shared/data}"
PYTHON="${PYTHON:-python}"
"$PYTHON" -m fastface.export.dlib_export "$DATA/models/dlib-resnet" . --faces "$DATA/faces/orl"
