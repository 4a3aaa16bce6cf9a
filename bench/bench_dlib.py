"""Embedding one aligned face, 1 thread: fastface's bundled dlib ResNet (ncnn, fp16 weights) vs
dlib itself (dlib-bin, what face_recognition runs) on the same dlib chips. Target: >= 3x faster."""
import time

import numpy as np
import pytest

import fastface
from shared_data import DLIB_RESNET, ORL, require

pytestmark = [require(DLIB_RESNET), require(ORL)]
DAT = DLIB_RESNET / "dlib_face_recognition_resnet_model_v1.dat"


@pytest.fixture(scope="module")
def chips(dlib):
    """dlib's own 150x150 RGB chips (HOG + 5-point + get_face_chip) of a few ORL faces."""
    cv2 = pytest.importorskip("cv2")
    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(str(DLIB_RESNET / "shape_predictor_5_face_landmarks.dat"))
    out = []
    for subject in (1, 2, 3, 4):
        rgb = np.ascontiguousarray(cv2.imread(str(ORL / f"s{subject}" / "1.pgm"), cv2.IMREAD_COLOR)[..., ::-1])
        found = detector(rgb, 1)
        if found:
            out.append(dlib.get_face_chip(rgb, predictor(rgb, found[0]), 150, 0.25))
    assert out, "dlib found no face in the ORL photos"
    return out


@pytest.fixture(scope="module")
def embed_dlib(dlib, chips):
    model = dlib.face_recognition_model_v1(str(DAT))
    return lambda: [model.compute_face_descriptor(chip) for chip in chips]


@pytest.fixture(scope="module")
def embed_fastface(chips):
    model = fastface.Embedder(threads=1)
    batches = [chip[None] for chip in chips]
    return lambda: [model.embed(batch, channel_order="RGB") for batch in batches]


@pytest.mark.benchmark(group="embed-dlib-resnet")
def test_dlib(benchmark, embed_dlib, chips):
    assert len(benchmark(embed_dlib)) == len(chips)


@pytest.mark.benchmark(group="embed-dlib-resnet")
def test_fastface(benchmark, embed_fastface, chips):
    assert len(benchmark(embed_fastface)) == len(chips)


def _median_ms(fn, runs: int) -> float:
    fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times)) * 1e3


def test_fastface_is_3x_faster_than_dlib(embed_dlib, embed_fastface, chips):
    dlib_ms = _median_ms(embed_dlib, 3) / len(chips)
    fastface_ms = _median_ms(embed_fastface, 5) / len(chips)
    print(f"\nper face, 1 thread: dlib {dlib_ms:.1f} ms, fastface {fastface_ms:.1f} ms, {dlib_ms / fastface_ms:.1f}x")
    assert dlib_ms >= 3 * fastface_ms
