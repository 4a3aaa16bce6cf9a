"""ncnn's .param/.bin as the quantizer needs them: layers with their raw parameter tokens, the
byte span of every layer's weights, the float weights of the quantizable layers, and the int8
writer.

ncnn's int8 format (learned from ncnn's src/layer/convolution*.cpp, innerproduct.cpp and
src/modelbin.cpp; written here from scratch):

* param: the layer keeps its type; key 8 (``int8_scale_term``) says it is quantized —
  Convolution and InnerProduct 2 (one weight scale per output channel), ConvolutionDepthWise 1
  (one per group); +100 (102 / 101) when the layer's output is requantized to int8 for the
  next quantized convolution (``top_blob_int8_scales``).
* bin, per quantized layer: the tag 0x000D4B38, ``weight_data_size`` int8 weights padded to 4
  bytes; the bias (if any) as raw float32; the weight scales as raw float32 (num_output or
  group values); the input scale (1 raw float32); the output scale (1 raw float32) for +100.
  A scale is a multiplier: ``q = round(x * scale)``, clipped to [-127, 127].

Every other layer's bytes are copied unchanged (an fp16-stored model keeps its fp16 layers). The
byte span of a layer whose weight layout fastface does not know is measured by letting ncnn's
own layer (the Python ``ncnn`` package, the same release as the core) read its weights.
"""
from __future__ import annotations

import ctypes
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

TAG_FP16 = 0x01306B47
TAG_INT8 = 0x000D4B38
TAG_FP32_SCALED = 0x0002C056
QUANTIZABLE = ("Convolution", "ConvolutionDepthWise", "InnerProduct")
_ARRAY_KEY = -23300


class FormatError(ValueError):
    """The .param/.bin cannot be read as an ncnn model the quantizer can handle."""


@dataclass
class Layer:
    type: str
    name: str
    bottoms: list[str]
    tops: list[str]
    params: list[tuple[int, str]]          # (key as written, value text) in file order; arrays: key <= -23300
    span: tuple[int, int] = (0, 0)         # byte range of its weights in the .bin

    def param(self, key: int, default=None):
        for k, v in self.params:
            if k == key:
                return _number(v)
        return default

    def set_param(self, key: int, value) -> None:
        text = str(value)
        for i, (k, _) in enumerate(self.params):
            if k == key:
                self.params[i] = (key, text)
                return
        self.params.append((key, text))


@dataclass
class Model:
    magic: str
    layers: list[Layer]
    blob_count: int
    weights: bytes = b""

    def consumers(self, blob: str) -> list[Layer]:
        return [layer for layer in self.layers if blob in layer.bottoms]


def _number(text: str):
    if any(c in text for c in ".eE") and not text.lstrip("-").isdigit():
        return float(text)
    return int(text)


def parse_param(text: str) -> Model:
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) < 2 or lines[0].strip() != "7767517":
        raise FormatError("not an ncnn text .param (first line is not the magic 7767517)")
    try:
        layer_count, blob_count = (int(v) for v in lines[1].split())
    except ValueError:
        raise FormatError("the .param's second line is not 'layer_count blob_count'") from None
    layers = []
    for number, line in enumerate(lines[2:], start=3):
        tokens = line.split()
        try:
            kind, name, nb, nt = tokens[0], tokens[1], int(tokens[2]), int(tokens[3])
            bottoms, tops = tokens[4:4 + nb], tokens[4 + nb:4 + nb + nt]
            params = []
            for token in tokens[4 + nb + nt:]:
                key, value = token.split("=", 1)
                params.append((int(key), value))
        except (IndexError, ValueError):
            raise FormatError(f".param line {number} is not an ncnn layer: {line[:120]!r}") from None
        if len(bottoms) != nb or len(tops) != nt:
            raise FormatError(f".param line {number} lists fewer blobs than it declares")
        layers.append(Layer(kind, name, bottoms, tops, params))
    if len(layers) != layer_count:
        raise FormatError(f"the .param declares {layer_count} layers but has {len(layers)}")
    return Model(lines[0].strip(), layers, blob_count)


