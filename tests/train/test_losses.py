"""Margin heads against a direct, scalar implementation of their formulas."""
import math

import pytest
import torch

from fastface.train.losses import CombinedMargin, arcface, cosface, get_margin


def reference(cosine, labels, s, m1, m2, m3, easy=False):
    """Element by element, in float64, straight from the papers (ArcFace's hard-case rule)."""
    out = cosine.double().clone()
    for i, y in enumerate(labels.tolist()):
        if y < 0:
            continue
        c = float(cosine[i, y])
        theta = math.acos(c)
        if easy:
            out[i, y] = math.cos(m1 * theta + m2) - m3 if c > 0 else c
        elif m1 * theta + m2 <= math.pi:
            out[i, y] = math.cos(m1 * theta + m2) - m3
        else:
            out[i, y] = c - m3 - m2 * math.sin(m2)
    return out * s


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(0)
    cosine = torch.rand(64, 10, generator=g) * 2 - 1
    cosine[:4, :] = torch.tensor([-0.99, -0.5, 0.3, 0.95]).view(4, 1)  # both sides of thresholds
    labels = torch.randint(0, 10, (64,), generator=g)
    labels[5] = -1  # target on another shard: row only scaled
    return cosine, labels


def test_arcface_matches_formula(batch):
    cosine, labels = batch
    got = arcface(s=64, m=0.5)(cosine, labels)
    assert torch.allclose(got.double(), reference(cosine, labels, 64, 1, 0.5, 0), atol=1e-4)
    assert got[0, labels[0]] == pytest.approx(64 * (-0.99 - 0.5 * math.sin(0.5)), abs=1e-4)


def test_arcface_easy_margin_matches_formula(batch):
    cosine, labels = batch
    got = arcface(s=64, m=0.5, easy_margin=True)(cosine, labels)
    assert torch.allclose(got.double(), reference(cosine, labels, 64, 1, 0.5, 0, easy=True), atol=1e-4)


def test_cosface_and_combined_match_formula(batch):
    cosine, labels = batch
    assert torch.allclose(cosface(s=30, m=0.35)(cosine, labels).double(),
                          reference(cosine, labels, 30, 1, 0, 0.35), atol=1e-4)
    assert torch.allclose(CombinedMargin(64, 1.0, 0.3, 0.2)(cosine, labels).double(),
                          reference(cosine, labels, 64, 1.0, 0.3, 0.2), atol=1e-4)
    assert torch.allclose(CombinedMargin(64, 1.35, 0.0, 0.0)(cosine, labels).double(),
                          reference(cosine, labels, 64, 1.35, 0.0, 0.0), atol=1e-4)


def test_margin_only_touches_targets(batch):
    cosine, labels = batch
    got = arcface()(cosine, labels)
    mask = torch.ones_like(cosine, dtype=torch.bool)
    rows = labels >= 0
    mask[rows.nonzero().squeeze(1), labels[rows]] = False
    assert torch.equal(got[mask], cosine[mask] * 64)


def test_gradient_is_finite_at_the_poles():
    cosine = torch.tensor([[1.0, -1.0], [-1.0, 1.0]], requires_grad=True)
    arcface()(cosine, torch.tensor([0, 0])).sum().backward()
    assert torch.isfinite(cosine.grad).all()


def test_get_margin_rejects_bad_input():
    assert get_margin("cosface", 30, (0.35,)).m3 == 0.35
    with pytest.raises(ValueError, match="unknown loss"):
        get_margin("sphereface")
    with pytest.raises(ValueError, match="three values"):
        get_margin("combined")
    with pytest.raises(ValueError, match="takes 1 margin"):
        get_margin("arcface", margins=(0.5, 0.1))
    with pytest.raises(ValueError, match="m2 >= 0"):
        CombinedMargin(64, 1.0, -0.1, 0.0)
