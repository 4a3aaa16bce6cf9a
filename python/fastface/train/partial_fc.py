"""Partial FC (An et al. 2022): a margin-softmax classifier for millions of identities.

The class centres (one row of ``weight`` per identity) are split across ranks, so no rank
holds the full ``num_classes x embedding_size`` matrix. Every step each rank gathers all
ranks' embeddings and labels, scores them against its own centres, and a distributed
softmax combines the shards into the exact cross-entropy of the global batch. With
``sample_rate < 1`` each rank keeps only the centres of identities present in the batch
(positives, always) plus a random subset of the others (negatives), which cuts the cost of
the largest matrix product and its gradient; ``sample_rate = 1`` is plain model-parallel
softmax and equals a single-device full softmax.
"""
from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from .losses import CombinedMargin
from .rng import generator

# Centres are initialised in fixed blocks of rows, each from its own seeded stream, so the
# initial matrix is the same whatever the number of ranks (and no rank builds all of it).
_INIT_BLOCK = 4096


def world() -> tuple[int, int]:
    """(rank, world_size) of the default process group, (0, 1) when not distributed."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class _AllGather(torch.autograd.Function):
    """Concatenate every rank's tensor; backward returns this rank's slice of the summed grads.

    Each rank's loss term only sees its shard of centres, so the gradient of the global loss
    with respect to any embedding is the sum of all ranks' contributions. The result is also
    multiplied by world_size because DDP *averages* backbone gradients over ranks: after that
    average the backbone holds the exact gradient of the global-batch loss.
    """

    @staticmethod
    def forward(ctx, tensor):
        parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, tensor.contiguous())
        ctx.batch = tensor.shape[0]
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad):
        grad = grad.contiguous()
        dist.all_reduce(grad)
        rank, size = dist.get_rank(), dist.get_world_size()
        return grad[rank * ctx.batch:(rank + 1) * ctx.batch] * size


class _ShardedCrossEntropy(torch.autograd.Function):
    """Mean softmax cross-entropy over logits whose columns are split across ranks.

    ``labels`` holds the target's local column, or -1 where another rank owns it; every row has
    its target on exactly one rank. Works unchanged with one rank.
    """

    @staticmethod
    def forward(ctx, logits, labels):
        distributed = dist.is_available() and dist.is_initialized()
        rows = torch.nonzero(labels >= 0).squeeze(1)
        top = logits.max(dim=1).values
        if distributed:
            dist.all_reduce(top, dist.ReduceOp.MAX)
        exp = (logits - top[:, None]).exp()
        total = exp.sum(dim=1)
        target = torch.zeros_like(top)
        target[rows] = logits[rows, labels[rows]]
        if distributed:
            dist.all_reduce(total)
            dist.all_reduce(target)
        loss = (total.log() + top - target).mean()
        ctx.save_for_backward(exp.div_(total[:, None]), rows, labels)
        return loss

    @staticmethod
    def backward(ctx, grad):
        # The saved softmax is turned into the gradient in place: at millions of classes it is
        # the largest tensor of the step (so the graph cannot be backpropagated twice).
        prob, rows, labels = ctx.saved_tensors
        prob[rows, labels[rows]] -= 1.0
        return prob * (grad / prob.shape[0]), None


class PartialFC(nn.Module):
    """Sharded, optionally sampled class centres with a margin softmax loss.

    ``forward(embeddings, labels)`` takes this rank's batch (same size on every rank) and
    returns the mean loss over the global batch, identical on all ranks. Do not wrap this
    module in DDP: its parameters differ per rank by design.
    """

    def __init__(self, margin: CombinedMargin, embedding_size: int, num_classes: int,
                 sample_rate: float = 1.0, seed: int = 0):
        super().__init__()
        if not 0.0 < sample_rate <= 1.0:
            raise ValueError(f"sample_rate must be in (0, 1], got {sample_rate}")
        self.rank, self.world_size = world()
        if num_classes < self.world_size:
            raise ValueError(f"{num_classes} classes cannot be split over {self.world_size} ranks")
        self.margin = margin
        self.num_classes = num_classes
        self.sample_rate = sample_rate
        base, extra = divmod(num_classes, self.world_size)
        self.num_local = base + int(self.rank < extra)
        self.class_start = base * self.rank + min(self.rank, extra)
        rows = _init_rows(self.class_start, self.num_local, embedding_size, seed)
        self.weight = nn.Parameter(rows)

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        labels = labels.view(-1).long()
        if self.world_size > 1:
            embeddings = _AllGather.apply(embeddings)
            parts = [torch.empty_like(labels) for _ in range(self.world_size)]
            dist.all_gather(parts, labels)
            labels = torch.cat(parts)
        if labels.numel() and (labels.min() < 0 or labels.max() >= self.num_classes):
            raise ValueError(f"labels must be in [0, {self.num_classes}), got "
                             f"[{int(labels.min())}, {int(labels.max())}]")
        local = labels - self.class_start
        local[(local < 0) | (local >= self.num_local)] = -1
        weight = self.weight
        if self.sample_rate < 1.0:
            index, local = self._sample(local)
            weight = weight[index]
        cosine = F.linear(F.normalize(embeddings), F.normalize(weight)).float().clamp(-1, 1)
        return _ShardedCrossEntropy.apply(self.margin(cosine, local), local)

    @torch.no_grad()
    def _sample(self, local: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Positive centres plus random negatives; targets relabelled to the picked columns."""
        positive = torch.unique(local[local >= 0])
        keep = max(int(self.sample_rate * self.num_local), positive.numel(), 1)
        score = torch.rand(self.num_local, device=local.device)
        score[positive] = 2.0  # above any random score: positives always survive top-k
        index = torch.topk(score, keep).indices.sort().values
        relabelled = torch.full_like(local, -1)
        mask = local >= 0
        relabelled[mask] = torch.searchsorted(index, local[mask])
        return index, relabelled


def _init_rows(start: int, count: int, dim: int, seed: int) -> torch.Tensor:
    """Rows [start, start + count) of the N(0, 0.01) centre matrix defined by ``seed``."""
    rows = []
    for block in range(start // _INIT_BLOCK, (start + count - 1) // _INIT_BLOCK + 1):
        values = torch.randn(_INIT_BLOCK, dim, generator=generator("centres", seed, block)) * 0.01
        lo = max(start, block * _INIT_BLOCK) - block * _INIT_BLOCK
        hi = min(start + count, (block + 1) * _INIT_BLOCK) - block * _INIT_BLOCK
        rows.append(values[lo:hi])
    return torch.cat(rows)
