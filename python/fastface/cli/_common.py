"""What the model-using subcommands share: the model options and the output helpers."""
from __future__ import annotations

import json
import os
import sys

from ..analyze import FaceAnalyzer
from ..detect import Detector
from ..embed import DEFAULT_THRESHOLD, Embedder

THRESHOLD_HELP = f"same-person cosine (default: the model card's calibrated threshold, else {DEFAULT_THRESHOLD})"


def add_model_arguments(parser) -> None:
    parser.add_argument("--model", default=os.environ.get("FASTFACE_MODEL"),
                        help="embedder .param (card .json and .bin beside it), or a model name "
                             "(fastface models list) [$FASTFACE_MODEL; default: the bundled dlib ResNet]")
    parser.add_argument("--card", help="model card JSON, if not beside the model")
    parser.add_argument("--detector", default=os.environ.get("FASTFACE_DETECTOR"),
                        help="detector .param (.bin and card beside it), or a model name [$FASTFACE_DETECTOR]; "
                             "default: the bundled YuNet")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")


def models(args) -> tuple[Detector, Embedder]:
    """The detector and embedder that --detector / --model / --card name (files or registry
    names), else the bundled ones."""
    from ..hub import resolve_arg

    detector = (Detector(resolve_arg(args.detector, "detector"), threads=args.threads) if args.detector
                else Detector(threads=args.threads))
    model = resolve_arg(args.model, "recognizer") if args.model else None  # None: the bundled dlib ResNet
    return detector, Embedder(model, card=args.card, threads=args.threads)


def add_liveness_argument(parser) -> None:
    parser.add_argument("--liveness", action="store_true",
                        help="also score each face's liveness (bundled MiniFASNet pair) and refuse a match on a "
                             "spoof (a photo or screen held up to the camera)")


def analyzer(args) -> FaceAnalyzer:
    live = None
    if getattr(args, "liveness", False):
        from ..liveness import Liveness

        live = Liveness(threads=args.threads)
    return FaceAnalyzer(*models(args), liveness=live or False)


def is_live(analyzer: FaceAnalyzer, face) -> bool | None:
    """Whether a face passed liveness: None when not checked, False for spoofs and for faces too
    small to judge (a door opens only for a face shown to be live)."""
    if analyzer.liveness is None:
        return None
    return face.liveness is not None and face.liveness >= analyzer.liveness.threshold


def threshold(args, embedder: Embedder) -> float:
    return args.threshold if args.threshold is not None else embedder.threshold


def emit(args, result: dict, text: str) -> None:
    print(json.dumps(result) if args.json else text)


def progress(description: str):
    """A progress wrapper for a list, on stderr: tqdm's bar when installed, else a counter."""
    def wrap(items):
        try:
            from tqdm import tqdm
        except ImportError:
            return _counter(items, description)
        return tqdm(items, desc=description, unit="image", file=sys.stderr)
    return wrap


def _counter(items, description):
    total = len(items)
    for done, item in enumerate(items):
        print(f"\r{description}: {done}/{total} images", end="", file=sys.stderr, flush=True)
        yield item
    print(f"\r{description}: {total}/{total} images", file=sys.stderr, flush=True)
