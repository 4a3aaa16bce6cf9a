"""``fastface export dlib_face_recognition_resnet_model_v1.dat``: dlib's face-recognition ResNet
-> ncnn ``.param``/``.bin`` + card, read and converted without dlib, proven by the parity gate
against dlib itself (``dlib-bin``) or, without it, against fastface's numpy forward of the
parsed network (:func:`fastface.export.dlib_resnet.reference_forward`)."""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Callable

import numpy as np

from . import dlib_resnet as resnet
from ._common import Clock, ExportResult, Staging, check_name, file_hashes
from .dlib_format import DlibFormatError
from .errors import ParityError
from .faces import SYNTHETIC_COUNT, gate_images, load_faces
from .parity import check_recognizer

#: sha256 of dlib's published ``dlib_face_recognition_resnet_model_v1.dat`` (dlib-models,
#: PyPI face-recognition-models 0.3.0). Weights are not self-checking, so a flipped bit in
#: them would go unnoticed; other weights in the same architecture need ``allow_other_weights``.
PUBLISHED_SHA256 = "55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30"

#: fastface's 5 landmarks (eye centres, nose tip, mouth corners; image left to right) in dlib's
#: 150x150 chip (``get_face_chip_details(shape, 150, 0.25)``, as face_recognition cuts it),
#: fitted on real faces by ``fastface.export.dlib_template`` (see ``TEMPLATE_FIT``).
CHIP_TEMPLATE = [[45.3743, 46.6245], [100.0365, 45.5986], [72.3172, 77.0119], [51.8855, 99.8604],
                 [97.9481, 98.8298]]
TEMPLATE_FIT = ("mean over 412 faces (27 deepface-sample photos, 385 ORL photos; all where both detectors found the "
                "face) of OpenCV YuNet's landmarks (FaceDetectorYN, face_detection_yunet_2023mar.onnx) mapped into "
                "dlib's own chip of the face (frontal HOG detector, shape_predictor_5_face_landmarks, "
                "get_face_chip_details(size=150, padding=0.25)); per-point spread 2.4-4.3 px; "
                "python -m fastface.export.dlib_template")
#: dlib's mean-face points for its 5-point shape (dlib/image_transforms/interpolation.h,
#: get_face_chip_details), in [0, 1] of the face.
DLIB_MEAN_FACE_5 = [[0.8595674595992, 0.2134981538014], [0.6460604764104, 0.2289674387677],
                    [0.1205750620789, 0.2137274526848], [0.3340850613712, 0.2290642403242],
                    [0.4901123135679, 0.6277975316475]]
CHIP_PADDING = 0.25
#: How the network's crops are cut (fastface.align.FaceAligner): as it was trained, dlib's chip
#: of dlib's 5-point shape, predicted in a box placed from the detector's box.
ALIGNMENT = {
    "method": "dlib_chip",
    "template": [[round((CHIP_PADDING + v) / (1 + 2 * CHIP_PADDING) * resnet.INPUT_SIZE, 6) for v in point]
                 for point in DLIB_MEAN_FACE_5],
    "padding": CHIP_PADDING,
    "box": {"centre": [-0.085, -0.0458], "size": [2.4039, 2.3854]},
    "box_fit": ("least squares from the bundled YuNet-s's landmarks (native resolution) to dlib's HOG boxes "
                "(get_frontal_face_detector, upsampled once; IoU >= 0.5) on LFW View 1 pairsDevTrain's photos; "
                "chosen over YuNet's box, scaled or squared, by 10-fold accuracy on pairsDevTrain "
                "(python python/fastface/eval/versus_dlib.py)"),
    "min_face": 20,
    "max_disagreement": 0.5,
}
#: The same tool's check on those faces: fastface's crop (YuNet landmarks warped to the template)
#: against dlib's get_face_chip, and the cosine between the two crops' embeddings.
TEMPLATE_CHECK = {"faces": 412, "mean_abs_pixel_diff": 17.7, "embedding_cosine_mean": 0.993,
                  "embedding_cosine_min": 0.920}


def dlib_reference(model_path, mean) -> tuple[Callable[[np.ndarray], list[np.ndarray]], str] | None:
    """dlib's own forward through dlib-bin, or None when dlib is not installed."""
    try:
        import dlib
    except ImportError:
        return None
    model = dlib.face_recognition_model_v1(str(model_path))

    def run(x: np.ndarray) -> list[np.ndarray]:
        return [np.stack([np.asarray(model.compute_face_descriptor(chip), np.float32) for chip in _chips(x, mean)])]

    return run, f"dlib {dlib.__version__}"


