"""`Prediction`: the model's answer for one slice (made by `Predictor.predict_many`, read by `scan`)."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Prediction:
    """The model's answer for one slice."""

    label: str
    probabilities: dict[str, float]
    model: str
    confidence: float
    warnings: tuple[str, ...] = field(default_factory=tuple)
    out_of_distribution: bool = False  # the input looks unlike the training slices (see `warnings`)
    ood_score: float | None = None  # OOD distance over its threshold (> 1: flagged); None without a detector
    expected_stage: float = 0.0  # sum_k k * P(class k), k = 0 (first class) ... K-1: a severity score
    stage_spread: float = 0.0  # standard deviation of the stage under the probabilities
