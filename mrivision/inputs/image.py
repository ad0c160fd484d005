"""Read one 2-D MRI slice, as float32 in [0, 1], from a picture, a DICOM file or a NIfTI volume.

Inputs are a path or the raw bytes of an upload (with ``name``, the original file name, as a
format hint). The format is found from the file's first bytes, then from its name. Nothing is
ever written to disk: bytes are decoded in memory.

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
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, TypeVar

import nibabel as nib
import numpy as np
import pydicom
from nibabel.orientations import apply_orientation, io_orientation
from PIL import Image, UnidentifiedImageError
from pydicom import uid as dicom_uid
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.pixels import apply_color_lut, get_decoder, pixel_array

from mrivision.errors import ImageLoadError

MAX_FILE_BYTES = 50 * 1024 * 1024
MAX_PIXELS = 40_000_000
MIN_SIDE = 16

Source = str | os.PathLike[str] | bytes

_NOT_AN_IMAGE = "This file is not an image MRI Vision can read (PNG, JPEG, TIFF, DICOM or NIfTI)."
_DAMAGED = (
    "The file is damaged or incomplete (it may have been cut off while uploading or copying). "
    "Please export it again and retry."
)
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
_NIFTI_HEADER_BYTES = 348
_GZIP_MAGIC = b"\x1f\x8b"
_DICOM_SUFFIXES = (".dcm", ".dicom")
_NIFTI_SUFFIXES = (".nii", ".nii.gz")
_PIXEL_DATA_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
_LUMA = np.array([0.299, 0.587, 0.114])

_T = TypeVar("_T")


@dataclass(frozen=True)
class ImageInfo:
    """What a file holds: its kind, array shape and the slices available along ``axis``."""

    kind: str
    shape: tuple[int, ...]
    n_slices: int
    axis: int


def describe_image(src: Source, name: str | None = None, axis: int | None = None) -> ImageInfo:
    """Describe the image in ``src`` from its header, without decoding pixels."""
    data, name = _read_source(src, name)
    kind, sniffed = _detect_kind(data, name)
    axis = _check_axis(axis)
    if kind == "raster":
        return _guarded(_describe_raster, data)
    if kind == "dicom":
        return _guarded(lambda: _dicom_info(_read_dicom(data, sniffed), axis))
    return _guarded(lambda: _nifti_layout(_nifti_header(_nifti_head(data)), axis)[0])


def load_image(
    src: Source,
    *,
    name: str | None = None,
    slice_index: int | None = None,
    axis: int | None = None,
) -> np.ndarray:
    """Return one 2-D float32 slice (H x W) with values in [0, 1]."""
    data, name = _read_source(src, name)
    kind, sniffed = _detect_kind(data, name)
    axis = _check_axis(axis)
    if kind == "raster":
        image = _guarded(_load_raster, data, slice_index)
    elif kind == "dicom":
        image = _guarded(_load_dicom, data, sniffed, slice_index, axis)
    else:
        image = _guarded(_load_nifti, data, slice_index, axis)
    _check_sides(image.shape[1], image.shape[0])
    return image


# --- input and format detection -------------------------------------------------------------


def _read_source(src: Source, name: str | None) -> tuple[bytes, str | None]:
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
            raise ImageLoadError(f"Vision could not find the file {label}.") from exc
        except IsADirectoryError as exc:
            raise ImageLoadError(f"{label} is a folder, not an image file.") from exc
        except (OSError, ValueError, TypeError) as exc:
            raise ImageLoadError(f"Vision could not open {label}.") from exc
    else:
        raise ImageLoadError("Vision needs an image file (a path or the file's contents) to read.")
    if not data:
        raise ImageLoadError("The file is empty.")
    if len(data) > MAX_FILE_BYTES:
        raise ImageLoadError(f"The file is too large; the limit is {_human_bytes(MAX_FILE_BYTES)}.")
    return data, name


def _detect_kind(data: bytes, name: str | None) -> tuple[str, bool]:
    """Return ("raster" | "dicom" | "nifti", found by content) from magic bytes, then the name."""
    if data[128:132] == b"DICM":
        return "dicom", True
    if data[344:348] in _NIFTI_MAGIC:
        return "nifti", True
    if data.startswith(_GZIP_MAGIC):  # the only gzip-compressed format read is .nii.gz
        return "nifti", True
    if data.startswith(_RASTER_MAGIC) or (data[:4] == b"RIFF" and data[8:12] == b"WEBP"):
        return "raster", True
    lower = str(name or "").lower()
    if lower.endswith(_DICOM_SUFFIXES):
        return "dicom", False
    if lower.endswith(_NIFTI_SUFFIXES):
        return "nifti", False
    raise ImageLoadError(_NOT_AN_IMAGE)


def _guarded(fn: Callable[..., _T], *args: Any) -> _T:
    """Call ``fn`` so that only ImageLoadError escapes."""
    try:
        return fn(*args)
    except ImageLoadError:
        raise
    except MemoryError as exc:
        raise ImageLoadError("The image is too large to open on this computer.") from exc
    except Exception as exc:
        raise ImageLoadError(_DAMAGED) from exc


# --- checks and scaling shared by all formats -----------------------------------------------


def _human_bytes(n: int) -> str:
    for unit, size in (("MB", 1024**2), ("KB", 1024)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n} bytes"


def _check_axis(axis: int | None) -> int | None:
    if axis is None:
        return None
    if isinstance(axis, (int, np.integer)) and not isinstance(axis, bool) and -3 <= axis <= 2:
        return int(axis) % 3
    raise ImageLoadError("The slice direction (axis) must be 0, 1 or 2.")


def _check_pixels(n_pixels: int) -> None:
    if n_pixels > MAX_PIXELS:
        raise ImageLoadError(
            f"The image is too large: it declares {n_pixels:,} pixels and the limit is {MAX_PIXELS:,}."
        )


def _check_sides(width: int, height: int) -> None:
    if min(width, height) < MIN_SIDE:
        raise ImageLoadError(
            f"The image is too small ({width} x {height} pixels); "
            f"each side must be at least {MIN_SIDE} pixels."
        )


def _slice_number(n_slices: int, slice_index: int | None) -> int:
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


def _finite(arr: np.ndarray) -> np.ndarray:
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


def _minmax(arr: np.ndarray) -> np.ndarray:
    """Scale to [0, 1] by the array's own min and max (zeros for a constant array)."""
    arr = np.asarray(arr, dtype=np.float64)
    lo, hi = float(arr.min()), float(arr.max())
    if hi <= lo:
        return np.zeros(arr.shape, np.float32)
    scale = max(abs(lo), abs(hi))  # keeps hi - lo finite for values near the float64 limit
    out = (arr / scale - lo / scale) / (hi / scale - lo / scale)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def _luminance(rgb: np.ndarray) -> np.ndarray:
    return rgb[..., :3].astype(np.float64) @ _LUMA


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
    _check_pixels(im.width * im.height)
    _check_sides(im.width, im.height)
    return im


