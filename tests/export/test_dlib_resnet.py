"""dlib's face-recognition ResNet: fastface's reader of dlib's format, the structure check, the
conversion and its parity gate, bad files, and the bundled default (models/dlib_resnet_v1.*).
Needs no torch or pnnx; dlib (dlib-bin) only as a reference where installed."""
import dataclasses
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import fastface
from fastface.export import dlib_format as fmt
from fastface.export import dlib_resnet as resnet
from fastface.export.dlib_export import BUNDLED_NAME, PUBLISHED_SHA256, export_dlib, regenerate_bundled
from fastface.export.dlib_format import DlibFormatError
from shared_data import DEEPFACE, DLIB_RESNET, ORL, require

DAT = DLIB_RESNET / "dlib_face_recognition_resnet_model_v1.dat"
MODELS = Path(__file__).resolve().parents[2] / "models"
needs_dat = require(DAT)


def cli(*args):
    return subprocess.run([sys.executable, "-m", "fastface", *map(str, args)], capture_output=True, text=True)


def orl_chips(count: int) -> np.ndarray:
    """Real faces as 150x150 BGR: the first ORL photos, resized (as the gate reads a folder)."""
    from fastface.export.faces import load_faces

    return load_faces(ORL, 150, count)[0]


def encode_int(value: int) -> bytes:
    """dlib's integer encoding (serialize.h pack_int): size byte (| 0x80 if negative), magnitude LE."""
    magnitude = abs(value)
    body = magnitude.to_bytes(max(1, (magnitude.bit_length() + 7) // 8), "little")
    return bytes([len(body) | (0x80 if value < 0 else 0)]) + body


def encode_float(value: float) -> bytes:
    """dlib's float_details of a float32: 24-bit mantissa * 2**exponent, zero low bytes shifted off."""
    if value == 0:
        return encode_int(0) + encode_int(0)
    frac, exp = math.frexp(float(np.float32(value)))
    mantissa, exponent = int(frac * (1 << 24)), exp - 24
    while mantissa & 0xFF == 0:
        mantissa, exponent = mantissa >> 8, exponent + 8
    return encode_int(mantissa) + encode_int(exponent)


def parse_float(data: bytes) -> float:
    return fmt.Stream(data).float()


@pytest.fixture(scope="module")
def net():
    return resnet.load(DAT)


def test_dlib_integer_and_float_encodings():
    for value in (0, 1, -1, 255, 256, -70_000, 2**62):
        stream = fmt.Stream(encode_int(value))
        assert stream.int() == value and stream.pos == len(stream.data)
    for value in (0.0, 1.0, -2.5, 0.04, 122.782, 1e-30, -3.4e38):
        assert parse_float(encode_float(value)) == float(np.float32(value))
    # As in dlib's network file: the metric loss's margin 0.04, mantissa 0xa3d70a * 2**-28.
    assert parse_float(bytes.fromhex("030ad7a3811c")) == float(np.float32(0.04))
    assert parse_float(encode_int(0) + encode_int(32000)) == float("inf")
    assert np.isnan(parse_float(encode_int(0) + encode_int(32002)))
    with pytest.raises(DlibFormatError, match="control byte"):
        fmt.Stream(b"\x31\x00").int()  # ASCII digits are not dlib integers


@needs_dat
def test_reads_dlib_network_and_its_exact_structure(net):
    assert net.loss == "loss_metric_2" and len(net.layers) == 130
    assert resnet.input_mean(net) == [122.782, 117.001, 104.298]
    kinds = [layer.kind for layer in net.layers]
    assert kinds.count("con") == 29 and kinds.count("affine") == 29 and kinds.count("add_prev") == 14
    assert net.layers[0].detail == {"num_outputs": 128, "num_inputs": 256, "bias": False}
    stem = net.layers[-1].detail
    assert (stem["num_filters"], stem["nr"], stem["stride_y"], stem["padding_y"]) == (32, 7, 2, 0)
    params, macs = resnet.complexity(net)
    assert params == 5_607_488 and 2.5e8 < macs < 3e8
    # dlib's shape rules: stride-2 layers without padding, so the down blocks meet 3x3 vs 4x4 and 1x1 vs 2x2.
    adds = [(out, before) for layer, out, before in resnet._shapes(net) if layer.kind == "add_prev"]
    assert adds[-1][0] == (256, 2, 2) and adds[-4][0] == (256, 4, 4)


@needs_dat
def test_structure_check_names_what_differs(net):
    strided = net.layers[11]
    assert strided.kind == "con" and strided.detail["stride_y"] == 2
    wrong = dataclasses.replace(strided, detail={**strided.detail, "stride_y": 1, "stride_x": 1})
    other = dataclasses.replace(net, layers=[*net.layers[:11], wrong, *net.layers[12:]])
    with pytest.raises(DlibFormatError, match=r"layer 12 .*stride 1x1.*has con\(256, 3x3, stride 2x2, padding 0x0\)"):
        resnet.verify_structure(other)
    with pytest.raises(DlibFormatError, match="129 layers"):
        resnet.verify_structure(dataclasses.replace(net, layers=net.layers[1:]))
    with pytest.raises(DlibFormatError, match="input_rgb_image_sized<150>"):
        resnet.verify_structure(dataclasses.replace(net, input_detail={**net.input_detail, "nr": 200}))


@needs_dat
@require(ORL)
def test_numpy_reference_is_dlib():
    dlib = pytest.importorskip("dlib", reason="dlib-bin not installed")
    model = dlib.face_recognition_model_v1(str(DAT))
    net = resnet.load(DAT)
    chip = np.ascontiguousarray(orl_chips(1)[0][..., ::-1])
    ours = resnet.reference_forward(net, chip)
    theirs = np.asarray(model.compute_face_descriptor(chip))
    assert ours @ theirs / np.linalg.norm(ours) / np.linalg.norm(theirs) > 1 - 1e-7


@pytest.fixture(scope="module")
def dat_bytes():
    if not DAT.is_file():
        pytest.skip(f"shared test data not found: {DAT}")
    return DAT.read_bytes()


def _bad(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data)
    return path


@needs_dat
@pytest.mark.parametrize("damage, message", [
    (lambda d: d[:len(d) // 2], "ends early"),
    (lambda d: d[:300], "ends early"),
    (lambda d: d + b"\0", "unexpected bytes after"),
    (lambda d: d[:4] + bytes([d[4] ^ 0x01]) + d[5:], "loss 'moss_metric_2'"),  # a bit flipped in the loss's name
    (lambda d: d[:0x121] + bytes([d[0x121] ^ 0x04]) + d[0x122:], "not dlib's face-recognition ResNet"),
    (lambda d: b"\x89PNG\r\n\x1a\n" + d[8:1000], "control byte"),
    (lambda d: encode_int(1) + encode_int(10) + b"loss_mmod_", "MMOD"),
])
def test_damaged_or_foreign_files_are_refused(tmp_path, dat_bytes, damage, message):
    path = _bad(tmp_path, "model.dat", damage(dat_bytes))
    with pytest.raises(DlibFormatError, match=message):
        export_dlib(path, tmp_path / "out", reference="numpy")
    assert not (tmp_path / "out").exists()


@needs_dat
def test_a_flipped_bit_in_the_weights_is_caught_by_the_digest(tmp_path, dat_bytes):
    at = len(dat_bytes) // 2
    path = _bad(tmp_path, "model.dat", dat_bytes[:at] + bytes([dat_bytes[at] ^ 0x01]) + dat_bytes[at + 1:])
    with pytest.raises(DlibFormatError, match=f"not the published weights.*{PUBLISHED_SHA256}"):
        export_dlib(path, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@require(DLIB_RESNET / "shape_predictor_5_face_landmarks.dat")
def test_cli_refuses_the_shape_predictor_with_exit_2(tmp_path):
    out = cli("export", DLIB_RESNET / "shape_predictor_5_face_landmarks.dat", "--out", tmp_path / "out")
    assert out.returncode == 2, out.stderr
    assert "shape predictor with 5 landmarks" in out.stderr and not (tmp_path / "out").exists()


@needs_dat
@require(ORL)
def test_export_without_dlib_gates_against_the_numpy_forward(tmp_path):
    result = export_dlib(DAT, tmp_path, "dlib", faces=orl_chips(2), reference="numpy")
    assert result.parity.passed and result.parity.min_cosine > 0.99999
    card = json.loads(result.card_path.read_text())
    assert card["parity"]["reference"].startswith("fastface numpy forward")
    assert card["mean"] == [122.782, 117.001, 104.298] and card["scale"] == 1 / 256 and card["size"] == [150, 150]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dlib.bin", "dlib.json", "dlib.param"]
    model = fastface.Embedder(result.param)
    assert model.dim == 128 and model.input_size == (150, 150)


# --- the bundled default ---------------------------------------------------------------------

def test_bundled_files_and_licence_are_in_the_repository():
    card = json.loads((MODELS / f"{BUNDLED_NAME}.json").read_text())
    assert "CC0" in (MODELS / f"LICENSE.{BUNDLED_NAME}").read_text()
    assert card["precision"] == "fp16" and card["parity"]["passed"] and card["source"]["sha256"] == PUBLISHED_SHA256
    # Calibrated on LFW's View 1 (both files), the detector-landmark fallback's template kept.
    assert 0 < card["threshold"] < 1 and card["threshold_calibration"]["pairs"] == "pairsDevTrain.txt + pairsDevTest.txt"
    assert card["threshold_calibration"]["pair_count"] == 3200 and 0 < card["threshold_calibration"]["far"] < 0.05
    assert len(card["template"]) == 5 and "YuNet" in card["template_fit"]
    assert card["alignment"]["method"] == "dlib_chip" and len(card["alignment"]["template"]) == 5
    for suffix in ("param", "bin"):
        assert card["files"][suffix]["bytes"] == (MODELS / f"{BUNDLED_NAME}.{suffix}").stat().st_size


def test_embedder_without_arguments_is_the_bundled_dlib_resnet():
    model = fastface.Embedder()
    assert model.card["name"] == BUNDLED_NAME and model.dim == 128 and model.input_size == (150, 150)
    assert (Path(fastface.hub.bundled_dir()) / f"LICENSE.{BUNDLED_NAME}").is_file()
    out = model.embed(np.full((1, 150, 150, 3), 128, np.uint8))
    assert out.shape == (1, 128) and abs(float(np.linalg.norm(out)) - 1) < 1e-5


@needs_dat
@require(ORL)
def test_bundled_model_embeds_like_dlib():
    dlib = pytest.importorskip("dlib", reason="dlib-bin not installed")
    reference = dlib.face_recognition_model_v1(str(DAT))
    chips = orl_chips(3)
    ours = fastface.Embedder().embed(chips)
    for chip, row in zip(chips, ours):
        theirs = np.asarray(reference.compute_face_descriptor(np.ascontiguousarray(chip[..., ::-1])))
        assert row @ theirs / np.linalg.norm(theirs) > 0.9999


@needs_dat
@require(ORL)
def test_regeneration_reproduces_the_committed_model(tmp_path):
    result = regenerate_bundled(DLIB_RESNET, tmp_path, faces=ORL)
    assert result.parity.passed
    for suffix in (".param", ".bin"):
        assert (tmp_path / f"{BUNDLED_NAME}{suffix}").read_bytes() == (MODELS / f"{BUNDLED_NAME}{suffix}").read_bytes()
    assert (tmp_path / f"LICENSE.{BUNDLED_NAME}").read_bytes() == (MODELS / f"LICENSE.{BUNDLED_NAME}").read_bytes()
    made, committed = (json.loads(p.read_text()) for p in (result.card_path, MODELS / f"{BUNDLED_NAME}.json"))
    # The gate's figures depend on the reference (dlib or numpy) and the CPU; everything else is fixed.
    for card in (made, committed):
        card.pop("parity"), card["converter"].pop("fastface")
    assert made == committed


def test_face_analyzer_without_arguments_uses_the_bundled_models():
    try:
        detector = fastface.Detector()
    except (TypeError, FileNotFoundError) as exc:
        pytest.skip(f"no bundled detector in this build: {exc}")
    analyzer = fastface.FaceAnalyzer()
    assert analyzer.embedder.card["name"] == BUNDLED_NAME and type(analyzer.detector) is type(detector)


def test_compare_lists_the_bundled_recognizer_with_its_weights():
    from fastface.eval.compare import bundled_models

    found = {p.stem: p for p in bundled_models()}
    assert BUNDLED_NAME in found and found[BUNDLED_NAME].with_suffix(".bin").is_file()


@require(ORL)
def test_eval_calibrate_writes_the_threshold_into_the_card(tmp_path):
    import cv2

    for suffix in (".param", ".bin", ".json"):
        shutil.copy(MODELS / f"{BUNDLED_NAME}{suffix}", tmp_path / f"m{suffix}")
    card_before = json.loads((tmp_path / "m.json").read_text())
    rows = ["file_a,file_b,same"]
    for subject in range(1, 6):
        for shot in (1, 2):
            cv2.imwrite(str(tmp_path / f"s{subject}_{shot}.png"),
                        cv2.resize(cv2.imread(str(ORL / f"s{subject}" / f"{shot}.pgm")), (150, 150)))
        rows.append(f"s{subject}_1.png,s{subject}_2.png,1")
        rows.append(f"s{subject}_1.png,s{subject % 3 + 1}_2.png,0")
    (tmp_path / "pairs.csv").write_text("\n".join(rows) + "\n")
    out = cli("eval", "--model", tmp_path / "m.param", "--pairs", tmp_path / "pairs.csv", "--calibrate")
    assert out.returncode == 0, out.stderr
    card = json.loads((tmp_path / "m.json").read_text())
    assert card["threshold"] != card_before["threshold"] and "wrote threshold" in out.stdout
    assert card["threshold_calibration"]["pair_count"] == 10 and card["threshold_calibration"]["pairs"] == "pairs.csv"
    assert card["threshold_calibration"]["accuracy_at_threshold"] >= 0.8  # unaligned, resized ORL photos
    assert {k: v for k, v in card.items() if not k.startswith("threshold")} == \
        {k: v for k, v in card_before.items() if not k.startswith("threshold")}


@require(DEEPFACE)
def test_verify_needs_no_flags():
    try:
        fastface.Detector()
    except (TypeError, FileNotFoundError) as exc:
        pytest.skip(f"no bundled detector in this build: {exc}")
    out = cli("verify", DEEPFACE / "img1.jpg", DEEPFACE / "img2.jpg", "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["same"] is True


@require(ORL)
@require(DLIB_RESNET / "shape_predictor_5_face_landmarks.dat")
def test_template_fit_maps_into_dlibs_own_chip():
    """The fit tool's image->chip transform is dlib's: warping with it reproduces get_face_chip
    (a small face, where dlib interpolates bilinearly without its pyramid)."""
    pytest.importorskip("dlib", reason="dlib-bin not installed")
    import cv2
    from fastface.export.dlib_template import DlibPipeline, chip_transform, read_rgb

    pipeline = DlibPipeline(DLIB_RESNET)
    rgb = read_rgb(ORL / "s1" / "1.pgm")
    _, shape = pipeline.largest(rgb)
    chip = pipeline.chip(rgb, shape)
    ours = cv2.warpAffine(rgb, chip_transform(pipeline.details(shape)), (150, 150), flags=cv2.INTER_LINEAR)
    assert np.abs(ours.astype(float) - chip).mean() < 1.0
