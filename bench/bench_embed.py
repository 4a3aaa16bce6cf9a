"""embed vs the ncnn Python package: same model, same thread count, same crop. Target: no slower."""
import numpy as np
import pytest

import fastface
from shared_data import MOBILEFACENET, MOBILEFACENET_CARD, require

pytestmark = require(MOBILEFACENET)
PARAM, BIN = MOBILEFACENET / "mobilefacenet.param", MOBILEFACENET / "mobilefacenet.bin"
CROP = np.random.default_rng(0).integers(0, 256, (112, 112, 3), dtype=np.uint8)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.benchmark(group="embed")
def test_ncnn_python(benchmark, threads):
    ncnn = pytest.importorskip("ncnn")
    net = ncnn.Net()
    net.opt.num_threads = threads
    net.opt.use_fp16_packed = net.opt.use_fp16_storage = net.opt.use_fp16_arithmetic = False
    net.load_param(str(PARAM))
    net.load_model(str(BIN))

    def run():
        ex = net.create_extractor()
        ex.input("data", ncnn.Mat.from_pixels(CROP, ncnn.Mat.PixelType.PIXEL_BGR2RGB, 112, 112))
        return np.array(ex.extract("fc1")[1])

    assert benchmark(run).size == 128


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.benchmark(group="embed")
def test_fastface(benchmark, threads):
    model = fastface.Embedder(PARAM, card=MOBILEFACENET_CARD, threads=threads)
    batch = CROP[None]
    assert benchmark(model.embed, batch, normalize=False).shape == (1, 128)
