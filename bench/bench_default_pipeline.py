"""The default pipeline's whole path on LFW-size photos (View 1, 250x250), 1 thread, faces
detected, aligned, embedded: ``FaceAnalyzer()`` (dlib's 5-point landmarks and chip geometry on
the bundled YuNet's boxes) vs the detector-landmark path it replaced (the same models, YuNet's
landmarks onto the card's fitted template) vs face_recognition's own pipeline (dlib-bin: HOG
upsampled once, 5-point, ResNet). Targets: <= 1.15x the detector-landmark path, >= 7x faster
than face_recognition."""
import time

import numpy as np
import pytest

import fastface
from shared_data import DLIB_RESNET, LFW_VIEW1, require

pytestmark = [require(LFW_VIEW1)]
PHOTOS = 24


@pytest.fixture(scope="module")
def photos():
    cv2 = pytest.importorskip("cv2")
    names = sorted((LFW_VIEW1 / "images").iterdir())[::97][:PHOTOS]
    return [cv2.imread(str(sorted(folder.iterdir())[0])) for folder in names]


@pytest.fixture(scope="module")
def default_path():
    analyzer = fastface.FaceAnalyzer(fastface.Detector(threads=1), fastface.Embedder(threads=1))
    assert analyzer.embedder.aligner.method == "dlib_chip"
    return lambda images: [analyzer.analyze(image) for image in images]


@pytest.fixture(scope="module")
def detector_landmark_path():
    bundled = fastface.Embedder()
    card = {k: v for k, v in bundled.card.items() if k != "alignment"}
    analyzer = fastface.FaceAnalyzer(fastface.Detector(threads=1),
                                     fastface.Embedder(fastface.hub.bundled_model("dlib_resnet_v1"), card=card))
    assert analyzer.embedder.aligner.method == "template"
    return lambda images: [analyzer.analyze(image) for image in images]


@pytest.fixture(scope="module")
def face_recognition_path(dlib):
    if not DLIB_RESNET.exists():
        pytest.skip(f"shared test data not found: {DLIB_RESNET}")
    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(str(DLIB_RESNET / "shape_predictor_5_face_landmarks.dat"))
    net = dlib.face_recognition_model_v1(str(DLIB_RESNET / "dlib_face_recognition_resnet_model_v1.dat"))

    def run(images):
        out = []
        for image in images:
            rgb = np.ascontiguousarray(image[..., ::-1])
            out.append([net.compute_face_descriptor(rgb, predictor(rgb, box)) for box in detector(rgb, 1)])
        return out

    return run


@pytest.mark.benchmark(group="default-pipeline-250px")
def test_default_pipeline(benchmark, default_path, photos):
    found = benchmark(default_path, photos)
    faces = [f for image in found for f in image]
    assert len(faces) >= len(photos) and all(f.alignment in ("shape_predictor", "detector") for f in faces)
    assert sum(f.alignment == "shape_predictor" for f in faces) >= len(photos) - 2


@pytest.mark.benchmark(group="default-pipeline-250px")
def test_detector_landmark_pipeline(benchmark, detector_landmark_path, photos):
    found = benchmark(detector_landmark_path, photos)
    assert sum(len(f) for f in found) >= len(photos)


@pytest.mark.benchmark(group="default-pipeline-250px")
def test_face_recognition_pipeline(benchmark, face_recognition_path, photos):
    found = benchmark.pedantic(face_recognition_path, args=(photos,), rounds=1, iterations=1)
    assert sum(len(f) for f in found) >= len(photos) // 2


def _median_ms(fn, images, runs: int) -> float:
    fn(images)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn(images)
        times.append(time.perf_counter() - start)
    return float(np.median(times)) * 1e3 / len(images)


def test_default_pipeline_cost(default_path, detector_landmark_path, face_recognition_path, photos):
    # Interleaved rounds, the best of each: the shared machine's load only ever adds time, and a
    # burst during a few rounds of one path must not decide a 15% margin (a median of 3 did once).
    default, before = [], []
    for _ in range(7):
        default.append(_median_ms(default_path, photos, 1))
        before.append(_median_ms(detector_landmark_path, photos, 1))
    default_ms, before_ms = min(default), min(before)
    reference_ms = _median_ms(face_recognition_path, photos, 1)
    print(f"\nper 250 px photo, 1 thread: default {default_ms:.1f} ms, detector landmarks {before_ms:.1f} ms "
          f"({default_ms / before_ms:.2f}x), face_recognition {reference_ms:.1f} ms "
          f"({reference_ms / default_ms:.1f}x slower than the default)")
    assert default_ms <= 1.15 * before_ms
    assert reference_ms >= 7 * default_ms
