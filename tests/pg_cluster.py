"""A private PostgreSQL cluster for tests and benchmarks: initdb in a temporary folder, served
on 127.0.0.1 at a free port, stopped and removed at the end.

initdb refuses to run as root, so under root the server runs as the unprivileged ``nobody``
(through ``runuser``). ``cluster_or_skip()`` skips with the reason when no server can be
started; FASTFACE_REQUIRE_POSTGRES=1 (CI) turns that skip into a failure.
"""
from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

SUPERUSER, PASSWORD = "postgres", "s3cr3t-pg-pass"


def _bin_dir() -> Path | None:
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(found).resolve().parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(candidates[-1]).parent if candidates else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    def __init__(self):
        bin_dir = _bin_dir()
        if bin_dir is None:
            raise RuntimeError("PostgreSQL's initdb/pg_ctl are not installed (Debian: apt-get install postgresql)")
        try:
            import psycopg  # noqa: F401
        except ImportError:
            raise RuntimeError("psycopg 3 is not installed (pip install 'fastface[postgres]')") from None
        self.bin = bin_dir
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            if not shutil.which("runuser"):
                raise RuntimeError("running as root without runuser: cannot start PostgreSQL as an unprivileged user")
            self.as_user = ["runuser", "-u", "nobody", "--"]
        self.root = Path(tempfile.mkdtemp(prefix="fastface-pg-"))
        self.data = self.root / "data"
        (self.root / "pw").write_text(PASSWORD)
        if self.as_user:
            shutil.chown(self.root, "nobody")
            shutil.chown(self.root / "pw", "nobody")
        self.port = free_port()
        self._run("initdb", "-D", self.data, "-U", SUPERUSER, "--pwfile", self.root / "pw", "-E", "UTF8",
                  "--no-sync", "--auth-host=scram-sha-256", "--auth-local=trust")
        (self.root / "pw").unlink()
        self.start()

    def _run(self, tool, *args, check=True):
        # Not the sanitizer run's preloaded ASan runtime: the server is not ours to instrument.
        env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "ASAN_OPTIONS", "PYTHONMALLOC")}
        return subprocess.run([*self.as_user, str(self.bin / tool), *map(str, args)], capture_output=True,
                              text=True, check=check, timeout=60, env=env)

    def start(self) -> None:
        # fsync off: the tests kill the server, never the machine, and page-cache data survives that.
        options = (f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.root} "
                   "-c fsync=off -c full_page_writes=off -c shared_buffers=32MB -c max_connections=60")
        result = self._run("pg_ctl", "-D", self.data, "-l", self.root / "log", "-o", options, "-w", "-t", "60",
                           "start", check=False)
        if result.returncode != 0:
            log = (self.root / "log").read_text() if (self.root / "log").exists() else ""
            raise RuntimeError(f"pg_ctl start failed: {result.stderr}\n{log[-2000:]}")

    def stop(self, mode: str = "fast") -> None:
        """mode 'immediate' is a crash: no shutdown checkpoint, recovery at the next start."""
        self._run("pg_ctl", "-D", self.data, "-m", mode, "-w", "stop", check=False)

    def url(self, db: str = "postgres", user: str = SUPERUSER, password: str | None = PASSWORD, **query) -> str:
        auth = f"{user}:{password}@" if password else f"{user}@"
        tail = "&".join(f"{k}={v}" for k, v in query.items())
        return f"postgresql://{auth}127.0.0.1:{self.port}/{db}" + (f"?{tail}" if tail else "")

    def sql(self, statement: str, db: str = "postgres", params=()) -> list:
        import psycopg

        with psycopg.connect(self.url(db), autocommit=True) as conn:
            cursor = conn.execute(statement, params)
            return cursor.fetchall() if cursor.description else []

    def new_database(self) -> str:
        name = f"g{time.monotonic_ns()}"
        self.sql(f"CREATE DATABASE {name}")
        return name

    def close(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


def cluster_or_skip() -> Cluster:
    try:
        return Cluster()
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        if os.environ.get("FASTFACE_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"FASTFACE_REQUIRE_POSTGRES=1 but no PostgreSQL server could be started: {exc}")
        pytest.skip(f"no PostgreSQL server for the tests: {exc}")
