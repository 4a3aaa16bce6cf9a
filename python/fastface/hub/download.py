"""HTTP downloads for the model cache: resumable (``.part`` file + HTTP Range), retried with
exponential backoff, bounded by a socket timeout, checked against size and sha256 before the
caller may use the file. Standard library only."""
from __future__ import annotations

import errno
import hashlib
import http.client
import os
import socket
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable, Optional

OFFLINE_ENV = "FASTFACE_OFFLINE"
CHUNK = 1 << 16
#: HTTP statuses worth retrying (the rest of 4xx mean the URL or request is wrong).
RETRY_STATUSES = {408, 425, 429, 500, 502, 503, 504}

Progress = Callable[[int, Optional[int]], None]


class DownloadError(OSError):
    """A download failed: network, HTTP status, timeout, or offline mode."""


class ChecksumError(DownloadError):
    """The downloaded bytes are not the registered ones (size or sha256)."""


class OfflineError(DownloadError):
    """``FASTFACE_OFFLINE`` forbids the network."""


class CacheError(OSError):
    """The model cache cannot be written (permissions, read-only or full file system)."""


def offline() -> bool:
    return os.environ.get(OFFLINE_ENV, "").strip().lower() not in ("", "0", "false", "no", "off")


def sha256_file(path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def _megabytes(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


class ProgressBar:
    """A one-line progress bar on stderr, redrawn at most ten times a second (on a terminal;
    elsewhere one line when the download ends)."""

    def __init__(self, label: str, stream=None):
        self.label, self.stream = label, stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self._last, self._start, self._first = 0.0, time.monotonic(), None

    def __call__(self, done: int, total: Optional[int]) -> None:
        now = time.monotonic()
        if self._first is None:
            self._first = done  # bytes already on disk when this run started (resume)
        finished = total is not None and done >= total
        if not finished and (not self.tty or now - self._last < 0.1):
            return
        self._last = now
        rate = (done - self._first) / max(now - self._start, 1e-3)
        if total:
            width = 30
            filled = int(width * done / total)
            line = (f"{self.label} [{'#' * filled}{'.' * (width - filled)}] {100 * done / total:5.1f}% "
                    f"{_megabytes(done)}/{_megabytes(total)} {_megabytes(int(rate))}/s")
        else:
            line = f"{self.label} {_megabytes(done)} {_megabytes(int(rate))}/s"
        self.stream.write(("\r" + line + ("\n" if finished else "")) if self.tty else (line + "\n" if finished else ""))
        self.stream.flush()


def _request(url: str, start: int) -> urllib.request.Request:
    from .. import __version__

    headers = {"User-Agent": f"fastface/{__version__}", "Accept-Encoding": "identity"}
    if start:
        headers["Range"] = f"bytes={start}-"
    return urllib.request.Request(url, headers=headers)


def _write_error(exc: OSError, part: Path) -> CacheError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return CacheError(f"no space left for {part.name} in {part.parent}; free some space (the partial download "
                          "is kept and resumes) or set FASTFACE_HOME to another disk")
    return CacheError(f"cannot write {part}: {exc.strerror or exc}; set FASTFACE_HOME to a writable folder")


def _transfer(url: str, part: Path, size: Optional[int], timeout: float, progress: Optional[Progress]) -> None:
    """One attempt: append what the server sends after the bytes already in ``part``."""
    start = part.stat().st_size if part.exists() else 0
    if size is not None and start >= size:
        return
    try:
        response = urllib.request.urlopen(_request(url, start), timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and start:  # our range starts at or past the end of the file
            if (exc.headers.get("Content-Range") or "").strip() == f"bytes */{start}":
                return  # it was complete already (a size-less archive downloaded before)
            part.unlink()
            raise ConnectionError("server refused the resume range; restarting") from None
        raise
    with response:
        status = response.status
        if start and status == 206:
            content_range = response.headers.get("Content-Range", "")
            if not content_range.startswith(f"bytes {start}-"):
                raise ConnectionError(f"server resumed at the wrong offset ({content_range!r})")
            mode = "ab"
        else:
            start, mode = 0, "wb"  # a 200 to a Range request: the whole file again
        length = response.headers.get("Content-Length")
        expected_end = start + int(length) if length is not None and length.isdigit() else None
        total = size if size is not None else expected_end
        done = start
        try:
            with open(part, mode) as out:
                if progress:
                    progress(done, total)
                while True:
                    block = response.read(CHUNK)
                    if not block:
                        break
                    out.write(block)
                    done += len(block)
                    if progress:
                        progress(done, total)
                out.flush()
                os.fsync(out.fileno())
        except OSError as exc:
            if isinstance(exc, (socket.timeout, ConnectionError)) or exc.errno is None:
                raise
            raise _write_error(exc, part) from None
    if expected_end is not None and done < expected_end:
        raise ConnectionError(f"connection closed after {done} of {expected_end} bytes")


def fetch(url: str, part: Path, *, sha256: str, size: Optional[int], timeout: float = 30.0, retries: int = 4,
          backoff: float = 1.0, progress: Optional[Progress] = None) -> Path:
    """Download ``url`` into ``part`` (resuming what is there) and check it; returns ``part``.

    Network errors, timeouts, short reads and retryable HTTP statuses are retried ``retries``
    times, waiting ``backoff`` * 2**attempt seconds and resuming from the bytes on disk. A size or
    sha256 mismatch deletes ``part`` and raises :class:`ChecksumError`; other HTTP errors raise
    :class:`DownloadError` at once.
    """
    if offline():
        raise OfflineError(f"{OFFLINE_ENV} is set: not downloading {url}")
    part = Path(part)
    attempt = 0
    while True:
        try:
            _transfer(url, part, size, timeout, progress)
            break
        except CacheError:
            raise
        except urllib.error.HTTPError as exc:
            if exc.code not in RETRY_STATUSES or attempt >= retries:
                raise DownloadError(f"HTTP {exc.code} {exc.reason} for {url}") from None
            reason = f"HTTP {exc.code}"
        except (urllib.error.URLError, socket.timeout, TimeoutError, ConnectionError, http.client.HTTPException,
                OSError) as exc:
            reason = _reason(exc, timeout)
            if attempt >= retries:
                raise DownloadError(f"download of {url} failed after {attempt + 1} attempts: {reason}") from None
        delay = backoff * (2 ** attempt)
        print(f"fastface: {reason}; retrying in {delay:.1f} s ({attempt + 1}/{retries})", file=sys.stderr)
        time.sleep(delay)
        attempt += 1
    got = part.stat().st_size
    if size is not None and got != size:
        part.unlink()
        raise ChecksumError(f"{url}: got {got} bytes, expected {size}; refused, nothing installed")
    digest = sha256_file(part)
    if digest != sha256:
        part.unlink()
        raise ChecksumError(f"{url}: sha256 {digest} differs from the registered {sha256}; refused, nothing "
                            "installed (the file may have changed upstream, or the transfer was tampered with)")
    return part


def _reason(exc: BaseException, timeout: float) -> str:
    inner = getattr(exc, "reason", None)
    if isinstance(exc, (socket.timeout, TimeoutError)) or isinstance(inner, (socket.timeout, TimeoutError)):
        return f"timed out (no data for {timeout:g} s)"
    if isinstance(inner, BaseException):
        return f"{type(inner).__name__}: {inner}"
    return f"{type(exc).__name__}: {exc}"
