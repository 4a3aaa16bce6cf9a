"""``fastface gallery ls | rm | stats`` and resumable ``fastface enroll``."""
import json
import subprocess
import sys

import numpy as np
import pytest

from fastface.gallery import Gallery
from shared_data import DEEPFACE, DEEPFACE_IDENTITIES, MOBILEFACENET, MOBILEFACENET_CARD, RETINAFACE_PARAM, require


def cli(*args):
    return subprocess.run([sys.executable, "-m", "fastface", *map(str, args)], capture_output=True, text=True)


def test_gallery_ls_rm_stats(tmp_path):
    path = tmp_path / "g.db"
    gallery = Gallery.open(path, dim=8, dtype="int8")
    gallery.add("ann", np.eye(2, 8) + 0.1)
    gallery.add("bob", np.ones(8))
    gallery.close()
    listed = json.loads(cli("gallery", "ls", path, "--json").stdout)
    assert [(r["name"], r["embeddings"]) for r in listed] == [("ann", 2), ("bob", 1)]
    assert cli("gallery", "ls", path).stdout.splitlines()[0].startswith("ann\t2\t")
    stats = json.loads(cli("gallery", "stats", path, "--json").stdout)
    assert (stats["dtype"], stats["dim"], stats["identities"], stats["embeddings"]) == ("int8", 8, 2, 3)
    removed = cli("gallery", "rm", path, "ann")
    assert removed.returncode == 0 and "removed ann (2 embeddings)" in removed.stdout
    assert Gallery.open(path).names == ["bob"]
    missing = cli("gallery", "rm", path, "ann")
    assert missing.returncode == 2 and "no identity named 'ann'" in missing.stderr
    not_a_gallery = tmp_path / "notes.txt"
    not_a_gallery.write_text("hello")
    refused = cli("gallery", "stats", not_a_gallery)
    assert refused.returncode == 2 and "not a fastface gallery" in refused.stderr
    assert not_a_gallery.read_text() == "hello"


@require(RETINAFACE_PARAM)
@require(MOBILEFACENET)
@require(DEEPFACE)
def test_enroll_is_incremental_and_resumable(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    for suffix in (".param", ".bin"):
        (model / f"mobilefacenet{suffix}").symlink_to(MOBILEFACENET / f"mobilefacenet{suffix}")
    (model / "mobilefacenet.json").write_text(json.dumps(MOBILEFACENET_CARD))
    common = ["--model", model / "mobilefacenet.param", "--detector", RETINAFACE_PARAM, "--json"]
    people = tmp_path / "people"
    for name in ("a", "b", "c"):
        (people / name).mkdir(parents=True)
        (people / name / "1.jpg").symlink_to(DEEPFACE / DEEPFACE_IDENTITIES[name][0])
    gallery = tmp_path / "people.ffg"
    first = cli("enroll", gallery, people, *common, "--dtype", "float16")
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["enrolled"] == 3 and "enrolling" in first.stderr  # the progress bar
    (people / "a" / "2.jpg").symlink_to(DEEPFACE / DEEPFACE_IDENTITIES["a"][1])
    (people / "b" / "1.jpg").unlink()  # b's photo replaced by another one of b: re-enrolled
    (people / "b" / "1.jpg").symlink_to(DEEPFACE / DEEPFACE_IDENTITIES["b"][1])
    second = json.loads(cli("enroll", gallery, people, *common).stdout)
    assert (second["enrolled"], second["already_enrolled"], second["identities"]) == (2, 2, 3)
    loaded = Gallery.open(gallery)
    assert loaded.dtype == "float16" and len(loaded) == 4  # b's old embedding went with its old content
    assert [i["embeddings"] for i in loaded.identities()] == [2, 1, 1]
    assert json.loads(cli("enroll", gallery, people, *common).stdout)["enrolled"] == 0


@require(RETINAFACE_PARAM)
@require(MOBILEFACENET)
@require(DEEPFACE)
def test_enroll_converts_a_version_1_gallery(tmp_path):
    from test_gallery import write_v1

    model = tmp_path / "model"
    model.mkdir()
    for suffix in (".param", ".bin"):
        (model / f"mobilefacenet{suffix}").symlink_to(MOBILEFACENET / f"mobilefacenet{suffix}")
    (model / "mobilefacenet.json").write_text(json.dumps(MOBILEFACENET_CARD))
    people = tmp_path / "people"
    (people / "c").mkdir(parents=True)
    (people / "c" / "1.jpg").symlink_to(DEEPFACE / DEEPFACE_IDENTITIES["c"][0])
    gallery = tmp_path / "old.ffg"
    write_v1(gallery, ["old"], np.eye(1, 128))
    out = cli("enroll", gallery, people, "--model", model / "mobilefacenet.param", "--detector", RETINAFACE_PARAM, "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["upgraded_from"] == str(gallery) + ".v1"
    assert Gallery.open(gallery).names == ["old", "c"]
    with pytest.raises(Exception):
        Gallery.open(gallery.with_name("old.ffg.v1"))  # the backup stays a version-1 file
