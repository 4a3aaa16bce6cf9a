"""fastface.Liveness: the bundled MiniFASNet pair on the authors' samples, crops bit-identical
to the reference pipeline's (OpenCV resize), scores equal to its PyTorch models, and bad input."""
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

import fastface
from fastface import _core
from shared_data import DEEPFACE, LIVENESS_SAMPLES, MINIFASNET, require

MODELS = Path(__file__).resolve().parents[1] / "models"


@pytest.fixture(scope="module")
def live():
    return fastface.Liveness(threads=1)


@pytest.fixture(scope="module")
def detector():
    return fastface.Detector(threads=1)


@pytest.fixture(scope="module")
def samples(detector):
    if not LIVENESS_SAMPLES.exists():
        pytest.skip(f"shared test data not found: {LIVENESS_SAMPLES}")
    out = {}
    for name in ("image_F1.jpg", "image_F2.jpg", "image_T1.jpg"):
        image = cv2.imread(str(LIVENESS_SAMPLES / name))
        out[name] = (image, detector.detect(image)[0])
    return out


def test_bundled_pair_and_cards(live):
    assert [p.stem for p in live.params] == ["minifasnet_v2", "minifasnet_v1se"]
    assert [c["crop_scale"] for c in live.cards] == [2.7, 4.0]
    assert all(c["size"] == 80 and c["real_class"] == 1 and c["channel_order"] == "BGR" for c in live.cards)
    assert live.threshold == 0.5 == json.loads((MODELS / "minifasnet_v2.json").read_text())["threshold"]
    assert "Apache License" in (MODELS / "LICENSE.minifasnet").read_text()


def test_samples_real_and_spoofs(live, samples):
    # The authors' samples: a printed poster (F1), a face on a tablet (F2), a live person (T1).
    scores = {name: live.scores(image, face) for name, (image, face) in samples.items()}
    assert scores["image_T1.jpg"][0] > 0.95
    assert scores["image_F1.jpg"][0] < 0.3 and scores["image_F2.jpg"][0] < 0.3
    for name, (image, face) in samples.items():
        mean, per_model = scores[name]
        assert len(per_model) == 2 and mean == pytest.approx(sum(per_model) / 2, abs=1e-6)
        assert live.check(image, face) == (name == "image_T1.jpg")


def test_crops_are_the_reference_pipelines_bit_for_bit(samples):
    from fastface.export.liveness import box_xywh, reference_box, reference_crop

    rng = np.random.default_rng(20)
    checked = 0
    for image, face in samples.values():
        height, width = image.shape[:2]
        boxes = [face.bbox] + [np.float32([x, y, x + w, y + h]) for x, y, w, h in
                               rng.uniform([-60, -60, 8, 8], [width, height, 500, 500], (30, 4))]
        for box in boxes:
            if box[2] <= 0 or box[3] <= 0:
                continue
            for scale in (2.7, 4.0):
                region = _core.liveness_region(width, height, box.tolist(), scale)
                assert tuple(region) == reference_box(width, height, box_xywh(box), scale)
                mine = _core.liveness_input(image, "BGR", list(region), 80).transpose(1, 2, 0)
                np.testing.assert_array_equal(mine, reference_crop(image, box_xywh(box), scale))
                checked += 1
    assert checked > 100


@require(MINIFASNET)
def test_scores_equal_the_pytorch_reference(samples):
    torch = pytest.importorskip("torch", reason="the reference runs the authors' models in PyTorch")
    from fastface.export.liveness import box_xywh, reference_crop
    from fastface.train.minifasnet import load_minifasnet

    models = [load_minifasnet(MINIFASNET / "2.7_80x80_MiniFASNetV2.pth"),
              load_minifasnet(MINIFASNET / "4_0_0_80x80_MiniFASNetV1SE.pth")]
    for image, face in samples.values():
        with torch.no_grad():
            ref = [torch.softmax(m(torch.from_numpy(reference_crop(image, box_xywh(face.bbox), s)
                                                    .transpose(2, 0, 1)[None].astype(np.float32))), 1)[0, 1].item()
                   for m, s in zip(models, (2.7, 4.0))]
        mean, per_model = fastface.Liveness(box_map="reference").scores(image, face.bbox)
        np.testing.assert_allclose(per_model, ref, atol=1e-4)


