"""Where exports start: fastface checkpoints, arcface_torch-layout state dicts, ONNX files,
torch modules, or seeded random backbones (architecture exports and tests)."""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..hub.download import sha256_file
from .errors import ExportError, StateDictMismatch

#: Inputs of the training backbones: RGB, (x - 127.5) / 127.5.
TRAIN_NORMALIZATION = {"channel_order": "RGB", "mean": 127.5, "scale": 1 / 127.5}



def sha256_state(state: dict) -> str:
    """A hash of a state dict's names, dtypes, shapes and values (for in-memory sources)."""
    import torch

    digest = hashlib.sha256()
    for key in sorted(state):
        value = state[key]
        if not isinstance(value, torch.Tensor):
            continue
        t = value.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{key}|{t.dtype}|{tuple(value.shape)}|".encode())
        digest.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


@dataclass
class TorchSource:
    """A backbone ready to trace, plus what the card needs to say about where it came from."""
    model: Any                       # torch.nn.Module in eval mode
    backbone: str | None
    embedding_size: int | None
    input_size: tuple[int, int]      # (width, height)
    info: dict = field(default_factory=dict)   # kind, path, sha256, seed, ...


def _backbones():
    try:
        from ..train.backbones import BACKBONES, get_backbone
    except ImportError as exc:
        raise ExportError(f"exporting training backbones needs torch: pip install 'fastface[export]' ({exc})") from None
    return BACKBONES, get_backbone


def build_backbone(name: str, embedding_size: int | None = None, input_size: int = 112):
    BACKBONES, get_backbone = _backbones()
    if name not in BACKBONES:
        raise ExportError(f"unknown backbone {name!r}; choose one of {', '.join(sorted(BACKBONES))}")
    if input_size % 16:
        raise ExportError(f"input size must be a multiple of 16, got {input_size}")
    kwargs = {"input_size": int(input_size)}
    if embedding_size is not None:
        kwargs["num_features"] = int(embedding_size)
    return get_backbone(name, **kwargs)


def random_backbone(name: str, seed: int = 0, embedding_size: int | None = None, input_size: int = 112,
                    calibration_batch: int = 4):
    """A backbone with seeded random weights that behave like trained ones numerically.

    Convolutions keep their initialisation; BatchNorm scales/shifts and PReLU slopes are
    randomised (so batch-norm folding is really exercised), then running statistics are
    measured on a synthetic batch in training mode, which keeps activations of deep IResNets
    normalised (with identity statistics they grow ~4x per residual unit and overflow).
    """
    import torch
    from torch import nn

    from .faces import synthetic_faces
    from .parity import preprocess

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_backbone(name, embedding_size, input_size)
        generator = torch.Generator().manual_seed(seed + 1)
        with torch.no_grad():
            for m in model.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    if m.weight.requires_grad:  # IResNet's embedding BN keeps its scale at 1
                        m.weight.uniform_(0.6, 1.4, generator=generator)
                    m.bias.normal_(0.0, 0.1, generator=generator)
                    m.reset_running_stats()
                    m.momentum = None  # cumulative average over the calibration batch
                elif isinstance(m, nn.PReLU):
                    m.weight.uniform_(0.05, 0.4, generator=generator)
            images = synthetic_faces(calibration_batch, (input_size, input_size), seed=seed + 2)
            x = torch.from_numpy(preprocess(images, TRAIN_NORMALIZATION))
            x = x + 0.5 * torch.randn(x.shape, generator=generator)  # more spread than the few images have
            model.train()
            model(x)
            for m in model.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.momentum = 0.1
        model.eval()
    return model


def _strip_prefix(state: dict) -> dict:
    for prefix in ("module.", "backbone.", "_orig_mod."):
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items()}
    return state


def _torch_load(path: Path):
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - pickle, zip and format errors alike
        raise ExportError(f"cannot read checkpoint {path}: {type(exc).__name__}: {exc}") from None


