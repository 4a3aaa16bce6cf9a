"""``fastface gallery ls | rm | stats``: look after a gallery file without the models."""
from __future__ import annotations

import datetime
import json
from pathlib import Path

from ..gallery import Gallery, _is_url
from ._gallery_options import warn_if_password_in


def add_arguments(parser) -> None:
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    ls = actions.add_parser("ls", help="identities with their embedding counts and enrolment times")
    rm = actions.add_parser("rm", help="remove an identity and all its embeddings")
    stats = actions.add_parser("stats", help="counts, precision, memory and file size")
    for sub in (ls, rm, stats):
        sub.add_argument("gallery", help="gallery file or postgresql:// URL")
        sub.add_argument("--json", action="store_true", help="print JSON instead of text")
    rm.add_argument("name", help="identity to remove")


def _when(seconds: float) -> str:
    return datetime.datetime.fromtimestamp(seconds).isoformat(sep=" ", timespec="seconds")


def run(args) -> int:
    if _is_url(args.gallery):
        warn_if_password_in(args.gallery)
        gallery = Gallery.open(args.gallery, follow=False)  # ls and rm ask the server; stats loads the index
        path = gallery.path
    else:
        path = Path(args.gallery)
        if not path.is_file():
            raise FileNotFoundError(f"no gallery at {path}")
        gallery = Gallery.load(path)  # a version-1 file is read (not converted): ls and stats work on it
    if args.action == "ls":
        rows = gallery.identities()
        print(json.dumps(rows) if args.json else "\n".join(
            f"{r['name']}\t{r['embeddings']}\t{_when(r['first_added'])}\t{_when(r['last_added'])}" for r in rows))
    elif args.action == "rm":
        if gallery.path is None:
            raise ValueError(f"{path} is a version-1 file: convert it first (fastface enroll does, or Gallery.upgrade)")
        try:
            removed = gallery.remove(args.name)
        except KeyError:
            raise ValueError(f"no identity named {args.name!r} in {path}") from None
        print(json.dumps({"removed": removed, "name": args.name}) if args.json
              else f"removed {args.name} ({removed} embeddings)")
    else:
        stats = gallery.stats()
        print(json.dumps(stats) if args.json else "\n".join(f"{key}: {value}" for key, value in stats.items()))
    gallery.close()
    return 0
