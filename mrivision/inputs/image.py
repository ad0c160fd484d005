"""Read one 2-D MRI slice, as float32 in [0, 1], from a picture, a DICOM file or a NIfTI volume.

Inputs are a path or the raw bytes of an upload (with ``name``, the original file name, as a
format hint). The format is found from the file's first bytes, then from its name. Nothing is
ever written to disk: bytes are decoded in memory.

The formats live in `mrivision.inputs.dicom` and `mrivision.inputs.nifti`, the limits, checks and
scaling they share in `mrivision.inputs.pixels`; `read_source`, `detect_kind` and `guarded` are the
public entry points `mrivision.inputs.volume` builds scans with.

Behaviour a caller should know:

* 8-bit pictures (gray, colour, palette) become luminance ``x / 255`` exactly, as in training.
  16-bit, 32-bit and float pictures, DICOM and NIfTI are min-max scaled to [0, 1]; a constant
  image gives zeros. Alpha is dropped. Animated GIF/PNG and multi-page TIFF: the first frame.
* DICOM: rescale slope/intercept applied (per-frame functional groups first); if a window
  (centre/width, first value) is present it maps the slice to [0, 1] instead of min-max;
  MONOCHROME1 is inverted; colour becomes luminance. Multi-frame files are volumes of frames
  along axis 0 (the only axis allowed); the default slice is the middle frame.
* NIfTI: the volume is first reoriented to the closest RAS+ axis order (as
  ``nibabel.as_closest_canonical``; stored order if the affine is unusable), so axis 2 is
  axial. A 2-D file is treated as one slice ``(X, Y, 1)``. The default axis is 2, or the
  singleton axis of a single-slice volume; the default slice is the middle one; the slice is
  turned upright with ``np.rot90``. NaN/inf are replaced by the slice's finite min/max.
  4-D series are refused unless the 4th dimension is 1.
* For 2-D inputs ``axis`` is ignored and ``slice_index`` may only be 0 (or None).
* Whole-array size (all frames / voxels) is limited to ``MAX_PIXELS``, checked from the header
  before any pixel is decoded; both sides of the returned slice must be at least ``MIN_SIDE``.
* Every failure raises :class:`ImageLoadError` with a message in plain words.
"""
from __future__ import annotations

import io
import os
import warnings
from pathlib import Path
from typing import Any, Callable, TypeVar

import numpy as np
from PIL import Image, UnidentifiedImageError

from mrivision.errors import ImageLoadError
from mrivision.inputs.dicom import dicom_info, load_dicom, read_dicom
from mrivision.inputs.nifti import GZIP_MAGIC, load_nifti, nifti_head, nifti_header, nifti_layout
from mrivision.inputs.pixels import (DAMAGED, MAX_FILE_BYTES, MAX_PIXELS, MIN_SIDE, NOT_AN_IMAGE, ImageInfo,
                                     check_axis, check_pixels, check_sides, finite, human_bytes, minmax,
                                     slice_number)

__all__ = ["MAX_FILE_BYTES", "MAX_PIXELS", "MIN_SIDE", "ImageInfo", "Source", "describe_image", "detect_kind",
           "guarded", "load_image", "read_source"]

Source = str | os.PathLike[str] | bytes

_UNREADABLE_VARIANT = (
    "The picture is damaged, or uses a variant of its format (for example an unusual bit depth) "
    "that MRI Vision cannot read. Please save it as an 8-bit grayscale PNG and retry."
)
_UNSUPPORTED_PIXELS = (
    "This picture uses a colour format or bit depth that MRI Vision cannot read. "
    "Please save it as an 8-bit grayscale PNG and retry."
)
_RASTER_FORMATS = ("PNG", "JPEG", "TIFF", "BMP", "GIF", "WEBP")
_RASTER_MAGIC = (
    b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+",
    b"BM", b"GIF87a", b"GIF89a",
)
_NIFTI_MAGIC = (b"n+1\x00", b"ni1\x00")
_DICOM_SUFFIXES = (".dcm", ".dicom")
_NIFTI_SUFFIXES = (".nii", ".nii.gz")

_T = TypeVar("_T")


def describe_image(src: Source, name: str | None = None, axis: int | None = None) -> ImageInfo:
    """Describe the image in ``src`` from its header, without decoding pixels."""
    data, name = read_source(src, name)
    kind, sniffed = detect_kind(data, name)
    axis = check_axis(axis)
    if kind == "raster":
        return guarded(_describe_raster, data)
    if kind == "dicom":
        return guarded(lambda: dicom_info(read_dicom(data, sniffed), axis))
    return guarded(lambda: nifti_layout(nifti_header(nifti_head(data)), axis)[0])


