"""Predict: upload slices or volumes, see the predicted stage, calibrated confidence and a heatmap."""
from pathlib import Path

import pandas as pd
import streamlit as st

from mrivision import ImageLoadError
from ui import atrophy_view, cam_view, figures, loading, page, sources, text
from ui.report_view import report_button

page.page_header("Predict", "Upload axial brain MRI slices (PNG, JPEG, TIFF, DICOM or NIfTI). "
                            "Files are processed in memory and never stored.")
entry = page.require_model()  # it is loading in the background meanwhile (loading.preload)

examples = sources.example_files()
if examples:
    st.write("Try an example:")
    cols = st.columns(min(len(examples), 4))
    for i, path in enumerate(examples):
        if cols[i % len(cols)].button(path.name, key=f"example_{i}"):
            st.session_state["predict_example"] = str(path)

uploads = st.file_uploader("Upload MRI slices or volumes", type=sources.UPLOAD_TYPES, accept_multiple_files=True,
                           key="predict_uploads", help="Several files at once give a results table.")
files = sources.from_uploads(uploads)
sources.remember(files)

if not files and st.session_state.get("predict_example"):
    example = sources.example_source(Path(st.session_state["predict_example"]))
    if example is not None:
        files = [example]
        st.caption(f"Showing the example {text.esc(example.name)}.")
        if st.button("Clear example"):
            st.session_state.pop("predict_example", None)
            st.rerun()

if not files:
    st.info("Upload one or more files above" + (", or try an example." if examples else "."))
    st.stop()
predictor = loading.require_predictor(entry)

slice_choice: dict[str, int | None] = st.session_state.setdefault("_slices", {})
table_box = st.container()
details_box = st.container()

# Details for one file (the only one, or the one picked); its slice slider feeds the table too.
with details_box:
    if len(files) > 1:
        st.subheader("Details")
        chosen = st.selectbox("Show details for", range(len(files)), format_func=lambda i: files[i].name,
                              key="predict_detail")
    else:
        chosen = 0
    source = files[chosen]
    try:
        slice_index = sources.slice_picker(source, "predict")
        slice_choice[source.key] = slice_index
        img = sources.load_slice(source, slice_index)
    except ImageLoadError as exc:
        if len(files) > 1:  # the table above already shows this file's error
            st.info(f"{text.esc(source.name)} could not be read (see the error above).")
        else:
            st.error(sources.unreadable(source.name, exc))
        img = None
    if img is not None:
        key = sources.image_key(source, slice_index)
        prediction = loading.predict(entry, predictor, key, img)
        left, middle, right = st.columns([1, 1, 1.3])
        with left:
            page.show_image(img, caption=f"Input slice{'' if slice_index is None else f' {slice_index}'}")
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
            tissue = atrophy_view.panel(key, img, "predict")
        with middle:
            method = cam_view.default_method(predictor)
            heat = cam_view.explain(entry, predictor, key, img, method, prediction.label)
            if heat is not None:
                page.show_image(cam_view.overlay_rgb(img, heat),
                                caption=f"{cam_view.method_label(method)} overlay for {prediction.label}")
                st.caption(cam_view.faithfulness_note(entry.cache_key, key, method, prediction.label, predictor, img, heat))
        page.warnings_for(prediction)
        if slice_index is not None:
            st.info("This file is a volume: the Whole scan page gives one stage for the whole scan.")
        report_button(predictor, prediction, img, heat, slice_index, key, atrophy=tissue)
        st.caption(f"Model: {text.esc(entry.name)}. The heatmap shows which regions most influenced the model's "
                   "score for the predicted class; it is not a map of disease.")

# All files: a results table and CSV download when several were uploaded; errors for unreadable ones.
with table_box:
    rows = []
    for s in files:
        index = slice_choice.get(s.key)
        try:
            p = loading.predict(entry, predictor, sources.image_key(s, index), sources.load_slice(s, index))
        except ImageLoadError as exc:
            if len(files) > 1:
                st.error(sources.unreadable(s.name, exc))
            rows.append({"file": s.name, "slice": "-", "predicted stage": None, "confidence": None,
                         "error": str(exc)})
            continue
        rows.append({"file": s.name, "slice": "-" if index is None else str(index), "predicted stage": p.label,
                     "confidence": p.confidence, "expected stage": p.expected_stage,
                     "out of distribution": p.out_of_distribution,
                     **{f"p_{c}": v for c, v in p.probabilities.items()}, "warnings": " ".join(p.warnings),
                     "error": ""})
    if len(files) > 1:
        st.subheader(f"Results for {len(files)} files")
        table = pd.DataFrame(rows)
        table.insert(0, "model", entry.name)
        page.show_table(table, missing="-", percent=("confidence",))
        st.download_button("Download results (CSV)", table.to_csv(index=False).encode(), file_name="predictions.csv",
                           mime="text/csv")
