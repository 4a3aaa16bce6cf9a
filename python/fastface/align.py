"""Stage 2 of image -> faces -> aligned crops -> embeddings -> matches: 5-landmark alignment."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from . import _core
from ._checks import as_image, as_points, as_size, check_order

#: ArcFace 112x112 template: left eye, right eye, nose tip, left and right mouth corners.
ARCFACE_TEMPLATE = _core.arcface_template(112, 112)
ARCFACE_TEMPLATE.setflags(write=False)


def template_for(size=112, template=None) -> np.ndarray:
    """The destination points for a crop of ``size``: ``template`` or the ArcFace one scaled."""
    width, height = as_size(size)
    if template is None:
        return _core.arcface_template(width, height)
    return as_points(template, "template")


def estimate_similarity(src, dst) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation) taking ``src`` onto ``dst``.

    Closed form (Umeyama); needs >= 2 matching, non-coincident points. Returns the 2x3 float64
    matrix, usable with ``cv2.warpAffine``.
    """
    src_points = as_points(src, "src")
    return _core.estimate_similarity(src_points, as_points(dst, "dst", count=len(src_points)))


def align(image, landmarks, size=112, template=None, channel_order: str = "BGR",
          border_value: int = 0) -> np.ndarray:
    """Warp the face given by ``landmarks`` (N x 2, image pixels) onto ``template``.

    Returns a uint8 crop of shape (height, width[, C]) in the image's own channel layout.
    ``size`` is an int or (width, height); the default template is ArcFace's, scaled.
    """
    image = as_image(image)
    width, height = as_size(size)
    dst = template_for((width, height), template)
    points = as_points(landmarks, "landmarks", count=len(dst))
    order = check_order(channel_order)
    _core.validate_landmarks(image, order, points)
    dst_to_src = _core.invert_affine(_core.estimate_similarity(points, dst))
    return _core.warp_u8(image, order, dst_to_src, width, height, border_value)


def dlib_chip_geometry(points, template, size) -> np.ndarray:
    """The crop dlib's ``extract_image_chip(get_face_chip_details(shape, size, padding))`` cuts,
    as a 2x3 crop-pixel -> image matrix: the similarity fitted from ``template`` (the chip's
    points, dlib's mean face) to ``points`` — chip to image, the direction dlib fits — whose
    extraction rectangle, one image pixel narrower than ``size`` x scale, is mapped corner to
    corner onto the crop's pixels (the core's ``dlib_chip_geometry``)."""
    width, height = as_size(size)
    template = as_points(template, "template")
    return _core.dlib_chip_geometry(as_points(points, "points", len(template)), template, width, height)


@dataclass(frozen=True)
class Alignment:
    """How a face's crop is cut: crop pixel (u, v) is image point ``dst_to_src @ (u, v, 1)``.
    ``method`` is "shape_predictor" (dlib's 5 points, refined in a box around the face, dlib's
    chip geometry) or "detector" (the detector's five landmarks onto the card's template);
    ``points`` are the points used; ``note`` says why a refinement fell back."""
    dst_to_src: np.ndarray
    points: np.ndarray
    method: str
    note: Optional[str] = None


