"""Liveness models -> ncnn + a liveness card that :class:`fastface.Liveness` reads, gated by the
softmax of every real crop agreeing with PyTorch within ``SOFTMAX_BOUND``.

The source is one of minivision's Silent-Face-Anti-Spoofing state dicts
(``2.7_80x80_MiniFASNetV2.pth``, ``4_0_0_80x80_MiniFASNetV1SE.pth``, Apache-2.0): the file name
gives the architecture and the crop scale. The gate's crops are cut from real photos exactly as
the authors' ``CropImage`` cuts them (:func:`reference_crop`), around the faces the bundled
detector finds.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ._common import Clock, ExportResult, Staging, check_name, converted_blobs, file_hashes, provenance, \
    trace_and_convert
from .errors import ExportError, ParityError
from .pnnx_tool import OPTLEVEL, find_pnnx, macs_from_pnnx_param

#: Largest |softmax difference| the converted model may show on any class of any gate crop.
SOFTMAX_BOUND = 1e-4
#: Averaged real-class probability at or above which the bundled pair calls a face live. 0.5
#: makes "real" the clear majority; the reference's argmax over three classes can also say real
#: between 1/3 and 0.5 (the evidence in the README counts how often the two differ).
THRESHOLD = 0.5
#: What the three classes mean (the authors' training labels).
CLASSES = ["spoof", "real", "spoof"]


def reference_box(src_w: int, src_h: int, box, scale: float) -> tuple[int, int, int, int]:
    """The authors' ``CropImage._get_new_box``: the (x, y, w, h) box scaled about its centre
    (the scale lowered until the crop fits the image), shifted back inside, as inclusive integer
    corners (left, top, right, bottom)."""
    x, y, w, h = box
    scale = min((src_h - 1) / h, (src_w - 1) / w, scale)
    nw, nh = w * scale, h * scale
    cx, cy = x + w / 2, y + h / 2
    left, top, right, bottom = cx - nw / 2, cy - nh / 2, cx + nw / 2, cy + nh / 2
    if left < 0:
        right, left = right - left, 0
    if top < 0:
        bottom, top = bottom - top, 0
    if right > src_w - 1:
        left, right = left - (right - src_w + 1), src_w - 1
    if bottom > src_h - 1:
        top, bottom = top - (bottom - src_h + 1), src_h - 1
    return int(left), int(top), int(right), int(bottom)


def reference_crop(image: np.ndarray, box, scale: float, size: int = 80) -> np.ndarray:
    """The crop the reference pipeline feeds the network: :func:`reference_box`, then OpenCV's
    bilinear resize to ``size`` x ``size`` (uint8 BGR)."""
    import cv2

    left, top, right, bottom = reference_box(image.shape[1], image.shape[0], box, scale)
    return cv2.resize(image[top:bottom + 1, left:right + 1], (size, size))


def box_xywh(face_box) -> tuple[int, int, int, int]:
    """A detector's (x1, y1, x2, y2) as the reference's integer (x, y, w, h): its detector's
    ``[int(left), int(top), int(right - left + 1), int(bottom - top + 1)]``."""
    x1, y1, x2, y2 = (float(v) for v in face_box)
    return int(x1), int(y1), int(x2 - x1 + 1), int(y2 - y1 + 1)


def gate_crops(photos, scale: float, size: int = 80, limit: int | None = None) -> tuple[np.ndarray, list[str]]:
    """Reference crops of the best face of each photo (a folder or list of folders/files) the
    bundled detector finds; photos without a face are skipped."""
    from .. import Detector
    from .._opencv import read_image
    from .faces import image_files

    files = []
    for source in ([photos] if isinstance(photos, (str, Path)) else photos):
        files += image_files(source) if Path(source).is_dir() else [Path(source)]
    detector = Detector(threads=1)
    crops, names = [], []
    for path in files:
        image = read_image(path)
        faces = detector.detect(image)
        if not faces:
            continue
        crops.append(reference_crop(image, box_xywh(faces[0].bbox), scale, size))
        names.append(path.name)
        if limit and len(crops) >= limit:
            break
    if not crops:
        raise ExportError(f"no face found in the gate photos {photos}")
    return np.stack(crops), names


@dataclass
class SoftmaxParity:
    """Per crop, the largest |softmax difference| between PyTorch and the ncnn engine."""
    bound: float
    input_set: str
    names: list[str]
    diffs: np.ndarray
    real_torch: np.ndarray
    real_engine: np.ndarray

    @property
    def passed(self) -> bool:
        return bool(np.all(np.isfinite(self.diffs)) and np.all(self.diffs <= self.bound))

    def to_json(self) -> dict:
        worst = np.argsort(-self.diffs, kind="stable")[:3]
        return {"passed": self.passed, "bound": self.bound, "measure": "max |softmax difference|",
                "inputs": len(self.names), "input_set": self.input_set, "reference": "torch",
                "max_abs_diff": float(self.diffs.max()), "mean_abs_diff": float(self.diffs.mean()),
                "worst": [{"input": self.names[i], "diff": float(self.diffs[i]),
                           "real_torch": round(float(self.real_torch[i]), 6)} for i in worst]}

    def __str__(self) -> str:
        return (f"{'PASSED' if self.passed else 'FAILED'}: max |softmax difference| {self.diffs.max():.3g} "
                f"(bound {self.bound}) over {len(self.names)} crops ({self.input_set})")


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def check_softmax(model, param, bin, card: dict, crops: np.ndarray, names, input_set: str) -> SoftmaxParity:
    """PyTorch on the crops (raw BGR 0-255, NCHW) against fastface's engine on the same uint8 crops."""
    import torch

    from .. import Embedder

    with torch.no_grad():
        ref = _softmax(model(torch.from_numpy(crops.transpose(0, 3, 1, 2).astype(np.float32))).numpy())
    side = card["input_size"][0]
    engine = Embedder(param, bin=bin, card={"input": card["input"], "output": card["output"], "size": [side, side],
                                            "channel_order": "BGR", "mean": 0.0, "scale": 1.0, "dim": 0}, threads=1)
    got = _softmax(np.stack([engine.embed(c[None], channel_order="BGR", normalize=False)[0] for c in crops]))
    if got.shape != ref.shape:
        raise ExportError(f"the converted model gives {got.shape[1]} outputs, PyTorch {ref.shape[1]}")
    diffs = np.abs(got - ref).max(axis=1)
    diffs[~np.isfinite(got).all(axis=1)] = math.inf
    return SoftmaxParity(SOFTMAX_BOUND, input_set, list(names), diffs, ref[:, 1], got[:, 1])


