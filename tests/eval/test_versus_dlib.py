"""The constants issue 24's measurement script derives from dlib's source, checked against dlib-bin."""
import importlib.util
from pathlib import Path

import numpy as np
import pytest

from shared_data import DLIB_RESNET, ORL, require

SCRIPT = Path(__file__).resolve().parents[2] / "python" / "fastface" / "eval" / "versus_dlib.py"


@pytest.fixture(scope="module")
def vd():
    spec = importlib.util.spec_from_file_location("versus_dlib", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_chip_template_is_dlibs_mean_face_scaled(vd):
    # 150 * (0.25 + m) / 1.5 = 100 m + 25 in chip units; pixel centres sit half a pixel lower
    assert np.allclose(vd.dlib_chip_template(pixel_centres=False), 100 * vd.DLIB_MEAN_FACE_5 + 25)
    assert np.allclose(vd.DLIB_CHIP_TEMPLATE, 100 * vd.DLIB_MEAN_FACE_5 + 24.5)
    assert np.allclose(vd.DLIB_CHIP_TEMPLATE[0], [110.4567, 45.8498], atol=1e-4)


def test_raw_box_mapping_is_the_identity(vd):
    box = np.array([10.0, 20.0, 110.0, 140.0])
    raw = {"kind": "box", "dx": 0.0, "dy": 0.0, "sx": 1.0, "sy": 1.0}
    assert np.allclose(vd.map_box(raw, box, None), box)
    square = vd.map_box({**raw, "square": True}, box, None)
    assert np.isclose(square[2] - square[0], square[3] - square[1])


@require(ORL)
@require(DLIB_RESNET / "shape_predictor_5_face_landmarks.dat")
def test_rebuilt_chip_mapping_is_dlibs(vd):
    pytest.importorskip("dlib", reason="dlib-bin not installed")
    import dlib
    from fastface.export.dlib_template import DlibPipeline, chip_transform, read_rgb

    pipeline = DlibPipeline(DLIB_RESNET)
    for name in ("s1/1.pgm", "s7/3.pgm"):
        _, shape = pipeline.largest(read_rgb(ORL / name))
        reference = chip_transform(dlib.get_face_chip_details(shape, 150, 0.25))
        assert np.allclose(vd.dlib_chip_mapping(vd.shape_points(shape)), reference, atol=1e-9)


@require(ORL)
def test_orl_pair_list_is_deterministic_and_balanced(vd, tmp_path):
    first = vd.orl_pair_csv(ORL, tmp_path / "a.csv").read_text()
    assert first == vd.orl_pair_csv(ORL, tmp_path / "b.csv").read_text()
    rows = first.splitlines()[1:]
    assert sum(r.endswith(",1") for r in rows) == sum(r.endswith(",0") for r in rows) == 40 * 45
