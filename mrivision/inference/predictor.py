"""`Predictor`: a loaded model with its card; predict() and explain() for one slice or many.

Predictions run on the fastest backend available (`backends`): the model's engine file
(`mrivision export`, ONNX Runtime without torch), else an engine built in memory on first use,
else the eager PyTorch model. This module imports no torch itself: a Predictor loaded with an
engine file predicts before torch is ever imported, and loads the PyTorch model only when it is
needed (`explain`, `model`) or asked to ahead of time (`warm_up`).
"""
from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from mrivision.model.card import ModelCard, list_shipped, resolve, verify_weights
from mrivision.errors import ModelLoadError
from mrivision.inputs.framing import Frame
from mrivision.inference.backends import Backend, Eager, TorchModel, choose
from mrivision.inference.engine_file import OnnxEngine, load_engine
from mrivision.model.spec import ModelSpec
from mrivision.model.outputs import softmax
from mrivision.model.outputs import expected_stage
from mrivision.inference.ood import assess, ood_warnings
from mrivision.inference.fusion import Fusion
from mrivision.inference.prediction import Prediction
from mrivision.inputs.transforms import frame, normalise

if TYPE_CHECKING:
    from mrivision.model.zoo import MRINet
    from mrivision.inference.scan import ScanPrediction
    from mrivision.inputs.volume import Source, Volume


