"""MiniFASNet: minivision's silent (single RGB frame) face anti-spoofing networks.

Two published models (Silent-Face-Anti-Spoofing, Apache-2.0) are fastface's liveness check:
``MiniFASNetV2`` on the face box scaled by 2.7 and ``MiniFASNetV1SE`` on the box scaled by
4.0, both on 80x80 raw BGR 0-255 crops, three classes (index 1 = real face). The network is a
MobileFaceNet-style stack of depthwise-separable blocks with pruned widths (``WIDTHS``), a 5x5
global depthwise convolution (80 / 16), a 128-d linear bottleneck and a 3-way classifier; the
SE variants put a squeeze-excitation unit on the last block of each residual stage.

Module and attribute names follow the authors' ``src/model_lib/MiniFASNet.py`` so their state
dicts (keys prefixed ``module.``, stripped by :func:`load_minifasnet`) load with ``strict=True``.
"""
from __future__ import annotations

import re
from pathlib import Path

import torch
from torch import nn

#: Channel widths after pruning, one list per published variant (the authors' ``keep_dict``):
#: V1 is their "1.8M" setting, V2 "1.8M_". Indices follow the blocks in order: stem (0, 1),
#: the stride-2 block into stage 3 (2-4), stage 3 (5-16), into stage 4 (17-19), stage 4
#: (20-37), into stage 5 (38-40), stage 5 (41-46), the head (47, 48).
WIDTHS = {
    "v1": [32, 32, 103, 103, 64, 13, 13, 64, 26, 26, 64, 13, 13, 64, 52, 52, 64, 231, 231, 128,
           154, 154, 128, 52, 52, 128, 26, 26, 128, 52, 52, 128, 26, 26, 128, 26, 26, 128, 308, 308,
           128, 26, 26, 128, 26, 26, 128, 512, 512],
    "v2": [32, 32, 103, 103, 64, 13, 13, 64, 13, 13, 64, 13, 13, 64, 13, 13, 64, 231, 231, 128,
           231, 231, 128, 52, 52, 128, 26, 26, 128, 77, 77, 128, 26, 26, 128, 26, 26, 128, 308, 308,
           128, 26, 26, 128, 26, 26, 128, 512, 512],
}
#: Architecture name -> (widths, squeeze-excitation).
VARIANTS = {"MiniFASNetV1": ("v1", False), "MiniFASNetV2": ("v2", False),
            "MiniFASNetV1SE": ("v1", True), "MiniFASNetV2SE": ("v2", True)}
#: The class the models call a live face; 0 and 2 are the two attack classes.
REAL_CLASS = 1
NUM_CLASSES = 3


