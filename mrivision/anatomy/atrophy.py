"""Atrophy measures of a slice or a scan, with percentiles against NonDemented training subjects.

`measure_atrophy` segments the slice (`mrivision.anatomy.tissue`) and reports each compartment as
a share of the brain's cross-section on the canonical canvas: CSF (sulci and ventricles), the
ventricles alone, grey and white matter. Each measure's percentile places it among the subject
means of the NonDemented subjects of the training set (`train/`, subjects = pseudo-scan groups):
a reference table shipped as `atrophy_reference.json` and built by
`scripts/build_atrophy_reference.py`. The reference group is the training set's NonDemented
subjects, not age-matched norms. For a `Volume` the measures are the means over the slices at
the level the models were trained on.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np

from mrivision.anatomy.placement import place
from mrivision.anatomy.tissue import CSF, GREY, NO_BRAIN, VENTRICLE, WHITE, Tissue, segment_slice
from mrivision.inputs.framing import Frame
from mrivision.inputs.image import MIN_SIDE, Source, load_image
from mrivision.inputs.volume import Volume

MEASURES = ("csf_fraction", "ventricle_fraction", "grey_fraction", "white_fraction")
# +1: a higher value means more atrophy, -1: a lower one (fixed from anatomy, fitted on nothing)
ATROPHY_SIGN = {"csf_fraction": 1, "ventricle_fraction": 1, "grey_fraction": -1, "white_fraction": -1}
MEASURE_LABELS = {"csf_fraction": "CSF (sulci + ventricles)", "ventricle_fraction": "Ventricles",
                  "grey_fraction": "Grey matter", "white_fraction": "White matter"}
REFERENCE_FILE = Path(__file__).with_name("atrophy_reference.json")
AUC_FILE = Path(__file__).with_name("atrophy_auc.json")  # each measure's impaired AUC (measure_atrophy_auc.py)
REFERENCE_GROUP = ("NonDemented subjects of the training set (train/, pseudo-subjects), subject means; "
                   "not age-matched norms")
REFERENCE_RANGE = (5.0, 95.0)  # percentiles of the reference group drawn as its range
MIDDLE_SLICES = 3  # a scan that cannot be placed: this many middle slices


@dataclass(frozen=True)
class AtrophyMeasures:
    """Tissue shares of the brain's cross-section (0-1), their percentiles (0-100) among NonDemented
    training subjects, and the segmentation of the (middle used) slice.

    `segmentation` is a uint8 label map on the canonical canvas (208 x 176, the framed slice
    `canvas`), not at the input's size: 0 outside the brain, 1 CSF, 2 grey, 3 white, 4 ventricles
    (ventricle pixels are CSF too). `frame` maps the canvas back to the input (`framing.unframe`)."""

    csf_fraction: float
    ventricle_fraction: float
    grey_fraction: float
    white_fraction: float
    percentiles: dict[str, float]
    segmentation: np.ndarray
    canvas: np.ndarray
    frame: Frame
    n_slices: int = 1
    slices_used: tuple[int, ...] = field(default_factory=tuple)  # volume: the slices averaged
    segmented_slice: int = 0  # which slice `segmentation` and `canvas` show (volume: the middle used one)

    def as_dict(self) -> dict[str, float]:
        """The measures by name (`MEASURES` order)."""
        return {m: float(getattr(self, m)) for m in MEASURES}


def slice_measures(tissue: Tissue) -> dict[str, float]:
    """The measures of one segmented slice: each compartment's share of the brain mask."""
    labels, brain = tissue.labels, float(tissue.brain.sum())
    ventricle = float(np.sum(labels == VENTRICLE))
    return {"csf_fraction": (float(np.sum(labels == CSF)) + ventricle) / brain,
            "ventricle_fraction": ventricle / brain,
            "grey_fraction": float(np.sum(labels == GREY)) / brain,
            "white_fraction": float(np.sum(labels == WHITE)) / brain}


@lru_cache(maxsize=1)
def reference() -> dict[str, np.ndarray]:
    """The shipped reference: each measure's sorted NonDemented training-subject means."""
    data = json.loads(REFERENCE_FILE.read_text())
    return {m: np.sort(np.asarray(data["subject_means"][m], float)) for m in MEASURES}


