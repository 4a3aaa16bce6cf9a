"""A reader for dlib's serialized DNN files, written from dlib's source (``dlib/serialize.h``,
``dlib/float_details.h``, ``dlib/dnn/{core,layers,input,loss}.h``, ``dlib/cuda/tensor.h``);
dlib itself is not needed.

dlib's stream format, as used by ``dlib::serialize(net)``:

* integers: one control byte (low 4 bits = number of bytes that follow, 0x80 = negative for
  signed types), then the magnitude, least significant byte first;
* floats (``float_details``): a signed int64 mantissa and a signed int16 exponent, both as
  integers above; the value is ``mantissa * 2**exponent`` (exponents 32000/32001/32002 are
  +inf/-inf/NaN);
* strings: an unsigned length, then the bytes; bools: the character ``'0'`` or ``'1'``;
* tensors (``resizable_tensor``): int version 2, four int64 dims (n, k, nr, nc), then
  n*k*nr*nc little-endian IEEE float32; ``alias_tensor``: int version 1 and the four dims.

A network is written top-down: the loss layer's version, its details, then each layer's
version recursively *before* its own details, so the file holds first the chain of versions
from the top to the input layer, then the input layer, then each layer's details on the way
back up. Layers are ``add_layer`` (version 2; 3 right above the input), ``add_tag_layer`` and
``add_skip_layer`` (version 1, no details: tag and skip ids are template arguments and are not
in the file). :func:`read_network` returns the layers top-down.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .errors import ExportError


class DlibFormatError(ExportError):
    """The file is not a dlib network this reader understands; the message says what was found."""


class _Truncated(Exception):
    pass


class Stream:
    """dlib's primitive encodings over an in-memory file."""

    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def _take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise _Truncated()
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def peek(self) -> int:
        if self.pos >= len(self.data):
            raise _Truncated()
        return self.data[self.pos]

    def int(self, signed: bool = True, max_bytes: int = 8) -> int:
        control = self._take(1)[0]
        size = control & 0x0F
        if control & 0x70 or size == 0 or size > max_bytes or (not signed and control & 0x80):
            raise DlibFormatError(f"bad integer control byte 0x{control:02x} at offset {self.pos - 1}")
        value = int.from_bytes(self._take(size), "little")
        return -value if control & 0x80 else value

    def uint(self, max_bytes: int = 8) -> int:
        return self.int(signed=False, max_bytes=max_bytes)

    def float(self) -> float:
        if self.peek() & 0x70:  # dlib's pre-2013 ASCII floats: no network file uses them
            raise DlibFormatError(f"ASCII-encoded float at offset {self.pos}")
        mantissa, exponent = self.int(), self.int(max_bytes=2)
        if exponent >= 32000:
            return {32000: math.inf, 32001: -math.inf}.get(exponent, math.nan)
        return math.ldexp(float(mantissa), exponent)

    def string(self, limit: int = 256) -> str:
        length = self.uint()
        if length > limit:
            raise DlibFormatError(f"a {length}-byte string at offset {self.pos} (expected a short layer name)")
        raw = self._take(length)
        if not all(32 <= b < 127 for b in raw):
            raise DlibFormatError(f"binary data where a name was expected at offset {self.pos - length}")
        return raw.decode("ascii")

    def bool(self) -> bool:
        ch = self._take(1)
        if ch not in (b"0", b"1"):
            raise DlibFormatError(f"bad bool byte {ch!r} at offset {self.pos - 1}")
        return ch == b"1"

    def tensor(self) -> np.ndarray:
        version = self.int()
        if version != 2:
            raise DlibFormatError(f"tensor version {version} at offset {self.pos} (expected 2)")
        dims = [self.int() for _ in range(4)]
        if any(d < 0 for d in dims):
            raise DlibFormatError(f"negative tensor shape {dims}")
        count = math.prod(dims)
        raw = self._take(4 * count)
        return np.frombuffer(raw, "<f4").astype(np.float32).reshape(dims)

    def alias_tensor(self) -> tuple[int, int, int, int]:
        version = self.int()
        if version != 1:
            raise DlibFormatError(f"alias_tensor version {version} (expected 1)")
        return tuple(self.int() for _ in range(4))


@dataclass
class Layer:
    """One layer, top-down order. ``kind``: con, fc, affine, relu, max_pool, avg_pool,
    add_prev, tag_or_skip; ``detail`` holds the hyper-parameters read from the file and
    ``weights`` its arrays (con: filters (N,K,R,C) and biases (N,); affine: gamma, beta;
    fc: weights (inputs, outputs))."""
    kind: str
    version: str = ""
    detail: dict = field(default_factory=dict)
    weights: dict = field(default_factory=dict)

    def describe(self) -> str:
        if self.kind == "con":
            d = self.detail
            return (f"con({d['num_filters']}, {d['nr']}x{d['nc']}, stride {d['stride_y']}x{d['stride_x']}, "
                    f"padding {d['padding_y']}x{d['padding_x']})")
        if self.kind in ("max_pool", "avg_pool"):
            d = self.detail
            return f"{self.kind}({d['nr']}x{d['nc']}, stride {d['stride_y']}x{d['stride_x']}, padding {d['padding_y']}x{d['padding_x']})"
        if self.kind == "fc":
            return f"fc({self.detail['num_outputs']}, bias {self.detail['bias']})"
        return self.kind


