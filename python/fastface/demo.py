"""The whole runtime path on data it makes itself (``fastface demo``, and the tests' tiny model).

:func:`run_demo` writes a small random-weight ncnn network (a stand-in for a trained recognizer), renders
synthetic "identities" (random textures) into larger photos under random similarity
transforms, then aligns, embeds, enrolls one photo per identity and identifies the rest.
Random weights still give embeddings that are stable under alignment, so top-1 accuracy near
100% shows the geometry and the plumbing are right; the timings are real.
"""
from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import _core
from .align import ARCFACE_TEMPLATE, align
from .embed import Embedder
from .match import search

# 112x112x3 -> conv3x3/2 (16) -> conv3x3/2 (32) -> conv3x3/2 (32, 14x14) -> fc 128
_PARAM = """7767517
8 8
Input data 0 1 data 0=112 1=112 2=3
Convolution c1 1 1 data c1 0=16 1=3 3=2 4=1 5=1 6=432
ReLU r1 1 1 c1 r1
Convolution c2 1 1 r1 c2 0=32 1=3 3=2 4=1 5=1 6=4608
ReLU r2 1 1 c2 r2
Convolution c3 1 1 r2 c3 0=32 1=3 3=2 4=1 5=1 6=9216
Flatten f 1 1 c3 f
InnerProduct fc1 1 1 f fc1 0=128 1=1 2=802816
"""
_WEIGHT_SHAPES = [(432, 16), (4608, 32), (9216, 32), (802816, 128)]  # (weights, biases) per layer


def write_demo_model(folder: Path, seed: int = 0) -> Path:
    """Random He-initialised weights in ncnn's .bin layout, plus a model card."""
    rng = np.random.default_rng(seed)
    chunks = []
    for n_weights, n_bias in _WEIGHT_SHAPES:
        fan_in = n_weights // n_bias
        chunks += [np.zeros(1, np.uint32).tobytes(),  # fp32 type flag
                   (rng.standard_normal(n_weights) * np.sqrt(2.0 / fan_in)).astype(np.float32).tobytes(),
                   np.zeros(n_bias, np.float32).tobytes()]
    (folder / "demo.param").write_text(_PARAM)
    (folder / "demo.bin").write_bytes(b"".join(chunks))
    (folder / "demo.json").write_text('{"input": "data", "output": "fc1", "size": 112, "channel_order": "RGB", '
                                      '"mean": 127.5, "scale": 0.0078125, "dim": 128}')
    return folder / "demo.param"


def _texture(rng: np.random.Generator) -> np.ndarray:
    """A smooth random colour image: a few hundred soft blobs."""
    yy, xx = np.mgrid[0:112, 0:112].astype(np.float32)
    image = np.zeros((112, 112, 3), np.float32)
    for _ in range(40):
        cx, cy, r = rng.uniform(0, 112), rng.uniform(0, 112), rng.uniform(4, 20)
        image += rng.uniform(-1, 1, 3) * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r * r))[..., None]
    image = (image - image.min()) / (np.ptp(image) + 1e-6) * 255
    return image.astype(np.uint8)


def _photo(rng: np.random.Generator, face: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The face pasted into a 400x320 photo under a random similarity about its centre (fully in
    frame); returns the photo and its 5 landmarks with half-pixel detector-like jitter."""
    angle, scale = rng.uniform(-0.5, 0.5), rng.uniform(0.7, 1.3)
    rotation = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    centre = np.array([200.0, 160.0]) + rng.uniform(-40, 40, 2)
    face_to_photo = np.hstack([rotation, (centre - rotation @ [56.0, 56.0])[:, None]])
    photo = _core.warp_u8(face, "BGR", _core.invert_affine(face_to_photo), 400, 320, 0)
    noisy = photo.astype(np.int16) + rng.integers(-6, 7, photo.shape)
    landmarks = ARCFACE_TEMPLATE @ rotation.T + face_to_photo[:, 2]
    return np.clip(noisy, 0, 255).astype(np.uint8), landmarks + rng.normal(0, 0.5, landmarks.shape)


@dataclass
class DemoResult:
    identities: int
    photos: int
    dim: int
    align_us_per_face: float
    embed_ms_per_face: float
    search_us_per_query: float
    correct: int
    queries: int

    @property
    def accuracy(self) -> float:
        return self.correct / self.queries


def run_demo(identities: int = 50, photos: int = 4, threads: int = 1, seed: int = 0) -> DemoResult:
    """Enrol the first photo of each synthetic identity, identify the others (top-1), timing
    each stage."""
    if identities < 2 or photos < 2:
        raise ValueError("need at least 2 identities and 2 photos per identity")
    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory() as tmp:
        model = Embedder(write_demo_model(Path(tmp), seed), threads=threads)
    scenes = [[_photo(rng, face) for _ in range(photos)] for face in (_texture(rng) for _ in range(identities))]

    start = time.perf_counter()
    crops = [[align(photo, landmarks) for photo, landmarks in person] for person in scenes]
    align_s = time.perf_counter() - start
    start = time.perf_counter()
    embeddings = np.stack([model.embed(person) for person in crops])  # (identities, photos, dim)
    embed_s = time.perf_counter() - start

    gallery, queries = embeddings[:, 0], embeddings[:, 1:].reshape(-1, model.dim)
    truth = np.repeat(np.arange(identities), photos - 1)
    start = time.perf_counter()
    indices, _ = search(queries, gallery, k=1)
    search_s = time.perf_counter() - start
    faces = identities * photos
    return DemoResult(identities, photos, model.dim, align_s / faces * 1e6, embed_s / faces * 1e3,
                      search_s / len(queries) * 1e6, int(np.sum(indices[:, 0] == truth)), len(queries))
