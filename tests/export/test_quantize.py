"""fastface quantize: ncnn's int8 format, the calibration methods, the gate and bad input.

One small calibration set (the deepface sample's faces) keeps these to seconds; the accuracy
measurement on LFW View 1 is bench/quantize_accuracy.py's job (figures in the README)."""
import json
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest

from shared_data import DEEPFACE, DLIB_RESNET, MOBILEFACENET, MOBILEFACENET_CARD, require

pytest.importorskip("ncnn", reason="the quantizer reads activations with the ncnn Python package")
cv2 = pytest.importorskip("cv2")

import fastface  # noqa: E402
from fastface.export.quantize import AlreadyQuantized, CalibrationError, calibrate, int8_paths, quantize  # noqa: E402
from fastface.export.quantize import gate as gate_module  # noqa: E402
from fastface.export.quantize import ncnn_format as nf  # noqa: E402
from fastface.hub.bundled import bundled_model  # noqa: E402

needs_faces = require(DEEPFACE)


def _copy_model(name, folder):
    param = bundled_model(name)
    for suffix in (".param", ".bin", ".json"):
        shutil.copy(param.with_suffix(suffix), folder / (name + suffix))
    return folder / (name + ".param")


@pytest.fixture(scope="module")
def dlib_int8(tmp_path_factory):
    folder = tmp_path_factory.mktemp("int8")
    param = _copy_model("dlib_resnet_v1", folder)
    if not DEEPFACE.exists():
        pytest.skip(f"shared test data not found: {DEEPFACE}")
    result = quantize(param, DEEPFACE, methods=["kl"], min_faces=10)
    return param, result


# -- format ---------------------------------------------------------------------------------

def test_round_half_away_and_clip_like_ncnn():
    x = np.array([0.5, -0.5, 1.5, 2.5, -2.5, 126.6, 300.0, -300.0, 0.49])
    assert nf.round_away(x).tolist() == [1, -1, 2, 3, -3, 127, 127, -127, 0]


def test_weight_scales_per_row_and_zero_rows():
    w = np.array([[0.5, -1.0], [0.0, 0.0], [2.0, 0.1]], np.float32)
    assert np.allclose(nf.weight_scales(w), [127.0, 0.0, 63.5])
    assert np.allclose(nf.weight_scales(w, 31), [31.0, 0.0, 15.5])


def test_param_round_trip_keeps_arrays_and_strings():
    text = ("7767517\n2 2\nInput in 0 1 data 0=8 1=8 2=3\n"
            'Reshape r 1 1 data out 0=-1 6="1,*(0c,0h)" -23303=2,1,2\n')
    model = nf.parse_param(text)
    assert nf.write_param(nf.parse_param(nf.write_param(model))) == nf.write_param(model)
    assert model.layers[1].params == [(0, "-1"), (6, '"1,*(0c,0h)"'), (-23303, "2,1,2")]


def test_bin_spans_cover_the_file():
    param = bundled_model("dlib_resnet_v1")
    model = nf.load(param, param.with_suffix(".bin"))
    assert model.layers[-1].span[1] == len(model.weights)
    conv = next(layer for layer in model.layers if layer.type == "Convolution")
    fl = nf.float_weights(model, conv)
    assert fl.weight.shape == (32, 3 * 7 * 7) and fl.bias is not None


