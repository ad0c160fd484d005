"""Framing: where the brain is, and how a slice is placed on the canvas the network sees.

Two framings, named by `ModelSpec.framing`, share one record (`Frame`) and one inverse
(`unframe`), so heatmaps line up pixel for pixel with the image the user gave:

* ``"letterbox"`` (models trained before canonical framing): the whole image, aspect kept,
  padded with black (`transforms.fit_to_size`).
* ``"canonical"``: find the brain (foreground mask), crop to it, scale and centre it where the
  training slices have it, set everything outside it to zero and map intensities robustly
  (background level -> 0, the brain's 99th percentile -> the training slices' typical value).
  A slice framed tighter or looser, on a gray background, brighter or darker, or at another
  resolution comes out (nearly) the same.

NumPy and OpenCV only (no torch): the torch-free inference path uses it.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# Where the 4-class training slices (208 x 176) have the brain, measured with `brain_mask` over
# 300 random training slices (medians; `scripts/measure_framing.py`): the share of the canvas
# height and width the brain's bounding box fills, its centre, and the brain's 99th percentile.
BRAIN_HEIGHT = 0.822
BRAIN_WIDTH = 0.784
BRAIN_CENTRE = (0.500, 0.491)  # (row, column) as fractions of the canvas
BRAIN_P99 = 0.93
MIN_BRAIN_FRACTION = 0.02  # a foreground smaller than this share of the image is "no brain found"
_MASK_SIDE = 256  # the mask is found on a copy at most this large


@dataclass(frozen=True)
class Frame:
    """How a slice of `shape` was mapped onto a `canvas`: the `box` (top, left, height, width) of
    the original was resized into `placed` on the canvas; everything else on the canvas is zero."""

    shape: tuple[int, int]
    canvas: tuple[int, int]
    box: tuple[int, int, int, int]
    placed: tuple[int, int, int, int]
    brain_found: bool = True
    brain_fraction: float | None = None  # share of the original image the brain mask covers (None: not looked for)
    background: float = 0.0  # intensity of the original's background (0 for black)


def letterbox_box(shape: tuple[int, int], size: tuple[int, int]) -> tuple[int, int, int, int]:
    """(top, left, height, width) of an image of `shape` fitted into `size`, aspect kept, centred."""
    h, w = shape
    th, tw = size
    if (h, w) == (th, tw):
        return 0, 0, h, w
    scale = min(th / h, tw / w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    return (th - nh) // 2, (tw - nw) // 2, nh, nw


def letterbox(img: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, Frame]:
    """The whole slice fitted into `size` (aspect kept, black padding) and its `Frame`."""
    h, w = img.shape
    placed = letterbox_box((h, w), size)
    return _paste(img, placed, size), Frame((h, w), tuple(size), (0, 0, h, w), placed)


def _paste(img: np.ndarray, placed: tuple[int, int, int, int], size: tuple[int, int]) -> np.ndarray:
    top, left, nh, nw = placed
    if img.shape == (nh, nw) == tuple(size):
        return np.asarray(img, np.float32)
    interp = cv2.INTER_AREA if nh < img.shape[0] else cv2.INTER_LINEAR
    out = np.zeros(size, np.float32)
    out[top:top + nh, left:left + nw] = cv2.resize(np.asarray(img, np.float32), (nw, nh), interpolation=interp)
    return out


def background_level(img: np.ndarray) -> float:
    """The background intensity: the median of the image's outer frame (2% of each side, >= 2 px)."""
    h, w = img.shape
    b = max(2, round(0.02 * min(h, w)))
    frame = np.concatenate([img[:b].ravel(), img[-b:].ravel(), img[b:-b, :b].ravel(), img[b:-b, -b:].ravel()])
    return float(np.median(frame))


