"""The bundled default detector (YuNet-s from models/): loads with no arguments, detects at the
photo's own size like OpenCV's FaceDetectorYN does, survives odd images, and regenerates
byte for byte from the shared ONNX."""
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

import fastface
from fastface.hub import bundled_dir
from fastface.detect import DEFAULT_DETECTOR
from shared_data import DEEPFACE, YUNET_DYNAMIC, require

MODELS = Path(__file__).resolve().parents[1] / "models"
ONNX = YUNET_DYNAMIC[DEFAULT_DETECTOR.split("_")[1]]


@pytest.fixture(scope="module")
def detector():
    return fastface.Detector()


def test_default_detector_is_the_bundled_yunet_with_its_licence(detector):
    assert detector.kind == "yunet" and detector.param == bundled_dir() / f"{DEFAULT_DETECTOR}.param"
    card = json.loads(detector.param.with_suffix(".json").read_text())
    assert card["task"] == "detection" and card["input_size"] == [0, 0] and card["parity"]["passed"]
    assert "Apache License" in (bundled_dir() / "LICENSE.yunet").read_text()


@pytest.mark.parametrize("shape", [(8, 60000, 3), (60000, 8, 3), (1, 1, 3), (31, 33), (8, 60000)])
def test_extreme_shapes_give_faces_or_nothing(detector, shape):
    image = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    faces = detector.detect(image)
    assert isinstance(faces, list)
    for face in faces:
        assert 0 <= face.bbox[0] <= face.bbox[2] <= shape[1] and 0 <= face.bbox[1] <= face.bbox[3] <= shape[0]


@pytest.mark.parametrize("option, value", [("max_side", -1), ("max_side", 100_000), ("score_threshold", 1.5),
                                           ("score_threshold", -0.1), ("nms_threshold", 2.0), ("min_face", -1.0),
                                           ("min_face", float("nan")), ("max_faces", -2), ("threads", 0)])
def test_options_out_of_range_name_the_option(option, value):
    with pytest.raises(ValueError, match=option):
        fastface.Detector(**{option: value})
    with pytest.raises(TypeError, match="upscale"):
        fastface.Detector(upscale="yes")


def reference(image):
    """OpenCV's FaceDetectorYN on the same ONNX at the image's own size: (boxes, landmarks, scores)."""
    cv2 = pytest.importorskip("cv2")
    try:
        yn = cv2.FaceDetectorYN.create(str(ONNX), "", (image.shape[1], image.shape[0]), 0.5, 0.4)
    except cv2.error:  # e.g. OpenCV 4.11's aarch64 wheel: its ONNX importer refuses dynamic shapes
        pytest.skip(f"OpenCV {cv2.__version__} cannot read the dynamic-shape YuNet ONNX (its importer refuses dynamic shapes)")
    found = yn.detect(image)[1]
    found = np.zeros((0, 15), np.float32) if found is None else found[np.argsort(-found[:, -1])]
    boxes = np.c_[found[:, :2], found[:, :2] + found[:, 2:4]]
    return np.clip(boxes, 0, [image.shape[1], image.shape[0]] * 2), found[:, 4:14].reshape(-1, 5, 2), found[:, -1]


@require(ONNX)
@require(DEEPFACE)
@pytest.mark.parametrize("name", ["couple.jpg", "selfie-many-people.jpg", "img5.jpg", "img12.jpg", "img22.jpg",
                                  "img25.jpg"])
def test_native_resolution_equals_opencv_face_detector_yn(detector, name):
    cv2 = pytest.importorskip("cv2")
    image = cv2.imread(str(DEEPFACE / name))
    if max(image.shape[:2]) > 640:  # both sides then see the same pixels at the same size
        scale = 640 / max(image.shape[:2])
        image = cv2.resize(image, (round(image.shape[1] * scale), round(image.shape[0] * scale)),
                           interpolation=cv2.INTER_AREA)
    boxes, landmarks, scores = reference(image)
    faces = detector.detect(image)
    assert len(faces) == len(boxes) > 0
    np.testing.assert_allclose([f.bbox for f in faces], boxes, atol=1.0)
    np.testing.assert_allclose([f.landmarks for f in faces], landmarks, atol=1.0)
    np.testing.assert_allclose([f.score for f in faces], scores, atol=1e-3)


