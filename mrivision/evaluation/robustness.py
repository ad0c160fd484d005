"""Robustness benchmark (`mrivision bench --robustness`): accuracy and OOD rate under re-framings
and intensity shifts of the test slices, on the external cohort, and detection of non-brain probes.

Each re-framing is how another source may hand over the same slice: cropped tight to the brain,
with wide margins, on a dark-gray background, at another resolution, with another contrast or
gamma, or noisier. Accuracy is slice accuracy on a class-stratified sample of the data.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Sequence

import cv2
import numpy as np

from mrivision.evaluation import ood_probes
from mrivision.evaluation.metrics import evaluate_predictions
from mrivision.inputs.framing import brain_mask

if TYPE_CHECKING:
    from mrivision.inference.predictor import Predictor


def _tight(img: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(brain_mask(img))
    if not len(ys):
        return img
    return img[max(0, ys.min() - 2):ys.max() + 3, max(0, xs.min() - 2):xs.max() + 3]


def _margins(img: np.ndarray, share: float = 0.4) -> np.ndarray:
    h, w = img.shape
    return cv2.copyMakeBorder(img, round(h * share), round(h * share), round(w * share), round(w * share),
                              cv2.BORDER_CONSTANT, value=0.0)


def _gray_background(img: np.ndarray, level: float = 0.12) -> np.ndarray:
    mask = brain_mask(img)
    return np.where(mask, img * (1 - level) + level, level).astype(np.float32)


def _resample(img: np.ndarray, factor: float) -> np.ndarray:
    h, w = img.shape
    interp = cv2.INTER_AREA if factor < 1 else cv2.INTER_CUBIC
    return np.clip(cv2.resize(img, (max(16, round(w * factor)), max(16, round(h * factor))), interpolation=interp), 0, 1)


def _noise(img: np.ndarray, std: float = 0.03) -> np.ndarray:
    rng = np.random.default_rng(int(img.sum() * 1000) % (2 ** 32))
    return np.clip(img + rng.normal(0, std, img.shape).astype(np.float32), 0, 1)


PERTURBATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "original": lambda im: im,
    "tight crop": _tight,
    "wide margins (40%)": _margins,
    "dark-gray background": _gray_background,
    "resolution 0.5x": lambda im: _resample(im, 0.5),
    "resolution 2x": lambda im: _resample(im, 2.0),
    "gamma 0.7": lambda im: np.clip(im, 0, 1) ** 0.7,
    "gamma 1.4": lambda im: np.clip(im, 0, 1) ** 1.4,
    "contrast 0.7": lambda im: np.clip(im * 0.7, 0, 1),
    "noise 0.03": _noise,
}


def _answers(predictor: "Predictor", images: Sequence[np.ndarray], labels: np.ndarray | None = None) -> dict[str, float]:
    """Slice accuracy (with `labels`, through the evaluation protocol) and the share flagged as unlike
    the training data, from one pass."""
    preds = [p for i in range(0, len(images), 32) for p in predictor.predict_many(images[i:i + 32])]
    out = {"flagged": float(np.mean([p.out_of_distribution for p in preds])) if predictor.card.ood else float("nan")}
    if labels is not None:
        probs = np.array([list(p.probabilities.values()) for p in preds])
        out["accuracy"] = evaluate_predictions(labels, probs, predictor.class_names, n_boot=0)["slice"]["accuracy"]
    return out


def robustness(predictor: "Predictor", images: Sequence[np.ndarray], labels: Sequence[int],
               external: tuple[Sequence[np.ndarray], Sequence[int]] | None = None,
               probes_per_family: int = 20) -> dict[str, Any]:
    """Accuracy and OOD rate of `predictor` under every perturbation, on the external cohort, and
    the detection rate of generated non-brain images."""
    labels = np.asarray(labels)
    rows = {name: _answers(predictor, [fn(im) for im in images], labels) for name, fn in PERTURBATIONS.items()}
    out: dict[str, Any] = {"perturbations": rows, "n": len(images)}
    if external is not None:
        ext_images, ext_labels = external
        out["external"] = {**_answers(predictor, list(ext_images), np.asarray(ext_labels)), "n": len(ext_images)}
    out["probes_detected"] = {
        f: _answers(predictor, ood_probes.generate(f, probes_per_family, seed=11, mri_slices=list(images[:10])))["flagged"]
        for f in ood_probes.FAMILIES}
    return out


def stratified_sample(labels: Sequence[int], n: int, seed: int = 0) -> list[int]:
    """About `n` indices with every class in proportion (at least a few of each)."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    picks = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        k = min(len(idx), max(4, round(n * len(idx) / len(labels))))
        picks.extend(rng.choice(idx, k, replace=False).tolist())
    return sorted(picks)


def format_table(results: dict[str, dict[str, Any]]) -> str:
    """Markdown: one row per perturbation (and external, probes), accuracy / flagged per model."""
    names = list(results)
    head = "| input | " + " | ".join(f"`{n}` acc. / flagged" for n in names) + " |"
    lines = [head, "|---|" + "---|" * len(names)]
    first = results[names[0]]
    for p in first["perturbations"]:
        cells = [f"{results[n]['perturbations'][p]['accuracy']:.3f} / {results[n]['perturbations'][p]['flagged']:.0%}"
                 for n in names]
        lines.append(f"| test/ {p} | " + " | ".join(cells) + " |")
    if "external" in first:
        cells = [f"{results[n]['external']['accuracy']:.3f} / {results[n]['external']['flagged']:.0%}" for n in names]
        lines.append("| external cohort (OASIS-2) | " + " | ".join(cells) + " |")
    cells = [f"detected {min(results[n]['probes_detected'].values()):.0%} (worst family)" for n in names]
    lines.append("| non-brain probes | " + " | ".join(cells) + " |")
    return "\n".join(lines)
