"""fastface.eval.verify with stand-in embedding functions (no engine, no torch)."""
import pickle
import sys

import numpy as np
import pytest

from fastface.eval import evaluate, read_pairs
from fastface.eval.verify import cosine_scores, embed

cv2 = pytest.importorskip("cv2")


def halves(left, right, size=8):
    """A BGR image whose left half is ``left`` and right half ``right`` (grey levels)."""
    img = np.full((size, size, 3), right, np.uint8)
    img[:, : size // 2] = left
    return img


class HalfMeans:
    """Embeds a crop as (mean of left half, mean of right half): mirroring swaps the two."""

    def __init__(self):
        self.calls, self.seen = 0, 0

    def __call__(self, crops):
        self.calls += 1
        self.seen += len(crops)
        w = crops[0].shape[1] // 2
        return np.array([[c[:, :w].mean(), c[:, w:].mean()] for c in crops], np.float32)


@pytest.fixture
def csv_pairs(tmp_path):
    levels = {"a.png": (200, 50), "b.png": (50, 200), "c.png": (200, 50), "d.png": (120, 120)}
    for name, (left, right) in levels.items():
        cv2.imwrite(str(tmp_path / name), halves(left, right))
    rows = ["a.png,b.png,1", "a.png,c.png,1", "b.png,d.png,0", "c.png,d.png,0"] * 3
    (tmp_path / "p.csv").write_text("file_a,file_b,same\n" + "\n".join(rows) + "\n")
    return read_pairs(tmp_path / "p.csv")


def test_scores_embed_each_image_once(csv_pairs):
    model = HalfMeans()
    result = evaluate(model, csv_pairs, batch_size=3, name="half-means")
    assert (model.seen, model.calls) == (4, 2)  # 4 unique images for 12 pairs, in batches of 3
    ab = (200 * 50 + 50 * 200) / (200**2 + 50**2)
    bd = (50 * 120 + 200 * 120) / (np.hypot(50, 200) * np.hypot(120, 120))
    np.testing.assert_allclose(result.scores[:4], [ab, 1.0, bd, bd], rtol=1e-6)
    assert result.name == "half-means" and result.summary["pairs"] == 12


def test_flip_adds_mirrored_embedding(csv_pairs):
    model = HalfMeans()
    result = evaluate(model, csv_pairs, flip=True)
    assert model.seen == 8
    # emb + mirrored emb = (l + r, r + l): every image points the same way
    np.testing.assert_allclose(result.scores, 1.0, rtol=1e-6)


def test_crop_is_applied_before_embedding(csv_pairs):
    sizes = []

    def model(crops):
        sizes.extend(c.shape for c in crops)
        return np.ones((len(crops), 2))

    evaluate(model, csv_pairs, crop=lambda img: img[2:6, 2:6])
    assert set(sizes) == {(4, 4, 3)}


def test_folds_come_from_the_pair_file(tmp_path):
    for name, level in (("x.png", 10), ("y.png", 200)):
        cv2.imwrite(str(tmp_path / name), halves(level, 255 - level))
    rows = [f"{i % 3},x.png,{'x' if i % 2 else 'y'}.png,{i % 2}" for i in range(12)]
    (tmp_path / "p.csv").write_text("fold,file_a,file_b,same\n" + "\n".join(rows) + "\n")
    result = evaluate(HalfMeans(), read_pairs(tmp_path / "p.csv"))
    assert [f["fold"] for f in result.summary["folds"]] == [0, 1, 2]
    assert result.summary["metrics"]["accuracy"] == 1.0


def test_bin_end_to_end(tmp_path):
    same_face, other = halves(200, 50), halves(50, 200)
    bins = [cv2.imencode(".png", im)[1].tobytes() for im in (same_face, same_face, same_face, other) * 5]
    (tmp_path / "set.bin").write_bytes(pickle.dumps((bins, [True, False] * 5)))
    result = evaluate(HalfMeans(), read_pairs(tmp_path / "set.bin"))
    assert result.summary["counts"] == {"tp": 5, "fp": 0, "tn": 5, "fn": 0}


@pytest.mark.parametrize("model, crop, message", [
    (lambda crops: np.zeros((len(crops), 4)), None, r"a\.png: embedding is zero or not finite \(4 image"),
    (lambda crops: np.ones((len(crops), 4)) * np.nan, None, "not finite"),
    (lambda crops: np.ones(len(crops)), None, r"shape \(4,\) for 4 crops"),
    (lambda crops: np.ones((len(crops), 4)), lambda img: None, r"a\.png: crop must give"),
    (lambda crops: np.ones((len(crops), 4)), lambda img: img[..., 0], r"got \(8, 8\)"),
])
def test_errors_name_the_problem(csv_pairs, model, crop, message):
    with pytest.raises(ValueError, match=message):
        evaluate(model, csv_pairs, crop=crop)


def test_progress_without_tqdm_warns(csv_pairs, monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)
    with pytest.warns(UserWarning, match="tqdm is not installed"):
        embed(HalfMeans(), csv_pairs.images, progress=True)


def test_cosine_scores():
    e = np.array([[1.0, 0.0], [0.0, 1.0], [np.sqrt(0.5), np.sqrt(0.5)]])
    np.testing.assert_allclose(cosine_scores(e, [0, 0, 2], [1, 2, 2]), [0.0, np.sqrt(0.5), 1.0])
