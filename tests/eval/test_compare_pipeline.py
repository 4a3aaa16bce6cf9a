"""``fastface compare`` times the whole pipeline with the bundled detector: on photos given
with --images, else on a synthetic scene it draws."""
import json
import subprocess
import sys

from fastface.demo import write_demo_model
from fastface.eval.compare import bundled_models, pipeline_detector
from shared_data import DEEPFACE, require


def compare(*args):
    return subprocess.run([sys.executable, "-m", "fastface", "compare", *map(str, args)], capture_output=True,
                          text=True)


def test_default_run_splits_the_bundled_detector_from_the_recognizers():
    recognizers, detector = pipeline_detector(bundled_models(), None)
    assert detector.stem == "yunet_s" and detector.suffix == ".param"
    assert {"mobilefacenet", "se_iresnet100"} <= {m.stem for m in recognizers} and detector not in recognizers


def check_pipeline(row, faces_at_least):
    p = row["pipeline"]
    assert p["detector"] == "yunet_s" and p["faces"] >= faces_at_least
    assert p["detect_ms_per_photo"] > 0 and p["end_to_end_ms_per_photo"] > 0  # (their order: noise with tiny models)
    assert row["fruits"]["one_face_ms"] > p["detect_ms_per_photo"]
    assert row["fruits"]["fits_1000ms"] >= row["fruits"]["fits_500ms"] >= row["fruits"]["fits_100ms"]


def test_pipeline_on_the_synthetic_scene(tmp_path):
    model = write_demo_model(tmp_path)
    out = compare(model, "--seconds", "0.1", "--out", tmp_path / "report")
    assert out.returncode == 0, out.stderr
    row = json.loads((tmp_path / "report" / "compare.json").read_text())["models"][0]
    check_pipeline(row, 1)
    assert row["pipeline"]["source"].startswith("synthetic 640x480 scene")
    assert "| demo | yunet_s | synthetic 640x480 scene" in out.stdout


@require(DEEPFACE)
def test_pipeline_on_photos(tmp_path):
    model = write_demo_model(tmp_path)
    out = compare(model, "--seconds", "0.1", "--images", DEEPFACE, "--out", tmp_path / "report")
    assert out.returncode == 0, out.stderr
    row = json.loads((tmp_path / "report" / "compare.json").read_text())["models"][0]
    # The first 10 photos by name: couple.jpg (2 faces), img1, img10..img17 (one each).
    check_pipeline(row, 11)
    assert row["pipeline"]["source"] == "10 photos" and row["pipeline"]["end_to_end_ms_per_face"] > 0


def test_eval_detects_raw_photos_with_the_bundled_detector_by_default():
    from argparse import Namespace

    from fastface.eval.cli import detector_path, detects

    assert detects(Namespace(detector=None, pairs="pairs.csv")) and detector_path(Namespace(detector=None)) is None
    assert not detects(Namespace(detector=None, pairs="lfw.bin"))  # .bin sets hold aligned crops
    assert not detects(Namespace(detector="none", pairs="pairs.csv"))
    assert detects(Namespace(detector="d.param", pairs="lfw.bin")) and detector_path(Namespace(detector="d.param"))


def test_eval_takes_repeated_pair_lists_and_still_knows_a_bin_set_holds_aligned_crops():
    from fastface.cli import build_parser
    from fastface.eval.cli import detects

    parse = build_parser().parse_args
    assert not detects(parse(["eval", "--pairs", "lfw.bin"]))
    assert detects(parse(["eval", "--pairs", "pairsDevTrain.txt", "--pairs", "pairsDevTest.txt"]))


def test_int8_rows_run_the_int8_pipeline(tmp_path):
    from fastface.hub.bundled import bundled_model

    dlib = bundled_model("dlib_resnet_v1")
    recognizers, detector = pipeline_detector(bundled_models(), None)
    assert detector.name == "yunet_s.param" and dlib.with_name("dlib_resnet_v1.int8.param") in recognizers
    out = compare(dlib, "--int8", "--seconds", "0.1", "--out", tmp_path / "report")
    assert out.returncode == 0, out.stderr
    rows = {r["name"]: r for r in json.loads((tmp_path / "report" / "compare.json").read_text())["models"]}
    assert set(rows) == {"dlib_resnet_v1", "dlib_resnet_v1.int8"}
    assert rows["dlib_resnet_v1"]["pipeline"]["detector"] == "yunet_s"
    assert rows["dlib_resnet_v1.int8"]["pipeline"]["detector"] == "yunet_s.int8"
    assert rows["dlib_resnet_v1.int8"]["weights_mb"] == rows["dlib_resnet_v1"]["weights_mb"] / 2  # 1 vs 2 bytes
    assert "| dlib_resnet_v1.int8 |" in out.stdout
