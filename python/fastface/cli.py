"""The ``fastface`` command line: one subcommand per job, each in its own module.

Every subcommand module exposes ``add_arguments(parser)`` and ``run(args) -> int``; modules
that need heavy dependencies (torch) import them inside ``run`` so ``fastface --help`` stays
fast and works on a board without them.
"""
from __future__ import annotations

import argparse
import importlib
import sys

# name -> (module, one-line help)
SUBCOMMANDS = {
    "demo": ("fastface.demo", "align + embed + search on data the command makes itself"),
    "train": ("fastface.train.cli", "train a backbone with an ArcFace-style head (needs [train])"),
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
    except (ValueError, RuntimeError, OSError) as exc:
        print(f"fastface {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
