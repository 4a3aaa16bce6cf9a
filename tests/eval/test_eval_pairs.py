"""Pair-list readers: LFW pairs.txt, CSV, insightface .bin (restricted unpickling)."""
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest

from fastface.eval import pairs
from fastface.eval.pairs import read_pairs

from shared_data import DATA as SHARED, DEEPFACE

LFW_ROWS = """Abel_Pacheco\t1\t4
Akhmed_Zakayev\t1\t3
Abdel_Madi_Shabneh\t1\tDean_Barker\t1
Abel_Pacheco\t1\tJean-Francois_Lemounier\t1
Aaron_Peirsol\t1\t2
Aaron_Peirsol\t3\t4
Abdullah_Gul\t13\tAbel_Pacheco\t4
Aaron_Peirsol\t2\tAkhmed_Zakayev\t3
"""


def make_tree(root: Path, rows: str) -> None:
    """Empty files for every image a pairs.txt body names (readers check existence only)."""
    for line in rows.splitlines():
        t = line.split()
        refs = [(t[0], t[1]), (t[0], t[2])] if len(t) == 3 else [(t[0], t[1]), (t[2], t[3])]
        for name, i in refs:
            (root / name).mkdir(parents=True, exist_ok=True)
            (root / name / f"{name}_{int(i):04d}.jpg").touch()


def test_lfw_pairs(tmp_path):
    make_tree(tmp_path / "lfw", LFW_ROWS)
    (tmp_path / "pairs.txt").write_text("2\t2\n" + LFW_ROWS)
    p = read_pairs(tmp_path / "pairs.txt", images=tmp_path / "lfw")
    assert len(p) == 8
    assert p.same.tolist() == [True, True, False, False] * 2
    assert p.folds.tolist() == [0] * 4 + [1] * 4 and p.fold_scheme == "lfw"
    # 16 references; Abel_Pacheco 1 and 4, Aaron_Peirsol 2 and Akhmed_Zakayev 3 are reused
    assert len(p.images) == 12

    def rel(i):
        return os.path.relpath(p.images[i], tmp_path / "lfw")

    assert (rel(p.first[0]), rel(p.second[0])) == ("Abel_Pacheco/Abel_Pacheco_0001.jpg",
                                                   "Abel_Pacheco/Abel_Pacheco_0004.jpg")
    assert (rel(p.first[6]), rel(p.second[6])) == ("Abdullah_Gul/Abdullah_Gul_0013.jpg",
                                                   "Abel_Pacheco/Abel_Pacheco_0004.jpg")
    assert p.second[0] == p.second[6]


def test_lfw_single_set_header_and_default_root(tmp_path):
    body = "".join(LFW_ROWS.splitlines(keepends=True)[:4])
    make_tree(tmp_path, body)
    (tmp_path / "pairsDevTest.txt").write_text("2\n" + body + "\n")  # trailing blank line is fine
    p = read_pairs(tmp_path / "pairsDevTest.txt")
    assert len(p) == 4 and p.fold_scheme == "stratified"  # one set: no folds of its own
    assert p.folds.tolist() == [0, 1, 2, 3]
    assert all(Path(f).is_file() for f in p.images)


@pytest.mark.parametrize("text, message", [
    ("", r":1: expected a header"),
    ("ten 300\n", r":1: expected a header"),
    ("1 1 1\n", r":1: expected a header"),
    ("1 1\nAbel_Pacheco 1 4\nA 1 B 1 C\n", r":3: expected 'name i j'"),
    ("1 1\nAbel_Pacheco 1 x\n", r":2: image number must be a positive integer, got 'x'"),
    ("1 1\nAbel_Pacheco 0 4\n", r":2: image number"),
    ("2 1\nAbel_Pacheco 1 4\nAbel_Pacheco 1 Akhmed_Zakayev 1\n", r"2 fold\(s\) .* = 4, found 2"),
])
def test_lfw_malformed(tmp_path, text, message):
    (tmp_path / "pairs.txt").write_text(text)
    with pytest.raises(ValueError, match=message):
        read_pairs(tmp_path / "pairs.txt")


