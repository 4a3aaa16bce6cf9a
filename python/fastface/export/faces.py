"""The inputs of the parity gate: aligned face crops from a folder, or a deterministic
synthetic set; photos (letterboxed) for detectors. Images are uint8 BGR, (N, H, W, 3)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .._opencv import IMAGE_SUFFIXES
from .errors import ExportError
#: Size of the synthetic set when no folder is given.
SYNTHETIC_COUNT = 8
_SEED = 20250505  # fixed: the synthetic set is the same on every machine and every run


def synthetic_faces(count: int = SYNTHETIC_COUNT, size=(112, 112), seed: int = _SEED) -> np.ndarray:
    """``count`` deterministic face-like BGR images of ``size`` (width, height): a smooth
    random background, a skin-toned ellipse, dark blobs at the ArcFace landmark positions and
    fine noise, so every channel, spatial frequency and input range gets exercised."""
    width, height = (size, size) if isinstance(size, int) else size
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    u, v = xs / width, ys / height
    points = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655],
                       [70.7299, 92.2041]]) / 112.0
    out = np.empty((count, height, width, 3), np.uint8)
    for i in range(count):
        image = np.zeros((height, width, 3))
        for c in range(3):  # background: a few random plane waves per channel
            for _ in range(3):
                fx, fy, phase = rng.uniform(-4, 4), rng.uniform(-4, 4), rng.uniform(0, 2 * np.pi)
                image[..., c] += rng.uniform(20, 50) * np.sin(2 * np.pi * (fx * u + fy * v) + phase)
            image[..., c] += rng.uniform(60, 190)
        jitter = rng.normal(0, 0.02, 2)
        face = (((u - 0.5 - jitter[0]) / rng.uniform(0.3, 0.4)) ** 2
                + ((v - 0.55 - jitter[1]) / rng.uniform(0.4, 0.5)) ** 2) < 1
        skin = np.array([rng.uniform(80, 160), rng.uniform(110, 190), rng.uniform(150, 240)])  # BGR
        image[face] = 0.3 * image[face] + 0.7 * skin
        for (px, py) in points + rng.normal(0, 0.015, points.shape):
            blob = np.exp(-(((u - px) / 0.05) ** 2 + ((v - py) / 0.03) ** 2))
            image -= rng.uniform(60, 120) * blob[..., None]
        image += rng.normal(0, 6, image.shape)
        out[i] = np.clip(np.rint(image), 0, 255).astype(np.uint8)
    return out


def _read_color(path: Path) -> np.ndarray:
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise ExportError(f"cannot read image {path}")
    return image


def image_files(folder) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise ExportError(f"parity image folder {folder} does not exist")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise ExportError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {folder}")
    return files


def _need_cv2():
    from .._opencv import import_cv2

    try:
        import_cv2()
    except ImportError as exc:
        raise ExportError(str(exc)) from None


def load_faces(folder, size, limit: int | None = None) -> tuple[np.ndarray, list[str]]:
    """Aligned crops from ``folder`` (sorted, recursive, at most ``limit``), resized to ``size``
    (width, height) where they differ; returns (N, H, W, 3) BGR and their names."""
    _need_cv2()
    import cv2

    width, height = (size, size) if isinstance(size, int) else size
    files = image_files(folder)[:limit]
    crops = []
    for path in files:
        image = _read_color(path)
        if image.shape[:2] != (height, width):
            shrink = image.shape[0] > height or image.shape[1] > width
            image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
        crops.append(image)
    return np.stack(crops), [str(p.relative_to(folder)) for p in files]


def letterbox(image: np.ndarray, size) -> np.ndarray:
    """``image`` scaled to fit ``size`` (width, height), top-left, zero padding (as fastface's
    fixed-size detectors see it)."""
    import cv2

    width, height = size
    scale = min(width / image.shape[1], height / image.shape[0])
    resized = cv2.resize(image, (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale))),
                         interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    canvas = np.zeros((height, width, 3), np.uint8)
    canvas[:resized.shape[0], :resized.shape[1]] = resized
    return canvas


def load_photos(source, size, limit: int | None = None) -> tuple[np.ndarray, list[str]]:
    """Photos (a folder or a list of files) letterboxed to ``size`` for a detector's gate."""
    _need_cv2()
    files = image_files(source) if isinstance(source, (str, Path)) and Path(source).is_dir() else \
        [Path(p) for p in ([source] if isinstance(source, (str, Path)) else source)]
    files = files[:limit]
    return np.stack([letterbox(_read_color(p), size) for p in files]), [p.name for p in files]


def gate_images(given, size, limit, synthetic_count: int, load, what: str) -> tuple[np.ndarray, list[str], str]:
    """The images a parity gate runs on: ``given`` as an array, a folder read by ``load``, or
    (None) the fixed synthetic set; returns them with per-image names and a description."""
    width, height = size
    if given is None:
        pixels = synthetic_faces(limit or synthetic_count, size)
        names, description = [f"synthetic-{i}" for i in range(len(pixels))], f"{len(pixels)} synthetic {what} (fixed seed)"
    elif isinstance(given, np.ndarray):
        pixels = given[:limit]
        names, description = [f"given-{i}" for i in range(len(pixels))], f"{len(pixels)} given {what}"
    else:
        pixels, names = load(given, size, limit)
        description = f"{len(pixels)} {what} from {given}"
    if pixels.ndim != 4 or pixels.shape[1:] != (height, width, 3) or pixels.dtype != np.uint8:
        raise ExportError(f"parity {what} must be uint8 (N, {height}, {width}, 3), got {pixels.dtype} {pixels.shape}")
    return pixels, names, description

