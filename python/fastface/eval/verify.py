"""Run a model over a pair list and score it: the only part of evaluation that touches a model.

The model is any ``embed_fn(crops) -> (N, D) float array`` over aligned uint8 BGR crops, so the
same code measures the C++ engine and a PyTorch checkpoint, and a conversion's accuracy delta is
two calls of :func:`evaluate`. Getting from a file to a crop is two more callables: ``load``
(path or encoded bytes -> BGR image, default :func:`.pairs.decode`) and ``crop`` (image ->
aligned crop; default identity, right for aligned sets such as ``.bin`` files — detection plus
alignment plugs in here for raw photos: :class:`.faces.FaceCrop` picks the subject by a rule,
falls back to a centred crop when no face is found, and :func:`evaluate` records both).
"""
from __future__ import annotations

import warnings
from typing import Callable, Optional, Sequence

import numpy as np

from .faces import FaceCrop, NoFaceError
from .metrics import FARS, Result, evaluate_scores
from .pairs import Pairs, decode

#: Names of photos without a detected face kept in a result (the count is always exact).
MISSED_SHOWN = 10


def _progress(total: int, enabled: bool):
    if not enabled:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        warnings.warn("tqdm is not installed, so there is no progress bar (pip install tqdm)",
                      stacklevel=3)
        return None
    return tqdm(total=total, unit="img", desc="embedding")


def _describe(images: Sequence, i: int) -> str:
    return images[i] if isinstance(images[i], str) else f"image #{i}"


def _embed_batch(embed_fn: Callable, crops: list) -> np.ndarray:
    out = np.asarray(embed_fn(crops), dtype=np.float64)
    if out.ndim != 2 or out.shape[0] != len(crops):
        raise ValueError(f"embed_fn returned shape {out.shape} for {len(crops)} crops; "
                         "expected (N, D)")
    return out


def embed(embed_fn: Callable, images: Sequence, *, flip: bool = False,
          crop: Optional[Callable] = None, load: Callable = decode,
          batch_size: int = 64, progress: bool = False) -> np.ndarray:
    """L2-normalised float32 embeddings, one row per entry of ``images``.

    Images are loaded and embedded ``batch_size`` at a time so memory stays flat on a board.
    With ``flip`` the embedding is ``embed(crop) + embed(mirrored crop)``, summed before
    normalising as insightface's evaluation does. A zero or non-finite embedding is an error
    naming the image: its cosine is undefined and silently scoring it would skew the result.
    """
    return _embed(embed_fn, images, flip=flip, crop=crop, load=load, batch_size=batch_size, progress=progress)[0]


def _crop_one(crop, image, name: str) -> tuple[np.ndarray, bool]:
    """(crop, whether a face was detected) — always True unless ``crop`` is a FaceCrop."""
    if isinstance(crop, FaceCrop):
        try:
            return crop.crop(image)
        except NoFaceError as exc:
            raise NoFaceError(f"{name}: {exc}") from None
    return (image if crop is None else crop(image)), True


def _embed(embed_fn, images, *, flip, crop, load, batch_size, progress) -> tuple[np.ndarray, list]:
    """:func:`embed` plus the indices of the images in which no face was detected."""
    bar = _progress(len(images), progress)
    rows, missed = [], []
    try:
        for start in range(0, len(images), batch_size):
            crops = []
            for i in range(start, min(start + batch_size, len(images))):
                face, detected = _crop_one(crop, load(images[i]), _describe(images, i))
                if not detected:
                    missed.append(i)
                if not (isinstance(face, np.ndarray) and face.dtype == np.uint8
                        and face.ndim == 3 and face.shape[2] == 3):
                    raise ValueError(f"{_describe(images, i)}: crop must give an H x W x 3 uint8 "
                                     f"BGR array, got {getattr(face, 'shape', type(face).__name__)}")
                crops.append(face)
            batch = _embed_batch(embed_fn, crops)
            if flip:
                batch = batch + _embed_batch(embed_fn, [np.ascontiguousarray(c[:, ::-1]) for c in crops])
            rows.append(batch)
            if bar is not None:
                bar.update(len(crops))
    finally:
        if bar is not None:
            bar.close()
    emb = np.concatenate(rows)
    norms = np.linalg.norm(emb, axis=1)
    bad = np.flatnonzero(~(np.isfinite(norms) & (norms > 0)))
    if bad.size:
        raise ValueError(f"{_describe(images, int(bad[0]))}: embedding is zero or not finite "
                         f"({bad.size} image(s) affected)")
    return (emb / norms[:, None]).astype(np.float32), missed


def cosine_scores(embeddings: np.ndarray, first, second) -> np.ndarray:
    """Cosine similarity of each pair of rows of L2-normalised ``embeddings``."""
    a, b = embeddings[np.asarray(first)], embeddings[np.asarray(second)]
    return np.einsum("ij,ij->i", a.astype(np.float64), b.astype(np.float64))


def evaluate(embed_fn: Callable, pairs: Pairs, *, flip: bool = False,
             crop: Optional[Callable] = None, load: Callable = decode, batch_size: int = 64,
             progress: bool = False, name: str = "model", fars=FARS) -> Result:
    """Embed every image of ``pairs`` once, score the pairs by cosine similarity, and compute
    the 10-fold protocol (folds as ``pairs.fold_scheme`` says), ROC AUC, EER and TAR@FAR.
    Write the result out with :func:`.report.write_report`.

    For raw photos pass ``crop=FaceCrop(detector, size, template, face=...)``: the summary then
    records the subject rule (``summary["subject"]``) and the photos in which no face was
    detected (their count and the first :data:`MISSED_SHOWN` names)."""
    emb, missed = _embed(embed_fn, pairs.images, flip=flip, crop=crop, load=load,
                         batch_size=batch_size, progress=progress)
    scores = cosine_scores(emb, pairs.first, pairs.second)
    result = evaluate_scores(scores, pairs.same, folds=pairs.folds, name=name, fars=fars,
                             fold_scheme=pairs.fold_scheme)
    if isinstance(crop, FaceCrop):
        result.summary["subject"] = {
            "face": crop.face, "strict": crop.strict, "images": len(pairs.images), "missed": len(missed),
            "missed_images": [_describe(pairs.images, i) for i in missed[:MISSED_SHOWN]],
            "fallback": None if crop.strict else "the template centred and scaled to the photo"}
    return result
