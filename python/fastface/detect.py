"""Stage 1: image -> faces (box, score, 5 landmarks), with an ncnn detector."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from . import _core
from ._variants import variant
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
    # YuNet (Apache-2.0) converted from ONNX by pnnx (see fastface export): raw 0..255 BGR;
    # outputs cls/obj/bbox/kps for strides 8, 16, 32 in pnnx's names. Without a card: the fixed
    # 640x640 graph of yunet_n_640_640.onnx; cards of dynamic conversions say [0, 0] (any size).
    "yunet": {"input": "in0", "outputs": [f"out{i}" for i in range(12)], "input_size": [640, 640],
              "channel_order": "BGR", "mean": 0.0, "scale": 1.0},
}


@dataclass
class Face:
    """One detected face. ``landmarks`` are in the alignment template's order: left eye, right
    eye, nose tip, left and right mouth corners, as seen in the image. Once embedded,
    ``alignment`` says how its crop was cut ("shape_predictor" or "detector", see
    :class:`fastface.align.FaceAligner`) and ``alignment_note`` why a refinement fell back."""
    bbox: np.ndarray                      # (4,) x1, y1, x2, y2 in image pixels
    score: float
    landmarks: np.ndarray                 # (5, 2)
    embedding: Optional[np.ndarray] = field(default=None, repr=False)
    alignment: Optional[str] = None
    alignment_note: Optional[str] = None
    liveness: Optional[float] = None      # probability of a live face (FaceAnalyzer(liveness=True))


#: The bundled detector ``Detector()`` loads: YuNet (Apache-2.0) from models/, see models/README.md.
DEFAULT_DETECTOR = "yunet_s"
#: Largest ``max_side`` (the core's limit): a bigger network input only costs memory.
MAX_SIDE_LIMIT = 4096


def _check_options(threads, score_threshold, nms_threshold, min_face, max_faces, max_side, upscale) -> None:
    """ValueError/TypeError naming the option that is out of range."""
    for name, value in (("threads", threads), ("max_faces", max_faces), ("max_side", max_side)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise TypeError(f"{name} must be an int, got {value!r}")
    for name, value in (("score_threshold", score_threshold), ("nms_threshold", nms_threshold),
                        ("min_face", min_face)):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise TypeError(f"{name} must be a number, got {value!r}")
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    for name, value in (("score_threshold", score_threshold), ("nms_threshold", nms_threshold)):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must be in [0, 1], got {value!r}")
    if not (0.0 <= min_face < float("inf")):
        raise ValueError(f"min_face must be a finite number >= 0 (pixels), got {min_face!r}")
    if max_faces < 0:
        raise ValueError(f"max_faces must be >= 0 (0 = all), got {max_faces}")
    if not 0 <= max_side <= MAX_SIDE_LIMIT:
        raise ValueError(f"max_side must be in [0, {MAX_SIDE_LIMIT}] (0 = every image as is), got {max_side}")
    if not isinstance(upscale, (bool, np.bool_)):
        raise TypeError(f"upscale must be True or False, got {upscale!r}")


class Detector:
    """An ncnn face detector: ``Detector().detect(cv2.imread(path))``.

    Without ``param`` it loads the bundled YuNet (``DEFAULT_DETECTOR``, Apache-2.0). ``kind``
    picks the output decoder (default: the card's "kind", else "retinaface"): "retinaface"
    (insightface RetinaFace, any input size), "retinaface-torch" (fastface's PyTorch RetinaFace
    exported by pnnx, fixed size) or "yunet" (any size when converted from the dynamic ONNX —
    the card's ``input_size`` is [0, 0] — else the fixed size it was converted at).

    Any image size works and boxes and landmarks come back in its own pixels: an image whose
    longer side exceeds ``max_side`` is shrunk to it, a smaller one is detected at its own size
    (padded to a multiple of 32), unless ``upscale`` asks to enlarge it to ``max_side`` (for tiny
    faces). A fixed-size model gets the image fitted into its input. Faces smaller than
    ``min_face`` pixels, below ``score_threshold`` or beyond the best ``max_faces`` (0 = all) are
    dropped; ``nms_threshold`` is the IoU above which the weaker of two boxes goes.
    ``precision="int8"`` loads the int8 variant ``model.int8.param/.bin/.json`` beside the model
    (written by ``fastface quantize``).

    The model is shape-checked at load and at each new input size (see :class:`fastface.Embedder`);
    ``allow_unknown_layers`` loads layer types the checker does not know, unchecked.
    """

    def __init__(self, param=None, bin=None, kind: Optional[str] = None, threads: int = 1,
                 score_threshold: float = 0.5, nms_threshold: float = 0.4, min_face: float = 0.0, max_faces: int = 0,
                 max_side: int = 640, card=None, upscale: bool = False, precision: str = "fp32",
                 allow_unknown_layers: bool = False):
        _check_options(threads, score_threshold, nms_threshold, min_face, max_faces, max_side, upscale)
        if precision not in ("fp32", "int8"):
            raise ValueError(f"Detector precision must be 'fp32' or 'int8' (the int8 variant fastface quantize "
                             f"wrote beside the model), got {precision!r}")
        if kind is not None and kind not in DETECTOR_DEFAULTS:
            raise ValueError(f"unknown detector kind {kind!r}; known: {sorted(DETECTOR_DEFAULTS)}")
        if param is None:
            from .hub.bundled import bundled_model

            param = bundled_model(DEFAULT_DETECTOR)
        param = variant(Path(param), precision) if Path(param).is_file() else Path(param)
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
        self.kind = kind
        self.param = param
        input_width, input_height = (int(v) for v in settings["input_size"])
        self._model = _core.Detector(os.fspath(param), os.fspath(bin), kind, str(settings["input"]),
                                     [str(o) for o in settings["outputs"]], input_width, input_height,
                                     str(settings["channel_order"]).upper(), mean, scale, int(max_side),
                                     float(score_threshold), float(nms_threshold), float(min_face), int(max_faces),
                                     int(threads), bool(upscale), bool(allow_unknown_layers))

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