class Predictor:
    """Thread-safe inference over one model: its card, preprocessing and backend. CAM calls, and
    the warm-up's loading and building, hold `lock` (hooks on a shared model).

    Give it the PyTorch `model`, or an `engine` with a `load_torch_model` callable that makes the
    model when it is first needed. `fast=False`: eager PyTorch only; `build=False`: no in-memory
    engine is built (an engine file still serves, else the eager model).
    """

    def __init__(self, model: MRINet | None = None, card: ModelCard | None = None, fast: bool = True, *,
                 build: bool = True, engine: OnnxEngine | None = None,
                 load_torch_model: Callable[[], MRINet] | None = None) -> None:
        self._torch = TorchModel(model, load_torch_model)
        if card is None and model is None:
            raise ValueError("a Predictor needs a model or a card")
        self.card: ModelCard = card if card is not None else ModelCard.for_spec(model.spec)
        self.spec: ModelSpec = model.spec if model is not None else self.card.spec
        self.name = self.card.name
        self.class_names = tuple(self.spec.class_names)
        self.temperature = self.card.temperature
        self.tta = self.card.tta_hflip
        self.fusion = Fusion.from_dict(self.card.fusion) if self.card.fusion else None
        self.engine = engine if fast else None
        self.backend: Backend = choose(self._torch, engine, fast, build)
        self._eager = Eager(self._torch)  # answers while a background warm-up prepares the backend
        self.lock = threading.Lock()
        self._warming: threading.Thread | None = None

    @classmethod
    def load(cls, name_or_path: str | Path, fast: bool = True, build: bool = True) -> "Predictor":
        """A shipped name (or "default"), or a `.safetensors`/`.json` path. With `fast`, the model's
        engine file serves predictions when it matches the card's weights and spec; torch loads later."""
        weights, card_path = resolve(name_or_path)
        card = ModelCard.read(card_path)
        try:
            engine = load_engine(weights, card) if fast else None
            if engine is None:
                from mrivision.model.weights import load_weights

                model, _ = load_weights(weights)  # the card read above: a fusion card shares its base's weights
                return cls(model, card, fast=fast, build=build)
            verify_weights(weights, card)  # load_engine matched the engine to the card's (non-empty) SHA-256
            return cls(card=card, engine=engine,
                       load_torch_model=lambda: _load_torch_model(weights, card.weights_sha256))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ModelLoadError(f"model card {card_path} could not be used: {exc}") from exc

    @property
    def model(self) -> MRINet:
        """The PyTorch model (loaded on first use when the Predictor came with an engine file)."""
        return self._torch.get()

    @property
    def model_loaded(self) -> bool:
        """Whether the PyTorch model (for `explain`) is in memory already."""
        return self._torch.loaded

    def engine_info(self) -> dict[str, Any]:
        """What serves predictions ("backend"), its checked logit difference from eager, and notes."""
        return self._serving().info()

    def _serving(self) -> Backend:
        """The backend, or the eager model while a background warm-up still prepares it."""
        return self.backend if self._warming is None or self.backend.ready else self._eager

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Logits for a preprocessed float32 batch (N, 1, H, W) on the fastest ready backend (no TTA)."""
        return self._serving().run(np.ascontiguousarray(x, dtype=np.float32))

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

    def warm_up(self, background: bool = False) -> "Predictor":
        """Make the first prediction and explanation quick: load what a fusion card's tissue
        measures need, the PyTorch model (for CAM) and, when there is no engine file, build the
        in-memory engine (a few seconds, once).

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
        if self.fusion is not None:  # its atrophy measures segment tissue: that library first
            from mrivision.anatomy.tissue import prepare

            prepare()
        with self.lock:  # no CAM hooks come and go while the model is loaded or copied
            self._torch.get()
            self.backend.prepare()

    def _warm_quietly(self) -> None:
        try:
            self._load_and_build()
        except Exception:  # noqa: BLE001  (the next call that needs it does it in the foreground and raises there)
            self._warming = None

    def predict_proba(self, images: Sequence[np.ndarray], batch_size: int = 32) -> np.ndarray:
        """Calibrated class probabilities (temperature-scaled softmax; then the card's fusion, if any)."""
        return self._fused(softmax(self.logits(images, batch_size), self.temperature), images)

    def _fused(self, probs: np.ndarray, images: Sequence[np.ndarray]) -> np.ndarray:
        """The network's probabilities, through the card's fusion model when it has one (`inference.fusion`)."""
        return probs if self.fusion is None else self.fusion.apply(probs, self.class_names, images)

    def predict(self, img: np.ndarray) -> Prediction:
        return self.predict_many([img])[0]

    def predict_many(self, images: Sequence[np.ndarray],
                     framed: Sequence[tuple[np.ndarray, Frame]] | None = None) -> list[Prediction]:
        """`predict` for several slices in one batch; `framed`: their `transforms.frame` results, if
        the caller has them already."""
        framed = [frame(im, self.spec) for im in images] if framed is None else framed
        probs = self._fused(softmax(self.canvas_logits([canvas for canvas, _ in framed]), self.temperature), images)
        ood_card = self.card.ood
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

    def predict_scan(self, volume: "Volume | Source | Sequence[Source] | Sequence[np.ndarray] | np.ndarray",
                     names: Sequence[str] | None = None) -> "ScanPrediction":
        """One stage for a whole scan (`mrivision.inference.scan.predict_scan`): anything `load_volume`
        reads (a path, bytes, DICOM files in any order, a zip; `names`: the file names of bytes), a
        `Volume`, or 2-D slices in order."""
        from mrivision.inference.scan import predict_scan

        return predict_scan(self, volume, names)

    def explain(self, img: np.ndarray, method: str | None = None, target: int | str | None = None,
                aug_smooth: bool = False) -> np.ndarray:
        """Heatmap in [0,1] at the input's resolution for `target` (default: the predicted class),
        zero outside the brain. `method` and the layer: the card's `cam` choice (`scripts/select_cam.py`),
        else Grad-CAM at the spec's target layer. "occlusion" and "iterative_occlusion"
        (`explain.occlusion`) run on the prediction backend, without torch."""
        if isinstance(target, str):
            target = self.class_names.index(target)
        cam = self.card.cam or {}
        method = method or self.card.heatmap_method
        from mrivision.explain import occlusion

        if method in occlusion.METHODS:
            return getattr(occlusion, method)(self, img, target)
        from mrivision.explain.cam import explain

        with self.lock:
            return explain(self.model, img, method=method, target=target,
                           aug_smooth=aug_smooth, layer=cam.get("layer"), score=str(cam.get("score") or "logit"))


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
    if card.weights_sha256 != weights_sha256:
        raise ModelLoadError(f"{weights} changed after the model was loaded (retrained?): load the model again")
    return model


def list_models() -> list[str]:
    """Names of the models shipped in `weights/`."""
    return list_shipped()
