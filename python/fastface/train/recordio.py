"""MXNet RecordIO (``train.rec`` + ``train.idx``) as insightface ships face datasets, without MXNet.

File format (dmlc-core ``recordio.h``): each record is ``magic (u32 0xced7230a)``, ``lrecord
(u32: length in the low 29 bits, continuation flag in the top 3)``, the payload, and zero
padding to 4 bytes. A payload that contains the magic word at a 4-byte-aligned position is
split there into parts flagged 1 (first), 2 (middle), 3 (last); the magic is dropped and
re-inserted when the parts are joined. ``.idx`` is text: ``key<TAB>byte offset`` per line.

Payload (MXNet ``recordio.pack``): header ``<IfQQ`` = flag, label, id, id2; if flag > 0 the
label is instead ``flag`` float32 values following the header. The rest is the encoded image.

insightface layout: record 0 is a header whose label is ``(first identity record,
end of identity records)``; images are records ``1 .. label[0] - 1`` and each identity record
holds its ``[first image, end image)`` range, so the number of identities is
``label[1] - label[0]``. Files without that header are read as plain image records.
Labels and ranges are float32, exact up to 2^24; beyond that pass ``num_classes`` explicitly.
"""
from __future__ import annotations

import bisect
import os
import struct
import warnings
from typing import Iterable, Sequence

import numpy as np

MAGIC = 0xCED7230A
_MAGIC_BYTES = struct.pack("<I", MAGIC)
_HEADER = struct.Struct("<IfQQ")
_MAX_LENGTH = (1 << 29) - 1


def pack(label: float | Sequence[float], payload: bytes, id: int = 0, id2: int = 0) -> bytes:
    """MXNet ``recordio.pack``: header, optional label vector, payload."""
    if isinstance(label, (int, float)):
        return _HEADER.pack(0, float(label), id, id2) + payload
    values = struct.pack(f"<{len(label)}f", *label)
    return _HEADER.pack(len(label), 0.0, id, id2) + values + payload


def unpack(record: bytes) -> tuple[float | tuple[float, ...], bytes]:
    """Inverse of :func:`pack`: ``(label, payload)``; label is a tuple when it is a vector."""
    if len(record) < _HEADER.size:
        raise ValueError(f"record of {len(record)} bytes is shorter than its header")
    flag, label, _, _ = _HEADER.unpack_from(record)
    if flag == 0:
        return label, record[_HEADER.size:]
    end = _HEADER.size + 4 * flag
    if len(record) < end:
        raise ValueError(f"record of {len(record)} bytes is shorter than its {flag} labels")
    return struct.unpack_from(f"<{flag}f", record, _HEADER.size), record[end:]


