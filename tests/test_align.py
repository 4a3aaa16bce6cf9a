"""Alignment agrees with OpenCV and with an independent least-squares reference."""
import platform
import cv2
import numpy as np
import pytest

import fastface
from fastface import _core

ISAS = _core.available_isas()


def umeyama(src, dst):
    """Reference least-squares similarity (Umeyama 1991 via SVD, as skimage does)."""
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    a, b = src - mu_s, dst - mu_d
    u, s, vt = np.linalg.svd(b.T @ a / len(src))
    d = np.diag([1.0, np.sign(np.linalg.det(u @ vt))])
    rotation = u @ d @ vt
    scale = np.trace(np.diag(s) @ d) / (a ** 2).sum(1).mean()
    return np.hstack([scale * rotation, (mu_d - scale * rotation @ mu_s)[:, None]])


def random_similarity(rng, max_scale=3.0):
    angle, scale = rng.uniform(-np.pi, np.pi), rng.uniform(0.3, max_scale)
    return np.array([[scale * np.cos(angle), -scale * np.sin(angle), rng.uniform(-50, 300)],
                     [scale * np.sin(angle), scale * np.cos(angle), rng.uniform(-50, 300)]])


def apply(matrix, points):
    return points @ matrix[:, :2].T + matrix[:, 2]


def test_template_is_arcface():
    expected = [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]]
    assert fastface.ARCFACE_TEMPLATE.dtype == np.float32 and fastface.ARCFACE_TEMPLATE.shape == (5, 2)
    np.testing.assert_allclose(fastface.ARCFACE_TEMPLATE, expected, atol=1e-4)
    with pytest.raises(ValueError):
        fastface.ARCFACE_TEMPLATE[0, 0] = 0  # shared constant is read-only


@pytest.mark.parametrize("seed", range(10))
def test_similarity_equals_opencv_on_exact_points(seed):
    rng = np.random.default_rng(seed)
    landmarks = apply(random_similarity(rng), fastface.ARCFACE_TEMPLATE).astype(np.float32)
    ours = fastface.estimate_similarity(landmarks, fastface.ARCFACE_TEMPLATE)
    theirs, _ = cv2.estimateAffinePartial2D(landmarks, fastface.ARCFACE_TEMPLATE)
    assert ours.shape == (2, 3) and ours.dtype == np.float64
    np.testing.assert_allclose(ours, theirs, atol=1e-4)


@pytest.mark.parametrize("seed", range(10))
def test_similarity_is_least_squares_on_noisy_points(seed):
    rng = np.random.default_rng(seed)
    landmarks = apply(random_similarity(rng), fastface.ARCFACE_TEMPLATE) + rng.normal(0, 2.0, (5, 2))
    landmarks = landmarks.astype(np.float32)
    ours = fastface.estimate_similarity(landmarks, fastface.ARCFACE_TEMPLATE)
    np.testing.assert_allclose(ours, umeyama(landmarks, fastface.ARCFACE_TEMPLATE), atol=1e-4)
    # OpenCV's robust estimator refines on all inliers: it lands on the same least-squares fit.
    theirs, inliers = cv2.estimateAffinePartial2D(landmarks, fastface.ARCFACE_TEMPLATE, ransacReprojThreshold=100)
    assert inliers.all()
    np.testing.assert_allclose(ours, theirs, atol=1e-3)


