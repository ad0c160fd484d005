"""Engine files (`mrivision export`): torch-free predictions equal to the eager model's, never stale."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from synthetic import make_slice

from mrivision.inference import in_memory as fast_inference
from mrivision.model.card import ModelCard, default_shipped, pick_default, resolve
from mrivision.model.spec import ModelSpec
from mrivision.cli import main
from mrivision.errors import ModelLoadError
from mrivision.inference.engine_file import OnnxEngine, engine_path
from mrivision.inference.predictor import Predictor, load_model
from mrivision.model.weights import load_weights, save_model

ENGINE_BACKEND = "onnxruntime (engine file)"


@pytest.fixture
def model_copy(tiny_model: Path, tmp_path: Path) -> Path:
    """The tiny model's weights and card in a folder of its own, its card asking for flip TTA."""
    for suffix in (".safetensors", ".json"):
        shutil.copy(tiny_model.with_suffix(suffix), tmp_path / f"tiny{suffix}")
    card_path = tmp_path / "tiny.json"
    card = json.loads(card_path.read_text())
    card.setdefault("preprocessing", {})["tta_hflip"] = True
    card_path.write_text(json.dumps(card))
    return tmp_path / "tiny.safetensors"


def images(n: int = 4) -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    return [rng.random((48, 40), dtype=np.float32) for _ in range(n)] + [np.zeros((60, 50), np.float32)]


