"""OpenCV, imported only where image files are read or written (``import fastface`` stays
light: numpy and the core)."""
from __future__ import annotations

#: What to do when OpenCV is missing. PyPI has no OpenCV wheel for 32-bit ARM, so there
#: ``pip install .`` leaves it out (an environment marker) rather than build it for hours.
INSTALL_HINT = ("reading images needs OpenCV: pip install opencv-python-headless; on 32-bit ARM "
                "(armv7l, e.g. 32-bit Raspberry Pi OS) use the system's: sudo apt-get install python3-opencv "
                "(in a venv made with --system-site-packages)")


def import_cv2():
    """The cv2 module, or ImportError saying how to install it."""
    try:
        import cv2
    except ImportError:
        raise ImportError(INSTALL_HINT) from None
    return cv2


#: Photo file types the command line and evaluation pick up from folders.
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".pgm", ".ppm", ".tif", ".tiff", ".webp"}


def read_image(path):
    """The BGR image in the file at ``path``; FileNotFoundError / ValueError saying which."""
    from pathlib import Path

    image = import_cv2().imread(str(path), 1)
    if image is None:
        if not Path(path).is_file():
            raise FileNotFoundError(f"no image at {path}")
        raise ValueError(f"{path} is not a readable image")
    return image
