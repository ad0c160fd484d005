"""Heatmaps in the app: the CAM methods on offer, cached heatmaps and their colour overlays."""
from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Sequence

import numpy as np
import streamlit as st

from mrivision.explain.heatmap import COLORMAPS, overlay
from mrivision.explain.occlusion import METHODS as OCCLUSION_METHODS
from ui.catalogue import ModelEntry
from ui.text import esc

if TYPE_CHECKING:
    from mrivision import Predictor

SLOW_METHODS = frozenset({"scorecam", "iterative_occlusion"})  # seconds per slice on a CPU
SEND_BEFORE_IMPORTS_S = 0.25
METHOD_LABELS = {"gradcam": "Grad-CAM", "gradcam++": "Grad-CAM++", "hirescam": "HiResCAM", "xgradcam": "XGrad-CAM",
                 "layercam": "LayerCAM", "eigencam": "Eigen-CAM", "scorecam": "Score-CAM (slow)",
                 "random": "Random (sanity baseline)", "occlusion": "Occlusion (no gradients)",
                 "iterative_occlusion": "Iterative occlusion (no gradients)"}


def cam_module():
    """`mrivision.explain.cam` (its import brings torch: seconds, once per process)."""
    from mrivision.explain import cam

    return cam


def cam_methods() -> list[str]:
    """The Grad-CAM family and the gradient-free occlusion methods (`mrivision.explain.occlusion`)."""
    return [*cam_module().METHODS, *OCCLUSION_METHODS]


def colormaps() -> list[str]:
    return list(COLORMAPS)


def default_method(predictor: Predictor) -> str:
    """The heatmap method the model's card chose (`ModelCard.heatmap_method`)."""
    return predictor.card.heatmap_method


@st.cache_data(show_spinner=False, max_entries=128)
def faithfulness_note(model_key: str, image_key: str, method: str, target: str, _predictor: Predictor,
                      _img: np.ndarray, _heat: np.ndarray) -> str:
    """The heatmap's own deletion check, in one sentence (`mrivision.evaluation.deletion`)."""
    from mrivision.evaluation.deletion import heatmap_faithfulness

    return heatmap_faithfulness(_predictor, _img, _heat, target).sentence()


def method_label(method: str) -> str:
    return METHOD_LABELS.get(method, method)


def class_index(names: Sequence[str], label: str) -> int:
    """Where `label` is in `names` (0 if absent): the class a heatmap explains by default."""
    try:
        return list(names).index(label)
    except ValueError:
        return 0


def overlay_rgb(img: np.ndarray, heat: np.ndarray, alpha: float = 0.45, colormap: str = "jet") -> np.ndarray:
    """RGB uint8 overlay (`mrivision.explain.heatmap.overlay`: coloured inside the brain only)."""
    return (np.clip(overlay(img, heat, alpha=alpha, colormap=colormap), 0, 1) * 255 + 0.5).astype(np.uint8)


def heat_rgb(img: np.ndarray, heat: np.ndarray, colormap: str = "jet") -> np.ndarray:
    """The heatmap alone, coloured with the same colormap (overlay at full opacity)."""
    return overlay_rgb(img, heat, alpha=1.0, colormap=colormap)


@st.cache_data(show_spinner=False, max_entries=128)
def _explain(model_key: str, image_key: str, method: str, target: str, _predictor: Predictor,
             _img: np.ndarray) -> np.ndarray:
    return np.asarray(_predictor.explain(_img, method=method, target=target), dtype=np.float32)


def explain(entry: ModelEntry, predictor: Predictor, image_key: str, img: np.ndarray, method: str,
            target: str) -> np.ndarray | None:
    """Cached heatmap; None (with a warning shown) if it cannot be computed."""
    if "mrivision.explain.cam" not in sys.modules:
        # The first heatmap of the process: what the page shows so far (the prediction) goes out
        # before ~4 s of torch imports, which hold Python's interpreter lock and would hold up the
        # server's sending for most of a second.
        time.sleep(SEND_BEFORE_IMPORTS_S)
    try:
        with st.spinner(f"Computing {method_label(method)} for {esc(target)}…"):
            return _explain(entry.cache_key, image_key, method, target, predictor, img)
    except Exception as exc:  # a heatmap failure must not take the page down
        st.warning(f"The {method_label(method)} heatmap could not be computed: {esc(exc)}")
        return None
