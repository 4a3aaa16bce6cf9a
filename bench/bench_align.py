"""align (estimate + warp + normalize to the network input) vs the OpenCV + numpy path.

Target: fastface >= 10x faster. Compare the two groups' means in one run's JSON.
"""
import cv2
import numpy as np
import pytest

import fastface
from fastface import _core

MEAN, SCALE = [127.5] * 3, [1 / 128] * 3


@pytest.fixture(scope="module")
def photo_and_landmarks():
    rng = np.random.default_rng(0)
    photo = rng.integers(0, 256, (720, 1280, 3), dtype=np.uint8)
    angle, scale = 0.2, 1.8
    m = np.array([[scale * np.cos(angle), -scale * np.sin(angle), 500], [scale * np.sin(angle), scale * np.cos(angle), 200]])
    return photo, (fastface.ARCFACE_TEMPLATE @ m[:, :2].T + m[:, 2]).astype(np.float32)


def opencv_align(photo, landmarks):
    matrix, _ = cv2.estimateAffinePartial2D(landmarks, fastface.ARCFACE_TEMPLATE, method=cv2.LMEDS)
    crop = cv2.warpAffine(photo, matrix, (112, 112))
    return ((crop[..., ::-1].astype(np.float32) - 127.5) * (1 / 128)).transpose(2, 0, 1)


def fastface_align(photo, landmarks):
    dst_to_src = _core.invert_affine(_core.estimate_similarity(landmarks, fastface.ARCFACE_TEMPLATE))
    return _core.warp_planar(photo, "BGR", dst_to_src, 112, 112, "RGB", MEAN, SCALE)


@pytest.mark.benchmark(group="align-normalized")
def test_opencv_numpy(benchmark, photo_and_landmarks):
    cv2.setNumThreads(1)
    out = benchmark(opencv_align, *photo_and_landmarks)
    assert out.shape == (3, 112, 112)


@pytest.mark.benchmark(group="align-normalized")
def test_fastface(benchmark, photo_and_landmarks):
    out = benchmark(fastface_align, *photo_and_landmarks)
    np.testing.assert_allclose(out, opencv_align(*photo_and_landmarks), atol=2.5 / 128)


@pytest.mark.benchmark(group="align-crop")
def test_opencv_crop(benchmark, photo_and_landmarks):
    photo, landmarks = photo_and_landmarks
    cv2.setNumThreads(1)
    benchmark(lambda: cv2.warpAffine(photo, cv2.estimateAffinePartial2D(landmarks, fastface.ARCFACE_TEMPLATE,
                                                                        method=cv2.LMEDS)[0], (112, 112)))


@pytest.mark.benchmark(group="align-crop")
def test_fastface_crop(benchmark, photo_and_landmarks):
    benchmark(fastface.align, *photo_and_landmarks)


@pytest.mark.parametrize("isa", _core.available_isas())
@pytest.mark.benchmark(group="warp-kernel")
def test_warp_kernel(benchmark, photo_and_landmarks, isa):
    photo, landmarks = photo_and_landmarks
    dst_to_src = _core.invert_affine(_core.estimate_similarity(landmarks, fastface.ARCFACE_TEMPLATE))
    benchmark(_core.warp_planar, photo, "BGR", dst_to_src, 112, 112, "RGB", MEAN, SCALE, 0, isa)
