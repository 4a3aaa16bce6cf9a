"""Inputs the fuzzers (fuzz/fuzz_loaders.py) found crashing, hanging, allocating without bound or
escaping with the wrong exception, kept in tests/fuzz_regressions/<target>/: each must now be
refused with the loader's documented exception, quickly."""
import io
import subprocess
import sys
import time
from pathlib import Path

import pytest

import fastface
from fastface.eval.safe_pickle import load_verification_bin
from fastface.gallery import Gallery, GalleryError
from shared_data import MOBILEFACENET, MOBILEFACENET_CARD, require

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "fuzz"))
import targets  # noqa: E402

CASES = ROOT / "tests" / "fuzz_regressions"


@pytest.mark.parametrize("case", sorted(p for p in CASES.glob("*/*") if p.parent.name in targets.TARGETS),
                         ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_kept_input_ends_in_the_documented_exception(case):
    start = time.monotonic()
    targets.TARGETS[case.parent.name](case.read_bytes())  # any other exception or a crash fails here
    assert time.monotonic() - start < 20


def test_pickle_naming_a_huge_memo_slot_is_refused_before_allocating():
    # LONG_BINPUT 175726962: CPython's unpickler would grow its memo to 175M slots (GBs, seconds).
    with pytest.raises(ValueError, match=r"memo index \d+ out of order"):
        load_verification_bin(io.BytesIO((CASES / "insightface_bin" / "memo-index-175m").read_bytes()))


def test_gallery_with_nan_rows_is_refused_on_load(tmp_path):
    path = tmp_path / "nan.ffg"
    path.write_bytes(targets._with_checksum((CASES / "gallery" / "nan-embedding").read_bytes()[1:]))
    with pytest.raises(GalleryError, match="not unit length"):
        Gallery.load(path)


def test_inner_product_fed_the_wrong_size_is_refused_not_read_past():
    # ncnn's InnerProduct reads weight_data_size / num_output values whatever its input holds.
    param = (CASES / "model" / "innerproduct-reads-past-its-input").read_bytes()
    with pytest.raises(fastface.ModelError, match="takes 512 values but gets 196"):
        fastface.Embedder.__new__(fastface.Embedder)._init(param, None, dict(targets.TINY_CARD, output="fc"), 1, False)


@require(MOBILEFACENET / "mobilefacenet.param")
def test_mobilefacenet_at_a_card_size_it_was_not_made_for_is_refused():
    # Found by the model fuzzer from this seed: at 16x16 the 7x7 GDC head gets a 1x1 map (and
    # left the fc layer a wrong-sized input: the probe inference crashed inside ncnn).
    with pytest.raises(fastface.ModelError, match="7x7 window larger than its padded input 512x1x1"):
        fastface.Embedder.with_zero_weights(MOBILEFACENET / "mobilefacenet.param", card=dict(MOBILEFACENET_CARD, size=16))


def _stdout_of(code: str, *args) -> str:
    """Runs ``code`` in a new interpreter (a crash there fails the test instead of ending the
    run) and returns what it printed."""
    done = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"exit {done.returncode}: {done.stderr[-2000:]}"
    return done.stdout


# A kept model-target input (tests/fuzz_regressions/model/) through Embedder with the target's
# card, split as the target splits it (zero weights without a .bin part); prints the ModelError.
REPLAY_MODEL_CASE = f"""
import sys
from pathlib import Path
sys.path.insert(0, {str(ROOT / "fuzz")!r})
import fastface
from fastface.embed import Embedder
from targets import TINY_CARD, _split_model
param, weights = _split_model(Path(sys.argv[1]).read_bytes())
try:
    Embedder.__new__(Embedder)._init(param, weights, TINY_CARD, 1, False)
except fastface.ModelError as error:
    print(error)
"""


def test_convolution_with_weights_for_other_channels_is_refused_not_read_past():
    # ncnn's Convolution reads num_output * kernel * kernel * channels weights per output whatever
    # its input holds: weights for 28 channels on a 3-channel input died with SIGSEGV.
    printed = _stdout_of(REPLAY_MODEL_CASE, CASES / "model" / "convolution-weights-for-28-channels-on-3")
    assert "layer 'conv' (Convolution) has weights for 28 input channels but gets 3x16x16" in printed


def test_int8_weights_without_int8_scales_are_refused_not_run():
    # ncnn picks a layer's int8 pipeline by how its weights are stored, and builds it from scales
    # that only 8= makes it load: int8-tagged weights on a layer without 8= died with SIGSEGV
    # (found by the C++ loader fuzzer on the int8 YuNet).
    printed = _stdout_of(REPLAY_MODEL_CASE, CASES / "model" / "int8-weights-without-int8-scales")
    assert "layer 'conv' (Convolution) has weights stored as int8 but its parameters declare no int8 scales" in printed


# A kept input of the C++ loader fuzzer (fuzz/fuzz_model_loader.cpp) through the Python API: a
# header line "E w h input output" (an Embedder) or "D w h input yunet|retinaface" (a Detector),
# the .param text, then "\n#BIN\n" and the weights. Prints "refused: <ModelError>".
REPLAY_CPP_CASE = f"""
import sys, tempfile
from pathlib import Path
import numpy as np
sys.path.insert(0, {str(ROOT / "fuzz")!r})
import fastface
from fastface.embed import Embedder
from targets import _split_model
header, _, rest = Path(sys.argv[1]).read_bytes().partition(b"\\n")
kind, w, h, input, last = header.decode().split()
param, weights = _split_model(rest)
try:
    if kind == "E":
        card = dict(input=input, output=last, input_size=[int(w), int(h)], channel_order="BGR", mean=0, scale=1)
        embedder = Embedder.__new__(Embedder)
        embedder._init(param, weights, card, 1, False)
        embedder.embed(np.full((1, int(h), int(w), 3), 100, np.uint8))
    else:
        with tempfile.TemporaryDirectory() as folder:
            (Path(folder) / "m.param").write_bytes(param)
            (Path(folder) / "m.bin").write_bytes(weights or b"")
            card = dict(input=input, input_size=[int(w), int(h)])
            fastface.Detector(Path(folder) / "m.param", Path(folder) / "m.bin", kind=last, card=card,
                              max_side=96).detect(np.full((48, 64, 3), 128, np.uint8))
except fastface.ModelError as error:
    print("refused:", error)
"""


@pytest.mark.parametrize("case", sorted((CASES / "model_loader").glob("*")), ids=lambda p: p.name)
def test_every_kept_cpp_loader_input_is_refused(case):
    assert _stdout_of(REPLAY_CPP_CASE, case).startswith("refused:")
