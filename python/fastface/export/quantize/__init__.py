"""fastface's post-training int8 quantizer for ncnn models, with an accuracy gate.

    result = quantize("models/dlib_resnet_v1.param", images="photos/")   # -> dlib_resnet_v1.int8.*

Steps: read the .param/.bin (:mod:`.ncnn_format`); cut calibration inputs from the user's
photos (:mod:`.data`: aligned faces for recognizers, whole photos for detectors); collect
activation statistics of every Convolution / ConvolutionDepthWise / InnerProduct input with the
float model (:mod:`.calibrate`); per-output-channel weight scales; try each calibration method
(KL, ACIQ, percentile) with all layers int8, then with the first layer, then the first and last
layers kept float; check every candidate through fastface's core on held-out faces (every 5th
face or photo is never used for calibration) and keep the one that passes the gate with the
fewest float layers (then the best figures); when none passes, each layer's sensitivity (the held-out figure
with only that layer in int8) is measured and the most sensitive 1, 2, 4, ... layers (at most
half) are kept float until the gate passes. BatchNorm layers right after a quantizable layer are
folded into it first, as ncnnoptimize does. Verification accuracy on pair lists (``pairs``) is
measured for the chosen model. A model that fails the gate is not written unless ``force``.
"""
from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ..errors import ExportError
from . import calibrate, data
from . import ncnn_format as nf
from .data import CalibrationError
from .gate import DETECTOR_GATE, RECOGNIZER_GATE, detector_figures, pair_accuracy, recognizer_figures

__all__ = ["quantize", "QuantizeResult", "CalibrationError", "AlreadyQuantized", "int8_paths", "MIN_FACES"]

#: Calibration faces (recognizers) or photos (detectors) required by default; held-out ones extra.
MIN_FACES = 200
MIN_PHOTOS = 40
HOLDOUT_EVERY = 5


class AlreadyQuantized(ExportError):
    """The model already has int8 layers."""


@dataclass
class QuantizeResult:
    param: Path
    bin: Path
    card_path: Path
    passed: bool
    written: bool
    method: str
    float_layers: list[dict]
    int8_layers: int
    gate: dict
    candidates: list[dict] = field(default_factory=list)
    seconds: float = 0.0


def int8_paths(param) -> tuple[Path, Path, Path]:
    """Where the int8 variant of ``model.param`` lives: ``model.int8.param/.bin/.json``."""
    from ..._variants import int8_param

    out = int8_param(param)
    return out, out.with_suffix(".bin"), out.with_suffix(".json")


def plan(model: nf.Model, floats: dict[str, nf.FloatLayer], stats: dict[str, calibrate.BlobStats], method: str,
         keep_float: set[str], protected_blobs: set[str], requantize: bool = True,
         winograd_6bit: bool = True) -> dict[str, nf.QuantizedLayer]:
    """The int8 layers for one calibration method, with ``keep_float`` left in float.

    ``winograd_6bit``: 3x3 stride-1 convolutions get 6-bit weights (scale 31/absmax), as ncnn's
    own quantizer does, because ncnn runs them with int8 Winograd F(4,3), whose int16 transformed
    weights would otherwise risk overflow. ``requantize``: a convolution whose only consumer is
    another int8 convolution writes int8 directly (ncnn's int8_scale_term + 100)."""
    out: dict[str, nf.QuantizedLayer] = {}
    for name, fl in floats.items():
        if name in keep_float:
            continue
        layer = fl.layer
        levels = 127
        if (winograd_6bit and layer.type == "Convolution" and layer.param(1, 0) == 3
                and layer.param(11, layer.param(1, 0)) == 3 and layer.param(3, 1) == 1
                and layer.param(13, layer.param(3, 1)) == 1 and layer.param(2, 1) == 1
                and layer.param(12, layer.param(2, 1)) == 1):
            levels = 31
        out[name] = nf.QuantizedLayer(fl, float(stats[layer.bottoms[0]].scale(method)),
                                      nf.weight_scales(fl.weight, levels))
    if requantize:
        for name, q in out.items():
            layer = q.float_layer.layer
            if layer.type == "InnerProduct" or len(layer.tops) != 1 or layer.tops[0] in protected_blobs:
                continue
            users = model.consumers(layer.tops[0])
            if (len(users) == 1 and users[0].name in out and users[0].type != "InnerProduct"
                    and len(users[0].bottoms) == 1):
                q.output_scale = out[users[0].name].input_scale
    return out


