"""Galleries: search semantics, SQLite files (transactions, other processes, crashes, bad files),
version-1 import, and the stored precisions."""
import contextlib
import hashlib
import os
import signal
import sqlite3
import struct
import subprocess
import sys
import time

import numpy as np
import pytest

from fastface.gallery import Gallery, GalleryError

DTYPES = ["float32", "float16", "int8"]


def random_gallery(n_people=20, per_person=3, dim=64, dtype="float32", seed=0, gallery=None):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_people, dim))
    gallery = gallery if gallery is not None else Gallery(dim, dtype)
    for i, centre in enumerate(centres):
        gallery.add(f"person{i}", centre + 0.3 * rng.standard_normal((per_person, dim)))
    return gallery, centres


def write_v1(path, names, vectors, dtype="float32", version=1):
    """A gallery file in the version-1 format (what fastface 0.1 saved)."""
    vectors = np.asarray(vectors, dtype=np.float16 if dtype == "float16" else np.float32)
    body = bytearray(struct.pack("<8sIIIQ", b"FFGALLRY", version, 1 if dtype == "float16" else 0, vectors.shape[1],
                                 len(names)))
    for name in names:
        body += struct.pack("<I", len(name.encode())) + name.encode()
    body += vectors.tobytes()
    path.write_bytes(bytes(body + hashlib.sha256(body).digest()))


def test_search_top_k_and_threshold():
    gallery, centres = random_gallery()
    assert len(gallery) == 60 and len(gallery.names) == 20
    results = gallery.search(centres[7], k=3)
    assert [name for name, _ in results][0] == "person7" and len(results) == 3
    assert results[0][1] > results[1][1] >= results[2][1]
    above = gallery.search(centres[7], threshold=results[1][1])
    assert [n for n, _ in above] == [n for n, _ in results[:2]]
    assert gallery.search(centres[7], threshold=1.01) == []
    batched = gallery.search(centres[:4], k=3)  # (N, D): one list per query
    assert batched == [gallery.search(c, k=3) for c in centres[:4]]


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
    gallery.add("person7", centres[7])  # a new identity under the old name
    assert gallery.search(centres[7], k=1)[0] == ("person7", pytest.approx(1.0))


@pytest.mark.parametrize("dtype", DTYPES)
def test_save_and_load_round_trip(tmp_path, dtype):
    gallery, centres = random_gallery(dtype=dtype)
    gallery.add("Zoë ünïcode", centres[0], metadata={"camera": "door", "ok": True})
    gallery.save(tmp_path / "g.ffg")
    loaded = Gallery.load(tmp_path / "g.ffg")
    assert loaded.dtype == dtype and loaded.dim == 64 and loaded.names == gallery.names
    rows, names = loaded.vectors()
    expected_rows, expected_names = gallery.vectors()
    assert names == expected_names
    np.testing.assert_array_equal(rows, expected_rows)
    assert loaded.metadata("Zoë ünïcode")[0]["metadata"] == {"camera": "door", "ok": True}
    for centre in centres:
        assert loaded.search(centre, k=3) == gallery.search(centre, k=3)


@pytest.mark.parametrize("dtype", ["float16", "int8"])
def test_lower_precisions_have_the_same_top1_as_fp32(dtype):
    fp32, centres = random_gallery(n_people=200, dim=128)
    low, _ = random_gallery(n_people=200, dim=128, dtype=dtype)
    queries = centres + 0.3 * np.random.default_rng(5).standard_normal(centres.shape)
    for q, expected, got in zip(queries, fp32.search(queries, k=1), low.search(queries, k=1)):
        assert got[0][0] == expected[0][0]
        assert got[0][1] == pytest.approx(expected[0][1], abs=0.01 if dtype == "int8" else 2e-3)


def test_file_gallery_commits_every_change(tmp_path):
    path = tmp_path / "g.db"
    with Gallery.open(path, dim=16, dtype="float16") as gallery:
        gallery.add("a", np.ones(16))
        gallery.add_many(["b", "c", "b"], np.eye(16)[:3] + 0.1)
        assert gallery.remove("c") == 1
    reopened = Gallery.open(path)
    assert (reopened.dim, reopened.dtype, len(reopened), reopened.names) == (16, "float16", 3, ["a", "b"])
    assert [i["embeddings"] for i in reopened.identities()] == [1, 2]
    with pytest.raises(GalleryError, match="16-d"):
        Gallery.open(path, dim=32)
    with pytest.raises(GalleryError, match="float16"):
        Gallery.open(path, dtype="int8")
    with pytest.raises(FileNotFoundError):
        Gallery.open(tmp_path / "missing.db")


def test_transaction_is_all_or_nothing(tmp_path):
    gallery = Gallery.open(tmp_path / "g.db", dim=8)
    with gallery.transaction():
        for i in range(20):
            gallery.add(f"p{i}", np.arange(8) + i)
    assert len(gallery) == 20
    with pytest.raises(RuntimeError):
        with gallery.transaction():
            gallery.add("doomed", np.ones(8))
            gallery.remove("p3")
            raise RuntimeError("abort")
    assert len(gallery) == 20 and "doomed" not in gallery.names and "p3" in gallery.names
    assert gallery.search(np.arange(8) + 3.0, k=1)[0][0] == "p3"


