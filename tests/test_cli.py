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


def test_models_marks_the_default(tiny_model, monkeypatch, capsys):
    monkeypatch.setenv("MRIVISION_WEIGHTS_DIR", str(tiny_model.parent))
    assert main(["models"]) == 0
    assert "  * tiny" in capsys.readouterr().out.splitlines()


@pytest.mark.parametrize("command", ["predict", "report", "explain"])
def test_model_option_is_explained(command, capsys):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    assert "mrivision models" in " ".join(capsys.readouterr().out.split())


def test_a_missing_file_is_named_with_its_path(tiny_model, capsys):
    assert main(["predict", "nonexistent.png", "--model", str(tiny_model)]) == 1
    assert "MRI Vision could not find the file 'nonexistent.png'." in capsys.readouterr().err


def test_report_of_a_volume_names_slice_time_model_and_label(tiny_model, tmp_path, capsys):
    import datetime as dt

    from test_scan import nifti_bytes, pdf_text, scan_with_off_level

    from mrivision import load_model, load_volume
    from mrivision.report import report_slice

    vol, _ = scan_with_off_level(1, seed=8)
    path = tmp_path / "scan.nii.gz"
    path.write_bytes(nifti_bytes(vol, gz=True))
    out = tmp_path / "case.pdf"
    before = dt.datetime.now().replace(microsecond=0)
    assert main(["report", str(path), "--out", str(out), "--model", str(tiny_model), "--label", "Case 7 / ward B"]) == 0
    shown = report_slice(load_model(tiny_model).predict_scan(load_volume(path)))  # what the app shows too
    assert f"(it shows slice {shown})" in capsys.readouterr().out
    text = pdf_text(out.read_bytes())
    assert "Case: Case 7 / ward B" in text and f"Shows slice {shown} of 12" in text and "Model tiny" in text
    created = dt.datetime.strptime(text.split("Created ")[1][:19], "%Y-%m-%d %H:%M:%S")
    assert before <= created <= dt.datetime.now()


def test_report_scores_with_the_engine_file_and_never_loads_torch(tiny_model, tmp_path):
    """The quick path of `mrivision report VOLUME`: engine file, no Grad-CAM unless --heatmap, so no torch."""
    import shutil
    import subprocess
    import sys

    from test_scan import nifti_bytes, scan_with_off_level

    for suffix in (".safetensors", ".json"):
        shutil.copy(tiny_model.with_suffix(suffix), tmp_path / f"tiny{suffix}")
    assert main(["export", str(tmp_path / "tiny.safetensors")]) == 0
    volume = tmp_path / "scan.nii.gz"
    volume.write_bytes(nifti_bytes(scan_with_off_level(2, seed=3)[0], gz=True))
    probe = ("import sys; from mrivision.cli import main; code = main(sys.argv[1:]); "
             "print('torch' in sys.modules); sys.exit(code)")
    done = subprocess.run([sys.executable, "-c", probe, "report", str(volume), "--out", str(tmp_path / "c.pdf"),
                           "--model", str(tmp_path / "tiny.safetensors")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "False"