def _describe_raster(data: bytes) -> ImageInfo:
    im = _open_raster(data)
    return ImageInfo("raster", (im.height, im.width), 1, 0)


def _load_raster(data: bytes, slice_index: int | None) -> np.ndarray:
    im = _open_raster(data)
    _slice_number(1, slice_index)
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        im.load()  # first frame only; truncated data raises (LOAD_TRUNCATED_IMAGES stays off)
    if im.mode.startswith("I;16") or im.mode in ("I", "F"):
        return _minmax(_finite(np.asarray(im)))
    if im.mode == "LAB":
        im = im.getchannel("L")
    try:
        gray = im if im.mode == "L" else im.convert("L")
    except ValueError as exc:
        raise ImageLoadError(_UNSUPPORTED_PIXELS) from exc
    return np.asarray(gray, dtype=np.float32) / np.float32(255)


# --- DICOM (pydicom) --------------------------------------------------------------------------


def _read_dicom(data: bytes, sniffed: bool) -> Dataset:
    """Parse the dataset (pixels stay encoded); ``sniffed``: the DICM marker was found."""
    try:
        ds = pydicom.dcmread(io.BytesIO(data), force=True)
    except Exception as exc:
        raise ImageLoadError(_DAMAGED if sniffed else _NOT_AN_IMAGE) from exc
    if not any(keyword in ds for keyword in _PIXEL_DATA_KEYWORDS):
        if not sniffed:
            raise ImageLoadError(_NOT_AN_IMAGE)
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


def _dicom_info(ds: Dataset, axis: int | None) -> ImageInfo:
    rows, cols = int(ds.Rows), int(ds.Columns)
    frames = max(int(ds.get("NumberOfFrames") or 1), 1)
    _check_pixels(frames * rows * cols * int(ds.get("SamplesPerPixel") or 1))
    _check_sides(cols, rows)
    if frames == 1:
        return ImageInfo("dicom", (rows, cols), 1, 0)
    if axis not in (None, 0):
        raise ImageLoadError("A multi-frame DICOM file can only be read frame by frame (axis 0).")
    return ImageInfo("dicom", (frames, rows, cols), frames, 0)


