"""``fastface verify A B``: are the main (largest) faces of two photos the same person?"""
from __future__ import annotations

from .._opencv import read_image
from ._common import THRESHOLD_HELP, add_liveness_argument, add_model_arguments, analyzer, emit, is_live, threshold


def add_arguments(parser) -> None:
    parser.add_argument("image_a", help="photo; its largest face is the one compared "
                                        "(fastface eval picks the most central by default)")
    parser.add_argument("image_b", help="photo; its largest face is the one compared")
    parser.add_argument("--threshold", type=float, help=THRESHOLD_HELP)
    add_liveness_argument(parser)
    add_model_arguments(parser)


def run(args) -> int:
    faces = analyzer(args)
    cut = threshold(args, faces.embedder)
    a, b = (faces.largest_face(read_image(path)) for path in (args.image_a, args.image_b))
    missing = [p for p, f in ((args.image_a, a), (args.image_b, b)) if f is None]
    if missing:
        emit(args, {"same": None, "error": "no face", "images": missing}, f"no face found in {', '.join(missing)}")
        return 1
    score = float(a.embedding @ b.embedding)
    same = score >= cut
    calibration = faces.embedder.card.get("threshold_calibration", {}) if args.threshold is None else {}
    result = {"same": same, "score": score, "threshold": cut,
              # What the threshold does on the pairs it was calibrated on (None for --threshold).
              "far": calibration.get("far"), "frr": calibration.get("frr"),
              "calibrated_on": calibration.get("pairs")}
    text = f"{'same person' if same else 'different people'} (cosine {score:.4f}, threshold {cut})"
    if faces.liveness is not None:
        spoofs = [p for p, f in ((args.image_a, a), (args.image_b, b)) if not is_live(faces, f)]
        result.update(liveness=[a.liveness, b.liveness], liveness_threshold=faces.liveness.threshold,
                      spoof=spoofs)
        text += "".join(f"\n{p}: liveness {_fmt(f.liveness)}" for p, f in ((args.image_a, a), (args.image_b, b)))
        if spoofs:
            # A spoofed face proves nothing about who stands there: no match, whatever the cosine.
            result["same"] = False
            text = (f"refused: {', '.join(spoofs)} {'is' if len(spoofs) == 1 else 'are'} not a live face "
                    f"(cosine {score:.4f} ignored)" + text[text.index("\n"):])
    emit(args, result, text)
    return 0


def _fmt(score) -> str:
    return "not judged (face under 8 px)" if score is None else f"{score:.3f}"
