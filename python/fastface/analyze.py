"""The whole path in one call: image -> faces with embeddings."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Optional

from ._checks import as_image, check_order
from .detect import Detector, Face
from .embed import Embedder
from .liveness import Liveness


class FaceAnalyzer:
    """Detect, align and embed: ``FaceAnalyzer(detector, embedder).analyze(image)``.

    ``FaceAnalyzer()`` uses the bundled models: ``Detector()`` and ``Embedder()`` (dlib's
    ResNet). ``flip=True`` averages each face's embedding with its mirror image's (twice the
    network time; see README "Accuracy"). ``liveness=True`` (or a :class:`fastface.Liveness`)
    also fills each face's ``.liveness``, the probability that it is a live person (None for
    faces under 8 pixels, too small to judge). Thread-safe; the C++ work releases the GIL, so ``analyze_many`` runs images in
    parallel.
    """

    def __init__(self, detector: Detector | None = None, embedder: Embedder | None = None, flip: bool = False,
                 liveness: bool | Liveness = False):
        detector = Detector() if detector is None else detector
        embedder = Embedder() if embedder is None else embedder
        if not isinstance(detector, Detector) or not isinstance(embedder, Embedder):
            raise TypeError("FaceAnalyzer needs a fastface.Detector and a fastface.Embedder")
        if not isinstance(flip, bool):
            raise TypeError(f"flip must be True or False, got {flip!r}")
        self.detector = detector
        self.embedder = embedder
        self.flip = flip
        if liveness is True:
            liveness = Liveness()
        elif liveness is False or liveness is None:
            liveness = None
        elif not isinstance(liveness, Liveness):
            raise TypeError(f"liveness must be True, False or a fastface.Liveness, got {liveness!r}")
        self.liveness = liveness

    def analyze(self, image, channel_order: str = "BGR") -> list[Face]:
        """Faces in ``image``, best first, each with ``.embedding`` (L2-normalized) filled."""
        image = as_image(image)
        order = check_order(channel_order)
        faces = self.detector.detect(image, order)
        for face in faces:
            face.embedding = self.embedder.embed_face(image, face, order, flip=self.flip)
            if self.liveness is not None and min(face.bbox[2] - face.bbox[0], face.bbox[3] - face.bbox[1]) >= 8:
                face.liveness = self.liveness.score(image, face, order)
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
