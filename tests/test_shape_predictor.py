"""fastface.ShapePredictor: dlib's 5-point shape predictor run by the C++ core. Parity with dlib
itself (dlib-bin) on real photos — dlib's HOG boxes and arbitrary ones, inside, across and
outside the image; the bundled file regenerates byte for byte; malformed files and odd boxes
are refused with a clear error, never a crash."""
import functools
import hashlib
import json
import os
import struct
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

import fastface
from fastface.export.dlib_format import DlibFormatError
from fastface.export.dlib_shape import BUNDLED_NAME, SOURCE_SHA256, read_dlib_shape_predictor
from shared_data import DATA, DEEPFACE, DLIB_RESNET, ORL, require

DAT = DLIB_RESNET / "shape_predictor_5_face_landmarks.dat"
LFW = DATA / "faces" / "lfw-view1" / "images"
MODELS = Path(__file__).resolve().parents[1] / "models"
#: Child processes import the fastface under test, wherever it came from (the scripts cd away).
CHILD_ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(
    [str(Path(fastface.__file__).parents[1]), os.environ.get("PYTHONPATH", "")])}
#: Where cascade level 0 starts in the bundled file: magic, version, parts, cascades, 10 floats.
LEVEL0 = 8 + 3 * 4 + 10 * 4
#: Level 0 of the bundled model: 800 feature pixels, 500 trees of 15 splits.
ANCHORS0 = LEVEL0 + 12
SPLITS0 = ANCHORS0 + 800 * 4 + 800 * 8
LEAVES0 = SPLITS0 + 500 * 15 * 12


@pytest.fixture(scope="module")
def predictor():
    return fastface.ShapePredictor()


@pytest.fixture(scope="module")
def dlib():
    return pytest.importorskip("dlib", reason="the reference needs dlib-bin (pip install dlib-bin)")


def face_image(height=200, width=180, seed=0):
    """A smooth pattern with two dark blobs: enough structure for the trees to take varied paths."""
    y, x = np.mgrid[:height, :width].astype(np.float64)
    blobs = sum(np.exp(-((x - cx) ** 2 + (y - 80) ** 2) / 150) for cx in (60, 120))
    base = 128 + 50 * np.sin(x * 0.05 + seed) * np.cos(y * 0.04) - 120 * blobs
    return np.clip(np.stack([base, base + 9, base - 7], axis=-1), 0, 255).astype(np.uint8)


def test_bundled_model_predicts_five_finite_points(predictor):
    assert predictor.num_parts == 5 and len(fastface.landmarks.DLIB_5_POINTS) == 5
    points = predictor.predict(face_image(), (30, 30, 150, 150))
    assert points.shape == (5, 2) and points.dtype == np.float32 and np.all(np.isfinite(points))
    # Around the box, eyes above the nose (the model's initial shape: eyes at 0.35, nose at 0.66).
    assert np.all(points[:4, 1] < points[4, 1]) and np.all((points > 0) & (points < 180))


