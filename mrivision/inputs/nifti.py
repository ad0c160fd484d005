"""NIfTI volumes (nibabel), read in memory: header first (size checks before inflating), then the
data reoriented to the closest RAS+ axis order."""
from __future__ import annotations

import io
import zlib

import nibabel as nib
import numpy as np
from nibabel.orientations import apply_orientation, io_orientation

from mrivision.errors import ImageLoadError
from mrivision.inputs.pixels import (DAMAGED, MAX_FILE_BYTES, NOT_AN_IMAGE, ImageInfo, check_pixels, finite,
                                     minmax, slice_number)

NIFTI_HEADER_BYTES = 348
GZIP_MAGIC = b"\x1f\x8b"


def nifti_head(data: bytes) -> bytes:
    """The header bytes, inflating only those if the file is gzip-compressed."""
    if not data.startswith(GZIP_MAGIC):
        return data[:NIFTI_HEADER_BYTES]
    try:
        return zlib.decompressobj(wbits=zlib.MAX_WBITS | 16).decompress(data, NIFTI_HEADER_BYTES)
    except zlib.error as exc:
        raise ImageLoadError(DAMAGED) from exc


def nifti_bytes(data: bytes) -> bytes:
    """The uncompressed file; gzip is inflated only as far as the header says the data goes."""
    if not data.startswith(GZIP_MAGIC):
        return data
    header = nifti_header(nifti_head(data))
    nifti_layout(header, None)  # refuses oversized volumes before inflating them
    offset = int(header.get_data_offset())
    if offset > MAX_FILE_BYTES:
        raise ImageLoadError(DAMAGED)
    expected = offset + int(np.prod(header.get_data_shape())) * header.get_data_dtype().itemsize
    try:
        return zlib.decompressobj(wbits=zlib.MAX_WBITS | 16).decompress(data, expected)
    except zlib.error as exc:
        raise ImageLoadError(DAMAGED) from exc


def nifti_header(head: bytes) -> nib.Nifti1Header:
    if head[344:348] == b"ni1\x00":
        raise ImageLoadError(
            "This is a NIfTI header (.hdr) without its image (.img). "
            "Please save the scan as a single .nii or .nii.gz file."
        )
    if len(head) < NIFTI_HEADER_BYTES or head[344:348] != b"n+1\x00":
        raise ImageLoadError(NOT_AN_IMAGE)
    return nib.Nifti1Header.from_fileobj(io.BytesIO(head[:NIFTI_HEADER_BYTES]))


def nifti_layout(
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
    check_pixels(int(np.prod(stored)))
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


def load_nifti(data: bytes, slice_index: int | None, axis: int | None) -> np.ndarray:
    payload = nifti_bytes(data)
    info, stored, ornt = nifti_layout(nifti_header(nifti_head(payload)), axis)
    index = slice_number(info.n_slices, slice_index)
    volume = np.asanyarray(nib.Nifti1Image.from_bytes(payload).dataobj).reshape(stored)
    image = np.rot90(np.take(apply_orientation(volume, ornt), index, axis=info.axis))
    return minmax(finite(image))


def read_nifti_volume(data: bytes) -> tuple[np.ndarray, nib.Nifti1Header, np.ndarray]:
    """The whole volume in RAS+ axis order (finite float64), its header and the reorientation applied."""
    payload = nifti_bytes(data)
    header = nifti_header(nifti_head(payload))
    _, stored, ornt = nifti_layout(header, 2)
    volume = np.asanyarray(nib.Nifti1Image.from_bytes(payload).dataobj).reshape(stored)
    return finite(apply_orientation(volume, ornt).astype(np.float64)), header, ornt
