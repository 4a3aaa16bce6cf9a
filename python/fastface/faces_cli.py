"""``fastface verify | enroll | identify``: the end-to-end path from image files.

Models are local files — ``--model`` (an embedder .param with its .bin and .json card beside
it) and ``--detector`` (a detector .param), or the environment variables FASTFACE_MODEL and
FASTFACE_DETECTOR — or model names resolved through the model cache (``fastface models``);
without them, the bundled models (dlib's ResNet recognizer and the bundled YuNet detector).
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import numpy as np

from .analyze import FaceAnalyzer
from .detect import Detector, Face
from .embed import Embedder
from .gallery import Gallery
from ._opencv import import_cv2

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".pgm", ".ppm", ".tif", ".tiff", ".webp"}
DEFAULT_THRESHOLD = 0.35  # MobileFaceNet-class models; a card's "threshold" overrides it


def _cv2():
    try:
        return import_cv2()
    except ImportError as exc:
        raise RuntimeError(str(exc)) from None  # the CLI prints it as an error


def read_image(path) -> np.ndarray:
    image = _cv2().imread(str(path), 1)
    if image is None:
        if not Path(path).is_file():
            raise FileNotFoundError(f"no image at {path}")
        raise ValueError(f"{path} is not a readable image")
    return image


def _add_model_arguments(parser) -> None:
    parser.add_argument("--model", default=os.environ.get("FASTFACE_MODEL"),
                        help="embedder .param (card .json and .bin beside it), or a model name "
                             "(fastface models list) [$FASTFACE_MODEL; default: the bundled dlib ResNet]")
    parser.add_argument("--card", help="model card JSON, if not beside the model")
    parser.add_argument("--detector", default=os.environ.get("FASTFACE_DETECTOR"),
                        help="detector .param (.bin and card beside it), or a model name [$FASTFACE_DETECTOR]; "
                             "default: the bundled YuNet")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")


def _analyzer(args) -> FaceAnalyzer:
    from .hub import resolve_arg  # --model / --detector may name a registry model

    detector = (Detector(resolve_arg(args.detector, "detector"), threads=args.threads) if args.detector
                else Detector(threads=args.threads))
    # No --model: Embedder's bundled default (dlib's ResNet); --card still overrides its card.
    model = resolve_arg(args.model, "recognizer") if args.model else None
    return FaceAnalyzer(detector, Embedder(model, card=args.card, threads=args.threads))


def _main_face(analyzer: FaceAnalyzer, path_or_image) -> tuple[np.ndarray, Face | None]:
    image = read_image(path_or_image) if not isinstance(path_or_image, np.ndarray) else path_or_image
    faces = analyzer.analyze(image)
    # The largest face is the subject; the others are bystanders.
    main = max(faces, key=lambda f: (f.bbox[2] - f.bbox[0]) * (f.bbox[3] - f.bbox[1]), default=None)
    return image, main


def annotate(image: np.ndarray, faces: list[Face], labels: list[str], path) -> None:
    """Write ``image`` with boxes, landmarks and labels drawn on it."""
    cv2 = _cv2()
    canvas = image.copy()
    thickness = max(1, round(max(image.shape[:2]) / 500))
    for face, label in zip(faces, labels):
        x1, y1, x2, y2 = (int(round(v)) for v in face.bbox)
        cv2.rectangle(canvas, (x1, y1), (x2, y2), (0, 200, 0), thickness)
        for x, y in face.landmarks:
            cv2.circle(canvas, (int(round(x)), int(round(y))), thickness + 1, (0, 0, 255), -1)
        cv2.putText(canvas, label, (x1, max(0, y1 - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.5 * thickness, (0, 200, 0),
                    thickness)
    if not cv2.imwrite(str(path), canvas):
        raise OSError(f"could not write {path}")


def _progress(items, description):
    """A progress bar on stderr: tqdm's when installed, else a one-line counter."""
    try:
        from tqdm import tqdm
    except ImportError:
        return _counter(items, description)
    return tqdm(items, desc=description, unit="image", file=sys.stderr)


def _counter(items, description):
    total = len(items)
    for done, item in enumerate(items):
        print(f"\r{description}: {done}/{total} images", end="", file=sys.stderr, flush=True)
        yield item
    print(f"\r{description}: {total}/{total} images", file=sys.stderr, flush=True)


def _emit(args, result: dict, text: str) -> None:
    print(json.dumps(result) if args.json else text)


def verify_add_arguments(parser) -> None:
    parser.add_argument("image_a", help="photo; its largest face is the one compared "
                                        "(fastface eval picks the most central by default)")
    parser.add_argument("image_b", help="photo; its largest face is the one compared")
    parser.add_argument("--threshold", type=float, help=f"same-person cosine threshold (default: card or {DEFAULT_THRESHOLD})")
    _add_model_arguments(parser)


