"""MRI Vision — Streamlit entry point: page config, shared sidebar, disclaimer, navigation.

Run with ``streamlit run app.py``. Models are read from $MRIVISION_WEIGHTS_DIR (default: weights/).
"""
import streamlit as st

from ui import common as ui

st.set_page_config(page_title="MRI Vision", layout="wide")

pages = [
    st.Page("pages/predict.py", title="Predict", icon=":material/neurology:", default=True),
    st.Page("pages/overlay.py", title="Overlay", icon=":material/layers:"),
    st.Page("pages/compare.py", title="Compare", icon=":material/compare:"),
    st.Page("pages/metrics.py", title="Metrics", icon=":material/monitoring:"),
    st.Page("pages/about.py", title="About", icon=":material/info:"),
]
page = st.navigation(pages)

with st.sidebar:
    st.markdown("### MRI Vision")
    st.caption("Alzheimer's stage classification of brain MRI slices, with CAM heatmaps.")
ui.model_picker()
st.sidebar.caption(ui.DISCLAIMER)

page.run()  # every page starts with ui.page_header(), which shows the disclaimer