@dataclass
class Network:
    loss: str
    loss_detail: dict
    input: str
    input_detail: dict
    layers: list[Layer]  # top-down, input excluded


def _con(s: Stream, version: str) -> Layer:
    if version not in ("con_4", "con_5", "con_6"):
        raise DlibFormatError(f"unsupported convolution version {version!r}")
    params = s.tensor()
    d = {"num_filters": s.int(), "nr": s.int(), "nc": s.int(), "stride_y": s.int(), "stride_x": s.int(),
         "padding_y": s.int(), "padding_x": s.int()}
    filters, biases = s.alias_tensor(), s.alias_tensor()
    for _ in range(4):  # learning-rate and weight-decay multipliers
        s.float()
    d["use_bias"] = s.bool() if version in ("con_5", "con_6") else True
    d["use_relu"] = s.bool() if version == "con_6" else False
    n_filters, n_biases = math.prod(filters), math.prod(biases)
    if params.size != n_filters + n_biases or filters[0] != d["num_filters"]:
        raise DlibFormatError(f"convolution parameters of {params.size} values do not fit filters {filters} "
                              f"and biases {biases}")
    flat = params.reshape(-1)
    weights = {"filters": flat[:n_filters].reshape(filters), "biases": flat[n_filters:].copy()}
    return Layer("con", version, d, weights)


def _pool(s: Stream, version: str, kind: str) -> Layer:
    if version != f"{kind}_2":
        raise DlibFormatError(f"unsupported {kind} version {version!r}")
    d = {k: s.int() for k in ("nr", "nc", "stride_y", "stride_x", "padding_y", "padding_x")}
    return Layer(kind, version, d)


def _affine(s: Stream, version: str) -> Layer:
    if version not in ("affine_", "affine_2"):
        # A bn_ layer would be a network saved during training; face_recognition's file has affine_.
        raise DlibFormatError(f"unsupported affine version {version!r}")
    params = s.tensor()
    gamma, beta = s.alias_tensor(), s.alias_tensor()
    mode = s.int()
    disabled = s.bool() if version == "affine_2" else False
    n = math.prod(gamma)
    if params.size != n + math.prod(beta):
        raise DlibFormatError("affine parameters do not fit gamma and beta")
    flat = params.reshape(-1)
    return Layer("affine", version, {"mode": "conv" if mode == 0 else "fc", "disabled": disabled, "shape": gamma},
                 {"gamma": flat[:n].copy(), "beta": flat[n:].copy()})


def _fc(s: Stream, version: str) -> Layer:
    if version not in ("fc_2", "fc_3"):
        raise DlibFormatError(f"unsupported fc version {version!r}")
    num_outputs, num_inputs = s.uint(), s.uint()
    params = s.tensor()
    weights, biases = s.alias_tensor(), s.alias_tensor()
    bias_mode = s.int()  # dlib: FC_HAS_BIAS = 0, FC_NO_BIAS = 1
    for _ in range(4):
        s.float()
    use_bias = s.bool() if version == "fc_3" else True
    n = math.prod(weights)
    if weights[:2] != (num_inputs, num_outputs) or params.size < n:
        raise DlibFormatError(f"fc weights {weights} do not fit {num_inputs} inputs and {num_outputs} outputs")
    has_bias = bias_mode == 0 and use_bias
    flat = params.reshape(-1)
    w = {"weights": flat[:n].reshape(num_inputs, num_outputs)}
    if has_bias:
        w["biases"] = flat[n:n + math.prod(biases)].copy()
    return Layer("fc", version, {"num_outputs": num_outputs, "num_inputs": num_inputs, "bias": has_bias}, w)


def _relu(s: Stream, version: str) -> Layer:
    if version not in ("relu_", "relu_2"):
        raise DlibFormatError(f"unsupported relu version {version!r}")
    return Layer("relu", version, {"disabled": s.bool() if version == "relu_2" else False})


def _add_prev(s: Stream, version: str) -> Layer:
    if version != "add_prev_":
        raise DlibFormatError(f"unsupported add_prev version {version!r}")
    return Layer("add_prev", version)


