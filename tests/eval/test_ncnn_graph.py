"""fastface.eval.ncnn_graph: parameters and MACs counted from ncnn files."""
import json
from pathlib import Path

import numpy as np
import pytest

from fastface.demo import write_demo_model
from fastface.eval.ncnn_graph import GraphError, complexity, complexity_for

from shared_data import MOBILEFACENET, RETINAFACE_PARAM, require

MODELS = Path(__file__).resolve().parents[2] / "models"


@pytest.mark.parametrize("stem", ["mobilefacenet", "se_iresnet100"])
def test_bundled_architectures_match_their_cards(stem):
    card = json.loads((MODELS / f"{stem}.json").read_text())
    counted = complexity_for(MODELS / f"{stem}.param", card)
    assert counted.macs == card["macs"]  # same convention as the exporter's torch count, to the MAC
    # pnnx folded each BatchNorm into the convolution before it: one bias per channel is stored
    # where torch counted a scale and a shift, so the graph holds slightly fewer parameters
    assert 0.98 * card["params"] < counted.params < card["params"]
    assert counted.weight_bytes is None  # architecture only: no .bin


def test_demo_model_by_hand(tmp_path):
    param = write_demo_model(tmp_path)
    counted = complexity(param)
    weights = [(432, 16), (4608, 32), (9216, 32), (802816, 128)]
    assert counted.params == sum(w + b for w, b in weights)
    # 112 -> 56 -> 28 -> 14 (3x3, stride 2, pad 1); out elements x weights per output channel
    assert counted.macs == 16 * 56 * 56 * 27 + 32 * 28 * 28 * 144 + 32 * 14 * 14 * 288 + 802816
    assert counted.weight_bytes == param.with_suffix(".bin").stat().st_size and counted.precision == "fp32"
    # the input size drives the MACs: a 224 input has 4x the convolution work, same FC
    assert complexity(param, input_size=(224, 224)).macs == 4 * (counted.macs - 802816) + 802816


@require(MOBILEFACENET)
def test_shared_mobilefacenet_with_unfolded_batchnorm():
    counted = complexity(MOBILEFACENET / "mobilefacenet.param")
    # the insightface graph keeps its 50 BatchNorm layers: their running statistics are in the
    # .bin (walked to the last byte) but are not parameters
    assert counted.weight_bytes == (MOBILEFACENET / "mobilefacenet.bin").stat().st_size
    assert counted.precision == "fp32"
    assert counted.macs == json.loads((MODELS / "mobilefacenet.json").read_text())["macs"]  # same architecture
    assert 0.99e6 < counted.params < 1.01e6


@require(RETINAFACE_PARAM)
def test_retinaface_detector_graph():
    """A detector: fp16 weights, upsampling, crops to a reference blob and reshapes."""
    counted = complexity(RETINAFACE_PARAM, input_size=(640, 640))
    assert counted.precision == "fp16" and counted.weight_bytes == RETINAFACE_PARAM.with_suffix(".bin").stat().st_size
    assert 0.4e6 < counted.params < 0.45e6  # mnet0.25 RetinaFace
    # fully convolutional, every stride divides 640 and 320: a quarter of the pixels, a quarter of the MACs
    assert complexity(RETINAFACE_PARAM, input_size=(320, 320)).macs * 4 == counted.macs


SMALL = """7767517
4 4
Input            data   0 1 data 0=7 1=7 2=3
Pooling          pool   1 1 data pool 0=0 1=3 2=2
Convolution      conv   1 1 pool conv 0=4 1=1 5=1 6=12
InnerProduct     fc     1 1 conv fc 0=2 1=0 2=72
"""


def write_small(folder, weight_block):
    (folder / "s.param").write_text(SMALL)
    bias = np.zeros(4, np.float32).tobytes()
    (folder / "s.bin").write_bytes(weight_block(12) + bias + weight_block(72))
    return folder / "s.param"


def fp16_block(n):
    data = np.ones(n, np.float16).tobytes()
    return (0x01306B47).to_bytes(4, "little") + data + b"\0" * (-len(data) % 4)


def fp32_block(n):
    return bytes(4) + np.ones(n, np.float32).tobytes()


@pytest.mark.parametrize("block, precision", [(fp32_block, "fp32"), (fp16_block, "fp16")])
def test_pooling_shapes_and_precision(tmp_path, block, precision):
    counted = complexity(write_small(tmp_path, block), input_size=(7, 7))
    # max pooling 3x3 stride 2 on 7x7 (ncnn pads the tail, so ceil): 3x3; the 1x1 conv makes 4x3x3
    assert counted.macs == 4 * 3 * 3 * 3 + 72
    assert counted.params == 12 + 4 + 72 and counted.precision == precision


def test_bin_that_does_not_fit_the_graph(tmp_path):
    param = write_small(tmp_path, fp32_block)
    data = param.with_suffix(".bin").read_bytes()
    param.with_suffix(".bin").write_bytes(data[:-8])
    with pytest.raises(GraphError, match="ends inside layer fc"):
        complexity(param, input_size=(7, 7))
    param.with_suffix(".bin").write_bytes(data + bytes(8))
    with pytest.raises(GraphError, match="describes 360 bytes of weights but the .bin holds 368"):
        complexity(param, input_size=(7, 7))


@pytest.mark.parametrize("text, message", [
    ("7767516\n1 1\nInput data 0 1 data\n", "not an ncnn text .param"),
    ("7767517\n1 1\nInput data 0 1 data 0=x\n", "line 3: cannot parse"),
    ("7767517\n2 2\nInput data 0 1 data\nFancy f 1 1 data f\n", "cannot infer the output shape of a Fancy layer"),
    ("7767517\n1 1\nReLU r 1 1 nowhere r\n", "reads blob nowhere before any layer writes it"),
])
def test_graph_errors(tmp_path, text, message):
    (tmp_path / "m.param").write_text(text)
    with pytest.raises(GraphError, match=message):
        complexity(tmp_path / "m.param")
