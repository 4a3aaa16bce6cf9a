"""``fastface models list | pull | path | verify | rm``: known models by name.

    fastface models list                       # name, task, licence, size, installed or not
    fastface models pull sface                 # download, check sha256, convert + gate, install
    fastface models pull buffalo_l --accept-license
    fastface models pull sface --int8 photos/   # also quantize on arrival (fastface quantize, gated)
    fastface models path sface                 # the .param to give to --model or fastface.Embedder
    fastface models verify                     # re-hash what is installed
    fastface models rm sface

Exit status: 0 done, 1 ``verify`` found damage, a conversion failed its parity gate or an int8
variant its gate, 2 error.
"""
from __future__ import annotations

import argparse
import json
import sys


def _size(n) -> str:
    return "?" if n is None else f"{n / 1e6:.1f} MB" if n >= 1e5 else f"{n / 1e3:.0f} kB"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="models_command", required=True, metavar="ACTION")
    listing = sub.add_parser("list", help="known models: name, task, licence, size, installed or not")
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    pulling = sub.add_parser("pull", help="download, check and install models (converted to ncnn on arrival)")
    pulling.add_argument("names", nargs="+", metavar="NAME")
    pulling.add_argument("--accept-license", action="store_true",
                         help="accept the licence of non-commercial models (read it first: models list shows where)")
    pulling.add_argument("--force", action="store_true", help="download and install again even if installed")
    pulling.add_argument("--timeout", type=float, default=30.0, help="seconds without data before a retry (default 30)")
    pulling.add_argument("--retries", type=int, default=4, help="retries per file, with backoff (default 4)")
    pulling.add_argument("--int8", metavar="PHOTOS",
                         help="also write the int8 variant beside each model, calibrated on these photos and "
                              "gated (fastface quantize; needs the ncnn Python package); Embedder(..., "
                              "precision='int8') then loads it")
    pulling.add_argument("--quiet", action="store_true", help="no progress bar or conversion log")
    path = sub.add_parser("path", help="print the .param of an installed or bundled model")
    path.add_argument("name", metavar="NAME")
    check = sub.add_parser("verify", help="re-hash installed models against what was installed")
    check.add_argument("names", nargs="*", metavar="NAME")
    remove = sub.add_parser("rm", help="remove a model from the cache")
    remove.add_argument("names", nargs="+", metavar="NAME")


def _list(args) -> int:
    from ..hub import cache_dir, catalogue

    rows = catalogue()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    header = ("NAME", "TASK", "LICENCE", "SIZE", "SOURCE", "STATUS")
    table = [header] + [(r["name"], r["task"], r["licence"] + ("" if r["commercial_use"] else " *"), _size(r["size"]),
                         r["format"], r["status"]) for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    print(f"\n* needs --accept-license (fastface models list --json shows each licence's URL). Cache: {cache_dir()}")
    return 0


def _pull(args) -> int:
    from ..export.errors import ParityError
    from ..hub import pull

    status = 0
    for name in args.names:
        try:
            path = pull(name, accept_license=args.accept_license, force=args.force, timeout=args.timeout,
                        retries=args.retries, progress=not args.quiet,
                        log=(lambda message: None) if args.quiet else None)
        except ParityError as exc:
            print(f"fastface models: {name}: the converted model failed the parity gate; nothing installed\n{exc}",
                  file=sys.stderr)
            status = 1
            continue
        print(path)
        if args.int8:
            from ..export.quantize import quantize

            result = quantize(path, args.int8, log=None if args.quiet else (lambda m: print(m, file=sys.stderr)))
            if result.written:
                print(result.param)
            else:
                print(f"fastface models: {name}: the int8 variant failed its gate ({result.gate}); not written",
                      file=sys.stderr)
                status = 1
    return status


def _path(args) -> int:
    from ..hub import local_path

    print(local_path(args.name))
    return 0


def _verify(args) -> int:
    from ..hub import verify

    report = verify(args.names or None)
    if not report:
        print("no models installed")
    for name, problems in report.items():
        print(f"{name}: {'ok' if not problems else 'DAMAGED'}")
        for problem in problems:
            print(f"  {problem}")
    damaged = [n for n, p in report.items() if p]
    if damaged:
        print(f"repair with: fastface models pull --force {' '.join(damaged)}", file=sys.stderr)
    return 1 if damaged else 0


def _remove(args) -> int:
    from ..hub import remove

    missing = [name for name in args.names if not remove(name)]
    for name in missing:
        print(f"fastface models: {name} is not installed", file=sys.stderr)
    return 2 if missing else 0


def run(args: argparse.Namespace) -> int:
    return {"list": _list, "pull": _pull, "path": _path, "verify": _verify, "rm": _remove}[args.models_command](args)
