"""Where fastface's 5 landmarks fall in dlib's face chips, fitted on real faces.

dlib's network was trained on chips cut by ``get_face_chip_details(shape, 150, 0.25)`` from its
own 5-point shape predictor (eye corners and the point under the nose), which fastface's
detectors do not output. So the template for fastface's landmarks (eye centres, nose tip, mouth
corners) is measured: for each face, dlib's HOG detector + 5-point predictor give dlib's chip
transform, a YuNet detector gives the five landmarks, and the landmarks mapped into the chip are
averaged over all faces. :func:`compare_crops` then shows how close fastface's crop (those
landmarks warped to the template) comes to dlib's chip of the same face.

    python -m fastface.export.dlib_template PHOTO_DIR... --yunet face_detection_yunet_2023mar.onnx \
        --models DLIB_MODEL_DIR [--embedder dlib_resnet_v1.param]

Needs dlib (``pip install dlib-bin``) and OpenCV; a development tool, not used at run time.
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np

from .._opencv import IMAGE_SUFFIXES

CHIP_SIZE, CHIP_PADDING = 150, 0.25  # what face_recognition / dlib's compute_face_descriptor use


def chip_transform(details) -> np.ndarray:
    """The 2x3 affine from image to chip pixels of a ``dlib.chip_details`` (dlib's
    ``get_mapping_to_chip``: the rect's corners rotated by ``angle`` about its centre go to
    the chip's corners)."""
    rect = details.rect
    left, top, right, bottom = rect.left(), rect.top(), rect.right(), rect.bottom()
    cx, cy = (left + right) / 2, (top + bottom) / 2
    c, s = math.cos(details.angle), math.sin(details.angle)

    def rotate(x, y):
        dx, dy = x - cx, y - cy
        return [dx * c - dy * s + cx, dx * s + dy * c + cy]

    src = np.array([rotate(left, top), rotate(right, top), rotate(right, bottom)])
    dst = np.array([[0, 0], [details.cols - 1, 0], [details.cols - 1, details.rows - 1]], np.float64)
    a = np.hstack([src, np.ones((3, 1))])
    return np.linalg.solve(a, dst).T


class DlibPipeline:
    """dlib's own path: HOG detector (upsampled once), 5-point predictor, 150x150 chip."""

    def __init__(self, models):
        import dlib

        self.dlib = dlib
        self.detector = dlib.get_frontal_face_detector()
        self.predictor = dlib.shape_predictor(str(Path(models) / "shape_predictor_5_face_landmarks.dat"))

    def largest(self, rgb: np.ndarray):
        """(dlib rectangle, full_object_detection) of the largest face, or None."""
        dets = self.detector(rgb, 1)
        if not dets:
            return None
        det = max(dets, key=lambda r: r.area())
        return det, self.predictor(rgb, det)

    def chip(self, rgb: np.ndarray, shape) -> np.ndarray:
        return self.dlib.get_face_chip(rgb, shape, CHIP_SIZE, CHIP_PADDING)

    def details(self, shape):
        return self.dlib.get_face_chip_details(shape, CHIP_SIZE, CHIP_PADDING)


class YuNet:
    """OpenCV's FaceDetectorYN: (box, 5 landmarks) per face, landmarks in fastface's order."""

    def __init__(self, onnx):
        import cv2

        self.cv2, self.onnx = cv2, str(onnx)

    def faces(self, bgr: np.ndarray):
        height, width = bgr.shape[:2]
        detector = self.cv2.FaceDetectorYN.create(self.onnx, "", (width, height), 0.6, 0.3, 50)
        _, found = detector.detect(bgr)
        if found is None:
            return []
        # YuNet: right eye, left eye (the subject's: image left first), nose tip, mouth corners.
        return [(row[:4], row[4:14].reshape(5, 2).astype(np.float64)) for row in found]


def _iou(box, rect) -> float:
    x, y, w, h = box
    ax1, ay1, ax2, ay2 = x, y, x + w, y + h
    bx1, by1, bx2, by2 = rect.left(), rect.top(), rect.right() + 1, rect.bottom() + 1
    inter = max(0.0, min(ax2, bx2) - max(ax1, bx1)) * max(0.0, min(ay2, by2) - max(ay1, by1))
    return inter / ((ax2 - ax1) * (ay2 - ay1) + (bx2 - bx1) * (by2 - by1) - inter)


def read_rgb(path) -> np.ndarray:
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"cannot read {path}")
    return np.ascontiguousarray(image[..., ::-1])


