"""Crash-safe checkpoints for single- and multi-process runs.

Each rank writes its own ``step-<k>.rank-<r>.pt`` (its class-centre shard and optimizer state
differ from the others'). Every file is written to a temporary name, fsynced and renamed, so
a crash leaves either the old file or the complete new one. Only after all ranks have written
does rank 0 atomically update ``latest.json``; resuming reads that pointer, so a half-written
set of rank files is never used. Older checkpoints beyond ``keep`` are then deleted.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch
import torch.distributed as dist

LATEST = "latest.json"


def atomic_write(path: str | os.PathLike, write) -> None:
    """Call ``write(file)`` on a temporary file, fsync it, rename it over ``path``."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # make the rename itself durable
    finally:
        os.close(directory)


def checkpoint_path(folder: str | os.PathLike, step: int, rank: int) -> Path:
    return Path(folder) / f"step-{step:09d}.rank-{rank}.pt"


def save(folder: str | os.PathLike, step: int, state: dict, rank: int, world_size: int,
         keep: int = 2) -> None:
    """Write this rank's ``state``; once every rank has, point ``latest.json`` at ``step``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write(checkpoint_path(folder, step, rank), lambda f: torch.save(state, f))
    if world_size > 1:
        dist.barrier()
    if rank == 0:
        pointer = json.dumps({"step": step, "world_size": world_size}).encode()
        atomic_write(folder / LATEST, lambda f: f.write(pointer))
        steps = sorted({int(p.name.split(".")[0][5:]) for p in folder.glob("step-*.rank-*.pt")})
        for old in steps[:-keep] if keep > 0 else []:
            for p in folder.glob(f"step-{old:09d}.rank-*.pt"):
                p.unlink(missing_ok=True)


def latest(folder: str | os.PathLike) -> dict | None:
    """``{"step": k, "world_size": w}`` of the last complete checkpoint, or None."""
    pointer = Path(folder) / LATEST
    if not pointer.exists():
        return None
    try:
        info = json.loads(pointer.read_text())
        return {"step": int(info["step"]), "world_size": int(info["world_size"])}
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"corrupt checkpoint pointer {pointer}: {exc}") from None


def load(folder: str | os.PathLike, step: int, rank: int) -> dict:
    path = checkpoint_path(folder, step, rank)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint file missing: {path}")
    return torch.load(path, map_location="cpu", weights_only=True)
