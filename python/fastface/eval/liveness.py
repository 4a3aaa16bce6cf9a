"""Liveness evidence: fastface's liveness against minivision's reference pipeline, photo by photo,
the bundled detector's boxes against the reference detector's, and what it says on bona-fide
photos (ORL, aligned LFW).

    python -m fastface.eval.liveness [--data ../shared/data] [--json out.json]

The reference pipeline is the authors' ``test.py``: their Caffe RetinaFace (OpenCV's dnn module,
which reads Caffe models up to OpenCV 4.x) on the photo shrunk to ~192x192, its most confident
box as ``[int(left), int(top), int(right - left + 1), int(bottom - top + 1)]``, ``CropImage``
per model (OpenCV resize) and the PyTorch MiniFASNets, argmax of the summed softmaxes (1 = real).
With OpenCV 5 (no Caffe reader) the box comparison is skipped and the reference runs on
fastface's boxes only. Needs torch and OpenCV (the [export] extra).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

MODEL_FILES = {2.7: "2.7_80x80_MiniFASNetV2.pth", 4.0: "4_0_0_80x80_MiniFASNetV1SE.pth"}


class ReferenceDetector:
    """The authors' ``Detection.get_bbox``: Caffe RetinaFace at ~192x192 (area kept, aspect
    kept), mean (104, 117, 123), the most confident box in image pixels (floats, x1 y1 x2 y2)."""

    def __init__(self, folder: Path):
        import cv2

        self.cv2 = cv2
        self.net = cv2.dnn.readNetFromCaffe(str(folder / "deploy.prototxt"),
                                            str(folder / "Widerface-RetinaFace.caffemodel"))

    def __call__(self, image: np.ndarray):
        cv2 = self.cv2
        height, width = image.shape[:2]
        aspect = width / height
        small = image
        if width * height >= 192 * 192:
            small = cv2.resize(image, (int(192 * math.sqrt(aspect)), int(192 / math.sqrt(aspect))),
                               interpolation=cv2.INTER_LINEAR)
        self.net.setInput(cv2.dnn.blobFromImage(small, 1, mean=(104, 117, 123)), "data")
        out = self.net.forward("detection_out").squeeze().reshape(-1, 7)
        best = out[int(np.argmax(out[:, 2]))]
        if best[2] <= 0:
            return None
        return np.array([best[3] * width, best[4] * height, best[5] * width, best[6] * height]), float(best[2])


def load_reference_detector(folder: Path):
    """The Caffe detector, or (None, why) where this OpenCV cannot read Caffe models."""
    import cv2

    try:
        return ReferenceDetector(folder), None
    except (cv2.error, AttributeError) as exc:
        return None, f"OpenCV {cv2.__version__} cannot read the Caffe model ({type(exc).__name__})"


class ReferenceModels:
    """The PyTorch MiniFASNets on the authors' crops; ``scores(image, box)`` -> per-model real
    probabilities and the reference decision (argmax of the summed 3-class softmaxes)."""

    def __init__(self, folder: Path):
        import torch

        from ..train.minifasnet import load_minifasnet

        self.torch = torch
        self.models = {scale: load_minifasnet(folder / name) for scale, name in MODEL_FILES.items()}

    def scores(self, image: np.ndarray, box) -> tuple[list[float], bool]:
        from ..export.liveness import box_xywh, reference_crop

        total = np.zeros(3)
        per_model = []
        for scale, model in self.models.items():
            crop = reference_crop(image, box_xywh(box), scale)
            with self.torch.no_grad():
                p = self.torch.softmax(model(self.torch.from_numpy(crop.transpose(2, 0, 1)[None].astype(np.float32))),
                                       1)[0].numpy().astype(np.float64)
            total += p
            per_model.append(float(p[1]))
        return per_model, int(np.argmax(total)) == 1


def iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def box_relation(ours, ref) -> dict:
    """How the reference box sits relative to ours: centre shift in units of our width/height,
    and its size in units of ours."""
    w, h = ours[2] - ours[0], ours[3] - ours[1]
    return {"dx": float(((ref[0] + ref[2]) - (ours[0] + ours[2])) / 2 / w),
            "dy": float(((ref[1] + ref[3]) - (ours[1] + ours[3])) / 2 / h),
            "sw": float((ref[2] - ref[0]) / w), "sh": float((ref[3] - ref[1]) / h)}


def map_box(box, relation: dict) -> np.ndarray:
    """``box`` moved and resized by a :func:`box_relation` (e.g. the mean one)."""
    w, h = box[2] - box[0], box[3] - box[1]
    cx, cy = (box[0] + box[2]) / 2 + relation["dx"] * w, (box[1] + box[3]) / 2 + relation["dy"] * h
    nw, nh = w * relation["sw"], h * relation["sh"]
    return np.array([cx - nw / 2, cy - nh / 2, cx + nw / 2, cy + nh / 2], np.float32)


def _photos(folder: Path) -> list[Path]:
    from .._opencv import IMAGE_SUFFIXES

    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)


def parity(data: Path, liveness, as_given, detector, reference: ReferenceModels, ref_detector,
           folders=("liveness-samples", "deepface-sample")) -> dict:
    """Per photo of the liveness samples and deepface-sample: the reference pipeline (its own
    detector where available) against fastface (bundled detector, C++ crop, ncnn), and the
    pieces in between. ``liveness`` maps YuNet boxes (the default), ``as_given`` does not."""
    from .._opencv import read_image

    rows = []
    for folder in folders:
        for path in _photos(data / "faces" / folder):
            image = read_image(path)
            faces = detector.detect(image)
            if not faces:
                rows.append({"photo": f"{folder}/{path.name}", "error": "no face (bundled detector)"})
                continue
            face = faces[0]  # the most confident, as the reference takes its detector's
            ours = liveness.score(image, face)
            raw, raw_models = as_given.scores(image, face)
            row = {"photo": f"{folder}/{path.name}", "yunet_box": [round(float(v), 1) for v in face.bbox],
                   "fastface": ours, "fastface_live": ours >= liveness.threshold,
                   "fastface_unmapped": raw, "fastface_unmapped_live": raw >= liveness.threshold}
            ref_models, ref_live = reference.scores(image, face.bbox)
            row.update(torch_same_box=float(np.mean(ref_models)), torch_same_box_live=ref_live,
                       crop_model_diff=float(np.max(np.abs(np.subtract(ref_models, raw_models)))))
            if ref_detector is not None:
                found = ref_detector(image)
                if found is not None:
                    ref_box, _ = found
                    # The reference's best box can be another person in a group photo.
                    row["ref_box"] = [round(float(v), 1) for v in ref_box]
                    row["iou"] = iou(face.bbox, ref_box)
                    ref_models_own, live_own = reference.scores(image, ref_box)
                    row.update(reference=float(np.mean(ref_models_own)), reference_live=live_own,
                               fastface_on_ref_box=as_given.score(image, ref_box))
            rows.append(row)
    return {"rows": rows}


def box_study(rows: list[dict], liveness, as_given, data: Path) -> dict:
    """The mean relation of the reference boxes to YuNet's over photos where both found the
    same face (IoU >= 0.3), and whether mapping YuNet's boxes by it brings the scores nearer
    to the reference's."""
    from .._opencv import read_image

    same = [r for r in rows if r.get("iou", 0) >= 0.3]
    if not same:
        return {}
    relations = [box_relation(np.array(r["yunet_box"]), np.array(r["ref_box"])) for r in same]
    mean = {k: float(np.mean([rel[k] for rel in relations])) for k in relations[0]}
    spread = {k: float(np.std([rel[k] for rel in relations])) for k in relations[0]}
    raw, fitted, core, flips = [], [], [], {"yunet_box": 0, "fitted_map": 0, "core_map": 0}
    for r in same:
        image = read_image(data / "faces" / r["photo"])
        score = as_given.score(image, map_box(np.array(r["yunet_box"]), mean))
        raw.append(abs(r["fastface_unmapped"] - r["reference"]))
        fitted.append(abs(score - r["reference"]))
        core.append(abs(r["fastface"] - r["reference"]))
        flips["yunet_box"] += r["fastface_unmapped_live"] != r["reference_live"]
        flips["fitted_map"] += (score >= liveness.threshold) != r["reference_live"]
        flips["core_map"] += r["fastface_live"] != r["reference_live"]
    return {"photos": len(same), "mean_relation": mean, "std_relation": spread, "core_map": list(liveness.box_map),
            "mean_iou": float(np.mean([r["iou"] for r in same])),
            "score_diff_yunet_box": {"mean": float(np.mean(raw)), "max": float(np.max(raw))},
            "score_diff_fitted_map": {"mean": float(np.mean(fitted)), "max": float(np.max(fitted))},
            "score_diff_core_map": {"mean": float(np.mean(core)), "max": float(np.max(core))},
            "decisions_differing": {k: int(v) for k, v in flips.items()}}


