"""IResNet ("improved residual" ResNet of ArcFace, LResNetXXE-IR) and its SE variant.

The layout is tuned for 112x112 faces: a 3x3 stride-1 input convolution instead of ResNet's
7x7/2 plus max-pool, BN-Conv-BN-PReLU-Conv-BN residual units that downsample in their second
convolution, and a BN-Dropout-FC-BN output ("E") that keeps spatial layout instead of pooling.
Names and shapes follow insightface's arcface_torch ``backbones/iresnet.py`` so its published
checkpoints load with ``strict=True``. ``se=True`` adds a squeeze-and-excitation gate to every
unit, as in insightface's SE-LResNet100E-IR.
"""
from __future__ import annotations

import torch
from torch import nn

LAYERS = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 14, 3), 100: (3, 13, 30, 3),
          200: (6, 26, 60, 6)}


class SqueezeExcite(nn.Module):
    """Channel gate: global average -> 1x1 conv down by ``reduction`` -> PReLU -> 1x1 -> sigmoid."""

    def __init__(self, channels, reduction=16):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels // reduction, 1)
        self.prelu = nn.PReLU(channels // reduction)
        self.conv2 = nn.Conv2d(channels // reduction, channels, 1)

    def forward(self, x):
        gate = self.conv2(self.prelu(self.conv1(x.mean((2, 3), keepdim=True))))
        return x * torch.sigmoid(gate)


class IBasicBlock(nn.Module):
    """Pre-activation-style IR unit; the stride sits in ``conv2`` as in arcface_torch."""

    def __init__(self, inplanes, planes, stride=1, se=False):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(inplanes, eps=1e-5)
        self.conv1 = nn.Conv2d(inplanes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes, eps=1e-5)
        self.prelu = nn.PReLU(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes, eps=1e-5)
        self.se = SqueezeExcite(planes) if se else None
        self.downsample = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(inplanes, planes, 1, stride, bias=False),
                nn.BatchNorm2d(planes, eps=1e-5),
            )

    def forward(self, x):
        out = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
        if self.se is not None:
            out = self.se(out)
        return out + (x if self.downsample is None else self.downsample(x))


class IResNet(nn.Module):
    def __init__(self, layers, num_features=512, dropout=0.0, se=False, input_size=112):
        super().__init__()
        if input_size % 16:
            raise ValueError(f"input_size must be a multiple of 16, got {input_size}")
        self.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(64, eps=1e-5)
        self.prelu = nn.PReLU(64)
        widths, inplanes = (64, 128, 256, 512), 64
        for i, (planes, n) in enumerate(zip(widths, layers), start=1):
            units = [IBasicBlock(inplanes if j == 0 else planes, planes, 2 if j == 0 else 1, se)
                     for j in range(n)]
            setattr(self, f"layer{i}", nn.Sequential(*units))
            inplanes = planes
        self.bn2 = nn.BatchNorm2d(512, eps=1e-5)
        self.dropout = nn.Dropout(p=dropout)
        self.fc = nn.Linear(512 * (input_size // 16) ** 2, num_features)
        self.features = nn.BatchNorm1d(num_features, eps=1e-5)
        # arcface_torch freezes the embedding BN's scale at 1: only its shift is learned.
        self.features.weight.requires_grad = False
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.prelu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = self.dropout(torch.flatten(self.bn2(x), 1))
        return self.features(self.fc(x))


def iresnet(depth: int, num_features: int = 512, dropout: float = 0.0, se: bool = False,
            input_size: int = 112) -> IResNet:
    return IResNet(LAYERS[depth], num_features, dropout, se, input_size)
