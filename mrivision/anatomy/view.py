"""A small sagittal view of a scan: where its slices sit, the trained MNI band and the slices used."""
from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from mrivision.inputs.volume import Volume

HEIGHT = 180  # pixels; the width follows the volume's proportions
BAND_RGB = (60, 170, 90)
USED_RGB = (235, 120, 30)


def sagittal_view(volume: Volume, used: Sequence[int], slice_z_mm: Sequence[float] = (),
                  band_mm: tuple[float, float] | None = None) -> np.ndarray | None:
    """The volume's mid-sagittal plane (superior up, anterior left) as RGB uint8, the band's slices
    shaded green and the used slices drawn as orange lines; None for a single slice or slices without
    geometry (pictures: their spacing is unknown)."""
    slices = np.asarray(volume.slices, np.float32)
    n, h, w = slices.shape
    if n < 2 or volume.spacing is None:
        return None
    foreground = slices.max(axis=(0, 1))
    cols = np.flatnonzero(foreground > 0.2 * max(float(foreground.max()), 1e-6))
    column = int(np.round(cols.mean())) if len(cols) else w // 2
    plane = slices[::-1, :, column]  # (n, h): superior row first, rows of the slice across
    hi = max(float(np.percentile(plane, 99.5)), 1e-6)
    gray = np.clip(plane / hi * 255, 0, 255).astype(np.uint8)
    sz, sy = volume.spacing[0], volume.spacing[1]
    aspect = (h * sy) / max(n * sz, 1e-6)
    width = int(np.clip(round(HEIGHT * aspect), 40, 3 * HEIGHT))
    rgb = cv2.cvtColor(cv2.resize(gray, (width, HEIGHT), interpolation=cv2.INTER_AREA), cv2.COLOR_GRAY2RGB)

    def row(k: int) -> int:  # slice index -> the view's row through its centre (superior on top)
        return int(round((n - 1 - k + 0.5) * HEIGHT / n))

    if band_mm is not None and len(slice_z_mm) == n:
        z = np.asarray(slice_z_mm)
        inside = np.flatnonzero((z >= band_mm[0]) & (z <= band_mm[1]))
        if len(inside):
            top, bottom = row(inside.max()) - HEIGHT // (2 * n), row(inside.min()) + HEIGHT // (2 * n)
            shade = rgb.copy()
            shade[max(top, 0):min(bottom + 1, HEIGHT)] = BAND_RGB
            rgb = cv2.addWeighted(rgb, 0.7, shade, 0.3, 0)
    for k in used:
        y = min(max(row(int(k)), 0), HEIGHT - 1)
        rgb[y, :] = USED_RGB
    return rgb