def load_image(
    src: Source,
    *,
    name: str | None = None,
    slice_index: int | None = None,
    axis: int | None = None,
) -> np.ndarray:
    """Return one 2-D float32 slice (H x W) with values in [0, 1]."""
    data, name = read_source(src, name)
    kind, sniffed = detect_kind(data, name)
    axis = check_axis(axis)
    if kind == "raster":
        image = guarded(_load_raster, data, slice_index)
    elif kind == "dicom":
        image = guarded(load_dicom, data, sniffed, slice_index, axis)
    else:
        image = guarded(load_nifti, data, slice_index, axis)
    check_sides(image.shape[1], image.shape[0])
    return image


# --- input and format detection (public: `volume` reads scans with them) ----------------------


def read_source(src: Source, name: str | None) -> tuple[bytes, str | None]:
    """Return the file's bytes (at most MAX_FILE_BYTES) and the best file name hint."""
    if isinstance(src, (bytes, bytearray, memoryview)):
        data = bytes(src)
    elif isinstance(src, (str, os.PathLike)):
        label = "the file"
        try:
            path = Path(src)
            label = repr(path.name)
            name = name or path.name
            with path.open("rb") as fh:
                data = fh.read(MAX_FILE_BYTES + 1)
        except FileNotFoundError as exc:
            raise ImageLoadError(f"MRI Vision could not find the file '{os.fspath(src)}'.") from exc
        except IsADirectoryError as exc:
            raise ImageLoadError(f"{label} is a folder, not an image file.") from exc
        except (OSError, ValueError, TypeError) as exc:
            raise ImageLoadError(f"MRI Vision could not open {label}.") from exc
    else:
        raise ImageLoadError("MRI Vision needs an image file (a path or the file's contents) to read.")
    if not data:
        raise ImageLoadError("The file is empty.")
    if len(data) > MAX_FILE_BYTES:
        raise ImageLoadError(f"The file is too large; the limit is {human_bytes(MAX_FILE_BYTES)}.")
    return data, name


def detect_kind(data: bytes, name: str | None) -> tuple[str, bool]:
    """Return ("raster" | "dicom" | "nifti", found by content) from magic bytes, then the name."""
    if data[128:132] == b"DICM":
        return "dicom", True
    if data[344:348] in _NIFTI_MAGIC:
        return "nifti", True
    if data.startswith(GZIP_MAGIC):  # the only gzip-compressed format read is .nii.gz
        return "nifti", True
    if data.startswith(_RASTER_MAGIC) or (data[:4] == b"RIFF" and data[8:12] == b"WEBP"):
        return "raster", True
    lower = str(name or "").lower()
    if lower.endswith(_DICOM_SUFFIXES):
        return "dicom", False
    if lower.endswith(_NIFTI_SUFFIXES):
        return "nifti", False
    raise ImageLoadError(NOT_AN_IMAGE)


def guarded(fn: Callable[..., _T], *args: Any) -> _T:
    """Call ``fn`` so that only ImageLoadError escapes."""
    try:
        return fn(*args)
    except ImageLoadError:
        raise
    except MemoryError as exc:
        raise ImageLoadError("The image is too large to open on this computer.") from exc
    except Exception as exc:
        raise ImageLoadError(DAMAGED) from exc


# --- pictures (Pillow) ------------------------------------------------------------------------


def _open_raster(data: bytes) -> Image.Image:
    """Open lazily and check the declared size before anything is decoded."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data), formats=_RASTER_FORMATS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageLoadError(
            f"The image is too large: it declares more than {MAX_PIXELS:,} pixels."
        ) from exc
    except UnidentifiedImageError as exc:
        raise ImageLoadError(_UNREADABLE_VARIANT) from exc
    check_pixels(im.width * im.height)
    check_sides(im.width, im.height)
    return im


def _describe_raster(data: bytes) -> ImageInfo:
    im = _open_raster(data)
    return ImageInfo("raster", (im.height, im.width), 1, 0)


def _load_raster(data: bytes, slice_index: int | None) -> np.ndarray:
    im = _open_raster(data)
    slice_number(1, slice_index)
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        im.load()  # first frame only; truncated data raises (LOAD_TRUNCATED_IMAGES stays off)
    if im.mode.startswith("I;16") or im.mode in ("I", "F"):
        return minmax(finite(np.asarray(im)))
    if im.mode == "LAB":
        im = im.getchannel("L")
    try:
        gray = im if im.mode == "L" else im.convert("L")
    except ValueError as exc:
        raise ImageLoadError(_UNSUPPORTED_PIXELS) from exc
    return np.asarray(gray, dtype=np.float32) / np.float32(255)
