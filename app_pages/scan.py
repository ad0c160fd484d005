"""Whole scan: a NIfTI volume, a DICOM series (several files or a zip) or a stack of slices ->
one stage from the slices at the level the model knows, each slice's answer, and a case report."""
import pandas as pd
import streamlit as st

from mrivision import ImageLoadError
from ui import common as ui
from ui import figures
from ui import scans

ui.page_header("Whole scan", "Upload one scan: a NIfTI volume (.nii, .nii.gz), the DICOM files of one series "
                             "(or a .zip of them), or several slices of one scan. Files stay in memory.")
entry = ui.require_model()
uploads = st.file_uploader("Upload a scan", type=[*ui.UPLOAD_TYPES, "zip"], accept_multiple_files=True,
                           key="scan_uploads", help="Several volumes or zips at once give a table of scans.")
sources = [ui.Source(u.name, u.getvalue()) for u in uploads or []]
if not sources:
    st.info("Upload a volume, a DICOM series or a zip above.")
    st.stop()
predictor = ui.require_predictor(entry)

found = scans.group_scans(sources)
results = {}
for scan in found:
    try:
        with st.spinner(f"Predicting {scan.label}…"):
            results[scan.key] = scans.predict_scan(entry, predictor, scan)
    except ImageLoadError as exc:
        st.error(f"{ui.esc(scan.label)} could not be read: {ui.esc(exc)}")
if not results:
    st.stop()

readable = [s for s in found if s.key in results]
if len(readable) > 1:
    rows = [{"scan": s.label, "stage": results[s.key].label, "expected stage": results[s.key].expected_stage,
             "slices used": len(results[s.key].slices_used), "of slices": results[s.key].n_slices,
             "agreement": results[s.key].agreement,
             **{f"p_{c}": v for c, v in results[s.key].probabilities.items()},
             "warnings": " ".join(results[s.key].warnings)} for s in readable]
    table = pd.DataFrame(rows)
    table.insert(0, "model", entry.name)
    st.subheader(f"Results for {len(readable)} scans")
    st.dataframe(table, hide_index=True)
    st.download_button("Download results (CSV)", table.to_csv(index=False).encode(), file_name="scans.csv",
                       mime="text/csv")
    chosen = st.selectbox("Show details for", range(len(readable)), format_func=lambda i: readable[i].label)
else:
    chosen = 0
scan = readable[chosen]
result = results[scan.key]
volume = scans.volume(scan)

left, right = st.columns([1, 1.3])
with left:
    st.metric("Stage for the scan", result.label)
    st.metric("Expected stage", f"{result.expected_stage:.2f} ± {result.stage_spread:.2f}",
              help=f"Probability-weighted stage, 0 = {predictor.class_names[0]} … "
                   f"{len(predictor.class_names) - 1} = {predictor.class_names[-1]}, and its spread.")
    st.caption(f"From {len(result.slices_used)} of {result.n_slices} slices (those at the level the model was "
               f"trained on); {result.agreement:.0%} of them agree. {ui.esc(volume.orientation)}")
with right:
    st.plotly_chart(figures.probability_bar(result.probabilities, result.label), key="scan_probs")
for w in result.warnings:
    st.warning(ui.esc(w))

st.subheader("Slices used")
strip = list(result.slices_used)[:8]
cols = st.columns(max(1, len(strip)))
for col, i in zip(cols, strip):
    with col:
        ui.show_image(volume.slices[i], caption=f"slice {i}: {result.per_slice[i].label}")

st.subheader("Inspect a slice")
default = int(result.slices_used[len(result.slices_used) // 2])
index = st.slider("Slice", 0, result.n_slices - 1, default, key=f"scan_slice_{scan.key[:16]}") \
    if result.n_slices > 1 else 0
img = volume.slices[index]
slice_result = result.per_slice[index]
a, b, c = st.columns([1, 1, 1.2])
with a:
    ui.show_image(img, caption=f"Slice {index}" + (" (used)" if index in result.slices_used else " (not used)"))
with c:
    st.metric("This slice's stage", slice_result.label)
    st.plotly_chart(figures.probability_bar(slice_result.probabilities, slice_result.label), key="scan_slice_probs")
with b:
    image_key = f"{scan.key}:{index}"
    heat = ui.explain(entry, predictor, image_key, img, ui.DEFAULT_METHOD, slice_result.label)
    if heat is not None:
        ui.show_image(ui.overlay_rgb(img, heat), caption=f"Grad-CAM overlay for {slice_result.label}")
ui.warnings_for(slice_result)
scans.report_button(entry, predictor, image_key + ":scan", result, img, heat)
st.caption(f"Model: {ui.esc(entry.name)}. The heatmap shows which regions most influenced the model's score; "
           "it is not a map of disease.")
