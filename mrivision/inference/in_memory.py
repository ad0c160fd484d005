"""A faster CPU forward pass with the same logits as the eager model.

`optimize_for_inference(model)` builds, for the model's fixed input shape, the fastest
backend that applies and checks it against the eager model before using it:

1. ``onnxruntime`` (when `onnx` and `onnxruntime` are installed): the model exported to ONNX
   and run by ONNX Runtime's CPU provider with all graph optimisations (BatchNorm folded into
   the convolutions, conv+activation fusion, blocked NCHWc layouts).
2. ``torchscript``: traced in channels-last memory format and frozen (`torch.jit.freeze`
   folds BatchNorm into the preceding convolution and inlines the weights as constants).
3. ``eager-channels-last``: the eager model in channels-last memory format.
4. ``eager``: the model itself.

Measured on this project's 2-core CPU, under heavy load from other jobs, so as CPU time per
forward at one thread with the variants interleaved (ratios, not absolute times):
neurostagenet batch 1: eager 17-20 ms, TorchScript channels-last 10-12 ms, ONNX Runtime 6 ms;
batch 32: 471 / 270 / 175 ms. convnext_scratch batch 1: 12-13 / 9 / 5 ms. altzcnn batch 1:
eager 7 ms, TorchScript channels-last 4 ms. Channels-last alone gave 10-25 %.
`torch.jit.optimize_for_inference` (MKLDNN layout conversion) was slower than plain freezing
for the EfficientNet and ConvNeXt models and is not used. The global thread count is left as
torch sets it (one per core): a library should not change a process-wide setting, and on
this shared, loaded machine fewer threads were faster, so no setting is right everywhere.
ONNX Runtime's threads do not busy-wait (`allow_spinning=0`): under load, spinning OpenMP
threads made torch's own 2-thread forward up to 10x slower in wall time.

Building costs a few seconds of CPU once per model and process (tracing/exporting an
EfficientNet is about 1-2.5 s of it), paid on the first `Predictor.logits` call, or ahead of it
by `Predictor.warm_up`. Builds are serialised process-wide: torch's ONNX exporter and tracer
keep global state. `export_engine` writes the ONNX graph to a file once instead (`mrivision
export`), so that later processes predict with no build and no torch (`mrivision.inference.engine_file`).

A backend is kept only if its logits on random inputs (batch 1 and batch 3) are within
`atol` (default 1e-4, max abs difference) of the eager model's; otherwise the next one is
tried, and the reasons are kept in `FastModule.info.notes`. Inputs of another shape than
the one it was built for go to the eager model. The result holds copies of the weights, so
changes to the model after the build are not seen: build again.
"""
from __future__ import annotations

import copy
import io
import os
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from mrivision.inference.engine_file import DIFF_KEY, STAMP_KEY, OnnxEngine, engine_path

BACKENDS = ("onnxruntime", "torchscript", "eager-channels-last", "eager")
DEFAULT_ATOL = 1e-4


@dataclass
class FastInfo:
    """What was built and why."""

    backend: str
    input_shape: tuple[int, ...]  # (C, H, W) the fast path serves
    max_abs_diff: float = 0.0  # against the eager model on the check inputs
    build_s: float = 0.0
    threads: int = 1
    notes: list[str] = field(default_factory=list)  # why faster backends were skipped

    def to_dict(self) -> dict[str, Any]:
        return {"backend": self.backend, "input_shape": list(self.input_shape), "max_abs_diff": self.max_abs_diff,
                "build_s": round(self.build_s, 3), "threads": self.threads, "notes": list(self.notes)}


def onnxruntime_available() -> bool:
    try:
        import onnx  # noqa: F401  (torch's ONNX exporter needs it)
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def onnx_bytes(model: nn.Module, example: torch.Tensor) -> bytes:
    """`model` exported to ONNX (a copy: the engine may be built in a background thread while
    `model` serves), batch axis free, input "x", output "logits"."""
    buf = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(copy.deepcopy(model), (example,), buf, dynamo=False, input_names=["x"], output_names=["logits"],
                          dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}})
    return buf.getvalue()


