"""Occlusion heatmaps (`explain.occlusion`): heat where a model's evidence is, none outside the brain."""
from __future__ import annotations

from functools import partial

import numpy as np
import pytest
from synthetic import make_slice

from mrivision.explain.occlusion import iterative_occlusion, occlusion
from mrivision.inputs.framing import brain_region
from mrivision.model.spec import ModelSpec

SPEC = ModelSpec(name="stub", family="stub", class_names=("a", "b"), input_size=(64, 64), framing="letterbox")
METHODS = {"occlusion": partial(occlusion, patch=8, stride=4), "iterative_occlusion": partial(iterative_occlusion, patch=8)}


class TextureInOneCorner:
    """A stand-in model: class b's logit is the texture (standard deviation) of the canvas's
    top-left 24x24 corner, so only blurring there lowers its probability."""

    spec, class_names, temperature = SPEC, ("a", "b"), 1.0

    def canvas_logits(self, canvases):
        return np.array([[0.0, 20.0 * (float(c[8:32, 8:32].std()) - 0.2)] for c in canvases])


def textured_slice() -> np.ndarray:
    img = make_slice(0, np.random.default_rng(3), shape=(64, 64))
    return img + np.random.default_rng(4).normal(0, 0.1, img.shape).astype(np.float32) * (img > 0)


@pytest.mark.parametrize("method", METHODS)
def test_heat_is_where_the_evidence_is_and_zero_outside_the_brain(method: str) -> None:
    img = textured_slice()
    heat = METHODS[method](TextureInOneCorner(), img, target=1)
    brain = brain_region(img)
    assert heat.shape == img.shape and heat.dtype == np.float32 and 0 <= heat.min() and heat.max() == 1.0
    assert not heat[~brain].any()
    corner = np.zeros(img.shape, bool)
    corner[8:32, 8:32] = True
    assert heat[corner & brain].mean() > 3 * heat[~corner & brain].mean()


@pytest.mark.parametrize("method", METHODS)
def test_a_class_blurring_cannot_lower_and_a_blank_slice_stay_cold(method: str) -> None:
    assert METHODS[method](TextureInOneCorner(), textured_slice(), target=0)[8:32, 8:32].max() == 0
    assert METHODS[method](TextureInOneCorner(), np.zeros((64, 64), np.float32), target=1).max() == 0


def test_iterative_occlusion_heats_the_patches_blurred_first() -> None:
    """The hottest quarter of the brain lies in the corner, the only place where blurring lowers class b."""
    img = textured_slice()
    heat, brain = iterative_occlusion(TextureInOneCorner(), img, target=1, patch=8), brain_region(img)
    hottest = heat >= np.quantile(heat[brain], 0.9)
    assert (hottest & brain)[8:32, 8:32].sum() >= 0.8 * (hottest & brain).sum()


@pytest.mark.parametrize("method", METHODS)
def test_a_class_out_of_range_is_refused(method: str) -> None:
    with pytest.raises(ValueError, match="out of range"):
        METHODS[method](TextureInOneCorner(), textured_slice(), target=5)
