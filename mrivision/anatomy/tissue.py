"""Tissue segmentation of one slice: CSF / grey / white matter inside the brain, and the ventricles.

The slice is put in canonical framing (`mrivision.inputs.framing`) on the training canvas, so every
slice is segmented at the same scale. Inside the brain mask, a 3-component scikit-learn
`GaussianMixture` on intensity (components sorted by mean: CSF < grey < white; started from 1-D
k-means, fitted on a fixed subsample) gives each pixel's tissue posteriors; a few passes
of spatial regularisation multiply them by the Gaussian-smoothed posteriors of the neighbourhood (a
mean-field step of a Potts-like prior) before each pixel takes its most likely tissue. The mask
keeps its edge: where widened sulci open onto the surface the edge reads dark and counts as CSF
(an eroded mask lost impaired-vs-NonDemented AUC on train/ subjects: `scripts/measure_atrophy_auc.py`).

Ventricles are the central CSF compartment: CSF connected components that do not reach the rim of
the brain (sulcal CSF opens onto the surface) and whose centre lies in the central ellipse of the
brain's bounding box.
"""
from __future__ import annotations

import hashlib
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from threading import Lock

import cv2
import numpy as np
from mrivision.inputs.framing import Frame, brain_mask, canonicalize

CANVAS = (208, 176)  # the training slices' size: every slice is segmented on this canvas
BACKGROUND, CSF, GREY, WHITE, VENTRICLE = 0, 1, 2, 3, 4  # label values; VENTRICLE pixels are CSF too
LABEL_NAMES = {CSF: "CSF", GREY: "grey matter", WHITE: "white matter", VENTRICLE: "ventricles"}
# Okabe-Ito colours (colour-blind safe) drawn over the slice by `overlay`, and their names for legends
LABEL_COLOURS = {CSF: (230, 159, 0), GREY: (0, 158, 115), WHITE: (86, 180, 233), VENTRICLE: (213, 94, 0)}
COLOUR_NAMES = {CSF: "orange", GREY: "green", WHITE: "light blue", VENTRICLE: "red"}
OVERLAY_ALPHA = 0.45
FIT_PIXELS = 2000  # the mixture is fitted on at most this many brain pixels (a fixed subsample)
SMOOTH_PASSES = 3
SMOOTH_SIGMA = 1.0  # px on the canvas
RIM_PX = 5  # CSF components reaching within this many px of the brain's edge are sulcal, not ventricular
CENTRAL_RADIUS = 0.7  # ventricle centres lie in this share of the brain box's half-axes around its centre
MIN_VENTRICLE_PX = 8
MIN_BRAIN_PX = 500
INIT = "kmeans"  # 1-D k-means start: a small CSF share is not swallowed by grey matter

NO_BRAIN = ("No brain was found in this image (it is blank, flat or mostly background), "
            "so tissue cannot be measured.")


@dataclass(frozen=True)
class Tissue:
    """A slice's segmentation on the canonical canvas: the framed slice, how it was framed, the
    brain mask and the label map (`BACKGROUND`, `CSF`, `GREY`, `WHITE`, `VENTRICLE`)."""

    canvas: np.ndarray
    frame: Frame
    brain: np.ndarray
    labels: np.ndarray


_CACHE: OrderedDict[bytes, Tissue] = OrderedDict()  # recent slices by content: a scan's slices are measured
_CACHE_LOCK = Lock()                                # for the fusion model and again for the report's panel
CACHE_SLICES = 32


def segment_slice(img: np.ndarray) -> Tissue:
    """Frame a [0, 1] slice canonically and segment it; ValueError when no brain is found. The same
    pixels give the same (read-only) segmentation, computed once for the last `CACHE_SLICES` slices."""
    arr = np.ascontiguousarray(img)
    h = hashlib.blake2b(repr((arr.shape, arr.dtype.str)).encode(), digest_size=16)
    h.update(arr.tobytes())
    key = h.digest()
    with _CACHE_LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
    tissue = _segment(arr)
    for a in (tissue.canvas, tissue.brain, tissue.labels):
        a.setflags(write=False)
    with _CACHE_LOCK:
        _CACHE[key] = tissue
        while len(_CACHE) > CACHE_SLICES:
            _CACHE.popitem(last=False)
    return tissue



def clear_cache() -> None:
    """Forget the segmentations kept by `segment_slice` (benchmarks time a cold measurement)."""
    with _CACHE_LOCK:
        _CACHE.clear()

