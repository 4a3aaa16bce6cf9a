"""The package's shape: a light runtime import, complete type stubs, a working CLI entry."""
import ast
import subprocess
import sys
from pathlib import Path

import fastface
from fastface import _core


def test_runtime_import_needs_numpy_and_the_core_only():
    code = "import sys, fastface; print(sorted(m for m in ('torch', 'cv2', 'matplotlib', 'pnnx') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_stubs_cover_the_extension_module():
    stub = ast.parse((Path(fastface.__file__).parent / "_core.pyi").read_text())
    stubbed = {node.name for node in stub.body if isinstance(node, (ast.FunctionDef, ast.ClassDef))}
    public = {name for name in dir(_core) if not name.startswith("_")}
    assert public == stubbed


def test_public_api_exists_and_is_documented():
    for name in fastface.__all__:
        obj = getattr(fastface, name)
        assert callable(obj) is False or obj.__doc__, f"{name} has no docstring"


def test_cli_help_lists_the_subcommands():
    out = subprocess.run([sys.executable, "-m", "fastface.cli", "--help"], capture_output=True, text=True, check=True)
    for command in ("demo", "verify", "enroll", "identify", "eval", "compare", "train"):
        assert command in out.stdout


def test_the_best_kernels_for_this_cpu_are_selected():
    # On ARM (a board, or the aarch64 wheel under qemu in CI) that is NEON; on x86, AVX2 or SSE2.
    import platform

    machine = platform.machine().lower()
    isas = _core.available_isas()
    if machine in ("aarch64", "arm64") or machine.startswith("armv7"):
        assert isas == ["scalar", "neon"] and _core.best_isa() == "neon"
    elif machine in ("x86_64", "amd64"):
        assert isas[:2] == ["scalar", "sse2"] and _core.best_isa() in ("sse2", "avx2") and _core.best_isa() == isas[-1]
    else:
        assert _core.best_isa() == isas[-1]
