"""Tables for the Metrics, Compare and About pages, built from model cards and prediction CSVs.
Missing values read "not measured" everywhere (`page.show_table`)."""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import pandas as pd
import streamlit as st

from mrivision.evaluation.tables import binary_auc_with_ci, metrics_from_predictions_csv, value_with_ci
from mrivision.model.card import ModelCard
from ui.cam_view import method_label
from ui.catalogue import ModelEntry, model_number, split_label
from ui.text import NOT_MEASURED, cell, duration, fmt, fmt_ci, is_number

HEADLINE = (("Accuracy", "accuracy"), ("Balanced accuracy", "balanced_accuracy"), ("Macro-F1", "macro_f1"))
GROUPS = (("cv", "New patients: subject-level cross-validation over train/", "subject"),
          ("external", "Another cohort: OASIS-2 external validation", "subject"),
          ("test", "Literature split: test/ (other slices of subjects seen in training)", "scan"))
FAITHFULNESS_FIELDS = (("top20_drop", "confidence drop, hottest 20% removed"),
                       ("road_morf", "ROAD: drop removing most relevant first (mean)"),
                       ("road_lerf", "ROAD: drop removing least relevant first (mean)"),
                       ("randomisation_spearman", "similarity after weight randomisation (Spearman)"))


@st.cache_data(show_spinner="Computing metrics from the predictions file…", max_entries=16)
def _metrics_from_csv(path: str, mtime_ns: int) -> dict | None:
    try:
        return metrics_from_predictions_csv(path)
    except (OSError, ValueError):
        return None


def test_result(entry: ModelEntry) -> tuple[Mapping | None, str]:
    """The test result from the card, else recomputed from `NAME.predictions.csv`, else None."""
    result = entry.card.metrics_for("test")
    if isinstance(result, Mapping) and result.get("slice"):
        return result, "card"
    csv = entry.predictions_csv
    if csv.is_file():
        recomputed = _metrics_from_csv(str(csv), csv.stat().st_mtime_ns)
        if recomputed:
            return recomputed, "csv"
    return None, ""


def headline_table(result: Mapping) -> pd.DataFrame:
    metrics = list(HEADLINE)
    if result.get("excluded_class") and "macro_f1_excl_last" in (result.get("slice") or {}):
        metrics.append((f"Macro-F1 excl. {result['excluded_class']}", "macro_f1_excl_last"))
    if (result.get("slice") or {}).get("roc_auc_macro") is not None:
        metrics.append(("ROC AUC (macro)", "roc_auc_macro"))
    rows = []
    for label, name in metrics:
        row = {"metric": label}
        for level in ("slice", "scan"):
            row[level] = (result.get(level) or {}).get(name)
            row[f"{level} 95% CI"] = fmt_ci(((result.get("ci") or {}).get(level) or {}).get(name))
        rows.append(row)
    ece = (result.get("calibration") or {}).get("ece")
    if ece is not None:
        rows.append({"metric": "ECE (calibration error)", "slice": ece, "slice 95% CI": NOT_MEASURED, "scan": None,
                     "scan 95% CI": NOT_MEASURED})
    return pd.DataFrame(rows)


def binary_table(result: Mapping) -> pd.DataFrame | None:
    """Sensitivity / specificity of a two-class model (result["binary"]), if present."""
    b = result.get("binary")
    if not isinstance(b, Mapping):
        return None
    fields = {"positive class": b.get("positive_class"), "threshold": b.get("threshold"), "AUC": b.get("auc"),
              "sensitivity": b.get("sensitivity"), "specificity": b.get("specificity"),
              "TP / FN / TN / FP": f"{b.get('tp')} / {b.get('fn')} / {b.get('tn')} / {b.get('fp')}"}
    return pd.DataFrame({"field": list(fields), "value": [cell(v) for v in fields.values()]})


