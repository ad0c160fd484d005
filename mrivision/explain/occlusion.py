"""Occlusion sensitivity: gradient-free heatmaps from the model's own predictions (no torch).

Patches of a grid over the brain of the framed slice are blurred with the deletion check's fill
(`heatmap.heavy_blur`, not black) and the fall of the network's calibrated probability of the
explained class is measured in batches through `Predictor.canvas_logits` (the engine file or model,
with TTA). Like the CAMs and the deletion check they explain the network: a fusion card's atrophy
measures are not scored (scoring the fused probability, atrophy held fixed, gave 1.10 x random on
the selection slices against 1.51 x).

* `occlusion`: each patch alone; a pixel's heat is the mean fall over the patches that cover it
  (rises count as 0). 32-px patches, stride 16: ~1.8 s per slice on 2 CPU cores with the default
  model's engine file.
* `iterative_occlusion`: patches are blurred one after another, each time the one (of the
  `candidates` that fell most when last tried) whose blurring, on top of those already blurred,
  lowers the probability most, until `budget` of the brain is blurred (none when no patch alone
  lowers it: a slice without evidence for the class, a blank one, stays cold). The hottest pixels are
  those blurred first; the rest keep their single-patch heat below them. This is a greedy search
  for the region whose removal the model misses most (the deletion check's question), so its
  deletion score is partly by construction: it says where the evidence is, not how the network
  computes it. 16-px patches until 22% of the brain is blurred: ~3.3 s per slice.

Each map is mapped back onto the input slice and masked to its brain.
"""
from __future__ import annotations

from typing import Protocol, Sequence

import numpy as np

from mrivision.explain.heatmap import heavy_blur, mask_to_brain, to_input
from mrivision.inputs.framing import brain_region
from mrivision.inputs.transforms import frame
from mrivision.model.outputs import softmax
from mrivision.model.spec import ModelSpec


class Predictor(Protocol):
    """What occlusion needs of `mrivision.inference.predictor.Predictor`."""

    spec: ModelSpec
    class_names: tuple[str, ...]
    temperature: float

    def canvas_logits(self, canvases: Sequence[np.ndarray], batch_size: int = 32) -> np.ndarray: ...

METHODS = ("occlusion", "iterative_occlusion")
PATCH = 32  # canvas pixels (neurostagenet's canvas: 208 x 176)
STRIDE = 16
MIN_BRAIN = 0.25  # a patch is occluded when at least this share of it is brain
ITERATIVE_PATCH = 16  # iterative occlusion: non-overlapping 16-px patches
BUDGET = 0.22  # ... blurred until this share of the brain is (the deletion check takes the hottest 20%)
CANDIDATES = 4  # ... trying this many patches at each step (12: 1.85 x vs 1.81 x random on the
#   selection slices of `scripts/select_cam.py`, 6.1 s vs 3.3 s per slice)


Box = tuple[slice, slice]


def _starts(size: int, patch: int, stride: int) -> list[int]:
    """Patch origins along one axis, the last one flush with the edge."""
    starts = list(range(0, max(size - patch, 0) + 1, stride))
    return starts if starts[-1] + patch >= size else [*starts, size - patch]


def _check(predictor: Predictor, img: np.ndarray, target: int | None) -> np.ndarray:
    img = np.asarray(img, np.float32)
    if img.ndim != 2:
        raise ValueError(f"expected a 2-D gray slice, got shape {img.shape}")
    if target is not None and not 0 <= int(target) < len(predictor.class_names):
        raise ValueError(f"target class {target} is out of range for {len(predictor.class_names)} classes")
    return img


def _boxes(brain: np.ndarray, patch: int, stride: int) -> list[Box]:
    """The grid's patches that are at least `MIN_BRAIN` brain."""
    return [(slice(y, y + patch), slice(x, x + patch)) for y in _starts(brain.shape[0], patch, stride)
            for x in _starts(brain.shape[1], patch, stride) if brain[y:y + patch, x:x + patch].mean() >= MIN_BRAIN]


