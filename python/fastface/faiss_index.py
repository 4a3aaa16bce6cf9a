"""An optional faiss index over a Gallery's rows, for galleries of millions (``fastface[faiss]``).

    from fastface.faiss_index import FaissGallery
    index = FaissGallery(gallery, "HNSW32", ef_search=128)   # or "Flat", "IVF4096,Flat" + nprobe
    index.search(query, k=5)                                  # [(name, score), ...] like Gallery.search

The index is built once from a snapshot of the gallery (rows decoded to float32); rebuild it
after the gallery changes. Rows and queries are unit vectors, so it ranks by L2 distance (the
same order as cosine, and what HNSW graphs are built for — inner-product HNSW recalls far
less) and reports cosine = 1 - d^2 / 2. Exact search (``"Flat"``) needs
no faiss: fastface's own kernels are faster there. Approximate indexes trade recall for speed;
``bench/bench_faiss.py`` measures both.
"""
from __future__ import annotations

import math
import time

import numpy as np

from .gallery import Gallery, GalleryError

_CHUNK = 65536  # rows decoded and added per step: bounds the float32 copy


def _faiss():
    try:
        import faiss
    except ImportError:
        raise ImportError("the faiss backend needs faiss: pip install \"fastface[faiss]\"") from None
    return faiss


def _unit(rows: np.ndarray) -> np.ndarray:
    """Decoded float16/int8 rows are unit length only to their precision; L2 ranking equals cosine
    ranking for exactly unit rows."""
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


class FaissGallery:
    """``factory``: a faiss index_factory string ("Flat", "IVF<lists>,Flat", "HNSW<M>", ...).
    ``nprobe`` (IVF) and ``ef_search`` (HNSW) set the recall/speed trade-off; ``train_rows``
    caps the rows an index that needs training (IVF) is trained on. ``oversample``: rows fetched
    per requested identity, so that several rows of one identity do not crowd out others."""

    def __init__(self, gallery: Gallery, factory: str = "Flat", *, nprobe: int | None = None,
                 ef_search: int | None = None, train_rows: int = 262144, oversample: int = 4, seed: int = 0):
        faiss = _faiss()
        self.gallery = gallery
        self.factory = factory
        self.oversample = oversample
        started = time.perf_counter()
        with gallery._lock:
            gallery._sync()
            index_rows = gallery._index
            n = len(index_rows)
            self._labels = index_rows.labels
            try:
                self.index = faiss.index_factory(gallery.dim, factory, faiss.METRIC_L2)
            except RuntimeError as exc:
                raise GalleryError(f"faiss cannot build {factory!r}: {exc}") from None
            if not self.index.is_trained:
                if n == 0:
                    raise GalleryError(f"{factory!r} needs training rows, and the gallery is empty")
                picked = np.sort(np.random.default_rng(seed).choice(n, size=min(n, train_rows), replace=False))
                self.index.train(_unit(self._gather(index_rows, picked)))
            for first in range(0, n, _CHUNK):
                self.index.add(_unit(index_rows.decode(first, min(_CHUNK, n - first))))
        if nprobe is not None:
            faiss.ParameterSpace().set_index_parameter(self.index, "nprobe", nprobe)
        if ef_search is not None:
            faiss.ParameterSpace().set_index_parameter(self.index, "efSearch", ef_search)
        self.build_seconds = time.perf_counter() - started

    @staticmethod
    def _gather(index_rows, picked: np.ndarray) -> np.ndarray:
        out = np.empty((len(picked), index_rows.dim), dtype=np.float32)
        for first in range(0, len(index_rows), _CHUNK):
            chunk = picked[(picked >= first) & (picked < first + _CHUNK)]
            if len(chunk):
                rows = index_rows.decode(first, min(_CHUNK, len(index_rows) - first))
                out[np.searchsorted(picked, chunk)] = rows[chunk - first]
        return out

    def __len__(self) -> int:
        return self.index.ntotal

    def search_rows(self, queries, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Row indices and scores (Q, k) for normalized (Q, D) queries; -1 where fewer were found."""
        q = np.ascontiguousarray(np.asarray(queries, dtype=np.float32).reshape(-1, self.gallery.dim))
        norms = np.linalg.norm(q, axis=1, keepdims=True)
        if not np.all(np.isfinite(q)) or np.any(norms == 0):
            raise GalleryError("queries must be finite and non-zero")
        distances, rows = self.index.search(q / norms, k)
        return rows, 1 - distances / 2

    def search(self, query, k: int = 5, threshold: float | None = None):
        """Like Gallery.search (the best row per identity), through the faiss index."""
        queries = np.asarray(query, dtype=np.float32)
        if queries.ndim not in (1, 2) or queries.shape[-1] != self.gallery.dim:
            raise GalleryError(f"query must have shape ({self.gallery.dim},) or (N, {self.gallery.dim}), got {queries.shape}")
        if k <= 0:
            raise GalleryError(f"k must be a positive int, got {k!r}")
        rows, scores = self.search_rows(queries, min(len(self), k * self.oversample))
        results, wanted = [], set()
        for row_ids, row_scores in zip(rows, scores):
            best: dict[int, float] = {}
            for r, s in zip(row_ids, row_scores):
                if r >= 0 and (threshold is None or s >= threshold):
                    label = int(self._labels[r])
                    best[label] = max(best.get(label, -math.inf), float(s))
            ranked = sorted(best.items(), key=lambda item: (-item[1], item[0]))[:k]
            wanted.update(label for label, _ in ranked)
            results.append(ranked)
        with self.gallery._lock:
            names = self.gallery._names_of(wanted)
        named = [[(names[label], score) for label, score in ranked if label in names] for ranked in results]
        return named[0] if queries.ndim == 1 else named