def write_param(model: Model) -> str:
    out = [model.magic, f"{len(model.layers)} {model.blob_count}"]
    for layer in model.layers:
        keys = [f"{key}={value}" for key, value in layer.params]
        head = f"{layer.type:<24} {layer.name:<24} {len(layer.bottoms)} {len(layer.tops)}"
        out.append(" ".join([head] + layer.bottoms + layer.tops + keys))
    return "\n".join(out) + "\n"


# -- measuring each layer's weight bytes with ncnn's own layer code ---------------------------

_get_pointer = ctypes.pythonapi.PyCapsule_GetPointer
_get_pointer.restype, _get_pointer.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]
_get_name = ctypes.pythonapi.PyCapsule_GetName
_get_name.restype, _get_name.argtypes = ctypes.c_char_p, [ctypes.py_object]


def _reader_class():
    import ncnn

    class CountingReader(ncnn.DataReader):
        """Serves the .bin from memory and counts what ncnn's layers read."""

        def __init__(self, data: bytes):
            super().__init__()
            self.data, self.pos = data, 0

        def scan(self, fmt, p):
            return 0

        def read(self, buf, size):
            n = min(int(size), len(self.data) - self.pos)
            if n > 0:
                ctypes.memmove(_get_pointer(buf, _get_name(buf)), self.data[self.pos:self.pos + n], n)
            self.pos += max(n, 0)
            return n

    return CountingReader


def _param_dict(layer: Layer):
    import ncnn

    pd = ncnn.ParamDict()
    for key, text in layer.params:
        if text.startswith('"'):
            continue  # shape expressions (pnnx's Reshape/Interp): never a weight size
        if key <= _ARRAY_KEY:
            # "count,v1,v2,...": ncnn keeps the values as 32-bit words, ints or floats as written
            values = [_number(v) for v in text.split(",")[1:]]
            arr = np.array([np.float32(v) if isinstance(v, float) else np.int32(v).view(np.float32) for v in values],
                           np.float32)
            pd.set(-key + _ARRAY_KEY, ncnn.Mat(arr))
        else:
            pd.set(key, _number(text))
    return pd


def measure_spans(model: Model, weights: bytes) -> None:
    """Set ``layer.span`` for every layer by loading it with ncnn, reading from ``weights``."""
    import ncnn

    reader = _reader_class()(weights)
    bin_reader = ncnn.ModelBinFromDataReader(reader)
    for layer in model.layers:
        start = reader.pos
        op = ncnn.create_layer(layer.type)
        if op is None:
            raise FormatError(f"layer {layer.name!r} has type {layer.type!r}, which ncnn does not know")
        if op.load_param(_param_dict(layer)) != 0:
            if any(text.startswith('"') for _, text in layer.params):
                # shape-expression layers (Reshape, Interp, ...) carry no weights; the total
                # checked below still catches a wrong guess
                layer.span = (start, start)
                continue
            raise FormatError(f"ncnn refused the parameters of layer {layer.name!r} ({layer.type})")
        if op.load_model(bin_reader) != 0 or reader.pos > len(weights):
            raise FormatError(f"the .bin is truncated or does not match the .param at layer {layer.name!r} "
                              f"(offset {start} of {len(weights)} bytes)")
        layer.span = (start, reader.pos)
    if reader.pos != len(weights):
        raise FormatError(f"the .param uses {reader.pos} of the .bin's {len(weights)} bytes: they do not match")


def load(param_path, bin_path) -> Model:
    """Parse the .param, read the .bin and measure every layer's weights."""
    try:
        text = Path(param_path).read_text()
    except UnicodeDecodeError:
        raise FormatError(f"{param_path} is not a text .param") from None
    model = parse_param(text)
    model.weights = Path(bin_path).read_bytes()
    measure_spans(model, model.weights)
    return model


# -- float weights of the quantizable layers -------------------------------------------------

