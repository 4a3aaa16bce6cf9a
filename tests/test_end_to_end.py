"""Detect -> align -> embed -> match on real photos, through the API and the CLI."""
import csv
import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

import fastface
from fastface.eval import evaluate_scores
from shared_data import (DEEPFACE, DEEPFACE_IDENTITIES, MOBILEFACENET, MOBILEFACENET_CARD, RETINAFACE_PARAM,
                         require)

pytestmark = [require(RETINAFACE_PARAM), require(MOBILEFACENET), require(DEEPFACE)]


@pytest.fixture(scope="module")
def analyzer():
    return fastface.FaceAnalyzer(fastface.Detector(RETINAFACE_PARAM),
                                 fastface.Embedder(MOBILEFACENET / "mobilefacenet.param", card=MOBILEFACENET_CARD))


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """The shared MobileFaceNet as a user keeps it: files plus a card, in one folder (links)."""
    folder = tmp_path_factory.mktemp("model")
    for suffix in (".param", ".bin"):
        (folder / f"mobilefacenet{suffix}").symlink_to(MOBILEFACENET / f"mobilefacenet{suffix}")
    (folder / "mobilefacenet.json").write_text(json.dumps(MOBILEFACENET_CARD))
    return folder


def test_pairs_csv_verification_accuracy(analyzer):
    rows = list(csv.DictReader(open(DEEPFACE / "pairs.csv")))
    names = sorted({r[k] for r in rows for k in ("file_a", "file_b")})
    images = [cv2.imread(str(DEEPFACE / n)) for n in names]
    embeddings = {n: faces[0].embedding for n, faces in zip(names, analyzer.analyze_many(images, threads=2))}
    scores = np.array([embeddings[r["file_a"]] @ embeddings[r["file_b"]] for r in rows])
    same = np.array([r["same"] == "1" for r in rows])
    result = evaluate_scores(scores, same, name="fastface")
    print(f"\npairs.csv 10-fold: {result.summary['accuracy_mean']:.4f} {result.summary['counts']} "
          f"AUC {result.summary['auc']:.4f}")
    # The hand-built reference (OpenCV YuNet + OpenCV warp + ncnn Python) reaches 99.67% here.
    assert result.summary["accuracy_mean"] >= 0.99


def test_analyze_many_equals_analyze(analyzer):
    images = [cv2.imread(str(DEEPFACE / n)) for n in ("couple.jpg", "img1.jpg", "img22.jpg")]
    batch = analyzer.analyze_many(images, threads=3)
    for image, faces in zip(images, batch):
        single = analyzer.analyze(image)
        assert len(single) == len(faces)
        for a, b in zip(single, faces):
            np.testing.assert_allclose(a.embedding, b.embedding, atol=1e-6)
    assert analyzer.analyze(np.full((300, 300, 3), 200, np.uint8)) == []


def cli(*args):
    return subprocess.run([sys.executable, "-m", "fastface", *map(str, args)], capture_output=True, text=True)


def test_cli_verify(model_dir):
    common = ["--model", model_dir / "mobilefacenet.param", "--detector", RETINAFACE_PARAM]
    same = cli("verify", DEEPFACE / "img1.jpg", DEEPFACE / "img2.jpg", *common)
    assert same.returncode == 0 and "same person" in same.stdout
    different = cli("verify", DEEPFACE / "img1.jpg", DEEPFACE / "img3.jpg", *common, "--json")
    assert different.returncode == 0 and json.loads(different.stdout)["same"] is False
    missing = cli("verify", DEEPFACE / "nope.jpg", DEEPFACE / "img2.jpg", *common)
    assert missing.returncode == 2 and "no image at" in missing.stderr


def test_cli_enroll_identify_annotate(tmp_path, model_dir, analyzer):
    common = ["--model", model_dir / "mobilefacenet.param", "--detector", RETINAFACE_PARAM]
    people = tmp_path / "people"
    for name, photos in DEEPFACE_IDENTITIES.items():
        (people / name).mkdir(parents=True)
        (people / name / photos[0]).symlink_to(DEEPFACE / photos[0])
    (people / "a" / "notes.txt").write_text("not an image")
    (people / "a" / "broken.jpg").write_bytes(b"not a jpeg")
    gallery = tmp_path / "people.ffg"
    enrolled = cli("enroll", gallery, people, *common, "--json")
    assert enrolled.returncode == 0, enrolled.stderr
    report = json.loads(enrolled.stdout)
    assert report["enrolled"] == 9 and report["identities"] == 9 and report["skipped"] == [str(people / "a" / "broken.jpg")]
    loaded = fastface.Gallery.load(gallery)
    for name, photos in DEEPFACE_IDENTITIES.items():
        for photo in photos[1:]:
            face = analyzer.analyze(cv2.imread(str(DEEPFACE / photo)))[0]
            assert loaded.search(face.embedding, k=1)[0][0] == name, photo
    out = cli("identify", gallery, DEEPFACE / "img12.jpg", *common, "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["faces"][0]["match"] == "b"
    annotated = tmp_path / "annotated.jpg"
    out = cli("identify", gallery, DEEPFACE / "couple.jpg", *common, "--annotate", annotated)
    assert out.returncode == 0 and len(out.stdout.splitlines()) == 2
    assert cv2.imread(str(annotated)).shape == cv2.imread(str(DEEPFACE / "couple.jpg")).shape


def test_cli_refuses_a_corrupt_gallery_without_touching_it(tmp_path, model_dir):
    gallery = tmp_path / "g.ffg"
    gallery.write_bytes(b"FFGALLRY" + b"\x01" * 100)
    out = cli("identify", gallery, DEEPFACE / "img1.jpg", "--model", model_dir / "mobilefacenet.param",
              "--detector", RETINAFACE_PARAM)
    assert out.returncode == 2 and "checksum" in out.stderr
    assert gallery.read_bytes() == b"FFGALLRY" + b"\x01" * 100