def per_class_table(result: Mapping) -> pd.DataFrame:
    per_class = (result.get("slice") or {}).get("per_class") or {}
    roc = result.get("roc") or {}
    rows = [{"class": name, "precision": v.get("precision"), "recall": v.get("recall"), "f1": v.get("f1"),
             "ROC AUC": (roc.get(name) or {}).get("auc"), "support": v.get("support")}
            for name, v in per_class.items()]
    return pd.DataFrame(rows)


def is_ensemble(card: ModelCard) -> bool:
    """A shipped ensemble of cross-validation folds (`mrivision cv --ship`)."""
    return bool(card.training and card.training.per_fold)


def training_table(card: ModelCard) -> pd.DataFrame:
    t = card.training
    fields: dict[str, Any] = {"validation split": t and t.split, "training slices": t and t.n_train}
    if is_ensemble(card):
        fields["models"] = t.ensemble_of
    else:
        fields.update({"epochs run": t and t.epochs_run, "best epoch": t and t.best_epoch,
                       "validation slices": t and t.n_val, "training time": duration(t and t.seconds)})
    fields.update({
        "hardware": t and t.hardware,
        "peak memory (MB)": t and t.peak_rss_mb,
        "training data": (t.config or {}).get("data") if t else None,
        "parameters": card.parameters,
        "trainable parameters": card.trainable_parameters,
        "temperature": card.temperature,
        "code version": card.code_version,
    })
    return pd.DataFrame({"field": list(fields), "value": [cell(v) for v in fields.values()]})


def fold_table(card: ModelCard) -> pd.DataFrame | None:
    """One row per fold of a cross-validation ensemble: how each fold model was trained."""
    if not is_ensemble(card):
        return None
    folds = card.training.per_fold
    return pd.DataFrame([{"fold": f.get("fold"), "epochs run": f.get("epochs_run"), "best epoch": f.get("best_epoch"),
                          "training slices": f.get("n_train"), "inner validation slices": f.get("n_inner_val"),
                          "held-out slices": f.get("n_held_out"), "held-out subjects": f.get("subjects_held_out"),
                          "temperature": f.get("temperature")} for f in folds])


def three_numbers(card: ModelCard) -> pd.DataFrame:
    """Cross-validation, external cohort and the literature split side by side, with CIs."""
    rows = []
    for key, label, unit in GROUPS:
        r = card.metrics_for(key)
        if not r:
            rows.append({"evaluation": label, "subjects/scans": NOT_MEASURED})
            continue
        rows.append({
            "evaluation": label,
            "subjects/scans": f"{(r.get('bootstrap') or {}).get('n_units', r.get('n_scans'))} {unit}s",
            "balanced accuracy (per subject/scan)": value_with_ci(r, "scan", "balanced_accuracy", NOT_MEASURED),
            "bal. acc. without ModerateDemented": value_with_ci(r, "scan", "balanced_accuracy_excl_last", NOT_MEASURED),
            "slice accuracy": value_with_ci(r, "slice", "accuracy", NOT_MEASURED),
            "macro-F1 (slice)": value_with_ci(r, "slice", "macro_f1", NOT_MEASURED),
            "impaired vs NonDemented AUC": binary_auc_with_ci(r, missing=NOT_MEASURED),
            "quadratic kappa": value_with_ci(r, "scan", "quadratic_kappa", NOT_MEASURED),
        })
    return pd.DataFrame(rows).fillna(NOT_MEASURED)


def models_table(models: Sequence[ModelEntry], default_key: str | None) -> pd.DataFrame:
    rows = []
    for m in models:
        rows.append({
            "model": m.name,
            "default": "yes" if m.key == default_key else "no",
            "CV bal. acc. (new patients)": model_number(m),
            "external bal. acc.": m.card.metric("external", "balanced_accuracy", "scan"),
            "external impaired AUC": m.card.binary_auc("external"),
            "test accuracy": m.test_metric("accuracy"),
            "test macro-F1": m.test_metric("macro_f1"),
            "scan accuracy": m.test_metric("accuracy", "scan"),
            "scan macro-F1": m.test_metric("macro_f1", "scan"),
            "classes": len(m.card.class_names) or None,
            "ECE": ((m.card.metrics_for("test") or {}).get("calibration") or {}).get("ece"),
            "parameters": m.card.parameters,
            "latency p50 (ms/slice)": m.card.bench_value("predict_ms_p50"),
            "predict + Grad-CAM (ms)": m.card.bench_value("predict_cam_ms_p50"),
            "training time": "ensemble of CV folds" if is_ensemble(m.card)
            else duration(m.card.training and m.card.training.seconds),
            "validation split": split_label(m.card),
        })
    return pd.DataFrame(rows)


