"""Out-of-distribution check: does an input look like the axial brain slices the model saw?

Each slice is summarised by a few intensity and shape statistics; the Mahalanobis distance to
the training slices' statistics is compared with a threshold set at a high quantile of the
training distances (the false-alarm rate is then measured on the test slices).
"""
from __future__ import annotations

from typing import Any, Sequence

import cv2
import numpy as np

STAT_NAMES = ("background_fraction", "foreground_mean", "foreground_std", "p95", "edge_energy",
              "left_right_symmetry", "centre_mass_x", "centre_mass_y", "template_correlation")
_THUMB = (52, 44)


def _thumb(img: np.ndarray) -> np.ndarray:
    return cv2.resize(np.asarray(img, np.float32), (_THUMB[1], _THUMB[0]), interpolation=cv2.INTER_AREA)


def slice_stats(img: np.ndarray, template: np.ndarray | None = None) -> np.ndarray:
    """Statistics that separate MRI brain slices from photos, text, gradients and noise."""
    t = _thumb(img)
    fg = t > 0.08
    vals = t[fg] if fg.any() else np.zeros(1, np.float32)
    gy, gx = np.gradient(t)
    flipped = t[:, ::-1]
    sym = float(np.corrcoef(t.ravel(), flipped.ravel())[0, 1]) if t.std() > 1e-6 else 0.0
    mass = t.sum() + 1e-6
    yy, xx = np.mgrid[0:t.shape[0], 0:t.shape[1]]
    corr = 0.0
    if template is not None and t.std() > 1e-6:
        corr = float(np.corrcoef(t.ravel(), template.ravel())[0, 1])
    return np.array([
        1.0 - fg.mean(), vals.mean(), vals.std(), np.percentile(t, 95), np.sqrt(gx ** 2 + gy ** 2).mean(),
        sym, (xx * t).sum() / mass / t.shape[1], (yy * t).sum() / mass / t.shape[0], corr,
    ], dtype=np.float64)


def fit_ood(images: Sequence[np.ndarray], quantile: float = 0.995) -> dict[str, Any]:
    """Fit the detector on training slices; returns what the model card stores."""
    template = np.mean([_thumb(im) for im in images], axis=0)
    stats = np.stack([slice_stats(im, template) for im in images])
    mean = stats.mean(0)
    cov = np.cov(stats, rowvar=False) + np.eye(stats.shape[1]) * 1e-6
    inv = np.linalg.inv(cov)
    d = _mahalanobis(stats, mean, inv)
    return {"stat_names": list(STAT_NAMES), "mean": mean.tolist(), "inv_cov": inv.tolist(),
            "threshold": float(np.quantile(d, quantile)), "quantile": quantile,
            "template": np.round(template, 4).tolist()}


def _mahalanobis(stats: np.ndarray, mean: np.ndarray, inv: np.ndarray) -> np.ndarray:
    diff = np.atleast_2d(stats) - mean
    return np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", diff, inv, diff), 0))


def ood_distance(img: np.ndarray, ood: dict[str, Any]) -> float:
    stats = slice_stats(img, np.asarray(ood["template"], np.float32))
    return float(_mahalanobis(stats, np.asarray(ood["mean"]), np.asarray(ood["inv_cov"]))[0])


def is_out_of_distribution(img: np.ndarray, ood: dict[str, Any]) -> bool:
    return ood_distance(img, ood) > ood["threshold"]


def ood_warnings(img: np.ndarray, probs: np.ndarray, ood: dict[str, Any] | None) -> list[str]:
    """Plain-language warnings for the Predict page and the CLI."""
    warnings = []
    if ood and is_out_of_distribution(img, ood):
        warnings.append("This image looks unlike the axial brain MRI slices the model was trained on; "
                        "the prediction is probably meaningless.")
    if float(np.max(probs)) < 0.5:
        warnings.append("The model is uncertain: no stage has more than 50% probability.")
    return warnings
