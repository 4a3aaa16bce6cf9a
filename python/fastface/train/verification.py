"""Pair verification accuracy, for the trainer's periodic hook and for tests.

Protocol as LFW's: cosine similarity of L2-normalised embeddings (the embedding of an image
plus that of its mirror image, as insightface evaluates), and k-fold accuracy where each
fold is scored at the threshold that is best on the other folds. Pair sets come from an
identity folder (every same-identity pair plus as many seeded different-identity pairs) or
from an insightface ``.bin`` (lfw.bin, cfp_fp.bin, ...).
"""
from __future__ import annotations

import io
import os
import pickle
from itertools import combinations
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .data import IdentityFolder, decode_image, normalize
from .rng import generator


def pair_accuracy(scores: torch.Tensor, same: torch.Tensor, folds: int = 10) -> float:
    """Mean k-fold accuracy of thresholding ``scores`` (higher = same identity).

    Folds are contiguous runs of pairs, as in the LFW protocol and insightface's evaluation
    (whose .bin files are ordered fold by fold).
    """
    scores, same = scores.double().cpu(), same.bool().cpu()
    if scores.numel() < folds:
        raise ValueError(f"need at least {folds} pairs for {folds}-fold accuracy")
    fold_of = torch.arange(scores.numel()) * folds // scores.numel()
    accuracies = []
    for k in range(folds):
        train, test = fold_of != k, fold_of == k
        threshold = _best_threshold(scores[train], same[train])
        accuracies.append(((scores[test] > threshold) == same[test]).double().mean().item())
    return sum(accuracies) / folds


def _best_threshold(scores: torch.Tensor, same: torch.Tensor) -> float:
    """Threshold maximising accuracy of ``score > threshold``; ties take the first."""
    order = scores.argsort()
    sorted_scores, sorted_same = scores[order], same[order].double()
    # Cutting after position i calls pairs 0..i different and the rest same.
    correct_below = torch.cumsum(1.0 - sorted_same, 0)
    correct_above = sorted_same.sum() - torch.cumsum(sorted_same, 0)
    correct = torch.cat([sorted_same.sum().view(1), correct_below + correct_above])
    cut = int(correct.argmax())
    if cut == 0:
        return float(sorted_scores[0]) - 1.0
    if cut == len(sorted_scores):
        return float(sorted_scores[-1])
    return float(sorted_scores[cut - 1] + sorted_scores[cut]) / 2


@torch.no_grad()
def embed(backbone: nn.Module, images: torch.Tensor, batch_size: int = 64,
          flip: bool = True) -> torch.Tensor:
    """L2-normalised embeddings of uint8 RGB images (N, 3, S, S), computed in eval mode."""
    device = next(backbone.parameters()).device
    was_training = backbone.training
    backbone.eval()
    try:
        out = []
        for chunk in images.split(batch_size):
            x = normalize(chunk.to(device))
            e = backbone(x) + backbone(x.flip(3)) if flip else backbone(x)
            out.append(F.normalize(e.float()).cpu())
    finally:
        backbone.train(was_training)
    return torch.cat(out)


class PairVerifier:
    """Hook ``backbone -> {name: accuracy}`` over fixed pairs of (distinct) images."""

    def __init__(self, images: torch.Tensor, pairs: torch.Tensor, same: torch.Tensor,
                 name: str = "verify", folds: int = 10):
        self.images, self.pairs, self.same = images, pairs, same.bool()
        self.name, self.folds = name, folds

    def __call__(self, backbone: nn.Module) -> dict[str, float]:
        emb = embed(backbone, self.images)
        scores = (emb[self.pairs[:, 0]] * emb[self.pairs[:, 1]]).sum(1)
        return {self.name: pair_accuracy(scores, self.same, self.folds)}


def folder_pairs(root: str | os.PathLike, image_size: int = 112, seed: int = 0,
                 name: str | None = None) -> PairVerifier:
    """All same-identity pairs of an identity folder plus as many different-identity pairs."""
    dataset = IdentityFolder(root, image_size)
    members: dict[int, list[int]] = {}
    for index, label in enumerate(dataset.labels.tolist()):
        members.setdefault(label, []).append(index)
    positives = [pair for group in members.values() for pair in combinations(group, 2)]
    n = len(dataset)
    possible_negatives = (n * n - sum(len(g) ** 2 for g in members.values())) // 2
    if not positives or not possible_negatives:
        raise ValueError(f"{root} needs two identities and one with two images for verification")
    labels = dataset.labels.tolist()
    g = generator("verify-pairs", seed)
    negatives = set()
    while len(negatives) < min(len(positives), possible_negatives):
        i, j = torch.randint(n, (2,), generator=g).tolist()
        if labels[i] != labels[j]:
            negatives.add((min(i, j), max(i, j)))
    images = torch.stack([dataset[i][0] for i in range(len(dataset))])
    # Alternate same/different pairs so that every contiguous fold is balanced.
    labelled = [x for pos, neg in zip(positives, sorted(negatives))
                for x in ((pos, True), (neg, False))]
    labelled += [(p, True) for p in positives[len(negatives):]]
    pairs = torch.tensor([p for p, _ in labelled])
    same = torch.tensor([s for _, s in labelled])
    return PairVerifier(images, pairs, same, name or Path(root).name)


class _BinUnpickler(pickle.Unpickler):
    """Loads only builtins and numpy scalars: a .bin from the internet must not run code."""

    ALLOWED = {("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
               ("numpy._core.multiarray", "scalar")}

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise ValueError(f"refusing to load {module}.{name} from a verification .bin")
        return super().find_class(module, name)


def bin_pairs(path: str | os.PathLike, image_size: int = 112,
              name: str | None = None) -> PairVerifier:
    """insightface's pickled ``(encoded images, is_same)``, pairs being images 2i and 2i+1."""
    with open(path, "rb") as f:
        try:
            bins, same = _BinUnpickler(io.BytesIO(f.read()), encoding="bytes").load()
        except (pickle.UnpicklingError, EOFError, TypeError) as exc:
            raise ValueError(f"{path} is not an insightface verification .bin: {exc}") from None
    if len(bins) != 2 * len(same) or not same:
        raise ValueError(f"{path}: {len(bins)} images do not form {len(same)} pairs")
    images = torch.stack([decode_image(bytes(b), image_size, f"{path} image {i}")
                          for i, b in enumerate(bins)])
    pairs = torch.arange(len(bins)).view(-1, 2)
    return PairVerifier(images, pairs, torch.tensor([bool(s) for s in same]),
                        name or Path(path).stem)


def open_verifier(path: str | os.PathLike, image_size: int = 112) -> PairVerifier:
    """A ``.bin`` file or an identity folder."""
    if Path(path).suffix == ".bin":
        return bin_pairs(path, image_size)
    return folder_pairs(path, image_size)
