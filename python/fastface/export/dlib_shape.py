"""dlib's shape predictor (``shape_predictor_5_face_landmarks.dat``: an ensemble of regression
trees, Kazemi & Sullivan 2014) -> fastface's compact landmark file, which the C++ core's
``fastface::ShapePredictor`` runs (``fastface.ShapePredictor`` in Python). Read with fastface's
own reader of dlib's stream encodings; dlib is not needed.

dlib's file (``dlib/image_processing/shape_predictor.h``, ``serialize(shape_predictor)``):
int version 1; ``initial_shape`` (a float column matrix, x0 y0 x1 y1 ... in the box's
normalized frame); ``forests`` (per cascade level a vector of trees, each tree a vector of
splits ``(idx1, idx2, thresh)`` and a vector of leaf vectors); ``anchor_idx`` (per level, per
feature pixel the part it hangs on) and ``deltas`` (per level, per feature pixel its float
offset from that part in the initial shape).

fastface's file, version 1 — little-endian, no padding:

====================  =========================================================================
magic                 8 bytes ``b"FFSHAPE\\0"``
version               uint32, 1
parts P               uint32 (5 for dlib's 5-point model)
cascades C            uint32
initial shape         float32[2P]: x0, y0, x1, y1, ... ((0, 0) = box top-left, (1, 1) = bottom-right)
then per cascade:
  features F          uint32: feature pixels sampled at this level (at most 65536)
  trees T             uint32
  splits S            uint32: splits per tree (each tree has S + 1 leaves; dlib: 2**depth - 1)
  anchors             uint32[F]: the part each feature pixel is placed relative to (< P)
  deltas              float32[F][2]: its offset from that part, in the initial shape's frame
  splits              T*S * (uint32 idx1, uint32 idx2, float32 thresh), tree by tree, nodes in
                      dlib's order (children of node i: 2i+1 left, 2i+2 right); idx < F
  leaves              float32[T][S+1][2P]: shape increments, tree by tree
====================  =========================================================================

The file ends there (trailing bytes are an error). Every number is dlib's own float32 value,
so the converted model predicts exactly what dlib predicts.

``python -m fastface.export.dlib_shape SOURCE.dat OUT.bin`` converts; ``models/regenerate_dlib_shape.sh``
rebuilds the bundled ``models/dlib_shape_predictor_5.bin`` byte for byte.
"""
from __future__ import annotations

import argparse
import hashlib
import struct
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .dlib_format import DlibFormatError, Stream, _Truncated

MAGIC = b"FFSHAPE\0"
VERSION = 1
#: The bundled file's name in models/ (``fastface.ShapePredictor()`` loads it).
BUNDLED_NAME = "dlib_shape_predictor_5.bin"
#: sha256 of dlib's ``shape_predictor_5_face_landmarks.dat`` (dlib-models, CC0; the copy in the
#: PyPI package face-recognition-models 0.3.0), the source of the bundled file.
SOURCE_SHA256 = "c4b1e9804792707d3a405c2c16a80a20269e6675021f64a41d30fffafbc41888"

# Far beyond any trained model; they bound what a malformed dlib file can make us allocate.
_MAX_PARTS, _MAX_COUNT = 1 << 16, 1 << 24
#: fastface keeps a split's feature indices in 16 bits (dlib's models sample 400-800 pixels).
_MAX_FEATURES = 1 << 16


@dataclass
class Cascade:
    """One cascade level: feature pixels (anchors, deltas) and T trees of S splits each."""
    anchors: np.ndarray   # (F,) uint32
    deltas: np.ndarray    # (F, 2) float32
    splits: np.ndarray    # (T, S) structured: idx1, idx2 (uint32), thresh (float32)
    leaves: np.ndarray    # (T, S + 1, 2P) float32


@dataclass
class ShapeModel:
    initial_shape: np.ndarray  # (P, 2) float32
    cascades: list[Cascade]

    @property
    def num_parts(self) -> int:
        return len(self.initial_shape)


_SPLIT = np.dtype([("idx1", "<u4"), ("idx2", "<u4"), ("thresh", "<f4")])


def _count(s: Stream, what: str, limit: int = _MAX_COUNT) -> int:
    n = s.uint()
    if n > limit:
        raise DlibFormatError(f"{what}: {n} entries (more than {limit}) at offset {s.pos}")
    return n


def _f32(value: float, what: str) -> np.float32:
    """dlib wrote a float32; anything else (or a non-finite value) means a damaged file."""
    single = np.float32(value)
    if not np.isfinite(single) or float(single) != value:
        raise DlibFormatError(f"{what}: {value!r} is not a finite float32")
    return single


def _column(s: Stream, what: str) -> np.ndarray:
    """A ``dlib::matrix<float,0,1>``: rows and columns (negated by newer dlib), then the values."""
    rows, cols = abs(s.int()), abs(s.int())
    if cols != 1 or rows > 2 * _MAX_PARTS:
        raise DlibFormatError(f"{what}: a {rows}x{cols} matrix where a column vector was expected")
    return np.array([_f32(s.float(), what) for _ in range(rows)], np.float32)


