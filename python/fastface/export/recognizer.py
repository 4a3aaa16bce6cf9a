"""Face-recognition models -> ncnn ``.param``/``.bin`` + model card, through pnnx, gated by
embedding parity with the source framework."""
from __future__ import annotations

import os
from pathlib import Path
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
from .faces import SYNTHETIC_COUNT, gate_images, load_faces
from .parity import ENGINE_MODES, PARITY_BOUNDS, check_recognizer, onnx_reference, torch_reference
from .pnnx_tool import OPTLEVEL, find_pnnx, macs_from_pnnx_param
from .sources import (
    TRAIN_NORMALIZATION,
    OnnxSource,
    TorchSource,
    load_checkpoint,
    load_onnx,
    module_source,
    onnx_input_size,
)

ARCHITECTURE_ONLY = "none (architecture only)"


def _template(width: int, height: int) -> list[list[float]]:
    from .. import _core

    return [[round(float(v), 4) for v in p] for p in _core.arcface_template(width, height)]


def _resolve(source, backbone, embedding_size, input_size):
    """TorchSource or OnnxSource from whatever was passed."""
    try:
        import torch
    except ImportError:
        torch = None
    if isinstance(source, (TorchSource, OnnxSource)):
        return source
    if torch is not None and isinstance(source, torch.nn.Module):
        return module_source(source, backbone, input_size or 112)
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if path.suffix.lower() == ".onnx":
            return load_onnx(path)
        if torch is None:
            raise ExportError("exporting checkpoints needs torch: pip install 'fastface[export]'")
        return load_checkpoint(path, backbone, embedding_size, input_size)
    raise ExportError(f"cannot export a {type(source).__name__}: pass a checkpoint, state dict or ONNX path, "
                      "or a torch.nn.Module")


