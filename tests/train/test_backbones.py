"""Backbones: arcface_torch checkpoint compatibility, published sizes, real pretrained weights."""
import struct

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from fastface.train.backbones import BACKBONES, complexity, get_backbone
from shared_data import ALIGNED_LFW, MOBILEFACENET, require


# --- arcface_torch's state-dict layout, written out from its backbones/*.py -----------------
# An independent statement of the parameter/buffer names and shapes its checkpoints contain,
# so a renamed attribute or a wrong width here fails the strict load below.

def _bn(prefix, c):
    return {f"{prefix}.weight": (c,), f"{prefix}.bias": (c,), f"{prefix}.running_mean": (c,),
            f"{prefix}.running_var": (c,), f"{prefix}.num_batches_tracked": ()}


def arcface_torch_iresnet(layers, num_features=512):
    spec = {"conv1.weight": (64, 3, 3, 3), **_bn("bn1", 64), "prelu.weight": (64,)}
    inplanes = 64
    for i, (planes, n) in enumerate(zip((64, 128, 256, 512), layers), start=1):
        for j in range(n):
            p, cin = f"layer{i}.{j}", inplanes if j == 0 else planes
            spec.update({**_bn(f"{p}.bn1", cin), f"{p}.conv1.weight": (planes, cin, 3, 3),
                         **_bn(f"{p}.bn2", planes), f"{p}.prelu.weight": (planes,),
                         f"{p}.conv2.weight": (planes, planes, 3, 3), **_bn(f"{p}.bn3", planes)})
            if j == 0:  # every stage starts with a stride-2 unit, hence a projection shortcut
                spec.update({f"{p}.downsample.0.weight": (planes, cin, 1, 1),
                             **_bn(f"{p}.downsample.1", planes)})
        inplanes = planes
    spec.update({**_bn("bn2", 512), "fc.weight": (num_features, 512 * 7 * 7),
                 "fc.bias": (num_features,), **_bn("features", num_features)})
    return spec


