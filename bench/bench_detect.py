"""Detection and the whole path, 1 thread, against what a user would hand-build with OpenCV.

- detect-small / detect-large: the bundled YuNet at the photo's own size (fastface) vs OpenCV's
  FaceDetectorYN on the same ONNX (the user sets the input size to the photo's, or resizes a
  large photo to 640 first). Target: not slower on small photos.
- whole-path: FaceAnalyzer (detect + fused align/normalize + MobileFaceNet) vs OpenCV YuNet +
  estimateAffinePartial2D + warpAffine + ncnn's Python package, on the small photos. Target:
  >= 1.3x faster, with the same faces found.
Compare the groups' means in one run's JSON (``--benchmark-json``).
"""
import cv2
import numpy as np
import pytest

import fastface
from fastface.detect import DEFAULT_DETECTOR
from shared_data import DEEPFACE, MOBILEFACENET, MOBILEFACENET_CARD, YUNET_DYNAMIC, require

ONNX = YUNET_DYNAMIC[DEFAULT_DETECTOR.split("_")[1]]
pytestmark = [require(ONNX), require(DEEPFACE), require(MOBILEFACENET)]
SMALL = 250  # LFW-sized photos


@pytest.fixture(scope="module")
def small_photos():
    """Every sample photo as a 250x250 crop around its centre (resized first), like LFW's."""
    photos = []
    for i in range(1, 26):
        image = cv2.imread(str(DEEPFACE / f"img{i}.jpg"))
        scale = SMALL / min(image.shape[:2])
        image = cv2.resize(image, (max(SMALL, round(image.shape[1] * scale)), max(SMALL, round(image.shape[0] * scale))),
                           interpolation=cv2.INTER_AREA)
        y, x = (image.shape[0] - SMALL) // 2, (image.shape[1] - SMALL) // 2
        photos.append(np.ascontiguousarray(image[y:y + SMALL, x:x + SMALL]))
    return photos


@pytest.fixture(scope="module")
def large_photo():
    return cv2.imread(str(DEEPFACE / "couple.jpg"))


def opencv_detector(size):
    cv2.setNumThreads(1)
    return cv2.FaceDetectorYN.create(str(ONNX), "", size, 0.5, 0.4)


def opencv_faces(detector, image):
    found = detector.detect(image)[1]
    return np.zeros((0, 15), np.float32) if found is None else found[np.argsort(-found[:, -1])]


def opencv_large(detector, image, max_side=640):
    """What a user does for a big photo: resize to max_side, detect, scale the points back."""
    scale = max_side / max(image.shape[:2])
    small = cv2.resize(image, (round(image.shape[1] * scale), round(image.shape[0] * scale)),
                       interpolation=cv2.INTER_AREA)
    faces = opencv_faces(detector, small)
    faces[:, :14] /= scale
    return faces


@pytest.mark.benchmark(group="detect-small-250px")
def test_opencv_yunet_small(benchmark, small_photos):
    detector = opencv_detector((SMALL, SMALL))
    found = benchmark(lambda: [opencv_faces(detector, p) for p in small_photos])
    assert sum(len(f) for f in found) >= len(small_photos)


@pytest.mark.benchmark(group="detect-small-250px")
def test_fastface_yunet_small(benchmark, small_photos):
    detector = fastface.Detector(threads=1)
    found = benchmark(lambda: [detector.detect(p) for p in small_photos])
    reference = [opencv_faces(opencv_detector((SMALL, SMALL)), p) for p in small_photos]
    for faces, expected in zip(found, reference):
        assert len(faces) == len(expected)
        np.testing.assert_allclose([f.landmarks for f in faces], expected[:, 4:14].reshape(-1, 5, 2), atol=1.0)


@pytest.mark.benchmark(group="detect-large")
def test_opencv_yunet_large(benchmark, large_photo):
    height, width = large_photo.shape[:2]
    scale = 640 / max(height, width)
    detector = opencv_detector((round(width * scale), round(height * scale)))
    assert len(benchmark(opencv_large, detector, large_photo)) == 2


@pytest.mark.benchmark(group="detect-large")
def test_fastface_yunet_large(benchmark, large_photo):
    detector = fastface.Detector(threads=1)
    faces = benchmark(detector.detect, large_photo)
    height, width = large_photo.shape[:2]
    scale = 640 / max(height, width)
    expected = opencv_large(opencv_detector((round(width * scale), round(height * scale))), large_photo)
    # Different shrinking (block average + bilinear vs INTER_AREA): same faces, points within 1% of the photo.
    assert len(faces) == len(expected) == 2
    np.testing.assert_allclose([f.landmarks for f in faces], expected[:, 4:14].reshape(-1, 5, 2),
                               atol=0.01 * max(height, width))


def hand_built_pipeline():
    """OpenCV YuNet -> OpenCV similarity + warp -> ncnn Python MobileFaceNet, for every face."""
    import ncnn

    detector = opencv_detector((SMALL, SMALL))
    net = ncnn.Net()
    net.opt.num_threads = 1
    net.load_param(str(MOBILEFACENET / "mobilefacenet.param"))
    net.load_model(str(MOBILEFACENET / "mobilefacenet.bin"))

    def run(photo):
        out = []
        for face in opencv_faces(detector, photo):
            # A threshold no landmark misses: the least-squares fit over all five, as insightface's.
            matrix, _ = cv2.estimateAffinePartial2D(face[4:14].reshape(5, 2), fastface.ARCFACE_TEMPLATE,
                                                    ransacReprojThreshold=1000)
            crop = cv2.warpAffine(photo, matrix, (112, 112))
            ex = net.create_extractor()
            ex.input("data", ncnn.Mat.from_pixels(crop, ncnn.Mat.PixelType.PIXEL_BGR2RGB, 112, 112))
            embedding = np.array(ex.extract("fc1")[1])
            out.append((face[4:14].reshape(5, 2), embedding / np.linalg.norm(embedding)))
        return out

    return run


@pytest.mark.benchmark(group="whole-path-250px")
def test_hand_built_reference(benchmark, small_photos):
    run = hand_built_pipeline()
    found = benchmark(lambda: [run(p) for p in small_photos])
    assert sum(len(f) for f in found) >= len(small_photos)


@pytest.mark.benchmark(group="whole-path-250px")
def test_fastface_analyzer(benchmark, small_photos):
    analyzer = fastface.FaceAnalyzer(fastface.Detector(threads=1),
                                     fastface.Embedder(MOBILEFACENET / "mobilefacenet.param", card=MOBILEFACENET_CARD))
    found = benchmark(lambda: [analyzer.analyze(p) for p in small_photos])
    run = hand_built_pipeline()
    for faces, photo in zip(found, small_photos):
        expected = run(photo)
        assert len(faces) == len(expected)  # the same faces...
        for face, (landmarks, embedding) in zip(faces, expected):
            np.testing.assert_allclose(face.landmarks, landmarks, atol=1.0)
            assert float(face.embedding @ embedding) > 0.99  # ...and the same identities
