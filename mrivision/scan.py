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

from .framing import background_level, brain_mask
from .ood import assess, ood_warnings
from .stages import expected_stage
from .volume import Volume

if TYPE_CHECKING:
    from .predictor import Prediction, Predictor

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


def brain_areas(slices: Sequence[np.ndarray]) -> np.ndarray:
    """Brain cross-section (foreground pixels) of each slice."""
    return np.array([brain_mask(s, background_level(s)).sum() for s in slices], dtype=float)


def predict_scan(predictor: "Predictor", volume: Volume | Sequence[np.ndarray] | np.ndarray) -> ScanPrediction:
    """The scan-level stage of `volume` (a `Volume`, or 2-D slices in order)."""
    from .predictor import Prediction
    from .predictor import softmax
    from .transforms import frame

    slices = list(volume.slices if isinstance(volume, Volume) else volume)
    if not slices:
        raise ValueError("the scan has no slices")
    framed = [frame(s, predictor.spec) for s in slices]
    probs = softmax(predictor.canvas_logits([c for c, _ in framed]) / predictor.temperature)
    ood_card = predictor.card.get("ood")
    per_slice, flagged = [], []
    for img, (canvas, placed), p in zip(slices, framed, probs):
        ood = assess(canvas, ood_card, placed.brain_found, original=img)
        stage, spread = expected_stage(p[None])
        k = int(p.argmax())
        flagged.append(bool(ood and ood.out_of_distribution))
        per_slice.append(Prediction(predictor.class_names[k], {c: float(v) for c, v in zip(predictor.class_names, p)},
                                    predictor.name, float(p[k]), tuple(ood_warnings(ood, p)), flagged[-1],
                                    None if ood is None else ood.score, float(stage[0]), float(spread[0])))
    areas = brain_areas(slices)
    at_level = areas >= LEVEL_AREA * areas.max() if areas.max() > 0 else np.zeros(len(slices), bool)
    used = np.flatnonzero(at_level & ~np.array(flagged))
    warnings: list[str] = []
    if len(used) == 0:
        used = np.sort(np.argsort(-areas)[:FALLBACK_SLICES])
        warnings.append(WARNING_NO_LEVEL)
    mean = AGGREGATIONS[AGGREGATION](probs[used])
    k = int(mean.argmax())
    stage, spread = expected_stage(mean[None])
    agreement = float(np.mean(probs[used].argmax(axis=1) == k))
    if float(mean.max()) < 0.5:
        warnings.append(ood_warnings(None, mean)[0])
    return ScanPrediction(predictor.class_names[k], {c: float(v) for c, v in zip(predictor.class_names, mean)},
                          predictor.name, tuple(int(i) for i in used), tuple(per_slice), agreement,
                          float(stage[0]), float(spread[0]), len(slices), tuple(warnings))
