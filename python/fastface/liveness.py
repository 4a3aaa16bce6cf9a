"""Liveness: is the face a live person, or a printed photo or a screen held up to the camera?

    live = fastface.Liveness()
    face = fastface.Detector().detect(image)[0]
    live.score(image, face)    # probability of a live face, in [0, 1]
    live.check(image, face)    # score >= the card's threshold (0.5)

The bundled models are minivision's Silent-Face-Anti-Spoofing MiniFASNetV2 and MiniFASNetV1SE
(Apache-2.0, models/minifasnet_*.json): each sees the face box scaled about its centre (2.7 and
4.0 times, shifted back inside the image), resized to 80x80 raw BGR; their real-class softmax
probabilities are averaged. A single RGB frame, no user action ("silent"). What the numbers
mean, and what was (and could not be) measured, is in the README's "Liveness".
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from . import _core
from ._checks import as_image, check_order

#: The bundled pair, in the order their probabilities are reported.
BUNDLED = ("minifasnet_v2", "minifasnet_v1se")


def _box(face) -> list[float]:
    """(x1, y1, x2, y2) from a Face, a Track-like dict with "bbox", or four numbers."""
    box = getattr(face, "bbox", None)
    if box is None and isinstance(face, dict):
        box = face.get("bbox")
    if box is None:
        box = face
    try:
        values = np.asarray(box, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise ValueError(f"face must be a fastface.Face or a box (x1, y1, x2, y2), got {face!r}") from None
    if values.shape != (4,):
        raise ValueError(f"a face box has 4 values (x1, y1, x2, y2), got {values.size}")
    return values.tolist()


def load_liveness_card(card) -> dict:
    """A liveness card (``task`` "liveness") from a dict or JSON path, checked."""
    if isinstance(card, (str, os.PathLike)):
        try:
            card = json.loads(Path(card).read_text())
        except json.JSONDecodeError as exc:
            raise ValueError(f"liveness card {card} is not valid JSON: {exc}") from None
    if not isinstance(card, dict):
        raise TypeError(f"card must be a dict or a path to a JSON file, got {type(card).__name__}")
    if card.get("task") != "liveness":
        raise ValueError(f"not a liveness card (task {card.get('task')!r})")
    missing = [k for k in ("input", "output", "input_size", "crop_scale", "real_class", "threshold") if k not in card]
    if missing:
        raise ValueError(f"liveness card lacks {missing}")
    width, height = (int(v) for v in card["input_size"])
    if width != height:
        raise ValueError(f"liveness models take a square input, the card says {width}x{height}")
    return {"input": str(card["input"]), "output": str(card["output"]), "size": width,
            "crop_scale": float(card["crop_scale"]), "channel_order": str(card.get("channel_order", "BGR")).upper(),
            "mean": np.broadcast_to(np.asarray(card.get("mean", 0.0), np.float32), 3).tolist(),
            "scale": np.broadcast_to(np.asarray(card.get("scale", 1.0), np.float32), 3).tolist(),
            "classes": len(card.get("classes", [0, 1, 2])), "real_class": int(card["real_class"]),
            "threshold": float(card["threshold"])}


class Liveness:
    """Liveness models scoring detected faces: ``Liveness().score(image, face)``.

    Without ``params`` the bundled MiniFASNet pair. ``params``: ncnn ``.param`` paths, each with
    its ``.bin`` and liveness card (``.json``) beside it. ``threshold`` (default: the cards') is
    where :meth:`check` says live. ``box_map`` says whose face boxes are passed: "yunet"
    (default: fastface's bundled detector, whose boxes are moved into the convention the models
    were trained on, see README "Liveness"), "reference" (boxes of the authors' Caffe RetinaFace,
    used as given) or (dx, dy, sw, sh): centre shift in box widths/heights and size factors.
    Thread-safe; ``threads`` is ncnn's per call.
    """

    def __init__(self, params=None, threads: int = 1, threshold: float | None = None, box_map="yunet"):
        if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 1:
            raise ValueError(f"threads must be an int >= 1, got {threads!r}")
        if params is None:
            from .hub.bundled import bundled_model

            params = [bundled_model(stem) for stem in BUNDLED]
        params = [Path(p) for p in ([params] if isinstance(params, (str, os.PathLike)) else params)]
        if not params:
            raise ValueError("Liveness needs at least one model")
        cards = []
        for param in params:
            for path in (param, param.with_suffix(".bin"), param.with_suffix(".json")):
                if not path.is_file():
                    raise FileNotFoundError(f"no liveness model file at {path}")
            cards.append(load_liveness_card(param.with_suffix(".json")))
        if threshold is None:
            found = {c["threshold"] for c in cards}
            if len(found) != 1:
                raise ValueError(f"the cards give different thresholds {sorted(found)}: pass threshold=")
            threshold = found.pop()
        threshold = float(threshold)
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must be within [0, 1], got {threshold}")
        if isinstance(box_map, str):
            if box_map not in ("yunet", "reference"):
                raise ValueError(f"box_map must be 'yunet', 'reference' or (dx, dy, sw, sh), got {box_map!r}")
            box_map = None if box_map == "yunet" else (0.0, 0.0, 1.0, 1.0)
        else:
            try:
                box_map = tuple(float(v) for v in box_map)
            except (TypeError, ValueError):
                raise ValueError(f"box_map must be 'yunet', 'reference' or (dx, dy, sw, sh), got {box_map!r}") from None
            if len(box_map) != 4:
                raise ValueError(f"box_map has 4 values (dx, dy, sw, sh), got {len(box_map)}")
        self.params = params
        self.cards = cards
        self._model = _core.Liveness([os.fspath(p) for p in params], [os.fspath(p.with_suffix(".bin")) for p in params],
                                     cards, threshold, int(threads), box_map)

    @property
    def box_map(self) -> tuple[float, float, float, float]:
        """(dx, dy, sw, sh) applied to every face box before cropping."""
        return self._model.box_map

    @property
    def threshold(self) -> float:
        return self._model.threshold

    def scores(self, image, face, channel_order: str = "BGR") -> tuple[float, list[float]]:
        """(averaged probability real, each model's own) for one face of ``image``."""
        return self._model.score(as_image(image), check_order(channel_order), _box(face))

    def score(self, image, face, channel_order: str = "BGR") -> float:
        """Probability in [0, 1] that ``face`` (a :class:`fastface.Face` or an (x1, y1, x2, y2)
        box of ``image``) is a live person. ValueError for boxes under 8 pixels or wholly
        outside the image; faces at the border and faces filling the frame score as the
        reference pipeline scores them (the crop is shifted inside, its scale lowered to fit)."""
        return float(self.scores(image, face, channel_order)[0])

    def check(self, image, face, channel_order: str = "BGR") -> bool:
        """True when :meth:`score` reaches the threshold: a live face."""
        return self.score(image, face, channel_order) >= self.threshold

    def __repr__(self) -> str:
        return f"Liveness({[p.stem for p in self.params]}, threshold={self.threshold})"


__all__ = ["BUNDLED", "Liveness", "load_liveness_card"]
