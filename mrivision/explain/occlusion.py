"""Occlusion sensitivity: a gradient-free heatmap from the model's own predictions (no torch).

Each patch of a grid over the brain of the framed slice is blurred in turn with the deletion
check's fill (`heatmap.heavy_blur`, not black), and the fall of the network's
calibrated probability of the explained class is measured in one batch through
`Predictor.canvas_logits` (the engine file or model, with TTA). Like the CAMs and the deletion
check it explains the network: a fusion card's atrophy measures are not scored (scoring the fused
probability, atrophy held fixed, gave 1.10 x random on the selection slices against 1.51 x).
A pixel's heat is the mean fall over the patches that cover it (rises count as 0), mapped back
onto the input slice and masked to its brain. 32-px patches, stride 16: ~1.8 s per slice on
2 CPU cores with the default model's engine file (24-px patches: ~3 s).
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

PATCH = 32  # canvas pixels (neurostagenet's canvas: 208 x 176)
STRIDE = 16
MIN_BRAIN = 0.25  # a patch is occluded when at least this share of it is brain


def _starts(size: int, patch: int, stride: int) -> list[int]:
    """Patch origins along one axis, the last one flush with the edge."""
    starts = list(range(0, max(size - patch, 0) + 1, stride))
    return starts if starts[-1] + patch >= size else [*starts, size - patch]


def occlusion(predictor: Predictor, img: np.ndarray, target: int | None = None, patch: int = PATCH,
              stride: int = STRIDE) -> np.ndarray:
    """Heatmap (float32, [0,1], shape of `img`, zero outside the brain) of class `target` (None: predicted)."""
    img = np.asarray(img, np.float32)
    if img.ndim != 2:
        raise ValueError(f"expected a 2-D gray slice, got shape {img.shape}")
    if target is not None and not 0 <= int(target) < len(predictor.class_names):
        raise ValueError(f"target class {target} is out of range for {len(predictor.class_names)} classes")
    canvas, placed = frame(img, predictor.spec)
    brain, fill = brain_region(canvas), heavy_blur(canvas)
    boxes = [(slice(y, y + patch), slice(x, x + patch)) for y in _starts(canvas.shape[0], patch, stride)
             for x in _starts(canvas.shape[1], patch, stride) if brain[y:y + patch, x:x + patch].mean() >= MIN_BRAIN]
    occluded = []
    for box in boxes:
        c = canvas.copy()
        c[box] = fill[box]
        occluded.append(c)
    probs = softmax(predictor.canvas_logits([canvas, *occluded]), predictor.temperature)
    k = int(probs[0].argmax()) if target is None else int(target)
    drops = np.clip(probs[0, k] - probs[1:, k], 0.0, None)
    heat, count = np.zeros(canvas.shape, np.float32), np.zeros(canvas.shape, np.float32)
    for box, drop in zip(boxes, drops):
        heat[box] += drop
        count[box] += 1
    return mask_to_brain(to_input(heat / np.maximum(count, 1), placed), img)
