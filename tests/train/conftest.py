"""Shared setup for the training tests, which need the ``train`` extra (torch, tqdm, opencv)."""
import pytest

pytest.importorskip("torch", reason="training tests need the [train] extra (torch)")
pytest.importorskip("cv2", reason="training tests need opencv-python-headless")

import torch  # noqa: E402

# One intra-op thread: these models are tiny, and extra threads only contend with each other
# (and with parallel builds) on small CI machines.
torch.set_num_threads(1)
