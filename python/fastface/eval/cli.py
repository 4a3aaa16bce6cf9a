"""``fastface eval``: verification accuracy of one model on a pair list, through the engine
(ncnn model + card) or PyTorch (checkpoint), with the same metrics code."""
from __future__ import annotations

from pathlib import Path

from .pairs import read_pairs
from .report import markdown_details, markdown_table, write_report
from .verify import evaluate


def add_arguments(parser) -> None:
    parser.add_argument("--model", required=True,
                        help="ncnn .param (card and .bin beside it) or, with --backend torch, a checkpoint")
    parser.add_argument("--pairs", required=True, help="LFW pairs.txt, a CSV (file_a,file_b,same) or an insightface .bin")
    parser.add_argument("--images", help="image root (default: the pair file's folder)")
    parser.add_argument("--detector", help="RetinaFace/YuNet .param that detects and aligns raw photos first "
                                           "(default: the bundled YuNet; 'none': the images are aligned crops, "
                                           "the default for .bin pair lists)")
    parser.add_argument("--backend", choices=["engine", "torch"], default="engine")
    parser.add_argument("--backbone", help="torch backend: backbone name when the checkpoint does not say")
    parser.add_argument("--flip", action="store_true", help="add the mirrored image's embedding")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--name", help="model name in the report (default: file stem)")
    parser.add_argument("--out", help="write JSON, Markdown and PNG plots here")


def aligner(detector_path, size, template=None, threads: int = 1):
    """image -> aligned crop of its largest face (None when there is none); ``detector_path``
    None = the bundled detector."""
    from ..align import align
    from ..detect import Detector

    detector = Detector(detector_path, threads=threads)

    def crop(image):
        faces = detector.detect(image)
        if not faces:
            return None
        face = max(faces, key=lambda f: (f.bbox[2] - f.bbox[0]) * (f.bbox[3] - f.bbox[1]))
        return align(image, face.landmarks, size, template)

    return crop


def detects(args) -> bool:
    """Whether the pair list's images are photos to detect faces in (not aligned crops)."""
    if args.detector is None:
        return not str(args.pairs).lower().endswith(".bin")  # .bin sets hold aligned crops
    return args.detector.lower() != "none"


def detector_path(args):
    """The --detector file, or None for the bundled one."""
    return args.detector if args.detector and args.detector.lower() != "none" else None


def embedder_for(args):
    """(embed_fn, crop size, template) for the chosen backend."""
    if args.backend == "torch":
        from .torch_backend import torch_embedder
        embed_fn, size = torch_embedder(args.model, args.backbone)
        return embed_fn, size, None
    from ..embed import Embedder
    model = Embedder(args.model, threads=args.threads)
    return (lambda crops: model.embed(crops, normalize=False)), tuple(model.card["size"]), model.card.get("template")


def run(args) -> int:
    pairs = read_pairs(args.pairs, images=args.images)
    embed_fn, size, template = embedder_for(args)
    crop = aligner(detector_path(args), size, template, args.threads) if detects(args) else None
    result = evaluate(embed_fn, pairs, flip=args.flip, crop=crop, progress=True,
                      name=args.name or Path(args.model).stem)
    print(markdown_table([result]))
    print(markdown_details([result]))
    if args.out:
        for path in write_report([result], args.out):
            print(f"wrote {path}")
    return 0