def _read(s: Stream) -> ShapeModel:
    version = s.int()
    if version != 1:
        raise DlibFormatError(f"shape_predictor version {version} (expected 1)")
    shape = _column(s, "initial shape")
    if len(shape) == 0 or len(shape) % 2:
        raise DlibFormatError(f"initial shape of {len(shape)} values (expected 2 per part)")
    forests = []
    for level in range(_count(s, "cascades")):
        trees = []
        for t in range(_count(s, f"trees of cascade {level}")):
            splits = [(s.uint(), s.uint(), _f32(s.float(), "split threshold"))
                      for _ in range(_count(s, f"splits of tree {t}"))]
            leaves = [_column(s, "leaf") for _ in range(_count(s, f"leaves of tree {t}"))]
            trees.append((splits, leaves))
        forests.append(trees)
    anchors = [[s.uint() for _ in range(_count(s, "anchors"))] for _ in range(_count(s, "anchor levels"))]
    deltas = [[(_f32(s.float(), "delta"), _f32(s.float(), "delta")) for _ in range(_count(s, "deltas"))]
              for _ in range(_count(s, "delta levels"))]
    if s.pos != len(s.data):
        raise DlibFormatError(f"{len(s.data) - s.pos} bytes after the shape predictor")
    return _assemble(shape, forests, anchors, deltas)


def _assemble(shape, forests, anchors, deltas) -> ShapeModel:
    """Checks what dlib's predictor requires (and fastface's layout: one tree size per level)."""
    parts = len(shape) // 2
    if not len(forests) == len(anchors) == len(deltas):
        raise DlibFormatError(f"{len(forests)} cascades, {len(anchors)} anchor lists, {len(deltas)} delta lists")
    cascades = []
    for level, (trees, anchor, delta) in enumerate(zip(forests, anchors, deltas)):
        features = len(anchor)
        if features > _MAX_FEATURES:
            raise DlibFormatError(f"cascade {level}: {features} feature pixels (fastface reads up to {_MAX_FEATURES})")
        if len(delta) != features:
            raise DlibFormatError(f"cascade {level}: {features} anchors but {len(delta)} deltas")
        if any(a >= parts for a in anchor):
            raise DlibFormatError(f"cascade {level}: an anchor beyond the {parts} parts")
        sizes = {len(splits) for splits, _ in trees}
        if len(sizes) > 1:
            raise DlibFormatError(f"cascade {level}: trees of different depths {sorted(sizes)}")
        depth = sizes.pop() if sizes else 0
        for splits, leaves in trees:
            if len(leaves) != depth + 1 or any(len(leaf) != 2 * parts for leaf in leaves):
                raise DlibFormatError(f"cascade {level}: a tree of {depth} splits with {len(leaves)} leaves "
                                      f"(expected {depth + 1} leaves of {2 * parts} values)")
            if any(i1 >= features or i2 >= features for i1, i2, _ in splits):
                raise DlibFormatError(f"cascade {level}: a split reads a feature beyond the {features} pixels")
        cascades.append(Cascade(
            anchors=np.array(anchor, "<u4"),
            deltas=np.array(delta, "<f4").reshape(features, 2),
            splits=np.array([tuple(x) for splits, _ in trees for x in splits], _SPLIT).reshape(len(trees), depth),
            leaves=np.array([leaf for _, leaves in trees for leaf in leaves], "<f4").reshape(
                len(trees), depth + 1, 2 * parts)))
    return ShapeModel(shape.reshape(parts, 2), cascades)


def read_dlib_shape_predictor(path) -> ShapeModel:
    """Parses dlib's ``shape_predictor`` file; :class:`DlibFormatError` says what did not fit."""
    stream = Stream(Path(path).read_bytes())
    try:
        return _read(stream)
    except _Truncated:
        raise DlibFormatError(f"{path}: file ends early (offset {stream.pos}) — not a complete dlib "
                              "shape_predictor") from None


def to_bytes(model: ShapeModel) -> bytes:
    """fastface's little-endian file (layout in this module's docstring)."""
    parts = model.num_parts
    out = [MAGIC, struct.pack("<III", VERSION, parts, len(model.cascades)),
           model.initial_shape.astype("<f4").tobytes()]
    for c in model.cascades:
        trees, depth = c.splits.shape
        out += [struct.pack("<III", len(c.anchors), trees, depth), c.anchors.astype("<u4").tobytes(),
                c.deltas.astype("<f4").tobytes(), c.splits.astype(_SPLIT).tobytes(), c.leaves.astype("<f4").tobytes()]
    return b"".join(out)


def convert(source, out) -> Path:
    """dlib ``.dat`` -> fastface ``.bin``; returns the path written."""
    out = Path(out)
    if out.is_dir():
        out = out / BUNDLED_NAME
    data = to_bytes(read_dlib_shape_predictor(source))
    out.write_bytes(data)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fastface.export.dlib_shape", description=__doc__.split("\n\n")[0])
    parser.add_argument("source", help="dlib's shape_predictor_*.dat (uncompressed)")
    parser.add_argument("out", help=f"output file, or a folder (writes {BUNDLED_NAME} there)")
    args = parser.parse_args(argv)
    try:
        path = convert(args.source, args.out)
    except (OSError, DlibFormatError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    print(f"wrote {path} ({path.stat().st_size} bytes, sha256 {digest[:16]}...)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
