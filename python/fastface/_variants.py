"""Where a model's precision variants live: ``model.int8.param/.bin/.json`` beside ``model.param``
(written by ``fastface quantize``)."""
from __future__ import annotations

from pathlib import Path

PRECISIONS = ("fp32", "fp16", "int8")


def int8_param(param) -> Path:
    """``model.int8.param`` for ``model.param`` (itself if it already is the int8 variant)."""
    param = Path(param)
    if param.name.endswith(".int8.param"):
        return param
    return param.with_name(param.with_suffix("").name + ".int8.param")


def check_precision(precision, fp16: bool) -> str:
    if precision is None:
        return "fp16" if fp16 else "fp32"
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if fp16 and precision != "fp16":
        raise ValueError(f"fp16=True contradicts precision={precision!r}")
    return precision


def variant(param, precision: str) -> Path:
    """The .param to load for ``precision``: the int8 variant must exist beside the model."""
    param = Path(param)
    if precision != "int8":
        return param
    path = int8_param(param)
    if not path.is_file():
        raise FileNotFoundError(f"no int8 variant of {param.name} at {path}; make one with: "
                                f"fastface quantize {param} --images PHOTOS")
    return path
