"""fastface's PyTorch RetinaFace: biubug6 checkpoint layout, pnnx export, decoding in the core."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

import fastface  # noqa: E402
from fastface.train.retinaface import RetinaFace, load_biubug6  # noqa: E402

# Names and shapes from biubug6/Pytorch_Retinaface's published checkpoints.
KNOWN = {
    "mobilenet0.25": (426_608, {"body.stage1.0.0.weight": (8, 3, 3, 3), "body.stage3.1.3.weight": (256, 256, 1, 1),
                                "fpn.output1.0.weight": (64, 64, 1, 1), "fpn.merge2.1.running_var": (64,),
                                "ssh1.conv7x7_3.0.weight": (16, 16, 3, 3), "ClassHead.0.conv1x1.weight": (4, 64, 1, 1),
                                "BboxHead.1.conv1x1.bias": (8,), "LandmarkHead.2.conv1x1.weight": (20, 64, 1, 1)}),
    "resnet50": (27_293_600, {"body.conv1.weight": (64, 3, 7, 7), "body.layer1.0.downsample.0.weight": (256, 64, 1, 1),
                              "body.layer4.2.bn3.running_var": (2048,), "fpn.output3.0.weight": (256, 2048, 1, 1),
                              "ssh3.conv3X3.0.weight": (128, 256, 3, 3), "LandmarkHead.0.conv1x1.weight": (20, 256, 1, 1)}),
}


@pytest.mark.parametrize("backbone", sorted(KNOWN))
def test_checkpoint_layout(backbone):
    model = RetinaFace(backbone)
    params, shapes = KNOWN[backbone]
    assert sum(p.numel() for p in model.parameters()) == params
    state = model.state_dict()
    for name, shape in shapes.items():
        assert tuple(state[name].shape) == shape, name
    # A DataParallel checkpoint ("module." prefixes) loads strictly into a fresh model.
    fresh = load_biubug6(RetinaFace(backbone), {f"module.{k}": v for k, v in state.items()})
    assert all(torch.equal(v, fresh.state_dict()[k]) for k, v in state.items())
    with pytest.raises(RuntimeError, match="Missing key"):
        load_biubug6(RetinaFace(backbone), {k: v for k, v in state.items() if not k.startswith("fpn.")})
    with pytest.raises(ValueError, match="unknown RetinaFace backbone"):
        RetinaFace("vgg16")


def python_decode(loc, conf, landmarks, threshold, size=640, nms=0.4):
    """The biubug6 decoding, written out in numpy."""
    priors = []
    for step, sizes in ((8, (16, 32)), (16, (64, 128)), (32, (256, 512))):
        cells = -(-size // step)
        for i in range(cells):
            for j in range(cells):
                priors += [((j + 0.5) * step, (i + 0.5) * step, s) for s in sizes]
    priors = np.array(priors)
    keep = conf[:, 1] >= threshold
    p, d, l = priors[keep], loc[keep], landmarks[keep]
    centre = p[:, :2] + d[:, :2] * 0.1 * p[:, 2:]
    wh = p[:, 2:] * np.exp(d[:, 2:] * 0.2)
    boxes = np.c_[centre - wh / 2, centre + wh / 2]
    marks = p[:, None, :2] + l.reshape(-1, 5, 2) * 0.1 * p[:, None, 2:]
    order, kept = np.argsort(-conf[keep, 1], kind="stable"), []
    area = lambda b: (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    for i in order:
        inter = np.prod(np.clip(np.minimum(boxes[i, 2:], boxes[kept, 2:]) - np.maximum(boxes[i, :2], boxes[kept, :2]),
                                0, None), axis=-1)
        if not kept or np.all(inter / (area(boxes[i]) + area(boxes[kept]) - inter) <= nms):
            kept.append(i)
    return np.clip(boxes[kept], 0, size), marks[kept], conf[keep, 1][kept]


def test_export_and_decode_in_the_core(tmp_path):
    pnnx = pytest.importorskip("pnnx")
    torch.manual_seed(0)
    model = RetinaFace("mobilenet0.25").eval()
    for m in model.modules():  # non-trivial batch-norm statistics, so outputs vary over the image
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    pnnx.export(model, str(tmp_path / "retina.pt"), torch.zeros(1, 3, 640, 640), fp16=False)
    image = np.random.default_rng(0).integers(0, 256, (640, 640, 3), dtype=np.uint8)
    with torch.no_grad():
        x = torch.from_numpy(image.transpose(2, 0, 1).astype(np.float32))[None] - torch.tensor([104., 117., 123.])[:, None, None]
        loc, conf, landmarks = (t[0].numpy() for t in model(x))
    threshold = float(np.sort(conf[:, 1])[-60])  # a few dozen candidates, like a real photo
    boxes, marks, scores = python_decode(loc, conf, landmarks, threshold)
    detector = fastface.Detector(tmp_path / "retina.ncnn.param", kind="retinaface-torch",
                                 score_threshold=threshold - 1e-4)
    faces = detector.detect(image)
    top = min(5, len(boxes))
    np.testing.assert_allclose([f.bbox for f in faces[:top]], boxes[:top], atol=1.0)
    np.testing.assert_allclose([f.landmarks for f in faces[:top]], marks[:top], atol=1.0)
    np.testing.assert_allclose([f.score for f in faces[:top]], scores[:top], atol=1e-4)
