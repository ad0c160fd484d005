"""`Predictor`: a loaded model with its card; predict() and explain() for one slice or many.

Predictions run on the fastest path available: the model's engine file (`mrivision export`,
ONNX Runtime without torch; see `onnx_engine`), else an engine built in memory on first use
(`fast_inference`), else the eager PyTorch model. This module imports no torch itself: a
Predictor loaded with an engine file predicts before torch is ever imported, and loads the
PyTorch model only when it is needed (`explain`, `model`) or asked to ahead of time (`warm_up`).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from mrivision.model.card import list_shipped, read_card, resolve, verify_weights
from mrivision.errors import ModelLoadError
from mrivision.inputs.framing import Frame
from mrivision.inference.engine_file import OnnxEngine, load_engine
from mrivision.model.spec import ModelSpec
from mrivision.evaluation.stages import expected_stage
from mrivision.inference.ood import assess, ood_warnings
from mrivision.inputs.transforms import frame, normalise

if TYPE_CHECKING:
    from mrivision.inference.in_memory import LazyFast
    from mrivision.model.zoo import MRINet
    from mrivision.inference.scan import ScanPrediction
    from mrivision.inputs.volume import Volume


@dataclass(frozen=True)
class Prediction:
    """The model's answer for one slice."""

    label: str
    probabilities: dict[str, float]
    model: str
    confidence: float
    warnings: tuple[str, ...] = field(default_factory=tuple)
    out_of_distribution: bool = False  # the input looks unlike the training slices (see `warnings`)
    ood_score: float | None = None  # OOD distance over its threshold (> 1: flagged); None without a detector
    expected_stage: float = 0.0  # sum_k k * P(class k), k = 0 (first class) ... K-1: a severity score
    stage_spread: float = 0.0  # standard deviation of the stage under the probabilities


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


