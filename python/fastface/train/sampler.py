"""Which images each rank sees at each step.

Epoch ``e`` is a permutation of the dataset drawn from ``(seed, e)`` alone and cut into global
batches of ``world_size x batch_size``; rank ``r`` takes the ``r``-th contiguous slice of each.
So the set of images in global step ``k`` is the same for any number of ranks (one process
with the global batch sees exactly what two ranks see together), and a resumed run can start
in the middle of an epoch by skipping whole steps without reading them. The incomplete last
global batch of an epoch is dropped, since Partial FC needs equal batches on every rank.
"""
from __future__ import annotations

from typing import Iterator

import torch
from torch.utils.data import Sampler

from .rng import generator


def steps_per_epoch(num_images: int, batch_size: int, world_size: int) -> int:
    steps = num_images // (batch_size * world_size)
    if steps == 0:
        raise ValueError(f"{num_images} images do not fill one global batch of "
                         f"{world_size} x {batch_size}; lower batch_size")
    return steps


class ShardedBatchSampler(Sampler[list[int]]):
    def __init__(self, num_images: int, batch_size: int, rank: int, world_size: int,
                 seed: int, epoch: int, start_step: int = 0):
        self.num_images, self.batch_size = num_images, batch_size
        self.rank, self.world_size = rank, world_size
        self.seed, self.epoch, self.start_step = seed, epoch, start_step
        self.steps = steps_per_epoch(num_images, batch_size, world_size)

    def __len__(self) -> int:
        return self.steps - self.start_step

    def __iter__(self) -> Iterator[list[int]]:
        order = torch.randperm(self.num_images, generator=generator("epoch", self.seed, self.epoch))
        global_batch = self.batch_size * self.world_size
        for step in range(self.start_step, self.steps):
            first = step * global_batch + self.rank * self.batch_size
            yield order[first:first + self.batch_size].tolist()