def bona_fide(data: Path, liveness, detector) -> dict:
    """Scores on ORL (92x112 gray scans of prints) and aligned LFW (112x112 crops of web photos):
    the best detected face, else the whole image as the box."""
    from .._opencv import read_image

    out = {}
    for name, files in (("orl", sorted((data / "faces" / "orl").glob("s*/*.pgm"))),
                        ("aligned-lfw", _photos(data / "faces" / "aligned-lfw"))):
        scores, detected = [], 0
        for path in files:
            image = read_image(path)
            faces = detector.detect(image)
            detected += bool(faces)
            box = faces[0].bbox if faces else [0, 0, image.shape[1] - 1, image.shape[0] - 1]
            scores.append(liveness.score(image, box))
        if scores:
            s = np.array(scores)
            out[name] = {"images": len(s), "face_detected": detected, "live": int((s >= liveness.threshold).sum()),
                         "median": float(np.median(s)), "p90": float(np.percentile(s, 90)), "max": float(s.max())}
    return out


def run(data: Path) -> dict:
    import cv2

    from .. import Detector, Liveness

    liveness, as_given, detector = Liveness(threads=1), Liveness(threads=1, box_map="reference"), Detector(threads=1)
    reference = ReferenceModels(data / "models" / "minifasnet")
    ref_detector, why = load_reference_detector(data / "models" / "minifasnet" / "reference-detector")
    table = parity(data, liveness, as_given, detector, reference, ref_detector)
    rows = [r for r in table["rows"] if "error" not in r]
    result = {"opencv": cv2.__version__, "reference_detector": why or "Caffe RetinaFace (OpenCV dnn)",
              "rows": table["rows"],
              "crop_and_model": {"photos": len(rows), "max_prob_diff": max(r["crop_model_diff"] for r in rows),
                                 "decisions_differing": sum(r["fastface_unmapped_live"] != r["torch_same_box_live"]
                                                            for r in rows)}}
    if ref_detector is not None:
        result["boxes"] = box_study(rows, liveness, as_given, data)
        result["pipeline"] = {"photos": sum("reference" in r for r in rows),
                              "decisions_differing": sum(r["fastface_live"] != r["reference_live"]
                                                         for r in rows if "reference" in r)}
    result["bona_fide"] = bona_fide(data, liveness, detector)
    return result


