"""Cosine matching equals numpy's answer."""
import numpy as np
import pytest

import fastface
from fastface import _core


def numpy_search(queries, gallery, k):
    q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    g = gallery / np.linalg.norm(gallery, axis=1, keepdims=True)
    scores = q @ g.T
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(scores, order, axis=1)


@pytest.mark.parametrize("n", [1000, 10000])
@pytest.mark.parametrize("d", [128, 512])
@pytest.mark.parametrize("threads", [0, 1, 2])
def test_search_equals_numpy(n, d, threads):
    rng = np.random.default_rng(n + d)
    gallery = rng.standard_normal((n, d)).astype(np.float32)
    queries = rng.standard_normal((7, d)).astype(np.float32)
    indices, scores = fastface.search(queries, gallery, k=10, threads=threads)
    expected_indices, expected_scores = numpy_search(queries.astype(np.float64), gallery.astype(np.float64), 10)
    np.testing.assert_array_equal(indices, expected_indices)
    np.testing.assert_allclose(scores, expected_scores, atol=1e-5)
    assert indices.dtype == np.int64 and scores.dtype == np.float32


@pytest.mark.parametrize("isa", _core.available_isas())
def test_every_isa_gives_the_same_ranking(isa):
    rng = np.random.default_rng(1)
    gallery = rng.standard_normal((3000, 128)).astype(np.float32)
    queries = rng.standard_normal((5, 128)).astype(np.float32)
    ref_i, ref_s = _core.search(queries, gallery, 5, 1, False, "scalar")
    got_i, got_s = _core.search(queries, gallery, 5, 1, False, isa)
    np.testing.assert_array_equal(got_i, ref_i)
    np.testing.assert_allclose(got_s, ref_s, atol=1e-5)


def test_single_query_and_cosine_shapes():
    rng = np.random.default_rng(2)
    gallery = rng.standard_normal((50, 64)).astype(np.float32)
    query = gallery[17] * 3.0  # same direction, other length
    indices, scores = fastface.search(query, gallery, k=3)
    assert indices.shape == (3,) and indices[0] == 17 and scores[0] == pytest.approx(1.0, abs=1e-6)
    a, b = rng.standard_normal(64), rng.standard_normal(64)
    assert fastface.cosine(a, b) == pytest.approx(a @ b / np.linalg.norm(a) / np.linalg.norm(b), abs=1e-6)
    assert fastface.cosine(a, gallery).shape == (50,)
    assert fastface.cosine(gallery[:4], gallery).shape == (4, 50)
    np.testing.assert_allclose(np.diag(fastface.cosine(gallery, gallery)), 1.0, atol=1e-6)


def test_unit_rows_promise_gives_the_same_answer():
    rng = np.random.default_rng(3)
    gallery = rng.standard_normal((2000, 128)).astype(np.float32)
    gallery /= np.linalg.norm(gallery, axis=1, keepdims=True)
    query = rng.standard_normal(128).astype(np.float32)
    expected = fastface.search(query, gallery, k=5)
    got = fastface.search(query, gallery, k=5, unit_rows=True)
    np.testing.assert_array_equal(got[0], expected[0])
    np.testing.assert_allclose(got[1], expected[1], atol=1e-5)
