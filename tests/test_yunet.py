"""YuNet (Apache-2.0) converted by pnnx and decoded in the core, checked against OpenCV's."""
import cv2
import numpy as np
import pytest

import fastface
from shared_data import DEEPFACE, YUNET_ONNX, convert_yunet, require

pytestmark = [require(YUNET_ONNX), require(DEEPFACE)]


@pytest.fixture(scope="module")
def yunet_param(tmp_path_factory):
    return convert_yunet(tmp_path_factory.mktemp("yunet"))


@pytest.fixture(scope="module")
def detector(yunet_param):
    return fastface.Detector(yunet_param, kind="yunet")


def letterbox(image, size=640):
    scale = size / max(image.shape[:2])
    resized = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    canvas = np.zeros((size, size, 3), np.uint8)
    canvas[:resized.shape[0], :resized.shape[1]] = resized
    return canvas


@pytest.mark.parametrize("name", ["couple.jpg", "selfie-many-people.jpg", "img1.jpg", "img12.jpg", "img22.jpg"])
def test_equals_opencv_face_detector_yn(detector, name):
    canvas = letterbox(cv2.imread(str(DEEPFACE / name)))  # the same network input for both
    reference = cv2.FaceDetectorYN.create(str(YUNET_ONNX), "", (640, 640), 0.5, 0.4)
    _, expected = reference.detect(canvas)
    faces = detector.detect(canvas)
    assert len(faces) == len(expected) > 0
    expected = expected[np.argsort(-expected[:, -1])]
    boxes = np.clip(np.c_[expected[:, :2], expected[:, :2] + expected[:, 2:4]], 0, 640)  # fastface clips to the image
    np.testing.assert_allclose([f.bbox for f in faces], boxes, atol=1.0)
    np.testing.assert_allclose([f.landmarks for f in faces], expected[:, 4:14].reshape(-1, 5, 2), atol=1.0)
    np.testing.assert_allclose([f.score for f in faces], expected[:, -1], atol=1e-3)


def test_every_sample_photo_and_big_images(detector):
    for i in range(1, 26):
        image = cv2.imread(str(DEEPFACE / f"img{i}.jpg"))
        faces = detector.detect(image)
        assert faces and faces[0].score > 0.8, f"img{i}.jpg"
        x1, y1, x2, y2 = faces[0].bbox
        assert np.all((faces[0].landmarks >= [x1, y1]) & (faces[0].landmarks <= [x2, y2]))
    assert len(detector.detect(cv2.imread(str(DEEPFACE / "couple.jpg")))) == 2


def test_wrong_outputs_are_reported(yunet_param):
    with pytest.raises(fastface.ModelError, match="is 6400x1, expected 6400x4"):
        fastface.Detector(yunet_param, kind="yunet",
                          card={"outputs": [f"out{i}" for i in (0, 1, 2, 3, 4, 5, 0, 1, 2, 9, 10, 11)]})
    with pytest.raises(fastface.ModelError, match="does not fit the YuNet decoder"):
        fastface.Detector(yunet_param, kind="yunet", card={"outputs": [f"cls_{i}" for i in range(12)]})
