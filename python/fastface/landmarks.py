"""Landmarks from a face box: dlib's 5-point shape predictor (regression trees, Kazemi & Sullivan
2014), run by the C++ core from fastface's own copy of dlib's model (CC0, bundled).

    sp = fastface.ShapePredictor()
    points = sp.predict(cv2.imread("a.jpg"), (x1, y1, x2, y2))    # (5, 2) float32

It predicts what dlib predicts: the same pixels are read and the same trees taken, so the
points equal dlib's ``shape_predictor(image, rect)`` before dlib rounds them to whole pixels.
"""
from __future__ import annotations

import functools
import math
import os

import numpy as np

from . import _core
from .hub.bundled import bundled_dir
from ._checks import as_image, check_order

#: The bundled model ``ShapePredictor()`` loads (models/README.md; converted from dlib's
#: ``shape_predictor_5_face_landmarks.dat`` by ``fastface.export.dlib_shape``).
DEFAULT_SHAPE_PREDICTOR = "dlib_shape_predictor_5.bin"
#: The bundled model's points, in order ("left"/"right" as seen in the image).
DLIB_5_POINTS = ("right eye, outer corner", "right eye, inner corner", "left eye, outer corner",
                 "left eye, inner corner", "base of the nose")


def _box(box) -> tuple[float, float, float, float]:
    """(x1, y1, x2, y2) from four numbers or a ``dlib.rectangle`` (its right/bottom are the corner)."""
    if all(callable(getattr(box, side, None)) for side in ("left", "top", "right", "bottom")):
        box = (box.left(), box.top(), box.right(), box.bottom())
    try:
        x1, y1, x2, y2 = (float(v) for v in box)
    except (TypeError, ValueError):
        raise ValueError(f"box must be four numbers (x1, y1, x2, y2), got {box!r}") from None
    if not all(map(math.isfinite, (x1, y1, x2, y2))):
        raise ValueError(f"box contains NaN or infinity: {[x1, y1, x2, y2]}")
    if x2 < x1 or y2 < y1:
        raise ValueError(f"box must have x1 <= x2 and y1 <= y2, got {[x1, y1, x2, y2]}")
    return x1, y1, x2, y2


class ShapePredictor:
    """A cascade of regression trees that places landmarks inside a face box.

    ``ShapePredictor()`` loads the bundled dlib 5-point model (points in :data:`DLIB_5_POINTS`
    order); ``ShapePredictor(path)`` a file written by ``python -m fastface.export.dlib_shape``,
    ``ShapePredictor(data)`` the same as bytes. A malformed file raises :class:`fastface.ModelError`.
    ``predict`` is safe to call from several threads at once (the GIL is released).
    """

    def __init__(self, model: str | os.PathLike | bytes | None = None):
        if model is None:
            model = bundled_dir() / DEFAULT_SHAPE_PREDICTOR
            if not model.is_file():
                raise FileNotFoundError(f"bundled shape predictor not found at {model}; reinstall fastface (pip install .)")
        if isinstance(model, (bytes, bytearray, memoryview)):
            self._model = _core.ShapePredictor(bytes(model))
        elif isinstance(model, (str, os.PathLike)):
            self._model = _core.ShapePredictor(os.fspath(model))
        else:
            raise TypeError(f"model must be a path, bytes or None, got {type(model).__name__}")

    @property
    def num_parts(self) -> int:
        return self._model.num_parts

    def predict(self, image: np.ndarray, box, channel_order: str = "BGR") -> np.ndarray:
        """(num_parts, 2) float32 landmarks in image pixels for the face in ``box``.

        ``box`` is (x1, y1, x2, y2), or a ``dlib.rectangle``: (x1, y1) is where the model's
        normalized (0, 0) lies and (x2, y2) its (1, 1), as dlib maps its rectangle's top-left and
        (inclusive) bottom-right corners. The bundled model was trained on dlib's HOG detector's
        boxes; other detectors' boxes work but sit the face differently. Boxes may reach outside
        the image (pixels there read as black). ``np.floor(points + 0.5)`` are dlib's integer
        points (barring float32 rounding within about 1e-5 px of a half pixel). ``channel_order``
        ("BGR" or "RGB") is checked but changes nothing: dlib's intensity is (R + G + B) / 3.
        """
        order = check_order(channel_order)
        image = as_image(image)
        x1, y1, x2, y2 = _box(box)
        return self._model.predict(image, order, x1, y1, x2, y2).astype(np.float32)


@functools.lru_cache(maxsize=1)
def bundled_shape_predictor() -> ShapePredictor:
    """The bundled predictor, read once per process and shared (``predict`` keeps no state)."""
    return ShapePredictor()
