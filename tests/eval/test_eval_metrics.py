"""fastface.eval.metrics against scikit-learn and against hand-computed answers."""
import os
import subprocess
import sys

import numpy as np
import pytest

from fastface.eval import metrics


@pytest.fixture
def sk():
    return pytest.importorskip("sklearn.metrics")


def random_case(seed, n=500):
    rng = np.random.default_rng(seed)
    same = rng.random(n) < 0.4
    scores = np.round(rng.normal(same * 0.8, 0.5), 1)  # rounding makes ties across classes
    return scores, same


@pytest.mark.parametrize("seed", range(5))
def test_confusion_and_rates_match_sklearn(seed, sk):
    scores, same = random_case(seed)
    for threshold in (-9.0, 0.0, 0.4, 9.0):  # includes "accept all" and "accept none"
        accepted = scores >= threshold
        c = metrics.confusion(same, accepted)
        tn, fp, fn, tp = sk.confusion_matrix(same, accepted, labels=[False, True]).ravel()
        assert (c["tp"], c["fp"], c["tn"], c["fn"]) == (tp, fp, tn, fn)
        r = metrics.rates(**c)
        assert r["accuracy"] == pytest.approx(sk.accuracy_score(same, accepted))
        p, rec, f1, _ = sk.precision_recall_fscore_support(
            same, accepted, average="binary", zero_division=0)
        assert (r["precision"], r["recall"], r["f1"]) == pytest.approx((p, rec, f1))
        assert r["specificity"] == pytest.approx(
            sk.recall_score(same, accepted, pos_label=False, zero_division=0))


def test_rates_with_empty_denominators_are_zero():
    assert metrics.rates(tp=0, fp=0, tn=5, fn=5) == {
        "accuracy": 0.5, "precision": 0.0, "recall": 0.0, "specificity": 1.0, "f1": 0.0}
    assert metrics.rates(0, 0, 0, 0)["accuracy"] == 0.0


@pytest.mark.parametrize("seed", range(5))
def test_roc_and_auc_match_sklearn(seed, sk):
    scores, same = random_case(seed)
    far, tar, thresholds = metrics.roc_curve(scores, same)
    sk_far, sk_tar, sk_thr = sk.roc_curve(same, scores, drop_intermediate=False)
    np.testing.assert_allclose(far, sk_far)
    np.testing.assert_allclose(tar, sk_tar)
    np.testing.assert_array_equal(thresholds[1:], sk_thr[1:])
    assert thresholds[0] > scores.max()
    assert metrics.auc(far, tar) == pytest.approx(sk.roc_auc_score(same, scores), abs=1e-12)


def test_roc_needs_both_classes():
    with pytest.raises(ValueError, match="both"):
        metrics.roc_curve([0.1, 0.2], [True, True])


@pytest.mark.parametrize("seed", range(5))
def test_best_threshold_matches_brute_force(seed):
    scores, same = random_case(seed, n=200)
    t = metrics.best_threshold(scores, same)
    candidates = np.r_[np.unique(scores), np.inf]
    best = max(np.mean((scores >= c) == same) for c in candidates)
    assert np.mean((scores >= t) == same) == best


def test_best_threshold_known_answers():
    # separable: halfway between the lowest same (0.7) and the highest different (0.3)
    assert metrics.best_threshold([0.9, 0.8, 0.7, 0.1, 0.2, 0.3], [1, 1, 1, 0, 0, 0]) == pytest.approx(0.5)
    # accepting {0.9} or {0.9, 0.5, 0.4} are both 3/4 right: the stricter one wins
    assert metrics.best_threshold([0.9, 0.4, 0.5, 0.1], [1, 1, 0, 0]) == pytest.approx(0.7)


def test_eer_known_answers():
    assert metrics.eer([0.9, 0.8, 0.2, 0.1], [1, 1, 0, 0])[0] == 0.0
    # crossing between ROC points (0, 2/3) and (1/2, 2/3): FAR = FRR = 1/3
    value, threshold = metrics.eer([0.9, 0.8, 0.3, 0.7, 0.2], [1, 1, 1, 0, 0])
    assert value == pytest.approx(1 / 3)
    assert threshold == 0.7
    # on a ROC point: one false accept (0.95) and one false reject (0.1) out of five each
    value, threshold = metrics.eer([0.1, 0.6, 0.7, 0.8, 0.9, 0.2, 0.3, 0.4, 0.5, 0.95],
                                   [1] * 5 + [0] * 5)
    assert (value, threshold) == (pytest.approx(0.2), 0.6)


