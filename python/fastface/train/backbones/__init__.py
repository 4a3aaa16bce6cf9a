"""Face-embedding backbones, selectable by name, and a parameter/MAC counter.

Every backbone maps ``(N, 3, S, S)`` images normalised as in :mod:`fastface.train.data`
(RGB, ``(x - 127.5) / 127.5``) to ``(N, num_features)`` embeddings (not L2-normalised).
``S`` defaults to 112; any multiple of 16 is accepted through ``input_size`` (smaller inputs
make CPU tests fast; arcface_torch checkpoints need 112).
"""
from __future__ import annotations

from functools import partial
from typing import Callable, NamedTuple

import torch
from torch import nn

from .iresnet import iresnet
from .mobilefacenet import mbf, mobilefacenet

BACKBONES: dict[str, Callable[..., nn.Module]] = {
    "mobilefacenet": mobilefacenet,
    "mbf": mbf,
    "iresnet18": partial(iresnet, 18),
    "iresnet34": partial(iresnet, 34),
    "iresnet50": partial(iresnet, 50),
    "iresnet100": partial(iresnet, 100),
    "iresnet200": partial(iresnet, 200),
    "se_iresnet100": partial(iresnet, 100, se=True),
}


def get_backbone(name: str, **kwargs) -> nn.Module:
    """Build a backbone by name; ``kwargs`` go to its constructor (``num_features``,
    ``input_size``, and ``dropout`` for the IResNets)."""
    try:
        factory = BACKBONES[name]
    except KeyError:
        raise ValueError(f"unknown backbone {name!r}; choose one of {sorted(BACKBONES)}") from None
    return factory(**kwargs)


class Complexity(NamedTuple):
    params: int
    macs: int


@torch.no_grad()
def complexity(model: nn.Module, input_size: int = 112) -> Complexity:
    """Count parameters and multiply-accumulates for one ``input_size`` square RGB image.

    MACs are those of convolutions and fully connected layers, measured by forward hooks on the
    real graph: ``outputs x (in_channels / groups) x kernel area`` and ``in x out``. BatchNorm,
    PReLU, additions and the SE gate's multiply are left out, as in the papers' figures (BN
    folds into the preceding convolution at inference; the rest is under 1%).
    """
    macs = 0

    def count(module, inputs, output):
        nonlocal macs
        if isinstance(module, nn.Conv2d):
            kh, kw = module.kernel_size
            macs += output.numel() * (module.in_channels // module.groups) * kh * kw
        else:
            macs += output.numel() * module.in_features

    hooks = [m.register_forward_hook(count) for m in model.modules()
             if isinstance(m, (nn.Conv2d, nn.Linear))]
    was_training = model.training
    device = next(model.parameters()).device
    try:
        model.eval()
        model(torch.zeros(1, 3, input_size, input_size, device=device))
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    return Complexity(sum(p.numel() for p in model.parameters()), macs)
