"""Grad-CAM family heatmaps for one slice, at the slice's own resolution (overlays: `explain.heatmap`).

The methods are pytorch-grad-cam's (one module per method there); `METHODS` names them. Our
models see the slice framed on their canvas (`mrivision.inputs.framing`: canonical or letterboxed), so
`explain` maps the heatmap back through the same frame: it lines up pixel for pixel with the slice
passed in (zero outside the brain's box under canonical framing).
"""
from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Iterator

import numpy as np
import torch
from pytorch_grad_cam import (
    EigenCAM,
    GradCAM,
    GradCAMPlusPlus,
    HiResCAM,
    LayerCAM,
    RandomCAM,
    ScoreCAM,
    XGradCAM,
)
from pytorch_grad_cam.activations_and_gradients import ActivationsAndGradients
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

from mrivision.model.zoo import MRINet
from mrivision.explain.heatmap import mask_to_brain, to_input
from mrivision.explain.occlusion import METHODS as OCCLUSION_METHODS  # run by `Predictor.explain`, not here
from mrivision.inputs.transforms import frame, normalise

METHODS: dict[str, type] = {
    "gradcam": GradCAM,
    "gradcam++": GradCAMPlusPlus,
    "hirescam": HiResCAM,
    "xgradcam": XGradCAM,
    "layercam": LayerCAM,
    "eigencam": EigenCAM,
    "scorecam": ScoreCAM,
    "random": RandomCAM,  # baseline: random channel weights on the same activations
}

SCORES = ("logit", "probability")  # what the heatmap explains: the class's logit or its softmax probability


class _Probability:
    """CAM target: the softmax probability of `category` (None: the predicted class). Unlike the
    logit, it does not rise with evidence every class shares, only with what sets the class apart."""

    def __init__(self, category: int | None) -> None:
        self.category = category

    def __call__(self, output: torch.Tensor) -> torch.Tensor:
        k = int(output.argmax(-1)) if self.category is None else self.category
        return torch.softmax(output, dim=-1)[..., k]


class _OwnThreadActivations(ActivationsAndGradients):
    """pytorch-grad-cam's hooks, recording only forward passes run by the thread that made them.

    `Predictor.predict` runs the shared model without the CAM lock; without this filter a
    concurrent prediction would append its activations to the CAM's and corrupt the heatmap.
    """

    def __init__(self, model: torch.nn.Module, target_layers: list[torch.nn.Module]) -> None:
        self.thread = threading.get_ident()
        super().__init__(model, target_layers, reshape_transform=None, detach=True)

    def save_activation(self, module, input, output):  # noqa: A002 (torch hook signature)
        if threading.get_ident() == self.thread:
            super().save_activation(module, input, output)

    def save_gradient(self, module, input, output):  # noqa: A002
        if threading.get_ident() == self.thread:
            super().save_gradient(module, input, output)


@contextmanager
def _gradients_to_input_only(model: torch.nn.Module) -> Iterator[None]:
    """Switch off parameter gradients (restored after) and leave mode as it was.

    Frozen backbones (requires_grad False) would otherwise give target activations without a
    graph and no gradients; with the input requiring grad instead, every model gets gradients
    at the target layer, the backward pass skips weight gradients and leaves no `.grad` behind.
    """
    flags = [(p, p.requires_grad) for p in model.parameters()]
    was_training = model.training
    try:
        for p, _ in flags:
            p.requires_grad_(False)
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
        model.train(was_training)


def explain(model: MRINet, img: np.ndarray, method: str = "gradcam", target: int | None = None,
            aug_smooth: bool = False, batch_size: int = 16, layer: str | None = None,
            brain_only: bool = True, score: str = "logit") -> np.ndarray:
    """Heatmap (float32, [0,1], same shape as `img`) of what drives class `target` (None: predicted),
    at `layer` (a module name; default the spec's `target_layer`), zero outside the brain unless
    `brain_only=False`; `score`: explain the class's "logit" or its softmax "probability".

    `img` is a [0,1] HxW slice of any size. `batch_size`: masked inputs per forward pass for
    ScoreCAM, which runs one per channel of the target layer (16 was as fast as 64 on CPU;
    effnet_probe's 1280 channels take ~25 s there). Not thread-safe against other CAM calls on
    the same model: `Predictor.explain` serialises them with its lock. Concurrent plain forward
    passes (`Predictor.predict`) are fine: the hooks ignore other threads.
    """
    try:
        cam_class = METHODS[method]
    except KeyError:
        raise ValueError(f"unknown heatmap method {method!r}; choose from {', '.join([*METHODS, *OCCLUSION_METHODS])}"
                         ) from None
    img = np.asarray(img, dtype=np.float32)
    if img.ndim != 2:
        raise ValueError(f"expected a 2-D gray slice, got shape {img.shape}")
    n_classes = model.spec.num_classes
    if target is not None and not 0 <= int(target) < n_classes:
        raise ValueError(f"target class {target} is out of range for {n_classes} classes")

    device = next(model.parameters()).device
    canvas, placed = frame(img, model.spec)
    x = torch.from_numpy(normalise([canvas], model.spec)).to(device).requires_grad_(True)
    try:
        layers = model.target_layers(layer)
    except AttributeError:
        raise ValueError(f"{layer!r} is not a layer of {model.spec.name}") from None
    if score not in SCORES:
        raise ValueError(f"unknown CAM score {score!r}; choose from {', '.join(SCORES)}")
    if score == "probability":
        targets = [_Probability(None if target is None else int(target))]
    else:
        targets = None if target is None else [ClassifierOutputTarget(int(target))]
    with _gradients_to_input_only(model):
        cam = cam_class(model=model, target_layers=layers)
        # Swap in thread-filtered hooks. Released in `finally` rather than by `with cam:`, whose
        # __exit__ swallows IndexError (pytorch-grad-cam prints it and returns True).
        cam.activations_and_grads.release()
        cam.activations_and_grads = _OwnThreadActivations(model, layers)
        cam.batch_size = batch_size  # read by ScoreCAM only
        try:
            heat = cam(input_tensor=x, targets=targets, aug_smooth=aug_smooth)[0]
        finally:
            cam.activations_and_grads.release()
            cam.outputs = None  # drop the retained graph now rather than at garbage collection
    heat = to_input(heat, placed)
    return mask_to_brain(heat, img) if brain_only else heat