def test_tar_at_far_known_answers():
    negatives = np.arange(1000) / 1000  # 0.000 ... 0.999
    positives = np.r_[np.full(40, 2.0), np.full(20, 0.9985), np.full(20, 0.9855), np.full(20, 0.5)]
    scores = np.r_[positives, negatives]
    same = np.r_[np.ones(100, bool), np.zeros(1000, bool)]
    got = {e["far"]: (e["tar"], e["threshold"]) for e in metrics.tar_at_far(scores, same)}
    assert got[1e-1] == (pytest.approx(0.8), pytest.approx(0.9))     # 100 false accepts allowed
    assert got[1e-2] == (pytest.approx(0.6), pytest.approx(0.99))    # 10 allowed
    assert got[1e-3] == (pytest.approx(0.6), pytest.approx(0.9985))  # 1 allowed
    assert got[1e-4] == (None, None)  # 1000 impostor pairs cannot measure FAR = 1e-4
    more = metrics.tar_at_far(np.r_[positives, np.arange(10000) / 10000],
                              np.r_[same[:100], np.zeros(10000, bool)])
    assert more[-1]["tar"] is not None


def constructed_folds():
    """10 folds x (30 same + 30 different). Fold f: same scores from 0.60 + 0.01 f up, different
    scores up to 0.30 + 0.01 f, plus one impostor scoring 0.95 in fold 3."""
    scores, same, folds = [], [], []
    for f in range(10):
        scores += [*np.linspace(0.60 + 0.01 * f, 0.99, 30), *np.linspace(-0.5, 0.30 + 0.01 * f, 30)]
        same += [True] * 30 + [False] * 30
        folds += [f] * 60
    scores = np.array(scores)
    scores[3 * 60 + 45] = 0.95
    return scores, np.array(same), np.array(folds)


def test_cross_validation_known_answer():
    scores, same, _ = constructed_folds()
    cv = metrics.cross_validate(scores, same)
    # training min same is 0.60 (0.61 without fold 0); max rejected different is 0.39 (0.38 without fold 9)
    expected = [0.50] + [0.495] * 8 + [0.49]
    assert [f["threshold"] for f in cv["folds"]] == pytest.approx(expected)
    assert cv["counts"] == {"tp": 300, "fp": 1, "tn": 299, "fn": 0}
    assert [f["counts"]["fp"] for f in cv["folds"]] == [0, 0, 0, 1, 0, 0, 0, 0, 0, 0]
    fold_acc = np.array([1.0] * 3 + [59 / 60] + [1.0] * 6)
    assert cv["accuracy_mean"] == pytest.approx(fold_acc.mean())
    assert cv["accuracy_std"] == pytest.approx(fold_acc.std())
    assert cv["metrics"]["accuracy"] == pytest.approx(599 / 600)


def test_cross_validation_uses_caller_folds():
    scores, same, folds = constructed_folds()
    default = metrics.cross_validate(scores, same)
    assert metrics.cross_validate(scores, same, folds) == default
    order = np.random.default_rng(0).permutation(scores.size)  # shuffled pairs, same layout
    assert metrics.cross_validate(scores[order], same[order], folds[order]) == default
    interleaved = metrics.cross_validate(scores, same, np.arange(scores.size) % 10)
    assert [f["threshold"] for f in interleaved["folds"]] != [f["threshold"] for f in default["folds"]]


@pytest.mark.parametrize("n_same, n_diff", [(38, 262), (300, 300), (7, 93), (3, 4)])
def test_stratified_folds_hold_the_lists_mix(n_same, n_diff):
    same = np.r_[np.ones(n_same, bool), np.zeros(n_diff, bool)]  # sorted by label, as deepface's list
    folds = metrics.stratified_folds(same)
    np.testing.assert_array_equal(folds, metrics.stratified_folds(same))  # deterministic
    sizes, positives = np.bincount(folds), np.bincount(folds[same], minlength=folds.max() + 1)
    assert sizes.max() - sizes.min() <= 1  # near-equal folds
    assert positives.max() - positives.min() <= 1  # each fold the list's same/different mix


