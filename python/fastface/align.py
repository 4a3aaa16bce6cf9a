"""Stage 2 of image -> faces -> aligned crops -> embeddings -> matches: 5-landmark alignment."""
from __future__ import annotations

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
