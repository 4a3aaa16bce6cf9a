"""``fastface eval``: verification accuracy of one model on a pair list, through the engine
(ncnn model + card) or PyTorch (checkpoint), with the same metrics code."""
from __future__ import annotations

from pathlib import Path

from .faces import DEFAULT_FACE, FACE_RULES, FaceCrop
from .pairs import combine, read_pairs
from .report import markdown_details, markdown_protocol, markdown_table, write_report
from .metrics import at_threshold
from .verify import evaluate


def add_arguments(parser) -> None:
    parser.add_argument("--model", help="ncnn .param (card and .bin beside it) or, with --backend torch, a checkpoint "
                                         "(default: the bundled recognizer, with its own alignment)")
    parser.add_argument("--pairs", required=True, action="append",
                        help="LFW pairs.txt (or View 1's pairsDevTrain.txt / pairsDevTest.txt), a CSV "
                             "(file_a,file_b,same) or an insightface .bin; repeat to evaluate several lists as one")
    parser.add_argument("--images", help="image root (default: the pair file's folder, or its images/ for LFW lists)")
    parser.add_argument("--card", help="model card JSON, if not beside the model (engine backend)")
    parser.add_argument("--detector", help="RetinaFace/YuNet .param that detects and aligns raw photos first "
                                           "(default: the bundled YuNet; 'none': the images are aligned crops, "
                                           "the default for .bin pair lists)")
    parser.add_argument("--face", choices=FACE_RULES,
                        help=f"which detected face is the subject: the one nearest the photo's centre (central, "
                             f"the LFW protocol's choice and the default for every pair list), the largest, or "
                             f"the detector's best score (default {DEFAULT_FACE}; photos only, not with --detector none)")
    parser.add_argument("--strict", action="store_true",
                        help="stop at a photo without a detected face (default: align it with the template "
                             "centred and scaled to the photo, and count it in the report)")
    parser.add_argument("--backend", choices=["engine", "torch"], default="engine")
    parser.add_argument("--backbone", help="torch backend: backbone name when the checkpoint does not say")
    parser.add_argument("--flip", action="store_true", help="add the mirrored image's embedding")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--name", help="model name in the report (default: file stem)")
    parser.add_argument("--out", help="write JSON, Markdown and PNG plots here")
    parser.add_argument("--calibrate", action="store_true",
                        help="write the best same-person threshold on these pairs into the model's card")


def aligner(detector_path, size, template=None, threads: int = 1, face: str = DEFAULT_FACE,
            strict: bool = False, face_aligner=None) -> FaceCrop:
    """image -> aligned crop of the subject chosen by ``face`` (see :mod:`.faces`), cut as
    ``face_aligner`` (the recognizer's :class:`fastface.align.FaceAligner`) says, else onto ``template``."""
    return FaceCrop(detector_path, size, template, face=face, strict=strict, threads=threads, aligner=face_aligner)


def detects(args) -> bool:
    """Whether the pair list's images are photos to detect faces in (not aligned crops)."""
    if args.detector is None:
        lists = [args.pairs] if isinstance(args.pairs, str) else args.pairs  # --pairs may be repeated
        return not any(str(p).lower().endswith(".bin") for p in lists)  # .bin sets hold aligned crops
    return args.detector.lower() != "none"


def detector_path(args):
    """The --detector file, or None for the bundled one."""
    return args.detector if args.detector and args.detector.lower() != "none" else None


def embedder_for(args):
    """(embed_fn, crop size, template, the recognizer's FaceAligner, its card's threshold) for the
    chosen backend (None where the backend has no such thing)."""
    if args.backend == "torch":
        from .torch_backend import torch_embedder
        embed_fn, size = torch_embedder(args.model, args.backbone)
        return embed_fn, size, None, None, None
    from ..embed import Embedder
    model = Embedder(args.model, card=args.card, threads=args.threads)  # no --model: the bundled recognizer
    return ((lambda crops: model.embed(crops, normalize=False)), tuple(model.card["size"]), model.card.get("template"),
            model.aligner, model.card.get("threshold"))


def _bundled_name() -> str:
    from ..embed import DEFAULT_MODEL

    return DEFAULT_MODEL


def run(args) -> int:
    if not detects(args) and (args.face or args.strict):
        raise ValueError("--face and --strict choose among detected faces: not with --detector none")
    if args.card and args.backend == "torch":
        raise ValueError("--card describes an ncnn model; the torch backend reads its checkpoint")
    if args.calibrate and args.backend != "engine":
        raise ValueError("--calibrate writes into an ncnn model's card: use the engine backend")
    if args.model is None and (args.backend == "torch" or args.calibrate):
        raise ValueError("--model is needed with --backend torch and with --calibrate (the card it writes into)")
    pairs = combine([read_pairs(path, images=args.images) for path in args.pairs])
    embed_fn, size, template, face_aligner, card_threshold = embedder_for(args)
    crop = (aligner(detector_path(args), size, template, args.threads, args.face or DEFAULT_FACE, args.strict,
                    face_aligner) if detects(args) else None)
    result = evaluate(embed_fn, pairs, flip=args.flip, crop=crop, progress=True,
                      name=args.name or (Path(args.model).stem if args.model else _bundled_name()))
    print(markdown_table([result]))
    print(markdown_details([result]))
    print(markdown_protocol([result]))
    if card_threshold is not None:
        fixed = at_threshold(result.scores, result.same, card_threshold)
        print(f"\nAt the card's threshold {card_threshold:.4f} (what verify and identify decide): accuracy "
              f"{fixed['accuracy']:.2%}, FAR {fixed['far']:.2%} ({fixed['fp']} different-person pairs accepted), "
              f"FRR {fixed['frr']:.2%} ({fixed['fn']} same-person pairs rejected)")
    if args.out:
        for path in write_report([result], args.out):
            print(f"wrote {path}")
    if args.calibrate:
        from .calibrate import write_threshold

        card = Path(args.model).with_suffix(".json")
        found = write_threshold(card, result, " + ".join(Path(p).name for p in args.pairs))
        print(f"wrote threshold {found['value']} into {card} (accuracy {found['accuracy_at_threshold']:.4f} "
              f"on {found['pair_count']} pairs)")
    return 0
