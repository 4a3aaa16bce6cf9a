"""Synthetic videos for the Stream tests and benchmark, made at test time from the shared photos:
people (face crops of deepface-sample photos) move over a textured background, enter, leave,
cross each other and pass behind an occluder. Each frame comes with the true face boxes."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

import cv2
import numpy as np

import fastface
from shared_data import DEEPFACE


@dataclass
class Actor:
    name: str                 # identity (gallery name)
    sprite: np.ndarray        # square BGR face crop
    face_box: np.ndarray      # the face's box inside the sprite
    path: Callable[[int], Optional[tuple[float, float]]]  # frame -> sprite top-left, None = absent


@dataclass
class Scene:
    width: int
    height: int
    frames: int
    actors: list[Actor]                                   # later ones are drawn in front
    occluders: list[tuple[int, int, tuple[int, int, int, int]]] = field(default_factory=list)  # first, end, (x1, y1, x2, y2)

    def render(self, index: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Frame ``index`` and the visible faces' true boxes by name (hidden or mostly cut faces left out)."""
        frame = background(self.width, self.height)
        boxes = {}
        for actor in self.actors:
            place = actor.path(index)
            if place is None:
                continue
            x, y = (int(round(v)) for v in place)
            size = actor.sprite.shape[0]
            x1, y1, x2, y2 = max(x, 0), max(y, 0), min(x + size, self.width), min(y + size, self.height)
            if x1 >= x2 or y1 >= y2:
                continue
            frame[y1:y2, x1:x2] = actor.sprite[y1 - y:y2 - y, x1 - x:x2 - x]
            box = actor.face_box + np.array([x, y, x, y], np.float32)
            # Faces behind a later actor are hidden; count them only while mostly visible.
            for other, other_box in boxes.items():
                if other_box is not None and _covered(other_box, (x1, y1, x2, y2)) > 0.3:
                    boxes[other] = None
            if _inside(box, self.width, self.height) > 0.7:
                boxes[actor.name] = box
        for first, end, (x1, y1, x2, y2) in self.occluders:
            if first <= index < end:
                frame[y1:y2, x1:x2] = (90, 90, 90)
                for name, box in boxes.items():
                    if box is not None and _covered(box, (x1, y1, x2, y2)) > 0.3:
                        boxes[name] = None
        return frame, {k: v for k, v in boxes.items() if v is not None}

    def __iter__(self):
        return (self.render(i)[0] for i in range(self.frames))

    def truth(self) -> list[dict[str, np.ndarray]]:
        return [self.render(i)[1] for i in range(self.frames)]


_BACKGROUNDS: dict = {}


def background(width: int, height: int) -> np.ndarray:
    """A fixed textured backdrop (smooth gradient plus blurred noise), like a wall or room."""
    key = (width, height)
    if key not in _BACKGROUNDS:
        rng = np.random.default_rng(7)
        yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
        base = np.stack([120 + 60 * xx / width, 140 + 40 * yy / height, 110 + 30 * (xx + yy) / (width + height)], -1)
        noise = cv2.GaussianBlur(rng.normal(0, 25, (height, width, 3)).astype(np.float32), (0, 0), 3)
        _BACKGROUNDS[key] = np.clip(base + noise, 0, 255).astype(np.uint8)
    return _BACKGROUNDS[key].copy()


def _covered(box, rect) -> float:
    """Fraction of ``box`` inside ``rect``."""
    iw = min(box[2], rect[2]) - max(box[0], rect[0])
    ih = min(box[3], rect[3]) - max(box[1], rect[1])
    area = (box[2] - box[0]) * (box[3] - box[1])
    return max(0.0, iw) * max(0.0, ih) / area if area > 0 else 0.0


def _inside(box, width, height) -> float:
    return _covered(box, (0, 0, width, height))


def make_sprite(detector: fastface.Detector, photo: str, size: int) -> tuple[np.ndarray, np.ndarray]:
    """A size x size crop centred on the photo's main face (1.8 x its box) and that face's box in it."""
    image = cv2.imread(str(DEEPFACE / photo))
    face = max(detector.detect(image), key=lambda f: (f.bbox[2] - f.bbox[0]) * (f.bbox[3] - f.bbox[1]))
    cx, cy = (face.bbox[0] + face.bbox[2]) / 2, (face.bbox[1] + face.bbox[3]) / 2
    half = 0.9 * max(face.bbox[2] - face.bbox[0], face.bbox[3] - face.bbox[1])
    scale = size / (2 * half)
    matrix = np.array([[scale, 0, size / 2 - scale * cx], [0, scale, size / 2 - scale * cy]], np.float64)
    sprite = cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE)
    box = np.array([scale * face.bbox[0] + matrix[0, 2], scale * face.bbox[1] + matrix[1, 2],
                    scale * face.bbox[2] + matrix[0, 2], scale * face.bbox[3] + matrix[1, 2]], np.float32)
    return sprite, box


def linear(start: tuple[float, float], velocity: tuple[float, float], first: int = 0, last: int = 10**9):
    """A path moving at constant velocity (pixels per frame), present on frames first..last."""
    return lambda i: (start[0] + velocity[0] * (i - first), start[1] + velocity[1] * (i - first)) if first <= i <= last else None
