"""The models shipped inside the package: ``models/`` in the repository, installed as
``fastface/models`` (graphs, cards, weights where their licence allows, licence files)."""
from __future__ import annotations

from importlib import resources
from pathlib import Path


def bundled_dir() -> Path:
    """The installed ``fastface/models`` folder."""
    return Path(str(resources.files("fastface") / "models"))


def bundled_model(stem: str) -> Path:
    """The ``.param`` of bundled model ``stem`` (its ``.bin`` and ``.json`` card lie beside it)."""
    path = bundled_dir() / f"{stem}.param"
    if not path.is_file():
        raise FileNotFoundError(f"bundled model {stem!r} not found at {path}; reinstall fastface (pip install .)")
    return path
