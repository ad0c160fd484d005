"""Training through the real code on synthetic data: learns, resumes exactly, caches frozen features."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import TINY_SPEC, tiny_config
from safetensors.torch import load_file

from mrivision.training.train import TrainConfig, train


def test_tiny_model_learns_and_card_is_complete(tiny_model):
    card = json.loads(tiny_model.with_suffix(".json").read_text())
    test = card["metrics"]["test"]
    assert test["slice"]["accuracy"] > 0.6  # chance is 0.25
    assert test["n_scans"] == 16  # `NN (k).png` names: 4 slices per scan, 4 scans per class
    lo, hi = test["ci"]["scan"]["accuracy"]
    assert lo <= test["scan"]["accuracy"] <= hi
    for key in ("spec", "temperature", "preprocessing", "training", "data", "weights_sha256", "ood", "code_version"):
        assert key in card
    assert card["training"]["history"][0]["images_per_second"] > 0
    assert tiny_model.with_name("tiny.predictions.csv").is_file()


def _weights(path):
    return {k: v.float() for k, v in load_file(str(path)).items()}


def test_resume_gives_the_same_model(tmp_path, synthetic_data):
    straight = tiny_config(synthetic_data["train"], None, tmp_path / "a", epochs=4, limit=80)
    train(straight, log=lambda _: None)
    first = tiny_config(synthetic_data["train"], None, tmp_path / "b", epochs=2, limit=80)
    train(first, log=lambda _: None)
    resumed = tiny_config(synthetic_data["train"], None, tmp_path / "b", epochs=4, limit=80)
    card = train(resumed, resume=True, log=lambda _: None)
    assert card.training.epochs_run == 4
    a, b = _weights(tmp_path / "a/weights/tiny.safetensors"), _weights(tmp_path / "b/weights/tiny.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], msg=k)


def test_resuming_an_early_stopped_run_trains_no_further(tmp_path, synthetic_data):
    cfg = tiny_config(synthetic_data["train"], None, tmp_path, epochs=6, limit=80, lr=0.0, patience=1)
    first = train(cfg, log=lambda _: None)  # lr 0: validation never improves after epoch 1
    assert first.training.epochs_run == 2
    again = train(cfg, resume=True, log=lambda _: None)  # e.g. the process died while writing the card
    assert again.training.epochs_run == 2 and again.training.best_epoch == 1


def test_frozen_prefix_is_cached_and_stays_fixed(tmp_path, synthetic_data):
    from mrivision.model.zoo import create_model

    spec = {**TINY_SPEC, "train_from": "block2"}
    cfg = tiny_config(synthetic_data["train"], None, tmp_path, epochs=2, limit=80, augment=True, cache_views=2, spec=spec)
    card = train(cfg, log=lambda _: None)
    torch.manual_seed(cfg.seed)  # as start_run does: the same initial weights
    init = create_model("altzcnn", **{**spec, "input_size": tuple(spec["input_size"])}).state_dict()
    trained = _weights(tmp_path / "weights/tiny.safetensors")
    frozen = [k for k in trained if k.startswith(("body.block0", "body.block1"))]
    moving = [k for k in trained if k.startswith("body.head") and k.endswith("weight")]
    assert frozen and moving
    for k in frozen:
        torch.testing.assert_close(trained[k], init[k].float(), atol=1e-3, rtol=1e-3)  # fp16 storage
    assert any(not torch.allclose(trained[k], init[k].float(), atol=1e-3) for k in moving)
    assert card.trainable_parameters < card.parameters


def test_uncached_prefix_feeds_the_same_features_as_the_cache(tmp_path):
    from mrivision.model.zoo import create_model
    from mrivision.training.features import FeatureSource

    spec = {**TINY_SPEC, "train_from": "block2", "input_size": (48, 40)}
    model = create_model("altzcnn", **spec).eval()
    from mrivision.inputs.transforms import frame

    canvases = [frame(np.random.default_rng(i).random((52, 44), np.float32), model.spec)[0] for i in range(10)]
    idx, rng = np.arange(10), np.random.default_rng(0)
    cached = FeatureSource(model, canvases, tiny_config(tmp_path, None, tmp_path, cache_views=1))
    live = FeatureSource(model, canvases, tiny_config(tmp_path, None, tmp_path, cache_views=0))
    assert cached.cached is not None and live.cached is None
    features = live.batch(idx, rng, train=True)
    assert features.ndim == 4 and features.shape[:2] == (10, 16)  # block1's output, not the images
    torch.testing.assert_close(cached.batch(idx, rng, train=True), features, atol=2e-2, rtol=1e-2)  # cache stores fp16


def test_random_split_mixes_groups_and_group_split_does_not(synthetic_data):
    from mrivision.inputs.datasets import Sample
    from mrivision.training.splits import split

    samples = [Sample(f"s{i}", i % 2, f"g{i // 5}", f"s{i}") for i in range(100)]
    for random_split, shared in ((True, True), (False, False)):
        cfg = TrainConfig(model="altzcnn", random_split=random_split, val_fraction=0.2)
        tr, va = split(cfg, samples)
        overlap = {samples[i].group for i in tr} & {samples[i].group for i in va}
        assert bool(overlap) is shared


def test_sampler_balances_classes():
    from mrivision.training.sampling import sampler_weights

    labels = np.array([0] * 90 + [1] * 10)
    w = sampler_weights(labels, "inverse", 2)
    assert w[labels == 0].sum() == pytest.approx(0.5)
    w = sampler_weights(labels, "none", 2)
    assert w[labels == 0].sum() == pytest.approx(0.9)


def test_unknown_config_key_is_rejected(tmp_path):
    (tmp_path / "c.yaml").write_text("model: altzcnn\nepochz: 3\n")
    with pytest.raises(ValueError, match="epochz"):
        TrainConfig.from_yaml(tmp_path / "c.yaml")
