"""MRI Vision core: load slices, classify Alzheimer's stage, explain with CAM, evaluate honestly.

A research demo, not a diagnostic device.
"""
from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing downloads at run time

from .constants import BINARY_CLASS_NAMES, CLASS_NAMES  # noqa: E402
from .errors import ImageLoadError, ModelLoadError  # noqa: E402
from .io import load_image  # noqa: E402
from .predictor import Prediction, Predictor, list_models, load_model  # noqa: E402

__all__ = ["BINARY_CLASS_NAMES", "CLASS_NAMES", "ImageLoadError", "ModelLoadError", "Prediction", "Predictor",
           "list_models", "load_image", "load_model"]