def _read_tagged(data: bytes, pos: int, count: int, layer: Layer) -> tuple[np.ndarray, int]:
    (tag,) = struct.unpack_from("<I", data, pos)
    pos += 4
    if tag == TAG_INT8:
        raise FormatError(f"layer {layer.name!r} already holds int8 weights: the model is already quantized")
    if tag == TAG_FP16:
        values = np.frombuffer(data, np.float16, count, pos).astype(np.float32)
        return values, pos + (count * 2 + 3) // 4 * 4
    if tag in (0, TAG_FP32_SCALED):
        return np.frombuffer(data, "<f4", count, pos).astype(np.float32), pos + count * 4
    # 8-bit table: 256 float32 values, then one index byte per weight
    table = np.frombuffer(data, "<f4", 256, pos)
    index = np.frombuffer(data, np.uint8, count, pos + 1024)
    return table[index].astype(np.float32), pos + 1024 + (count + 3) // 4 * 4


@dataclass
class FloatLayer:
    layer: Layer
    weight: np.ndarray                     # (num_output or group, per-row values)
    bias: np.ndarray | None
    groups: int                            # rows that get one scale each


def float_weights(model: Model, layer: Layer) -> FloatLayer:
    """The float weights of a Convolution / ConvolutionDepthWise / InnerProduct."""
    if layer.param(8, 0):
        raise FormatError(f"layer {layer.name!r} already has int8_scale_term={layer.param(8)}: "
                          "the model is already quantized")
    num_output = int(layer.param(0, 0))
    size_key, bias_key = (2, 1) if layer.type == "InnerProduct" else (6, 5)
    size, bias_term = int(layer.param(size_key, 0)), int(layer.param(bias_key, 0))
    groups = int(layer.param(7, 1)) if layer.type == "ConvolutionDepthWise" else num_output
    start, end = layer.span
    weight, pos = _read_tagged(model.weights, start, size, layer)
    bias = None
    if bias_term:
        bias = np.frombuffer(model.weights, "<f4", num_output, pos).astype(np.float32)
        pos += num_output * 4
    if pos != end or groups <= 0 or size % groups:
        raise FormatError(f"layer {layer.name!r}: its weights do not have the layout fastface expects "
                          f"({end - start} bytes, read {pos - start})")
    return FloatLayer(layer, weight.reshape(groups, -1), bias, groups)


# -- int8 writing ----------------------------------------------------------------------------

def round_away(x: np.ndarray) -> np.ndarray:
    """ncnn's float2int8: round half away from zero, clip to [-127, 127]."""
    return np.clip(np.sign(x) * np.floor(np.abs(x) + 0.5), -127, 127)


def weight_scales(weight: np.ndarray, levels: int = 127) -> np.ndarray:
    """One scale per row (output channel or group): ``levels / absmax``; 0 for an all-zero row."""
    absmax = np.abs(weight).max(axis=1)
    with np.errstate(divide="ignore"):
        return np.where(absmax > 0, levels / np.maximum(absmax, 1e-30), 0.0).astype(np.float32)


@dataclass
class QuantizedLayer:
    float_layer: FloatLayer
    input_scale: float
    weight_scale: np.ndarray
    output_scale: float | None = None      # requantize to int8 for the next quantized conv

    def term(self) -> int:
        base = 1 if self.float_layer.layer.type == "ConvolutionDepthWise" else 2
        return base + (100 if self.output_scale is not None else 0)

    def int8_weight(self) -> np.ndarray:
        fl = self.float_layer
        return round_away(fl.weight * self.weight_scale[:, None]).astype(np.int8)

    def bin_bytes(self) -> bytes:
        q = self.int8_weight().tobytes()
        parts = [struct.pack("<I", TAG_INT8), q, b"\0" * (-len(q) % 4)]
        if self.float_layer.bias is not None:
            parts.append(self.float_layer.bias.astype("<f4").tobytes())
        parts.append(self.weight_scale.astype("<f4").tobytes())
        parts.append(struct.pack("<f", self.input_scale))
        if self.output_scale is not None:
            parts.append(struct.pack("<f", self.output_scale))
        return b"".join(parts)