def test_lfw_missing_image_names_line_and_file(tmp_path):
    make_tree(tmp_path, LFW_ROWS)
    os.remove(tmp_path / "Abdullah_Gul" / "Abdullah_Gul_0013.jpg")
    (tmp_path / "pairs.txt").write_text("2 2\n" + LFW_ROWS)
    with pytest.raises(FileNotFoundError, match=r"1 of 12 images .*line 8: .*Abdullah_Gul_0013\.jpg"):
        read_pairs(tmp_path / "pairs.txt")


@pytest.mark.skipif(not (DEEPFACE / "pairs.csv").is_file(), reason=f"shared data not found at {SHARED}")
def test_csv_shared_deepface_pairs():
    p = read_pairs(DEEPFACE / "pairs.csv")
    assert (len(p), int(p.same.sum()), p.fold_scheme) == (300, 38, "stratified")
    # the list holds its 38 same-person pairs first; every fold still gets 30 pairs, 3 or 4 of them same
    assert p.same[:38].all() and not p.same[38:].any()
    assert np.bincount(p.folds).tolist() == [30] * 10
    assert sorted(np.bincount(p.folds[p.same]).tolist()) == [3, 3] + [4] * 8
    assert len(p.images) <= 25 and all(Path(f).parent == DEEPFACE for f in p.images)
    assert Path(p.images[p.first[0]]).name == "img20.jpg" and Path(p.images[p.second[0]]).name == "img21.jpg"


def test_csv_fold_column_and_root(tmp_path):
    for name in ("a.jpg", "b.jpg", "c.jpg"):
        (tmp_path / name).touch()
    (tmp_path / "list.csv").write_text(
        "fold,file_a,file_b,same\n0,a.jpg,b.jpg,1\n\n1, a.jpg ,c.jpg,false\n1,b.jpg,c.jpg,TRUE\n")
    p = read_pairs(tmp_path / "list.csv", images=tmp_path)
    assert p.same.tolist() == [True, False, True]
    assert p.folds.tolist() == [0, 1, 1] and p.fold_scheme == "file"
    assert [Path(p.images[i]).name for i in np.r_[p.first, p.second]] == ["a.jpg", "a.jpg", "b.jpg",
                                                                          "b.jpg", "c.jpg", "c.jpg"]


@pytest.mark.parametrize("text, message", [
    ("a,b,same\nx,y,1\n", r":1: header must name"),
    ("file_a,file_b,same\na.jpg,a.jpg,1\n\na.jpg,a.jpg,2\n",  # line numbers count the blank line
     r":4: 'same' must be 1/0 or true/false, got '2'"),
    ("file_a,file_b,same\na.jpg,a.jpg\n", r":2: expected 3 fields, got 2"),
    ("file_a,file_b,same,fold\na.jpg,a.jpg,1,one\n", r":2: 'fold' must be an integer"),
    ("file_a,file_b,same\n", r"no pairs"),
])
def test_csv_malformed(tmp_path, text, message):
    (tmp_path / "a.jpg").touch()
    (tmp_path / "p.csv").write_text(text)
    with pytest.raises(ValueError, match=message):
        read_pairs(tmp_path / "p.csv")


def test_csv_missing_image(tmp_path):
    (tmp_path / "a.jpg").touch()
    (tmp_path / "p.csv").write_text("file_a,file_b,same\na.jpg,a.jpg,1\na.jpg,nope.jpg,0\n")
    with pytest.raises(FileNotFoundError, match=r"line 3: .*nope\.jpg"):
        read_pairs(tmp_path / "p.csv")


def test_unknown_extension(tmp_path):
    with pytest.raises(ValueError, match="unknown pair list type"):
        read_pairs(tmp_path / "pairs.json")


# ---- insightface .bin ---------------------------------------------------------------------

def encoded_images(n=4):
    cv2 = pytest.importorskip("cv2")
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (8, 8, 3), dtype=np.uint8) for _ in range(n)]
    return images, [cv2.imencode(".png", im)[1].tobytes() for im in images]


