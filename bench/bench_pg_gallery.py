"""Galleries in PostgreSQL at scale, measured in one run against a private server (tests/pg_cluster.py):

* initial sync of a board (binary COPY into its GalleryIndex), and the board's RSS after it,
  in a fresh process, beside the matrix's own size;
* the board's start from its encrypted cache with the server stopped (offline start);
* enrol-to-searchable: one identity added on one connection until a following board (LISTEN)
  finds it by search, median and worst of 20;
* search latency of the board against a gallery file holding the same rows (the same index:
  the ratio should be ~1.0x).

Sizes: FASTFACE_BENCH_PG_SIZES (comma-separated identities, one embedding each), default 20000
so that `pytest bench --benchmark-disable` stays quick; FASTFACE_BENCH_FULL=1 runs 100000 and
1000000. Figures go to stdout (-s) and to $FASTFACE_BENCH_REPORT when set.
"""
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np
import pytest

from fastface.gallery import Gallery
from gallery_sizes import DIM, FULL
from pg_cluster import cluster_or_skip

SIZES = [int(s) for s in os.environ.get("FASTFACE_BENCH_PG_SIZES", "100000,1000000" if FULL else "20000").split(",")]
KEY = bytes(range(32))
BATCH = 100_000


def report(title: str, lines: list[str]) -> None:
    text = "\n".join([f"== {title}", *lines]) + "\n"
    print("\n" + text)
    if os.environ.get("FASTFACE_BENCH_REPORT"):
        with open(os.environ["FASTFACE_BENCH_REPORT"], "a") as f:
            f.write(text)


def random_unit(n, seed):
    rows = np.random.default_rng(seed).standard_normal((n, DIM), dtype=np.float32)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    return rows


@pytest.fixture(scope="module")
def cluster():
    cluster = cluster_or_skip()
    yield cluster
    cluster.close()


@pytest.fixture(scope="module", params=SIZES, ids=lambda n: f"{n}")
def seeded(request, cluster, tmp_path_factory):
    """A server gallery and a gallery file with the same n identities (float32, 128-d)."""
    n = request.param
    url = cluster.url(cluster.new_database())
    path = tmp_path_factory.mktemp("pg-bench") / "same.db"
    server = Gallery.open(url, dim=DIM)
    local = Gallery.open(path, dim=DIM, durable=False)
    started = time.perf_counter()
    for start in range(0, n, BATCH):
        rows = random_unit(min(BATCH, n - start), seed=start)
        server.add_many([f"person{start + i}" for i in range(len(rows))], rows)
    enrol_seconds = time.perf_counter() - started
    for start in range(0, n, BATCH):
        rows = random_unit(min(BATCH, n - start), seed=start)
        local.add_many([f"person{start + i}" for i in range(len(rows))], rows)
    server.close()
    local.close()
    return cluster, url, path, n, enrol_seconds


_CHILD = """
import json, os, sys, time
def rss():
    return int(open('/proc/self/statm').read().split()[1]) * os.sysconf('SC_PAGE_SIZE')
def peak():  # VmHWM, not ru_maxrss: that one carries the parent's peak over fork + exec
    line = next(l for l in open('/proc/self/status') if l.startswith('VmHWM:'))
    return int(line.split()[1]) * 1024
from fastface.gallery import Gallery
from fastface import pg_gallery, sealed
import psycopg, cryptography.hazmat.primitives.ciphers.aead
url, cache = os.environ['BENCH_URL'], os.environ.get('BENCH_CACHE') or None
base = rss()
started = time.perf_counter()
g = Gallery.load(url, follow=False, cache=cache, key=bytes(range(32)) if cache else None)
seconds = time.perf_counter() - started
print(json.dumps({'seconds': seconds, 'rss_before': base, 'rss_after': rss(), 'online': g.online,
                  'peak': peak(), 'rows': len(g),
                  'matrix_bytes': g.stats()['matrix_bytes']}))
"""


