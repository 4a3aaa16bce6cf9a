"""Stage 5: named embeddings to match against, saved atomically in a checksummed file.

File format (little-endian), version 1:
    magic b"FFGALLRY" | u32 version | u32 dtype (0 fp32, 1 fp16) | u32 dim | u64 count
    | count x (u32 length + UTF-8 name) | count x dim embeddings | 32-byte SHA-256 of all before
"""
from __future__ import annotations

import hashlib
import os
import struct
import tempfile
from pathlib import Path

import numpy as np

from . import _core

MAGIC = b"FFGALLRY"
VERSION = 1
_HEADER = struct.Struct("<8sIIIQ")
_DTYPES = {0: np.dtype("<f4"), 1: np.dtype("<f2")}
_DTYPE_CODES = {"float32": 0, "float16": 1}


class GalleryError(ValueError):
    """A gallery file that cannot be loaded: truncated, corrupt, or from a newer fastface."""


class Gallery:
    """Embeddings with names (several per identity), searched by cosine.

    Rows are stored L2-normalized, in float32 or float16 (``dtype="float16"`` halves memory and
    file size; scores are computed in float32).
    """

    def __init__(self, dim: int, dtype: str = "float32"):
        if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim <= 0:
            raise ValueError(f"dim must be a positive int, got {dim!r}")
        if dtype not in _DTYPE_CODES:
            raise ValueError(f"dtype must be 'float32' or 'float16', got {dtype!r}")
        self.dim = int(dim)
        self.dtype = dtype
        self._names: list[str] = []
        self._identities = None  # (names, row -> identity code), built on first search after a change
        self._vectors = np.zeros((0, self.dim), dtype=_DTYPES[_DTYPE_CODES[dtype]])

    def __len__(self) -> int:
        return len(self._names)

    @property
    def names(self) -> list[str]:
        """Distinct identity names, in enrolment order."""
        return list(dict.fromkeys(self._names))

    def add(self, name: str, embedding) -> None:
        """Add one (D,) embedding, or several (N, D) of the same identity."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"name must be a non-empty string, got {name!r}")
        rows = np.asarray(embedding, dtype=np.float32)
        rows = rows.reshape(1, -1) if rows.ndim == 1 else rows
        if rows.ndim != 2 or rows.shape[1] != self.dim or rows.shape[0] == 0:
            raise ValueError(f"embedding must be ({self.dim},) or (N, {self.dim}), got {np.shape(embedding)}")
        if not np.all(np.isfinite(rows)):
            raise ValueError("embedding contains NaN or inf")
        norms = np.linalg.norm(rows, axis=1, keepdims=True)
        if np.any(norms == 0):
            raise ValueError("embedding is all zeros")
        self._vectors = np.concatenate([self._vectors, (rows / norms).astype(self._vectors.dtype)])
        self._names.extend([name] * len(rows))
        self._identities = None

    def remove(self, name: str) -> int:
        """Remove every embedding of ``name``; returns how many there were."""
        keep = np.array([n != name for n in self._names], dtype=bool)
        removed = len(self._names) - int(keep.sum())
        if removed == 0:
            raise KeyError(f"no identity named {name!r} in the gallery")
        self._vectors = self._vectors[keep]
        self._names = [n for n, k in zip(self._names, keep) if k]
        self._identities = None
        return removed

    def search(self, query, k: int = 5, threshold: float | None = None) -> list[tuple[str, float]]:
        """Identities closest to ``query`` (D,) by their best embedding's cosine, best first:
        the top ``k``, or — with ``threshold`` — every identity scoring at least that."""
        if len(self) == 0:
            return []
        query = np.asarray(query, dtype=np.float32)
        if query.shape != (self.dim,):
            raise ValueError(f"query must have shape ({self.dim},), got {query.shape}")
        if threshold is None and (isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k <= 0):
            raise ValueError(f"k must be a positive int, got {k!r}")
        scores = _core.cosine_matrix(query[None], np.ascontiguousarray(self._vectors, dtype=np.float32))[0]
        if self._identities is None:
            self._identities = np.unique(np.array(self._names, dtype=object), return_inverse=True)
        identities, codes = self._identities
        best = np.full(len(identities), -np.inf, dtype=np.float32)
        np.maximum.at(best, codes, scores)
        order = np.argsort(-best, kind="stable")
        if threshold is not None:
            order = order[best[order] >= threshold]
        else:
            order = order[:k]
        return [(str(identities[i]), float(best[i])) for i in order]

    def save(self, path) -> None:
        """Write atomically: a crash mid-save leaves the previous file intact."""
        path = Path(path)
        body = bytearray(_HEADER.pack(MAGIC, VERSION, _DTYPE_CODES[self.dtype], self.dim, len(self._names)))
        for name in self._names:
            encoded = name.encode("utf-8")
            body += struct.pack("<I", len(encoded)) + encoded
        body += np.ascontiguousarray(self._vectors).tobytes()
        body += hashlib.sha256(body).digest()
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(body)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # make the rename itself durable
        finally:
            os.close(dir_fd)

    @classmethod
    def load(cls, path) -> "Gallery":
        """Read a gallery file; GalleryError (a ValueError) if it is not a valid one."""
        data = Path(path).read_bytes()
        if len(data) < _HEADER.size + 32 or data[:8] != MAGIC:
            raise GalleryError(f"{path} is not a fastface gallery file")
        magic, version, dtype_code, dim, count = _HEADER.unpack_from(data)
        newer = (f"; it claims gallery format v{version}, newer than this fastface reads (v{VERSION}): "
                 "if it came from a newer fastface, upgrade") if version > VERSION else ""
        if hashlib.sha256(data[:-32]).digest() != data[-32:]:
            raise GalleryError(f"{path} fails its checksum: truncated or corrupted{newer}")
        if newer:
            raise GalleryError(f"{path} was written by a newer fastface{newer}")
        if dtype_code not in _DTYPES or dim == 0:
            raise GalleryError(f"{path} has an invalid header")
        offset, names = _HEADER.size, []
        try:
            for _ in range(count):
                (length,) = struct.unpack_from("<I", data, offset)
                names.append(data[offset + 4: offset + 4 + length].decode("utf-8"))
                offset += 4 + length
            vectors = np.frombuffer(data, dtype=_DTYPES[dtype_code], count=count * dim, offset=offset)
        except (struct.error, UnicodeDecodeError, ValueError) as exc:
            raise GalleryError(f"{path} is malformed: {exc}") from None
        if offset + vectors.nbytes + 32 != len(data):
            raise GalleryError(f"{path} is malformed: sizes do not add up")
        # Rows are saved L2-normalized; anything else (NaN, inf, huge values) is corruption
        # that would otherwise surface as a failed search later.
        rows = vectors.reshape(count, dim)
        for start in range(0, count, 65536):  # in chunks: no float64 copy of a large gallery
            norms = np.linalg.norm(rows[start:start + 65536].astype(np.float64), axis=1)
            if not np.all(np.abs(norms - 1) < 1e-2):
                raise GalleryError(f"{path} holds embeddings that are not unit length (NaN, infinite or corrupt)")
        gallery = cls(dim, "float16" if dtype_code == 1 else "float32")
        gallery._names = names
        gallery._vectors = rows.astype(gallery._vectors.dtype)
        return gallery
