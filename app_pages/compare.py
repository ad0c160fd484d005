"""Compare: one image through every shipped model — predictions, heatmaps, agreement, one number per model."""
import pandas as pd
import streamlit as st

from mrivision import ModelLoadError
from ui import agreement, cam_view, catalogue, loading, page, sources, text

page.page_header("Compare", "The same image through every available model, side by side.")
models = catalogue.clinical_models()  # the leakage lesson is not a clinical answer
if not models:
    page.no_models_message()
    st.stop()

source, slice_index, img = sources.require_slice("compare")
key = sources.image_key(source, slice_index)
show_heatmaps = st.toggle("Show heatmaps", value=True, key="compare_heatmaps")

results = []
for entry in models:
    try:
        with st.spinner(f"Running {text.esc(entry.name)}…"):
            predictor = loading.get_predictor(entry)
            results.append((entry, predictor, loading.predict(entry, predictor, key, img)))
    except ModelLoadError as exc:
        st.error(f"The model {text.esc(entry.name)} could not be loaded: {text.esc(exc)}")
if not results:
    st.stop()

rows = [{"model": entry.name, "predicted stage": p.label, "confidence": p.confidence,
         "expected stage": p.expected_stage, catalogue.NUMBER_LABEL: catalogue.model_number(entry),
         "warnings": len(p.warnings)} for entry, _, p in results]
page.show_table(pd.DataFrame(rows), percent=("confidence",))
st.caption(f"The {catalogue.NUMBER_LABEL} comes from each model's card: {catalogue.NUMBER_HELP} The Metrics page "
           "has every other figure. The leakage-lesson model is not shown.")
warned: dict[str, list[str]] = {}
for entry, _, p in results:
    for w in p.warnings:
        warned.setdefault(w, []).append(entry.name)
for w, names in warned.items():
    st.warning(f"{text.esc(', '.join(names))}: {text.esc(w)}")

if len(results) == 1:
    st.info("Only one model is available, so there is nothing to compare against.")
else:
    lines = agreement.agreement([(p.label, predictor.class_names) for _, predictor, p in results])
    for level, line in lines:
        (st.warning if level == "warning" else st.info)(line)
    st.caption(agreement.SHARED_DATA)

if show_heatmaps:
    per_row = 4
    for start in range(0, len(results), per_row):
        cols = st.columns(per_row)
        for col, (entry, predictor, p) in zip(cols, results[start:start + per_row]):
            with col:
                heat = cam_view.explain(entry, predictor, key, img, cam_view.default_method(predictor), p.label)
                if heat is not None:
                    page.show_image(cam_view.overlay_rgb(img, heat),
                                    caption=f"{text.esc(entry.name)}: {p.label} ({p.confidence:.0%})")
