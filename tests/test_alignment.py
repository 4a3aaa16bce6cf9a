"""Each recognizer aligned the way it was trained: the bundled dlib ResNet's crops are dlib's own
chips of dlib's 5-point shape (predicted in a box from the detector's), with the detector's
landmarks as the fallback where the refinement cannot be trusted; other cards keep their template."""
import numpy as np
import pytest

import fastface
from fastface.align import FaceAligner, dlib_chip_geometry
from shared_data import DEEPFACE, DLIB_RESNET, LFW_VIEW1, require

cv2 = pytest.importorskip("cv2")


@pytest.fixture(scope="module")
def embedder():
    return fastface.Embedder()


@pytest.fixture(scope="module")
def detector():
    return fastface.Detector()


def _photos(count=12):
    return sorted((LFW_VIEW1 / "images").rglob("*.jpg"))[::211][:count]


def test_the_bundled_recognizer_is_cut_as_dlib_chips(embedder):
    assert embedder.aligner.method == "dlib_chip"
    assert embedder.card["alignment"]["padding"] == 0.25 and embedder.aligner.predictor.num_parts == 5


@require(LFW_VIEW1)
@require(DLIB_RESNET)
def test_crops_equal_dlibs_own_chips_of_the_same_shape(embedder):
    dlib = pytest.importorskip("dlib", reason="the reference needs dlib-bin (pip install dlib-bin)")
    hog = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(str(DLIB_RESNET / "shape_predictor_5_face_landmarks.dat"))
    template = embedder.card["alignment"]["template"]
    compared = 0
    for path in _photos():
        rgb = np.ascontiguousarray(cv2.imread(str(path))[..., ::-1])
        boxes = hog(rgb, 1)
        if not boxes:
            continue
        shape = predictor(rgb, boxes[0])
        points = np.array([[shape.part(i).x, shape.part(i).y] for i in range(5)], np.float64)
        ours = fastface._core.warp_u8(rgb, "RGB", dlib_chip_geometry(points, template, 150), 150, 150, 0)
        theirs = dlib.get_face_chip(rgb, shape, 150, 0.25)
        assert np.abs(ours.astype(np.float64) - theirs).mean() < 0.6  # bilinear rounding only
        a, b = embedder.embed(np.stack([ours, theirs]), channel_order="RGB")
        assert a @ b > 0.9999
        compared += 1
    assert compared >= 8


@require(DEEPFACE)
def test_analyzer_refines_and_records_how_each_face_was_cut(detector, embedder):
    image = cv2.imread(str(DEEPFACE / "img1.jpg"))
    face = detector.detect(image)[0]
    embedding = embedder.embed_face(image, face)
    assert face.alignment == "shape_predictor" and face.alignment_note is None
    found = embedder.aligner.align(image, face.landmarks)
    np.testing.assert_allclose(found.points, embedder.aligner.predictor.predict(
        image, embedder.aligner.predictor_box(face.landmarks)), atol=1e-4)
    # The fused path embeds the same crop the aligner cuts.
    crop = embedder.aligner.crop(image, found)
    assert float(embedding @ embedder.embed(crop)[0]) > 0.999
    # Not the detector-landmark crop: a different geometry.
    assert float(embedding @ embedder.embed_image(image, face.landmarks)) < 0.9999


@require(DEEPFACE)
def test_flip_averages_the_mirrored_crop(detector, embedder):
    image = cv2.imread(str(DEEPFACE / "img2.jpg"))
    face = detector.detect(image)[0]
    plain, flipped = embedder.embed_face(image, face), embedder.embed_face(image, face, flip=True)
    assert abs(float(np.linalg.norm(flipped)) - 1) < 1e-5 and 0.95 < float(plain @ flipped) < 0.99999
    crop = embedder.aligner.crop(image, embedder.aligner.align(image, face.landmarks))
    both = embedder.embed(np.stack([crop, crop[:, ::-1]])).sum(0)
    assert float(flipped @ both / np.linalg.norm(both)) > 0.9999


