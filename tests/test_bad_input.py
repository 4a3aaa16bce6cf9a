"""Bad input raises a clear Python exception — never a crash, hang or silent wrong answer."""
import numpy as np
import pytest

import fastface
from fastface.demo import write_demo_model
from shared_data import MOBILEFACENET, MOBILEFACENET_CARD, require

IMAGE = np.zeros((200, 200, 3), np.uint8)
LANDMARKS = fastface.ARCFACE_TEMPLATE + 40


@pytest.fixture(scope="module")
def demo_model(tmp_path_factory):
    return fastface.Embedder(write_demo_model(tmp_path_factory.mktemp("model")))


@pytest.mark.parametrize("image, message", [
    (None, "None"),
    ([[1, 2], [3, 4]], "numpy array"),
    (np.zeros((50, 50, 3), np.float32), "uint8"),
    (np.zeros((50,), np.uint8), "HxW"),
    (np.zeros((2, 50, 50, 3), np.uint8), "HxW"),
    (np.zeros((50, 50, 4), np.uint8), "1 or 3 channels"),
    (np.zeros((0, 50, 3), np.uint8), "empty"),
])
def test_bad_images(image, message):
    with pytest.raises((TypeError, ValueError), match=message):
        fastface.align(image, LANDMARKS)


@pytest.mark.parametrize("landmarks, message", [
    (np.full((5, 2), np.nan), "NaN"),
    (np.full((5, 2), np.inf), "NaN or infinity"),
    (np.full((5, 2), 50.0), "coincide"),
    (LANDMARKS + 5000, "far outside"),
    (LANDMARKS[:4], "expected 5"),
    (np.zeros((5, 3)), r"\(N, 2\)"),
    ("eyes", "numbers"),
])
def test_bad_landmarks(landmarks, message):
    with pytest.raises(ValueError, match=message):
        fastface.align(IMAGE, landmarks)


def test_bad_similarity_inputs():
    with pytest.raises(ValueError, match="dst has 5 points, expected 4"):
        fastface.estimate_similarity(np.zeros((4, 2)), fastface.ARCFACE_TEMPLATE)
    with pytest.raises(ValueError, match="at least 2"):
        fastface.estimate_similarity([[1, 2]], [[3, 4]])
    with pytest.raises(ValueError, match="channel_order"):
        fastface.align(IMAGE, LANDMARKS, channel_order="BGRA")
    with pytest.raises(ValueError, match="size"):
        fastface.align(IMAGE, LANDMARKS, size=0)


def test_landmarks_slightly_outside_are_fine():
    crop = fastface.align(IMAGE[:90, :90], LANDMARKS)  # face cut by the frame: border fills the rest
    assert crop.shape == (112, 112, 3)


def test_missing_and_garbage_model_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="param"):
        fastface.Embedder(tmp_path / "nothing.param", card=MOBILEFACENET_CARD)
    garbage = tmp_path / "garbage.param"
    garbage.write_bytes(b"\x00\xffnot a model")
    (tmp_path / "garbage.bin").write_bytes(b"1234")
    with pytest.raises(fastface.ModelError, match="could not parse"):
        fastface.Embedder(garbage, card=MOBILEFACENET_CARD)
    with pytest.raises(FileNotFoundError, match="model card"):
        fastface.Embedder(garbage)
    with pytest.raises(ValueError, match="lacks"):
        fastface.Embedder(garbage, card={"input": "data"})
    bad_json = tmp_path / "card.json"
    bad_json.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        fastface.Embedder(garbage, card=bad_json)
    with pytest.raises(ValueError, match="channel_order"):
        fastface.Embedder(garbage, card={**MOBILEFACENET_CARD, "channel_order": "YUV"})
    with pytest.raises(ValueError, match="threads"):
        fastface.Embedder(garbage, card=MOBILEFACENET_CARD, threads=0)