_DETAILS = (("con_", _con), ("max_pool_", lambda s, v: _pool(s, v, "max_pool")),
            ("avg_pool_", lambda s, v: _pool(s, v, "avg_pool")), ("affine_", _affine), ("bn_", _affine),
            ("fc_", _fc), ("relu_", _relu), ("add_prev_", _add_prev))


def _details(s: Stream) -> Layer:
    at = s.pos
    version = s.string()
    for prefix, read in _DETAILS:
        if version.startswith(prefix):
            return read(s, version)
    raise DlibFormatError(f"layer type {version!r} at offset {at}, which the dlib face ResNet does not use")


def _input(s: Stream) -> tuple[str, dict]:
    name = s.string()
    if name not in ("input_rgb_image", "input_rgb_image_sized"):
        raise DlibFormatError(f"input layer {name!r} (the face-recognition ResNet takes input_rgb_image_sized)")
    detail = {"avg_red": s.float(), "avg_green": s.float(), "avg_blue": s.float()}
    if name == "input_rgb_image_sized":
        detail["nr"], detail["nc"] = s.uint(), s.uint()
    return name, detail


def _skip_add_layer_state(s: Stream, version: int, above_input: bool) -> None:
    """What add_layer stores after its details: training state, unused for inference."""
    s.bool(), s.bool(), s.bool()          # setup called, gradient stale, output/gradient disabled
    s.tensor(), s.tensor()                # x_grad, cached_output
    if above_input:
        s.tensor()                        # grad_final
        if version >= 3:
            s.uint()                      # sample expansion factor
    elif version >= 2:
        s.tensor()                        # params_grad


def _loss(s: Stream) -> tuple[str, dict]:
    name = s.string()
    if name == "loss_metric_":
        return name, {"margin": 0.1, "distance_threshold": 0.75}
    if name == "loss_metric_2":
        return name, {"margin": s.float(), "distance_threshold": s.float()}
    raise DlibFormatError(f"a dlib network with loss {name!r}" + (
        " (dlib's MMOD CNN face detector, e.g. mmod_human_face_detector.dat)" if name.startswith("loss_mmod") else "")
        + "; the face-recognition ResNet has loss_metric")


MAX_DEPTH = 10_000


def read_network(data: bytes) -> Network:
    """Parse a serialized dlib network with a metric loss (see the module docstring)."""
    s = Stream(data)
    try:
        loss_version = s.int()
        if loss_version != 1:
            raise DlibFormatError(f"loss-layer version {loss_version} (expected 1)")
        first = s.peek()
        if first & 0x80:  # a negative integer: a matrix header, as a shape predictor starts
            raise DlibFormatError(_guess_other(data))
        loss, loss_detail = _loss(s)
        versions = []
        while True:  # the chain of layer versions, top to bottom, until the input layer's name
            mark = s.pos
            try:
                candidate = s.string()
            except DlibFormatError:
                candidate = None
            if candidate is not None and candidate.startswith("input"):
                s.pos = mark
                break
            s.pos = mark
            versions.append(s.int())
            if len(versions) > MAX_DEPTH:
                raise DlibFormatError("no input layer found")
        if not versions:
            raise DlibFormatError("a network without layers")
        input_name, input_detail = _input(s)
        layers: list[Layer] = []
        for depth in range(len(versions) - 1, -1, -1):  # bottom-up
            version, above_input = versions[depth], depth == len(versions) - 1
            if above_input:
                if version not in (2, 3):
                    raise DlibFormatError(f"layer version {version} right above the input (expected 2 or 3)")
                layer = _details(s)
                _skip_add_layer_state(s, version, True)
            elif version == 2:
                layer = _details(s)
                _skip_add_layer_state(s, version, False)
            elif version == 1:
                layer = Layer("tag_or_skip")
            else:
                raise DlibFormatError(f"layer version {version} (expected 1 for tag/skip, 2 for a layer)")
            layers.append(layer)
    except _Truncated:
        raise DlibFormatError(f"the file ends early (at byte {s.pos} of {len(data)}): truncated?") from None
    if s.pos != len(data):
        raise DlibFormatError(f"{len(data) - s.pos} unexpected bytes after the network (at offset {s.pos})")
    layers.reverse()
    return Network(loss, loss_detail, input_name, input_detail, layers)


def _guess_other(data: bytes) -> str:
    """Name a dlib file that is not a network (dlib's shape predictor starts like this)."""
    s = Stream(data)
    try:
        s.int()
        rows, cols = -s.int(), -s.int()
        if cols == 1 and rows > 0 and rows % 2 == 0:
            return (f"a dlib shape predictor with {rows // 2} landmarks (e.g. shape_predictor_5_face_landmarks.dat), "
                    "not the face-recognition network")
    except (DlibFormatError, _Truncated):
        pass
    return "a dlib file that is not a network with a metric loss"


__all__ = ["DlibFormatError", "Layer", "Network", "Stream", "read_network"]
