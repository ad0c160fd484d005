"""The Metrics page's gallery of misclassified test slices, with the heatmap of the predicted class."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from mrivision import ImageLoadError, ModelLoadError
from mrivision.model.card import ModelCard
from ui import cam_view
from ui.catalogue import ModelEntry
from ui.loading import get_predictor
from ui.page import show_image
from ui.sources import REPO_ROOT, Source, image_key, load_slice
from ui.text import esc


def test_data_root(card: ModelCard) -> Path | None:
    """The card's test-data folder on this computer, if it exists (relative paths: repo root, then cwd)."""
    raw = (card.metrics_for("test_data") or {}).get("path")
    raw = raw or ((card.training.config or {}).get("test_data") if card.training else None)
    if not raw:
        return None
    path = Path(str(raw)).expanduser()
    candidates = [path] if path.is_absolute() else [REPO_ROOT / path, Path.cwd() / path]
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


def misclassified_gallery(entry: ModelEntry, limit_default: int = 6) -> None:
    """Wrongly classified test slices with the heatmap of the predicted class, if the files are here."""
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
    if any(f"p_{c}" in wrong.columns for c in wrong["predicted"].unique()):
        wrong["p_predicted"] = [row.get(f"p_{row['predicted']}") for _, row in wrong.iterrows()]
        wrong = wrong.sort_values("p_predicted", ascending=False)
    st.caption(f"{len(wrong)} of {len(table)} test slices misclassified (most confident mistakes first).")
    root = test_data_root(entry.card)
    if root is None:
        st.info("The test images are not on this computer, so the gallery cannot show them.")
        st.dataframe(wrong.head(50), hide_index=True)
        return
    n = st.slider("Slices to show", 1, min(24, len(wrong)), min(limit_default, len(wrong)), key="metrics_gallery_n")
    method = entry.card.heatmap_method
    heatmaps = st.toggle(f"Show the {cam_view.method_label(method)} heatmap of the predicted class",
                         value=method not in cam_view.SLOW_METHODS, key="metrics_gallery_cam",
                         help="The model's own heatmap method; the slow ones take a few seconds per slice.")
    try:
        predictor = get_predictor(entry) if heatmaps else None
    except ModelLoadError as exc:
        st.warning(f"Heatmaps unavailable: {esc(exc)}")
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
        source = Source(path.name, path.read_bytes(), origin="test")
        try:
            img = load_slice(source)
        except ImageLoadError:
            missing += 1
            continue
        with cols[shown % 4]:
            caption = esc(f"{row['path']}: true {row['true']}, predicted {row['predicted']}")
            heat = None if predictor is None else cam_view.explain(
                entry, predictor, image_key(source, None), img, method, str(row["predicted"]))
            show_image(cam_view.overlay_rgb(img, heat) if heat is not None else img, caption=caption)
        shown += 1
    if missing:
        st.caption(f"{missing} listed slice(s) were not found under {esc(root)} and were skipped.")
