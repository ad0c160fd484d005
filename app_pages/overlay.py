"""Overlay: explore class-activation heatmaps for one image — method, class, colormap, opacity."""
import streamlit as st

from ui import cam_view, loading, page, sources, text

page.page_header("Overlay", "Class-activation maps show which image regions most influenced the model's score "
                          "for one class. They explain the model, not the anatomy.")
entry = page.require_model()
source, slice_index, img = sources.require_slice("overlay")
predictor = loading.require_predictor(entry)

prediction = loading.predict(entry, predictor, sources.image_key(source, slice_index), img)
st.write(f"Predicted stage: **{prediction.label}** ({prediction.confidence:.1%}, model {text.esc(entry.name)})")
page.warnings_for(prediction)

methods = cam_view.cam_methods()
if not methods:
    st.info("Heatmaps are not available in this installation (the CAM module is missing).")
    st.stop()

c1, c2, c3, c4 = st.columns(4)
chosen = cam_view.default_method(predictor)
method = c1.selectbox("CAM method", methods, index=methods.index(chosen) if chosen in methods else 0,
                      format_func=cam_view.method_label, key="overlay_method")
names = list(predictor.class_names)
target = c2.selectbox("Class to explain", names, index=cam_view.class_index(names, prediction.label),
                      key=f"overlay_class_{entry.key}_{sources.image_key(source, slice_index)}",
                      help="Defaults to the predicted class.")
maps = cam_view.colormaps()
colormap = c3.selectbox("Colormap", maps, index=maps.index("jet") if "jet" in maps else 0, key="overlay_colormap")
alpha = c4.slider("Heatmap opacity", 0.0, 1.0, 0.45, 0.05, key="overlay_alpha")
if method == "scorecam":
    st.caption("Score-CAM runs one forward pass per feature channel and can take a while on a CPU.")
if method == "random":
    st.caption("Random is a sanity baseline: a heatmap with no relation to the model.")
if method == "occlusion":
    st.caption("Occlusion blurs one patch of the brain at a time and maps how much the class's probability "
               "falls (about 2 s on a CPU).")
if method == "iterative_occlusion":
    st.caption("Iterative occlusion blurs patches one after another, each time the one that lowers the class's "
               "probability most given those already blurred; the hottest were blurred first (a few seconds on a CPU).")

heat = cam_view.explain(entry, predictor, sources.image_key(source, slice_index), img, method, target)
if heat is None:
    st.stop()
left, middle, right = st.columns(3)
with left:
    page.show_image(img, caption="Original")
with middle:
    page.show_image(cam_view.heat_rgb(img, heat, colormap), caption=f"{cam_view.method_label(method)} heatmap for {target}")
overlay = cam_view.overlay_rgb(img, heat, alpha, colormap)
with right:
    page.show_image(overlay, caption="Overlay")
st.caption(cam_view.faithfulness_note(entry.cache_key, sources.image_key(source, slice_index), method, target,
                                      predictor, img, heat))
stem = text.safe_stem(source.name)
st.download_button("Download overlay (PNG)", page.png_bytes(overlay), file_name=f"{stem}_{method}_{target}.png",
                   mime="image/png")
