"""Generated non-MRI images for measuring the out-of-distribution detector.

Every generator returns a float32 gray image in [0, 1], as `load_image` would give (colour
images are made in RGB, then converted to luminance the same way). Families:

* ``photo``: smooth colour blobs with texture and a few edges, like a natural photograph;
* ``text_on_white`` / ``text_on_black``: rendered lines of text;
* ``linear_gradient`` / ``radial_gradient``;
* ``uniform_noise``; ``checkerboard``;
* ``chest_xray``: a bright body frame with two dark lungs, spine and ribs;
* ``knee``: femur and tibia ends with soft tissue around, on a dark background;
* ``inverted_mri``: a real (or synthetic) MRI slice, inverted (needs ``mri_slices``).

Used by `scripts/measure_ood.py` (the card's measured detection rates) and the tests.
"""
from __future__ import annotations

from typing import Callable, Sequence

import cv2
import numpy as np

_LUMA = np.array([0.299, 0.587, 0.114], np.float32)
_WORDS = ("patient", "scan", "report", "brain", "MRI", "axial", "normal", "follow-up", "the", "and",
          "image", "result", "Lorem", "ipsum", "dolor", "sit", "amet", "2024", "mg", "dose", "left")
_SHAPES = ((208, 176), (240, 320), (256, 256), (480, 640), (180, 240), (300, 200))


def _shape(rng: np.random.Generator, shape: tuple[int, int] | None) -> tuple[int, int]:
    return shape if shape is not None else _SHAPES[int(rng.integers(len(_SHAPES)))]


def _gray(rgb: np.ndarray) -> np.ndarray:
    """Luminance of an 8-bit-quantised RGB image, as `load_image` reads a colour picture."""
    q = np.clip(np.round(rgb * 255), 0, 255)
    return (q @ _LUMA / 255).astype(np.float32).clip(0, 1)


def _quantise(img: np.ndarray) -> np.ndarray:
    return (np.clip(np.round(img * 255), 0, 255) / 255).astype(np.float32)


