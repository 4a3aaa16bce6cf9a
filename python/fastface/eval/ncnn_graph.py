"""Parameters and multiply-accumulates of an ncnn model, read from its own files (numpy only).

``fastface compare`` shows these for models whose card has no figures (any ncnn model fastface
did not export). Both follow :func:`fastface.train.backbones.complexity`'s convention, so a card
written by ``fastface export`` and the graph agree on MACs:

* **MACs**: convolutions (``output elements x in_channels / groups x kernel area``) and fully
  connected layers (``in x out``), for one image; the output shapes come from running the
  layers' shape rules over the graph from the input size (one inference, shapes only).
  BatchNorm, activations, additions and the SE gate's multiply are left out, as in papers.
* **Parameters**: the learned numbers each layer stores — weights and biases, PReLU slopes,
  BatchNorm's scale and shift (its running mean and variance are statistics, not parameters,
  as in PyTorch). A graph whose BatchNorm was folded into the convolutions (pnnx does this)
  stores one bias per channel where PyTorch counted a scale and a shift, so its count is that
  much below the training framework's.

The ``.param`` gives every layer's weight shapes; the ``.bin``, when present, is walked in the
same order as ncnn's loader (fp32/fp16/int8 blocks with their tag) and must be consumed exactly,
which proves the layout was read right and gives the stored precision.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from math import ceil, prod
from pathlib import Path

import numpy as np


class GraphError(ValueError):
    """The .param/.bin cannot be read or holds a layer this counter does not know."""


@dataclass(frozen=True)
class Layer:
    type: str
    name: str
    bottoms: list
    tops: list
    params: dict  # id -> int | float | list (arrays: key -23300 - id)

    def get(self, key: int, default=0):
        return self.params.get(key, default)


@dataclass(frozen=True)
class Complexity:
    params: int
    macs: int
    weight_bytes: int | None  # bytes of weights in the .bin (None without one)
    precision: str | None     # "fp32", "fp16", "int8", "mixed" (None without a .bin)


def _number(text: str):
    try:
        return int(text)
    except ValueError:
        return float(text)


def parse_param(text: str) -> list[Layer]:
    """The layers of an ncnn text ``.param`` (magic 7767517)."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines or lines[0].strip() != "7767517":
        raise GraphError("not an ncnn text .param (first line must be 7767517)")
    layers = []
    for number, line in enumerate(lines[2:], start=3):
        parts = line.split()
        try:
            n_in, n_out = int(parts[2]), int(parts[3])
            bottoms, tops = parts[4:4 + n_in], parts[4 + n_in:4 + n_in + n_out]
            params = {}
            for item in parts[4 + n_in + n_out:]:
                key, value = item.split("=", 1)
                key = int(key)
                if key <= -23300:  # array: count,v1,v2,...
                    params[-23300 - key] = [_number(v) for v in value.split(",")[1:]]
                else:
                    params[key] = _number(value)
        except (IndexError, ValueError) as exc:
            raise GraphError(f".param line {number}: cannot parse {line.strip()!r} ({exc})") from None
        layers.append(Layer(parts[0], parts[1], bottoms, tops, params))
    return layers


# Layers with a weight matrix: (weight count key, bias flag key, int8 flag key, dynamic-weight key).
_WEIGHTED = {
    "Convolution": (6, 5, 8, 19), "ConvolutionDepthWise": (6, 5, 8, 19), "Convolution1D": (6, 5, 8, 19),
    "Deconvolution": (6, 5, None, 28), "DeconvolutionDepthWise": (6, 5, None, 28),
    "InnerProduct": (2, 1, 8, None), "Embed": (3, 2, 18, None),
}


