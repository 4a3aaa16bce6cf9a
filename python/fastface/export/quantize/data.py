"""Calibration and gate inputs that fit faces: for recognizers, aligned crops cut by fastface's
own aligner (the bundled detector, then the card's alignment) from the user's photos; for
detectors, whole photos at the size the Detector runs them (native size padded to a multiple
of 32, or shrunk to ``max_side``)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import ExportError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".pgm", ".ppm", ".webp", ".tif", ".tiff"}


class CalibrationError(ExportError):
    """The calibration folder cannot give enough data: missing, empty, unreadable, too few faces."""


def image_files(folder) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise CalibrationError(f"calibration folder {folder} does not exist or is not a folder")
    try:
        files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    except OSError as exc:
        raise CalibrationError(f"cannot list calibration folder {folder}: {exc}") from None
    if not files:
        raise CalibrationError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in calibration folder {folder}")
    return files


def iter_images(files, unreadable: list):
    """(path, BGR uint8 image) for each readable file, read lazily; unreadable paths are appended
    to ``unreadable``."""
    import cv2

    for path in files:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            unreadable.append(path)
            continue
        yield path, image


def read_images(files, limit: int | None = None):
    """([(path, BGR uint8 image)], unreadable paths), at most ``limit`` images."""
    unreadable: list = []
    out = []
    for item in iter_images(files, unreadable):
        if limit is not None and len(out) >= limit:
            break
        out.append(item)
    if not out:
        raise CalibrationError(f"none of the {len(unreadable)} image files could be read (first: {unreadable[0]})")
    return out, unreadable


def face_crops(folder, embedder, detector, limit: int | None = None, log=None) -> np.ndarray:
    """Every face the detector finds in the folder's photos, cut as ``embedder``'s card says:
    (N, H, W, 3) uint8 BGR crops, photo by photo in name order. Stops after ``limit`` faces."""
    unreadable: list = []
    images = []
    crops = []
    for path, image in iter_images(image_files(folder), unreadable):
        images.append(path)
        for face in detector.detect(image):
            found = embedder.aligner.align(image, face.landmarks)
            crops.append(embedder.aligner.crop(image, found))
            if limit is not None and len(crops) >= limit:
                break
        if limit is not None and len(crops) >= limit:
            break
    if log:
        log(f"{len(crops)} faces from {len(images)} photos in {folder}"
            + (f" ({len(unreadable)} unreadable files skipped)" if unreadable else ""))
    if not images:
        raise CalibrationError(f"none of the {len(unreadable)} image files in {folder} could be read "
                               f"(first: {unreadable[0]})")
    if not crops:
        raise CalibrationError(f"no faces found in the {len(images)} photos of {folder}")
    return np.stack(crops)


def photos(folder, limit: int | None = None) -> list[np.ndarray]:
    images, _ = read_images(image_files(folder), limit)
    return [image for _, image in images]


def _to_order(bgr: np.ndarray, order: str) -> np.ndarray:
    if order == "RGB":
        return bgr[..., ::-1]
    if order == "GRAY":
        import cv2

        return cv2.cvtColor(np.ascontiguousarray(bgr), cv2.COLOR_BGR2GRAY)[..., None]
    return bgr


def normalized(bgr: np.ndarray, order: str, mean, scale) -> np.ndarray:
    """The planar float network input of a BGR uint8 image, as the core makes it:
    ``(pixel - mean) * scale`` per channel, in the card's channel order."""
    x = _to_order(bgr, order).astype(np.float32)
    channels = x.shape[-1]
    mean = np.broadcast_to(np.asarray(mean, np.float32), 3)[:channels]
    scale = np.broadcast_to(np.asarray(scale, np.float32), 3)[:channels]
    return np.ascontiguousarray(((x - mean) * scale).transpose(2, 0, 1))


def detector_canvas(bgr: np.ndarray, max_side: int = 640, fixed=(0, 0)) -> np.ndarray:
    """The photo as the Detector feeds it: a dynamic-size model gets it shrunk to ``max_side`` and
    padded with zeros at the bottom and right to a multiple of 32; a ``fixed`` (w, h) one gets
    it fitted into its input at the top left."""
    import cv2

    height, width = bgr.shape[:2]
    if fixed[0] > 0:
        scale = min(fixed[0] / width, fixed[1] / height)
    else:
        scale = min(1.0, max_side / max(height, width))
    if scale != 1.0:
        bgr = cv2.resize(bgr, (max(1, round(width * scale)), max(1, round(height * scale))),
                         interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    height, width = bgr.shape[:2]
    if fixed[0] > 0:
        canvas = np.zeros((fixed[1], fixed[0], 3), np.uint8)
    else:
        canvas = np.zeros((max(32, -(-height // 32) * 32), max(32, -(-width // 32) * 32), 3), np.uint8)
    canvas[:height, :width] = bgr[:canvas.shape[0], :canvas.shape[1]]
    return canvas
