"""The optional faiss backend (fastface[faiss]) against fastface's exact search, on clustered
synthetic identities (one embedding each, like a 1M-person gallery): build time, recall@1 (the
exact search's top identity found) and latency per query, 1 thread. Target at 1M x 128: under
50 ms per query at >= 99% recall@1. Sizes: gallery_sizes.py (FASTFACE_BENCH_FULL=1 for 1M)."""
import math
import time

import numpy as np
import pytest

from fastface.gallery import Gallery
from gallery_sizes import DIM, FULL, ROWS, report

faiss = pytest.importorskip("faiss")
from fastface.faiss_index import FaissGallery  # noqa: E402  (after the skip)

QUERIES = 500 if FULL else 100


def clustered(n, seed=0):
    """Identities around 1000 cluster centres (faces of similar people sit close together)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((1000, DIM), dtype=np.float32)
    rows = centres[rng.integers(0, 1000, n)] + 0.7 * rng.standard_normal((n, DIM), dtype=np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def setup():
    rows = clustered(ROWS)
    gallery = Gallery(DIM, "float32")
    for first in range(0, ROWS, 100_000):
        chunk = rows[first:first + 100_000]
        gallery.add_many([f"id{i}" for i in range(first, first + len(chunk))], chunk)
    rng = np.random.default_rng(1)
    # Probes: a new photo of an enrolled identity (its embedding plus noise, cosine ~0.75).
    picked = rng.choice(ROWS, QUERIES, replace=False)
    probes = rows[picked] + 0.06 * rng.standard_normal((QUERIES, DIM), dtype=np.float32)
    started = time.perf_counter()
    exact = [results[0][0] for results in gallery.search(probes, k=1, threads=1)]
    exact_ms = 1e3 * (time.perf_counter() - started) / QUERIES
    del rows
    return gallery, probes, exact, exact_ms


def measure(index, probes, exact):
    faiss.omp_set_num_threads(1)
    found, started = [], time.perf_counter()
    for probe in probes:  # one query at a time: identification latency, not batch throughput
        found.append(index.search(probe, k=1)[0][0])
    ms = 1e3 * (time.perf_counter() - started) / len(probes)
    return np.mean(np.array(found) == np.array(exact)), ms


def test_faiss_indexes(setup):
    gallery, probes, exact, exact_ms = setup
    lists = 1 << max(4, round(math.log2(4 * math.sqrt(ROWS))))  # ~4 sqrt(N) inverted lists
    configs = [("Flat", {}), (f"IVF{lists},Flat", {"nprobe": 16}), (f"IVF{lists},Flat", {"nprobe": 64}),
               ("HNSW32", {"ef_search": 64}), ("HNSW32", {"ef_search": 256})]
    lines = [f"{'fastface exact float32 (probes batched)':40s} build      -    recall@1 100.00%  {exact_ms:7.2f} ms/query"]
    built, recalls = {}, {}
    faiss.omp_set_num_threads(2)  # building may use the cores; queries run on 1 thread
    for factory, params in configs:
        index = built.get(factory)
        if index is None:
            index = built[factory] = FaissGallery(gallery, factory)
        for name, value in params.items():
            faiss.ParameterSpace().set_index_parameter(index.index, {"nprobe": "nprobe", "ef_search": "efSearch"}[name], value)
        recall, ms = measure(index, probes, exact)
        label = factory + "".join(f" {k}={v}" for k, v in params.items())
        recalls[label] = recall, ms
        lines.append(f"{label:40s} build {index.build_seconds:6.1f} s  recall@1 {100 * recall:6.2f}%  {ms:7.2f} ms/query")
    report(f"faiss vs exact search, {ROWS} identities, {QUERIES} probes, 1 query thread", lines)
    assert recalls["Flat"][0] >= 0.99  # exact in both: only float ties may differ
    if FULL:
        assert any(recall >= 0.99 and ms < 50 for recall, ms in recalls.values())
