"""ONNX Runtime engines: a model's graph run without torch.

An *engine file* (`NAME.onnx` next to `NAME.safetensors`, or in the user's cache folder when the
weights' folder is read-only, see `engine_path`) is the model exported by
`mrivision export` (`fast_inference.export_engine`), checked against the eager model (logits
within 1e-4) when written, and stamped with the SHA-256 of the weights it was made from. A
`Predictor` loaded by name uses it only while that stamp equals the card's `weights_sha256`, so a
retrained model never runs a stale graph. Loading an engine imports ONNX Runtime (~0.2 s) but
neither torch nor timm (~4 s on this project's CPU): the app's first prediction waits only for it.

Sessions run ONNX Runtime's CPU provider with every graph optimisation (BatchNorm folded,
conv+activation fused, blocked layouts) and threads that do not busy-wait between ops, so that
the app's server, CAM and other requests keep their share of the CPU.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np

from mrivision.model.card import ModelCard

os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")  # before onnxruntime is imported (see mrivision/__init__)

ENGINE_SUFFIX = ".onnx"
CACHE_ENV = "MRIVISION_CACHE_DIR"  # where engine files go when the weights' folder is read-only
STAMP_KEY = "mrivision_weights_sha256"  # ONNX metadata: the weights the graph was exported from
DIFF_KEY = "mrivision_max_abs_diff"  # ONNX metadata: checked logit difference against eager


def cache_dir() -> Path:
    """The user's cache folder for engine files: $MRIVISION_CACHE_DIR, else ~/.cache/mrivision."""
    env = os.environ.get(CACHE_ENV, "").strip()
    return Path(env).expanduser() if env else Path.home() / ".cache" / "mrivision"


def engine_path(weights: Path, for_writing: bool = False) -> Path:
    """Where the engine file of `weights` (`NAME.safetensors`) lives: `NAME.onnx` beside it when that
    folder is writable; else (an installed wheel) in the user's cache folder, named after the
    weights' folder too so that two installs do not share one file (when reading, a file beside
    the weights still serves while the cache has none)."""
    beside = Path(weights).with_suffix(ENGINE_SUFFIX)
    if os.access(beside.parent, os.W_OK):
        return beside
    folder = hashlib.sha256(str(beside.parent.resolve()).encode()).hexdigest()[:12]
    cached = cache_dir() / "engines" / f"{beside.stem}-{folder}{ENGINE_SUFFIX}"
    return beside if not for_writing and beside.is_file() and not cached.is_file() else cached


def session_options(threads: int = 0) -> Any:
    """ONNX Runtime session options used by every engine (`threads=0`: one per physical core)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.log_severity_level = 3
    return so


class OnnxEngine:
    """One ONNX Runtime session: `run(x)` maps a float32 (N, C, H, W) batch to logits. Thread-safe."""

    def __init__(self, model: bytes | str | Path, threads: int = 0) -> None:
        import onnxruntime as ort

        source = model if isinstance(model, bytes) else str(model)
        self.session = ort.InferenceSession(source, session_options(threads), providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.metadata: dict[str, str] = dict(self.session.get_modelmeta().custom_metadata_map)

    @property
    def max_abs_diff(self) -> float | None:
        """The logit difference against the eager model measured when the file was written."""
        value = self.metadata.get(DIFF_KEY)
        return float(value) if value is not None else None

    def run(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: np.ascontiguousarray(x, dtype=np.float32)})[0]


def load_engine(weights: Path, card: ModelCard, threads: int = 0) -> OnnxEngine | None:
    """The engine of `weights` if its file exists, loads, was exported from the card's weights,
    and takes and gives what the card's spec says (one gray channel at its input size, one logit per class)."""
    path = engine_path(weights)
    expected, spec = card.weights_sha256, card.spec
    if not expected or not path.is_file():
        return None
    try:
        engine = OnnxEngine(path, threads)
    except Exception:  # noqa: BLE001  (damaged or foreign file: fall back to the torch path)
        return None
    if engine.metadata.get(STAMP_KEY) != expected:
        return None
    fits = (engine.session.get_inputs()[0].shape[1:] == [1, *spec.input_size]
            and engine.session.get_outputs()[0].shape[-1] == spec.num_classes)
    return engine if fits else None
