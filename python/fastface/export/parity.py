"""The conversion-parity gate: the source framework's outputs against fastface's engine
running the converted ncnn model, input by input.

A recognizer passes when every face's embedding has cosine >= the bound (0.9999 with fp32
weights, 0.999 with fp16) to the source's and no value is NaN/inf; a detector when every raw
output tensor of every image does. Both sides get the same uint8 pixels and the card's
normalization (channel order, mean, scale); the engine does its own preprocessing, so the
card is checked too.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

#: Minimum cosine per precision of the stored weights.
PARITY_BOUNDS = {"fp32": 0.9999, "fp16": 0.999}
#: Engine modes each precision is checked in: fp16 weights also with the engine's fp16
#: storage/arithmetic (what a board with fp16 units runs).
ENGINE_MODES = {"fp32": ("fp32",), "fp16": ("fp32", "fp16")}


def preprocess(images: np.ndarray, card: dict) -> np.ndarray:
    """uint8 BGR (N, H, W, 3) -> float32 (N, C, H, W) as the card says: channel order, then
    ``(x - mean) * scale`` per channel — exactly what the engine feeds the network."""
    order = str(card["channel_order"]).upper()
    x = images.astype(np.float32)
    if order == "RGB":
        x = x[..., ::-1]
    elif order == "GRAY":  # the engine's BGR->gray weights
        x = (x[..., 0:1] * 0.114 + x[..., 1:2] * 0.587 + x[..., 2:3] * 0.299)
    channels = x.shape[-1]
    mean = np.broadcast_to(np.asarray(card["mean"], np.float32), 3)[:channels]
    scale = np.broadcast_to(np.asarray(card["scale"], np.float32), 3)[:channels]
    return np.ascontiguousarray(((x - mean) * scale).transpose(0, 3, 1, 2), dtype=np.float32)


def torch_reference(model) -> Callable[[np.ndarray], list[np.ndarray]]:
    """Runs a torch module (eval mode, fp32, CPU) on a preprocessed batch; one array per output."""
    import torch

    model = model.eval()

    def run(x: np.ndarray) -> list[np.ndarray]:
        with torch.no_grad():
            out = model(torch.from_numpy(x))
        outs = out if isinstance(out, (tuple, list)) else [out]
        return [o.detach().float().cpu().numpy() for o in outs]

    return run


def onnx_reference(session) -> Callable[[np.ndarray], list[np.ndarray]]:
    """Runs an onnxruntime session, one input at a time (fixed-batch models are common)."""
    name = session.get_inputs()[0].name

    def run(x: np.ndarray) -> list[np.ndarray]:
        per_input = [session.run(None, {name: x[i:i + 1]}) for i in range(len(x))]
        return [np.concatenate([p[k] for p in per_input]).astype(np.float32) for k in range(len(per_input[0]))]

    return run


@dataclass
class EngineRun:
    """One engine mode's figures. ``cosine[i]`` is input i's worst cosine (NaN when an output was
    not finite); ``worst_output[i]`` names the output it came from (detectors)."""
    mode: str
    cosine: np.ndarray
    finite: np.ndarray
    max_abs_diff: float
    max_rel_diff: float
    worst_output: list[str] = field(default_factory=list)
    error: str | None = None


@dataclass
class ParityReport:
    precision: str
    bound: float
    face_set: str
    names: list[str]
    runs: list[EngineRun]
    source: str = "source"
    dim: int = 0          # values per input in the source's (first) output

    @property
    def passed(self) -> bool:
        return all(r.error is None and r.finite.all() and bool(np.all(r.cosine >= self.bound)) for r in self.runs)

    @property
    def min_cosine(self) -> float:
        values = [float(np.nanmin(r.cosine)) if np.isfinite(r.cosine).any() else math.nan for r in self.runs]
        return min(values) if values and not any(math.isnan(v) for v in values) else math.nan

    def worst(self, run: EngineRun, k: int = 5) -> list[dict]:
        order = np.argsort(np.where(np.isnan(run.cosine), -np.inf, run.cosine), kind="stable")[:k]
        rows = []
        for i in order:
            row = {"input": self.names[i], "cosine": _num(run.cosine[i])}
            if not run.finite[i]:
                row["non_finite"] = True
            if run.worst_output:
                row["output"] = run.worst_output[i]
            rows.append(row)
        return rows

    def to_json(self) -> dict:
        out = {"passed": self.passed, "bound": self.bound, "inputs": len(self.names), "input_set": self.face_set,
               "reference": self.source, "engine": {}}
        for r in self.runs:
            entry = {"min_cosine": _num(np.nanmin(r.cosine)) if np.isfinite(r.cosine).any() else None,
                     "mean_cosine": _num(np.nanmean(r.cosine)) if np.isfinite(r.cosine).any() else None,
                     "max_abs_diff": _num(r.max_abs_diff), "max_rel_diff": _num(r.max_rel_diff),
                     "non_finite": int((~r.finite).sum()), "worst": self.worst(r, 3)}
            if r.error:
                entry["error"] = r.error
            out["engine"][r.mode] = entry
        return out

    def __str__(self) -> str:
        lines = [f"{'PASSED' if self.passed else 'FAILED'}: {self.precision} weights, bound cosine >= {self.bound} "
                 f"on each of {len(self.names)} inputs ({self.face_set}), reference {self.source}"]
        for r in self.runs:
            if r.error:
                lines.append(f"  engine {r.mode}: could not run the converted model: {r.error}")
                continue
            bad = int(((r.cosine < self.bound) | ~r.finite | np.isnan(r.cosine)).sum())
            low = float(np.nanmin(r.cosine)) if np.isfinite(r.cosine).any() else math.nan
            lines.append(f"  engine {r.mode}: min cosine {_fmt(low)} (1 - cos = {1 - low:.2g}), "
                         f"{bad} below bound, {int((~r.finite).sum())} non-finite, max |diff| {r.max_abs_diff:.3g} "
                         f"({r.max_rel_diff:.3g} of the largest value); worst:")
            for row in self.worst(r, 5):
                extra = f" [{row['output']}]" if "output" in row else ""
                flag = "  NaN/inf!" if row.get("non_finite") else ""
                lines.append(f"    {_fmt(row['cosine'] if row['cosine'] is not None else math.nan)}  {row['input']}{extra}{flag}")
        return "\n".join(lines)


def _num(v) -> float | None:
    v = float(v)
    return v if math.isfinite(v) else None


def _fmt(v) -> str:
    v = float(v)
    return "nan" if math.isnan(v) else f"{v:.8f}"


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 and nb == 0:
        return 1.0
    if na == 0 or nb == 0:
        return 0.0
    return float(a @ b / (na * nb))


def _compare(reference: Sequence[np.ndarray], engine: Sequence[np.ndarray | None], names: Sequence[str]):
    """Per input: worst cosine over outputs, finiteness, and which output; global diffs."""
    n = len(reference[0])
    cos, finite, where = np.full(n, np.nan), np.ones(n, bool), [""] * n
    max_abs, largest, compared = 0.0, 0.0, 0
    for k, (ref, got) in enumerate(zip(reference, engine)):
        for i in range(n):
            r = ref[i]
            g = None if got is None else got[i]
            if g is None or not np.isfinite(g).all() or not np.isfinite(r).all():
                finite[i], cos[i], where[i] = False, np.nan, names[k]
                continue
            if g.size != r.size:
                raise ValueError(f"output {names[k]} has {g.size} values in the engine, {r.size} in the source")
            c = cosine(r, g)
            if not (c >= cos[i]) and finite[i]:  # NaN-safe "take the minimum"
                cos[i], where[i] = c, names[k]
            compared += 1
            max_abs = max(max_abs, float(np.abs(r.ravel().astype(np.float64) - g.ravel()).max()))
            largest = max(largest, float(np.abs(r).max()))
    if not compared:
        return cos, finite, where, math.nan, math.nan
    return cos, finite, where, max_abs, (max_abs / largest if largest > 0 else 0.0)


def _engine_embeddings(param, bin, card, images, mode: str) -> list[np.ndarray | None]:
    """Embeddings from fastface's Embedder, one face at a time (a NaN taints only its face)."""
    from .. import Embedder

    model = Embedder(param, bin=bin, card=card, threads=1, fp16=(mode == "fp16"))
    out = []
    for image in images:
        try:
            out.append(model.embed(image[None], channel_order="BGR", normalize=False)[0])
        except RuntimeError as exc:
            if "non-finite" not in str(exc):
                raise
            out.append(None)
    return out


