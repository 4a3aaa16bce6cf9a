"""Readers for verification pair lists: LFW ``pairs.txt``, CSV ``file_a,file_b,same``, and
insightface ``.bin`` sets.

Every reader returns :class:`Pairs`: the images listed once each (file paths, or encoded bytes
for ``.bin``) and per pair two indices into that list, so a run embeds every image once however
many pairs share it. Readers check that every image file exists before returning, so a typo in
a 6000-pair list fails in a second, not after the model has run.
"""
from __future__ import annotations

import csv
import os
from dataclasses import dataclass

import numpy as np

from .metrics import stratified_folds
from .safe_pickle import load_verification_bin


@dataclass(frozen=True)
class Pairs:
    """A pair list: ``images[first[k]]`` vs ``images[second[k]]``, ``same[k]`` if same person.

    ``folds`` is a fold id per pair (None: contiguous blocks) and ``fold_scheme`` says where it comes from (a key of
    :data:`.metrics.FOLD_SCHEMES`): LFW's own folds from ``pairs.txt``, a CSV's ``fold`` column,
    contiguous blocks for insightface ``.bin`` sets (their order is the official split), and
    otherwise stratified folds, each with the list's same/different mix — contiguous folds of a
    list sorted by label would hold only same-person pairs in one fold and none in another.
    """

    images: list
    first: np.ndarray
    second: np.ndarray
    same: np.ndarray
    folds: np.ndarray | None = None
    source: str = ""
    fold_scheme: str | None = None  # None: "contiguous" without folds, else "given"

    def __len__(self) -> int:
        return int(self.same.size)


def read_pairs(path, images=None) -> Pairs:
    """Read a pair list, choosing the reader by extension (``.txt``, ``.csv``, ``.bin``).

    ``images`` is the image root for ``.txt``/``.csv``; default: the pair file's folder (for LFW
    lists, its ``images/`` or ``lfw/`` sub-folder when the photos are there).
    """
    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower()
    if ext == ".bin":
        return read_bin(path)
    if ext in (".txt", ".csv"):
        return (read_lfw if ext == ".txt" else read_csv)(path, images)
    raise ValueError(f"{path}: unknown pair list type {ext!r} (expected .txt, .csv or .bin)")


def combine(lists: "list[Pairs]") -> Pairs:
    """Several pair lists as one (LFW's View 1 is two files: pairsDevTrain and pairsDevTest):
    every pair of each, each image once, stratified folds over the whole."""
    if len(lists) == 1:
        return lists[0]
    if any(isinstance(img, (bytes, bytearray)) for p in lists for img in p.images[:1]):
        raise ValueError("insightface .bin sets cannot be combined with other pair lists")
    images = sorted({img for p in lists for img in p.images})
    where = {img: i for i, img in enumerate(images)}
    first = np.concatenate([[where[p.images[i]] for i in p.first] for p in lists]).astype(np.int64)
    second = np.concatenate([[where[p.images[i]] for i in p.second] for p in lists]).astype(np.int64)
    same = np.concatenate([p.same for p in lists])
    return Pairs(images, first, second, same, stratified_folds(same), " + ".join(p.source for p in lists),
                 "stratified")


