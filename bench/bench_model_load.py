"""Loading the bundled dlib ResNet (10.7 MB), 1 thread: fastface's Embedder — the shape check,
the weight-storage check (each layer's weights through ncnn's generic layers), ncnn's load and
a probe inference — vs ncnn's own load of the same files (the ncnn Python package, no checks).
Target: the checks keep a load within 2x of ncnn's bare one."""
import time

import pytest

import fastface
from fastface.hub.bundled import bundled_model

ncnn = pytest.importorskip("ncnn", reason="the peer is the ncnn Python package (pip install ncnn)")
PARAM = bundled_model("dlib_resnet_v1")


def load_ncnn():
    net = ncnn.Net()
    net.opt.num_threads = 1
    assert net.load_param(str(PARAM)) == 0 and net.load_model(str(PARAM.with_suffix(".bin"))) == 0
    return net


def load_fastface():
    return fastface.Embedder(PARAM, threads=1)


@pytest.mark.benchmark(group="load-dlib-resnet")
def test_ncnn_load(benchmark):
    assert len(benchmark(load_ncnn).layers()) > 0


@pytest.mark.benchmark(group="load-dlib-resnet")
def test_fastface_load(benchmark):
    assert benchmark(load_fastface).dim == 128


def _best_ms(fn, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times) * 1e3


def test_checked_load_costs_at_most_2x_ncnn_s():
    # Interleaved rounds, the best of each: the shared machine's load only ever adds time.
    ncnn_ms, fastface_ms = [], []
    for _ in range(5):
        ncnn_ms.append(_best_ms(load_ncnn, 1))
        fastface_ms.append(_best_ms(load_fastface, 1))
    ncnn_best, fastface_best = min(ncnn_ms), min(fastface_ms)
    print(f"\nload dlib_resnet_v1, 1 thread: ncnn {ncnn_best:.1f} ms, fastface (checked, probed) {fastface_best:.1f} ms "
          f"({fastface_best / ncnn_best:.2f}x)")
    assert fastface_best <= 2 * ncnn_best
