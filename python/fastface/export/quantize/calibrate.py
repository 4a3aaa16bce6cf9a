"""Activation statistics of the quantizable layers' inputs and the three ways to turn them into
int8 input scales.

The float model runs in the ``ncnn`` Python package (the same ncnn release as fastface's core)
because calibration needs every intermediate blob, which the core's Embedder/Detector do not
expose; the gate then checks the int8 model through the core itself. Two passes over the
same inputs: the first finds each blob's absolute maximum, mean and value count, the second fills
a 2048-bin histogram of |x| over [0, absmax] and sums |x - mean|.

* ``kl``: the clipping threshold whose 128-level quantized distribution is closest (KL
  divergence) to the observed one, searched over bins 128..2048 (the TensorRT / ncnn method).
* ``aciq``: analytical clipping for a Laplace-distributed input: 9.89 b for 8 bits, with b the
  mean absolute deviation (Banner et al., "ACIQ", 2018), never above absmax.
* ``percentile``: the 99.99th percentile of |x|.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

import numpy as np

BINS = 2048
LEVELS = 128
METHODS = ("kl", "aciq", "percentile")
#: ACIQ's optimal clip for a Laplace(b) input at 8 bits, in units of b.
ACIQ_LAPLACE_8BIT = 9.89
PERCENTILE = 99.99
KL_EPS = 1e-4
KL_STEP = 16


@dataclass
class BlobStats:
    absmax: float = 0.0
    total: float = 0.0
    count: int = 0
    deviation: float = 0.0
    histogram: np.ndarray = field(default_factory=lambda: np.zeros(BINS, np.float64))

    @property
    def mean(self) -> float:
        return self.total / max(self.count, 1)

    def threshold(self, method: str) -> float:
        if self.absmax <= 0:
            return 0.0
        if method == "kl":
            return kl_threshold(self.histogram, self.absmax)
        if method == "aciq":
            b = self.deviation / max(self.count, 1)
            return float(min(self.absmax, ACIQ_LAPLACE_8BIT * b)) if b > 0 else self.absmax
        if method == "percentile":
            cdf = np.cumsum(self.histogram)
            i = int(np.searchsorted(cdf, cdf[-1] * PERCENTILE / 100.0))
            return float((min(i, BINS - 1) + 1) * self.absmax / BINS)
        raise ValueError(f"unknown calibration method {method!r}; known: {', '.join(METHODS)}")

    def scale(self, method: str) -> float:
        t = self.threshold(method)
        return 127.0 / t if t > 0 else 1.0


def kl_threshold(histogram: np.ndarray, absmax: float) -> float:
    """The |x| threshold minimising KL(P || Q) between the clipped histogram P and its
    ``LEVELS``-level quantization Q (each level's mass spread over its non-empty bins); both are
    smoothed by ``KL_EPS`` so that clipped-away mass costs divergence. Searched every ``KL_STEP``
    bins, then bin by bin around the best."""
    hist = np.asarray(histogram, np.float64)
    hist = hist / max(hist.sum(), 1e-300)
    tail = np.cumsum(hist[::-1])[::-1]             # tail[i] = sum(hist[i:])

    def divergence(t: int) -> float:
        p = hist[:t].copy()
        if t < BINS:
            p[t - 1] += tail[t]
        # bin j of the first t belongs to level floor(j * LEVELS / t)
        level = (np.arange(t) * LEVELS) // t
        nonzero = hist[:t] > 0
        mass = np.bincount(level, weights=hist[:t], minlength=LEVELS)
        occupied = np.bincount(level, weights=nonzero, minlength=LEVELS)
        q = np.where(nonzero, mass[level] / np.maximum(occupied[level], 1), 0.0)
        ps, qs = p + KL_EPS, q + KL_EPS
        ps, qs = ps / ps.sum(), qs / qs.sum()
        return float(np.sum(ps * np.log(ps / qs)))

    # coarse (every KL_STEP bins), then every bin around the best coarse one
    coarse = min(range(LEVELS, BINS + 1, KL_STEP), key=divergence)
    best = min(range(max(LEVELS, coarse - KL_STEP), min(BINS, coarse + KL_STEP) + 1), key=divergence)
    return float((best + 0.5) * absmax / BINS)


def _net(param: str, weights: str, threads: int = 1):
    import ncnn

    net = ncnn.Net()
    net.opt.num_threads = threads
    net.opt.use_vulkan_compute = False
    for flag in ("use_fp16_storage", "use_fp16_packed", "use_fp16_arithmetic", "use_bf16_storage"):
        setattr(net.opt, flag, False)
    if net.load_param(str(param)) != 0 or net.load_model(str(weights)) != 0:
        raise ValueError(f"ncnn could not load {param}")
    return net


def run_blobs(net, input_name: str, tensor: np.ndarray, blobs: Sequence[str]) -> dict[str, np.ndarray]:
    """The float values of ``blobs`` for one planar (C, H, W) float32 input."""
    import ncnn

    ex = net.create_extractor()
    ex.set_light_mode(False)  # keep intermediates: every blob from one forward pass
    ex.input(input_name, ncnn.Mat(np.ascontiguousarray(tensor, np.float32)))
    out = {}
    for name in blobs:
        ret, mat = ex.extract(name)
        if ret != 0:
            raise ValueError(f"ncnn could not compute blob {name!r}")
        out[name] = np.array(mat, copy=True).ravel()
    return out


def collect(param, weights, input_name: str, inputs: Callable[[], Iterable[np.ndarray]], blobs: Sequence[str],
            log: Callable[[str], None] | None = None) -> dict[str, BlobStats]:
    """Statistics of ``blobs`` over the float inputs ``inputs()`` yields (called twice)."""
    net = _net(param, weights)
    stats = {b: BlobStats() for b in dict.fromkeys(blobs)}
    for tensor in inputs():
        for name, x in run_blobs(net, input_name, tensor, stats).items():
            s = stats[name]
            s.absmax = max(s.absmax, float(np.abs(x).max(initial=0.0)))
            s.total += float(x.sum(dtype=np.float64))
            s.count += x.size
    if log:
        log(f"calibration pass 1: absmax of {len(stats)} blobs")
    for tensor in inputs():
        for name, x in run_blobs(net, input_name, tensor, stats).items():
            s = stats[name]
            nonzero = np.abs(x[x != 0])  # exact zeros (ReLU's half) quantize exactly: not in the histogram
            if s.absmax > 0 and nonzero.size:
                s.histogram += np.bincount(np.minimum((nonzero / s.absmax * BINS).astype(np.int64), BINS - 1),
                                           minlength=BINS)
            s.deviation += float(np.abs(x - s.mean).sum(dtype=np.float64))
    return stats