def python2_pickle(bins, flags) -> bytes:
    """What Python 2 wrote for (list of str, list of bool) at protocol 2: BINSTRING, no bytes type."""
    out = b"\x80\x02]q\x00(" + b"".join(b"T" + struct.pack("<i", len(b)) + b for b in bins) + b"e]q\x01("
    return out + b"".join(b"\x88" if f else b"\x89" for f in flags) + b"e\x86q\x02."


@pytest.mark.parametrize("variant", ["py3-protocol4", "py3-protocol2", "py3-protocol5",
                                     "numpy-arrays", "numpy-arrays-protocol2", "python2"])
def test_bin_reads_honest_files(tmp_path, variant):
    images, bins = encoded_images()
    flags = [True, False]
    if variant == "python2":
        data = python2_pickle(bins, flags)
    elif variant.startswith("numpy"):
        proto = 2 if variant.endswith("protocol2") else 4
        data = pickle.dumps(([np.frombuffer(b, np.uint8) for b in bins], np.array(flags)), protocol=proto)
    else:
        data = pickle.dumps((bins, flags), protocol=int(variant[-1]))
    (tmp_path / "set.bin").write_bytes(data)
    p = read_pairs(tmp_path / "set.bin")
    assert p.same.tolist() == flags and p.folds is None and p.fold_scheme == "contiguous"
    assert (p.first.tolist(), p.second.tolist()) == ([0, 2], [1, 3])
    assert p.images == bins
    for original, encoded in zip(images, p.images):
        np.testing.assert_array_equal(pairs.decode(encoded), original)


class Payload:
    """Pickles as a call of ``func(*args)``: what a hostile .bin would contain."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


@pytest.mark.parametrize("attack", ["os.system", "open"])
def test_bin_refuses_malicious_pickle(tmp_path, attack):
    marker = tmp_path / "pwned"
    if attack == "os.system":
        call = Payload(os.system, f"touch '{marker}'")
    else:
        call = Payload(open, str(marker), "w")
    _, bins = encoded_images(2)
    data = pickle.dumps(([bins[0], call], [True]), protocol=2)
    (tmp_path / "evil.bin").write_bytes(data)
    with pytest.raises(ValueError, match=r"evil\.bin: .*refusing \w+\.(system|open):"):
        read_pairs(tmp_path / "evil.bin")
    assert not marker.exists()
    pickle.loads(data)  # control: the payload is live, so the assertion above means something
    assert marker.exists()


@pytest.mark.parametrize("payload, message", [
    ((["not bytes", b"x"], [True]), "image 0 is a str"),
    (([b"a", b"b", b"c"], [True]), "3 images for 1 pairs"),
    (([b"a", b"b"], [2]), "only booleans"),
    (([b"a", b"b"], np.array([[1]])), "only booleans"),
    (([b"a", b"b"], [True], "extra"), "pair \\(images, same flags\\)"),
    ((np.array([b"a", b"b"], dtype=object), [True]), "refusing numpy dtype 'O8'"),
    (({"a": b"b"}, [True]), "not a list"),
])
def test_bin_refuses_malformed_content(tmp_path, payload, message):
    (tmp_path / "bad.bin").write_bytes(pickle.dumps(payload, protocol=4))
    with pytest.raises(ValueError, match=message):
        read_pairs(tmp_path / "bad.bin")


def test_bin_truncated(tmp_path):
    _, bins = encoded_images(2)
    (tmp_path / "cut.bin").write_bytes(pickle.dumps((bins, [True]))[:-10])
    with pytest.raises(ValueError, match="not a readable verification .bin"):
        read_pairs(tmp_path / "cut.bin")


def test_decode_errors(tmp_path):
    pytest.importorskip("cv2")
    with pytest.raises(ValueError, match=r"cannot decode encoded image \(3 bytes\)"):
        pairs.decode(b"abc")
    (tmp_path / "x.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(ValueError, match=r"cannot decode .*x\.jpg"):
        pairs.decode(tmp_path / "x.jpg")
    with pytest.raises(FileNotFoundError):
        pairs.decode(tmp_path / "missing.jpg")
