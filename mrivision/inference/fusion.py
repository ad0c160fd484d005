"""Fusion: a multinomial logistic regression on the CNN's calibrated class probabilities and the
atrophy measures of the same slice (`mrivision.measure_atrophy`), stored as coefficients in a
model card's `fusion` section (`scripts/fit_fusion.py` fits it; `Predictor` applies it).

Features: the CNN's log-probabilities (clipped at 1e-6) and each named atrophy measure,
standardised by the training mean and scale; class probabilities are the softmax of
`standardised @ coef.T + intercept`. No scikit-learn at inference: numpy only.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from mrivision.model.outputs import softmax

CNN_PREFIX = "log_p:"  # feature names of the CNN's class log-probabilities: "log_p:NonDemented", ...
EPS = 1e-6


@dataclass(frozen=True)
class Fusion:
    """A fitted fusion model: feature names, standardisation and logistic-regression coefficients."""

    features: tuple[str, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    coef: tuple[tuple[float, ...], ...]  # (classes, features)
    intercept: tuple[float, ...]

    def __post_init__(self) -> None:
        n = len(self.features)
        if not n or len(self.mean) != n or len(self.scale) != n or any(len(row) != n for row in self.coef):
            raise ValueError("fusion: features, mean, scale and coefficient rows must have the same length")
        if len(self.intercept) != len(self.coef) or min(self.scale) <= 0:
            raise ValueError("fusion: one intercept per class and positive scales are needed")

    @property
    def measures(self) -> tuple[str, ...]:
        """The atrophy measures the model reads (empty: CNN probabilities only)."""
        return tuple(f for f in self.features if not f.startswith(CNN_PREFIX))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Fusion":
        try:
            return cls(tuple(str(f) for f in d["features"]), tuple(map(float, d["mean"])),
                       tuple(map(float, d["scale"])), tuple(tuple(map(float, row)) for row in d["coef"]),
                       tuple(map(float, d["intercept"])))
        except (KeyError, TypeError) as exc:
            raise ValueError(f"fusion section is incomplete: {exc}") from None

    def to_dict(self) -> dict[str, Any]:
        return {"features": list(self.features), "mean": list(self.mean), "scale": list(self.scale),
                "coef": [list(r) for r in self.coef], "intercept": list(self.intercept)}

    def feature_matrix(self, cnn_probs: np.ndarray, class_names: Sequence[str],
                       measures: Sequence[Mapping[str, float]] | None = None) -> np.ndarray:
        """(N, features) from the CNN's probabilities (N, classes) and per-slice atrophy measures."""
        cnn_probs = np.asarray(cnn_probs, np.float64)
        cols = []
        for f in self.features:
            if f.startswith(CNN_PREFIX):
                cols.append(np.log(np.clip(cnn_probs[:, list(class_names).index(f[len(CNN_PREFIX):])], EPS, None)))
            else:
                if measures is None or len(measures) != len(cnn_probs):
                    raise ValueError(f"fusion needs the atrophy measure {f!r} of every slice")
                cols.append(np.array([float(m[f]) for m in measures]))
        return np.stack(cols, axis=1)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Class probabilities (N, classes) of a feature matrix (N, features)."""
        z = (np.asarray(x, np.float64) - np.array(self.mean)) / np.array(self.scale)
        return softmax(z @ np.array(self.coef).T + np.array(self.intercept))

    def apply(self, cnn_probs: np.ndarray, class_names: Sequence[str], images: Sequence[np.ndarray]) -> np.ndarray:
        """Fused probabilities of slices from their CNN probabilities (measuring atrophy when needed).
        A slice whose atrophy cannot be measured (no brain found) keeps its CNN probabilities; the
        OOD check flags such slices."""
        cnn_probs = np.asarray(cnn_probs, np.float64)
        if not self.measures:
            return self.predict_proba(self.feature_matrix(cnn_probs, class_names))
        from mrivision.anatomy.atrophy import measure_atrophy

        measures: list[Mapping[str, float]] = []
        ok = np.zeros(len(images), bool)
        for i, im in enumerate(images):
            try:
                measures.append(measure_atrophy(im).as_dict())
                ok[i] = True
            except ValueError:  # includes ImageLoadError: nothing to measure on this slice
                continue
        out = cnn_probs.copy()
        if ok.any():
            out[ok] = self.predict_proba(self.feature_matrix(cnn_probs[ok], class_names, measures))
        return out
