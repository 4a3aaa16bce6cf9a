"""Fetch ncnn's official source release from the package registry with pip, by name.

Usage: python fetch_ncnn.py VERSION SHA256 DEST_DIR

Leaves the unpacked tree at DEST_DIR/ncnn-VERSION (skipped when already there), so builds
in any tree share one download. Only the standard library and pip are needed.

Why the sitecustomize: ncnn's setup.py stamps its version with *today's* date, so pip's
metadata check rejects the pinned release ("inconsistent version"). Running pip with a
sitecustomize that makes ``time.strftime("%Y%m%d", ...)`` answer the release date makes the
metadata agree. ``--no-build-isolation`` keeps pip from replacing our sitecustomize with its
own, so the child gets setuptools and wheel from where this process found them (pip's build
environment when pip is building fastface) and pip from the interpreter's own environment.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

SITECUSTOMIZE = '''
import importlib, sys, time
_release = {release!r}
_strftime = time.strftime
def _pinned_strftime(fmt, *args):
    return _release if fmt == "%Y%m%d" else _strftime(fmt, *args)
time.strftime = _pinned_strftime
# Chain to the next sitecustomize on the path, if any (e.g. a distribution's). Our folder
# leaves sys.path for good: the next one may rebuild sys.path, and that must stand.
sys.path[:] = [p for p in sys.path if p != {here!r}]
_this_module = sys.modules.pop("sitecustomize")
try:
    importlib.import_module("sitecustomize")
except ImportError:
    pass
finally:
    sys.modules["sitecustomize"] = _this_module  # the import machinery expects to find us
'''


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _plain_environment() -> dict:
    """This environment without a build isolation's path overrides."""
    env = dict(os.environ)
    for name in ("PYTHONPATH", "PYTHONNOUSERSITE"):
        env.pop(name, None)
    return env


def _build_tool_dirs() -> list:
    """Where this process imports setuptools and wheel from (pip's build environment, if any)."""
    dirs = []
    for name in ("setuptools", "wheel"):
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            continue
        dirs.append(str(Path(spec.origin).parent.parent))
    if not dirs:
        raise SystemExit("fetching ncnn's source needs setuptools (and wheel): pip install setuptools wheel")
    return dirs


def _pip_dir(env: dict) -> str:
    """The folder holding this interpreter's own pip (build isolation hides it from us)."""
    probe = "import os, pip; print(os.path.dirname(os.path.dirname(pip.__file__)))"
    found = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True)
    if found.returncode != 0:
        raise SystemExit(f"{sys.executable} has no pip, which fetches ncnn's source release: {found.stderr.strip()}")
    return found.stdout.strip()


def download_sdist(version: str, expected_sha256: str, dest: Path) -> Path:
    sdist = dest / f"ncnn-{version}.tar.gz"
    if sdist.exists() and sha256_of(sdist) == expected_sha256:
        return sdist
    release_date = version.rsplit(".", 1)[-1]
    with tempfile.TemporaryDirectory() as shim:
        Path(shim, "sitecustomize.py").write_text(SITECUSTOMIZE.format(release=release_date, here=shim))
        env = _plain_environment()
        env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys([shim, *_build_tool_dirs(), _pip_dir(env)]))
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
               "--no-build-isolation", "--disable-pip-version-check", "-d", str(dest),
               f"ncnn=={version}"]
        print("fastface: fetching ncnn source release:", " ".join(cmd), flush=True)
        subprocess.run(cmd, env=env, check=True)
    actual = sha256_of(sdist)
    if actual != expected_sha256:
        sdist.unlink()
        raise SystemExit(f"ncnn sdist checksum mismatch: expected {expected_sha256}, got {actual}")
    return sdist


def main() -> None:
    if len(sys.argv) != 4:
        raise SystemExit(__doc__)
    version, expected_sha256, dest = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    source = dest / f"ncnn-{version}"
    if (source / "CMakeLists.txt").exists():
        return
    dest.mkdir(parents=True, exist_ok=True)
    sdist = download_sdist(version, expected_sha256, dest)
    partial = Path(tempfile.mkdtemp(dir=dest, prefix=".unpack-"))
    with tarfile.open(sdist) as archive:
        archive.extractall(partial, filter="data") if hasattr(tarfile, "data_filter") else archive.extractall(partial)
    os.replace(partial / f"ncnn-{version}", source)  # atomic: a half-unpacked tree is never seen
    partial.rmdir()


if __name__ == "__main__":
    main()
