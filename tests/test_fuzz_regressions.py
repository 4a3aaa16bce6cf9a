"""Inputs the fuzzers (fuzz/fuzz_loaders.py) found crashing, hanging, allocating without bound or
escaping with the wrong exception, kept in tests/fuzz_regressions/<target>/: each must now be
refused with the loader's documented exception, quickly."""
import io
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


@pytest.mark.parametrize("case", sorted(CASES.glob("*/*")), ids=lambda p: f"{p.parent.name}/{p.name}")
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


def test_convolution_with_weights_for_other_channels_is_refused_not_read_past(tmp_path):
    # ncnn's Convolution reads num_output * kernel * kernel * channels weights per output whatever
    # its input holds: weights for 28 channels on a 3-channel input died with SIGSEGV. In a
    # subprocess, so a crash fails this test instead of ending the run.
    import subprocess

    param = tmp_path / "conv.param"
    param.write_bytes((CASES / "model" / "convolution-weights-for-28-channels-on-3").read_bytes())
    code = ("import fastface\n"
            f"card = dict(input='data', output='fc', size=16, channel_order='RGB', mean=0, scale=1)\n"
            "try:\n"
            f"    fastface.Embedder.with_zero_weights({str(param)!r}, card=card)\n"
            "except fastface.ModelError as error:\n"
            "    print(error)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"exit {done.returncode}: {done.stderr[-2000:]}"
    assert "layer 'conv' (Convolution) has weights for 28 input channels but gets 3x16x16" in done.stdout
