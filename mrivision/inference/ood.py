"""Out-of-distribution check: does an input look like the axial brain slices the model saw?

Each slice is summarised by 17 cheap statistics of its intensities and shape, computed on a small
copy fitted to the model's aspect ratio with black padding (as the model sees it):

* how much of the picture is black background and how bright its border is (MRI slices here
  are a skull-stripped head on black: photos, text on white, inverted slices and X-rays are not);
* the foreground's intensity distribution (mean, spread, 10/50/90th percentiles);
* texture: mean gradient, and fine detail inside the foreground (gyri versus smooth gradients
  or flat drawings), and how symmetric the image is left to right;
* shape: centre of mass, correlation with the mean training slice, the share of the foreground
  in its largest connected piece, how convex that piece is, how many pieces there are (text:
  many), and how much of its bounding box it fills.

The detector is a Mahalanobis distance to the statistics of the training slices and of one
jittered copy of each (`OOD_JITTER`: scale, tilt, shift, flip, contrast), standardised, with a little
covariance shrinkage. The copies matter: the original test slices come from other slice levels
than the training ones, and a Gaussian fitted to the training slices alone flagged ~45% of them.
The threshold is the 99th percentile of *out-of-fold* distances (5-fold cross-fitting), so it is
not set on the slices it was fitted to. `scripts/measure_ood.py` measures the false-alarm rate on
the test slices and the detection rate on generated non-MRI images (`mrivision.evaluation.ood_probes`) and
stores both on the card under ``ood.measured``.

Everything the detector needs is a small JSON dict (the card's ``ood``, about 25 KB with the
52 x 44 mean-slice template). Cost: about 1 ms of CPU per image, for any image size.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import cv2
import numpy as np

from mrivision.inputs.transforms import Augment, fit_to_size

VERSION = 3  # 3: statistics of the canonically framed canvas (2: of the letterboxed slice)
STAT_NAMES = ("background_fraction", "border_mean", "foreground_mean", "foreground_std", "foreground_p10",
              "foreground_p50", "foreground_p90", "edge_energy", "fine_texture", "left_right_symmetry",
              "centre_mass_x", "centre_mass_y", "template_correlation", "largest_component", "solidity",
              "log_components", "extent")
_THUMB = (52, 44)  # (H, W): the 208 x 176 training slices at 1/4
_FINE = (104, 88)
_FG = 0.08  # foreground threshold on [0, 1] intensities
_SHRINK = 0.05
_STD_FLOOR = 0.01  # statistics are on a 0-1 scale: a spread below this is treated as this

WARNING_OOD = ("This image looks unlike the axial brain MRI slices the model was trained on; "
               "the prediction is probably meaningless.")
WARNING_UNCERTAIN = "The model is uncertain: no stage has more than 50% probability."


def _fit(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """`img` fitted into `size` (H, W) as the model sees it: aspect kept, black padding."""
    img = np.asarray(img, np.float32)
    step = int(min(img.shape[0] / size[0], img.shape[1] / size[1]) // 4)
    if step > 1:  # a very large image: subsample first, keeping 4x the target resolution
        img = img[::step, ::step]
    return fit_to_size(np.ascontiguousarray(img), size)


def _views(img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The slice at `_FINE` and at `_THUMB` resolution, values clipped to [0, 1]."""
    fine = np.clip(np.nan_to_num(_fit(img, _FINE), nan=0.0, posinf=1.0, neginf=0.0), 0, 1)
    return fine, cv2.resize(fine, (_THUMB[1], _THUMB[0]), interpolation=cv2.INTER_AREA)