def test_stratified_folds_keep_thresholds_meaningful():
    """A label-sorted list cut into contiguous folds leaves folds without a same-person pair:
    stratified folds fit every threshold on training folds that hold both classes."""
    rng = np.random.default_rng(0)
    same = np.r_[np.ones(38, bool), np.zeros(262, bool)]
    scores = np.where(same, rng.normal(0.7, 0.1, same.size), rng.normal(0.1, 0.1, same.size))
    contiguous = metrics.cross_validate(scores, same)
    stratified = metrics.cross_validate(scores, same, metrics.stratified_folds(same))
    assert [f["counts"]["tp"] + f["counts"]["fn"] for f in contiguous["folds"]][:2] == [30, 8]
    assert all(f["counts"]["tp"] + f["counts"]["fn"] in (3, 4) for f in stratified["folds"])
    summary = metrics.evaluate_scores(scores, same, metrics.stratified_folds(same), fold_scheme="stratified").summary
    assert summary["fold_scheme"] == "stratified"
    assert metrics.evaluate_scores(scores, same).summary["fold_scheme"] == "contiguous"
    with pytest.raises(ValueError, match="unknown fold scheme"):
        metrics.evaluate_scores(scores, same, fold_scheme="random")


def test_cross_validation_rejects_bad_folds():
    scores, same, folds = constructed_folds()
    with pytest.raises(ValueError, match="fold ids"):
        metrics.cross_validate(scores, same, folds[:-1])
    with pytest.raises(ValueError, match="two folds"):
        metrics.cross_validate(scores, same, np.zeros_like(folds))
    with pytest.raises(ValueError, match="finite"):
        metrics.cross_validate(np.r_[scores[:-1], np.nan], same)


# The reference work's Table 1 (percent). Its MobileFaceNet F1, 99.6827, is the harmonic mean of
# its *rounded* precision and recall; the exact F1, 5968 / 5987 = 99.68265 %, rounds to 99.6826,
# which is what fastface reports.
TABLE1 = {  # counts (TP, FP, TN, FN), the reference's five figures, fastface's exact F1
    "MobileFaceNet": ((2984, 3, 2997, 16), (99.6833, 99.8996, 99.4667, 99.9000, 99.6827), 99.6826),
    "SE-LResNet100E-IR": ((2991, 0, 3000, 9), (99.8500, 100.0, 99.7000, 100.0, 99.8498), 99.8498),
}


@pytest.mark.parametrize("model", TABLE1)
def test_reference_table1_from_counts(model):
    counts, (accuracy, precision, recall, specificity, f1), exact_f1 = TABLE1[model]
    r = metrics.rates(*counts)
    got = [round(100 * r[k], 4) for k in ("accuracy", "precision", "recall", "specificity", "f1")]
    assert got == [accuracy, precision, recall, specificity, exact_f1]
    assert round(2 * precision * recall / (precision + recall), 4) == f1  # the reference's way


def test_protocol_recovers_table1_counts(mobilefacenet_scores):
    cv = metrics.cross_validate(*mobilefacenet_scores)
    assert cv["counts"] == {"tp": 2984, "fp": 3, "tn": 2997, "fn": 16}
    assert all(0.3 < f["threshold"] < 0.5 for f in cv["folds"])


def test_evaluate_scores_summary(mobilefacenet_scores, sk):
    r = metrics.evaluate_scores(*mobilefacenet_scores, name="m")
    s = r.summary
    assert (s["pairs"], s["same"], s["different"]) == (6000, 3000, 3000)
    assert s["auc"] == pytest.approx(sk.roc_auc_score(mobilefacenet_scores[1], mobilefacenet_scores[0]))
    assert [e["tar"] is None for e in s["tar_at_far"]] == [False, False, False, True]
    assert 0 < s["eer"] < 0.01


def test_import_needs_only_numpy():
    """fastface.eval must import on a board: no OpenCV, matplotlib, tqdm, scikit-learn or torch."""
    code = ("import sys, fastface; before = set(sys.modules); import fastface.eval; "
            "print(' '.join(sorted(m for m in set(sys.modules) - before if '.' not in m)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}).stdout.split()
    assert not {"cv2", "matplotlib", "tqdm", "sklearn", "torch"} & set(out), out