class RecordWriter:
    """Append records to a ``.rec`` file and their offsets to the matching ``.idx``."""

    def __init__(self, rec_path: str | os.PathLike, idx_path: str | os.PathLike):
        self._rec = open(rec_path, "wb")
        self._idx = open(idx_path, "w")

    def write(self, key: int, record: bytes) -> None:
        self._idx.write(f"{key}\t{self._rec.tell()}\n")
        start = 0
        aligned = len(record) - len(record) % 4
        for pos in range(0, aligned, 4):
            if record[pos:pos + 4] == _MAGIC_BYTES:
                self._part(1 if start == 0 else 2, record[start:pos])
                start = pos + 4
        self._part(3 if start else 0, record[start:])

    def _part(self, flag: int, data: bytes) -> None:
        if len(data) > _MAX_LENGTH:
            raise ValueError(f"record part of {len(data)} bytes exceeds RecordIO's 2^29 limit")
        self._rec.write(_MAGIC_BYTES + struct.pack("<I", flag << 29 | len(data)) + data)
        self._rec.write(b"\0" * (-len(data) % 4))

    def close(self) -> None:
        self._rec.close()
        self._idx.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class RecordReader:
    """Random access to records by key. Safe to use from DataLoader workers: the file is
    (re)opened lazily in each process, and the index is two numpy arrays rather than a dict,
    so forked workers share it instead of copying millions of Python objects."""

    def __init__(self, rec_path: str | os.PathLike, idx_path: str | os.PathLike):
        self.rec_path, self.idx_path = str(rec_path), str(idx_path)
        for path in (self.rec_path, self.idx_path):
            if not os.path.isfile(path):
                raise FileNotFoundError(f"RecordIO file not found: {path}")
        self.size = os.path.getsize(self.rec_path)
        self.keys, self._offsets = self._read_index()
        self._file = None
        self._pid = None

    def _read_index(self) -> tuple[np.ndarray, np.ndarray]:
        """Sorted keys and their offsets, from ``key<TAB>offset`` lines."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # numpy warns about an empty file
            try:
                table = np.loadtxt(self.idx_path, dtype=np.int64, ndmin=2, comments=None)
            except ValueError as exc:
                raise ValueError(f"{self.idx_path}: not a 'key<TAB>offset' index: {exc}") from None
        if table.shape[0] == 0:
            raise ValueError(f"{self.idx_path} lists no records")
        if table.shape[1] != 2:
            raise ValueError(f"{self.idx_path}: expected 2 columns 'key<TAB>offset', "
                             f"got {table.shape[1]}")
        bad = (table[:, 1] < 0) | (table[:, 1] > self.size - 8)
        if bad.any():
            row = int(bad.argmax())
            raise ValueError(f"{self.idx_path}:{row + 1}: offset {table[row, 1]} lies outside "
                             f"{self.rec_path} ({self.size} bytes)")
        order = np.argsort(table[:, 0], kind="stable")
        return table[order, 0], table[order, 1]

    def __contains__(self, key: int) -> bool:
        i = np.searchsorted(self.keys, key)
        return bool(i < len(self.keys) and self.keys[i] == key)

    def read(self, key: int) -> bytes:
        if key not in self:
            raise KeyError(f"record {key} is not in {self.idx_path}")
        if self._pid != os.getpid():
            self._file, self._pid = open(self.rec_path, "rb"), os.getpid()
        self._file.seek(int(self._offsets[np.searchsorted(self.keys, key)]))
        parts, flag = [], None
        while flag not in (0, 3):
            head = self._file.read(8)
            magic, lrecord = struct.unpack("<II", head) if len(head) == 8 else (None, 0)
            flag, length = lrecord >> 29, lrecord & _MAX_LENGTH
            if magic != MAGIC or (flag in (0, 1)) != (not parts):
                raise ValueError(f"{self.rec_path}: corrupt record {key} near byte "
                                 f"{self._file.tell() - len(head)} (bad RecordIO header)")
            data = self._file.read(length)
            if len(data) != length:
                raise ValueError(f"{self.rec_path}: record {key} is truncated")
            parts.append(data)
            self._file.seek(-length % 4, os.SEEK_CUR)
        return _MAGIC_BYTES.join(parts)

    def __getstate__(self):
        return {**self.__dict__, "_file": None, "_pid": None}


def write_face_records(rec_path: str | os.PathLike, idx_path: str | os.PathLike,
                       faces: Iterable[tuple[bytes, int]]) -> None:
    """Write encoded face images with labels 0..C-1 in insightface's layout (module docstring).

    Images are grouped by label so each identity's images form one contiguous range.
    """
    faces = sorted(faces, key=lambda item: item[1])
    if not faces:
        raise ValueError("no faces to write")
    labels = [label for _, label in faces]
    if labels[0] < 0:
        raise ValueError("labels must be non-negative")
    num_classes = labels[-1] + 1
    first_identity = len(faces) + 1
    with RecordWriter(rec_path, idx_path) as writer:
        writer.write(0, pack((first_identity, first_identity + num_classes), b""))
        for key, (image, label) in enumerate(faces, start=1):
            writer.write(key, pack(label, image))
        for label in range(num_classes):
            start = 1 + bisect.bisect_left(labels, label)
            end = 1 + bisect.bisect_right(labels, label)
            writer.write(first_identity + label, pack((start, end), b""))