def test_sources_for_resumable_enrolment():
    gallery = Gallery(4)
    gallery.add("a", np.ones(4), source="/photos/a/1.jpg", source_sha256="aa")
    gallery.add("b", [1, 0, 0, 0], source="/photos/b/1.jpg", source_sha256="bb")
    assert gallery.sources() == {"/photos/a/1.jpg": "aa", "/photos/b/1.jpg": "bb"}
    assert gallery.remove_source("/photos/b/1.jpg") == 1
    assert gallery.names == ["a"] and len(gallery) == 1
    assert gallery.search([1, 0, 0, 0], k=5) == [("a", pytest.approx(0.5))]


OTHER_PROCESS = """
import sys, numpy as np
from fastface.gallery import Gallery
g = Gallery.open(sys.argv[1])
g.add("newcomer", np.full(16, -1.0))
g.remove("a")
"""


def test_other_processes_see_committed_changes(tmp_path):
    path = tmp_path / "g.db"
    gallery = Gallery.open(path, dim=16)
    gallery.add("a", np.ones(16))
    gallery.add("b", np.arange(16))
    assert gallery.search(np.full(16, -1.0), k=1)[0][0] != "newcomer"
    subprocess.run([sys.executable, "-c", OTHER_PROCESS, str(path)], check=True)
    assert gallery.search(np.full(16, -1.0), k=1)[0] == ("newcomer", pytest.approx(1.0))
    assert gallery.names == ["b", "newcomer"] and len(gallery) == 2
    gallery.add("c", np.ones(16))  # a write after another process's removal still lands in step
    assert [n for n, _ in gallery.search(np.ones(16), k=3)][0] == "c"


WRITER = """
import sys, numpy as np
from fastface.gallery import Gallery
g = Gallery.open(sys.argv[1], dim=32, durable=False)
rng = np.random.default_rng(int(sys.argv[2]))
for i in range(150):
    g.add(f"w{sys.argv[2]}-{i}", rng.standard_normal(32))
"""


def test_two_writing_processes_lose_no_rows(tmp_path):
    path = tmp_path / "g.db"  # both create it if missing: one file wins, neither loses rows
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(seed)]) for seed in (1, 2)]
    assert [w.wait(timeout=120) for w in writers] == [0, 0]
    gallery = Gallery.open(path)
    assert len(gallery) == 300 and len(gallery.names) == 300
    assert {n.split("-")[0] for n in gallery.names} == {"w1", "w2"}


ENROLLER = """
import sys, numpy as np
from fastface.gallery import Gallery
g = Gallery.open(sys.argv[1], dim=128, dtype="float16")
rng = np.random.default_rng(0)
if sys.argv[2] == "batch":
    print("ready", flush=True)
    g.add_many([f"batch{i}" for i in range(200000)], rng.standard_normal((200000, 128)))
    print("committed", flush=True)
for i in range(10**9):
    g.add(f"p{i}", rng.standard_normal(128))
    print(i + 1, flush=True)
"""


def test_sigkill_mid_enrolment_loses_at_most_the_open_transaction(tmp_path):
    path = tmp_path / "g.db"
    committed = 0
    for attempt, mode in enumerate(["one", "one", "batch", "one", "batch"]):
        writer = subprocess.Popen([sys.executable, "-c", ENROLLER, str(path), mode], stdout=subprocess.PIPE, text=True)
        first = writer.stdout.readline().strip()
        assert first in ("1", "ready")
        time.sleep(0.1 + 0.15 * attempt)  # somewhere inside an add, or inside the 200k-row batch
        os.kill(writer.pid, signal.SIGKILL)
        lines = [first] + writer.stdout.read().split()
        writer.wait()
        with contextlib.closing(sqlite3.connect(path)) as db:
            assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        gallery = Gallery.open(path)
        batch_rows = sum(i["embeddings"] for i in gallery.identities() if i["name"].startswith("batch"))
        assert batch_rows % 200000 == 0  # all of a batch or none of it
        singles = len(gallery) - batch_rows
        printed = max([int(x) for x in lines if x.isdigit()], default=0)
        assert committed + printed <= singles <= committed + printed + 1  # at most the add in flight is lost
        committed = singles
        gallery.close()


KILLED_SAVER = """
import sys, numpy as np
from fastface.gallery import Gallery
g = Gallery(512)
g.add("new", np.random.default_rng(1).standard_normal((12000, 512)))
print("ready", flush=True)
while True:
    g.save(sys.argv[1])
"""


