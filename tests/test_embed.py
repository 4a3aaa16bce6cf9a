"""The ncnn embedder: parity with ncnn's own Python package, real faces, threads, loading."""
import json
import platform
import shutil
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import pytest

import fastface
from fastface.demo import write_demo_model
from shared_data import ALIGNED_LFW, MOBILEFACENET, MOBILEFACENET_CARD, require

PARAM, BIN = MOBILEFACENET / "mobilefacenet.param", MOBILEFACENET / "mobilefacenet.bin"
needs_model = require(PARAM)


@pytest.fixture(scope="module")
def model():
    return fastface.Embedder(PARAM, card=MOBILEFACENET_CARD)


@pytest.fixture(scope="module")
def lfw():
    return {p.stem: cv2.imread(str(p)) for p in sorted(ALIGNED_LFW.glob("*.jpg"))}


def ncnn_reference(crop_bgr):
    """The same model through the ncnn Python package, fp32 throughout."""
    ncnn = pytest.importorskip("ncnn")
    net = ncnn.Net()
    net.opt.use_fp16_packed = net.opt.use_fp16_storage = net.opt.use_fp16_arithmetic = False
    net.opt.num_threads = 1
    assert net.load_param(str(PARAM)) == 0 and net.load_model(str(BIN)) == 0
    ex = net.create_extractor()
    ex.input("data", ncnn.Mat.from_pixels(crop_bgr, ncnn.Mat.PixelType.PIXEL_BGR2RGB, 112, 112))
    _, out = ex.extract("fc1")
    return np.array(out).reshape(-1)


@needs_model
@require(ALIGNED_LFW)
def test_output_equals_ncnn_python_package(model, lfw):
    for crop in lfw.values():
        ours = model.embed(crop[None], normalize=False)[0]
        np.testing.assert_allclose(ours, ncnn_reference(crop), atol=1e-4, rtol=0)


@needs_model
@require(ALIGNED_LFW)
def test_same_person_scores_higher_than_different(model, lfw):
    e = dict(zip(lfw, model.embed(list(lfw.values()))))
    same = fastface.cosine(e["Aaron_Peirsol_0003"], e["Aaron_Peirsol_0004"])
    assert same > fastface.cosine(e["Aaron_Peirsol_0003"], e["Aaron_Tippin_0001"])
    assert same > fastface.cosine(e["Aaron_Peirsol_0004"], e["Aaron_Tippin_0001"])
    np.testing.assert_allclose(np.linalg.norm(model.embed(list(lfw.values())), axis=1), 1.0, atol=1e-5)


@needs_model
@require(ALIGNED_LFW)
def test_embed_image_fuses_alignment(model, lfw):
    crop = lfw["Aaron_Peirsol_0003"]
    # The crop placed in a bigger, rotated photo: aligning back must give the same embedding.
    angle, scale = 0.3, 1.7
    m = np.array([[scale * np.cos(angle), -scale * np.sin(angle), 120], [scale * np.sin(angle), scale * np.cos(angle), 40]])
    photo = cv2.warpAffine(crop, m, (400, 360), flags=cv2.INTER_CUBIC)
    landmarks = fastface.ARCFACE_TEMPLATE @ m[:, :2].T + m[:, 2]
    direct = model.embed_image(photo, landmarks)
    assert direct.shape == (128,)
    assert fastface.cosine(direct, model.embed(crop[None])[0]) > 0.98
    via_crop = model.embed(fastface.align(photo, landmarks)[None])[0]
    assert fastface.cosine(direct, via_crop) > 0.999


@needs_model
@require(ALIGNED_LFW)
def test_threads_share_one_model(model, lfw):
    crops = list(lfw.values()) * 8
    expected = model.embed(crops)
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda c: model.embed(c[None])[0], crops))
    np.testing.assert_allclose(np.stack(results), expected, atol=1e-6)


@needs_model
def test_bytes_and_card_beside_model(tmp_path, model):
    # A user's folder: model files plus the JSON card the export issue writes.
    shutil.copy(PARAM, tmp_path / "face.param")
    shutil.copy(BIN, tmp_path / "face.bin")
    (tmp_path / "face.json").write_text(json.dumps({**MOBILEFACENET_CARD, "precision": "fp32"}))
    from_folder = fastface.Embedder(tmp_path / "face.param", threads=2)
    from_bytes = fastface.Embedder(PARAM.read_bytes(), bin=BIN.read_bytes(), card=MOBILEFACENET_CARD)
    crop = np.random.default_rng(0).integers(0, 256, (2, 112, 112, 3), dtype=np.uint8)
    np.testing.assert_allclose(from_folder.embed(crop), model.embed(crop), atol=1e-6)
    np.testing.assert_allclose(from_bytes.embed(crop), model.embed(crop), atol=1e-6)
    assert from_folder.dim == 128 and from_folder.card["precision"] == "fp32"


@needs_model
@require(ALIGNED_LFW)
def test_fp16_stays_close_to_fp32(lfw):
    fp16 = fastface.Embedder(PARAM, card=MOBILEFACENET_CARD, fp16=True)
    fp32 = fastface.Embedder(PARAM, card=MOBILEFACENET_CARD)
    crops = list(lfw.values())
    cosines = np.sum(fp16.embed(crops) * fp32.embed(crops), axis=1)
    # ARMv8.2 CPUs (and qemu) compute in fp16 too, not only store: a little further from fp32.
    assert cosines.min() > (0.99 if platform.machine().lower() in ("aarch64", "arm64") else 0.999)


def test_zero_weights_time_a_graph_without_training(tmp_path):
    param = write_demo_model(tmp_path)
    model = fastface.Embedder.with_zero_weights(param)
    assert model.dim == 128
    out = model.embed(np.zeros((1, 112, 112, 3), np.uint8), normalize=False)
    np.testing.assert_array_equal(out, 0)  # zero weights and biases: a zero embedding


def test_gray_crops_and_channel_orders(tmp_path):
    model = fastface.Embedder(write_demo_model(tmp_path))
    rng = np.random.default_rng(1)
    gray = rng.integers(0, 256, (2, 112, 112), dtype=np.uint8)
    as_colour = np.repeat(gray[..., None], 3, axis=3)
    np.testing.assert_allclose(model.embed(gray), model.embed(as_colour), atol=1e-6)
    bgr = rng.integers(0, 256, (112, 112, 3), dtype=np.uint8)
    np.testing.assert_allclose(model.embed(bgr), model.embed(bgr[..., ::-1].copy(), channel_order="RGB"), atol=1e-6)
