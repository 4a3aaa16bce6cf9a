"""Galleries in PostgreSQL, against a real server (a private cluster, tests/pg_cluster.py): the
file gallery's API, boards that follow the change log, the faults a site meets (server stopped
or killed, a board offline, two writers, a bad cache), encryption at rest, credentials, bad input.

Skipped with the reason when no PostgreSQL server can be started; FASTFACE_REQUIRE_POSTGRES=1
(CI) makes that a failure."""
import json
import logging
import socket
import subprocess
import sys
import threading
import time
import traceback

import numpy as np
import pytest

from fastface.gallery import Gallery, GalleryError
from pg_cluster import PASSWORD, cluster_or_skip
from shared_data import DEEPFACE, DEEPFACE_IDENTITIES, require
from test_gallery import random_gallery

pg_gallery = pytest.importorskip("fastface.pg_gallery")
sealed = pytest.importorskip("fastface.sealed")
GalleryOffline = pg_gallery.GalleryOffline
KEY = bytes(range(100, 132))
DIM = 32
FAST = {"backoff": (0.05, 0.5), "poll": 1.0}  # reconnect quickly in tests


@pytest.fixture(scope="module")
def cluster():
    cluster = cluster_or_skip()
    yield cluster
    cluster.close()


@pytest.fixture
def db(cluster):
    return cluster.new_database()


@pytest.fixture
def url(cluster, db):
    return cluster.url(db)


def wait_for(predicate, timeout: float) -> float:
    """Seconds until predicate() held; fails after timeout."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"not within {timeout} s")
        time.sleep(0.005)
    return time.monotonic() - start


def unit(rng, n=None, dim=DIM):
    v = rng.standard_normal((n or 1, dim)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return v if n else v[0]


def contents(gallery) -> list:
    """The gallery as a sorted list of (name, row bytes): equal means identical."""
    rows, names = gallery.vectors()
    return sorted((name, row.tobytes()) for name, row in zip(names, rows))


def server_contents(url) -> list:
    fresh = Gallery.load(url, follow=False)
    try:
        return contents(fresh)
    finally:
        fresh.close()


def cache_payload(path, key=KEY) -> bytes:
    with sealed.SealedReader(path, key, pg_gallery.CACHE_KIND) as reader:
        data = bytearray()
        try:
            while True:
                data += reader.read(1)
        except sealed.DamagedError:
            pass
    return bytes(data)


class Proxy:
    """A TCP forwarder to the server: the board's network cable, which the test can pull."""

    def __init__(self, port: int):
        self.target, self.plugged, self.sockets = port, True, []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.plugged:
                client.close()
                continue
            upstream = socket.create_connection(("127.0.0.1", self.target))
            self.sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source, sink):
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        for s in (source, sink):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def unplug(self):
        self.plugged = False
        for s in self.sockets:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.sockets = []

    def plug(self):
        self.plugged = True

    def close(self):
        self.unplug()
        self.listener.close()


