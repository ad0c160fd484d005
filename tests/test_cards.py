"""Model cards: every shipped card is current, round-trips and matches its weights; older layouts
migrate with nothing defaulted elsewhere; a card is written whole or not at all."""
from __future__ import annotations

import copy
import dataclasses
import json
import os
from pathlib import Path

import pytest

from mrivision import ModelCard
from mrivision.constants import CLASS_NAMES, WEIGHTS_DIR
from mrivision.errors import ModelLoadError
from mrivision.model.card import list_shipped, sha256_file
from mrivision.model.card_migrate import CARD_VERSION, card_version

SHIPPED = list_shipped(WEIGHTS_DIR)

SPEC_V1 = {"name": "old", "family": "altzcnn", "arch": "", "head": "linear", "input_size": [48, 40], "mean": 0.5,
           "std": 0.25, "class_names": list(CLASS_NAMES), "init": "scratch", "pretrained_file": "",
           "train_from": "", "target_layer": "block3", "head_dropout": 0.3, "description": "spec text", "extra": {}}
TRAINING = {"config": {"model": "altzcnn", "data": ["a", "b"]}, "epochs_run": 2, "best_epoch": 1, "monitor": "accuracy",
            "best_val": {"epoch": 1}, "history": [{"epoch": 1}, {"epoch": 2}], "seconds": 3, "feature_cache_seconds": 0,
            "hardware": "x86_64", "peak_rss_mb": 100, "split": "pseudo-scan groups from train/", "n_train": 8, "n_val": 2}
V1 = {"description": "an old model", "class_names": list(CLASS_NAMES), "temperature": 1.5,
      "preprocessing": {"input_size": [48, 40], "mean": 0.5, "std": 0.25, "resize": "keep aspect, pad black",
                        "tta_hflip": True},
      "training": TRAINING, "data": {"train": {"count": 8, "names_sha256": "ab"}}, "parameters": 10,
      "trainable_parameters": 5, "code_version": "abc", "ood": {"version": 2, "threshold": 3.0},
      "name": "old_card", "spec": SPEC_V1, "weights_file": "old.safetensors", "weights_sha256": "00",
      "storage_dtype": "float16", "default_reason": "was the default once",
      "metrics": {"test": {"slice": {"accuracy": 0.7}, "scan": {"accuracy": 0.8}}},
      "bench": {"predict_ms_p50": 4.0}}


def _v2() -> dict:
    v2 = copy.deepcopy(V1)
    v2["spec"].update(framing="canonical", output="softmax", ensemble=0)
    v2["preprocessing"]["framing"] = "canonical"
    return v2


@pytest.mark.skipif(not SHIPPED, reason="no shipped models in weights/")
@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_card_is_current_round_trips_and_matches_its_weights(name):
    path = WEIGHTS_DIR / f"{name}.json"
    raw = json.loads(path.read_text())
    assert raw["card_version"] == CARD_VERSION == card_version(raw)
    card = ModelCard.read(path)
    assert card.to_dict() == raw  # already in the current layout: nothing to migrate
    assert ModelCard.from_dict(card.to_dict()) == card
    assert sha256_file(WEIGHTS_DIR / card.weights_file) == card.weights_sha256
    if card.weights_file == f"{name}.safetensors":  # (a JSON-only card may use another model's weights)
        assert card.name == name


def test_a_v1_card_migrates_with_every_field_in_one_place():
    assert card_version(V1) == 1
    card = ModelCard.from_dict(V1)
    assert card.card_version == CARD_VERSION and card.name == "old_card" and card.spec.name == "old_card"
    assert card.spec.framing == "letterbox"  # the first cards' models were trained on letterboxed slices
    assert card.spec.output == "softmax" and card.spec.ensemble == 0
    assert card.class_names == CLASS_NAMES and card.tta_hflip and card.temperature == 1.5
    assert card.default is False and "default_reason" not in card.to_dict() and not card.extra
    d = card.to_dict()
    assert d["preprocessing"] == {"tta_hflip": True}  # input size, normalisation, framing: the spec's alone
    assert "class_names" not in d and "name" not in d and d["spec"]["input_size"] == [48, 40]
    assert d["training"] == TRAINING and d["ood"] == V1["ood"] and d["bench"] == V1["bench"]
    assert ModelCard.from_dict(d) == card
    assert V1["spec"].get("framing") is None and "class_names" in V1  # the input dict is not changed


def test_a_v2_card_keeps_its_framing():
    v2 = _v2()
    assert card_version(v2) == 2
    card = ModelCard.from_dict(v2)
    assert card.spec.framing == "canonical" and card.to_dict()["preprocessing"] == {"tta_hflip": True}
    assert card.preprocessing_summary()["framing"].startswith("canonical")


@pytest.mark.parametrize("change", ["class_names", "version", "no_default", "spec_field", "temperature", "training"])
def test_inconsistent_or_incomplete_cards_are_refused(change):
    d = ModelCard.from_dict(V1).to_dict()
    if change == "class_names":  # an old card whose two copies disagree: no silent choice
        d = {**V1, "class_names": ["NonDemented", "Demented"]}
    elif change == "version":
        d["card_version"] = CARD_VERSION + 1
    elif change == "no_default":  # a current card is complete: nothing is filled in for it
        del d["default"]
    elif change == "spec_field":
        del d["spec"]["framing"]
    elif change == "temperature":
        d["temperature"] = "warm"
    else:
        del d["training"]["split"]
    with pytest.raises(ModelLoadError):
        ModelCard.from_dict(d)


def test_sections_are_read_only_and_accessors_read_them():
    card = ModelCard.from_dict(V1)
    with pytest.raises(TypeError):
        card.metrics["test"] = {}  # type: ignore[index]
    with pytest.raises(TypeError):
        card.training.config["model"] = "x"  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        card.temperature = 2.0  # type: ignore[misc]
    assert card.test_metric("accuracy", "scan") == 0.8 and card.metric("cv", "accuracy") is None
    assert card.bench_value("missing", "predict_ms_p50") == 4.0 and card.selection_score is None
    assert not card.is_lesson
    leaky = card.replace(training=dataclasses.replace(card.training, split="random slices (leaky)"),
                         metrics={"cv": {"scan": {"balanced_accuracy_excl_last": 0.4}, "binary_auc": {"scan": 0.7}}})
    assert leaky.is_lesson and leaky.selection_score == (0.4, 0.7)
    assert leaky.to_dict()["metrics"]["cv"]["binary_auc"] == {"scan": 0.7}


def test_write_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "m.json"
    card = ModelCard.from_dict(V1)
    card.write(path)
    before = path.read_bytes()
    assert ModelCard.read(path) == card

    with pytest.raises(TypeError):  # cannot be serialised: nothing is written
        card.replace(extra={"bad": object()}).write(path)
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["m.json"]

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError):
        card.replace(temperature=3.0).write(path)
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["m.json"]


def test_the_card_train_writes_is_current(tiny_model: Path):
    raw = json.loads(tiny_model.with_suffix(".json").read_text())
    card = ModelCard.read(tiny_model.with_suffix(".json"))
    assert raw["card_version"] == CARD_VERSION and card.to_dict() == raw
    assert card.weights_sha256 == sha256_file(tiny_model) and card.training.history and card.ood
