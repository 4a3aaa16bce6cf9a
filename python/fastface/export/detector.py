"""Face detectors -> ncnn + a detector card that :class:`fastface.Detector` reads, gated by
parity of every raw output tensor with the source framework.

YuNet comes from ONNX (libfacedetection.train's ``yunet_s_dynamic.onnx``, any input size, or
``yunet_n_640_640.onnx``, fixed); any detector given
as a torch module (e.g. a PyTorch RetinaFace) goes through TorchScript, with the decoder's
settings passed as card fields.
"""
from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Callable


from ._common import (
    Clock,
    ExportResult,
    Staging,
    check_name,
    convert_onnx,
    converted_blobs,
    file_hashes,
    provenance,
    trace_and_convert,
)
from .errors import ExportError, ParityError, PnnxError
from .faces import gate_images, load_photos
from .parity import check_detector, merge_reports, onnx_reference, torch_reference
from .pnnx_tool import OPTLEVEL, find_pnnx, macs_from_pnnx_param
from .sources import OnnxSource, load_onnx, module_source

#: YuNet's outputs in the order fastface's decoder takes them.
YUNET_OUTPUTS = [f"{head}_{stride}" for head in ("cls", "obj", "bbox", "kps") for stride in (8, 16, 32)]

#: Exporter-side settings per kind, on top of the engine's defaults for that kind
#: (``fastface.detect.DETECTOR_DEFAULTS``: normalization, input size). ``output_order`` names
#: the source outputs in the order the decoder takes them (default: the source's order).
DETECTOR_KINDS = {"yunet": {"output_order": YUNET_OUTPUTS}}


def kind_defaults(kind: str) -> dict:
    """Card fields a detector of ``kind`` gets unless the caller says otherwise."""
    from ..detect import DETECTOR_DEFAULTS

    base = {k: v for k, v in DETECTOR_DEFAULTS.get(kind, {}).items() if k in ("channel_order", "mean", "scale")}
    size = DETECTOR_DEFAULTS.get(kind, {}).get("input_size")
    if size and all(size):
        base["input_size"] = list(size)
    return {**base, **DETECTOR_KINDS.get(kind, {})}


#: pnnx's two input shapes (width, height) for a detector with a dynamic input size (YuNet's
#: ``yunet_*_dynamic.onnx``): the dimensions that differ stay dynamic in the ncnn graph.
DYNAMIC_SHAPES = [(640, 640), (320, 320)]
#: Sizes such a graph is gated at: the traced one, and one it was not traced at.
DYNAMIC_GATE_SIZES = [(640, 640), (320, 256)]

#: Synthetic images in a detector's gate when none are given.
SYNTHETIC_IMAGES = 2


