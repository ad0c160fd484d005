"""The deletion check (`evaluation.deletion`) on the tiny model trained on the synthetic stages."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from synthetic import make_slice

from mrivision.evaluation.deletion import (
    DeletionScore,
    deletion_score,
    heatmap_faithfulness,
    hottest,
    smooth_random,
)
from mrivision.explain.cam import explain
from mrivision.inference.predictor import Predictor
from mrivision.inputs.framing import brain_region
from mrivision.model.weights import load_weights

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def predictor(tiny_model: Path) -> Predictor:
    return Predictor(*load_weights(tiny_model))


def test_masks_cover_a_fifth_of_the_brain_only() -> None:
    img = make_slice(2, np.random.default_rng(0))
    region = brain_region(img)
    rng = np.random.default_rng(0)
    heat = rng.random(img.shape)
    for mask in (hottest(heat, region, 20, rng), smooth_random(region, 20, rng)):
        assert not (mask & ~region).any()
        assert mask.sum() == round(region.sum() * 0.2)
    top = hottest(heat, region, 20, rng)
    assert heat[top].min() >= heat[region & ~top].max()
    # smooth blobs, not scattered pixels: a handful of pieces
    n_pieces = cv2.connectedComponents(smooth_random(region, 20, rng).astype(np.uint8))[0] - 1
    assert n_pieces <= 6


def test_faithful_heatmap_beats_random(predictor: Predictor) -> None:
    """The stage lives in the central dark 'ventricle': a heatmap on it must cost more confidence
    when blurred than random blobs do, and more than a random heatmap does."""
    rng = np.random.default_rng(3)
    images = [make_slice(1 + k % 2, rng) for k in range(8)]  # stages 1-2: not saturated at p = 1
    targets = predictor.logits(images).argmax(1)
    h, w = images[0].shape
    yy, xx = np.mgrid[:h, :w]
    on_ventricle = np.exp(-((yy - h / 2) ** 2 + (xx - w / 2) ** 2) / (2 * 4.0 ** 2)).astype(np.float32)
    noise = [cv2.GaussianBlur(rng.random((h, w)).astype(np.float32), (0, 0), 3) for _ in images]
    faithful = deletion_score(predictor, images, [on_ventricle] * len(images), targets)
    random = deletion_score(predictor, images, noise, targets)
    assert faithful.ratio is not None and faithful.ratio >= 2.5, faithful
    assert faithful.top_drop > 2 * random.top_drop, (faithful, random)
    assert faithful.random_drop == pytest.approx(random.random_drop)  # same random regions


def test_one_heatmap_sentence(predictor: Predictor) -> None:
    img = make_slice(3, np.random.default_rng(4))
    heat = predictor.explain(img)
    assert not heat[~brain_region(img)].any()  # the heatmap lies on the brain only
    score = heatmap_faithfulness(predictor, img, heat)
    assert isinstance(score, DeletionScore) and score.n_images == 1
    assert np.isfinite(score.top_drop) and np.isfinite(score.random_drop)
    sentence = score.sentence()
    assert "hottest 20%" in sentence and ("x a random 20%" in sentence or "too little for a ratio" in sentence)
    assert DeletionScore(0.3, 0.1, 5).sentence().startswith("Blurring the hottest 20% of the brain costs 3.0 x")
    assert DeletionScore(0.3, 0.001, 5).ratio is None


def test_explain_layer_choice(predictor: Predictor) -> None:
    img = make_slice(2, np.random.default_rng(5))
    a = explain(predictor.model, img, layer="block2")
    b = explain(predictor.model, img, layer="block3")
    assert a.shape == b.shape == img.shape and np.abs(a - b).mean() > 1e-3
    with pytest.raises(ValueError, match="not a layer"):
        explain(predictor.model, img, layer="no.such.layer")