def _unquantizable(model: nf.Model) -> list[dict]:
    return [{"layer": layer.name, "type": layer.type, "reason": "no int8 kernel in fastface's quantizer for this type"}
            for layer in model.layers if layer.span[1] > layer.span[0] and layer.type not in nf.QUANTIZABLE]


def _check_not_int8(model: nf.Model) -> None:
    for layer in model.layers:
        if layer.type in nf.QUANTIZABLE and layer.param(8, 0):
            raise AlreadyQuantized(f"the model is already int8: layer {layer.name!r} has int8_scale_term="
                                   f"{layer.param(8)}")


def quantize(param, images, *, out=None, task: str | None = None, card=None, methods: Sequence[str] = calibrate.METHODS,
             min_faces: int | None = None, max_faces: int = 1000, pairs: Sequence = (), pair_images=None,
             force: bool = False, requantize: bool = True, search: bool = True, threads: int = 1,
             log: Callable[[str], None] | None = None) -> QuantizeResult:
    """Quantize the ncnn model ``param`` (+ ``.bin``, card ``.json`` beside it) with photos from
    ``images``; write ``out`` (default :func:`int8_paths`) if the gate passes or ``force``.
    ``search=False`` skips the per-layer sensitivity search (for timing runs)."""
    started = time.perf_counter()
    say = log or (lambda message: None)
    try:
        import ncnn  # noqa: F401  (calibration reads the float model's activations with it)
    except ImportError:
        raise ImportError("fastface quantize needs the ncnn Python package: pip install 'fastface[quantize]'") from None
    param = Path(param)
    bin_path = param.with_suffix(".bin")
    for path in (param, bin_path):
        if not path.is_file():
            raise FileNotFoundError(f"no ncnn model file at {path}")
    card_path = Path(card) if isinstance(card, (str, os.PathLike)) else param.with_suffix(".json")
    card_dict = dict(card) if isinstance(card, dict) else json.loads(card_path.read_text()) if card_path.is_file() else None
    if card_dict is None:
        raise FileNotFoundError(f"no model card at {card_path}: the quantizer needs its input description")
    task = task or card_dict.get("task") or ("detection" if card_dict.get("kind") else "recognition")
    if task not in ("recognition", "detection"):
        raise ValueError(f"task must be 'recognition' or 'detection', got {task!r}")
    methods = list(methods)
    for method in methods:
        if method not in calibrate.METHODS:
            raise ValueError(f"unknown calibration method {method!r}; known: {', '.join(calibrate.METHODS)}")

    try:
        model = nf.load(param, bin_path)
    except nf.FormatError as exc:
        if "already" in str(exc):
            raise AlreadyQuantized(str(exc)) from None
        raise ExportError(f"{param}: {exc}") from None
    _check_not_int8(model)
    try:
        floats = {layer.name: nf.float_weights(model, layer) for layer in model.layers
                  if layer.type in nf.QUANTIZABLE and not layer.param(19, 0)}
    except nf.FormatError as exc:
        raise (AlreadyQuantized if "already" in str(exc) else ExportError)(f"{param}: {exc}") from None
    if not floats:
        raise ExportError(f"{param} has no Convolution, ConvolutionDepthWise or InnerProduct layer to quantize")
    out_param, out_bin, out_card = int8_paths(out if out is not None else param)
    if out is not None and Path(out).suffix != ".param":
        out_param, out_bin, out_card = int8_paths(Path(out) / param.name)

    # calibration and held-out inputs
    if task == "recognition":
        from ... import Detector, Embedder

        fp32 = Embedder(param, card=card_dict, threads=threads)
        crops = data.face_crops(images, fp32, Detector(threads=threads), limit=max_faces, log=say)
        holdout = np.arange(len(crops)) % HOLDOUT_EVERY == 0
        calib, held = crops[~holdout], crops[holdout]
        need = MIN_FACES if min_faces is None else min_faces
        if len(calib) < need:
            raise CalibrationError(f"{len(crops)} faces found in {images}: {len(calib)} for calibration (every "
                                   f"{HOLDOUT_EVERY}th is held out for the gate), at least {need} needed")
        c = fp32.card

        def inputs():
            for crop in calib:
                yield data.normalized(crop, c["channel_order"], c["mean"], c["scale"])

        input_name, protected = c["input"], {c["output"]}
    else:
        from ...detect import DETECTOR_DEFAULTS, Detector

        settings = dict(DETECTOR_DEFAULTS[card_dict.get("kind", "retinaface")])
        settings.update(card_dict)
        photos = data.photos(images, limit=max_faces)
        holdout = np.arange(len(photos)) % HOLDOUT_EVERY == 0
        calib = [p for p, h in zip(photos, holdout) if not h]
        held = [p for p, h in zip(photos, holdout) if h]
        need = MIN_PHOTOS if min_faces is None else min_faces
        if len(calib) < need:
            raise CalibrationError(f"{len(photos)} photos in {images}: {len(calib)} for calibration (every "
                                   f"{HOLDOUT_EVERY}th is held out for the gate), at least {need} needed")
        fixed = tuple(int(v) for v in settings["input_size"])

        def inputs():
            for photo in calib:
                yield data.normalized(data.detector_canvas(photo, 640, fixed), str(settings["channel_order"]).upper(),
                                      settings["mean"], settings["scale"])

        input_name, protected = str(settings["input"]), set(settings["outputs"])
        fp32 = Detector(param, card=card_dict, threads=threads)

    model, floats, folded = nf.fold_batchnorm(model, floats, protected)
    if folded:
        say(f"folded {len(folded)} BatchNorm layers into the layers before them")
    unquantizable = _unquantizable(model)
    if unquantizable:
        say("staying float (type not quantizable): " + ", ".join(f"{u['layer']} ({u['type']})" for u in unquantizable))
    folded_floats = {name: floats[name] for name in folded}
    blobs = [fl.layer.bottoms[0] for fl in floats.values()]
    say(f"collecting activation statistics of {len(set(blobs))} blobs over {len(calib)} inputs")
    stats = calibrate.collect(param, bin_path, input_name, inputs, blobs)

    ordered = [fl.layer.name for fl in floats.values()]
    first, last = ordered[0], ordered[-1]
    keep_options = [set(), {first}, {first, last}]
    candidates = []
    best = None
    with tempfile.TemporaryDirectory(prefix="fastface-int8-") as tmp:
        trial_param, trial_bin = Path(tmp) / "trial.param", Path(tmp) / "trial.bin"

        def trial(method, keep, record=True):
            layers = plan(model, floats, stats, method, keep, protected, requantize)
            nf.write_int8(model, layers, trial_param, trial_bin, folded_floats)
            if task == "recognition":
                figures = recognizer_figures(fp32, Embedder(trial_param, card=card_dict, threads=threads), held)
                rank = figures["cosine_mean"]
            else:
                figures = detector_figures(fp32, Detector(trial_param, card=card_dict, threads=threads), held)
                rank = figures["iou_mean"] - figures["missed"] - figures["extra"]
            if record:
                candidates.append({"method": method, "float": sorted(keep), **figures})
                say(f"  {method:<10} float={sorted(keep) or '-'}: " + ", ".join(f"{k}={v}" for k, v in figures.items()))
            return (figures["passed"], -len(keep), rank), layers, figures

        for keep in keep_options:
            for method in methods:
                key, layers, figures = trial(method, keep)
                if best is None or key > best[0]:
                    best = (key, method, keep, layers, figures)
            if best[0][0]:
                break  # the fewest float layers that pass
        if search and not best[0][0] and len(ordered) > 3:
            # Per-layer sensitivity: the drop when only that layer is int8; then keep the most
            # sensitive layers float, doubling their number, until the gate passes (at most half).
            method = max(candidates[:len(methods)], key=lambda c: c.get("cosine_mean", c.get("iou_mean", 0)))["method"]
            say(f"no candidate passed; measuring each layer's sensitivity ({method})")
            sensitivity = {name: trial(method, set(ordered) - {name}, record=False)[0][2] for name in ordered}
            worst = sorted(ordered, key=lambda name: sensitivity[name])
            count = 1
            while count <= len(ordered) // 2:
                keep = set(worst[:count])
                key, layers, figures = trial(method, keep)
                if key[0]:
                    best = (key, method, keep, layers, figures)
                    break
                count *= 2
        _, method, keep, layers, figures = best
        gate = dict(figures)
        gate["heldout"] = len(held)
        if task == "recognition" and pairs:
            nf.write_int8(model, layers, trial_param, trial_bin, folded_floats)
            int8 = Embedder(trial_param, card=card_dict, threads=threads)
            acc = pair_accuracy(fp32, int8, pairs, pair_images, threads=threads, log=say)
            gate["pairs"] = acc
            ok = acc["best_drop_points"] <= RECOGNIZER_GATE["max_accuracy_drop_points"] and \
                acc["card_threshold_drop_points"] <= RECOGNIZER_GATE["max_accuracy_drop_points"]
            gate["passed"] = bool(gate["passed"] and ok)
    passed = bool(gate["passed"])
    float_layers = unquantizable + [{"layer": name, "type": floats[name].layer.type,
                                     "reason": "kept float: the gate failed with it in int8 (first/last layer, or most sensitive)"} for name in sorted(keep)]
    result = QuantizeResult(out_param, out_bin, out_card, passed, False, method, float_layers, len(layers), gate,
                            candidates)
    if not passed and not force:
        result.seconds = time.perf_counter() - started
        return result
    out_param.parent.mkdir(parents=True, exist_ok=True)
    staged = [path.with_name(path.name + ".tmp") for path in (out_param, out_bin, out_card)]
    new_card = dict(card_dict)
    new_card.update({
        "name": f"{card_dict.get('name', param.stem)}.int8",
        "precision": "int8",
        "weights": out_bin.name,
        "quantization": {
            "tool": "fastface.export.quantize",
            "source": param.name,
            "method": method,
            "calibration": {"images": str(images), "inputs": len(calib),
                            "kind": "aligned faces" if task == "recognition" else "whole photos at run size"},
            "int8_layers": len(layers),
            "requantized_layers": sum(q.output_scale is not None for q in layers.values()),
            "folded_batchnorm": sorted(folded.values()),
            "float_layers": float_layers,
            "gate": gate,
            "gate_rule": RECOGNIZER_GATE if task == "recognition" else DETECTOR_GATE,
            "passed": passed,
            "forced": not passed,
        },
    })
    for key in ("parity", "converter", "files"):  # they describe the float files
        new_card.pop(key, None)
    try:
        nf.write_int8(model, layers, staged[0], staged[1], folded_floats)
        staged[2].write_text(json.dumps(new_card, indent=2) + "\n")
        for tmp_path, final in zip(staged, (out_param, out_bin, out_card)):
            os.replace(tmp_path, final)
    finally:
        for tmp_path in staged:
            tmp_path.unlink(missing_ok=True)
    result.written = True
    result.seconds = time.perf_counter() - started
    return result