def test_channel_order_and_gray(predictor):
    image = face_image()
    box = (20, 25, 160, 165)
    bgr = predictor.predict(image, box)
    np.testing.assert_array_equal(bgr, predictor.predict(image, box, channel_order="RGB"))
    gray = (image.astype(np.uint32).sum(axis=2) // 3).astype(np.uint8)  # dlib's intensity
    np.testing.assert_array_equal(bgr, predictor.predict(gray, box))
    np.testing.assert_array_equal(bgr, predictor.predict(gray[..., None], box))
    np.testing.assert_array_equal(bgr, predictor.predict(np.asfortranarray(image), box))  # copied to packed
    with pytest.raises(ValueError, match="channel_order"):
        predictor.predict(image, box, channel_order="BGRA")


def test_loading_from_path_and_bytes(predictor):
    path = MODELS / BUNDLED_NAME
    image, box = face_image(), (10, 10, 170, 170)
    expected = predictor.predict(image, box)
    for model in (path, str(path), path.read_bytes()):
        np.testing.assert_array_equal(fastface.ShapePredictor(model).predict(image, box), expected)
    with pytest.raises(TypeError):
        fastface.ShapePredictor(42)
    with pytest.raises(OSError):
        fastface.ShapePredictor(MODELS / "no_such_model.bin")


def test_boxes_outside_tiny_and_invalid(predictor):
    image = face_image(120, 100)
    for box in [(-50, -50, 60, 60), (60, 70, 200, 210), (500, 500, 600, 600), (-300, -300, -200, -200),
                (40, 40, 40, 40), (40, 40, 41.5, 40.25), (-1e8, -1e8, 1e8, 1e8), (0.3, 0.7, 99.6, 119.2)]:
        points = predictor.predict(image, box)
        assert points.shape == (5, 2) and np.all(np.isfinite(points)), box
    assert np.all(predictor.predict(image, (40, 40, 40, 40)) == 40)  # a point box collapses every landmark
    for box in [(np.nan, 0, 10, 10), (0, 0, np.inf, 10), (0, -np.inf, 10, 10), (10, 0, 5, 10), (0, 10, 10, 5),
                (0, 0, 10), (0, 0, 10, 10, 1), "abcd", None, (0, 0, 10, 2e9)]:
        with pytest.raises(ValueError):
            predictor.predict(image, box)
    with pytest.raises(ValueError):
        predictor.predict(image.astype(np.float32), (0, 0, 10, 10))
    with pytest.raises(ValueError):
        predictor.predict(np.zeros((10, 10, 4), np.uint8), (0, 0, 10, 10))
    with pytest.raises(ValueError):
        predictor.predict(np.zeros((0, 10, 3), np.uint8), (0, 0, 10, 10))
    with pytest.raises(TypeError):
        predictor.predict(None, (0, 0, 10, 10))


def test_threads_get_the_serial_answer(predictor):
    images = [face_image(seed=s) for s in range(8)]
    boxes = [(10 + s, 12 + 2 * s, 150 + s, 160 + s) for s in range(8)]
    serial = [predictor.predict(i, b) for i, b in zip(images, boxes)]
    with ThreadPoolExecutor(4) as pool:
        for _ in range(3):
            for got, want in zip(pool.map(predictor.predict, images, boxes), serial):
                np.testing.assert_array_equal(got, want)


# ---- malformed files: run in a child process, so a crash would fail the test, not the run ----

def _mutations(data: bytes) -> dict[str, bytes]:
    def put(offset, fmt, value):
        out = bytearray(data)
        out[offset:offset + np.dtype(fmt).itemsize] = np.array([value], fmt).tobytes()
        return bytes(out)

    cases = {f"truncated to {n} bytes": data[:n] for n in (0, 4, 8, 12, 20, 59, LEVEL0 + 6, ANCHORS0 + 10,
                                                            SPLITS0 + 7, LEAVES0 + 3, len(data) // 2, len(data) - 1)}
    cases.update({
        "dlib's own .dat instead of fastface's": b"\x01\x01\x81\x0a\x81\x01" + data[8:200],
        "wrong magic": b"NOTSHAPE" + data[8:],
        "version 2": put(8, "<u4", 2),
        "no parts": put(12, "<u4", 0),
        "2**32-1 parts": put(12, "<u4", 0xFFFFFFFF),
        "6 parts (shape no longer fits)": put(12, "<u4", 6),
        "2**31 cascades": put(16, "<u4", 1 << 31),
        "16 cascades (one missing)": put(16, "<u4", 16),
        "2**24 features on level 0": put(LEVEL0, "<u4", 1 << 24),
        "2**24 trees on level 0": put(LEVEL0 + 4, "<u4", 1 << 24),
        "16 splits per tree": put(LEVEL0 + 8, "<u4", 16),
        "anchor 5 of 5 parts": put(ANCHORS0, "<u4", 5),
        "split on feature 800 of 800": put(SPLITS0, "<u4", 800),
        "split on feature 2**32-1": put(SPLITS0 + 4, "<u4", 0xFFFFFFFF),
        "NaN threshold": put(SPLITS0 + 8, "<f4", np.nan),
        "infinite leaf": put(LEAVES0, "<f4", np.inf),
        "NaN initial shape": put(20, "<f4", np.nan),
        "trailing byte": data + b"\0",
    })
    return cases


_CHILD = textwrap.dedent("""
    import json, sys
    import fastface
    results = {}
    for name, path in json.load(sys.stdin).items():
        try:
            fastface.ShapePredictor(open(path, "rb").read())
            results[name] = "accepted"
        except fastface.ModelError as exc:
            results[name] = "ModelError: " + str(exc)
        except Exception as exc:
            results[name] = f"{type(exc).__name__}: {exc}"
    print(json.dumps(results))
""")


def test_malformed_model_files_raise_model_error(tmp_path):
    cases = _mutations((MODELS / BUNDLED_NAME).read_bytes())
    paths = {}
    for i, (name, data) in enumerate(cases.items()):
        paths[name] = str(tmp_path / f"case{i}.bin")
        Path(paths[name]).write_bytes(data)
    done = subprocess.run([sys.executable, "-c", _CHILD], input=json.dumps(paths), capture_output=True, text=True,
                          timeout=300, env=CHILD_ENV)
    assert done.returncode == 0, f"child crashed ({done.returncode}): {done.stderr[-2000:]}"
    results = json.loads(done.stdout)
    wrong = {name: r for name, r in results.items() if not r.startswith("ModelError: not a valid fastface shape")}
    assert not wrong, wrong
    assert "convert dlib's .dat" in results["dlib's own .dat instead of fastface's"]
    assert "anchor 5 of 5 parts" in results["anchor 5 of 5 parts"]


@require(DAT)
def test_converter_refuses_damaged_dlib_files(tmp_path):
    data = DAT.read_bytes()
    for name, bad in {"truncated": data[:5000], "version 2": data[:1] + b"\x01\x02" + data[3:5000],
                      "empty": b""}.items():
        path = tmp_path / f"{name}.dat"
        path.write_bytes(bad)
        with pytest.raises(DlibFormatError):
            read_dlib_shape_predictor(path)


# ---- the bundled file ----

@require(DAT)
def test_regeneration_reproduces_the_committed_bytes(tmp_path):
    assert hashlib.sha256(DAT.read_bytes()).hexdigest() == SOURCE_SHA256
    done = subprocess.run(["sh", str(MODELS / "regenerate_dlib_shape.sh"), str(DATA), str(tmp_path)],
                          capture_output=True, text=True, env={**CHILD_ENV, "PYTHON": sys.executable})
    assert done.returncode == 0, done.stderr
    assert (tmp_path / BUNDLED_NAME).read_bytes() == (MODELS / BUNDLED_NAME).read_bytes()
    assert (MODELS / "LICENSE.dlib_resnet_v1").read_bytes() == (DLIB_RESNET / "LICENSE").read_bytes()  # dlib-models' CC0


def test_bundled_file_layout():
    """The documented layout (fastface.export.dlib_shape): header, then 15 levels of 800 pixels
    and 500 trees of 15 splits, and nothing after them."""
    data = (MODELS / BUNDLED_NAME).read_bytes()
    assert data[:8] == b"FFSHAPE\0" and struct.unpack_from("<III", data, 8) == (1, 5, 15)
    at = LEVEL0
    for _ in range(15):
        features, trees, splits = struct.unpack_from("<III", data, at)
        assert (features, trees, splits) == (800, 500, 15)
        at += 12 + features * 12 + trees * splits * 12 + trees * (splits + 1) * 10 * 4
    assert at == len(data)


# ---- parity with dlib on real photos ----

def _photos():
    """(name, BGR image) for the shared real photos: deepface-sample, an LFW sample, ORL."""
    cv2 = pytest.importorskip("cv2")
    paths = sorted(DEEPFACE.glob("*.jpg")) if DEEPFACE.exists() else []
    if LFW.exists():
        paths += sorted(LFW.rglob("*.jpg"))[::40]
    if ORL.exists():
        paths += [ORL / f"s{i}" / f"{1 + i % 10}.pgm" for i in range(1, 41)]
    for path in paths:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is not None:
            yield path.name, image


@functools.lru_cache(maxsize=1)
def _hog(dlib):
    return dlib.get_frontal_face_detector()


def _dlib_boxes(dlib, image):
    """dlib's HOG detections (on a copy shrunk to <= 1000 px for speed, mapped back), as ints."""
    import cv2

    scale = min(1.0, 1000 / max(image.shape[:2]))
    small = image if scale == 1 else cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    upsample = 1 if max(small.shape[:2]) < 400 else 0
    rects = _hog(dlib)(np.ascontiguousarray(small[..., ::-1]), upsample)
    return [tuple(int(round(v / scale)) for v in (r.left(), r.top(), r.right(), r.bottom())) for r in rects]


def _variants(box, image_shape, rng):
    """The box, shifted, grown, shrunk, across the border and a random one."""
    l, t, r, b = box
    w, h = r - l, b - t
    height, width = image_shape[:2]
    yield box
    yield l + 3, t - 2, r + 3, b - 2
    yield l - w // 10, t - h // 10, r + w // 10, b + h // 10
    yield l + w // 8, t + h // 8, r - w // 8, b - h // 8
    yield -w // 3, t, -w // 3 + w, b                       # across the left edge
    yield l, height - h // 2, r, height - h // 2 + h         # across the bottom edge
    x, y, s = rng.integers(0, width), rng.integers(0, height), rng.integers(8, max(9, min(width, height)))
    yield int(x) - int(s) // 2, int(y) - int(s) // 2, int(x) + int(s) // 2, int(y) + int(s) // 3


@require(DAT)
@pytest.mark.skipif(not (DEEPFACE.exists() or LFW.exists() or ORL.exists()), reason=f"no shared photos under {DATA}")
def test_parity_with_dlib_on_real_photos(dlib, predictor):
    reference = dlib.shape_predictor(str(DAT))
    rng = np.random.default_rng(24)
    faces = boxes = 0
    worst = 0.0
    for name, image in _photos():
        rgb = np.ascontiguousarray(image[..., ::-1])
        gray = None
        found = _dlib_boxes(dlib, image)
        faces += len(found)
        for box in (v for f in found for v in _variants(f, image.shape, rng)):
            theirs = reference(rgb, dlib.rectangle(*box))
            theirs = np.array([(p.x, p.y) for p in theirs.parts()], np.float64)
            exact = predictor._model.predict(image, "BGR", *map(float, box))
            # dlib rounds its points to whole pixels with floor(v + 0.5); ours are the values before.
            np.testing.assert_array_equal(np.floor(exact + 0.5), theirs, err_msg=f"{name} box {box}")
            ours = predictor.predict(image, box)
            worst = max(worst, float(np.abs(ours - theirs).max()))
            boxes += 1
        if found and gray is None:  # dlib on a gray image too (its uint8 path)
            gray = (image.astype(np.uint32).sum(axis=2) // 3).astype(np.uint8)
            theirs = reference(gray, dlib.rectangle(*found[0]))
            np.testing.assert_array_equal(np.floor(predictor._model.predict(gray, "BGR", *map(float, found[0])) + 0.5),
                                          np.array([(p.x, p.y) for p in theirs.parts()]), err_msg=name)
    assert faces >= 50, f"dlib found only {faces} faces in the shared photos"
    assert worst <= 0.5 + 1e-3  # float32 output vs dlib's whole pixels
    print(f"\nshape predictor parity: {faces} dlib faces, {boxes} boxes, identical to dlib after its rounding")