def export_liveness(source, out, name: str | None = None, *, photos=None, num_photos: int | None = None,
                    allow_parity_failure: bool = False, optlevel: int = OPTLEVEL,
                    log: Callable[[str], None] | None = None) -> ExportResult:
    """Convert a minivision MiniFASNet state dict to ncnn in ``out`` with a liveness card
    ``{"task": "liveness", "crop_scale", "input_size", "channel_order", "real_class", "threshold", ...}``.
    ``photos``: folders or files of real photos whose reference crops make the gate (required:
    the gate runs on real faces, not synthetic ones)."""
    clock = Clock(log)
    find_pnnx()
    if photos is None:
        raise ExportError("a liveness export needs real photos for its parity gate (--images)")
    try:
        from ..train.minifasnet import REAL_CLASS, load_minifasnet, parse_model_name
    except ImportError as exc:
        raise ExportError(f"exporting MiniFASNet needs torch: pip install 'fastface[export]' ({exc})") from None
    path = Path(source)
    try:
        scale, height, width, variant = parse_model_name(path.name)
        model = load_minifasnet(path)
    except (ValueError, RuntimeError, OSError) as exc:
        raise ExportError(f"cannot load {path} as a MiniFASNet state dict: {exc}") from None
    if scale is None:
        raise ExportError(f"{path.name} looks at the whole image, not a face crop; fastface needs a crop scale")
    from ..hub.download import sha256_file

    name = check_name(name or path.stem)
    clock.lap("load")
    with Staging(out, name) as staging:
        converted = trace_and_convert(model, [1, 3, height, width], staging, False, optlevel)
        inputs, outputs = converted_blobs(converted)
        if len(outputs) != 1:
            raise ExportError(f"the converted model has outputs {outputs}; expected one (the class logits)")
        clock.lap("convert", f"pnnx converted {name} (optlevel {optlevel})")
        card = {"name": name, "task": "liveness", "architecture": variant, "input": inputs[0], "output": outputs[0],
                "input_size": [width, height], "crop_scale": scale, "channel_order": "BGR", "mean": 0.0,
                "scale": 1.0, "classes": CLASSES, "real_class": REAL_CLASS, "threshold": THRESHOLD,
                "precision": "fp32"}
        crops, names = gate_crops(photos, scale, width, num_photos)
        sources = [photos] if isinstance(photos, (str, Path)) else photos
        report = check_softmax(model, converted.param, converted.bin, card, crops, names,
                               f"{len(names)} reference crops of the best face in {', '.join(map(str, sources))}")
        clock.lap("gate", str(report))
        if not report.passed and not allow_parity_failure:
            raise ParityError(report)
        files = {".param": converted.param, ".bin": converted.bin}
        card.update({"params": int(sum(p.numel() for p in model.parameters())),
                     "macs": macs_from_pnnx_param(converted.pnnx_param.read_text()),
                     **provenance({"kind": "pytorch-state-dict", "path": path.name, "sha256": sha256_file(path)},
                                  False, optlevel),
                     "parity": report.to_json(), "files": file_hashes(files)})
        card_path = staging.install(files, card)
    clock.lap("install")
    return ExportResult(staging.final(".param"), staging.final(".bin"), card_path, card, report, clock.seconds)


__all__ = ["CLASSES", "SOFTMAX_BOUND", "THRESHOLD", "box_xywh", "export_liveness", "reference_box", "reference_crop"]
