"""From a raw photo to the aligned crop of its subject, as an evaluation protocol means it.

Which face is the subject when the detector finds several (``face``):

* ``"central"`` — the face whose box centre is nearest the photo's centre. LFW's photos are cut
  around their subject, so this is LFW's rule; it is the default for every pair list (CSV lists
  too: a photo chosen for a pair list is framed on its subject, while a bystander nearer the
  camera can be the largest face).
* ``"largest"`` — the largest box (what ``fastface verify`` and ``enroll`` use on a user's photo).
* ``"score"`` — the detector's most confident face.

When the detector finds no face, the photo is not dropped (that would change the pair list):
the model's alignment template is placed at the photo's centre, scaled to fit the photo — the
crop is the whole photo, centred, as evaluations of raw LFW do — and the photo is counted as
missed; with ``strict=True`` a missed face is an error instead.
"""
from __future__ import annotations

import os

import numpy as np

from .._checks import as_size
from ..align import FaceAligner, align, template_for
from ..detect import Detector

FACE_RULES = ("central", "largest", "score")
DEFAULT_FACE = "central"


class NoFaceError(ValueError):
    """The detector found no face and the evaluation is strict."""


def _area(face) -> float:
    x1, y1, x2, y2 = face.bbox
    return float((x2 - x1) * (y2 - y1))


def _distance_to_centre(face, shape) -> float:
    x1, y1, x2, y2 = face.bbox
    height, width = shape[:2]
    return float(np.hypot((x1 + x2) / 2 - width / 2, (y1 + y2) / 2 - height / 2))


def select_face(faces, shape, rule: str = DEFAULT_FACE):
    """The subject among ``faces`` (``fastface.Face`` list) of an image of ``shape`` (H, W, ...)
    by ``rule``; None when there is no face. Ties go to the earlier face (the detector lists
    faces best score first)."""
    if rule not in FACE_RULES:
        raise ValueError(f"unknown face rule {rule!r}; choose one of {', '.join(FACE_RULES)}")
    if not faces:
        return None
    if rule == "central":
        return min(faces, key=lambda f: _distance_to_centre(f, shape))
    if rule == "largest":
        return max(faces, key=_area)
    return max(faces, key=lambda f: f.score)


def centred_landmarks(shape, size, template=None) -> np.ndarray:
    """The fallback for a photo without a detected face: the alignment ``template`` (for a crop
    of ``size``) scaled so the crop spans the photo, centred on it. Aligning to these points
    warps the whole photo, centred and aspect kept, onto the crop."""
    width, height = as_size(size)
    points = np.asarray(template_for((width, height), template), dtype=np.float64)
    scale = min(shape[1] / width, shape[0] / height)
    centre_crop = np.array([width / 2, height / 2])
    centre_photo = np.array([shape[1] / 2, shape[0] / 2])
    return ((points - centre_crop) * scale + centre_photo).astype(np.float32)


class FaceCrop:
    """``image -> aligned crop`` of the subject chosen by ``face``, for :func:`.verify.evaluate`.

    ``detector`` is a ``fastface.Detector`` (or anything with ``detect(image) -> [Face]``) or a
    path to a detector ``.param``. ``size`` and ``template`` are the recognizer's crop (from its
    card). ``evaluate`` records which photos fell back to the centred crop; used on its own,
    :meth:`crop` says so per image.
    """

    def __init__(self, detector, size=112, template=None, face: str = DEFAULT_FACE, strict: bool = False,
                 threads: int = 1, aligner: FaceAligner | None = None):
        if face not in FACE_RULES:
            raise ValueError(f"unknown face rule {face!r}; choose one of {', '.join(FACE_RULES)}")
        if detector is None or isinstance(detector, (str, os.PathLike)):
            detector = Detector(detector, threads=threads)  # None: the bundled detector
        self.detector, self.size, self.template = detector, size, template
        self.face, self.strict = face, strict
        self.aligner = aligner  # a recognizer's own alignment (Embedder.aligner), else its template

    def crop(self, image) -> tuple[np.ndarray, bool]:
        """(aligned crop, whether a face was detected)."""
        subject = select_face(self.detector.detect(image), image.shape, self.face)
        if subject is None:
            if self.strict:
                raise NoFaceError("no face detected (strict: no centred fallback)")
            return align(image, centred_landmarks(image.shape, self.size, self.template), self.size,
                         self.template), False
        if self.aligner is not None:
            return self.aligner.crop(image, self.aligner.align(image, subject.landmarks)), True
        return align(image, subject.landmarks, self.size, self.template), True

    def __call__(self, image) -> np.ndarray:
        return self.crop(image)[0]
