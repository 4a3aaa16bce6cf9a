"""Datasets, input convention and the sharded sampler."""
import cv2
import numpy as np
import pytest
import torch

from fastface.train.data import (IdentityFolder, SyntheticFaces, decode_image, flip_batch,
                                 normalize, open_dataset)
from fastface.train.sampler import ShardedBatchSampler


@pytest.fixture
def folder(tmp_path):
    """bob: two colour JPEG/PNG of other sizes; alice: one grey PGM; an empty and a text-only
    identity folder, which must be ignored."""
    red = np.zeros((40, 30, 3), np.uint8)
    red[:, :, 2] = 255  # BGR on disk
    (tmp_path / "bob").mkdir()
    cv2.imwrite(str(tmp_path / "bob" / "1.png"), red)
    cv2.imwrite(str(tmp_path / "bob" / "2.jpg"), np.full((200, 200, 3), 90, np.uint8))
    (tmp_path / "alice").mkdir()
    cv2.imwrite(str(tmp_path / "alice" / "1.pgm"), np.full((112, 92), 200, np.uint8))
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("not an image")
    return tmp_path


def test_identity_folder(folder):
    data = IdentityFolder(folder, image_size=16)
    assert data.classes == ["alice", "bob"] and data.num_classes == 2 and len(data) == 3
    grey, label = data[0]
    assert label == 0 and grey.dtype == torch.uint8 and grey.shape == (3, 16, 16)
    assert (grey == 200).all()
    red, label = data[1]
    assert label == 1 and (red[0] == 255).all() and (red[1:] == 0).all()  # RGB order


def test_identity_folder_bad_input(tmp_path, folder):
    with pytest.raises(FileNotFoundError, match="dataset folder not found"):
        IdentityFolder(tmp_path / "missing")
    (tmp_path / "void").mkdir()
    with pytest.raises(ValueError, match="no images found"):
        IdentityFolder(tmp_path / "void")
    (folder / "bob" / "3.jpg").write_bytes(b"this is not a jpeg")
    with pytest.raises(ValueError, match="cannot decode image .*3.jpg"):
        IdentityFolder(folder)[3]


def test_open_dataset_picks_the_reader(folder):
    assert isinstance(open_dataset(folder, 16), IdentityFolder)


def test_normalize_and_flip():
    x = torch.tensor([0, 255], dtype=torch.uint8).view(1, 1, 1, 2).expand(2, 3, 1, 2)
    assert normalize(x)[0, 0, 0].tolist() == [-1.0, 1.0]
    flipped = flip_batch(x, torch.tensor([True, False]))
    assert flipped[0, 0, 0].tolist() == [255, 0] and flipped[1, 0, 0].tolist() == [0, 255]


def test_decode_image_resizes_any_size():
    ok, png = cv2.imencode(".png", np.zeros((50, 70, 3), np.uint8))
    assert decode_image(png.tobytes(), 112).shape == (3, 112, 112)
    with pytest.raises(ValueError, match="cannot decode"):
        decode_image(b"", 112)


def test_synthetic_faces_are_deterministic():
    a, b = SyntheticFaces(3, 4, 16, seed=1), SyntheticFaces(3, 4, 16, seed=1)
    assert len(a) == 12 and a.num_classes == 3 and a[5][1] == 1
    assert torch.equal(a[5][0], b[5][0]) and not torch.equal(a[5][0], a[6][0])


def test_ranks_together_see_the_single_process_batch():
    single = list(ShardedBatchSampler(50, 8, 0, 1, seed=3, epoch=2))
    ranks = [list(ShardedBatchSampler(50, 4, r, 2, seed=3, epoch=2)) for r in range(2)]
    assert len(single) == 6 and all(len(r) == 6 for r in ranks)
    for step, batch in enumerate(single):
        assert ranks[0][step] + ranks[1][step] == batch
    seen = [i for batch in single for i in batch]
    assert len(set(seen)) == len(seen) == 48  # no repeats; last partial batch dropped
    assert list(ShardedBatchSampler(50, 8, 0, 1, 3, 2, start_step=4)) == single[4:]
    assert single != list(ShardedBatchSampler(50, 8, 0, 1, seed=3, epoch=3))


def test_sampler_needs_one_full_global_batch():
    with pytest.raises(ValueError, match="do not fill one global batch"):
        ShardedBatchSampler(7, 4, 0, 2, seed=0, epoch=0)