@require(MOBILEFACENET)
def test_truncated_weights_and_wrong_blob_names(tmp_path):
    param = MOBILEFACENET / "mobilefacenet.param"
    weights = (MOBILEFACENET / "mobilefacenet.bin").read_bytes()
    truncated = tmp_path / "truncated.bin"
    truncated.write_bytes(weights[: len(weights) // 2])
    with pytest.raises(fastface.ModelError, match="truncated"):
        fastface.Embedder(param, bin=truncated, card=MOBILEFACENET_CARD)
    with pytest.raises(fastface.ModelError, match="do not match"):
        fastface.Embedder(param.read_bytes(), bin=weights + b"\0" * 64, card=MOBILEFACENET_CARD)
    # The message lists the model's blobs, so the user can pick the right one.
    with pytest.raises(fastface.ModelError, match=r"blobs: .*fc1"):
        fastface.Embedder(param, card={**MOBILEFACENET_CARD, "output": "embedding"})
    with pytest.raises(fastface.ModelError, match=r"inputs: data"):
        fastface.Embedder(param, card={**MOBILEFACENET_CARD, "input": "input.1"})
    with pytest.raises(fastface.ModelError, match="dim 512"):
        fastface.Embedder(param, card={**MOBILEFACENET_CARD, "dim": 512})


def test_bad_crops(demo_model):
    with pytest.raises(ValueError, match="112x112"):
        demo_model.embed(np.zeros((1, 100, 100, 3), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        demo_model.embed(np.zeros((1, 112, 112, 3), np.float32))
    with pytest.raises(ValueError, match="non-empty"):
        demo_model.embed(np.zeros((0, 112, 112, 3), np.uint8))
    with pytest.raises(ValueError, match="no crops"):
        demo_model.embed([])
    with pytest.raises(ValueError, match="differ in shape"):
        demo_model.embed([np.zeros((112, 112, 3), np.uint8), np.zeros((112, 112), np.uint8)])
    with pytest.raises(ValueError, match="1 or 3 channels"):
        demo_model.embed(np.zeros((1, 112, 112, 4), np.uint8))
    with pytest.raises(ValueError, match="far outside"):
        demo_model.embed_image(IMAGE, LANDMARKS - 1000)


def test_bad_search_arguments():
    gallery = np.random.default_rng(0).standard_normal((10, 8)).astype(np.float32)
    with pytest.raises(ValueError, match="dimension mismatch"):
        fastface.search(np.zeros(16), gallery)
    with pytest.raises(ValueError, match="k must be between 1 and the gallery size 10, got 0"):
        fastface.search(gallery[0], gallery, k=0)
    with pytest.raises(ValueError, match="got 11"):
        fastface.search(gallery[0], gallery, k=11)
    with pytest.raises(TypeError, match="k must be an int"):
        fastface.search(gallery[0], gallery, k=2.5)
    with pytest.raises(ValueError, match="non-empty"):
        fastface.search(gallery[0], np.zeros((0, 8)))
    with pytest.raises(ValueError, match="gallery contains NaN"):
        fastface.search(gallery[0], np.where(np.eye(10, 8) > 0, np.nan, gallery))
    with pytest.raises(ValueError, match="queries contains NaN"):
        fastface.search(np.full(8, np.inf), gallery)
    with pytest.raises(ValueError, match="dimension mismatch"):
        fastface.cosine(np.zeros(3), gallery)


def test_a_one_channel_image_with_any_stride_on_its_channel_axis_reads_as_gray():
    gray = np.random.default_rng(0).integers(0, 255, (120, 100), dtype=np.uint8)
    strided = np.lib.stride_tricks.as_strided(gray, shape=(120, 100, 1), strides=(100, 1, 0))
    assert strided.strides[-1] == 0
    expected = fastface.align(gray, LANDMARKS - 20)
    np.testing.assert_array_equal(fastface.align(strided, LANDMARKS - 20).reshape(expected.shape), expected)
    np.testing.assert_array_equal(fastface.ShapePredictor().predict(strided, (10, 10, 90, 100)),
                                  fastface.ShapePredictor().predict(gray, (10, 10, 90, 100)))
