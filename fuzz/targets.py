"""Fuzz targets: every loader of outside data, fed one input each.

A target returns normally when the input loads or is refused with the loader's documented
exception; anything else (another exception, a crash, a hang, an oversized allocation) is a
finding. ``fuzz/fuzz_loaders.py`` drives them with atheris (libFuzzer); the replay test
(tests/test_fuzz_regressions.py) runs every kept crasher through the same functions.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import struct
import tempfile
from pathlib import Path

import numpy as np

import fastface
from fastface.embed import Embedder, load_card
from fastface.eval.pairs import read_csv, read_lfw
from fastface.eval.safe_pickle import load_verification_bin
from fastface.gallery import Gallery

#: Separates the .param text from the .bin bytes in a model input; without it, zero weights.
BIN_MARK = b"\n#BIN\n"
#: 16x16x3 -> conv 4x3x3/2 -> ReLU -> fc 8: small enough for the fuzzer to mutate weights too.
TINY_PARAM = """7767517
4 4
Input data 0 1 data 0=16 1=16 2=3
Convolution conv 1 1 data conv 0=4 1=3 3=2 5=1 6=108
ReLU relu 1 1 conv relu
InnerProduct fc 1 1 relu fc 0=8 1=1 2=1568
"""
TINY_CARD = {"input": "data", "output": "fc", "size": 16, "channel_order": "RGB", "mean": 127.5, "scale": 0.0078125}

CACHE_KEY = bytes(range(32))
_TMP = Path(tempfile.mkdtemp(prefix="fastface-fuzz-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None))


def tiny_bin(seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    flag = np.zeros(1, np.uint32).tobytes()
    return b"".join(flag + rng.standard_normal(n).astype(np.float32).tobytes() + rng.standard_normal(b).astype(
        np.float32).tobytes() for n, b in [(108, 4), (1568, 8)])


def _split_model(data: bytes):
    param, mark, weights = data.partition(BIN_MARK)
    return param, (weights if mark else None)


def _last_top(param: bytes) -> str:
    """The last layer's first output: where a card for a mutated graph points."""
    lines = [line.split() for line in param.decode("utf-8", "replace").splitlines() if line.strip()]
    try:
        layer = lines[-1]
        return layer[4 + int(layer[2])]  # type name bottoms tops <bottom names> <top names> params
    except (IndexError, ValueError):
        return "fc"


def model(data: bytes) -> None:
    """ncnn .param text (+ .bin) through fastface.Embedder: parse, weights, probe inference, embed."""
    param, weights = _split_model(data)
    if not param:
        return
    card = dict(TINY_CARD, output=_last_top(param))
    try:
        embedder = Embedder.__new__(Embedder)
        embedder._init(param, weights, card, 1, False)
        embedder.embed(np.full((1, 16, 16, 3), 128, np.uint8))
    except (ValueError, RuntimeError):
        pass  # fastface.ModelError is a ValueError; RuntimeError: ncnn failed on a loaded graph


def detector(data: bytes) -> None:
    """ncnn .param text (+ .bin) through fastface.Detector (RetinaFace decoder), then a detection."""
    param, weights = _split_model(data)
    (_TMP / "det.param").write_bytes(param)
    (_TMP / "det.bin").write_bytes(weights or b"")
    try:
        found = fastface.Detector(_TMP / "det.param", _TMP / "det.bin", max_side=64)
        found.detect(np.full((48, 40, 3), 100, np.uint8))
    except (ValueError, RuntimeError):
        pass


def card(data: bytes) -> None:
    """A JSON model card file, then an Embedder built from it (sizes and names reach the core)."""
    path = _TMP / "card.json"
    path.write_bytes(data)
    try:
        loaded = load_card(path)
        Embedder(TINY_PARAM.encode(), bin=tiny_bin(), card=loaded)
    except (ValueError, TypeError):
        pass


def _with_checksum(data: bytes) -> bytes:
    """Replaces the trailing SHA-256 with the right one, so mutations reach the parser."""
    body = data[:-32] if len(data) >= 32 else data
    return body + hashlib.sha256(body).digest()


