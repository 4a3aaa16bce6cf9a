"""Encryption at rest: files sealed with AES-256-GCM under a key the user provides.

A sealed file is a plaintext header followed by the payload in chunks (the STREAM construction
of Hoang et al., as in Tink's AES-GCM-HKDF streaming AEAD), so a large file is written and read
in bounded memory and every chunk is authenticated before any of it is used:

    magic "FFSEALD1" | kind (16 bytes, what the file holds) | salt (16) | nonce prefix (7)
    | chunk size (u32) | key check (16)
    chunks: AES-GCM(file key, nonce = prefix | u32 counter | u8 last, chunk, associated data = header)

The file key is HKDF-SHA256(user key, salt): a fresh key per file, so random nonce prefixes never
repeat under one key. The key check (HKDF of the same inputs, another label) tells a wrong key
from a damaged file without revealing the key. Reordered, dropped, appended or altered chunks
and a file cut short all fail authentication. The key never touches the disk here: it comes from
an argument, ``FASTFACE_GALLERY_KEY`` (hex or base64), or a key file (``FASTFACE_GALLERY_KEY_FILE``),
which must not sit in the folder of the data it protects.
"""
from __future__ import annotations

import base64
import binascii
import hmac
import os
import struct
import tempfile
from pathlib import Path

MAGIC = b"FFSEALD1"
_HEADER = struct.Struct("<8s16s16s7sI16s")
_TAG = 16
CHUNK = 1 << 20
KEY_ENV, KEY_FILE_ENV = "FASTFACE_GALLERY_KEY", "FASTFACE_GALLERY_KEY_FILE"


class SealedError(ValueError):
    """A sealed file that cannot be opened: wrong or missing key, damaged, cut short or foreign."""


class WrongKeyError(SealedError):
    """The file is intact as far as can be told, but was sealed under another key."""


class DamagedError(SealedError):
    """The file fails authentication: truncated, altered, or not a sealed file of this kind."""


def _crypto():
    try:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
        from cryptography.hazmat.primitives.kdf.hkdf import HKDF
    except ImportError:
        raise ImportError("encrypted galleries need the cryptography package: pip install 'fastface[postgres]' "
                          "(or pip install cryptography)") from None
    return hashes, AESGCM, HKDF


def parse_key(value, where: str) -> bytes:
    """A 32-byte key from raw bytes, 64 hex digits or base64 text; ``where`` names its origin."""
    if isinstance(value, (bytes, bytearray)) and len(value) == 32:
        return bytes(value)
    try:
        text = value.decode("ascii") if isinstance(value, (bytes, bytearray)) else str(value)
    except UnicodeDecodeError:
        text = ""
    text = text.strip()
    key = b""
    try:
        key = bytes.fromhex(text) if len(text) == 64 else base64.b64decode(text, validate=True)
    except (ValueError, binascii.Error):
        pass
    if len(key) != 32:
        raise SealedError(f"the gallery key from {where} is not 32 bytes (give 32 raw bytes, 64 hex digits or "
                          "base64 of 32 bytes; make one with: python -c \"import os; print(os.urandom(32).hex())\")")
    return key


def resolve_key(key=None, key_file=None, *, data_path=None) -> bytes | None:
    """The key from ``key``, else ``key_file``, else ``$FASTFACE_GALLERY_KEY``, else the file
    ``$FASTFACE_GALLERY_KEY_FILE``; None when none is given. A key file in the same folder as
    ``data_path`` is refused: a key stored beside the data protects nothing."""
    if key is not None:
        return parse_key(key, "the key argument")
    if key_file is None and os.environ.get(KEY_ENV):
        return parse_key(os.environ[KEY_ENV], f"${KEY_ENV}")
    key_file = key_file if key_file is not None else os.environ.get(KEY_FILE_ENV) or None
    if key_file is None:
        return None
    key_file = Path(key_file)
    if data_path is not None and key_file.resolve().parent == Path(data_path).resolve().parent:
        raise SealedError(f"the key file {key_file} is in the same folder as {data_path}: keep the key elsewhere "
                          "(another partition, a TPM-backed store, or $FASTFACE_GALLERY_KEY), never beside the data")
    try:
        return parse_key(key_file.read_bytes(), f"the key file {key_file}")
    except OSError as exc:
        raise SealedError(f"cannot read the key file {key_file}: {exc.strerror}") from None


def _derive(key: bytes, salt: bytes, kind: bytes) -> tuple[bytes, bytes]:
    hashes, _, HKDF = _crypto()
    okm = HKDF(algorithm=hashes.SHA256(), length=48, salt=salt, info=b"fastface sealed file v1 " + kind).derive(key)
    return okm[:32], okm[32:]