def _conv_block(prefix, cin, cout, k, groups=1, act=True):
    spec = {f"{prefix}.layers.0.weight": (cout, cin // groups, k, k), **_bn(f"{prefix}.layers.1", cout)}
    if act:
        spec[f"{prefix}.layers.2.weight"] = (cout,)
    return spec


def _depthwise(prefix, cin, cout, groups):
    return {**_conv_block(f"{prefix}.layers.0", cin, groups, 1),
            **_conv_block(f"{prefix}.layers.1", groups, groups, 3, groups),
            **_conv_block(f"{prefix}.layers.2", groups, cout, 1, act=False)}


def _residual(prefix, n, c, groups):
    return {k: v for b in range(n) for k, v in _depthwise(f"{prefix}.layers.{b}", c, c, groups).items()}


def arcface_torch_mbf(num_features=512):
    """get_mbf(): MobileFaceNet(blocks=(1, 4, 6, 2), scale=2)."""
    return {**_conv_block("layers.0", 3, 128, 3), **_conv_block("layers.1", 128, 128, 3, groups=64),
            **_depthwise("layers.2", 128, 128, 128), **_residual("layers.3", 4, 128, 128),
            **_depthwise("layers.4", 128, 256, 256), **_residual("layers.5", 6, 256, 256),
            **_depthwise("layers.6", 256, 256, 512), **_residual("layers.7", 2, 256, 256),
            **_conv_block("conv_sep", 256, 512, 1),
            **_conv_block("features.layers.0", 512, 512, 7, groups=512, act=False),
            "features.layers.2.weight": (num_features, 512), **_bn("features.layers.3", num_features)}


ARCFACE_TORCH = {
    "mbf": lambda: arcface_torch_mbf(),
    "iresnet18": lambda: arcface_torch_iresnet((2, 2, 2, 2)),
    "iresnet34": lambda: arcface_torch_iresnet((3, 4, 6, 3)),
    "iresnet50": lambda: arcface_torch_iresnet((3, 4, 14, 3)),
    "iresnet100": lambda: arcface_torch_iresnet((3, 13, 30, 3)),
    "iresnet200": lambda: arcface_torch_iresnet((6, 26, 60, 6)),
}


@pytest.mark.parametrize("name", sorted(ARCFACE_TORCH))
def test_arcface_torch_checkpoint_loads_strict(name):
    g = torch.Generator().manual_seed(0)
    checkpoint = {k: (torch.randint(0, 100, shape, generator=g) if k.endswith("num_batches_tracked")
                      else torch.randn(shape, generator=g))
                  for k, shape in ARCFACE_TORCH[name]().items()}
    model = get_backbone(name)
    model.load_state_dict(checkpoint, strict=True)  # raises on any missing/extra/misshapen key
    for key, value in model.state_dict().items():
        assert torch.equal(value, checkpoint[key]), key


@pytest.mark.parametrize("name,published,tolerance", [
    ("iresnet50", 43.6e6, 0.01), ("iresnet100", 65.2e6, 0.01), ("mbf", 2.06e6, 0.01)])
def test_parameter_counts_match_published(name, published, tolerance):
    params = sum(p.numel() for p in get_backbone(name).parameters())
    assert abs(params - published) / published < tolerance


def test_iresnet100_macs_match_published():
    assert abs(complexity(get_backbone("iresnet100")).macs - 12.1e9) / 12.1e9 < 0.01


def test_mobilefacenet_matches_the_paper():
    model = get_backbone("mobilefacenet", num_features=128)
    params, macs = complexity(model)
    assert abs(macs - 221e6) / 221e6 < 0.01
    # The paper counts the deployed network: BatchNorm folded into the convolutions leaves one
    # bias per channel instead of a scale and a shift (1.003M trainable -> 0.993M deployed).
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    bn_channels = sum(m.num_features for m in norms)
    assert abs(params - bn_channels - 0.99e6) / 0.99e6 < 0.01
    wide = get_backbone("mobilefacenet", num_features=512)
    assert wide(torch.zeros(2, 3, 112, 112)).shape == (2, 512)


def test_se_iresnet100_adds_a_gate_to_every_unit():
    plain, se = get_backbone("iresnet100"), get_backbone("se_iresnet100")
    units = [m for m in se.modules() if type(m).__name__ == "IBasicBlock"]
    assert len(units) == 3 + 13 + 30 + 3 and all(u.se is not None for u in units)
    # Each gate: C -> C/16 conv (+bias), PReLU(C/16), C/16 -> C conv (+bias).
    extra = sum(2 * c * (c // 16) + c // 16 + c + c // 16
                for c in (u.bn3.num_features for u in units))
    assert sum(p.numel() for p in se.parameters()) - sum(p.numel() for p in plain.parameters()) == extra


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_every_backbone_embeds_small_inputs(name):
    model = get_backbone(name, num_features=64, input_size=32)
    out = model(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 64) and torch.isfinite(out).all()


def test_complexity_counts_by_hand():
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8),
                          nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=4), nn.Flatten(),
                          nn.Linear(8 * 4 * 4, 10))
    params, macs = complexity(model, input_size=8)
    assert macs == 8 * 8 * 8 * 3 * 9 + 8 * 4 * 4 * 2 * 9 + 128 * 10
    assert params == (8 * 27 + 8) + 16 + (8 * 2 * 9 + 8) + (1280 + 10)
    assert model.training  # restored after the eval-mode probe


def test_bad_backbone_arguments():
    with pytest.raises(ValueError, match="unknown backbone 'resnet9000'.*mobilefacenet"):
        get_backbone("resnet9000")
    with pytest.raises(ValueError, match="multiple of 16"):
        get_backbone("mobilefacenet", input_size=100)


# --- the real insightface MobileFaceNet (ncnn weights in the shared data) -------------------

