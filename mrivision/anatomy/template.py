"""The MNI152 T1 template that nilearn ships as package data (read with nibabel: no download, no
nilearn import), as slices in the `Volume` convention, and resampled onto any scan geometry (for
benchmarks, tests and the measurement scripts: the same brain stored as a clinical scan would be).

Slice convention (as `load_volume` gives a RAS+ NIfTI): slices[k] = rot90(ras[:, :, k]), so a
row runs anterior (top) to posterior, a column left to right along +x, and k inferior to superior.
"""
from __future__ import annotations

import gzip
import importlib.util
from functools import lru_cache
from pathlib import Path

import nibabel as nib
import numpy as np

TEMPLATE_FILE = "datasets/data/mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"
BRAIN_THRESHOLD = 0.2  # of the template's maximum: its brain mask (as nilearn's `load_mni152_brain_mask`)


def template_path() -> Path:
    """Where nilearn keeps the template (found without importing nilearn)."""
    spec = importlib.util.find_spec("nilearn")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("nilearn is not installed: it ships the MNI152 template MRI Vision places scans on")
    path = Path(list(spec.submodule_search_locations)[0]) / TEMPLATE_FILE
    if not path.is_file():
        raise RuntimeError(f"this nilearn has no MNI152 template at {TEMPLATE_FILE}")
    return path


@lru_cache(maxsize=1)
def template() -> tuple[np.ndarray, np.ndarray]:
    """The 1 mm template as a RAS+ array scaled to [0, 1] (float32) and its voxel -> MNI mm affine."""
    img = nib.load(template_path())
    data = np.asarray(img.dataobj, dtype=np.float32)
    return data / data.max(), img.affine.copy()


def as_slices(ras: np.ndarray) -> np.ndarray:
    """A RAS+ array (X, Y, Z) as axial slices (Z, Y, X), upright (`load_volume`'s convention)."""
    return np.ascontiguousarray(np.rot90(ras, axes=(0, 1)).transpose(2, 0, 1))


def resample_template(affine: np.ndarray, shape: tuple[int, ...], order: int = 1) -> np.ndarray:
    """Template intensities on a grid whose voxel (i, j, k) sits at `affine @ (i, j, k, 1)` in MNI mm."""
    from scipy import ndimage  # only scans made from the template need it

    data, t_affine = template()
    to_template = np.linalg.inv(t_affine) @ affine
    return ndimage.affine_transform(data, to_template[:3, :3], to_template[:3, 3], output_shape=tuple(shape[:3]),
                                    order=order, mode="constant", cval=0.0).astype(np.float32)


def rotation(degrees_x: float = 0.0, degrees_y: float = 0.0, degrees_z: float = 0.0) -> np.ndarray:
    """A 3 x 3 rotation about the x, then y, then z axis."""
    ax, ay, az = np.radians([degrees_x, degrees_y, degrees_z])
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


def scan_affine(spacing: tuple[float, float, float] = (1.0, 1.0, 1.0), storage: str = "RAS",
                z_range: tuple[float, float] = (-72.0, 116.0), rotate: np.ndarray | None = None,
                fov_mm: tuple[float, float] = (200.0, 236.0)) -> tuple[np.ndarray, tuple[int, int, int]]:
    """The affine and shape of a scan of the template: `spacing` (x, y, slice) mm, axes stored along
    `storage` ("RAS", "LPS", "LAS", ...), slices from `z_range[0]` to `z_range[1]` (MNI mm), the
    field of view `fov_mm` (x, y) centred on the brain, optionally rotated (an oblique acquisition)."""
    sx, sy, sz = spacing
    shape = (int(round(fov_mm[0] / sx)), int(round(fov_mm[1] / sy)), int((z_range[1] - z_range[0]) // sz) + 1)
    flips = np.array([1.0 if c in "RAS" else -1.0 for c in storage])
    lin = np.diag(flips * np.array([sx, sy, sz]))
    centre_index = (np.array(shape) - 1) / 2.0
    centre = np.array([0.0, -18.0, (z_range[0] + z_range[1]) / 2.0])
    rot = np.eye(3) if rotate is None else rotate
    affine = np.eye(4)
    affine[:3, :3] = rot @ lin
    affine[:3, 3] = centre - affine[:3, :3] @ centre_index
    return affine, shape


def scan_nifti(affine: np.ndarray, shape: tuple[int, ...], *, intensity=None, gz: bool = False,
               dtype=np.int16) -> bytes:
    """The template resampled onto (affine, shape) as NIfTI bytes; `intensity` maps the [0, 1] values
    (a gamma, an inversion) before they are stored as `dtype` (4-D shapes get a 4th axis of 1)."""
    data = resample_template(affine, shape)
    if intensity is not None:
        data = intensity(data)
    if np.dtype(dtype).kind in "iu":
        data = np.round(data * 1000)
    data = data.astype(dtype).reshape(tuple(shape))
    img = nib.Nifti1Image(data, affine)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    raw = img.to_bytes()
    return gzip.compress(raw, compresslevel=1) if gz else raw
