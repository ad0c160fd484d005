"""Overlay: explore class-activation heatmaps for one image — method, class, colormap, opacity."""
import streamlit as st

from ui import common as ui

ui.page_header("Overlay", "Class-activation maps show which image regions most influenced the model's score "
                          "for one class. They explain the model, not the anatomy.")
entry = ui.require_model()
source, slice_index, img = ui.require_slice("overlay")
predictor = ui.require_predictor(entry)

prediction = ui.predict(entry, predictor, source, slice_index, img)
st.write(f"Predicted stage: **{prediction.label}** ({prediction.confidence:.1%}, model {ui.esc(entry.name)})")
ui.warnings_for(prediction)

methods = ui.cam_methods()
if not methods:
    st.info("Heatmaps are not available in this installation (the CAM module is missing).")
    st.stop()

c1, c2, c3, c4 = st.columns(4)
method = c1.selectbox("CAM method", methods, index=methods.index(ui.DEFAULT_METHOD) if ui.DEFAULT_METHOD in methods else 0,
                      format_func=ui.method_label, key="overlay_method")
names = list(predictor.class_names)
target = c2.selectbox("Class to explain", names, index=ui.class_index(names, prediction.label),
                      key=f"overlay_class_{entry.key}_{ui.image_key(source, slice_index)}",
                      help="Defaults to the predicted class.")
maps = ui.colormaps()
colormap = c3.selectbox("Colormap", maps, index=maps.index("jet") if "jet" in maps else 0, key="overlay_colormap")
alpha = c4.slider("Heatmap opacity", 0.0, 1.0, 0.45, 0.05, key="overlay_alpha")
if method == "scorecam":
    st.caption("Score-CAM runs one forward pass per feature channel and can take a while on a CPU.")
if method == "random":
    st.caption("Random is a sanity baseline: a heatmap with no relation to the model.")

heat = ui.explain(entry, predictor, ui.image_key(source, slice_index), img, method, target)
if heat is None:
    st.stop()
left, middle, right = st.columns(3)
with left:
    ui.show_image(img, caption="Original")
with middle:
    ui.show_image(ui.heat_rgb(img, heat, colormap), caption=f"{ui.method_label(method)} heatmap for {target}")
overlay = ui.overlay_rgb(img, heat, alpha, colormap)
with right:
    ui.show_image(overlay, caption="Overlay")
stem = ui.safe_stem(source.name)
st.download_button("Download overlay (PNG)", ui.png_bytes(overlay), file_name=f"{stem}_{method}_{target}.png",
                   mime="image/png")
