"""Stage 4: cosine similarity and top-k search over a contiguous gallery."""
from __future__ import annotations

import numpy as np

from . import _core


def _as_matrix(x, name: str) -> tuple[np.ndarray, bool]:
    array = np.asarray(x, dtype=np.float32)
    if array.ndim not in (1, 2) or array.size == 0:
        raise ValueError(f"{name} must be a non-empty (D,) vector or (N, D) matrix, got shape {array.shape}")
    return np.ascontiguousarray(array.reshape(-1, array.shape[-1])), array.ndim == 1


def cosine(a, b):
    """Cosine similarity: a float for two vectors, (M,) for a vector against (M, D),
    (N, M) for (N, D) against (M, D) — like ``normalize(a) @ normalize(b).T``."""
    qa, a_is_vector = _as_matrix(a, "a")
    gb, b_is_vector = _as_matrix(b, "b")
    scores = _core.cosine_matrix(qa, gb)
    if a_is_vector and b_is_vector:
        return float(scores[0, 0])
    if a_is_vector:
        return scores[0]
    if b_is_vector:
        return scores[:, 0]
    return scores


def search(queries, gallery, k: int = 5, threads: int = 0, unit_rows: bool = False):
    """Top-k gallery rows by cosine for each query, best first.

    Returns ``(indices, scores)``: int64 and float32 arrays of shape (Q, k), or (k,) for a single
    (D,) query. ``threads=0`` picks a thread count from the problem size. ``unit_rows=True``
    promises L2-normalized gallery rows (e.g. ``Embedder.embed`` output) and skips their norms.
    """
    q, single = _as_matrix(queries, "queries")
    g, _ = _as_matrix(gallery, "gallery")
    if np.ndim(gallery) != 2:
        raise ValueError(f"gallery must be an (N, D) matrix, got shape {np.shape(gallery)}")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise TypeError(f"k must be an int, got {type(k).__name__}")
    indices, scores = _core.search(q, g, int(k), threads, bool(unit_rows))
    return (indices[0], scores[0]) if single else (indices, scores)
