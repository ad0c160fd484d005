"""Place a scan in MNI152 space and read each slice's height (MNI z) there.

Steps: (1) a brain mask and each slice's brain area (mm^2) on a `GRID_MM` grid; the axial area
profile matched to the template's gives a first z shift and scale, the mask's centroid the in-plane
shift; (2) SimpleITK Mattes mutual information refines a similarity (rotation, one scale, shift),
then an affine (per-axis scale, shear) from it, each at 8 then 4 mm; (3) each slice plane's height
where it crosses the vertical line through the template brain's centre gives `slice_z_mm`. A fit
whose brain does not overlap the template's (`MIN_OVERLAP`) or whose affine is implausible is not
placed; neither are slices without voxel spacing (pictures). About 0.3 s of CPU for any scan.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import SimpleITK as sitk

from mrivision.anatomy.template import BRAIN_THRESHOLD, as_slices, template
from mrivision.inputs.volume import Volume

# The MNI z band (mm) the training slices come from: 5th-95th percentile of the template level
# matched to 600 framed training slices, measured by `scripts/measure_mni_band.py`.
TRAINED_MNI_Z_MM = (-3.0, 23.0)
GRID_MM = 4.0
# Dice of the placed brain mask and the template's inside the scan's field of view; template-made T1
# volumes reach >= 0.98, noise 0.76, an ellipsoid phantom 0.85 (scripts/measure_scan_ood.py)
MIN_OVERLAP = 0.9
SCALE_RANGE = (0.7, 1.45)  # a head's size relative to the template, per axis
MAX_TILT_DEG = 35.0
SAMPLING = 0.3  # share of the template's brain voxels the metric samples
ITERATIONS = (80, 60)  # similarity, then affine
_DIRECTION = (1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0)  # rows run posterior (-y)


@dataclass(frozen=True)
class Placement:
    """Where a volume's slices sit in MNI space. `slice_z_mm[k]`: MNI z of slice k (NaN if not fitted)."""

    placed: bool
    slice_z_mm: np.ndarray
    overlap: float  # Dice of the placed brain mask and the template's (within the field of view)
    seconds: float
    reason: str = ""  # why it could not be placed
    t1_similarity: float = float("nan")  # rank correlation with the T1 template inside its brain (T2-like: < 0)

    def in_band(self, band: tuple[float, float] = TRAINED_MNI_Z_MM, margin_mm: float = 0.0) -> np.ndarray:
        """Indices of the slices whose MNI z lies in `band` (widened by `margin_mm`)."""
        z = self.slice_z_mm
        if not self.placed:
            return np.array([], int)
        return np.flatnonzero((z >= band[0] - margin_mm) & (z <= band[1] + margin_mm))


def brain_mask(arr: np.ndarray) -> np.ndarray:
    """Foreground of a volume in [0, 1]: above `BRAIN_THRESHOLD` of its 99.5th percentile."""
    return arr > BRAIN_THRESHOLD * max(float(np.percentile(arr, 99.5)), 1e-6)


