"""The default pipeline's accuracy on LFW's development set (View 1), through ``fastface eval``
with no model flags: a regression in detection, landmark refinement, alignment or the card's
threshold fails here. View 1 is for calibration and choice; LFW accuracy is reported on View 2."""
import json
import subprocess
import sys

import numpy as np

from shared_data import LFW_VIEW1, require

pytestmark = [require(LFW_VIEW1)]
#: Measured on pairsDevTest (1000 pairs) when the pipeline was chosen (see README "Accuracy"); a
#: regression of more than half a point fails.
DEV_TEST_ACCURACY = 0.985
DEV_TEST_CARD_THRESHOLD_ACCURACY = 0.987


def test_default_pipeline_accuracy_on_view1_dev_test(tmp_path):
    done = subprocess.run([sys.executable, "-m", "fastface", "eval", "--pairs", LFW_VIEW1 / "pairsDevTest.txt",
                           "--threads", "1", "--out", tmp_path],  # 1: spin-waiting threads crawl on a busy machine
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(next(tmp_path.glob("*.json")).read_text())["summary"]
    assert summary["pairs"] == 1000
    assert summary["accuracy_mean"] >= DEV_TEST_ACCURACY - 0.005, summary["accuracy_mean"]
    line = next(line for line in done.stdout.splitlines() if line.startswith("At the card's threshold"))
    at_card = float(line.split("accuracy ")[1].split("%")[0]) / 100
    assert at_card >= DEV_TEST_CARD_THRESHOLD_ACCURACY - 0.005, line


def test_eval_takes_view1_as_given_and_several_pair_lists_as_one():
    from fastface.eval.pairs import combine, read_pairs

    train, test = (read_pairs(LFW_VIEW1 / f"pairsDev{part}.txt") for part in ("Train", "Test"))
    both = combine([train, test])
    assert (len(train), len(test), len(both)) == (2200, 1000, 3200) and both.same.sum() == 1600
    assert len(both.images) == len(set(train.images) | set(test.images))
    # Pair k of the combined list names the same two photos as in its own list.
    for k, (pairs, offset) in ((5, (train, 0)), (2205, (test, 2200))):
        own = k - offset
        assert {both.images[both.first[k]], both.images[both.second[k]]} == \
            {pairs.images[pairs.first[own]], pairs.images[pairs.second[own]]}
    assert sorted(np.bincount(both.folds)) == [320] * 10