class ConvBN(nn.Module):
    """Conv (no bias) -> BN, with a PReLU unless ``linear``."""

    def __init__(self, in_c: int, out_c: int, kernel=1, stride=1, padding=0, groups=1, linear=False):
        super().__init__()
        self.conv = nn.Conv2d(in_c, out_c, kernel, stride, padding, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(out_c)
        self.prelu = None if linear else nn.PReLU(out_c)

    def forward(self, x):
        x = self.bn(self.conv(x))
        return x if self.prelu is None else self.prelu(x)


class SqueezeExcite(nn.Module):
    """Channel gating from the global mean: 1x1 conv-BN-ReLU down by ``reduction``, 1x1 conv-BN up,
    sigmoid, times the input."""

    def __init__(self, channels: int, reduction: int = 4):
        super().__init__()
        self.fc1 = nn.Conv2d(channels, channels // reduction, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels // reduction)
        self.fc2 = nn.Conv2d(channels // reduction, channels, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x):
        gate = torch.relu(self.bn1(self.fc1(nn.functional.adaptive_avg_pool2d(x, 1))))
        return x * torch.sigmoid(self.bn2(self.fc2(gate)))


class SeparableBlock(nn.Module):
    """1x1 expand (PReLU) -> 3x3 depthwise (PReLU) -> 1x1 linear projection, with the input
    added back in residual stages (after the optional squeeze-excitation)."""

    def __init__(self, expand: tuple[int, int], depthwise: tuple[int, int], project: tuple[int, int],
                 stride: int, residual: bool, se: bool = False):
        super().__init__()
        self.conv = ConvBN(expand[0], expand[1])
        self.conv_dw = ConvBN(depthwise[0], depthwise[1], 3, stride, 1, groups=depthwise[0])
        self.project = ConvBN(project[0], project[1], linear=True)
        self.residual = residual
        self.se_module = SqueezeExcite(project[1]) if se else None

    def forward(self, x):
        y = self.project(self.conv_dw(self.conv(x)))
        if not self.residual:
            return y
        if self.se_module is not None:
            y = self.se_module(y)
        return x + y


class Stage(nn.Module):
    """Residual separable blocks at one resolution (the state dict names them ``model.<i>``)."""

    def __init__(self, w: list[int], first: int, blocks: int, se: bool):
        super().__init__()
        layers = []
        for i in range(blocks):
            a = first + 3 * i  # block i reads w[a] channels and widens to w[a + 1], w[a + 2]
            layers.append(SeparableBlock((w[a], w[a + 1]), (w[a + 1], w[a + 2]), (w[a + 2], w[a + 3]), 1, True,
                                         se=se and i == blocks - 1))
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        return self.model(x)


class MiniFASNet(nn.Module):
    """One MiniFASNet variant at ``input_size`` (80 for the published models). Returns the three
    class logits; :func:`real_probability` turns them into the probability of a live face."""

    def __init__(self, variant: str = "MiniFASNetV2", input_size: int = 80, embedding_size: int = 128):
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"unknown MiniFASNet variant {variant!r}; one of {sorted(VARIANTS)}")
        widths, se = VARIANTS[variant]
        w = WIDTHS[widths]
        self.variant, self.input_size = variant, input_size
        head_kernel = (input_size + 15) // 16  # the feature map after four stride-2 steps
        self.conv1 = ConvBN(3, w[0], 3, 2, 1)
        self.conv2_dw = ConvBN(w[0], w[1], 3, 1, 1, groups=w[1])
        self.conv_23 = SeparableBlock((w[1], w[2]), (w[2], w[3]), (w[3], w[4]), 2, False)
        self.conv_3 = Stage(w, 4, 4, se)
        self.conv_34 = SeparableBlock((w[16], w[17]), (w[17], w[18]), (w[18], w[19]), 2, False)
        self.conv_4 = Stage(w, 19, 6, se)
        self.conv_45 = SeparableBlock((w[37], w[38]), (w[38], w[39]), (w[39], w[40]), 2, False)
        self.conv_5 = Stage(w, 40, 2, se)
        self.conv_6_sep = ConvBN(w[46], w[47])
        self.conv_6_dw = ConvBN(w[47], w[48], head_kernel, groups=w[48], linear=True)
        self.linear = nn.Linear(w[48], embedding_size, bias=False)
        self.bn = nn.BatchNorm1d(embedding_size)
        self.prob = nn.Linear(embedding_size, NUM_CLASSES, bias=False)

    def forward(self, x):
        for stage in (self.conv1, self.conv2_dw, self.conv_23, self.conv_3, self.conv_34, self.conv_4,
                      self.conv_45, self.conv_5, self.conv_6_sep, self.conv_6_dw):
            x = stage(x)
        return self.prob(self.bn(self.linear(x.flatten(1))))


def real_probability(logits: torch.Tensor) -> torch.Tensor:
    """Softmax probability of the real class, per row of (N, 3) logits."""
    return torch.softmax(logits, dim=1)[:, REAL_CLASS]


_NAME = re.compile(r"^(?:org|(\d+(?:\.\d+)?|\d+_\d+_\d+))_(\d+)x(\d+)_(MiniFASNet\w+)\.pth$")


def parse_model_name(name: str) -> tuple[float | None, int, int, str]:
    """(crop scale, height, width, variant) from the authors' file names, e.g.
    ``2.7_80x80_MiniFASNetV2.pth`` (2.7) or ``4_0_0_80x80_MiniFASNetV1SE.pth`` (4.0: the first
    field only; the others were the authors' shift settings). ``org_...``: the whole image, None."""
    m = _NAME.match(Path(name).name)
    if not m:
        raise ValueError(f"{name!r} is not named like minivision's MiniFASNet files "
                         "(<scale>_<h>x<w>_MiniFASNet<variant>.pth)")
    scale = None if m.group(1) is None else float(m.group(1).split("_")[0])
    return scale, int(m.group(2)), int(m.group(3)), m.group(4)


def load_minifasnet(path, variant: str | None = None) -> MiniFASNet:
    """A MiniFASNet with the weights of one of minivision's state dicts, loaded strictly (every
    key and shape must match; the ``module.`` prefix of their DataParallel training is dropped).
    The variant and input size come from the file name unless ``variant`` is given."""
    path = Path(path)
    _, height, width, named = parse_model_name(path.name) if variant is None else (None, 80, 80, variant)
    if height != width:
        raise ValueError(f"{path.name}: only square inputs are supported, not {height}x{width}")
    state = torch.load(path, map_location="cpu", weights_only=True)
    state = {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}
    model = MiniFASNet(variant or named, input_size=height)
    model.load_state_dict(state, strict=True)
    return model.eval()


__all__ = ["MiniFASNet", "REAL_CLASS", "VARIANTS", "WIDTHS", "load_minifasnet", "parse_model_name",
           "real_probability"]
