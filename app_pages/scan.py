"""Whole scan: a NIfTI volume, a DICOM series (several files or a zip) or a stack of slices ->
one stage from the slices at the level the model knows, each slice's answer, and a case report."""
import pandas as pd
import streamlit as st

from mrivision import ImageLoadError
from mrivision.report import report_slice
from ui import atrophy_view, cam_view, figures, loading, page, scans, sources, text
from ui.report_view import report_button

page.page_header("Whole scan", "Upload one scan: a NIfTI volume (.nii, .nii.gz), the DICOM files of one series "
                               "(or a .zip of them), or several slices of one scan. Files stay in memory.")
entry = page.require_model()
uploads = st.file_uploader("Upload a scan", type=[*sources.UPLOAD_TYPES, "zip"], accept_multiple_files=True,
                           key="scan_uploads", help="Several volumes or zips at once give a table of scans.")
files = sources.from_uploads(uploads)
if not files:
    st.info("Upload a volume, a DICOM series or a zip above.")
    st.stop()
predictor = loading.require_predictor(entry)

found = scans.group_scans(files)
results = {}
for scan in found:
    try:
        with st.spinner(f"Predicting {scan.label}…"):
            results[scan.key] = scans.predict_scan(entry, predictor, scan)
    except ImageLoadError as exc:
        st.error(scans.read_error(scan, exc))
if not results:
    st.stop()

readable = [s for s in found if s.key in results]
if len(readable) > 1:
    rows = [{"scan": s.label, "stage": results[s.key].label, "expected stage": results[s.key].expected_stage,
             "slices used": len(results[s.key].slices_used), "of slices": results[s.key].n_slices,
             "agreement": results[s.key].agreement, "out of distribution": results[s.key].out_of_distribution,
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
shown = report_slice(result)

left, right = st.columns([1, 1.3])
with left:
    st.metric("Stage for the scan", result.label)
    st.metric("Expected stage", f"{result.expected_stage:.2f} ± {result.stage_spread:.2f}",
              help=f"Probability-weighted stage, 0 = {predictor.class_names[0]} … "
                   f"{len(predictor.class_names) - 1} = {predictor.class_names[-1]}, and its spread.")
    if result.n_slices == 1:
        st.caption(f"{text.esc(scan.label)} is a single slice, so this is that slice's stage; a whole scan "
                   "(a volume, a DICOM series or several slices) gives a steadier answer.")
    else:
        order = f" Slices: {text.esc(volume.orientation)}." if volume.orientation else ""
        st.caption(f"From {len(result.slices_used)} of {result.n_slices} slices (those at the level the model was "
                   f"trained on); {result.agreement:.0%} of them agree.{order}")
    if result.sagittal is not None:
        page.show_image(result.sagittal, caption=scans.placement_caption(result))
with right:
    st.plotly_chart(figures.probability_bar(result.probabilities, result.label), key="scan_probs")
    tissue = atrophy_view.panel(scan.key, volume, "scan", result.slices_used)
for w in result.warnings:
    st.warning(text.esc(w))

if result.n_slices > 1:
    strip = scans.strip_slices(result.slices_used)
    st.subheader("Slices used")
    st.caption(f"{len(strip)} of the {len(result.slices_used)} slices used, spread from the lowest to the highest "
               f"(slices {result.slices_used[0]}–{result.slices_used[-1]}), each with its own stage.")
    cols = st.columns(max(1, len(strip)))
    for col, i in zip(cols, strip):
        with col:
            page.show_image(volume.slices[i], caption=f"slice\u00a0{i} · {text.short_stage(result.per_slice[i].label)}")

st.subheader("Inspect a slice")
index = st.slider("Slice", 0, result.n_slices - 1, shown, key=f"scan_slice_{scan.key[:16]}",
                  help="Starts at the slice the case report shows.") if result.n_slices > 1 else 0
img = volume.slices[index]
slice_result = result.per_slice[index] or predictor.predict(img)  # slices off the band were not predicted
a, b, c = st.columns([1, 1, 1.2])
with a:
    where = f", MNI z {result.slice_z_mm[index]:.0f} mm" if result.slice_z_mm else ""
    used = " (used)" if index in result.slices_used else " (not used)"
    page.show_image(img, caption=f"Slice {index}{where}{used}")
with c:
    st.metric("This slice's stage", slice_result.label)
    st.plotly_chart(figures.probability_bar(slice_result.probabilities, slice_result.label), key="scan_slice_probs")
with b:
    method = cam_view.default_method(predictor)
    heat = cam_view.explain(entry, predictor, f"{scan.key}:{index}", img, method, slice_result.label)
    if heat is not None:
        page.show_image(cam_view.overlay_rgb(img, heat),
                        caption=f"{cam_view.method_label(method)} overlay for {slice_result.label}")
page.warnings_for(slice_result)

st.subheader("Case report")
report_heat = heat if (index, slice_result.label) == (shown, result.label) else cam_view.explain(
    entry, predictor, f"{scan.key}:{shown}", volume.slices[shown], cam_view.default_method(predictor), result.label)
st.caption(f"The report gives the scan's stage and shows slice {shown}, the used slice most typical of the scan's "
           "answer (the command line's `mrivision report` shows the same slice).")
report_button(predictor, result, volume.slices[shown], report_heat, shown, f"{scan.key}:scan", atrophy=tissue)
st.caption(f"Model: {text.esc(entry.name)}. The heatmap shows which regions most influenced the model's score; "
           "it is not a map of disease.")