def test_truncated_bin_is_refused(tmp_path):
    param = _copy_model("yunet_s", tmp_path)
    data = param.with_suffix(".bin").read_bytes()
    param.with_suffix(".bin").write_bytes(data[:len(data) // 2])
    with pytest.raises(nf.FormatError, match="truncated|do not match"):
        nf.load(param, param.with_suffix(".bin"))


def test_quantized_layer_bytes_follow_ncnns_layout():
    layer = nf.Layer("Convolution", "c", ["a"], ["b"], [(0, "2"), (1, "1"), (5, "1"), (6, "6")])
    fl = nf.FloatLayer(layer, np.arange(6, dtype=np.float32).reshape(2, 3) - 2, np.array([1, 2], np.float32), 2)
    q = nf.QuantizedLayer(fl, 10.0, nf.weight_scales(fl.weight), output_scale=5.0)
    raw = q.bin_bytes()
    assert struct.unpack_from("<I", raw)[0] == nf.TAG_INT8
    assert np.frombuffer(raw, np.int8, 6, 4).tolist() == [-127, -64, 0, 42, 85, 127]
    # 4 tag + 6 int8 + 2 pad, then bias (2), weight scales (2), input scale, output scale
    tail = np.frombuffer(raw, "<f4", offset=12)
    assert tail.tolist() == [1.0, 2.0, 63.5, 42.33333206176758, 10.0, 5.0]
    assert q.term() == 102


# -- calibration methods --------------------------------------------------------------------

def _stats(values):
    s = calibrate.BlobStats()
    values = np.asarray(values, np.float64)
    s.absmax, s.total, s.count = float(np.abs(values).max()), float(values.sum()), values.size
    nz = np.abs(values[values != 0])
    s.histogram += np.bincount(np.minimum((nz / s.absmax * calibrate.BINS).astype(int), calibrate.BINS - 1),
                               minlength=calibrate.BINS)
    s.deviation = float(np.abs(values - s.mean).sum())
    return s


def test_methods_clip_a_long_tail_but_not_a_uniform_range():
    rng = np.random.default_rng(0)
    laplace = _stats(np.concatenate([rng.laplace(0, 1, 200_000), [60.0]]))
    for method in calibrate.METHODS:
        assert laplace.threshold(method) < 0.5 * laplace.absmax, method
    assert laplace.threshold("aciq") == pytest.approx(9.89, rel=0.03)
    uniform = _stats(rng.uniform(-1, 1, 200_000))
    assert uniform.threshold("kl") > 0.9 and uniform.threshold("percentile") > 0.99
    with pytest.raises(ValueError, match="unknown calibration method"):
        uniform.threshold("minmax")


# -- the quantized model --------------------------------------------------------------------

@needs_faces
def test_int8_model_is_int8_and_close_to_fp32(dlib_int8):
    param, result = dlib_int8
    assert result.written and result.passed and result.method == "kl"
    assert result.param == param.with_name("dlib_resnet_v1.int8.param") and result.param.is_file()
    layers = nf.parse_param(result.param.read_text()).layers
    terms = [layer.param(8, 0) for layer in layers if layer.type in nf.QUANTIZABLE]
    assert len(terms) == result.int8_layers == 30 and all(t in (2, 102) for t in terms)
    assert any(t == 102 for t in terms)                    # conv -> conv requantized in int8
    assert result.bin.stat().st_size < 0.6 * param.with_suffix(".bin").stat().st_size
    card = json.loads(result.card_path.read_text())
    assert card["precision"] == "int8" and card["quantization"]["gate"]["cosine_mean"] >= 0.99
    assert card["quantization"]["passed"] and card["threshold"] == json.loads(param.with_suffix(".json").read_text())["threshold"]

    fp32 = fastface.Embedder(param)
    int8 = fastface.Embedder(param, precision="int8")
    crops = np.stack([cv2.resize(cv2.imread(str(DEEPFACE / f"img{i}.jpg")), (150, 150)) for i in (1, 3, 13)])
    a, b = fp32.embed(crops), int8.embed(crops)
    cos = np.sum(a * b, axis=1)
    assert np.all(cos > 0.98) and np.all(cos < 0.99999)   # close, yet computed differently


@needs_faces
def test_ncnn_python_runs_the_int8_model_like_the_core(dlib_int8):
    import ncnn

    param, result = dlib_int8
    crop = cv2.resize(cv2.imread(str(DEEPFACE / "img1.jpg")), (150, 150))
    card = json.loads(result.card_path.read_text())
    from fastface.export.quantize.data import normalized

    net = ncnn.Net()
    net.opt.num_threads = 1
    assert net.load_param(str(result.param)) == 0 and net.load_model(str(result.bin)) == 0
    ex = net.create_extractor()
    ex.input("data", ncnn.Mat(normalized(crop, "RGB", card["mean"], card["scale"])))
    out = np.array(ex.extract("embedding")[1]).ravel()
    core = fastface.Embedder(result.param).embed(crop[None], normalize=False)[0]
    # not bit-equal: the core normalizes the input in its own fused pass, and a last-bit
    # difference there flips an int8 rounding now and then
    assert float(np.dot(out, core) / np.linalg.norm(out) / np.linalg.norm(core)) > 0.999


@needs_faces
def test_already_int8_is_refused(dlib_int8):
    _, result = dlib_int8
    before = result.param.read_bytes()
    with pytest.raises(AlreadyQuantized, match="already"):
        quantize(result.param, DEEPFACE, min_faces=10)
    assert result.param.read_bytes() == before


@needs_faces
def test_a_failing_gate_writes_nothing_unless_forced(tmp_path, monkeypatch):
    param = _copy_model("dlib_resnet_v1", tmp_path)
    monkeypatch.setitem(gate_module.RECOGNIZER_GATE, "min_cosine_mean", 1.01)
    result = quantize(param, DEEPFACE, methods=["percentile"], min_faces=10, search=False)
    assert not result.passed and not result.written
    assert not any(p.exists() for p in int8_paths(param))
    assert [c["float"] for c in result.candidates] == [[], [result.candidates[1]["float"][0]],
                                                       result.candidates[2]["float"]]
    forced = quantize(param, DEEPFACE, methods=["percentile"], min_faces=10, force=True, search=False)
    card = json.loads(forced.card_path.read_text())
    assert forced.written and not card["quantization"]["passed"] and card["quantization"]["forced"]


@needs_faces
def test_sensitivity_search_keeps_the_sensitive_layer_float(tmp_path, monkeypatch):
    import tempfile

    import fastface.export.quantize as q

    param = _copy_model("dlib_resnet_v1", tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.setattr(tempfile, "TemporaryDirectory", lambda **kw: __import__("contextlib").nullcontext(str(work)))

    def figures(fp32, int8, held):
        # a stand-in gate: the model fails while convolution5 is int8, and loses a little per int8 layer
        layers = nf.parse_param((work / "trial.param").read_text()).layers
        int8 = {layer.name for layer in layers if layer.param(8, 0)}
        mean = 0.999 - 0.05 * ("convolution5" in int8) - 0.0001 * len(int8)
        return {"faces": len(held), "cosine_mean": mean, "cosine_worst": mean, "passed": mean >= 0.99}

    monkeypatch.setattr(q, "recognizer_figures", figures)
    result = quantize(param, DEEPFACE, methods=["percentile"], min_faces=10)
    assert result.passed and result.written
    assert [f["layer"] for f in result.float_layers] == ["convolution5"] and result.int8_layers == 29
    assert [c["float"] for c in result.candidates][-1] == ["convolution5"]


@needs_faces
def test_bad_calibration_folders(tmp_path):
    param = _copy_model("dlib_resnet_v1", tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CalibrationError, match="no images"):
        quantize(param, empty)
    with pytest.raises(CalibrationError, match="does not exist"):
        quantize(param, tmp_path / "missing")
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "a.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(CalibrationError, match="could be read"):
        quantize(param, junk)
    with pytest.raises(CalibrationError, match="at least 200 needed"):
        quantize(param, DEEPFACE)
    assert not any(p.exists() for p in int8_paths(param))


@require(MOBILEFACENET)
@needs_faces
def test_layers_without_int8_kernels_stay_float_and_are_listed(tmp_path):
    result = quantize(MOBILEFACENET / "mobilefacenet.param", DEEPFACE, card=MOBILEFACENET_CARD, out=tmp_path,
                      methods=["aciq"], min_faces=10, task="recognition", force=True, search=False)
    kinds = {f["type"] for f in result.float_layers}
    assert kinds >= {"PReLU"} and "BatchNorm" not in kinds       # BatchNorm folded, PReLU has no int8 kernel
    card = json.loads(result.card_path.read_text())
    assert len(card["quantization"]["folded_batchnorm"]) == 50
    layers = nf.parse_param(result.param.read_text()).layers
    assert not any(layer.type == "BatchNorm" for layer in layers)
    assert result.int8_layers >= 40 and result.param.parent == tmp_path
    assert result.gate["cosine_mean"] > 0.9


def test_batchnorm_folding_keeps_the_float_model():
    ncnn = pytest.importorskip("ncnn")
    rng = np.random.default_rng(3)
    weight = rng.normal(size=(4, 2 * 3 * 3)).astype(np.float32)
    slope, mean, var, beta = rng.uniform(0.5, 2, (4, 4)).astype(np.float32)
    text = ("7767517\n3 3\nInput in 0 1 data 0=6 1=6 2=2\n"
            "Convolution conv 1 1 data c 0=4 1=3 5=0 6=72\nBatchNorm bn 1 1 c out 0=4 1=0.001\n")
    weights = struct.pack("<I", 0) + weight.tobytes() + np.concatenate([slope, mean, var, beta]).tobytes()
    model = nf.parse_param(text)
    model.weights = weights
    nf.measure_spans(model, weights)
    floats = {"conv": nf.float_weights(model, model.layers[1])}
    folded, new_floats, names = nf.fold_batchnorm(model, floats, {"out"})
    assert names == {"conv": "bn"} and [layer.type for layer in folded.layers] == ["Input", "Convolution"]
    assert folded.layers[1].tops == ["out"] and folded.layers[1].param(5) == 1 and folded.blob_count == 2
    x = rng.normal(size=(2, 6, 6)).astype(np.float32)

    def run(param_text, blob):
        net = ncnn.Net()
        net.load_param_mem(param_text)
        net.load_model_mem(blob)
        ex = net.create_extractor()
        ex.input("data", ncnn.Mat(x))
        return np.array(ex.extract("out")[1])

    bin_bytes = b"".join(nf.float_bytes(new_floats["conv"]) if layer.name == "conv" else b"" for layer in folded.layers)
    np.testing.assert_allclose(run(nf.write_param(folded), bin_bytes), run(text, weights), rtol=1e-4, atol=1e-4)


def test_precision_arguments(tmp_path):
    param = _copy_model("dlib_resnet_v1", tmp_path)
    with pytest.raises(FileNotFoundError, match="fastface quantize"):
        fastface.Embedder(param, precision="int8")
    with pytest.raises(ValueError, match="precision"):
        fastface.Embedder(param, precision="int4")
    with pytest.raises(ValueError, match="contradicts"):
        fastface.Embedder(param, fp16=True, precision="int8")
    with pytest.raises(ValueError, match="precision"):
        fastface.Detector(precision="fp16")


@needs_faces
def test_cli_quantizes_a_detector(tmp_path, capsys):
    from fastface.cli import main

    param = _copy_model("yunet_s", tmp_path)
    assert main(["quantize", str(param), "--images", str(tmp_path / "nowhere")]) == 2
    assert "does not exist" in capsys.readouterr().err
    code = main(["quantize", str(param), "--images", str(DEEPFACE), "--min-faces", "10", "--method", "percentile",
                 "--quiet", "--force", "--no-search"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0 and report["written"] and report["int8_layers"] == 53
    # the detector's gate: int8 faces against fp32 faces on the held-out photos
    assert report["gate"]["faces_fp32"] > 0 and report["gate"]["iou_mean"] > 0.85
    detector = fastface.Detector(param, precision="int8")
    assert str(detector.param) == report["written"][0]
    assert detector.detect(cv2.imread(str(DEEPFACE / "img1.jpg")))


@require(DLIB_RESNET / "dlib_face_recognition_resnet_model_v1.dat")
@needs_faces
def test_export_int8_writes_both_variants(tmp_path, monkeypatch, capsys):
    import fastface.export.quantize as q
    from fastface.cli import main

    dat = DLIB_RESNET / "dlib_face_recognition_resnet_model_v1.dat"
    assert main(["export", str(dat), "--out", str(tmp_path), "--int8", "--quiet"]) == 2
    assert "--int8 needs --calibration" in capsys.readouterr().err
    monkeypatch.setattr(q, "MIN_FACES", 10)  # the deepface sample has ~35 faces
    assert main(["export", str(dat), "--out", str(tmp_path), "--int8", "--calibration", str(DEEPFACE), "--quiet"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["int8"]["written"] and report["int8"]["passed"]
    names = sorted(Path(p).name for p in report["written"])
    assert names == sorted(f"dlib_face_recognition_resnet_model_v1{s}" for s in
                           (".param", ".bin", ".json", ".int8.param", ".int8.bin", ".int8.json"))
    assert fastface.Embedder(tmp_path / "dlib_face_recognition_resnet_model_v1.param", precision="int8").dim == 128


def test_a_layer_type_ncnn_does_not_know_is_a_clear_error(tmp_path):
    param = _copy_model("yunet_s", tmp_path)
    text = param.read_text().splitlines()
    text[3] = text[3].replace("Convolution", "MyCustomOp", 1)
    param.write_text("\n".join(text) + "\n")
    with pytest.raises(nf.FormatError, match="MyCustomOp"):
        nf.load(param, param.with_suffix(".bin"))
    from fastface.export.errors import ExportError

    with pytest.raises(ExportError, match="MyCustomOp"):
        quantize(param, DEEPFACE, min_faces=10)
    assert not any(p.exists() for p in int8_paths(param))
