"""Randomness that does not depend on how many processes run or where a run was resumed.

Data order, flips and the initial class centres come from generators keyed by what they are
for (e.g. ``("flip", seed, step)``), never from a shared stream whose position would depend on
history. What does use the global torch stream (Partial FC's negative sampling, dropout) is
saved and restored by :func:`get_state` / :func:`set_state` in every checkpoint.
"""
from __future__ import annotations

import hashlib

import torch


def generator(*key) -> torch.Generator:
    """A CPU generator seeded by a stable 63-bit hash of ``key``."""
    digest = hashlib.blake2b(repr(key).encode(), digest_size=8).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest, "little") >> 1)


def get_state() -> dict:
    state = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_state(state: dict) -> None:
    torch.set_rng_state(state["cpu"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
