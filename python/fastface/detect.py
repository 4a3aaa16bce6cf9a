"""Stage 1: image -> faces (box, score, 5 landmarks), with an ncnn detector."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from . import _core
from ._checks import as_image, check_order

#: Conventions of each decoder, overridable by a JSON card beside the model.
DETECTOR_DEFAULTS = {
    # insightface RetinaFace (mnet0.25 etc.): raw 0..255 RGB in, blobs as in ncnn's example.
    "retinaface": {"input": "data", "outputs": [], "input_size": [0, 0], "channel_order": "RGB", "mean": 0.0,
                   "scale": 1.0},
    # fastface's PyTorch RetinaFace (biubug6-compatible, fastface.train.retinaface) converted by
    # pnnx at a fixed size: BGR minus (104, 117, 123), outputs loc, conf, landmarks.
    "retinaface-torch": {"input": "in0", "outputs": ["out0", "out1", "out2"], "input_size": [640, 640],
                         "channel_order": "BGR", "mean": [104.0, 117.0, 123.0], "scale": 1.0},
    # YuNet (Apache-2.0) converted from ONNX by pnnx (see fastface export): raw 0..255 BGR in a
    # fixed 640x640 letterbox; outputs cls/obj/bbox/kps for strides 8, 16, 32 in pnnx's names.
    "yunet": {"input": "in0", "outputs": [f"out{i}" for i in range(12)], "input_size": [640, 640],
              "channel_order": "BGR", "mean": 0.0, "scale": 1.0},
}


@dataclass
class Face:
    """One detected face. ``landmarks`` are in the alignment template's order: left eye, right
    eye, nose tip, left and right mouth corners, as seen in the image."""
    bbox: np.ndarray                      # (4,) x1, y1, x2, y2 in image pixels
    score: float
    landmarks: np.ndarray                 # (5, 2)
    embedding: Optional[np.ndarray] = field(default=None, repr=False)


class Detector:
    """An ncnn face detector: ``Detector("mnet.25-opt.param").detect(cv2.imread(path))``.

    ``kind`` picks the output decoder (default: the card's "kind", else "retinaface"):
    "retinaface" (insightface RetinaFace, any input size),
    "retinaface-torch" (fastface's PyTorch RetinaFace exported by pnnx) or "yunet"; the last two
    take a fixed-size, letterboxed input. Any image size works: the core resizes the image
    (longer side ``max_side`` for RetinaFace) and maps boxes and landmarks back to the original
    pixels. Faces smaller than ``min_face`` pixels, below
    ``score_threshold`` or beyond the best ``max_faces`` (0 = all) are dropped.
    """

    def __init__(self, param, bin=None, kind: Optional[str] = None, threads: int = 1, score_threshold: float = 0.5,
                 nms_threshold: float = 0.4, min_face: float = 0.0, max_faces: int = 0, max_side: int = 640,
                 card=None):
        if kind is not None and kind not in DETECTOR_DEFAULTS:
            raise ValueError(f"unknown detector kind {kind!r}; known: {sorted(DETECTOR_DEFAULTS)}")
        param = Path(param)
        if not param.is_file():
            raise FileNotFoundError(f"no ncnn param file at {param}")
        bin = Path(bin) if bin is not None else param.with_suffix(".bin")
        if not bin.is_file():
            raise FileNotFoundError(f"no ncnn weights file at {bin}")
        if card is None and param.with_suffix(".json").is_file():
            card = param.with_suffix(".json")
        fields = {}
        if card is not None:
            fields = dict(json.loads(Path(card).read_text()) if isinstance(card, (str, os.PathLike)) else card)
        if kind is None:
            kind = fields.get("kind") or "retinaface"
        elif fields.get("kind") not in (None, kind):
            raise ValueError(f"kind={kind!r} given, but the model card says {fields['kind']!r}")
        if kind not in DETECTOR_DEFAULTS:
            raise ValueError(f"unknown detector kind {kind!r}; known: {sorted(DETECTOR_DEFAULTS)}")
        settings = dict(DETECTOR_DEFAULTS[kind])
        settings.update(fields)
        mean, scale = (np.broadcast_to(np.asarray(settings[k], np.float32), 3).tolist() for k in ("mean", "scale"))
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise ValueError(f"threads must be a positive int, got {threads!r}")
        self.kind = kind
        input_width, input_height = (int(v) for v in settings["input_size"])
        self._model = _core.Detector(os.fspath(param), os.fspath(bin), kind, str(settings["input"]),
                                     [str(o) for o in settings["outputs"]], input_width, input_height,
                                     str(settings["channel_order"]).upper(), mean, scale, int(max_side),
                                     float(score_threshold), float(nms_threshold), float(min_face), int(max_faces),
                                     threads)

    @classmethod
    def from_name(cls, name: str, *, download: bool = True, accept_license: bool = False, **kwargs) -> "Detector":
        """A detector by registry name (``fastface models list``): bundled, cached, or pulled into
        the cache when ``download`` is allowed and ``FASTFACE_OFFLINE`` is not set. ``kwargs`` go
        to :class:`Detector` (threads, score_threshold, ...)."""
        from .hub import resolve

        return cls(resolve(name, "detector", download=download, accept_license=accept_license), **kwargs)

    def detect(self, image, channel_order: str = "BGR") -> list[Face]:
        """Faces in ``image`` (uint8 BGR by default, RGB or gray), best score first; [] if none."""
        boxes, scores, landmarks = self._model.detect(as_image(image), check_order(channel_order))
        return [Face(b, float(s), lm) for b, s, lm in zip(boxes, scores, landmarks)]