def float_bytes(fl: FloatLayer) -> bytes:
    """A float layer's weights as ncnn reads them: tag 0, float32 weights, raw float32 bias."""
    parts = [struct.pack("<I", 0), fl.weight.astype("<f4").tobytes()]
    if fl.bias is not None:
        parts.append(fl.bias.astype("<f4").tobytes())
    return b"".join(parts)


def fold_batchnorm(model: Model, floats: dict[str, FloatLayer], protected: set[str]):
    """Fold every BatchNorm that is the only consumer of a Convolution, depthwise convolution
    (one output per group) or InnerProduct into it, as ncnnoptimize does: an int8 layer then
    feeds the next layer directly instead of through a float BatchNorm pass. Returns the new
    model, its float layers (folded ones recomputed) and {layer name: folded BatchNorm name}."""
    floats = dict(floats)
    layers = [Layer(x.type, x.name, list(x.bottoms), list(x.tops), list(x.params), x.span) for x in model.layers]
    by_name = {layer.name: layer for layer in layers}
    removed = {}
    for layer in list(layers):
        fl = floats.get(layer.name)
        if fl is None or len(layer.tops) != 1 or layer.tops[0] in protected:
            continue
        if layer.type == "ConvolutionDepthWise" and fl.groups != int(layer.param(0, 0)):
            continue
        users = [x for x in layers if layer.tops[0] in x.bottoms]
        if len(users) != 1 or users[0].type != "BatchNorm" or users[0].param(0, 0) != fl.weight.shape[0]:
            continue
        bn = users[0]
        channels = int(bn.param(0, 0))
        if bn.span[1] - bn.span[0] != 16 * channels:
            continue
        slope, mean, var, beta = np.frombuffer(model.weights, "<f4", 4 * channels, bn.span[0]).reshape(4, channels)
        sqrt_var = np.sqrt(var.astype(np.float64) + float(bn.param(1, 0.0)))
        sqrt_var[sqrt_var == 0] = 1e-4  # as ncnn's BatchNorm
        b = slope / sqrt_var
        a = beta - slope * mean / sqrt_var
        bias = fl.bias if fl.bias is not None else np.zeros(channels, np.float32)
        new = Layer(layer.type, layer.name, layer.bottoms, list(bn.tops), list(layer.params), layer.span)
        new.set_param(1 if layer.type == "InnerProduct" else 5, 1)
        floats[layer.name] = FloatLayer(new, (fl.weight * b[:, None]).astype(np.float32),
                                        (bias * b + a).astype(np.float32), fl.groups)
        layers[layers.index(by_name[layer.name])] = new
        by_name[layer.name] = new
        layers.remove(bn)
        removed[layer.name] = bn.name
    blobs = {b for layer in layers for b in layer.bottoms + layer.tops}
    folded = Model(model.magic, layers, len(blobs), model.weights)
    return folded, floats, removed


def write_int8(model: Model, quantized: dict[str, QuantizedLayer], param_path, bin_path,
               floats: dict[str, FloatLayer] | None = None) -> None:
    """Write the model with ``quantized`` (by layer name) in int8, ``floats`` (layers whose
    weights changed, e.g. by BatchNorm folding) in float32 and everything else as it was."""
    floats = floats or {}
    chunks = []
    for layer in model.layers:
        q = quantized.get(layer.name)
        if q is not None:
            chunks.append(q.bin_bytes())
        elif layer.name in floats:
            chunks.append(float_bytes(floats[layer.name]))
        else:
            chunks.append(model.weights[layer.span[0]:layer.span[1]])
    out = Model(model.magic, [Layer(x.type, x.name, list(x.bottoms), list(x.tops), list(x.params))
                              for x in model.layers], model.blob_count)
    for layer in out.layers:
        if layer.name in quantized:
            layer.set_param(8, quantized[layer.name].term())
    Path(param_path).write_text(write_param(out))
    Path(bin_path).write_bytes(b"".join(chunks))
