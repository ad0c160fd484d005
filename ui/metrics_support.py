"""Tables and the misclassified-slice gallery for the Metrics page, built from cards and prediction CSVs."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import pandas as pd
import streamlit as st

from mrivision import ImageLoadError, ModelLoadError
from mrivision.model.card import metric as card_metric
from mrivision.evaluation.metrics import binary_auc_with_ci, metrics_from_predictions_csv, value_with_ci

from . import common as ui

HEADLINE = (("Accuracy", "accuracy"), ("Balanced accuracy", "balanced_accuracy"), ("Macro-F1", "macro_f1"))


@st.cache_data(show_spinner="Computing metrics from the predictions file…", max_entries=16)
def _metrics_from_csv(path: str, mtime_ns: int) -> dict | None:
    try:
        return metrics_from_predictions_csv(path)
    except (OSError, ValueError):
        return None


def test_result(entry: ui.ModelEntry) -> tuple[dict | None, str]:
    """The test result dict from the card, else recomputed from `NAME.predictions.csv`, else None."""
    result = ((entry.card.get("metrics") or {}).get("test"))
    if isinstance(result, dict) and result.get("slice"):
        return result, "card"
    csv = entry.predictions_csv
    if csv.is_file():
        recomputed = _metrics_from_csv(str(csv), csv.stat().st_mtime_ns)
        if recomputed:
            return recomputed, "csv"
    return None, ""


def headline_table(result: dict) -> pd.DataFrame:
    metrics = list(HEADLINE)
    if result.get("excluded_class") and "macro_f1_excl_last" in (result.get("slice") or {}):
        metrics.append((f"Macro-F1 excl. {result['excluded_class']}", "macro_f1_excl_last"))
    if (result.get("slice") or {}).get("roc_auc_macro") is not None:
        metrics.append(("ROC AUC (macro)", "roc_auc_macro"))
    rows = []
    for label, metric in metrics:
        row = {"metric": label}
        for level in ("slice", "scan"):
            row[f"{level}"] = (result.get(level) or {}).get(metric)
            row[f"{level} 95% CI"] = ui.fmt_ci(((result.get("ci") or {}).get(level) or {}).get(metric))
        rows.append(row)
    ece = (result.get("calibration") or {}).get("ece")
    if ece is not None:
        rows.append({"metric": "ECE (calibration error)", "slice": ece, "slice 95% CI": "n/a", "scan": None,
                     "scan 95% CI": "n/a"})
    return pd.DataFrame(rows)


def binary_table(result: dict) -> pd.DataFrame | None:
    """Sensitivity / specificity of a two-class model (result["binary"]), if present."""
    b = result.get("binary")
    if not isinstance(b, dict):
        return None
    fields = {"positive class": b.get("positive_class"), "threshold": b.get("threshold"), "AUC": b.get("auc"),
              "sensitivity": b.get("sensitivity"), "specificity": b.get("specificity"),
              "TP / FN / TN / FP": f"{b.get('tp')} / {b.get('fn')} / {b.get('tn')} / {b.get('fp')}"}
    return pd.DataFrame({"field": list(fields), "value": ["n/a" if v is None else (ui.fmt(v) if isinstance(v, float)
                                                                                else str(v)) for v in fields.values()]})


def per_class_table(result: dict) -> pd.DataFrame:
    per_class = (result.get("slice") or {}).get("per_class") or {}
    roc = result.get("roc") or {}
    rows = [{"class": name, "precision": v.get("precision"), "recall": v.get("recall"), "f1": v.get("f1"),
             "ROC AUC": (roc.get(name) or {}).get("auc"), "support": v.get("support")}
            for name, v in per_class.items()]
    return pd.DataFrame(rows)


def training_table(card: dict) -> pd.DataFrame:
    training = card.get("training") or {}
    config = training.get("config") or {}
    fields = {
        "epochs run": training.get("epochs_run"),
        "best epoch": training.get("best_epoch"),
        "validation split": training.get("split"),
        "training slices": training.get("n_train"),
        "validation slices": training.get("n_val"),
        "training time": _duration(training.get("seconds")),
        "hardware": training.get("hardware"),
        "peak memory (MB)": training.get("peak_rss_mb"),
        "training data": config.get("data"),
        "parameters": card.get("parameters"),
        "trainable parameters": card.get("trainable_parameters"),
        "temperature": card.get("temperature"),
        "code version": card.get("code_version"),
    }
    return pd.DataFrame({"field": list(fields), "value": ["" if v is None else str(v) for v in fields.values()]})


def _duration(seconds: object) -> str | None:
    if not isinstance(seconds, (int, float)):
        return None
    minutes, s = divmod(int(seconds), 60)
    hours, m = divmod(minutes, 60)
    return f"{hours} h {m} min" if hours else f"{m} min {s} s"


GROUPS = (("cv", "New patients: subject-level cross-validation over train/", "subject"),
          ("external", "Another cohort: OASIS-2 external validation", "subject"),
          ("test", "Literature split: test/ (other slices of subjects seen in training)", "scan"))


def three_numbers(card: dict) -> pd.DataFrame:
    """Cross-validation, external cohort and the literature split side by side, with CIs."""
    rows = []
    for key, label, unit in GROUPS:
        r = (card.get("metrics") or {}).get(key)
        if not r:
            rows.append({"evaluation": label, "subjects/scans": "not measured"})
            continue
        rows.append({
            "evaluation": label,
            "subjects/scans": f"{(r.get('bootstrap') or {}).get('n_units', r.get('n_scans'))} {unit}s",
            "balanced accuracy (per subject/scan)": value_with_ci(r, "scan", "balanced_accuracy", "–"),
            "bal. acc. without ModerateDemented": value_with_ci(r, "scan", "balanced_accuracy_excl_last", "–"),
            "slice accuracy": value_with_ci(r, "slice", "accuracy", "–"),
            "macro-F1 (slice)": value_with_ci(r, "slice", "macro_f1", "–"),
            "impaired vs NonDemented AUC": binary_auc_with_ci(r, missing="–"),
            "quadratic kappa": value_with_ci(r, "scan", "quadratic_kappa", "–"),
        })
    return pd.DataFrame(rows)


def models_table(models: Sequence[ui.ModelEntry]) -> pd.DataFrame:
    rows = []
    for m in models:
        training = m.card.get("training") or {}
        rows.append({
            "model": m.name,
            "default": "yes" if m.card.get("default") is True else "",
            "CV bal. acc. (subjects)": card_metric(m.card, "cv", "balanced_accuracy", "scan"),
            "external bal. acc.": card_metric(m.card, "external", "balanced_accuracy", "scan"),
            "external impaired AUC": ((m.card.get("metrics") or {}).get("external") or {}).get("binary_auc", {}).get("scan"),
            "test accuracy": m.test_metric("accuracy"),
            "test macro-F1": m.test_metric("macro_f1"),
            "scan accuracy": m.test_metric("accuracy", "scan"),
            "scan macro-F1": m.test_metric("macro_f1", "scan"),
            "classes": len(m.card.get("class_names") or []) or None,
            "ECE": (((m.card.get("metrics") or {}).get("test") or {}).get("calibration") or {}).get("ece"),
            "parameters": m.card.get("parameters"),
            "trainable parameters": m.card.get("trainable_parameters"),
            "latency p50 (ms/slice)": ui.bench_latency_ms(m.card),
            "predict + Grad-CAM (ms)": ui.bench_value(m.card, "predict_cam_ms_p50"),
            "training time": _duration(training.get("seconds")),
            "validation split": ui.split_label(m.card),
        })
    return pd.DataFrame(rows)


def test_data_root(card: dict) -> Path | None:
    """The card's test-data folder on this computer, if it exists (relative paths: repo root, then cwd)."""
    raw = ((card.get("metrics") or {}).get("test_data") or {}).get("path")
    raw = raw or ((card.get("training") or {}).get("config") or {}).get("test_data")
    if not raw:
        return None
    path = Path(str(raw)).expanduser()
    candidates = [path] if path.is_absolute() else [ui.REPO_ROOT / path, Path.cwd() / path]
    for c in candidates:
        if c.is_dir():
            return c.resolve()
    return None


