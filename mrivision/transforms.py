"""Resize, normalise and augment: the same code in training and inference."""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

from .models.registry import ModelSpec


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


def to_tensor(img: np.ndarray, spec: ModelSpec) -> torch.Tensor:
    """A [0,1] HxW slice -> normalised 1xHxW float tensor at the spec's input size."""
    x = fit_to_size(np.asarray(img, dtype=np.float32), spec.input_size)
    return torch.from_numpy((x - spec.mean) / spec.std).unsqueeze(0)


def batch_tensor(images: list[np.ndarray], spec: ModelSpec) -> torch.Tensor:
    return torch.stack([to_tensor(im, spec) for im in images])


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
