"""Frame, normalise and augment: the same code in training and inference (NumPy and OpenCV, no torch).

A slice reaches the network in two steps: `frame` puts it on the network's canvas in the spec's
framing (`mrivision.inputs.framing`), `normalise` turns canvases into the input batch. `batch_array`
does both. Training frames each image once, augments the canvases and normalises them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np

from mrivision.inputs.framing import Frame, frame_image, letterbox
from mrivision.model.spec import ModelSpec


def fit_to_size(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a HxW slice to `size` (H, W), keeping its aspect ratio and padding with black."""
    return letterbox(np.asarray(img, np.float32), size)[0]


def frame(img: np.ndarray, spec: ModelSpec) -> tuple[np.ndarray, Frame]:
    """A [0,1] HxW slice on the spec's canvas (its input size, in its framing) and how it got there."""
    return frame_image(np.asarray(img, np.float32), spec.input_size, spec.framing)


def normalise(canvases: Sequence[np.ndarray], spec: ModelSpec) -> np.ndarray:
    """Framed canvases -> the network's input: normalised float32 (N, 1, H, W)."""
    out = np.empty((len(canvases), 1, *spec.input_size), dtype=np.float32)
    for i, c in enumerate(canvases):
        out[i, 0] = (c - spec.mean) / spec.std
    return out


def batch_array(images: Sequence[np.ndarray], spec: ModelSpec) -> np.ndarray:
    """[0,1] HxW slices of any size -> the network's input (framed and normalised, (N, 1, H, W)).

    NumPy only, so the torch-free engine path and training share it (`torch.from_numpy` wraps it).
    """
    return normalise([frame(img, spec)[0] for img in images], spec)


@dataclass(frozen=True)
class Augment:
    """Anatomy-preserving augmentation of a framed canvas: small affine, horizontal flip,
    brightness/contrast, and (off by default) gamma, a smooth bias field, lost resolution and noise,
    the ways other scanners and pipelines differ. `OOD_JITTER` (`inference.ood`) is one setting of it."""

    rotate_deg: float = 8.0
    scale: float = 0.06
    scale_range: tuple[float, float] | None = None  # (low, high) scale factor instead of 1 +- scale
    translate: float = 0.04
    hflip: float = 0.5
    brightness: float = 0.08
    contrast: float = 0.1
    gamma: float = 0.0  # log-gamma drawn from +-gamma
    bias_field: float = 0.0  # peak relative gain of a smooth left-right / up-down ramp
    resolution: float = 0.0  # probability of a down-and-up resample by 0.5-0.9
    noise: float = 0.0  # Gaussian noise std (drawn up to this) inside the brain

    def __call__(self, img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        h, w = img.shape
        angle = rng.uniform(-self.rotate_deg, self.rotate_deg)
        scale = rng.uniform(*self.scale_range) if self.scale_range else 1.0 + rng.uniform(-self.scale, self.scale)
        m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, scale)
        m[:, 2] += rng.uniform(-self.translate, self.translate, size=2) * (w, h)
        out = cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
        if rng.random() < self.hflip:
            out = out[:, ::-1]
        brain = out > 0
        if self.resolution and rng.random() < self.resolution:
            f = rng.uniform(0.5, 0.9)
            small = cv2.resize(out, (max(8, round(w * f)), max(8, round(h * f))), interpolation=cv2.INTER_AREA)
            out = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
        if self.gamma:
            out = np.clip(out, 0, 1) ** np.exp(rng.uniform(-self.gamma, self.gamma))
        if self.bias_field:
            yy, xx = np.mgrid[-1:1:h * 1j, -1:1:w * 1j]
            a, b = rng.uniform(-self.bias_field, self.bias_field, 2)
            out = out * (1 + a * xx + b * yy)
        if self.noise:
            out = out + rng.normal(0, rng.uniform(0, self.noise), out.shape) * brain
        gain = 1.0 + rng.uniform(-self.contrast, self.contrast)
        out = out * gain
        if self.brightness:
            out = out + rng.uniform(-self.brightness, self.brightness) * brain
        return np.clip(out * brain, 0.0, 1.0).astype(np.float32)