def _from_files(path: str, root, rows: list, folds, fold_scheme: str) -> Pairs:
    """Pairs from ``(file_a, file_b, same, line)`` rows with files relative to ``root``."""
    if not rows:
        raise ValueError(f"{path}: no pairs")
    root = os.path.dirname(os.path.abspath(path)) if root is None else os.fspath(root)
    files = np.array([os.path.join(root, f) for row in rows for f in row[:2]])
    images, first_use, index = np.unique(files, return_index=True, return_inverse=True)
    missing = [(rows[first_use[i] // 2][3], f) for i, f in enumerate(images) if not os.path.isfile(f)]
    if missing:
        shown = "; ".join(f"line {line}: {f}" for line, f in sorted(missing)[:5])
        raise FileNotFoundError(f"{path}: {len(missing)} of {len(images)} images not found "
                                f"under {root} ({shown}{'; ...' if len(missing) > 5 else ''})")
    index = index.reshape(-1, 2)
    same = np.array([row[2] for row in rows], dtype=bool)
    if folds is None:
        folds, fold_scheme = stratified_folds(same), "stratified"
    return Pairs(images.tolist(), index[:, 0], index[:, 1], same, folds, path, fold_scheme)


def _image_number(path: str, line: int, text: str) -> int:
    if not (text.isdigit() and int(text) > 0):
        raise ValueError(f"{path}:{line}: image number must be a positive integer, got {text!r}")
    return int(text)


def read_lfw(path, images=None) -> Pairs:
    """LFW ``pairs.txt``: a header ``folds pairs`` (or just ``pairs`` for one set, as in
    ``pairsDevTest.txt``), then per fold ``pairs`` rows ``name i j`` (same person) and ``pairs``
    rows ``name1 i name2 j`` (different), naming ``images/name/name_000i.jpg``. The header's
    fold layout is kept so the 10-fold protocol uses the official splits (a one-set file gets
    stratified folds)."""
    path = os.fspath(path)
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    header = lines[0].split() if lines else []
    if not (1 <= len(header) <= 2 and all(t.isdigit() and int(t) > 0 for t in header)):
        raise ValueError(f"{path}:1: expected a header 'folds pairs_per_fold', got "
                         f"{lines[0] if lines else ''!r}")
    n_folds, per_fold = (int(t) for t in header) if len(header) == 2 else (1, int(header[0]))
    rows = []
    for line, text in enumerate(lines[1:], start=2):
        tokens = text.split()
        if not tokens:
            continue
        if len(tokens) not in (3, 4):
            raise ValueError(f"{path}:{line}: expected 'name i j' or 'name1 i name2 j', got {text!r}")
        same = len(tokens) == 3
        a, i, b, j = (tokens[0], tokens[1], tokens[0], tokens[2]) if same else tokens
        rows.append((f"{a}/{a}_{_image_number(path, line, i):04d}.jpg",
                     f"{b}/{b}_{_image_number(path, line, j):04d}.jpg", same, line))
    if len(rows) != 2 * n_folds * per_fold:
        raise ValueError(f"{path}: header announces {n_folds} fold(s) of {per_fold} same + "
                         f"{per_fold} different pairs = {2 * n_folds * per_fold}, found {len(rows)}")
    folds = np.repeat(np.arange(n_folds), 2 * per_fold) if n_folds > 1 else None
    return _from_files(path, _lfw_root(path, rows) if images is None else images, rows, folds, "lfw")


def _lfw_root(path: str, rows: list):
    """The pair file's folder, or the ``images/`` or ``lfw/`` folder beside it when the photos
    are there (how LFW's archives and View 1 unpack); None (the file's folder) otherwise."""
    folder = os.path.dirname(os.path.abspath(path))
    for root in (folder, os.path.join(folder, "images"), os.path.join(folder, "lfw")):
        if rows and os.path.isfile(os.path.join(root, rows[0][0])):
            return root
    return None


_FLAGS = {"1": True, "true": True, "0": False, "false": False}


def read_csv(path, images=None) -> Pairs:
    """CSV with a header naming ``file_a,file_b,same`` (``same`` is 1/0 or true/false) and an
    optional ``fold`` column (integer fold id per pair; without it, stratified folds); files are
    relative to ``images``."""
    path = os.fspath(path)
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = [c.strip() for c in next(reader, [])]
        if not {"file_a", "file_b", "same"} <= set(header):
            raise ValueError(f"{path}:1: header must name the columns file_a,file_b,same "
                             f"(and optionally fold), got {','.join(header)!r}")
        col = {name: header.index(name) for name in ("file_a", "file_b", "same", "fold") if name in header}
        rows, folds = [], []
        for cells in reader:
            line = reader.line_num
            if not any(c.strip() for c in cells):
                continue
            if len(cells) != len(header):
                raise ValueError(f"{path}:{line}: expected {len(header)} fields, got {len(cells)}")
            same = _FLAGS.get(cells[col["same"]].strip().lower())
            if same is None:
                raise ValueError(f"{path}:{line}: 'same' must be 1/0 or true/false, "
                                 f"got {cells[col['same']]!r}")
            if "fold" in col:
                fold = cells[col["fold"]].strip()
                if not fold.lstrip("-").isdigit():
                    raise ValueError(f"{path}:{line}: 'fold' must be an integer, got {fold!r}")
                folds.append(int(fold))
            rows.append((cells[col["file_a"]].strip(), cells[col["file_b"]].strip(), same, line))
    return _from_files(path, images, rows, np.array(folds) if "fold" in col else None, "file")


def read_bin(path) -> Pairs:
    """insightface verification ``.bin`` (``lfw.bin``, ``cfp_fp.bin``, ``agedb_30.bin``): aligned
    112x112 crops stored encoded, pair k = images 2k and 2k+1. Read with a restricted unpickler
    (see :mod:`.safe_pickle`), so a hostile file is refused, never executed."""
    path = os.fspath(path)
    with open(path, "rb") as f:
        try:
            images, same = load_verification_bin(f)
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from exc
    n = same.size
    return Pairs(images, np.arange(0, 2 * n, 2), np.arange(1, 2 * n, 2), same, None, path, "contiguous")


def decode(image) -> np.ndarray:
    """A BGR uint8 H x W x 3 image from a file path or encoded bytes (needs OpenCV)."""
    from .._opencv import import_cv2

    cv2 = import_cv2()
    if isinstance(image, (bytes, bytearray)):
        data, what = np.frombuffer(image, dtype=np.uint8), f"encoded image ({len(image)} bytes)"
    else:
        data, what = np.fromfile(os.fspath(image), dtype=np.uint8), os.fspath(image)  # unicode-safe
    decoded = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if decoded is None:
        raise ValueError(f"cannot decode {what}")
    return decoded