@st.cache_data(show_spinner=False, max_entries=16)
def _read_predictions(path: str, mtime_ns: int) -> pd.DataFrame | None:
    try:
        return pd.read_csv(path, dtype={"path": str, "group": str, "true": str, "predicted": str})
    except (OSError, ValueError):
        return None


def misclassified_gallery(entry: ui.ModelEntry, limit_default: int = 6) -> None:
    """Wrongly classified test slices with the Grad-CAM of the predicted class, if the files are here."""
    csv = entry.predictions_csv
    if not csv.is_file():
        st.caption("No predictions file was shipped with this model, so there is no gallery.")
        return
    table = _read_predictions(str(csv), csv.stat().st_mtime_ns)
    if table is None or not {"path", "true", "predicted"} <= set(table.columns):
        st.caption("The predictions file could not be read.")
        return
    wrong = table[table["true"] != table["predicted"]].copy()
    if wrong.empty:
        st.success("No test slice was misclassified.")
        return
    prob_cols = [f"p_{c}" for c in wrong["predicted"].unique() if f"p_{c}" in wrong.columns]
    if prob_cols:
        wrong["p_predicted"] = [row.get(f"p_{row['predicted']}") for _, row in wrong.iterrows()]
        wrong = wrong.sort_values("p_predicted", ascending=False)
    st.caption(f"{len(wrong)} of {len(table)} test slices misclassified (most confident mistakes first).")
    root = test_data_root(entry.card)
    if root is None:
        st.info("The test images are not on this computer, so the gallery cannot show them.")
        st.dataframe(wrong.head(50), hide_index=True)
        return
    n = st.slider("Slices to show", 1, min(24, len(wrong)), min(limit_default, len(wrong)), key="metrics_gallery_n")
    heatmaps = st.toggle("Show Grad-CAM of the predicted class", value=True, key="metrics_gallery_cam")
    try:
        predictor = ui.get_predictor(entry) if heatmaps else None
    except ModelLoadError as exc:
        st.warning(f"Heatmaps unavailable: {ui.esc(exc)}")
        predictor = None
    shown, missing = 0, 0
    cols = st.columns(4)
    for _, row in wrong.iterrows():
        if shown >= n:
            break
        path = (root / str(row["path"])).resolve()
        if not path.is_relative_to(root) or not path.is_file():
            missing += 1
            continue
        source = ui.Source(path.name, path.read_bytes(), origin="test")
        try:
            img = ui.load_slice(source)
        except ImageLoadError:
            missing += 1
            continue
        with cols[shown % 4]:
            caption = f"{row['path']}: true {row['true']}, predicted {row['predicted']}"
            if predictor is not None:
                heat = ui.explain(entry, predictor, ui.image_key(source, None), img, ui.DEFAULT_METHOD,
                                  str(row["predicted"]))
                ui.show_image(ui.overlay_rgb(img, heat) if heat is not None else img, caption=ui.esc(caption))
            else:
                ui.show_image(img, caption=ui.esc(caption))
        shown += 1
    if missing:
        st.caption(f"{missing} listed slice(s) were not found under {ui.esc(root)} and were skipped.")
