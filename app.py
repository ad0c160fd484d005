"""MRI Vision — Streamlit entry point: page config, shared sidebar, disclaimer, navigation.

Run with ``streamlit run app.py``. Models are read from $MRIVISION_WEIGHTS_DIR (default: weights/).
"""
import streamlit as st

from mrivision.inference.export import export_shipped_in_background
from ui import loading, page

export_shipped_in_background()  # once per server: engine files the shipped models lack (a fresh clone), in a child process

# The favicon is an emoji, which Streamlit draws locally. Without it, each page's Material icon would
# become the favicon, fetched from a font host, and a hospital network is offline (tests/test_browser.py
# records every request). The icons in the navigation use the font Streamlit serves itself.
st.set_page_config(page_title="MRI Vision", page_icon="🧠", layout="wide")

# The page files live in app_pages/, not pages/: a folder named pages/ makes Streamlit run a page file
# on its own (without this entry point: no sidebar, no page config) when the first request after a
# server start is a deep link such as /metrics, and AppTest.switch_page always does so.
pages = [
    st.Page("app_pages/predict.py", title="Predict", icon=":material/neurology:", default=True),
    st.Page("app_pages/scan.py", title="Whole scan", icon=":material/view_in_ar:"),
    st.Page("app_pages/overlay.py", title="Overlay", icon=":material/layers:"),
    st.Page("app_pages/compare.py", title="Compare", icon=":material/compare:"),
    st.Page("app_pages/metrics.py", title="Metrics", icon=":material/monitoring:"),
    st.Page("app_pages/about.py", title="About", icon=":material/info:"),
]
current = st.navigation(pages)

with loading.script_run():  # background loading waits while the app is busy (loading.IDLE_BEFORE_WARM_S)
    with st.sidebar:
        st.markdown("### MRI Vision")
        st.caption("Alzheimer's stage classification of brain MRI slices and scans, with heatmaps and atrophy measures.")
    page.model_picker()
    st.sidebar.caption(page.DISCLAIMER)
    current.run()  # every page starts with page.page_header(), which shows the disclaimer
