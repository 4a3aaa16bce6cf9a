"""fastface against face_recognition's own dlib pipeline, side by side on the same pair lists
(issue 24): which detector, landmarks, chip geometry and box mapping the dlib recognizer wants.

    python python/fastface/eval/versus_dlib.py --data ../shared/data [--cache build/versus_dlib]
    python -m fastface.eval.versus_dlib ...                      (once merged)

Pair lists: LFW View 1 (pairsDevTrain + pairsDevTest together, and each file; calibration data,
never "LFW accuracy"), ``deepface-sample/pairs.csv`` and ORL. ORL has no official pair list, so
one is written (``orl_pairs.csv`` in the cache folder): every same-identity pair (40 x 45 = 1800)
plus as many different-identity pairs drawn with a fixed seed, stratified 10 folds.

Pipelines (the subject is the face nearest the photo's centre, as fastface.eval does for LFW):

* **A** face_recognition's own: dlib HOG detector upsampled once, 5-point shape predictor,
  ``compute_face_descriptor`` (chip 150 px, padding 0.25) with dlib's own network (dlib-bin).
* **B** fastface's default: bundled YuNet-s at native resolution, warp to the card's fitted
  template, bundled ncnn dlib ResNet (``FaceAnalyzer()``).
* **C** YuNet-s native box -> a box mapping -> dlib's 5-point predictor -> dlib's chip
  geometry -> fastface's ncnn dlib ResNet; the chip cut by ``dlib.get_face_chip`` ("chip") or
  by ``fastface.align`` to the 5-point chip template :data:`DLIB_CHIP_TEMPLATE` ("crop").
* **D** the box mappings for C, fitted on pairsDevTrain's photos (see :func:`fit_mappings`).
* **E** C with mirror averaging (chip and its flip embedded, summed, renormalized).
* **F** the shared MobileFaceNet (ArcFace template): YuNet native, ``upscale=True``, a second
  landmark pass on a crop around the face (256 / 320 px), and a hand-built OpenCV pipeline
  (FaceDetectorYN 2023mar at 640, Umeyama + warpAffine, ncnn's Python package); the second pass
  also feeds the dlib recognizer with its card template (B+ref).

A photo without a detected subject is never dropped: its crop is the recognizer's template
placed at the photo's centre, scaled to the photo (fastface.eval's fallback), and it is counted as
missed; for A the whole-photo rectangle through dlib's predictor is reported too (A-wholerect).

Every stage caches per-photo results in ``--cache`` (.npz), so a rerun only scores. Timing is a
separate, interleaved pass on a sample of each list's photos (1 thread; image decoding and colour
conversion excluded); medians are reported and kept in ``timing.json`` (``--retime`` redoes them).
Results: ``results.json`` and ``report.md`` in the cache folder.

Exact parity with dlib's chip needs dlib's fitting direction: :func:`dlib_chip_mapping` rebuilds
``get_face_chip_details`` + ``get_mapping_to_chip`` (similarity fitted template -> parts, then the
chip's pixel grid); ``fastface.align(points, template=DLIB_CHIP_TEMPLATE)`` fits parts -> template,
which differs where the 5 parts are far from a similarity of the mean face (see the report).
"""
from __future__ import annotations

import os
import sys

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
if __name__ == "__main__" and not __package__:
    sys.path.pop(0)  # run as a file: this folder's modules (pairs, metrics, ...) must not shadow others

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np

from fastface.eval.faces import centred_landmarks
from fastface.eval.metrics import best_threshold, evaluate_scores, stratified_folds
from fastface.eval.pairs import Pairs, decode, read_pairs

from fastface.export.dlib_export import DLIB_MEAN_FACE_5 as _MEAN_FACE_5  # noqa: E402

CHIP_SIZE, CHIP_PADDING = 150, 0.25

#: dlib's 5-point mean face (``get_face_chip_details`` in dlib/image_transforms/interpolation.h),
#: in the order of shape_predictor_5_face_landmarks' parts: outer and inner corner of the eye on
#: the image's right, outer and inner corner of the eye on the image's left, base of the nose.
DLIB_MEAN_FACE_5 = np.array(_MEAN_FACE_5)


def dlib_chip_template(size: int = CHIP_SIZE, padding: float = CHIP_PADDING, pixel_centres: bool = True):
    """Where dlib's 5 parts land in its ``size`` chip with ``padding``.

    dlib fits a similarity from ``size * (padding + mean) / (2 * padding + 1)`` (chip units, the
    chip spanning [0, size]) to the parts, then samples the chip so that the corners of that
    [0, size] square go to pixel centres 0 and size - 1 (``centered_drect`` shrinks the rect by
    one image pixel, ``get_mapping_to_chip`` maps its corners to 0 and cols - 1). In pixel-centre
    coordinates (those of ``fastface.align`` and ``cv2.warpAffine``) a chip unit q sits at
    74.5 + (q - 75) * k with k = 149 s / (150 s - 1), s = image pixels per chip unit: k = 1 for a
    face cut at its own scale, so the template is the chip-unit one minus half a pixel
    (``pixel_centres``), exact at s = 1 and within (k - 1) * 75 px of dlib at the chip's edge.
    """
    t = size * (padding + DLIB_MEAN_FACE_5) / (2 * padding + 1)
    return t - 0.5 if pixel_centres else t


DLIB_CHIP_TEMPLATE = dlib_chip_template()

#: The shared insightface MobileFaceNet: raw 0..255 RGB in (its graph normalizes), 128-d out.
MOBILEFACENET_CARD = {"input": "data", "output": "fc1", "size": 112, "channel_order": "RGB",
                      "mean": 0.0, "scale": 1.0, "dim": 128}
ARCFACE_112 = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                        [41.5493, 92.3655], [70.7299, 92.2041]])


def log(*args):
    print(time.strftime("%H:%M:%S"), *args, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------------------------
# Pair lists

def _merge(pairs_list, source: str) -> Pairs:
    images = list(dict.fromkeys(img for p in pairs_list for img in p.images))
    where = {img: i for i, img in enumerate(images)}
    first = np.concatenate([[where[p.images[i]] for i in p.first] for p in pairs_list])
    second = np.concatenate([[where[p.images[i]] for i in p.second] for p in pairs_list])
    same = np.concatenate([p.same for p in pairs_list])
    return Pairs(images, first, second, same, stratified_folds(same), source, "stratified")


def orl_pair_csv(orl: Path, out: Path, seed: int = 24) -> Path:
    """All same-identity pairs of ORL plus as many seeded random different-identity pairs,
    alternating same/different, as ``file_a,file_b,same`` (deterministic for a seed)."""
    subjects = sorted((d for d in orl.iterdir() if d.is_dir()), key=lambda d: int(d.name.lstrip("s")))
    files, labels = [], []
    for label, d in enumerate(subjects):
        for f in sorted(d.glob("*.pgm"), key=lambda f: int(f.stem)):
            files.append(f"{d.name}/{f.name}")
            labels.append(label)
    labels = np.array(labels)
    same = [(i, j) for i in range(len(files)) for j in range(i + 1, len(files)) if labels[i] == labels[j]]
    rng = np.random.default_rng(seed)
    different, seen = [], set()
    while len(different) < len(same):
        i, j = sorted(rng.integers(len(files), size=2).tolist())
        if labels[i] != labels[j] and (i, j) not in seen:
            seen.add((i, j))
            different.append((i, j))
    rows = ["file_a,file_b,same"]
    for (a, b), (c, d) in zip(same, different):
        rows += [f"{files[a]},{files[b]},1", f"{files[c]},{files[d]},0"]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(rows) + "\n")
    return out


