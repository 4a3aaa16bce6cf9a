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
