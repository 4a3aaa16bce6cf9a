"""The gallery argument of enroll, identify, watch and gallery: a file or a postgresql:// URL."""
from __future__ import annotations

import os
import sys
from urllib.parse import urlsplit

from ..gallery import Gallery, _is_url

GALLERY_HELP = ("gallery file, or a postgresql:// URL (credentials from libpq: PGPASSWORD, ~/.pgpass or a "
                "service file; a password in the URL shows in ps)")


def add_gallery_options(parser) -> None:
    parser.add_argument("--cache", metavar="FILE", default=os.environ.get("FASTFACE_GALLERY_CACHE"),
                        help="postgresql:// galleries: this board's encrypted copy, to start and keep answering "
                             "without the network (key from $FASTFACE_GALLERY_KEY or --key-file) "
                             "[$FASTFACE_GALLERY_CACHE]")
    parser.add_argument("--key-file", metavar="FILE",
                        help="the key of the cache or of an encrypted gallery file (32 bytes: raw, hex or "
                             "base64), never in the data's folder [$FASTFACE_GALLERY_KEY_FILE]")


def warn_if_password_in(url: str) -> None:
    if urlsplit(url).password:
        print("fastface: warning: the password in the gallery URL is visible to every user of this machine "
              "(ps); put it in PGPASSWORD, ~/.pgpass or a service file instead", file=sys.stderr)


def load_gallery(args, **server):
    """``Gallery.load`` of ``args.gallery``; a URL with the --cache / --key-file options."""
    if _is_url(args.gallery):
        warn_if_password_in(args.gallery)
        return Gallery.load(args.gallery, cache=args.cache, key_file=args.key_file, **server)
    if args.cache:
        raise ValueError("--cache is for postgresql:// galleries (a gallery file is its own local copy)")
    return Gallery.load(args.gallery, key_file=args.key_file)  # the key matters to encrypted files only