# --- the API of a file gallery ---------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["float32", "float16", "int8"])
def test_same_api_and_answers_as_a_file_gallery(url, dtype):
    local = Gallery(64, dtype)
    server = Gallery.open(url, dim=64, dtype=dtype, follow=False)
    _, centres = random_gallery(dtype=dtype, gallery=local)
    random_gallery(dtype=dtype, gallery=server)
    for g in (local, server):
        g.add("Zoë ünïcode", centres[0], metadata={"camera": "door"}, source="/p/z.jpg", source_sha256="ab")
        assert g.remove("person3") == 3
        with g.transaction():
            g.add("late", centres[3])
            g.remove("person5")
        with pytest.raises(RuntimeError), g.transaction():
            g.add("rolled back", centres[4])
            raise RuntimeError("abort")
        with pytest.raises(KeyError):
            g.remove("nobody")
    assert server.names == local.names and len(server) == len(local) == 56
    assert contents(server) == contents(local)  # the same rows, bit for bit, in the stored precision
    for query in centres:
        ours, theirs = server.search(query, k=4), local.search(query, k=4)
        assert [n for n, _ in ours] == [n for n, _ in theirs]
        assert [s for _, s in ours] == pytest.approx([s for _, s in theirs], abs=1e-6)
    assert server.search(centres[:3], threshold=0.5) == local.search(centres[:3], threshold=0.5)
    assert server.identify(centres[7], 0.5)[0] == "person7"
    strip = lambda rows: [{k: v for k, v in r.items() if k not in ("first_added", "last_added", "id", "added")}
                          for r in rows]
    assert strip(server.identities()) == strip(local.identities())
    assert strip(server.metadata("Zoë ünïcode")) == strip(local.metadata("Zoë ünïcode"))
    assert server.sources() == local.sources() == {"/p/z.jpg": "ab"}
    assert server.remove_source("/p/z.jpg") == 1 and "Zoë ünïcode" not in server.names
    stats = server.stats()
    assert (stats["dim"], stats["dtype"], stats["identities"], stats["embeddings"]) == (64, dtype, 19, 55)
    for bad in (np.zeros(64), np.full(64, np.nan), np.ones(63)):
        with pytest.raises(GalleryError):
            server.add("bad", bad)
    with pytest.raises(GalleryError):
        server.add("", np.ones(64))
    server.close()


def test_schema_is_versioned_and_every_change_is_logged_in_sequence(cluster, db, url):
    gallery = Gallery.open(url, dim=DIM)
    rng = np.random.default_rng(1)
    gallery.add_many(["a", "b", "a"], unit(rng, 3))
    gallery.add("c", unit(rng), source="/c.jpg")
    gallery.remove("a")
    gallery.remove_source("/c.jpg")
    settings = dict(cluster.sql("SELECT key, value FROM gallery", db))
    assert settings["application"] == "fastface-gallery" and settings["schema_version"] == "1"
    assert (settings["dim"], settings["dtype"]) == (str(DIM), "float32")
    log = cluster.sql("SELECT seq, kind FROM changes ORDER BY seq", db)
    assert log == [(1, "add"), (2, "add"), (3, "add"), (4, "add"), (5, "remove_identity"), (6, "remove_embedding")]
    assert cluster.sql("SELECT seq FROM head", db) == [(6,)]
    gallery.close()


# --- boards ----------------------------------------------------------------------------------

def test_enrolled_on_one_machine_is_searchable_on_another_within_a_second_and_removal_leaves_nothing(
        url, tmp_path):
    rng = np.random.default_rng(2)
    writer = Gallery.open(url, dim=DIM)
    writer.add_many([f"p{i}" for i in range(20)], unit(rng, 20))
    cache = tmp_path / "board" / "gallery.cache"
    cache.parent.mkdir()
    board = Gallery.load(url, cache=cache, key=KEY, **FAST)
    assert len(board) == 20 and cache.exists()
    face = unit(rng)
    writer.add("Newcomer Unique", face)
    wait_for(lambda: board.search(face, k=1)[0][0] == "Newcomer Unique", 1.0)
    board.close()  # the cache is written on close
    assert b"Newcomer Unique" in cache_payload(cache) and face.tobytes() in cache_payload(cache)
    board = Gallery.load(url, cache=cache, key=KEY, **FAST)
    writer.remove("Newcomer Unique")
    wait_for(lambda: "Newcomer Unique" not in board.names, 1.0)
    assert board.search(face, k=1)[0][0] != "Newcomer Unique"
    # No biometric data left behind: the cache is rewritten at once after a removal.
    wait_for(lambda: b"Newcomer Unique" not in cache_payload(cache), 1.0)
    assert face.tobytes() not in cache_payload(cache) and b"Newcomer" not in cache.read_bytes()
    board.close()
    writer.close()


