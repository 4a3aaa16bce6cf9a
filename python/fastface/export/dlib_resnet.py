"""dlib's face-recognition ResNet (``dlib_face_recognition_resnet_model_v1.dat``, CC0) -> ncnn.

The network, as dlib's ``dnn_face_recognition_ex.cpp`` declares it::

    block<N,stride>   = affine<con<N,3,3,1,1, relu<affine<con<N,3,3,stride,stride, X>>>>>
    ares<N>           = relu<add_prev1<block<N,1, tag1<X>>>>
    ares_down<N>      = relu<add_prev2<avg_pool<2,2,2,2, skip1<tag2<block<N,2, tag1<X>>>>>>>
    net = loss_metric<fc_no_bias<128, avg_pool_everything<
          ares_down<256>, ares<256> x2, ares_down<256>, ares<128> x2, ares_down<128>,
          ares<64> x3, ares_down<64>, ares<32> x3,
          max_pool<3,3,2,2, relu<affine<con<32,7,7,2,2, input_rgb_image_sized<150>>>>>>>>

:func:`verify_structure` checks the parsed file against exactly this, layer by layer (kinds,
filter counts and sizes, strides, paddings, weight shapes); anything else is refused.

dlib semantics kept in the ncnn graph: stride-2 convolutions and pools have no padding (stride-1
3x3 convolutions pad 1), sizes round down; ``affine`` (batch norm at inference) is
``gamma * x + beta`` per channel, folded into the convolution below it; ``add_prev`` adds two
tensors of different shapes into one of the larger shape, each zero-padded at the end of the
channels, rows and columns (dlib's ``tt::add``); that happens in the down blocks, where the
shortcut (2x2 average pool of the input) has half the channels of the block, and at 8x8 -> 4x4
and 4x4 -> 2x2, where the block's unpadded 3x3/2 convolution gives 3x3 and 1x1 while the pool
gives 4x4 and 2x2. The input is RGB, ``(pixel - channel mean) / 256`` (means read from the file).

The ncnn files are written directly from the parsed weights (no torch, no pnnx): every op has a
one-to-one ncnn layer (Convolution with fused ReLU, Pooling, Padding, Eltwise, ReLU,
InnerProduct), so the graph is exactly dlib's and the output is byte-for-byte reproducible.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .dlib_format import DlibFormatError, Layer, Network, read_network

INPUT_BLOB, OUTPUT_BLOB = "data", "embedding"
INPUT_SIZE = 150
EMBEDDING_DIM = 128
SCALE = 1.0 / 256.0


# ---------------------------------------------------------------------------------------------
# The expected structure, top-down, as (kind, parameters, role). Roles name tag/skip ids.

def _con(n: int, k: int, stride: int) -> tuple:
    pad = k // 2 if stride == 1 else 0  # dlib's con_ default padding
    return ("con", {"num_filters": n, "nr": k, "nc": k, "stride_y": stride, "stride_x": stride,
                    "padding_y": pad, "padding_x": pad}, None)


def _block(n: int, stride: int) -> list[tuple]:
    return [("affine", {}, None), _con(n, 3, 1), ("relu", {}, None), ("affine", {}, None), _con(n, 3, stride)]


def _ares(n: int) -> list[tuple]:
    return [("relu", {}, None), ("add_prev", {}, 1), *_block(n, 1), ("tag_or_skip", {}, "tag1")]


def _ares_down(n: int) -> list[tuple]:
    pool = {"nr": 2, "nc": 2, "stride_y": 2, "stride_x": 2, "padding_y": 0, "padding_x": 0}
    return [("relu", {}, None), ("add_prev", {}, 2), ("avg_pool", pool, None), ("tag_or_skip", {}, "skip1"),
            ("tag_or_skip", {}, "tag2"), *_block(n, 2), ("tag_or_skip", {}, "tag1")]


def expected_layers() -> list[tuple]:
    levels = [_ares_down(256), _ares(256), _ares(256), _ares_down(256), _ares(128), _ares(128), _ares_down(128),
              _ares(64), _ares(64), _ares(64), _ares_down(64), _ares(32), _ares(32), _ares(32)]
    everything = {"nr": 0, "nc": 0, "stride_y": 1, "stride_x": 1, "padding_y": 0, "padding_x": 0}
    stem_pool = {"nr": 3, "nc": 3, "stride_y": 2, "stride_x": 2, "padding_y": 0, "padding_x": 0}
    return [("fc", {"num_outputs": EMBEDDING_DIM, "bias": False}, None), ("avg_pool", everything, None),
            *[layer for level in levels for layer in level],
            ("max_pool", stem_pool, None), ("relu", {}, None), ("affine", {}, None), _con(32, 7, 2)]


def _describe_expected(entry: tuple) -> str:
    kind, params, role = entry
    return Layer(kind, detail=params).describe() if kind in ("con", "max_pool", "avg_pool", "fc") else (
        f"{kind} ({role})" if role else kind)


def verify_structure(net: Network) -> list[tuple]:
    """Check ``net`` is dlib's face-recognition ResNet v1; returns the expected roles top-down.
    Raises :class:`DlibFormatError` naming the first difference."""
    if net.loss not in ("loss_metric_", "loss_metric_2"):
        raise DlibFormatError(f"loss {net.loss!r}, expected loss_metric")
    if net.input != "input_rgb_image_sized" or (net.input_detail.get("nr"), net.input_detail.get("nc")) != (150, 150):
        raise DlibFormatError(f"input {net.input} {net.input_detail.get('nr')}x{net.input_detail.get('nc')}, "
                              "expected input_rgb_image_sized<150>")
    expected = expected_layers()
    if len(net.layers) != len(expected):
        raise DlibFormatError(f"a dlib metric-learning network with {len(net.layers)} layers; dlib's face-recognition "
                              f"ResNet v1 has {len(expected)}")
    for depth, (layer, entry) in enumerate(zip(net.layers, expected)):
        kind, params, _ = entry
        found = {k: layer.detail.get(k) for k in params}
        if layer.kind != kind or found != params:
            raise DlibFormatError(f"layer {depth + 1} (from the top) is {layer.describe()}, dlib's face-recognition "
                                  f"ResNet v1 has {_describe_expected(entry)} there")
        if layer.detail.get("disabled") or layer.detail.get("use_relu"):
            raise DlibFormatError(f"layer {depth + 1} ({layer.kind}) has flags this converter does not map")
        if kind == "affine" and (layer.detail["mode"] != "conv" or net.layers[depth + 1].kind != "con"):
            raise DlibFormatError(f"layer {depth + 1}: affine is not a per-channel affine above a convolution")
    _check_shapes(net)
    return expected


def _check_shapes(net: Network) -> None:
    """Weight shapes chain through the network (each convolution's input channels, fc inputs)."""
    channels = 3
    tags: dict[str, int] = {}
    roles = expected_layers()
    for layer, (_, _, role) in zip(reversed(net.layers), reversed(roles)):
        if layer.kind == "con":
            filters = layer.weights["filters"]
            if filters.shape[1] != channels or layer.weights["biases"].shape != (filters.shape[0],):
                raise DlibFormatError(f"a convolution with weights {filters.shape} on {channels} channels")
            channels = filters.shape[0]
        elif layer.kind == "affine":
            if layer.weights["gamma"].size != channels or layer.weights["beta"].size != channels:
                raise DlibFormatError(f"an affine layer of {layer.weights['gamma'].size} channels on {channels}")
        elif role in ("tag1", "tag2"):
            tags[role] = channels
        elif role == "skip1":
            channels = tags["tag1"]
        elif layer.kind == "add_prev":
            channels = max(channels, tags[f"tag{role}"])
        elif layer.kind == "fc":
            if layer.weights["weights"].shape != (channels, EMBEDDING_DIM):
                raise DlibFormatError(f"fc weights {layer.weights['weights'].shape} on {channels} inputs")


def load(path) -> Network:
    """Read and verify a ``dlib_face_recognition_resnet_model_v1.dat``."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(f"no dlib model at {path}") from None
    try:
        net = read_network(data)
    except DlibFormatError as exc:
        raise DlibFormatError(f"{path.name} is not dlib's face-recognition ResNet: {exc}") from None
    try:
        verify_structure(net)
    except DlibFormatError as exc:
        raise DlibFormatError(f"{path.name} is not dlib's face-recognition ResNet: {exc}") from None
    for layer in net.layers:
        if any(not np.isfinite(w).all() for w in layer.weights.values()):
            raise DlibFormatError(f"{path.name}: non-finite weights in a {layer.kind} layer (corrupt file?)")
    return net


def input_mean(net: Network) -> list[float]:
    """The per-channel means (R, G, B) stored in the file, as the shortest decimals that give the
    same float32 (dlib's 122.782, 117.001, 104.298)."""
    return [float(str(np.float32(net.input_detail[k]))) for k in ("avg_red", "avg_green", "avg_blue")]


# ---------------------------------------------------------------------------------------------
# Reference forward in numpy, following dlib's layer semantics literally (no folding).

def _conv(x: np.ndarray, w: np.ndarray, b: np.ndarray, stride: int, pad: int) -> np.ndarray:
    n_out, c_in, kh, kw = w.shape
    if pad:
        x = np.pad(x, ((0, 0), (pad, pad), (pad, pad)))
    _, h, wd = x.shape
    oh, ow = (h - kh) // stride + 1, (wd - kw) // stride + 1
    s = x.strides
    cols = np.lib.stride_tricks.as_strided(x, (c_in, kh, kw, oh, ow), (s[0], s[1], s[2], s[1] * stride, s[2] * stride))
    out = w.reshape(n_out, -1) @ cols.reshape(c_in * kh * kw, oh * ow)
    return out.reshape(n_out, oh, ow) + b[:, None, None]


def _pool(x: np.ndarray, d: dict, op) -> np.ndarray:
    if d["nr"] == 0:
        return op(x, axis=(1, 2), keepdims=True)
    k, stride = d["nr"], d["stride_y"]
    c, h, w = x.shape
    oh, ow = (h - k) // stride + 1, (w - k) // stride + 1
    s = x.strides
    win = np.lib.stride_tricks.as_strided(x, (c, oh, ow, k, k), (s[0], s[1] * stride, s[2] * stride, s[1], s[2]))
    return op(win, axis=(3, 4))


def _add(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """dlib's add_prev: the larger shape, each input zero-padded at the end."""
    out = np.zeros(tuple(max(p, q) for p, q in zip(a.shape, b.shape)), a.dtype)
    out[:a.shape[0], :a.shape[1], :a.shape[2]] += a
    out[:b.shape[0], :b.shape[1], :b.shape[2]] += b
    return out


def reference_forward(net: Network, rgb: np.ndarray, dtype=np.float64) -> np.ndarray:
    """dlib's forward pass on one (150, 150, 3) uint8 RGB chip; the raw 128-d descriptor."""
    mean = np.array([net.input_detail[k] for k in ("avg_red", "avg_green", "avg_blue")], np.float32)
    x = ((rgb.astype(np.float32) - mean) / np.float32(256)).transpose(2, 0, 1).astype(dtype)
    tags: dict[str, np.ndarray] = {}
    for layer, (_, _, role) in zip(reversed(net.layers), reversed(expected_layers())):
        if layer.kind == "con":
            d = layer.detail
            x = _conv(np.ascontiguousarray(x), layer.weights["filters"].astype(dtype), layer.weights["biases"].astype(dtype),
                      d["stride_y"], d["padding_y"])
        elif layer.kind == "affine":
            x = x * layer.weights["gamma"].astype(dtype)[:, None, None] + layer.weights["beta"].astype(dtype)[:, None, None]
        elif layer.kind == "relu":
            x = np.maximum(x, 0)
        elif layer.kind == "max_pool":
            x = _pool(np.ascontiguousarray(x), layer.detail, np.max)
        elif layer.kind == "avg_pool":
            x = _pool(np.ascontiguousarray(x), layer.detail, np.mean)
        elif role in ("tag1", "tag2"):
            tags[role] = x
        elif role == "skip1":
            x = tags["tag1"]
        elif layer.kind == "add_prev":
            x = _add(x, tags[f"tag{role}"])
        elif layer.kind == "fc":
            x = x.reshape(-1) @ layer.weights["weights"].astype(dtype)
    return np.asarray(x, np.float32)


# ---------------------------------------------------------------------------------------------
# The ncnn graph.

@dataclass
class _Node:
    type: str
    name: str
    inputs: list[str]
    outputs: list[str]
    params: dict = field(default_factory=dict)
    weights: list[tuple[np.ndarray, bool]] = field(default_factory=list)  # (array, tagged weight vs raw)


class _Graph:
    def __init__(self):
        self.nodes: list[_Node] = []
        self.shapes: dict[str, tuple[int, int, int]] = {}
        self._count: dict[str, int] = {}

    def add(self, type_: str, inputs: list[str], shape, params=None, weights=None, name: str | None = None) -> str:
        index = self._count.get(type_, 0)
        self._count[type_] = index + 1
        name = name or f"{type_.lower()}{index}"
        self.nodes.append(_Node(type_, name, inputs, [name], params or {}, weights or []))
        self.shapes[name] = tuple(shape)
        return name

    def pad_to(self, blob: str, shape) -> str:
        c, h, w = self.shapes[blob]
        if (c, h, w) == tuple(shape):
            return blob
        # Zero padding (ncnn's default type and value) after the last row (1), column (3), channel (8).
        extra = {1: shape[1] - h, 3: shape[2] - w, 8: shape[0] - c}
        return self.add("Padding", [blob], shape, {k: v for k, v in extra.items() if v})

    def with_splits(self) -> list[_Node]:
        """ncnn wants one consumer per blob: insert Split layers where a blob feeds several."""
        consumers: dict[str, list[_Node]] = {}
        for node in self.nodes:
            for blob in node.inputs:
                consumers.setdefault(blob, []).append(node)
        out = []
        for node in self.nodes:
            out.append(node)
            for blob in node.outputs:
                users = consumers.get(blob, [])
                if len(users) > 1:
                    names = [f"{blob}_s{i}" for i in range(len(users))]
                    out.append(_Node("Split", f"{blob}_split", [blob], names))
                    for user, new in zip(users, names):
                        user.inputs = [new if b == blob else b for b in user.inputs]
        return out


def build_graph(net: Network) -> list[_Node]:
    g = _Graph()
    x = g.add("Input", [], (3, INPUT_SIZE, INPUT_SIZE), {0: INPUT_SIZE, 1: INPUT_SIZE, 2: 3}, name=INPUT_BLOB)
    tags: dict[str, str] = {}
    layers = list(zip(reversed(net.layers), reversed(expected_layers())))
    i = 0
    while i < len(layers):
        layer, (_, _, role) = layers[i]
        c, h, w = g.shapes[x]
        if layer.kind == "con":
            d = layer.detail
            weight = layer.weights["filters"].astype(np.float64)
            bias = layer.weights["biases"].astype(np.float64)
            affine = layers[i + 1][0]  # verify_structure: every convolution has an affine above it
            gamma, beta = affine.weights["gamma"].astype(np.float64), affine.weights["beta"].astype(np.float64)
            weight, bias = weight * gamma[:, None, None, None], bias * gamma + beta
            i += 2
            fuse_relu = i < len(layers) and layers[i][0].kind == "relu"
            k, s, p = d["nr"], d["stride_y"], d["padding_y"]
            shape = (weight.shape[0], (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1)
            params = {0: weight.shape[0], 1: k, 3: s, 4: p, 5: 1, 6: weight.size}
            if fuse_relu:
                params[9] = 1
                i += 1
            x = g.add("Convolution", [x], shape, params,
                      [(weight.astype(np.float32), True), (bias.astype(np.float32), False)])
            continue
        if layer.kind == "relu":
            x = g.add("ReLU", [x], (c, h, w))
        elif layer.kind in ("max_pool", "avg_pool"):
            d = layer.detail
            kind = 0 if layer.kind == "max_pool" else 1
            if d["nr"] == 0:
                x = g.add("Pooling", [x], (c, 1, 1), {0: kind, 4: 1})
            else:
                k, s = d["nr"], d["stride_y"]
                x = g.add("Pooling", [x], (c, (h - k) // s + 1, (w - k) // s + 1), {0: kind, 1: k, 2: s, 5: 1})
        elif role in ("tag1", "tag2"):
            tags[role] = x
        elif role == "skip1":
            x = tags["tag1"]
        elif layer.kind == "add_prev":
            other = tags[f"tag{role}"]
            shape = tuple(max(a, b) for a, b in zip(g.shapes[x], g.shapes[other]))
            x = g.add("Eltwise", [g.pad_to(x, shape), g.pad_to(other, shape)], shape, {0: 1})
        elif layer.kind == "fc":
            weight = layer.weights["weights"].T  # dlib: (inputs, outputs); ncnn: (outputs, inputs)
            x = g.add("InnerProduct", [x], (weight.shape[0], 1, 1), {0: weight.shape[0], 1: 0, 2: weight.size},
                      [(np.ascontiguousarray(weight, np.float32), True)], name=OUTPUT_BLOB)
        i += 1
    return g.with_splits()


def write_ncnn(net: Network, param_path, bin_path, fp16: bool = False) -> None:
    """Write the ncnn ``.param`` (text) and ``.bin``; fp16 stores the convolution and fc weights
    as half floats (ncnn's 0x01306B47 tag), biases stay fp32."""
    nodes = build_graph(net)
    blobs = {b for n in nodes for b in n.outputs}
    lines = ["7767517", f"{len(nodes)} {len(blobs)}"]
    weights = bytearray()
    for n in nodes:
        fields = [f"{n.type:<16}", f"{n.name:<24}", str(len(n.inputs)), str(len(n.outputs)), *n.inputs, *n.outputs]
        fields += [f"{k}={int(v)}" for k, v in n.params.items()]  # every parameter here is an int
        lines.append(" ".join(fields).rstrip())
        for array, tagged in n.weights:
            flat = np.ascontiguousarray(array, np.float32).reshape(-1)
            if tagged and fp16:
                data = flat.astype("<f2").tobytes()
                weights += struct.pack("<I", 0x01306B47) + data + b"\0" * (-len(data) % 4)
            elif tagged:
                weights += struct.pack("<I", 0) + flat.astype("<f4").tobytes()
            else:
                weights += flat.astype("<f4").tobytes()
    Path(param_path).write_text("\n".join(lines) + "\n")
    Path(bin_path).write_bytes(bytes(weights))


def complexity(net: Network) -> tuple[int, int]:
    """(parameters, multiply-accumulates) of the inference network (affine folded)."""
    params = macs = 0
    for node in build_graph(net):
        if node.type == "Convolution":
            params += node.params[6] + node.params[0]
        elif node.type == "InnerProduct":
            params += node.params[2]
    shapes = _shapes(net)
    for layer, out_shape, _ in shapes:
        if layer.kind == "con":
            macs += int(np.prod(out_shape)) * int(np.prod(layer.weights["filters"].shape[1:]))
        elif layer.kind == "fc":
            macs += layer.weights["weights"].size
    return params, macs


def _shapes(net: Network):
    """(layer, output shape, input shape) bottom-up, by dlib's shape rules."""
    shape = (3, INPUT_SIZE, INPUT_SIZE)
    tags: dict[str, tuple] = {}
    out = []
    for layer, (_, _, role) in zip(reversed(net.layers), reversed(expected_layers())):
        before = shape
        c, h, w = shape
        d = layer.detail
        if layer.kind == "con":
            k, s, p = d["nr"], d["stride_y"], d["padding_y"]
            shape = (d["num_filters"], (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1)
        elif layer.kind in ("max_pool", "avg_pool"):
            shape = (c, 1, 1) if d["nr"] == 0 else (c, (h - d["nr"]) // d["stride_y"] + 1, (w - d["nc"]) // d["stride_x"] + 1)
        elif role in ("tag1", "tag2"):
            tags[role] = shape
        elif role == "skip1":
            shape = tags["tag1"]
        elif layer.kind == "add_prev":
            shape = tuple(max(a, b) for a, b in zip(shape, tags[f"tag{role}"]))
        elif layer.kind == "fc":
            shape = (d["num_outputs"], 1, 1)
        out.append((layer, shape, before))
    return out


__all__ = ["EMBEDDING_DIM", "INPUT_BLOB", "INPUT_SIZE", "OUTPUT_BLOB", "SCALE", "build_graph", "complexity",
           "expected_layers", "input_mean", "load", "reference_forward", "verify_structure", "write_ncnn"]
