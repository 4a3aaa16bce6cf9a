"""``fastface enroll GALLERY FOLDER``: add a folder of identity folders to a gallery file."""
from __future__ import annotations

from pathlib import Path

from ..gallery import Gallery, _is_url, enroll_folder, identity_folders
from ._common import add_model_arguments, analyzer, emit, progress
from ._gallery_options import warn_if_password_in


def add_arguments(parser) -> None:
    parser.add_argument("gallery", help="gallery file: created if missing, else extended (a version-1 file is "
                                        "converted first, the original kept as GALLERY.v1); or a postgresql:// "
                                        "URL (a writer role; credentials from PGPASSWORD, ~/.pgpass or a service "
                                        "file): every board following it has the new faces within a second")
    parser.add_argument("folder", help="one sub-folder per identity, holding that person's photos "
                                       "(the largest face of each photo is enrolled)")
    parser.add_argument("--dtype", choices=["float32", "float16", "int8"],
                        help="precision of a new gallery (default float32); an existing one keeps its own")
    add_model_arguments(parser)


def run(args) -> int:
    identity_folders(args.folder)  # a wrong folder fails before the models load or the gallery is made
    faces = analyzer(args)
    if _is_url(args.gallery):
        warn_if_password_in(args.gallery)
        upgraded, gallery = None, Gallery.open(args.gallery, dim=faces.embedder.dim, dtype=args.dtype)
        path = gallery.path  # the server, named without its password
    else:
        path = Path(args.gallery)
        upgraded = Gallery.upgrade(path) if path.exists() else None
        gallery = Gallery.open(path, dim=faces.embedder.dim, dtype=None if path.exists() else args.dtype or "float32")
    done = enroll_folder(gallery, args.folder, faces, progress=progress("enrolling"))
    gallery.close()
    skipped = done["skipped"]
    emit(args, {"gallery": str(path), **done, "upgraded_from": str(upgraded) if upgraded else None},
         f"enrolled {done['enrolled']} faces of {done['identities']} identities into {path}"
         + (f"; {done['already_enrolled']} photos were already enrolled" if done["already_enrolled"] else "")
         + (f"; skipped {len(skipped)} images without a readable face" if skipped else "")
         + (f"; converted the version-1 file (original kept as {upgraded})" if upgraded else ""))
    return 0