def photo(rng: np.random.Generator, shape: tuple[int, int] | None = None) -> np.ndarray:
    h, w = _shape(rng, shape)
    small = rng.random((int(rng.integers(3, 7)), int(rng.integers(3, 7)), 3)).astype(np.float32)
    rgb = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    for _ in range(int(rng.integers(2, 7))):  # objects: filled ellipses / rectangles of a colour
        colour = tuple(float(c) for c in rng.random(3))
        centre = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        axes = (int(rng.integers(w // 12, w // 3)), int(rng.integers(h // 12, h // 3)))
        if rng.random() < 0.5:
            cv2.ellipse(rgb, centre, axes, float(rng.uniform(0, 180)), 0, 360, colour, -1)
        else:
            cv2.rectangle(rgb, (centre[0] - axes[0], centre[1] - axes[1]), (centre[0] + axes[0], centre[1] + axes[1]),
                          colour, -1)
    rgb = cv2.GaussianBlur(rgb, (0, 0), float(rng.uniform(0.8, 3)))
    texture = cv2.GaussianBlur(rng.normal(0, 1, (h, w)).astype(np.float32), (0, 0), float(rng.uniform(0.5, 1.5)))
    rgb += (texture * rng.uniform(0.02, 0.08))[..., None]
    return _gray(np.clip(rgb, 0, 1))


def _text(rng: np.random.Generator, shape: tuple[int, int] | None, ink: float, paper: float) -> np.ndarray:
    h, w = _shape(rng, shape)
    img = np.full((h, w), round(paper * 255), np.uint8)  # cv2.putText draws on 8-bit images only
    font = int(rng.choice([cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_DUPLEX, cv2.FONT_HERSHEY_COMPLEX,
                           cv2.FONT_HERSHEY_PLAIN, cv2.FONT_HERSHEY_TRIPLEX]))
    scale = float(rng.uniform(0.35, 0.9)) * max(h, w) / 250
    thick = max(1, int(round(scale * rng.uniform(1, 2.5))))
    line = int(28 * scale) + 4
    y = int(rng.integers(line // 2, 2 * line))
    while y < h - 4:
        words = " ".join(rng.choice(_WORDS, int(rng.integers(2, 9))))
        cv2.putText(img, words, (int(rng.integers(0, max(1, w // 8))), y), font, scale, round(ink * 255), thick,
                    cv2.LINE_AA)
        y += int(line * rng.uniform(1.0, 1.6))
    return img.astype(np.float32) / 255


def text_on_white(rng: np.random.Generator, shape: tuple[int, int] | None = None) -> np.ndarray:
    return _text(rng, shape, ink=float(rng.uniform(0, 0.2)), paper=float(rng.uniform(0.85, 1.0)))


def text_on_black(rng: np.random.Generator, shape: tuple[int, int] | None = None) -> np.ndarray:
    return _text(rng, shape, ink=float(rng.uniform(0.7, 1.0)), paper=float(rng.uniform(0, 0.05)))


def linear_gradient(rng: np.random.Generator, shape: tuple[int, int] | None = None) -> np.ndarray:
    h, w = _shape(rng, shape)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    a = rng.uniform(0, 2 * np.pi)
    t = np.cos(a) * xx / w + np.sin(a) * yy / h
    t = (t - t.min()) / max(float(np.ptp(t)), 1e-6)
    lo, hi = sorted(rng.uniform(0, 1, 2))
    return _quantise(lo + (hi - lo + 0.2) * t)


def radial_gradient(rng: np.random.Generator, shape: tuple[int, int] | None = None) -> np.ndarray:
    h, w = _shape(rng, shape)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    cx, cy = w * rng.uniform(0.3, 0.7), h * rng.uniform(0.3, 0.7)
    r = np.sqrt(((xx - cx) / w) ** 2 + ((yy - cy) / h) ** 2) / rng.uniform(0.4, 0.8)
    t = np.clip(1 - r, 0, 1) ** rng.uniform(0.5, 2)
    return _quantise(t if rng.random() < 0.75 else 1 - t)


def uniform_noise(rng: np.random.Generator, shape: tuple[int, int] | None = None) -> np.ndarray:
    h, w = _shape(rng, shape)
    lo = rng.uniform(0, 0.3)
    return _quantise(rng.uniform(lo, lo + rng.uniform(0.4, 1 - lo), (h, w)))


def checkerboard(rng: np.random.Generator, shape: tuple[int, int] | None = None) -> np.ndarray:
    h, w = _shape(rng, shape)
    cell = int(rng.integers(4, max(6, min(h, w) // 3)))
    yy, xx = np.mgrid[0:h, 0:w]
    board = ((yy // cell + xx // cell) % 2).astype(np.float32)
    lo, hi = rng.uniform(0, 0.3), rng.uniform(0.6, 1)
    return _quantise(lo + (hi - lo) * board)


def chest_xray(rng: np.random.Generator, shape: tuple[int, int] | None = None) -> np.ndarray:
    h, w = shape if shape is not None else (int(rng.integers(200, 320)),) * 2
    img = np.full((h, w), rng.uniform(0.05, 0.3), np.float32)
    body = rng.uniform(0.65, 0.9)
    cv2.ellipse(img, (w // 2, int(h * 0.62)), (int(w * rng.uniform(0.42, 0.5)), int(h * 0.6)), 0, 0, 360, body, -1)
    lung = rng.uniform(0.1, 0.3)
    for side in (-1, 1):
        cx = w // 2 + side * int(w * rng.uniform(0.18, 0.24))
        cv2.ellipse(img, (cx, int(h * 0.5)), (int(w * rng.uniform(0.12, 0.17)), int(h * rng.uniform(0.28, 0.36))),
                    side * rng.uniform(0, 8), 0, 360, lung, -1)
    for k in range(8):  # ribs
        y = int(h * (0.25 + 0.07 * k))
        cv2.ellipse(img, (w // 2, y), (int(w * 0.38), int(h * 0.06)), 0, 180, 360, body * 0.8, max(1, h // 90))
    cv2.rectangle(img, (w // 2 - w // 30, 0), (w // 2 + w // 30, h), min(1.0, body + 0.1), -1)  # spine
    img = cv2.GaussianBlur(img, (0, 0), max(1.0, h / 120))
    img += rng.normal(0, 0.02, img.shape).astype(np.float32)
    return _quantise(img)


def knee(rng: np.random.Generator, shape: tuple[int, int] | None = None) -> np.ndarray:
    h, w = _shape(rng, shape)
    img = np.full((h, w), rng.uniform(0, 0.08), np.float32)
    cx = w // 2 + int(rng.integers(-w // 12, w // 12 + 1))
    cv2.rectangle(img, (cx - int(w * 0.3), 0), (cx + int(w * 0.3), h), rng.uniform(0.3, 0.45), -1)  # soft tissue
    bone = rng.uniform(0.75, 0.95)
    gap = int(h * rng.uniform(0.47, 0.53))
    cv2.rectangle(img, (cx - int(w * 0.1), 0), (cx + int(w * 0.1), gap - int(h * 0.1)), bone, -1)  # femur shaft
    for side in (-1, 1):  # condyles
        cv2.ellipse(img, (cx + side * int(w * 0.09), gap - int(h * 0.08)), (int(w * 0.11), int(h * 0.07)), 0, 0, 360,
                    bone, -1)
    cv2.rectangle(img, (cx - int(w * 0.18), gap + int(h * 0.02)), (cx + int(w * 0.18), gap + int(h * 0.08)), bone, -1)
    cv2.rectangle(img, (cx - int(w * 0.09), gap + int(h * 0.08)), (cx + int(w * 0.09), h), bone, -1)  # tibia
    marrow = cv2.GaussianBlur(rng.normal(0, 1, (h, w)).astype(np.float32), (0, 0), 2) * 0.05
    img = cv2.GaussianBlur(img, (0, 0), max(0.8, h / 150)) + marrow * (img > 0.6)
    return _quantise(img)


def inverted_mri(rng: np.random.Generator, mri_slices: Sequence[np.ndarray]) -> np.ndarray:
    img = np.asarray(mri_slices[int(rng.integers(len(mri_slices)))], np.float32)
    return _quantise(1.0 - img)


FAMILIES: dict[str, Callable[..., np.ndarray]] = {
    "photo": photo, "text_on_white": text_on_white, "text_on_black": text_on_black,
    "linear_gradient": linear_gradient, "radial_gradient": radial_gradient, "uniform_noise": uniform_noise,
    "checkerboard": checkerboard, "chest_xray": chest_xray, "knee": knee, "inverted_mri": inverted_mri,
}


def generate(family: str, n: int, seed: int = 0, shape: tuple[int, int] | None = None,
             mri_slices: Sequence[np.ndarray] | None = None) -> list[np.ndarray]:
    """`n` images of one family, reproducible from `seed`. ``inverted_mri`` needs ``mri_slices``;
    ``shape`` (H, W) fixes the size (default: a size drawn per image)."""
    rng = np.random.default_rng([seed, list(FAMILIES).index(family)])
    if family == "inverted_mri":
        if not mri_slices:
            raise ValueError("inverted_mri needs mri_slices to invert")
        return [inverted_mri(rng, mri_slices) for _ in range(n)]
    return [FAMILIES[family](rng, shape) for _ in range(n)]


def generate_all(n: int, seed: int = 0, shape: tuple[int, int] | None = None,
                 mri_slices: Sequence[np.ndarray] | None = None) -> dict[str, list[np.ndarray]]:
    """Every family (``inverted_mri`` only when ``mri_slices`` is given)."""
    return {f: generate(f, n, seed, shape, mri_slices) for f in FAMILIES if f != "inverted_mri" or mri_slices}


def measure(ood: dict, mri_slices: Sequence[np.ndarray], n: int = 50, seed: int = 0,
            shape: tuple[int, int] | None = None, spec=None) -> dict:
    """False-alarm rate of the detector `ood` (a card's ``ood``) on real `mri_slices`, and its
    detection rate on `n` generated images of every family (``inverted_mri`` inverts `mri_slices`).
    With the model's `spec`, images are framed as the model frames them (a version-3 detector judges
    the framed slice; no brain found counts as flagged). Returns the card's ``ood["measured"]``."""
    from mrivision.inference.ood import ood_distance
    from mrivision.inputs.transforms import frame

    def distance(im: np.ndarray) -> float:
        if spec is None or ood.get("version", 1) < 3:
            return ood_distance(im, ood)
        canvas, placed = frame(im, spec)
        return ood_distance(canvas, ood) if placed.brain_found else float("inf")

    threshold = float(ood["threshold"])
    mri = np.array([distance(im) for im in mri_slices])
    detection, closest = {}, {}
    for family, images in generate_all(n, seed, shape, list(mri_slices)).items():
        d = np.array([distance(im) for im in images])
        detection[family] = float(np.mean(d > threshold))
        closest[family] = round(float(d.min() / threshold), 3)
    p99 = round(float(np.quantile(mri, 0.99) / threshold), 3) if len(mri) else None
    return {"false_alarm_rate": float(np.mean(mri > threshold)), "n_test": int(len(mri)),
            "detection_rate": detection, "n_generated": n * len(detection), "n_per_family": n, "seed": seed,
            "min_distance_over_threshold": closest, "test_distance_over_threshold_p99": p99}