def _block_mean(arr: np.ndarray, factors: tuple[int, int, int]) -> np.ndarray:
    n, h, w = (s // f * f for s, f in zip(arr.shape, factors))
    fz, fy, fx = factors
    return arr[:n, :h, :w].reshape(n // fz, fz, h // fy, fy, w // fx, fx).mean(axis=(1, 3, 5), dtype=np.float32)


def _image(arr: np.ndarray, spacing_zyx: tuple[float, float, float], origin=(0.0, 0.0, 0.0)) -> sitk.Image:
    img = sitk.GetImageFromArray(np.ascontiguousarray(arr, np.float32))
    img.SetSpacing((float(spacing_zyx[2]), float(spacing_zyx[1]), float(spacing_zyx[0])))
    img.SetDirection(_DIRECTION)
    img.SetOrigin(origin)
    return img


@lru_cache(maxsize=1)
def _fixed() -> tuple[sitk.Image, sitk.Image, np.ndarray, np.ndarray, np.ndarray]:
    """The template on the grid, its mask, its 1 mm area profile (mm^2) with the slices' MNI z, and
    its brain centroid (x, y, z) in mm."""
    data, affine = template()
    slices = as_slices(data)  # (Z, Y, X), 1 mm
    f = int(GRID_MM)
    small = _block_mean(slices, (f, f, f))
    h = slices.shape[1]
    origin = (float(affine[0, 3]) + (f - 1) / 2, float(affine[1, 3]) + (h - 1) - (f - 1) / 2,
              float(affine[2, 3]) + (f - 1) / 2)
    fixed = _image(small, (GRID_MM,) * 3, origin)
    mask = brain_mask(slices)
    area = mask.sum(axis=(1, 2)).astype(np.float64)
    z = affine[2, 3] + np.arange(len(slices))
    zz, yy, xx = np.nonzero(mask)
    centroid = np.array([affine[0, 3] + xx.mean(), affine[1, 3] + (h - 1) - yy.mean(), affine[2, 3] + zz.mean()])
    fixed_mask = sitk.Cast(_image(brain_mask(small).astype(np.float32), (GRID_MM,) * 3, origin), sitk.sitkUInt8)
    return fixed, fixed_mask, area, z, centroid


def _initial_z(area: np.ndarray, z: np.ndarray, t_area: np.ndarray, t_z: np.ndarray) -> tuple[float, float]:
    """Scale s and shift t with moving z ~ s * MNI z + t, from the slices' brain areas matched to
    the template's (areas scale with s^2): a grid search over s, then t."""
    best = (np.inf, 1.0, 0.0)
    norm = float(np.mean(area ** 2)) + 1e-9
    for s in np.linspace(0.8, 1.25, 10):
        shifts = np.arange(z.min() - s * t_z.max(), z.max() - s * t_z.min() + 1.0, 2.0)
        mni = (z[None, :] - shifts[:, None]) / s
        expected = s ** 2 * np.interp(mni, t_z, t_area, left=0.0, right=0.0)
        cost = np.mean((expected - area[None, :]) ** 2, axis=1) / norm
        i = int(cost.argmin())
        if cost[i] < best[0]:
            best = (float(cost[i]), float(s), float(shifts[i]))
    return best[1], best[2]


def _run(fixed: sitk.Image, fixed_mask: sitk.Image, moving: sitk.Image, initial: sitk.Transform,
         iterations: int) -> sitk.Transform:
    """Mattes mutual information, two levels (8 then 4 mm), regular-step gradient descent."""
    reg = sitk.ImageRegistrationMethod()
    reg.SetMetricAsMattesMutualInformation(numberOfHistogramBins=32)
    reg.SetMetricSamplingStrategy(reg.RANDOM)
    reg.SetMetricSamplingPercentage(SAMPLING, seed=7)
    reg.SetMetricFixedMask(fixed_mask)
    reg.SetInterpolator(sitk.sitkLinear)
    reg.SetOptimizerAsRegularStepGradientDescent(learningRate=1.0, minStep=0.01, numberOfIterations=iterations,
                                                 gradientMagnitudeTolerance=1e-6)
    reg.SetOptimizerScalesFromPhysicalShift()
    reg.SetShrinkFactorsPerLevel([2, 1])
    reg.SetSmoothingSigmasPerLevel([1, 0])
    reg.SmoothingSigmasAreSpecifiedInPhysicalUnitsOff()
    reg.SetInitialTransform(initial, inPlace=False)
    out = reg.Execute(fixed, moving)
    return out.GetNthTransform(0) if isinstance(out, sitk.CompositeTransform) else out


def _register(fixed: sitk.Image, fixed_mask: sitk.Image, moving: sitk.Image, centre: np.ndarray, scale: float,
              shift: np.ndarray) -> sitk.AffineTransform:
    """A similarity (rotation, one scale, shift) first, then an affine (per-axis scale, shear) from it."""
    sim = sitk.Similarity3DTransform()
    sim.SetCenter(tuple(centre))
    sim.SetScale(scale)
    sim.SetTranslation(tuple(shift))
    sim = sitk.Similarity3DTransform(_run(fixed, fixed_mask, moving, sim, ITERATIONS[0]))
    affine = sitk.AffineTransform(3)
    affine.SetCenter(sim.GetCenter())
    affine.SetMatrix(sim.GetMatrix())
    affine.SetTranslation(sim.GetTranslation())
    return sitk.AffineTransform(_run(fixed, fixed_mask, moving, affine, ITERATIONS[1]))


def place(volume: Volume | np.ndarray, spacing: tuple[float, float, float] | None = None) -> Placement:
    """Place `volume` (axial slices inferior to superior, `spacing` (slice, row, column) mm; a
    `Volume` brings its own) in MNI space. Never raises for odd content: returns `placed=False`."""
    start = time.perf_counter()
    arr = np.asarray(volume.slices if isinstance(volume, Volume) else volume, np.float32)
    spacing = spacing or (volume.spacing if isinstance(volume, Volume) else None)
    n = len(arr)

    def fail(reason: str) -> Placement:
        return Placement(False, np.full(n, np.nan), 0.0, time.perf_counter() - start, reason)

    if arr.ndim != 3 or n < 3:
        return fail("the scan has fewer than 3 slices")
    try:
        fixed, fixed_mask, t_area, t_z, t_centroid = _fixed()
    except (RuntimeError, OSError) as exc:
        return fail(f"the MNI152 template could not be read: {exc}")
    if not spacing or len(spacing) != 3 or not all(np.isfinite(spacing)) or min(spacing) <= 0:
        return fail("the slices carry no 3-D geometry (voxel spacing)")
    sz, sy, sx = (float(v) for v in spacing)
    factors = (max(1, round(GRID_MM / sz)), max(1, round(GRID_MM / sy)), max(1, round(GRID_MM / sx)))
    small = _block_mean(arr, factors)
    if min(small.shape) < 3:
        return fail("the scan covers too little of the head")
    step = (sz * factors[0], sy * factors[1], sx * factors[2])
    mask = brain_mask(small)
    if mask.sum() * np.prod(step) < 50_000:  # under 50 ml of foreground: not a head
        return fail("no brain-sized object was found")
    area = mask.sum(axis=(1, 2)) * step[1] * step[2]
    z_phys = (np.arange(len(small)) * factors[0] + (factors[0] - 1) / 2) * sz
    s, t = _initial_z(area, z_phys, t_area, t_z)
    moving = _image(small, step, (step[2] / 2 - sx / 2, -(step[1] / 2 - sy / 2), z_phys[0]))
    zz, yy, xx = np.nonzero(mask)
    centre_moving = np.array([(xx.mean() + 0.5) * step[2] - sx / 2, -((yy.mean() + 0.5) * step[1] - sy / 2),
                              s * t_centroid[2] + t])
    try:
        tx = _register(fixed, fixed_mask, moving, t_centroid, s, centre_moving - t_centroid)
    except RuntimeError:
        return fail("the registration to the template did not converge")
    matrix = np.array(tx.GetMatrix()).reshape(3, 3)
    sv = np.linalg.svd(matrix, compute_uv=False)
    u, _, vt = np.linalg.svd(matrix)
    tilt = np.degrees(np.arccos(np.clip((np.trace(u @ vt) - 1) / 2, -1, 1)))
    overlap, similarity = _agreement(fixed, fixed_mask, moving, tx)
    z_mm = _slice_heights(tx, n, sz, t_centroid)
    seconds = time.perf_counter() - start
    if np.linalg.det(matrix) <= 0 or sv.min() < SCALE_RANGE[0] or sv.max() > SCALE_RANGE[1] or tilt > MAX_TILT_DEG:
        reason = "the fit to the template needs an implausible stretch or tilt"
        return Placement(False, z_mm, overlap, seconds, reason, similarity)
    if overlap < MIN_OVERLAP:
        return Placement(False, z_mm, overlap, seconds, "the brain does not match the template's shape", similarity)
    return Placement(True, z_mm, overlap, seconds, "", similarity)


def _slice_heights(tx: sitk.AffineTransform, n: int, sz: float, centre: np.ndarray) -> np.ndarray:
    """MNI z of each slice plane where it crosses the vertical line through the template brain's centre."""
    inverse = tx.GetInverse()
    origin = np.array(inverse.TransformPoint((0.0, 0.0, 0.0)))
    cols = np.stack([np.array(inverse.TransformPoint(tuple(e))) - origin for e in np.eye(3)], axis=1)
    heights = []
    for k in range(n):  # MNI = cols @ (u, v, k * sz) + origin; solve (x, y) = centre's for (u, v)
        uv = np.linalg.solve(cols[:2, :2], centre[:2] - origin[:2] - cols[:2, 2] * k * sz)
        heights.append(float(cols[2, :2] @ uv + cols[2, 2] * k * sz + origin[2]))
    return np.array(heights)


def _ranks(x: np.ndarray) -> np.ndarray:
    r = np.empty(len(x), np.float64)
    r[np.argsort(x, kind="stable")] = np.arange(len(x))
    return r


def _agreement(fixed: sitk.Image, fixed_mask: sitk.Image, moving: sitk.Image,
               tx: sitk.Transform) -> tuple[float, float]:
    """Dice of the moved brain mask and the template's, and the rank correlation of the moved
    intensities with the template's inside its brain; both counted where the scan has data."""
    warped = sitk.GetArrayFromImage(sitk.Resample(moving, fixed, tx, sitk.sitkLinear, -1.0))
    seen = warped >= 0
    ours = brain_mask(np.where(seen, warped, 0.0)) & seen
    theirs = sitk.GetArrayFromImage(fixed_mask).astype(bool) & seen
    total = ours.sum() + theirs.sum()
    dice = float(2 * (ours & theirs).sum() / total) if total else 0.0
    if theirs.sum() < 10:
        return dice, float("nan")
    a, b = _ranks(warped[theirs]), _ranks(sitk.GetArrayFromImage(fixed)[theirs])
    return dice, float(np.corrcoef(a, b)[0, 1]) if a.std() > 0 else 0.0
