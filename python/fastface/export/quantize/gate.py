"""The int8 gate, measured through fastface's core (the runtime that will run the model).

Recognizers: per held-out face, cosine(int8 embedding, fp32 embedding); on pair lists, the
verification accuracy at the card's threshold and at the best threshold, int8 beside fp32.
Detectors: int8 faces matched to fp32 faces (IoU >= 0.5, greedy by IoU): box IoU, landmark
error in pixels, faces missed and extra.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

RECOGNIZER_GATE = {"min_cosine_mean": 0.99, "min_cosine_worst": 0.95, "max_accuracy_drop_points": 0.2}
DETECTOR_GATE = {"min_iou_mean": 0.9, "max_landmark_error_mean_px": 1.5, "max_missed_fraction": 0.02,
                 "max_extra_fraction": 0.02}


def recognizer_figures(fp32, int8, crops: np.ndarray) -> dict:
    a = fp32.embed(crops)
    b = int8.embed(crops)
    cos = np.sum(a * b, axis=1)
    mean, worst = float(cos.mean()), float(cos.min())
    return {"faces": int(len(crops)), "cosine_mean": round(mean, 5), "cosine_worst": round(worst, 5),
            "passed": bool(mean >= RECOGNIZER_GATE["min_cosine_mean"] and worst >= RECOGNIZER_GATE["min_cosine_worst"])}


def _iou(a, b) -> float:
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def match_faces(reference, candidate, min_iou: float = 0.5):
    """Greedy one-to-one matches (i, j, iou) by descending IoU."""
    pairs = sorted(((_iou(r.bbox, c.bbox), i, j) for i, r in enumerate(reference) for j, c in enumerate(candidate)),
                   reverse=True)
    used_r, used_c, out = set(), set(), []
    for iou, i, j in pairs:
        if iou < min_iou or i in used_r or j in used_c:
            continue
        used_r.add(i)
        used_c.add(j)
        out.append((i, j, iou))
    return out


def detector_figures(fp32, int8, photos: Sequence[np.ndarray]) -> dict:
    ious, errors, reference_faces, found, extra = [], [], 0, 0, 0
    for photo in photos:
        ref, got = fp32.detect(photo), int8.detect(photo)
        matches = match_faces(ref, got)
        reference_faces += len(ref)
        found += len(matches)
        extra += len(got) - len(matches)
        for i, j, iou in matches:
            ious.append(iou)
            errors.append(float(np.linalg.norm(ref[i].landmarks - got[j].landmarks, axis=1).mean()))
    missed = reference_faces - found
    figures = {"photos": len(photos), "faces_fp32": reference_faces, "found": found, "missed": missed, "extra": extra,
               "iou_mean": round(float(np.mean(ious)) if ious else 0.0, 4),
               "iou_worst": round(float(np.min(ious)) if ious else 0.0, 4),
               "landmark_error_mean_px": round(float(np.mean(errors)) if errors else 0.0, 3),
               "landmark_error_worst_px": round(float(np.max(errors)) if errors else 0.0, 3)}
    n = max(reference_faces, 1)
    figures["passed"] = bool(reference_faces > 0 and figures["iou_mean"] >= DETECTOR_GATE["min_iou_mean"]
                             and figures["landmark_error_mean_px"] <= DETECTOR_GATE["max_landmark_error_mean_px"]
                             and missed / n <= DETECTOR_GATE["max_missed_fraction"]
                             and extra / n <= DETECTOR_GATE["max_extra_fraction"])
    return figures


def _accuracy(scores: np.ndarray, same: np.ndarray, threshold: float) -> float:
    return float(np.mean((scores >= threshold) == same))


def best_accuracy(scores: np.ndarray, same: np.ndarray) -> tuple[float, float]:
    """(accuracy, threshold) of the best single cosine threshold on these pairs."""
    order = np.sort(np.unique(scores))
    cuts = np.concatenate([[order[0] - 1e-6], (order[:-1] + order[1:]) / 2, [order[-1] + 1e-6]])
    accs = [(_accuracy(scores, same, t), t) for t in cuts]
    return max(accs, key=lambda a: a[0])


def pair_accuracy(fp32, int8, pair_lists, images=None, threads: int = 1, log=None) -> dict:
    """Verification accuracy of both models on the pair lists (one combined list), subject = the
    face nearest the photo's centre, as ``fastface eval`` takes it."""
    from ...eval.faces import FaceCrop
    from ...eval.pairs import combine, read_pairs
    from ... import Detector
    from .data import read_images

    pairs = combine([read_pairs(p, images) for p in pair_lists])
    cropper = FaceCrop(Detector(threads=threads), fp32.input_size, fp32.card.get("template"), aligner=fp32.aligner)
    crops = []
    for item in pairs.images:
        if isinstance(item, (bytes, bytearray)):
            import cv2

            image = cv2.imdecode(np.frombuffer(item, np.uint8), cv2.IMREAD_COLOR)
        else:
            image = read_images([item])[0][0][1]
        crops.append(cropper(image))
    crops = np.stack(crops)
    if log:
        log(f"pairs: {len(pairs)} pairs, {len(crops)} photos")
    out = {"pairs": int(len(pairs)), "same": int(pairs.same.sum())}
    threshold = float(fp32.threshold)
    for label, model in (("fp32", fp32), ("int8", int8)):
        emb = np.concatenate([model.embed(crops[i:i + 64]) for i in range(0, len(crops), 64)])
        scores = np.sum(emb[pairs.first] * emb[pairs.second], axis=1)
        acc, best_t = best_accuracy(scores, pairs.same.astype(bool))
        out[label] = {"accuracy_at_card_threshold": round(_accuracy(scores, pairs.same.astype(bool), threshold), 5),
                      "best_accuracy": round(acc, 5), "best_threshold": round(float(best_t), 4)}
    out["card_threshold"] = threshold
    out["card_threshold_drop_points"] = round(100 * (out["fp32"]["accuracy_at_card_threshold"]
                                                     - out["int8"]["accuracy_at_card_threshold"]), 3)
    out["best_drop_points"] = round(100 * (out["fp32"]["best_accuracy"] - out["int8"]["best_accuracy"]), 3)
    return out
