"""Models by name: the registry of known models (:mod:`.registry`), resumable checked downloads
(:mod:`.download`), the model cache that pulls, converts, verifies and resolves them
(:mod:`.cache`), and the models bundled in the package (:mod:`.bundled`).

``fastface.Embedder.from_name`` and ``fastface.Detector.from_name`` resolve names through
:func:`resolve`; ``fastface models`` is the command line over the same functions. The names
below load their module on first use, so finding a bundled model (``Embedder()``) does not
import the HTTP stack.
"""
from __future__ import annotations

import importlib

_HOME = {  # public name -> the submodule that defines it
    **dict.fromkeys(["bundled_dir", "bundled_model"], "bundled"),
    **dict.fromkeys(["EXPORT_MODULES", "HOME_ENV", "MANIFEST", "ExtraMissingError", "Installed", "LicenseError",
                     "cache_dir", "catalogue", "importable", "installed", "local_path", "looks_like_path", "pull",
                     "remove", "resolve", "resolve_arg", "verify"], "cache"),
    **dict.fromkeys(["CacheError", "ChecksumError", "DownloadError", "OfflineError", "offline", "sha256_file"],
                    "download"),
    **dict.fromkeys(["ModelEntry", "ModelFile", "RegistryError", "UnknownModelError", "load_registry", "lookup"],
                    "registry"),
}
__all__ = sorted(_HOME)


def __getattr__(name: str):
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_HOME[name]}"), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_HOME))
