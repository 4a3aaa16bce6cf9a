"""The training loop behind ``fastface train`` and :func:`train`.

One step: this rank's uint8 batch moves to the device, is flipped and normalised there, the
backbone (DDP-wrapped when distributed) embeds it, Partial FC turns all ranks' embeddings into
the global-batch margin-softmax loss, and one optimizer updates backbone and this rank's
centre shard. Everything random is keyed by (seed, step) or checkpointed, so a run resumed
from step k continues exactly as the uninterrupted run would have.
"""
from __future__ import annotations

import contextlib
import json
import logging
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.optim.lr_scheduler import LambdaLR
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from . import checkpoint, distributed, rng
from .backbones import get_backbone
from .config import TrainConfig
from .data import SyntheticFaces, flip_batch, normalize, open_dataset, worker_init
from .losses import get_margin
from .partial_fc import PartialFC
from .sampler import ShardedBatchSampler, steps_per_epoch
from .schedule import WarmupDecay
from .verification import open_verifier

log = logging.getLogger("fastface.train")

# Settings a checkpoint cannot be resumed under if they changed: they define the model, the
# head's shards, the data order or the schedule.
_RESUME_FIXED = ("backbone", "embedding_size", "image_size", "num_classes", "loss", "margins",
                 "scale", "easy_margin", "sample_rate", "batch_size", "seed", "optimizer")

Verifier = Callable[[nn.Module], "dict[str, float]"]


@dataclass
class TrainResult:
    backbone: nn.Module  # unwrapped (no DDP), on the training device
    head: PartialFC  # this rank's shard
    step: int
    loss: float  # mean over the last logging window; nan when no step ran
    metrics: dict[str, float] = field(default_factory=dict)  # last verification


def train(cfg: TrainConfig, *, backbone: nn.Module | None = None, dataset: Dataset | None = None,
          verifier: Verifier | None = None) -> TrainResult:
    """Train as configured; under torchrun every rank calls this with the same arguments.

    ``backbone`` replaces ``cfg.backbone`` (any module mapping (N, 3, S, S) to
    (N, embedding_size)); ``dataset`` replaces ``cfg.data`` (items ``(uint8 CHW image, label)``,
    plus ``num_classes`` unless ``cfg.num_classes`` is set); ``verifier`` replaces ``cfg.verify``.
    """
    context = distributed.setup(cfg.device)
    try:
        return _train(cfg, context, backbone, dataset, verifier)
    finally:
        distributed.cleanup(context)


def build_dataset(cfg: TrainConfig) -> Dataset:
    if cfg.data.startswith("synthetic:"):
        try:
            classes, per_class = (int(v) for v in cfg.data.split(":")[1:])
        except ValueError:
            raise ValueError(f"expected synthetic:CLASSES:IMAGES_PER_CLASS: {cfg.data!r}") from None
        return SyntheticFaces(classes, per_class, cfg.image_size, seed=cfg.seed)
    if not cfg.data:
        raise ValueError("no training data given")
    return open_dataset(cfg.data, cfg.image_size)


