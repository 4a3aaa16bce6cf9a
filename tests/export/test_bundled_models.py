"""The architecture-only models in models/ (made by fastface export; no torch needed here)."""
import json
from pathlib import Path

import fastface
import numpy as np
import pytest

MODELS = Path(__file__).resolve().parents[2] / "models"
EXPECTED = {"mobilefacenet": (128, 0.9e6, 1.1e6), "se_iresnet100": (512, 60e6, 70e6)}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_bundled_architecture_loads_and_runs_with_zero_weights(name):
    dim, low, high = EXPECTED[name]
    param = MODELS / f"{name}.param"
    assert param.is_file() and not param.with_suffix(".bin").exists()
    assert param.stat().st_size < 100_000 and param.read_text().startswith("7767517")  # small text graph
    card = json.loads(param.with_suffix(".json").read_text())
    assert card["weights"] == "none (architecture only)" and card["backbone"] == name
    assert card["dim"] == dim and low < card["params"] < high and card["macs"] > 0
    assert card["parity"]["passed"] and card["source"]["kind"] == "random-init"
    assert card["files"]["param"]["bytes"] == param.stat().st_size
    model = fastface.Embedder.with_zero_weights(param)
    assert model.dim == dim and model.input_size == (112, 112)
    out = model.embed(np.zeros((2, 112, 112, 3), np.uint8), normalize=False)
    assert out.shape == (2, dim) and np.isfinite(out).all()


def test_bundled_cards_agree_with_the_training_backbones():
    pytest.importorskip("torch", reason="needs torch to count the backbones")
    from fastface.train.backbones import complexity, get_backbone

    for name, (dim, _, _) in EXPECTED.items():
        card = json.loads((MODELS / f"{name}.json").read_text())
        assert (card["params"], card["macs"]) == tuple(complexity(get_backbone(name, num_features=dim), 112))
