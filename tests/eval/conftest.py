"""Fixtures shared by the fastface.eval tests."""
import numpy as np
import pytest


def table1_scores(fn: int, fp: int, seed: int = 0):
    """LFW-shaped scores (10 folds of 300 same + 300 different pairs, in that order) that the
    10-fold protocol must decode to TP = 3000 - fn, FN = fn, TN = 3000 - fp, FP = fp.

    Correct pairs leave a gap (0.3, 0.5) between the classes; the fn same pairs score below
    everything and the fp different pairs above everything, so no threshold can fix them and
    the best threshold of every training split lies in the gap."""
    rng = np.random.default_rng(seed)
    same = np.tile(np.r_[np.ones(300, bool), np.zeros(300, bool)], 10)
    scores = np.where(same, rng.uniform(0.5, 1.0, same.size), rng.uniform(-0.3, 0.3, same.size))
    scores[rng.choice(np.flatnonzero(same), fn, replace=False)] = -0.9
    scores[rng.choice(np.flatnonzero(~same), fp, replace=False)] = 1.5
    return scores, same


@pytest.fixture
def mobilefacenet_scores():
    return table1_scores(fn=16, fp=3)


@pytest.fixture
def resnet100_scores():
    return table1_scores(fn=9, fp=0, seed=1)
