"""ONNX sources, real faces in the gate, and the gate catching broken conversions."""
import json
import os
from pathlib import Path

import numpy as np
import pytest
from shared_data import ALIGNED_LFW, require

pytest.importorskip("torch", reason="export tests need the [export] extra (torch)")
pytest.importorskip("pnnx", reason="export tests need the [export] extra (pnnx)")

import fastface  # noqa: E402
import torch  # noqa: E402
from fastface.cli import main  # noqa: E402
from fastface.export import (  # noqa: E402
    check_recognizer,
    export_recognizer,
    load_faces,
    random_backbone,
    synthetic_faces,
    torch_reference,
)
from fastface.export import recognizer as recognizer_module  # noqa: E402
from fastface.train.backbones import complexity  # noqa: E402


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch's notice about its TorchScript ONNX exporter
def test_onnx_from_torch_onnx_export_passes_the_gate(tmp_path):
    pytest.importorskip("onnx", reason="torch.onnx.export needs the onnx package ([export] extra)")
    model = random_backbone("iresnet18", seed=5, embedding_size=128)
    path = tmp_path / "r18.onnx"
    torch.onnx.export(model, torch.zeros(1, 3, 112, 112), str(path), input_names=["input.1"], output_names=["fc1"],
                      dynamic_axes={"input.1": {0: "batch"}}, dynamo=False)
    result = export_recognizer(path, tmp_path / "out", num_faces=4)
    card = result.card
    assert card["name"] == "r18" and card["source"]["kind"] == "onnx" and card["dim"] == 128
    assert card["parity"]["reference"] == "onnxruntime" and card["parity"]["passed"]
    assert card["source"]["sha256"] == fastface.export.sources.sha256_file(path)
    # MACs are counted on pnnx's graph for ONNX sources; they agree with the torch counter.
    assert card["macs"] == complexity(model, 112).macs and card["params"] > 0
    assert (card["mean"], card["channel_order"]) == (127.5, "RGB") and card["backbone"] is None
    print(f"ONNX iresnet18 fp32: 1 - min cosine {1 - result.parity.min_cosine:.3g}, {result.seconds}")


def test_gate_on_real_aligned_faces(mfn_run):
    model, result = mfn_run
    if not ALIGNED_LFW.exists():
        pytest.skip(f"shared test data not found: {ALIGNED_LFW}")
    card = json.loads(result.card_path.read_text())
    faces, names = load_faces(ALIGNED_LFW, 112)
    report = check_recognizer(torch_reference(model), result.param, result.bin, card, faces, names)
    assert report.passed and len(names) == 3, str(report)
    print(f"real faces ({', '.join(names)}): 1 - min cosine {1 - report.min_cosine:.3g}")


@require(ALIGNED_LFW)
def test_faces_folder_is_resized_to_the_input_size(tmp_path):
    faces, names = load_faces(ALIGNED_LFW, (48, 64), limit=2)
    assert faces.shape == (2, 64, 48, 3) and faces.dtype == np.uint8 and len(names) == 2


def test_synthetic_faces_are_fixed():
    a, b = synthetic_faces(3, 112), synthetic_faces(3, 112)
    assert a.shape == (3, 112, 112, 3) and np.array_equal(a, b) and a.std() > 20
    assert not np.array_equal(a[0], a[1])


def corrupt(bin_path, how):
    """Damage the weights but not the ncnn storage tags (zero words), so the file still loads."""
    weights = np.fromfile(bin_path, np.float32)
    middle = slice(len(weights) // 3, len(weights) // 3 + len(weights) // 20)
    values = weights[middle]
    keep = values != 0
    values[keep] = -values[keep] * 1.7 if how == "scale" else np.nan
    weights[middle] = values
    weights.tofile(bin_path)


@pytest.mark.parametrize("how", ["scale", "nan"])
def test_corrupted_weights_fail_the_gate(mfn_run, mfn_copy, how):
    model, _ = mfn_run
    param, bin_path, card = mfn_copy
    corrupt(bin_path, how)
    faces = synthetic_faces(4, 112)
    report = check_recognizer(torch_reference(model), param, bin_path, card, faces, [f"f{i}" for i in range(4)])
    assert not report.passed
    text = str(report)
    assert "FAILED" in text and "worst" in text and "f0" in text
    if how == "nan":
        assert (~report.runs[0].finite).all() and "NaN/inf" in text
    else:
        assert report.min_cosine < 0.99
    print(f"corrupted ({how}): {text.splitlines()[1].strip()}")


@pytest.fixture
def broken_pnnx(monkeypatch):
    """Conversions whose weights get damaged right after pnnx wrote them."""
    real = recognizer_module.trace_and_convert

    def convert_then_damage(*args, **kwargs):
        out = real(*args, **kwargs)
        corrupt(out.bin, "scale")
        return out

    monkeypatch.setattr(recognizer_module, "trace_and_convert", convert_then_damage)


def test_failed_gate_installs_nothing_and_exits_1(tmp_path, broken_pnnx, capsys, monkeypatch):
    torch.save(random_backbone("mobilefacenet", seed=6, input_size=32).state_dict(), tmp_path / "w.pt")
    monkeypatch.chdir(tmp_path)
    out = Path("out")  # relative, as typed on a command line
    code = main(["export", "w.pt", "--backbone", "mobilefacenet", "--out", str(out), "--num-faces", "3", "--quiet"])
    assert code == 1  # the CLI's ParityError path
    err = capsys.readouterr().err
    assert "parity gate failed" in err and "worst" in err and "synthetic-" in err and "nothing installed" in err
    assert sorted(os.listdir(out)) == []  # no card, no param, no staging leftovers
    # Explicitly overridden: installed, and the card says the gate failed.
    result = export_recognizer("w.pt", out, backbone="mobilefacenet", num_faces=3, allow_parity_failure=True)
    assert not result.parity.passed and result.parity.min_cosine < 0.9999
    card = json.loads((out / "mobilefacenet.json").read_text())
    assert card["parity"]["passed"] is False and card["parity"]["engine"]["fp32"]["min_cosine"] < 0.9999
    assert sorted(os.listdir(out)) == ["mobilefacenet.bin", "mobilefacenet.json", "mobilefacenet.param"]
