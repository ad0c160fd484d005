"""`Predictor`: a loaded model with its card; predict() and explain() for one slice or many."""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from .fast_inference import LazyFast
from .models import MRINet
from .transforms import batch_tensor
from .weights import list_shipped, load_weights


@dataclass(frozen=True)
class Prediction:
    """The model's answer for one slice."""

    label: str
    probabilities: dict[str, float]
    model: str
    confidence: float
    warnings: tuple[str, ...] = field(default_factory=tuple)


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


class Predictor:
    """Thread-safe inference over one model. CAM calls hold `lock` (hooks on a shared model)."""

    def __init__(self, model: MRINet, card: dict[str, Any] | None = None, fast: bool = True) -> None:
        self.model = model.eval()
        # `logits` runs a faster equivalent of `model` (fast_inference; built on first use);
        # `explain` keeps the eager model (CAM needs hooks and gradients). fast=False: eager only.
        self.fast = fast
        self._fast = LazyFast(self.model)
        self.card = card or {}
        self.spec = model.spec
        self.name = self.card.get("name", self.spec.name)
        self.class_names = tuple(self.spec.class_names)
        self.temperature = float(self.card.get("temperature", 1.0))
        self.tta = bool(self.card.get("preprocessing", {}).get("tta_hflip", False))
        self.lock = threading.Lock()
        self._warming: threading.Thread | None = None

    @classmethod
    def load(cls, name_or_path: str | Path, fast: bool = True) -> "Predictor":
        model, card = load_weights(name_or_path)
        return cls(model, card, fast=fast)

    def logits(self, images: Sequence[np.ndarray], batch_size: int = 32) -> np.ndarray:
        """Raw logits (N, classes); averaged over a horizontal flip when the card asks for TTA."""
        out = []
        # the engine is built outside inference mode; while a background build runs, the eager model answers
        use_fast = self.fast and len(images) and (self._fast.built or self._warming is None)
        model = self._fast.get() if use_fast else self.model
        with torch.inference_mode():
            for i in range(0, len(images), batch_size):
                x = batch_tensor(list(images[i:i + batch_size]), self.spec)
                y = model(x)
                if self.tta:
                    y = (y + model(torch.flip(x, dims=[3]))) / 2
                out.append(y.float().numpy())
        return np.concatenate(out) if out else np.zeros((0, len(self.class_names)), np.float32)

    def warm_up(self, background: bool = False) -> "Predictor":
        """Build the fast engine now (a few seconds, once) so that predictions are quick.

        `background=True` returns at once and builds it in a thread; until it is ready, predictions
        run on the eager model (the same logits within 1e-4, 2-3x slower) and `explain` waits (the
        build copies the model, which must not change under it).
        """
        if not self.fast:
            return self
        if not background:
            self._fast.get()  # waits for a build already running in the background
            self.logits([np.zeros(self.spec.input_size, np.float32)])
        elif self._warming is None:
            self._warming = threading.Thread(target=self._build_engine, name="mrivision-engine-build", daemon=True)
            self._warming.start()
        return self

    def _build_engine(self) -> None:
        try:
            with self.lock:  # no CAM hooks come and go while the model is copied
                self._fast.get()
        except Exception:  # noqa: BLE001  (the next prediction builds it in the foreground and raises there)
            self._warming = None

    def predict_proba(self, images: Sequence[np.ndarray], batch_size: int = 32) -> np.ndarray:
        """Calibrated class probabilities (temperature-scaled softmax)."""
        return softmax(self.logits(images, batch_size) / self.temperature)

    def predict(self, img: np.ndarray) -> Prediction:
        probs = self.predict_proba([img])[0]
        k = int(probs.argmax())
        return Prediction(
            label=self.class_names[k],
            probabilities={c: float(p) for c, p in zip(self.class_names, probs)},
            model=self.name,
            confidence=float(probs[k]),
            warnings=tuple(self.input_warnings(img, probs)),
        )

    def input_warnings(self, img: np.ndarray, probs: np.ndarray) -> list[str]:
        """Plain-language warnings when the input looks unlike the training data."""
        from .ood import ood_warnings

        return ood_warnings(img, probs, self.card.get("ood"))

    def explain(self, img: np.ndarray, method: str = "gradcam", target: int | str | None = None,
                aug_smooth: bool = False) -> np.ndarray:
        """Heatmap in [0,1] at the input's resolution for `target` (default: the predicted class)."""
        from .cam import explain

        if isinstance(target, str):
            target = self.class_names.index(target)
        with self.lock:
            return explain(self.model, img, method=method, target=target, aug_smooth=aug_smooth)


def load_model(name_or_path: str | Path, fast: bool = True) -> Predictor:
    """Load a shipped model by name, or a `.safetensors`/`.json` path.

    `fast=True` runs predictions through an optimised engine built on the first call (a few
    seconds, then 2-3x faster); use `fast=False` for one-off predictions.
    """
    return Predictor.load(name_or_path, fast=fast)


def list_models() -> list[str]:
    """Names of the models shipped in `weights/`."""
    return list_shipped()