def export_detector(source, out, name: str | None = None, *, kind: str | None = None, card: dict | None = None,
                    input_size=None, output_names: Sequence[str] | None = None, fp16: bool = False, images=None,
                    num_images: int | None = None, allow_parity_failure: bool = False, optlevel: int = OPTLEVEL,
                    log: Callable[[str], None] | None = None) -> ExportResult:
    """Convert a detector to ncnn in ``out`` with a card ``{"kind", "input", "outputs",
    "input_size", "channel_order", "mean", "scale", ...}``.

    ``source``: an ``.onnx`` path or a torch module. ``kind`` picks the decoder ("yunet",
    "retinaface", or a new one described fully by ``card``). ``card`` adds or overrides card
    fields (normalization, ``input_size`` [w, h], ``output_order`` = source output names in the
    decoder's order, anchors, ...). ``output_names`` names a torch module's outputs in return
    order (ONNX files name their own). ``images``: photos (folder or list, letterboxed to the
    input size) or a uint8 BGR (N, H, W, 3) array for the gate; default: synthetic ones. An ONNX
    source whose height and width are symbolic converts, unless ``input_size`` is given, with
    pnnx's two shapes ``DYNAMIC_SHAPES`` into a graph of any size (card ``input_size`` [0, 0]),
    gated at ``DYNAMIC_GATE_SIZES``.
    """
    clock = Clock(log)
    precision = "fp16" if fp16 else "fp32"
    from ..detect import DETECTOR_DEFAULTS

    fields = dict(card or {})
    kind = kind or fields.get("kind")
    if not kind:
        raise ExportError(f"say which decoder the detector is for: kind= one of {sorted(DETECTOR_DEFAULTS)} "
                          "(or a new kind described by card=)")
    defaults = kind_defaults(kind)
    default_size = defaults.pop("input_size", None)
    fixed = [k for k in ("input", "outputs") if k in fields]
    if fixed:
        raise ExportError(f"card fields {fixed} come from the conversion (pnnx names the blobs); "
                          "reorder outputs with card={'output_order': [source output names]}")
    fields = {**defaults, **fields, "kind": kind}
    find_pnnx()
    try:
        import torch
    except ImportError:
        torch = None
    dynamic = False
    if isinstance(source, (str, os.PathLike)) and Path(source).suffix.lower() == ".onnx":
        src = load_onnx(source)
        names_in_order = src.output_names
        shape = src.input_shape
        if input_size is None and "input_size" not in fields and len(shape) == 4:
            if all(isinstance(d, int) and d > 0 for d in shape[2:]):
                input_size = [int(shape[3]), int(shape[2])]
            else:  # height and width are symbolic: keep them so in the ncnn graph
                dynamic, input_size = True, list(DYNAMIC_SHAPES[0])
    elif torch is not None and isinstance(source, torch.nn.Module):
        src = module_source(source, None, (1, 1))
        names_in_order = list(output_names) if output_names else None
    elif isinstance(source, OnnxSource):
        src, names_in_order = source, source.output_names
    else:
        raise ExportError(f"cannot export a detector from {type(source).__name__}: pass an .onnx path or a torch module")
    size = input_size if input_size is not None else fields.get("input_size", default_size)
    if size is None:
        raise ExportError("say at which fixed size to convert the detector: input_size=[width, height]")
    width, height = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    fields["input_size"] = [0, 0] if dynamic else [width, height]  # [0, 0]: any size (multiple of 32)
    is_onnx = isinstance(src, OnnxSource)
    name = check_name(name or (src.path.stem if is_onnx else kind))
    clock.lap("load")

    with Staging(out, name) as staging:
        shape = [1, 3, height, width]
        shape2 = [1, 3, DYNAMIC_SHAPES[1][1], DYNAMIC_SHAPES[1][0]] if dynamic else None
        converted = convert_onnx(src.path, shape, staging, fp16, optlevel, shape2) if is_onnx else \
            trace_and_convert(src.model, shape, staging, fp16, optlevel)
        inputs, outputs = converted_blobs(converted)
        count = len(outputs)
        by_index = {int(m.group(1)): b for b in outputs if (m := re.fullmatch(r"out(\d+)", b))}
        if sorted(by_index) != list(range(count)):
            raise PnnxError(f"unexpected output blob names {outputs} (pnnx names them out0..outN)", converted.log)
        names_in_order = names_in_order or [f"output{i}" for i in range(count)]
        if len(names_in_order) != count:
            raise ExportError(f"{len(names_in_order)} output names given, the model has {count} outputs")
        order = list(fields.pop("output_order", None) or names_in_order)
        unknown = [n for n in order if n not in names_in_order]
        if unknown or len(order) != count:
            raise ExportError(f"output_order {order} does not name the model's outputs {names_in_order}")
        blobs = [by_index[names_in_order.index(n)] for n in order]
        clock.lap("convert", f"pnnx converted {name} ({precision} weights, optlevel {optlevel})")

        out_card = {"name": name, "task": "detection", "kind": kind, "input": inputs[0], "outputs": blobs,
                    "source_outputs": order, **{k: v for k, v in fields.items() if k not in ("kind",)},
                    "precision": precision}
        out_card.setdefault("channel_order", "RGB")
        out_card.setdefault("mean", 0.0)
        out_card.setdefault("scale", 1.0)
        source_reference = onnx_reference(src.session) if is_onnx else torch_reference(src.model)
        source_index = [names_in_order.index(n) for n in order]

        def reference(x):
            values = source_reference(x)
            return [values[i] for i in source_index]

        reports = []
        # A dynamic graph is gated at a third size besides the traced one: any size must work.
        for gate_size in (DYNAMIC_GATE_SIZES if dynamic else [(width, height)]):
            pixels, image_names, image_set = gate_images(images, gate_size, num_images, SYNTHETIC_IMAGES,
                                                         load_photos, "photos")
            if dynamic:
                image_names = [f"{n}@{gate_size[0]}x{gate_size[1]}" for n in image_names]
                image_set = f"{image_set} at {gate_size[0]}x{gate_size[1]}"
            gate_card = {**out_card, "input_size": list(gate_size)}
            reports.append(check_detector(reference, converted.param, converted.bin, gate_card, blobs, pixels,
                                          image_names, precision, image_set,
                                          source="onnxruntime" if is_onnx else "torch", output_names=order))
        report = merge_reports(reports)
        clock.lap("gate", f"parity gate {'passed' if report.passed else 'FAILED'}: min cosine {report.min_cosine:.8f}")
        if not report.passed and not allow_parity_failure:
            raise ParityError(report)
        _check_decoder(converted, out_card)

        params = src.params if is_onnx else int(sum(p.numel() for p in src.model.parameters()))
        files = {".param": converted.param, ".bin": converted.bin}
        out_card.update({"params": params, **_macs(converted, src, shape, staging, optlevel, dynamic),
                         **provenance(src.info, fp16, optlevel), "parity": report.to_json(),
                         "files": file_hashes(files)})
        card_path = staging.install(files, out_card)
    clock.lap("install")
    return ExportResult(staging.final(".param"), staging.final(".bin"), card_path, out_card, report, clock.seconds)


def _macs(converted, src, shape, staging: Staging, optlevel: int, dynamic: bool) -> dict:
    """The card's MAC count. pnnx leaves a dynamic graph's sizes unknown, so such a graph is
    counted on a second, fixed-size conversion at the traced size (``macs_input_size``)."""
    if not dynamic:
        return {"macs": macs_from_pnnx_param(converted.pnnx_param.read_text())}
    folder = staging.dir / "fixed-size"
    folder.mkdir()
    fixed = convert_onnx(src.path, shape, SimpleNamespace(dir=folder), False, optlevel)
    return {"macs": macs_from_pnnx_param(fixed.pnnx_param.read_text()), "macs_input_size": [shape[3], shape[2]]}


def _check_decoder(converted, card: dict) -> None:
    """Where fastface's core has a decoder for this kind, it must accept the converted model."""
    from .. import Detector
    from ..detect import DETECTOR_DEFAULTS

    if card["kind"] not in DETECTOR_DEFAULTS:
        return
    try:
        Detector(converted.param, converted.bin, kind=card["kind"], card=card)
    except Exception as exc:  # noqa: BLE001 - ModelError, ValueError
        raise ExportError(f"fastface's {card['kind']} decoder rejects the converted model: {exc}") from None


__all__ = ["DETECTOR_KINDS", "YUNET_OUTPUTS", "export_detector"]
