"""One Embedder, Detector, FaceAnalyzer, Gallery and Liveness shared by 8 threads give exactly the serial
results. Inputs are small so 8 x 1000 calls per object stay fast; FASTFACE_STRESS_CALLS lowers
the calls per thread where every call costs more (sanitizer build, qemu)."""
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import fastface
from fastface.gallery import Gallery
from shared_data import DEEPFACE, RETINAFACE_PARAM, require

THREADS = 8
CALLS = int(os.environ.get("FASTFACE_STRESS_CALLS", "1000"))
SIZE = 32  # the tiny embedder's input: 32x32x3 -> conv 8x3x3/2 -> ReLU -> fc 16

TINY_PARAM = """7767517
4 4
Input data 0 1 data 0=32 1=32 2=3
Convolution conv 1 1 data conv 0=8 1=3 3=2 5=1 6=216
ReLU relu 1 1 conv relu
InnerProduct fc 1 1 relu fc 0=16 1=1 2=28800
"""
TINY_CARD = {"input": "data", "output": "fc", "size": SIZE, "channel_order": "RGB", "mean": 127.5,
             "scale": 1 / 128, "dim": 16}


def tiny_embedder(threads=1):
    rng = np.random.default_rng(0)
    flag = np.zeros(1, np.uint32).tobytes()  # raw fp32 weights follow
    weights = b"".join(flag + rng.standard_normal(n).astype(np.float32).tobytes() + bias
                       for n, bias in [(216, np.zeros(8, np.float32).tobytes()),
                                       (28800, rng.standard_normal(16).astype(np.float32).tobytes())])
    return fastface.Embedder(TINY_PARAM.encode(), bin=weights, card=TINY_CARD, threads=threads)


def hammer(call, inputs, calls=None):
    """Serial results per input, then THREADS threads x ``calls`` (default CALLS) calls over the
    inputs; every threaded result must equal the serial one bit for bit."""
    expected = [call(x) for x in inputs]
    calls = CALLS if calls is None else calls

    def worker(t):
        mismatches = 0
        for i in range(calls):
            k = (t * 7 + i) % len(inputs)
            mismatches += not equal(call(inputs[k]), expected[k])
        return mismatches

    with ThreadPoolExecutor(THREADS) as pool:
        assert sum(pool.map(worker, range(THREADS))) == 0
    return expected


def equal(a, b):
    if isinstance(a, np.ndarray):
        return np.array_equal(a, b)
    if isinstance(a, fastface.Face):
        return (np.array_equal(a.bbox, b.bbox) and a.score == b.score and np.array_equal(a.landmarks, b.landmarks)
                and equal(a.embedding, b.embedding))
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(equal(x, y) for x, y in zip(a, b))
    return a == b


def test_embedder_shared_by_threads():
    rng = np.random.default_rng(1)
    crops = [rng.integers(0, 256, (2, SIZE, SIZE, 3), dtype=np.uint8) for _ in range(16)]
    model = tiny_embedder()
    expected = hammer(lambda c: model.embed(c), crops)
    assert len({e.tobytes() for e in expected}) == len(crops)  # distinct inputs, distinct outputs


def test_gallery_shared_by_threads():
    rng = np.random.default_rng(2)
    gallery = Gallery(16)
    for i in range(50):
        gallery.add(f"person{i}", rng.standard_normal((3, 16)))
    queries = list(rng.standard_normal((16, 16)).astype(np.float32))
    expected = hammer(lambda q: gallery.search(q, k=3), queries)
    assert all(len(e) == 3 for e in expected)


@pytest.fixture(scope="module")
def photos():
    cv2 = pytest.importorskip("cv2", reason="reading the sample photos needs OpenCV")
    out = []
    for name in ("img1.jpg", "img12.jpg", "couple.jpg"):
        image = cv2.imread(str(DEEPFACE / name))
        scale = 64 / max(image.shape[:2])
        out.append(cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA))
    return out


@require(RETINAFACE_PARAM)
@require(DEEPFACE)
def test_detector_and_analyzer_shared_by_threads(photos):
    detector = fastface.Detector(RETINAFACE_PARAM, max_side=64, score_threshold=0.3)
    faces = hammer(detector.detect, photos)
    assert sum(len(f) for f in faces) >= 2
    analyzer = fastface.FaceAnalyzer(detector, tiny_embedder())
    analyzed = hammer(analyzer.analyze, photos)
    assert all(f.embedding is not None for faces in analyzed for f in faces)


def test_liveness_shared_by_threads():
    # Two networks per call (milliseconds each): a twentieth of the calls.
    rng = np.random.default_rng(3)
    inputs = [(rng.integers(0, 256, (96, 120, 3), dtype=np.uint8), [x, 20, x + 40, 70]) for x in (5, 30, 60, 90)]
    live = fastface.Liveness(threads=1)
    expected = hammer(lambda item: live.score(*item), inputs, calls=max(5, CALLS // 20))
    assert len(set(expected)) == len(inputs) and all(0.0 <= s <= 1.0 for s in expected)
