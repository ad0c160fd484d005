"""Resize, normalise and augment: the same code in training and inference (NumPy and OpenCV, no torch)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np

from .spec import ModelSpec


def fit_to_size(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a HxW slice to `size` (H, W), keeping its aspect ratio and padding with black."""
    h, w = img.shape
    th, tw = size
    if (h, w) == (th, tw):
        return img
    scale = min(th / h, tw / w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    resized = cv2.resize(img, (nw, nh), interpolation=interp)
    out = np.zeros((th, tw), dtype=np.float32)
    top, left = (th - nh) // 2, (tw - nw) // 2
    out[top:top + nh, left:left + nw] = resized
    return out


def batch_array(images: Sequence[np.ndarray], spec: ModelSpec) -> np.ndarray:
    """[0,1] HxW slices -> the network's input: normalised float32 (N, 1, H, W) at the spec's size.

    NumPy only, so the torch-free engine path and training share it (`torch.from_numpy` wraps it).
    """
    out = np.empty((len(images), 1, *spec.input_size), dtype=np.float32)
    for i, img in enumerate(images):
        out[i, 0] = (fit_to_size(np.asarray(img, dtype=np.float32), spec.input_size) - spec.mean) / spec.std
    return out


@dataclass(frozen=True)
class Augment:
    """Light, anatomy-preserving augmentation: small affine, horizontal flip, brightness/contrast."""

    rotate_deg: float = 8.0
    scale: float = 0.06
    translate: float = 0.04
    hflip: float = 0.5
    brightness: float = 0.08
    contrast: float = 0.1

    def __call__(self, img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        h, w = img.shape
        angle = rng.uniform(-self.rotate_deg, self.rotate_deg)
        scale = 1.0 + rng.uniform(-self.scale, self.scale)
        m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, scale)
        m[:, 2] += rng.uniform(-self.translate, self.translate, size=2) * (w, h)
        out = cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
        if rng.random() < self.hflip:
            out = out[:, ::-1]
        gain = 1.0 + rng.uniform(-self.contrast, self.contrast)
        out = out * gain + rng.uniform(-self.brightness, self.brightness) * (out > 0)
        return np.clip(out, 0.0, 1.0).astype(np.float32)
