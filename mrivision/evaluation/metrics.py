"""The evaluation protocol: slice- and scan-level metrics, scan-bootstrap CIs, calibration and ROC.

Pure numpy / scikit-learn (no torch, no streamlit), so the app and the CLI can import it cheaply.
Every function that returns a result returns plain Python types, ready for ``json.dumps``.
Softmax, temperature and ECE live in `calibration`; the text report, value-with-CI formatting and
the predictions CSV in `tables`.

Conventions
-----------
* Confusion matrices: rows are true classes, columns predicted classes.
* A slice's predicted class is the argmax of its probability vector. A scan's probability vector
  is the mean of its slices' vectors, and its predicted class the argmax of that mean.
* Per-class precision / recall / F1 are 0.0 when undefined (scikit-learn's ``zero_division=0``).
* ``macro_f1`` averages per-class F1 over the classes that occur in y_true or in the predictions
  (scikit-learn's default label set); ``balanced_accuracy`` averages recall over the classes in y_true.
* ``quadratic_kappa``: Cohen's kappa with quadratic weights over the ordered stages (class order);
  ``stage_mae``: mean |true stage - predicted stage| in class steps.
* ``binary_auc``: impaired vs NonDemented (the first class), scored by 1 - P(first class), at the
  slice and the scan level, with a scan-bootstrap CI.
* ``balanced_accuracy_excl_last`` (3+ classes): mean recall over every class but the last (the
  selection metric: ModerateDemented has 2 subjects and must not decide a selection).
* ``macro_f1_excl_last`` (3+ classes only, else absent): per-class F1 taken from the *full* K x K
  confusion matrix, averaged (same rule) over every class but the last one, i.e. ModerateDemented
  for ``CLASS_NAMES``. Slices of the last class still count as misses / false alarms of the others.
* ROC: one-vs-rest per class; a class with no positives or no negatives in y_true gets ``auc`` None
  and empty curves; ``roc_auc_macro`` is the mean of the defined AUCs.
* Bootstrap: scans (groups) are drawn with replacement, as many as there are, and every slice of a
  drawn scan enters the replicate; one draw serves both the slice and the scan level; intervals
  are percentiles. Replicates where a metric is undefined are skipped for that metric.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve

from mrivision.evaluation.calibration import expected_calibration_error
from mrivision.evaluation.numeric import as_number, safe_div
from mrivision.model.outputs import expected_stage

CONFIDENCE = 0.95
MAX_ROC_POINTS = 200
_PROB_SUM_TOLERANCE = 1e-3
_EPS = 1e-12


# ----------------------------------------------------------------------------- small helpers
def _nanmean_last(x: np.ndarray) -> np.ndarray:
    """Mean over the last axis ignoring NaN; NaN where every entry is NaN (no warning)."""
    valid = ~np.isnan(x)
    n = valid.sum(axis=-1)
    return safe_div(np.where(valid, x, 0.0).sum(axis=-1), n, np.nan)


def _group_index(groups: Sequence) -> tuple[list[str], np.ndarray]:
    """Sorted unique group ids (as strings) and each item's index into them."""
    ids, inverse = np.unique(np.asarray([str(g) for g in groups]), return_inverse=True)
    return [str(i) for i in ids], inverse.reshape(-1)


def check_inputs(
    y_true: Sequence[int], probs: np.ndarray, class_names: Sequence[str], groups: Sequence | None
) -> tuple[np.ndarray, np.ndarray, list]:
    """Validated arrays of the protocol's inputs; ``groups`` None becomes one group per slice."""
    y = np.asarray(y_true, dtype=np.int64).reshape(-1)
    p = np.asarray(probs, dtype=float)
    k = len(class_names)
    if k < 2 or p.ndim != 2 or p.shape[1] != k:
        raise ValueError(f"probs must have shape (n, {k}) for classes {list(class_names)}, got {p.shape}")
    if len(y) == 0 or len(y) != len(p):
        raise ValueError(f"y_true has {len(y)} labels but probs has {len(p)} rows (need the same, > 0)")
    if y.min() < 0 or y.max() >= k:
        raise ValueError(f"labels must lie in 0..{k - 1}, got {sorted(set(y.tolist()))}")
    if not np.all(np.isfinite(p)) or p.min() < 0 or np.abs(p.sum(axis=1) - 1).max() > _PROB_SUM_TOLERANCE:
        raise ValueError("probs must be finite, non-negative, and each row must sum to 1")
    if groups is None:
        groups = [str(i) for i in range(len(y))]
    elif len(groups) != len(y):
        raise ValueError(f"groups has {len(groups)} entries but there are {len(y)} slices")
    return y, p, list(groups)


