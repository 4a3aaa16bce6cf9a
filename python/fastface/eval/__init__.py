"""Face verification evaluation (issue 6): pair-list readers, the LFW 10-fold protocol and its
metrics, reports, and a runner that takes any embedding function (C++ engine or PyTorch).

Importing needs numpy only, so it works on a board: OpenCV is imported when images are decoded,
matplotlib when plots are drawn, tqdm when a progress bar is asked for.

``fastface eval`` (``cli``) and ``fastface compare`` (``compare``) live here, not in
``fastface.cli``: each is the front of this package's own machinery, which the runtime never loads.
"""
from .faces import FaceCrop, select_face
from .metrics import Result, evaluate_scores
from .pairs import Pairs, read_pairs
from .report import write_report
from .verify import evaluate

__all__ = ["FaceCrop", "Pairs", "Result", "evaluate", "evaluate_scores", "read_pairs", "select_face", "write_report"]
