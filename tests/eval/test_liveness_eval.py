"""The liveness evidence script: box relations and their inverse, and the parity table on the
authors' samples (the Caffe reference detector where this OpenCV reads Caffe)."""
import numpy as np
import pytest

from shared_data import DATA, LIVENESS_SAMPLES, MINIFASNET, require


def test_box_relation_and_map_box_are_inverse():
    from fastface.eval.liveness import box_relation, iou, map_box

    ours, ref = np.array([100.0, 50, 200, 250]), np.array([90.0, 80, 205, 255])
    relation = box_relation(ours, ref)
    assert relation["sw"] == pytest.approx(1.15) and relation["sh"] == pytest.approx(0.875)
    np.testing.assert_allclose(map_box(ours, relation), ref, atol=1e-4)
    assert iou(ours, ours) == 1.0 and iou(ours, ours + 1000) == 0.0


@require(MINIFASNET)
@require(LIVENESS_SAMPLES)
def test_parity_on_the_samples():
    pytest.importorskip("torch", reason="the reference runs the authors' PyTorch models")
    import fastface
    from fastface.eval.liveness import ReferenceModels, format_report, load_reference_detector, parity

    live, as_given = fastface.Liveness(), fastface.Liveness(box_map="reference")
    ref_detector, why = load_reference_detector(MINIFASNET / "reference-detector")
    assert (ref_detector is None) == (why is not None)
    table = parity(DATA, live, as_given, fastface.Detector(), ReferenceModels(MINIFASNET), ref_detector,
                   folders=("liveness-samples",))
    rows = table["rows"]
    assert [r["photo"] for r in rows] == [f"liveness-samples/image_{n}.jpg" for n in ("F1", "F2", "T1")]
    for r in rows:
        assert r["crop_model_diff"] < 1e-4 and r["fastface_unmapped_live"] == r["torch_same_box_live"]
        assert r["fastface_live"] == r["photo"].endswith("T1.jpg")
        if ref_detector is not None:  # OpenCV 4: the whole reference pipeline agrees
            assert r["reference_live"] == r["fastface_live"] and r["iou"] > 0.5
    report = format_report({"opencv": "x", "reference_detector": why or "caffe", "rows": rows,
                            "crop_and_model": {}, "bona_fide": {}})
    assert "image_T1.jpg" in report and "live" in report
