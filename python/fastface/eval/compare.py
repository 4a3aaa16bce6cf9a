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

from .faces import DEFAULT_FACE, FACE_RULES

STAGES = ("align", "embed", "match")
GALLERY_SIZE = 10_000
#: Photos of --images the pipeline is timed on (sorted by name).
PHOTO_LIMIT = 10
#: WebFace260M's FRUITS budgets: detection, alignment and embedding of one face within this.
FRUITS_BUDGETS_MS = (100, 500, 1000)
SCENE_SIZE = (640, 480)  # width, height of the synthetic scene


def bundled_models() -> list[Path]:
    """The architectures shipped with fastface (models/*.param, made by fastface export); not
    the liveness models, which judge faces rather than find or embed them."""
    folder = resources.files("fastface") / "models"
    if not folder.is_dir():
        return []
    params = sorted(Path(str(p)) for p in folder.iterdir() if p.name.endswith(".param"))
    return [p for p in params if not (p.with_suffix(".json").is_file()
                                      and json.loads(p.with_suffix(".json").read_text()).get("task") == "liveness")]


def add_arguments(parser) -> None:
    parser.add_argument("models", nargs="*", help=".param files with cards beside them (default: the bundled architectures)")
    parser.add_argument("--pairs", help="pair list for the accuracy columns (models with weights only)")
    parser.add_argument("--images", help="folder of photos: detection and the whole pipeline are timed on "
                                         f"(up to {PHOTO_LIMIT} of) them (default: a synthetic scene), and the "
                                         "image root for --pairs")
    parser.add_argument("--detector", help="detector .param for the pipeline and for --pairs' raw photos "
                                           "(default: a detector among the models, else the bundled YuNet)")
    parser.add_argument("--face", choices=FACE_RULES, default=DEFAULT_FACE,
                        help=f"subject among detected faces, as fastface eval (default {DEFAULT_FACE})")
    parser.add_argument("--strict", action="store_true",
                        help="stop at a photo without a detected face, as fastface eval")
    parser.add_argument("--card", action="append",
                        help="model card JSON for a model without one beside it: once for all models, "
                             "or once per model in order")
    parser.add_argument("--threads", type=int, default=1, help="inference threads (default 1)")
    parser.add_argument("--seconds", type=float, default=3.0, help="timing budget per stage and model (default 3)")
    parser.add_argument("--int8", action="store_true",
                        help="add a row for the int8 variant (model.int8.param, from fastface quantize) of each "
                             "model that has one; int8 rows run the pipeline with the detector's int8 variant too")
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


def measure(param: str, threads: int, seconds: float, card=None, detector: str | None = None,
            photos: list[str] | None = None) -> dict:
    """Latency per stage (ms) and peak RSS for one model, and with ``detector`` the whole
    pipeline (:func:`measure_pipeline`); runs inside the worker process."""
    import resource

    from .. import _core
    from ..align import ARCFACE_TEMPLATE
    from ..embed import Embedder
    from ..match import search

    path = Path(param)
    has_weights = path.with_suffix(".bin").is_file()
    model = (Embedder(path, card=card, threads=threads) if has_weights
             else Embedder.with_zero_weights(path, card=card, threads=threads))
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
    pipeline = measure_pipeline(model, detector, photos, gallery, threads, seconds) if detector else None
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # Linux reports KiB
    return {"stages": {s: {"median_ms": float(np.median(t)), "p90_ms": float(np.percentile(t, 90)), "runs": len(t)}
                       for s, t in times.items()},
            "peak_rss_mb": peak_kb / 1024, "dim": model.dim, "has_weights": has_weights,
            **({"pipeline": pipeline} if pipeline else {})}


