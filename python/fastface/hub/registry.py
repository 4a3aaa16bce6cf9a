"""Known models by name: the registry shipped with the package (``fastface/hub/registry.json``),
entries added by the file ``$FASTFACE_REGISTRY`` (a private mirror, or tests), and the models
bundled in ``fastface/models`` (read from their cards, so new bundled models appear by
themselves). Every entry is checked when the registry loads; a missing or malformed field is
refused with the entry and field named. Standard library only: nothing here slows ``import
fastface``.
"""
from __future__ import annotations

import difflib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

REGISTRY_FILE = Path(__file__).with_name("registry.json")
#: A JSON file in the registry's format whose entries are added to (or replace) the shipped ones.
REGISTRY_ENV = "FASTFACE_REGISTRY"

TASKS = ("recognizer", "detector")
FORMATS = ("ncnn", "onnx", "pytorch")
ENTRY_FIELDS = ("task", "description", "format", "licence", "licence_url", "commercial_use", "origin", "files",
                "card", "accuracy")
FILE_FIELDS = ("name", "url", "sha256", "size", "checksum_source", "verified_locally")
#: Card fields each kind of source needs (the rest of a card is optional).
CARD_FIELDS = {
    ("recognizer", "ncnn"): ("input", "output", "size", "channel_order", "mean", "scale"),
    ("recognizer", "onnx"): ("size", "channel_order"),     # mean/scale: given, or read from the graph
    ("recognizer", "pytorch"): ("size", "backbone"),
    ("detector", "ncnn"): ("kind",),
    ("detector", "onnx"): ("kind",),
}
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class RegistryError(ValueError):
    """A registry entry is malformed, or a name is not known."""


class UnknownModelError(RegistryError):
    """No model of that name; ``matches`` holds the closest known names."""

    def __init__(self, name: str, known):
        self.name = name
        self.matches = difflib.get_close_matches(name.lower(), list(known), n=4, cutoff=0.5)
        hint = f"; did you mean {', '.join(self.matches)}?" if self.matches else ""
        super().__init__(f"unknown model {name!r}{hint} (fastface models list shows them all)")


@dataclass(frozen=True)
class ModelFile:
    """One file to download. ``member``: the file inside a zip archive that is the model."""
    name: str
    url: str
    sha256: str
    size: Optional[int]
    checksum_source: str
    verified_locally: bool
    member: Optional[dict] = None


@dataclass(frozen=True)
class ModelEntry:
    name: str
    task: str
    format: str
    licence: str
    licence_url: str
    commercial_use: bool
    origin: str
    files: tuple = ()
    card: dict = field(default_factory=dict)
    accuracy: Optional[dict] = None
    description: str = ""
    notes: str = ""
    bundled: Optional[Path] = None      # the installed .param of a bundled model

    @property
    def size(self) -> Optional[int]:
        """Bytes of the model itself (the archive member for zipped sources); None if unknown."""
        if self.bundled is not None:
            return sum(p.stat().st_size for p in (self.bundled, self.bundled.with_suffix(".bin")))
        sizes = [f.member["size"] if f.member else f.size for f in self.files]
        return None if any(s is None for s in sizes) else sum(sizes)

    @property
    def download_size(self) -> Optional[int]:
        sizes = [f.size for f in self.files]
        return None if any(s is None for s in sizes) else sum(sizes)


def _require(condition: bool, where: str, message: str) -> None:
    if not condition:
        raise RegistryError(f"{where}: {message}")


def _check_sha(value, where: str) -> None:
    _require(isinstance(value, str) and bool(_SHA256.match(value)), where,
             f"sha256 must be 64 lowercase hex digits, got {value!r}")


def _check_size(value, where: str, nullable: bool) -> None:
    ok = (value is None and nullable) or (isinstance(value, int) and not isinstance(value, bool) and value > 0)
    _require(ok, where, f"size must be a positive int{' or null (unknown)' if nullable else ''}, got {value!r}")


def _parse_file(raw, where: str) -> ModelFile:
    _require(isinstance(raw, dict), where, "each file must be an object")
    for key in FILE_FIELDS:
        _require(key in raw, where, f"missing field {key!r}")
    plain = isinstance(raw["name"], str) and raw["name"] and "/" not in raw["name"] and not raw["name"].startswith(".")
    _require(plain, where, f"file name must be a plain file name, got {raw['name']!r}")
    _require(isinstance(raw["url"], str) and raw["url"].startswith(("https://", "http://")), where,
             f"url must be http(s), got {raw['url']!r}")
    _check_sha(raw["sha256"], f"{where} sha256")
    member = raw.get("member")
    _check_size(raw["size"], where, nullable=member is not None)  # archives: the member's digest and size decide
    _require(isinstance(raw["verified_locally"], bool), where, "verified_locally must be true or false")
    if member is not None:
        _require(isinstance(member, dict), where, "member must be an object")
        for key in ("name", "sha256", "size"):
            _require(key in member, f"{where} member", f"missing field {key!r}")
        _require(raw["name"].endswith(".zip"), where, "only .zip archives may have a member")
        _check_sha(member["sha256"], f"{where} member")
        _check_size(member["size"], f"{where} member", nullable=False)
    return ModelFile(raw["name"], raw["url"], raw["sha256"], raw["size"], str(raw["checksum_source"]),
                     raw["verified_locally"], member)