def brain_mask(img: np.ndarray, background: float | None = None) -> np.ndarray:
    """Boolean foreground mask: the largest bright connected piece above the background, holes filled."""
    img = np.nan_to_num(np.asarray(img, np.float32), nan=0.0, posinf=1.0, neginf=0.0)
    bg = background_level(img) if background is None else background
    hi = float(np.percentile(img, 99))
    if hi - bg < 0.02:
        return np.zeros(img.shape, bool)
    smooth = cv2.GaussianBlur(img, (0, 0), max(0.6, min(img.shape) / 200))
    fg = (smooth > bg + 0.12 * (hi - bg)).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(fg, connectivity=8)
    if n < 2:
        return np.zeros(img.shape, bool)
    mask = (labels == 1 + int(stats[1:, cv2.CC_STAT_AREA].argmax())).astype(np.uint8)
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    filled = np.zeros_like(mask)
    cv2.drawContours(filled, contours, -1, 1, thickness=cv2.FILLED)
    return filled.astype(bool)


def brain_region(img: np.ndarray) -> np.ndarray:
    """`brain_mask` of a slice, or the whole slice when no brain is found (heatmaps are kept there)."""
    mask = brain_mask(img)
    return mask if mask.any() else np.ones(np.shape(img), bool)


def canonicalize(img: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, Frame]:
    """The slice in canonical framing on a `size` canvas, and its `Frame`.

    With no brain found (blank, flat or tiny foreground) the slice is letterboxed instead and the
    frame says `brain_found=False` (the OOD check flags it); nothing is cropped to noise.
    """
    img = np.nan_to_num(np.asarray(img, np.float32), nan=0.0, posinf=1.0, neginf=0.0)
    h, w = img.shape
    bg = background_level(img)
    step = max(1, int(np.ceil(max(h, w) / _MASK_SIDE)))
    small = brain_mask(img[::step, ::step], bg)
    fraction = float(small.mean())
    if fraction < MIN_BRAIN_FRACTION:
        out, frame = letterbox(img, size)
        return out, Frame(frame.shape, frame.canvas, frame.box, frame.placed, False, fraction, bg)
    ys, xs = np.nonzero(small)
    top, left = int(ys.min()) * step, int(xs.min()) * step
    bh, bw = min(h, (int(ys.max()) + 1) * step) - top, min(w, (int(xs.max()) + 1) * step) - left
    th, tw = size
    scale = min(BRAIN_HEIGHT * th / bh, BRAIN_WIDTH * tw / bw)
    nh, nw = max(1, min(th, round(bh * scale))), max(1, min(tw, round(bw * scale)))
    ptop = int(np.clip(round(BRAIN_CENTRE[0] * th - nh / 2), 0, th - nh))
    pleft = int(np.clip(round(BRAIN_CENTRE[1] * tw - nw / 2), 0, tw - nw))
    mask = cv2.resize(small.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST) if step > 1 else small
    mask = mask.astype(bool)
    p99 = float(np.percentile(img[mask], 99))
    crop = img[top:top + bh, left:left + bw]
    scaled = np.where(mask[top:top + bh, left:left + bw], (crop - bg) * (BRAIN_P99 / max(p99 - bg, 1e-3)), 0.0)
    placed = (ptop, pleft, nh, nw)
    out = np.clip(_paste(scaled.astype(np.float32), placed, size), 0.0, 1.0)
    return out, Frame((h, w), (th, tw), (top, left, bh, bw), placed, True, fraction, bg)


def frame_image(img: np.ndarray, size: tuple[int, int], framing: str) -> tuple[np.ndarray, Frame]:
    """The slice on the network's canvas in the named framing ("canonical" or "letterbox")."""
    if framing == "canonical":
        return canonicalize(img, size)
    if framing == "letterbox":
        return letterbox(np.asarray(img, np.float32), size)
    raise ValueError(f"unknown framing {framing!r} (canonical or letterbox)")


def unframe(canvas_map: np.ndarray, frame: Frame) -> np.ndarray:
    """A map on the canvas (e.g. a heatmap) back in the original image's coordinates (zero outside
    the framed box)."""
    top, left, nh, nw = frame.placed
    crop = np.nan_to_num(np.asarray(canvas_map, np.float32)[top:top + nh, left:left + nw], nan=0.0)
    btop, bleft, bh, bw = frame.box
    if crop.shape != (bh, bw):
        crop = cv2.resize(crop, (bw, bh), interpolation=cv2.INTER_LINEAR)
    if frame.box == (0, 0, *frame.shape):
        return crop
    out = np.zeros(frame.shape, np.float32)
    out[btop:btop + bh, bleft:bleft + bw] = crop
    return out
