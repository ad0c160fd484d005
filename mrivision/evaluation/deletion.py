"""Deletion check of a heatmap inside the brain: does blurring its hottest 20% cost the model more
confidence than blurring a smooth random 20% of the brain?

Both removals cover the same share of the brain mask (`framing.brain_region`) and fill it the same
way, by a heavy blur of the slice (not black: dark holes look like enlarged CSF spaces, i.e.
atrophy, the very thing the classes differ by). The random regions are smooth blobs (blurred
white noise, thresholded), not scattered pixels, so that they remove structure the way a heatmap's
hot region does. The drop is the fall of the probability of the explained class, softmax of
`Predictor.logits` at temperature 1 (as `faithfulness` does). The score of a set of slices is
the ratio of the mean drops (top / random): above 1, the heatmap points at what the model uses.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

import cv2
import numpy as np

from mrivision.model.outputs import softmax
from mrivision.inputs.framing import brain_region
from mrivision.explain.heatmap import heavy_blur

if TYPE_CHECKING:
    from mrivision.inference.predictor import Predictor

TOP_PERCENT = 20
N_RANDOM = 4  # random regions per slice (their drops are averaged)
MIN_RANDOM_DROP = 0.005  # below half a percentage point a ratio means nothing


def hottest(heat: np.ndarray, region: np.ndarray, percent: float, rng: np.random.Generator) -> np.ndarray:
    """The `percent`% of `region`'s pixels with the highest heat (ties broken at random)."""
    idx = np.flatnonzero(region)
    n = int(round(len(idx) * percent / 100))
    order = np.lexsort((rng.random(len(idx)), -np.asarray(heat, np.float32).ravel()[idx]))
    mask = np.zeros(region.size, bool)
    mask[idx[order[:n]]] = True
    return mask.reshape(region.shape)


def smooth_random(region: np.ndarray, percent: float, rng: np.random.Generator) -> np.ndarray:
    """A random `percent`% of `region` made of smooth blobs (white noise blurred at 1/16 of the
    slice's shorter side, its highest values inside the region)."""
    sigma = max(1.0, min(region.shape) / 16)
    noise = cv2.GaussianBlur(rng.standard_normal(region.shape).astype(np.float32), (0, 0), sigmaX=sigma, sigmaY=sigma)
    return hottest(noise, region, percent, rng)


@dataclass(frozen=True)
class DeletionScore:
    """Mean confidence drops (probability units) when the hottest / a random `percent`% of the brain is blurred."""

    top_drop: float
    random_drop: float
    n_images: int
    percent: int = TOP_PERCENT

    @property
    def ratio(self) -> float | None:
        """top_drop / random_drop; None when random blurring costs (almost) nothing."""
        return self.top_drop / self.random_drop if self.random_drop >= MIN_RANDOM_DROP else None

    def sentence(self) -> str:
        """E.g. "Blurring the hottest 20% of the brain costs 2.4 x a random 20% (31 vs 13 points)."."""
        points = f"{self.top_drop * 100:.0f} vs {self.random_drop * 100:.0f} points"
        if self.ratio is None:
            return (f"Blurring the hottest {self.percent}% of the brain costs {self.top_drop * 100:.0f} points of "
                    f"confidence, a random {self.percent}% {self.random_drop * 100:.0f} (too little for a ratio).")
        return f"Blurring the hottest {self.percent}% of the brain costs {self.ratio:.1f} x a random {self.percent}% ({points})."

    def to_dict(self) -> dict[str, float | int | None]:
        return {"top_drop": self.top_drop, "random_drop": self.random_drop, "ratio": self.ratio,
                "n_images": self.n_images, "percent": self.percent}


def _target_probs(predictor: Predictor, images: Sequence[np.ndarray], targets: np.ndarray) -> np.ndarray:
    """Probability of class `targets[i]` for image i (softmax at temperature 1)."""
    probs = softmax(predictor.logits(list(images)))
    return probs[np.arange(len(images)), targets]


def random_drops(predictor: Predictor, images: Sequence[np.ndarray], targets: np.ndarray, before: np.ndarray,
                 percent: float = TOP_PERCENT, n_random: int = N_RANDOM, seed: int = 0) -> np.ndarray:
    """Per slice: the mean drop over `n_random` smooth random regions of its brain."""
    rng = np.random.default_rng(seed)
    blurred = [np.where(smooth_random(brain_region(im), percent, rng), heavy_blur(im), im)
               for _ in range(n_random) for im in images]
    after = _target_probs(predictor, blurred, np.tile(targets, n_random)).reshape(n_random, len(images))
    return (before[None] - after).mean(axis=0)


def top_drops(predictor: Predictor, images: Sequence[np.ndarray], heats: Sequence[np.ndarray], targets: np.ndarray,
              before: np.ndarray, percent: float = TOP_PERCENT, seed: int = 0) -> np.ndarray:
    """Per slice: the drop when the hottest `percent`% of its brain is blurred."""
    rng = np.random.default_rng(seed)
    blurred = [np.where(hottest(h, brain_region(im), percent, rng), heavy_blur(im), im) for im, h in zip(images, heats)]
    return before - _target_probs(predictor, blurred, targets)


def deletion_score(predictor: Predictor, images: Sequence[np.ndarray], heats: Sequence[np.ndarray],
                   targets: Sequence[int], percent: float = TOP_PERCENT, n_random: int = N_RANDOM,
                   seed: int = 0) -> DeletionScore:
    """The deletion check over slices with their heatmaps, each for class `targets[i]`."""
    images = [np.asarray(im, np.float32) for im in images]
    if not images or len(images) != len(heats) or len(images) != len(targets):
        raise ValueError("deletion_score needs as many heatmaps and targets as images (at least one)")
    t = np.asarray(targets, int)
    before = _target_probs(predictor, images, t)
    top = top_drops(predictor, images, heats, t, before, percent, seed)
    rand = random_drops(predictor, images, t, before, percent, n_random, seed)
    return DeletionScore(float(top.mean()), float(rand.mean()), len(images), int(percent))


def heatmap_faithfulness(predictor: Predictor, img: np.ndarray, heat: np.ndarray,
                         target: int | str | None = None) -> DeletionScore:
    """The deletion check for one heatmap (what the app shows beside it); `target`: the class the
    heatmap explains (default: the predicted class)."""
    if isinstance(target, str):
        target = predictor.class_names.index(target)
    if target is None:
        target = int(predictor.logits([img]).argmax())
    return deletion_score(predictor, [img], [heat], [int(target)])