def test_engine_file_predicts_like_eager_without_importing_torch(model_copy, tmp_path, capsys):
    assert main(["export", str(model_copy)]) == 0
    assert engine_path(model_copy).is_file() and "written" in capsys.readouterr().out
    eager = Predictor(*load_weights(model_copy), fast=False)
    assert eager.tta
    expected = eager.predict_proba(images())
    np.save(tmp_path / "images.npy", np.stack(images()[:-1]))
    code = ("import json, sys, numpy as np; from mrivision import load_model; "
            f"p = load_model({str(model_copy)!r}); probs = p.predict_proba(list(np.load({str(tmp_path / 'images.npy')!r}))"
            " + [np.zeros((60, 50), np.float32)]); "
            "print(json.dumps({'torch': 'torch' in sys.modules, 'backend': p.engine_info()['backend'], "
            "'probs': probs.tolist()}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["backend"] == ENGINE_BACKEND and result["torch"] is False
    np.testing.assert_allclose(np.array(result["probs"]), expected, atol=1e-5)


def test_engine_predictor_explains_with_the_torch_model_loaded_on_demand(model_copy):
    assert main(["export", str(model_copy)]) == 0
    predictor = load_model(model_copy)
    assert predictor.engine_info()["backend"] == ENGINE_BACKEND and not predictor.model_loaded
    img = images(1)[0]
    heat = predictor.explain(img, target=predictor.predict(img).label)
    assert heat.shape == img.shape and np.isfinite(heat).all() and heat.max() > 0
    assert predictor.warm_up() is predictor  # nothing left to build; the engine still serves
    assert predictor.engine_info()["backend"] == ENGINE_BACKEND


def test_occlusion_heatmap_runs_on_the_engine_file_without_importing_torch(model_copy, tmp_path):
    assert main(["export", str(model_copy)]) == 0
    img = make_slice(3, np.random.default_rng(0))
    np.save(tmp_path / "img.npy", img)
    code = ("import json, sys, numpy as np; from mrivision import load_model; "
            f"p = load_model({str(model_copy)!r}); h = p.explain(np.load({str(tmp_path / 'img.npy')!r}), "
            "method='occlusion'); print(json.dumps({'torch': 'torch' in sys.modules, 'shape': list(h.shape), "
            "'max': float(h.max()), 'min': float(h.min())}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result == {"torch": False, "shape": list(img.shape), "max": 1.0, "min": 0.0}


def test_stale_or_damaged_engine_files_are_not_used(model_copy, capsys):
    assert main(["export", str(model_copy)]) == 0
    assert main(["export", str(model_copy)]) == 0
    assert "up to date" in capsys.readouterr().out
    # Retrained in place: new weights, new SHA-256 in the card; the old graph must not answer.
    model, card = load_weights(model_copy)
    list(model.parameters())[-1].data.add_(0.5)  # the classifier's bias
    save_model(model, card, model_copy.parent)
    retrained = load_model(model_copy)
    assert retrained.engine_info()["backend"] != ENGINE_BACKEND
    np.testing.assert_allclose(retrained.predict_proba(images()),
                               Predictor(*load_weights(model_copy), fast=False).predict_proba(images()), atol=1e-5)
    assert main(["export", str(model_copy)]) == 0 and "written" in capsys.readouterr().out
    assert load_model(model_copy).engine_info()["backend"] == ENGINE_BACKEND
    engine_path(model_copy).write_bytes(b"not an onnx graph")
    assert load_model(model_copy).engine_info()["backend"] != ENGINE_BACKEND


def test_export_refuses_a_graph_whose_logits_differ(model_copy, monkeypatch):
    real_run = OnnxEngine.run
    monkeypatch.setattr(OnnxEngine, "run", lambda self, x: real_run(self, x) + 1e-2)
    model, card = load_weights(model_copy)
    with pytest.raises(ValueError, match="differ"):
        fast_inference.export_engine(model, model_copy, card.weights_sha256)
    assert not engine_path(model_copy).exists()


def test_default_model_is_the_flagged_card_else_the_best_on_subject_level_cv():
    def card(cv=None, classes=("NonDemented", "VeryMildDemented", "MildDemented", "ModerateDemented"), test=0.5, **kw):
        metrics = {"test": {"slice": {"macro_f1": test}}}
        if cv is not None:
            metrics["cv"] = {"scan": {"balanced_accuracy_excl_last": cv}}
        return ModelCard(spec=ModelSpec("m", "altzcnn", class_names=classes), metrics=metrics, **kw)

    cards = {"a": card(0.5, test=0.9), "b": card(0.6, test=0.1), "binary": card(0.9, classes=("NonDemented", "Demented"))}
    assert pick_default(cards) == "b"  # never the test split
    assert pick_default({**cards, "a": card(0.5, default=True)}) == "a"
    assert pick_default({"x": card(), "y": card()}) == "x" and pick_default({}) is None
    shipped = default_shipped()
    if shipped is not None:  # "default" names it wherever a model is loaded by name (CLI, scripts)
        assert resolve("default") == resolve(shipped)


def edit_card(weights: Path, **changes) -> None:
    path = weights.with_suffix(".json")
    card = json.loads(path.read_text())
    for key, value in changes.items():
        if key.startswith("spec_"):
            card["spec"][key[5:]] = value
        else:
            card[key] = value
    path.write_text(json.dumps(card))


def test_engine_file_is_not_used_once_the_card_spec_no_longer_fits_it(model_copy):
    assert main(["export", str(model_copy)]) == 0
    edit_card(model_copy, spec_input_size=[40, 32])
    predictor = load_model(model_copy)
    assert predictor.engine_info()["backend"] != ENGINE_BACKEND
    assert predictor.predict_proba(images()).shape == (5, 4)


@pytest.mark.parametrize("changes", [{"spec": None}, {"spec": [1, 2]}, {"preprocessing": []},
                                     {"temperature": "warm"}, {"spec_class_names": ["a", "b"]}])
def test_unusable_cards_give_a_model_load_error(model_copy, changes):
    assert main(["export", str(model_copy)]) == 0
    edit_card(model_copy, **changes)
    with pytest.raises(ModelLoadError):
        load_model(model_copy)


def test_engine_files_go_to_the_cache_folder_when_the_weights_folder_is_read_only(model_copy, tmp_path, monkeypatch):
    import os

    from mrivision.inference import engine_file

    real_access = os.access
    monkeypatch.setattr(engine_file.os, "access", lambda p, mode: Path(p) != model_copy.parent and real_access(p, mode))
    monkeypatch.setenv(engine_file.CACHE_ENV, str(tmp_path / "cache"))
    assert main(["export", str(model_copy)]) == 0
    cached = engine_path(model_copy)
    assert cached.is_file() and cached.parent.parent == tmp_path / "cache" and not model_copy.with_suffix(".onnx").exists()
    assert load_model(model_copy).engine_info()["backend"] == ENGINE_BACKEND


def test_the_app_start_exports_missing_engine_files_in_a_child_process(model_copy, monkeypatch):
    from mrivision.inference import export

    monkeypatch.setattr(export, "_STARTED", {})
    assert export.missing_engine_files(model_copy.parent) == ["tiny"]
    child = export.start_background_export(model_copy.parent)
    assert child is not None and export.start_background_export(model_copy.parent) is None  # once per folder
    assert child.wait(timeout=180) == 0
    assert export.missing_engine_files(model_copy.parent) == []
    assert load_model(model_copy).engine_info()["backend"] == ENGINE_BACKEND
    monkeypatch.setenv("MRIVISION_WEIGHTS_DIR", str(model_copy.parent))
    assert export.export_shipped_in_background() is None  # the app exports only the shipped folder by itself
