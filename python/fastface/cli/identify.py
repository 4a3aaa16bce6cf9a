"""``fastface identify GALLERY PHOTO``: name every face in a photo from a gallery."""
from __future__ import annotations

from .._opencv import import_cv2, read_image
from ._common import THRESHOLD_HELP, add_liveness_argument, add_model_arguments, analyzer, emit, is_live, threshold
from ._gallery_options import GALLERY_HELP, add_gallery_options, load_gallery


def add_arguments(parser) -> None:
    parser.add_argument("gallery", help=GALLERY_HELP)
    parser.add_argument("image", help="photo; every face found in it is named (no subject is chosen, unlike verify)")
    parser.add_argument("-k", type=int, default=3, help="candidates per face (default 3)")
    parser.add_argument("--threshold", type=float, help=THRESHOLD_HELP)
    parser.add_argument("--annotate", help="write the image with boxes, landmarks and names here")
    add_liveness_argument(parser)
    add_model_arguments(parser)
    add_gallery_options(parser)


def run(args) -> int:
    gallery = load_gallery(args, follow=False)
    faces = analyzer(args)
    if faces.embedder.dim != gallery.dim:
        raise ValueError(f"the gallery holds {gallery.dim}-d embeddings but the model makes {faces.embedder.dim}-d")
    cut = threshold(args, faces.embedder)
    image = read_image(args.image)
    found = faces.analyze(image)
    results, labels, lines = [], [], []
    for face in found:
        match, candidates = gallery.identify(face.embedding, cut, k=args.k)
        result = {"bbox": [round(float(v), 1) for v in face.bbox], "score": face.score, "match": match,
                  "candidates": [{"name": n, "score": s} for n, s in candidates]}
        live = is_live(faces, face)
        note = ""
        if live is not None:
            result.update(liveness=face.liveness, live=live)
            note = f" liveness {face.liveness:.3f}" if face.liveness is not None else " liveness not judged"
            if not live and match is not None:  # a photo of an enrolled person is not that person
                result.update(match=None, refused=match)
                note += f", refused {match}: not a live face"
                match = None
        results.append(result)
        labels.append(match or ("spoof" if live is False else "unknown"))
        lines.append(f"face at {tuple(int(v) for v in face.bbox)}: {match or 'unknown'} "
                     f"({', '.join(f'{n} {s:.3f}' for n, s in candidates)}){note}")
    if args.annotate:
        _annotate(image, found, labels, args.annotate)
    emit(args, {"faces": results}, "\n".join(lines) if lines else "no face found")
    return 0


def _annotate(image, faces, labels, path) -> None:
    """Write ``image`` with boxes, landmarks and labels drawn on it."""
    cv2 = import_cv2()
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
