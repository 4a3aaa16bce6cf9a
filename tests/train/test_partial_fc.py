"""Partial FC in one process: full-softmax equivalence and negative sampling.
(The multi-rank sharding is tested under torchrun in test_distributed.py.)"""
import pytest
import torch
import torch.nn.functional as F

from fastface.train.losses import arcface
from fastface.train.partial_fc import PartialFC


def direct_loss(embeddings, weight, labels, columns=None):
    """Margin softmax cross-entropy written out over the given centre columns."""
    columns = torch.arange(weight.shape[0]) if columns is None else columns
    cosine = F.linear(F.normalize(embeddings), F.normalize(weight[columns])).clamp(-1, 1)
    targets = torch.searchsorted(columns, labels)
    return F.cross_entropy(arcface()(cosine, targets), targets)


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(0)
    return torch.randn(16, 32, generator=g), torch.randint(0, 50, (16,), generator=g)


def test_sample_rate_one_is_full_softmax(batch):
    embeddings, labels = batch
    head = PartialFC(arcface(), 32, 50, sample_rate=1.0)
    e1 = embeddings.clone().requires_grad_()
    loss = head(e1, labels)
    loss.backward()

    w = head.weight.detach().clone().requires_grad_()
    e2 = embeddings.clone().requires_grad_()
    expected = direct_loss(e2, w, labels)
    expected.backward()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert torch.allclose(head.weight.grad, w.grad, atol=1e-6)
    assert torch.allclose(e1.grad, e2.grad, atol=1e-6)


def test_sampling_keeps_positives_and_scores_the_sampled_columns(batch):
    embeddings, labels = batch
    head = PartialFC(arcface(), 32, 50, sample_rate=0.5)
    torch.manual_seed(1)
    loss = head(embeddings, labels)
    loss.backward()
    used = head.weight.grad.abs().sum(1).nonzero().squeeze(1)  # exactly the sampled centres
    assert len(used) == 25
    assert set(labels.tolist()) <= set(used.tolist())
    expected = direct_loss(embeddings, head.weight.detach(), labels, used)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


def test_more_positives_than_samples_keeps_all_positives():
    labels = torch.arange(20)
    head = PartialFC(arcface(), 8, 40, sample_rate=0.1)  # would sample 4 of 40
    head(torch.randn(20, 8), labels).backward()
    assert head.weight.grad.abs().sum(1).nonzero().squeeze(1).tolist() == list(range(20))


def test_bad_labels_and_rates():
    head = PartialFC(arcface(), 8, 10)
    with pytest.raises(ValueError, match=r"labels must be in \[0, 10\)"):
        head(torch.randn(2, 8), torch.tensor([3, 10]))
    with pytest.raises(ValueError, match="sample_rate"):
        PartialFC(arcface(), 8, 10, sample_rate=0.0)
