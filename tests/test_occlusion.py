"""Occlusion sensitivity (`explain.occlusion`): heat where a model's evidence is, none outside the brain."""
from __future__ import annotations

import numpy as np
from synthetic import make_slice

from mrivision.explain.occlusion import occlusion
from mrivision.inputs.framing import brain_region
from mrivision.model.spec import ModelSpec

SPEC = ModelSpec(name="stub", family="stub", class_names=("a", "b"), input_size=(64, 64), framing="letterbox")


class TextureInOneCorner:
    """A stand-in model: class b's logit is the texture (standard deviation) of the canvas's
    top-left 24x24 corner, so only blurring there lowers its probability."""

    spec, class_names, temperature = SPEC, ("a", "b"), 1.0

    def canvas_logits(self, canvases):
        return np.array([[0.0, 20.0 * (float(c[8:32, 8:32].std()) - 0.2)] for c in canvases])


def test_occlusion_is_hot_where_the_evidence_is_and_zero_outside_the_brain() -> None:
    img = make_slice(0, np.random.default_rng(3), shape=(64, 64))
    img += np.random.default_rng(4).normal(0, 0.1, img.shape).astype(np.float32) * (img > 0)
    heat = occlusion(TextureInOneCorner(), img, target=1, patch=8, stride=4)
    brain = brain_region(img)
    assert heat.shape == img.shape and heat.dtype == np.float32 and 0 <= heat.min() and heat.max() == 1.0
    assert not heat[~brain].any()
    corner = np.zeros(img.shape, bool)
    corner[8:32, 8:32] = True
    assert heat[corner & brain].mean() > 5 * heat[~corner & brain].mean()
    assert occlusion(TextureInOneCorner(), img, target=0, patch=8, stride=4)[corner & brain].mean() == 0