def _kind(kind: str) -> bytes:
    raw = kind.encode("ascii")
    if len(raw) > 16:
        raise ValueError(f"kind {kind!r} is longer than 16 bytes")
    return raw.ljust(16, b"\0")


class SealedWriter:
    """Writes a sealed file atomically: the payload goes to a temporary file beside ``path``,
    which replaces ``path`` (fsynced) only when the writer closes without an error."""

    def __init__(self, path, key: bytes, kind: str, chunk: int | None = None):
        _, AESGCM, _ = _crypto()
        chunk = chunk or CHUNK
        self.path = Path(path)
        salt, prefix = os.urandom(16), os.urandom(7)
        file_key, check = _derive(key, salt, _kind(kind))
        self._aead, self._prefix, self._chunk = AESGCM(file_key), prefix, chunk
        self._header = _HEADER.pack(MAGIC, _kind(kind), salt, prefix, chunk, check)
        fd, self._tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")
        self._file = os.fdopen(fd, "wb")
        self._file.write(self._header)
        self._buffer = bytearray()
        self._counter = 0

    def _seal(self, data, last: bool) -> None:
        nonce = self._prefix + struct.pack(">IB", self._counter, last)
        self._file.write(self._aead.encrypt(nonce, bytes(data), self._header))
        self._counter += 1
        if self._counter >= 2**32:
            raise SealedError(f"{self.path}: payload too large")

    def write(self, data) -> None:
        self._buffer += data
        while len(self._buffer) > self._chunk:  # '>': the final chunk is never empty unless the payload is
            self._seal(self._buffer[:self._chunk], False)
            del self._buffer[:self._chunk]

    def __enter__(self) -> "SealedWriter":
        return self

    def __exit__(self, kind, exc, tb) -> None:
        try:
            if exc is None:
                self._seal(self._buffer, True)
                self._file.flush()
                os.fsync(self._file.fileno())
            self._file.close()
            if exc is None:
                os.replace(self._tmp, self.path)
                fd = os.open(self.path.parent, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
        finally:
            Path(self._tmp).unlink(missing_ok=True)


class SealedReader:
    """Reads a sealed file's payload; ``read(n)`` returns exactly n authenticated bytes (or
    raises). ``finish()`` checks that the payload ended exactly there. Any error means the data
    read so far must be thrown away."""

    def __init__(self, path, key: bytes, kind: str):
        _, AESGCM, _ = _crypto()
        self.path = Path(path)
        self._file = open(self.path, "rb")
        try:
            header = self._file.read(_HEADER.size)
            if len(header) < _HEADER.size or not header.startswith(MAGIC):
                raise DamagedError(f"{self.path} is not a sealed fastface file (or is cut short)")
            _, stored_kind, salt, prefix, chunk, check = _HEADER.unpack(header)
            if stored_kind != _kind(kind):
                found = stored_kind.rstrip(b"\0").decode("ascii", "replace")
                raise DamagedError(f"{self.path} holds {found!r}, not {kind!r}")
            if not 0 < chunk <= 64 * CHUNK:
                raise DamagedError(f"{self.path} has an invalid header")
            file_key, expected = _derive(key, salt, stored_kind)
            if not hmac.compare_digest(check, expected):
                raise WrongKeyError(f"{self.path} was encrypted with another key (or its header is damaged): give the key "
                                    f"it was made with (${KEY_ENV}, ${KEY_FILE_ENV} or the key argument)")
        except BaseException:
            self._file.close()
            raise
        self._aead, self._prefix, self._chunk, self._header = AESGCM(file_key), prefix, chunk, header
        self._buffer = bytearray()
        self._counter = 0
        self._done = False

    def _next_chunk(self) -> None:
        from cryptography.exceptions import InvalidTag

        if self._done:
            raise DamagedError(f"{self.path}: the payload ends early (corrupt)")
        data = self._file.read(self._chunk + _TAG)
        last = len(data) < self._chunk + _TAG or not self._file.peek(1)
        nonce = self._prefix + struct.pack(">IB", self._counter, last)
        try:
            self._buffer += self._aead.decrypt(nonce, data, self._header)
        except InvalidTag:
            raise DamagedError(f"{self.path} fails authentication at chunk {self._counter}: truncated, altered "
                               "or corrupt") from None
        self._counter += 1
        self._done = last

    def read(self, n: int) -> bytes:
        while len(self._buffer) < n:
            self._next_chunk()
        out = bytes(self._buffer[:n])
        del self._buffer[:n]
        return out

    def finish(self) -> None:
        while not self._done and not self._buffer:
            self._next_chunk()  # an empty payload's one chunk, still to be authenticated
        if self._buffer or not self._done or self._file.read(1):
            raise DamagedError(f"{self.path} has data past its payload (corrupt)")

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> "SealedReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
