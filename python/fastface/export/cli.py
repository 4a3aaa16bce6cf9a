"""``fastface export``: a model -> ncnn ``.param``/``.bin`` + model card, through pnnx, proven
by the parity gate. Exit status: 0 exported, 1 parity gate failed (nothing installed), 2 error.

    fastface export runs/mfn --out models/                               # fastface training folder
    fastface export model.pt --backbone iresnet50 --out out/ --fp16      # arcface_torch state dict
    fastface export w600k_r50.onnx --out out/ --faces aligned/           # ONNX, real faces in the gate
    fastface export --random-init 0 --backbone se_iresnet100 --architecture-only --out models/
    fastface export dlib_face_recognition_resnet_model_v1.dat --out out/  # dlib's ResNet (no pnnx/torch)
    fastface export yunet_s_dynamic.onnx --detector yunet --out models/  # detectors (any input size)
    fastface export Resnet50_Final.pth --detector retinaface-torch --backbone resnet50 --out out/
    fastface export 2.7_80x80_MiniFASNetV2.pth --liveness --images photos/,more/ --out models/  # liveness

torch (and pnnx, onnx, onnxruntime) are imported only when the command runs.
"""
from __future__ import annotations

import argparse
import json
import sys


def _numbers(text: str):
    values = [float(v) for v in text.split(",")]
    return values[0] if len(values) == 1 else values


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", nargs="?",
                        help="fastface training folder or checkpoint, arcface_torch state dict (.pt/.pth), .onnx, "
                             "or dlib's dlib_face_recognition_resnet_model_v1.dat")
    parser.add_argument("-o", "--out", required=True, help="output folder for <name>.param/.bin/.json")
    parser.add_argument("--name", help="file stem of the outputs (default: the backbone or source name)")
    parser.add_argument("--backbone", help="backbone of a state dict (mobilefacenet, mbf, iresnet18..200, "
                                           "se_iresnet100; mobilenet0.25 or resnet50 for retinaface-torch)")
    parser.add_argument("--embedding-size", type=int, help="embedding size (default: from the weights)")
    parser.add_argument("--input-size", type=int, help="input side in pixels (default: from the weights/file, or 112; "
                                                       "a detector ONNX of dynamic size stays dynamic unless given)")
    parser.add_argument("--random-init", type=int, metavar="SEED",
                        help="export --backbone with seeded random weights instead of a source")
    parser.add_argument("--detector", metavar="KIND", help="export a face detector for this decoder "
                                                           "(yunet, retinaface-torch)")
    parser.add_argument("--liveness", action="store_true",
                        help="export a liveness model (minivision's <scale>_80x80_MiniFASNet*.pth); the gate crops "
                             "faces from --images (photos; several folders comma-separated)")
    parser.add_argument("--fp16", action="store_true", help="store weights as fp16 (gate: cosine >= 0.999)")
    parser.add_argument("--faces", "--images", dest="faces", metavar="DIR",
                        help="images for the parity gate: aligned face crops (resized to the input size) or, "
                             "for detectors, photos (letterboxed); default: a fixed synthetic set")
    parser.add_argument("--num-faces", type=int, help="use at most this many gate images (synthetic: how many)")
    parser.add_argument("--allow-parity-failure", action="store_true",
                        help="install the model even if the gate fails (the card records the failure)")
    parser.add_argument("--allow-other-weights", action="store_true",
                        help="dlib .dat: accept weights other than dlib's published file (your own training)")
    parser.add_argument("--architecture-only", action="store_true",
                        help="keep .param and card but no .bin (for timing with zero weights)")
    parser.add_argument("--channel-order", choices=["RGB", "BGR", "GRAY"], type=str.upper,
                        help="network input channel order (default: RGB for recognizers)")
    parser.add_argument("--mean", type=_numbers, help="input mean, one value or three (default: 127.5)")
    parser.add_argument("--scale", type=_numbers, help="input scale after the mean, one or three (default: 1/127.5)")
    parser.add_argument("--optlevel", type=int, default=2, choices=[0, 1, 2], help="pnnx graph optimisation level")
    parser.add_argument("--int8", action="store_true",
                        help="also write <name>.int8.param/.bin/.json with fastface quantize (needs --calibration)")
    parser.add_argument("--calibration", metavar="DIR", help="photos for --int8 calibration and its gate")
    parser.add_argument("--quiet", action="store_true", help="print only errors and the gate report on failure")


def _recognizer_source(args):
    if args.random_init is not None:
        if args.source:
            raise ValueError("give either a source or --random-init, not both")
        if not args.backbone:
            raise ValueError("--random-init needs --backbone")
        from .sources import random_backbone

        model = random_backbone(args.backbone, args.random_init, args.embedding_size, args.input_size or 112)
        return model, {"kind": "random-init", "seed": args.random_init}
    if not args.source:
        raise ValueError("give a source (checkpoint, state dict or .onnx) or --random-init SEED --backbone NAME")
    return args.source, None