def parse_entry(name: str, raw: Any, source: str = "registry") -> ModelEntry:
    """A checked :class:`ModelEntry`; :class:`RegistryError` naming the first bad field."""
    where = f"{source}: model {name!r}"
    _require(isinstance(name, str) and bool(_NAME.match(name)), where,
             "names are lowercase letters, digits, '.', '-' and '_'")
    _require(isinstance(raw, dict), where, "an entry must be an object")
    for key in ENTRY_FIELDS:
        _require(key in raw, where, f"missing field {key!r}")
    _require(raw["task"] in TASKS, where, f"task must be one of {TASKS}, got {raw['task']!r}")
    _require(raw["format"] in FORMATS, where, f"format must be one of {FORMATS}, got {raw['format']!r}")
    _require((raw["task"], raw["format"]) in CARD_FIELDS, where,
             f"a {raw['format']} {raw['task']} is not supported (detectors come as ncnn or ONNX)")
    _require(isinstance(raw["licence"], str) and raw["licence"], where, "licence must be an SPDX id or "
             "'non-commercial research'")
    _require(isinstance(raw["commercial_use"], bool), where, "commercial_use must be true or false")
    files = raw["files"]
    _require(isinstance(files, list) and files, where, "files must be a non-empty list")
    parsed = tuple(_parse_file(f, f"{where} file {i}") for i, f in enumerate(files))
    _require(len({f.name for f in parsed}) == len(parsed), where, "file names must differ")
    if raw["format"] == "ncnn":
        suffixes = sorted(Path(f.name).suffix for f in parsed)
        _require(suffixes == [".bin", ".param"], where, "an ncnn model is one .param and one .bin file")
    else:
        _require(len(parsed) == 1, where, f"a {raw['format']} model is one file")
    card = raw["card"]
    _require(isinstance(card, dict), where, "card must be an object")
    for key in CARD_FIELDS[(raw["task"], raw["format"])]:
        _require(key in card, f"{where} card", f"missing field {key!r}")
    _require(raw["accuracy"] is None or isinstance(raw["accuracy"], dict), where, "accuracy must be an object or null")
    return ModelEntry(name, raw["task"], raw["format"], raw["licence"], str(raw["licence_url"]),
                      raw["commercial_use"], str(raw["origin"]), parsed, dict(card), raw["accuracy"],
                      str(raw["description"]), str(raw.get("notes", "")))


def parse_registry(document: Any, source: str) -> dict[str, ModelEntry]:
    if not isinstance(document, dict) or not isinstance(document.get("models"), dict):
        raise RegistryError(f"{source}: a registry is an object with a 'models' object")
    if document.get("format_version", 1) != 1:
        raise RegistryError(f"{source}: format_version {document.get('format_version')!r} is newer than this "
                            "fastface reads (1); upgrade fastface")
    return {name: parse_entry(name, raw, source) for name, raw in document["models"].items()}


def _read(path: Path) -> dict[str, ModelEntry]:
    try:
        document = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise RegistryError(f"no registry file at {path}") from None
    except (OSError, ValueError) as exc:
        raise RegistryError(f"cannot read registry {path}: {exc}") from None
    return parse_registry(document, str(path))


def _task(card: dict) -> Optional[str]:
    task = str(card.get("task", "")).lower()
    if task in ("recognition", "recognizer", "embedding"):
        return "recognizer"
    if task in ("detection", "detector") or "kind" in card:
        return "detector"
    return "recognizer" if "output" in card else None


def bundled_entries() -> dict[str, ModelEntry]:
    """The bundled models that carry weights (architecture-only graphs are left out), from
    their cards in the installed ``fastface/models``."""
    from .bundled import bundled_dir

    folder = bundled_dir()
    entries = {}
    for card_path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        param, weights = card_path.with_suffix(".param"), card_path.with_suffix(".bin")
        try:
            card = json.loads(card_path.read_text())
        except (OSError, ValueError):
            continue
        task = _task(card) if isinstance(card, dict) else None
        if not (param.is_file() and weights.is_file() and task):
            continue
        licence = card.get("licence") or card.get("license") or "see the licence file in fastface/models"
        name = card_path.stem
        entries[name] = ModelEntry(
            name, task, "ncnn", str(licence), str(folder), True, "bundled with fastface", (), card,
            card.get("accuracy"), str(card.get("description", "bundled with fastface")), bundled=param)
    return entries


def load_registry(extra: Optional[os.PathLike] = None) -> dict[str, ModelEntry]:
    """Shipped entries, then those of ``extra`` or ``$FASTFACE_REGISTRY`` (same names replace),
    then the bundled models (a bundled model is never replaced by a download of the same name)."""
    entries = _read(REGISTRY_FILE)
    override = extra if extra is not None else os.environ.get(REGISTRY_ENV)
    if override:
        entries.update(_read(Path(override)))
    entries.update(bundled_entries())
    return entries


def lookup(name: str, registry: Optional[dict] = None) -> ModelEntry:
    """The entry called ``name``; :class:`UnknownModelError` with the closest names otherwise."""
    if not isinstance(name, str):
        raise TypeError(f"a model name is a str, got {type(name).__name__}")
    registry = load_registry() if registry is None else registry
    if name in registry:
        return registry[name]
    raise UnknownModelError(name, registry)
