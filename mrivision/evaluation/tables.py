"""Tables of an evaluation: numbers with their CIs, the plain-text report, and the per-slice
predictions table (CSV) that the protocol can be re-run on (`metrics_from_predictions_csv`).

The one value-with-CI formatter of the package (report, app, README tables): `value_with_ci`.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pandas and the protocol (sklearn, scipy: seconds) load only where a table is made,
    import pandas as pd  # so that the formatters (the case report's) stay quick to import


# ----------------------------------------------------------------------------- numbers with CIs
def _fmt(value: float | None, digits: int = 3) -> str:
    """A number with fixed digits, or "n/a"."""
    return "n/a" if value is None else f"{value:.{digits}f}"


def format_ci(ci: Sequence[float | None], digits: int = 3) -> str:
    """"[low, high]" with fixed digits ("n/a" for an undefined end)."""
    return f"[{_fmt(ci[0], digits)}, {_fmt(ci[1], digits)}]"


def value_with_ci(result: dict | None, level: str, metric: str, missing: str = "n/a") -> str:
    """"value [low, high]" of one metric of a result at one level (no brackets without a CI);
    `missing` when the result or the value is absent."""
    value = ((result or {}).get(level) or {}).get(metric)
    if value is None:
        return missing
    ci = ((result.get("ci") or {}).get(level) or {}).get(metric)
    return f"{_fmt(value)} {format_ci(ci)}" if ci else _fmt(value)


def binary_auc_with_ci(result: dict | None, level: str = "scan", missing: str = "n/a") -> str:
    """The impaired-vs-first-class AUC of a result at `level`, with its CI."""
    return value_with_ci({level: {"auc": ((result or {}).get("binary_auc") or {}).get(level)},
                          "ci": {level: {"auc": (((result or {}).get("binary_auc") or {}).get("ci") or {}).get(level)}}},
                         level, "auc", missing)


# ----------------------------------------------------------------------------- text report
def _matrix_lines(matrix: list[list[int]], names: list[str]) -> list[str]:
    """A confusion matrix as text rows, class names on both axes."""
    width = max(len(n) for n in names) + 2
    cell = max(9, max(len(str(v)) for row in matrix for v in row) + 2)
    lines = [" " * width + "".join(f"{n[:cell - 1]:>{cell}}" for n in names)]
    lines += [f"{name:<{width}}" + "".join(f"{v:>{cell}}" for v in row) for name, row in zip(names, matrix)]
    return lines


def format_report(result: dict) -> str:
    """Plain-text report: headline metrics with CIs, per-class table, confusion matrices."""
    names = result["class_names"]
    boot = result["bootstrap"]
    ci_note = (
        f"{boot['confidence']:.0%} CI: percentile bootstrap over {boot.get('unit', 'scan')}s, n={boot['n_boot']}, seed={boot['seed']}"
        if result.get("ci")
        else "no bootstrap"
    )
    lines = [f"Evaluation on {result['n_slices']} slices from {result['n_scans']} scans ({ci_note})", ""]
    headline = [("accuracy", "accuracy"), ("balanced accuracy", "balanced_accuracy"), ("macro-F1", "macro_f1")]
    if result["excluded_class"] is not None:
        headline.append((f"macro-F1 excl. {result['excluded_class']}", "macro_f1_excl_last"))
        headline.append((f"bal. acc. excl. {result['excluded_class']}", "balanced_accuracy_excl_last"))
    label_width = max(len(label) for label, _ in headline) + 2
    lines.append(f"{'':<{label_width}}{'slice':<26}{'scan':<26}")
    for label, key in headline:
        lines.append(f"{label:<{label_width}}{value_with_ci(result, 'slice', key):<26}{value_with_ci(result, 'scan', key):<26}")
    for label, key in (("quadratic kappa", "quadratic_kappa"), ("stage MAE", "stage_mae")):
        if key in result["slice"]:
            lines.append(f"{label:<{label_width}}{value_with_ci(result, 'slice', key):<26}{value_with_ci(result, 'scan', key):<26}")
    s = result["slice"]
    if result.get("binary_auc"):
        lines.append(f"{'impaired AUC':<{label_width}}{binary_auc_with_ci(result, 'slice'):<26}"
                     f"{binary_auc_with_ci(result, 'scan'):<26}")
    lines += [
        "",
        f"ROC AUC (macro, one-vs-rest): {_fmt(s['roc_auc_macro'])}   ECE: {_fmt(result['calibration']['ece'])}"
        f"   NLL: {_fmt(s['nll'])}   Brier: {_fmt(s['brier'])}",
        "",
        "Per class (slice level):",
    ]
    width = max(len(n) for n in names) + 2
    lines.append(f"{'class':<{width}}{'precision':>10}{'recall':>8}{'f1':>8}{'auc':>8}{'support':>9}")
    for name in names:
        row = s["per_class"][name]
        lines.append(
            f"{name:<{width}}{row['precision']:>10.3f}{row['recall']:>8.3f}{row['f1']:>8.3f}"
            f"{_fmt(result['roc'][name]['auc']):>8}{row['support']:>9}"
        )
    for level in ("slice", "scan"):
        lines += ["", f"Confusion matrix ({level} level; rows = true, columns = predicted):"]
        lines += _matrix_lines(result[level]["confusion_matrix"], names)
    if "binary" in result:
        b = result["binary"]
        lines += [
            "",
            f"Binary ({b['positive_class']} positive): AUC {_fmt(b['auc'])}; at P >= {b['threshold']:g}: "
            f"sensitivity {_fmt(b['sensitivity'])}, specificity {_fmt(b['specificity'])} "
            f"(TP {b['tp']}, FN {b['fn']}, TN {b['tn']}, FP {b['fp']})",
        ]
    return "\n".join(line.rstrip() for line in lines)


# ----------------------------------------------------------------------------- prediction tables
def predictions_table(
    paths: Sequence, groups: Sequence[str] | None, y_true: Sequence[int], probs: np.ndarray, class_names: Sequence[str]
) -> pd.DataFrame:
    """One row per slice: path, group, true, predicted (class names), p_<class> per class.

    ``groups`` None gives each slice its own group (its row number).
    """
    import pandas as pd

    from mrivision.evaluation.metrics import check_inputs

    y, p, groups = check_inputs(y_true, probs, class_names, groups)
    names = [str(c) for c in class_names]
    if len(paths) != len(y):
        raise ValueError(f"{len(paths)} paths for {len(y)} slices")
    table = pd.DataFrame(
        {
            "path": [str(x) for x in paths],
            "group": [str(g) for g in groups],
            "true": [names[i] for i in y],
            "predicted": [names[i] for i in p.argmax(axis=1)],
        }
    )
    for i, name in enumerate(names):
        table[f"p_{name}"] = p[:, i]
    return table


def metrics_from_predictions_csv(
    path_or_df: str | Path | pd.DataFrame, class_names: Sequence[str] | None = None, **kw
) -> dict:
    """Re-run :func:`evaluate_predictions` on a :func:`predictions_table` (DataFrame or CSV path).

    Class names default to the ``p_<class>`` columns in order; the ``predicted`` column is ignored
    (recomputed from the probabilities); without a ``group`` column each slice is its own scan.
    ``kw`` goes to :func:`evaluate_predictions`.
    """
    import pandas as pd

    from mrivision.evaluation.metrics import evaluate_predictions

    if isinstance(path_or_df, pd.DataFrame):
        table = path_or_df
    else:
        table = pd.read_csv(path_or_df, dtype={"path": str, "group": str, "true": str}, float_precision="round_trip")
    names = [c[2:] for c in table.columns if c.startswith("p_")] if class_names is None else list(class_names)
    missing = [c for c in ["true", *(f"p_{n}" for n in names)] if c not in table.columns]
    if not names or missing:
        raise ValueError(f"prediction table lacks columns {missing or ['p_<class>']}")
    index = {name: i for i, name in enumerate(names)}
    unknown = sorted(set(table["true"].astype(str)) - set(index))
    if unknown:
        raise ValueError(f"unknown true labels {unknown}; expected one of {names}")
    y = table["true"].astype(str).map(index).to_numpy(dtype=np.int64)
    probs = table[[f"p_{n}" for n in names]].to_numpy(dtype=float)
    groups = table["group"].astype(str).tolist() if "group" in table.columns else None
    return evaluate_predictions(y, probs, names, groups, **kw)
