"""Learning-rate schedule: linear warmup, then polynomial or cosine decay to zero.

:class:`WarmupDecay` is a picklable callable for ``torch.optim.lr_scheduler.LambdaLR``, so the
scheduler's ``state_dict`` (saved in checkpoints) carries the whole schedule, not just a step.
"""
from __future__ import annotations

import math


class WarmupDecay:
    """Multiplier of the base learning rate at optimizer step ``step`` (0-based).

    Warmup ramps linearly over ``warmup_steps`` reaching 1 at the first step after it (the very
    first step already moves, at ``1 / warmup_steps``); the remaining steps follow
    ``(1 - p) ** power`` (``poly``, arcface_torch's default with power 2) or
    ``(1 + cos(pi p)) / 2`` (``cosine``), with ``p`` the fraction of decay steps done.
    """

    def __init__(self, total_steps: int, warmup_steps: int = 0, kind: str = "poly",
                 power: float = 2.0):
        if kind not in ("poly", "cosine"):
            raise ValueError(f"unknown schedule {kind!r}; choose poly or cosine")
        if not 0 <= warmup_steps < total_steps:
            raise ValueError(f"warmup_steps must be in [0, {total_steps}), got {warmup_steps}")
        self.total_steps, self.warmup_steps = total_steps, warmup_steps
        self.kind, self.power = kind, power

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        progress = (step - self.warmup_steps) / (self.total_steps - self.warmup_steps)
        progress = min(progress, 1.0)
        if self.kind == "poly":
            return (1.0 - progress) ** self.power
        return 0.5 * (1.0 + math.cos(math.pi * progress))
