"""``fastface eval`` and ``fastface compare`` end to end, on the shared model and photos."""
import json
import subprocess
import sys

import pytest

from fastface.demo import write_demo_model
from shared_data import DEEPFACE, MOBILEFACENET, MOBILEFACENET_CARD, RETINAFACE_PARAM, require

def needs_shared(test):
    for marker in (require(MOBILEFACENET), require(DEEPFACE), require(RETINAFACE_PARAM)):
        test = marker(test)
    return test


def cli(*args):
    return subprocess.run([sys.executable, "-m", "fastface.cli", *map(str, args)], capture_output=True, text=True)


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
    assert (tmp_path / "report.md").is_file()


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
    assert set(report["accuracy"]) == {"mobilefacenet"}  # accuracy only where there are weights
    assert report["accuracy"]["mobilefacenet"]["accuracy_mean"] >= 0.99
    table = (tmp_path / "report" / "compare.md").read_text()
    assert "| demo | – |" in table and "| mobilefacenet | 99." in table


def test_compare_errors(tmp_path):
    out = cli("compare", tmp_path / "missing.param")
    assert out.returncode == 2 and "card" in out.stderr


def test_compare_without_arguments_times_the_bundled_architectures(tmp_path):
    out = cli("compare", "--seconds", "0.1", "--out", tmp_path)
    assert out.returncode == 0, out.stderr
    rows = {row["name"]: row for row in json.loads((tmp_path / "compare.json").read_text())["models"]}
    assert {"mobilefacenet", "se_iresnet100"} <= set(rows)
    assert rows["se_iresnet100"]["params"] > 60e6 and rows["mobilefacenet"]["params"] < 1.1e6
    assert not rows["se_iresnet100"]["has_weights"]  # architecture only: timed with zero weights
    assert rows["se_iresnet100"]["stages"]["embed"]["median_ms"] > rows["mobilefacenet"]["stages"]["embed"]["median_ms"]
