"""Stage 5: named embeddings to match against, kept in a SQLite database and searched in C++.

A gallery file (schema version 2) is a SQLite database in WAL mode, marked by its
``application_id``; its ``user_version`` is the schema version:

    gallery(key, value)        dim, dtype, generation (bumped by every removal), created
    identities(id, name)       one row per identity, name UNIQUE
    embeddings(id, identity, vector, dtype, scale, added, metadata, source, source_sha256)
                               one row per embedding: the L2-normalized vector in the gallery's
                               precision (little-endian float32/float16, or int8 with value =
                               scale * q), unix time added, optional JSON metadata, and for
                               photos enrolled by ``fastface enroll`` their path and SHA-256

Every add and remove is one transaction (nothing is rewritten), so a crash loses at most the
transaction in flight, and other processes with the file open see committed changes at their
next search. Version-1 files (the checksummed ``FFGALLRY`` format) are read by ``Gallery.load``
and converted by ``Gallery.upgrade``. ``save(path, key=...)`` writes an encrypted snapshot
(:mod:`fastface.sealed`), read back into memory by ``load(path, key=...)``. A ``postgresql://``
URL instead of a path opens a gallery on a server (:mod:`fastface.pg_gallery`).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import shutil
import sqlite3
import struct
import tempfile
import threading
import time
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from . import _core

APPLICATION_ID = 0x46464731  # "FFG1" in the SQLite header: this database is a fastface gallery
SCHEMA_VERSION = 2
DTYPES = ("float32", "float16", "int8")
_NUMPY_DTYPES = {"float32": np.dtype("<f4"), "float16": np.dtype("<f2"), "int8": np.dtype("i1")}
_SQLITE_MAGIC = b"SQLite format 3\x00"
_SEALED_MAGIC = b"FFSEALD1"  # fastface.sealed: an encrypted gallery file
_SEALED_KIND = "gallery-sqlite"
_READ_CHUNK = 1024  # rows per fetch when loading: keeps the transient Python objects under 1 MB
_MAX_LABEL = 2**31 - 1  # identity ids are the C++ index's int32 labels

# Version 1 (read only): magic | u32 version | u32 dtype (0 fp32, 1 fp16) | u32 dim | u64 count
# | count x (u32 length + UTF-8 name) | count x dim embeddings | 32-byte SHA-256 of all before.
V1_MAGIC = b"FFGALLRY"
_V1_HEADER = struct.Struct("<8sIIIQ")
_V1_DTYPES = {0: "float32", 1: "float16"}

_SCHEMA = """
CREATE TABLE gallery (key TEXT PRIMARY KEY, value NOT NULL) WITHOUT ROWID;
CREATE TABLE identities (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL UNIQUE CHECK (length(name) > 0));
CREATE TABLE embeddings (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    identity INTEGER NOT NULL REFERENCES identities(id),
    vector BLOB NOT NULL,
    dtype TEXT NOT NULL,
    scale REAL NOT NULL,
    added REAL NOT NULL,
    metadata TEXT,
    source TEXT,
    source_sha256 TEXT);