def _blocks(layer: Layer) -> list[tuple[int, int, bool]]:
    """The layer's weight blocks in ncnn's load order: (count, type, learned), type 0 = tagged
    block (fp32/fp16/int8), 1 = raw fp32; "learned" marks parameters (not statistics)."""
    t, g = layer.type, layer.get
    if t in _WEIGHTED:
        size_key, bias_key, int8_key, dynamic_key = _WEIGHTED[t]
        if dynamic_key is not None and g(dynamic_key):
            return []  # the weights come from a blob
        if int8_key is not None and g(int8_key):
            raise GraphError(f"layer {layer.name}: int8-quantized {t} is not supported")
        return [(g(size_key), 0, True)] + ([(g(0), 1, True)] if g(bias_key) else [])
    if t == "BatchNorm":
        c = g(0)
        return [(c, 1, True), (c, 1, False), (c, 1, False), (c, 1, True)]  # slope, mean, var, bias
    if t == "PReLU":
        return [(g(0), 1, True)]
    if t == "Scale":
        if g(0) == -233:
            return []
        return [(g(0), 1, True)] + ([(g(0), 1, True)] if g(1) else [])
    if t == "Bias":
        return [(g(0), 1, True)]
    if t == "Normalize":
        return [(g(3), 1, True)]
    if t in ("LayerNorm", "InstanceNorm"):
        return [(g(0), 1, True)] * 2 if g(2, 1) else []
    if t == "GroupNorm":
        return [(g(1), 1, True)] * 2 if g(3, 1) else []
    if t == "MemoryData":
        size = prod(max(1, g(k)) for k in (0, 1, 11, 2))
        return [(size, g(21, 1), False)]
    return []


_TAGS = {0x01306B47: ("fp16", 2), 0x01348B83: ("bf16", 2), 0x000D4B38: ("int8", 1)}


def _align4(n: int) -> int:
    return (n + 3) // 4 * 4


def walk_bin(layers: list[Layer], data: bytes) -> tuple[int, set]:
    """Bytes of ``data`` the layers' weight blocks take, and the precisions seen; raises
    GraphError unless the blocks consume the file exactly."""
    offset, precisions = 0, set()
    for layer in layers:
        for count, kind, _ in _blocks(layer):
            if kind == 0:
                if offset + 4 > len(data):
                    raise GraphError(f"the .bin ends inside layer {layer.name} ({layer.type})")
                tag = int.from_bytes(data[offset:offset + 4], "little")
                offset += 4
                if tag in _TAGS:
                    precision, width = _TAGS[tag]
                    offset += _align4(count * width)
                elif tag in (0, 0x0002C056):
                    precision = "fp32"
                    offset += 4 * count
                elif tag & 0xFF == 0:
                    raise GraphError(f"layer {layer.name}: unknown weight tag {tag:#010x}")
                else:  # 256-entry codebook, then one byte per weight
                    precision = "int8"
                    offset += 256 * 4 + _align4(count)
                precisions.add(precision)
            else:
                offset += 4 * count
            if offset > len(data):
                raise GraphError(f"the .bin ends inside layer {layer.name} ({layer.type})")
    if offset != len(data):
        raise GraphError(f"the .param describes {offset} bytes of weights but the .bin holds {len(data)}: "
                         "a layer this counter does not know stores weights")
    return offset, precisions


# ---- shapes: ncnn blobs as (c, h, w) / (h, w) / (w,) tuples -------------------------------------

def _conv_out(size: int, kernel: int, dilation: int, stride: int, pad_a: int, pad_b: int) -> int:
    if pad_a in (-233, -234):  # SAME_UPPER / SAME_LOWER
        return (size + stride - 1) // stride
    extent = dilation * (kernel - 1) + 1
    return (size + pad_a + pad_b - extent) // stride + 1


def _window(layer: Layer) -> tuple:
    """A (de)convolution's kernel, dilation, stride and pads, each h defaulting to w as ncnn does:
    kw, kh, dw, dh, sw, sh, pad left, right, top, bottom."""
    g = layer.get
    kw = g(1)
    kh, dw = g(11, kw), g(2, 1)
    dh, sw = g(12, dw), g(3, 1)
    sh, pl = g(13, sw), g(4, 0)
    pr, pt = g(15, pl), g(14, pl)
    return kw, kh, dw, dh, sw, sh, pl, pr, pt, g(16, pt)


def _conv(layer: Layer, shape: tuple) -> tuple:
    c, h, w = shape
    kw, kh, dw, dh, sw, sh, pl, pr, pt, pb = _window(layer)
    return layer.get(0), _conv_out(h, kh, dh, sh, pt, pb), _conv_out(w, kw, dw, sw, pl, pr)


