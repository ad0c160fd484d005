"""One stage for a whole scan: pick the slices at the anatomical level the models know, predict
each, aggregate.

The training slices are a band of axial levels through the lateral ventricles, where the brain's
cross-section is near its largest. A slice is used when (1) its brain cross-section is at least
`LEVEL_AREA` of the scan's largest (slices far above or below, empty or tiny ones are not) and
(2) the OOD check does not flag it. If no slice passes both, the largest cross-sections are used
and the scan is flagged. The scan's probabilities are the mean of the used slices' probabilities,
the protocol's scan level (`evaluate.aggregate_by_group`); `scripts/scan_aggregation.py` measures
the alternatives in `AGGREGATIONS`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Sequence

import numpy as np

from mrivision.inputs.framing import Frame, background_level, brain_mask
from mrivision.inference.ood import WARNING_UNCERTAIN
from mrivision.evaluation.stages import expected_stage
from mrivision.inputs.transforms import frame
from mrivision.inputs.volume import Volume

if TYPE_CHECKING:
    from mrivision.inference.predictor import Prediction, Predictor

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
WARNING_NO_LEVEL = ("No slice of this scan looks like the axial level the model was trained on (through the "
                    "lateral ventricles); the stage comes from the largest cross-sections and may be meaningless.")


@dataclass(frozen=True)
class ScanPrediction:
    """The model's answer for a scan: the stage from the slices used, and every slice's own answer."""

    label: str
    probabilities: dict[str, float]
    model: str
    slices_used: tuple[int, ...]
    per_slice: tuple["Prediction", ...]  # one per slice of the volume
    agreement: float  # share of the used slices whose own stage is the scan's stage
    expected_stage: float
    stage_spread: float
    n_slices: int
    warnings: tuple[str, ...] = field(default_factory=tuple)


def brain_area(img: np.ndarray, placed: Frame) -> float:
    """Brain cross-section (foreground pixels) of a slice; canonical framing has measured it already."""
    if placed.brain_fraction is not None:
        return placed.brain_fraction * img.size
    return float(brain_mask(img, background_level(img)).sum())


def predict_scan(predictor: "Predictor", volume: Volume | Sequence[np.ndarray] | np.ndarray) -> ScanPrediction:
    """The scan-level stage of `volume` (a `Volume`, or 2-D slices in order)."""
    slices = list(volume.slices if isinstance(volume, Volume) else volume)
    if not slices:
        raise ValueError("the scan has no slices")
    framed = [frame(s, predictor.spec) for s in slices]
    per_slice = predictor.predict_many(slices, framed)
    probs = np.array([list(p.probabilities.values()) for p in per_slice])
    flagged = np.array([p.out_of_distribution for p in per_slice])
    areas = np.array([brain_area(img, placed) for img, (_, placed) in zip(slices, framed)])
    at_level = areas >= LEVEL_AREA * areas.max() if areas.max() > 0 else np.zeros(len(slices), bool)
    used = np.flatnonzero(at_level & ~flagged)
    warnings: list[str] = []
    if len(used) == 0:
        used = np.sort(np.argsort(-areas)[:FALLBACK_SLICES])
        warnings.append(WARNING_NO_LEVEL)
    mean = AGGREGATIONS[AGGREGATION](probs[used])
    k = int(mean.argmax())
    stage, spread = expected_stage(mean[None])
    agreement = float(np.mean(probs[used].argmax(axis=1) == k))
    if float(mean.max()) < 0.5:
        warnings.append(WARNING_UNCERTAIN)
    return ScanPrediction(predictor.class_names[k], {c: float(v) for c, v in zip(predictor.class_names, mean)},
                          predictor.name, tuple(int(i) for i in used), tuple(per_slice), agreement,
                          float(stage[0]), float(spread[0]), len(slices), tuple(warnings))
