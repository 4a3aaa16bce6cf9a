#!/bin/sh
# Regenerates the bundled landmark model dlib_shape_predictor_5.bin from dlib's published
# shape_predictor_5_face_landmarks.dat (CC0, licence in LICENSE.dlib_resnet_v1: the same
# dlib-models licence), converted by fastface's own reader; byte-identical on every run.
# Usage: sh models/regenerate_dlib_shape.sh [SHARED_DATA [OUT_FOLDER]]
#        (default: ../shared/data beside the checkout, and models/ itself)
set -e
cd "$(dirname "$0")"
DATA="${1:-../../shared/data}"
OUT="${2:-.}"
PYTHON="${PYTHON:-python}"
"$PYTHON" -m fastface.export.dlib_shape "$DATA/models/dlib-resnet/shape_predictor_5_face_landmarks.dat" "$OUT"
