"""MRI Vision core: load slices, classify Alzheimer's stage, explain with CAM, evaluate honestly.

A research demo, not a diagnostic device.
"""
from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing downloads at run time
# ONNX Runtime (inference.engine_file, inference.in_memory) >= 1.29 on Linux otherwise writes a device id and an event
# database under ~/.cache/Microsoft, a `.ses` file in the temp folder, and uploads telemetry.
# Read once, when onnxruntime is first imported: it must be set before that import.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

from .constants import BINARY_CLASS_NAMES, CLASS_NAMES  # noqa: E402
from .errors import ImageLoadError, ModelLoadError  # noqa: E402

# torch-heavy names load on first use, so `mrivision.evaluation.metrics` and `mrivision.inputs.image` stay light.
_LAZY = {"load_image": "inputs.image", "Prediction": "inference.prediction", "Predictor": "inference.predictor",
         "list_models": "inference.predictor", "load_model": "inference.predictor", "load_volume": "inputs.volume",
         "Volume": "inputs.volume", "ScanPrediction": "inference.scan", "ModelCard": "model.card",
         "measure_atrophy": "anatomy.atrophy", "AtrophyMeasures": "anatomy.atrophy"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'mrivision' has no attribute {name!r}")


__all__ = ["AtrophyMeasures", "BINARY_CLASS_NAMES", "CLASS_NAMES", "ImageLoadError", "ModelCard", "ModelLoadError",
           "Prediction", "Predictor",
           "ScanPrediction", "Volume",
           "list_models", "load_image", "load_model", "load_volume", "measure_atrophy"]
