"""Where the read-only test data lives: ``../shared/data`` beside the checkout, or the folder
named by FASTFACE_TEST_DATA. Tests that need it skip with this path in the reason."""
import os
from pathlib import Path

import pytest

DATA = Path(os.environ.get("FASTFACE_TEST_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
MOBILEFACENET = DATA / "models" / "mobilefacenet-insightface"
ALIGNED_LFW = DATA / "faces" / "aligned-lfw"
DEEPFACE = DATA / "faces" / "deepface-sample"
ORL = DATA / "faces" / "orl"

#: The insightface MobileFaceNet: raw 0..255 RGB in, its graph normalizes; 128-d out.
MOBILEFACENET_CARD = {"input": "data", "output": "fc1", "size": 112, "channel_order": "RGB",
                      "mean": 0.0, "scale": 1.0, "dim": 128}


def require(path: Path):
    """A skip marker for tests that need ``path`` from the shared data."""
    return pytest.mark.skipif(not path.exists(), reason=f"shared test data not found: {path} "
                                                        "(set FASTFACE_TEST_DATA to the shared 'data' folder)")

RETINAFACE = DATA / "models" / "retinaface-mnet025"
RETINAFACE_PARAM = RETINAFACE / "mnet.25-opt.param"

#: deepface-sample identities (from pairs.csv's same-person pairs): first photo of each, then the rest.
DEEPFACE_IDENTITIES = {
    "a": ["img1.jpg", "img2.jpg", "img4.jpg", "img5.jpg", "img6.jpg", "img7.jpg", "img10.jpg", "img11.jpg"],
    "b": ["img3.jpg", "img12.jpg"], "c": ["img13.jpg", "img14.jpg", "img15.jpg"], "d": ["img16.jpg", "img17.jpg"],
    "e": ["img18.jpg", "img19.jpg"], "f": ["img20.jpg", "img21.jpg"], "g": ["img22.jpg", "img23.jpg"],
    "h": ["img24.jpg", "img25.jpg"], "i": ["img8.jpg", "img9.jpg"],
}
YUNET_ONNX = DATA / "models" / "yunet" / "yunet_n_640_640.onnx"


def convert_yunet(folder):
    """YuNet ONNX -> ncnn with pnnx (skips when pnnx is not installed); returns the .param path."""
    import shutil
    import subprocess

    pnnx = shutil.which("pnnx")
    if pnnx is None or os.environ.get("FASTFACE_TEST_RUNTIME_ONLY") == "1":
        pytest.skip("pnnx is not installed (pip install pnnx), or hidden: FASTFACE_TEST_RUNTIME_ONLY=1")
    onnx = folder / "yunet.onnx"
    shutil.copy(YUNET_ONNX, onnx)
    subprocess.run([pnnx, str(onnx), "inputshape=[1,3,640,640]"], cwd=folder, check=True, capture_output=True)
    return folder / "yunet.ncnn.param"

#: dlib's CC0 models: the face-recognition ResNet and the 5-point shape predictor.
DLIB_RESNET = DATA / "models" / "dlib-resnet"
#: OpenCV's YuNet (cv2.FaceDetectorYN), for the landmarks of the dlib template fit.
YUNET_2023MAR_ONNX = DATA / "models" / "yunet" / "face_detection_yunet_2023mar.onnx"
#: YuNet's dynamic-shape ONNX files (any input size), per variant; the bundled detector is yunet_s.
YUNET_DYNAMIC = {v: DATA / "models" / "yunet" / f"yunet_{v}_dynamic.onnx" for v in ("n", "s")}
#: LFW's development set (View 1): pairsDevTrain.txt, pairsDevTest.txt and the photos they name
#: under images/. For calibration and model choice only; LFW accuracy is reported on View 2.
LFW_VIEW1 = DATA / "faces" / "lfw-view1"
#: minivision's liveness models (Apache-2.0): MiniFASNet state dicts, the authors' Caffe
#: RetinaFace (reference-detector/) and their three sample photos (two spoofs, one real).
MINIFASNET = DATA / "models" / "minifasnet"
LIVENESS_SAMPLES = DATA / "faces" / "liveness-samples"