def export_recognizer(source, out, name: str | None = None, *, backbone: str | None = None,
                      embedding_size: int | None = None, input_size: int | None = None, fp16: bool = False,
                      faces=None, num_faces: int | None = None, allow_parity_failure: bool = False,
                      architecture_only: bool = False, channel_order: str | None = None, mean=None, scale=None,
                      optlevel: int = OPTLEVEL, allow_other_weights: bool = False,
                      log: Callable[[str], None] | None = None) -> ExportResult:
    """Convert a face-embedding model to ncnn in ``out`` and prove the conversion.

    ``source``: a fastface training folder or checkpoint, an arcface_torch-layout state dict
    (with ``backbone=``; ``embedding_size``/``input_size`` are read from the weights when
    possible), an ``.onnx`` file, a torch module (e.g. :func:`random_backbone`) or a loaded
    source. Writes ``<name>.param``, ``<name>.bin`` and the card ``<name>.json``.

    The gate embeds ``faces`` (a folder of aligned crops, resized to the input size if needed;
    or a uint8 BGR (N, H, W, 3) array; default: a deterministic synthetic set of
    ``num_faces`` or 8) with the source framework and with :class:`fastface.Embedder` on the
    converted files. Any face below the bound (cosine 0.9999 for fp32 weights, 0.999 for fp16)
    or a NaN/inf raises :class:`ParityError` and installs nothing, unless
    ``allow_parity_failure`` (the card then records the failure). ``architecture_only`` keeps
    the ``.param`` and card but no ``.bin`` (for timing with zero weights).

    A ``.dat`` source is dlib's face-recognition ResNet, converted without pnnx or torch by
    :func:`fastface.export.dlib_export.export_dlib` (its sizes and normalization come from the
    file; ``allow_other_weights`` accepts weights other than dlib's published ones).
    """
    if isinstance(source, (str, os.PathLike)) and Path(source).suffix.lower() == ".dat":
        given = {k: v for k, v in (("backbone", backbone), ("embedding_size", embedding_size),
                                   ("input_size", input_size), ("channel_order", channel_order), ("mean", mean),
                                   ("scale", scale), ("architecture_only", architecture_only)) if v}
        if given:
            raise ExportError(f"{sorted(given)} do not apply to a dlib network: its structure, sizes and "
                              "normalization are read from the file")
        from .dlib_export import export_dlib

        return export_dlib(source, out, name, fp16=fp16, faces=faces, num_faces=num_faces,
                           allow_parity_failure=allow_parity_failure, allow_other_weights=allow_other_weights, log=log)
    clock = Clock(log)
    precision = "fp16" if fp16 else "fp32"
    find_pnnx()  # fail before any heavy work
    src = _resolve(source, backbone, embedding_size, input_size)
    is_onnx = isinstance(src, OnnxSource)
    if name is None:
        name = src.path.stem if is_onnx else (src.backbone or "model")
    check_name(name)
    if is_onnx:
        width, height = onnx_input_size(src, input_size)
        norm = {"channel_order": "RGB", "mean": 127.5, "scale": 1 / 127.5, **(src.normalization or {})}
    else:
        width, height = src.input_size
        norm = dict(TRAIN_NORMALIZATION)
    for key, value in (("channel_order", channel_order), ("mean", mean), ("scale", scale)):
        if value is not None:
            norm[key] = value.upper() if key == "channel_order" else value
    clock.lap("load", f"loaded {src.info.get('kind')} {src.info.get('path', name)}")

    with Staging(out, name) as staging:
        shape = [1, 3, height, width]
        converted = convert_onnx(src.path, shape, staging, fp16, optlevel) if is_onnx else \
            trace_and_convert(src.model, shape, staging, fp16, optlevel)
        inputs, outputs = converted_blobs(converted)
        if len(outputs) != 1:
            raise PnnxError(f"the converted model has {len(outputs)} outputs ({outputs}); an embedder has one",
                            converted.log)
        clock.lap("convert", f"pnnx converted {name} ({precision} weights, optlevel {optlevel})")

        images, names, face_set = gate_images(faces, (width, height), num_faces, SYNTHETIC_COUNT, load_faces, "faces")
        reference = onnx_reference(src.session) if is_onnx else torch_reference(src.model)
        card = {"name": name, "task": "recognition", "input": inputs[0], "output": outputs[0], "size": [width, height],
                "channel_order": norm["channel_order"], "mean": norm["mean"], "scale": norm["scale"], "dim": 0,
                "normalized": False, "template": _template(width, height), "precision": precision}
        report = check_recognizer(reference, converted.param, converted.bin, card, images, names, precision,
                                  face_set, source="onnxruntime" if is_onnx else "torch")
        card["dim"] = report.dim
        clock.lap("gate", f"parity gate {'passed' if report.passed else 'FAILED'}: min cosine {report.min_cosine:.8f}")
        if not report.passed and not allow_parity_failure:
            raise ParityError(report)

        if is_onnx:
            params, macs = src.params, macs_from_pnnx_param(converted.pnnx_param.read_text())
        else:
            params, macs = _complexity(src.model, width, height, converted)
        files = {".param": converted.param, ".bin": None if architecture_only else converted.bin}
        card.update({"weights": ARCHITECTURE_ONLY if architecture_only else f"{name}.bin",
                     "backbone": getattr(src, "backbone", None), "params": params, "macs": macs,
                     **provenance(src.info, fp16, optlevel),
                     "parity": report.to_json(), "files": file_hashes(files)})
        if architecture_only:
            card["parity"]["note"] = "measured with the seeded weights the architecture was exported with"
        card_path = staging.install(files, card)
    clock.lap("install")
    return ExportResult(staging.final(".param"), None if architecture_only else staging.final(".bin"),
                        card_path, card, report, clock.seconds)


def _complexity(model, width: int, height: int, converted):
    """(params, MACs): the training package's counter for square inputs, else pnnx's graph."""
    params = int(sum(p.numel() for p in model.parameters()))
    if width == height:
        try:
            from ..train.backbones import complexity

            return params, int(complexity(model, width).macs)
        except Exception:  # noqa: BLE001 - arbitrary modules: fall back to the converted graph
            pass
    return params, macs_from_pnnx_param(converted.pnnx_param.read_text())


__all__ = ["ARCHITECTURE_ONLY", "ENGINE_MODES", "PARITY_BOUNDS", "export_recognizer"]