def _board_process(url, cache=None) -> dict:
    # The URL (with its password) goes through the environment, never the command line (ps).
    env = {**os.environ, "BENCH_URL": url, "BENCH_CACHE": str(cache or "")}
    out = subprocess.run([sys.executable, "-c", _CHILD], env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_initial_sync_rss_and_offline_start(seeded, tmp_path):
    cluster, url, _, n, enrol_seconds = seeded
    synced = _board_process(url)
    assert synced["rows"] == n and synced["online"]
    cache = tmp_path / "cache"
    built = _board_process(url, cache)  # syncs and writes the encrypted cache
    cluster.stop()
    try:
        offline = _board_process(url, cache)  # server down: starts from the cache alone
    finally:
        cluster.start()
    assert offline["rows"] == n and not offline["online"]
    mb = 1 / 2**20
    report(f"PostgreSQL gallery: {n} identities x {DIM} float32, one board process", [
        f"enrol (add_many, {BATCH} per transaction)   {enrol_seconds:8.2f} s   {n / enrol_seconds:10.0f} faces/s",
        f"initial sync (binary COPY -> GalleryIndex)  {synced['seconds']:8.2f} s   {n / synced['seconds']:10.0f} rows/s",
        f"board RSS after sync                        {synced['rss_after'] * mb:8.1f} MB  (before the gallery "
        f"{synced['rss_before'] * mb:.1f} MB, matrix {synced['matrix_bytes'] * mb:.1f} MB, peak {synced['peak'] * mb:.1f} MB)",
        f"sync + writing the encrypted cache          {built['seconds']:8.2f} s   cache {cache.stat().st_size * mb:.1f} MB",
        f"offline start from the cache (server down)  {offline['seconds']:8.2f} s   RSS {offline['rss_after'] * mb:.1f} MB"])


def test_enrol_to_searchable_on_another_connection(seeded):
    _, url, _, n, _ = seeded
    board = Gallery.load(url)  # follows: LISTEN/NOTIFY
    writer = Gallery.open(url)
    faces = random_unit(20, seed=-5 % 2**32)
    commit_to_found, add_seconds = [], []
    for i, face in enumerate(faces):
        seq = board.stats()["seq"]
        started = time.perf_counter()
        writer.add(f"newcomer{i}", face)
        committed = time.perf_counter()
        # Poll the board's sequence number, not search: a search in flight holds the index
        # (~a full scan at 1M rows) and the catch-up waits for it, which would time the polling.
        while board.stats()["seq"] == seq:
            if time.perf_counter() - committed > 5:
                raise AssertionError("not in the board's index within 5 s")
            time.sleep(0.0002)
        commit_to_found.append(time.perf_counter() - committed)
        add_seconds.append(committed - started)
        assert board.search(face, k=1, threads=1)[0][0] == f"newcomer{i}"
    board.close()
    writer.close()
    report(f"enrol-to-searchable on another connection, {n} identities (20 trials)", [
        f"add() until committed               median {1e3 * statistics.median(add_seconds):7.1f} ms   "
        f"max {1e3 * max(add_seconds):7.1f} ms",
        f"committed until in the board's index median {1e3 * statistics.median(commit_to_found):7.1f} ms   "
        f"max {1e3 * max(commit_to_found):7.1f} ms (plus at most one search in flight)"])
    assert max(commit_to_found) < 1.0


def test_search_latency_board_vs_file(seeded):
    _, url, path, n, _ = seeded
    board, local = Gallery.load(url, follow=False), Gallery.open(path)
    query = random_unit(1, seed=12345)[0]
    assert board.search(query, k=5, threads=1) == local.search(query, k=5, threads=1)

    times = {board: [], local: []}
    for _ in range(3):  # warm: every page of both matrices touched
        board.search(query, k=5, threads=1), local.search(query, k=5, threads=1)
    for _ in range(21 if FULL else 7):  # interleaved: both see the same load on a shared machine
        for gallery in (board, local):
            started = time.perf_counter()
            gallery.search(query, k=5, threads=1)
            times[gallery].append(time.perf_counter() - started)
    pg_seconds, file_seconds = statistics.median(times[board]), statistics.median(times[local])
    pg_best, file_best = min(times[board]), min(times[local])
    report(f"search, {n} identities x {DIM} float32, top-5, 1 thread, same run (median, best)", [
        f"gallery file (SQLite)          {1e3 * file_seconds:8.3f} ms {1e3 * file_best:8.3f} ms",
        f"board of a PostgreSQL gallery  {1e3 * pg_seconds:8.3f} ms {1e3 * pg_best:8.3f} ms   "
        f"{file_seconds / pg_seconds:5.2f}x / {file_best / pg_best:5.2f}x the file's speed"])
    board.close()
    local.close()