def face_photo(rng, channels=3, size=(480, 360)):
    """A smooth random image (bilinear interpolation differences stay small on it)."""
    small = rng.integers(0, 256, (size[1] // 8, size[0] // 8, channels), dtype=np.uint8)
    image = cv2.resize(small, size, interpolation=cv2.INTER_CUBIC)
    return image if channels == 3 else image.reshape(size[1], size[0])


@pytest.mark.parametrize("channels", [3, 1])
@pytest.mark.parametrize("seed", range(6))
def test_crop_equals_opencv_warp(channels, seed):
    rng = np.random.default_rng(seed)
    image = face_photo(rng, channels)
    # Faces of different sizes and rotations; seeds 4-5 put the face partly outside the frame.
    face_to_photo = random_similarity(rng, 2.5)
    face_to_photo[:, 2] = [rng.uniform(-60, 400), rng.uniform(-60, 300)] if seed >= 4 else [150, 100]
    landmarks = apply(face_to_photo, fastface.ARCFACE_TEMPLATE)
    crop = fastface.align(image, landmarks)
    matrix = fastface.estimate_similarity(landmarks, fastface.ARCFACE_TEMPLATE)
    expected = cv2.warpAffine(image, matrix, (112, 112), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    assert crop.shape == expected.shape and crop.dtype == np.uint8
    diff = np.abs(crop.astype(int) - expected)
    # OpenCV's ARM build rounds up to 4 levels away from its x86 build on a few pixels; fastface's
    # NEON warp equals its scalar reference exactly there (test_fused_..., the C++ tests).
    assert diff.mean() < 0.5 and diff.max() <= (4 if platform.machine().lower() in ("aarch64", "arm64") else 2)


@pytest.mark.parametrize("isa", ISAS)
def test_fused_normalized_input_equals_opencv_then_numpy(isa):
    rng = np.random.default_rng(42)
    image = face_photo(rng)
    landmarks = apply(random_similarity(rng, 2.0), fastface.ARCFACE_TEMPLATE) + [150, 100]
    matrix = fastface.estimate_similarity(landmarks, fastface.ARCFACE_TEMPLATE)
    mean, scale = [127.5, 127.5, 127.5], [1 / 128] * 3
    planar = _core.warp_planar(image, "BGR", _core.invert_affine(matrix), 112, 112, "RGB", mean, scale, 0, isa)
    crop = cv2.warpAffine(image, matrix, (112, 112))
    expected = ((crop[..., ::-1].astype(np.float32) - 127.5) / 128).transpose(2, 0, 1)
    assert planar.shape == (3, 112, 112)
    assert np.abs(planar - expected).max() <= 2.5 / 128  # <= 2 levels of the uint8 crop


@pytest.mark.parametrize("isa", ISAS[1:])
def test_simd_equals_scalar_on_real_sized_images(isa):
    rng = np.random.default_rng(7)
    for channels in (1, 3):
        image = rng.integers(0, 256, (301, 407, 3) if channels == 3 else (301, 407), dtype=np.uint8)
        for _ in range(20):
            dst_to_src = _core.invert_affine(random_similarity(rng, 1.5))
            ref = _core.warp_planar(image, "BGR", dst_to_src, 112, 96, "RGB", [1, 2, 3], [0.5, 1, 2], 9, "scalar")
            got = _core.warp_planar(image, "BGR", dst_to_src, 112, 96, "RGB", [1, 2, 3], [0.5, 1, 2], 9, isa)
            np.testing.assert_allclose(got, ref, atol=2e-3)
            ref_u8 = _core.warp_u8(image, "BGR", dst_to_src, 112, 96, 9, "scalar")
            got_u8 = _core.warp_u8(image, "BGR", dst_to_src, 112, 96, 9, isa)
            assert np.abs(ref_u8.astype(int) - got_u8).max() <= 1


def test_rgb_option_and_row_stride():
    rng = np.random.default_rng(3)
    image = face_photo(rng)
    landmarks = fastface.ARCFACE_TEMPLATE * 1.5 + [100, 80]
    bgr_crop = fastface.align(image, landmarks)
    # A view with a row stride wider than its rows, and the same pixels in RGB order.
    wide = np.zeros((360, 600, 3), np.uint8)
    wide[:, 50:530] = image
    view = wide[:, 50:530]
    assert not view.flags.c_contiguous
    np.testing.assert_array_equal(fastface.align(view, landmarks), bgr_crop)
    rgb_crop = fastface.align(np.ascontiguousarray(image[..., ::-1]), landmarks, channel_order="RGB")
    np.testing.assert_array_equal(rgb_crop, bgr_crop[..., ::-1])
    # A negatively strided view (flipped) is copied, not misread.
    flipped = image[::-1]
    expected = fastface.align(np.ascontiguousarray(flipped), landmarks)
    np.testing.assert_array_equal(fastface.align(flipped, landmarks), expected)


def test_other_sizes_scale_the_template_and_custom_templates_work():
    rng = np.random.default_rng(5)
    image = face_photo(rng)
    landmarks = fastface.ARCFACE_TEMPLATE * 2 + [100, 50]
    crop = fastface.align(image, landmarks, size=224)
    expected = cv2.warpAffine(image, fastface.estimate_similarity(landmarks, fastface.ARCFACE_TEMPLATE * 2), (224, 224))
    assert crop.shape == (224, 224, 3) and np.abs(crop.astype(int) - expected).mean() < 0.5
    two_points = [[30, 40], [70, 40]]
    eyes = landmarks[:2]
    crop = fastface.align(image, eyes, size=(100, 80), template=two_points)
    matrix = fastface.estimate_similarity(eyes, two_points)
    expected = cv2.warpAffine(image, matrix, (100, 80))
    assert crop.shape == (80, 100, 3) and np.abs(crop.astype(int) - expected).mean() < 0.5