def _probs(predictor: Predictor, canvases: Sequence[np.ndarray]) -> np.ndarray:
    """Calibrated class probabilities of framed canvases."""
    return softmax(predictor.canvas_logits(canvases), predictor.temperature)


def _blurred(base: np.ndarray, fill: np.ndarray, boxes: Sequence[Box]) -> list[np.ndarray]:
    """`base` with each box in turn replaced by the blurred fill."""
    out = []
    for box in boxes:
        c = base.copy()
        c[box] = fill[box]
        out.append(c)
    return out


def _patch_map(shape: tuple[int, int], boxes: Sequence[Box], values: np.ndarray) -> np.ndarray:
    """Each pixel's mean value over the boxes covering it (0 where none does)."""
    heat, count = np.zeros(shape, np.float32), np.zeros(shape, np.float32)
    for box, value in zip(boxes, values):
        heat[box] += value
        count[box] += 1
    return heat / np.maximum(count, 1)


def occlusion(predictor: Predictor, img: np.ndarray, target: int | None = None, patch: int = PATCH,
              stride: int = STRIDE) -> np.ndarray:
    """Heatmap (float32, [0,1], shape of `img`, zero outside the brain) of class `target` (None: predicted)."""
    img = _check(predictor, img, target)
    canvas, placed = frame(img, predictor.spec)
    boxes = _boxes(brain_region(canvas), patch, stride)
    probs = _probs(predictor, [canvas, *_blurred(canvas, heavy_blur(canvas), boxes)])
    k = int(probs[0].argmax()) if target is None else int(target)
    drops = np.clip(probs[0, k] - probs[1:, k], 0.0, None)
    return mask_to_brain(to_input(_patch_map(canvas.shape, boxes, drops), placed), img)


def iterative_occlusion(predictor: Predictor, img: np.ndarray, target: int | None = None,
                        patch: int = ITERATIVE_PATCH, budget: float = BUDGET,
                        candidates: int = CANDIDATES) -> np.ndarray:
    """Heatmap (float32, [0,1], shape of `img`, zero outside the brain) of class `target` (None:
    predicted): the order in which greedy blurring removes the class's evidence, hottest first."""
    img = _check(predictor, img, target)
    canvas, placed = frame(img, predictor.spec)
    brain, fill = brain_region(canvas), heavy_blur(canvas)
    boxes = _boxes(brain, patch, patch)
    probs = _probs(predictor, [canvas, *_blurred(canvas, fill, boxes)])
    k = int(probs[0].argmax()) if target is None else int(target)
    fall = probs[0, k] - probs[1:, k]  # each patch's last measured fall: which ones to try next
    single = _patch_map(canvas.shape, boxes, np.clip(fall, 0.0, None))
    single /= max(float(single.max()), 1e-6)
    current, before = canvas.copy(), float(probs[0, k])
    order, left = np.zeros(canvas.shape, np.float32), set(range(len(boxes)))
    need, steps = budget * brain.sum() if (fall > 0).any() else 0, 0  # no patch alone lowers it: nothing to order
    while left and (order > 0)[brain].sum() < need:
        tried = sorted(left, key=lambda i: -fall[i])[:candidates]
        after = _probs(predictor, _blurred(current, fill, [boxes[i] for i in tried]))[:, k]
        fall[tried] = before - after
        best = tried[int(after.argmin())]
        current[boxes[best]] = fill[boxes[best]]
        order[boxes[best]] = np.where(order[boxes[best]] > 0, order[boxes[best]], len(boxes) - steps)
        before, steps = float(after.min()), steps + 1
        left.discard(best)
    heat = np.where(order > 0, 1.0 + order / len(boxes) + single / (2 * len(boxes)), single)
    return mask_to_brain(to_input(heat.astype(np.float32), placed), img)
