"""Compare: one image through every shipped model — predictions, heatmaps, agreement, test scores."""
import pandas as pd
import streamlit as st

from mrivision import ModelLoadError
from mrivision.model.card import is_lesson, metric
from ui import common as ui

ui.page_header("Compare", "The same image through every available model, side by side.")
models = [m for m in ui.list_models() if not is_lesson(m.card)]  # the leakage lesson is not a clinical answer
if not models:
    ui.no_models_message()
    st.stop()

source, slice_index, img = ui.require_slice("compare")
show_heatmaps = st.toggle("Show Grad-CAM heatmaps", value=True, key="compare_heatmaps")

results = []
for entry in models:
    try:
        with st.spinner(f"Running {ui.esc(entry.name)}…"):
            predictor = ui.get_predictor(entry)
            results.append((entry, predictor, ui.predict(entry, predictor, source, slice_index, img)))
    except ModelLoadError as exc:
        st.error(f"The model {ui.esc(entry.name)} could not be loaded: {ui.esc(exc)}")
if not results:
    st.stop()

rows = []
for entry, _, p in results:
    rows.append({"model": entry.name, "predicted stage": p.label, "confidence": p.confidence,
                 **{f"p_{c}": v for c, v in p.probabilities.items()},
                 "expected stage": p.expected_stage,
                 "CV bal. acc. (new patients)": metric(entry.card, "cv", "balanced_accuracy", "scan"),
                 "external bal. acc.": metric(entry.card, "external", "balanced_accuracy", "scan"),
                 "test accuracy": entry.test_metric("accuracy"), "test macro-F1": entry.test_metric("macro_f1"),
                 "scan-level macro-F1": entry.test_metric("macro_f1", "scan"),
                 "validation split": ui.split_label(entry.card), "warnings": " ".join(p.warnings)})
st.dataframe(pd.DataFrame(rows), hide_index=True,
             column_config={"confidence": st.column_config.NumberColumn(format="percent")})
st.caption("From each model's card: balanced accuracy per subject on new patients (subject-level "
           "cross-validation) and on the external cohort; test accuracy and macro-F1 are slice-level figures on "
           "the literature's test split (other slices of subjects seen in training). A two-class model's "
           "macro-F1 is not comparable with a four-stage model's. The leakage-lesson model is not shown.")

if len(results) == 1:
    st.info("Only one model is available, so there is nothing to compare against.")
else:
    show = {"success": st.success, "warning": st.warning, "info": st.info}
    lines = ui.agreement([(p.label, predictor.class_names) for _, predictor, p in results])
    for level, text in lines:
        show[level](text)
    if any(level == "warning" for level, _ in lines):
        st.caption("Where models disagree, treat any single model's output for this image with extra caution.")

if show_heatmaps:
    per_row = 4
    for start in range(0, len(results), per_row):
        cols = st.columns(per_row)
        for col, (entry, predictor, p) in zip(cols, results[start:start + per_row]):
            with col:
                heat = ui.explain(entry, predictor, ui.image_key(source, slice_index), img, ui.DEFAULT_METHOD, p.label)
                if heat is not None:
                    ui.show_image(ui.overlay_rgb(img, heat), caption=f"{entry.name}: {p.label} ({p.confidence:.0%})")
