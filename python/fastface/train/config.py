"""Training configuration: one dataclass shared by the Python API and the ``fastface train`` CLI
(whose options are generated from these fields and their help texts). Imports no torch.
"""
from __future__ import annotations

from dataclasses import dataclass, field


def _opt(default, help: str):
    return field(default=default, metadata={"help": help})


@dataclass
class TrainConfig:
    data: str = _opt("", "identity folder, folder with train.rec/train.idx, a .rec file, "
                         "or synthetic:CLASSES:IMAGES_PER_CLASS")
    output: str = _opt("fastface-run", "folder for checkpoints, config.json and backbone.pt")
    backbone: str = _opt("mobilefacenet", "backbone name (see fastface.train.backbones)")
    embedding_size: int = _opt(512, "embedding dimension")
    image_size: int = _opt(112, "input side in pixels (multiple of 16; 112 for arcface_torch "
                                "checkpoints)")
    num_classes: int = _opt(0, "number of identities; 0 reads it from the dataset")
    loss: str = _opt("arcface", "arcface, cosface or combined")
    margins: str = _opt("", "margin(s), comma separated: m for arcface/cosface, m1,m2,m3 "
                            "for combined; empty for the defaults (0.5 / 0.4)")
    scale: float = _opt(64.0, "logit scale s")
    easy_margin: bool = _opt(False, "ArcFace easy margin instead of the threshold fallback")
    sample_rate: float = _opt(1.0, "Partial FC fraction of class centres used per step")
    batch_size: int = _opt(128, "images per process per step")
    epochs: int = _opt(20, "passes over the data")
    max_steps: int = _opt(0, "stop after this many steps instead (0: epochs decide)")
    optimizer: str = _opt("sgd", "sgd or adamw")
    lr: float = _opt(0.1, "peak learning rate")
    momentum: float = _opt(0.9, "SGD momentum")
    weight_decay: float = _opt(5e-4, "weight decay")
    schedule: str = _opt("poly", "decay after warmup: poly or cosine")
    warmup_steps: int = _opt(0, "linear warmup steps")
    amp: bool = _opt(True, "mixed precision (fp16 autocast) when training on CUDA")
    clip_grad: float = _opt(5.0, "clip the backbone gradient norm to this (0: off)")
    flip: bool = _opt(True, "random horizontal flips")
    workers: int = _opt(4, "DataLoader worker processes per rank")
    seed: int = _opt(0, "seed for initialisation, data order, flips and sampling")
    device: str = _opt("auto", "auto, cpu or cuda")
    log_every: int = _opt(50, "steps between log lines")
    save_every: int = _opt(1000, "steps between checkpoints (one is always written at the end)")
    keep_checkpoints: int = _opt(2, "how many recent checkpoints to keep (0: all)")
    resume: bool = _opt(False, "continue from the latest checkpoint in --output if there is one")
    verify: str = _opt("", "verification pairs: an insightface .bin or an identity folder")
    verify_every: int = _opt(1000, "steps between verification runs (and at the end)")
    progress: bool = _opt(True, "progress bar on rank 0 when stderr is a terminal")

    def __post_init__(self):
        choices = {"loss": ("arcface", "cosface", "combined"), "optimizer": ("sgd", "adamw"),
                   "schedule": ("poly", "cosine"), "device": ("auto", "cpu", "cuda")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        positive = ("embedding_size", "image_size", "batch_size", "log_every",
                    "save_every", "verify_every")
        for name in positive:
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        for name in ("num_classes", "epochs", "max_steps", "warmup_steps", "workers",
                     "clip_grad", "weight_decay", "keep_checkpoints"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative, got {getattr(self, name)}")
        if not self.epochs and not self.max_steps:
            raise ValueError("set epochs or max_steps")
        if not 0.0 < self.sample_rate <= 1.0:
            raise ValueError(f"sample_rate must be in (0, 1], got {self.sample_rate}")
        if self.lr <= 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        self.margin_values()  # parse early so a typo fails before any work

    def margin_values(self) -> tuple[float, ...] | None:
        if not self.margins.strip():
            return None
        try:
            return tuple(float(v) for v in self.margins.split(","))
        except ValueError:
            raise ValueError(f"margins must be comma-separated numbers: {self.margins!r}") from None