@require(DEEPFACE)
def test_small_photos_are_not_upsampled_unless_asked():
    cv2 = pytest.importorskip("cv2")
    image = cv2.resize(cv2.imread(str(DEEPFACE / "img5.jpg")), (200, 250), interpolation=cv2.INTER_AREA)
    native = fastface.Detector().detect(image)
    enlarged = fastface.Detector(upscale=True).detect(image)
    assert len(native) == len(enlarged) == 1
    # Upscaled, the net sees the face 2.56x bigger: another result, in the same coordinates.
    width = native[0].bbox[2] - native[0].bbox[0]
    assert not np.allclose(native[0].landmarks, enlarged[0].landmarks, atol=0.5)
    np.testing.assert_allclose(native[0].landmarks, enlarged[0].landmarks, atol=0.1 * width)
    # A 640-px copy detected natively gives what upscale does, to resampling differences.
    big = cv2.resize(image, (512, 640), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_allclose(fastface.Detector().detect(big)[0].landmarks / 2.56, enlarged[0].landmarks, atol=2)


@require(ONNX)
@require(DEEPFACE)
def test_regenerating_gives_the_committed_files(tmp_path):
    pytest.importorskip("pnnx", reason="regenerating needs the [export] extra (pnnx)")
    pytest.importorskip("onnxruntime", reason="regenerating needs the [export] extra (onnxruntime)")
    committed = json.loads((MODELS / f"{DEFAULT_DETECTOR}.json").read_text())
    from fastface.export.pnnx_tool import pnnx_version

    if pnnx_version() != committed["converter"]["version"]:
        pytest.skip(f"pnnx {pnnx_version()} here, the committed files come from {committed['converter']['version']}")
    import sys

    done = subprocess.run(["sh", str(MODELS / "regenerate_yunet.sh"), str(tmp_path)], capture_output=True, text=True,
                          env={**__import__("os").environ, "PYTHON": sys.executable})
    assert done.returncode == 0, done.stderr
    for suffix in (".param", ".bin"):
        assert (tmp_path / f"{DEFAULT_DETECTOR}{suffix}").read_bytes() == \
            (MODELS / f"{DEFAULT_DETECTOR}{suffix}").read_bytes(), suffix
    assert (tmp_path / "LICENSE.yunet").read_bytes() == (MODELS / "LICENSE.yunet").read_bytes()
    fresh = json.loads((tmp_path / f"{DEFAULT_DETECTOR}.json").read_text())
    # The gate's last digits and the converter's environment (torch) may differ between machines.
    for card in (fresh, committed):
        card["converter"].pop("torch", None)
        assert card.pop("parity")["passed"]
    assert fresh == committed


@require(DEEPFACE)
def test_cli_uses_the_bundled_detector_without_detector_option(tmp_path):
    from shared_data import MOBILEFACENET, MOBILEFACENET_CARD

    if not MOBILEFACENET.exists():
        pytest.skip(f"shared test data not found: {MOBILEFACENET}")
    for suffix in (".param", ".bin"):
        (tmp_path / f"mfn{suffix}").symlink_to(MOBILEFACENET / f"mobilefacenet{suffix}")
    (tmp_path / "mfn.json").write_text(json.dumps(MOBILEFACENET_CARD))
    import os
    import sys

    env = {k: v for k, v in os.environ.items() if k != "FASTFACE_DETECTOR"}
    out = subprocess.run([sys.executable, "-m", "fastface", "verify", str(DEEPFACE / "img1.jpg"),
                          str(DEEPFACE / "img2.jpg"), "--model", str(tmp_path / "mfn.param"), "--json"],
                         capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["same"] is True


def test_the_ncnn_build_keeps_every_layer_the_bundled_graph_needs():
    import re

    cmake = (MODELS.parent / "cmake" / "ncnn.cmake").read_text()
    trimmed = set(re.search(r"set\(FASTFACE_NCNN_UNUSED_LAYERS(.*?)\)", cmake, re.S).group(1).split())
    lines = (MODELS / f"{DEFAULT_DETECTOR}.param").read_text().splitlines()[2:]
    used = {line.split()[0] for line in lines if line.strip()}
    assert {"Convolution", "Interp", "Reshape", "Permute"} <= used and not used & trimmed


def test_opencv_is_a_dependency_except_on_32_bit_arm():
    tomllib = pytest.importorskip("tomllib")
    requirements = pytest.importorskip("packaging.requirements")
    deps = tomllib.loads((MODELS.parent / "pyproject.toml").read_text())["project"]["dependencies"]
    opencv = next(requirements.Requirement(d) for d in deps if d.startswith("opencv-python-headless"))
    assert not opencv.marker.evaluate({"platform_machine": "armv7l"})
    assert all(opencv.marker.evaluate({"platform_machine": m}) for m in ("x86_64", "aarch64", "AMD64", "arm64"))


def test_missing_opencv_says_how_to_install_it(tmp_path):
    import sys

    from fastface.demo import write_demo_model

    model = write_demo_model(tmp_path)
    code = "import sys; sys.modules['cv2'] = None; from fastface.cli import main; sys.exit(main(sys.argv[1:]))"
    out = subprocess.run([sys.executable, "-c", code, "verify", "a.jpg", "b.jpg", "--model", str(model)],
                         capture_output=True, text=True)
    assert out.returncode == 2 and "opencv-python-headless" in out.stderr and "python3-opencv" in out.stderr
