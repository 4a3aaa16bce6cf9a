"""Load insightface verification ``.bin`` files without running code from them.

Such a file is ``pickle.dump((bins, issame_list))``: encoded aligned images and same/different
flags. A pickle can name any importable callable and have the loader call it (``os.system``
through REDUCE), so ``pickle.load`` on a downloaded file is arbitrary code execution.

``find_class`` is the only way a pickle reaches a callable, and here it never returns a real
one: the few globals honest ``.bin`` files contain (Python 2/3 bytes helpers, numpy's array and
dtype reconstructors) map to local stand-ins that accept only the argument shapes those files
use and build plain bytes or bool/integer numpy arrays themselves; any other global is refused
before anything runs. What the pickle then built is checked to be ``(images, flags)``.
"""
from __future__ import annotations

import io
import pickle
import pickletools

import numpy as np

_DTYPES = frozenset({"b1", "u1", "i1", "u2", "i2", "u4", "i4", "u8", "i8"})  # no object arrays
_NDARRAY = object()  # what "numpy.ndarray" resolves to: a token only _reconstruct accepts


def _refuse(why: str):
    raise pickle.UnpicklingError(why)


def _text(value):
    """Python 2 pickles read with ``encoding="bytes"`` give their str fields as bytes."""
    return value.decode("ascii") if isinstance(value, bytes) else value


def _bytes(data=b"", encoding="latin1"):
    """``_codecs.encode(text, "latin1")`` / ``bytes(...)``: how bytes pickle below protocol 3."""
    if isinstance(data, (bytes, bytearray)):
        return bytes(data)
    if isinstance(data, str) and _text(encoding) in ("latin1", "latin-1"):
        return data.encode("latin1")
    _refuse("unexpected arguments to a bytes constructor")


def _bytearray(*args):
    return bytearray(_bytes(*args))


class _Dtype:
    """Stand-in for ``numpy.dtype(spec, align, copy)``; BUILD then supplies the byte order."""

    def __init__(self, spec):
        if _text(spec) not in _DTYPES:
            _refuse(f"refusing numpy dtype {spec!r}: only bool and integer arrays are accepted")
        self.spec, self.order = _text(spec), "|"

    def __setstate__(self, state):
        order = _text(state[1]) if isinstance(state, tuple) and len(state) > 1 else None
        if order not in ("<", ">", "|", "="):
            _refuse("malformed numpy dtype state")
        self.order = order

    def numpy(self) -> np.dtype:
        return np.dtype(self.order + self.spec)


def _dtype(spec, align=False, copy=True):
    return _Dtype(spec)


def _array(raw, dtype, shape, order) -> np.ndarray:
    if not (isinstance(dtype, _Dtype) and isinstance(raw, (bytes, bytearray))
            and isinstance(shape, tuple) and all(type(n) is int for n in shape)
            and order in ("C", "F")):
        _refuse("malformed numpy array")
    return np.frombuffer(bytes(raw), dtype.numpy()).reshape(shape, order=order)


class _Array:
    """What numpy's ``_reconstruct(ndarray, (0,), b"b")`` returns; BUILD fills in the data."""

    value = None

    def __setstate__(self, state):
        if not (isinstance(state, tuple) and len(state) == 5):
            _refuse("malformed numpy array state")
        _version, shape, dtype, fortran, raw = state
        self.value = _array(raw, dtype, shape, "F" if fortran else "C")


def _reconstruct(cls, shape, code):
    if cls is not _NDARRAY:
        _refuse("refusing to reconstruct anything but a plain numpy array")
    return _Array()


def _frombuffer(buf, dtype, shape, order):
    """numpy's protocol-5 array reduce."""
    return _array(buf, dtype, shape, _text(order))


def _scalar(dtype, raw):
    return _array(raw, dtype, (), "C")[()]


_GLOBALS = {("numpy", "ndarray"): _NDARRAY, ("numpy", "dtype"): _dtype,
            ("_codecs", "encode"): _bytes}
for _builtins in ("builtins", "__builtin__"):
    _GLOBALS[(_builtins, "bytes")] = _bytes
    _GLOBALS[(_builtins, "bytearray")] = _bytearray
for _core in ("numpy.core", "numpy._core"):
    _GLOBALS[(f"{_core}.multiarray", "_reconstruct")] = _reconstruct
    _GLOBALS[(f"{_core}.multiarray", "scalar")] = _scalar
    _GLOBALS[(f"{_core}.numeric", "_frombuffer")] = _frombuffer


class _Unpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) not in _GLOBALS:
            _refuse(f"refusing {module}.{name}: a verification .bin holds only images and flags")
        return _GLOBALS[(module, name)]


_MEMO_PUTS = frozenset({"PUT", "BINPUT", "LONG_BINPUT"})


def _check_memo(data: bytes) -> None:
    """Refuses memo slots beyond the next free one before unpickling: CPython's unpickler grows
    its memo table to any index a file names, so one opcode could allocate gigabytes."""
    slots = 0
    for opcode, arg, _pos in pickletools.genops(data):
        if opcode.name in _MEMO_PUTS:
            if not 0 <= arg <= slots:
                raise pickle.UnpicklingError(f"memo index {arg} out of order")
            slots = max(slots, arg + 1)
        elif opcode.name == "MEMOIZE":
            slots += 1


def _plain(value):
    return value.value if isinstance(value, _Array) else value


def load_verification_bin(file) -> tuple[list, np.ndarray]:
    """``(images, same)`` from an open binary file: encoded images as bytes, one bool per pair
    (pair i is images 2i and 2i+1). Raises ValueError for anything else, unsafe or malformed."""
    try:
        # encoding="bytes": the widely used lfw/cfp/agedb .bin files were written by Python 2
        raw = file.read()
        _check_memo(raw)
        data = _Unpickler(io.BytesIO(raw), encoding="bytes").load()
    except Exception as exc:  # an untrusted file can fail in many ways; all mean "not a .bin"
        raise ValueError(f"not a readable verification .bin: {exc}") from exc
    if not (isinstance(data, (tuple, list)) and len(data) == 2):
        raise ValueError("a verification .bin must hold a pair (images, same flags)")
    bins, flags = (_plain(part) for part in data)
    if not isinstance(bins, (list, tuple)):
        raise ValueError(f"the image list is a {type(bins).__name__}, not a list")
    images = []
    for i, item in enumerate(map(_plain, bins)):
        if isinstance(item, np.ndarray) and item.dtype == np.uint8 and item.ndim == 1:
            item = item.tobytes()
        if not isinstance(item, (bytes, bytearray)):
            raise ValueError(f"image {i} is a {type(item).__name__}, not encoded image bytes")
        images.append(bytes(item))
    if isinstance(flags, np.ndarray):
        flags = flags.tolist()  # a 1-D bool/int array becomes Python bools/ints; 2-D fails below
    if not (isinstance(flags, (list, tuple)) and all(
            isinstance(f, (int, np.bool_, np.integer)) and f in (0, 1) for f in flags)):
        raise ValueError("the same/different list must hold only booleans (or 0/1)")
    if len(images) != 2 * len(flags):
        raise ValueError(f"{len(images)} images for {len(flags)} pairs; expected two per pair")
    return images, np.array(flags, dtype=bool)