def _mean(value: Any) -> float | None:
    """A number, or the mean of a {percent: number} curve."""
    if is_number(value):
        return float(value)
    if isinstance(value, Mapping):
        numbers = [float(v) for v in value.values() if is_number(v)]
        return sum(numbers) / len(numbers) if numbers else None
    return None


def faithfulness_table(faithfulness: Mapping) -> pd.DataFrame | None:
    """One row per CAM method of the card's `faithfulness` section, one readable column per measure."""
    methods = {k: v for k, v in faithfulness.items() if isinstance(v, Mapping)}
    if not methods:
        return None
    return pd.DataFrame([{"method": method_label(name), **{label: _mean(v.get(key)) for key, label in FAITHFULNESS_FIELDS}}
                         for name, v in methods.items()])


def faithfulness_text(faithfulness: Mapping) -> str:
    """The card's own sentence and what the numbers were measured on, in words."""
    parts = [str(faithfulness["sentence"])] if faithfulness.get("sentence") else []
    if faithfulness.get("data"):
        parts.append(f"Measured on {faithfulness['data']}.")
    return " ".join(parts)


def _ratio(value: object) -> str:
    return f"{float(value):.2f}x" if is_number(value) else "not measured"


def cam_choice_text(cam: Mapping) -> str:
    """How the card's heatmap method was chosen (`scripts/select_cam.py`), in words."""
    method = method_label(str(cam.get("method") or "gradcam"))
    where = "" if not cam.get("layer") else f" at {cam['layer']} on the {cam.get('score') or 'logit'}"
    text = (f"The heatmap shown for this model is {method}{where}, chosen by the deletion check on training slices: "
            f"blurring its hottest 20% of the brain costs {_ratio(cam.get('ratio'))} what a random 20% costs on the "
            "selection slices")
    confirmation = cam.get("confirmation")
    if isinstance(confirmation, Mapping):
        text += f", {_ratio(confirmation.get('ratio'))} on {confirmation.get('n_images', 'other')} other slices"
    return text + "."


def cam_candidates_table(cam: Mapping) -> pd.DataFrame | None:
    """The methods the choice was made among, best first (drops in points of confidence)."""
    rows = [r for r in cam.get("candidates") or [] if isinstance(r, Mapping)]
    if not rows:
        return None
    table = pd.DataFrame([{"method": method_label(str(r.get("method"))), "layer": r.get("layer") or "-",
                           "explains": r.get("score") or "-", "ratio to random": r.get("ratio"),
                           "hottest 20% (points)": 100 * float(r.get("top_drop") or 0),
                           "random 20% (points)": 100 * float(r.get("random_drop") or 0)} for r in rows])
    return table.sort_values("ratio to random", ascending=False, na_position="last", ignore_index=True)


def bench_table(bench: Mapping) -> pd.DataFrame:
    """The card's speed benchmark as field/value rows (lists joined, nested sections flattened)."""
    rows = []
    for key, value in bench.items():
        if isinstance(value, Mapping):
            rows += [(f"{key}: {k}", v) for k, v in value.items()]
        else:
            rows.append((key.replace("_", " "), ", ".join(map(str, value)) if isinstance(value, (list, tuple)) else value))
    return pd.DataFrame({"field": [k for k, _ in rows],
                         "value": [("none" if v in ([], "") else fmt(v) if isinstance(v, float) else cell(v))
                                   for _, v in rows]})
