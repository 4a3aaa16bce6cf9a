"""Each way an export can go wrong gives a clear ExportError (exit status 2 from the CLI)."""
import os
import stat
import sys

import pytest

pytest.importorskip("torch", reason="export tests need the [export] extra (torch)")
pytest.importorskip("pnnx", reason="export tests need the [export] extra (pnnx)")

import torch  # noqa: E402
from fastface.cli import main  # noqa: E402
from fastface.export import (  # noqa: E402
    ExportError,
    PnnxError,
    StateDictMismatch,
    export_recognizer,
    random_backbone,  # noqa: E402
)
from fastface.export.pnnx_tool import find_pnnx  # noqa: E402


@pytest.fixture(scope="module")
def small_state(tmp_path_factory):
    """A tiny MobileFaceNet state dict (32x32 input): cheap to trace."""
    path = tmp_path_factory.mktemp("state") / "mfn32.pt"
    torch.save(random_backbone("mobilefacenet", seed=7, input_size=32).state_dict(), path)
    return path


def cli(capsys, *argv):
    code = main(["export", *map(str, argv), "--quiet"])
    return code, capsys.readouterr().err


def test_unknown_backbone(small_state, tmp_path, capsys):
    with pytest.raises(ExportError, match=r"unknown backbone 'resnet9000'; choose one of .*iresnet100"):
        export_recognizer(small_state, tmp_path, backbone="resnet9000")
    code, err = cli(capsys, small_state, "--backbone", "resnet9000", "--out", tmp_path)
    assert code == 2 and "unknown backbone" in err
    with pytest.raises(ExportError, match="does not say which backbone"):
        export_recognizer(small_state, tmp_path)


def test_state_dict_mismatch_lists_keys(small_state, tmp_path, capsys):
    state = torch.load(small_state, weights_only=True)
    state["extra.weight"] = torch.zeros(3)
    del state["conv_sep.layers.0.weight"]
    broken = tmp_path / "broken.pt"
    torch.save(state, broken)
    with pytest.raises(StateDictMismatch) as info:
        export_recognizer(broken, tmp_path / "out", backbone="mobilefacenet")
    assert info.value.missing == ["conv_sep.layers.0.weight"] and info.value.unexpected == ["extra.weight"]
    assert "missing keys: conv_sep.layers.0.weight" in str(info.value)
    assert "unexpected keys: extra.weight" in str(info.value)
    # The wrong backbone: hundreds of keys, listed with a count and shape mismatches.
    with pytest.raises(StateDictMismatch, match=r"missing keys: .*more\)") as info:
        export_recognizer(small_state, tmp_path / "out", backbone="iresnet18")
    code, err = cli(capsys, small_state, "--backbone", "mbf", "--out", tmp_path / "out")
    assert code == 2 and "does not match backbone 'mbf'" in err and "shape mismatches" in err
    assert not (tmp_path / "out").exists() or not os.listdir(tmp_path / "out")


def test_unreadable_checkpoint_and_onnx(tmp_path, capsys):
    (tmp_path / "junk.onnx").write_bytes(b"this is not a protobuf\x00\x01")
    with pytest.raises(ExportError, match="cannot read ONNX model .*junk.onnx"):
        export_recognizer(tmp_path / "junk.onnx", tmp_path / "out")
    code, err = cli(capsys, tmp_path / "junk.onnx", "--out", tmp_path / "out")
    assert code == 2 and "cannot read ONNX model" in err
    (tmp_path / "junk.pt").write_bytes(b"garbage")
    with pytest.raises(ExportError, match="cannot read checkpoint"):
        export_recognizer(tmp_path / "junk.pt", tmp_path / "out", backbone="mbf")
    with pytest.raises(ExportError, match="no ONNX model at"):
        export_recognizer(tmp_path / "absent.onnx", tmp_path / "out")


def test_pnnx_missing(small_state, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FASTFACE_PNNX", str(tmp_path / "no-such-pnnx"))
    with pytest.raises(PnnxError, match="FASTFACE_PNNX=.* is not an executable"):
        export_recognizer(small_state, tmp_path / "out", backbone="mobilefacenet")
    monkeypatch.delenv("FASTFACE_PNNX")
    monkeypatch.setitem(sys.modules, "pnnx", None)  # the package is absent ...
    monkeypatch.setenv("PATH", str(tmp_path))       # ... and no binary on PATH
    with pytest.raises(PnnxError, match=r"pnnx is not installed: pip install 'fastface\[export\]'"):
        find_pnnx()
    code, err = cli(capsys, small_state, "--backbone", "mobilefacenet", "--out", tmp_path / "out")
    assert code == 2 and "pnnx is not installed" in err


def test_pnnx_failing_shows_its_log(small_state, tmp_path, monkeypatch, capsys):
    fake = tmp_path / "pnnx"
    fake.write_text("#!/bin/sh\necho 'pnnxparam = x'\necho 'unsupported op aten::frobnicate' >&2\nexit 3\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("FASTFACE_PNNX", str(fake))
    out = tmp_path / "out"
    with pytest.raises(PnnxError, match=r"(?s)exit status 3.*pnnx log.*aten::frobnicate") as info:
        export_recognizer(small_state, out, backbone="mobilefacenet")
    assert "unsupported op" in info.value.log
    assert os.listdir(out) == []  # the staging folder is gone
    code, err = cli(capsys, small_state, "--backbone", "mobilefacenet", "--out", out)
    assert code == 2 and "aten::frobnicate" in err


def test_output_folder_not_writable(small_state, tmp_path, capsys):
    (tmp_path / "a-file").write_text("")
    target = tmp_path / "a-file" / "models"
    with pytest.raises(ExportError, match="output folder .* is not writable"):
        export_recognizer(small_state, target, backbone="mobilefacenet")
    code, err = cli(capsys, small_state, "--backbone", "mobilefacenet", "--out", target)
    assert code == 2 and "not writable" in err
    if os.geteuid() != 0:  # root writes anywhere; the permission case only means something otherwise
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        with pytest.raises(ExportError, match="not writable"):
            export_recognizer(small_state, locked, backbone="mobilefacenet")


def test_bad_names_and_options(small_state, tmp_path, capsys):
    with pytest.raises(ExportError, match="invalid model name"):
        export_recognizer(small_state, tmp_path, "../escape", backbone="mobilefacenet")
    code, err = cli(capsys, "--out", tmp_path)
    assert code == 2 and "--random-init" in err
    code, err = cli(capsys, "--random-init", "0", "--out", tmp_path)
    assert code == 2 and "needs --backbone" in err
