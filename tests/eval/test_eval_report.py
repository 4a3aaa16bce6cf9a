"""fastface.eval.report: JSON round trip, the Table-1 Markdown, PNG plots."""
import json
import sys

import numpy as np
import pytest

from fastface.eval import evaluate_scores, write_report
from fastface.eval.report import markdown_details, markdown_protocol, markdown_table, read_json, write_json


@pytest.fixture
def results(mobilefacenet_scores, resnet100_scores):
    return [evaluate_scores(*mobilefacenet_scores, name="MobileFaceNet"),
            evaluate_scores(*resnet100_scores, name="SE-LResNet100E-IR")]


def test_json_round_trip_is_strict_json(results, tmp_path):
    path = write_json(results[0], tmp_path / "r.json")
    json.loads(path.read_text(), parse_constant=lambda c: pytest.fail(f"non-standard JSON {c}"))
    back = read_json(path)
    assert back.name == "MobileFaceNet" and back.summary == results[0].summary
    np.testing.assert_array_equal(back.scores, results[0].scores)
    np.testing.assert_array_equal(back.same, results[0].same)
    assert back.same.dtype == bool


def test_markdown_table1_rows(results):
    lines = markdown_table(results).splitlines()
    assert lines[0] == "| Model | Accuracy | Precision | Recall | Specificity | F1 |"
    # the reference's F1 for MobileFaceNet is 99.6827 from rounded P and R; exact is 99.6826
    assert lines[2] == "| MobileFaceNet | 99.6833 | 99.8996 | 99.4667 | 99.9000 | 99.6826 |"
    assert lines[3] == "| SE-LResNet100E-IR | 99.8500 | 100.0000 | 99.7000 | 100.0000 | 99.8498 |"


def test_markdown_details(results):
    lines = markdown_details(results).splitlines()
    assert lines[0].endswith(
        "| TAR % @ FAR=0.1 | TAR % @ FAR=0.01 | TAR % @ FAR=0.001 | TAR % @ FAR=0.0001 |")
    row = lines[2]
    assert row.startswith("| MobileFaceNet | 6000 (3000/3000) | 99.6833 ± ")
    assert "| 2984 / 16 / 2997 / 3 |" in row
    assert row.endswith("| n/a |")  # 3000 different-person pairs cannot show FAR = 1e-4
    assert len(lines) == 4


def test_write_report_with_plots(results, tmp_path):
    pytest.importorskip("matplotlib")
    cv2 = pytest.importorskip("cv2")
    written = write_report(results, tmp_path / "out")
    names = sorted(p.name for p in written)
    assert names == ["MobileFaceNet.json", "MobileFaceNet_scores.png", "SE-LResNet100E-IR.json",
                     "SE-LResNet100E-IR_scores.png", "report.md", "roc.png"]
    for png in (p for p in written if p.suffix == ".png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        image = cv2.imread(str(png))
        assert image is not None and image.shape[0] > 100 and image.shape[1] > 100
        assert image.std() > 10  # something was drawn
    assert "| MobileFaceNet | 99.6833 |" in (tmp_path / "out" / "report.md").read_text()


def test_write_report_without_matplotlib(results, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.warns(UserWarning, match="PNG plots skipped: plots need matplotlib"):
        written = write_report(results[:1], tmp_path)
    assert sorted(p.name for p in written) == ["MobileFaceNet.json", "report.md"]
    assert not list(tmp_path.glob("*.png"))


def test_write_report_needs_distinct_names(results, tmp_path):
    results[1].name = "MobileFaceNet"
    with pytest.raises(ValueError, match="names must differ"):
        write_report(results, tmp_path)


def test_roc_zooms_on_the_curve_and_marks_the_table_fars(results):
    pytest.importorskip("matplotlib")
    from fastface.eval.report import roc_figure

    ax = roc_figure(results).axes[0]
    assert ax.get_xscale() == "log"
    low, high = ax.get_ylim()
    # from FAR 1e-3 (the lowest the table can show on 3000 impostor pairs) both curves stay above
    # 0.99 TAR: the axis shows that band, not 0..1
    assert 0.98 < low < 0.995 and 1.0 <= high < 1.01
    assert ax.get_xlim()[0] == pytest.approx(5e-4)
    markers = [(line.get_xdata()[0], line.get_ydata()[0]) for line in ax.get_lines() if line.get_marker() == "o"]
    expected = [(p["far"], p["tar"]) for r in results for p in r.summary["tar_at_far"] if p["tar"] is not None]
    assert markers == expected and len(markers) == 6  # FAR 1e-4 has no TAR on 3000 impostor pairs
    assert sum(text.get_text().endswith("%") for text in ax.texts) == 6


def test_markdown_protocol_says_how_it_was_measured(results):
    results[0].summary.update(fold_scheme="stratified", subject={
        "face": "central", "strict": False, "images": 25, "missed": 7,
        "missed_images": [f"img{i}.jpg" for i in range(7)], "fallback": "centred"})
    lines = markdown_protocol(results).splitlines()
    assert lines[0] == ("- MobileFaceNet: 10 stratified folds (each holds the list's same/different mix); "
                        "subject: the face nearest the photo's centre (--face central); no face detected in 7 of 25 "
                        "photos (img0.jpg, img1.jpg, img2.jpg, img3.jpg, img4.jpg, ...; aligned with the template "
                        "centred on the photo)")
    assert lines[1] == ("- SE-LResNet100E-IR: 10 contiguous folds in list order (as insightface .bin sets are split); "
                        "faces: the images as given (no detector)")