def _train(cfg, ctx, backbone, dataset, verifier) -> TrainResult:
    dataset = build_dataset(cfg) if dataset is None else dataset
    num_classes = cfg.num_classes or getattr(dataset, "num_classes", 0)
    if not num_classes:
        raise ValueError("the dataset does not say how many identities it has; set num_classes")
    per_epoch = steps_per_epoch(len(dataset), cfg.batch_size, ctx.world_size)
    total = cfg.max_steps or cfg.epochs * per_epoch
    if verifier is None and cfg.verify and ctx.is_main:
        verifier = open_verifier(cfg.verify, cfg.image_size)

    torch.manual_seed(cfg.seed)  # same backbone initialisation on every rank
    if backbone is None:
        backbone = get_backbone(cfg.backbone, num_features=cfg.embedding_size,
                                input_size=cfg.image_size)
    backbone.to(ctx.device)
    margin = get_margin(cfg.loss, cfg.scale, cfg.margin_values(), cfg.easy_margin)
    head = PartialFC(margin, cfg.embedding_size, num_classes, cfg.sample_rate, cfg.seed)
    head.to(ctx.device)
    optimizer = _optimizer(cfg, backbone, head)
    scheduler = LambdaLR(optimizer, WarmupDecay(total, cfg.warmup_steps, cfg.schedule))
    use_amp = cfg.amp and ctx.device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    # Per-rank stream for Partial FC's negative sampling and dropout.
    torch.manual_seed(cfg.seed * 1000 + ctx.rank + 1)

    run = {**asdict(cfg), "num_classes": num_classes, "world_size": ctx.world_size,
           "total_steps": total}
    output = Path(cfg.output)
    step = _resume(cfg, ctx, run, backbone, head, optimizer, scheduler, scaler) if cfg.resume else 0
    if ctx.is_main:
        output.mkdir(parents=True, exist_ok=True)
        text = json.dumps(run, indent=2).encode()
        checkpoint.atomic_write(output / "config.json", lambda f: f.write(text))
        log.info("training %s for %d steps (%d per epoch) on %d %s process(es): %d identities, "
                 "%d images", type(backbone).__name__, total, per_epoch, ctx.world_size,
                 ctx.device.type, num_classes, len(dataset))

    model = backbone
    if ctx.world_size > 1:
        ids = [ctx.device.index] if ctx.device.type == "cuda" else None
        model = DistributedDataParallel(backbone, device_ids=ids)
    trainable = [p for p in backbone.parameters() if p.requires_grad]

    loss_sum, window, last_loss, metrics = torch.zeros((), device=ctx.device), 0, math.nan, {}
    started = time.perf_counter()
    show_bar = ctx.is_main and cfg.progress and sys.stderr.isatty()
    # While the bar is drawn, log records go through tqdm.write so they do not tear it.
    redirect = logging_redirect_tqdm() if show_bar else contextlib.nullcontext()
    with tqdm(total=total, initial=step, disable=not show_bar, unit="step") as bar, redirect:
        while step < total:
            epoch, offset = divmod(step, per_epoch)
            sampler = ShardedBatchSampler(len(dataset), cfg.batch_size, ctx.rank,
                                          ctx.world_size, cfg.seed, epoch, offset)
            loader = DataLoader(dataset, batch_sampler=sampler, num_workers=cfg.workers,
                                pin_memory=ctx.device.type == "cuda", worker_init_fn=worker_init,
                                generator=rng.generator("loader", cfg.seed, epoch))
            for images, labels in loader:
                images = images.to(ctx.device, non_blocking=True)
                labels = labels.to(ctx.device, non_blocking=True)
                if cfg.flip:
                    images = flip_batch(images, _flip_mask(cfg.seed, step, ctx, len(images)))
                with torch.autocast(ctx.device.type, torch.float16, enabled=use_amp):
                    loss = head(model(normalize(images)), labels)
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                if cfg.clip_grad:
                    scaler.unscale_(optimizer)
                    nn.utils.clip_grad_norm_(trainable, cfg.clip_grad)
                lr = optimizer.param_groups[0]["lr"]
                scaler.step(optimizer)
                scaler.update()
                scheduler.step()
                step += 1
                bar.update()
                loss_sum += loss.detach()
                window += 1

                if step % cfg.log_every == 0 or step == total:
                    last_loss = loss_sum.item() / window
                    elapsed = time.perf_counter() - started
                    rate = window * cfg.batch_size * ctx.world_size / elapsed
                    if ctx.is_main:
                        log.info("step %d/%d epoch %d loss %.4f lr %.6g samples/s %.1f",
                                 step, total, epoch, last_loss, lr, rate)
                        bar.set_postfix(loss=f"{last_loss:.3f}", lr=f"{lr:.3g}")
                    loss_sum.zero_()
                    window, started = 0, time.perf_counter()
                if step % cfg.save_every == 0 or step == total:
                    state = {"step": step, "run": run, "backbone": backbone.state_dict(),
                             "head": head.state_dict(), "optimizer": optimizer.state_dict(),
                             "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(),
                             "rng": rng.get_state()}
                    checkpoint.save(output, step, state, ctx.rank, ctx.world_size,
                                    cfg.keep_checkpoints)
                if verifier is not None and ctx.is_main and (
                        step % cfg.verify_every == 0 or step == total):
                    metrics = verifier(backbone)
                    log.info("step %d verification %s", step,
                             " ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
                if step == total:
                    break

    if ctx.is_main:
        weights = {k: v.cpu() for k, v in backbone.state_dict().items()}
        checkpoint.atomic_write(output / "backbone.pt", lambda f: torch.save(weights, f))
        log.info("finished at step %d; backbone weights in %s", step, output / "backbone.pt")
    return TrainResult(backbone, head, step, last_loss, metrics)


def _optimizer(cfg: TrainConfig, backbone: nn.Module, head: nn.Module) -> torch.optim.Optimizer:
    groups = [{"params": [p for p in backbone.parameters() if p.requires_grad]},
              {"params": list(head.parameters())}]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum,
                               weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)


def _flip_mask(seed: int, step: int, ctx: distributed.Context, batch: int) -> torch.Tensor:
    """This rank's slice of the global batch's flip decisions (the same for any world size)."""
    mask = torch.rand(batch * ctx.world_size, generator=rng.generator("flip", seed, step)) < 0.5
    return mask[ctx.rank * batch:(ctx.rank + 1) * batch]


def _resume(cfg, ctx, run, backbone, head, optimizer, scheduler, scaler) -> int:
    """Restore the latest checkpoint in ``cfg.output``; returns its step (0 when none)."""
    found = checkpoint.latest(cfg.output)
    if found is None:
        if ctx.is_main:
            log.info("no checkpoint in %s; starting from step 0", cfg.output)
        return 0
    state = checkpoint.load(cfg.output, found["step"], ctx.rank)
    saved = state["run"]
    for key in _RESUME_FIXED + ("world_size", "total_steps"):
        if saved.get(key) != run[key]:
            raise ValueError(f"cannot resume {cfg.output}: {key} was {saved.get(key)!r}, "
                             f"now {run[key]!r}")
    backbone.load_state_dict(state["backbone"])
    head.load_state_dict(state["head"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    scaler.load_state_dict(state["scaler"])
    rng.set_state(state["rng"])
    if ctx.is_main:
        log.info("resumed %s at step %d", cfg.output, state["step"])
    return state["step"]
