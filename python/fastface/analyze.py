"""The whole path in one call: image -> faces with embeddings."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Optional

from ._checks import as_image, check_order
from .detect import Detector, Face
from .embed import Embedder


class FaceAnalyzer:
    """Detect, align and embed: ``FaceAnalyzer(detector, embedder).analyze(image)``.

    ``FaceAnalyzer()`` uses the bundled models: ``Detector()`` and ``Embedder()`` (dlib's
    ResNet). ``flip=True`` averages each face's embedding with its mirror image's (twice the
    network time; see README "Accuracy"). Thread-safe; the C++ work releases the GIL, so ``analyze_many`` runs images in
    parallel.
    """

    def __init__(self, detector: Detector | None = None, embedder: Embedder | None = None, flip: bool = False):
        detector = Detector() if detector is None else detector
        embedder = Embedder() if embedder is None else embedder
        if not isinstance(detector, Detector) or not isinstance(embedder, Embedder):
            raise TypeError("FaceAnalyzer needs a fastface.Detector and a fastface.Embedder")
        if not isinstance(flip, bool):
            raise TypeError(f"flip must be True or False, got {flip!r}")
        self.detector = detector
        self.embedder = embedder
        self.flip = flip

    def analyze(self, image, channel_order: str = "BGR") -> list[Face]:
        """Faces in ``image``, best first, each with ``.embedding`` (L2-normalized) filled."""
        image = as_image(image)
        order = check_order(channel_order)
        faces = self.detector.detect(image, order)
        for face in faces:
            face.embedding = self.embedder.embed_face(image, face, order, flip=self.flip)
        return faces

    def largest_face(self, image, channel_order: str = "BGR") -> Optional[Face]:
        """The photo's subject as ``fastface verify`` and ``enroll`` take it: the largest face
        (the others are bystanders), with its embedding; None if there is no face."""
        faces = self.analyze(image, channel_order)
        return max(faces, key=lambda f: (f.bbox[2] - f.bbox[0]) * (f.bbox[3] - f.bbox[1]), default=None)

    def analyze_many(self, images, channel_order: str = "BGR", threads: int = 2) -> list[list[Face]]:
        """``analyze`` for each image, ``threads`` at a time."""
        with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
            return list(pool.map(lambda img: self.analyze(img, channel_order), images))
