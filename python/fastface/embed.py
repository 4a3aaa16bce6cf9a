"""Stage 3: aligned crops -> embeddings, with an ncnn model described by a JSON model card."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from . import _core
from ._checks import as_image, as_points, as_size, check_order
from ._variants import check_precision, variant
from .align import FaceAligner

#: Keys a model card must provide; ``dim``, ``template`` and anything else are optional.
REQUIRED_CARD_KEYS = ("input", "output", "size", "channel_order", "mean", "scale")
PathLike = (str, os.PathLike)
#: The bundled recognizer ``Embedder()`` loads: dlib's ResNet v1 (CC0), 150x150 RGB, 128-d.
DEFAULT_MODEL = "dlib_resnet_v1"
#: Same-person cosine for a card without a calibrated "threshold" (MobileFaceNet-class models).
DEFAULT_THRESHOLD = 0.35


def _triple(value, key: str) -> list[float]:
    values = [value] * 3 if isinstance(value, (int, float)) else list(value)
    if len(values) != 3 or not all(isinstance(v, (int, float)) and np.isfinite(v) for v in values):
        raise ValueError(f"model card '{key}' must be a number or 3 numbers, got {value!r}")
    return [float(v) for v in values]


def load_card(card) -> dict[str, Any]:
    """A validated model card from a dict or a JSON file path."""
    if isinstance(card, PathLike):
        try:
            card = json.loads(Path(card).read_text())
        except json.JSONDecodeError as exc:
            raise ValueError(f"model card {card} is not valid JSON: {exc}") from None
    if not isinstance(card, Mapping):
        raise TypeError(f"card must be a dict or a path to a JSON file, got {type(card).__name__}")
    missing = [k for k in REQUIRED_CARD_KEYS if k not in card]
    if missing:
        raise ValueError(f"model card lacks {missing}; a card looks like "
                         '{"input": "data", "output": "fc1", "size": 112, "channel_order": "RGB", '
                         '"mean": 0.0, "scale": 1.0, "dim": 128}')
    order = str(card["channel_order"]).upper()
    if order not in ("RGB", "BGR", "GRAY"):
        raise ValueError(f"model card 'channel_order' must be RGB, BGR or GRAY, got {card['channel_order']!r}")
    dim = card.get("dim", 0)
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 0:
        raise ValueError(f"model card 'dim' must be a non-negative int, got {dim!r}")
    out = dict(card)
    out.update(input=str(card["input"]), output=str(card["output"]), size=list(as_size(card["size"])),
               channel_order=order, mean=_triple(card["mean"], "mean"), scale=_triple(card["scale"], "scale"),
               dim=dim)
    if card.get("template") is not None:
        out["template"] = as_points(card["template"], "model card 'template'").tolist()
    return out


def _card_beside(param: Path) -> Path:
    return param.with_suffix(".json")


class Embedder:
    """An ncnn face-embedding model.

    ``Embedder("model.param")`` loads ``model.bin`` and the card ``model.json`` beside it;
    ``bin`` and ``card`` (a dict or JSON path) override them. ``param``/``bin`` may also be
    bytes. ``Embedder()`` loads the bundled default, dlib's face-recognition ResNet (CC0,
    converted to ncnn; :data:`DEFAULT_MODEL`). ``precision``: "fp32" (default), "fp16" (same as
    ``fp16=True``: fp16 storage and arithmetic where the CPU has them) or "int8" (loads the int8
    variant ``model.int8.param/.bin/.json`` that ``fastface quantize`` wrote beside the model).
    One Embedder can be used from many threads at once; inference releases the GIL.

    Every layer is shape-checked at load against what reaches it, and a model that does not fit
    raises :class:`fastface.ModelError` before ncnn runs it; layer types the checker does not
    know are refused unless ``allow_unknown_layers`` (then a malformed file of them can crash
    the process, as in ncnn itself).
    """

    def __init__(self, param=None, bin=None, card=None, threads: int = 1, fp16: bool = False,
                 precision: str | None = None, *, allow_unknown_layers: bool = False):
        precision = check_precision(precision, fp16)
        fp16 = precision == "fp16"
        if param is None:
            from .hub.bundled import bundled_model

            param = bundled_model(DEFAULT_MODEL)
        if isinstance(param, bytes):
            if bin is None or card is None:
                raise ValueError("a model given as bytes needs bin= and card= as well")
            if precision == "int8":
                raise ValueError("precision='int8' picks the int8 files beside a model path; pass the int8 "
                                 "model's bytes with the default precision instead")
        elif isinstance(param, PathLike):
            param = variant(param, precision)
            if not param.is_file():
                raise FileNotFoundError(f"no ncnn param file at {param}")
            bin = param.with_suffix(".bin") if bin is None else bin
            if card is None:
                if not _card_beside(param).is_file():
                    raise FileNotFoundError(f"no model card at {_card_beside(param)}; pass card= (a dict or JSON path)")
                card = _card_beside(param)
        else:
            raise TypeError(f"param must be a path or bytes, got {type(param).__name__}")
        if isinstance(bin, PathLike):
            if not Path(bin).is_file():
                raise FileNotFoundError(f"no ncnn weights file at {bin}")
            bin = os.fspath(bin)
        elif bin is not None and not isinstance(bin, bytes):
            raise TypeError(f"bin must be a path or bytes, got {type(bin).__name__}")
        self._init(param if isinstance(param, bytes) else os.fspath(param), bin, card, threads, fp16,
                   allow_unknown_layers)

    @classmethod
    def from_name(cls, name: str, *, download: bool = True, accept_license: bool = False, **kwargs) -> "Embedder":
        """A recognizer by registry name (``fastface models list``): bundled, cached, or pulled
        into the cache when ``download`` is allowed and ``FASTFACE_OFFLINE`` is not set.
        ``kwargs`` go to :class:`Embedder` (threads, fp16, ...)."""
        from .hub import resolve

        return cls(resolve(name, "recognizer", download=download, accept_license=accept_license), **kwargs)

    @classmethod
    def with_zero_weights(cls, param, card=None, threads: int = 1, fp16: bool = False, *,
                          allow_unknown_layers: bool = False) -> "Embedder":
        """The graph with all-zero weights: embeddings are meaningless, timings are real."""
        path = Path(param)
        if not path.is_file():
            raise FileNotFoundError(f"no ncnn param file at {path}")
        self = cls.__new__(cls)
        self._init(path.read_bytes(), None, card if card is not None else _card_beside(path), threads, fp16,
                   allow_unknown_layers)
        return self

    def _init(self, param, bin, card, threads, fp16, allow_unknown_layers=False) -> None:
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise ValueError(f"threads must be a positive int, got {threads!r}")
        self.card = load_card(card)
        width, height = self.card["size"]
        template = self.card.get("template")
        self._model = _core.Embedder(
            param, bin, self.card["input"], self.card["output"], width, height, self.card["channel_order"],
            self.card["mean"], self.card["scale"], self.card["dim"],
            None if template is None else np.asarray(template, dtype=np.float32), threads, bool(fp16),
            bool(allow_unknown_layers))
        self.aligner = FaceAligner(self.card)

    @property
    def dim(self) -> int:
        """Embedding size."""
        return self._model.dim

    @property
    def threshold(self) -> float:
        """The same-person cosine: the card's calibrated "threshold", else :data:`DEFAULT_THRESHOLD`."""
        return float(self.card.get("threshold", DEFAULT_THRESHOLD))

    @property
    def input_size(self) -> tuple[int, int]:
        """(width, height) of the crops the model takes."""
        return tuple(self.card["size"])

    def blob_names(self) -> list[str]:
        """Every blob name in the model."""
        return self._model.blob_names()

    def embed(self, crops, channel_order: str = "BGR", normalize: bool = True) -> np.ndarray:
        """Embed aligned crops: an (N, H, W[, C]) uint8 array or a sequence of (H, W[, C]) crops.

        Returns (N, dim) float32, L2-normalized unless ``normalize=False``.
        """
        if not isinstance(crops, np.ndarray):
            crops = [as_image(c, "crop") for c in crops]
            if not crops:
                raise ValueError("no crops given")
            if len({c.shape for c in crops}) != 1:
                raise ValueError(f"crops differ in shape: {sorted({c.shape for c in crops})}")
            crops = np.stack(crops)
        width, height = self.input_size
        if crops.ndim == 3 and crops.shape == (height, width, 3):
            crops = crops[None]  # one colour crop
        if crops.dtype != np.uint8:
            raise ValueError(f"crops must be uint8, got {crops.dtype}")
        if crops.ndim not in (3, 4) or crops.shape[0] == 0:
            raise ValueError(f"crops must be a non-empty (N, H, W[, C]) array, got shape {crops.shape}")
        return self._model.embed(crops, check_order(channel_order), bool(normalize))

    def embed_face(self, image, face, channel_order: str = "BGR", flip: bool = False) -> np.ndarray:
        """The L2-normalized embedding (dim,) of a detected ``face`` (a :class:`fastface.Face`),
        cut as the card says (:class:`fastface.align.FaceAligner`); records how on
        ``face.alignment`` / ``face.alignment_note``. ``flip`` also embeds the mirrored crop and
        averages the two (twice the network time, often a little more accurate)."""
        image = as_image(image)
        order = check_order(channel_order)
        found = self.aligner.align(image, face.landmarks, order)
        face.alignment, face.alignment_note = found.method, found.note
        if flip:
            crop = self.aligner.crop(image, found, order)
            both = self._model.embed(np.stack([crop, crop[:, ::-1]]), order, False).sum(0)
            return (both / max(float(np.linalg.norm(both)), 1e-12)).astype(np.float32)
        return self._model.embed_face_affine(image, order, found.dst_to_src, True)

    def embed_image(self, image, landmarks, channel_order: str = "BGR", normalize: bool = True) -> np.ndarray:
        """Align the face at ``landmarks`` onto the card's template and embed it in one pass (no
        intermediate crop); (dim,). :meth:`embed_face` follows the card's alignment instead."""
        image = as_image(image)
        order = check_order(channel_order)
        points = as_points(landmarks, "landmarks")
        return self._model.embed_face(image, order, points, bool(normalize))
