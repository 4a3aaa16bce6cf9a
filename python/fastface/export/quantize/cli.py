"""``fastface quantize``: an ncnn model -> its int8 variant ``<stem>.int8.param/.bin/.json``,
calibrated on your photos and proven by the gate. Exit status: 0 written, 1 the gate failed
(nothing written; ``--force`` writes anyway and records the failure in the card), 2 error.

    fastface quantize models/dlib_resnet_v1.param --images photos/ --pairs lfw/pairsDevTest.txt
    fastface quantize yunet_s --images photos/ --out int8/
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .calibrate import METHODS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="ncnn .param (with .bin and card .json beside it) or a registry name")
    parser.add_argument("--images", required=True, metavar="DIR",
                        help="calibration photos (searched recursively): recognizers use every face the bundled "
                             "detector finds, aligned as the card says; detectors use the whole photos")
    parser.add_argument("--out", help="output folder (default: beside the model)")
    parser.add_argument("--pairs", action="append", default=[], metavar="LIST",
                        help="pair list(s) for the verification-accuracy gate (LFW .txt, .csv, .bin); repeatable")
    parser.add_argument("--pair-images", metavar="DIR", help="image root of the pair lists")
    parser.add_argument("--method", action="append", choices=METHODS,
                        help="calibration method(s) to try (default: all; the gate picks)")
    parser.add_argument("--min-faces", type=int, help="calibration faces (photos for detectors) required")
    parser.add_argument("--max-faces", type=int, default=1000, help="use at most this many faces/photos")
    parser.add_argument("--task", choices=["recognition", "detection"], help="default: from the card")
    parser.add_argument("--no-requantize", action="store_true",
                        help="keep int8 convolution outputs in float (no int8_scale_term+100 fusion)")
    parser.add_argument("--no-search", action="store_true",
                        help="when no candidate passes, do not search for the layers to keep float")
    parser.add_argument("--force", action="store_true", help="write the model even if it fails the gate")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quiet", action="store_true")


def resolve_model(name: str) -> Path:
    path = Path(name)
    if path.suffix == ".param" or path.exists():
        return path
    from ...hub.cache import local_path

    return Path(local_path(name))


def run(args: argparse.Namespace) -> int:
    from . import quantize

    log = None if args.quiet else (lambda message: print(message, file=sys.stderr))
    result = quantize(resolve_model(args.model), args.images, out=args.out, task=args.task,
                      methods=args.method or METHODS, min_faces=args.min_faces, max_faces=args.max_faces,
                      pairs=args.pairs, pair_images=args.pair_images, force=args.force,
                      requantize=not args.no_requantize, search=not args.no_search, threads=args.threads, log=log)
    print(json.dumps({"written": [str(p) for p in (result.param, result.bin, result.card_path)] if result.written
                      else [], "passed": result.passed, "method": result.method, "int8_layers": result.int8_layers,
                      "float_layers": result.float_layers, "gate": result.gate,
                      "seconds": round(result.seconds, 1)}, indent=2))
    if not result.passed and not result.written:
        print("fastface quantize: the int8 model failed the gate; nothing written (--force writes it anyway)",
              file=sys.stderr)
        return 1
    return 0