def slice_stats(img: np.ndarray, template: np.ndarray | None = None) -> np.ndarray:
    """The statistics named in `STAT_NAMES` for one [0, 1] slice (finite for any input)."""
    fine, t = _views(img)
    h, w = t.shape
    fg = t > _FG
    n_fg = int(fg.sum())
    vals = t[fg] if n_fg else np.zeros(1, np.float32)
    p10, p50, p90 = np.percentile(vals, (10, 50, 90))
    border = np.concatenate([t[:3].ravel(), t[-3:].ravel(), t[3:-3, :3].ravel(), t[3:-3, -3:].ravel()])
    gy, gx = np.gradient(t)
    lap = np.abs(cv2.Laplacian(fine, cv2.CV_32F, ksize=1))
    fine_fg = fine > _FG
    texture = float(lap[fine_fg].mean() / max(float(fine[fine_fg].mean()), 1e-3)) if fine_fg.any() else 0.0
    std = float(t.std())
    sym = float(np.corrcoef(t.ravel(), t[:, ::-1].ravel())[0, 1]) if std > 1e-6 else 0.0
    mass = float(t.sum())
    yy, xx = np.mgrid[0:h, 0:w]
    cx = float((xx * t).sum() / mass / w) if mass > 1e-6 else 0.5
    cy = float((yy * t).sum() / mass / h) if mass > 1e-6 else 0.5
    corr = 0.0
    if template is not None and std > 1e-6 and float(np.std(template)) > 1e-6:
        corr = float(np.corrcoef(t.ravel(), np.asarray(template, np.float32).ravel())[0, 1])
    largest = solidity = extent = 0.0
    n_comp = 0
    if n_fg:
        n, labels, cc, _ = cv2.connectedComponentsWithStats(fg.astype(np.uint8), connectivity=8)
        areas = cc[1:, cv2.CC_STAT_AREA]
        n_comp = int((areas >= max(2, 0.01 * n_fg)).sum())  # specks (under 1% of the foreground) ignored
        k = 1 + int(areas.argmax())
        largest = float(areas.max() / n_fg)
        contours, _ = cv2.findContours((labels == k).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        hull = cv2.contourArea(cv2.convexHull(np.concatenate(contours)))
        solidity = float(min(1.0, areas.max() / max(hull, 1.0)))
        extent = float(areas.max() / (cc[k, cv2.CC_STAT_WIDTH] * cc[k, cv2.CC_STAT_HEIGHT]))
    out = np.array([1.0 - n_fg / fg.size, border.mean(), vals.mean(), vals.std(), p10, p50, p90,
                    np.sqrt(gx ** 2 + gy ** 2).mean(), texture, sym, cx, cy, corr, largest, solidity,
                    np.log1p(n_comp), extent], dtype=np.float64)
    return np.nan_to_num(out)


def _fit_gaussian(stats: np.ndarray, shrink: float = _SHRINK) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean, standard deviation and the inverse shrunk covariance of the standardised statistics."""
    mean, std = stats.mean(0), np.maximum(stats.std(0), _STD_FLOOR)
    cov = np.cov((stats - mean) / std, rowvar=False)
    cov = (1 - shrink) * cov + shrink * np.eye(stats.shape[1])
    return mean, std, np.linalg.inv(cov)


def _mahalanobis(z: np.ndarray, inv: np.ndarray) -> np.ndarray:
    z = np.atleast_2d(z)
    return np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", z, inv, z), 0))


# A plausible variant of a training slice: another slice level or head size (scale), a tilt, a
# shift, a flip, and another contrast (gain, and gamma from exp(-0.5) to exp(0.5)). Widens the
# fitted distribution from "these training slices" to "axial slices like these".
OOD_JITTER = Augment(rotate_deg=10.0, scale_range=(0.85, 1.12), translate=0.04, hflip=0.5, brightness=0.0,
                     contrast=0.15, gamma=0.5)


def fit_ood(images: Sequence[np.ndarray], quantile: float = 0.99, folds: int = 5, jitters: int = 1,
            max_images: int = 2000, seed: int = 0, framing: str = "letterbox") -> dict[str, Any]:
    """Fit the detector on training slices; returns what the model card stores (JSON-ready).

    At most `max_images` slices (a random subset) are used, each with `jitters` jittered copies
    (`OOD_JITTER`); the Gaussian is fitted to both. The threshold is the `quantile` of out-of-fold
    distances (slices and their copies, `folds`-fold cross-fitting by slice), so about
    ``1 - quantile`` of new slices like the training ones are expected to be flagged.
    """
    n = len(images)
    if n < 4:
        raise ValueError(f"fit_ood needs at least 4 training slices, got {n}")
    folds = max(2, min(folds, n // 2))
    rng = np.random.default_rng(seed)
    if n > max_images:
        images = [images[i] for i in sorted(rng.choice(n, max_images, replace=False))]
    template = np.mean([_views(im)[1] for im in images], axis=0)
    stats = np.stack([slice_stats(im, template) for im in images])
    copies = np.array([slice_stats(OOD_JITTER(np.asarray(im, np.float32), rng), template) for im in images for _ in range(jitters)])
    copies = copies.reshape(-1, stats.shape[1])
    fold = rng.permutation(len(stats)) % folds
    copy_fold = np.repeat(fold, jitters)
    held_out = []
    for f in range(folds):
        m, s, inv = _fit_gaussian(np.concatenate([stats[fold != f], copies[copy_fold != f]]))
        held_out.append(_mahalanobis((np.concatenate([stats[fold == f], copies[copy_fold == f]]) - m) / s, inv))
    mean, std, inv = _fit_gaussian(np.concatenate([stats, copies]))
    return {"version": VERSION if framing == "canonical" else 2, "framing": framing,
            "method": "Mahalanobis distance over slice statistics"
                      + (" of the canonically framed slice" if framing == "canonical" else ""),
            "stat_names": list(STAT_NAMES), "mean": mean.tolist(), "std": std.tolist(), "inv_cov": inv.tolist(),
            "shrinkage": _SHRINK, "threshold": float(np.quantile(np.concatenate(held_out), quantile)),
            "quantile": quantile, "n_fit": len(images), "jitters": jitters, "folds": folds,
            "threshold_from": f"{folds}-fold out-of-fold distances of {len(images)} training slices "
                              f"and {len(copies)} jittered copies",
            "template": np.round(template, 4).tolist()}


def _z(img: np.ndarray, ood: dict[str, Any]) -> np.ndarray:
    template = np.asarray(ood["template"], np.float32)
    return (slice_stats(img, template) - np.asarray(ood["mean"])) / np.asarray(ood["std"])


def ood_distance(img: np.ndarray, ood: dict[str, Any]) -> float:
    """Mahalanobis distance of the slice's statistics to the training slices' (larger: stranger).

    For a version-3 detector `img` is the slice as framed for the model (`transforms.frame`)."""
    if ood.get("version", 1) < 2:
        return _legacy_distance(img, ood, np.asarray(ood["template"], np.float32))
    d = float(_mahalanobis(_z(img, ood), np.asarray(ood["inv_cov"]))[0])
    return d if np.isfinite(d) else float("inf")


def ood_score(img: np.ndarray, ood: dict[str, Any]) -> float:
    """Distance over threshold: above 1 means out of distribution."""
    return ood_distance(img, ood) / float(ood["threshold"])


def is_out_of_distribution(img: np.ndarray, ood: dict[str, Any]) -> bool:
    return ood_distance(img, ood) > float(ood["threshold"])


# What a statistic far from the training slices means, in plain words (by STAT_NAMES prefix).
_PLAIN = {
    "background": "little of it is dark background",
    "border": "the picture's edges are not dark background",
    "foreground": "its brightness is unlike brain tissue on a T1 MRI",
    "edge": "its edges are unlike a brain slice",
    "fine": "its fine texture is unlike the folds of a brain",
    "left": "it is not left-right symmetric like an axial brain slice",
    "centre": "its content is off-centre",
    "template": "its layout is unlike an axial brain slice",
    "largest": "it falls apart into several pieces",
    "solidity": "its outline is unlike a brain's",
    "log": "it holds many separate pieces (text or a pattern?)",
    "extent": "its outline is unlike a brain's",
}


@dataclass(frozen=True)
class OODResult:
    """Whether a slice looks unlike the training slices, how strongly (score > 1: flagged), and why."""

    out_of_distribution: bool
    score: float
    reasons: tuple[str, ...] = ()


def assess(canvas: np.ndarray, ood: dict[str, Any] | None, brain_found: bool = True,
           original: np.ndarray | None = None) -> OODResult | None:
    """The OOD verdict for a slice framed for the model (`canvas`); None without a detector.

    A version-2 detector judges the `original` slice (it was fitted on letterboxed slices)."""
    if not ood:
        return None
    if not brain_found:
        return OODResult(True, float("inf"), ("no brain-like object was found in it (blank, flat or tiny)",))
    img = canvas if ood.get("version", 1) >= 3 or original is None else original
    score = ood_score(img, ood)
    if not score > 1.0:
        return OODResult(False, float(score))
    reasons: list[str] = []
    if ood.get("version", 1) >= 2:
        z = np.abs(_z(img, ood))
        for i in np.argsort(-z)[:3]:
            text = _PLAIN[STAT_NAMES[i].split("_")[0]]
            if z[i] > 3 and text not in reasons:
                reasons.append(text)
    return OODResult(True, float(score), tuple(reasons))


def ood_message(result: OODResult) -> str:
    """The warning shown for a flagged slice, naming what is unusual."""
    why = "; ".join(result.reasons) if result.reasons else "its overall statistics are unusual"
    return f"{WARNING_OOD} What is unusual: {why}."


def ood_warnings(result: OODResult | None, probs: np.ndarray) -> list[str]:
    """Plain-language warnings for the Predict page and the CLI."""
    warnings = []
    if result is not None and result.out_of_distribution:
        warnings.append(ood_message(result))
    if float(np.max(probs)) < 0.5:
        warnings.append(WARNING_UNCERTAIN)
    return warnings


# --- cards written before version 2 (9 statistics on a stretched thumbnail) ------------------


def _legacy_distance(img: np.ndarray, ood: dict[str, Any], template: np.ndarray) -> float:
    t = cv2.resize(np.asarray(img, np.float32), (_THUMB[1], _THUMB[0]), interpolation=cv2.INTER_AREA)
    fg = t > _FG
    vals = t[fg] if fg.any() else np.zeros(1, np.float32)
    gy, gx = np.gradient(t)
    ok = t.std() > 1e-6
    sym = float(np.corrcoef(t.ravel(), t[:, ::-1].ravel())[0, 1]) if ok else 0.0
    mass = t.sum() + 1e-6
    yy, xx = np.mgrid[0:t.shape[0], 0:t.shape[1]]
    corr = float(np.corrcoef(t.ravel(), template.ravel())[0, 1]) if ok and template.std() > 1e-6 else 0.0
    stats = np.array([1.0 - fg.mean(), vals.mean(), vals.std(), np.percentile(t, 95), np.sqrt(gx ** 2 + gy ** 2).mean(),
                      sym, (xx * t).sum() / mass / t.shape[1], (yy * t).sum() / mass / t.shape[0], corr])
    stats = np.nan_to_num(stats)
    d = float(_mahalanobis(stats - np.asarray(ood["mean"]), np.asarray(ood["inv_cov"]))[0])
    return d if np.isfinite(d) else float("inf")
