import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # shared_data


@pytest.fixture(scope="module")
def dlib():
    """dlib itself (dlib-bin), the reference several suites compare with; skips without it."""
    return pytest.importorskip("dlib", reason="the reference needs dlib-bin (pip install dlib-bin)")
