"""``fastface eval --calibrate``: the same-person threshold of a model, measured on a pair list,
written into the model's card (``"threshold"``, which verify/identify use by default)."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from .metrics import Result, at_threshold, best_threshold

METHOD = ("cosine threshold with the highest accuracy on all pairs (the strictest among equals, placed "
          "halfway to the next score); the 10-fold protocol's mean threshold and accuracy alongside")


def calibration(result: Result, pairs: str) -> dict:
    """The threshold and how it was found, as the card records it: ``pairs`` names the pair
    list(s); FAR and FRR are those the threshold gives on them."""
    threshold = round(best_threshold(result.scores, result.same), 4)
    fixed = at_threshold(result.scores, result.same, threshold)
    s = result.summary
    return {"value": threshold, "method": METHOD, "pairs": pairs, "pair_count": s["pairs"],
            "same": s["same"], "accuracy_at_threshold": round(fixed["accuracy"], 4), "far": round(fixed["far"], 4),
            "frr": round(fixed["frr"], 4), "ten_fold_accuracy": round(s["accuracy_mean"], 4),
            "ten_fold_threshold_mean": round(s["threshold_mean"], 4)}


def write_threshold(card_path, result: Result, pairs: str) -> dict:
    """Set ``threshold`` and ``threshold_calibration`` in the JSON card at ``card_path``
    (rewritten atomically: a temp file in the same folder, then a rename)."""
    from ..export._common import dump_card

    card_path = Path(card_path)
    if not card_path.is_file():
        raise FileNotFoundError(f"no model card at {card_path} to write the threshold into")
    card = json.loads(card_path.read_text())
    found = calibration(result, pairs)
    card["threshold"] = found["value"]
    card["threshold_calibration"] = {k: v for k, v in found.items() if k != "value"}
    fd, tmp = tempfile.mkstemp(prefix=f".{card_path.name}.", dir=card_path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(dump_card(card) + "\n")
        os.replace(tmp, card_path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return found
