"""Subject-level cross-validation through the real code, the fold ensemble it ships, the ordinal
head, and one implementation of the metrics (validation == report on the same predictions)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from conftest import CANONICAL_SPEC, tiny_config
from mrivision import load_image
from mrivision.training.crossval import check_disjoint, cross_validate, ship_ensemble, subject_folds
from mrivision.inputs.datasets import Sample, load_dataset
from mrivision.evaluation.metrics import evaluate_predictions
from mrivision.model.zoo import create_model
from mrivision.inference.predictor import Predictor
from mrivision.training.loop import val_metrics
from mrivision.model.weights import load_weights
from synthetic import write_tree


def samples_of(n_subjects: int, per: int = 4) -> list[Sample]:
    return [Sample(f"s{i}-{k}", i % 4 if i > 1 else 3, f"subj{i}", f"s{i}-{k}") for i in range(n_subjects)
            for k in range(per)]


@pytest.mark.parametrize("k", [2, 3, 5])
def test_folds_never_split_a_subject_and_cover_everyone(k):
    samples = samples_of(41)
    folds = subject_folds(samples, k, seed=3)
    assert set(folds) == set(range(k))
    for g in {s.group for s in samples}:
        assert len({f for s, f in zip(samples, folds) if s.group == g}) == 1
    for f in range(k):
        check_disjoint(samples, np.flatnonzero(folds != f), np.flatnonzero(folds == f))
    sizes = np.bincount(folds)
    assert sizes.max() - sizes.min() <= 2 * 4  # balanced to within two subjects
    labels = np.array([s.label for s in samples])
    for c in range(4):  # stratified: each class spread over the folds
        per_fold = np.bincount(folds[labels == c], minlength=k)
        assert per_fold.max() - per_fold.min() <= 4 + (4 if c == 3 else 0)


def test_leakage_check_refuses_shared_subjects():
    samples = samples_of(6)
    with pytest.raises(ValueError, match="both sides"):
        check_disjoint(samples, [0, 1, 4], [2, 5])


@pytest.fixture(scope="module")
def cv_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("cv")
    data = write_tree(root / "train", 48, seed=7, scan_names=True)  # `NN (k).png`: 12 scans per class
    test = write_tree(root / "test", 8, seed=8, scan_names=True)
    cfg = tiny_config(data, test, root, spec=CANONICAL_SPEC, epochs=8, folds=3,
                      cache_views=2, augment=True, external_data=None)
    summary = cross_validate(cfg, log=lambda _: None)
    return cfg, summary, root


def test_cv_predicts_every_subject_once_by_a_model_that_never_saw_it(cv_run):
    cfg, summary, root = cv_run
    oof = (root / "runs" / "tiny" / "cv" / "oof.csv").read_text().splitlines()
    assert len(oof) - 1 == summary["n_slices"] == 192
    assert summary["folds"] == 3 and summary["n_subjects"] == 48 and len(summary["per_fold"]) == 3
    assert sum(f["subjects_held_out"] for f in summary["per_fold"]) == 48
    assert summary["slice"]["accuracy"] > 0.5  # the synthetic classes are learnable
    assert summary["binary_auc"]["scan"] is not None and summary["ci"]["scan"]["balanced_accuracy"][0] is not None
    json.dumps(summary, allow_nan=False)


def test_cv_resume_keeps_finished_folds(cv_run):
    cfg, summary, _ = cv_run
    again = cross_validate(cfg, resume=True, log=lambda _: None)
    assert again["slice"] == summary["slice"]


def test_fold_ensemble_ships_as_one_model(cv_run):
    cfg, summary, root = cv_run
    card = ship_ensemble(cfg, summary, log=lambda _: None)
    assert card.spec.ensemble == 3 and card.metrics["cv"]["folds"] == 3 and "test" in card.metrics
    model, card = load_weights(root / "weights" / "tiny.safetensors")
    members = model.body.get_submodule("members").members
    assert len(members) == 3 and len(model.target_layers()) == 3
    x = torch.randn(2, 1, 48, 40)
    with torch.no_grad():
        features = model.frozen_part()(x)
        expected = torch.stack([m(features) for m in members]).mean(0)
        torch.testing.assert_close(model(x), expected)
    predictor = Predictor(model, card)
    img = load_image(load_dataset(cfg.test_data)[0].source)
    heat = predictor.explain(img)
    assert heat.shape == img.shape and heat.max() == pytest.approx(1.0)


def test_ordinal_head_gives_valid_ordered_probabilities():
    torch.manual_seed(0)
    model = create_model("neurostagenet", pretrained=False, input_size=(64, 64), output="ordinal").eval()
    with torch.no_grad():
        logp = model(torch.randn(8, 1, 64, 64))
        link = model.body.head.link
        scores = torch.linspace(-4, 4, 9)[:, None]
        cdf = torch.cumsum(link(scores).exp(), 1)
    p = logp.exp()
    torch.testing.assert_close(p.sum(1), torch.ones(8))
    assert (p >= 0).all()
    assert (cdf[:, :-1].diff(dim=0) <= 1e-6).all()  # a higher severity score never raises P(stage <= k)
    assert (cdf.diff(dim=1) >= -1e-6).all()  # cumulative probabilities are ordered


def test_validation_metrics_are_the_reported_metrics():
    rng = np.random.default_rng(0)
    y = np.repeat(rng.integers(0, 3, 30), 4)  # a validation split without ModerateDemented
    logits = rng.normal(0, 1, (len(y), 4)) + 1.5 * np.eye(4)[y]
    logits[:5, 3] += 5  # the model predicts the absent class on a few slices
    val = val_metrics(y, logits.astype(np.float32), 0.0, ("a", "b", "c", "d"))
    probs = np.exp(logits - logits.max(1, keepdims=True))
    report = evaluate_predictions(y, probs / probs.sum(1, keepdims=True), ("a", "b", "c", "d"), n_boot=0)
    for key in ("accuracy", "balanced_accuracy", "macro_f1"):
        assert val[key] == pytest.approx(report["slice"][key], abs=1e-9), key
    assert val["binary_auc"] == pytest.approx(report["binary_auc"]["slice"])