def gallery(data: bytes) -> None:
    """A gallery file (half the inputs with a valid checksum), then a search."""
    path = _TMP / "gallery.ffg"
    path.write_bytes(_with_checksum(data[1:]) if data[:1] == b"\x01" else data[1:])
    try:
        loaded = Gallery.load(path)
    except ValueError:
        return
    if 0 < loaded.dim <= 4096:
        loaded.search(np.ones(loaded.dim, np.float32), k=3)


def gallery_cache(data: bytes) -> None:
    """A board's cache of a PostgreSQL gallery: half the inputs sealed under the key (the parser
    behind the authentication), half raw files; then a search."""
    from fastface import pg_gallery, sealed

    path = _TMP / "gallery.cache"
    if data[:1] == b"\x01":
        with sealed.SealedWriter(path, CACHE_KEY, pg_gallery.CACHE_KIND) as out:
            out.write(data[1:])
    else:
        path.write_bytes(data[1:])
    try:
        state = pg_gallery.load_cache(path, CACHE_KEY)
    except sealed.SealedError:
        return
    if len(state.index) and state.index.dim <= 4096:
        state.index.search(np.ones((1, state.index.dim), np.float32), 3, True)


def pairs_txt(data: bytes) -> None:
    """An LFW pairs.txt (image files resolved under an empty folder)."""
    path = _TMP / "pairs.txt"
    path.write_bytes(data)
    try:
        read_lfw(path, images=_TMP / "none")
    except (ValueError, FileNotFoundError):
        pass


def pairs_csv(data: bytes) -> None:
    """A CSV pair list."""
    path = _TMP / "pairs.csv"
    path.write_bytes(data)
    try:
        read_csv(path, images=_TMP / "none")
    except (ValueError, FileNotFoundError):
        pass


def insightface_bin(data: bytes) -> None:
    """An insightface verification .bin (a pickle), through the restricted unpickler."""
    try:
        load_verification_bin(io.BytesIO(data))
    except ValueError:
        pass


def shape_predictor(data: bytes) -> None:
    """A landmark model file (fastface.export.dlib_shape's layout), then predictions in boxes
    inside, across and outside a small image."""
    try:
        predictor = fastface.ShapePredictor(data)
    except ValueError:  # fastface.ModelError
        return
    image = np.arange(40 * 30 * 3, dtype=np.uint32).reshape(40, 30, 3).astype(np.uint8)
    for box in ((2, 3, 25, 35), (-20, -20, 10, 10), (7, 7, 7, 7)):
        predictor.predict(image, box)


def tiny_shape_model(seed: int = 0) -> bytes:
    """A valid landmark model of 5 parts, 2 levels of 4 depth-2 trees over 12 pixels."""
    from fastface.export.dlib_shape import _SPLIT, Cascade, ShapeModel, to_bytes

    rng = np.random.default_rng(seed)
    cascades = []
    for _ in range(2):
        splits = np.zeros((4, 3), _SPLIT)
        splits["idx1"], splits["idx2"] = rng.integers(0, 12, (4, 3)), rng.integers(0, 12, (4, 3))
        splits["thresh"] = rng.uniform(-40, 40, (4, 3))
        cascades.append(Cascade(rng.integers(0, 5, 12).astype(np.uint32), rng.uniform(-0.2, 0.2, (12, 2)).astype(np.float32),
                                splits, rng.uniform(-0.02, 0.02, (4, 4, 10)).astype(np.float32)))
    return to_bytes(ShapeModel(rng.uniform(0.2, 0.8, (5, 2)).astype(np.float32), cascades))


_LIVENESS = []


def liveness(data: bytes) -> None:
    """An image of any size (1 or 3 channels) and a face box of any floats, with any box map,
    through the bundled liveness pair: a score in [0, 1] or ValueError, never a read outside
    the image. Layout: height, width (uint8 each, +1), channels (1 or 3 by parity), box map
    choice, 4 float32 box values, then pixels (repeated to fill the image)."""
    if len(data) < 21:
        return
    height, width, channels = data[0] + 1, data[1] + 1, 1 if data[2] % 2 else 3
    box = np.frombuffer(data[4:20], np.float32).astype(np.float64)
    pixels = np.frombuffer(data[20:] or b"\0", np.uint8)
    image = np.resize(pixels, (height, width, channels))
    if not _LIVENESS:
        _LIVENESS.extend([fastface.Liveness(threads=1), fastface.Liveness(threads=1, box_map="reference")])
    try:
        score = _LIVENESS[data[3] % 2].score(image if channels == 3 else image[..., 0], box)
    except ValueError:
        return
    if not 0.0 <= score <= 1.0:
        raise AssertionError(f"liveness score {score} outside [0, 1]")


