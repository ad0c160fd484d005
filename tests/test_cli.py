"""The `mrivision` command end to end on the tiny model and synthetic data."""
from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from conftest import TINY_SPEC
from synthetic import make_slice, write_png

from mrivision.cli import main


@pytest.mark.parametrize("command", ["train", "evaluate", "predict", "explain", "bench", "models"])
def test_help(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    assert "usage: mrivision" in capsys.readouterr().out


def test_models_lists_registered_specs(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "neurostagenet" in out and "altzcnn" in out


def test_predict_good_and_bad_files(tiny_model, tmp_path, capsys):
    good = tmp_path / "slice.png"
    write_png(good, make_slice(3, np.random.default_rng(5)))
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    code = main(["predict", str(bad), str(good), "--model", str(tiny_model)])
    captured = capsys.readouterr()
    assert code == 1
    assert "notes.png: error:" in captured.err and "Traceback" not in captured.err
    assert "slice.png:" in captured.out and any(c in captured.out for c in ("MildDemented", "ModerateDemented"))


def test_missing_model_is_one_clear_line(tmp_path, capsys):
    good = tmp_path / "slice.png"
    write_png(good, make_slice(0, np.random.default_rng(5)))
    assert main(["predict", str(good), "--model", "no_such_model"]) == 2
    assert "not found" in capsys.readouterr().err


def test_evaluate_writes_predictions_and_json(tiny_model, synthetic_data, tmp_path, capsys):
    out, js = tmp_path / "pred.csv", tmp_path / "m.json"
    assert main(["evaluate", "--model", str(tiny_model), "--data", str(synthetic_data["test"]), "--out", str(out),
                 "--json", str(js), "--n-boot", "200"]) == 0
    report = capsys.readouterr().out
    assert "scan" in report and "accuracy" in report
    metrics = json.loads(js.read_text())
    card = json.loads(tiny_model.with_suffix(".json").read_text())
    # the card's numbers are reproduced by a fresh evaluation
    assert metrics["slice"]["accuracy"] == pytest.approx(card["metrics"]["test"]["slice"]["accuracy"], abs=0.005)
    assert out.read_text().splitlines()[0].startswith("path,group,true,predicted,p_")


def test_train_from_config(synthetic_data, tmp_path):
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump({"model": "altzcnn", "name": "cli_tiny", "spec": TINY_SPEC, "epochs": 1,
                                   "batch_size": 16, "augment": False}))
    assert main(["train", "--config", str(cfg), "--data", str(synthetic_data["train"]), "--limit", "40",
                 "--test-data", str(synthetic_data["test"]), "--out-dir", str(tmp_path / "w"),
                 "--run-dir", str(tmp_path / "r")]) == 0
    assert (tmp_path / "w" / "cli_tiny.safetensors").is_file()
    assert (tmp_path / "r" / "cli_tiny" / "history.csv").is_file()
