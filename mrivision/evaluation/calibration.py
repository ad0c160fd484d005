"""How well probabilities are calibrated: the temperature fitted on validation logits and the expected
calibration error (ECE). The softmax itself is `mrivision.model.outputs.softmax`.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mrivision.evaluation.numeric import as_number, safe_div
from mrivision.model.outputs import log_softmax


def fit_temperature(logits: np.ndarray, y_true: Sequence[int]) -> float:
    """Temperature T minimising the NLL of softmax(logits / T), searched on log T in [-3, 3]."""
    from scipy.optimize import minimize_scalar

    z = np.asarray(logits, dtype=float)
    y = np.asarray(y_true, dtype=np.int64).reshape(-1)
    rows = np.arange(len(y))

    def nll(log_t: float) -> float:
        return float(-log_softmax(z / np.exp(log_t))[rows, y].mean())

    best = minimize_scalar(nll, bounds=(-3.0, 3.0), method="bounded", options={"xatol": 1e-6})
    return float(np.exp(best.x))


def expected_calibration_error(probs: np.ndarray, y_true: Sequence[int], n_bins: int = 15) -> tuple[float, list[dict]]:
    """ECE on max-probability confidence with equal-width bins, and reliability-diagram bins.

    Bin b covers [b/n_bins, (b+1)/n_bins), the last bin also holds 1.0.
    ECE = sum_b (n_b / N) * |accuracy_b - mean confidence_b|. Empty bins have None confidence/accuracy.
    """
    p = np.asarray(probs, dtype=float)
    y = np.asarray(y_true, dtype=np.int64).reshape(-1)
    confidence = p.max(axis=1)
    correct = (p.argmax(axis=1) == y).astype(float)
    idx = np.minimum((confidence * n_bins).astype(int), n_bins - 1)
    count = np.bincount(idx, minlength=n_bins)
    conf_sum = np.bincount(idx, weights=confidence, minlength=n_bins)
    correct_sum = np.bincount(idx, weights=correct, minlength=n_bins)
    ece = float(np.abs(correct_sum - conf_sum).sum() / len(y))
    mean_conf, accuracy = safe_div(conf_sum, count, np.nan), safe_div(correct_sum, count, np.nan)
    bins = [
        {
            "lower": b / n_bins,
            "upper": (b + 1) / n_bins,
            "center": (b + 0.5) / n_bins,
            "confidence": as_number(mean_conf[b]),
            "accuracy": as_number(accuracy[b]),
            "count": int(count[b]),
        }
        for b in range(n_bins)
    ]
    return ece, bins
