"""`mrivision bench`: runs end to end on the tiny model and reports well-formed numbers (no timing asserts)."""
from __future__ import annotations

import contextlib
import io
import json

import pytest

from mrivision.bench import cli as bench_cli
from mrivision.bench import latency as bench
from mrivision.cli import main
from mrivision.inference.predictor import load_model

KEYS = ["predict_ms_p50", "predict_ms_p95", "naive_ms_p50", "forward_ms_p50", "speedup", "predict_speedup", "predict_cam_ms_p50", "throughput_b32",
        "peak_rss_mb", "load_s", "parameters", "threads"]


def check_numbers(r: dict) -> None:
    for k in KEYS:
        assert isinstance(r[k], (int, float)) and r[k] > 0, (k, r.get(k), r.get("cam_error"))
    assert isinstance(r["cpu"], str) and r["cpu"]


@pytest.fixture(scope="module")
def bench_json(tiny_model):
    """(exit code, stdout) of one real `bench --json` run (a worker subprocess) on the tiny model."""
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = main(["bench", "--models", str(tiny_model), "--runs", "3", "--json"])
    return rc, buf.getvalue()


def test_bench_json(bench_json):
    rc, out = bench_json
    assert rc == 0
    data = json.loads(out)
    (r,) = data["models"]
    assert r["name"] == "tiny" and r["status"] == bench.TRAINED and "error" not in r
    check_numbers(r)
    assert r["runs"] == 3 and r["load_method"] == "load_model in a fresh process"
    assert r["fast_backend"] != "eager" and r["fast_max_abs_diff"] <= 1e-4


def test_bench_table(bench_json, tiny_model, monkeypatch, capsys):
    (r,) = json.loads(bench_json[1])["models"]
    monkeypatch.setattr(bench_cli, "bench_in_subprocess", lambda source, runs, untrained: r)  # no second slow run
    assert main(["bench", "--models", str(tiny_model), "--runs", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:2] == ["model", "weights"] and "p50 ms" in lines[0] and "speedup" in lines[0]
    assert lines[2].startswith("tiny")


def test_no_shipped_models_exits_zero(monkeypatch, capsys):
    monkeypatch.setattr("mrivision.model.card.list_shipped", lambda *a, **k: [])
    assert main(["bench"]) == 0
    assert "no shipped models" in capsys.readouterr().out
    assert main(["bench", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["models"] == []


def test_unknown_model_is_an_error(capsys):
    assert main(["bench", "--models", "no_such_model_xyz", "--runs", "3"]) == 2
    assert "not found" in capsys.readouterr().err


def test_spec_name_benches_untrained_architecture(monkeypatch):
    monkeypatch.setattr("mrivision.model.card.list_shipped", lambda *a, **k: [])
    assert bench_cli.classify("altzcnn") == bench.UNTRAINED
    seen = {}

    def fake_bench_model(predictor, runs, **kw):  # the measurements themselves are tested on the tiny model
        seen.update(spec=predictor.spec.name, runs=runs, **kw)
        return {"name": predictor.name}

    monkeypatch.setattr(bench_cli, "bench_model", fake_bench_model)
    r = bench_cli._worker("altzcnn", 2, untrained=True)
    assert r["status"] == "untrained (architecture only)" and r["name"] == "altzcnn"
    assert seen["spec"] == "altzcnn" and seen["runs"] == 2 and seen["load_s"] > 0


def test_bench_model_in_process(tiny_model):
    r = bench.bench_model(load_model(tiny_model), runs=2)
    check_numbers(r)
    assert r["load_method"].startswith("in-process")


def test_brain_slice_is_plausible():
    img = bench.brain_slice((208, 176), seed=3)
    assert img.shape == (208, 176) and img.dtype.name == "float32"
    assert 0.0 <= img.min() and img.max() <= 1.0
    assert img[0, 0] == 0.0 and img[104, 30] > 0.3  # black background, tissue inside


def test_robustness_scores_through_the_evaluation_protocol(tiny_model):
    import numpy as np
    from synthetic import make_slice

    from mrivision.evaluation.robustness import robustness

    rng = np.random.default_rng(5)
    labels = [0, 1, 2, 3] * 3
    images = [make_slice(y, rng) for y in labels]
    predictor = load_model(tiny_model)
    r = robustness(predictor, images, labels, probes_per_family=2)
    by_hand = np.mean(predictor.predict_proba(images).argmax(1) == np.array(labels))
    assert r["n"] == 12 and abs(r["perturbations"]["original"]["accuracy"] - by_hand) < 1e-9
    assert all(0.0 <= row["accuracy"] <= 1.0 for row in r["perturbations"].values())
