"""``fastface liveness PHOTO...``: is each face a live person or a photo/screen held up?"""
from __future__ import annotations

import os

from .._opencv import read_image
from ..detect import Detector
from ..liveness import Liveness
from ._common import emit


def add_arguments(parser) -> None:
    parser.add_argument("images", nargs="+", metavar="PHOTO", help="photos; every face found is scored")
    parser.add_argument("--threshold", type=float, help="live at or above this probability (default: the cards', 0.5)")
    parser.add_argument("--detector", default=os.environ.get("FASTFACE_DETECTOR"),
                        help="detector .param or model name [$FASTFACE_DETECTOR]; default: the bundled YuNet")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")


def run(args) -> int:
    from ..hub import resolve_arg

    detector = (Detector(resolve_arg(args.detector, "detector"), threads=args.threads) if args.detector
                else Detector(threads=args.threads))
    live = Liveness(threads=args.threads, threshold=args.threshold)
    photos, lines = [], []
    for path in args.images:
        image = read_image(path)
        faces = []
        for face in detector.detect(image):
            entry = {"bbox": [round(float(v), 1) for v in face.bbox], "detector_score": round(face.score, 4)}
            try:
                score, per_model = live.scores(image, face)
            except ValueError as exc:  # a face under 8 px: too small to judge
                entry.update(liveness=None, live=None, reason=str(exc))
                lines.append(f"{path}: face at {tuple(int(v) for v in face.bbox)}: not judged ({exc})")
            else:
                entry.update(liveness=score, per_model=per_model, live=score >= live.threshold)
                lines.append(f"{path}: face at {tuple(int(v) for v in face.bbox)}: "
                             f"{'live' if entry['live'] else 'SPOOF'} (liveness {score:.3f})")
            faces.append(entry)
        if not faces:
            lines.append(f"{path}: no face found")
        photos.append({"image": path, "faces": faces})
    emit(args, {"threshold": live.threshold, "photos": photos}, "\n".join(lines))
    return 0