def _engine_outputs(param, bin, card, images, blobs: Sequence[str], mode: str) -> list[list[np.ndarray | None]]:
    """Raw output tensors through the engine: an Embedder with ``dim=0`` reads any blob flat."""
    width, height = card["input_size"]
    per_blob = []
    for blob in blobs:
        probe = {"input": card["input"], "output": blob, "size": [width, height], "channel_order": card["channel_order"],
                 "mean": card["mean"], "scale": card["scale"], "dim": 0}
        per_blob.append(_engine_embeddings(param, bin, probe, images, mode))
    return per_blob


def check_recognizer(reference, param, bin, card: dict, images: np.ndarray, names: Sequence[str],
                     precision: str = "fp32", face_set: str = "", source: str = "source",
                     modes: Sequence[str] | None = None, bound: float | None = None) -> ParityReport:
    """Run the gate for an embedding model. ``reference`` maps a preprocessed (N, C, H, W)
    float32 batch to a list of outputs (the first holds the embeddings); ``param``/``bin`` are
    the ncnn files and ``card`` their model card (``dim`` 0 = whatever the model produces)."""
    bound = PARITY_BOUNDS[precision] if bound is None else bound
    ref = reference(preprocess(images, card))[0].reshape(len(images), -1)
    runs = []
    for mode in modes or ENGINE_MODES[precision]:
        try:
            got = _engine_embeddings(param, bin, card, images, mode)
        except Exception as exc:  # noqa: BLE001 - the engine refusing the model fails the gate
            runs.append(EngineRun(mode, np.full(len(images), np.nan), np.zeros(len(images), bool), math.nan, math.nan,
                                  error=f"{type(exc).__name__}: {exc}"))
            continue
        cos, finite, _, max_abs, rel = _compare([ref], [got], ["embedding"])
        runs.append(EngineRun(mode, cos, finite, max_abs, rel))
    return ParityReport(precision, bound, face_set, list(names), runs, source, dim=int(ref.shape[1]))


