"""``fastface compare``: the comparison the reference work left out — for several models, the
verification metrics next to parameters, MACs, model size, per-stage latency and peak memory.

Each model is timed in its own process, so "peak resident memory while embedding" is that
model's alone. Timing needs no trained weights: a ``.param`` without its ``.bin`` runs with
zero weights (like ncnn's benchncnn); accuracy columns appear for models with weights when a
pair list is given. Runs on a board: engine models only, no torch.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from importlib import resources
from pathlib import Path

import numpy as np

STAGES = ("align", "embed", "match")
GALLERY_SIZE = 10_000


def bundled_models() -> list[Path]:
    """The architectures shipped with fastface (models/*.param, made by fastface export)."""
    folder = resources.files("fastface") / "models"
    return sorted(Path(str(p)) for p in folder.iterdir() if p.name.endswith(".param")) if folder.is_dir() else []


def add_arguments(parser) -> None:
    parser.add_argument("models", nargs="*", help=".param files with cards beside them (default: the bundled architectures)")
    parser.add_argument("--pairs", help="pair list for the accuracy columns (models with weights only)")
    parser.add_argument("--images", help="image root for --pairs")
    parser.add_argument("--detector", help="detect and align raw photos with this detector first")
    parser.add_argument("--threads", type=int, default=1, help="inference threads (default 1)")
    parser.add_argument("--seconds", type=float, default=3.0, help="timing budget per stage and model (default 3)")
    parser.add_argument("--out", help="write compare.json and compare.md here")
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # internal: time one model, print JSON


def _timed(fn, seconds: float, min_runs: int = 5, max_runs: int = 1000) -> list[float]:
    fn()  # warm-up: first-call allocations and ncnn's packing are not steady state
    times = []
    deadline = time.perf_counter() + seconds
    while len(times) < min_runs or (time.perf_counter() < deadline and len(times) < max_runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return times


def measure(param: str, threads: int, seconds: float) -> dict:
    """Latency per stage (ms) and peak RSS for one model; runs inside the worker process."""
    import resource

    from .. import _core
    from ..align import ARCFACE_TEMPLATE
    from ..embed import Embedder
    from ..match import search

    path = Path(param)
    has_weights = path.with_suffix(".bin").is_file()
    model = Embedder(path, threads=threads) if has_weights else Embedder.with_zero_weights(path, threads=threads)
    width, height = model.input_size
    rng = np.random.default_rng(0)
    photo = rng.integers(0, 256, (720, 1280, 3), dtype=np.uint8)
    landmarks = (ARCFACE_TEMPLATE * 1.6 + [500, 200]).astype(np.float32)
    template = _core.arcface_template(width, height)
    card = model.card

    def align():
        dst_to_src = _core.invert_affine(_core.estimate_similarity(landmarks, template))
        return _core.warp_planar(photo, "BGR", dst_to_src, width, height, card["channel_order"], card["mean"],
                                 card["scale"])

    crop = rng.integers(0, 256, (1, height, width, 3), dtype=np.uint8)
    gallery = rng.standard_normal((GALLERY_SIZE, model.dim)).astype(np.float32)
    gallery /= np.linalg.norm(gallery, axis=1, keepdims=True)
    query = gallery[123] + 0.1
    times = {"align": _timed(align, seconds), "embed": _timed(lambda: model.embed(crop), seconds),
             "match": _timed(lambda: search(query, gallery, 5, threads=threads, unit_rows=True), seconds)}
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # Linux reports KiB
    return {"stages": {s: {"median_ms": float(np.median(t)), "p90_ms": float(np.percentile(t, 90)), "runs": len(t)}
                       for s, t in times.items()},
            "peak_rss_mb": peak_kb / 1024, "dim": model.dim, "has_weights": has_weights}


def profile(param: Path, threads: int, seconds: float) -> dict:
    """Run ``measure`` in a fresh process and add what the card and the files say."""
    spec = json.dumps({"param": str(param), "threads": threads, "seconds": seconds})
    done = subprocess.run([sys.executable, "-m", "fastface.cli", "compare", "--worker", spec],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"timing {param} failed: {done.stderr.strip()[-2000:]}")
    row = json.loads(done.stdout)
    card = json.loads(param.with_suffix(".json").read_text())
    files = [param, param.with_suffix(".bin")]
    row.update(name=param.stem, params=card.get("params"), macs=card.get("macs"), threads=threads,
               size_mb=sum(f.stat().st_size for f in files if f.is_file()) / 2 ** 20,
               weights_mb=(card["params"] * (2 if card.get("precision") == "fp16" else 4) / 2 ** 20)
               if card.get("params") else None)
    return row


def _fmt(value, spec: str) -> str:
    return "–" if value is None else format(value, spec)  # "–": the card or the run has no figure


def table(rows: list[dict], results: dict) -> str:
    head = ("| Model | Accuracy | Precision | Recall | Specificity | F1 | TAR@FAR=1e-3 | Params | MACs | "
            "Weights (MB) | align ms (med/p90) | embed ms (med/p90) | match 10k ms (med/p90) | Peak RSS (MB) |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for row in rows:
        summary = results.get(row["name"])
        m = summary["metrics"] if summary else {}
        tar = next((t["tar"] for t in summary["tar_at_far"] if t["far"] == 1e-3), None) if summary else None
        pct = [_fmt(m.get(k) * 100 if m.get(k) is not None else None, ".4f")
               for k in ("accuracy", "precision", "recall", "specificity", "f1")]
        stages = [f"{row['stages'][s]['median_ms']:.3f} / {row['stages'][s]['p90_ms']:.3f}" for s in STAGES]
        lines.append(f"| {row['name']} | " + " | ".join(pct) + f" | {_fmt(tar, '.4f')} | "
                     f"{_fmt(row['params'] / 1e6 if row['params'] else None, '.2f')} M | "
                     f"{_fmt(row['macs'] / 1e9 if row['macs'] else None, '.3f')} G | {_fmt(row['weights_mb'], '.1f')} | "
                     + " | ".join(stages) + f" | {row['peak_rss_mb']:.0f} |")
    return "\n".join(lines)


def run(args) -> int:
    if args.worker:
        spec = json.loads(args.worker)
        print(json.dumps(measure(spec["param"], spec["threads"], spec["seconds"])))
        return 0
    models = [Path(m) for m in args.models] or bundled_models()
    if not models:
        raise ValueError("no models given and none bundled")
    for m in models:
        if not m.is_file() or not m.with_suffix(".json").is_file():
            raise FileNotFoundError(f"need {m} and its card {m.with_suffix('.json')}")
    rows, results = [], {}
    for m in models:
        print(f"timing {m.stem} ({args.threads} thread(s))...", file=sys.stderr)
        rows.append(profile(m, args.threads, args.seconds))
    if args.pairs:
        from .cli import aligner
        from .pairs import read_pairs
        from .verify import evaluate
        from ..embed import Embedder
        pairs = read_pairs(args.pairs, images=args.images)
        for m in models:
            if not m.with_suffix(".bin").is_file():
                continue
            model = Embedder(m, threads=args.threads)
            crop = aligner(args.detector, model.input_size, model.card.get("template")) if args.detector else None
            result = evaluate(lambda c: model.embed(c, normalize=False), pairs, crop=crop, progress=True, name=m.stem)
            results[m.stem] = result.summary
    text = table(rows, results)
    print(text)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "compare.json").write_text(json.dumps({"models": rows, "accuracy": results}, indent=2))
        (out / "compare.md").write_text(text + "\n")
    return 0
