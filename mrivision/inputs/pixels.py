"""What every reader shares: size limits, the `ImageInfo` record, plain messages, checks and scaling.

Part of the small public reader API of `mrivision.inputs` (with `image.read_source`/`detect_kind`/
`guarded`, `dicom` and `nifti`): `volume` builds scans from it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mrivision.errors import ImageLoadError

MAX_FILE_BYTES = 50 * 1024 * 1024
MAX_PIXELS = 40_000_000
MIN_SIDE = 16
_LUMA = np.array([0.299, 0.587, 0.114])

NOT_AN_IMAGE = "This file is not an image MRI Vision can read (PNG, JPEG, TIFF, DICOM or NIfTI)."
DAMAGED = (
    "The file is damaged or incomplete (it may have been cut off while uploading or copying). "
    "Please export it again and retry."
)


@dataclass(frozen=True)
class ImageInfo:
    """What a file holds: its kind, array shape and the slices available along ``axis``."""

    kind: str
    shape: tuple[int, ...]
    n_slices: int
    axis: int


def human_bytes(n: int) -> str:
    for unit, size in (("MB", 1024**2), ("KB", 1024)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n} bytes"


def check_axis(axis: int | None) -> int | None:
    if axis is None:
        return None
    if isinstance(axis, (int, np.integer)) and not isinstance(axis, bool) and -3 <= axis <= 2:
        return int(axis) % 3
    raise ImageLoadError("The slice direction (axis) must be 0, 1 or 2.")


def check_pixels(n_pixels: int) -> None:
    if n_pixels > MAX_PIXELS:
        raise ImageLoadError(
            f"The image is too large: it declares {n_pixels:,} pixels and the limit is {MAX_PIXELS:,}."
        )


def check_sides(width: int, height: int) -> None:
    if min(width, height) < MIN_SIDE:
        raise ImageLoadError(
            f"The image is too small ({width} x {height} pixels); "
            f"each side must be at least {MIN_SIDE} pixels."
        )


def slice_number(n_slices: int, slice_index: int | None) -> int:
    """Return the slice to read: ``slice_index`` checked against the range, or the middle one."""
    if slice_index is None:
        return n_slices // 2
    ok = isinstance(slice_index, (int, np.integer)) and not isinstance(slice_index, bool)
    if ok and 0 <= slice_index < n_slices:
        return int(slice_index)
    if n_slices == 1:
        raise ImageLoadError(f"Slice {slice_index} does not exist: this image has only one slice (0).")
    raise ImageLoadError(
        f"Slice {slice_index} does not exist: this image has {n_slices} slices, "
        f"numbered 0 to {n_slices - 1}."
    )


def finite(arr: np.ndarray) -> np.ndarray:
    """Replace NaN and -inf by the finite minimum and +inf by the finite maximum."""
    if arr.dtype.kind != "f":
        return arr
    finite = np.isfinite(arr)
    if finite.all():
        return arr
    if not finite.any():
        raise ImageLoadError(
            "The selected slice holds no valid numbers (all values are missing or infinite)."
        )
    lo, hi = arr[finite].min(), arr[finite].max()
    return np.nan_to_num(arr, nan=lo, posinf=hi, neginf=lo)


def minmax(arr: np.ndarray) -> np.ndarray:
    """Scale to [0, 1] by the array's own min and max (zeros for a constant array)."""
    arr = np.asarray(arr, dtype=np.float64)
    lo, hi = float(arr.min()), float(arr.max())
    if hi <= lo:
        return np.zeros(arr.shape, np.float32)
    scale = max(abs(lo), abs(hi))  # keeps hi - lo finite for values near the float64 limit
    out = (arr / scale - lo / scale) / (hi / scale - lo / scale)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def luminance(rgb: np.ndarray) -> np.ndarray:
    return rgb[..., :3].astype(np.float64) @ _LUMA