def matched_faces(paths, yunet_onnx, models):
    """Per image where both find a face: (path, rgb, dlib shape, dlib chip_details, YuNet landmarks)
    for the largest dlib face and the YuNet face overlapping it most (IoU >= 0.3)."""
    dlib_path, yunet = DlibPipeline(models), YuNet(yunet_onnx)
    for path in paths:
        rgb = read_rgb(path)
        found = dlib_path.largest(rgb)
        if found is None:
            continue
        det, shape = found
        candidates = yunet.faces(np.ascontiguousarray(rgb[..., ::-1]))
        if not candidates:
            continue
        box, landmarks = max(candidates, key=lambda c: _iou(c[0], det))
        if _iou(box, det) < 0.3:
            continue
        yield path, rgb, shape, dlib_path.details(shape), landmarks


def fit_template(paths, yunet_onnx, models) -> dict:
    """The mean of YuNet's landmarks in dlib's chips over ``paths``; with the per-point spread."""
    points, used = [], []
    for path, _, _, details, landmarks in matched_faces(paths, yunet_onnx, models):
        m = chip_transform(details)
        points.append(landmarks @ m[:, :2].T + m[:, 2])
        used.append(str(path))
    if not points:
        raise ValueError("no face found by both detectors")
    points = np.stack(points)
    return {"template": np.round(points.mean(0), 4).tolist(), "faces": len(points),
            "spread_px": np.round(points.std(0), 3).tolist(), "images": used}


def compare_crops(paths, yunet_onnx, template, models, embedder=None) -> dict:
    """fastface's crop (YuNet landmarks, similarity warp to ``template``) against dlib's
    ``get_face_chip`` of the same face: mean absolute pixel difference (0..255, RGB) per face
    and, with an ``embedder`` (fastface.Embedder of the converted network), the cosine between
    the two crops' embeddings."""
    from .. import align

    diffs, cosines = [], []
    pipeline = DlibPipeline(models)
    for _, rgb, shape, _, landmarks in matched_faces(paths, yunet_onnx, models):
        dlib_chip = pipeline.chip(rgb, shape)
        crop = align(rgb, landmarks, size=CHIP_SIZE, template=np.asarray(template, np.float32), channel_order="RGB")
        diffs.append(float(np.abs(crop.astype(np.float64) - dlib_chip).mean()))
        if embedder is not None:
            a, b = embedder.embed(np.stack([crop, dlib_chip]), channel_order="RGB")
            cosines.append(float(a @ b))
    out = {"faces": len(diffs), "mean_abs_pixel_diff": float(np.mean(diffs)) if diffs else math.nan,
           "max_abs_pixel_diff_per_face": float(np.max(diffs)) if diffs else math.nan}
    if cosines:
        out.update(mean_cosine=float(np.mean(cosines)), min_cosine=float(np.min(cosines)))
    return out


def image_paths(folders) -> list[Path]:
    out = []
    for folder in folders:
        folder = Path(folder)
        out += sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", help="folders of photos (searched recursively)")
    parser.add_argument("--yunet", required=True, help="OpenCV YuNet ONNX (face_detection_yunet_2023mar.onnx)")
    parser.add_argument("--models", required=True, help="folder with shape_predictor_5_face_landmarks.dat")
    parser.add_argument("--embedder", help="converted dlib model .param, to report embedding cosines")
    args = parser.parse_args(argv)
    paths = image_paths(args.folders)
    fit = fit_template(paths, args.yunet, Path(args.models))
    embedder = None
    if args.embedder:
        from .. import Embedder

        embedder = Embedder(args.embedder)
    crops = compare_crops(paths, args.yunet, fit["template"], Path(args.models), embedder)
    print(json.dumps({k: v for k, v in fit.items() if k != "images"} | {"crop_vs_dlib": crops}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
