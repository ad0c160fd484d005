"""Whole scans: a 3-D NIfTI, a DICOM series (files or a .zip) or a stack of 2-D slices -> `Volume`.

Slices come out axial, upright (as `load_image` gives them) and ordered from inferior to
superior where the file says so. Everything is read in memory: a zip is never extracted, its
entry names are never used as paths, and its entries and uncompressed size are capped before
anything is inflated. No DICOM field that could identify a patient is read into the `Volume`,
logged or shown (only geometry: position, orientation, spacing, series number).
"""
from __future__ import annotations

import io
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pydicom

from mrivision.errors import ImageLoadError
from mrivision.inputs.image import Source, detect_kind, guarded, load_image, read_source
from mrivision.inputs.nifti import read_nifti_volume
from mrivision.inputs.pixels import DAMAGED, MAX_FILE_BYTES, check_sides, human_bytes, minmax

MAX_ZIP_ENTRIES = 2000
MAX_ZIP_BYTES = 1024 * 1024 * 1024  # uncompressed, all entries together
MAX_SLICES = 2000
AXIAL_TOLERANCE = 0.8  # |slice normal . superior axis| at least this: an axial acquisition
RADIOLOGICAL = "the patient's left on the image's right (radiological view)"
NEUROLOGICAL = "the patient's right on the image's right (neurological view)"



@dataclass(frozen=True)
class Volume:
    """Axial slices (N, H, W) in [0, 1], inferior to superior, and what is known of the geometry."""

    slices: np.ndarray
    source: str  # "nifti" | "dicom series" | "stack" | "2-D image"
    spacing: tuple[float, ...] | None = None  # (slice, row, column) spacing in mm where known
    orientation: str = ""  # e.g. "axial (RAS+)", or how the order was found

    def __len__(self) -> int:
        return len(self.slices)


def load_volume(src: Source | Sequence[Source], names: Sequence[str] | None = None) -> Volume:
    """A scan from a NIfTI file, a DICOM series (several files, or one .zip), or 2-D slices.

    `src` is a path (a file, or the folder of one DICOM series) or bytes, or a list of them
    (`names`: the original file names of bytes).
    Raises `ImageLoadError` with a plain message for anything it cannot use.
    """
    items = list(src) if isinstance(src, (list, tuple)) else [src]
    if len(items) == 1 and isinstance(items[0], (str, os.PathLike)) and Path(items[0]).is_dir():
        items = _folder_files(Path(items[0]))
    if not items:
        raise ImageLoadError("No files were given.")
    if len(items) > MAX_SLICES:
        raise ImageLoadError(f"Too many files ({len(items)}); a scan may have at most {MAX_SLICES} slices.")
    names = list(names) if names is not None else [str(s) if not isinstance(s, bytes) else "" for s in items]
    files = [read_source(s, n or None) for s, n in zip(items, names)]
    if len(files) == 1:
        data, name = files[0]
        if data[:4] == b"PK\x03\x04" or (name or "").lower().endswith(".zip"):
            return _from_entries(_zip_entries(data))
        kind, _ = detect_kind(data, name)
        if kind == "nifti":
            return guarded(_load_nifti_volume, data)
    return _from_entries(files)


def _folder_files(folder: Path) -> list[str]:
    """The files directly in `folder` (a DICOM series' folder), hidden ones skipped, by name."""
    try:
        files = sorted(str(f) for f in folder.iterdir() if f.is_file() and not f.name.startswith("."))
    except OSError as exc:
        raise ImageLoadError(f"MRI Vision could not list the folder {folder.name!r}.") from exc
    if not files:
        raise ImageLoadError(f"The folder {folder.name!r} holds no files.")
    return files


