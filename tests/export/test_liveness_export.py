"""MiniFASNet: the architectures load minivision's state dicts strictly, the export gate holds
on real crops, and models/regenerate_minifasnet.sh reproduces the committed files byte for byte."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from shared_data import DEEPFACE, LIVENESS_SAMPLES, MINIFASNET, require

MODELS = Path(__file__).resolve().parents[2] / "models"
FILES = {"minifasnet_v2": "2.7_80x80_MiniFASNetV2.pth", "minifasnet_v1se": "4_0_0_80x80_MiniFASNetV1SE.pth"}


def test_file_names_give_architecture_and_scale():
    pytest.importorskip("torch", reason="needs torch")
    from fastface.train.minifasnet import parse_model_name

    assert parse_model_name("2.7_80x80_MiniFASNetV2.pth") == (2.7, 80, 80, "MiniFASNetV2")
    assert parse_model_name("4_0_0_80x80_MiniFASNetV1SE.pth") == (4.0, 80, 80, "MiniFASNetV1SE")
    with pytest.raises(ValueError, match="not named like"):
        parse_model_name("model.pth")


@require(MINIFASNET)
@pytest.mark.parametrize("stem", sorted(FILES))
def test_state_dicts_load_strictly_with_every_key(stem):
    torch = pytest.importorskip("torch", reason="needs torch")
    from fastface.train.minifasnet import MiniFASNet, load_minifasnet

    state = torch.load(MINIFASNET / FILES[stem], map_location="cpu", weights_only=True)
    model = load_minifasnet(MINIFASNET / FILES[stem])
    mine = model.state_dict()
    assert {f"module.{k}" for k in mine} == set(state)
    assert all(mine[k[7:]].shape == v.shape and torch.equal(mine[k[7:]], v) for k, v in state.items())
    # The other widths do not fit: strict loading refuses them.
    other = MiniFASNet("MiniFASNetV1" if model.variant.startswith("MiniFASNetV2") else "MiniFASNetV2SE")
    with pytest.raises(RuntimeError):
        other.load_state_dict({k[7:]: v for k, v in state.items()}, strict=True)


def test_reference_box_scales_about_the_centre_and_shifts_back_inside():
    from fastface.export.liveness import reference_box

    assert reference_box(640, 480, (300, 200, 40, 40), 2.0) == (280, 180, 360, 260)
    # At the left/top border the scaled box is shifted right/down, keeping its size.
    assert reference_box(640, 480, (0, 0, 40, 40), 2.0) == (0, 0, 80, 80)
    # Bigger than the image: the scale drops to what fits.
    left, top, right, bottom = reference_box(100, 100, (10, 10, 80, 80), 4.0)
    assert (left, top) == (0, 0) and right <= 99 and bottom <= 99


@require(MINIFASNET)
@require(LIVENESS_SAMPLES)
@require(DEEPFACE)
def test_regenerating_gives_the_committed_files(tmp_path):
    pytest.importorskip("torch", reason="regenerating needs the [export] extra (torch)")
    pytest.importorskip("pnnx", reason="regenerating needs the [export] extra (pnnx)")
    from fastface.export.pnnx_tool import pnnx_version

    committed = {stem: json.loads((MODELS / f"{stem}.json").read_text()) for stem in FILES}
    if pnnx_version() != committed["minifasnet_v2"]["converter"]["version"]:
        pytest.skip(f"pnnx {pnnx_version()} here, the committed files come from "
                    f"{committed['minifasnet_v2']['converter']['version']}")
    done = subprocess.run(["sh", str(MODELS / "regenerate_minifasnet.sh"), str(tmp_path)], capture_output=True,
                          text=True, env={**os.environ, "PYTHON": sys.executable})
    assert done.returncode == 0, done.stderr
    for stem in FILES:
        for suffix in (".param", ".bin"):
            assert (tmp_path / f"{stem}{suffix}").read_bytes() == (MODELS / f"{stem}{suffix}").read_bytes(), stem
        fresh = json.loads((tmp_path / f"{stem}.json").read_text())
        card = committed[stem]
        assert fresh["parity"]["passed"] and fresh["parity"]["max_abs_diff"] <= 1e-4
        assert fresh["parity"]["inputs"] == 30  # 3 liveness samples + the best face of 27 deepface photos
        # The gate's last digits and the converter's environment (torch) may differ between machines.
        for c in (fresh, card):
            c["converter"].pop("torch", None)
            c.pop("parity")
        assert fresh == card
    assert (tmp_path / "LICENSE.minifasnet").read_bytes() == (MODELS / "LICENSE.minifasnet").read_bytes()
    assert "Apache License" in (MODELS / "LICENSE.minifasnet").read_text()


@require(MINIFASNET)
@require(LIVENESS_SAMPLES)
def test_gate_refuses_a_model_that_does_not_match(tmp_path):
    torch = pytest.importorskip("torch", reason="needs torch")
    pytest.importorskip("pnnx", reason="needs pnnx")
    from fastface.export.liveness import check_softmax, gate_crops
    from fastface.train.minifasnet import load_minifasnet

    model = load_minifasnet(MINIFASNET / FILES["minifasnet_v2"])
    card = json.loads((MODELS / "minifasnet_v2.json").read_text())
    crops, names = gate_crops(LIVENESS_SAMPLES, 2.7)
    param, bin_ = MODELS / "minifasnet_v2.param", MODELS / "minifasnet_v2.bin"
    assert check_softmax(model, param, bin_, card, crops, names, "samples").passed
    with torch.no_grad():
        model.prob.weight.mul_(1.01)  # a 1% change in the classifier is far outside the bound
    report = check_softmax(model, param, bin_, card, crops, names, "samples")
    assert not report.passed and np.max(report.diffs) > 1e-4
