"""Torch-free heatmap helpers shared by every explanation method (`cam`, `occlusion`): a canvas
heatmap mapped back onto the input slice, masking to the brain, and the colour overlay."""
from __future__ import annotations

import cv2
import numpy as np

from mrivision.inputs.framing import Frame, brain_region, unframe

COLORMAPS: dict[str, int] = {
    "jet": cv2.COLORMAP_JET,
    "inferno": cv2.COLORMAP_INFERNO,
    "viridis": cv2.COLORMAP_VIRIDIS,
    "turbo": cv2.COLORMAP_TURBO,
    "hot": cv2.COLORMAP_HOT,
}


def to_input(heat: np.ndarray, frame: Frame) -> np.ndarray:
    """A canvas heatmap back on the input slice (`framing.unframe`), rescaled to [0,1]."""
    out = unframe(heat, frame)
    lo, hi = float(out.min()), float(out.max())
    if hi - lo < 1e-6:  # constant map: nothing is highlighted
        return np.zeros(frame.shape, np.float32)
    return np.clip((out - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)


def mask_to_brain(heat: np.ndarray, img: np.ndarray) -> np.ndarray:
    """`heat` zeroed outside the slice's brain (`framing.brain_region`), rescaled to a maximum of 1."""
    out = np.where(brain_region(img), heat, 0.0).astype(np.float32)
    top = float(out.max())
    return out / top if top > 1e-6 else out


def overlay(img: np.ndarray, heat: np.ndarray, alpha: float = 0.45, colormap: str = "jet",
            brain_only: bool = True) -> np.ndarray:
    """RGB float [0,1] HxWx3: the colour-mapped heatmap blended (weight `alpha`) on the gray slice,
    inside the brain only (`framing.brain_region`) unless `brain_only=False`."""
    if colormap not in COLORMAPS:
        raise ValueError(f"unknown colormap {colormap!r}; choose from {', '.join(COLORMAPS)}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    img = np.clip(np.asarray(img, dtype=np.float32), 0.0, 1.0)
    heat = np.clip(np.nan_to_num(np.asarray(heat, dtype=np.float32)), 0.0, 1.0)
    if img.ndim != 2 or heat.shape != img.shape:
        raise ValueError(f"need a 2-D slice and a heatmap of the same shape, got {img.shape} and {heat.shape}")
    colour = cv2.applyColorMap(np.uint8(np.round(heat * 255)), COLORMAPS[colormap])
    colour = cv2.cvtColor(colour, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0
    weight = alpha * (brain_region(img) if brain_only else np.ones(img.shape, bool))[..., None]
    return np.clip((1.0 - weight) * img[..., None] + weight * colour, 0.0, 1.0).astype(np.float32)


def heavy_blur(img: np.ndarray) -> np.ndarray:
    """The fill for removed pixels: a Gaussian blur with sigma 1/8 of the slice's shorter side."""
    sigma = max(1.0, min(img.shape) / 8)
    return cv2.GaussianBlur(np.asarray(img, np.float32), (0, 0), sigmaX=sigma, sigmaY=sigma,
                            borderType=cv2.BORDER_CONSTANT)