def _load_dicom(data: bytes, sniffed: bool, slice_index: int | None, axis: int | None) -> np.ndarray:
    ds = _read_dicom(data, sniffed)
    info = _dicom_info(ds, axis)
    frame = _slice_number(info.n_slices, slice_index)
    arr = pixel_array(ds, index=frame if info.n_slices > 1 else None)
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip().upper()
    if photometric == "PALETTE COLOR":
        arr = apply_color_lut(arr, ds)
    if arr.ndim == 3:
        return _minmax(_luminance(arr))
    slope = _frame_number(ds, frame, "PixelValueTransformationSequence", "RescaleSlope")
    intercept = _frame_number(ds, frame, "PixelValueTransformationSequence", "RescaleIntercept")
    values = arr.astype(np.float64) * (1.0 if slope is None else slope)
    values = _finite(values + (0.0 if intercept is None else intercept))
    center = _frame_number(ds, frame, "FrameVOILUTSequence", "WindowCenter")
    width = _frame_number(ds, frame, "FrameVOILUTSequence", "WindowWidth")
    if center is None or width is None or width <= 0:
        out = _minmax(-values if photometric == "MONOCHROME1" else values)
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


# --- NIfTI (nibabel) --------------------------------------------------------------------------


def _nifti_head(data: bytes) -> bytes:
    """The header bytes, inflating only those if the file is gzip-compressed."""
    if not data.startswith(_GZIP_MAGIC):
        return data[:_NIFTI_HEADER_BYTES]
    try:
        return zlib.decompressobj(wbits=zlib.MAX_WBITS | 16).decompress(data, _NIFTI_HEADER_BYTES)
    except zlib.error as exc:
        raise ImageLoadError(_DAMAGED) from exc


def _nifti_bytes(data: bytes) -> bytes:
    """The uncompressed file; gzip is inflated only as far as the header says the data goes."""
    if not data.startswith(_GZIP_MAGIC):
        return data
    header = _nifti_header(_nifti_head(data))
    _nifti_layout(header, None)  # refuses oversized volumes before inflating them
    offset = int(header.get_data_offset())
    if offset > MAX_FILE_BYTES:
        raise ImageLoadError(_DAMAGED)
    expected = offset + int(np.prod(header.get_data_shape())) * header.get_data_dtype().itemsize
    try:
        return zlib.decompressobj(wbits=zlib.MAX_WBITS | 16).decompress(data, expected)
    except zlib.error as exc:
        raise ImageLoadError(_DAMAGED) from exc


def _nifti_header(head: bytes) -> nib.Nifti1Header:
    if head[344:348] == b"ni1\x00":
        raise ImageLoadError(
            "This is a NIfTI header (.hdr) without its image (.img). "
            "Please save the scan as a single .nii or .nii.gz file."
        )
    if len(head) < _NIFTI_HEADER_BYTES or head[344:348] != b"n+1\x00":
        raise ImageLoadError(_NOT_AN_IMAGE)
    return nib.Nifti1Header.from_fileobj(io.BytesIO(head[:_NIFTI_HEADER_BYTES]))


def _nifti_layout(
    header: nib.Nifti1Header, axis: int | None
) -> tuple[ImageInfo, tuple[int, ...], np.ndarray]:
    """Return the RAS+ ImageInfo, the stored 3-D shape and the reorientation to apply."""
    dims = [int(d) for d in header.get_data_shape()]
    while len(dims) > 3 and dims[-1] == 1:
        dims.pop()
    if len(dims) == 4:
        raise ImageLoadError(
            f"This NIfTI file is a 4-D series ({dims[3]} volumes, for example fMRI or diffusion). "
            "MRI Vision reads a single 2-D or 3-D scan; please save one volume and retry."
        )
    if len(dims) > 4 or min(dims, default=0) < 1:
        raise ImageLoadError(f"This NIfTI file has an unsupported layout ({len(dims)} dimensions).")
    dtype = header.get_data_dtype()
    if dtype.kind not in "biuf" or dtype.fields is not None:
        raise ImageLoadError(
            "This NIfTI file stores colour or complex values; MRI Vision reads grayscale scans only."
        )
    stored = tuple(dims + [1] * (3 - len(dims)))
    _check_pixels(int(np.prod(stored)))
    affine = header.get_best_affine()
    ornt = io_orientation(affine) if np.isfinite(affine).all() else np.full((3, 2), np.nan)
    if np.isnan(ornt).any():
        ornt = np.array([[0, 1], [1, 1], [2, 1]], dtype=float)
    shape = [0, 0, 0]
    for size, (target, _) in zip(stored, ornt):
        shape[int(target)] = size
    if axis is None:
        singleton = [i for i, size in enumerate(shape) if size == 1]
        axis = singleton[-1] if singleton else 2
    return ImageInfo("nifti", tuple(shape), shape[axis], axis), stored, ornt


def _load_nifti(data: bytes, slice_index: int | None, axis: int | None) -> np.ndarray:
    payload = _nifti_bytes(data)
    info, stored, ornt = _nifti_layout(_nifti_header(_nifti_head(payload)), axis)
    index = _slice_number(info.n_slices, slice_index)
    volume = np.asanyarray(nib.Nifti1Image.from_bytes(payload).dataobj).reshape(stored)
    image = np.rot90(np.take(apply_orientation(volume, ornt), index, axis=info.axis))
    return _minmax(_finite(image))
