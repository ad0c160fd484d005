"""Canonical framing: the same slice framed another way comes out (nearly) the same; heatmaps map
back onto the input; a slice with no brain is never cropped to noise."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from mrivision.inputs.framing import BRAIN_CENTRE, canonicalize, frame_image, letterbox, unframe
from mrivision.evaluation.robustness import PERTURBATIONS
from synthetic import make_slice

SIZE = (104, 88)


def brain(seed: int = 0, shape: tuple[int, int] = (208, 176)) -> np.ndarray:
    img = make_slice(2, np.random.default_rng(seed), shape=shape)
    return cv2.GaussianBlur(img, (0, 0), 1.0)


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


@pytest.mark.parametrize("name", [p for p in PERTURBATIONS if p != "original"])
def test_reframed_slices_canonicalise_alike(name):
    img = brain()
    reference, _ = canonicalize(img, SIZE)
    shifted, frame = canonicalize(PERTURBATIONS[name](img), SIZE)
    assert frame.brain_found
    assert similarity(reference, shifted) > 0.9, name
    if "background" in name or "margins" in name or "crop" in name:  # framing only: intensities match too
        assert np.abs(reference - shifted).mean() < 0.05, name


def test_letterboxed_slices_depend_on_framing_but_canonical_do_not():
    img = brain()
    wide = PERTURBATIONS["wide margins (40%)"](img)
    assert similarity(letterbox(img, SIZE)[0], letterbox(wide, SIZE)[0]) < 0.7
    assert similarity(canonicalize(img, SIZE)[0], canonicalize(wide, SIZE)[0]) > 0.95


def test_brain_is_placed_where_training_slices_have_it_and_background_is_zero():
    img = np.full((300, 400), 0.1, np.float32)  # dark-gray background, off-centre brain
    img[20:140, 250:350] = brain(shape=(120, 100)) * 0.8 + 0.1 * (brain(shape=(120, 100)) > 0)
    canvas, frame = canonicalize(img, SIZE)
    ys, xs = np.nonzero(canvas > 0.05)
    assert abs((ys.min() + ys.max()) / 2 / SIZE[0] - BRAIN_CENTRE[0]) < 0.05
    assert abs((xs.min() + xs.max()) / 2 / SIZE[1] - BRAIN_CENTRE[1]) < 0.05
    assert canvas[:3].max() == 0 and canvas[:, :3].max() == 0 and frame.background == pytest.approx(0.1, abs=0.01)


def test_unframe_puts_a_canvas_map_back_on_the_input():
    img = np.zeros((150, 200), np.float32)
    img[30:120, 40:120] = brain(shape=(90, 80))
    canvas, frame = canonicalize(img, SIZE)
    back = unframe(canvas, frame)
    assert back.shape == img.shape
    inside = img > 0.2
    assert similarity(back[inside], img[inside]) > 0.8
    assert back[:, 130:].max() == 0 and back[:25].max() == 0  # nothing outside the brain's box


@pytest.mark.parametrize("img", [np.zeros((64, 64)), np.full((64, 64), 0.7), np.random.default_rng(0).random((5, 5)).repeat(13, 0).repeat(13, 1) * 0.01],
                         ids=["black", "flat", "faint"])
def test_no_brain_is_not_cropped_to_noise(img):
    canvas, frame = canonicalize(img.astype(np.float32), SIZE)
    assert not frame.brain_found and canvas.shape == SIZE and np.isfinite(canvas).all()
    assert frame.box == (0, 0, *img.shape)  # the whole image, letterboxed


def test_brain_cut_off_at_the_edge_still_frames_and_nan_is_harmless():
    img = brain()
    cut = img[:, 60:].copy()
    cut[0, 0] = np.nan
    canvas, frame = canonicalize(cut, SIZE)
    assert frame.brain_found and np.isfinite(canvas).all() and canvas.max() <= 1


def test_unknown_framing_is_refused():
    with pytest.raises(ValueError, match="framing"):
        frame_image(brain(), SIZE, "stretch")
