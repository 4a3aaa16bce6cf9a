"""RetinaFace in PyTorch, state-dict compatible with biubug6/Pytorch_Retinaface checkpoints
(``mobilenet0.25_Final.pth``, ``Resnet50_Final.pth``), for export to ncnn through pnnx.

Layout: a backbone (MobileNetV1 x0.25, or ResNet-50 with torchvision's parameter names) whose
stride-8/16/32 features go through an FPN, one SSH context module per level, and per level
1x1 heads for 2 anchors: box deltas, face/background logits and 5 landmarks. ``forward``
returns (loc (N, P, 4), softmaxed conf (N, P, 2), landmarks (N, P, 10)) over P priors, which
the C++ core decodes (kind "retinaface-torch"). Inputs: BGR minus (104, 117, 123).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

#: (backbone channels at strides 8/16/32, FPN/SSH width) per published configuration.
CONFIGS = {"mobilenet0.25": ((64, 128, 256), 64), "resnet50": ((512, 1024, 2048), 256)}
ANCHORS_PER_CELL = 2


def _conv_bn(inp, out, stride=1, leaky=0.0, kernel=3, relu=True):
    layers = [nn.Conv2d(inp, out, kernel, stride, kernel // 2, bias=False), nn.BatchNorm2d(out)]
    if relu:
        layers.append(nn.LeakyReLU(negative_slope=leaky, inplace=True))
    return nn.Sequential(*layers)


def _conv_dw(inp, out, stride, leaky=0.1):
    return nn.Sequential(nn.Conv2d(inp, inp, 3, stride, 1, groups=inp, bias=False), nn.BatchNorm2d(inp),
                         nn.LeakyReLU(negative_slope=leaky, inplace=True),
                         nn.Conv2d(inp, out, 1, 1, 0, bias=False), nn.BatchNorm2d(out),
                         nn.LeakyReLU(negative_slope=leaky, inplace=True))


class MobileNetV1(nn.Module):
    """MobileNetV1 x0.25 trunk; stages end at strides 8, 16 and 32."""

    def __init__(self):
        super().__init__()
        self.stage1 = nn.Sequential(_conv_bn(3, 8, 2, leaky=0.1), _conv_dw(8, 16, 1), _conv_dw(16, 32, 2),
                                    _conv_dw(32, 32, 1), _conv_dw(32, 64, 2), _conv_dw(64, 64, 1))
        self.stage2 = nn.Sequential(_conv_dw(64, 128, 2), *[_conv_dw(128, 128, 1) for _ in range(5)])
        self.stage3 = nn.Sequential(_conv_dw(128, 256, 2), _conv_dw(256, 256, 1))

    def forward(self, x):
        c3 = self.stage1(x)
        c4 = self.stage2(c3)
        return [c3, c4, self.stage3(c4)]


class Bottleneck(nn.Module):
    """torchvision's ResNet-50 bottleneck (stride on the 3x3), same parameter names."""

    def __init__(self, inp, width, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(inp, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, width * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(width * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or inp != width * 4:
            self.downsample = nn.Sequential(nn.Conv2d(inp, width * 4, 1, stride, bias=False), nn.BatchNorm2d(width * 4))

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + (x if self.downsample is None else self.downsample(x)))


class ResNet50(nn.Module):
    """ResNet-50 up to layer4 (no pooling or classifier), torchvision's names."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        inp = 64
        for index, (width, blocks, stride) in enumerate(((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)), 1):
            layer = [Bottleneck(inp, width, stride)] + [Bottleneck(width * 4, width) for _ in range(blocks - 1)]
            setattr(self, f"layer{index}", nn.Sequential(*layer))
            inp = width * 4

    def forward(self, x):
        x = self.layer1(self.maxpool(self.relu(self.bn1(self.conv1(x)))))
        c3 = self.layer2(x)
        c4 = self.layer3(c3)
        return [c3, c4, self.layer4(c4)]


class FPN(nn.Module):
    def __init__(self, in_channels, out_channels):
        super().__init__()
        leaky = 0.1 if out_channels <= 64 else 0.0
        self.output1 = _conv_bn(in_channels[0], out_channels, leaky=leaky, kernel=1)
        self.output2 = _conv_bn(in_channels[1], out_channels, leaky=leaky, kernel=1)
        self.output3 = _conv_bn(in_channels[2], out_channels, leaky=leaky, kernel=1)
        self.merge1 = _conv_bn(out_channels, out_channels, leaky=leaky)
        self.merge2 = _conv_bn(out_channels, out_channels, leaky=leaky)

    def forward(self, features):
        out1, out2, out3 = self.output1(features[0]), self.output2(features[1]), self.output3(features[2])
        out2 = self.merge2(out2 + F.interpolate(out3, size=out2.shape[2:], mode="nearest"))
        out1 = self.merge1(out1 + F.interpolate(out2, size=out1.shape[2:], mode="nearest"))
        return [out1, out2, out3]


class SSH(nn.Module):
    """Context module: 3x3, 5x5 and 7x7 receptive fields (as stacked 3x3s), concatenated."""

    def __init__(self, channels):
        super().__init__()
        leaky = 0.1 if channels <= 64 else 0.0
        self.conv3X3 = _conv_bn(channels, channels // 2, relu=False)
        self.conv5X5_1 = _conv_bn(channels, channels // 4, leaky=leaky)
        self.conv5X5_2 = _conv_bn(channels // 4, channels // 4, relu=False)
        self.conv7X7_2 = _conv_bn(channels // 4, channels // 4, leaky=leaky)
        self.conv7x7_3 = _conv_bn(channels // 4, channels // 4, relu=False)

    def forward(self, x):
        branch = self.conv5X5_1(x)
        return F.relu(torch.cat([self.conv3X3(x), self.conv5X5_2(branch), self.conv7x7_3(self.conv7X7_2(branch))], 1))


class _Head(nn.Module):
    def __init__(self, channels, values):
        super().__init__()
        self.values = values
        self.conv1x1 = nn.Conv2d(channels, ANCHORS_PER_CELL * values, 1)

    def forward(self, x):
        out = self.conv1x1(x).permute(0, 2, 3, 1).contiguous()
        return out.view(out.shape[0], -1, self.values)


class RetinaFace(nn.Module):
    def __init__(self, backbone: str = "mobilenet0.25"):
        super().__init__()
        if backbone not in CONFIGS:
            raise ValueError(f"unknown RetinaFace backbone {backbone!r}; choose one of {sorted(CONFIGS)}")
        in_channels, width = CONFIGS[backbone]
        self.body = MobileNetV1() if backbone == "mobilenet0.25" else ResNet50()
        self.fpn = FPN(in_channels, width)
        self.ssh1, self.ssh2, self.ssh3 = SSH(width), SSH(width), SSH(width)
        self.ClassHead = nn.ModuleList(_Head(width, 2) for _ in range(3))
        self.BboxHead = nn.ModuleList(_Head(width, 4) for _ in range(3))
        self.LandmarkHead = nn.ModuleList(_Head(width, 10) for _ in range(3))

    def forward(self, x):
        fpn = self.fpn(self.body(x))
        features = [self.ssh1(fpn[0]), self.ssh2(fpn[1]), self.ssh3(fpn[2])]
        loc = torch.cat([head(f) for head, f in zip(self.BboxHead, features)], 1)
        conf = torch.cat([head(f) for head, f in zip(self.ClassHead, features)], 1)
        landmarks = torch.cat([head(f) for head, f in zip(self.LandmarkHead, features)], 1)
        return loc, F.softmax(conf, dim=-1), landmarks


def load_biubug6(model: RetinaFace, state_dict: dict) -> RetinaFace:
    """Load a biubug6 checkpoint (``module.`` prefixes from DataParallel stripped), strictly."""
    cleaned = {k[len("module."):] if k.startswith("module.") else k: v for k, v in state_dict.items()}
    model.load_state_dict(cleaned, strict=True)
    return model
