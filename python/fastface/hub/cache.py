"""The model cache: pull registry models by name, convert them to ncnn on arrival (with
``fastface.export`` and its parity gate), verify, remove and resolve them.

Layout of the cache (``~/.cache/fastface/models``, or ``$FASTFACE_HOME/models``)::

    <name>/<name>.param, <name>.bin, <name>.json   the ncnn model and its card
    <name>/install.json                              what was installed from where, with sha256s
    .downloads/<sha256>.part                         downloads in progress (resumable)
    .locks/<name>.lock                               one pull of a model at a time, across processes

A model folder appears in one rename, after its downloads passed their sha256 and its
conversion passed the parity gate; a failure leaves the previous install as it was. The folder
is self-contained: copy the cache to a board without torch and the names resolve there.
"""
from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from .download import CacheError, ChecksumError, DownloadError, OfflineError, ProgressBar, fetch, offline, sha256_file
from .registry import ModelEntry, load_registry, lookup

HOME_ENV = "FASTFACE_HOME"
MANIFEST = "install.json"
#: What converting ONNX / PyTorch sources needs (the [export] extra).
EXPORT_MODULES = ("torch", "pnnx", "onnx", "onnxruntime")


def importable(module: str) -> bool:
    """Whether ``module`` can be imported (find_spec may raise instead of answering None)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


class LicenseError(PermissionError):
    """A non-commercial model was asked for without accepting its licence."""


class ExtraMissingError(RuntimeError):
    """Converting this model needs the ``[export]`` extra, which is not installed."""


def cache_dir() -> Path:
    """``$FASTFACE_HOME/models``, else ``~/.cache/fastface/models`` (created on first write)."""
    home = os.environ.get(HOME_ENV)
    root = Path(home).expanduser() if home else Path.home() / ".cache" / "fastface"
    return root / "models"


def _writable_dir(path: Path) -> Path:
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=path, prefix=".write-test-")
        probe.close()
    except OSError as exc:
        raise CacheError(f"the model cache {path} is not writable ({exc.strerror or exc}); set {HOME_ENV} to a "
                         "writable folder") from None
    return path


@contextlib.contextmanager
def _lock(root: Path, name: str, log: Callable[[str], None]):
    """An exclusive lock on ``name`` shared by every process using this cache (POSIX flock)."""
    import fcntl

    folder = _writable_dir(root / ".locks")
    with open(folder / f"{name}.lock", "a+") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log(f"{name}: another process is pulling it; waiting")
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


@dataclass
class Installed:
    """An installed (or bundled) model: its ``.param`` and what :data:`MANIFEST` says."""
    name: str
    param: Path
    manifest: dict


def _manifest(folder: Path) -> Optional[dict]:
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) else None


def installed(name: str, root: Optional[Path] = None) -> Optional[Installed]:
    """The cached model ``name`` if its folder is complete, else None (no network)."""
    folder = (root or cache_dir()) / name
    manifest = _manifest(folder)
    if manifest is None:
        return None
    param = folder / f"{name}.param"
    files = manifest.get("files", {})
    if not param.is_file() or not all((folder / f).is_file() for f in files):
        return None
    return Installed(name, param, manifest)


def _require_export_extra(entry: ModelEntry) -> None:
    missing = [m for m in EXPORT_MODULES if not importable(m)]
    if missing:
        raise ExtraMissingError(
            f"{entry.name} is published as {entry.format.upper()} and is converted to ncnn on arrival, which needs "
            f"the [export] extra (missing: {', '.join(missing)}): pip install 'fastface[export]'. On a board without "
            f"torch, pull it on a PC and copy {cache_dir()}/{entry.name} into this machine's model cache.")


def _licence_check(entry: ModelEntry, accept_license: bool) -> None:
    if not entry.commercial_use and not accept_license:
        raise LicenseError(f"{entry.name} is licensed for {entry.licence} only ({entry.licence_url}); read the "
                           "licence, then pass --accept-license (accept_license=True) to use it")


def _space_check(folder: Path, needed: int) -> None:
    free = shutil.disk_usage(folder).free
    if free < needed:
        raise CacheError(f"the model cache {folder} has {free / 1e6:.1f} MB free but this model needs about "
                         f"{needed / 1e6:.1f} MB; free some space or set {HOME_ENV} to another disk")


def _download(entry: ModelEntry, root: Path, timeout: float, retries: int, backoff: float,
              progress: bool) -> list[Path]:
    downloads = _writable_dir(root / ".downloads")
    pending = [f for f in entry.files if not (downloads / f"{f.sha256}.part").is_file()
               or f.size is None or (downloads / f"{f.sha256}.part").stat().st_size != f.size]
    needed = sum((f.size or (f.member or {}).get("size", 0)) * (2 if entry.format != "ncnn" else 1)
                 for f in pending)  # conversion writes about as much again
    _space_check(downloads, needed)
    paths = []
    for f in entry.files:
        bar = ProgressBar(f"{entry.name}: {f.name}") if progress else None
        paths.append(fetch(f.url, downloads / f"{f.sha256}.part", sha256=f.sha256, size=f.size, timeout=timeout,
                           retries=retries, backoff=backoff, progress=bar))
    return paths


def _extract_member(archive: Path, member: dict, out: Path) -> Path:
    """The registered member of a zip archive, checked by its own size and sha256."""
    target = out / Path(member["name"]).name
    try:
        with zipfile.ZipFile(archive) as z:
            names = [n for n in z.namelist() if n == member["name"] or n.endswith("/" + member["name"])]
            if not names:
                raise ChecksumError(f"{archive.name} holds no {member['name']}; refused, nothing installed")
            with z.open(names[0]) as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
    except zipfile.BadZipFile as exc:
        raise ChecksumError(f"{archive.name} is not a valid zip archive ({exc}); refused, nothing installed") from None
    if target.stat().st_size != member["size"] or sha256_file(target) != member["sha256"]:
        raise ChecksumError(f"{member['name']} in {archive.name} is not the registered file (size or sha256); "
                            "refused, nothing installed")
    return target


def _link(src: Path, dst: Path) -> Path:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)
    return dst


def _card_for(entry: ModelEntry) -> dict:
    return {"name": entry.name, "task": "recognition" if entry.task == "recognizer" else "detection",
            **entry.card, "licence": entry.licence, "licence_url": entry.licence_url, "origin": entry.origin}


def _build(entry: ModelEntry, sources: list[Path], staging: Path, log: Callable[[str], None]) -> dict:
    """ncnn files + card into ``staging``; for ONNX/PyTorch sources a conversion gated by parity.
    Returns what the manifest records about the conversion."""
    name = entry.name
    if entry.format == "ncnn":
        for f, src in zip(entry.files, sources):
            shutil.copyfile(src, staging / f"{name}{Path(f.name).suffix}")
        (staging / f"{name}.json").write_text(json.dumps(_card_for(entry), indent=2) + "\n")
        return {"converted": False}

    source = sources[0]
    card = dict(entry.card)
    work = Path(tempfile.mkdtemp(prefix=".export-", dir=staging))
    if entry.task == "recognizer":
        from ..export import export_recognizer

        size = card.get("size")
        if isinstance(size, list) and size[0] == size[1]:
            size = size[0]
        result = export_recognizer(source, work, name, backbone=card.get("backbone"),
                                   embedding_size=card.get("dim") or None, input_size=size,
                                   channel_order=card.get("channel_order"), mean=card.get("mean"),
                                   scale=card.get("scale"), log=log)
    else:
        from ..export import export_detector

        fields = {k: v for k, v in card.items() if k not in ("kind", "input_size", "input", "outputs")}
        result = export_detector(source, work, name, kind=card["kind"], card=fields,
                                 input_size=card.get("input_size"), log=log)
    converted = json.loads(result.card_path.read_text())
    # The registry's own card fields (threshold, template, ...) and licence go with the model.
    converted.update({k: v for k, v in _card_for(entry).items() if k not in converted})
    for suffix in (".param", ".bin"):
        os.replace(work / f"{name}{suffix}", staging / f"{name}{suffix}")
    (staging / f"{name}.json").write_text(json.dumps(converted, indent=2) + "\n")
    shutil.rmtree(work, ignore_errors=True)
    return {"converted": True, "parity": {"passed": result.parity.passed, "min_cosine": result.parity.min_cosine},
            "converter": converted.get("converter")}


def _fsync_tree(folder: Path) -> None:
    for path in folder.iterdir():
        if path.is_file():
            with open(path, "rb") as f:
                os.fsync(f.fileno())
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _swap_in(staging: Path, final: Path) -> None:
    """Replace ``final`` by ``staging``; if that fails the old folder is put back."""
    old = None
    if final.exists():
        old = final.with_name(f".{final.name}.old-{os.getpid()}")
        os.rename(final, old)
    try:
        os.rename(staging, final)
    except OSError:
        if old is not None:
            os.rename(old, final)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def pull(name: str, *, accept_license: bool = False, force: bool = False, timeout: float = 30.0, retries: int = 4,
         backoff: float = 1.0, progress: bool = True, log: Optional[Callable[[str], None]] = None,
         registry: Optional[dict] = None) -> Path:
    """Install registry model ``name`` into the cache (if it is not there) and return its ``.param``.

    Downloads are resumed, retried (waiting ``backoff`` * 2**attempt seconds) and checked (size,
    sha256) before anything is installed; ONNX and PyTorch sources are converted by
    :mod:`fastface.export` and must pass its parity gate.
    Raises :class:`LicenseError` for a non-commercial model without ``accept_license``,
    :class:`OfflineError` under ``FASTFACE_OFFLINE=1``, :class:`ExtraMissingError` when a
    conversion needs the ``[export]`` extra, :class:`ChecksumError`, :class:`DownloadError`,
    :class:`CacheError`; in each case the cache is left as it was.
    """
    entry = lookup(name, registry)
    if entry.bundled is not None:
        return entry.bundled
    log = log or (lambda message: print(message, file=sys.stderr))
    _licence_check(entry, accept_license)
    root = cache_dir()
    present = installed(entry.name, root)
    if present is not None and not force:
        return present.param
    if offline():
        raise OfflineError(f"{entry.name} is not in the model cache {root} and FASTFACE_OFFLINE is set; pull it where "
                           "there is network and copy the cache folder here")
    if entry.format != "ncnn":
        _require_export_extra(entry)
    _writable_dir(root)
    with _lock(root, entry.name, log):
        present = installed(entry.name, root)  # another process may have installed it meanwhile
        if present is not None and not force:
            return present.param
        sources = _download(entry, root, timeout, retries, backoff, progress)
        try:
            staging = Path(tempfile.mkdtemp(prefix=f".{entry.name}.staging-", dir=root))
        except OSError as exc:
            raise CacheError(f"cannot write into the model cache {root}: {exc.strerror or exc}") from None
        try:
            originals = staging / ".sources"  # under their published names: converters go by the suffix
            originals.mkdir()
            unpacked = [_extract_member(path, f.member, originals) if f.member else _link(path, originals / f.name)
                        for f, path in zip(entry.files, sources)]
            conversion = _build(entry, unpacked, staging, log)
            shutil.rmtree(originals)
            files = {p.name: {"sha256": sha256_file(p), "bytes": p.stat().st_size}
                     for p in sorted(staging.iterdir()) if p.is_file()}
            manifest = {"name": entry.name, "task": entry.task, "format": entry.format, "licence": entry.licence,
                        "licence_url": entry.licence_url, "origin": entry.origin,
                        "sources": [{"name": f.name, "url": f.url, "sha256": f.sha256, "member": f.member}
                                    for f in entry.files],
                        **conversion, "files": files,
                        "installed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
            (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
            _fsync_tree(staging)
            _swap_in(staging, root / entry.name)
        except OSError as exc:
            if isinstance(exc, (DownloadError, CacheError)):
                raise
            raise CacheError(f"cannot install {entry.name} into {root}: {exc.strerror or exc}; the previous "
                             "install (if any) is unchanged") from None
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        for path in sources:  # the download is in the model now
            path.unlink(missing_ok=True)
    log(f"{entry.name}: installed in {root / entry.name}")
    return root / entry.name / f"{entry.name}.param"


def verify(names=None) -> dict[str, list[str]]:
    """Re-hash installed models against their manifests: name -> problems (empty when intact)."""
    root = cache_dir()
    if names is None:
        names = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")) \
            if root.is_dir() else []
    report = {}
    for name in names:
        folder = root / name
        manifest = _manifest(folder)
        if manifest is None:
            report[name] = [f"not installed ({folder} has no {MANIFEST})"]
            continue
        problems = []
        for file, expected in manifest.get("files", {}).items():
            path = folder / file
            if not path.is_file():
                problems.append(f"{file}: missing")
            elif path.stat().st_size != expected["bytes"] or sha256_file(path) != expected["sha256"]:
                problems.append(f"{file}: sha256 differs from the installed one (corrupted or edited)")
        report[name] = problems
    return report


def remove(name: str) -> bool:
    """Delete cached model ``name``; False if it was not installed."""
    root = cache_dir()
    folder = root / name
    if "/" in name or name.startswith(".") or not folder.is_dir():
        return False
    with _lock(root, name, lambda message: print(message, file=sys.stderr)):
        trash = root / f".{name}.removing-{os.getpid()}"
        os.rename(folder, trash)  # one step: no half-deleted model is ever visible
        shutil.rmtree(trash)
    return True


def resolve(name: str, task: str, *, download: bool = True, accept_license: bool = False,
            progress: bool = True) -> Path:
    """The ``.param`` of model ``name`` for ``task`` ("recognizer" or "detector"): bundled, else
    cached, else pulled (when ``download`` and not offline)."""
    registry = load_registry()
    if name not in registry and installed(name) is not None:  # a cache copied from a machine that knew it
        present = installed(name)
        if present.manifest.get("task") not in (None, task):
            raise ValueError(f"{name} is a {present.manifest['task']}, not a {task}")
        return present.param
    entry = lookup(name, registry)
    if entry.task != task:
        other = "Embedder" if entry.task == "recognizer" else "Detector"
        raise ValueError(f"{name} is a {entry.task}, not a {task}; load it with fastface.{other}")
    if entry.bundled is not None:
        return entry.bundled
    present = installed(entry.name)
    if present is not None:
        return present.param
    if not download:
        raise FileNotFoundError(f"{name} is not in the model cache {cache_dir()}; run: fastface models pull {name}")
    return pull(name, accept_license=accept_license, progress=progress)


def local_path(name: str) -> Path:
    """The ``.param`` of model ``name`` on this machine (installed, else bundled), never a download."""
    present = installed(name)
    if present is not None:
        return present.param
    entry = lookup(name)
    if entry.bundled is not None:
        return entry.bundled
    raise FileNotFoundError(f"{name} is not installed; run: fastface models pull {name}")


def catalogue() -> list[dict]:
    """Every known model, by name: task, licence, format, size, accuracy, origin and whether it
    is ``bundled``, ``installed`` or not here (``-``)."""
    rows = []
    for name, entry in sorted(load_registry().items()):
        status = "bundled" if entry.bundled is not None else "installed" if installed(name) else "-"
        rows.append({"name": name, "task": entry.task, "licence": entry.licence, "commercial_use": entry.commercial_use,
                     "format": entry.format, "size": entry.size, "status": status, "accuracy": entry.accuracy,
                     "licence_url": entry.licence_url, "origin": entry.origin})
    return rows


def looks_like_path(value: str) -> bool:
    """True for file paths (``--model ~/m.param``), False for registry names (``--model sface``)."""
    return os.sep in value or "/" in value or value.endswith((".param", ".bin", ".json", ".onnx")) \
        or Path(value).exists()


def resolve_arg(value, task: str):
    """A CLI ``--model`` / ``--detector`` value: paths pass through, names resolve via the cache."""
    if value is None or not isinstance(value, str) or looks_like_path(value):
        return value
    return str(resolve(value, task))
