"""Evaluation outputs: JSON (everything, including per-pair scores so plots can be redrawn
without rerunning a model), Markdown shaped like the reference work's Table 1, and PNG plots
(ROC curve, same/different score histograms) because people would rather look than read.

Plots need matplotlib, which is optional (it is heavy for a board): :func:`write_report` skips
them with a warning when it is missing; the ``plot_*`` functions raise ImportError.
"""
from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import numpy as np

from .metrics import FOLD_SCHEMES, Result, roc_curve

TABLE1 = ("accuracy", "precision", "recall", "specificity", "f1")
SUBJECT_RULES = {"central": "the face nearest the photo's centre", "largest": "the largest face",
                 "score": "the detector's most confident face"}


def write_json(result: Result, path) -> Path:
    path = Path(path)
    path.write_text(json.dumps(result.to_dict(), indent=1, allow_nan=False) + "\n", encoding="utf-8")
    return path


def read_json(path) -> Result:
    return Result.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))


def _percent(value) -> str:
    return "n/a" if value is None else f"{100 * value:.4f}"


def markdown_table(results) -> str:
    """The reference work's Table 1: pooled 10-fold metrics in percent, four decimals."""
    lines = ["| Model | Accuracy | Precision | Recall | Specificity | F1 |",
             "|---|---:|---:|---:|---:|---:|"]
    for r in results:
        cells = [_percent(r.summary["metrics"][key]) for key in TABLE1]
        lines.append(f"| {r.name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def markdown_details(results) -> str:
    """What Table 1 leaves out: fold spread, threshold, confusion counts, AUC, EER, TAR@FAR.
    TAR@FAR columns follow the first result; "n/a" where too few different-person pairs."""
    fars = [entry["far"] for entry in results[0].summary["tar_at_far"]] if results else []
    lines = ["| Model | Pairs (same/diff) | Accuracy % (mean ± std) | Threshold | TP / FN / TN / FP "
             "| AUC | EER % | " + " | ".join(f"TAR % @ FAR={far:g}" for far in fars) + " |",
             "|---|---:|---:|---:|---:|---:|---:|" + "---:|" * len(fars)]
    for r in results:
        s, c = r.summary, r.summary["counts"]
        tar = {entry["far"]: entry["tar"] for entry in s["tar_at_far"]}
        lines.append(
            f"| {r.name} | {s['pairs']} ({s['same']}/{s['different']}) "
            f"| {_percent(s['accuracy_mean'])} ± {_percent(s['accuracy_std'])} "
            f"| {s['threshold_mean']:.4f} | {c['tp']} / {c['fn']} / {c['tn']} / {c['fp']} "
            f"| {s['auc']:.6f} | {_percent(s['eer'])} | "
            + " | ".join(_percent(tar.get(far)) for far in fars) + " |")
    return "\n".join(lines) + "\n"


def markdown_protocol(results) -> str:
    """How each result was measured: its folds and, for raw photos, the subject rule and the
    photos in which the detector found no face."""
    lines = []
    for r in results:
        s = r.summary
        folds = FOLD_SCHEMES.get(s.get("fold_scheme"), "folds")  # results saved before fold schemes
        parts = [f"{len(s['folds'])} {folds}"]
        subject = s.get("subject")
        if subject is None:
            parts.append("faces: the images as given (no detector)")
        else:
            parts.append(f"subject: {SUBJECT_RULES[subject['face']]} (--face {subject['face']})")
            names = ", ".join(subject["missed_images"][:5]) + (", ..." if subject["missed"] > 5 else "")
            parts.append(f"no face detected in {subject['missed']} of {subject['images']} photos"
                         + (f" ({names}; aligned with the template centred on the photo)" if subject["missed"] else ""))
        lines.append(f"- {r.name}: " + "; ".join(parts))
    return "\n".join(lines) + "\n"


def _figure():
    try:
        from matplotlib.figure import Figure  # no pyplot: no GUI backend, no global state
    except ImportError as exc:
        raise ImportError("plots need matplotlib: pip install matplotlib (or fastface[eval])") from exc
    fig = Figure(figsize=(6.4, 4.8))
    return fig, fig.add_subplot()


def roc_figure(results):
    """ROC curves: TAR against FAR on a log axis (where the operating points of interest are),
    from the lowest FAR of the TAR@FAR table that the data can show (fewer impostor pairs leave
    the curve's left end to chance) with the TAR axis zoomed to the band the curves use there
    (verification ROCs sit near 1), and a marker with its value at each FAR of the table."""
    fig, ax = _figure()
    marked = [p["far"] for r in results for p in r.summary["tar_at_far"] if p["tar"] is not None]
    curves = [(r, *roc_curve(r.scores, r.same)[:2]) for r in results]
    left = min(marked) if marked else min(float(far[far > 0].min()) for _, far, _ in curves)
    lowest = 1.0
    for r, far, tar in curves:
        shown = far > 0  # FAR = 0 has no place on a log axis
        line, = ax.plot(far[shown], tar[shown], label=f"{r.name} (AUC {r.summary['auc']:.4f})")
        lowest = min(lowest, float(tar[far <= left].max()))  # where the staircase stands at the left edge
        for point in r.summary["tar_at_far"]:
            if point["tar"] is None:
                continue
            ax.plot(point["far"], point["tar"], "o", color=line.get_color(), markersize=5)
            ax.annotate(f"{100 * point['tar']:.2f}%", (point["far"], point["tar"]), textcoords="offset points",
                        xytext=(4, -10), fontsize="x-small", color=line.get_color())
    margin = max(0.005, 0.05 * (1.0 - lowest))
    ax.set_xscale("log")
    ax.set_xlim(left / 2, 1.0)
    ax.set_ylim(max(0.0, lowest - margin), 1.0 + margin)
    ax.set_xlabel("false accept rate")
    ax.set_ylabel("true accept rate")
    ax.set_title("ROC (markers: TAR at the table's FARs)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right")
    return fig


def plot_roc(results, path) -> Path:
    roc_figure(results).savefig(path, dpi=120, bbox_inches="tight")
    return Path(path)


def plot_histograms(result: Result, path) -> Path:
    """Same- and different-person score histograms (as densities: the classes rarely have
    equal counts) with the mean of the per-fold thresholds."""
    fig, ax = _figure()
    bins = np.linspace(result.scores.min(), result.scores.max(), 51)
    for mask, label in ((result.same, "same person"), (~result.same, "different people")):
        ax.hist(result.scores[mask], bins=bins, density=True, alpha=0.6,
                label=f"{label} ({int(mask.sum())})")
    folds = len(result.summary["folds"])
    threshold = result.summary["threshold_mean"]
    ax.axvline(threshold, color="black", linestyle="--",
               label=f"threshold {threshold:.4f} (mean of {folds} folds)")
    ax.set_xlabel("cosine similarity")
    ax.set_ylabel("density")
    ax.set_title(result.name)
    ax.set_ylim(top=ax.get_ylim()[1] * 1.4)  # headroom so the legend covers no bars
    ax.legend(loc="upper left", fontsize="small")
    fig.savefig(path, dpi=120, bbox_inches="tight")
    return Path(path)


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "model"


def write_report(results, out_dir) -> list:
    """Write ``<model>.json`` per result, ``report.md`` (Table 1 + details), ``roc.png`` and
    ``<model>_scores.png``; returns the paths written. Plots are skipped, with a warning, when
    matplotlib is missing."""
    results = list(results)
    slugs = [_slug(r.name) for r in results]
    if len(set(slugs)) != len(slugs):
        raise ValueError(f"model names must differ to get separate files: {[r.name for r in results]}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = [write_json(r, out / f"{slug}.json") for r, slug in zip(results, slugs)]
    report = out / "report.md"
    report.write_text(markdown_table(results) + "\n" + markdown_details(results) + "\n" + markdown_protocol(results),
                      encoding="utf-8")
    written.append(report)
    try:
        written.append(plot_roc(results, out / "roc.png"))
        written += [plot_histograms(r, out / f"{slug}_scores.png") for r, slug in zip(results, slugs)]
    except ImportError as exc:
        warnings.warn(f"PNG plots skipped: {exc}", stacklevel=2)
    return written