def profile(param: Path, threads: int, seconds: float, card_path: Path | None = None, detector: Path | None = None,
            photos: list[str] | None = None) -> dict:
    """Run ``measure`` in a fresh process and add what the card and the files say; params and
    MACs come from the card, else are counted from the ncnn graph (:mod:`.ncnn_graph`)."""
    card_path = card_path or param.with_suffix(".json")
    spec = json.dumps({"param": str(param), "threads": threads, "seconds": seconds, "card": str(card_path),
                       "detector": str(detector) if detector else None, "photos": photos})
    done = subprocess.run([sys.executable, "-m", "fastface", "compare", "--worker", spec],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"timing {param} failed: {done.stderr.strip()[-2000:]}")
    row = json.loads(done.stdout)
    card = json.loads(card_path.read_text())
    files = [param, param.with_suffix(".bin")]
    row.update(name=param.stem, path=str(param), params=card.get("params"), macs=card.get("macs"), threads=threads,
               size_mb=sum(f.stat().st_size for f in files if f.is_file()) / 2 ** 20,
               weights_mb=(card["params"] * {"fp16": 2, "int8": 1}.get(card.get("precision"), 4) / 2 ** 20)
               if card.get("params") else None, complexity_source="card")
    if row["params"] is None or row["macs"] is None:
        row.update(_graph_complexity(param, card))
    if "pipeline" in row:
        row["fruits"] = fruits(row)
    return row


def _graph_complexity(param: Path, card: dict) -> dict:
    """Params, MACs and weight size counted from the ncnn files, for a card without them."""
    from ..embed import load_card
    from .ncnn_graph import GraphError, complexity_for

    try:
        counted = complexity_for(param, load_card(card))
    except GraphError as exc:
        print(f"{param}: params and MACs not counted: {exc}", file=sys.stderr)
        return {"complexity_source": None}
    weights_mb = counted.weight_bytes / 2 ** 20 if counted.weight_bytes is not None else counted.params * 4 / 2 ** 20
    return {"params": counted.params, "macs": counted.macs, "weights_mb": weights_mb, "complexity_source": "graph"}


def display_names(paths: list[Path]) -> list[str]:
    """Distinct table names: the file stem, with as many parent folders as it takes to tell
    models with the same stem apart (``a/mobilefacenet``, ``b/mobilefacenet``)."""
    names = [p.stem for p in paths]
    for depth in range(1, max(len(p.parts) for p in paths)):
        clashes = {n for n in names if names.count(n) > 1}
        if not clashes:
            break
        names = [str(Path(*p.with_suffix("").parts[-depth - 1:])) if n in clashes else n
                 for p, n in zip(paths, names)]
    if len(set(names)) != len(names):
        names = [str(p) for p in paths]
    return names


def _fmt(value, spec: str) -> str:
    return "–" if value is None else format(value, spec)  # "–": the card or the run has no figure