TARGETS = {f.__name__: f for f in (model, detector, card, gallery, gallery_cache, pairs_txt, pairs_csv,
                                   insightface_bin, shape_predictor, liveness)}


def seeds(shared_models: Path | None = None) -> dict[str, list[bytes]]:
    """Valid inputs per target: where the fuzzer starts mutating."""
    mark = BIN_MARK
    out = {name: [] for name in TARGETS}
    out["model"] += [TINY_PARAM.encode() + mark + tiny_bin(), TINY_PARAM.encode()]
    if shared_models is not None:
        mfn = shared_models / "mobilefacenet-insightface" / "mobilefacenet.param"
        if mfn.is_file():
            out["model"].append(mfn.read_bytes())  # zero weights: the graph's layers, no 4 MB .bin
        retina = shared_models / "retinaface-mnet025" / "mnet.25-opt.param"
        if retina.is_file():
            out["detector"].append(retina.read_bytes() + mark + retina.with_suffix(".bin").read_bytes())
    if not out["detector"]:
        out["detector"].append(TINY_PARAM.encode() + mark + tiny_bin())
    out["card"] += [json.dumps(TINY_CARD).encode(),
                    json.dumps(dict(TINY_CARD, size=[16, 16], mean=[1, 2, 3], dim=8, template=[[5, 6], [11, 6],
                                                                                                 [8, 9], [6, 12],
                                                                                                 [10, 12]])).encode()]
    rng = np.random.default_rng(0)
    for dtype in ("float32", "float16"):
        g = Gallery(8, dtype)
        g.add("ana", rng.standard_normal((2, 8)))
        g.add("bo\u00e9", rng.standard_normal(8))
        g.save(_TMP / "seed.ffg")
        out["gallery"] += [b"\x01" + (_TMP / "seed.ffg").read_bytes()]
    for dtype in ("float32", "int8"):  # a cache's plaintext, as a board writes it
        header = json.dumps({"format": 1, "gallery": "g", "seq": 3, "dim": 4, "dtype": dtype, "identities": 2,
                             "rows": 3}).encode()
        names = b"".join(struct.pack("<iI", i, len(n)) + n for i, n in ((1, b"ana"), (2, "bo\u00e9".encode())))
        rows = np.full((3, 4), 0.5, np.float32) if dtype == "float32" else np.full((3, 4), 127, np.int8)
        block = np.array([1, 1, 2], "<i4").tobytes() + np.full(3, 1 / 254, "<f4").tobytes() + rows.tobytes()
        out["gallery_cache"].append(b"\x01" + struct.pack("<I", len(header)) + header + names + block)
    out["pairs_txt"] += [b"2 1\nAnn 1 2\nAnn 1 Bob 3\nCy 2 4\nDee 1 Ed 1\n", b"1\nAnn 1 2\nAnn 1 Bob 1\n"]
    out["pairs_csv"] += [b"file_a,file_b,same\na.jpg,b.jpg,1\na.jpg,c.jpg,0\n",
                         b"file_a,file_b,same,fold\na.jpg,b.jpg,true,0\nc.jpg,d.jpg,false,1\n"]
    images = [b"\xff\xd8jpeg-a", b"\xff\xd8jpeg-b", b"\x89PNG-c", b"\x89PNG-d"]
    out["insightface_bin"] += [pickle.dumps((images, [True, False]), protocol=2),
                               pickle.dumps((images, np.array([True, False])), protocol=4),
                               pickle.dumps(([np.frombuffer(i, np.uint8) for i in images], [1, 0]), protocol=2)]
    out["shape_predictor"] += [tiny_shape_model(0), tiny_shape_model(1)]
    for h, w, c, m, box in ((119, 99, 0, 0, (20, 30, 80, 100)), (31, 199, 1, 1, (-30, -5, 40, 60)),
                            (7, 7, 0, 0, (0, 0, 8, 8))):
        out["liveness"].append(bytes([h, w, c, m]) + np.array(box, np.float32).tobytes() + rng.bytes(300))
    return out