def numpy_reference(net) -> tuple[Callable[[np.ndarray], list[np.ndarray]], str]:
    def run(x: np.ndarray) -> list[np.ndarray]:
        return [np.stack([resnet.reference_forward(net, chip) for chip in _chips(x, resnet.input_mean(net))])]

    return run, "fastface numpy forward of the parsed dlib network (float64)"


def _chips(x: np.ndarray, mean) -> np.ndarray:
    """The uint8 RGB chips back from the gate's preprocessed (N, 3, H, W) batch (exact: the
    inputs were uint8, so the rounding undoes ``(pixel - mean) / 256``)."""
    mean = np.asarray(mean, np.float32)[:, None, None]
    return np.ascontiguousarray(np.clip(np.rint(x * 256 + mean), 0, 255).astype(np.uint8).transpose(0, 2, 3, 1))


def export_dlib(source, out, name: str | None = None, *, fp16: bool = False, faces=None,
                num_faces: int | None = None, allow_parity_failure: bool = False, allow_other_weights: bool = False,
                reference: str = "auto", threshold: dict | None = None,
                log: Callable[[str], None] | None = None) -> ExportResult:
    """Convert ``dlib_face_recognition_resnet_model_v1.dat`` to ``out/<name>.param/.bin/.json``.

    The file is parsed and its structure checked layer by layer (anything else raises
    :class:`DlibFormatError`, before anything is written); the ncnn graph is written from it
    directly. The gate compares the engine with dlib (``reference="dlib"``, needs dlib-bin) or
    the numpy forward (``"numpy"``); ``"auto"`` takes dlib when installed. ``threshold``
    (a dict with ``value`` and how it was calibrated) goes into the card.
    """
    clock = Clock(log)
    precision = "fp16" if fp16 else "fp32"
    path = Path(source)
    data_hash = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None
    net = resnet.load(path)
    if data_hash != PUBLISHED_SHA256 and not allow_other_weights:
        raise DlibFormatError(f"{path.name} has dlib's face-recognition ResNet structure but not the published "
                              f"weights (sha256 {data_hash}, published {PUBLISHED_SHA256}): a corrupt copy? "
                              "Pass allow_other_weights / --allow-other-weights for a network you trained yourself")
    name = check_name(name or path.stem)
    mean = resnet.input_mean(net)
    clock.lap("load", f"read {path.name}: dlib ResNet v1 structure verified ({len(net.layers)} layers)")

    if reference not in ("auto", "dlib", "numpy"):
        raise ValueError(f"reference must be auto, dlib or numpy, got {reference!r}")
    ref = None if reference == "numpy" else dlib_reference(path, mean)
    if ref is None:
        if reference == "dlib":
            raise DlibFormatError("reference='dlib' needs dlib: pip install dlib-bin")
        ref = numpy_reference(net)
    run_reference, reference_name = ref

    size = (resnet.INPUT_SIZE, resnet.INPUT_SIZE)
    with Staging(out, name) as staging:
        param, weights = staging.dir / "model.param", staging.dir / "model.bin"
        resnet.write_ncnn(net, param, weights, fp16=fp16)
        clock.lap("convert", f"wrote the ncnn graph ({precision} weights)")
        images, names, face_set = gate_images(faces, size, num_faces, SYNTHETIC_COUNT, load_faces, "faces")
        card = {"name": name, "task": "recognition", "input": resnet.INPUT_BLOB, "output": resnet.OUTPUT_BLOB,
                "size": list(size), "channel_order": "RGB", "mean": mean, "scale": resnet.SCALE,
                "dim": resnet.EMBEDDING_DIM, "normalized": False, "template": CHIP_TEMPLATE,
                "template_fit": TEMPLATE_FIT, "template_check": TEMPLATE_CHECK, "alignment": ALIGNMENT,
                "precision": precision}
        report = check_recognizer(run_reference, param, weights, card, images, names, precision, face_set,
                                  source=reference_name)
        clock.lap("gate", f"parity gate {'passed' if report.passed else 'FAILED'}: min cosine {report.min_cosine:.8f}")
        if not report.passed and not allow_parity_failure:
            raise ParityError(report)
        params, macs = resnet.complexity(net)
        if threshold:
            card["threshold"] = threshold["value"]
            card["threshold_calibration"] = {k: v for k, v in threshold.items() if k != "value"}
        card.update({"weights": f"{name}.bin", "backbone": "dlib-resnet-v1 (ResNet-29, 128-d metric loss)",
                     "params": params, "macs": macs, "licence": "CC0-1.0 (dlib's face recognition model, Davis King)",
                     "source": {"kind": "dlib", "path": path.name, "sha256": data_hash,
                                "loss": net.loss, **{k: round(v, 6) for k, v in net.loss_detail.items()}},
                     "converter": {"tool": "fastface dlib reader (direct ncnn writer)", "fp16_weights": bool(fp16),
                                   "fastface": __import__("fastface").__version__},
                     "parity": report.to_json(), "files": file_hashes({".param": param, ".bin": weights})})
        card_path = staging.install({".param": param, ".bin": weights}, card)
    clock.lap("install")
    return ExportResult(staging.final(".param"), staging.final(".bin"), card_path, card, report, clock.seconds)


