"""``fastface eval`` and ``fastface compare`` end to end, on the shared model and photos."""
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from fastface.demo import write_demo_model
from shared_data import DEEPFACE, MOBILEFACENET, MOBILEFACENET_CARD, RETINAFACE_PARAM, require

def needs_shared(test):
    for marker in (require(MOBILEFACENET), require(DEEPFACE), require(RETINAFACE_PARAM)):
        test = marker(test)
    return test


def cli(*args):
    if args[0] == "eval":  # one ncnn thread: two spin-waiting threads crawl on a busy 2-core CI machine
        args = (*args, "--threads", "1")
    return subprocess.run([sys.executable, "-m", "fastface", *map(str, args)], capture_output=True, text=True)


@pytest.fixture(scope="module")
def mobilefacenet(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mfn")
    for suffix in (".param", ".bin"):
        (folder / f"mobilefacenet{suffix}").symlink_to(MOBILEFACENET / f"mobilefacenet{suffix}")
    (folder / "mobilefacenet.json").write_text(json.dumps({**MOBILEFACENET_CARD, "params": 993_000, "macs": 221_000_000}))
    return folder / "mobilefacenet.param"


@needs_shared
def test_eval_on_raw_photos(tmp_path, mobilefacenet):
    out = cli("eval", "--model", mobilefacenet, "--pairs", DEEPFACE / "pairs.csv", "--detector", RETINAFACE_PARAM,
              "--out", tmp_path)
    assert out.returncode == 0, out.stderr
    assert "| mobilefacenet |" in out.stdout
    summary = json.loads((tmp_path / "mobilefacenet.json").read_text())["summary"]
    assert summary["accuracy_mean"] >= 0.99 and summary["pairs"] == 300
    # a CSV list gets stratified folds (pairs.csv lists its 38 same-person pairs first) and the
    # subject nearest the photo's centre unless told otherwise; both are said and recorded
    assert summary["fold_scheme"] == "stratified"
    assert all(f["counts"]["tp"] + f["counts"]["fn"] in (3, 4) for f in summary["folds"])
    assert summary["subject"]["face"] == "central" and summary["subject"]["missed"] == 0
    assert "10 stratified folds" in out.stdout and "--face central" in out.stdout
    assert "no face detected in 0 of 25 photos" in (tmp_path / "report.md").read_text()


@needs_shared
def test_eval_card_option_and_face_rules(tmp_path):
    card = tmp_path / "card.json"
    card.write_text(json.dumps(MOBILEFACENET_CARD))
    base = ["eval", "--model", MOBILEFACENET / "mobilefacenet.param", "--card", card, "--pairs", DEEPFACE / "pairs.csv",
            "--detector", RETINAFACE_PARAM]
    out = cli(*base, "--face", "largest", "--out", tmp_path / "largest")
    assert out.returncode == 0, out.stderr  # the shared model has no card beside it: --card gives one
    assert json.loads((tmp_path / "largest" / "mobilefacenet.json").read_text())["summary"]["subject"]["face"] == "largest"
    out = cli("eval", "--model", MOBILEFACENET / "mobilefacenet.param", "--card", card, "--pairs", DEEPFACE / "pairs.csv",
              "--detector", "none", "--face", "score")
    assert out.returncode == 2 and "not with --detector none" in out.stderr


@needs_shared
def test_python_api_and_cli_give_the_same_figures(tmp_path, mobilefacenet):
    from fastface import Embedder
    from fastface.eval import FaceCrop, evaluate, read_pairs

    out = cli("eval", "--model", mobilefacenet, "--pairs", DEEPFACE / "pairs.csv", "--detector", RETINAFACE_PARAM,
              "--out", tmp_path)
    assert out.returncode == 0, out.stderr
    from_cli = json.loads((tmp_path / "mobilefacenet.json").read_text())
    model = Embedder(mobilefacenet)
    result = evaluate(lambda crops: model.embed(crops, normalize=False), read_pairs(DEEPFACE / "pairs.csv"),
                      crop=FaceCrop(RETINAFACE_PARAM, model.input_size, model.card.get("template")), name="mobilefacenet")
    np.testing.assert_allclose(result.scores, from_cli["scores"], atol=1e-6)
    for key in ("counts", "fold_scheme", "subject", "pairs"):
        assert result.summary[key] == from_cli["summary"][key], key
    for key in ("accuracy_mean", "accuracy_std", "auc", "eer"):
        assert result.summary[key] == pytest.approx(from_cli["summary"][key], abs=1e-9), key


@needs_shared
def test_eval_photo_without_a_face(tmp_path, mobilefacenet):
    cv2 = pytest.importorskip("cv2")
    for name in ("img1.jpg", "img2.jpg", "img3.jpg", "img12.jpg"):
        shutil.copy(DEEPFACE / name, tmp_path / name)
    cv2.imwrite(str(tmp_path / "wall.jpg"), np.full((250, 250, 3), 180, np.uint8))  # nothing to detect
    rows = ["img1.jpg,img2.jpg,1", "img3.jpg,img12.jpg,1", "img1.jpg,img3.jpg,0", "img2.jpg,wall.jpg,0",
            "img12.jpg,img1.jpg,0", "wall.jpg,img3.jpg,0"] * 2
    (tmp_path / "pairs.csv").write_text("file_a,file_b,same\n" + "\n".join(rows) + "\n")
    out = cli("eval", "--model", mobilefacenet, "--pairs", tmp_path / "pairs.csv", "--detector", RETINAFACE_PARAM,
              "--out", tmp_path / "out")
    assert out.returncode == 0, out.stderr  # the evaluation goes on, with the photo centred
    subject = json.loads((tmp_path / "out" / "mobilefacenet.json").read_text())["summary"]["subject"]
    assert (subject["missed"], subject["images"]) == (1, 5) and subject["missed_images"][0].endswith("wall.jpg")
    assert "no face detected in 1 of 5 photos (" in out.stdout and "wall.jpg" in out.stdout
    out = cli("eval", "--model", mobilefacenet, "--pairs", tmp_path / "pairs.csv", "--detector", RETINAFACE_PARAM,
              "--strict")
    assert out.returncode == 2 and "wall.jpg: no face detected" in out.stderr


@needs_shared
def test_compare_times_models_with_and_without_weights(tmp_path, mobilefacenet):
    architecture_only = write_demo_model(tmp_path)
    architecture_only.with_suffix(".bin").unlink()  # timing must not need weights
    out = cli("compare", mobilefacenet, architecture_only, "--seconds", "0.2", "--pairs", DEEPFACE / "pairs.csv",
              "--detector", RETINAFACE_PARAM, "--out", tmp_path / "report")
    assert out.returncode == 0, out.stderr
    report = json.loads((tmp_path / "report" / "compare.json").read_text())
    rows = {row["name"]: row for row in report["models"]}
    assert set(rows) == {"mobilefacenet", "demo"}
    for row in rows.values():
        for stage in ("align", "embed", "match"):
            assert 0 < row["stages"][stage]["median_ms"] <= row["stages"][stage]["p90_ms"]
        assert row["peak_rss_mb"] > 10
    assert rows["mobilefacenet"]["has_weights"] and not rows["demo"]["has_weights"]
    assert rows["mobilefacenet"]["params"] == 993_000
    assert set(report["accuracy"]) == {str(mobilefacenet)}  # accuracy only where there are weights
    assert report["accuracy"][str(mobilefacenet)]["accuracy_mean"] >= 0.99
    assert rows["mobilefacenet"]["complexity_source"] == "card"
    assert rows["demo"]["complexity_source"] == "graph" and rows["demo"]["params"] == 817280  # no card figures
    table = (tmp_path / "report" / "compare.md").read_text()
    assert "| demo | – |" in table and "| mobilefacenet | 99." in table


@needs_shared
def test_compare_keeps_same_named_models_apart(tmp_path):
    """Two models called mobilefacenet in different folders, one trained, one with random weights."""
    trained, untrained = tmp_path / "a" / "mobilefacenet.param", tmp_path / "b" / "mobilefacenet.param"
    trained.parent.mkdir()
    for suffix in (".param", ".bin"):
        trained.with_suffix(suffix).symlink_to(MOBILEFACENET / f"mobilefacenet{suffix}")
    card = tmp_path / "shared_card.json"
    card.write_text(json.dumps(MOBILEFACENET_CARD))  # no params/MACs: they are counted from the graph
    untrained.parent.mkdir()
    demo = write_demo_model(untrained.parent)
    for suffix in (".param", ".bin", ".json"):
        demo.with_suffix(suffix).rename(untrained.with_suffix(suffix))
    out = cli("compare", trained, untrained, "--card", card, "--card", untrained.with_suffix(".json"), "--seconds", "0.1",
              "--pairs", DEEPFACE / "pairs.csv", "--detector", RETINAFACE_PARAM, "--out", tmp_path / "report")
    assert out.returncode == 0, out.stderr
    report = json.loads((tmp_path / "report" / "compare.json").read_text())
    rows = {row["name"]: row for row in report["models"]}
    assert set(rows) == {"a/mobilefacenet", "b/mobilefacenet"}
    assert rows["a/mobilefacenet"]["path"] == str(trained)
    accuracy = {path: s["metrics"]["accuracy"] for path, s in report["accuracy"].items()}
    assert accuracy[str(trained)] >= 0.99 and accuracy[str(untrained)] < 0.95  # not one model's figure twice
    assert (rows["a/mobilefacenet"]["params"], rows["a/mobilefacenet"]["macs"]) == (1_003_264, 220_965_376)
    assert rows["b/mobilefacenet"]["params"] == 817_280 and rows["b/mobilefacenet"]["complexity_source"] == "graph"
    table = (tmp_path / "report" / "compare.md").read_text()
    assert f"| a/mobilefacenet | {100 * accuracy[str(trained)]:.4f} |" in table
    assert f"| b/mobilefacenet | {100 * accuracy[str(untrained)]:.4f} |" in table
    assert "| a/mobilefacenet |" in out.stdout and "1.00 M | 0.221 G" in table


def test_compare_errors(tmp_path):
    out = cli("compare", tmp_path / "missing.param")
    assert out.returncode == 2 and "card" in out.stderr
    out = cli("compare", tmp_path / "m.param", tmp_path / "m.param")
    assert out.returncode == 2 and "given more than once" in out.stderr
    out = cli("compare", tmp_path / "a.param", tmp_path / "b.param", tmp_path / "c.param", "--card", "x", "--card", "y")
    assert out.returncode == 2 and "once per model (3), not 2 times" in out.stderr


def test_compare_without_arguments_times_the_bundled_architectures(tmp_path):
    out = cli("compare", "--seconds", "0.1", "--out", tmp_path)
    assert out.returncode == 0, out.stderr
    rows = {row["name"]: row for row in json.loads((tmp_path / "compare.json").read_text())["models"]}
    assert {"mobilefacenet", "se_iresnet100"} <= set(rows)
    assert rows["se_iresnet100"]["params"] > 60e6 and rows["mobilefacenet"]["params"] < 1.1e6
    assert not rows["se_iresnet100"]["has_weights"]  # architecture only: timed with zero weights
    assert rows["se_iresnet100"]["stages"]["embed"]["median_ms"] > rows["mobilefacenet"]["stages"]["embed"]["median_ms"]


def test_compare_display_names_tell_same_stems_apart():
    from pathlib import Path

    from fastface.eval.compare import display_names

    paths = [Path("runs/x/a/mfn.param"), Path("runs/y/a/mfn.param"), Path("b/mfn.param"), Path("b/r100.param")]
    assert display_names(paths) == ["x/a/mfn", "y/a/mfn", "b/mfn", "r100"]
    assert display_names([Path("a/m.param"), Path("b/m.param")]) == ["a/m", "b/m"]
