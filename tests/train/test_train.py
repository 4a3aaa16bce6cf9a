"""The training loop in one process: learning, exact resume, checkpoints, hooks, bad input."""
import json
import logging

import pytest
import torch

from fastface.train import TrainConfig, train
from fastface.train import checkpoint
from fastface.train.backbones import get_backbone


def tiny(tmp_path, name="run", **overrides):
    """mobilefacenet on 16x16 synthetic faces: 8 identities x 4 images, 4 steps per epoch."""
    settings = dict(data="synthetic:8:4", output=str(tmp_path / name), image_size=16,
                    embedding_size=32, batch_size=8, epochs=1, workers=0, scale=32.0,
                    margins="0.3", warmup_steps=2, log_every=4, progress=False)
    return TrainConfig(**{**settings, **overrides})


def test_overfits_tiny_set_and_logs(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="fastface.train")
    result = train(tiny(tmp_path, epochs=15, lr=0.1))
    losses = [float(r.getMessage().split(" loss ")[1].split()[0])
              for r in caplog.records if " loss " in r.getMessage()]
    assert len(losses) == 15 and result.step == 60
    assert losses[-1] < 0.2 * losses[0], losses
    line = next(r.getMessage() for r in caplog.records if " loss " in r.getMessage())
    assert line.startswith("step 4/60 epoch 0 loss ") and " lr " in line and " samples/s " in line


def _state(result):
    return {**{f"backbone.{k}": v for k, v in result.backbone.state_dict().items()},
            "head": result.head.weight.detach()}


def test_resume_equals_uninterrupted_run(tmp_path):
    # sample_rate < 1 draws random negatives and flips are on: both must replay exactly.
    settings = dict(max_steps=10, save_every=3, keep_checkpoints=10, sample_rate=0.5,
                    optimizer="sgd", lr=0.05)
    full = train(tiny(tmp_path, "full", workers=2, **settings))

    # A run that stopped after step 6 has exactly the files the full run wrote at step 6.
    checkpoint.save(tmp_path / "resumed", 6, checkpoint.load(tmp_path / "full", 6, 0), 0, 1)
    resumed = train(tiny(tmp_path, "resumed", resume=True, **settings))  # mid-epoch 1

    assert resumed.step == full.step == 10
    expected, got = _state(full), _state(resumed)
    assert expected.keys() == got.keys()
    for key in expected:
        assert torch.equal(expected[key], got[key]), key
    fresh = train(tiny(tmp_path, "fresh", max_steps=4, lr=0.05))
    assert not torch.equal(fresh.head.weight, full.head.weight)  # the comparison can fail


def test_gradient_clipping_bounds_the_backbone_update(tmp_path):
    torch.manual_seed(0)
    initial = get_backbone("mobilefacenet", num_features=32, input_size=16)
    settings = dict(max_steps=2, warmup_steps=0, lr=0.5, momentum=0.0, weight_decay=0.0)
    clipped = train(tiny(tmp_path, "clipped", clip_grad=1e-6, **settings)).backbone.cpu()
    free = train(tiny(tmp_path, "free", clip_grad=0.0, **settings)).backbone.cpu()

    def moved(model):
        return sum((a - b).norm() ** 2 for a, b in zip(model.parameters(), initial.parameters())) ** 0.5

    assert moved(clipped) <= 2 * 0.5 * 1e-6 * 1.01  # two steps of lr x max_norm at most
    assert moved(free) > 1e-2


def test_resume_refuses_changed_settings(tmp_path):
    train(tiny(tmp_path, max_steps=3))
    with pytest.raises(ValueError, match="batch_size was 8, now 4"):
        train(tiny(tmp_path, max_steps=3, batch_size=4, resume=True))


def test_resume_from_nothing_starts_fresh_and_finished_run_is_a_no_op(tmp_path):
    first = train(tiny(tmp_path, max_steps=3, resume=True))
    again = train(tiny(tmp_path, max_steps=3, resume=True))
    assert first.step == again.step == 3
    assert torch.equal(first.head.weight, again.head.weight)


def test_checkpoint_files(tmp_path):
    cfg = tiny(tmp_path, max_steps=7, save_every=2, keep_checkpoints=2, optimizer="adamw",
               lr=1e-3, schedule="cosine")
    train(cfg)
    out = tmp_path / "run"
    assert sorted(p.name for p in out.glob("step-*")) == ["step-000000006.rank-0.pt",
                                                          "step-000000007.rank-0.pt"]
    assert json.loads((out / "latest.json").read_text()) == {"step": 7, "world_size": 1}
    assert not list(out.glob(".*tmp*"))
    state = checkpoint.load(out, 7, 0)
    assert state.keys() >= {"backbone", "head", "optimizer", "scheduler", "scaler", "rng", "step"}
    assert state["run"]["num_classes"] == 8 and state["scheduler"]["last_epoch"] == 7
    assert json.loads((out / "config.json").read_text())["optimizer"] == "adamw"
    model = get_backbone("mobilefacenet", num_features=32, input_size=16)
    model.load_state_dict(torch.load(out / "backbone.pt", weights_only=True), strict=True)


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    target = tmp_path / "f.bin"
    checkpoint.atomic_write(target, lambda f: f.write(b"old"))

    def crash(f):
        f.write(b"partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        checkpoint.atomic_write(target, crash)
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["f.bin"]


def test_verification_hook_runs_periodically(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="fastface.train")
    calls = []

    def verifier(backbone):
        calls.append(type(backbone).__name__)
        return {"toy": 0.5 + len(calls) / 10}

    result = train(tiny(tmp_path, max_steps=10, verify_every=4), verifier=verifier)
    assert calls == ["MobileFaceNet"] * 3 and result.metrics == {"toy": 0.8}  # steps 4, 8 and the last
    assert any("verification toy 0.8000" in r.getMessage() for r in caplog.records)


def test_bad_training_input(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no images found"):
        train(tiny(tmp_path, data=str(tmp_path / "empty")))
    with pytest.raises(ValueError, match="unknown backbone"):
        train(tiny(tmp_path, backbone="resnet9000"))
    with pytest.raises(ValueError, match="do not fill one global batch"):
        train(tiny(tmp_path, batch_size=64))
    with pytest.raises(ValueError, match="synthetic:CLASSES:IMAGES_PER_CLASS"):
        train(tiny(tmp_path, data="synthetic:lots"))
    with pytest.raises(ValueError, match="loss must be one of"):
        tiny(tmp_path, loss="softmax")
    with pytest.raises(ValueError, match="margins must be comma-separated"):
        tiny(tmp_path, margins="0.5;0.1")
    with pytest.raises(ValueError, match="sample_rate"):
        tiny(tmp_path, sample_rate=1.5)