__all__ = ["CHIP_TEMPLATE", "PUBLISHED_SHA256", "TEMPLATE_FIT", "export_dlib"]


# ---------------------------------------------------------------------------------------------
# The bundled default (models/dlib_resnet_v1.*): regenerated by models/regenerate_dlib.sh.

BUNDLED_NAME = "dlib_resnet_v1"
#: Gate faces of the bundled export: the first 16 ORL photos (real faces filling the frame).
BUNDLED_GATE_FACES = 16
#: The same-person threshold in the bundled card: ``fastface eval --calibrate`` on all 3,200 pairs
#: of LFW's development set (View 1, as LFW's protocol says: calibrate on View 1, report on
#: View 2) through the default pipeline; ``check`` is the same threshold on the shared
#: deepface-sample pairs, whose own best threshold (0.9231, 38 same-person pairs) the card does
#: not take: 42x fewer same-person pairs, and not the protocol's calibration set.
BUNDLED_THRESHOLD = {
    "value": 0.9084,
    "method": "cosine threshold with the highest accuracy on all pairs (the strictest among equals, placed halfway "
              "to the next score); the 10-fold protocol's mean threshold and accuracy alongside",
    "pairs": "pairsDevTrain.txt + pairsDevTest.txt",
    "data": "LFW View 1 (lfw-view1/pairsDevTrain.txt + pairsDevTest.txt): 3200 pairs (1600 same) of raw 250x250 photos",
    "pipeline": "fastface.FaceAnalyzer(): bundled YuNet-s at native resolution, dlib's 5-point shape predictor, "
                "dlib's chip geometry (the card's alignment); subject: the face nearest the centre",
    "pair_count": 3200, "same": 1600, "accuracy_at_threshold": 0.9866,
    "far": 0.0112, "frr": 0.0156, "ten_fold_accuracy": 0.9863,
    "ten_fold_threshold_mean": 0.9084,
    "check": {"pairs": "deepface-sample/pairs.csv", "pair_count": 300, "same": 38, "accuracy_at_threshold": 0.9867,
              "far": 0.0153, "frr": 0.0, "ten_fold_accuracy": 0.9967, "best_threshold": 0.9231},
}


def regenerate_bundled(dlib_dir, out, faces=None, log=None) -> ExportResult:
    """Write ``out/dlib_resnet_v1.{param,bin,json}`` (fp16 weights) and dlib's licence as
    ``out/LICENSE.dlib_resnet_v1`` from the folder holding dlib's files."""
    import shutil

    dlib_dir, out = Path(dlib_dir), Path(out)
    result = export_dlib(dlib_dir / "dlib_face_recognition_resnet_model_v1.dat", out, BUNDLED_NAME, fp16=True,
                         faces=faces, num_faces=BUNDLED_GATE_FACES if faces is not None else None,
                         threshold=BUNDLED_THRESHOLD, log=log)
    shutil.copyfile(dlib_dir / "LICENSE", out / f"LICENSE.{BUNDLED_NAME}")
    return result


def main(argv=None) -> int:
    import argparse
    import sys

    parser = argparse.ArgumentParser(description="regenerate the bundled dlib ResNet (models/dlib_resnet_v1.*)")
    parser.add_argument("dlib_dir", help="folder with dlib_face_recognition_resnet_model_v1.dat and LICENSE")
    parser.add_argument("out", help="output folder (the repository's models/)")
    parser.add_argument("--faces", help="gate faces (default: synthetic)")
    args = parser.parse_args(argv)
    result = regenerate_bundled(args.dlib_dir, args.out, args.faces, log=lambda m: print(m, file=sys.stderr))
    print(result.parity)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
