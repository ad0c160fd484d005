"""Compare: one image through every shipped model — predictions, heatmaps, agreement, test scores."""
from collections import Counter

import pandas as pd
import streamlit as st

from mrivision import ImageLoadError, ModelLoadError
from ui import common as ui

ui.page_header("Compare", "The same image through every available model, side by side.")
models = ui.list_models()
if not models:
    ui.no_models_message()
    st.stop()

source = ui.pick_source("compare")
if source is None:
    st.stop()
try:
    slice_index = ui.slice_picker(source, "compare")
    img = ui.load_slice(source, slice_index)
except ImageLoadError as exc:
    st.error(f"{ui.esc(source.name)} could not be read: {ui.esc(exc)}")
    st.stop()
show_heatmaps = st.toggle("Show Grad-CAM heatmaps", value=True, key="compare_heatmaps")

results = []
for entry in models:
    try:
        predictor = ui.get_predictor(entry)
    except ModelLoadError as exc:
        st.error(f"The model {ui.esc(entry.name)} could not be loaded: {ui.esc(exc)}")
        continue
    results.append((entry, predictor, ui.predict(entry, predictor, source, slice_index, img)))
if not results:
    st.stop()

rows = []
for entry, _, p in results:
    rows.append({"model": entry.name, "predicted stage": p.label, "confidence": p.confidence,
                 **{f"p_{c}": v for c, v in p.probabilities.items()},
                 "test accuracy": entry.test_metric("accuracy"), "test macro-F1": entry.test_metric("macro_f1"),
                 "scan-level macro-F1": entry.test_metric("macro_f1", "scan"),
                 "warnings": " ".join(p.warnings)})
st.dataframe(pd.DataFrame(rows), hide_index=True,
             column_config={"confidence": st.column_config.NumberColumn(format="percent")})
st.caption("Test accuracy and macro-F1 are slice-level figures from each model's card (held-out test set).")

votes = Counter(p.label for _, _, p in results)
top, count = votes.most_common(1)[0]
if len(results) == 1:
    st.info("Only one model is available, so there is nothing to compare against.")
elif count == len(results):
    st.success(f"All {len(results)} models predict {top}.")
else:
    split = ", ".join(f"{label}: {n}" for label, n in votes.most_common())
    st.warning(f"The models disagree ({split}). Treat any single model's output for this image with extra caution.")

if show_heatmaps:
    per_row = 4
    for start in range(0, len(results), per_row):
        cols = st.columns(per_row)
        for col, (entry, predictor, p) in zip(cols, results[start:start + per_row]):
            with col:
                heat = ui.explain(entry, predictor, ui.image_key(source, slice_index), img, ui.DEFAULT_METHOD, p.label)
                if heat is not None:
                    ui.show_image(ui.overlay_rgb(img, heat), caption=f"{entry.name}: {p.label} ({p.confidence:.0%})")