CREATE INDEX embeddings_by_identity ON embeddings(identity);
CREATE INDEX embeddings_by_source ON embeddings(source);
"""
_COLUMNS = {
    "gallery": {"key", "value"},
    "identities": {"id", "name"},
    "embeddings": {"id", "identity", "vector", "dtype", "scale", "added", "metadata", "source", "source_sha256"},
}


def _checked_names(names, count: int, server: bool = False) -> list:
    """``names`` as a list of one non-empty string per embedding; GalleryError otherwise. A server
    gallery also refuses NUL (PostgreSQL text cannot hold it)."""
    names = list(names)
    if len(names) != count:
        raise GalleryError(f"{len(names)} names for {count} embeddings")
    for name in set(names):
        if not isinstance(name, str) or not name.strip() or (server and "\0" in name):
            raise GalleryError(f"name must be a non-empty string{' without NUL' if server else ''}, got {name!r}")
    return names


def _checked_queries(query, dim: int, k, threshold) -> np.ndarray:
    """``query`` as float32 (D,) or (N, D), with ``k`` and ``threshold`` as ``search`` takes them;
    GalleryError otherwise."""
    queries = np.asarray(query, dtype=np.float32)
    if queries.ndim not in (1, 2) or queries.shape[-1] != dim or queries.size == 0:
        raise GalleryError(f"query must have shape ({dim},) or (N, {dim}), got {queries.shape}")
    if threshold is None and (isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k <= 0):
        raise GalleryError(f"k must be a positive int, got {k!r}")
    if threshold is not None and not math.isfinite(threshold):
        raise GalleryError(f"threshold must be a finite number, got {threshold!r}")
    return queries


def _search_index(index, queries: np.ndarray, k, threshold, threads: int):
    """(ids, scores) per query from a C++ GalleryIndex: the top ``k`` per identity, or every
    identity at ``threshold`` or above when one is given."""
    return index.search(queries.reshape(-1, index.dim), 0 if threshold is not None else int(k), True,
                        -math.inf if threshold is None else float(threshold), threads)


class GalleryError(ValueError):
    """A gallery file that cannot be used (not a gallery, another schema, newer, corrupt), or an
    embedding or name a gallery refuses. The file is left as it was."""


def _is_url(path) -> bool:
    return isinstance(path, str) and path.startswith(("postgresql://", "postgres://"))


def _check_dim(dim) -> int:
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim <= 0:
        raise GalleryError(f"dim must be a positive int, got {dim!r}")
    return int(dim)


def _check_dtype(dtype) -> str:
    if dtype not in DTYPES:
        raise GalleryError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    return dtype


def _connect(target, durable: bool) -> sqlite3.Connection:
    # Autocommit mode: transactions are the explicit BEGIN IMMEDIATE ... COMMIT below. A writer
    # waits up to a minute for another process's transaction instead of failing.
    conn = sqlite3.connect(str(target), timeout=60.0, isolation_level=None, check_same_thread=False)
    conn.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
    # A small page cache: reads are sequential scans into the C++ matrix, writes touch few pages,
    # and on a board every MB counts (SQLite's default is 2 MB).
    conn.execute("PRAGMA cache_size=-512")
    return conn


def _create_schema(conn: sqlite3.Connection, dim: int, dtype: str) -> None:
    conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
    conn.execute("BEGIN IMMEDIATE")
    for statement in _SCHEMA.split(";"):
        if statement.strip():
            conn.execute(statement)
    conn.executemany("INSERT INTO gallery(key, value) VALUES (?, ?)",
                     [("dim", dim), ("dtype", dtype), ("generation", 0), ("created", time.time())])
    conn.execute("COMMIT")


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _inspect(path: Path) -> str:
    """'v1' or 'v2' from the file's first bytes (read without SQLite, so a file that is not ours
    is never opened as a database); GalleryError otherwise."""
    with open(path, "rb") as f:
        head = f.read(100)
    if head.startswith(V1_MAGIC):
        return "v1"
    if head.startswith(_SEALED_MAGIC):
        return "sealed"
    if not head.startswith(_SQLITE_MAGIC) or len(head) < 100:
        raise GalleryError(f"{path} is not a fastface gallery (neither a gallery database nor a version-1 file)")
    user_version = int.from_bytes(head[60:64], "big")
    application_id = int.from_bytes(head[68:72], "big")
    if application_id != APPLICATION_ID:
        raise GalleryError(f"{path} is an SQLite database of another schema, not a fastface gallery "
                           f"(application_id {application_id:#x}, a gallery has {APPLICATION_ID:#x})")
    _check_schema_version(path, user_version)
    return "v2"


def _check_schema_version(path, version: int) -> None:
    if version > SCHEMA_VERSION:
        raise GalleryError(f"{path} has gallery schema v{version}, newer than this fastface reads "
                           f"(v{SCHEMA_VERSION}): it came from a newer fastface, upgrade to use it")
    if version != SCHEMA_VERSION:
        raise GalleryError(f"{path} has an unknown gallery schema version {version}")


def _read_v1(path: Path) -> tuple[int, str, list[str], np.ndarray]:
    data = path.read_bytes()
    if len(data) < _V1_HEADER.size + 32:
        raise GalleryError(f"{path} fails its checksum: truncated or corrupted")
    _, version, dtype_code, dim, count = _V1_HEADER.unpack_from(data)
    newer = (f"; it claims gallery format v{version}, newer than this fastface reads (v{SCHEMA_VERSION}): "
             "if it came from a newer fastface, upgrade") if version > SCHEMA_VERSION else ""
    if hashlib.sha256(data[:-32]).digest() != data[-32:]:
        raise GalleryError(f"{path} fails its checksum: truncated or corrupted{newer}")
    if version != 1:
        raise GalleryError(f"{path} is a version-{version} file in the version-1 layout{newer}")
    if dtype_code not in _V1_DTYPES or dim == 0:
        raise GalleryError(f"{path} has an invalid header")
    offset, names = _V1_HEADER.size, []
    try:
        for _ in range(count):
            (length,) = struct.unpack_from("<I", data, offset)
            names.append(data[offset + 4: offset + 4 + length].decode("utf-8"))
            offset += 4 + length
        vectors = np.frombuffer(data, dtype=_NUMPY_DTYPES[_V1_DTYPES[dtype_code]], count=count * dim, offset=offset)
    except (struct.error, UnicodeDecodeError, ValueError) as exc:
        raise GalleryError(f"{path} is malformed: {exc}") from None
    if offset + vectors.nbytes + 32 != len(data):
        raise GalleryError(f"{path} is malformed: sizes do not add up")
    rows = vectors.reshape(count, dim)
    # Version-1 rows were saved L2-normalized: anything else (NaN, inf, huge values) is corruption.
    for start in range(0, count, 65536):  # in chunks: no float64 copy of a large gallery
        norms = np.linalg.norm(rows[start:start + 65536].astype(np.float64), axis=1)
        if not np.all(np.abs(norms - 1) < 1e-2):
            raise GalleryError(f"{path} holds embeddings that are not unit length (NaN, infinite or corrupt)")
    return dim, _V1_DTYPES[dtype_code], names, rows


class Gallery:
    """Embeddings with names (several per identity), searched by cosine on the best embedding
    of each identity.

    ``Gallery(dim, dtype)`` is an in-memory gallery; ``Gallery.open(path, dim, dtype)`` creates
    or opens a gallery file, where every ``add``/``remove`` is committed at once. Rows are kept
    L2-normalized in ``dtype`` — float32, float16 (half the memory) or int8 (a quarter, one
    scale per row) — and searched in that precision by the C++ kernels.

    One Gallery may be used from several threads (calls are serialized); other processes may
    read and write the same file at the same time.
    """

    def __init__(self, dim: int, dtype: str = "float32"):
        self._setup(_connect(":memory:", durable=False), None, _check_dim(dim), _check_dtype(dtype), create=True)

    def _setup(self, conn: sqlite3.Connection, path: Path | None, dim: int, dtype: str, create: bool) -> None:
        self._conn = conn
        self.path = path
        if create:
            _create_schema(conn, dim, dtype)
        self.dim = dim
        self.dtype = dtype
        self._lock = threading.RLock()
        self._index = _core.GalleryIndex(dim, dtype)
        self._last_id = 0  # embeddings with id <= this are mirrored in _index
        self._generation = None  # the file's removal counter when _index was (re)built
        self._data_version = None
        self._in_transaction = False
        self._sync()

    # --- opening -----------------------------------------------------------------------------

    @classmethod
    def open(cls, path, dim: int | None = None, dtype: str | None = None, *, durable: bool = True, **server):
        """Open the gallery file at ``path``, creating it (with ``dim`` and ``dtype``, default
        float32) if it does not exist; a ``dim`` or ``dtype`` given must match an existing file.
        ``durable=False`` commits without waiting for the disk (a power cut may lose the last
        transactions, a crash cannot; the file never corrupts either way).

        A ``postgresql://`` URL opens (or creates) a gallery on a PostgreSQL server instead:
        a :class:`fastface.pg_gallery.PostgresGallery`, which takes ``server`` options (cache,
        key, key_file, follow, ...)."""
        if _is_url(path):
            from .pg_gallery import PostgresGallery

            return PostgresGallery(path, dim, dtype, create=True, **server)
        if server:
            raise TypeError(f"unexpected options for a gallery file: {', '.join(server)}")
        path = Path(path)
        if not path.exists():
            if dim is None:
                raise FileNotFoundError(f"no gallery at {path} (give dim to create one)")
            cls._create_file(path, _check_dim(dim), _check_dtype(dtype or "float32"))
        kind = _inspect(path)
        if kind == "v1":
            raise GalleryError(f"{path} is a version-1 gallery file: read it with Gallery.load, or convert it "
                               "with Gallery.upgrade (fastface enroll does that itself)")
        if kind == "sealed":
            raise GalleryError(f"{path} is an encrypted gallery file: read it with Gallery.load(path, key=...) "
                               "(changes stay in memory until saved again with the key)")
        gallery = cls.__new__(cls)
        conn = _connect(path, durable)
        try:
            stored_dim, stored_dtype = cls._check_file(conn, path)
            if dim is not None and _check_dim(dim) != stored_dim:
                raise GalleryError(f"{path} holds {stored_dim}-d embeddings, not {dim}-d")
            if dtype is not None and dtype != stored_dtype:
                raise GalleryError(f"{path} stores {stored_dtype} embeddings, not {dtype}")
            gallery._setup(conn, path, stored_dim, stored_dtype, create=False)
        except BaseException:
            conn.close()
            raise
        return gallery

    @classmethod
    def load(cls, path, key=None, key_file=None, **server) -> "Gallery":
        """Open an existing gallery file; a version-1 file is imported into an in-memory gallery
        (the file itself is left as it is), and so is an encrypted one (``save(path, key=...)``),
        decrypted with ``key`` / ``key_file`` / ``$FASTFACE_GALLERY_KEY`` /
        ``$FASTFACE_GALLERY_KEY_FILE``. A ``postgresql://`` URL: an existing gallery on the
        server, its local index loaded now (``server`` options as for ``open``)."""
        if _is_url(path):
            from .pg_gallery import PostgresGallery

            gallery = PostgresGallery(path, key=key, key_file=key_file, **server)
            len(gallery)  # the local index, now rather than at the first search
            return gallery
        if server:
            raise TypeError(f"unexpected options for a gallery file: {', '.join(server)}")
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no gallery at {path}")
        kind = _inspect(path)
        if kind == "sealed":
            return cls._load_sealed(path, key, key_file)
        if key is not None:
            raise GalleryError(f"{path} is not encrypted (to encrypt it: Gallery.load(path).save(other, key=...))")
        if kind == "v2":
            return cls.open(path)
        dim, dtype, names, vectors = _read_v1(path)
        gallery = cls(dim, dtype)
        if names:
            gallery.add_many(names, vectors.astype(np.float32))
        return gallery

    @classmethod
    def upgrade(cls, path) -> Path | None:
        """Convert a version-1 file at ``path`` into a gallery database in place, keeping the
        original beside it as ``<name>.v1``; returns that backup's path (None: nothing to do)."""
        path = Path(path)
        if _inspect(path) != "v1":
            return None
        imported = cls.load(path)
        backup = path.with_name(path.name + ".v1")
        if backup.exists():
            raise GalleryError(f"cannot upgrade {path}: {backup} is in the way")
        try:
            os.link(path, backup)
        except OSError:  # no hard links here
            shutil.copy2(path, backup)
        imported._write_file(path)
        return backup

    @staticmethod
    def _check_file(conn: sqlite3.Connection, path: Path) -> tuple[int, str]:
        """The stored dim and dtype after checking the schema (through SQLite, which also sees
        committed transactions not yet copied from the write-ahead log)."""
        try:
            _check_schema_version(path, conn.execute("PRAGMA user_version").fetchone()[0])
            for table, columns in _COLUMNS.items():
                found = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
                if not columns <= found:
                    missing = ", ".join(sorted(columns - found))
                    raise GalleryError(f"{path} is an SQLite database of another schema: table {table} lacks {missing}")
            settings = dict(conn.execute("SELECT key, value FROM gallery"))
            dim, dtype = settings.get("dim"), settings.get("dtype")
            if not isinstance(dim, int) or dim <= 0 or dtype not in DTYPES or "generation" not in settings:
                raise GalleryError(f"{path} has invalid gallery settings: dim {dim!r}, dtype {dtype!r}")
            other = conn.execute("SELECT id, dtype FROM embeddings WHERE dtype != ? LIMIT 1", (dtype,)).fetchone()
            if other:
                raise GalleryError(f"{path}: embedding {other[0]} is {other[1]} in a {dtype} gallery")
        except sqlite3.DatabaseError as exc:
            raise GalleryError(f"{path} is not a readable gallery database: {exc}") from None
        return dim, dtype

    @staticmethod
    def _create_file(path: Path, dim: int, dtype: str) -> None:
        """A complete empty gallery appears at ``path`` at once (built beside it, then linked):
        never a half-made file, and a concurrent creator's gallery is never replaced."""
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
        try:
            conn = _connect(tmp, durable=True)
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                _create_schema(conn, dim, dtype)
            finally:
                conn.close()  # checkpoints: the file alone holds everything
            try:
                os.link(tmp, path)
            except FileExistsError:
                pass  # someone else created it first: use theirs
            except OSError:  # no hard links (e.g. FAT on an SD card)
                if not path.exists():
                    os.replace(tmp, path)
            _fsync_dir(path.parent)
        finally:
            Path(tmp).unlink(missing_ok=True)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> "Gallery":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- keeping the in-memory matrix in step with the database ----------------------------

    def _sync(self) -> None:
        """Bring ``_index`` up to the database's committed state: new rows are appended; after
        a removal (the generation counter moved) the matrix is rebuilt."""
        if self._in_transaction:
            return  # inside transaction(): the matrix catches up after the commit
        try:
            version = self._conn.execute("PRAGMA data_version").fetchone()[0]
            if version == self._data_version:
                return  # no other connection committed anything since the last look
            self._conn.execute("BEGIN")  # one consistent snapshot
            try:
                generation = self._setting("generation")
                if generation != self._generation:
                    self._index.clear()
                    self._last_id = 0
                    count = self._conn.execute("SELECT count(*) FROM embeddings").fetchone()[0]
                    self._index.reserve(count)
                self._load_rows()
                self._generation = generation
            finally:
                self._conn.execute("COMMIT")
            self._data_version = version
        except sqlite3.DatabaseError as exc:
            raise GalleryError(f"{self.path or 'gallery'} cannot be read: {exc}") from None

    def _load_rows(self) -> None:
        dtype = _NUMPY_DTYPES[self.dtype]
        row_bytes = self.dim * dtype.itemsize
        cursor = self._conn.execute("SELECT id, identity, vector, scale FROM embeddings WHERE id > ? ORDER BY id",
                                    (self._last_id,))
        while True:
            chunk = cursor.fetchmany(_READ_CHUNK)
            if not chunk:
                break
            ids, labels, blobs, scales = zip(*chunk)
            bad = next((i for i, blob in enumerate(blobs) if not isinstance(blob, bytes) or len(blob) != row_bytes), None)
            if bad is not None:
                raise GalleryError(f"{self.path}: embedding {ids[bad]} is not {self.dim} {self.dtype} values")
            if max(labels) > _MAX_LABEL:
                raise GalleryError(f"{self.path}: identity id {max(labels)} is past the supported {_MAX_LABEL}")
            rows = np.frombuffer(b"".join(blobs), dtype=dtype).reshape(len(chunk), self.dim)
            try:
                self._index.add_encoded(rows, np.asarray(scales, dtype=np.float32) if self.dtype == "int8" else None,
                                        np.asarray(labels, dtype=np.int32))
            except ValueError as exc:
                raise GalleryError(f"{self.path}: embeddings {ids[0]}..{ids[-1]}: {exc}") from None
            self._last_id = ids[-1]

    def _setting(self, key: str):
        return self._conn.execute("SELECT value FROM gallery WHERE key = ?", (key,)).fetchone()[0]

    @contextlib.contextmanager
    def _write(self):
        """One write transaction. When nothing else changed the database since the last sync,
        the caller's own changes are applied to the matrix directly (yields True); otherwise the
        next read re-syncs."""
        with self._lock:
            if self._in_transaction:
                yield False
                return
            self._conn.execute("BEGIN IMMEDIATE")
            self._in_transaction = True
            try:
                last = self._conn.execute("SELECT coalesce(max(id), 0) FROM embeddings").fetchone()[0]
                in_step = last == self._last_id and self._setting("generation") == self._generation
                yield in_step
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                self._data_version = self._generation = None  # rebuild: the matrix may hold rolled-back changes
                raise
            finally:
                self._in_transaction = False
            if not in_step:
                self._data_version = None  # re-sync at the next read

    @contextlib.contextmanager
    def transaction(self):
        """Group several adds/removes into one transaction (much faster than one each when
        enrolling many faces; all or nothing on a crash)."""
        with self._lock:
            self._sync()
            self._conn.execute("BEGIN IMMEDIATE")
            self._in_transaction = True
            try:
                yield self
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                self._generation = None  # rebuild at the next read
                raise
            finally:
                self._in_transaction = False
                self._data_version = None  # the adds inside were not mirrored: re-sync at the next read

    # --- the gallery API -------------------------------------------------------------------

    def __len__(self) -> int:
        with self._lock:
            self._sync()
            return len(self._index)

    @property
    def names(self) -> list[str]:
        """Distinct identity names, in enrolment order."""
        with self._lock:
            return [name for (name,) in self._conn.execute("SELECT name FROM identities ORDER BY id")]

    def _rows(self, embedding) -> np.ndarray:
        rows = np.asarray(embedding, dtype=np.float32)
        rows = rows.reshape(1, -1) if rows.ndim == 1 else rows
        if rows.ndim != 2 or rows.shape[1] != self.dim or rows.shape[0] == 0:
            raise GalleryError(f"embedding must be ({self.dim},) or (N, {self.dim}), got {np.shape(embedding)}")
        if not np.all(np.isfinite(rows)):
            raise GalleryError("embedding contains NaN or inf")
        if np.any(~rows.any(axis=1)):
            raise GalleryError("embedding is all zeros")
        return np.ascontiguousarray(rows)

    def add(self, name: str, embedding, metadata=None, *, source: str | None = None,
            source_sha256: str | None = None) -> None:
        """Add one (D,) embedding, or several (N, D) of the same identity, in one transaction.
        ``metadata``: anything JSON can hold, stored with each row; ``source``/``source_sha256``:
        the photo it came from (``fastface enroll`` resumes by them)."""
        rows = self._rows(embedding)
        self.add_many([name] * len(rows), rows, metadata, source=source, source_sha256=source_sha256)

    def add_many(self, names: Sequence[str], embeddings, metadata=None, *, source: str | None = None,
                 source_sha256: str | None = None) -> None:
        """Add (N, D) embeddings with one name each, in one transaction."""
        rows = self._rows(embeddings)
        names = _checked_names(names, len(rows))
        try:
            metadata_json = None if metadata is None else json.dumps(metadata, ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise GalleryError(f"metadata must be JSON-serializable: {exc}") from None
        encoded, scales = _core.GalleryIndex.encode(rows, self.dtype)
        added = time.time()
        with self._write() as in_step:
            labels = self._identity_ids(names)
            first = self._conn.execute("SELECT coalesce(max(id), 0) FROM embeddings").fetchone()[0] + 1
            self._conn.executemany(
                "INSERT INTO embeddings(identity, vector, dtype, scale, added, metadata, source, source_sha256) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                ((int(label), row.tobytes(), self.dtype, float(scale), added, metadata_json, source, source_sha256)
                 for label, row, scale in zip(labels, encoded, scales)))
            last = self._conn.execute("SELECT max(id) FROM embeddings").fetchone()[0]
            if in_step and last - first + 1 == len(rows):
                self._index.add_encoded(encoded, scales if self.dtype == "int8" else None, labels)
                self._last_id = last
            elif in_step:
                self._data_version = None

    def _identity_ids(self, names: list[str]) -> np.ndarray:
        ids = {}
        for name in dict.fromkeys(names):
            self._conn.execute("INSERT OR IGNORE INTO identities(name) VALUES (?)", (name,))
            (identity,) = self._conn.execute("SELECT id FROM identities WHERE name = ?", (name,)).fetchone()
            if identity > _MAX_LABEL:
                raise GalleryError(f"identity id {identity} is past the supported {_MAX_LABEL}")
            ids[name] = identity
        return np.fromiter((ids[name] for name in names), dtype=np.int32, count=len(names))

    def remove(self, name: str) -> int:
        """Remove every embedding of ``name`` (one transaction); returns how many there were."""
        with self._write() as in_step:
            found = self._conn.execute("SELECT id FROM identities WHERE name = ?", (name,)).fetchone()
            if found is None:
                raise KeyError(f"no identity named {name!r} in the gallery")
            removed = self._conn.execute("DELETE FROM embeddings WHERE identity = ?", found).rowcount
            self._conn.execute("DELETE FROM identities WHERE id = ?", found)
            generation = self._bump_generation()
            if in_step:
                self._index.remove_label(found[0])
                self._generation = generation
        return removed

    def _bump_generation(self) -> int:
        self._conn.execute("UPDATE gallery SET value = value + 1 WHERE key = 'generation'")
        return self._setting("generation")

    def sources(self) -> dict[str, str]:
        """Photo path -> SHA-256 of every embedding added with a source."""
        with self._lock:
            return dict(self._conn.execute("SELECT source, source_sha256 FROM embeddings WHERE source IS NOT NULL"))

    def remove_source(self, source: str) -> int:
        """Remove the embeddings added from ``source`` (and identities left without any)."""
        with self._write():
            identities = [i for (i,) in self._conn.execute(
                "SELECT DISTINCT identity FROM embeddings WHERE source = ?", (source,))]
            removed = self._conn.execute("DELETE FROM embeddings WHERE source = ?", (source,)).rowcount
            self._conn.executemany("DELETE FROM identities WHERE id = ? AND NOT EXISTS "
                                   "(SELECT 1 FROM embeddings WHERE identity = identities.id)", ((i,) for i in identities))
            self._bump_generation()  # rows went, not whole labels: rebuild at the next read
            self._data_version = None
        return removed

    def identities(self) -> list[dict]:
        """Per identity: name, number of embeddings, first and last time added (unix seconds)."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT i.name, count(e.id), min(e.added), max(e.added) FROM identities i "
                "JOIN embeddings e ON e.identity = i.id GROUP BY i.id ORDER BY i.id").fetchall()
        return [{"name": n, "embeddings": c, "first_added": f, "last_added": last} for n, c, f, last in rows]

    def metadata(self, name: str) -> list[dict]:
        """The embeddings of ``name``: id, time added, metadata (decoded JSON) and source."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT e.id, e.added, e.metadata, e.source FROM embeddings e JOIN identities i ON e.identity = i.id "
                "WHERE i.name = ? ORDER BY e.id", (name,)).fetchall()
        if not rows:
            raise KeyError(f"no identity named {name!r} in the gallery")
        return [{"id": i, "added": a, "metadata": None if m is None else json.loads(m), "source": s}
                for i, a, m, s in rows]

    def stats(self) -> dict:
        """Counts, precision, memory and file sizes."""
        with self._lock:
            self._sync()
            identities = self._conn.execute("SELECT count(*) FROM identities").fetchone()[0]
            created = self._setting("created")
            rows = len(self._index)
        row_bytes = self.dim * _NUMPY_DTYPES[self.dtype].itemsize + (4 if self.dtype == "int8" else 0)
        files = [self.path, Path(f"{self.path}-wal")] if self.path else []
        return {"path": str(self.path) if self.path else None, "schema_version": SCHEMA_VERSION, "dim": self.dim,
                "dtype": self.dtype, "identities": identities, "embeddings": rows, "created": created,
                "matrix_bytes": rows * (row_bytes + 4),
                "file_bytes": sum(p.stat().st_size for p in files if p.exists()) if files else None}

    def search(self, query, k: int = 5, threshold: float | None = None, *, threads: int = 0):
        """Identities closest to ``query`` by their best embedding's cosine, best first: the top
        ``k``, or — with ``threshold`` — every identity scoring at least that. A (D,) query gives
        ``[(name, score), ...]``; (N, D) queries give one such list per query."""
        queries = _checked_queries(query, self.dim, k, threshold)
        with self._lock:
            self._sync()
            hits = _search_index(self._index, queries, k, threshold, threads)
            names = self._names_of({int(i) for ids, _ in hits for i in ids})
        results = [[(names[int(i)], float(s)) for i, s in zip(ids, scores) if int(i) in names] for ids, scores in hits]
        return results[0] if queries.ndim == 1 else results

    def identify(self, query, threshold: float, k: int = 3):
        """``(name, candidates)``: the best identity if it scores at least ``threshold``, else
        None, and the top ``k`` candidates as ``search`` gives them."""
        candidates = self.search(query, k=k)
        return (candidates[0][0] if candidates and candidates[0][1] >= threshold else None), candidates

    def _names_of(self, ids: Iterable[int]) -> dict[int, str]:
        ids, names = list(ids), {}
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            names.update(self._conn.execute(
                f"SELECT id, name FROM identities WHERE id IN ({','.join('?' * len(chunk))})", chunk))
        return names

    def vectors(self) -> tuple[np.ndarray, list[str]]:
        """All rows as (N, D) float32 (decoded from the stored precision) and their names."""
        with self._lock:
            self._sync()
            rows = self._index.decode(0, len(self._index))
            labels = self._index.labels
            names = self._names_of(set(labels.tolist()))
        return rows, [names[int(label)] for label in labels]

    def save(self, path, key=None, key_file=None) -> None:
        """Write this gallery (a snapshot) to the gallery file ``path`` atomically: a crash
        mid-save leaves the previous file. Galleries opened from a file need no save — every
        change is already committed — and saving one onto its own file does nothing.

        With ``key`` or ``key_file`` (32 bytes; raw, hex or base64) the file is encrypted
        (AES-256-GCM, :mod:`fastface.sealed`): it is read back whole with ``Gallery.load(path,
        key=...)``, edited in memory and saved again; a tampered file or a wrong key is refused."""
        path = Path(path)
        if key is not None or key_file is not None:
            self._save_sealed(path, key, key_file)
            return
        if self.path is not None and path.exists() and os.path.samefile(path, self.path):
            return
        self._write_file(path)

    @staticmethod
    def _resolve_key(path: Path, key, key_file) -> bytes:
        from . import sealed

        try:
            secret = sealed.resolve_key(key, key_file, data_path=path)
        except sealed.SealedError as exc:
            raise GalleryError(str(exc)) from None
        if secret is None:
            raise GalleryError(f"{path} is an encrypted gallery: give its key (${sealed.KEY_ENV}, "
                               f"${sealed.KEY_FILE_ENV}, key= or key_file=)")
        return secret

    def _save_sealed(self, path: Path, key, key_file) -> None:
        from . import sealed

        secret = self._resolve_key(path, key, key_file)
        if self.path is not None and path.exists() and os.path.samefile(path, self.path):
            raise GalleryError(f"cannot encrypt {path} in place while it is open: save to another file")
        if not hasattr(sqlite3.Connection, "serialize"):
            raise GalleryError("encrypted gallery files need Python 3.11 or newer (sqlite3 serialize)")
        copy = sqlite3.connect(":memory:")
        try:
            with self._lock:
                self._conn.backup(copy)
            image = bytearray(copy.serialize())
        finally:
            copy.close()
        image[18:20] = b"\x01\x01"  # rollback-journal format: the image is opened in memory, never with a WAL
        with sealed.SealedWriter(path, secret, _SEALED_KIND) as out:
            out.write(struct.pack("<Q", len(image)))
            out.write(image)

    @classmethod
    def _load_sealed(cls, path: Path, key, key_file) -> "Gallery":
        from . import sealed

        secret = cls._resolve_key(path, key, key_file)
        if not hasattr(sqlite3.Connection, "deserialize"):
            raise GalleryError("encrypted gallery files need Python 3.11 or newer (sqlite3 deserialize)")
        try:
            with sealed.SealedReader(path, secret, _SEALED_KIND) as reader:
                (size,) = struct.unpack("<Q", reader.read(8))
                image = reader.read(size)
                reader.finish()
        except sealed.SealedError as exc:
            raise GalleryError(str(exc)) from None
        head = image[:100]
        if (len(head) < 100 or not head.startswith(_SQLITE_MAGIC)
                or int.from_bytes(head[68:72], "big") != APPLICATION_ID):
            raise GalleryError(f"{path} does not hold a fastface gallery")
        conn = _connect(":memory:", durable=False)
        try:
            conn.deserialize(image)
            dim, dtype = cls._check_file(conn, path)
            gallery = cls.__new__(cls)
            gallery._setup(conn, None, dim, dtype, create=False)
        except BaseException:
            conn.close()
            raise
        return gallery

    def _write_file(self, path: Path) -> None:
        if Path(f"{path}-wal").exists():
            raise GalleryError(f"{path} is in use (its write-ahead log {path}-wal exists): close it, or save elsewhere")
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
        try:
            target = _connect(tmp, durable=True)
            try:
                with self._lock:
                    self._conn.backup(target)
                target.execute("PRAGMA journal_mode=WAL")
            finally:
                target.close()
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            os.replace(tmp, path)
        finally:
            Path(tmp).unlink(missing_ok=True)
        _fsync_dir(path.parent)


