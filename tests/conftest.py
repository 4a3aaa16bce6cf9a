import sys
from pathlib import Path

# Lets test modules import the helper module shared_data without making tests/ a package.
sys.path.insert(0, str(Path(__file__).resolve().parent))


# Runtime-only runs (FASTFACE_TEST_RUNTIME_ONLY=1): the ARM wheel under qemu and the sanitizer
# build run the suite the way a board would see it, with numpy, the core and OpenCV only.
# Training, export and evaluation dependencies are then hidden even where installed, and a
# test module that needs one of them (or any module missing here) is skipped, naming it; the
# training, export and evaluation test folders are not collected. New runtime tests (tests/
# test_*.py) are included without being listed anywhere.
import importlib.abc  # noqa: E402
import os  # noqa: E402

import pytest  # noqa: E402

RUNTIME_ONLY = os.environ.get("FASTFACE_TEST_RUNTIME_ONLY") == "1"
NOT_RUNTIME = {"torch", "torchvision", "pnnx", "onnx", "onnxruntime", "ncnn", "sklearn", "matplotlib", "tqdm"}


class _HideNonRuntime(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in NOT_RUNTIME:
            raise ModuleNotFoundError(f"No module named '{name}' (hidden: FASTFACE_TEST_RUNTIME_ONLY=1)",
                                      name=name)
        return None


NOT_RUNTIME_FOLDERS = ["train", "export", "eval"]

if RUNTIME_ONLY:
    sys.meta_path.insert(0, _HideNonRuntime())
    collect_ignore = NOT_RUNTIME_FOLDERS


def pytest_report_header(config):
    if RUNTIME_ONLY:
        return [f"runtime-only: hiding {', '.join(sorted(NOT_RUNTIME))}; "
                f"not collecting tests/{{{','.join(NOT_RUNTIME_FOLDERS)}}}"]
    return []


class _RuntimeModule(pytest.Module):
    """A test module that skips, naming the module, when it imports one this runtime lacks."""

    def _getobj(self):
        try:
            return super()._getobj()
        except self.CollectError as error:
            missing = error.__cause__
            if isinstance(missing, ModuleNotFoundError) and missing.name \
                    and not missing.name.startswith(("fastface", "numpy")):
                pytest.skip(f"needs {missing.name}, not in the runtime-only environment", allow_module_level=True)
            raise


def pytest_pycollect_makemodule(module_path, parent):
    if RUNTIME_ONLY and module_path.name != "conftest.py":
        return _RuntimeModule.from_parent(parent, path=module_path)
    return None
