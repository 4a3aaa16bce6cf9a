"""``fastface train``: the command-line face of :func:`fastface.train.train`.

Options are generated from :class:`fastface.train.config.TrainConfig`, so the CLI and the
Python API cannot drift apart. torch is imported only in :func:`run`. For several GPUs::

    torchrun --nproc_per_node=8 -m fastface.cli train /data/webface42m --backbone iresnet100
"""
from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import fields

from .config import TrainConfig

_TYPES = {"int": int, "float": float, "str": str}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    for f in fields(TrainConfig):
        help_text = f.metadata["help"]
        if f.name == "data":
            parser.add_argument("data", help=help_text)
        elif f.type == "bool":
            parser.add_argument(f"--{f.name.replace('_', '-')}", default=f.default,
                                action=argparse.BooleanOptionalAction, help=help_text)
        else:
            parser.add_argument(f"--{f.name.replace('_', '-')}", type=_TYPES[f.type],
                                default=f.default, help=f"{help_text} (default: {f.default})")


def run(args: argparse.Namespace) -> int:
    config = TrainConfig(**{f.name: getattr(args, f.name) for f in fields(TrainConfig)})
    from .trainer import train

    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(message)s")
    train(config)
    return 0