class FaceAligner:
    """How a recognizer's crops are cut, as its card says (key ``"alignment"``):

    * no ``"alignment"``: the detector's five landmarks onto the card's ``"template"`` (ArcFace's,
      scaled to the input, when the card has none) — MobileFaceNet, IResNet and other ArcFace models;
    * ``{"method": "dlib_chip", ...}``: what dlib's ResNet was trained on — dlib's 5-point shape
      predictor, run in a box placed from the detector's landmarks (``"box"``: its centre offset
      and size in units of the face's scale, see :meth:`FaceAligner.predictor_box`), cut as dlib's
      ``get_face_chip`` cuts it (:func:`dlib_chip_geometry` with ``"template"``, dlib's mean-face
      points with its padding). The refinement does not depend on the detection scale. Where it
      cannot be trusted — a predictor box smaller than ``"min_face"`` pixels, points off the
      image, or eyes more than ``"max_disagreement"`` inter-ocular distances from the detector's
      (a profile face, landmarks on something else) — the detector's landmarks are used with the
      card's ``"template"``, and :attr:`Alignment.note` says why.
    """

    def __init__(self, card: dict):
        self.size = as_size(card["size"])
        self.template = template_for(self.size, card.get("template"))
        self.template.setflags(write=False)
        spec = card.get("alignment")
        self.method = "template" if spec is None else spec.get("method")
        if self.method == "template":
            self.predictor = None
            return
        if self.method != "dlib_chip":
            raise ValueError(f"model card 'alignment' method must be 'dlib_chip' or absent, got {self.method!r}")
        missing = [key for key in ("template", "box") if key not in spec]
        if missing or not isinstance(spec["box"], dict) or not {"centre", "size"} <= set(spec["box"]):
            raise ValueError(f"model card 'alignment' needs a template and a box with centre and size, got {spec!r}")
        from .landmarks import bundled_shape_predictor

        self.predictor = bundled_shape_predictor()
        self.chip_template = as_points(spec["template"], "model card 'alignment.template'",
                                       count=self.predictor.num_parts)
        self.chip_template.setflags(write=False)
        box = spec["box"]
        self.box_centre = np.asarray(box["centre"], np.float64).reshape(2)
        self.box_size = np.asarray(box["size"], np.float64).reshape(2)
        self.min_face = float(spec.get("min_face", 0.0))
        self.max_disagreement = float(spec.get("max_disagreement", np.inf))
        if not (np.all(np.isfinite(self.box_centre)) and np.all(self.box_size > 0) and self.min_face >= 0
                and self.max_disagreement > 0):
            raise ValueError(f"model card 'alignment' has an invalid box, min_face or max_disagreement: {spec!r}")

    def predictor_box(self, landmarks) -> np.ndarray:
        """The box (x1, y1, x2, y2) the shape predictor sees for a face's five landmarks, as its
        training boxes (dlib's HOG detector's) sit on faces: centred on the midpoint of the eye
        and mouth centres, moved by ``box.centre`` and sized ``box.size`` times the face's scale
        (the mean of the inter-ocular and eye-to-mouth distances). From the landmarks, not the
        detector's box, so any detector's faces map alike."""
        landmarks = np.asarray(landmarks, np.float64)
        eyes, mouth = landmarks[:2].mean(0), landmarks[3:].mean(0)
        scale = (np.linalg.norm(landmarks[1] - landmarks[0]) + np.linalg.norm(mouth - eyes)) / 2
        centre = (eyes + mouth) / 2 + self.box_centre * scale
        half = self.box_size * scale / 2
        return np.concatenate([centre - half, centre + half])

    def align(self, image: np.ndarray, landmarks, channel_order: str = "BGR") -> Alignment:
        """How to cut the face with the detector's five ``landmarks`` out of ``image``."""
        image = as_image(image)
        order = check_order(channel_order)
        landmarks = as_points(landmarks, "landmarks", count=5)
        _core.validate_landmarks(image, order, landmarks)
        note = None
        if self.predictor is not None:
            points = self._refine(image, landmarks, order)
            if not isinstance(points, str):
                return Alignment(dlib_chip_geometry(points, self.chip_template, self.size), points,
                                 "shape_predictor")
            note = points
        return Alignment(_core.invert_affine(_core.estimate_similarity(landmarks, self.template)), landmarks,
                         "detector", note)

    def _refine(self, image, landmarks, order):
        """dlib's points, or a string saying why they are not to be trusted."""
        box = self.predictor_box(landmarks)
        width, height = box[2] - box[0], box[3] - box[1]
        if not (np.all(np.isfinite(box)) and min(width, height) >= self.min_face):
            return f"face {width:.0f}x{height:.0f} px is below the shape predictor's {self.min_face:.0f} px"
        points = self.predictor.predict(image, box, order)
        rows, cols = image.shape[:2]
        if not (np.all(np.isfinite(points)) and np.all(points >= 0) and np.all(points[:, 0] <= cols - 1)
                and np.all(points[:, 1] <= rows - 1)):
            return "the shape predictor's points fall off the image"
        # dlib's eye centres (corner midpoints; parts 2-3 are the eye on the image's left) vs the
        # detector's, in inter-ocular distances.
        eyes = np.array([points[2:4].mean(0), points[0:2].mean(0)])
        ocular = float(np.linalg.norm(landmarks[1] - landmarks[0]))
        disagreement = float(np.max(np.linalg.norm(eyes - landmarks[:2], axis=1))) / max(ocular, 1e-6)
        if not disagreement <= self.max_disagreement:
            return f"the shape predictor's eyes are {disagreement:.2f} eye distances from the detector's"
        return points

    def crop(self, image: np.ndarray, alignment: Alignment, channel_order: str = "BGR") -> np.ndarray:
        """The aligned crop as a uint8 image (for evaluation, display and the mirrored embedding)."""
        width, height = self.size
        return _core.warp_u8(as_image(image), check_order(channel_order), alignment.dst_to_src, width, height, 0)
