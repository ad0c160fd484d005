"""The out-of-distribution detector (mrivision.inference.ood) and its probes (mrivision.evaluation.ood_probes).

Everything is generated here: the detector is fitted on synthetic brain-like slices (`make_slice`
with extra variation) and tested on held-out ones and on every generated non-MRI family.
"""
from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from mrivision.evaluation import ood_probes
from mrivision.inference.ood import (STAT_NAMES, VERSION, WARNING_OOD, fit_ood, is_out_of_distribution, ood_distance,
                           assess, ood_score, ood_warnings, slice_stats)
from mrivision.inference.predictor import Predictor
from mrivision.model.weights import load_weights
from synthetic import make_slice

ROOT = Path(__file__).resolve().parent.parent


def brain_slices(n: int, seed: int) -> list[np.ndarray]:
    """Synthetic slices with more variation than the training fixture: contrast, size, shift."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        h = int(rng.integers(44, 60))
        img = make_slice(int(rng.integers(4)), rng, (h, int(round(h * 40 / 48))))
        out.append(np.clip(img * rng.uniform(0.85, 1.2), 0, 1).astype(np.float32))
    return out


@pytest.fixture(scope="module")
def detector() -> dict:
    return fit_ood(brain_slices(160, seed=10))


@pytest.fixture(scope="module")
def held_out() -> list[np.ndarray]:
    return brain_slices(100, seed=11)


def test_card_entry_is_json(detector):
    text = json.dumps(detector, allow_nan=False)
    again = json.loads(text)
    assert again["version"] == 2 and again["framing"] == "letterbox"  # fitted on letterboxed slices
    assert fit_ood(brain_slices(8, 0), framing="canonical")["version"] == VERSION
    assert again["stat_names"] == list(STAT_NAMES)
    assert len(text) < 100_000
    img = brain_slices(1, seed=3)[0]
    assert ood_distance(img, again) == pytest.approx(ood_distance(img, detector))


def test_few_false_alarms_on_held_out_slices(detector, held_out):
    flagged = np.mean([is_out_of_distribution(im, detector) for im in held_out])
    assert flagged <= 0.10, flagged


@pytest.mark.parametrize("family", list(ood_probes.FAMILIES))
def test_non_mri_families_are_flagged(detector, held_out, family):
    images = ood_probes.generate(family, 25, seed=5, mri_slices=held_out)
    rate = np.mean([is_out_of_distribution(im, detector) for im in images])
    assert rate >= 0.8, (family, rate)


def test_generators_are_gray_unit_range_and_seeded():
    for family in ood_probes.FAMILIES:
        kw = {"mri_slices": brain_slices(3, 0)} if family == "inverted_mri" else {}
        a = ood_probes.generate(family, 3, seed=1, **kw)
        b = ood_probes.generate(family, 3, seed=1, **kw)
        for x, y in zip(a, b):
            assert x.dtype == np.float32 and x.ndim == 2 and min(x.shape) >= 16
            assert 0.0 <= x.min() and x.max() <= 1.0
            np.testing.assert_array_equal(x, y)
    with pytest.raises(ValueError):
        ood_probes.generate("inverted_mri", 2)


@pytest.mark.parametrize("img", [np.zeros((64, 64)), np.ones((64, 64)), np.full((16, 16), 0.5),
                                 np.full((30, 40), np.nan), np.random.default_rng(0).random((3000, 2000)),
                                 np.eye(40)], ids=["black", "white", "gray-16px", "nan", "huge-noise", "diagonal"])
def test_degenerate_inputs_give_finite_stats_and_are_flagged(detector, img):
    stats = slice_stats(img.astype(np.float32), np.asarray(detector["template"]))
    assert stats.shape == (len(STAT_NAMES),) and np.isfinite(stats).all()
    assert ood_score(img, detector) > 1.0


def test_cheap_per_image(detector):
    images = ood_probes.generate("photo", 30, seed=2) + brain_slices(30, seed=4)
    ood_distance(images[0], detector)
    start = time.process_time()  # CPU time: the machine may be busy with other work
    for im in images:
        ood_distance(im, detector)
    ms = (time.process_time() - start) / len(images) * 1000
    assert ms < 10, f"{ms:.1f} ms of CPU per image"


def test_fit_needs_a_few_slices():
    with pytest.raises(ValueError):
        fit_ood(brain_slices(3, 0))
    assert fit_ood(brain_slices(8, 0))["folds"] == 4


def test_cards_from_before_version_2_still_work():
    old = {"stat_names": ["s"] * 9, "mean": [0.5] * 9, "inv_cov": np.eye(9).tolist(), "threshold": 3.0,
           "template": np.zeros((52, 44)).tolist()}
    assert np.isfinite(ood_distance(brain_slices(1, 0)[0], old))
    result = assess(np.zeros((40, 40)), old)
    assert isinstance(result.score, float) and isinstance(ood_warnings(result, np.array([0.9, 0.1])), list)


def flagged(warnings) -> bool:
    return any(w.startswith(WARNING_OOD) for w in warnings)


def test_warnings_text(detector, held_out):
    probs = np.array([0.7, 0.1, 0.1, 0.1])
    typical = next(im for im in held_out if not is_out_of_distribution(im, detector))
    quiet = assess(typical, detector)
    assert not quiet.out_of_distribution and quiet.score <= 1.0 and ood_warnings(quiet, probs) == []
    gradient = ood_probes.generate("linear_gradient", 1, seed=0)[0]
    result = assess(gradient, detector)
    assert result.out_of_distribution and result.score > 1.0 and result.reasons  # says what is unusual
    (text,) = ood_warnings(result, probs)
    assert text.startswith(WARNING_OOD) and result.reasons[0] in text
    assert len(ood_warnings(result, np.full(4, 0.25))) == 2
    assert assess(gradient, None) is None and ood_warnings(None, probs) == []
    blank = assess(np.zeros((40, 40)), detector, brain_found=False)
    assert blank.out_of_distribution and "no brain" in ood_warnings(blank, probs)[0]


def test_predictor_warns_on_gradient_and_text(tiny_model):
    predictor = Predictor.load(tiny_model)
    assert predictor.card.ood["version"] == 2  # fitted on the (letterboxed) synthetic training slices
    for family in ("linear_gradient", "text_on_white", "photo"):
        for img in ood_probes.generate(family, 3, seed=7, shape=(48, 40)):
            p = predictor.predict(img)
            assert flagged(p.warnings) and p.out_of_distribution and p.ood_score > 1, family
    rng = np.random.default_rng(99)
    quiet = [not predictor.predict(make_slice(k % 4, rng)).out_of_distribution for k in range(12)]
    assert np.mean(quiet) >= 0.9


def test_measure_and_write_card(tiny_model, synthetic_data, tmp_path, capsys):
    for f in tiny_model.parent.glob("tiny.*"):
        shutil.copy(f, tmp_path / f.name)
    weights = tmp_path / "tiny.safetensors"
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import measure_ood
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    args = ["--model", str(weights), "--data", str(synthetic_data["test"]), "--n", "6"]
    assert measure_ood.main(args) == 0
    assert "measured" not in json.loads(weights.with_suffix(".json").read_text())["ood"]  # not written
    assert measure_ood.main(args + ["--write-card", "--refit-train", str(synthetic_data["train"])]) == 0
    out = capsys.readouterr().out
    assert "real test slices (false alarms)" in out and "generated: checkerboard" in out
    _, card = load_weights(weights)  # the SHA-256 of the weights still matches
    measured = card.ood["measured"]
    assert measured["n_test"] == 64 and measured["n_per_family"] == 6
    assert set(measured["detection_rate"]) == set(ood_probes.FAMILIES)
    assert measured["false_alarm_rate"] <= 0.1 and min(measured["detection_rate"].values()) >= 0.8
    assert card.ood["fitted_on"] == str(synthetic_data["train"])
    assert measure_ood.main(["--model", str(tmp_path / "missing.safetensors")]) == 2


def _png(img: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", np.clip(img * 255 + 0.5, 0, 255).astype(np.uint8))
    assert ok
    return buf.tobytes()


PREDICT_PAGE = next((p for p in ("app_pages/predict.py", "pages/predict.py") if (ROOT / p).exists()), None)


@pytest.mark.skipif(not (ROOT / "app.py").exists() or PREDICT_PAGE is None, reason="no Predict page yet")
def test_predict_page_shows_the_warning(tiny_model, monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("MRIVISION_WEIGHTS_DIR", str(tiny_model.parent))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=90)
    at.run()
    at.switch_page(PREDICT_PAGE)
    at.run()
    shown = []
    for name, img in (("notes.png", ood_probes.generate("text_on_white", 1, seed=3)[0]),
                      ("slice.png", make_slice(1, np.random.default_rng(8)))):
        at.file_uploader(key="predict_uploads").set_value((name, _png(img), "image/png"))
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        shown.append([w.value.replace("\\", "") for w in at.warning])  # the page escapes markdown
    assert flagged(shown[0])
    assert not flagged(shown[1])
