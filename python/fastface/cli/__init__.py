"""The ``fastface`` command line: one subcommand per module, dispatched from here.

The runtime's subcommands live in this package (``fastface/cli/<name>.py``); those of training,
export and evaluation live beside their code (``fastface.<package>.cli`` or ``.compare``), so
the table below is the one place that says where each subcommand is. Every subcommand module
has ``add_arguments(parser)`` and ``run(args) -> int``; modules that need heavy dependencies
(torch) import them inside ``run``, so ``fastface --help`` stays fast and works on a board
without them.
"""
from __future__ import annotations

import argparse
import importlib
import sys

# name -> (module, one-line help)
SUBCOMMANDS = {
    "demo": ("fastface.cli.demo", "align + embed + search on data the command makes itself"),
    "verify": ("fastface.cli.verify", "are the main faces of two photos the same person?"),
    "enroll": ("fastface.cli.enroll", "add a folder of identity folders to a gallery file"),
    "identify": ("fastface.cli.identify", "name the faces in a photo from a gallery"),
    "watch": ("fastface.cli.watch", "track and name faces in a camera or video: events, fps, per-stage ms"),
    "gallery": ("fastface.cli.gallery", "list (ls), remove (rm NAME) or describe (stats) a gallery's identities"),
    "liveness": ("fastface.cli.liveness", "is each face in a photo live, or a printed photo / screen? (MiniFASNet)"),
    "models": ("fastface.cli.models", "list, pull, verify and remove known models by name (ncnn on arrival)"),
    "eval": ("fastface.eval.cli", "verification accuracy of a model on a pair list (Table-1 metrics, ROC)"),
    "compare": ("fastface.eval.compare", "metrics, params, MACs, latency and memory for several models"),
    "train": ("fastface.train.cli", "train a backbone with an ArcFace-style head (needs [train])"),
    "export": ("fastface.export.cli", "convert a model to ncnn via pnnx, proven by a parity gate (needs [export])"),
    "quantize": ("fastface.export.quantize.cli", "an ncnn model -> int8, calibrated on your photos, accuracy-gated"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fastface", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        module = importlib.import_module(module_name)
        sub_parser = sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(sub_parser)
        sub_parser.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except (ValueError, RuntimeError, OSError, KeyError, ImportError) as exc:
        print(f"fastface {args.command}: error: {exc}", file=sys.stderr)
        return 2
