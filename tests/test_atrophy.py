"""Atrophy measures: a phantom with known compartments, percentiles, the volume path, bad input."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from mrivision import ImageLoadError, Volume, load_volume, measure_atrophy
from mrivision.anatomy.atrophy import MEASURES, percentile, reference, reference_range
from mrivision.anatomy.placement import place
from mrivision.anatomy.template import scan_affine, scan_nifti
from mrivision.anatomy.tissue import CSF, GREY, VENTRICLE, WHITE
from test_scan import pdf_text

SHAPE = (208, 176)


def _ellipse(axes: tuple[int, int]) -> np.ndarray:
    m = np.zeros(SHAPE, np.uint8)
    cv2.ellipse(m, (SHAPE[1] // 2, SHAPE[0] // 2), axes, 0, 0, 360, 1, -1)
    return m.astype(bool)


def phantom(seed: int = 0, ventricle: tuple[int, int] = (10, 22)) -> tuple[np.ndarray, dict[str, float]]:
    """A brain-like slice: white matter inside a grey ribbon, a central ventricle and sulci (CSF
    lines from the surface inwards); and each compartment's true share of the brain."""
    brain, inner, vent = _ellipse((70, 85)), _ellipse((57, 72)), _ellipse(ventricle)
    sulci = np.zeros(SHAPE, np.uint8)
    cy, cx = SHAPE[0] // 2, SHAPE[1] // 2
    for t in np.radians(np.arange(0, 360, 30)):
        cv2.line(sulci, (int(cx + 55 * np.cos(t)), int(cy + 70 * np.sin(t))),
                 (int(cx + 75 * np.cos(t)), int(cy + 92 * np.sin(t))), 1, 3)
    sulci = sulci.astype(bool) & brain
    img = np.where(inner, 0.85, 0.5) * brain
    img[vent | sulci] = 0.12
    img = img + np.random.default_rng(seed).normal(0, 0.02, SHAPE) * brain
    share = {"csf_fraction": vent | sulci, "ventricle_fraction": vent, "grey_fraction": ~inner & ~sulci,
             "white_fraction": inner & ~vent & ~sulci}
    return np.clip(img, 0, 1).astype(np.float32), {k: float((v & brain).sum() / brain.sum()) for k, v in share.items()}


def test_phantom_fractions_are_recovered():
    img, truth = phantom()
    m = measure_atrophy(img)
    for name in MEASURES:
        assert abs(getattr(m, name) - truth[name]) < 0.04, (name, getattr(m, name), truth[name])
    assert abs(m.ventricle_fraction - truth["ventricle_fraction"]) < 0.01  # sulci are not ventricles
    labels = m.segmentation
    assert labels.shape == m.canvas.shape == SHAPE and labels.dtype == np.uint8
    assert set(np.unique(labels)) == {0, CSF, GREY, WHITE, VENTRICLE}
    assert m.csf_fraction + m.grey_fraction + m.white_fraction == pytest.approx(1.0, abs=1e-6)


def test_bigger_ventricles_measure_bigger_and_rank_higher():
    small, large = measure_atrophy(phantom(1)[0]), measure_atrophy(phantom(1, ventricle=(16, 30))[0])
    assert large.ventricle_fraction > small.ventricle_fraction + 0.02
    assert large.percentiles["ventricle_fraction"] >= small.percentiles["ventricle_fraction"]



def test_a_slice_is_segmented_once_and_its_maps_cannot_be_changed():
    from mrivision.anatomy.tissue import clear_cache, segment_slice

    img, _ = phantom(seed=3)
    clear_cache()
    first = segment_slice(img)
    assert segment_slice(img.copy()) is first  # the same pixels: the kept segmentation
    other = img.copy()
    other[100, 80] += 0.05
    assert segment_slice(other) is not first  # one pixel changed: measured afresh
    with pytest.raises(ValueError):
        first.labels[0, 0] = CSF  # read-only: no caller can change what the next one gets
    clear_cache()
    assert segment_slice(img) is not first and np.array_equal(segment_slice(img).labels, first.labels)

def test_percentiles_are_monotone_and_match_the_shipped_reference():
    for name in MEASURES:
        ref = reference()[name]
        assert len(ref) >= 20 and np.all(np.diff(ref) >= 0)
        grid = np.linspace(ref.min() - 0.05, ref.max() + 0.05, 200)
        p = np.array([percentile(v, ref) for v in grid])
        assert np.all(np.diff(p) >= 0) and p[0] == 0.0 and p[-1] == 100.0
        lo, hi = reference_range(name)
        assert 20 < percentile((lo + hi) / 2, ref) < 80
    m = measure_atrophy(phantom()[0])
    assert m.percentiles == {k: percentile(getattr(m, k), reference()[k]) for k in MEASURES}


def test_volume_uses_the_trained_band_and_averages_its_slices():
    affine, shape = scan_affine(spacing=(1.5, 1.5, 4.0))
    volume = load_volume(scan_nifti(affine, shape))
    m = measure_atrophy(volume)
    band = place(volume).in_band()
    assert len(band) and set(m.slices_used) <= set(band.tolist()) and m.n_slices == len(volume)
    assert 0 < m.ventricle_fraction < m.csf_fraction < 0.6
    two = measure_atrophy(volume, slices=m.slices_used[:2])
    each = [measure_atrophy(volume.slices[i]) for i in m.slices_used[:2]]
    for name in MEASURES:
        assert getattr(two, name) == pytest.approx(np.mean([getattr(e, name) for e in each]))


def test_bad_input_gets_plain_errors():
    with pytest.raises(ImageLoadError, match="not an image"):
        measure_atrophy(b"this is not an image")
    with pytest.raises(ValueError, match="No brain was found"):
        measure_atrophy(np.zeros((64, 64), np.float32))
    with pytest.raises(ValueError, match="2-D"):
        measure_atrophy(np.zeros((4, 64, 64), np.float32))
    with pytest.raises(ValueError, match="too small"):
        measure_atrophy(np.ones((8, 8), np.float32))
    with pytest.raises(ValueError, match="No brain was found"):
        measure_atrophy(Volume(np.zeros((3, 64, 64), np.float32), "stack"))


def test_app_shows_tissue_panel_toggle_and_auc_table(tiny_model, monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("MRIVISION_WEIGHTS_DIR", str(tiny_model.parent))
    ok, png = cv2.imencode(".png", np.clip(phantom()[0] * 255 + 0.5, 0, 255).astype(np.uint8))
    at = AppTest.from_file(str(Path(__file__).resolve().parent.parent / "app.py"), default_timeout=60)
    at.run()
    at.file_uploader(key="predict_uploads").set_value(("slice.png", png.tobytes(), "image/png"))
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert "Tissue measures" in [h.value for h in at.subheader]
    assert any("not an age-matched normative group" in c.value for c in at.caption)
    at.toggle(key="atrophy_seg_predict").set_value(True)
    at.run()
    assert any("Segmentation on the framed slice" in c for img in at.image for c in img.captions)
    at.switch_page("app_pages/metrics.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert "Atrophy measures (no model)" in [h.value for h in at.subheader]


def test_report_prints_measures_and_says_what_the_reference_is(tiny_model):
    from mrivision import load_model
    from mrivision.report import case_report

    img = phantom()[0]
    predictor = load_model(str(tiny_model), build=False)
    text = pdf_text(case_report(predictor, predictor.predict(img), img, atrophy=measure_atrophy(img)))
    assert "Tissue measures" in text and "not age-matched" in text and "Ventricles:" in text
    assert "Tissue measures" not in pdf_text(case_report(predictor, predictor.predict(img), img))
