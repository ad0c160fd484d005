"""Tests of the evaluation protocol against values worked out by hand."""
from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score, f1_score

from mrivision.constants import BINARY_CLASS_NAMES, CLASS_NAMES
from mrivision.evaluation.calibration import expected_calibration_error, fit_temperature
from mrivision.model.outputs import apply_temperature
from mrivision.evaluation.metrics import aggregate_by_group, bootstrap_ci, evaluate_predictions
from mrivision.evaluation.tables import format_report, metrics_from_predictions_csv, predictions_table

# Hand case: 3 classes, 8 slices, 4 scans (ids deliberately not in sorted order).
NAMES3 = ("A", "B", "C")
HAND_PROBS = np.array(
    [
        [0.7, 0.2, 0.1],  # s1, true A -> A
        [0.6, 0.3, 0.1],  # s1, true A -> A
        [0.2, 0.5, 0.3],  # s1, true A -> B
        [0.1, 0.8, 0.1],  # s2, true B -> B
        [0.5, 0.4, 0.1],  # s2, true B -> A
        [0.1, 0.3, 0.6],  # s3, true C -> C
        [0.2, 0.5, 0.3],  # s3, true C -> B
        [0.3, 0.6, 0.1],  # s0, true A -> B
    ]
)
HAND_Y = [0, 0, 0, 1, 1, 2, 2, 0]
HAND_GROUPS = ["s1", "s1", "s1", "s2", "s2", "s3", "s3", "s0"]


@pytest.fixture(scope="module")
def hand() -> dict:
    return evaluate_predictions(HAND_Y, HAND_PROBS, NAMES3, HAND_GROUPS, n_boot=200)


def test_hand_case_slice_level(hand: dict) -> None:
    s = hand["slice"]
    # rows true, columns predicted
    assert s["confusion_matrix"] == [[2, 2, 0], [1, 1, 0], [0, 1, 1]]
    assert np.array(s["confusion_matrix_normalized"]) == pytest.approx(
        np.array([[0.5, 0.5, 0], [0.5, 0.5, 0], [0, 0.5, 0.5]])
    )
    assert s["accuracy"] == pytest.approx(4 / 8)
    assert s["balanced_accuracy"] == pytest.approx((2 / 4 + 1 / 2 + 1 / 2) / 3)
    expected = {
        "A": (2 / 3, 2 / 4, 2 * 2 / (4 + 3), 4),  # precision, recall, F1 = 2TP/(support+predicted), support
        "B": (1 / 4, 1 / 2, 2 * 1 / (2 + 4), 2),
        "C": (1 / 1, 1 / 2, 2 * 1 / (2 + 1), 2),
    }
    for name, (precision, recall, f1, support) in expected.items():
        row = s["per_class"][name]
        assert row["precision"] == pytest.approx(precision)
        assert row["recall"] == pytest.approx(recall)
        assert row["f1"] == pytest.approx(f1)
        assert row["support"] == support
    assert s["macro_f1"] == pytest.approx((4 / 7 + 1 / 3 + 2 / 3) / 3)  # = 11/21
    assert s["macro_f1_excl_last"] == pytest.approx((4 / 7 + 1 / 3) / 2)  # = 19/42
    assert hand["excluded_class"] == "C"
    p_true = [0.7, 0.6, 0.2, 0.8, 0.4, 0.6, 0.3, 0.3]
    assert s["nll"] == pytest.approx(-np.mean(np.log(p_true)))
    # Brier of row 0: (0.7-1)^2 + 0.2^2 + 0.1^2 = 0.14; checked whole against a one-hot formula
    assert s["brier"] == pytest.approx(np.mean(np.sum((HAND_PROBS - np.eye(3)[HAND_Y]) ** 2, axis=1)))
    # class C one-vs-rest: positives score 0.6, 0.3; negatives 0.1 x5, 0.3 -> (6 + 5.5) / 12
    assert hand["roc"]["C"]["auc"] == pytest.approx(23 / 24)
    assert s["roc_auc_macro"] == pytest.approx(np.mean([hand["roc"][n]["auc"] for n in NAMES3]))