class Predictor:
    """Thread-safe inference over one model. CAM calls hold `lock` (hooks on a shared model).

    Give it the PyTorch `model`, or an `engine` with a `load_torch_model` callable that makes the
    model when it is first needed. `fast=False`: eager PyTorch only; `build=False`: no in-memory
    engine is built (an engine file still serves, else the eager model).
    """

    def __init__(self, model: MRINet | None = None, card: dict[str, Any] | None = None, fast: bool = True, *,
                 build: bool = True, engine: OnnxEngine | None = None,
                 load_torch_model: Callable[[], MRINet] | None = None) -> None:
        if model is None and load_torch_model is None:
            raise ValueError("a Predictor needs a model or a way to load one")
        self.card = card or {}
        self.spec: ModelSpec = model.spec if model is not None else ModelSpec.from_dict(self.card["spec"])
        self.name = self.card.get("name", self.spec.name)
        self.class_names = tuple(self.spec.class_names)
        self.temperature = float(self.card.get("temperature", 1.0))
        self.tta = bool(self.card.get("preprocessing", {}).get("tta_hflip", False))
        self.fast = fast
        self.build = fast and build
        self.engine = engine if fast else None
        self.lock = threading.Lock()
        self._model = model.eval() if model is not None else None
        self._load_torch_model = load_torch_model
        self._model_lock = threading.Lock()
        self._lazy_fast: LazyFast | None = None  # the in-memory engine, when there is no engine file
        self._fast_lock = threading.Lock()
        self._warming: threading.Thread | None = None

    @classmethod
    def load(cls, name_or_path: str | Path, fast: bool = True, build: bool = True) -> "Predictor":
        """A shipped name (or "default"), or a `.safetensors`/`.json` path. With `fast`, the model's
        engine file serves predictions when it matches the card's weights and spec; torch loads later."""
        weights, card_path = resolve(name_or_path)
        card = read_card(card_path)
        try:
            engine = load_engine(weights, card, ModelSpec.from_dict(card["spec"])) if fast else None
            if engine is None:
                from mrivision.model.weights import load_weights

                model, card = load_weights(weights)
                return cls(model, card, fast=fast, build=build)
            verify_weights(weights, card)  # load_engine matched the engine to the card's (non-empty) SHA-256
            return cls(card=card, engine=engine,
                       load_torch_model=lambda: _load_torch_model(weights, card["weights_sha256"]))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ModelLoadError(f"model card {card_path} could not be used: {exc}") from exc

    @property
    def model(self) -> MRINet:
        """The PyTorch model (loaded on first use when the Predictor came with an engine file)."""
        if self._model is None:
            with self._model_lock:
                if self._model is None:
                    self._model = self._load_torch_model().eval()
        return self._model

    @property
    def model_loaded(self) -> bool:
        """Whether the PyTorch model (for `explain`) is in memory already."""
        return self._model is not None

    def engine_info(self) -> dict[str, Any]:
        """What serves predictions ("backend"), its checked logit difference from eager, and notes."""
        if self.engine is not None:
            return {"backend": "onnxruntime (engine file)", "max_abs_diff": self.engine.max_abs_diff, "notes": []}
        lazy = self._lazy_fast
        if self.build and lazy is not None and lazy.built:
            info = lazy.get().info
            return {"backend": info.backend, "max_abs_diff": info.max_abs_diff, "notes": list(info.notes)}
        return {"backend": "eager" if self.build else "eager (fast path off)", "max_abs_diff": 0.0, "notes": []}

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Logits for a preprocessed float32 batch (N, 1, H, W) on the fastest ready path (no TTA)."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        if self.engine is not None:
            return self.engine.run(x)
        import torch

        # while a background build runs, the eager model answers (the engine is built outside inference mode)
        lazy = self._lazy_fast
        use_fast = self.build and len(x) and ((lazy is not None and lazy.built) or self._warming is None)
        model = self._fast().get() if use_fast else self.model
        with torch.inference_mode():
            return model(torch.from_numpy(x)).float().numpy()

    def logits(self, images: Sequence[np.ndarray], batch_size: int = 32) -> np.ndarray:
        """Raw logits (N, classes); averaged over a horizontal flip when the card asks for TTA."""
        return self.canvas_logits([frame(im, self.spec)[0] for im in images], batch_size)

    def canvas_logits(self, canvases: Sequence[np.ndarray], batch_size: int = 32) -> np.ndarray:
        """`logits` of slices already framed for the model (`transforms.frame`)."""
        out = []
        for i in range(0, len(canvases), batch_size):
            x = normalise(canvases[i:i + batch_size], self.spec)
            if self.tta:  # the slices and their mirror images in one forward pass
                y = self.forward(np.concatenate([x, x[..., ::-1]]))
                y = (y[:len(x)] + y[len(x):]) / 2
            else:
                y = self.forward(x)
            out.append(y)
        return np.concatenate(out) if out else np.zeros((0, len(self.class_names)), np.float32)

    def _fast(self) -> LazyFast:
        """The in-memory engine's builder (made once; it builds on its first `get`)."""
        with self._fast_lock:
            if self._lazy_fast is None:
                from mrivision.inference.in_memory import LazyFast

                self._lazy_fast = LazyFast(self.model)
            return self._lazy_fast

    def warm_up(self, background: bool = False) -> "Predictor":
        """Make the first prediction and explanation quick: load the PyTorch model (for CAM) and,
        when there is no engine file, build the in-memory engine (a few seconds, once).

        `background=True` returns at once and does it in a thread; meanwhile predictions run on
        the engine file or the eager model (the same logits within 1e-4), and `explain` waits.
        """
        if background:
            if self._warming is None:
                self._warming = threading.Thread(target=self._warm_quietly, name="mrivision-warm-up", daemon=True)
                self._warming.start()
            return self
        warming = self._warming
        if warming is not None:
            warming.join()
        self._load_and_build()
        self.logits([np.zeros(self.spec.input_size, np.float32)])
        return self

    def _load_and_build(self) -> None:
        with self.lock:  # no CAM hooks come and go while the model is loaded or copied
            self.model  # noqa: B018  (loads it)
            if self.build and self.engine is None:
                self._fast().get()

    def _warm_quietly(self) -> None:
        try:
            self._load_and_build()
        except Exception:  # noqa: BLE001  (the next call that needs it does it in the foreground and raises there)
            self._warming = None

    def predict_proba(self, images: Sequence[np.ndarray], batch_size: int = 32) -> np.ndarray:
        """Calibrated class probabilities (temperature-scaled softmax)."""
        return softmax(self.logits(images, batch_size) / self.temperature)

    def predict(self, img: np.ndarray) -> Prediction:
        return self.predict_many([img])[0]

    def predict_many(self, images: Sequence[np.ndarray],
                     framed: Sequence[tuple[np.ndarray, Frame]] | None = None) -> list[Prediction]:
        """`predict` for several slices in one batch; `framed`: their `transforms.frame` results, if
        the caller has them already."""
        framed = [frame(im, self.spec) for im in images] if framed is None else framed
        probs = softmax(self.canvas_logits([canvas for canvas, _ in framed]) / self.temperature)
        ood_card = self.card.get("ood")
        out = []
        for img, (canvas, placed), p in zip(images, framed, probs):
            k = int(p.argmax())
            ood = assess(canvas, ood_card, placed.brain_found, original=img)
            stage, spread = expected_stage(p[None])
            out.append(Prediction(
                label=self.class_names[k],
                probabilities={c: float(v) for c, v in zip(self.class_names, p)},
                model=self.name,
                confidence=float(p[k]),
                warnings=tuple(ood_warnings(ood, p)),
                out_of_distribution=bool(ood and ood.out_of_distribution),
                ood_score=None if ood is None else ood.score,
                expected_stage=float(stage[0]),
                stage_spread=float(spread[0]),
            ))
        return out

    def predict_scan(self, volume: "Volume | Sequence[np.ndarray] | np.ndarray") -> "ScanPrediction":
        """One stage for a whole scan (`mrivision.inference.scan.predict_scan`): a `Volume` or 2-D slices in order."""
        from mrivision.inference.scan import predict_scan

        return predict_scan(self, volume)

    def explain(self, img: np.ndarray, method: str = "gradcam", target: int | str | None = None,
                aug_smooth: bool = False) -> np.ndarray:
        """Heatmap in [0,1] at the input's resolution for `target` (default: the predicted class)."""
        from mrivision.explain.cam import explain

        if isinstance(target, str):
            target = self.class_names.index(target)
        with self.lock:
            return explain(self.model, img, method=method, target=target, aug_smooth=aug_smooth)


def load_model(name_or_path: str | Path, fast: bool = True, build: bool = True) -> Predictor:
    """Load a shipped model by name (or "default"), or a `.safetensors`/`.json` path.

    `fast=True` predicts through the model's engine file when there is a current one (see
    `mrivision export`; no torch needed), else through an engine built in memory on the first call
    (a few seconds, then 2-3x faster); `build=False` skips that build (for a few one-off
    predictions); `fast=False` runs the eager PyTorch model only.
    """
    return Predictor.load(name_or_path, fast=fast, build=build)


def _load_torch_model(weights: Path, weights_sha256: str) -> MRINet:
    """The PyTorch model of `weights`, if they are still the ones the Predictor was loaded with."""
    from mrivision.model.weights import load_weights

    model, card = load_weights(weights)
    if card.get("weights_sha256") != weights_sha256:
        raise ModelLoadError(f"{weights} changed after the model was loaded (retrained?): load the model again")
    return model


def list_models() -> list[str]:
    """Names of the models shipped in `weights/`."""
    return list_shipped()