def _ncnn_weights(param_path, bin_path):
    """(layer type, [float32 arrays]) for each weighted layer of an fp32 ncnn model, in order."""
    blob = open(bin_path, "rb").read()
    pos, layers = 0, []

    def take(count, tagged):
        nonlocal pos
        if tagged:
            (tag,) = struct.unpack_from("<I", blob, pos)
            assert tag == 0, f"only plain float32 ncnn weights are handled (tag {tag:#x})"
            pos += 4
        values = np.frombuffer(blob, np.float32, count, pos)
        pos += 4 * count
        return values

    for line in open(param_path).read().splitlines()[2:]:
        kind, *rest = line.split()
        p = dict(item.split("=") for item in rest if "=" in item)
        if kind in ("Convolution", "ConvolutionDepthWise", "InnerProduct"):
            size, has_bias = (p["2"], p.get("1")) if kind == "InnerProduct" else (p["6"], p.get("5"))
            arrays = [take(int(size), True)] + ([take(int(p["0"]), False)] if has_bias == "1" else [])
        elif kind == "BatchNorm":
            arrays = [take(int(p["0"]), False) for _ in range(4)]  # slope, mean, var, bias
        elif kind == "PReLU":
            arrays = [take(int(p["0"]), False)]
        else:
            continue
        layers.append((kind, arrays))
    assert pos == len(blob), "weights left over: layer layout differs"
    return layers


def _insightface_mobilefacenet():
    """Our ``mobilefacenet`` holding insightface's trained weights, loaded layer for layer."""
    layers = _ncnn_weights(MOBILEFACENET / "mobilefacenet.param", MOBILEFACENET / "mobilefacenet.bin")
    model = get_backbone("mobilefacenet", num_features=128).eval()
    modules = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear, nn.PReLU,
                                                            nn.modules.batchnorm._BatchNorm))]
    assert len(modules) == len(layers)
    fc_bias = None
    with torch.no_grad():
        for module, (kind, arrays) in zip(modules, layers):
            tensors = [torch.from_numpy(a.copy()) for a in arrays]
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                assert kind in ("Convolution", "ConvolutionDepthWise", "InnerProduct")
                module.weight.copy_(tensors[0].view_as(module.weight))
                fc_bias = tensors[1] if len(tensors) > 1 else None
            elif isinstance(module, nn.PReLU):
                assert kind == "PReLU"
                module.weight.copy_(tensors[0])
            else:
                assert kind == "BatchNorm"
                slope, mean, var, bias = tensors
                if fc_bias is not None:  # a bias before BN is a shift of BN's mean
                    mean, fc_bias = mean - fc_bias, None
                module.weight.copy_(slope), module.bias.copy_(bias), module.running_mean.copy_(mean)
                module.running_var.copy_((var - module.eps).clamp_min(0))  # ncnn folds eps into var
    return model


LFW = ["Aaron_Peirsol_0003", "Aaron_Peirsol_0004", "Aaron_Tippin_0001"]  # same, same, other


def _embed_lfw(model):
    rgb = [cv2.imread(str(ALIGNED_LFW / f"{n}.jpg"))[:, :, ::-1] for n in LFW]
    x = torch.from_numpy(np.stack(rgb).transpose(0, 3, 1, 2).copy()).float()
    with torch.no_grad():
        return torch.nn.functional.normalize(model((x - 127.5) / 128))  # this model's convention


@require(MOBILEFACENET)
@require(ALIGNED_LFW)
def test_mobilefacenet_recognises_faces_with_insightface_weights():
    e = _embed_lfw(_insightface_mobilefacenet())
    same, different = float(e[0] @ e[1]), max(float(e[0] @ e[2]), float(e[1] @ e[2]))
    assert same > different + 0.2, (same, different)


@require(MOBILEFACENET)
@require(ALIGNED_LFW)
def test_mobilefacenet_reproduces_insightface_model_outputs():
    """Same weights, same images: our graph gives the embeddings insightface's graph gives."""
    ncnn = pytest.importorskip("ncnn", reason="comparing against ncnn needs the ncnn package")
    net = ncnn.Net()
    net.load_param(str(MOBILEFACENET / "mobilefacenet.param"))
    net.load_model(str(MOBILEFACENET / "mobilefacenet.bin"))
    reference = []
    for name in LFW:
        bgr = cv2.imread(str(ALIGNED_LFW / f"{name}.jpg"))
        extractor = net.create_extractor()
        extractor.input("data", ncnn.Mat.from_pixels(bgr, ncnn.Mat.PixelType.PIXEL_BGR2RGB, 112, 112))
        reference.append(np.array(extractor.extract("fc1")[1]).ravel())
    reference = torch.nn.functional.normalize(torch.from_numpy(np.stack(reference)))
    ours = _embed_lfw(_insightface_mobilefacenet())
    assert (ours * reference).sum(1).min() > 0.999
