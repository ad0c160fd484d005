"""Faithfulness of the heatmaps (ROAD, top-20% removal, model randomisation) on the tiny model."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from synthetic import make_slice

from mrivision.evaluation.faithfulness import (
    PERCENTILES,
    _ranked_mask,
    measure_faithfulness,
    plain_sentence,
    randomised_copy,
    rank_correlation,
)
from mrivision.inference.predictor import Predictor
from mrivision.model.weights import load_weights

METHODS = ("gradcam", "gradcam++", "random")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def predictor(tiny_model: Path) -> Predictor:
    return Predictor(*load_weights(tiny_model))


@pytest.fixture(scope="module")
def images() -> list[np.ndarray]:
    rng = np.random.default_rng(11)
    return [make_slice(k % 4, rng) for k in range(12)]


@pytest.fixture(scope="module")
def result(predictor: Predictor, images: list[np.ndarray]) -> dict:
    return measure_faithfulness(predictor, images, methods=METHODS, seed=0)


def test_schema_and_finite_values(result: dict) -> None:
    assert result["n_images"] == 12
    assert result["percentiles"] == list(PERCENTILES)
    assert 0 < result["mean_confidence"] <= 1
    for method in METHODS:
        entry = result[method]
        assert set(entry["road_morf"]) == set(entry["road_lerf"]) == {str(p) for p in PERCENTILES}
        values = [*entry["road_morf"].values(), *entry["road_lerf"].values(), entry["top20_drop"]]
        assert ("randomisation_spearman" in entry) == (method != "random")
        values += [entry.get("randomisation_spearman", 0.0)]
        assert all(isinstance(v, float) and math.isfinite(v) and -1 <= v <= 1 for v in values)
    assert json.loads(json.dumps(result)) == result


def test_reproducible(predictor: Predictor, images: list[np.ndarray], result: dict) -> None:
    state = np.random.get_state()
    again = measure_faithfulness(predictor, images[:3], methods=("gradcam",), seed=0)
    assert again == measure_faithfulness(predictor, images[:3], methods=("gradcam",), seed=0)
    assert set(again) >= {"gradcam", "random"}  # the baseline is always measured
    np.testing.assert_array_equal(np.random.get_state()[1], state[1])  # global RNG restored


def test_gradcam_beats_random(result: dict) -> None:
    """Removing what Grad-CAM highlights hurts more than removing random areas; removing what it
    calls irrelevant hurts less than removing what it calls relevant."""
    g, r = result["gradcam"], result["random"]
    assert g["top20_drop"] > r["top20_drop"] + 0.1
    assert g["road_morf"]["20"] > r["road_morf"]["20"]
    for p in ("20", "30"):
        assert g["road_morf"][p] > g["road_lerf"][p] + 0.1


def test_randomisation_changes_heatmaps(result: dict) -> None:
    assert result["gradcam"]["randomisation_spearman"] < 0.9
    assert result["gradcam++"]["randomisation_spearman"] < 0.9


def test_plain_sentence_has_the_numbers(result: dict) -> None:
    text = plain_sentence(result, "gradcam")
    assert f"{abs(result['gradcam']['top20_drop']) * 100:.0f} percentage points" in text
    assert f"against {result['random']['top20_drop'] * 100:.0f} for random areas" in text
    assert "12 slices" in text
    assert "random areas" in plain_sentence(result, "random")


def test_randomised_copy_reinitialises_every_layer(predictor: Predictor) -> None:
    model = predictor.model
    before = {k: v.clone() for k, v in model.state_dict().items()}
    clone = randomised_copy(model, seed=0)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])  # the original is untouched
    for (name, p), q in zip(model.named_parameters(), clone.parameters()):
        assert not torch.equal(p, q), name
    assert not clone.training
    again = randomised_copy(model, seed=0)
    assert all(torch.equal(a, b) for a, b in zip(clone.parameters(), again.parameters()))


def test_ranked_mask_removes_exact_share_despite_ties() -> None:
    """ReLU-ed CAMs are often mostly 0: a `cam < percentile` threshold would remove everything."""
    rng = np.random.default_rng(0)
    heat = np.zeros((20, 10), np.float32)
    heat[:2, :5] = 1.0  # 10 hot pixels, 190 tied at zero
    top = _ranked_mask(heat, 20, True, rng)
    assert top.sum() == 40 and top[:2, :5].all()
    low = _ranked_mask(heat, 50, False, rng)
    assert low.sum() == 100 and not low[:2, :5].any()


def test_rank_correlation_edge_cases() -> None:
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    assert rank_correlation(a, a) == pytest.approx(1.0)
    assert rank_correlation(a, -a) == pytest.approx(-1.0)
    assert rank_correlation(a, np.zeros_like(a)) == 0.0
    assert rank_correlation(np.zeros_like(a), np.zeros_like(a)) == 1.0