def pair_lists(data: Path, cache: Path, names) -> dict:
    lists = {}
    if "view1" in names:
        view1 = data / "faces" / "lfw-view1"
        train = read_pairs(view1 / "pairsDevTrain.txt", view1 / "images")
        test = read_pairs(view1 / "pairsDevTest.txt", view1 / "images")
        lists["view1_all"] = _merge([train, test], "pairsDevTrain.txt + pairsDevTest.txt")
        lists["view1_devtrain"] = train
        lists["view1_devtest"] = test
    if "deepface" in names:
        lists["deepface"] = read_pairs(data / "faces" / "deepface-sample" / "pairs.csv")
    if "orl" in names:
        orl = data / "faces" / "orl"
        lists["orl"] = read_pairs(orl_pair_csv(orl, cache / "orl_pairs.csv"), orl)
    return lists


# ----------------------------------------------------------------------------------------------
# Per-photo cache: one .npz per stage, each photo's record a dict of arrays with a leading axis

class Stage:
    """``fn(path) -> {key: array}`` over photos, cached in ``folder/name.npz`` with ``params``
    (a change of params recomputes). Saves every ``every`` photos so an interrupted run resumes."""

    def __init__(self, folder: Path, name: str, params=None, every: int = 400):
        self.path = folder / f"{name.replace(':', '_')}.npz"
        self.name, self.params, self.every = name, json.dumps(params, sort_keys=True), every
        self.records: dict[str, dict] = {}
        if self.path.is_file():
            with np.load(self.path, allow_pickle=False) as z:
                if str(z["__params__"]) == self.params:
                    self.records = _unpack(z)
                else:
                    log(f"{name}: parameters changed, recomputing")

    def save(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp.npz")
        np.savez(tmp, __params__=np.array(self.params), **_pack(self.records))
        os.replace(tmp, self.path)

    def run(self, paths, fn) -> dict:
        todo = [p for p in dict.fromkeys(paths) if p not in self.records]
        if todo:
            log(f"{self.name}: {len(todo)} photos to compute ({len(self.records)} cached)")
            start = time.perf_counter()
            for n, path in enumerate(todo, 1):
                self.records[path] = {k: np.asarray(v) for k, v in fn(path).items()}
                if n % self.every == 0:
                    self.save()
                    log(f"{self.name}: {n}/{len(todo)} in {time.perf_counter() - start:.0f} s")
            self.save()
        return self.records


def _pack(records: dict) -> dict:
    paths = list(records)
    out = {"__paths__": np.array(paths)}
    keys = sorted({k for r in records.values() for k in r})
    for key in keys:
        arrays = [records[p][key] for p in paths]
        out[key] = np.concatenate(arrays) if arrays else np.zeros(0)
        out[f"{key}__n"] = np.array([a.shape[0] for a in arrays], dtype=np.int64)
    return out


def _unpack(z) -> dict:
    paths = [str(p) for p in z["__paths__"]]
    records = {p: {} for p in paths}
    for key in z.files:
        if key.startswith("__") or key.endswith("__n"):
            continue
        data, counts = z[key], z[f"{key}__n"]
        ends = np.cumsum(counts)
        for p, end, n in zip(paths, ends, counts):
            records[p][key] = data[end - n:end]
    return records


# ----------------------------------------------------------------------------------------------
# Models and the pieces every pipeline is built from

class Models:
    """Everything loaded once, lazily, 1 thread each."""

    def __init__(self, data: Path):
        self.data = data
        self._cache = {}

    def _get(self, key, make):
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    @property
    def yunet(self):
        import fastface
        return self._get("yunet", lambda: fastface.Detector(threads=1))

    @property
    def yunet_up(self):
        import fastface
        return self._get("yunet_up", lambda: fastface.Detector(threads=1, upscale=True))

    @property
    def dlib_embedder(self):
        import fastface
        return self._get("dlib_embedder", lambda: fastface.Embedder(threads=1))

    @property
    def card_template(self):
        return np.asarray(self.dlib_embedder.card["template"], np.float64)

    @property
    def mobilefacenet(self):
        import fastface
        folder = self.data / "models" / "mobilefacenet-insightface"
        return self._get("mfn", lambda: fastface.Embedder(folder / "mobilefacenet.param", card=MOBILEFACENET_CARD,
                                                          threads=1))

    @property
    def mobilefacenet_ncnn(self):
        def make():
            import ncnn
            net = ncnn.Net()
            net.opt.num_threads = 1
            folder = self.data / "models" / "mobilefacenet-insightface"
            net.load_param(str(folder / "mobilefacenet.param"))
            net.load_model(str(folder / "mobilefacenet.bin"))
            return net
        return self._get("mfn_ncnn", make)

    @property
    def hog(self):
        import dlib
        return self._get("hog", dlib.get_frontal_face_detector)

    @property
    def predictor(self):
        import dlib
        path = self.data / "models" / "dlib-resnet" / "shape_predictor_5_face_landmarks.dat"
        return self._get("sp", lambda: dlib.shape_predictor(str(path)))

    @property
    def dlib_net(self):
        import dlib
        path = self.data / "models" / "dlib-resnet" / "dlib_face_recognition_resnet_model_v1.dat"
        return self._get("net", lambda: dlib.face_recognition_model_v1(str(path)))

    @property
    def cv_yunet(self):
        import cv2
        path = self.data / "models" / "yunet" / "face_detection_yunet_2023mar.onnx"
        return self._get("cv_yunet", lambda: cv2.FaceDetectorYN.create(str(path), "", (640, 640), 0.5, 0.3, 5000))


def load(path):
    bgr = decode(path)
    return bgr, np.ascontiguousarray(bgr[..., ::-1])


def faces_record(faces) -> dict:
    return {"bbox": np.array([f.bbox for f in faces], np.float64).reshape(-1, 4),
            "score": np.array([f.score for f in faces], np.float64),
            "lms": np.array([f.landmarks for f in faces], np.float64).reshape(-1, 5, 2)}


def central(boxes, shape):
    """Index of the box (x1, y1, x2, y2) whose centre is nearest the image centre (fastface.eval's
    "central" rule; ties to the earlier), or None."""
    if len(boxes) == 0:
        return None
    boxes = np.asarray(boxes, np.float64)
    d = np.hypot((boxes[:, 0] + boxes[:, 2]) / 2 - shape[1] / 2, (boxes[:, 1] + boxes[:, 3]) / 2 - shape[0] / 2)
    return int(np.argmin(d))


def hog_boxes(models, rgb) -> np.ndarray:
    """dlib HOG faces (upsampled once, as face_recognition) as continuous boxes [l, t, r+1, b+1]."""
    dets = models.hog(rgb, 1)
    return np.array([[d.left(), d.top(), d.right() + 1, d.bottom() + 1] for d in dets], np.float64).reshape(-1, 4)


def dlib_rect(box):
    """A continuous box [x1, y1, x2, y2] as the dlib rectangle (inclusive integer corners)."""
    import dlib
    x1, y1, x2, y2 = (int(round(v)) for v in box)
    return dlib.rectangle(x1, y1, max(x1, x2 - 1), max(y1, y2 - 1))


def shape_points(shape) -> np.ndarray:
    return np.array([[p.x, p.y] for p in shape.parts()], np.float64)


def fallback_crop(image, size, template, channel_order="BGR"):
    import fastface
    return fastface.align(image, centred_landmarks(image.shape, size, template), size, template,
                          channel_order=channel_order)


def l2n(v):
    v = np.asarray(v, np.float64)
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def chip_transform(details) -> np.ndarray:
    from fastface.export.dlib_template import chip_transform as ct
    return ct(details)


# ----------------------------------------------------------------------------------------------
# D: box mappings, YuNet box (or landmarks) -> the rect dlib's predictor was trained on (HOG's)

def _box_stats(box):
    x1, y1, x2, y2 = box
    return (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1


def _landmark_frame(lms):
    """(centre x, centre y, scale L) of 5 landmarks: midpoint of eye-centre and mouth-centre,
    L = mean of the interocular and eye-to-mouth distances (both image-plane)."""
    lms = np.asarray(lms, np.float64)
    eyes, mouth = lms[:2].mean(0), lms[3:].mean(0)
    centre = (eyes + mouth) / 2
    scale = (np.linalg.norm(lms[1] - lms[0]) + np.linalg.norm(mouth - eyes)) / 2
    return centre[0], centre[1], scale


def map_box(mapping: dict, box, lms) -> np.ndarray:
    """The continuous box [x1, y1, x2, y2] ``mapping`` gives for a YuNet face."""
    if mapping["kind"] == "box":
        cx, cy, w, h = _box_stats(box)
        ux, uy = w, h
    else:
        cx, cy, s = _landmark_frame(lms)
        w = h = ux = uy = s
    p = mapping
    ncx, ncy = cx + p["dx"] * ux, cy + p["dy"] * uy
    nw, nh = p["sx"] * w, p["sy"] * h
    if p.get("square"):
        nw = nh = math.sqrt(nw * nh)
    return np.array([ncx - nw / 2, ncy - nh / 2, ncx + nw / 2, ncy + nh / 2])


def iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def matched_faces(paths, yunet, hog, min_iou=0.5):
    """(YuNet box, YuNet landmarks, HOG box, path) for every HOG face whose best-overlapping YuNet
    face has IoU >= ``min_iou`` (all faces of the photos, not only the subject)."""
    out = []
    for path in paths:
        y, h = yunet[path], hog[path]
        for hb in h["boxes"]:
            if not len(y["bbox"]):
                break
            ious = [iou(yb, hb) for yb in y["bbox"]]
            k = int(np.argmax(ious))
            if ious[k] >= min_iou:
                out.append((y["bbox"][k], y["lms"][k], hb, path))
    return out


def fit_mappings(matches) -> dict:
    """Box mappings fitted by least squares on ``matches`` (YuNet face -> HOG box):

    * ``raw``: the YuNet box as is.
    * ``fit``: per side linear, cx' = cx + dx w, cy' = cy + dy h, w' = sx w, h' = sy h (each
      parameter the least-squares solution of its own equation, e.g. dx = sum(w dcx) / sum(w^2)).
    * ``fit_median``: the same with medians of the per-face ratios (robust to mismatches).
    * ``fit_square``: ``fit`` then the square of the same area (HOG boxes are square).
    * ``landmarks``: the same model around the landmarks' frame (centre between eye centre and
      mouth centre, scale = mean of interocular and eye-mouth distances), for when boxes wobble.
    """
    def fit(frames, targets, robust):
        cx, cy, ux, uy, w, h = (np.array(v) for v in zip(*frames))
        tcx, tcy, tw, th = (np.array(v) for v in zip(*targets))
        if robust:
            return {"dx": float(np.median((tcx - cx) / ux)), "dy": float(np.median((tcy - cy) / uy)),
                    "sx": float(np.median(tw / w)), "sy": float(np.median(th / h))}
        ls = lambda u, v: float(np.sum(u * v) / np.sum(u * u))
        return {"dx": ls(ux, tcx - cx), "dy": ls(uy, tcy - cy), "sx": ls(w, tw), "sy": ls(h, th)}

    targets = [_box_stats(hb) for _, _, hb, _ in matches]
    box_frames = [(cx, cy, w, h, w, h) for cx, cy, w, h in (_box_stats(b) for b, _, _, _ in matches)]
    lm_frames = [(cx, cy, s, s, s, s) for cx, cy, s in (_landmark_frame(lm) for _, lm, _, _ in matches)]
    out = {"raw": {"kind": "box", "dx": 0.0, "dy": 0.0, "sx": 1.0, "sy": 1.0},
           "fit": {"kind": "box", **fit(box_frames, targets, False)},
           "fit_median": {"kind": "box", **fit(box_frames, targets, True)}}
    out["fit_square"] = {**out["fit"], "square": True}
    out["landmarks"] = {"kind": "landmarks", **fit(lm_frames, targets, False)}
    return out


def mapping_quality(matches, mapping) -> dict:
    """How well a mapping reproduces the HOG box: IoU and centre / size errors relative to size."""
    ious, dc, ds = [], [], []
    for box, lms, hb, _ in matches:
        m = map_box(mapping, box, lms)
        ious.append(iou(m, hb))
        mc, hc = _box_stats(m), _box_stats(hb)
        dc.append(math.hypot(mc[0] - hc[0], mc[1] - hc[1]) / hc[2])
        ds.append(abs(math.log(math.sqrt(mc[2] * mc[3]) / math.sqrt(hc[2] * hc[3]))))
    return {"faces": len(ious), "iou_mean": float(np.mean(ious)), "iou_p10": float(np.percentile(ious, 10)),
            "centre_err_rel_median": float(np.median(dc)), "log_size_err_median": float(np.median(ds))}


# ----------------------------------------------------------------------------------------------
# Stage functions (one photo -> a record)

def stage_yunet(models, detector):
    def fn(path):
        bgr, _ = load(path)
        t = time.perf_counter()
        faces = detector.detect(bgr)
        return {**faces_record(faces), "ms": [1e3 * (time.perf_counter() - t)]}
    return fn


def stage_hog(models):
    def fn(path):
        _, rgb = load(path)
        t = time.perf_counter()
        boxes = hog_boxes(models, rgb)
        return {"boxes": boxes, "ms": [1e3 * (time.perf_counter() - t)]}
    return fn


def stage_a(models, hog):
    """face_recognition: HOG subject -> 5-point -> compute_face_descriptor (dlib's own chip + net).
    Missed: the centred dlib chip template (fastface.eval's rule) and, as ``emb_whole``, the
    whole-photo rect through the predictor."""
    import dlib

    def fn(path):
        _, rgb = load(path)
        boxes = hog[path]["boxes"]
        k = central(boxes, rgb.shape)
        if k is None:
            chip = fallback_crop(rgb, CHIP_SIZE, DLIB_CHIP_TEMPLATE, "RGB")
            emb = np.array(models.dlib_net.compute_face_descriptor(chip))
            whole = models.predictor(rgb, dlib.rectangle(0, 0, rgb.shape[1] - 1, rgb.shape[0] - 1))
            emb_whole = np.array(models.dlib_net.compute_face_descriptor(rgb, whole))
            return {"emb": [emb], "emb_whole": [emb_whole], "missed": [True], "pts": np.zeros((0, 5, 2)),
                    "chip_m": np.zeros((0, 2, 3))}
        shape = models.predictor(rgb, dlib_rect(boxes[k]))
        emb = np.array(models.dlib_net.compute_face_descriptor(rgb, shape))
        m = chip_transform(dlib.get_face_chip_details(shape, CHIP_SIZE, CHIP_PADDING))
        return {"emb": [emb], "emb_whole": [emb], "missed": [False], "pts": [shape_points(shape)], "chip_m": [m]}
    return fn


def stage_card(models, faces, embedder, template=None, size=None):
    """fastface's path: subject's landmarks from ``faces`` -> embedder's warp (card template or
    ``template``) -> embedding. Missed: centred template crop."""
    import fastface

    def fn(path):
        bgr, _ = load(path)
        rec = faces[path]
        k = central(rec["bbox"], bgr.shape)
        crop_size = size or embedder.input_size[0]
        tmpl = template if template is not None else embedder.card.get("template")
        if k is None:
            emb = embedder.embed(fallback_crop(bgr, crop_size, tmpl))[0]
            return {"emb": [emb], "missed": [True]}
        if template is None:
            emb = embedder.embed_image(bgr, rec["lms"][k].astype(np.float32))
        else:
            emb = embedder.embed(fastface.align(bgr, rec["lms"][k], crop_size, template))[0]
        return {"emb": [emb], "missed": [False]}
    return fn


def stage_mirror(models, faces, embedder):
    """fastface's path with mirror averaging: the card-template crop and its flip, each embedded
    (``emb``, ``emb_flip``); missed: the centred template crop."""
    import fastface

    def fn(path):
        bgr, _ = load(path)
        rec = faces[path]
        k = central(rec["bbox"], bgr.shape)
        size, tmpl = embedder.input_size[0], embedder.card.get("template")
        crop = (fallback_crop(bgr, size, tmpl) if k is None
                else fastface.align(bgr, rec["lms"][k], size, None if tmpl is None else np.asarray(tmpl, np.float32)))
        e = embedder.embed(np.ascontiguousarray(np.stack([crop, crop[:, ::-1]])))
        return {"emb": [e[0]], "emb_flip": [e[1]], "missed": [k is None]}
    return fn


def stage_c(models, yunet, mapping, flips=False):
    """C: YuNet subject -> mapped rect -> dlib's 5-point predictor -> (a) dlib.get_face_chip and
    (b) fastface.align to DLIB_CHIP_TEMPLATE -> fastface's ncnn dlib ResNet (RGB)."""
    import dlib
    import fastface

    def fn(path):
        _, rgb = load(path)
        rec = yunet[path]
        k = central(rec["bbox"], rgb.shape)
        if k is None:
            crop = fallback_crop(rgb, CHIP_SIZE, DLIB_CHIP_TEMPLATE, "RGB")
            chip, missed, pts, rect = crop, True, np.zeros((0, 5, 2)), np.zeros((0, 4))
        else:
            box = map_box(mapping, rec["bbox"][k], rec["lms"][k])
            r = dlib_rect(box)
            shape = models.predictor(rgb, r)
            chip = np.asarray(dlib.get_face_chip(rgb, shape, CHIP_SIZE, CHIP_PADDING))
            pts = shape_points(shape)
            crop = fastface.align(rgb, pts, CHIP_SIZE, DLIB_CHIP_TEMPLATE, channel_order="RGB")
            missed, pts, rect = False, pts[None], np.array([[r.left(), r.top(), r.right() + 1, r.bottom() + 1]])
        crops = [chip, crop] + ([chip[:, ::-1], crop[:, ::-1]] if flips else [])
        e = models.dlib_embedder.embed(np.ascontiguousarray(np.stack(crops)), channel_order="RGB")
        out = {"emb_chip": [e[0]], "emb_crop": [e[1]], "missed": [missed], "pts": pts, "rect": rect,
               "pixdiff": [np.abs(chip.astype(np.float64) - crop).mean()]}
        if flips:
            out.update(emb_chip_flip=[e[2]], emb_crop_flip=[e[3]])
        return out
    return fn


def refine_landmarks(detector, bgr, box, out_size: int):
    """Second landmark pass: a square of twice the box's longer side around its centre, resized to
    ``out_size`` (INTER_AREA when shrinking), detected again; the face nearest the crop's centre,
    its landmarks (and box) mapped back. None when the crop shows no face."""
    import cv2

    cx, cy, w, h = _box_stats(box)
    side = max(2.0 * max(w, h), 8.0)
    x0, y0, n = int(round(cx - side / 2)), int(round(cy - side / 2)), int(round(side))
    height, width = bgr.shape[:2]
    pad = max(0, -x0, -y0, x0 + n - width, y0 + n - height)
    src = cv2.copyMakeBorder(bgr, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0) if pad else bgr
    patch = src[y0 + pad:y0 + pad + n, x0 + pad:x0 + pad + n]
    scale = out_size / n
    patch = cv2.resize(patch, (out_size, out_size), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    faces = detector.detect(patch)
    if not faces:
        return None
    k = central(np.array([f.bbox for f in faces]), patch.shape)
    back = lambda p: (np.asarray(p, np.float64) + 0.5) / scale - 0.5 + np.array([x0, y0])
    return back(faces[k].landmarks), back(faces[k].bbox.reshape(2, 2)).ravel()


def stage_refine(models, yunet, out_size):
    def fn(path):
        bgr, _ = load(path)
        rec = yunet[path]
        k = central(rec["bbox"], bgr.shape)
        if k is None:
            return {"bbox": np.zeros((0, 4)), "lms": np.zeros((0, 5, 2)), "score": np.zeros(0), "refined": [False],
                    "ms": [0.0]}
        t = time.perf_counter()
        found = refine_landmarks(models.yunet, bgr, rec["bbox"][k], out_size)
        ms = 1e3 * (time.perf_counter() - t)
        if found is None:  # keep the first pass's landmarks
            return {"bbox": rec["bbox"][k:k + 1], "lms": rec["lms"][k:k + 1], "score": [0.0], "refined": [False],
                    "ms": [ms]}
        lms, box = found
        return {"bbox": [box], "lms": [lms], "score": [1.0], "refined": [True], "ms": [ms]}
    return fn


def cv_detect(models, bgr):
    """OpenCV FaceDetectorYN (face_detection_yunet_2023mar) at 640x640: the photo scaled so its
    longer side is 640, padded bottom/right; boxes (x1, y1, x2, y2) and landmarks in photo pixels."""
    import cv2

    h, w = bgr.shape[:2]
    s = 640 / max(h, w)
    nw, nh = min(640, int(round(w * s))), min(640, int(round(h * s)))
    canvas = np.zeros((640, 640, 3), np.uint8)
    canvas[:nh, :nw] = cv2.resize(bgr, (nw, nh), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    det = models.cv_yunet
    det.setInputSize((640, 640))
    _, found = det.detect(canvas)
    if found is None:
        return np.zeros((0, 4)), np.zeros((0, 5, 2)), np.zeros(0)
    sx, sy = nw / w, nh / h
    to = lambda v, f: (v + 0.5) / f - 0.5
    boxes = np.stack([to(found[:, 0], sx), to(found[:, 1], sy), to(found[:, 0] + found[:, 2], sx),
                      to(found[:, 1] + found[:, 3], sy)], 1)
    lms = found[:, 4:14].reshape(-1, 5, 2).astype(np.float64)
    lms = np.stack([to(lms[..., 0], sx), to(lms[..., 1], sy)], -1)
    return boxes, lms, found[:, 14].astype(np.float64)


def stage_cv(models):
    def fn(path):
        bgr, _ = load(path)
        t = time.perf_counter()
        boxes, lms, scores = cv_detect(models, bgr)
        return {"bbox": boxes, "lms": lms, "score": scores, "ms": [1e3 * (time.perf_counter() - t)]}
    return fn


def umeyama(src, dst) -> np.ndarray:
    """Least-squares similarity src -> dst (2x3), Umeyama 1991: fastface's own."""
    from fastface import estimate_similarity

    return estimate_similarity(np.asarray(src, np.float32), np.asarray(dst, np.float32))


def opencv_mobilefacenet(models, bgr, lms):
    """The hand-built pipeline's alignment + embedding: Umeyama to ArcFace's 112 template,
    cv2.warpAffine, ncnn's Python package (fastface Embedder when ncnn is not installed)."""
    import cv2

    crop = cv2.warpAffine(bgr, umeyama(lms, ARCFACE_112), (112, 112), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    try:
        import ncnn
    except ImportError:
        return models.mobilefacenet.embed(crop)[0]
    ex = models.mobilefacenet_ncnn.create_extractor()
    ex.input("data", ncnn.Mat.from_pixels(crop, ncnn.Mat.PixelType.PIXEL_BGR2RGB, 112, 112))
    _, out = ex.extract("fc1")
    return l2n(np.array(out).ravel())


def stage_cv_mfn(models, cv):
    def fn(path):
        bgr, _ = load(path)
        rec = cv[path]
        k = central(rec["bbox"], bgr.shape)
        if k is None:
            return {"emb": [models.mobilefacenet.embed(fallback_crop(bgr, 112, ARCFACE_112))[0]], "missed": [True]}
        return {"emb": [opencv_mobilefacenet(models, bgr, rec["lms"][k])], "missed": [False]}
    return fn


def stage_check(models, hog, yunet):
    """Crop-vs-chip figures on faces where the HOG subject and the YuNet subject agree (IoU >= 0.5):
    dlib's chip (HOG pipeline) against (1) fastface.align of the same dlib points to
    DLIB_CHIP_TEMPLATE and (2) the card path (YuNet landmarks -> card template), as the card's
    template_check measured; pixel difference and ncnn embedding cosine."""
    import dlib
    import fastface

    def fn(path):
        _, rgb = load(path)
        hk, yk = central(hog[path]["boxes"], rgb.shape), central(yunet[path]["bbox"], rgb.shape)
        empty = {k: np.zeros(0) for k in ("diff_pts", "diff_card", "cos_pts", "cos_card", "diff_exact", "cos_exact")}
        if hk is None or yk is None or iou(hog[path]["boxes"][hk], yunet[path]["bbox"][yk]) < 0.5:
            return empty
        shape = models.predictor(rgb, dlib_rect(hog[path]["boxes"][hk]))
        chip = np.asarray(dlib.get_face_chip(rgb, shape, CHIP_SIZE, CHIP_PADDING)).astype(np.uint8)
        crop_pts = fastface.align(rgb, shape_points(shape), CHIP_SIZE, DLIB_CHIP_TEMPLATE, channel_order="RGB")
        crop_card = fastface.align(rgb, yunet[path]["lms"][yk], CHIP_SIZE, models.card_template, channel_order="RGB")
        # dlib's own mapping (dlib_chip_mapping) through fastface's warp: the points whose exact
        # similarity onto the template is that mapping, so only the resampling differs
        m = dlib_chip_mapping(shape_points(shape))
        exact_pts = (DLIB_CHIP_TEMPLATE - m[:, 2]) @ np.linalg.inv(m[:, :2]).T
        crop_exact = fastface.align(rgb, exact_pts, CHIP_SIZE, DLIB_CHIP_TEMPLATE, channel_order="RGB")
        e = models.dlib_embedder.embed(np.stack([chip, crop_pts, crop_card, crop_exact]), channel_order="RGB")
        diff = lambda c: np.abs(c.astype(np.float64) - chip).mean()
        return {"diff_pts": [diff(crop_pts)], "diff_card": [diff(crop_card)], "cos_pts": [float(e[0] @ e[1])],
                "cos_card": [float(e[0] @ e[2])], "diff_exact": [diff(crop_exact)], "cos_exact": [float(e[0] @ e[3])]}
    return fn


# ----------------------------------------------------------------------------------------------
# Template verification: the similarity from dlib's 5 points to the template vs dlib's own mapping

def dlib_chip_mapping(points, size: int = CHIP_SIZE, padding: float = CHIP_PADDING) -> np.ndarray:
    """dlib's image -> chip affine (2x3) for 5 parts: fastface's rebuild of dlib's construction
    (:func:`fastface.align.dlib_chip_geometry`, chip -> image), inverted."""
    from fastface import _core
    from fastface.align import dlib_chip_geometry

    return _core.invert_affine(dlib_chip_geometry(points, dlib_chip_template(size, padding, pixel_centres=False), size))


def verify_template(a_records, template) -> dict:
    """How far a similarity fitted to ``template`` lands from dlib's own chip mapping
    (get_face_chip_details -> get_mapping_to_chip, read from dlib-bin) on real faces: the chip's
    four corner pixels mapped into the photo by both (difference in image pixels) and the
    photo-side corners mapped back into the chip by ours (chip pixels). Three fits:
    ``fastface``: estimate_similarity(dlib's 5 points -> template), what fastface.align does;
    ``template_to_image``: the same least squares in dlib's direction (template -> points),
    inverted, isolating the fit's direction; ``dlib_rebuilt``: :func:`dlib_chip_mapping`, the
    source's construction (should be exact)."""
    import fastface

    corners = np.array([[0, 0], [CHIP_SIZE - 1, 0], [CHIP_SIZE - 1, CHIP_SIZE - 1], [0, CHIP_SIZE - 1]], np.float64)
    inv = lambda m: np.linalg.inv(np.vstack([m, [0, 0, 1]]))[:2]
    apply = lambda m, p: p @ m[:, :2].T + m[:, 2]
    recs = [r for r in a_records.values() if len(r["pts"])]
    fits = {"fastface": lambda pts: fastface.estimate_similarity(pts.astype(np.float32), template.astype(np.float32)),
            "template_to_image": lambda pts: inv(umeyama(template, pts)),
            "dlib_rebuilt": dlib_chip_mapping}
    diffs = {k: ([], []) for k in fits}
    scales, direction = [], []
    for r in recs:
        pts, m = r["pts"][0], r["chip_m"][0]
        ref = apply(inv(m), corners)
        scales.append(1 / math.sqrt(abs(np.linalg.det(m[:, :2]))))
        for name, fit in fits.items():
            ours = fit(pts)
            diffs[name][0].append(np.abs(apply(inv(ours), corners) - ref).max())
            diffs[name][1].append(np.abs(apply(ours, ref) - corners).max())
        direction.append(np.abs(apply(fits["fastface"](pts), ref) - apply(fits["template_to_image"](pts), ref)).max())
    out = {"faces": len(recs),
           "image_px_per_chip_px": {"median": float(np.median(scales)), "min": float(np.min(scales)),
                                    "max": float(np.max(scales))},
           "fit_direction_only_chip_px": {"max": float(np.max(direction)), "mean": float(np.mean(direction))}}
    for name, (img, chip) in diffs.items():
        out[name] = {"max_corner_diff_image_px": float(np.max(img)), "mean_corner_diff_image_px": float(np.mean(img)),
                     "max_corner_diff_chip_px": float(np.max(chip)), "mean_corner_diff_chip_px": float(np.mean(chip))}
    return out


# ----------------------------------------------------------------------------------------------
# End-to-end pipelines for the timing pass: (models, bgr, rgb) -> embedding

def make_pipelines(models, mapping) -> dict:
    import dlib
    import fastface

    def subject(bgr, det=None):
        faces = (det or models.yunet).detect(bgr)
        k = central(np.array([f.bbox for f in faces]).reshape(-1, 4), bgr.shape)
        return None if k is None else faces[k]

    def a(bgr, rgb):
        boxes = hog_boxes(models, rgb)
        k = central(boxes, rgb.shape)
        if k is None:
            return None
        return np.array(models.dlib_net.compute_face_descriptor(rgb, models.predictor(rgb, dlib_rect(boxes[k]))))

    def b(bgr, rgb):
        f = subject(bgr)
        return None if f is None else models.dlib_embedder.embed_image(bgr, f.landmarks)

    def b_mirror(bgr, rgb):
        f = subject(bgr)
        if f is None:
            return None
        crop = fastface.align(bgr, f.landmarks, CHIP_SIZE, models.card_template.astype(np.float32))
        return l2n(models.dlib_embedder.embed(np.ascontiguousarray(np.stack([crop, crop[:, ::-1]]))).sum(0))

    def b_ref(size):
        def run(bgr, rgb):
            f = subject(bgr)
            if f is None:
                return None
            found = refine_landmarks(models.yunet, bgr, f.bbox, size)
            return models.dlib_embedder.embed_image(bgr, (f.landmarks if found is None else found[0]).astype(np.float32))
        return run

    def c(how, mirror=False):
        def run(bgr, rgb):
            f = subject(bgr)
            if f is None:
                return None
            shape = models.predictor(rgb, dlib_rect(map_box(mapping, f.bbox, f.landmarks)))
            if how == "chip":
                crop = np.asarray(dlib.get_face_chip(rgb, shape, CHIP_SIZE, CHIP_PADDING))
            else:
                crop = fastface.align(rgb, shape_points(shape), CHIP_SIZE, DLIB_CHIP_TEMPLATE, channel_order="RGB")
            crops = np.stack([crop, crop[:, ::-1]]) if mirror else crop[None]
            return l2n(models.dlib_embedder.embed(np.ascontiguousarray(crops), channel_order="RGB").sum(0))
        return run

    def f_det(det_name):
        def run(bgr, rgb):
            f = subject(bgr, models.yunet_up if det_name == "upscale" else None)
            if f is None:
                return None
            lms = f.landmarks
            if det_name.startswith("ref"):
                found = refine_landmarks(models.yunet, bgr, f.bbox, int(det_name[3:]))
                lms = lms if found is None else found[0].astype(np.float32)
            return models.mobilefacenet.embed_image(bgr, lms)
        return run

    def f_cv(bgr, rgb):
        boxes, lms, _ = cv_detect(models, bgr)
        k = central(boxes, bgr.shape)
        return None if k is None else opencv_mobilefacenet(models, bgr, lms[k])

    return {"A": a, "B": b, "B+mirror": b_mirror, "B+ref256": b_ref(256), "B+ref320": b_ref(320),
            "C-chip": c("chip"), "C-crop": c("crop"), "E-chip": c("chip", True), "E-crop": c("crop", True),
            "F-native": f_det("native"), "F-upscale": f_det("upscale"), "F-ref256": f_det("ref256"),
            "F-ref320": f_det("ref320"), "F-opencv640": f_cv}


def time_pipelines(models, mapping, paths, names=None) -> dict:
    """Median ms per photo of each pipeline, interleaved photo by photo (the order rotates), after
    one warm-up photo; decoding and BGR->RGB conversion are outside the clock."""
    pipelines = make_pipelines(models, mapping)
    names = list(pipelines) if names is None else names
    bgr, rgb = load(paths[0])
    for name in names:
        pipelines[name](bgr, rgb)
    times = {n: [] for n in names}
    for i, path in enumerate(paths):
        bgr, rgb = load(path)
        for name in names[i % len(names):] + names[:i % len(names)]:
            t = time.perf_counter()
            pipelines[name](bgr, rgb)
            times[name].append(1e3 * (time.perf_counter() - t))
    return {n: {"median_ms": float(np.median(v)), "p90_ms": float(np.percentile(v, 90)), "photos": len(v)}
            for n, v in times.items()}


# ----------------------------------------------------------------------------------------------
# Scoring

def score(pairs: Pairs, emb: dict, missed: dict, name: str) -> dict:
    e = l2n(np.stack([emb[p] for p in pairs.images]))
    s = np.einsum("ij,ij->i", e[pairs.first], e[pairs.second])
    r = evaluate_scores(s, pairs.same, folds=pairs.folds, name=name, fold_scheme=pairs.fold_scheme).summary
    return {"accuracy": r["accuracy_mean"], "accuracy_std": r["accuracy_std"],
            "best_threshold": best_threshold(s, pairs.same), "threshold_mean": r["threshold_mean"],
            "fp": r["counts"]["fp"], "fn": r["counts"]["fn"], "auc": r["auc"], "eer": r["eer"],
            "missed": int(sum(bool(missed[p]) for p in pairs.images)), "images": len(pairs.images),
            "pairs": len(pairs)}


def embeddings(records: dict, key: str, flip_key: str | None = None):
    emb = {p: r[key][0] + (r[flip_key][0] if flip_key else 0) for p, r in records.items()}
    return emb, {p: bool(r["missed"][0]) for p, r in records.items()}


# ----------------------------------------------------------------------------------------------

def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    here = Path(__file__).resolve()
    default_cache = (here.parents[3] / "build" / "versus_dlib") if len(here.parents) > 3 else Path("build/versus_dlib")
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("FASTFACE_TEST_DATA", here.parents[4] / "shared" / "data")),
                        help="the shared data folder (models/, faces/)")
    parser.add_argument("--cache", type=Path, default=default_cache, help="folder for the .npz caches and results")
    parser.add_argument("--lists", nargs="+", default=["view1", "deepface", "orl"], choices=["view1", "deepface", "orl"])
    parser.add_argument("--mapping", help="force the box mapping used for E and the timing (default: best on pairsDevTrain)")
    parser.add_argument("--time-photos", type=int, default=150, help="photos per list in the timing pass (0: skip)")
    parser.add_argument("--retime", action="store_true", help="time again even if timing.json holds this setting")
    args = parser.parse_args(argv)
    import cv2

    cv2.setNumThreads(1)
    cache = args.cache
    cache.mkdir(parents=True, exist_ok=True)
    lists = pair_lists(args.data, cache, args.lists)
    paths = list(dict.fromkeys(p for name, pl in lists.items() for p in pl.images))
    log(f"{len(paths)} photos in {', '.join(f'{k} ({len(v)} pairs)' for k, v in lists.items())}")
    models = Models(args.data)
    results = {"lists": {}, "pipelines": {}}

    yunet = Stage(cache, "yunet_native").run(paths, stage_yunet(models, models.yunet))
    hog = Stage(cache, "hog").run(paths, stage_hog(models))
    a = Stage(cache, "A").run(paths, stage_a(models, hog))
    b = Stage(cache, "B").run(paths, stage_card(models, yunet, models.dlib_embedder))

    # D: mappings fitted on pairsDevTrain's photos only
    pipelines = {"A": embeddings(a, "emb"), "A-wholerect": ({p: r["emb_whole"][0] for p, r in a.items()},
                                                            {p: bool(r["missed"][0]) for p, r in a.items()}),
                 "B": embeddings(b, "emb")}
    fit_paths = lists["view1_devtrain"].images if "view1_devtrain" in lists else paths
    train_matches = matched_faces(fit_paths, yunet, hog)
    mappings = fit_mappings(train_matches)
    test_paths = lists["view1_devtest"].images if "view1_devtest" in lists else paths
    test_matches = matched_faces([p for p in test_paths if p not in set(fit_paths)], yunet, hog)
    results["mappings"] = {name: {"constants": m, "fit_faces": len(train_matches),
                                  "quality_devtrain": mapping_quality(train_matches, m),
                                  "quality_devtest_only": mapping_quality(test_matches, m) if test_matches else None}
                           for name, m in mappings.items()}
    c_records = {}
    for name, m in mappings.items():
        c_records[name] = Stage(cache, f"C_{name}", m).run(paths, stage_c(models, yunet, m))
        pipelines[f"C[{name}]-chip"] = embeddings(c_records[name], "emb_chip")
        pipelines[f"C[{name}]-crop"] = embeddings(c_records[name], "emb_crop")
    # landmark agreement with dlib's own points (HOG rect) on the subjects both found
    for name in mappings:
        d = []
        for p in fit_paths:
            if len(a[p]["pts"]) and len(c_records[name][p]["pts"]):
                pa, pc = a[p]["pts"][0], c_records[name][p]["pts"][0]
                eye = np.linalg.norm(pa[:2].mean(0) - pa[2:4].mean(0))
                if np.linalg.norm(pa.mean(0) - pc.mean(0)) < eye:  # the same face
                    d.append(np.linalg.norm(pa - pc, axis=1).mean() / eye)
        results["mappings"][name]["points_vs_hog_rect_devtrain"] = {
            "faces": len(d), "mean_err_rel_eye_dist": float(np.mean(d)), "median": float(np.median(d))}

    # the choice: highest pairsDevTrain 10-fold accuracy (dlib chip and fastface crop averaged);
    # ties go to the smaller landmark error against dlib's own points (HOG rect)
    if "view1_devtrain" in lists:
        choice = {n: (score(lists["view1_devtrain"], *pipelines[f"C[{n}]-chip"], n)["accuracy"]
                      + score(lists["view1_devtrain"], *pipelines[f"C[{n}]-crop"], n)["accuracy"]) / 2 for n in mappings}
        chosen = max(choice, key=lambda n: (round(choice[n], 9),
                                            -results["mappings"][n]["points_vs_hog_rect_devtrain"]["mean_err_rel_eye_dist"]))
        results["choice_devtrain_accuracy"] = choice
    else:
        chosen = "fit"
    chosen = args.mapping or chosen
    results["chosen_mapping"] = chosen
    log(f"chosen mapping: {chosen} {mappings[chosen]}")
    e_records = {}
    for name in dict.fromkeys([chosen, "fit"]):  # the pick, and the box-only fit beside it
        e_records[name] = Stage(cache, f"E_{name}", mappings[name]).run(
            paths, stage_c(models, yunet, mappings[name], flips=True))
        pipelines[f"E[{name}]-chip"] = embeddings(e_records[name], "emb_chip", "emb_chip_flip")
        pipelines[f"E[{name}]-crop"] = embeddings(e_records[name], "emb_crop", "emb_crop_flip")
    e = e_records[chosen]
    pipelines["B+mirror"] = embeddings(Stage(cache, "B_mirror").run(paths, stage_mirror(models, yunet, models.dlib_embedder)),
                                       "emb", "emb_flip")

    # F: MobileFaceNet with the ArcFace template; second pass also for the dlib recognizer
    up = Stage(cache, "yunet_upscale").run(paths, stage_yunet(models, models.yunet_up))
    ref = {s: Stage(cache, f"refine{s}").run(paths, stage_refine(models, yunet, s)) for s in (256, 320)}
    cv = Stage(cache, "cv_yunet640").run(paths, stage_cv(models))
    for name, faces in (("native", yunet), ("upscale", up), ("ref256", ref[256]), ("ref320", ref[320])):
        recs = Stage(cache, f"F_{name}").run(paths, stage_card(models, faces, models.mobilefacenet))
        pipelines[f"F-{name}"] = embeddings(recs, "emb")
    pipelines["F-opencv640"] = embeddings(Stage(cache, "F_opencv640").run(paths, stage_cv_mfn(models, cv)), "emb")
    for s in (256, 320):
        recs = Stage(cache, f"B_ref{s}").run(paths, stage_card(models, ref[s], models.dlib_embedder))
        pipelines[f"B+ref{s}"] = embeddings(recs, "emb")
    results["refine_found"] = {s: int(sum(bool(r["refined"][0]) for r in ref[s].values())) for s in ref}

    # crop-vs-chip comparisons and the template's verification
    check = Stage(cache, "check", {"version": 2}).run(paths, stage_check(models, hog, yunet))
    results["template"] = {"T_pixel_centres": np.round(DLIB_CHIP_TEMPLATE, 4).tolist(),
                           "T_chip_units": np.round(dlib_chip_template(pixel_centres=False), 4).tolist(),
                           "verification": verify_template(a, DLIB_CHIP_TEMPLATE),
                           "verification_chip_units": verify_template(a, dlib_chip_template(pixel_centres=False))}
    results["crop_vs_chip"] = {}
    stats = lambda v: {"mean": float(np.mean(v)), "min": float(np.min(v))} if len(v) else None
    for lname, pl in lists.items():
        rc = [c_records[chosen][p] for p in pl.images if not c_records[chosen][p]["missed"][0]]
        ec = [e[p] for p in pl.images if not e[p]["missed"][0]]
        ck = [check[p] for p in pl.images if len(check[p]["diff_pts"])]
        results["crop_vs_chip"][lname] = {
            "C_yunet_mapped_points": {"faces": len(rc), "mean_abs_pixel_diff": float(np.mean([r["pixdiff"][0] for r in rc])),
                                      "cosine": stats([float(l2n(r["emb_chip"][0]) @ l2n(r["emb_crop"][0])) for r in rc]),
                                      "chip_vs_mirrored_chip_cosine": stats([float(l2n(r["emb_chip"][0]) @ l2n(r["emb_chip_flip"][0]))
                                                                             for r in ec])},
            "hog_points": {"faces": len(ck), "mean_abs_pixel_diff": float(np.mean([r["diff_pts"][0] for r in ck])),
                           "cosine": stats([r["cos_pts"][0] for r in ck])},
            "hog_points_dlib_mapping_fastface_warp": {"faces": len(ck), "mean_abs_pixel_diff": float(np.mean([r["diff_exact"][0] for r in ck])),
                                                      "cosine": stats([r["cos_exact"][0] for r in ck])},
            "card_template_yunet_landmarks": {"faces": len(ck), "mean_abs_pixel_diff": float(np.mean([r["diff_card"][0] for r in ck])),
                                              "cosine": stats([r["cos_card"][0] for r in ck])}}

    for lname, pl in lists.items():
        results["lists"][lname] = {"pairs": len(pl), "images": len(pl.images), "source": str(pl.source),
                                   "fold_scheme": pl.fold_scheme}
        results["pipelines"][lname] = {n: score(pl, *pipelines[n], n) for n in pipelines}
    # the pairs whose two photos both had a HOG subject: detection misses taken out of the comparison
    results["hog_found_both"] = {}
    subset_rows = ["A", "B", "B+mirror"] + [f"{p}[{m}]-{h}" for m in dict.fromkeys([chosen, "fit"])
                                            for p in ("C", "E") for h in ("chip", "crop")] + ["F-native"]
    for lname in [n for n in ("view1_all", "orl", "deepface") if n in lists]:
        pl = lists[lname]
        ok = np.array([not a[pl.images[i]]["missed"][0] and not a[pl.images[j]]["missed"][0]
                       for i, j in zip(pl.first, pl.second)])
        sub = Pairs(pl.images, pl.first[ok], pl.second[ok], pl.same[ok], stratified_folds(pl.same[ok]), pl.source, "stratified")
        results["hog_found_both"][lname] = {n: score(sub, *pipelines[n], n) for n in subset_rows}

    if args.time_photos:
        timing_file = cache / "timing.json"
        key = {"photos": args.time_photos, "mapping": mappings[chosen], "lists": sorted(lists)}
        cached = json.loads(timing_file.read_text()) if timing_file.is_file() else {}
        if cached.get("key") == key and not args.retime:
            results["timing"] = cached["timing"]
        else:
            results["timing"] = {}
            for lname in [n for n in ("view1_all", "deepface", "orl") if n in lists]:
                imgs = lists[lname].images
                step = max(1, len(imgs) // args.time_photos)
                sample = imgs[::step][:args.time_photos]
                log(f"timing on {len(sample)} photos of {lname}")
                results["timing"][lname] = time_pipelines(models, mappings[chosen], sample)
            timing_file.write_text(json.dumps({"key": key, "timing": results["timing"]}, indent=1))
    (cache / "results.json").write_text(json.dumps(results, indent=1, default=float))
    (cache / "report.md").write_text(report(results))
    print(report(results))
    return 0


TIMED = {"A": "A", "A-wholerect": "A", "B": "B", "B+mirror": "B+mirror", "B+ref256": "B+ref256", "B+ref320": "B+ref320",
         "F-native": "F-native", "F-upscale": "F-upscale", "F-ref256": "F-ref256", "F-ref320": "F-ref320",
         "F-opencv640": "F-opencv640"}


def _timing_key(results, lname, name):
    if name in TIMED:
        return TIMED[name]
    for prefix in ("C", "E"):  # every mapping costs the same (timed with the chosen one)
        for how in ("chip", "crop"):
            if name.startswith(f"{prefix}[") and name.endswith(f"-{how}"):
                return f"{prefix}-{how}"
    return None


def _pct(r) -> str:
    return f"{100 * r['accuracy']:.2f} ({100 * r['accuracy_std']:.2f})"


def report(results) -> str:
    """results.json as Markdown: one table per pair list, then D (mappings), T, crop vs chip."""
    lines = ["View 1 figures are calibration figures (LFW's development set), not LFW accuracy.", ""]
    for lname, rows in results["pipelines"].items():
        tl = "view1_all" if lname.startswith("view1") else lname
        timing = results.get("timing", {}).get(tl, {})
        meta = results["lists"][lname]
        lines += [f"### {lname}: {meta['pairs']} pairs, {meta['images']} photos, {meta['fold_scheme']} folds",
                  "", ("| pipeline | 10-fold acc % (std) | best thr (all pairs) | 10-fold mean thr | FP | FN | missed | "
                       f"ms/photo (median of {next(iter(timing.values()))['photos'] if timing else 0}) |"),
                  "|---|---|---|---|---|---|---|---|"]
        for name, r in rows.items():
            key = _timing_key(results, lname, name)
            ms = f"{timing[key]['median_ms']:.1f}" if key in timing else "–"
            lines.append(f"| {name} | {_pct(r)} | {r['best_threshold']:.4f} | "
                         f"{r['threshold_mean']:.4f} | {r['fp']} | {r['fn']} | {r['missed']} | {ms} |")
        lines.append("")
    for lname, rows in results.get("hog_found_both", {}).items():
        first = next(iter(rows.values()))
        lines += [f"### {lname}, only pairs where HOG found the subject in both photos ({first['pairs']} pairs)", "",
                  "| pipeline | 10-fold acc % (std) | best thr | FP | FN |", "|---|---|---|---|---|"]
        lines += [f"| {n} | {_pct(r)} | {r['best_threshold']:.4f} | {r['fp']} | {r['fn']} |" for n, r in rows.items()]
        lines.append("")
    pl = results["pipelines"]
    lines += [f"### D: box mappings (chosen: {results['chosen_mapping']})", "",
              ("| mapping | dx | dy | sx | sy | IoU vs HOG (DevTrain / DevTest) | point err / eye dist (mean, median) | "
               "C chip acc DevTrain / DevTest / all | C crop acc DevTrain / DevTest / all |"), "|---|---|---|---|---|---|---|---|---|"]
    for n, m in results["mappings"].items():
        c = m["constants"]
        acc = lambda how, n=n: " / ".join(f"{100 * pl[l][f'C[{n}]-{how}']['accuracy']:.2f}"
                                          for l in ("view1_devtrain", "view1_devtest", "view1_all") if l in pl)
        q, qt, pe = m["quality_devtrain"], m["quality_devtest_only"] or {}, m["points_vs_hog_rect_devtrain"]
        lines.append(f"| {n}{' (landmarks)' if c['kind'] == 'landmarks' else ''}{' (square)' if c.get('square') else ''} | "
                     f"{c['dx']:.4f} | {c['dy']:.4f} | {c['sx']:.4f} | {c['sy']:.4f} | {q['iou_mean']:.3f} / "
                     f"{qt.get('iou_mean', float('nan')):.3f} | {pe['mean_err_rel_eye_dist']:.4f}, {pe['median']:.4f} | "
                     f"{acc('chip')} | {acc('crop')} |")
    t = results["template"]
    lines += ["", "### T: dlib's 5-point chip template (150 px, padding 0.25), pixel centres", "",
              "    " + json.dumps(t["T_pixel_centres"]), "",
              "verification (chip corners, fitted similarity vs dlib-bin's get_face_chip_details mapping):",
              "", "    " + json.dumps(t["verification"]), "", "### crop vs dlib chip", ""]
    for lname, c in results["crop_vs_chip"].items():
        lines.append(f"- {lname}: " + json.dumps(c))
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
