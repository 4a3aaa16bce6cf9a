"""Face datasets and the input convention shared by every backbone.

Datasets yield ``(image, label)`` with ``image`` an RGB ``uint8`` tensor of shape (3, S, S).
Flipping and normalisation happen on whole batches on the training device
(:func:`flip_batch`, :func:`normalize`): moving uint8 is 4x cheaper than float, and doing the
random flip per step rather than per worker keeps it reproducible across workers and resumes.

Input convention: RGB channel order, ``(x - 127.5) / 127.5`` to [-1, 1], as arcface_torch
trains (its ``Normalize(0.5, 0.5)`` on [0, 1] images). A model trained here expects exactly
this at inference; insightface's MobileFaceNet graph scales by 1/128 instead, a 0.4% gain
difference that does not matter in practice.
"""
from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from .recordio import RecordReader, unpack
from .rng import generator

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".pgm", ".ppm", ".tif", ".tiff", ".webp"}


def decode_image(data: bytes | np.ndarray | str | os.PathLike, size: int,
                 name: str | None = None) -> torch.Tensor:
    """Decode an encoded image (bytes, or a path) to a (3, size, size) RGB uint8 tensor.

    Grey images are replicated to three channels; other sizes are resized (area averaging when
    shrinking). Faces are expected to be aligned already.
    """
    if isinstance(data, (str, os.PathLike)):
        name = name or str(data)
        data = np.fromfile(data, dtype=np.uint8)
    buffer = np.frombuffer(data, dtype=np.uint8) if isinstance(data, bytes) else data
    image = cv2.imdecode(buffer, cv2.IMREAD_COLOR) if buffer.size else None
    if image is None:
        raise ValueError(f"cannot decode image {name or '(in memory)'}")
    if image.shape[:2] != (size, size):
        shrink = image.shape[0] > size or image.shape[1] > size
        image = cv2.resize(image, (size, size),
                           interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    return torch.from_numpy(np.ascontiguousarray(image[:, :, ::-1].transpose(2, 0, 1)))


def worker_init(_worker_id: int) -> None:
    """DataLoader workers decode in parallel already; OpenCV's own threads would oversubscribe."""
    cv2.setNumThreads(0)


def normalize(images: torch.Tensor) -> torch.Tensor:
    """uint8 RGB batch -> float in [-1, 1] (see the module docstring)."""
    return (images.float() - 127.5) / 127.5


def flip_batch(images: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mirror the images whose ``mask`` entry is True (horizontal flip)."""
    return torch.where(mask.view(-1, 1, 1, 1).to(images.device), images.flip(3), images)


class IdentityFolder(Dataset):
    """One sub-folder per identity (``root/<identity>/<image>``), e.g. WebFace42M's layout.

    Identities are sorted by folder name and numbered from 0; ``classes[i]`` is identity i's
    folder name. Files with other extensions are ignored. Paths and labels are kept in numpy
    arrays: DataLoader workers fork the dataset, and touching millions of Python objects would
    copy them into every worker.
    """

    def __init__(self, root: str | os.PathLike, image_size: int = 112):
        root = Path(root)
        if not root.is_dir():
            raise FileNotFoundError(f"dataset folder not found: {root}")
        self.image_size = image_size
        self.classes: list[str] = []
        paths, labels = [], []
        for folder in sorted(p for p in root.iterdir() if p.is_dir()):
            files = sorted(f for f in folder.iterdir() if f.suffix.lower() in IMAGE_EXTENSIONS)
            if files:
                paths += [os.fsencode(f) for f in files]
                labels += [len(self.classes)] * len(files)
                self.classes.append(folder.name)
        if not paths:
            raise ValueError(f"no images found in identity folders under {root} "
                             f"(expected {root}/<identity>/<image>)")
        self.paths = np.array(paths, dtype=np.bytes_)
        self.labels = np.array(labels, dtype=np.int64)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        path = os.fsdecode(self.paths[index])
        return decode_image(path, self.image_size), int(self.labels[index])


class SyntheticFaces(Dataset):
    """Deterministic stand-in for face data: each identity is a random smooth pattern and its
    images are that pattern plus per-image noise, so identities are learnable but not trivial."""

    def __init__(self, num_classes: int = 10, per_class: int = 8, image_size: int = 32,
                 noise: float = 40.0, seed: int = 0):
        if num_classes < 1 or per_class < 1:
            raise ValueError("a synthetic dataset needs at least one class and one image per class")
        self.num_classes, self.per_class = num_classes, per_class
        self.image_size, self.noise, self.seed = image_size, noise, seed

    def __len__(self) -> int:
        return self.num_classes * self.per_class

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        label = index // self.per_class
        coarse = torch.rand(1, 3, 4, 4, generator=generator("synthetic", self.seed, label))
        pattern = torch.nn.functional.interpolate(coarse, size=self.image_size, mode="bilinear")
        noise = torch.randn(3, self.image_size, self.image_size,
                            generator=generator("synthetic-noise", self.seed, index))
        image = pattern[0] * 255 + noise * self.noise
        return image.clamp(0, 255).to(torch.uint8), label


class RecordDataset(Dataset):
    """insightface's ``train.rec``/``train.idx`` (see :mod:`fastface.train.recordio`)."""

    def __init__(self, rec_path: str | os.PathLike, idx_path: str | os.PathLike,
                 image_size: int = 112):
        self.reader = RecordReader(rec_path, idx_path)
        self.image_size = image_size
        header = unpack(self.reader.read(0))[0] if 0 in self.reader else None
        self._num_classes = None
        if isinstance(header, tuple) and len(header) >= 2:
            first, end = int(header[0]), int(header[1])
            self.keys = range(1, first)
            missing = [k for k in (1, first - 1) if k not in self.reader]
            if missing:
                raise ValueError(f"{rec_path}: header lists images 1..{first - 1} but the index "
                                 f"has no record {missing[0]}")
            self._num_classes = end - first if end > first else None
        else:
            self.keys = self.reader.keys
        if not len(self.keys):
            raise ValueError(f"{rec_path} holds no images")

    @property
    def num_classes(self) -> int:
        """From the identity records when present, else 1 + the largest label (a full scan)."""
        if self._num_classes is None:
            self._num_classes = 1 + max(self._record(int(k))[0] for k in self.keys)
        return self._num_classes

    def _record(self, key: int) -> tuple[int, bytes]:
        label, payload = unpack(self.reader.read(key))
        return int(label[0] if isinstance(label, tuple) else label), payload

    def __len__(self) -> int:
        return len(self.keys)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        key = int(self.keys[index])
        label, payload = self._record(key)
        return decode_image(payload, self.image_size, f"{self.reader.rec_path} record {key}"), label


def open_dataset(path: str | os.PathLike, image_size: int = 112) -> Dataset:
    """An identity folder, a folder holding ``train.rec``/``train.idx``, or a ``.rec`` file."""
    path = Path(path)
    if path.suffix == ".rec":
        return RecordDataset(path, path.with_suffix(".idx"), image_size)
    if (path / "train.rec").exists():
        return RecordDataset(path / "train.rec", path / "train.idx", image_size)
    return IdentityFolder(path, image_size)