def verify_run(args) -> int:
    analyzer = _analyzer(args)
    threshold = args.threshold if args.threshold is not None else analyzer.embedder.card.get("threshold", DEFAULT_THRESHOLD)
    (_, a), (_, b) = _main_face(analyzer, args.image_a), _main_face(analyzer, args.image_b)
    missing = [p for p, f in ((args.image_a, a), (args.image_b, b)) if f is None]
    if missing:
        _emit(args, {"same": None, "error": "no face", "images": missing}, f"no face found in {', '.join(missing)}")
        return 1
    score = float(a.embedding @ b.embedding)
    same = score >= threshold
    _emit(args, {"same": same, "score": score, "threshold": threshold},
          f"{'same person' if same else 'different people'} (cosine {score:.4f}, threshold {threshold})")
    return 0


def enroll_add_arguments(parser) -> None:
    parser.add_argument("gallery", help="gallery file: created if missing, else extended (a version-1 file is "
                                        "converted first, the original kept as GALLERY.v1)")
    parser.add_argument("folder", help="one sub-folder per identity, holding that person's photos "
                                       "(the largest face of each photo is enrolled)")
    parser.add_argument("--dtype", choices=["float32", "float16", "int8"], default="float32",
                        help="precision of a new gallery (default float32)")
    _add_model_arguments(parser)


def enroll_run(args) -> int:
    """Each photo is one transaction, so an interrupted run keeps what it enrolled; a re-run skips
    photos already enrolled (same path, same content) and replaces those whose content changed."""
    folder = Path(args.folder)
    people = sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
    if not people:
        raise ValueError(f"{folder} has no identity sub-folders")
    analyzer = _analyzer(args)
    gallery_path = Path(args.gallery)
    upgraded = Gallery.upgrade(gallery_path) if gallery_path.exists() else None
    gallery = Gallery.open(gallery_path, dim=analyzer.embedder.dim, dtype=None if gallery_path.exists() else args.dtype)
    known = gallery.sources()
    photos = [(person.name, p) for person in people for p in sorted(person.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES]
    enrolled, already, skipped = 0, 0, []
    for name, photo in _progress(photos, "enrolling"):
        source = os.path.abspath(photo)  # the path as given (a symlink is its own photo)
        data = photo.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        if known.get(source) == digest:
            already += 1
            continue
        image = _cv2().imdecode(np.frombuffer(data, np.uint8), 1)
        face = _main_face(analyzer, image)[1] if image is not None else None
        if face is None:
            skipped.append(str(photo))
            continue
        with gallery.transaction():  # a changed photo's old embedding goes in the same transaction
            if source in known:
                gallery.remove_source(source)
            gallery.add(name, face.embedding, metadata={"photo": str(photo)}, source=source, source_sha256=digest)
        enrolled += 1
    identities = len(gallery.names)
    _emit(args, {"gallery": str(gallery_path), "enrolled": enrolled, "already_enrolled": already,
                 "identities": identities, "skipped": skipped, "upgraded_from": str(upgraded) if upgraded else None},
          f"enrolled {enrolled} faces of {identities} identities into {gallery_path}"
          + (f"; {already} photos were already enrolled" if already else "")
          + (f"; skipped {len(skipped)} images without a readable face" if skipped else "")
          + (f"; converted the version-1 file (original kept as {upgraded})" if upgraded else ""))
    return 0


def identify_add_arguments(parser) -> None:
    parser.add_argument("gallery")
    parser.add_argument("image", help="photo; every face found in it is named (no subject is chosen, unlike verify)")
    parser.add_argument("-k", type=int, default=3, help="candidates per face (default 3)")
    parser.add_argument("--threshold", type=float, help=f"accept a match at this cosine (default: card or {DEFAULT_THRESHOLD})")
    parser.add_argument("--annotate", help="write the image with boxes, landmarks and names here")
    _add_model_arguments(parser)


def identify_run(args) -> int:
    gallery = Gallery.load(args.gallery)
    analyzer = _analyzer(args)
    if analyzer.embedder.dim != gallery.dim:
        raise ValueError(f"the gallery holds {gallery.dim}-d embeddings but the model makes {analyzer.embedder.dim}-d")
    threshold = args.threshold if args.threshold is not None else analyzer.embedder.card.get("threshold", DEFAULT_THRESHOLD)
    image = read_image(args.image)
    faces = analyzer.analyze(image)
    results, labels, lines = [], [], []
    for face in faces:
        candidates = gallery.search(face.embedding, k=args.k)
        match = candidates[0][0] if candidates and candidates[0][1] >= threshold else None
        results.append({"bbox": [round(float(v), 1) for v in face.bbox], "score": face.score, "match": match,
                        "candidates": [{"name": n, "score": s} for n, s in candidates]})
        labels.append(match or "unknown")
        lines.append(f"face at {tuple(int(v) for v in face.bbox)}: {match or 'unknown'} "
                     f"({', '.join(f'{n} {s:.3f}' for n, s in candidates)})")
    if args.annotate:
        annotate(image, faces, labels, args.annotate)
    _emit(args, {"faces": results}, "\n".join(lines) if lines else "no face found")
    return 0
