"""Fixtures shared by the export tests. Exports cost a pnnx run each (seconds to a minute on a
small CPU), so models are exported once per session and reused where a test only reads."""
import json
import shutil

import pytest


def need_export_extra():
    """Skip unless the [export] extra (torch, pnnx) is installed."""
    pytest.importorskip("torch", reason="export tests need the [export] extra (torch)")
    pytest.importorskip("pnnx", reason="export tests need the [export] extra (pnnx)")


@pytest.fixture(scope="session")
def mfn_run(tmp_path_factory):
    """A fastface training folder (config.json + backbone.pt, as the trainer writes them) holding
    a seeded random MobileFaceNet, and its fp32 export through the folder."""
    need_export_extra()
    import torch
    from fastface.export import export_recognizer, random_backbone

    root = tmp_path_factory.mktemp("mfn")
    run = root / "run"
    run.mkdir()
    model = random_backbone("mobilefacenet", seed=1)
    (run / "config.json").write_text(json.dumps({"backbone": "mobilefacenet", "embedding_size": 128,
                                                 "image_size": 112, "seed": 1}))
    torch.save({k: v for k, v in model.state_dict().items()}, run / "backbone.pt")
    result = export_recognizer(run, root / "out", num_faces=4)
    return model, result


@pytest.fixture
def mfn_copy(mfn_run, tmp_path):
    """The exported MobileFaceNet files, copied so a test may damage them."""
    _, result = mfn_run
    for p in (result.param, result.bin, result.card_path):
        shutil.copy(p, tmp_path / p.name)
    return tmp_path / result.param.name, tmp_path / result.bin.name, json.loads(result.card_path.read_text())