class _OrtRunner:
    """An ONNX Runtime engine over the exported model (`onnx`: the graph), called with tensors; thread-safe."""

    def __init__(self, model: nn.Module, example: torch.Tensor, threads: int) -> None:
        self.onnx = onnx_bytes(model, example)
        self.engine = OnnxEngine(self.onnx, threads)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.engine.run(x.detach().cpu().numpy()))


class _ScriptRunner:
    """Traced (channels-last) and frozen TorchScript module."""

    def __init__(self, model: nn.Module, example: torch.Tensor) -> None:
        m = copy.deepcopy(model).eval().to(memory_format=torch.channels_last)
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            traced = torch.jit.trace(m, example.contiguous(memory_format=torch.channels_last), check_trace=False)
            self.module = torch.jit.freeze(traced.eval())

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return self.module(x.contiguous(memory_format=torch.channels_last))


class _EagerRunner:
    def __init__(self, model: nn.Module, channels_last: bool) -> None:
        self.channels_last = channels_last
        self.module = copy.deepcopy(model).eval().to(memory_format=torch.channels_last) if channels_last else model

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            return self.module(x)


class FastModule(nn.Module):
    """Drop-in inference module: `fast(x)` gives the eager model's logits (within `atol`), faster.

    Inputs whose (C, H, W) differ from `info.input_shape` run through the eager model. Holds
    no autograd graph: use the eager model for anything that needs gradients (CAM).
    """

    def __init__(self, reference: nn.Module, runner: Callable[[torch.Tensor], torch.Tensor], info: FastInfo) -> None:
        super().__init__()
        object.__setattr__(self, "reference", reference)  # not a submodule: no second copy in state_dict
        object.__setattr__(self, "runner", runner)
        self.info = info

    @property
    def backend(self) -> str:
        return self.info.backend

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[1:]) != self.info.input_shape:
            with torch.inference_mode():
                return self.reference(x)
        return self.runner(x)

    def extra_repr(self) -> str:
        return f"backend={self.info.backend}, input_shape={self.info.input_shape}"


def _input_shape(model: nn.Module, input_shape: Sequence[int] | None) -> tuple[int, ...]:
    if input_shape is not None:
        return tuple(int(s) for s in input_shape)
    spec = getattr(model, "spec", None)
    if spec is None:
        raise ValueError("input_shape is needed for a model without a spec")
    return (1, *spec.input_size)  # MRINet: one gray channel at the spec's size


def check_inputs(input_shape: tuple[int, ...], seed: int = 0) -> list[torch.Tensor]:
    """Batches of 1 and 3 normalised-scale inputs (the batch of 3 checks the batch axis is free)."""
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(n, *input_shape, generator=g) for n in (1, 3)]


def max_abs_diff(fn: Callable[[torch.Tensor], torch.Tensor], reference: nn.Module, inputs: list[torch.Tensor]) -> float:
    worst = 0.0
    for x in inputs:
        with torch.no_grad():
            ref = reference(x).float()
        out = fn(x).float()
        if out.shape != ref.shape:
            return float("inf")
        d = (out - ref).abs().max().item()
        if not np.isfinite(d):
            return float("inf")
        worst = max(worst, d)
    return worst