def test_polling_when_notifications_do_not_come(url):
    rng = np.random.default_rng(3)
    writer = Gallery.open(url, dim=DIM)
    writer.add("first", unit(rng))
    board = Gallery.load(url, listen=False, poll=0.2)
    writer.add("second", unit(rng))
    wait_for(lambda: board.names == ["first", "second"], 3.0)
    board.close()
    writer.close()


def test_a_board_needs_only_a_read_only_role_and_enrolment_a_writer_role(cluster, db):
    # The roles from the README, verbatim.
    board_role, writer_role = f"board_{db}", f"enrol_{db}"
    Gallery.open(cluster.url(db), dim=DIM).close()  # created by its owner
    for statement in (
            f"CREATE ROLE {board_role} LOGIN PASSWORD 'board-pw'",
            f"GRANT CONNECT ON DATABASE {db} TO {board_role}",
            f"GRANT USAGE ON SCHEMA public TO {board_role}",
            f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {board_role}",
            f"CREATE ROLE {writer_role} LOGIN PASSWORD 'writer-pw'",
            f"GRANT CONNECT ON DATABASE {db} TO {writer_role}",
            f"GRANT USAGE ON SCHEMA public TO {writer_role}",
            f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {writer_role}",
            f"GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO {writer_role}"):
        cluster.sql(statement, db)
    rng = np.random.default_rng(4)
    writer = Gallery.open(cluster.url(db, writer_role, "writer-pw"))
    writer.add("alice", unit(rng))
    board = Gallery.load(cluster.url(db, board_role, "board-pw"), **FAST)
    writer.add("bob", unit(rng))
    writer.remove("alice")
    wait_for(lambda: board.names == ["bob"], 2.0)
    with pytest.raises(GalleryError, match="permission denied"):
        board.add("mallory", unit(rng))
    assert "mallory" not in writer.names
    board.close()
    writer.close()


# --- faults ----------------------------------------------------------------------------------

def test_server_stopped_while_boards_search(cluster, url):
    """Boards keep answering from their index while the server is down, writers get a clear
    error, and after the restart the boards reconnect (with backoff) and catch up."""
    rng = np.random.default_rng(5)
    writer = Gallery.open(url, dim=DIM)
    faces = unit(rng, 50)
    writer.add_many([f"p{i}" for i in range(50)], faces)
    boards = [Gallery.load(url, **FAST) for _ in range(2)]
    before = [b.search(faces[:10], k=3) for b in boards]
    cluster.stop()
    try:
        for _ in range(20):
            assert [b.search(faces[:10], k=3) for b in boards] == before
        wait_for(lambda: not any(b.online for b in boards), 5.0)
        with pytest.raises(GalleryOffline):
            writer.add("during", unit(rng))
    finally:
        cluster.start()
    newcomer = unit(rng)
    writer.add("after", newcomer)
    for board in boards:
        wait_for(lambda: board.search(newcomer, k=1)[0][0] == "after", 5.0)
        assert board.online and contents(board) == server_contents(url)
        board.close()
    writer.close()


def test_server_killed_in_the_middle_of_a_10000_face_enrolment(cluster, db, url):
    """All or nothing per transaction: 5,000 of 10,000 faces sent when the server is killed ->
    none of them anywhere (server, log, boards); enrolled again -> all of them."""
    rng = np.random.default_rng(6)
    writer = Gallery.open(url, dim=DIM, dtype="float16")
    writer.add_many(["seed0", "seed1"], unit(rng, 2))
    board = Gallery.load(url, **FAST)
    names = [f"person{i}" for i in range(10000)]
    faces = unit(rng, 10000)

    def enrol(kill_after=None):
        with writer.transaction():
            for step in range(10):
                part = slice(step * 1000, (step + 1) * 1000)
                writer.add_many(names[part], faces[part])
                if step == 4:
                    assert board.sync() == 2 and board.names == ["seed0", "seed1"]  # nothing half-visible
                    if kill_after:
                        cluster.stop("immediate")

    try:
        with pytest.raises(GalleryOffline):
            enrol(kill_after=True)
    finally:
        cluster.start()
    assert cluster.sql("SELECT count(*) FROM embeddings", db) == [(2,)]
    assert cluster.sql("SELECT count(*), max(seq) FROM changes", db) == [(2, 2)]
    assert cluster.sql("SELECT seq FROM head", db) == [(2,)]
    assert board.names == ["seed0", "seed1"] and len(board) == 2
    enrol()
    wait_for(lambda: len(board) == 10002, 10.0)
    assert contents(board) == server_contents(url)
    assert cluster.sql("SELECT count(*), min(seq), max(seq) FROM changes", db) == [(10002, 1, 10002)]
    board.close()
    writer.close()


