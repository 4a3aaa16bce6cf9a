"""The package's shape: a light runtime import, complete type stubs, a working CLI entry."""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

import fastface
from fastface import _core
from fastface.cli import SUBCOMMANDS


HEAVY = ("torch", "cv2", "matplotlib", "pnnx", "urllib.request", "fastface.train", "fastface.export", "fastface.eval",
         "fastface.cli", "fastface.hub.cache", "fastface.hub.download")


def test_runtime_import_needs_numpy_and_the_core_only():
    code = f"import sys, fastface; print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_finding_the_bundled_models_loads_neither_the_cache_nor_the_http_stack():
    code = ("import sys, fastface; fastface.Embedder(); fastface.Detector(); "
            f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_moved_modules_import_under_their_old_names_as_the_same_module():
    code = ("import warnings, fastface; warnings.simplefilter('error', DeprecationWarning)\n"
            "try:\n    import fastface.registry\nexcept DeprecationWarning as w:\n    print(w)\n"
            "warnings.simplefilter('ignore')\n"
            "import fastface.registry, fastface.download, fastface.hub.registry, fastface.hub.download\n"
            "print(fastface.registry is fastface.hub.registry, fastface.download is fastface.hub.download,\n"
            "      fastface.hub.registry.__spec__.name)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.splitlines()
    assert out == ["fastface.registry moved to fastface.hub.registry; import that instead",
                   "True True fastface.hub.registry"]
    from fastface.gallery import Gallery
    from fastface.hub import load_registry, pull, resolve, sha256_file

    assert Gallery is fastface.Gallery and all(map(callable, (load_registry, pull, resolve, sha256_file)))
    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        fastface.hub.nothing_here


def test_stubs_cover_the_extension_module():
    stub = ast.parse((Path(fastface.__file__).parent / "_core.pyi").read_text())
    stubbed = {node.name for node in stub.body if isinstance(node, (ast.FunctionDef, ast.ClassDef))}
    public = {name for name in dir(_core) if not name.startswith("_")}
    assert public == stubbed


def test_public_api_exists_and_is_documented():
    for name in fastface.__all__:
        obj = getattr(fastface, name)
        assert callable(obj) is False or obj.__doc__, f"{name} has no docstring"


@pytest.mark.parametrize("module", ["fastface", "fastface.cli"])
def test_cli_help_lists_the_subcommands(module):
    out = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True, check=True)
    for command in SUBCOMMANDS:
        assert command in out.stdout


def test_every_runtime_subcommand_is_a_module_of_fastface_cli():
    runtime = {name for name, (module, _) in SUBCOMMANDS.items() if module.startswith("fastface.cli.")}
    assert runtime == {"demo", "verify", "enroll", "identify", "watch", "gallery", "models", "liveness"}
    assert all(module.rpartition(".")[2] == name or not module.startswith("fastface.cli.")
               for name, (module, _) in SUBCOMMANDS.items())


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