def _segment(img: np.ndarray) -> Tissue:
    canvas, placed = canonicalize(img, CANVAS)
    brain = brain_mask(canvas, 0.0) if placed.brain_found else np.zeros(CANVAS, bool)
    if brain.sum() < MIN_BRAIN_PX:
        raise ValueError(NO_BRAIN)
    labels = tissue_labels(canvas, brain)
    labels[ventricles(labels == CSF, brain)] = VENTRICLE
    return Tissue(canvas, placed, brain, labels)


def prepare() -> None:
    """Import scikit-learn's mixture models now (1-2 s, once per process) instead of at the first slice."""
    import sklearn.mixture  # noqa: F401


def tissue_posteriors(canvas: np.ndarray, brain: np.ndarray) -> np.ndarray:
    """(n_brain_pixels, 3) posteriors of CSF, grey, white from the mixture, before smoothing."""
    from sklearn.exceptions import ConvergenceWarning  # scikit-learn loads when a slice is first segmented
    from sklearn.mixture import GaussianMixture

    values = canvas[brain].astype(np.float64)
    rng = np.random.default_rng(0)
    fit = values if len(values) <= FIT_PIXELS else rng.choice(values, FIT_PIXELS, replace=False)
    gmm = GaussianMixture(3, covariance_type="spherical", init_params=INIT, reg_covar=1e-4, max_iter=100, tol=1e-3,
                          random_state=0)
    with warnings.catch_warnings():  # a slow start still gives usable components: no ConvergenceWarning
        warnings.simplefilter("ignore", ConvergenceWarning)
        gmm.fit(fit[:, None])
    order = np.argsort(gmm.means_.ravel())
    return gmm.predict_proba(values[:, None])[:, order]


def tissue_labels(canvas: np.ndarray, brain: np.ndarray) -> np.ndarray:
    """uint8 label map: `CSF`, `GREY`, `WHITE` inside the brain (after spatial regularisation), 0 outside."""
    likelihood = tissue_posteriors(canvas, brain)
    post = np.zeros((*canvas.shape, 3), np.float32)
    post[brain] = likelihood
    weight = cv2.GaussianBlur(brain.astype(np.float32), (0, 0), SMOOTH_SIGMA)
    for _ in range(SMOOTH_PASSES):
        prior = cv2.GaussianBlur(post, (0, 0), SMOOTH_SIGMA) / np.maximum(weight, 1e-6)[..., None]
        field = likelihood * prior[brain]
        post[brain] = field / np.maximum(field.sum(axis=1, keepdims=True), 1e-12)
    labels = np.zeros(canvas.shape, np.uint8)
    labels[brain] = post[brain].argmax(axis=1).astype(np.uint8) + CSF
    return labels


def ventricles(csf: np.ndarray, brain: np.ndarray) -> np.ndarray:
    """The central CSF compartment: CSF components off the brain's rim whose centre is central."""
    inner = cv2.erode(brain.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * RIM_PX + 1,) * 2))
    n, comp, stats, centroids = cv2.connectedComponentsWithStats(csf.astype(np.uint8), connectivity=4)
    ys, xs = np.nonzero(brain)
    cy, cx = (ys.min() + ys.max()) / 2, (xs.min() + xs.max()) / 2
    ry, rx = max(1.0, (ys.max() - ys.min()) / 2), max(1.0, (xs.max() - xs.min()) / 2)
    on_rim = np.unique(comp[csf & (inner == 0)])
    keep = np.zeros(n, bool)
    for k in range(1, n):
        x, y = centroids[k]
        central = ((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2 <= CENTRAL_RADIUS ** 2
        keep[k] = central and k not in on_rim and stats[k, cv2.CC_STAT_AREA] >= MIN_VENTRICLE_PX
    return keep[comp] & csf


def overlay(canvas: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The slice in gray with each tissue label tinted in its `LABEL_COLOURS` (float RGB in [0, 1])."""
    gray = np.repeat(np.clip(canvas, 0, 1)[..., None], 3, axis=2).astype(np.float32)
    colour = np.zeros_like(gray)
    for label, rgb in LABEL_COLOURS.items():
        colour[labels == label] = np.asarray(rgb, np.float32) / 255
    return np.where((labels > 0)[..., None], (1 - OVERLAY_ALPHA) * gray + OVERLAY_ALPHA * colour, gray)


def legend() -> str:
    """"CSF orange, grey matter green, ..." for a caption."""
    return ", ".join(f"{LABEL_NAMES[k]} {COLOUR_NAMES[k]}" for k in LABEL_COLOURS)
