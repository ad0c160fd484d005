"""DICOM slices (pydicom): parse without decoding, check the codec, rescale, window, invert MONOCHROME1."""
from __future__ import annotations

import io
from typing import Any

import numpy as np
import pydicom
from pydicom import uid as dicom_uid
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.pixels import apply_color_lut, get_decoder, pixel_array

from mrivision.errors import ImageLoadError
from mrivision.inputs.pixels import (DAMAGED, NOT_AN_IMAGE, ImageInfo, check_pixels, check_sides, finite,
                                     luminance, minmax, slice_number)

_PIXEL_DATA_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")


def read_dicom(data: bytes, sniffed: bool) -> Dataset:
    """Parse the dataset (pixels stay encoded); ``sniffed``: the DICM marker was found."""
    try:
        ds = pydicom.dcmread(io.BytesIO(data), force=True)
    except Exception as exc:
        raise ImageLoadError(DAMAGED if sniffed else NOT_AN_IMAGE) from exc
    if not any(keyword in ds for keyword in _PIXEL_DATA_KEYWORDS):
        if not sniffed:
            raise ImageLoadError(NOT_AN_IMAGE)
        raise ImageLoadError(
            "This DICOM file has no image data (it may be a report or another non-image object)."
        )
    if "TransferSyntaxUID" not in ds.file_meta:  # bare dataset without file meta information
        implicit, little = ds.original_encoding
        ds.file_meta.TransferSyntaxUID = (
            dicom_uid.ImplicitVRLittleEndian if implicit
            else dicom_uid.ExplicitVRLittleEndian if little
            else dicom_uid.ExplicitVRBigEndian
        )
    _check_decoder(ds.file_meta.TransferSyntaxUID)
    return ds


def _check_decoder(transfer_syntax: dicom_uid.UID) -> None:
    try:
        available = get_decoder(transfer_syntax).is_available
    except NotImplementedError:
        available = False
    if available:
        return
    if transfer_syntax.name == str(transfer_syntax):  # not a transfer syntax pydicom knows
        what = "an unknown or damaged encoding that Vision does not support"
    else:
        what = f"a compression ({transfer_syntax.name}) that Vision does not support"
    raise ImageLoadError(
        f"This DICOM file uses {what}. "
        "Please export the scan as uncompressed DICOM or as PNG and retry."
    )


def dicom_info(ds: Dataset, axis: int | None) -> ImageInfo:
    rows, cols = int(ds.Rows), int(ds.Columns)
    frames = max(int(ds.get("NumberOfFrames") or 1), 1)
    check_pixels(frames * rows * cols * int(ds.get("SamplesPerPixel") or 1))
    check_sides(cols, rows)
    if frames == 1:
        return ImageInfo("dicom", (rows, cols), 1, 0)
    if axis not in (None, 0):
        raise ImageLoadError("A multi-frame DICOM file can only be read frame by frame (axis 0).")
    return ImageInfo("dicom", (frames, rows, cols), frames, 0)


def load_dicom(data: bytes, sniffed: bool, slice_index: int | None, axis: int | None) -> np.ndarray:
    ds = read_dicom(data, sniffed)
    info = dicom_info(ds, axis)
    frame = slice_number(info.n_slices, slice_index)
    arr = pixel_array(ds, index=frame if info.n_slices > 1 else None)
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip().upper()
    if photometric == "PALETTE COLOR":
        arr = apply_color_lut(arr, ds)
    if arr.ndim == 3:
        return minmax(luminance(arr))
    slope = _frame_number(ds, frame, "PixelValueTransformationSequence", "RescaleSlope")
    intercept = _frame_number(ds, frame, "PixelValueTransformationSequence", "RescaleIntercept")
    values = arr.astype(np.float64) * (1.0 if slope is None else slope)
    values = finite(values + (0.0 if intercept is None else intercept))
    center = _frame_number(ds, frame, "FrameVOILUTSequence", "WindowCenter")
    width = _frame_number(ds, frame, "FrameVOILUTSequence", "WindowWidth")
    if center is None or width is None or width <= 0:
        out = minmax(-values if photometric == "MONOCHROME1" else values)
    else:
        out = _window(values, center, width, str(ds.get("VOILUTFunction", "LINEAR")).upper())
        if photometric == "MONOCHROME1":
            out = 1.0 - out
    return out.astype(np.float32)


def _frame_number(ds: Dataset, frame: int, group: str, keyword: str) -> float | None:
    """First value of ``keyword`` for ``frame``: per-frame group, shared group, then top level."""
    sources = (("PerFrameFunctionalGroupsSequence", frame), ("SharedFunctionalGroupsSequence", 0))
    for sequence, item in sources:
        groups = ds.get(sequence)
        if groups is not None and item < len(groups) and groups[item].get(group):
            value = groups[item].get(group)[0].get(keyword)
            if value is not None:
                return _first_number(value)
    return _first_number(ds.get(keyword))


def _first_number(value: Any) -> float | None:
    if isinstance(value, (list, tuple, MultiValue)):
        value = value[0] if len(value) else None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if np.isfinite(number) else None


def _window(values: np.ndarray, center: float, width: float, function: str) -> np.ndarray:
    """Apply a DICOM VOI window (PS3.3 C.11.2.1.2), giving values in [0, 1]."""
    if function == "SIGMOID":
        return 1.0 / (1.0 + np.exp(np.clip(-4.0 * (values - center) / width, -700, 700)))
    if function == "LINEAR_EXACT":
        return np.clip((values - center) / width + 0.5, 0.0, 1.0)
    return np.clip((values - (center - 0.5)) / max(width - 1.0, 1e-6) + 0.5, 0.0, 1.0)
