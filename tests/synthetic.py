"""Generated MRI-like slices whose class is visible: a bright oval 'brain' with a dark
'ventricle' whose size grows with the stage. Used by the tests; no real data involved."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from mrivision.constants import CLASS_NAMES

SHAPE = (48, 40)  # (H, W), the 208x176 aspect ratio, small


def make_slice(label: int, rng: np.random.Generator, shape: tuple[int, int] = SHAPE) -> np.ndarray:
    h, w = shape
    img = np.zeros(shape, np.float32)
    centre = (w // 2 + int(rng.integers(-2, 3)), h // 2 + int(rng.integers(-2, 3)))
    cv2.ellipse(img, centre, (int(w * 0.38), int(h * 0.4)), 0, 0, 360, float(rng.uniform(0.55, 0.75)), -1)
    radius = 2 + 3 * label + int(rng.integers(0, 2))
    cv2.circle(img, centre, radius, 0.08, -1)
    img += rng.normal(0, 0.03, shape).astype(np.float32) * (img > 0)
    return np.clip(img, 0, 1)


def write_png(path: Path, img: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.clip(img * 255 + 0.5, 0, 255).astype(np.uint8))


def write_tree(root: Path, per_class: int, seed: int, scan_names: bool = False,
               classes: tuple[str, ...] = CLASS_NAMES) -> Path:
    """A class-folder tree; with `scan_names`, files are `NN (k).png` (slice NN of scan k)."""
    rng = np.random.default_rng(seed)
    for label, cls in enumerate(classes):
        for i in range(per_class):
            name = f"{20 + i % 4} ({i // 4}).png" if scan_names else f"img{i}.png"
            write_png(root / cls / name, make_slice(label, rng))
    return root