@require(DEEPFACE)
def test_untrusted_refinements_fall_back_to_the_detector_and_say_why(detector, embedder):
    image = cv2.imread(str(DEEPFACE / "img1.jpg"))
    face = detector.detect(image)[0]
    aligner = embedder.aligner
    tiny = np.array([[13, 14], [19, 14], [16, 17], [14, 20], [18, 20]], np.float32)
    found = aligner.align(image, tiny)
    assert found.method == "detector" and "below the shape predictor's 20 px" in found.note
    # Landmarks upside down (eyes where the mouth is): the predictor finds the eyes elsewhere.
    wrong = face.landmarks[[3, 4, 2, 0, 1]]
    found = aligner.align(image, wrong)
    assert found.method == "detector" and "eye distances from the detector's" in found.note
    # A face half out of the frame: the refinement's points leave the image.
    height, width = image.shape[:2]
    edge = face.landmarks - [face.landmarks[:, 0].max() - 20, 0]
    found = aligner.align(image, edge)
    assert found.method == "detector" and "off the image" in found.note
    record = fastface.Face(face.bbox - [face.landmarks[:, 0].max() - 20, 0, face.landmarks[:, 0].max() - 20, 0],
                           0.9, edge)
    assert np.all(np.isfinite(embedder.embed_face(image, record))) and record.alignment == "detector"
    with pytest.raises(ValueError, match="landmarks"):
        aligner.align(image, np.full((5, 2), np.nan, np.float32))


def test_cards_without_an_alignment_keep_their_template(tmp_path):
    from fastface.demo import write_demo_model

    model = fastface.Embedder(write_demo_model(tmp_path))
    assert model.aligner.method == "template" and model.aligner.predictor is None
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (160, 160, 3), dtype=np.uint8)
    landmarks = fastface.ARCFACE_TEMPLATE + 20
    face = fastface.Face(np.array([10, 10, 150, 150], np.float32), 1.0, landmarks)
    assert float(model.embed_face(image, face) @ model.embed_image(image, landmarks)) > 0.99999
    assert face.alignment == "detector" and face.alignment_note is None


@pytest.mark.parametrize("alignment, message", [
    ({"method": "mirror"}, "must be 'dlib_chip' or absent"),
    ({"method": "dlib_chip", "template": [[0, 0]] * 4, "box": {"centre": [0, 0], "size": [1, 1]}}, "template"),
    ({"method": "dlib_chip", "template": [[0, 0]] * 5, "box": {"centre": [0, 0], "size": [0, 1]}}, "invalid box"),
])
def test_a_bad_alignment_in_a_card_is_refused(alignment, message):
    card = {"input": "data", "output": "fc1", "size": 150, "channel_order": "RGB", "mean": 0, "scale": 1,
            "alignment": alignment}
    with pytest.raises(ValueError, match=message):
        FaceAligner(card)


@require(DEEPFACE)
def test_verify_json_reports_the_threshold_and_what_it_does_on_its_calibration_pairs():
    import json
    import subprocess
    import sys

    def verify(*extra):
        done = subprocess.run([sys.executable, "-m", "fastface", "verify", DEEPFACE / "img1.jpg", DEEPFACE / "img2.jpg",
                               "--json", *extra], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    out = verify()
    calibration = fastface.Embedder().card["threshold_calibration"]
    assert out["same"] is True and out["score"] >= out["threshold"] == fastface.Embedder().threshold
    assert (out["far"], out["frr"], out["calibrated_on"]) == (calibration["far"], calibration["frr"],
                                                               calibration["pairs"])
    assert 0 < out["far"] < 0.05 and 0 < out["frr"] < 0.05 and "pairsDevTrain" in out["calibrated_on"]
    given = verify("--threshold", "0.99")
    assert given["same"] is False and given["threshold"] == 0.99 and given["far"] is None
