"""Export face models to ncnn through pnnx, proven by a conversion-parity gate.

    from fastface.export import export_recognizer, export_detector
    export_recognizer("runs/mfn", "models/")                       # fastface training folder
    export_recognizer("model.pt", "out/", backbone="iresnet50")    # arcface_torch state dict
    export_recognizer("w600k_r50.onnx", "out/", fp16=True)          # ONNX (insightface's, ...)
    export_detector("yunet_n_640_640.onnx", "out/", kind="yunet")
    export_recognizer("dlib_face_recognition_resnet_model_v1.dat", "out/")  # dlib's ResNet, no pnnx

Each export writes ``<name>.param``, ``<name>.bin`` and the model card ``<name>.json`` that
:class:`fastface.Embedder` / :class:`fastface.Detector` read. Needs the ``[export]`` extra
(torch, pnnx, onnx, onnxruntime); the runtime never imports this package. Heavy modules load
on first use, so ``fastface --help`` stays fast. ``fastface export`` lives here (``cli``), not
in ``fastface.cli``: its options mirror this package's and it needs this package's extras.
"""
from __future__ import annotations

import importlib

from .errors import ExportError, ParityError, PnnxError, StateDictMismatch

_LAZY = {
    "export_recognizer": "recognizer", "ARCHITECTURE_ONLY": "recognizer",
    "export_detector": "detector", "YUNET_OUTPUTS": "detector",
    "ExportResult": "_common",
    "PARITY_BOUNDS": "parity", "ParityReport": "parity", "check_recognizer": "parity", "check_detector": "parity",
    "torch_reference": "parity", "onnx_reference": "parity", "preprocess": "parity",
    "synthetic_faces": "faces", "load_faces": "faces", "load_photos": "faces",
    "random_backbone": "sources", "load_checkpoint": "sources", "load_onnx": "sources",
    "find_pnnx": "pnnx_tool",
    "export_dlib": "dlib_export", "DlibFormatError": "dlib_format",
}

__all__ = ["ExportError", "ParityError", "PnnxError", "StateDictMismatch", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