def _deconv(layer: Layer, shape: tuple) -> tuple:
    g = layer.get
    c, h, w = shape
    kw, kh, dw, dh, sw, sh, pl, pr, pt, pb = _window(layer)
    opr = g(18, 0)
    opb = g(19, opr)
    if g(20) or pl < 0:
        raise GraphError(f"layer {layer.name}: Deconvolution with an output size is not supported")
    out_w = (w - 1) * sw + dw * (kw - 1) + 1 - pl - pr + opr
    out_h = (h - 1) * sh + dh * (kh - 1) + 1 - pt - pb + opb
    return g(0), out_h, out_w


def _pool(layer: Layer, shape: tuple) -> tuple:
    g = layer.get
    c, h, w = shape
    if g(4):
        return (c,)
    if g(7):
        out_w = g(8)
        return c, g(18, out_w), out_w
    kw = g(1)
    kh, sw = g(11, kw), g(2, 1)
    sh, pl = g(12, sw), g(3, 0)
    pr, pt = g(14, pl), g(13, pl)
    pb, mode = g(15, pt), g(5, 0)
    if mode in (2, 3):
        return c, ceil(h / sh), ceil(w / sw)
    rounding = ceil if mode == 0 else (lambda v: int(np.floor(v)))
    return c, rounding((h + pt + pb - kh) / sh) + 1, rounding((w + pl + pr - kw) / sw) + 1


def _broadcast(layer: Layer, a: tuple, b: tuple) -> tuple:
    if len(a) < len(b):
        a, b = b, a
    if len(a) == 3 and len(b) == 1 and b[0] == a[0]:  # ncnn broadcasts a 1-D blob along channels
        return a
    try:
        return tuple(np.broadcast_shapes(a, b))
    except ValueError:
        raise GraphError(f"layer {layer.name}: cannot broadcast {a} with {b}") from None


def _reduce(layer: Layer, shape: tuple) -> tuple:
    g = layer.get
    if g(1, 1):
        return (1,) * len(shape) if g(4) else (1,)
    if not g(5):
        raise GraphError(f"layer {layer.name}: Reduction without fixbug0=1 axes is not supported")
    axes = {a % len(shape) for a in g(3, [])}
    if g(4):
        return tuple(1 if i in axes else d for i, d in enumerate(shape))
    return tuple(d for i, d in enumerate(shape) if i not in axes) or (1,)


def _reshape(layer: Layer, shape: tuple) -> tuple:
    g = layer.get
    if g(6, "") or g(11, -233) != -233:
        raise GraphError(f"layer {layer.name}: Reshape with an expression or depth is not supported")
    own = {"w": shape[-1], "h": shape[-2] if len(shape) >= 2 else 1, "c": shape[-3] if len(shape) >= 3 else 1}
    # ncnn: w, h, c given (-233 = absent: fewer dims), 0 = keep the input's, -1 = whatever is left
    out = [own[axis] if value == 0 else value
           for axis, value in (("c", g(2, -233)), ("h", g(1, -233)), ("w", g(0, -233))) if value != -233]
    if -1 in out:
        out[out.index(-1)] = prod(shape) // prod(d for d in out if d != -1)
    return tuple(out)


def _crop(layer: Layer, shapes: list) -> tuple:
    g = layer.get
    c, h, w = shapes[0]
    if len(shapes) == 2:  # crop to the reference blob's size
        return c, shapes[1][-2], shapes[1][-1]
    if g(9, []) or g(19, ""):
        raise GraphError(f"layer {layer.name}: Crop with starts/ends is not supported")
    return (g(5) or c - g(2) - g(8)), (g(4) or h - g(1) - g(7)), (g(3) or w - g(0) - g(6))


def _concat(layer: Layer, shapes: list) -> tuple:
    axis = layer.get(0) % len(shapes[0])
    out = list(shapes[0])
    out[axis] = sum(s[axis] for s in shapes)
    return tuple(out)


_ELEMENTWISE = {"ReLU", "PReLU", "Sigmoid", "TanH", "Clip", "Swish", "HardSwish", "HardSigmoid", "ELU", "Mish",
                "GELU", "SELU", "Dropout", "Noop", "BatchNorm", "Scale", "Bias", "Softmax", "Normalize", "LayerNorm",
                "InstanceNorm", "GroupNorm", "Exp", "Log", "Power", "UnaryOp", "Threshold", "AbsVal", "Erf"}