def table(rows: list[dict], results: dict) -> str:
    head = ("| Model | Accuracy | Precision | Recall | Specificity | F1 | TAR@FAR=1e-3 | Params | MACs | "
            "Weights (MB) | align ms (med/p90) | embed ms (med/p90) | match 10k ms (med/p90) | Peak RSS (MB) |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for row in rows:
        summary = results.get(row["path"])
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


def _cards(models: list[Path], given) -> list[Path]:
    """The card of each model: --card once for all, once per model, or the .json beside it."""
    if not given:
        return [m.with_suffix(".json") for m in models]
    if len(given) not in (1, len(models)):
        raise ValueError(f"give --card once (for every model) or once per model ({len(models)}), "
                         f"not {len(given)} times")
    return [Path(c) for c in (given * len(models) if len(given) == 1 else given)]


def run(args) -> int:
    if args.worker:
        spec = json.loads(args.worker)
        print(json.dumps(measure(spec["param"], spec["threads"], spec["seconds"], spec["card"], spec.get("detector"),
                                 spec.get("photos"))))
        return 0
    models = [Path(m) for m in args.models] or bundled_models()
    if not models:
        raise ValueError("no models given and none bundled")
    if args.int8:
        from .._variants import int8_param

        models += [int8_param(m) for m in models if int8_param(m) != m and int8_param(m).is_file()
                   and int8_param(m) not in models]
    repeated = {str(m) for m in models if models.count(m) > 1}
    if repeated:
        raise ValueError(f"model given more than once: {', '.join(sorted(repeated))}")
    card_of = dict(zip(models, _cards(models, args.card)))
    for m, card in card_of.items():
        if not m.is_file() or not card.is_file():
            raise FileNotFoundError(f"need {m} and its card {card}")
    models, detector = pipeline_detector(models, args.detector)
    cards = [card_of[m] for m in models]
    photos = photo_files(args.images)
    rows, results = [], {}
    for m, card, name in zip(models, cards, display_names(models)):
        used = detector_for(m, card, detector)
        print(f"timing {name} with {used.stem} ({args.threads} thread(s))...", file=sys.stderr)
        rows.append({**profile(m, args.threads, args.seconds, card, used, photos), "name": name})
    if args.pairs:
        from .cli import aligner
        from .pairs import read_pairs
        from .verify import evaluate
        from ..embed import Embedder
        pairs = read_pairs(args.pairs, images=args.images)
        for m, card, row in zip(models, cards, rows):
            if not m.with_suffix(".bin").is_file():
                continue
            model = Embedder(m, card=card, threads=args.threads)
            aligned = str(args.pairs).lower().endswith(".bin") and not args.detector  # .bin sets: aligned crops
            crop = None if aligned else aligner(detector, model.input_size, model.card.get("template"),
                                                face=args.face, strict=args.strict, face_aligner=model.aligner)
            result = evaluate(lambda c: model.embed(c, normalize=False), pairs, crop=crop, progress=True,
                              name=row["name"])
            results[str(m)] = result.summary  # keyed by path: two models may share a stem
    text = table(rows, results) + "\n\n" + pipeline_table(rows)
    print(text)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "compare.json").write_text(json.dumps({"models": rows, "accuracy": results}, indent=2))
        (out / "compare.md").write_text(text + "\n")
    return 0


def is_detector(param: Path) -> bool:
    """Whether a model's card describes a face detector (``"task": "detection"``)."""
    card = Path(param).with_suffix(".json")
    return card.is_file() and json.loads(card.read_text()).get("task") == "detection"


def pipeline_detector(models: list[Path], given) -> tuple[list[Path], Path]:
    """(the recognizers among ``models``, the detector the pipeline is timed with): ``given``,
    else the first detector among the models, else the bundled default."""
    from ..hub.bundled import bundled_model
    from ..detect import DEFAULT_DETECTOR

    detectors = sorted((m for m in models if is_detector(m)), key=lambda m: m.name.endswith(".int8.param"))
    recognizers = [m for m in models if m not in detectors]
    if not recognizers:
        raise ValueError("no recognizer among the models (their cards say \"task\": \"detection\")")
    detector = Path(given) if given else (detectors[0] if detectors else bundled_model(DEFAULT_DETECTOR))
    if not detector.is_file():
        raise FileNotFoundError(f"no detector at {detector}")
    return recognizers, detector


def detector_for(model: Path, card: Path, detector: Path) -> Path:
    """The pipeline's detector for ``model``: an int8 recognizer runs with the detector's int8
    variant when there is one (the all-int8 pipeline), every other with ``detector``."""
    from .._variants import int8_param

    if json.loads(Path(card).read_text()).get("precision") == "int8" and int8_param(detector).is_file():
        return int8_param(detector)
    return detector


def photo_files(folder) -> list[str] | None:
    """Up to PHOTO_LIMIT image files of ``folder`` (None: time on the synthetic scene)."""
    if not folder:
        return None
    from .._opencv import IMAGE_SUFFIXES

    files = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise FileNotFoundError(f"no photos ({', '.join(sorted(IMAGE_SUFFIXES))}) in {folder}")
    return [str(p) for p in files[:PHOTO_LIMIT]]


