"""Margin-based softmax heads: ArcFace, CosFace and the combined margin of insightface.

A margin module turns cosine similarities between normalised embeddings and class centres
into scaled logits for cross-entropy. Only the target class's cosine is changed:

    target:  s * (cos(m1 * theta + m2) - m3)        others:  s * cos(theta)

ArcFace is (1, m, 0), CosFace (1, 0, m), SphereFace-style margins use m1 > 1.

An additive angular margin stops being a penalty once ``m1 * theta + m2`` passes pi (the
cosine turns back up, rewarding worse embeddings). ArcFace's remedy, used here: beyond that
point the target falls back to the CosFace-like ``cos(theta) - m3 - m2 * sin(m2)``, which keeps
the logit decreasing in theta. ``easy_margin`` instead applies the angular margin only while
``cos(theta) > 0`` and leaves the target unchanged elsewhere.
"""
from __future__ import annotations

import math

import torch
from torch import nn


class CombinedMargin(nn.Module):
    def __init__(self, s: float = 64.0, m1: float = 1.0, m2: float = 0.5, m3: float = 0.0,
                 easy_margin: bool = False):
        super().__init__()
        if s <= 0 or m1 < 1 or m2 < 0 or m3 < 0:
            raise ValueError(f"need s > 0, m1 >= 1, m2 >= 0, m3 >= 0; got {s}, {m1}, {m2}, {m3}")
        self.s, self.m1, self.m2, self.m3 = s, m1, m2, m3
        self.easy_margin = easy_margin
        # cos(theta) below which m1 * theta + m2 > pi.
        self.threshold = math.cos(min(math.pi, (math.pi - m2) / m1))
        self.fallback = m3 + m2 * math.sin(m2)

    def forward(self, cosine: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """``cosine`` (N, C) in [-1, 1]; ``labels`` (N,) column of the target in ``cosine``,
        or -1 where the target class lives elsewhere (another rank's shard)."""
        rows = torch.nonzero(labels >= 0).squeeze(1)
        target = cosine[rows, labels[rows]]
        if self.m1 == 1.0 and self.m2 == 0.0:
            margined = target - self.m3
        else:
            theta = torch.acos(target.clamp(-1 + 1e-7, 1 - 1e-7))
            margined = torch.cos(self.m1 * theta + self.m2) - self.m3
            if self.easy_margin:
                margined = torch.where(target > 0, margined, target)
            else:
                margined = torch.where(target > self.threshold, margined, target - self.fallback)
        logits = cosine.index_put((rows, labels[rows]), margined)
        return logits * self.s


def arcface(s: float = 64.0, m: float = 0.5, easy_margin: bool = False) -> CombinedMargin:
    """ArcFace (Deng et al. 2019): additive angular margin."""
    return CombinedMargin(s, 1.0, m, 0.0, easy_margin)


def cosface(s: float = 64.0, m: float = 0.4) -> CombinedMargin:
    """CosFace (Wang et al. 2018): additive cosine margin."""
    return CombinedMargin(s, 1.0, 0.0, m)


def get_margin(name: str, s: float = 64.0, margins: tuple[float, ...] | None = None,
               easy_margin: bool = False) -> CombinedMargin:
    """``name`` is arcface, cosface or combined; ``margins`` overrides the default margin
    (one value for arcface and cosface, the three values m1, m2, m3 for combined)."""
    expected = {"arcface": 1, "cosface": 1, "combined": 3}
    if name not in expected:
        raise ValueError(f"unknown loss {name!r}; choose one of {sorted(expected)}")
    if margins is None and name == "combined":
        raise ValueError("the combined margin needs three values m1, m2, m3")
    if margins is not None and len(margins) != expected[name]:
        raise ValueError(f"{name} takes {expected[name]} margin value(s), got {list(margins)}")
    if name == "arcface":
        return arcface(s, *(margins or (0.5,)), easy_margin=easy_margin)
    if name == "cosface":
        return cosface(s, *(margins or (0.4,)))
    return CombinedMargin(s, *margins, easy_margin=easy_margin)