def _forward(layer: Layer, shapes: list, input_shape: tuple) -> tuple:
    t = layer.type
    if t == "Input":
        return input_shape
    if t == "MemoryData":
        g = layer.get
        return tuple(d for d in (g(2), g(1), g(0)) if d) or (1,)
    if not shapes:
        raise GraphError(f"layer {layer.name} ({t}) has no input")
    first = shapes[0]
    if t in _ELEMENTWISE or t == "Split":
        return first
    if t in ("BinaryOp", "Eltwise"):
        out = first
        for s in shapes[1:]:
            out = _broadcast(layer, out, s)
        return out
    if t == "Concat":
        return _concat(layer, shapes)
    if t == "Flatten":
        return (prod(first),)
    if t == "InnerProduct":
        return (layer.get(0),)
    if t == "Reduction":
        return _reduce(layer, first)
    if t == "Reshape":
        return _reshape(layer, first)
    if len(first) != 3:
        raise GraphError(f"layer {layer.name} ({t}) needs a 3-D input, got {first}")
    if t in ("Convolution", "ConvolutionDepthWise"):
        return _conv(layer, first)
    if t in ("Deconvolution", "DeconvolutionDepthWise"):
        return _deconv(layer, first)
    if t == "Pooling":
        return _pool(layer, first)
    if t == "Crop":
        return _crop(layer, shapes)
    if t == "Padding":
        g = layer.get
        return first[0] + g(7) + g(8), first[1] + g(0) + g(1), first[2] + g(2) + g(3)
    if t == "Interp":
        g = layer.get
        if g(5) or g(9, ""):
            raise GraphError(f"layer {layer.name}: Interp with a dynamic size is not supported")
        h, w = (g(3), g(4)) if g(3) and g(4) else (int(first[1] * g(1, 1.0)), int(first[2] * g(2, 1.0)))
        return first[0], h, w
    raise GraphError(f"layer {layer.name}: cannot infer the output shape of a {t} layer")


def _macs(layer: Layer, bottom: tuple | None, top: tuple) -> int:
    t = layer.type
    if t in ("Convolution", "ConvolutionDepthWise", "Convolution1D"):
        return prod(top) * layer.get(6) // layer.get(0)  # weights per output channel = in/groups * k
    if t in ("Deconvolution", "DeconvolutionDepthWise"):
        return prod(bottom) // bottom[0] * layer.get(6)
    if t == "InnerProduct":
        return layer.get(2)
    return 0


def complexity(param, bin=None, input_size=(112, 112), channels: int = 3) -> Complexity:
    """Parameters and MACs of the ncnn model ``param`` for one ``input_size`` (width, height)
    image; ``bin`` (default: beside the .param, if present) is checked and gives the precision."""
    param = Path(param)
    layers = parse_param(param.read_text(encoding="utf-8"))
    bin = param.with_suffix(".bin") if bin is None else Path(bin)
    weight_bytes = precision = None
    if bin.is_file():
        weight_bytes, seen = walk_bin(layers, bin.read_bytes())
        precision = seen.pop() if len(seen) == 1 else ("mixed" if seen else "fp32")
    width, height = input_size
    shapes: dict[str, tuple] = {}
    params = macs = 0
    for layer in layers:
        params += sum(count for count, _, learned in _blocks(layer) if learned)
        try:
            bottoms = [shapes[b] for b in layer.bottoms]
        except KeyError as exc:
            raise GraphError(f"layer {layer.name} reads blob {exc.args[0]} before any layer writes it") from None
        top = _forward(layer, bottoms, (channels, height, width))
        for name in layer.tops:
            shapes[name] = top
        macs += _macs(layer, bottoms[0] if bottoms else None, top)
    return Complexity(int(params), int(macs), weight_bytes, precision)


def complexity_for(param, card: dict, bin=None) -> Complexity:
    """:func:`complexity` at the input size and channel count of an embedder ``card``."""
    size = card["size"]
    width, height = (size, size) if isinstance(size, int) else size
    channels = 1 if str(card.get("channel_order", "RGB")).upper() == "GRAY" else 3
    return complexity(os.fspath(param), bin, (int(width), int(height)), channels)
