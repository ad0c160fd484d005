"""The fusion model (`inference.fusion`): the card's coefficients applied exactly, through the
Predictor, from a JSON-only card that reuses another model's weights."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from synthetic import make_slice

from mrivision.inference.fusion import Fusion
from mrivision.inference.predictor import Predictor
from mrivision.model.card import list_shipped, resolve

CLASSES = ("NonDemented", "VeryMildDemented", "MildDemented", "ModerateDemented")

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def cnn_only(coef_scale: float = 1.0) -> Fusion:
    features = tuple(f"log_p:{c}" for c in CLASSES)
    coef = tuple(tuple(coef_scale * (1.0 if i == j else -0.25) for j in range(4)) for i in range(4))
    return Fusion(features, (0.0, -1.0, -2.0, -3.0), (1.0, 2.0, 1.0, 0.5), coef, (0.1, 0.0, -0.1, -2.0))


def test_coefficients_applied_exactly() -> None:
    fusion = Fusion(("log_p:NonDemented", "csf_fraction"), (-1.0, 0.2), (0.5, 0.1),
                    ((1.0, -2.0), (0.0, 1.0), (0.5, 0.5), (0.0, 0.0)), (0.0, 0.5, -1.0, 0.0))
    probs = np.array([[0.5, 0.3, 0.15, 0.05], [0.1, 0.2, 0.3, 0.4]])
    x = fusion.feature_matrix(probs, CLASSES, [{"csf_fraction": 0.3}, {"csf_fraction": 0.1}])
    np.testing.assert_allclose(x, [[np.log(0.5), 0.3], [np.log(0.1), 0.1]])
    # by hand: z = (x - mean) / scale; logits = z @ coef.T + intercept; softmax
    z = np.array([[(np.log(0.5) + 1) / 0.5, 1.0], [(np.log(0.1) + 1) / 0.5, -1.0]])
    logits = np.stack([z[:, 0] - 2 * z[:, 1], z[:, 1] + 0.5, 0.5 * z[:, 0] + 0.5 * z[:, 1] - 1, np.zeros(2)], axis=1)
    expected = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    np.testing.assert_allclose(fusion.predict_proba(x), expected, rtol=1e-12)
    assert Fusion.from_dict(json.loads(json.dumps(fusion.to_dict()))) == fusion
    assert fusion.measures == ("csf_fraction",)
    with pytest.raises(ValueError, match="atrophy measure"):
        fusion.feature_matrix(probs, CLASSES)
    with pytest.raises(ValueError):
        Fusion(("a",), (0.0,), (0.0,), ((1.0,),), (0.0,))  # zero scale


@pytest.fixture(scope="module")
def shipped(tiny_model: Path, tmp_path_factory) -> Path:
    """A weights folder with the tiny model and `tiny_fusion.json`, a card on tiny's weights."""
    folder = tmp_path_factory.mktemp("fusion_weights")
    for suffix in (".safetensors", ".json"):
        shutil.copy(tiny_model.with_suffix(suffix), folder / f"tiny{suffix}")
    card = json.loads((folder / "tiny.json").read_text())
    card["spec"]["name"] = "tiny_fusion"
    card["fusion"] = cnn_only(0.8).to_dict()
    (folder / "tiny_fusion.json").write_text(json.dumps(card))
    return folder


def test_json_only_card_reuses_the_base_weights(shipped: Path) -> None:
    weights, card = resolve(shipped / "tiny_fusion.json")
    assert weights == shipped / "tiny.safetensors" and card == shipped / "tiny_fusion.json"
    assert list_shipped(shipped) == ["tiny", "tiny_fusion"]


def test_predictor_applies_the_card_fusion(shipped: Path) -> None:
    base = Predictor.load(shipped / "tiny.json", fast=False)
    fused = Predictor.load(shipped / "tiny_fusion.json", fast=False)
    assert fused.name == "tiny_fusion" and base.fusion is None
    rng = np.random.default_rng(0)
    images = [make_slice(k % 4, rng) for k in range(6)]
    cnn = base.predict_proba(images)
    expected = cnn_only(0.8).predict_proba(cnn_only().feature_matrix(cnn, base.class_names))
    np.testing.assert_allclose(fused.predict_proba(images), expected, rtol=1e-9)
    assert not np.allclose(expected, cnn, atol=1e-3)  # the fusion changes something
    p = fused.predict(images[1])
    np.testing.assert_allclose(list(p.probabilities.values()), expected[1], rtol=1e-6)


def test_fusion_with_atrophy_measures(shipped: Path) -> None:
    atrophy = pytest.importorskip("mrivision.anatomy.atrophy")
    base = Predictor.load(shipped / "tiny.json", fast=False)
    fusion = Fusion(("log_p:NonDemented", "ventricle_fraction"), (-1.0, 0.05), (1.0, 0.05),
                    ((1.0, -1.0), (0.0, 0.5), (0.0, 1.0), (0.0, 0.0)), (0.0, 0.0, 0.0, -5.0))
    img = make_slice(2, np.random.default_rng(1))
    measured = atrophy.measure_atrophy(img).as_dict()
    cnn = base.predict_proba([img])
    expected = fusion.predict_proba(fusion.feature_matrix(cnn, base.class_names, [measured]))
    np.testing.assert_allclose(fusion.apply(cnn, base.class_names, [img]), expected, rtol=1e-12)
    blank = np.zeros_like(img)  # no brain: nothing to measure, the CNN's answer stands
    both = fusion.apply(np.concatenate([cnn, cnn]), base.class_names, [img, blank])
    np.testing.assert_allclose(both, np.concatenate([expected, cnn]), rtol=1e-12)