def auc_results() -> dict | None:
    """Each measure's impaired-vs-NonDemented AUC with its CI on train/ subjects ("cv") and on the external
    cohort ("external"), as `scripts/measure_atrophy_auc.py` wrote them; None if never measured."""
    return json.loads(AUC_FILE.read_text()) if AUC_FILE.exists() else None


def percentile(value: float, ref: np.ndarray) -> float:
    """Share (0-100) of the reference below `value`, ties counted half (mid-rank)."""
    below = np.searchsorted(ref, value, side="left")
    at_or_below = np.searchsorted(ref, value, side="right")
    return float(100.0 * (below + at_or_below) / (2 * len(ref)))


def reference_range(measure: str) -> tuple[float, float]:
    """The reference group's `REFERENCE_RANGE` percentiles of a measure (the band drawn beside it)."""
    lo, hi = np.percentile(reference()[measure], REFERENCE_RANGE)
    return float(lo), float(hi)


def _as_slice(img: np.ndarray) -> np.ndarray:
    """The same checks a slice meets on the way to `predict`: 2-D, sides >= MIN_SIDE, numbers."""
    arr = np.asarray(img)
    if arr.ndim != 2:
        raise ValueError(f"a slice must be a 2-D image; this array has shape {arr.shape}")
    if min(arr.shape) < MIN_SIDE:
        raise ValueError(f"the image is too small ({arr.shape[1]} x {arr.shape[0]} pixels); "
                         f"each side must be at least {MIN_SIDE} pixels")
    if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise ValueError(f"a slice must hold real numbers, not {arr.dtype}")
    return arr.astype(np.float32)


def band_slices(volume: Volume) -> list[int]:
    """The slices of a scan at the level the models were trained on (MNI placement,
    `placement.TRAINED_MNI_Z_MM`); a scan that cannot be placed, or misses the band: its middle slices."""
    band = place(volume).in_band()
    if len(band):
        return [int(i) for i in band]
    mid = len(volume) // 2
    return list(range(max(0, mid - MIDDLE_SLICES // 2), min(len(volume), mid + MIDDLE_SLICES // 2 + 1)))


def _result(tissues: dict[int, Tissue], n: int) -> AtrophyMeasures:
    """Mean measures over `tissues` (slice index -> segmentation); the middle one's map is kept."""
    used = tuple(sorted(tissues))
    per_slice = [slice_measures(tissues[i]) for i in used]
    values = {m: float(np.mean([s[m] for s in per_slice])) for m in MEASURES}
    middle = used[len(used) // 2]
    ref = reference()
    return AtrophyMeasures(**values, percentiles={m: percentile(values[m], ref[m]) for m in MEASURES},
                           segmentation=tissues[middle].labels, canvas=tissues[middle].canvas,
                           frame=tissues[middle].frame, n_slices=n, slices_used=used, segmented_slice=middle)


def measure_atrophy(src: np.ndarray | Source | Volume, slices: Sequence[int] | None = None) -> AtrophyMeasures:
    """Atrophy measures of a slice (a [0, 1] 2-D array, or a file path / bytes `load_image` reads)
    or a scan (`Volume`: the mean over `slices`, by default `band_slices`; slices with no brain are
    skipped; the segmentation kept is the middle one's). Raises `ImageLoadError` / `ValueError`
    with a plain message."""
    if not isinstance(src, Volume):
        return _result({0: segment_slice(_as_slice(src) if isinstance(src, np.ndarray) else load_image(src))}, 1)
    if len(src) == 0:
        raise ValueError("the scan has no slices")
    chosen = band_slices(src) if slices is None else [int(i) for i in slices]
    if any(not 0 <= i < len(src) for i in chosen):
        raise ValueError(f"slice numbers must be between 0 and {len(src) - 1}")
    tissues: dict[int, Tissue] = {}
    for i in chosen:
        try:
            tissues[i] = segment_slice(_as_slice(src.slices[i]))
        except ValueError:  # a slice without brain (cut off, blank) does not count
            continue
    if not tissues:
        raise ValueError(NO_BRAIN)
    return _result(tissues, len(src))
