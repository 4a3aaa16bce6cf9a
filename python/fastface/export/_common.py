"""What recognizer and detector exports share: the staging folder and atomic install, the
conversion of a torch module or an ONNX file, and the card's provenance fields."""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .errors import ExportError, PnnxError
from .pnnx_tool import OPTLEVEL, PnnxOutput, ncnn_blobs, pnnx_version, run_pnnx


@dataclass
class ExportResult:
    """What an export wrote: ``param``, ``bin`` (None for architecture-only exports), the card
    (``card_path`` and its content), the parity report, and wall-clock seconds per stage."""
    param: Path
    bin: Path | None
    card_path: Path
    card: dict
    parity: object
    seconds: dict = field(default_factory=dict)


def check_name(name: str) -> str:
    if not name or any(c in name for c in "/\\\0") or name.startswith("."):
        raise ExportError(f"invalid model name {name!r}: use a plain file stem such as 'mobilefacenet'")
    return name


class Staging:
    """A private folder inside the output folder (same file system, so installs are renames).
    Nothing appears under the final names until :meth:`install`; the folder is removed on exit."""

    def __init__(self, out, name: str):
        self.out, self.name = Path(out).absolute(), check_name(name)  # pnnx runs in the staging folder
        try:
            self.out.mkdir(parents=True, exist_ok=True)
            self.dir = Path(tempfile.mkdtemp(prefix=f".{name}.export-", dir=self.out))
        except OSError as exc:
            raise ExportError(f"output folder {self.out} is not writable: {exc.strerror or exc}") from None

    def __enter__(self) -> Staging:
        return self

    def __exit__(self, *exc) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    def final(self, suffix: str) -> Path:
        return self.out / f"{self.name}{suffix}"

    def install(self, files: dict[str, Path | None], card: dict) -> Path:
        """Move staged files to ``<name><suffix>`` (a None path deletes a stale file), card last.
        The old card goes first, so no card ever describes files that are being replaced."""
        card_path = self.final(".json")
        staged_card = self.dir / "card.json"
        with open(staged_card, "w") as f:
            f.write(dump_card(card) + "\n")
            f.flush()
            os.fsync(f.fileno())
        try:
            card_path.unlink(missing_ok=True)
            for suffix, staged in files.items():
                if staged is None:
                    self.final(suffix).unlink(missing_ok=True)
                    continue
                with open(staged, "rb") as f:
                    os.fsync(f.fileno())
                os.replace(staged, self.final(suffix))
            os.replace(staged_card, card_path)
            fd = os.open(self.out, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            raise ExportError(f"cannot write into {self.out}: {exc}") from None
        return card_path


def dump_card(value, indent: int = 0) -> str:
    """JSON with one key per line but short lists (sizes, means, template points) inline."""
    pad = "  " * indent
    if isinstance(value, dict) and value:
        items = [f"{pad}  {json.dumps(str(k))}: {dump_card(v, indent + 1)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + f"\n{pad}}}"
    if isinstance(value, list) and any(isinstance(v, dict) for v in value):
        return "[\n" + ",\n".join(f"{pad}  {dump_card(v, indent + 1)}" for v in value) + f"\n{pad}]"
    return json.dumps(value)


def trace_and_convert(model, input_shape: Sequence[int], staging: Staging, fp16: bool,
                      optlevel: int = OPTLEVEL) -> PnnxOutput:
    """TorchScript-trace ``model`` on zeros of ``input_shape`` and convert it with pnnx."""
    import torch

    model.eval()
    example = torch.zeros(*input_shape)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            # pnnx reads TorchScript; torch's deprecation notice about tracing is not for users here.
            warnings.simplefilter("ignore", DeprecationWarning)
            traced = torch.jit.trace(model, example, check_trace=False)
        traced.save(str(staging.dir / "model.pt"))
    except Exception as exc:  # noqa: BLE001 - tracing errors come in many types
        raise ExportError(f"torch could not trace the model: {type(exc).__name__}: {exc}") from None
    del traced
    return run_pnnx(staging.dir / "model.pt", [input_shape], staging.dir, fp16=fp16, optlevel=optlevel)


def convert_onnx(path: Path, input_shape: Sequence[int], staging: Staging, fp16: bool,
                 optlevel: int = OPTLEVEL, input_shape2: Sequence[int] | None = None) -> PnnxOutput:
    """Convert an ONNX file with pnnx (through a link in the staging folder, so pnnx writes
    nothing beside the user's file); ``input_shape2`` keeps the dimensions it changes dynamic."""
    link = staging.dir / "model.onnx"
    try:
        link.symlink_to(Path(path).resolve())
    except OSError:
        shutil.copyfile(path, link)
    return run_pnnx(link, [input_shape], staging.dir, fp16=fp16, optlevel=optlevel,
                    input_shapes2=[input_shape2] if input_shape2 else None)


def converted_blobs(output: PnnxOutput) -> tuple[list[str], list[str]]:
    inputs, outputs = ncnn_blobs(output.param.read_text())
    if len(inputs) != 1:
        raise PnnxError(f"the converted model has {len(inputs)} inputs ({inputs}); expected one", output.log)
    return inputs, outputs


def provenance(info: dict, fp16: bool, optlevel: int) -> dict:
    """The card's ``source`` and ``converter`` fields."""
    import fastface

    converter = {"tool": "pnnx", "version": pnnx_version(), "optlevel": optlevel, "fp16_weights": bool(fp16),
                 "fastface": fastface.__version__}
    try:
        import torch

        converter["torch"] = torch.__version__.split("+")[0]
    except ImportError:
        pass
    return {"source": info, "converter": converter}


def file_hashes(files: dict[str, Path | None]) -> dict:
    from ..hub.download import sha256_file

    return {suffix.lstrip("."): {"bytes": p.stat().st_size, "sha256": sha256_file(p)}
            for suffix, p in files.items() if p is not None}


class Clock:
    def __init__(self, log: Callable[[str], None] | None):
        self.log, self.seconds, self._t = log, {}, time.perf_counter()

    def lap(self, stage: str, message: str = "") -> None:
        now = time.perf_counter()
        self.seconds[stage] = round(now - self._t, 3)
        self._t = now
        if self.log and message:
            self.log(f"{message} ({self.seconds[stage]:.1f} s)")
