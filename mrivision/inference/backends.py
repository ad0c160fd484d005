"""What runs a model's forward pass: three backends behind one interface, `run(batch) -> logits`.

* `EngineFile`: the model's engine file (ONNX Runtime, no torch; `engine_file`).
* `InMemory`: an engine built in memory from the PyTorch model on first use (`in_memory`).
* `Eager`: the PyTorch model itself.

Each takes a preprocessed float32 batch (N, 1, H, W) and gives float32 logits (N, classes).
`prepare()` does the slow one-time work ahead of the first `run` (loading torch, building);
`ready` says whether `run` would answer without it. This module imports no torch itself.
"""
from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Callable, Protocol

import numpy as np

from mrivision.inference.engine_file import OnnxEngine

if TYPE_CHECKING:
    from mrivision.inference.in_memory import LazyFast
    from mrivision.model.zoo import MRINet

ENGINE_FILE = "onnxruntime (engine file)"
EAGER = "eager"
EAGER_ONLY = "eager (fast path off)"


class Backend(Protocol):
    """A forward pass: preprocessed batch in, logits out; thread-safe."""

    @property
    def ready(self) -> bool: ...

    def run(self, batch: np.ndarray) -> np.ndarray: ...

    def prepare(self) -> None: ...

    def info(self) -> dict[str, Any]: ...


class TorchModel:
    """The PyTorch model, given or loaded on first use by `load` (once, from any thread)."""

    def __init__(self, model: MRINet | None = None, load: Callable[[], MRINet] | None = None) -> None:
        if model is None and load is None:
            raise ValueError("a Predictor needs a model or a way to load one")
        self._model = model.eval() if model is not None else None
        self._load = load
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def get(self) -> MRINet:
        if self._model is None:
            with self._lock:
                if self._model is None:
                    self._model = self._load().eval()  # type: ignore[misc]  (set when no model was given)
        return self._model


class EngineFile:
    """The model's engine file, run by ONNX Runtime."""

    def __init__(self, engine: OnnxEngine) -> None:
        self.engine = engine

    ready = True

    def run(self, batch: np.ndarray) -> np.ndarray:
        return self.engine.run(batch)

    def prepare(self) -> None:
        """Nothing to build."""

    def info(self) -> dict[str, Any]:
        return {"backend": ENGINE_FILE, "max_abs_diff": self.engine.max_abs_diff, "notes": []}


class Eager:
    """The PyTorch model in inference mode; `label` names it in `info`."""

    def __init__(self, model: TorchModel, label: str = EAGER) -> None:
        self.model = model
        self.label = label

    @property
    def ready(self) -> bool:
        return self.model.loaded

    def run(self, batch: np.ndarray) -> np.ndarray:
        return _run_torch(self.model.get(), batch)

    def prepare(self) -> None:
        self.model.get()

    def info(self) -> dict[str, Any]:
        return {"backend": self.label, "max_abs_diff": 0.0, "notes": []}


class InMemory:
    """An engine built in memory from the PyTorch model (`in_memory.optimize_for_inference`): built
    by `prepare` or else by the first non-empty `run` (a few seconds, once)."""

    def __init__(self, model: TorchModel) -> None:
        from mrivision.inference.in_memory import LazyFast

        self.model = model
        self._lazy = LazyFast(model.get)

    @property
    def ready(self) -> bool:
        return self._lazy.built

    def run(self, batch: np.ndarray) -> np.ndarray:
        return _run_torch(self._lazy.get() if len(batch) else self.model.get(), batch)

    def prepare(self) -> None:
        self._lazy.get()

    def info(self) -> dict[str, Any]:
        if not self.ready:
            return Eager(self.model).info()
        built = self._lazy.get().info
        return {"backend": built.backend, "max_abs_diff": built.max_abs_diff, "notes": list(built.notes)}


def _run_torch(module: Callable[..., Any], batch: np.ndarray) -> np.ndarray:
    """Logits of a float32 (N, 1, H, W) batch through a PyTorch module or built engine, no autograd."""
    import torch

    with torch.inference_mode():
        return module(torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32))).float().numpy()

def choose(model: TorchModel, engine: OnnxEngine | None, fast: bool, build: bool) -> Backend:
    """The engine file when there is one (and `fast`), else an in-memory build (with `build`), else eager."""
    if fast and engine is not None:
        return EngineFile(engine)
    if fast and build:
        return InMemory(model)
    return Eager(model, EAGER_ONLY)
