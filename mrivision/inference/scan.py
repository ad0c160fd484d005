"""One stage for a whole scan: place it in MNI space, predict the slices at the anatomical level
the models know, aggregate, and say when the scan as a whole is unlike the T1 training data.

The training slices sit in a band of MNI heights (`placement.TRAINED_MNI_Z_MM`, through the
lateral ventricles). `place` registers the volume to the MNI152 template; at most `MAX_SLICES`
slices spread over the band are predicted, and those the slice-level OOD check does not flag are
used. A volume that cannot be placed falls back to the cross-section rule (slices whose brain area is
at least `LEVEL_AREA` of the largest), with a warning that says why. The scan's probabilities are
the mean of the used slices' (`AGGREGATION`; `scripts/scan_aggregation.py` measures the others).

Scan-level OOD (`ScanPrediction.out_of_distribution`), from the band's slices together: a volume
with 3-D geometry that cannot be placed; intensities inside the placed brain that rank unlike the
T1 template's (`MIN_T1_SIMILARITY`: T2/FLAIR-like or inverted contrast); fewer than `MIN_USED`
usable band slices; or, for slices without geometry (pictures), none at the trained level.
`scripts/measure_scan_ood.py` measures false alarms and detections.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, Sequence

import numpy as np

from mrivision.anatomy.placement import TRAINED_MNI_Z_MM, Placement, place
from mrivision.anatomy.view import sagittal_view
from mrivision.inputs.framing import Frame, background_level, brain_mask
from mrivision.inference.ood import WARNING_UNCERTAIN
from mrivision.inference.prediction import Prediction
from mrivision.model.outputs import expected_stage
from mrivision.model.spec import ModelSpec
from mrivision.inputs.transforms import frame
from mrivision.inputs.volume import Source, Volume, load_volume


class SlicePredictor(Protocol):
    """What a scan needs of a model (`Predictor` is one): its spec, names and a batched slice answer."""

    spec: ModelSpec
    name: str
    class_names: tuple[str, ...]

    def predict_many(self, images: Sequence[np.ndarray],
                     framed: Sequence[tuple[np.ndarray, Frame]] | None = None) -> list[Prediction]: ...

def _mean(p: np.ndarray) -> np.ndarray:
    return p.mean(axis=0)


def _log_mean(p: np.ndarray) -> np.ndarray:
    g = np.exp(np.log(np.clip(p, 1e-12, None)).mean(axis=0))
    return g / g.sum()


def _trimmed(p: np.ndarray) -> np.ndarray:
    """Mean without the slice farthest (L1) from the plain mean, when there are at least 4."""
    if len(p) < 4:
        return _mean(p)
    far = int(np.abs(p - p.mean(axis=0)).sum(axis=1).argmax())
    return np.delete(p, far, axis=0).mean(axis=0)


def _vote(p: np.ndarray) -> np.ndarray:
    votes = np.bincount(p.argmax(axis=1), minlength=p.shape[1]).astype(float)
    return (votes + 1e-3 * p.mean(axis=0)) / (votes + 1e-3 * p.mean(axis=0)).sum()  # ties: the mean decides


AGGREGATIONS = {"mean": _mean, "log_mean": _log_mean, "trimmed": _trimmed, "vote": _vote}
AGGREGATION = "mean"  # what predict_scan uses (scripts/scan_aggregation.py measures the others)
LEVEL_AREA = 0.7
FALLBACK_SLICES = 3
MAX_SLICES = 12  # band slices predicted, spread evenly over the band
MIN_USED = 3  # fewer usable band slices: the scan is out of distribution
# Rank correlation with the T1 template inside its brain, in MNI space: T1 volumes made from the template
# (gamma 0.5-2, noise) >= 0.95, FLAIR-like -0.41, T2-like -0.92 (scripts/measure_scan_ood.py)
MIN_T1_SIMILARITY = 0.5
WARNING_NO_LEVEL = ("No slice of this scan looks like the axial level the model was trained on (through the "
                    "lateral ventricles); the stage comes from the largest cross-sections and may be meaningless.")
WARNING_NOT_PLACED = ("This scan could not be placed in standard brain space ({reason}), so the slices at the "
                      "level the model was trained on could not be found by anatomy; they were chosen by brain "
                      "cross-section instead and the stage may be meaningless.")
WARNING_NO_GEOMETRY = ("These slices carry no 3-D geometry (pictures, or DICOM files without positions), so "
                       "their level could not be found by anatomy; they were chosen by brain cross-section instead.")
WARNING_CONTRAST = ("The brain's contrast in this scan is unlike a T1-weighted scan (for example T2 or FLAIR, "
                    "where fluid is bright); the model was trained on T1 slices only, so the stage is probably "
                    "meaningless.")
WARNING_FEW = ("Only {n} slice(s) of this scan at the level the model was trained on look like the training "
               "slices (at least {need} are needed: the scan may not cover that level, or its slices are unlike the "
               "training slices); the stage comes from {m} slice(s) anyway and is probably meaningless.")


@dataclass(frozen=True)
class ScanPrediction:
    """The model's answer for a scan: the stage from the slices used, and every slice's own answer."""

    label: str
    probabilities: dict[str, float]
    model: str
    slices_used: tuple[int, ...]
    per_slice: tuple[Prediction | None, ...]  # one per slice of the volume; None: not predicted (off the band)
    agreement: float  # share of the used slices whose own stage is the scan's stage
    expected_stage: float
    stage_spread: float
    n_slices: int
    warnings: tuple[str, ...] = field(default_factory=tuple)
    out_of_distribution: bool = False  # the scan as a whole is unlike the T1 training scans (see `warnings`)
    slice_z_mm: tuple[float, ...] = ()  # estimated MNI z of every slice of the volume; () if not placed
    band_mm: tuple[float, float] = TRAINED_MNI_Z_MM  # the MNI z band of the training slices
    sagittal: np.ndarray | None = None  # a small sagittal view with the band and used slices marked (RGB)


def brain_area(img: np.ndarray, placed: Frame) -> float:
    """Brain cross-section (foreground pixels) of a slice; canonical framing has measured it already."""
    if placed.brain_fraction is not None:
        return placed.brain_fraction * img.size
    return float(brain_mask(img, background_level(img)).sum())


ScanInput = Volume | Source | Sequence[Source] | Sequence[np.ndarray] | np.ndarray  # what a scan may be given as


def as_volume(source: ScanInput, names: Sequence[str] | None = None) -> Volume:
    """A `Volume` from anything `load_volume` reads (paths, bytes, a list of DICOM files, a zip), a
    `Volume`, or 2-D slices in order (an (N, H, W) array or a list of arrays)."""
    if isinstance(source, Volume):
        return source
    if isinstance(source, np.ndarray) or (isinstance(source, (list, tuple)) and source
                                          and isinstance(source[0], np.ndarray)):
        slices = np.asarray(source, np.float32)
        if slices.ndim == 2:
            slices = slices[None]
        if slices.ndim != 3 or not len(slices):
            raise ValueError("the scan must be 2-D slices in order: an (N, H, W) array or a list of 2-D arrays")
        return Volume(slices, "stack" if len(slices) > 1 else "2-D image")
    return load_volume(source, names)


def _band_choice(placement: Placement) -> np.ndarray:
    """At most `MAX_SLICES` of the slices in the band, spread evenly over it."""
    band = placement.in_band()
    if len(band) <= MAX_SLICES:
        return band
    return band[np.unique(np.round(np.linspace(0, len(band) - 1, MAX_SLICES)).astype(int))]


def predict_scan(predictor: SlicePredictor, volume: ScanInput, names: Sequence[str] | None = None) -> ScanPrediction:
    """The scan-level stage of `volume`: anything `as_volume` takes (a path, bytes, DICOM files, a
    zip, a `Volume`, 2-D slices in order). Unreadable input raises `ImageLoadError`."""
    volume = as_volume(volume, names)
    slices = volume.slices
    if not len(slices):
        raise ValueError("the scan has no slices")
    placement = place(volume)
    warnings: list[str] = []
    chosen = _band_choice(placement) if placement.placed else np.arange(len(slices))
    if placement.placed and not len(chosen):  # the scan misses the band: its nearest slice, flagged below
        chosen = np.array([int(np.argmin(np.abs(placement.slice_z_mm - np.mean(TRAINED_MNI_Z_MM))))])
    framed = [frame(slices[i], predictor.spec) for i in chosen]
    predicted = predictor.predict_many([slices[i] for i in chosen], framed)
    flagged = np.array([p.out_of_distribution for p in predicted], bool)
    ood = not placement.placed and volume.spacing is not None  # a stack of pictures is judged by its slices
    if placement.placed:
        used = chosen[~flagged & np.isin(chosen, placement.in_band())]
        if placement.t1_similarity < MIN_T1_SIMILARITY:
            ood = True
            warnings.append(WARNING_CONTRAST)
        if len(used) < MIN_USED:
            ood = True
            warnings.append(WARNING_FEW.format(n=len(used), need=MIN_USED, m=len(chosen)))
            used = chosen
    else:
        warnings.append(WARNING_NO_GEOMETRY if volume.spacing is None else
                        WARNING_NOT_PLACED.format(reason=placement.reason))
        areas = np.array([brain_area(slices[i], placed) for i, (_, placed) in zip(chosen, framed)])
        at_level = areas >= LEVEL_AREA * areas.max() if areas.max() > 0 else np.zeros(len(chosen), bool)
        used = chosen[at_level & ~flagged]
        if len(used) == 0:
            used = np.sort(chosen[np.argsort(-areas)[:FALLBACK_SLICES]])
            warnings.append(WARNING_NO_LEVEL)
            ood = True
    per_slice: list[Prediction | None] = [None] * len(slices)
    for i, p in zip(chosen, predicted):
        per_slice[int(i)] = p
    probs = np.array([list(per_slice[int(i)].probabilities.values()) for i in used])
    mean = AGGREGATIONS[AGGREGATION](probs)
    k = int(mean.argmax())
    stage, spread = expected_stage(mean[None])
    agreement = float(np.mean(probs.argmax(axis=1) == k))
    if float(mean.max()) < 0.5:
        warnings.append(WARNING_UNCERTAIN)
    z = tuple(float(v) for v in placement.slice_z_mm) if placement.placed else ()
    used_t = tuple(int(i) for i in used)
    return ScanPrediction(predictor.class_names[k], {c: float(v) for c, v in zip(predictor.class_names, mean)},
                          predictor.name, used_t, tuple(per_slice), agreement,
                          float(stage[0]), float(spread[0]), len(slices), tuple(warnings), ood, z,
                          TRAINED_MNI_Z_MM, sagittal_view(volume, used_t, z, TRAINED_MNI_Z_MM))
