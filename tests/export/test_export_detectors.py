"""Detector export: YuNet from ONNX and fastface's PyTorch RetinaFace, each with a card the
core's decoder picks up by itself."""
import json

import cv2
import pytest
from shared_data import DEEPFACE, YUNET_ONNX, require

pytest.importorskip("torch", reason="export tests need the [export] extra (torch)")
pytest.importorskip("pnnx", reason="export tests need the [export] extra (pnnx)")

import fastface  # noqa: E402
import torch  # noqa: E402
from fastface.cli import main  # noqa: E402
from fastface.export import YUNET_OUTPUTS, export_detector  # noqa: E402


@require(YUNET_ONNX)
@require(DEEPFACE)
def test_yunet_from_onnx_through_the_cli(tmp_path, capsys):
    couple = DEEPFACE / "couple.jpg"
    # The gate sees real photos: the first two of the folder, couple.jpg and img1.jpg.
    code = main(["export", str(YUNET_ONNX), "--detector", "yunet", "--name", "yunet", "--out", str(tmp_path),
                 "--images", str(DEEPFACE), "--num-faces", "2", "--quiet"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    card = json.loads((tmp_path / "yunet.json").read_text())
    assert card["parity"]["input_set"].startswith("2 photos") and summary["parity_passed"]
    assert card["kind"] == "yunet" and card["input"] == "in0" and card["input_size"] == [640, 640]
    assert card["source_outputs"] == YUNET_OUTPUTS == [f"{h}_{s}" for h in ("cls", "obj", "bbox", "kps")
                                                       for s in (8, 16, 32)]
    assert card["outputs"] == [f"out{i}" for i in range(12)]  # pnnx keeps the ONNX output order
    assert (card["channel_order"], card["mean"], card["scale"]) == ("BGR", 0.0, 1.0)
    assert card["parity"]["passed"] and card["parity"]["engine"]["fp32"]["min_cosine"] >= 0.9999
    detector = fastface.Detector(tmp_path / "yunet.param")  # kind, blobs and size from the card beside it
    assert detector.kind == "yunet"
    assert len(detector.detect(cv2.imread(str(couple)))) == 2
    print(f"yunet fp32: 1 - min cosine {1 - summary['min_cosine']:.3g} (worst output "
          f"{card['parity']['engine']['fp32']['worst'][0]['output']}), {summary['seconds']}")


def test_torch_retinaface_module_with_card_fields(tmp_path):
    from fastface.train.retinaface import RetinaFace

    torch.manual_seed(0)
    model = RetinaFace("mobilenet0.25").eval()
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    result = export_detector(model, tmp_path, kind="retinaface-torch", input_size=[320, 320],
                             output_names=["loc", "conf", "landmarks"], card={"variances": [0.1, 0.2]})
    card = result.card
    assert card["name"] == "retinaface-torch" and card["outputs"] == ["out0", "out1", "out2"]
    assert card["source_outputs"] == ["loc", "conf", "landmarks"] and card["variances"] == [0.1, 0.2]
    assert card["mean"] == [104.0, 117.0, 123.0] and card["channel_order"] == "BGR"  # the engine's defaults
    assert card["input_size"] == [320, 320] and card["parity"]["passed"]
    detector = fastface.Detector(result.param)
    assert detector.kind == "retinaface-torch"
    print(f"retinaface-torch fp32: 1 - min cosine {1 - result.parity.min_cosine:.3g}, {result.seconds}")


def test_detector_needs_a_kind_and_names_its_own_blobs(tmp_path):
    with pytest.raises(fastface.export.ExportError, match="which decoder"):
        export_detector(YUNET_ONNX, tmp_path)
    with pytest.raises(fastface.export.ExportError, match="come from the conversion"):
        export_detector(YUNET_ONNX, tmp_path, kind="yunet", card={"outputs": ["a", "b"]})


def test_card_kind_conflict_is_reported(tmp_path):
    param = tmp_path / "m.param"
    param.write_text("7767517\n0 0\n")
    (tmp_path / "m.bin").write_bytes(b"")
    (tmp_path / "m.json").write_text(json.dumps({"kind": "yunet"}))
    with pytest.raises(ValueError, match="card says 'yunet'"):
        fastface.Detector(param, kind="retinaface")