def optimize_for_inference(model: nn.Module, *, backends: Sequence[str] | None = None,
                           input_shape: Sequence[int] | None = None, atol: float = DEFAULT_ATOL) -> FastModule:
    """The first of `backends` (default: all, fastest first) that builds and matches the eager logits.

    `model` is left as it is (eval mode is set on it); the fast module works on copies.
    """
    model.eval()
    shape = _input_shape(model, input_shape)
    order = list(backends) if backends is not None else list(BACKENDS)
    unknown = [b for b in order if b not in BACKENDS]
    if unknown:
        raise ValueError(f"unknown backend(s) {unknown}; choose from {', '.join(BACKENDS)}")
    if "eager" not in order:
        order.append("eager")
    threads = torch.get_num_threads()
    inputs = check_inputs(shape)
    notes: list[str] = []
    t0 = time.perf_counter()
    with torch.inference_mode(False):  # export/trace need ordinary tensors, even if called in inference mode
        return _first_that_matches(model, order, shape, inputs, atol, threads, notes, t0)


def _first_that_matches(model: nn.Module, order: list[str], shape: tuple[int, ...], inputs: list[torch.Tensor],
                        atol: float, threads: int, notes: list[str], t0: float) -> FastModule:
    for name in order:
        try:
            if name == "onnxruntime":
                if not onnxruntime_available():
                    notes.append("onnxruntime: onnx/onnxruntime not installed")
                    continue
                runner: Callable[[torch.Tensor], torch.Tensor] = _OrtRunner(model, inputs[0], threads)
            elif name == "torchscript":
                runner = _ScriptRunner(model, inputs[0])
            elif name == "eager-channels-last":
                runner = _EagerRunner(model, channels_last=True)
            else:
                runner = _EagerRunner(model, channels_last=False)
            diff = max_abs_diff(runner, model, inputs)
        except Exception as exc:  # noqa: BLE001  (any failure to build means: try the next backend)
            notes.append(f"{name}: failed to build: {type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}")
            continue
        if name != "eager" and not diff <= atol:
            notes.append(f"{name}: logits differ from eager by {diff:.3g} > {atol:g}")
            continue
        info = FastInfo(backend=name, input_shape=shape, max_abs_diff=float(diff),
                        build_s=time.perf_counter() - t0, threads=threads, notes=notes)
        return FastModule(model, runner, info)
    raise AssertionError("unreachable: eager always builds")


_BUILD_LOCK = threading.Lock()  # one build at a time in the process (exporter/tracer global state)


class LazyFast:
    """Builds `optimize_for_inference(model())` once, on first use, from any number of threads
    (`model` is called then: a model that loads lazily loads inside the same build)."""

    def __init__(self, model: Callable[[], nn.Module], **kwargs: Any) -> None:
        self.model = model
        self.kwargs = kwargs
        self._fast: FastModule | None = None
        self._lock = threading.Lock()

    @property
    def built(self) -> bool:
        return self._fast is not None

    def get(self) -> FastModule:
        fast = self._fast
        if fast is None:
            with self._lock:
                if self._fast is None:
                    with _BUILD_LOCK:
                        self._fast = optimize_for_inference(self.model(), **self.kwargs)
                fast = self._fast
        return fast


def export_engine(model: nn.Module, weights: Path, weights_sha256: str, atol: float = DEFAULT_ATOL) -> Path:
    """Write the engine file of `weights` (see `mrivision.inference.engine_file`) for `model`, loaded from them.

    The graph is the one `optimize_for_inference` builds and checks for the "onnxruntime" backend
    (eager logits within `atol`), else ValueError and no file. Written atomically to `engine_path`.
    """
    with _BUILD_LOCK:
        fast = optimize_for_inference(model, backends=["onnxruntime"], atol=atol)
    if fast.backend != "onnxruntime":
        raise ValueError(f"the ONNX graph was not usable: {'; '.join(fast.info.notes)}")
    path = engine_path(weights, for_writing=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(_with_metadata(fast.runner.onnx, {STAMP_KEY: weights_sha256,
                                                          DIFF_KEY: f"{fast.info.max_abs_diff:.3g}"}))
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _with_metadata(data: bytes, metadata: dict[str, str]) -> bytes:
    import onnx

    proto = onnx.load_from_string(data)
    for key, value in metadata.items():
        proto.metadata_props.add(key=key, value=value)
    return proto.SerializeToString()
