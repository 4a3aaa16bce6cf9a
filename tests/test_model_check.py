"""The static shape check every model load runs (cpp/src/graph_check.cpp): a malformed graph is
refused with ModelError naming the layer and both shapes before ncnn runs anything; a
well-formed one gets exactly the shapes ncnn computes."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import fastface
from fastface import _core
from model_corpus import MALFORMED, WELL_FORMED, last_top, param_text
from shared_data import MOBILEFACENET, RETINAFACE_PARAM, require

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "models"


@pytest.mark.parametrize("name,size,layers,message", MALFORMED, ids=[c[0] for c in MALFORMED])
def test_every_malformed_graph_is_refused_naming_the_layer(name, size, layers, message):
    text = param_text(layers).encode()
    with pytest.raises(fastface.ModelError, match=message) as refused:
        _core.check_model_shapes(text, [("data", *size)])
    assert "layer '" in str(refused.value)


def test_loading_every_malformed_graph_raises_model_error_not_a_crash(tmp_path):
    # Through the public loader, in one subprocess: a crash fails this test (naming the case)
    # instead of killing pytest.
    cases = []
    for name, (w, h, c), layers, _ in MALFORMED:
        path = tmp_path / f"{name}.param"
        path.write_text(param_text(layers))
        order = "GRAY" if c == 1 else "BGR"
        cases.append((name, str(path), dict(input="data", output=last_top(layers), size=[w, h], channel_order=order,
                                            mean=0, scale=1), c))
    code = (
        "import sys, fastface\n"
        f"cases = {[(n, p, card) for n, p, card, c in cases if c in (1, 3)]!r}\n"
        "for name, path, card in cases:\n"
        "    print(name, flush=True)\n"
        "    try:\n"
        "        fastface.Embedder.with_zero_weights(path, card=card)\n"
        "        print('LOADED', name)\n"
        "    except fastface.ModelError:\n"
        "        print('REFUSED', name, flush=True)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"crashed (exit {done.returncode}) on: {done.stdout.splitlines()[-1:]}\n{done.stderr[-2000:]}"
    refused = [line.split()[1] for line in done.stdout.splitlines() if line.startswith("REFUSED")]
    assert sorted(refused) == sorted(n for n, p, card, c in cases if c in (1, 3)), done.stdout


def _ncnn_shapes(text: str, size, input_blob="data", blobs=None):
    """Blobs' (dims, w, h, d, c) as ncnn itself computes them (the ncnn Python package), with zero weights."""
    ncnn = pytest.importorskip("ncnn")
    net = ncnn.Net()
    net.opt.num_threads = 1
    assert net.load_param_mem(text) == 0
    net.load_model(ncnn.DataReaderFromEmpty())
    if blobs is None:
        blobs = [b for line in text.splitlines()[2:] for b in line.split()[4 + int(line.split()[2]):][:int(line.split()[3])]]
    shapes = {}
    for blob in blobs:
        if blob == input_blob:
            continue
        zeros = ncnn.Mat(size[0], size[1], size[2])
        zeros.fill(0.0)
        ex = net.create_extractor()
        ex.input(input_blob, zeros)
        ret, out = ex.extract(blob)
        assert ret == 0, blob
        shapes[blob] = (out.dims, out.w, out.h, out.d, out.c)
    return shapes


@pytest.mark.parametrize("name,size,layers", WELL_FORMED, ids=[c[0] for c in WELL_FORMED])
def test_well_formed_graphs_get_the_shapes_ncnn_computes(name, size, layers):
    text = param_text(layers)
    predicted = _core.check_model_shapes(text.encode(), [("data", *size)])
    actual = _ncnn_shapes(text, size)
    assert {b: predicted[b] for b in actual} == actual


def _bundled_inputs():
    """(stem, input blob, sizes) of every bundled model with a card, at the sizes it runs."""
    import json

    for card_path in sorted(MODELS.glob("*.json")):
        if not card_path.with_suffix(".param").is_file():
            continue
        card = json.loads(card_path.read_text())
        size = card.get("size") or card.get("input_size")
        if isinstance(size, int):
            size = [size, size]
        sizes = [tuple(size)] if size and size[0] else [(640, 480), (96, 64)]  # detectors: any size
        yield card_path.stem, card["input"], sizes


@pytest.mark.parametrize("stem,input_blob,sizes", list(_bundled_inputs()), ids=lambda v: v if isinstance(v, str) else None)
def test_every_bundled_graph_gets_ncnn_s_own_shapes(stem, input_blob, sizes):
    text = (MODELS / f"{stem}.param").read_text()
    for w, h in sizes:
        predicted = _core.check_model_shapes(text.encode(), [(input_blob, w, h, 3)])
        assert all(s is not None for s in predicted.values())
        if stem in ("yunet_s", "se_iresnet100"):  # the slow or many-blob ones: a sample of blobs
            predicted = {b: s for i, (b, s) in enumerate(predicted.items()) if i % 7 == 0 or b.startswith("out")}
        actual = _ncnn_shapes(text, (w, h, 3), input_blob=input_blob, blobs=list(predicted))
        assert {b: predicted[b] for b in actual} == actual


@require(RETINAFACE_PARAM)
def test_shared_insightface_graphs_pass():
    shapes = _core.check_model_shapes((MOBILEFACENET / "mobilefacenet.param").read_bytes(), [("data", 112, 112, 3)])
    assert shapes["fc1"] == (1, 128, 1, 1, 1)
    shapes = _core.check_model_shapes(RETINAFACE_PARAM.read_bytes(), [("data", 320, 224, 3)])
    assert shapes["face_rpn_cls_prob_reshape_stride8"] == (3, 40, 28, 1, 4)


def test_unknown_layer_types_are_refused_unless_allowed(tmp_path):
    layers = ["LRN lrn 1 1 data lrn 0=0 1=3", "ReLU relu 1 1 lrn relu"]
    text = param_text(layers)
    with pytest.raises(fastface.ModelError, match=r"layer types fastface cannot shape-check \(LRN\)"):
        _core.check_model_shapes(text.encode(), [("data", 4, 4, 1)])
    shapes = _core.check_model_shapes(text.encode(), [("data", 4, 4, 1)], allow_unknown_layers=True)
    assert shapes["lrn"] is None and shapes["relu"] is None  # after the unknown layer: unchecked
    path = tmp_path / "lrn.param"
    path.write_text(text)
    card = dict(input="data", output="relu", size=[4, 4], channel_order="GRAY", mean=0, scale=1)
    with pytest.raises(fastface.ModelError, match="Allow unknown layers"):
        fastface.Embedder.with_zero_weights(path, card=card)


def test_a_card_size_the_graph_was_not_made_for_is_refused_at_load():
    card = dict(input="in0", output="out0", size=[150, 150], channel_order="BGR", mean=0, scale=1)
    # mobilefacenet's 7x7 GDC head and 512-wide fc need a 112x112 input
    with pytest.raises(fastface.ModelError, match=r"layer '.*' \((ConvolutionDepthWise|InnerProduct)\)"):
        fastface.Embedder.with_zero_weights(MODELS / "mobilefacenet.param", card=dict(card, size=[16, 16]))


def test_the_detector_checks_each_new_input_size():
    detector = fastface.Detector()
    for shape in [(37, 1000, 3), (1000, 37, 3), (8, 8, 3), (480, 640, 3)]:
        assert isinstance(detector.detect(np.zeros(shape, np.uint8)), list)