def test_yunet_boxes_are_mapped_into_the_reference_convention(live, samples):
    assert live.box_map == pytest.approx((-0.009, 0.072, 1.141, 0.851))
    as_given = fastface.Liveness(box_map="reference")
    image, face = samples["image_T1.jpg"]
    x1, y1, x2, y2 = face.bbox
    w, h = x2 - x1, y2 - y1
    cx, cy = (x1 + x2) / 2 - 0.009 * w, (y1 + y2) / 2 + 0.072 * h
    mapped = [cx - 1.141 * w / 2, cy - 0.851 * h / 2, cx + 1.141 * w / 2, cy + 0.851 * h / 2]
    assert live.score(image, face) == pytest.approx(as_given.score(image, mapped), abs=1e-6)
    assert fastface.Liveness(box_map=(0, 0, 1, 1)).score(image, face) == as_given.score(image, face)
    for bad in ("caffe", (0, 0, 1), (0, 0, 0, 1), (5, 0, 1, 1), "xyzw"):
        with pytest.raises(ValueError):
            fastface.Liveness(box_map=bad)


def test_border_faces_frame_filling_faces_and_gray_images_score(live, samples):
    image, face = samples["image_T1.jpg"]
    height, width = image.shape[:2]
    x1, y1, x2, y2 = face.bbox
    for box in ([-40, -40, 60, 80], [width - 60, height - 70, width + 30, height + 20],  # partly outside
                [0, 0, width - 1, height - 1], [-500, -500, width + 500, height + 500]):  # filling the frame, beyond
        assert 0.0 <= live.score(image, box) <= 1.0
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    as_bgr = cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)
    expected = live.score(as_bgr, face)
    assert live.score(gray, face) == expected == live.score(gray[..., None], face)
    # RGB input is read as RGB.
    assert live.score(image[..., ::-1], face, channel_order="RGB") == live.score(image, face)
    # A tiny image: the crop shrinks to what there is.
    small = cv2.resize(image, (24, 32))
    assert 0.0 <= live.score(small, [2, 2, 20, 28]) <= 1.0


def test_bad_input_is_a_clear_error(live, samples):
    image, face = samples["image_T1.jpg"]
    height, width = image.shape[:2]
    for box, match in (([10, 10, 17, 40], "at least 8"), ([10, 10, 40, 15], "at least 8"),
                       ([width + 10, 10, width + 90, 90], "outside"), ([-90, -90, -10, -10], "outside"),
                       ([np.nan, 10, 50, 50], "finite"), ([10, 10, np.inf, 50], "finite"),
                       ([50, 50, 10, 10], "at least 8")):
        with pytest.raises(ValueError, match=match):
            live.score(image, box)
    with pytest.raises(ValueError, match="4 values"):
        live.score(image, [1, 2, 3])
    with pytest.raises(ValueError, match="1 or 3 channels"):
        live.score(np.dstack([image, image[..., :1]]), face)  # BGRA
    with pytest.raises(ValueError, match="uint8"):
        live.score(image.astype(np.float32), face)
    with pytest.raises(TypeError):
        live.score(None, face)
    with pytest.raises(ValueError, match="channel_order"):
        live.score(image, face, channel_order="XYZ")


def test_options_are_checked(tmp_path):
    with pytest.raises(ValueError, match="threads"):
        fastface.Liveness(threads=0)
    with pytest.raises(ValueError, match="threshold"):
        fastface.Liveness(threshold=1.5)
    with pytest.raises(FileNotFoundError):
        fastface.Liveness([tmp_path / "missing.param"])
    strict = fastface.Liveness(threshold=0.9)
    assert strict.threshold == pytest.approx(0.9)
    # A card that is not a liveness card.
    for suffix in (".param", ".bin"):
        (tmp_path / f"m{suffix}").write_bytes((MODELS / f"minifasnet_v2{suffix}").read_bytes())
    (tmp_path / "m.json").write_text(json.dumps({"task": "detection"}))
    with pytest.raises(ValueError, match="not a liveness card"):
        fastface.Liveness([tmp_path / "m.param"])
    # Truncated weights: the core's model checks refuse them.
    card = json.loads((MODELS / "minifasnet_v2.json").read_text())
    (tmp_path / "m.json").write_text(json.dumps(card))
    (tmp_path / "m.bin").write_bytes((MODELS / "minifasnet_v2.bin").read_bytes()[:1000])
    with pytest.raises(fastface.ModelError):
        fastface.Liveness([tmp_path / "m.param"])


@require(DEEPFACE)
def test_face_analyzer_fills_liveness():
    image = cv2.imread(str(DEEPFACE / "couple.jpg"))
    plain = fastface.FaceAnalyzer().analyze(image)
    assert plain and all(f.liveness is None for f in plain)
    live = fastface.Liveness(threads=1)
    faces = fastface.FaceAnalyzer(liveness=live).analyze(image)
    assert len(faces) == len(plain)
    for face in faces:
        assert face.liveness == pytest.approx(live.score(image, face))
    with pytest.raises(TypeError, match="liveness"):
        fastface.FaceAnalyzer(liveness="yes")