def format_report(result: dict) -> str:
    lines = [f"OpenCV {result['opencv']}; reference detector: {result['reference_detector']}", "",
             "| photo | reference (its own box) | fastface (YuNet box, mapped) | YuNet box unmapped | "
             "fastface on ref box | IoU |", "|---|---|---|---|---|---|"]

    def cell(score, live):
        return "-" if score is None else f"{score:.4f} {'live' if live else 'spoof'}"

    for r in result["rows"]:
        if "error" in r:
            lines.append(f"| {r['photo']} | {r['error']} | | | | |")
            continue
        on_ref = r.get("fastface_on_ref_box")
        lines.append(f"| {r['photo']} | {cell(r.get('reference'), r.get('reference_live'))} | "
                     f"{cell(r['fastface'], r['fastface_live'])} | "
                     f"{cell(r['fastface_unmapped'], r['fastface_unmapped_live'])} | "
                     f"{cell(on_ref, on_ref is not None and on_ref >= 0.5)} | "
                     + (f"{r['iou']:.2f} |" if "iou" in r else "- |"))
    lines += ["", f"crop + models (same box): {json.dumps(result['crop_and_model'])}"]
    if "boxes" in result:
        lines += [f"boxes: {json.dumps(result['boxes'])}", f"whole pipeline: {json.dumps(result['pipeline'])}"]
    lines.append(f"bona fide: {json.dumps(result['bona_fide'])}")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fastface.eval.liveness", description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[4] / "shared" / "data",
                        help="the shared data folder (default: ../shared/data beside the checkout)")
    parser.add_argument("--json", type=Path, help="also write the full result here")
    args = parser.parse_args(argv)
    result = run(args.data)
    print(format_report(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
