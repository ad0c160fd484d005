"""Do the heatmaps show what the model actually uses? Three checks, each against a baseline.

- ROAD (Rong et al. 2022, "remove and debias"): remove the p% most relevant pixels (MoRF) or
  the p% least relevant (LeRF), fill them by pytorch-grad-cam's noisy linear imputation (the
  fill carries no information about where the hole was), and record the mean drop of the
  model's probability for its predicted class. Faithful maps: large MoRF drop, small LeRF drop.
- Top-20% removal: replace the 20% hottest pixels by a heavy blur of the slice and record the
  same drop, for each method and for RandomCAM. Not black: dark holes look like enlarged CSF
  spaces, i.e. atrophy, the very thing the classes differ by (on the synthetic slices, blacking
  out the Grad-CAM top 20% and a random 20% both cost ~70 points in our runs: no contrast).
- Model randomisation (Adebayo et al. 2018): re-initialise every layer of a copy of the model
  and compare its heatmaps with the trained model's (Spearman rank correlation). A method
  whose maps barely change is showing image structure, not what the model learned.

Everything works on the slices themselves (heatmaps from `cam.explain` at the slice's
resolution), so removing p% of pixels means p% of the slice, not of the letterbox canvas.
Scores are the softmax of `Predictor.logits` at temperature 1 (pytorch-grad-cam's
`ClassifierOutputSoftmaxTarget`), without the card's calibration temperature: one fitted on a
perfectly separated validation set sits at its lower bound and saturates every probability at 1,
so that no removal shows (the tiny test model's does).
We rank pixels ourselves (random tie-breaking) instead of using pytorch-grad-cam's
`ROADMostRelevantFirst`, whose `cam < percentile` threshold removes nearly everything when a
heatmap has many equal (zero) values, as ReLU-ed CAMs do.
"""
from __future__ import annotations

import copy
from contextlib import contextmanager
from typing import Any, Iterator, Sequence

import numpy as np
import torch
from pytorch_grad_cam.metrics.road import NoisyLinearImputer
from scipy.stats import spearmanr
from torch import nn

from mrivision.model.outputs import softmax
from mrivision.explain.heatmap import heavy_blur
from mrivision.explain.cam import explain
from mrivision.inference.predictor import Predictor

PERCENTILES: tuple[int, ...] = (10, 20, 30, 50)
TOP_PERCENT = 20
BASELINE = "random"


@contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Seed numpy's global RNG (RandomCAM draws from it) and torch's (the imputer's noise); restore both."""
    state = np.random.get_state()
    with torch.random.fork_rng():
        np.random.seed(seed)
        torch.manual_seed(seed)
        try:
            yield
        finally:
            np.random.set_state(state)


def _ranked_mask(heat: np.ndarray, percent: float, most_relevant: bool, rng: np.random.Generator) -> np.ndarray:
    """Boolean mask of the `percent`% pixels with the highest (or lowest) heat; ties broken at random."""
    flat = heat.ravel()
    key = -flat if most_relevant else flat
    order = np.lexsort((rng.random(flat.size), key))
    mask = np.zeros(flat.size, bool)
    mask[order[: int(round(flat.size * percent / 100))]] = True
    return mask.reshape(heat.shape)


def _impute(img: np.ndarray, remove: np.ndarray) -> np.ndarray:
    """ROAD's noisy linear imputation of the removed pixels from their neighbours."""
    if not remove.any():
        return img
    filled = NoisyLinearImputer()(torch.from_numpy(img)[None], torch.from_numpy((~remove).astype(np.float32)))
    return np.clip(filled[0].numpy(), 0.0, 1.0).astype(np.float32)


def _probs(predictor: Predictor, images: Sequence[np.ndarray]) -> np.ndarray:
    return softmax(predictor.logits(list(images)))


def _drop(predictor: Predictor, images: Sequence[np.ndarray], targets: np.ndarray, before: np.ndarray) -> float:
    """Mean fall of the target-class probability from `before` to its value on `images`."""
    after = _probs(predictor, images)[np.arange(len(targets)), targets]
    return float(np.mean(before - after))


def randomised_copy(model: nn.Module, seed: int = 0) -> nn.Module:
    """A copy of `model` with every layer re-initialised: `reset_parameters()` where a module has
    one (BatchNorm also resets its running statistics), else N(0, 0.02) for its own parameters."""
    clone = copy.deepcopy(model)
    with torch.random.fork_rng(), torch.no_grad():
        torch.manual_seed(seed)
        for module in clone.modules():
            if callable(getattr(module, "reset_parameters", None)):
                module.reset_parameters()
            else:
                for p in module.parameters(recurse=False):
                    nn.init.normal_(p, std=0.02)
    return clone.eval()


def rank_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman correlation of two heatmaps; 1 if both are constant, 0 if only one is."""
    a, b = a.ravel(), b.ravel()
    const_a, const_b = np.ptp(a) == 0, np.ptp(b) == 0
    if const_a or const_b:
        return 1.0 if (const_a and const_b) else 0.0
    return float(spearmanr(a, b).statistic)


def measure_faithfulness(predictor: Predictor, images: Sequence[np.ndarray],
                         methods: Sequence[str] = ("gradcam", "gradcam++", "random"), seed: int = 0,
                         percentiles: Sequence[int] = PERCENTILES) -> dict[str, Any]:
    """Faithfulness of each CAM method on `images` ([0,1] HxW slices), for the predicted class.

    Returns (JSON-serialisable; percent keys are strings so the dict survives a JSON round trip)::

        {"n_images": N, "percentiles": [...], "seed": seed, "mean_confidence": p,
         METHOD: {"road_morf": {"10": drop, ...}, "road_lerf": {...}, "top20_drop": drop,
                  "randomisation_spearman": rho},   # rho not for "random"
         ...}

    `predictor` needs `.model`, `.logits(images)` and `.explain(img, method=, target=)`.
    Drops are in probability units (0.23 = 23 percentage points); positive = confidence fell.
    Cost: per method, one CAM per image (two with the randomisation check) and
    2 x len(percentiles) + 1 batched predictions of all images, plus one sparse solve per image
    and percentile for the ROAD imputation.
    The RandomCAM baseline is always measured, so `plain_sentence` can compare with it.
    Seeded (numpy's global RNG is restored afterwards), hence reproducible but not thread-safe.
    """
    images = [np.asarray(im, dtype=np.float32) for im in images]
    if not images:
        raise ValueError("measure_faithfulness needs at least one image")
    methods = list(dict.fromkeys([*methods, BASELINE]))
    probs = _probs(predictor, images)
    targets = probs.argmax(1)
    before = probs[np.arange(len(images)), targets]
    scrambled = randomised_copy(predictor.model, seed)

    result: dict[str, Any] = {"n_images": len(images), "percentiles": [int(p) for p in percentiles],
                              "seed": seed, "mean_confidence": float(before.mean())}
    for method in methods:
        with _seeded(seed):
            rng = np.random.default_rng(seed)
            heats = [predictor.explain(im, method=method, target=int(t)) for im, t in zip(images, targets)]
            entry: dict[str, Any] = {"road_morf": {}, "road_lerf": {}}
            for p in percentiles:
                for key, most in (("road_morf", True), ("road_lerf", False)):
                    perturbed = [_impute(im, _ranked_mask(h, p, most, rng)) for im, h in zip(images, heats)]
                    entry[key][str(int(p))] = _drop(predictor, perturbed, targets, before)
            blurred = [np.where(_ranked_mask(h, TOP_PERCENT, True, rng), heavy_blur(im), im).astype(np.float32)
                       for im, h in zip(images, heats)]
            entry["top20_drop"] = _drop(predictor, blurred, targets, before)
            if method != BASELINE:
                rhos = [rank_correlation(h, explain(scrambled, im, method=method, target=int(t)))
                        for im, h, t in zip(images, heats, targets)]
                entry["randomisation_spearman"] = float(np.mean(rhos))
        result[method] = entry
    return result


def plain_sentence(result: dict[str, Any], method: str) -> str:
    """One sentence for users, e.g. "Removing the highlighted area lowers the model's confidence
    by 23 percentage points, against 6 for random areas (average over 40 slices)."."""
    drop = result[method]["top20_drop"] * 100
    base = result[BASELINE]["top20_drop"] * 100
    verb = "lowers" if drop >= 0 else "raises"
    n = result["n_images"]
    if method == BASELINE:
        return (f"Removing random areas (20% of the slice) {verb} the model's confidence by "
                f"{abs(drop):.0f} percentage points (average over {n} slices).")
    return (f"Removing the highlighted area (the hottest 20% of the {method} heatmap) {verb} the model's "
            f"confidence by {abs(drop):.0f} percentage points, against {base:.0f} for random areas "
            f"(average over {n} slices).")
