"""The optional faiss backend: built from a gallery's rows, it answers like Gallery.search."""
import numpy as np
import pytest

from fastface.gallery import Gallery, GalleryError

faiss = pytest.importorskip("faiss")
from fastface.faiss_index import FaissGallery  # noqa: E402


@pytest.fixture(scope="module")
def gallery():
    rng = np.random.default_rng(0)
    g = Gallery(32, "float16")
    g.add_many([f"p{i % 500}" for i in range(1500)], rng.standard_normal((1500, 32)))  # 3 rows per identity
    return g


def test_exact_indexes_agree_with_gallery_search(gallery):
    queries = np.random.default_rng(1).standard_normal((20, 32)).astype(np.float32)
    expected = gallery.search(queries, k=5)
    for index in (FaissGallery(gallery, "Flat"), FaissGallery(gallery, "IVF16,Flat", nprobe=16)):
        got = index.search(queries, k=5)
        for ours, theirs in zip(got, expected):
            assert [n for n, _ in ours] == [n for n, _ in theirs]
            np.testing.assert_allclose([s for _, s in ours], [s for _, s in theirs], atol=1e-3)  # float16 rows
    flat = FaissGallery(gallery, "Flat")
    assert len(flat) == 1500 and flat.build_seconds >= 0
    (_, s1), (_, s2), (_, s3) = expected[0][:3]
    assert s2 - s3 > 2e-3  # a clear gap: the threshold between them does not depend on rounding
    above = flat.search(queries[0], k=5, threshold=(s2 + s3) / 2)
    assert [n for n, _ in above] == [n for n, _ in expected[0][:2]]


def test_hnsw_finds_enrolled_faces(gallery):
    rows, names = gallery.vectors()
    index = FaissGallery(gallery, "HNSW16", ef_search=64)
    found = [index.search(row, k=1)[0][0] for row in rows[:100]]
    assert np.mean(np.array(found) == np.array(names[:100])) >= 0.95


def test_bad_factory_and_queries(gallery):
    with pytest.raises(GalleryError, match="faiss cannot build"):
        FaissGallery(gallery, "NoSuchIndex")
    with pytest.raises(GalleryError, match="query"):
        FaissGallery(gallery, "Flat").search(np.ones(31))
    with pytest.raises(GalleryError, match="non-zero"):
        FaissGallery(gallery, "Flat").search(np.zeros(32))
