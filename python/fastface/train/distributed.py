"""Process-group setup under ``torchrun`` and device choice.

``torchrun`` sets ``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` (and the rendezvous address); a plain
``python`` run has none of them and trains as a single process. GPUs use NCCL with one device
per process (``cuda:LOCAL_RANK``); CPU runs use gloo, which is how the tests exercise the
multi-process path without a GPU.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Context:
    rank: int
    world_size: int
    device: torch.device
    owns_group: bool  # this call created the process group, so it should tear it down

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def pick_device(preference: str, local_rank: int) -> torch.device:
    """``auto`` takes this process's GPU when CUDA works, else the CPU."""
    if preference not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu or cuda, got {preference!r}")
    if preference == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' requested but CUDA is not available")
    if preference == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    if local_rank >= torch.cuda.device_count():
        raise RuntimeError(f"local rank {local_rank} has no GPU "
                           f"({torch.cuda.device_count()} visible); lower --nproc_per_node")
    torch.cuda.set_device(local_rank)
    return torch.device("cuda", local_rank)


def setup(preference: str = "auto") -> Context:
    """Join the process group when launched by torchrun and pick the device. A group the
    caller already initialised is used as is."""
    device = pick_device(preference, int(os.environ.get("LOCAL_RANK", "0")))
    create = int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized()
    if create:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if dist.is_initialized():
        return Context(dist.get_rank(), dist.get_world_size(), device, create)
    return Context(0, 1, device, False)


def cleanup(context: Context) -> None:
    if context.owns_group and dist.is_initialized():
        dist.destroy_process_group()