def check_detector(reference, param, bin, card: dict, blobs: Sequence[str], images: np.ndarray, names: Sequence[str],
                   precision: str = "fp32", face_set: str = "", source: str = "source",
                   modes: Sequence[str] | None = None, bound: float | None = None,
                   output_names: Sequence[str] | None = None) -> ParityReport:
    """The gate for a detector: ``reference`` returns the source outputs in the order of
    ``blobs`` (the ncnn names of the same tensors); every tensor is compared flat."""
    bound = PARITY_BOUNDS[precision] if bound is None else bound
    ref = reference(preprocess(images, card))
    if len(ref) != len(blobs):
        raise ValueError(f"the source has {len(ref)} outputs, the converted model {len(blobs)}")
    ref = [r.reshape(len(images), -1) for r in ref]
    runs = []
    for mode in modes or ENGINE_MODES[precision]:
        try:
            got = _engine_outputs(param, bin, card, images, blobs, mode)
        except Exception as exc:  # noqa: BLE001
            runs.append(EngineRun(mode, np.full(len(images), np.nan), np.zeros(len(images), bool), math.nan, math.nan,
                                  error=f"{type(exc).__name__}: {exc}"))
            continue
        cos, finite, where, max_abs, rel = _compare(ref, got, list(output_names or blobs))
        runs.append(EngineRun(mode, cos, finite, max_abs, rel, worst_output=where))
    return ParityReport(precision, bound, face_set, list(names), runs, source, dim=int(ref[0].shape[1]))


def merge_reports(reports: Sequence[ParityReport]) -> ParityReport:
    """One report over the inputs of several (same precision, bound and engine modes), e.g. a
    dynamic-size detector gated at two input sizes."""
    if len(reports) == 1:
        return reports[0]
    first = reports[0]
    runs = []
    for k, run in enumerate(first.runs):
        parts = [r.runs[k] for r in reports]
        runs.append(EngineRun(run.mode, np.concatenate([p.cosine for p in parts]),
                              np.concatenate([p.finite for p in parts]),
                              max(p.max_abs_diff for p in parts), max(p.max_rel_diff for p in parts),
                              [w for p in parts for w in p.worst_output],
                              next((p.error for p in parts if p.error), None)))
    return ParityReport(first.precision, first.bound, "; ".join(r.face_set for r in reports),
                        [n for r in reports for n in r.names], runs, first.source, first.dim)