def synthetic_scene():
    """A SCENE_SIZE BGR scene the command draws: smooth noise with one synthetic face (2x the
    112 px crop) pasted in; returns it and that face (its box is the pasted crop)."""
    from ..align import ARCFACE_TEMPLATE
    from ..detect import Face
    from ..export.faces import synthetic_faces

    width, height = SCENE_SIZE
    rng = np.random.default_rng(1)
    scene = np.repeat(np.repeat(rng.integers(40, 200, (height // 8, width // 8, 3), dtype=np.uint8), 8, 0), 8, 1)
    face = np.repeat(np.repeat(synthetic_faces(1)[0], 2, 0), 2, 1)
    x, y = 200, 120
    scene[y:y + face.shape[0], x:x + face.shape[1]] = face
    box = np.array([x, y, x + face.shape[1], y + face.shape[0]], np.float32)
    return np.ascontiguousarray(scene), Face(box, 1.0, (ARCFACE_TEMPLATE * 2 + [x, y]).astype(np.float32))


def measure_pipeline(model, detector_path: str, photos, gallery: np.ndarray, threads: int, seconds: float) -> dict:
    """Detection and the whole path per photo: detect, then align + embed (fused) and match
    (top-5 of the gallery) each face. On real photos the faces are those detected; on the
    synthetic scene, its one drawn face whatever the detector finds. Decoding is not timed."""
    from ..detect import Detector
    from ..match import search

    detector = Detector(detector_path, threads=threads)
    if photos:
        from .._opencv import read_image

        images = [read_image(p) for p in photos]
        faces = [detector.detect(image) for image in images]
        source = f"{len(images)} photos"
    else:
        scene, face = synthetic_scene()
        images, faces = [scene], [[face]]
        source = f"synthetic {SCENE_SIZE[0]}x{SCENE_SIZE[1]} scene, 1 face"

    def whole_path(image, found):
        detector.detect(image)
        for face in found:
            search(model.embed_face(image, face), gallery, 5, threads=threads, unit_rows=True)

    budget = seconds / len(images)
    detect_ms = [float(np.median(_timed(lambda: detector.detect(i), budget, min_runs=1))) for i in images]
    path_ms = [float(np.median(_timed(lambda: whole_path(i, f), budget, min_runs=1))) for i, f in zip(images, faces)]
    count = sum(len(f) for f in faces)
    return {"detector": Path(detector_path).stem, "source": source, "photos": len(images), "faces": count,
            "sizes": [list(i.shape[1::-1]) for i in images], "detect_ms_per_photo": float(np.mean(detect_ms)),
            "end_to_end_ms_per_photo": float(np.mean(path_ms)),
            "end_to_end_ms_per_face": float(np.sum(path_ms) / count) if count else None}


def fruits(row: dict) -> dict:
    """Whether detect + align + embed of one face fits each FRUITS budget on this machine."""
    p = row["pipeline"]
    one_face = p["detect_ms_per_photo"] + row["stages"]["align"]["median_ms"] + row["stages"]["embed"]["median_ms"]
    return {"one_face_ms": one_face, **{f"fits_{b}ms": one_face <= b for b in FRUITS_BUDGETS_MS}}


def pipeline_table(rows: list[dict]) -> str:
    """The whole path per model: detection, end to end per photo and per face, FRUITS budgets."""
    head = ("| Model | Detector | Timed on | Faces | detect ms/photo | end-to-end ms/photo | end-to-end ms/face | "
            "one face ms | FRUITS " + "/".join(str(b) for b in FRUITS_BUDGETS_MS) + " ms | Peak RSS (MB) |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for row in rows:
        p = row.get("pipeline")
        if not p:
            continue
        f = row["fruits"]
        lines.append(f"| {row['name']} | {p['detector']} | {p['source']} | {p['faces']} | "
                     f"{p['detect_ms_per_photo']:.2f} | {p['end_to_end_ms_per_photo']:.2f} | "
                     f"{_fmt(p['end_to_end_ms_per_face'], '.2f')} | {f['one_face_ms']:.1f} | "
                     + "/".join("yes" if f[f"fits_{b}ms"] else "no" for b in FRUITS_BUDGETS_MS)
                     + f" | {row['peak_rss_mb']:.0f} |")
    return "\n".join(lines)
