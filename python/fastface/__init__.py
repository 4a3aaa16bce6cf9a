"""fastface: fast, honest face recognition for embedded boards.

    import cv2, fastface
    model = fastface.Embedder("mobilefacenet.param")          # + .bin and .json card beside it
    crop = fastface.align(cv2.imread("a.jpg"), landmarks)      # 5 points: eyes, nose, mouth corners
    similarity = fastface.cosine(*model.embed([crop, other_crop]))

The runtime needs numpy and the C++ core only; training, export and evaluation live in
subpackages with their own extras.
"""
from . import _moved
from ._core import ModelError
from .analyze import FaceAnalyzer
from .align import ARCFACE_TEMPLATE, align, estimate_similarity
from .detect import Detector, Face
from .embed import Embedder, load_card
from .gallery import Gallery, GalleryError
from .landmarks import ShapePredictor
from .liveness import Liveness
from .match import cosine, search
from .stream import Event, FrameResult, Stream, StreamStats, TrackState, face_quality

__all__ = ["ARCFACE_TEMPLATE", "Detector", "Embedder", "Face", "FaceAnalyzer", "Gallery", "GalleryError", "ModelError",
           "align", "cosine", "estimate_similarity", "load_card", "search"]
__all__ += ["ShapePredictor"]
__all__ += ["Liveness"]
__all__ += ["Event", "FrameResult", "Stream", "StreamStats", "TrackState", "face_quality"]
__version__ = "0.1.0"
_moved.install()
