"""What every page shares: the title with the disclaimer, the sidebar model picker, the selected
model, and how a slice is drawn."""
from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import pandas as pd
import streamlit as st

from ui import catalogue
from ui.catalogue import ModelEntry
from ui.loading import preload
from ui.text import NOT_MEASURED, cell, esc, is_number

if TYPE_CHECKING:
    from mrivision import Prediction

DISCLAIMER = "Research demo — not a medical device. Not for diagnosis or treatment decisions."
MODEL_KEY = "model"  # session-state key of the sidebar model picker
MIN_DISPLAY_SIDE = 256


def page_header(title: str, intro: str | None = None) -> None:
    """Every page starts with its title and the disclaimer (each page renders it itself, so it shows
    even if a page file is ever run on its own)."""
    st.title(title)
    show_disclaimer()
    if intro:
        st.caption(intro)


def show_disclaimer() -> None:
    st.warning(DISCLAIMER, icon="⚠️")


def model_picker() -> ModelEntry | None:
    """The sidebar model select box (session-state key ``model``), defaulting to the best model.
    Each model is labelled with one number, the same for all: new-patient balanced accuracy."""
    models = catalogue.clinical_models()
    if not models:
        st.sidebar.info("No models found yet.")
        return None
    by_key = {m.key: m for m in models}
    if st.session_state.get(MODEL_KEY) not in by_key:  # first run, or the chosen model was removed
        st.session_state[MODEL_KEY] = catalogue.default_model(models).key
    key = st.sidebar.selectbox(
        f"Model · {catalogue.NUMBER_LABEL}", list(by_key), key=MODEL_KEY,
        format_func=lambda k: catalogue.model_label(by_key[k]),
        help="Used by the Predict, Whole scan, Overlay and Metrics pages (Compare runs every model). "
             + catalogue.NUMBER_HELP)
    preload(by_key[key])
    return by_key[key]


def current_model() -> ModelEntry | None:
    models = catalogue.clinical_models()
    by_key = {m.key: m for m in models}
    return by_key.get(st.session_state.get(MODEL_KEY)) or catalogue.default_model(models)


def no_models_message() -> None:
    st.info(f"No trained models were found in the weights folder ({esc(catalogue.weights_dir())}). "
            f"Models appear here once training has written `NAME.safetensors` with its `NAME.json` card; "
            f"set the environment variable {catalogue.WEIGHTS_ENV} to use another folder.")
    for problem in catalogue.model_problems():
        st.warning(esc(problem))


def require_model() -> ModelEntry:
    """The selected model, or an explanation and a stop when none is available."""
    entry = current_model()
    if entry is None:
        no_models_message()
        st.stop()
    return entry


def warnings_for(prediction: Prediction) -> None:
    for w in prediction.warnings:
        st.warning(esc(w))


def for_display(img: np.ndarray) -> np.ndarray:
    """Upscale tiny slices so they are visible; values stay in [0, 1] (or uint8 RGB)."""
    import cv2

    h, w = img.shape[:2]
    if min(h, w) >= MIN_DISPLAY_SIDE:
        return img
    scale = MIN_DISPLAY_SIDE / min(h, w)
    return cv2.resize(img, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_NEAREST)


def show_image(img: np.ndarray, caption: str | None = None) -> None:
    st.image(for_display(img), caption=caption, clamp=True, width="stretch", output_format="PNG")


def png_bytes(rgb: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.asarray(rgb)).save(buf, format="PNG")
    return buf.getvalue()


def readable(table: pd.DataFrame, missing: str = NOT_MEASURED, percent: Sequence[str] = ()) -> pd.DataFrame:
    """`table` with every column that has a missing value turned into text: `missing` there, three
    decimals (whole numbers for counts) elsewhere; `percent` columns as "53.2%". Complete columns
    stay numbers (they sort)."""
    shown = table.copy()
    for col in shown.columns:
        values = shown[col]
        if col in percent:
            shown[col] = [f"{v:.1%}" if is_number(v) else missing for v in values]
        elif values.isna().any():
            counts = all(float(v).is_integer() for v in values if is_number(v))
            shown[col] = [missing if not is_number(v) and pd.isna(v) else
                          str(int(v)) if counts and is_number(v) else cell(v) for v in values]
    return shown


def show_table(table: pd.DataFrame, missing: str = NOT_MEASURED, percent: Sequence[str] = (),
               **column_config: Any) -> None:
    """A table with three decimals and `missing` for every missing value (Streamlit would say "None")."""
    st.dataframe(readable(table, missing, percent).style.format(precision=3), hide_index=True,
                 column_config=column_config or None)
