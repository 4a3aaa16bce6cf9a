"""Detection vs OpenCV's FaceDetectorYN on the same YuNet model, and the whole path per face vs
the hand-built reference (OpenCV YuNet + OpenCV warp + ncnn's Python package)."""
import cv2
import numpy as np
import pytest

import fastface
from shared_data import (DEEPFACE, MOBILEFACENET, MOBILEFACENET_CARD, RETINAFACE_PARAM, YUNET_ONNX, convert_yunet,
                         require)

pytestmark = [require(YUNET_ONNX), require(DEEPFACE), require(MOBILEFACENET)]


@pytest.fixture(scope="module")
def canvas():
    """couple.jpg letterboxed to YuNet's 640x640 input, so neither side resizes."""
    image = cv2.imread(str(DEEPFACE / "couple.jpg"))
    scale = 640 / max(image.shape[:2])
    resized = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    out = np.zeros((640, 640, 3), np.uint8)
    out[:resized.shape[0], :resized.shape[1]] = resized
    return out


@pytest.fixture(scope="module")
def yunet_param(tmp_path_factory):
    return convert_yunet(tmp_path_factory.mktemp("yunet"))


@pytest.mark.benchmark(group="detect-yunet-640")
def test_opencv_yunet(benchmark, canvas):
    cv2.setNumThreads(1)
    detector = cv2.FaceDetectorYN.create(str(YUNET_ONNX), "", (640, 640), 0.5, 0.4)
    assert len(benchmark(detector.detect, canvas)[1]) == 2


@pytest.mark.benchmark(group="detect-yunet-640")
def test_fastface_yunet(benchmark, canvas, yunet_param):
    detector = fastface.Detector(yunet_param, kind="yunet", threads=1)
    assert len(benchmark(detector.detect, canvas)) == 2


@pytest.mark.benchmark(group="detect-retinaface-640")
def test_fastface_retinaface(benchmark, canvas):
    detector = fastface.Detector(RETINAFACE_PARAM, threads=1)
    assert len(benchmark(detector.detect, canvas)) == 2


@pytest.mark.benchmark(group="end-to-end-per-photo")
def test_hand_built_reference(benchmark, canvas):
    """OpenCV YuNet -> OpenCV similarity warp -> ncnn Python MobileFaceNet, for every face."""
    import ncnn
    cv2.setNumThreads(1)
    detector = cv2.FaceDetectorYN.create(str(YUNET_ONNX), "", (640, 640), 0.5, 0.4)
    net = ncnn.Net()
    net.opt.num_threads = 1
    net.load_param(str(MOBILEFACENET / "mobilefacenet.param"))
    net.load_model(str(MOBILEFACENET / "mobilefacenet.bin"))

    def run():
        embeddings = []
        for face in detector.detect(canvas)[1]:
            matrix, _ = cv2.estimateAffinePartial2D(face[4:14].reshape(5, 2), fastface.ARCFACE_TEMPLATE, method=cv2.LMEDS)
            crop = cv2.warpAffine(canvas, matrix, (112, 112))
            ex = net.create_extractor()
            ex.input("data", ncnn.Mat.from_pixels(crop, ncnn.Mat.PixelType.PIXEL_BGR2RGB, 112, 112))
            embedding = np.array(ex.extract("fc1")[1])
            embeddings.append(embedding / np.linalg.norm(embedding))
        return embeddings

    assert len(benchmark(run)) == 2


@pytest.mark.benchmark(group="end-to-end-per-photo")
def test_fastface_analyzer(benchmark, canvas, yunet_param):
    analyzer = fastface.FaceAnalyzer(fastface.Detector(yunet_param, kind="yunet", threads=1),
                                     fastface.Embedder(MOBILEFACENET / "mobilefacenet.param", card=MOBILEFACENET_CARD))
    assert len(benchmark(analyzer.analyze, canvas)) == 2