def _detector_source(args):
    if args.source and args.source.lower().endswith(".onnx"):
        if args.random_init is not None:
            raise ValueError("give either a source or --random-init, not both")
        return args.source, None
    if args.detector != "retinaface-torch":
        raise ValueError(f"--detector {args.detector} exports from an .onnx file; only retinaface-torch "
                         "also takes a PyTorch checkpoint or --random-init")
    import torch

    from ..train.retinaface import RetinaFace, load_biubug6
    from .errors import ExportError

    try:
        model = RetinaFace(args.backbone or "mobilenet0.25")
    except ValueError as exc:
        raise ExportError(str(exc)) from None
    if args.random_init is not None:
        torch.manual_seed(args.random_init)
        return model.eval(), ["loc", "conf", "landmarks"]
    if not args.source:
        raise ValueError("give a RetinaFace checkpoint or --random-init SEED")
    from .sources import _torch_load

    state = _torch_load(__import__("pathlib").Path(args.source))
    try:
        load_biubug6(model, state.get("state_dict", state) if isinstance(state, dict) else state)
    except (RuntimeError, AttributeError) as exc:
        raise ExportError(f"{args.source} is not a {args.backbone or 'mobilenet0.25'} RetinaFace checkpoint: "
                          f"{exc}") from None
    return model.eval(), ["loc", "conf", "landmarks"]


def run(args: argparse.Namespace) -> int:
    from .errors import ParityError

    if args.int8 and not args.calibration:
        raise ValueError("--int8 needs --calibration DIR (photos to calibrate on)")
    if args.int8 and args.architecture_only:
        raise ValueError("--int8 needs weights; it cannot go with --architecture-only")
    if args.int8 and args.liveness:
        raise ValueError("--int8 quantizes recognizers and detectors, not liveness models")
    log = None if args.quiet else (lambda message: print(message, file=sys.stderr))
    try:
        if args.liveness:
            from .liveness import export_liveness

            if not args.source:
                raise ValueError("--liveness needs the model file")
            result = export_liveness(args.source, args.out, args.name,
                                     photos=args.faces.split(",") if args.faces else None, num_photos=args.num_faces,
                                     allow_parity_failure=args.allow_parity_failure, optlevel=args.optlevel, log=log)
        elif args.detector:
            from .detector import export_detector

            source, output_names = _detector_source(args)
            card = {k: v for k, v in (("channel_order", args.channel_order), ("mean", args.mean),
                                      ("scale", args.scale)) if v is not None}
            result = export_detector(source, args.out, args.name, kind=args.detector, card=card,
                                     input_size=args.input_size, output_names=output_names, fp16=args.fp16,
                                     images=args.faces, num_images=args.num_faces,
                                     allow_parity_failure=args.allow_parity_failure, optlevel=args.optlevel, log=log)
        else:
            from .recognizer import export_recognizer
            from .sources import module_source

            source, random_info = _recognizer_source(args)
            if random_info is not None:
                source = module_source(source, args.backbone, args.input_size or 112, random_info)
            result = export_recognizer(source, args.out, args.name, backbone=args.backbone,
                                       embedding_size=args.embedding_size, input_size=args.input_size,
                                       fp16=args.fp16, faces=args.faces, num_faces=args.num_faces,
                                       allow_parity_failure=args.allow_parity_failure,
                                       architecture_only=args.architecture_only, channel_order=args.channel_order,
                                       mean=args.mean, scale=args.scale, optlevel=args.optlevel,
                                       allow_other_weights=args.allow_other_weights, log=log)
    except ParityError as exc:
        print(f"fastface export: {exc}", file=sys.stderr)
        print("fastface export: nothing installed (use --allow-parity-failure to keep a failed conversion)",
              file=sys.stderr)
        return 1
    if not result.parity.passed:
        print(f"fastface export: WARNING, installed despite a failed gate:\n{result.parity}", file=sys.stderr)
    elif log:
        log(str(result.parity))
    written = [str(p) for p in (result.param, result.bin, result.card_path) if p is not None]
    figure = {"max_softmax_diff": float(result.parity.diffs.max())} if args.liveness else \
        {"min_cosine": result.parity.min_cosine if result.parity.min_cosine == result.parity.min_cosine else None}
    int8_status = None
    if args.int8:
        from .quantize import quantize

        int8 = quantize(result.param, args.calibration, task="detection" if args.detector else "recognition",
                        log=log)
        int8_status = {"passed": int8.passed, "written": int8.written, "method": int8.method, "gate": int8.gate,
                       "float_layers": int8.float_layers}
        if int8.written:
            written += [str(p) for p in (int8.param, int8.bin, int8.card_path)]
        else:
            print("fastface export: the int8 variant failed its gate; not written (fastface quantize --force "
                  "writes it anyway)", file=sys.stderr)
    print(json.dumps({"written": written, "parity_passed": result.parity.passed, "int8": int8_status, **figure,
                      "seconds": result.seconds}))
    return 0
