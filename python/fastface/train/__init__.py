"""Training for fastface's face-embedding backbones (needs ``pip install fastface[train]``).

    from fastface.train import TrainConfig, train
    result = train(TrainConfig(data="/data/webface42m", backbone="iresnet100", batch_size=128))

or ``fastface train DATA ...`` on the command line, under ``torchrun`` for several GPUs/nodes.
One concern per module: ``backbones``, ``losses`` (margins), ``partial_fc`` (sharded classifier),
``data`` and ``recordio`` (datasets), ``sampler``, ``schedule``, ``checkpoint``, ``distributed``,
``verification``, ``trainer`` (the loop) and ``cli`` — ``fastface train``, kept here rather than
in ``fastface.cli`` because its options are generated from this package's ``TrainConfig``.

Importing this package does not import torch, so ``fastface --help`` stays light on devices
without it; ``train`` and ``TrainResult`` load the trainer on first use.
"""
from .config import TrainConfig

__all__ = ["TrainConfig", "TrainResult", "train"]


def __getattr__(name):
    if name in ("train", "TrainResult"):
        from . import trainer

        return getattr(trainer, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