def identity_folders(folder) -> list[Path]:
    """The sub-folders of ``folder``, one per identity; ValueError when there are none."""
    folder = Path(folder)
    people = sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
    if not people:
        raise ValueError(f"{folder} has no identity sub-folders")
    return people


def enroll_folder(gallery: Gallery, folder, analyzer, progress=None) -> dict:
    """Enrol the largest face of every photo in ``folder``'s identity sub-folders (the sub-folder
    name is the identity) with ``analyzer`` (a :class:`fastface.FaceAnalyzer`).

    Each photo is one transaction, so an interrupted run keeps what it enrolled; a re-run skips
    photos already enrolled (same path, same content) and replaces those whose content changed.
    ``progress`` wraps the list of (name, photo) pairs (e.g. a progress bar). Returns counts:
    ``enrolled``, ``already_enrolled``, ``identities`` and the ``skipped`` photos (no readable face).
    """
    from ._opencv import IMAGE_SUFFIXES, import_cv2

    people = identity_folders(folder)
    cv2 = import_cv2()
    known = gallery.sources()
    photos = [(person.name, p) for person in people for p in sorted(person.iterdir())
              if p.suffix.lower() in IMAGE_SUFFIXES]
    enrolled, already, skipped = 0, 0, []
    for name, photo in (progress(photos) if progress else photos):
        source = os.path.abspath(photo)  # the path as given (a symlink is its own photo)
        data = photo.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        if known.get(source) == digest:
            already += 1
            continue
        image = cv2.imdecode(np.frombuffer(data, np.uint8), 1)
        face = analyzer.largest_face(image) if image is not None else None
        if face is None:
            skipped.append(str(photo))
            continue
        with gallery.transaction():  # a changed photo's old embedding goes in the same transaction
            if source in known:
                gallery.remove_source(source)
            gallery.add(name, face.embedding, metadata={"photo": str(photo)}, source=source, source_sha256=digest)
        enrolled += 1
    return {"enrolled": enrolled, "already_enrolled": already, "identities": len(gallery.names), "skipped": skipped}