def test_killed_mid_save_leaves_the_previous_file(tmp_path):
    path = tmp_path / "g.ffg"
    old, _ = random_gallery()
    old.save(path)
    for attempt in range(3):
        writer = subprocess.Popen([sys.executable, "-c", KILLED_SAVER, str(path)], stdout=subprocess.PIPE, text=True)
        assert writer.stdout.readline().strip() == "ready"
        time.sleep(0.03 + 0.05 * attempt)  # land somewhere inside a ~25 MB save
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait()
        loaded = Gallery.load(path)  # never a torn file: the old gallery or a complete new one
        assert loaded.names in (old.names, ["new"]) and len(loaded) in (len(old), 12000)
        loaded.close()


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_version_1_files_load_and_upgrade(tmp_path, dtype):
    rng = np.random.default_rng(3)
    vectors = rng.standard_normal((5, 32))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    names = ["ann", "bob", "ann", "cy", "dee"]
    path = tmp_path / "old.ffg"
    write_v1(path, names, vectors, dtype)
    original = path.read_bytes()
    loaded = Gallery.load(path)
    assert path.read_bytes() == original and loaded.path is None  # imported, file untouched
    assert loaded.dtype == dtype and loaded.names == ["ann", "bob", "cy", "dee"] and len(loaded) == 5
    assert loaded.search(vectors[3], k=1)[0][0] == "cy"
    with pytest.raises(GalleryError, match="version-1"):
        Gallery.open(path)
    backup = Gallery.upgrade(path)
    assert backup.read_bytes() == original
    upgraded = Gallery.open(path)
    assert upgraded.names == loaded.names and upgraded.search(vectors[0], k=2) == loaded.search(vectors[0], k=2)
    assert Gallery.upgrade(path) is None


def test_bad_files_are_refused_and_never_modified(tmp_path):
    good_v1 = tmp_path / "good.ffg"
    write_v1(good_v1, ["a", "b"], np.eye(2, 8))
    v1 = good_v1.read_bytes()
    cases = {
        "truncated": (v1[: len(v1) // 2], "checksum"),
        "checksum": (v1[:40] + bytes([v1[40] ^ 1]) + v1[41:], "checksum"),
        "newer v1": (None, "newer than this fastface"),
        "not a gallery": (b"hello world" * 10, "not a fastface gallery"),
        "empty": (b"", "not a fastface gallery"),
    }
    newer_v1 = tmp_path / "newer.ffg"
    write_v1(newer_v1, ["a"], np.eye(1, 8), version=99)
    cases["newer v1"] = (newer_v1.read_bytes(), cases["newer v1"][1])
    foreign = tmp_path / "foreign.db"
    with sqlite3.connect(foreign) as db:  # another application's database with a look-alike table
        db.execute("CREATE TABLE embeddings (id INTEGER PRIMARY KEY, vector BLOB)")
    cases["foreign sqlite"] = (foreign.read_bytes(), "another schema")
    newer = tmp_path / "newer.db"
    Gallery.open(newer, dim=8).close()
    with contextlib.closing(sqlite3.connect(newer)) as db:  # closed: the change reaches the main file
        db.execute("PRAGMA user_version = 3")
    cases["newer schema"] = (newer.read_bytes(), "schema v3, newer than this fastface")
    hollow = tmp_path / "hollow.db"  # our header, but the tables are gone
    Gallery.open(hollow, dim=8).close()
    with contextlib.closing(sqlite3.connect(hollow)) as db:
        db.execute("DROP TABLE embeddings")
    cases["another schema"] = (hollow.read_bytes(), "another schema: table embeddings")
    for case, (data, message) in cases.items():
        bad = tmp_path / f"bad-{case}.db"
        bad.write_bytes(data)
        for opener in (Gallery.load, Gallery.open):
            v1_layout = data.startswith(b"FFGALLRY") and opener == Gallery.open  # open() points at load()
            with pytest.raises(GalleryError, match="version-1" if v1_layout else message):
                opener(bad)
            assert bad.read_bytes() == data, case  # a failed load leaves the file as it was
            assert not bad.with_name(bad.name + "-wal").exists()
    assert isinstance(GalleryError("x"), ValueError)


def test_bad_arguments():
    gallery = Gallery(4)
    with pytest.raises(GalleryError, match="dim"):
        Gallery(0)
    with pytest.raises(GalleryError, match="dtype"):
        Gallery(4, "float64")
    with pytest.raises(GalleryError, match=r"\(4,\)"):
        gallery.add("a", np.zeros(5))
    with pytest.raises(GalleryError, match="NaN"):
        gallery.add("a", [np.nan, 0, 0, 0])
    with pytest.raises(GalleryError, match="NaN"):
        gallery.add("a", [np.inf, 0, 0, 0])
    with pytest.raises(GalleryError, match="zeros"):
        gallery.add("a", np.zeros(4))
    with pytest.raises(GalleryError, match="name"):
        gallery.add("", np.ones(4))
    with pytest.raises(GalleryError, match="JSON"):
        gallery.add("a", np.ones(4), metadata={"x": object()})
    assert gallery.search(np.ones(4)) == [] and len(gallery) == 0  # nothing half-added
    gallery.add("a", np.ones(4))
    with pytest.raises(ValueError, match="query"):
        gallery.search(np.ones(3))
    with pytest.raises(ValueError, match="k must"):
        gallery.search(np.ones(4), k=0)
    with pytest.raises(ValueError, match="NaN"):
        gallery.search([np.nan, 0, 0, 0])
    with pytest.raises(ValueError, match="zeros"):
        gallery.search(np.zeros(4))
