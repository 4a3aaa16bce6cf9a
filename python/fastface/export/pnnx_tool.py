"""Running the pnnx converter (https://github.com/pnnx/pnnx) and reading what it writes.

The binary is found through ``FASTFACE_PNNX`` (a path), else the ``pnnx`` Python package, else
``pnnx`` on PATH. It runs in a private folder with every output path given explicitly, its
exit status is checked and its log is kept for error reports.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import PnnxError

#: pnnx's graph optimisation level: 2 = all (batch-norm folding, constant folding, fusions).
OPTLEVEL = 2


def find_pnnx() -> str:
    """The pnnx executable, or PnnxError saying how to get one."""
    override = os.environ.get("FASTFACE_PNNX")
    if override:
        if not (os.path.isfile(override) and os.access(override, os.X_OK)):
            raise PnnxError(f"FASTFACE_PNNX={override!r} is not an executable file")
        return override
    try:
        import pnnx  # the PyPI package ships the binary

        if os.path.isfile(pnnx.EXEC_PATH):
            return pnnx.EXEC_PATH
    except Exception:  # noqa: BLE001 - absent or broken package: fall back to PATH
        pass
    found = shutil.which("pnnx")
    if found:
        return found
    raise PnnxError("pnnx is not installed: pip install 'fastface[export]' (or pip install pnnx), "
                    "or set FASTFACE_PNNX to the pnnx executable")


def pnnx_version() -> str | None:
    try:
        from importlib.metadata import version

        return version("pnnx")
    except Exception:  # noqa: BLE001
        return None


@dataclass
class PnnxOutput:
    param: Path          # ncnn .param
    bin: Path            # ncnn .bin
    pnnx_param: Path     # pnnx's own graph, with operand shapes (used to count MACs)
    log: str


def _shapes(input_shapes: Sequence[Sequence[int]]) -> str:
    return ",".join("[" + ",".join(str(int(d)) for d in s) + "]" for s in input_shapes)


def run_pnnx(model: Path, input_shapes: Sequence[Sequence[int]], workdir: Path, fp16: bool = False,
             optlevel: int = OPTLEVEL, timeout: float = 3600,
             input_shapes2: Sequence[Sequence[int]] | None = None) -> PnnxOutput:
    """Convert ``model`` (TorchScript ``.pt`` or ``.onnx``) with pnnx into ``workdir``.

    ``input_shapes2``: a second set of shapes; pnnx then keeps the dimensions that differ
    dynamic, so the ncnn graph runs at any input size (e.g. YuNet from its dynamic ONNX)."""
    exe = find_pnnx()
    shapes = _shapes(input_shapes)
    out = PnnxOutput(workdir / "model.ncnn.param", workdir / "model.ncnn.bin", workdir / "model.pnnx.param", "")
    # pnnx also writes its own weights, an ONNX copy and Python scripts: as big as the model
    # three times over and unused here, so they go to the null device (~40% faster on IResNets).
    command = [exe, str(model), f"inputshape={shapes}",
               *([f"inputshape2={_shapes(input_shapes2)}"] if input_shapes2 else []), f"fp16={int(bool(fp16))}", f"optlevel={int(optlevel)}",
               "device=cpu", f"ncnnparam={out.param}", f"ncnnbin={out.bin}", f"pnnxparam={out.pnnx_param}",
               *(f"{key}={os.devnull}" for key in ("ncnnpy", "pnnxbin", "pnnxpy", "pnnxonnx"))]
    try:
        done = subprocess.run(command, cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, errors="replace", timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise PnnxError(f"pnnx did not finish within {timeout:.0f} s", str(exc.output or "")) from None
    except OSError as exc:
        raise PnnxError(f"cannot run pnnx ({exe}): {exc}") from None
    out.log = done.stdout or ""
    if done.returncode != 0:
        raise PnnxError(f"pnnx failed on {model.name} (exit status {done.returncode})", out.log)
    for path in (out.param, out.bin):
        if not path.is_file() or (path is out.param and path.stat().st_size == 0):
            raise PnnxError(f"pnnx exited normally but wrote no {path.name}", out.log)
    text = out.param.read_text(errors="replace")
    if not text.startswith("7767517"):
        raise PnnxError(f"pnnx wrote a {out.param.name} that is not an ncnn param file", out.log)
    leftovers = sorted({line.split()[0] for line in text.splitlines()[2:]
                        if line.split() and (line.split()[0].startswith(("pnnx.", "torch.", "F.", "nn.", "Tensor.")))})
    if leftovers:
        raise PnnxError(f"pnnx left operators ncnn cannot run in the graph: {', '.join(leftovers)}", out.log)
    return out


def ncnn_blobs(param_text: str) -> tuple[list[str], list[str]]:
    """(input blobs, output blobs) of an ncnn param text: Input layers' tops, and blobs that no
    layer consumes."""
    inputs, produced, consumed = [], [], set()
    for line in param_text.splitlines()[2:]:
        parts = line.split()
        if len(parts) < 4:
            continue
        n_in, n_out = int(parts[2]), int(parts[3])
        bottoms, tops = parts[4:4 + n_in], parts[4 + n_in:4 + n_in + n_out]
        consumed.update(bottoms)
        produced.extend(tops)
        if parts[0] == "Input":
            inputs.extend(tops)
    return inputs, [b for b in produced if b not in consumed]


_SHAPE = re.compile(r"#(\S+?)=\(([\d,?]*)\)")


def macs_from_pnnx_param(text: str) -> int:
    """Multiply-accumulates of convolutions and fully connected layers in a pnnx graph (same
    convention as :func:`fastface.train.backbones.complexity`), from pnnx's operand shapes."""
    total = 0
    for line in text.splitlines()[2:]:
        parts = line.split()
        if len(parts) < 4 or parts[0] not in ("nn.Conv2d", "nn.Linear", "nn.Conv1d", "nn.ConvTranspose2d"):
            continue
        n_in, n_out = int(parts[2]), int(parts[3])
        top = parts[4 + n_in] if n_out else None
        bottom = parts[4] if n_in else None
        shapes = {k: [int(d) for d in v.split(",") if d and d != "?"] for k, v in _SHAPE.findall(line)}
        attrs = dict(p.split("=", 1) for p in parts[4 + n_in + n_out:] if "=" in p and p[0] not in "#@$")
        out_shape = shapes.get(top)
        if not out_shape:
            continue
        numel = 1
        for d in out_shape:
            numel *= d
        if parts[0] == "nn.Linear":
            total += numel * int(attrs.get("in_features", 0))
        elif parts[0] == "nn.ConvTranspose2d":
            in_shape = shapes.get(bottom) or []
            kernel = [int(v) for v in re.findall(r"\d+", attrs.get("kernel_size", "1"))]
            k = 1
            for v in kernel:
                k *= v
            in_numel = 1
            for d in in_shape:
                in_numel *= d
            total += in_numel * int(attrs.get("out_channels", 0)) // int(attrs.get("groups", 1)) * k
        else:
            kernel = [int(v) for v in re.findall(r"\d+", attrs.get("kernel_size", "1"))]
            k = 1
            for v in kernel:
                k *= v
            total += numel * int(attrs.get("in_channels", 0)) // int(attrs.get("groups", 1)) * k
    return total
