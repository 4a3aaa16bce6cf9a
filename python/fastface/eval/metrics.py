"""Verification metrics: confusion counts, the five Table-1 rates, ROC / AUC / EER, TAR@FAR and
the LFW 10-fold protocol.

Scores are similarities (higher = more alike) and a pair is *accepted* (predicted "same person")
when ``score >= threshold``. Thresholds are searched by sorting the scores once, never by looping
over a grid: the answer is exact (a 0.01 grid, as in insightface's evaluation, can miss the best
cut) and 10^5 pairs take milliseconds, which matters on a board.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FARS = (1e-1, 1e-2, 1e-3, 1e-4)
N_FOLDS = 10

#: Where a result's folds came from (``summary["fold_scheme"]``), as the report words it.
FOLD_SCHEMES = {
    "lfw": "LFW's own folds (pairs.txt)",
    "file": "the pair list's fold column",
    "stratified": "stratified folds (each holds the list's same/different mix)",
    "contiguous": "contiguous folds in list order (as insightface .bin sets are split)",
    "given": "folds given by the caller",
}


def _check(scores, same) -> tuple[np.ndarray, np.ndarray]:
    scores = np.asarray(scores, dtype=np.float64).ravel()
    same = np.asarray(same).ravel()
    if scores.shape != same.shape:
        raise ValueError(f"{scores.size} scores but {same.size} same/different labels")
    if scores.size == 0:
        raise ValueError("no pairs to evaluate")
    if not np.isfinite(scores).all():
        raise ValueError("scores must be finite (found NaN or inf)")
    if same.dtype != bool:
        if not np.isin(same, (0, 1)).all():
            raise ValueError("same/different labels must be bool or 0/1")
        same = same.astype(bool)
    return scores, same


def _both_classes(same: np.ndarray) -> None:
    if same.all() or not same.any():
        raise ValueError("ROC, EER and TAR@FAR need both same-person and different-person pairs")


def confusion(same, accepted) -> dict:
    """Confusion counts ``{"tp", "fp", "tn", "fn"}``; positive = same person."""
    same = np.asarray(same, dtype=bool)
    accepted = np.asarray(accepted, dtype=bool)
    tp = int(np.count_nonzero(same & accepted))
    fp = int(np.count_nonzero(~same & accepted))
    fn = int(np.count_nonzero(same & ~accepted))
    return {"tp": tp, "fp": fp, "tn": int(same.size) - tp - fp - fn, "fn": fn}


def _ratio(num: int, den: int) -> float:
    return num / den if den else 0.0


def rates(tp: int, fp: int, tn: int, fn: int) -> dict:
    """Accuracy, precision, recall (TAR), specificity (1 - FAR) and F1 as fractions in [0, 1].

    A ratio whose denominator is 0 is reported as 0.0, as scikit-learn does with
    ``zero_division=0`` (e.g. precision when no pair was accepted): a number rather than NaN
    keeps the JSON valid and makes a degenerate threshold look bad instead of undefined.
    F1 is 2TP / (2TP + FP + FN), the harmonic mean of precision and recall without the
    0/0 case when both are 0.
    """
    return {
        "accuracy": _ratio(tp + tn, tp + fp + tn + fn),
        "precision": _ratio(tp, tp + fp),
        "recall": _ratio(tp, tp + fn),
        "specificity": _ratio(tn, tn + fp),
        "f1": _ratio(2 * tp, 2 * tp + fp + fn),
    }


def _sweep(scores: np.ndarray, same: np.ndarray):
    """True/false accepts at every distinct threshold, strictest first.

    Entry k accepts the pairs with ``score >= thresholds[k]``. Entry 0 accepts nothing; its
    threshold is the next float above the top score, so every threshold is finite (JSON-safe).
    """
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], same[order]
    last = np.r_[np.flatnonzero(s[1:] != s[:-1]), s.size - 1]  # end of each run of equal scores
    tps = np.r_[0, np.cumsum(y)[last]]
    fps = np.r_[0, last + 1 - tps[1:]]
    return tps, fps, np.r_[np.nextafter(s[0], np.inf), s[last]]


def roc_curve(scores, same):
    """``(far, tar, thresholds)`` at every distinct threshold, from (0, 0) to (1, 1).

    Same points as ``sklearn.metrics.roc_curve(..., drop_intermediate=False)``, except that the
    first threshold is just above the top score instead of inf.
    """
    scores, same = _check(scores, same)
    _both_classes(same)
    tps, fps, thresholds = _sweep(scores, same)
    return fps / fps[-1], tps / tps[-1], thresholds


def auc(far, tar) -> float:
    """Area under a ROC curve by the trapezoid rule (ties between classes count one half)."""
    far, tar = np.asarray(far, dtype=np.float64), np.asarray(tar, dtype=np.float64)
    return float(np.sum(np.diff(far) * (tar[1:] + tar[:-1]) / 2))


def eer(scores, same) -> tuple[float, float]:
    """Equal error rate and the threshold where it is reached.

    The EER is where the ROC curve, linearly interpolated between its points, crosses
    FAR = FRR (= 1 - TAR). The threshold returned is the strictest one whose FAR is at least
    its FRR, i.e. the first ROC point at or past the crossing.
    """
    far, tar, thresholds = roc_curve(scores, same)
    gap = far - (1.0 - tar)  # rises from -1 to +1 as the threshold loosens
    i = int(np.argmax(gap >= 0))
    t = gap[i - 1] / (gap[i - 1] - gap[i])
    return float(far[i - 1] + t * (far[i] - far[i - 1])), float(thresholds[i])


def tar_at_far(scores, same, fars=FARS) -> list:
    """Best TAR among thresholds whose FAR does not exceed each target.

    Returns one ``{"far", "tar", "threshold"}`` per target, with ``tar`` and ``threshold`` None
    when there are fewer than 1/far different-person pairs: then the only FAR the data can
    show below the target is 0, and calling that "TAR at FAR=1e-4" on 3000 impostor pairs (LFW)
    would claim a precision the data does not have.
    """
    scores, same = _check(scores, same)
    _both_classes(same)
    tps, fps, thresholds = _sweep(scores, same)
    negatives, positives = int(fps[-1]), int(tps[-1])
    out = []
    for far in fars:
        allowed = int(np.floor(far * negatives + 1e-9))  # false accepts the target permits
        if allowed < 1:
            out.append({"far": far, "tar": None, "threshold": None})
            continue
        k = int(np.searchsorted(fps, allowed, side="right")) - 1  # loosest cut within budget
        out.append({"far": far, "tar": float(tps[k] / positives), "threshold": float(thresholds[k])})
    return out


def at_threshold(scores, same, threshold: float) -> dict:
    """A fixed threshold's decisions on these pairs: accuracy, FAR (different people accepted,
    of all different-person pairs), FRR (same person rejected, of all same-person pairs) and the
    confusion counts; a pair is accepted when its score is at least ``threshold``."""
    scores, same = _check(scores, same)
    counts = confusion(same, scores >= threshold)
    return {"threshold": float(threshold), "accuracy": rates(**counts)["accuracy"],
            "far": _ratio(counts["fp"], counts["fp"] + counts["tn"]),
            "frr": _ratio(counts["fn"], counts["fn"] + counts["tp"]), **counts}


def best_threshold(scores, same) -> float:
    """The threshold with the highest accuracy on these pairs.

    Among cuts of equal accuracy the strictest wins (fewer false accepts). The threshold sits
    halfway between the lowest accepted score and the highest rejected one, so a held-out
    pair scoring between the two is not decided by which side the training data happened to
    touch.
    """
    scores, same = _check(scores, same)
    tps, fps, thresholds = _sweep(scores, same)
    k = int(np.argmax(tps - fps))  # correct = tp + tn = tp + (negatives - fp)
    if k == 0 or k == thresholds.size - 1:
        return float(thresholds[k])
    accepted, rejected = thresholds[k], thresholds[k + 1]
    middle = (accepted + rejected) / 2
    return float(middle if middle > rejected else accepted)


def contiguous_folds(n_pairs: int, n_folds: int = N_FOLDS) -> np.ndarray:
    """Fold id per pair for ``n_folds`` contiguous, near-equal blocks (LFW and insightface order)."""
    if n_pairs < n_folds:
        raise ValueError(f"{n_pairs} pairs cannot be split into {n_folds} folds")
    return np.arange(n_pairs) * n_folds // n_pairs


def stratified_folds(same, n_folds: int = N_FOLDS) -> np.ndarray:
    """Fold id per pair such that every fold holds the list's same/different mix (to within one
    pair each) and the folds are near-equal in size; deterministic, in list order: same-person
    pairs are dealt round-robin, then different-person pairs continue where they stopped."""
    same = np.asarray(same, dtype=bool).ravel()
    folds = np.empty(same.size, dtype=np.int64)
    positives, negatives = np.flatnonzero(same), np.flatnonzero(~same)
    folds[positives] = np.arange(positives.size) % n_folds
    folds[negatives] = (positives.size + np.arange(negatives.size)) % n_folds
    return folds


def cross_validate(scores, same, folds=None, n_folds: int = N_FOLDS) -> dict:
    """The LFW protocol: each fold is scored at the threshold chosen on all the other folds.

    ``folds`` gives a fold id per pair (any labels, e.g. from the pairs file); None means
    ``n_folds`` contiguous blocks. Returns per-fold thresholds, counts and rates; the pooled
    counts over all test folds (every pair is tested once, so they decode like the reference
    work's Table 1) and their rates; accuracy mean and std over folds (population std,
    ``ddof=0``, as the insightface and facenet scripts report it).
    """
    scores, same = _check(scores, same)
    folds = contiguous_folds(scores.size, n_folds) if folds is None else np.asarray(folds).ravel()
    if folds.shape != scores.shape:
        raise ValueError(f"{folds.size} fold ids for {scores.size} pairs")
    ids = np.unique(folds)
    if ids.size < 2:
        raise ValueError("cross-validation needs at least two folds")
    per_fold = []
    for fold in ids:
        test = folds == fold
        threshold = best_threshold(scores[~test], same[~test])
        counts = confusion(same[test], scores[test] >= threshold)
        per_fold.append({"fold": fold.item(), "threshold": threshold,
                         "counts": counts, "metrics": rates(**counts)})
    pooled = {key: sum(f["counts"][key] for f in per_fold) for key in ("tp", "fp", "tn", "fn")}
    accuracy = np.array([f["metrics"]["accuracy"] for f in per_fold])
    thresholds = np.array([f["threshold"] for f in per_fold])
    return {
        "counts": pooled,
        "metrics": rates(**pooled),
        "accuracy_mean": float(accuracy.mean()),
        "accuracy_std": float(accuracy.std()),
        "threshold_mean": float(thresholds.mean()),
        "folds": per_fold,
    }


@dataclass
class Result:
    """One model on one pair list: the per-pair scores and everything computed from them."""

    name: str
    scores: np.ndarray
    same: np.ndarray
    summary: dict

    def to_dict(self) -> dict:
        return {"name": self.name, "summary": self.summary,
                "scores": self.scores.tolist(), "same": self.same.tolist()}

    @classmethod
    def from_dict(cls, data: dict) -> "Result":
        return cls(data["name"], np.asarray(data["scores"], dtype=np.float64),
                   np.asarray(data["same"], dtype=bool), data["summary"])


def evaluate_scores(scores, same, folds=None, name: str = "model", fars=FARS, fold_scheme=None) -> Result:
    """Everything issue 6 reports for one score list: the 10-fold protocol plus the
    threshold-free ROC AUC, EER and TAR@FAR computed over all pairs at once.

    ``fold_scheme`` (a key of :data:`FOLD_SCHEMES`) records where ``folds`` came from; by
    default "contiguous" when ``folds`` is None, else "given"."""
    scores, same = _check(scores, same)
    if fold_scheme is None:
        fold_scheme = "contiguous" if folds is None else "given"
    if fold_scheme not in FOLD_SCHEMES:
        raise ValueError(f"unknown fold scheme {fold_scheme!r}; known: {sorted(FOLD_SCHEMES)}")
    far, tar, _ = roc_curve(scores, same)
    eer_value, eer_threshold = eer(scores, same)
    summary = {
        "pairs": int(scores.size),
        "fold_scheme": fold_scheme,
        "same": int(same.sum()),
        "different": int((~same).sum()),
        **cross_validate(scores, same, folds),
        "auc": auc(far, tar),
        "eer": eer_value,
        "eer_threshold": eer_threshold,
        "tar_at_far": tar_at_far(scores, same, fars),
    }
    return Result(name, scores, same, summary)