# ----------------------------------------------------------------------------- confusion metrics
def _group_confusions(group_idx: np.ndarray, y: np.ndarray, pred: np.ndarray, n_groups: int, k: int) -> np.ndarray:
    """Per-group confusion counts, shape (n_groups, k, k)."""
    flat = (group_idx * k + y) * k + pred
    return np.bincount(flat, minlength=n_groups * k * k).reshape(n_groups, k, k)


def _confusion_metrics(cms: np.ndarray) -> dict[str, np.ndarray]:
    """Headline metrics of confusion matrices stacked on leading axes, shape (..., k, k)."""
    cms = np.asarray(cms, dtype=float)
    tp = np.diagonal(cms, axis1=-2, axis2=-1)
    support, predicted = cms.sum(axis=-1), cms.sum(axis=-2)
    recall = safe_div(tp, support, np.nan)
    f1 = safe_div(2 * tp, support + predicted, np.nan)
    metrics = {
        "accuracy": tp.sum(axis=-1) / support.sum(axis=-1),
        "balanced_accuracy": _nanmean_last(recall),
        "macro_f1": _nanmean_last(f1),
    }
    k = cms.shape[-1]
    n = cms.sum(axis=(-2, -1))
    distance = np.abs(np.arange(k)[:, None] - np.arange(k)[None, :])
    expected = support[..., :, None] * predicted[..., None, :] / np.maximum(n, 1)[..., None, None]
    metrics["quadratic_kappa"] = 1.0 - safe_div((cms * distance ** 2).sum(axis=(-2, -1)),
                                                 (expected * distance ** 2).sum(axis=(-2, -1)), np.nan)
    metrics["stage_mae"] = safe_div((cms * distance).sum(axis=(-2, -1)), n, np.nan)
    if k > 2:
        metrics["macro_f1_excl_last"] = _nanmean_last(f1[..., :-1])
        metrics["balanced_accuracy_excl_last"] = _nanmean_last(recall[..., :-1])
    return metrics


def _confusion_summary(cm: np.ndarray, class_names: Sequence[str]) -> dict:
    """Headline metrics, per-class table and confusion matrices (counts, row-normalised) of one matrix."""
    tp, support, predicted = np.diag(cm), cm.sum(axis=1), cm.sum(axis=0)
    precision, recall = safe_div(tp, predicted, 0.0), safe_div(tp, support, 0.0)
    f1 = safe_div(2 * tp, support + predicted, 0.0)
    per_class = {
        name: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]), "support": int(support[i])}
        for i, name in enumerate(class_names)
    }
    return {
        **{name: as_number(value) for name, value in _confusion_metrics(cm).items()},
        "per_class": per_class,
        "confusion_matrix": cm.astype(int).tolist(),
        "confusion_matrix_normalized": safe_div(cm, support[:, None], 0.0).tolist(),
    }