def test_a_board_offline_for_a_hundred_changes_converges_exactly(cluster, url, tmp_path):
    rng = np.random.default_rng(7)
    writer = Gallery.open(url, dim=DIM, dtype="int8")
    writer.add_many([f"p{i % 30}" for i in range(60)], unit(rng, 60))
    for i in range(5):
        writer.add(f"p{i}", unit(rng), source=f"/photos/{i}.jpg")
    proxy = Proxy(cluster.port)
    cache = tmp_path / "cache"
    board = Gallery.load(url.replace(f":{cluster.port}/", f":{proxy.port}/"), cache=cache, key=KEY, **FAST)
    assert contents(board) == server_contents(url)
    (head_before,) = cluster.sql("SELECT seq FROM head", url.rsplit("/", 1)[1])[0]
    proxy.unplug()
    snapshot = contents(board)
    changes = 0
    for i in range(60):  # 60 changes: new people and more photos of known ones
        writer.add(f"p{i % 45}" if i % 3 else f"new{i}", unit(rng))
        changes += 1
    for i in range(10, 20):  # 10 removals
        writer.remove(f"p{i}")
        changes += 1
    for i in range(5):  # 5 photos replaced: 5 removals of single embeddings
        writer.remove_source(f"/photos/{i}.jpg")
        changes += 1
    writer.add_many([f"p{i}" for i in range(10, 35)], unit(rng, 25))  # 25 back under their old names
    changes += 25
    assert changes == 100
    assert cluster.sql("SELECT seq FROM head", url.rsplit("/", 1)[1]) == [(head_before + 100,)]
    assert contents(board) == snapshot  # still answering, from what it had
    proxy.plug()
    wait_for(lambda: board.stats()["seq"] == head_before + 100, 10.0)
    assert contents(board) == server_contents(url) and board.names == writer.names
    board.close()
    reopened = Gallery.load(url, cache=cache, key=KEY, follow=False)  # the cache converged too
    assert contents(reopened) == server_contents(url)
    reopened.close()
    proxy.close()
    writer.close()


