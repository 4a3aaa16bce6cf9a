"""Run by test_distributed.py, under torchrun and in-process: a short fastface.train run of a
small network, saving what the rank ends with to ``<output>/final-rank<r>.pt``.

The network has no BatchNorm on purpose. Under DDP each rank normalises with its own batch's
statistics (standard DDP behaviour), which no single process with the global batch computes;
everything else (data sharding, flips, embedding all-gather, sharded centres, distributed
softmax, gradient averaging, schedule, checkpoints) must match. Gradient clipping is off: it
would rescale a wrongly scaled gradient back to the same norm and hide the error.
"""
import sys

import torch
from torch import nn

from fastface.train import TrainConfig, train


class TinyNet(nn.Module):
    def __init__(self, dim=16):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.PReLU(8), nn.Conv2d(8, 8, 3, 2, 1),
                                  nn.PReLU(8), nn.Flatten(), nn.Linear(8 * 4 * 4, dim))

    def forward(self, x):
        return self.body(x)


def run(output: str, batch_size: int) -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    backbone = TinyNet()  # identical on every rank (DDP would broadcast rank 0's anyway)
    cfg = TrainConfig(data="synthetic:10:6", output=output, image_size=16, embedding_size=16,
                      batch_size=batch_size, max_steps=6, workers=0, lr=0.2, warmup_steps=2,
                      scale=16.0, margins="0.3", clip_grad=0.0, save_every=3, device="cpu",
                      progress=False)
    result = train(cfg, backbone=backbone)
    torch.save({"backbone": result.backbone.state_dict(), "head": result.head.weight.detach(),
                "class_start": result.head.class_start, "loss": result.loss},
               f"{output}/final-rank{result.head.rank}.pt")


if __name__ == "__main__":
    run(sys.argv[1], int(sys.argv[2]))