def _infer_sizes(state: dict) -> tuple[int | None, int | None]:
    """(embedding size, input side) as far as an arcface_torch/fastface state dict tells."""
    embedding = None
    for key in ("features.running_mean", "features.layers.3.running_mean"):
        if key in state:
            embedding = int(state[key].shape[0])
    side = None
    if "fc.weight" in state and state["fc.weight"].ndim == 2:  # IResNet: fc over 512 x (s/16)^2
        cells = state["fc.weight"].shape[1] / 512
        if cells == int(cells) and math.isqrt(int(cells)) ** 2 == int(cells):
            side = math.isqrt(int(cells)) * 16
    gdc = state.get("features.layers.0.layers.0.weight")  # MobileFaceNet: GDC kernel = s/16
    if gdc is not None and gdc.ndim == 4:
        side = int(gdc.shape[-1]) * 16
    return embedding, side


def load_state(model, state: dict, backbone: str) -> None:
    """``strict`` loading with a readable report (BatchNorm's ``num_batches_tracked`` may be absent)."""
    import torch

    own = model.state_dict()
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in own]
    mismatched = [(k, tuple(state[k].shape), tuple(own[k].shape)) for k in own
                  if k in state and isinstance(state[k], torch.Tensor) and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or mismatched:
        raise StateDictMismatch(backbone, missing, unexpected, mismatched)
    model.load_state_dict({k: v for k, v in state.items() if k in own}, strict=False)


def load_checkpoint(path, backbone: str | None = None, embedding_size: int | None = None,
                    input_size: int | None = None) -> TorchSource:
    """A fastface run folder (``backbone.pt`` + ``config.json``, or the latest step checkpoint),
    a fastface step checkpoint, ``backbone.pt``, or an arcface_torch file (a plain state dict
    such as ``model.pt``, or ``checkpoint_gpu_0.pt``). Explicit arguments override what the
    files say; the backbone name must come from one or the other."""
    path = Path(path)
    if not path.exists():
        raise ExportError(f"no checkpoint at {path}")
    run: dict = {}
    if path.is_dir():
        if (path / "config.json").is_file():
            try:
                run = json.loads((path / "config.json").read_text())
            except ValueError as exc:
                raise ExportError(f"{path / 'config.json'} is not valid JSON: {exc}") from None
        if (path / "backbone.pt").is_file():
            path = path / "backbone.pt"
        elif (path / "latest.json").is_file():
            try:
                step = int(json.loads((path / "latest.json").read_text())["step"])
            except (ValueError, KeyError, TypeError) as exc:
                raise ExportError(f"corrupt {path / 'latest.json'}: {exc}") from None
            path = path / f"step-{step:09d}.rank-0.pt"
        else:
            raise ExportError(f"{path} holds neither backbone.pt nor latest.json: not a fastface training folder")
    elif (path.parent / "config.json").is_file() and path.name == "backbone.pt":
        try:
            run = json.loads((path.parent / "config.json").read_text())
        except ValueError:
            run = {}
    obj = _torch_load(path)
    kind = "state-dict"
    if isinstance(obj, dict) and isinstance(obj.get("backbone"), dict) and isinstance(obj.get("run"), dict):
        state, run, kind = obj["backbone"], {**run, **obj["run"]}, "fastface-checkpoint"
    elif isinstance(obj, dict) and isinstance(obj.get("state_dict_backbone"), dict):
        state, kind = obj["state_dict_backbone"], "arcface_torch-checkpoint"
    elif isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        state = obj["state_dict"]
    elif isinstance(obj, dict) and obj and all(hasattr(v, "shape") for v in obj.values()):
        state = obj
        if run:
            kind = "fastface-checkpoint"
    else:
        raise ExportError(f"{path} holds no backbone state dict (found {type(obj).__name__}"
                          f"{' with keys ' + ', '.join(map(str, list(obj)[:8])) if isinstance(obj, dict) else ''})")
    state = _strip_prefix(dict(state))
    inferred_dim, inferred_side = _infer_sizes(state)
    name = backbone or run.get("backbone")
    if not name:
        raise ExportError(f"{path} does not say which backbone it holds: pass backbone= / --backbone "
                          f"(one of {', '.join(sorted(_backbones()[0]))})")
    dim = embedding_size or run.get("embedding_size") or inferred_dim
    side = int(input_size or run.get("image_size") or inferred_side or 112)
    model = build_backbone(name, dim, side)
    load_state(model, state, name)
    model.eval()
    info = {"kind": kind, "path": str(path), "sha256": sha256_file(path)}
    return TorchSource(model, name, dim or _out_features(model, side), (side, side), info)


def _out_features(model, side: int) -> int:
    import torch

    with torch.no_grad():
        return int(model.eval()(torch.zeros(1, 3, side, side)).shape[1])


def module_source(model, backbone: str | None = None, input_size=112, info: dict | None = None) -> TorchSource:
    """Wrap an in-memory torch module (weights hashed for the card)."""
    import torch

    if not isinstance(model, torch.nn.Module):
        raise ExportError(f"expected a torch.nn.Module, got {type(model).__name__}")
    size = (input_size, input_size) if isinstance(input_size, int) else tuple(input_size)
    model.eval()
    base = {"kind": "torch-module", "sha256": sha256_state(model.state_dict())}
    return TorchSource(model, backbone, None, size, {**base, **(info or {})})


@dataclass
class OnnxSource:
    path: Path
    session: Any                      # onnxruntime.InferenceSession
    input_name: str
    input_shape: list                 # as the file says (symbolic dims as str/None)
    output_names: list[str]
    params: int | None
    normalization: dict | None        # guessed from the graph, or None
    info: dict


def load_onnx(path) -> OnnxSource:
    """Open an ONNX model with onnxruntime (the parity reference); ExportError if unreadable."""
    path = Path(path)
    if not path.is_file():
        raise ExportError(f"no ONNX model at {path}")
    try:
        import onnxruntime as ort
    except ImportError:
        raise ExportError("exporting ONNX models needs onnxruntime: pip install 'fastface[export]'") from None
    try:
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.log_severity_level = 3
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types
        raise ExportError(f"cannot read ONNX model {path}: {type(exc).__name__}: {exc}") from None
    inputs = session.get_inputs()
    if len(inputs) != 1:
        raise ExportError(f"{path} has {len(inputs)} inputs; fastface exports single-input models")
    params, normalization = None, None
    try:
        import onnx
        from onnx import numpy_helper  # noqa: F401

        graph = onnx.load(str(path), load_external_data=False).graph
        params = int(sum(math.prod(t.dims) for t in graph.initializer))
        # insightface's recognizers that normalise in the graph start with Sub and Mul nodes.
        first = [n.op_type for n in graph.node[:8]]
        if "Sub" in first and "Mul" in first:
            normalization = {"mean": 0.0, "scale": 1.0}
    except ImportError:
        pass
    except Exception as exc:  # noqa: BLE001
        raise ExportError(f"cannot read ONNX model {path}: {type(exc).__name__}: {exc}") from None
    return OnnxSource(path, session, inputs[0].name, list(inputs[0].shape), [o.name for o in session.get_outputs()],
                      params, normalization, {"kind": "onnx", "path": str(path), "sha256": sha256_file(path)})


def onnx_input_size(source: OnnxSource, input_size=None) -> tuple[int, int]:
    """(width, height) for conversion: ``input_size`` if given, else the file's fixed dims."""
    if input_size is not None:
        return (input_size, input_size) if isinstance(input_size, int) else tuple(input_size)
    shape = source.input_shape
    if len(shape) == 4 and all(isinstance(d, int) and d > 0 for d in shape[2:]):
        return int(shape[3]), int(shape[2])
    raise ExportError(f"{source.path} has a variable input size {shape}; pass input_size= / --input-size")
