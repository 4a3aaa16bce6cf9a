"""Input checks shared by the runtime modules: turn what users pass into what the core takes,
or raise a ValueError/TypeError that says what was wrong."""
from __future__ import annotations

import numpy as np

CHANNEL_ORDERS = ("BGR", "RGB")


def as_image(image, name: str = "image") -> np.ndarray:
    """A uint8 (H, W) or (H, W, 1|3) array with packed pixels (copied only if needed)."""
    if image is None:
        raise TypeError(f"{name} is None (cv2.imread returns None for files it cannot read)")
    if not isinstance(image, np.ndarray):
        raise TypeError(f"{name} must be a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise ValueError(f"{name} must be uint8, got {image.dtype} (scale floats to 0..255 and cast)")
    if image.ndim not in (2, 3):
        raise ValueError(f"{name} must be HxW (gray) or HxWxC, got shape {image.shape}")
    if image.ndim == 3 and image.shape[2] not in (1, 3):
        raise ValueError(f"{name} must have 1 or 3 channels, got {image.shape[2]} "
                         "(drop alpha first, e.g. cv2.cvtColor(img, cv2.COLOR_BGRA2BGR))")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"{name} is empty: shape {image.shape}")
    channels = 1 if image.ndim == 2 else image.shape[2]
    # A length-1 channel axis is never stepped: numpy may give it any stride (gray[..., None]: 0).
    pixel_packed = image.strides[1] == channels and (channels == 1 or image.strides[2] == 1)
    if not pixel_packed or image.strides[0] < 0:
        image = np.ascontiguousarray(image)
    return image


def check_order(channel_order: str) -> str:
    order = str(channel_order).upper()
    if order not in CHANNEL_ORDERS:
        raise ValueError(f"channel_order must be 'BGR' or 'RGB', got {channel_order!r}")
    return order


def as_points(points, name: str, count: int | None = None) -> np.ndarray:
    """An (N, 2) float32 array of finite points."""
    try:
        array = np.asarray(points, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be an (N, 2) array of numbers: {exc}") from None
    if array.ndim != 2 or array.shape[1] != 2:
        raise ValueError(f"{name} must have shape (N, 2), got {array.shape}")
    if count is not None and array.shape[0] != count:
        raise ValueError(f"{name} has {array.shape[0]} points, expected {count}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contain NaN or infinity")
    return np.ascontiguousarray(array)


def as_size(size) -> tuple[int, int]:
    """(width, height) from an int or a pair."""
    if isinstance(size, (int, np.integer)):
        width = height = int(size)
    else:
        try:
            width, height = (int(v) for v in size)
        except (TypeError, ValueError):
            raise ValueError(f"size must be an int or (width, height), got {size!r}") from None
    if width <= 0 or height <= 0:
        raise ValueError(f"size must be positive, got {size!r}")
    return width, height
