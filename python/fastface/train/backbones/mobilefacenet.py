"""MobileFaceNet (Chen et al. 2018) and insightface's wider ``mbf`` variant.

Both are built by one class because they share every building block: arcface_torch's ``mbf``
is the paper's network with all bottleneck widths doubled (``scale=2``) while keeping the
expansion widths, so depthwise groups stay fixed. ``scale=1`` gives the paper's Table 1
exactly: bottlenecks t/c/n/s = 2/64/5/2, 4/128/1/2, 2/128/6/1, 4/128/1/2, 2/128/2/1.

Module and attribute names follow arcface_torch's ``backbones/mobilefacenet.py`` so that
checkpoints trained there load here with ``strict=True``.
"""
from __future__ import annotations

import torch
from torch import nn


class ConvBlock(nn.Module):
    """Conv -> BN -> PReLU."""

    def __init__(self, in_c, out_c, kernel=1, stride=1, padding=0, groups=1):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv2d(in_c, out_c, kernel, stride, padding, groups=groups, bias=False),
            nn.BatchNorm2d(out_c),
            nn.PReLU(out_c),
        )

    def forward(self, x):
        return self.layers(x)


class LinearBlock(nn.Module):
    """Conv -> BN with no activation (the "linear" layers of the paper)."""

    def __init__(self, in_c, out_c, kernel=1, stride=1, padding=0, groups=1):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv2d(in_c, out_c, kernel, stride, padding, groups=groups, bias=False),
            nn.BatchNorm2d(out_c),
        )

    def forward(self, x):
        return self.layers(x)


class DepthWise(nn.Module):
    """Inverted-residual bottleneck: 1x1 expand to ``hidden``, 3x3 depthwise, linear 1x1."""

    def __init__(self, in_c, out_c, hidden, stride=1, residual=False):
        super().__init__()
        self.residual = residual
        self.layers = nn.Sequential(
            ConvBlock(in_c, hidden),
            ConvBlock(hidden, hidden, 3, stride, 1, groups=hidden),
            LinearBlock(hidden, out_c),
        )

    def forward(self, x):
        return x + self.layers(x) if self.residual else self.layers(x)


class Residual(nn.Module):
    """``n`` stride-1 bottlenecks with identity shortcuts."""

    def __init__(self, c, n, hidden):
        super().__init__()
        self.layers = nn.Sequential(*[DepthWise(c, c, hidden, residual=True) for _ in range(n)])

    def forward(self, x):
        return self.layers(x)


class GDC(nn.Module):
    """Global depthwise conv over the whole final map, then a linear layer to the embedding.

    The paper's "linear 1x1 conv" on a 1x1 map is a fully connected layer; the BatchNorm1d after
    it (also in insightface's models) absorbs its bias, hence ``bias=False``.
    """

    def __init__(self, num_features, kernel=7):
        super().__init__()
        self.layers = nn.Sequential(
            LinearBlock(512, 512, kernel, groups=512),
            nn.Flatten(),
            nn.Linear(512, num_features, bias=False),
            nn.BatchNorm1d(num_features),
        )

    def forward(self, x):
        return self.layers(x)


class MobileFaceNet(nn.Module):
    """MobileFaceNet; ``blocks`` are the bottleneck counts of the four stride-1 stages."""

    def __init__(self, num_features=128, blocks=(1, 4, 6, 2), scale=1, input_size=112):
        super().__init__()
        if input_size % 16:
            raise ValueError(f"input_size must be a multiple of 16, got {input_size}")
        c64, c128 = 64 * scale, 128 * scale
        self.layers = nn.ModuleList([ConvBlock(3, c64, 3, 2, 1)])
        if blocks[0] == 1:  # the paper's single depthwise 3x3 (grouped by 64 when scale > 1)
            self.layers.append(ConvBlock(c64, c64, 3, 1, 1, groups=64))
        else:
            self.layers.append(Residual(c64, blocks[0], hidden=128))
        self.layers.extend([
            DepthWise(c64, c64, hidden=128, stride=2),
            Residual(c64, blocks[1], hidden=128),
            DepthWise(c64, c128, hidden=256, stride=2),
            Residual(c128, blocks[2], hidden=256),
            DepthWise(c128, c128, hidden=512, stride=2),
            Residual(c128, blocks[3], hidden=256),
        ])
        self.conv_sep = ConvBlock(c128, 512)
        self.features = GDC(num_features, kernel=input_size // 16)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return self.features(self.conv_sep(x))


def mobilefacenet(num_features: int = 128, input_size: int = 112) -> MobileFaceNet:
    """The paper's network (0.99M parameters, 221M MACs at 128-d and 112x112)."""
    return MobileFaceNet(num_features, blocks=(1, 4, 6, 2), scale=1, input_size=input_size)


def mbf(num_features: int = 512, input_size: int = 112) -> MobileFaceNet:
    """arcface_torch's ``mbf`` (``get_mbf``): the paper's layout at twice the width."""
    return MobileFaceNet(num_features, blocks=(1, 4, 6, 2), scale=2, input_size=input_size)