def test_hand_case_matches_sklearn(hand: dict) -> None:
    pred = HAND_PROBS.argmax(axis=1)
    assert hand["slice"]["macro_f1"] == pytest.approx(f1_score(HAND_Y, pred, average="macro"))
    assert hand["slice"]["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(HAND_Y, pred))


def test_hand_case_scan_level(hand: dict) -> None:
    scan_probs, scan_y, ids = aggregate_by_group(HAND_PROBS, HAND_Y, HAND_GROUPS)
    assert ids == ["s0", "s1", "s2", "s3"]
    assert scan_y.tolist() == [0, 0, 1, 2]
    assert scan_probs == pytest.approx(
        np.array([[0.3, 0.6, 0.1], [0.5, 1 / 3, 1 / 6], [0.3, 0.6, 0.1], [0.15, 0.4, 0.45]])
    )
    # argmax: s0 -> B (wrong), s1 -> A, s2 -> B, s3 -> C
    sc = hand["scan"]
    assert hand["n_scans"] == sc["n_scans"] == 4 and hand["n_slices"] == 8
    assert sc["confusion_matrix"] == [[1, 1, 0], [0, 1, 0], [0, 0, 1]]
    assert sc["accuracy"] == pytest.approx(3 / 4)
    assert sc["balanced_accuracy"] == pytest.approx((1 / 2 + 1 + 1) / 3)
    assert sc["macro_f1"] == pytest.approx((2 / 3 + 2 / 3 + 1) / 3)


def test_hand_case_cis_contain_point_estimates(hand: dict) -> None:
    for level in ("slice", "scan"):
        for metric, (low, high) in hand["ci"][level].items():
            assert low <= hand[level][metric] + 1e-12 and hand[level][metric] - 1e-12 <= high, (level, metric)


def test_ece_hand_cases() -> None:
    probs = np.array([[0.8, 0.2], [0.8, 0.2], [0.2, 0.8], [0.2, 0.8]])
    ece, bins = expected_calibration_error(probs, [0, 1, 1, 0])  # confidence 0.8 everywhere, accuracy 0.5
    assert ece == pytest.approx(0.3)
    full = [b for b in bins if b["count"]]
    assert len(bins) == 15 and len(full) == 1
    assert full[0]["confidence"] == pytest.approx(0.8) and full[0]["accuracy"] == pytest.approx(0.5)
    assert full[0]["lower"] == pytest.approx(0.8)  # bins are [lower, upper)
    assert all(b["confidence"] is None and b["accuracy"] is None for b in bins if not b["count"])
    # two bins: 0.9 (both right) and 0.6 (one of two right): 0.5 * 0.1 + 0.5 * 0.1
    probs = np.array([[0.9, 0.1], [0.1, 0.9], [0.6, 0.4], [0.6, 0.4]])
    ece, bins = expected_calibration_error(probs, [0, 1, 0, 1])
    assert ece == pytest.approx(0.1)
    assert sorted(b["count"] for b in bins if b["count"]) == [2, 2]


def test_perfect_predictions_have_degenerate_cis() -> None:
    y = np.repeat([0, 1, 2, 3], 6)
    probs = np.eye(4)[y] * 0.96 + 0.01
    groups = [f"scan{i // 3}" for i in range(len(y))]
    result = evaluate_predictions(y, probs, CLASS_NAMES, groups, n_boot=300)
    assert result["slice"]["accuracy"] == 1.0 and result["scan"]["accuracy"] == 1.0
    for level in ("slice", "scan"):
        for metric in ("accuracy", "balanced_accuracy", "macro_f1", "macro_f1_excl_last"):
            assert result["ci"][level][metric] == pytest.approx([1.0, 1.0])


def _noisy_dataset(n_scans: int, slices: int, seed: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """4 classes, one label per scan, slice probabilities around a per-scan signal."""
    rng = np.random.default_rng(seed)
    scan_y = rng.integers(0, 4, n_scans)
    y = np.repeat(scan_y, slices)
    logits = rng.normal(size=(len(y), 4)) + 1.5 * np.eye(4)[y]
    return y, apply_temperature(logits, 1.0), [f"scan{i:04d}" for i in np.repeat(np.arange(n_scans), slices)]


def test_cis_narrow_with_more_scans() -> None:
    y, probs, groups = _noisy_dataset(30, 5, seed=1)
    small = evaluate_predictions(y, probs, CLASS_NAMES, groups, n_boot=500)
    # the same slices ten times over, as ten times as many distinct scans
    big_groups = [f"{g}-{copy}" for copy in range(10) for g in groups]
    big = evaluate_predictions(np.tile(y, 10), np.tile(probs, (10, 1)), CLASS_NAMES, big_groups, n_boot=500)
    assert big["slice"]["accuracy"] == pytest.approx(small["slice"]["accuracy"])
    for level in ("slice", "scan"):
        for metric in ("accuracy", "balanced_accuracy", "macro_f1"):
            lo, hi = small["ci"][level][metric]
            big_lo, big_hi = big["ci"][level][metric]
            assert big_hi - big_lo < 0.6 * (hi - lo), (level, metric)
            assert big_lo <= big[level][metric] <= big_hi


def test_bootstrap_resamples_whole_scans() -> None:
    # 10 scans x 10 slices; a scan's slices are all right (5 scans) or all wrong (5 scans)
    scan_y = np.array([0, 1] * 5)
    y = np.repeat(scan_y, 10)
    right = np.repeat(np.arange(10) < 5, 10)
    pred = np.where(right, y, 1 - y)
    probs = np.eye(2)[pred] * 0.8 + 0.1
    groups = [f"s{i}" for i in np.repeat(np.arange(10), 10)]
    by_scan = evaluate_predictions(y, probs, BINARY_CLASS_NAMES, groups, n_boot=1000)
    by_slice = evaluate_predictions(y, probs, BINARY_CLASS_NAMES, None, n_boot=1000)
    assert by_scan["slice"]["accuracy"] == by_slice["slice"]["accuracy"] == 0.5
    # whole scans: a replicate's slice accuracy is (right scans drawn) / 10, a multiple of 0.1
    low, high = by_scan["ci"]["slice"]["accuracy"]
    assert low * 10 == pytest.approx(round(low * 10)) and high * 10 == pytest.approx(round(high * 10))
    slice_low, slice_high = by_slice["ci"]["slice"]["accuracy"]
    assert high - low > 2 * (slice_high - slice_low)  # 10 effective units, not 100
    # scan-level and slice-level accuracy coincide here, replicate by replicate, as they share one draw
    assert by_scan["ci"]["scan"]["accuracy"] == by_scan["ci"]["slice"]["accuracy"]


def test_bootstrap_ci_direct() -> None:
    # group 0: 3 correct slices of class 0; group 1: 1 slice of class 1 predicted 0
    cms = np.array([[[3, 0], [0, 0]], [[0, 0], [1, 0]]])
    ci = bootstrap_ci({"slice": cms}, n_boot=2000, seed=3)["slice"]
    # replicates: {0,0} -> 1.0, {0,1} -> 0.75, {1,1} -> 0.0, each drawn with prob 1/4, 1/2, 1/4
    assert ci["accuracy"] == [0.0, 1.0]
    with pytest.raises(ValueError):
        bootstrap_ci({"slice": cms, "scan": cms[:1]}, n_boot=10)


def test_seeded_results_are_identical() -> None:
    y, probs, groups = _noisy_dataset(20, 4, seed=2)
    a = evaluate_predictions(y, probs, CLASS_NAMES, groups, n_boot=300, seed=7)
    b = evaluate_predictions(y, probs, CLASS_NAMES, groups, n_boot=300, seed=7)
    c = evaluate_predictions(y, probs, CLASS_NAMES, groups, n_boot=300, seed=8)
    assert json.dumps(a) == json.dumps(b)
    assert a["ci"] != c["ci"]


def test_scan_mixing_labels_raises() -> None:
    with pytest.raises(ValueError, match="mix labels"):
        evaluate_predictions([0, 1, 1], np.full((3, 2), 0.5), BINARY_CLASS_NAMES, ["a", "a", "b"])


def test_bad_inputs_raise() -> None:
    with pytest.raises(ValueError):
        evaluate_predictions([0, 1], np.array([[0.5, 0.5], [0.9, 0.3]]), BINARY_CLASS_NAMES)  # row sum 1.2
    with pytest.raises(ValueError):
        evaluate_predictions([0, 2], np.full((2, 2), 0.5), BINARY_CLASS_NAMES)  # label out of range
    with pytest.raises(ValueError):
        evaluate_predictions([0, 1], np.full((2, 3), 1 / 3), BINARY_CLASS_NAMES)  # wrong width


def test_absent_class_gets_auc_none() -> None:
    y = [0, 0, 1, 1, 2, 2]  # ModerateDemented (3) absent
    probs = np.array(
        [[0.7, 0.1, 0.1, 0.1], [0.4, 0.3, 0.2, 0.1], [0.1, 0.6, 0.2, 0.1],
         [0.2, 0.2, 0.2, 0.4], [0.1, 0.1, 0.7, 0.1], [0.3, 0.3, 0.3, 0.1]]
    )
    result = evaluate_predictions(y, probs, CLASS_NAMES, n_boot=100)
    moderate = result["roc"]["ModerateDemented"]
    assert moderate == {"fpr": [], "tpr": [], "auc": None}
    assert result["slice"]["per_class"]["ModerateDemented"]["support"] == 0
    defined = [result["roc"][n]["auc"] for n in CLASS_NAMES[:3]]
    assert None not in defined
    assert result["slice"]["roc_auc_macro"] == pytest.approx(np.mean(defined))
    # slice 3 predicted ModerateDemented: that class enters macro-F1 (F1 0) but not balanced accuracy
    pred = probs.argmax(axis=1)
    assert result["slice"]["macro_f1"] == pytest.approx(f1_score(y, pred, average="macro"))
    with pytest.warns(UserWarning, match="not in y_true"):
        assert result["slice"]["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, pred))
    json.dumps(result, allow_nan=False)
    assert "ModerateDemented" in format_report(result)


def test_binary_sensitivity_specificity() -> None:
    p_pos = np.array([0.9, 0.6, 0.4, 0.2, 0.7, 0.3])
    y = [1, 1, 1, 0, 0, 0]
    probs = np.column_stack([1 - p_pos, p_pos])
    b = evaluate_predictions(y, probs, BINARY_CLASS_NAMES, n_boot=0)["binary"]
    # positives 0.9, 0.6 flagged, 0.4 missed; negatives 0.2, 0.3 cleared, 0.7 flagged
    assert (b["tp"], b["fn"], b["tn"], b["fp"]) == (2, 1, 2, 1)
    assert b["sensitivity"] == pytest.approx(2 / 3) and b["specificity"] == pytest.approx(2 / 3)
    assert b["auc"] == pytest.approx(7 / 9)  # 0.9 beats 3 negatives, 0.6 and 0.4 beat 2 each
    assert b["positive_class"] == "Demented"
    b = evaluate_predictions(y, probs, BINARY_CLASS_NAMES, n_boot=0, threshold=0.35)["binary"]
    assert b["sensitivity"] == pytest.approx(1.0) and b["specificity"] == pytest.approx(2 / 3)
    assert b["threshold"] == 0.35


def test_result_is_json_serialisable(hand: dict) -> None:
    text = json.dumps(hand, allow_nan=False)
    assert json.loads(text) == hand
    assert set(hand) == {
        "n_slices", "n_scans", "class_names", "excluded_class", "slice", "scan", "ci", "bootstrap", "calibration", "roc",
        "binary_auc",
    }
    assert set(hand["ci"]["slice"]) == {"accuracy", "balanced_accuracy", "macro_f1", "macro_f1_excl_last",
                                        "quadratic_kappa", "stage_mae", "balanced_accuracy_excl_last"}


def test_roc_curves_are_downsampled() -> None:
    y, probs, groups = _noisy_dataset(300, 3, seed=4)
    result = evaluate_predictions(y, probs, CLASS_NAMES, groups, n_boot=0)
    for curve in result["roc"].values():
        assert 2 <= len(curve["fpr"]) == len(curve["tpr"]) <= 200
        assert curve["fpr"][0] == 0.0 and curve["fpr"][-1] == 1.0 and curve["tpr"][-1] == 1.0
        assert np.all(np.diff(curve["fpr"]) >= 0)


def test_predictions_csv_round_trip(tmp_path) -> None:
    paths = [f"img/{i}.png" for i in range(len(HAND_Y))]
    groups = ["007", "007", "007", "2", "2", "3", "3", "0"]  # leading zeros must survive the CSV
    table = predictions_table(paths, groups, HAND_Y, HAND_PROBS, NAMES3)
    assert list(table.columns) == ["path", "group", "true", "predicted", "p_A", "p_B", "p_C"]
    assert table["true"].tolist() == ["A", "A", "A", "B", "B", "C", "C", "A"]
    assert table["predicted"].tolist() == ["A", "A", "B", "B", "A", "C", "B", "B"]
    csv = tmp_path / "predictions.csv"
    table.to_csv(csv, index=False)
    direct = evaluate_predictions(HAND_Y, HAND_PROBS, NAMES3, groups, n_boot=200, seed=5)
    assert metrics_from_predictions_csv(csv, n_boot=200, seed=5) == direct
    assert metrics_from_predictions_csv(table, NAMES3, n_boot=200, seed=5) == direct
    with pytest.raises(ValueError, match="unknown true labels"):
        metrics_from_predictions_csv(table.assign(true="Z"))


def test_format_report_mentions_everything(hand: dict) -> None:
    text = format_report(hand)
    assert "8 slices from 4 scans" in text
    assert "macro-F1 excl. C" in text
    assert "0.500 [" in text  # slice accuracy with its CI
    for name in NAMES3:
        assert name in text
    assert "rows = true" in text
    binary = evaluate_predictions([0, 1], np.array([[0.8, 0.2], [0.3, 0.7]]), BINARY_CLASS_NAMES, n_boot=0)
    assert "sensitivity 1.000" in format_report(binary)


def test_temperature_scaling_fixes_over_confidence() -> None:
    rng = np.random.default_rng(0)
    n = 400
    y = rng.integers(0, 2, n)
    right = np.arange(n) < 0.7 * n  # 70 % right, each with a logit margin of 5 (p ~ 0.993)
    pred = np.where(right, y, 1 - y)
    logits = 5.0 * np.eye(2)[pred]
    t = fit_temperature(logits, y)
    assert t > 1
    assert t == pytest.approx(5 / np.log(0.7 / 0.3), rel=1e-3)  # softmax margin 5/T must give p = 0.7

    def nll(p: np.ndarray) -> float:
        return float(-np.mean(np.log(p[np.arange(n), y])))

    assert nll(apply_temperature(logits, t)) < nll(apply_temperature(logits, 1.0))
    assert apply_temperature(logits, t).sum(axis=1) == pytest.approx(np.ones(n))


def test_bootstrap_speed() -> None:
    y, probs, groups = _noisy_dataset(216, 6, seed=5)  # ~1,300 slices
    start = time.perf_counter()
    result = evaluate_predictions(y, probs, CLASS_NAMES, groups, n_boot=1000)
    assert time.perf_counter() - start < 3.0
    assert result["n_slices"] == 1296 and result["n_scans"] == 216


def test_module_does_not_import_torch_or_streamlit() -> None:
    code = "import sys, mrivision.evaluation.metrics; print(sorted({'torch', 'streamlit'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
