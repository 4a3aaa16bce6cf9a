"""The C++ gallery matrix (fastface._core.GalleryIndex): float16/int8 encoding against numpy,
and every ISA's search against the scalar kernels over many shapes."""
import numpy as np
import pytest

from fastface import _core

PRECISIONS = ["float32", "float16", "int8"]


def unit_rows(rng, n, d):
    rows = rng.standard_normal((n, d)).astype(np.float32)
    return rows, (rows / np.linalg.norm(rows.astype(np.float64), axis=1, keepdims=True)).astype(np.float32)


def test_encoding_matches_numpy():
    rng = np.random.default_rng(0)
    rows, unit = unit_rows(rng, 300, 77)
    half, scales = _core.GalleryIndex.encode(rows, "float16")
    assert half.dtype == np.float16 and np.all(scales == 1)
    np.testing.assert_array_equal(half, unit.astype(np.float16))  # numpy rounds to nearest even too
    q, scales = _core.GalleryIndex.encode(rows, "int8")
    largest = np.abs(unit).max(axis=1, keepdims=True)
    np.testing.assert_allclose(scales, largest[:, 0] / 127, rtol=1e-6)
    np.testing.assert_array_equal(q, np.rint(unit * (np.float32(127) / largest)).astype(np.int8))
    assert np.abs(q).max(axis=1).min() == 127  # symmetric: the largest value of each row is +-127


def test_every_half_decodes_like_numpy():
    halves = np.arange(0x10000, dtype=np.uint16).view(np.float16)
    finite = halves[np.isfinite(halves)]
    finite = finite[: len(finite) // 16 * 16].reshape(-1, 16)
    index = _core.GalleryIndex(16, "float16")
    index.add_encoded(np.ascontiguousarray(finite), None, np.zeros(len(finite), np.int32))
    np.testing.assert_array_equal(index.decode(0, len(finite)), finite.astype(np.float32))


@pytest.mark.parametrize("precision", PRECISIONS)
def test_every_isa_searches_like_the_scalar_kernels(precision):
    rng = np.random.default_rng(1)
    for d in (1, 3, 8, 17, 64, 100, 128, 512):
        for n in (1, 31, 33, 700):
            rows, _ = unit_rows(rng, n, d)
            index = _core.GalleryIndex(d, precision)
            encoded, scales = _core.GalleryIndex.encode(rows, precision)
            labels = rng.integers(0, max(1, n // 4), n).astype(np.int32)
            index.add_encoded(encoded, scales if precision == "int8" else None, labels)
            queries = rng.standard_normal((3, d)).astype(np.float32)
            for by_label in (False, True):
                reference = index.search(queries, 5, by_label, threads=1, isa="scalar")
                # Exact scores on the decoded rows: the scalar kernels are the reference.
                decoded = index.decode(0, n).astype(np.float64)
                exact = (queries / np.linalg.norm(queries, axis=1, keepdims=True)) @ decoded.T
                for (ids, scores), row_scores in zip(reference, exact):
                    keys = labels if by_label else np.arange(n)
                    expected = {int(key): row_scores[keys == key].max() for key in ids}
                    np.testing.assert_allclose(scores, [expected[int(i)] for i in ids], atol=1e-5)
                    assert scores[0] == pytest.approx(row_scores.max(), abs=1e-5)
                for isa in _core.available_isas():
                    for threads in (1, 2):
                        got = index.search(queries, 5, by_label, threads=threads, isa=isa)
                        for (ref_ids, ref_scores), (ids, scores) in zip(reference, got):
                            np.testing.assert_allclose(scores, ref_scores, atol=1e-5)
                            strict = np.diff(ref_scores, prepend=np.inf, append=-np.inf)
                            clear = (-strict[:-1] > 1e-5) & (-strict[1:] > 1e-5)  # no near-tie either side
                            np.testing.assert_array_equal(ids[clear], ref_ids[clear])


def test_threshold_and_unlimited_k():
    index = _core.GalleryIndex(2, "int8")
    index.add_encoded(*_core.GalleryIndex.encode(np.array([[1, 0], [0.8, 0.6], [0, 1], [-1, 0]], np.float32), "int8"),
                      np.array([7, 7, 8, 9], np.int32))
    (ids, scores), = index.search(np.array([[1, 0]], np.float32), 0, True, 0.0)
    assert ids.tolist() == [7, 8] and scores[0] == pytest.approx(1, abs=1e-2) and scores[1] == pytest.approx(0, abs=1e-2)
    (ids, _), = index.search(np.array([[1, 0]], np.float32), 0, False, 0.5)
    assert ids.tolist() == [0, 1]


def test_capacity_grows_geometrically():
    index = _core.GalleryIndex(8, "float16")
    capacities = set()
    rng = np.random.default_rng(2)
    for _ in range(3000):
        index.add_encoded(*_core.GalleryIndex.encode(rng.standard_normal((1, 8)).astype(np.float32), "float16")[:1],
                          None, np.zeros(1, np.int32))
        capacities.add(index.capacity)
    assert len(index) == 3000 and len(capacities) < 15


@pytest.mark.parametrize("precision", PRECISIONS)
def test_encoded_gives_back_the_stored_rows_exactly(precision):
    rng = np.random.default_rng(3)
    rows, _ = unit_rows(rng, 50, 16)
    encoded, scales = _core.GalleryIndex.encode(rows, precision)
    index = _core.GalleryIndex(16, precision)
    index.add_encoded(encoded, scales if precision == "int8" else None, np.arange(50, dtype=np.int32) % 7)
    index.remove_label(3)
    kept = np.arange(50) % 7 != 3
    got_rows, got_scales = index.encoded(0, len(index))
    assert got_rows.dtype == encoded.dtype and np.array_equal(got_rows, encoded[kept])
    assert np.array_equal(got_scales, scales[kept])
    assert np.array_equal(index.encoded(5, 3)[0], encoded[kept][5:8]) and len(index.encoded(0, 0)[0]) == 0
    with pytest.raises(ValueError, match="outside the gallery"):
        index.encoded(len(index) - 1, 2)