def _zip_entries(data: bytes) -> list[tuple[bytes, str | None]]:
    """The files of a zip, in memory, with caps checked from the directory before inflating."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = [i for i in archive.infolist() if not i.is_dir()]
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise ImageLoadError(DAMAGED) from exc
    if len(infos) > MAX_ZIP_ENTRIES:
        raise ImageLoadError(f"The zip holds {len(infos)} files; at most {MAX_ZIP_ENTRIES} are read.")
    total = sum(i.file_size for i in infos)
    if total > MAX_ZIP_BYTES:
        raise ImageLoadError(f"The zip unpacks to {human_bytes(total)}; the limit is {human_bytes(MAX_ZIP_BYTES)}.")
    entries = []
    for info in infos:
        base = info.filename.replace("\\", "/").rsplit("/", 1)[-1]
        if base.startswith(".") or base.startswith("__MACOSX") or "__MACOSX/" in info.filename:
            continue
        if info.file_size > MAX_FILE_BYTES:
            raise ImageLoadError(f"A file in the zip is larger than {human_bytes(MAX_FILE_BYTES)}.")
        try:
            with archive.open(info) as f:
                blob = f.read(info.file_size + 1)
        except (zipfile.BadZipFile, OSError, ValueError, EOFError, RuntimeError) as exc:
            raise ImageLoadError(DAMAGED) from exc
        if len(blob) > info.file_size:  # the directory lied about the size (a zip bomb)
            raise ImageLoadError("The zip is malformed: a file is larger than its directory says.")
        entries.append((blob, base))
    if not entries:
        raise ImageLoadError("The zip holds no files.")
    return entries


def _from_entries(files: list[tuple[bytes, str | None]]) -> Volume:
    kinds = [detect_kind(d, n) for d, n in files]
    if all(k == "dicom" for k, _ in kinds):
        return _dicom_series(files, [s for _, s in kinds])
    if any(k == "nifti" for k, _ in kinds):
        raise ImageLoadError("Give a NIfTI volume on its own (one .nii or .nii.gz file), not mixed with other files.")
    if any(k == "dicom" for k, _ in kinds):
        raise ImageLoadError("The files mix DICOM with other formats; give one DICOM series or one kind of picture.")
    slices = [load_image(d, name=n) for d, n in sorted(files, key=lambda f: f[1] or "")]
    if len({s.shape for s in slices}) > 1:
        raise ImageLoadError("The slices have different sizes, so they are not one scan.")
    return Volume(np.stack(slices), "stack" if len(slices) > 1 else "2-D image",
                  orientation="in file-name order" if len(slices) > 1 else "")


def _load_nifti_volume(data: bytes) -> Volume:
    ras, header, ornt = read_nifti_volume(data)
    ras = minmax(ras)  # one intensity scale for the whole scan
    zooms = [float(z) for z in header.get_zooms()[:3]] + [1.0] * (3 - len(header.get_zooms()[:3]))
    spacing = [0.0, 0.0, 0.0]
    for size, (target, _) in zip(zooms, ornt):
        spacing[int(target)] = size
    slices = np.stack([np.rot90(ras[:, :, k]) for k in range(ras.shape[2])]).astype(np.float32)
    check_sides(slices.shape[2], slices.shape[1])
    return Volume(slices, "nifti" if ras.shape[2] > 1 else "2-D image",
                  (spacing[2], spacing[1], spacing[0]), f"axial (RAS+, inferior to superior); {NEUROLOGICAL}")


def _dicom_series(files: list[tuple[bytes, str | None]], sniffed: list[bool]) -> Volume:
    headers = []
    for (data, _), sn in zip(files, sniffed):
        ds = guarded(lambda: pydicom.dcmread(io.BytesIO(data), force=not sn, stop_before_pixels=True))
        headers.append(ds)
    series: dict[str, list[int]] = {}
    for i, ds in enumerate(headers):
        series.setdefault(str(ds.get("SeriesInstanceUID", "")), []).append(i)
    if len(series) > 1:
        parts = [f"series {headers[idx[0]].get('SeriesNumber', '?')} ({len(idx)} files)" for idx in series.values()]
        raise ImageLoadError(f"The files hold {len(series)} different series: {', '.join(parts)}. "
                             "Please upload one series at a time.")
    normal = _slice_normal(headers[0])
    if normal is not None and abs(normal[2]) < AXIAL_TOLERANCE:
        plane = "sagittal" if abs(normal[0]) >= abs(normal[1]) else "coronal"
        raise ImageLoadError(f"This series was acquired {plane}, not axial. MRI Vision reads axial slices; "
                             "please reslice the scan to axial (for example as a NIfTI) and retry.")
    order, how = _dicom_order(headers, normal)
    slices = [load_image(files[i][0], name=files[i][1] or "slice.dcm") for i in order]
    if len({s.shape for s in slices}) > 1:
        raise ImageLoadError("The DICOM files have different image sizes, so they are not one series.")
    spacing = None
    pixel = headers[0].get("PixelSpacing")
    if pixel is not None and len(order) > 1 and normal is not None:
        positions = [_position(headers[i], normal) for i in order]
        if None not in positions:
            spacing = (abs(float(np.median(np.diff(positions)))), float(pixel[0]), float(pixel[1]))  # normal may point down
    side = _displayed_side(headers[0])
    return Volume(np.stack(slices), "dicom series" if len(slices) > 1 else "2-D image", spacing,
                  f"{how}; {side}" if side else how)


def _displayed_side(ds) -> str:
    """Which of the patient's sides the image's right shows, from the row direction (DICOM's patient
    axes: +x is the patient's left); "" when the rows do not run left-right."""
    iop = ds.get("ImageOrientationPatient")
    if iop is None or len(iop) != 6 or abs(float(iop[0])) < 0.5:
        return ""
    return RADIOLOGICAL if float(iop[0]) > 0 else NEUROLOGICAL


def _slice_normal(ds) -> np.ndarray | None:
    iop = ds.get("ImageOrientationPatient")
    if iop is None or len(iop) != 6:
        return None
    row, col = np.asarray(iop[:3], float), np.asarray(iop[3:], float)
    n = np.cross(row, col)
    norm = np.linalg.norm(n)
    return n / norm if norm > 1e-6 else None


def _position(ds, normal: np.ndarray) -> float | None:
    ipp = ds.get("ImagePositionPatient")
    return float(np.dot(np.asarray(ipp, float), normal)) if ipp is not None and len(ipp) == 3 else None


def _dicom_order(headers: list, normal: np.ndarray | None) -> tuple[list[int], str]:
    """File order inferior to superior by position along the slice normal, else by instance number."""
    if normal is not None:
        pos = [_position(ds, normal) for ds in headers]
        if None not in pos:
            order = sorted(range(len(headers)), key=lambda i: pos[i] * np.sign(normal[2] or 1.0))
            return order, "axial, by slice position (inferior to superior)"
    numbers = [ds.get("InstanceNumber") for ds in headers]
    if None not in numbers:
        return sorted(range(len(headers)), key=lambda i: int(numbers[i])), "by instance number"
    return list(range(len(headers))), "in the order given"
