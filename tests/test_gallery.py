"""Galleries: search semantics, round trips, fp16, and saves that survive being killed."""
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import fastface
from fastface.gallery import Gallery, GalleryError


def random_gallery(n_people=20, per_person=3, dim=64, dtype="float32", seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_people, dim))
    gallery = Gallery(dim, dtype)
    for i, centre in enumerate(centres):
        gallery.add(f"person{i}", centre + 0.3 * rng.standard_normal((per_person, dim)))
    return gallery, centres


def test_search_top_k_and_threshold():
    gallery, centres = random_gallery()
    assert len(gallery) == 60 and len(gallery.names) == 20
    results = gallery.search(centres[7], k=3)
    assert [name for name, _ in results][0] == "person7" and len(results) == 3
    assert results[0][1] > results[1][1] >= results[2][1]
    above = gallery.search(centres[7], threshold=results[1][1])
    assert [n for n, _ in above] == [n for n, _ in results[:2]]
    assert gallery.search(centres[7], threshold=1.01) == []


def test_several_embeddings_per_identity_score_by_the_best():
    gallery = Gallery(2)
    gallery.add("alice", [[1, 0], [0, 1]])
    gallery.add("bob", [0.6, 0.8])
    (first, s1), (second, s2) = gallery.search([0, 1], k=2)
    assert (first, second) == ("alice", "bob") and s1 == pytest.approx(1.0) and s2 == pytest.approx(0.8)


def test_remove():
    gallery, centres = random_gallery()
    assert gallery.remove("person7") == 3
    assert "person7" not in gallery.names and len(gallery) == 57
    assert gallery.search(centres[7], k=1)[0][0] != "person7"
    with pytest.raises(KeyError):
        gallery.remove("person7")


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_round_trip(tmp_path, dtype):
    gallery, centres = random_gallery(dtype=dtype)
    gallery.add("Zoë ünïcode", centres[0])
    gallery.save(tmp_path / "g.ffg")
    loaded = Gallery.load(tmp_path / "g.ffg")
    assert loaded.dtype == dtype and loaded.dim == 64 and loaded._names == gallery._names
    np.testing.assert_array_equal(loaded._vectors, gallery._vectors)
    for centre in centres:
        assert loaded.search(centre, k=3) == gallery.search(centre, k=3)


def test_fp16_has_the_same_top1_as_fp32():
    fp32, centres = random_gallery(n_people=200, dim=128)
    fp16, _ = random_gallery(n_people=200, dim=128, dtype="float16")
    queries = centres + 0.3 * np.random.default_rng(5).standard_normal(centres.shape)
    for q in queries:
        assert fp16.search(q, k=1)[0][0] == fp32.search(q, k=1)[0][0]


def test_bad_files_are_refused_and_never_overwritten(tmp_path):
    gallery, _ = random_gallery()
    path = tmp_path / "g.ffg"
    gallery.save(path)
    good = path.read_bytes()
    cases = {
        "truncated": good[: len(good) // 2],
        "checksum": good[:100] + bytes([good[100] ^ 1]) + good[101:],
        "newer": good[:8] + (99).to_bytes(4, "little") + good[12:],
        "not a gallery": b"hello world" * 10,
    }
    messages = {"truncated": "checksum", "checksum": "checksum", "newer": "newer than this fastface",
                "not a gallery": "not a fastface"}
    for case, data in cases.items():
        bad = tmp_path / f"{case}.ffg"
        bad.write_bytes(data)
        with pytest.raises(GalleryError, match=messages[case]):
            Gallery.load(bad)
        assert bad.read_bytes() == data  # a failed load leaves the file as it was
    assert isinstance(GalleryError("x"), ValueError)


def test_bad_arguments():
    gallery = Gallery(4)
    with pytest.raises(ValueError, match="dim"):
        Gallery(0)
    with pytest.raises(ValueError, match="dtype"):
        Gallery(4, "int8")
    with pytest.raises(ValueError, match=r"\(4,\)"):
        gallery.add("a", np.zeros(5))
    with pytest.raises(ValueError, match="NaN"):
        gallery.add("a", [np.nan, 0, 0, 0])
    with pytest.raises(ValueError, match="zeros"):
        gallery.add("a", np.zeros(4))
    with pytest.raises(ValueError, match="name"):
        gallery.add("", np.ones(4))
    assert gallery.search(np.ones(4)) == []
    gallery.add("a", np.ones(4))
    with pytest.raises(ValueError, match="query"):
        gallery.search(np.ones(3))
    with pytest.raises(ValueError, match="k must"):
        gallery.search(np.ones(4), k=0)


KILLED_WRITER = """
import sys, numpy as np
from fastface.gallery import Gallery
g = Gallery(512)
g.add("new", np.random.default_rng(1).standard_normal((60000, 512)))
print("ready", flush=True)
while True:
    g.save(sys.argv[1])
"""


def test_killed_mid_save_leaves_the_previous_gallery(tmp_path):
    path = tmp_path / "g.ffg"
    old, _ = random_gallery()
    old.save(path)
    for attempt in range(5):
        writer = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(path)], stdout=subprocess.PIPE, text=True)
        assert writer.stdout.readline().strip() == "ready"
        time.sleep(0.05 + 0.07 * attempt)  # land somewhere inside a ~120 MB write
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait()
        loaded = Gallery.load(path)  # never a torn file: the old gallery or a complete new one
        assert loaded.names in (old.names, ["new"])
        assert len(loaded) in (len(old), 60000)
