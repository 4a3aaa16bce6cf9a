"""The ``fastface`` command line: one subcommand per job, each in its own module.

Every subcommand has ``<prefix>add_arguments(parser)`` and ``<prefix>run(args) -> int`` in its
module; modules
that need heavy dependencies (torch) import them inside ``run`` so ``fastface --help`` stays
fast and works on a board without them.
"""
from __future__ import annotations

import argparse
import importlib
import sys

# name -> (module, function prefix, one-line help)
SUBCOMMANDS = {
    "demo": ("fastface.demo", "", "align + embed + search on data the command makes itself"),
    "verify": ("fastface.faces_cli", "verify_", "are the main faces of two photos the same person?"),
    "enroll": ("fastface.faces_cli", "enroll_", "add a folder of identity folders to a gallery file"),
    "identify": ("fastface.faces_cli", "identify_", "name the faces in a photo from a gallery"),
    "eval": ("fastface.eval.cli", "", "verification accuracy of a model on a pair list (Table-1 metrics, ROC)"),
    "compare": ("fastface.eval.compare", "", "metrics, params, MACs, latency and memory for several models"),
    "train": ("fastface.train.cli", "", "train a backbone with an ArcFace-style head (needs [train])"),
    "export": ("fastface.export.cli", "", "convert a model to ncnn via pnnx, proven by a parity gate (needs [export])"),
    "models": ("fastface.models_cli", "", "list, pull, verify and remove known models by name (ncnn on arrival)"),
    "watch": ("fastface.watch_cli", "", "track and name faces in a camera or video: events, fps, per-stage ms"),
    "gallery": ("fastface.gallery_cli", "", "list (ls), remove (rm NAME) or describe (stats) a gallery's identities"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fastface", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module_name, prefix, help_text) in SUBCOMMANDS.items():
        module = importlib.import_module(module_name)
        sub_parser = sub.add_parser(name, help=help_text, description=help_text)
        getattr(module, prefix + "add_arguments")(sub_parser)
        sub_parser.set_defaults(_run=getattr(module, prefix + "run"))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except (ValueError, RuntimeError, OSError, KeyError, ImportError) as exc:
        print(f"fastface {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