def test_two_writers_at_once(cluster, db, url):
    rng = np.random.default_rng(8)
    Gallery.open(url, dim=DIM).close()
    board = Gallery.load(url, **FAST)
    faces = unit(rng, 400)
    errors = []

    def write(who: int):
        try:
            gallery = Gallery.open(url)
            for i in range(40):
                rows = faces[who * 200 + i * 5: who * 200 + i * 5 + 5]
                gallery.add_many([f"w{who}-{i}"] * 4 + ["shared"], rows)
                if i % 4 == 3:
                    gallery.remove(f"w{who}-{i - 1}")
            gallery.close()
        except Exception:
            errors.append(traceback.format_exc())

    threads = [threading.Thread(target=write, args=(w,)) for w in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[0]
    count, first, last = cluster.sql("SELECT count(*), min(seq), max(seq) FROM changes", db)[0]
    assert (count, first, last) == (2 * (40 * 5 + 10), 1, 2 * (40 * 5 + 10))  # no gaps, no duplicates
    assert cluster.sql("SELECT seq FROM head", db) == [(last,)]
    assert cluster.sql("SELECT count(*) FROM embeddings e JOIN identities i ON i.id = e.identity "
                       "WHERE i.name = 'shared'", db) == [(80,)]
    wait_for(lambda: board.stats()["seq"] == last, 10.0)
    assert contents(board) == server_contents(url) and len(board) == 2 * (200 - 40)
    board.close()


def test_a_truncated_tampered_or_foreign_cache_is_refused_and_rebuilt(cluster, url, tmp_path, caplog, monkeypatch):
    monkeypatch.setattr(sealed, "CHUNK", 1 << 16)
    rng = np.random.default_rng(9)
    writer = Gallery.open(url, dim=DIM)
    writer.add_many([f"p{i}" for i in range(2000)], unit(rng, 2000))  # 280 kB: several 64 KiB chunks
    other_url = cluster.url(cluster.new_database())
    other = Gallery.open(other_url, dim=DIM)
    other.add_many(["stranger"] * 3, unit(rng, 3))
    cache, foreign = tmp_path / "cache", tmp_path / "foreign"
    Gallery.load(url, cache=cache, key=KEY, follow=False).close()
    Gallery.load(other_url, cache=foreign, key=KEY, follow=False).close()
    good = cache.read_bytes()
    assert len(good) > 3 << 16
    expected = server_contents(url)
    damaged = {"truncated": good[:len(good) // 2], "cut at a chunk": good[:67 + (1 << 16) + 16],
               "tampered": good[:5000] + bytes([good[5000] ^ 1]) + good[5001:], "foreign": foreign.read_bytes(),
               "empty": b""}
    for what, data in damaged.items():
        cache.write_bytes(data)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="fastface.gallery"):
            board = Gallery.load(url, cache=cache, key=KEY, follow=False)
        assert contents(board) == expected, what
        assert "stranger" not in board.names
        if what != "foreign":  # a foreign cache is only found out once the server answers
            assert "refusing the gallery cache" in caplog.text, what
        board.close()
        assert cache.read_bytes() != data  # rebuilt ...
        check = Gallery.load(url, cache=cache, key=KEY, follow=False)  # ... and whole again
        assert contents(check) == expected
        check.close()
    # With the server down a damaged cache is an error, never half a gallery.
    cache.write_bytes(good[:len(good) // 2])
    cluster.stop()
    try:
        started = time.monotonic()
        with pytest.raises(GalleryOffline, match="cache .* is missing or unusable"):
            Gallery.load(url, cache=cache, key=KEY, connect_timeout=2)
        assert time.monotonic() - started < 10
        cache.write_bytes(good)  # a good cache: the board starts without the network
        offline = Gallery.load(url, cache=cache, key=KEY, **FAST)
        assert contents(offline) == expected and not offline.online
        offline.close()
    finally:
        cluster.start()
    other.close()
    writer.close()


# --- encryption at rest ------------------------------------------------------------------

def test_cache_needs_the_right_key_and_a_wrong_one_overwrites_nothing(url, tmp_path, monkeypatch):
    monkeypatch.delenv(sealed.KEY_ENV, raising=False)
    monkeypatch.delenv(sealed.KEY_FILE_ENV, raising=False)
    rng = np.random.default_rng(10)
    writer = Gallery.open(url, dim=DIM)
    writer.add("Secret Person", unit(rng))
    cache = tmp_path / "data" / "gallery.cache"
    cache.parent.mkdir()
    with pytest.raises(GalleryError, match="gallery.cache needs a key"):
        Gallery.load(url, cache=cache)
    assert not cache.exists()
    monkeypatch.setenv(sealed.KEY_ENV, KEY.hex())
    Gallery.load(url, cache=cache, follow=False).close()
    data = cache.read_bytes()
    assert b"Secret Person" not in data
    with pytest.raises(GalleryError, match="gallery.cache was encrypted with another key"):
        Gallery.load(url, cache=cache, key=bytes(32))
    assert cache.read_bytes() == data
    key_file = tmp_path / "keys" / "gallery.key"
    key_file.parent.mkdir()
    key_file.write_text(KEY.hex())
    monkeypatch.delenv(sealed.KEY_ENV)
    monkeypatch.setenv(sealed.KEY_FILE_ENV, str(key_file))
    board = Gallery.load(url, cache=cache, follow=False)
    assert board.names == ["Secret Person"]
    board.close()
    beside = cache.parent / "gallery.key"
    beside.write_text(KEY.hex())
    with pytest.raises(GalleryError, match="never beside the data"):
        Gallery.load(url, cache=cache, key_file=beside)
    writer.close()


# --- credentials -------------------------------------------------------------------------

def test_passwords_never_appear_in_errors_reprs_stats_or_logs(cluster, db, url, caplog, monkeypatch):
    wrong = cluster.url(db, password="Wr0ng-Pa55word")
    with pytest.raises(GalleryOffline) as error:
        Gallery.open(wrong, dim=DIM)
    text = "".join(traceback.format_exception(error.value))
    assert "password authentication failed" in text and "Wr0ng-Pa55word" not in text
    assert f"postgresql://postgres@127.0.0.1:{cluster.port}/{db}" in str(error.value)
    cluster.sql("CREATE TABLE people (id int)", db)
    with pytest.raises(GalleryError) as error:
        Gallery.open(url, dim=DIM)
    assert PASSWORD not in "".join(traceback.format_exception(error.value))
    cluster.sql("DROP TABLE people", db)
    gallery = Gallery.open(url, dim=DIM, **FAST)
    gallery.add("x", np.ones(DIM))
    with caplog.at_level(logging.DEBUG):
        len(gallery)
        cluster.stop()
        try:
            wait_for(lambda: not gallery.online, 5.0)
            with pytest.raises(GalleryOffline) as error:
                gallery.add("y", np.ones(DIM))
        finally:
            cluster.start()
        wait_for(lambda: gallery.online, 10.0)
    assert "offline" in caplog.text
    for text in (repr(gallery), str(gallery.stats()), caplog.text, str(error.value)):
        assert PASSWORD not in text
    gallery.close()
    # libpq's own places work: PGPASSWORD instead of a password in the URL.
    monkeypatch.setenv("PGPASSWORD", PASSWORD)
    from_env = Gallery.open(cluster.url(db, password=None))
    assert from_env.names == ["x"]
    from_env.close()


def test_sslmode_passes_through_to_libpq(cluster, db):
    with pytest.raises(GalleryOffline, match="SSL"):
        Gallery.open(cluster.url(db, sslmode="require"), dim=DIM)
    Gallery.open(cluster.url(db, sslmode="disable"), dim=DIM).close()


# --- bad input -----------------------------------------------------------------------------

def test_unreachable_server_without_cache_is_a_clear_error_within_the_timeout(cluster):  # cluster: psycopg is here
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    with pytest.raises(GalleryOffline, match=f"cannot connect to postgresql://u@127.0.0.1:{port}/db"):
        Gallery.load(f"postgresql://u:pw@127.0.0.1:{port}/db")
    silent = socket.create_server(("127.0.0.1", 0))  # accepts, never answers
    try:
        started = time.monotonic()
        with pytest.raises(GalleryOffline, match="timeout"):
            Gallery.load(f"postgresql://u:pw@127.0.0.1:{silent.getsockname()[1]}/db", connect_timeout=1)
        assert time.monotonic() - started < 5
    finally:
        silent.close()


def test_what_is_not_a_compatible_gallery_is_refused_and_left_alone(cluster, db, url):
    with pytest.raises(GalleryError, match="schema is empty"):
        Gallery.load(url)
    cluster.sql("CREATE TABLE people (id int, name text)", db)
    with pytest.raises(GalleryError, match="not a fastface gallery: it holds other tables"):
        Gallery.open(url, dim=DIM)
    tables = lambda: cluster.sql("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1", db)
    assert tables() == [("people",)]
    cluster.sql("DROP TABLE people", db)
    Gallery.open(url, dim=DIM, dtype="float16").close()
    with pytest.raises(GalleryError, match="holds 32-d embeddings, not 64-d"):
        Gallery.open(url, dim=64)
    with pytest.raises(GalleryError, match="stores float16 embeddings, not int8"):
        Gallery.open(url, dtype="int8")
    with pytest.raises(GalleryError, match="dtype must be one of"):
        Gallery.open(url, dtype="float64")
    cluster.sql("UPDATE gallery SET value = '2' WHERE key = 'schema_version'", db)
    with pytest.raises(GalleryError, match="schema v2, newer than this fastface reads"):
        Gallery.load(url)
    cluster.sql("UPDATE gallery SET value = '1' WHERE key = 'schema_version'", db)
    cluster.sql("UPDATE gallery SET value = 'other-app' WHERE key = 'application'", db)
    with pytest.raises(GalleryError, match="not a fastface gallery"):
        Gallery.load(url)
    cluster.sql("UPDATE gallery SET value = 'fastface-gallery' WHERE key = 'application'", db)
    cluster.sql("INSERT INTO identities(name) VALUES ('broken')", db)
    cluster.sql("INSERT INTO embeddings(identity, vector, scale, added) SELECT id, '\\x0102'::bytea, 1, 0 "
                "FROM identities", db)
    with pytest.raises(GalleryError, match="corrupt row"):
        Gallery.load(url)
    with pytest.raises(GalleryError, match="invalid port"):
        Gallery.load("postgresql://u:pw@127.0.0.1:99999999/db")


def test_the_runtime_import_stays_light():
    code = ("import sys, tempfile, os, fastface\n"
            "g = fastface.Gallery.open(os.path.join(tempfile.mkdtemp(), 'g.db'), dim=4)\n"
            "g.add('a', [1, 0, 0, 0]); g.search([1, 0, 0, 0])\n"
            "print(sorted(m for m in ('psycopg', 'cryptography', 'fastface.pg_gallery') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --- the command line and Stream -----------------------------------------------------------

def cli(*args, **env):
    import os
    return subprocess.run([sys.executable, "-m", "fastface", *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=300)


@require(DEEPFACE)
def test_cli_enrolls_into_identifies_from_and_manages_a_server_gallery(cluster, db, tmp_path):
    people = tmp_path / "people"
    for name in ("a", "b", "c"):
        (people / name).mkdir(parents=True)
        (people / name / "1.jpg").symlink_to(DEEPFACE / DEEPFACE_IDENTITIES[name][0])
    url = cluster.url(db, password=None)  # the password from libpq's environment, not the command line
    enrolled = cli("enroll", url, people, "--threads", "1", "--dtype", "float16", "--json", PGPASSWORD=PASSWORD)
    assert enrolled.returncode == 0, enrolled.stderr
    assert json.loads(enrolled.stdout)["enrolled"] == 3 and "warning" not in enrolled.stderr
    with_password = cli("gallery", "ls", cluster.url(db), "--json")
    assert with_password.returncode == 0 and "visible to every user" in with_password.stderr
    assert [r["name"] for r in json.loads(with_password.stdout)] == ["a", "b", "c"]
    key_file = tmp_path / "keys" / "k"
    key_file.parent.mkdir()
    key_file.write_text(KEY.hex())
    cache = tmp_path / "board" / "cache"
    cache.parent.mkdir()
    out = cli("identify", url, DEEPFACE / "img12.jpg", "--threads", "1", "--json", "--cache", cache,
              "--key-file", key_file, PGPASSWORD=PASSWORD)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["faces"][0]["match"] == "b" and cache.exists()
    assert cli("gallery", "rm", url, "b", PGPASSWORD=PASSWORD).returncode == 0
    stats = cli("gallery", "stats", url, "--json", PGPASSWORD=PASSWORD)
    assert json.loads(stats.stdout)["identities"] == 2 and json.loads(stats.stdout)["dtype"] == "float16"
    # No password anywhere: a clear error, no prompt, no hang; with a cache, answers from it, warned.
    refused = cli("identify", url, DEEPFACE / "img12.jpg", "--threads", "1")
    assert refused.returncode == 2 and "no password supplied" in refused.stderr
    cached = cli("identify", url, DEEPFACE / "img1.jpg", "--threads", "1", "--json", "--cache", cache,
                 "--key-file", key_file)
    assert cached.returncode == 0 and "answering from the cache" in cached.stderr
    assert json.loads(cached.stdout)["faces"][0]["match"] == "a"


@require(DEEPFACE)
def test_stream_takes_the_url_and_follows_it(url):
    import cv2

    import fastface

    analyzer = fastface.FaceAnalyzer(fastface.Detector(threads=1), fastface.Embedder(threads=1))
    writer = Gallery.open(url, dim=analyzer.embedder.dim)
    writer.add("someone else", analyzer.largest_face(cv2.imread(str(DEEPFACE / "img3.jpg"))).embedding)
    frame = cv2.imread(str(DEEPFACE / "img2.jpg"))
    stream = fastface.Stream(iter([frame] * 10), analyzer, url)  # loads the gallery from the URL
    assert stream.gallery.names == ["someone else"]
    writer.add("alice", analyzer.largest_face(cv2.imread(str(DEEPFACE / "img1.jpg"))).embedding)
    wait_for(lambda: "alice" in stream.gallery.names, 1.0)  # enrolled elsewhere, followed by the stream's gallery
    assert [e.name for e in stream if e.kind == "identified"] == ["alice"]
    stream.gallery.close()
    writer.close()


def test_the_compact_name_table_behaves_like_a_dict():
    rng = np.random.default_rng(11)
    reference = {i: f"name{i}-ü" for i in range(1, 3000, 3)}
    names = pg_gallery._Names(sorted(reference.items()))
    for step in range(3000):
        identity = int(rng.integers(0, 4000))
        if rng.random() < 0.5:
            names.pop(identity)
            reference.pop(identity, None)
        elif identity not in reference:
            names.update({identity: f"new{identity}"})
            reference[identity] = f"new{identity}"
        if step % 500 == 0:
            names = names.compacted()
    assert list(names.items()) == sorted(reference.items()) and len(names) == len(reference)
    assert all(names.get(i) == reference.get(i) for i in range(4000))
    with pytest.raises(ValueError, match="out of order"):
        pg_gallery._Names([(2, "b"), (1, "a")])


def test_a_cache_that_cannot_be_written_does_not_stop_the_board(url, tmp_path, caplog):
    rng = np.random.default_rng(12)
    writer = Gallery.open(url, dim=DIM)
    writer.add("first", unit(rng))
    with pytest.raises(GalleryError, match="no folder .* for the gallery cache"):
        Gallery.load(url, cache=tmp_path / "missing" / "cache", key=KEY)
    folder = tmp_path / "board"
    folder.mkdir()
    board = Gallery.load(url, cache=folder / "cache", key=KEY, **FAST)
    (folder / "cache").unlink()
    (folder / "cache").mkdir()  # in the way of every write (even root's: permissions would not stop it)
    (folder / "cache" / "x").touch()
    with caplog.at_level(logging.ERROR, logger="fastface.gallery"):
        writer.add("second", unit(rng))
        writer.remove("first")  # a removal rewrites the cache at once: that fails, loudly
        wait_for(lambda: board.names == ["second"], 2.0)
        wait_for(lambda: "cannot write the gallery cache" in caplog.text, 2.0)
    assert board.online and sorted(p.name for p in folder.iterdir()) == ["cache"]  # no temporary file left
    (folder / "cache" / "x").unlink()
    (folder / "cache").rmdir()
    writer.add("third", unit(rng))
    wait_for(lambda: board.names == ["second", "third"], 2.0)
    board.close()
    assert load_names(folder / "cache") == ["second", "third"]
    writer.close()


def load_names(cache):
    return [name for _, name in pg_gallery.load_cache(cache, KEY).names.items()]
