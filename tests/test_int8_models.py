"""The shipped int8 variants (models/*.int8.*, made by fastface quantize): they load through the
runtime alone (no ncnn Python package), run ncnn's int8 kernels, stay close to fp32, and give
the same results on every architecture as on x86 — tests/int8_reference.json holds x86's
embeddings of synthetic textures (no person's biometric template is committed) and its
detections on the shared photos (regenerate with ``python tests/test_int8_models.py``); under
qemu (aarch64, armv7) ncnn's ARM int8 kernels must land within the stated tolerances of them."""
import json
import sys
from pathlib import Path

import numpy as np
import pytest

import fastface
from fastface.hub.bundled import bundled_model
from shared_data import DEEPFACE, require

pytestmark = require(DEEPFACE)
cv2 = pytest.importorskip("cv2")
REFERENCE = Path(__file__).with_name("int8_reference.json")
PHOTOS = ("img1.jpg", "img3.jpg", "img13.jpg", "couple.jpg")
#: int8 across architectures: ncnn's ARM and x86 int8 kernels round differently at requantize
#: steps and pick different Winograd/GEMM paths, so results agree to this, not bit for bit.
EMBEDDING_COSINE_ACROSS_ARCH = 0.995
#: boxes and landmarks: pixels of the photo, as a fraction of the face's width (a 1400 px photo is
#: detected at 640, so one network pixel is 2-3 photo pixels there); qemu-aarch64 measured 3.4%
#: (the top of a 633 px wide box on a face filling the photo)
FACE_FRACTION_ACROSS_ARCH = 0.05


def _crops():
    return np.stack([cv2.resize(cv2.imread(str(DEEPFACE / name)), (150, 150)) for name in PHOTOS])


def _textures():
    """Four smooth synthetic 150x150 BGR images: the same pixels on every machine."""
    rng = np.random.default_rng(23)
    blocks = rng.integers(0, 256, (4, 15, 15, 3)).astype(np.float32)
    return np.stack([cv2.resize(b, (150, 150), interpolation=cv2.INTER_CUBIC) for b in blocks]).clip(0, 255).astype(np.uint8)


def _results():
    embedder = fastface.Embedder(precision="int8")
    detector = fastface.Detector(precision="int8")
    faces = {name: [(f.bbox.astype(float).round(3).tolist(), f.landmarks.astype(float).round(3).tolist())
                    for f in detector.detect(cv2.imread(str(DEEPFACE / name)))] for name in PHOTOS}
    return embedder.embed(_textures()), faces


def test_int8_variants_are_int8_and_gated():
    for name in ("dlib_resnet_v1", "yunet_s"):
        param = bundled_model(name).with_name(f"{name}.int8.param")
        card = json.loads(param.with_suffix(".json").read_text())
        assert card["precision"] == "int8" and card["quantization"]["passed"] and not card["quantization"]["forced"]
        convs = [line for line in param.read_text().splitlines() if line.startswith("Convolution")]
        assert convs and all(" 8=" in line for line in convs)
        assert param.with_suffix(".bin").stat().st_size < 0.6 * bundled_model(name).with_suffix(".bin").stat().st_size


def test_int8_close_to_fp32_here():
    crops = _crops()
    cos = np.sum(fastface.Embedder().embed(crops) * fastface.Embedder(precision="int8").embed(crops), axis=1)
    assert np.all(cos >= 0.99), cos
    fp32, int8 = fastface.Detector(), fastface.Detector(precision="int8")
    for name in PHOTOS:
        image = cv2.imread(str(DEEPFACE / name))
        a, b = fp32.detect(image), int8.detect(image)
        assert len(a) == len(b), name
        for fa, fb in zip(sorted(a, key=lambda f: f.bbox[0]), sorted(b, key=lambda f: f.bbox[0])):
            assert np.abs(fa.bbox - fb.bbox).max() < 0.1 * (fa.bbox[2] - fa.bbox[0])


def test_int8_matches_the_x86_reference():
    reference = json.loads(REFERENCE.read_text())
    embeddings, faces = _results()
    cos = np.sum(embeddings * np.asarray(reference["embeddings"], np.float32), axis=1)
    assert np.all(cos >= EMBEDDING_COSINE_ACROSS_ARCH), cos
    for name in PHOTOS:
        got, want = faces[name], reference["faces"][name]
        assert len(got) == len(want), name
        for (box, points), (ref_box, ref_points) in zip(sorted(got), sorted(want)):
            bound = max(2.0, FACE_FRACTION_ACROSS_ARCH * (ref_box[2] - ref_box[0]))
            assert np.abs(np.subtract(box, ref_box)).max() <= bound, (name, box, ref_box)
            assert np.abs(np.subtract(points, ref_points)).max() <= bound, (name, points, ref_points)


if __name__ == "__main__":
    embeddings, faces = _results()
    REFERENCE.write_text(json.dumps({"note": "x86 int8 results of the shipped int8 models (tests/test_int8_models.py)",
                                     "embeddings": embeddings.astype(float).round(6).tolist(), "faces": faces}) + "\n")
    print(f"wrote {REFERENCE}", file=sys.stderr)
