"""Verification accuracy and pair sets."""
import pickle

import cv2
import numpy as np
import pytest
import torch

from fastface.train.verification import (PairVerifier, bin_pairs, folder_pairs, open_verifier,
                                         pair_accuracy)


def test_pair_accuracy_thresholds_on_the_other_folds():
    same = torch.tensor([True, False] * 10)
    assert pair_accuracy(torch.where(same, 0.9, 0.1), same) == 1.0
    assert pair_accuracy(torch.where(same, 0.1, 0.9), same) == 0.5  # best: all one class
    noisy = torch.where(same, 0.6, 0.4)
    noisy[0] = 0.0  # one same-pair scored lowest: it is the only error, in fold 0
    assert pair_accuracy(noisy, same) == pytest.approx(1 - 0.1 * 0.5)
    with pytest.raises(ValueError, match="at least 10 pairs"):
        pair_accuracy(torch.zeros(3), torch.zeros(3))


class Pixels(torch.nn.Module):
    """'Embeds' an image as its pixels, so same-looking images match."""

    def __init__(self):
        super().__init__()
        self.dummy = torch.nn.Parameter(torch.zeros(()))

    def forward(self, x):
        return x.flatten(1) + self.dummy


def _write_identities(root, count=4, per=3):
    for k in range(count):
        (root / f"id{k}").mkdir(parents=True)
        for j in range(per):
            image = np.full((8, 8, 3), 40 * k, np.uint8)
            image[0, 0] = j  # tiny per-image difference
            cv2.imwrite(str(root / f"id{k}" / f"{j}.png"), image)


def test_folder_pairs(tmp_path):
    _write_identities(tmp_path / "faces")
    verifier = folder_pairs(tmp_path / "faces", image_size=8)
    same = verifier.same
    assert len(same) == 24 and same.sum() == 12  # 4 x C(3, 2) positives, as many negatives
    assert same.tolist()[:4] == [True, False, True, False]  # alternating: balanced folds
    assert open_verifier(tmp_path / "faces", 8)(Pixels())["faces"] > 0.9


def test_bin_pairs_and_refusal_of_code(tmp_path):
    images = [cv2.imencode(".png", np.full((8, 8, 3), v, np.uint8))[1].tobytes()
              for v in (10, 10, 10, 250)]
    path = tmp_path / "toy.bin"
    path.write_bytes(pickle.dumps((images, [True, False])))
    verifier = bin_pairs(path, image_size=8)
    assert verifier.pairs.tolist() == [[0, 1], [2, 3]] and verifier.same.tolist() == [True, False]
    assert isinstance(open_verifier(path, 8), PairVerifier)

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path.write_bytes(pickle.dumps((images, [Evil(), False])))
    with pytest.raises(ValueError, match="refusing to load builtins.print"):
        bin_pairs(path)
    path.write_bytes(pickle.dumps((images[:3], [True, False])))
    with pytest.raises(ValueError, match="do not form 2 pairs"):
        bin_pairs(path)
