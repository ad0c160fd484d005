"""Predict: upload slices or volumes, see the predicted stage, calibrated confidence and Grad-CAM."""
from pathlib import Path

import pandas as pd
import streamlit as st

from mrivision import ImageLoadError
from ui import common as ui
from ui import figures
from ui import scans

ui.page_header("Predict", "Upload axial brain MRI slices (PNG, JPEG, TIFF, DICOM or NIfTI). "
                          "Files are processed in memory and never stored.")
entry = ui.require_model()  # it is loading in the background meanwhile (ui.preload)

examples = ui.example_files()
if examples:
    st.write("Try an example:")
    cols = st.columns(min(len(examples), 4))
    for i, path in enumerate(examples):
        if cols[i % len(cols)].button(path.name, key=f"example_{i}"):
            st.session_state["predict_example"] = str(path)

uploads = st.file_uploader("Upload MRI slices or volumes", type=ui.UPLOAD_TYPES, accept_multiple_files=True,
                           key="predict_uploads", help="Several files at once give a results table.")
sources = [ui.Source(u.name, u.getvalue()) for u in uploads or []]
ui.remember(sources)

if not sources and st.session_state.get("predict_example"):
    example = ui.example_source(Path(st.session_state["predict_example"]))
    if example is not None:
        sources = [example]
        st.caption(f"Showing the example {ui.esc(example.name)}.")
        if st.button("Clear example"):
            st.session_state.pop("predict_example", None)
            st.rerun()

if not sources:
    st.info("Upload one or more files above" + (", or try an example." if examples else "."))
    st.stop()
predictor = ui.require_predictor(entry)

slice_choice: dict[str, int | None] = st.session_state.setdefault("_slices", {})
table_box = st.container()
details_box = st.container()

# Details for one file (the only one, or the one picked); its slice slider feeds the table too.
with details_box:
    if len(sources) > 1:
        st.subheader("Details")
        chosen = st.selectbox("Show details for", range(len(sources)), format_func=lambda i: sources[i].name,
                              key="predict_detail")
    else:
        chosen = 0
    source = sources[chosen]
    try:
        slice_index = ui.slice_picker(source, "predict")
        slice_choice[source.key] = slice_index
        img = ui.load_slice(source, slice_index)
    except ImageLoadError as exc:
        if len(sources) > 1:  # the table above already shows this file's error
            st.info("This file could not be read (see the error above).")
        else:
            st.error(f"{ui.esc(source.name)} could not be read: {ui.esc(exc)}")
        img = None
    if img is not None:
        prediction = ui.predict(entry, predictor, source, slice_index, img)
        left, middle, right = st.columns([1, 1, 1.3])
        with left:
            ui.show_image(img, caption=f"Input slice{'' if slice_index is None else f' {slice_index}'}")
        with right:  # filled before the heatmap (slower), so the answer shows first
            st.metric("Predicted stage", prediction.label)
            st.metric("Expected stage", f"{prediction.expected_stage:.2f} ± {prediction.stage_spread:.2f}",
                      help=f"Probability-weighted stage, 0 = {predictor.class_names[0]} … "
                           f"{len(predictor.class_names) - 1} = {predictor.class_names[-1]}, and its spread.")
            st.metric("Confidence (calibrated)", f"{prediction.confidence:.1%}",
                      help=f"Temperature-scaled softmax (T = {predictor.temperature:.2f}, fitted on validation "
                           "data). It is the model's own estimate, not a clinical probability.")
            st.plotly_chart(figures.probability_bar(prediction.probabilities, prediction.label),
                            key="predict_probs")
        with middle:
            heat = ui.explain(entry, predictor, ui.image_key(source, slice_index), img, ui.DEFAULT_METHOD,
                              prediction.label)
            if heat is not None:
                ui.show_image(ui.overlay_rgb(img, heat), caption=f"Grad-CAM overlay for {prediction.label}")
        ui.warnings_for(prediction)
        if slice_index is not None:
            st.info("This file is a volume: the Whole scan page gives one stage for the whole scan.")
        scans.report_button(entry, predictor, ui.image_key(source, slice_index), prediction, img, heat)
        st.caption(f"Model: {ui.esc(entry.name)}. The heatmap shows which regions most influenced the model's "
                   "score for the predicted class; it is not a map of disease.")

# All files: a results table and CSV download when several were uploaded; errors for unreadable ones.
with table_box:
    rows = []
    for s in sources:
        index = slice_choice.get(s.key)
        try:
            p = ui.predict(entry, predictor, s, index, ui.load_slice(s, index))
        except ImageLoadError as exc:
            if len(sources) > 1:
                st.error(f"{ui.esc(s.name)} could not be read: {ui.esc(exc)}")
            rows.append({"file": s.name, "slice": None, "predicted stage": None, "confidence": None,
                         "error": str(exc)})
            continue
        rows.append({"file": s.name, "slice": index, "predicted stage": p.label, "confidence": p.confidence,
                     "expected stage": p.expected_stage, "out of distribution": p.out_of_distribution,
                     **{f"p_{c}": v for c, v in p.probabilities.items()}, "warnings": " ".join(p.warnings),
                     "error": ""})
    if len(sources) > 1:
        st.subheader(f"Results for {len(sources)} files")
        table = pd.DataFrame(rows)
        table.insert(0, "model", entry.name)
        st.dataframe(table, hide_index=True,
                     column_config={"confidence": st.column_config.NumberColumn(format="percent")})
        st.download_button("Download results (CSV)", table.to_csv(index=False).encode(), file_name="predictions.csv",
                           mime="text/csv")