# ----------------------------------------------------------------------------- public pieces
def aggregate_by_group(
    probs: np.ndarray, y_true: Sequence[int], groups: Sequence[str]
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Mean slice probabilities per scan: (scan probs, scan labels, sorted scan ids).

    Raises ValueError if a scan's slices carry different labels.
    """
    p = np.asarray(probs, dtype=float)
    y = np.asarray(y_true, dtype=np.int64).reshape(-1)
    if not len(p) == len(y) == len(groups):
        raise ValueError(f"probs ({len(p)}), y_true ({len(y)}) and groups ({len(groups)}) differ in length")
    ids, inverse = _group_index(groups)
    n = len(ids)
    sums = np.zeros((n, p.shape[1]))
    np.add.at(sums, inverse, p)
    lowest, highest = np.full(n, np.iinfo(np.int64).max), np.full(n, np.iinfo(np.int64).min)
    np.minimum.at(lowest, inverse, y)
    np.maximum.at(highest, inverse, y)
    mixed = [ids[i] for i in np.flatnonzero(lowest != highest)]
    if mixed:
        raise ValueError(f"{len(mixed)} scan(s) mix labels across their slices, e.g. {mixed[:5]}")
    return sums / np.bincount(inverse, minlength=n)[:, None], lowest, ids


def bootstrap_ci(
    group_confusions: Mapping[str, np.ndarray], *, n_boot: int = 1000, seed: int = 0, confidence: float = CONFIDENCE
) -> dict[str, dict[str, list[float | None]]]:
    """Percentile CIs of the headline metrics, resampling groups (scans) with replacement.

    ``group_confusions`` maps a level name ("slice", "scan") to per-group confusion counts of shape
    (n_groups, k, k), groups in the same order for every level. Each replicate draws n_groups group
    indices once (shared by all levels) and sums the drawn groups' matrices, so every slice of a drawn
    scan is included, as often as the scan is drawn. Returns {level: {metric: [low, high]}}.
    """
    n_groups = {cms.shape[0] for cms in group_confusions.values()}
    if len(n_groups) != 1:
        raise ValueError(f"all levels must have the same number of groups, got {sorted(n_groups)}")
    (n,) = n_groups
    draws = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
    flat = (draws + (np.arange(n_boot) * n)[:, None]).ravel()
    weights = np.bincount(flat, minlength=n_boot * n).reshape(n_boot, n).astype(float)
    tail = 50.0 * (1.0 - confidence)
    intervals = {}
    for level, cms in group_confusions.items():
        k = cms.shape[-1]
        replicates = (weights @ cms.reshape(n, k * k).astype(float)).reshape(n_boot, k, k)
        intervals[level] = {
            metric: _percentile_interval(values, tail) for metric, values in _confusion_metrics(replicates).items()
        }
    return intervals


def _percentile_interval(values: np.ndarray, tail: float) -> list[float | None]:
    """[tail, 100 - tail] percentiles of the defined (non-NaN) values; [None, None] if none is defined."""
    values = values[~np.isnan(values)]
    if values.size == 0:
        return [None, None]
    low, high = np.percentile(values, [tail, 100.0 - tail])
    return [float(low), float(high)]


def _roc(is_positive: np.ndarray, score: np.ndarray) -> dict:
    """One ROC curve (at most MAX_ROC_POINTS points, ends kept) and its AUC; None/empty if one-sided."""
    if is_positive.all() or not is_positive.any():
        return {"fpr": [], "tpr": [], "auc": None}
    fpr, tpr, _ = roc_curve(is_positive, score)
    if len(fpr) > MAX_ROC_POINTS:
        keep = np.unique(np.linspace(0, len(fpr) - 1, MAX_ROC_POINTS).round().astype(int))
        fpr, tpr = fpr[keep], tpr[keep]
    return {"fpr": fpr.tolist(), "tpr": tpr.tolist(), "auc": float(roc_auc_score(is_positive, score))}


def _binary_metrics(y: np.ndarray, p_positive: np.ndarray, threshold: float, positive_class: str, auc: float | None) -> dict:
    """Sensitivity / specificity of "P(positive) >= threshold" and the positive class's AUC."""
    positive, flagged = y == 1, p_positive >= threshold
    tp, fn = int(np.sum(positive & flagged)), int(np.sum(positive & ~flagged))
    tn, fp = int(np.sum(~positive & ~flagged)), int(np.sum(~positive & flagged))
    return {
        "positive_class": positive_class,
        "auc": auc,
        "threshold": float(threshold),
        "sensitivity": as_number(safe_div(tp, tp + fn, np.nan)),
        "specificity": as_number(safe_div(tn, tn + fp, np.nan)),
        "tp": tp,
        "fn": fn,
        "tn": tn,
        "fp": fp,
    }


def _impaired_auc(y: np.ndarray, p: np.ndarray) -> float | None:
    impaired = y > 0
    if impaired.all() or not impaired.any():
        return None
    return float(roc_auc_score(impaired, 1.0 - p[:, 0]))


def _weighted_auc(weights: np.ndarray, positive: np.ndarray, score: np.ndarray) -> np.ndarray:
    """ROC AUC of `score` for each row of `weights` (B, n): how often each item counts (ties: half)."""
    order = np.argsort(score, kind="stable")
    sorted_score = score[order]
    starts = np.flatnonzero(np.r_[True, sorted_score[1:] != sorted_score[:-1]])
    w = weights[:, order]
    wp = np.add.reduceat(w * positive[order], starts, axis=1)
    wn = np.add.reduceat(w * ~positive[order], starts, axis=1)
    below = np.cumsum(wn, axis=1) - wn
    num = (wp * (below + 0.5 * wn)).sum(axis=1)
    return safe_div(num, wp.sum(axis=1) * wn.sum(axis=1), np.nan)


def _binary_auc(y: np.ndarray, p: np.ndarray, slice_scan: np.ndarray, scan_y: np.ndarray, scan_p: np.ndarray,
                subject_of_scan: np.ndarray, n_boot: int, seed: int) -> dict:
    """Impaired-vs-first-class AUC at slice and scan level, with a subject-bootstrap percentile CI."""
    out: dict = {"slice": _impaired_auc(y, p), "scan": _impaired_auc(scan_y, scan_p), "ci": None}
    if n_boot <= 0:
        return out
    n_subjects = int(subject_of_scan.max()) + 1
    draws = np.random.default_rng(seed + 1).integers(0, n_subjects, size=(n_boot, n_subjects))
    counts = np.zeros((n_boot, n_subjects))
    np.add.at(counts, (np.repeat(np.arange(n_boot), n_subjects), draws.ravel()), 1.0)
    tail = 50.0 * (1.0 - CONFIDENCE)
    out["ci"] = {
        "slice": _percentile_interval(_weighted_auc(counts[:, subject_of_scan[slice_scan]], y > 0, 1.0 - p[:, 0]), tail),
        "scan": _percentile_interval(_weighted_auc(counts[:, subject_of_scan], scan_y > 0, 1.0 - scan_p[:, 0]), tail),
    }
    return out


def _subject_of_scan(slice_scan: np.ndarray, n_scans: int, subjects: Sequence[str] | None) -> np.ndarray:
    """Index of each scan's subject (each scan its own subject without `subjects`)."""
    if subjects is None:
        return np.arange(n_scans)
    if len(subjects) != len(slice_scan):
        raise ValueError(f"subjects has {len(subjects)} entries but there are {len(slice_scan)} slices")
    _, slice_subject = _group_index(subjects)
    out = np.full(n_scans, -1)
    out[slice_scan] = slice_subject
    if np.any(out[slice_scan] != slice_subject):
        raise ValueError("a scan's slices are assigned to different subjects")
    return out


def _by_subject(per_scan: Mapping[str, np.ndarray], subject_of_scan: np.ndarray) -> dict[str, np.ndarray]:
    """Per-scan confusion counts summed per subject (the bootstrap's unit)."""
    n = int(subject_of_scan.max()) + 1
    out = {}
    for level, cms in per_scan.items():
        acc = np.zeros((n, *cms.shape[1:]), dtype=cms.dtype)
        np.add.at(acc, subject_of_scan, cms)
        out[level] = acc
    return out


# ----------------------------------------------------------------------------- the protocol
def evaluate_predictions(
    y_true: Sequence[int],
    probs: np.ndarray,
    class_names: Sequence[str],
    groups: Sequence[str] | None = None,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    threshold: float = 0.5,
    subjects: Sequence[str] | None = None,
) -> dict:
    """Run the full protocol on slice probabilities; ``groups`` are scan ids (None: one scan per slice).

    ``subjects`` (one per slice, constant within a scan; None: each scan is its own subject) is the
    bootstrap unit: a subject with several scans (sessions) is drawn with all of them.

    ``n_boot=0`` skips the bootstrap (``ci`` is then None). See the module docstring for conventions.
    """
    y, p, groups = check_inputs(y_true, probs, class_names, groups)
    names = [str(c) for c in class_names]
    k = len(names)
    scan_probs, scan_y, scan_ids = aggregate_by_group(p, y, groups)
    _, slice_scan = _group_index(groups)
    n_scans = len(scan_ids)
    subject_of_scan = _subject_of_scan(slice_scan, n_scans, subjects)
    per_scan = {
        "slice": _group_confusions(slice_scan, y, p.argmax(axis=1), n_scans, k),
        "scan": _group_confusions(np.arange(n_scans), scan_y, scan_probs.argmax(axis=1), n_scans, k),
    }
    roc = {name: _roc(y == i, p[:, i]) for i, name in enumerate(names)}
    aucs = [curve["auc"] for curve in roc.values() if curve["auc"] is not None]
    ece, bins = expected_calibration_error(p, y)
    onehot = np.eye(k)[y]
    result = {
        "n_slices": len(y),
        "n_scans": n_scans,
        "class_names": names,
        "excluded_class": names[-1] if k > 2 else None,
        "slice": {
            **_confusion_summary(per_scan["slice"].sum(axis=0), names),
            "roc_auc_macro": float(np.mean(aucs)) if aucs else None,
            "nll": float(-np.mean(np.log(np.clip(p[np.arange(len(y)), y], _EPS, None)))),
            "brier": float(np.mean(np.sum((p - onehot) ** 2, axis=1))),
        },
        "scan": {**_confusion_summary(per_scan["scan"].sum(axis=0), names), "n_scans": n_scans},
        "ci": bootstrap_ci(_by_subject(per_scan, subject_of_scan), n_boot=n_boot, seed=seed) if n_boot > 0 else None,
        "bootstrap": {"n_boot": n_boot, "seed": seed, "confidence": CONFIDENCE,
                      "unit": "scan" if subjects is None else "subject", "n_units": int(subject_of_scan.max()) + 1},
        "calibration": {"ece": ece, "n_bins": len(bins), "bins": bins},
        "roc": roc,
        "binary_auc": _binary_auc(y, p, slice_scan, scan_y, scan_probs, subject_of_scan, n_boot, seed),
    }
    stage, spread = expected_stage(p)
    result["slice"]["expected_stage_mae"] = float(np.mean(np.abs(stage - y)))
    if k == 2:
        result["binary"] = _binary_metrics(y, p[:, 1], threshold, names[1], roc[names[1]]["auc"])
    return result
