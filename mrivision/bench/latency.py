"""`mrivision bench`: CPU latency, throughput and memory of models, fast path against a naive baseline.

Each model is measured in a fresh subprocess (`bench.cli`; so the load time is a cold process's and the
peak RSS is that model's alone; the OS file cache stays warm). In it:

* ``load_s``: the `load_model` call: card read, weights SHA-256 check, then the engine file's
  ONNX Runtime session when the model has a current one (`mrivision export`), else the PyTorch
  model built (``fast_backend`` says which path served). ``fast_build_s``: `Predictor.warm_up`
  (building the in-memory engine, or with an engine file nothing to build: about one forward).
* naive baseline: the same eager model as training code would run it: `model.eval()`,
  `torch.no_grad()`, default threads, float32 NCHW, no TTA (preprocessing included).
* fast path: `Predictor.predict_proba` (preprocessing, the engine file or else the
  `fast_inference` module built in memory, softmax,
  and TTA if the card asks for it): ``predict_ms_*``. ``forward_ms_*`` is the fast engine doing
  exactly the naive baseline's work (preprocessing, one forward, softmax, no TTA), so
  ``speedup`` = naive / forward compares like with like; ``predict_speedup`` = naive / predict.
* batch-1 latency: naive and fast calls interleaved, `runs` of each after warm-up, so load
  changes on a shared machine hit both alike; p50/p95 wall clock, plus p50 CPU time
  (`*_cpu_ms_p50`, summed over threads), which contention inflates much less than wall clock.
* ``predict_cam_ms_p50``: `predict` + Grad-CAM `explain` (eager model), max(3, runs // 5) runs.
* ``throughput_b32``: images/s of a batch of 32, fast engine and naive doing the same work
  (one forward each); ``predict_throughput_b32``: `predict_proba` on the batch (with TTA).
* ``peak_rss_mb``: the process's peak RSS (VmHWM) during the fast phase (which holds the
  eager model too, as a Predictor does); ``naive_peak_rss_mb`` during the naive phase. The
  peak is reset between phases where the kernel allows it (/proc/self/clear_refs).

Inputs are generated brain-like slices at the model's input size (`brain_slice`).
`bench_model(predictor, runs)` runs the same measurements in the current process (for a
card's ``"bench"`` entry).
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import Any, Callable, Sequence

import numpy as np

from mrivision.bench.system import child_env, cpu_count, cpu_name, peak_rss_mb, reset_peak_rss
from mrivision.model.outputs import softmax
from mrivision.inputs.transforms import batch_array

UNTRAINED = "untrained (architecture only)"
TRAINED = "trained"


# ---------------------------------------------------------------- inputs and timing

def brain_slice(shape: tuple[int, int], seed: int = 0) -> np.ndarray:
    """A plausible axial brain slice in [0,1]: skull ring, textured tissue, dark ventricles, black background."""
    import cv2

    rng = np.random.default_rng(seed)
    h, w = shape
    img = np.zeros((h, w), np.float32)
    cx, cy = w / 2 + rng.uniform(-0.02, 0.02) * w, h / 2 + rng.uniform(-0.02, 0.02) * h
    ax, ay = 0.40 * w, 0.44 * h
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r = np.sqrt(((xx - cx) / ax) ** 2 + ((yy - cy) / ay) ** 2)
    texture = cv2.GaussianBlur(rng.normal(0, 1, (h, w)).astype(np.float32), (0, 0), max(1.0, w / 60))
    texture /= texture.std() + 1e-6
    tissue = 0.55 + 0.08 * texture + 0.10 * np.cos(r * 9)  # gyri-like rings, grey/white contrast
    img[r < 0.92] = tissue[r < 0.92]
    img[(r >= 0.92) & (r < 1.0)] = 0.85  # skull
    vent = rng.uniform(0.04, 0.12)  # ventricle size: larger with atrophy
    for dx in (-1, 1):
        cv2.ellipse(img, (int(cx + dx * 0.06 * w), int(cy)), (max(1, int(vent * w)), max(1, int(2.2 * vent * h))),
                    dx * 12, 0, 360, 0.08, -1)
    img += rng.normal(0, 0.02, (h, w)).astype(np.float32) * (img > 0)
    return np.clip(cv2.GaussianBlur(img, (0, 0), 0.6), 0, 1).astype(np.float32)


def pct(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=np.float64), q)) if values else float("nan")


def timed(fn: Callable[[], Any]) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) of one call."""
    w, c = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w, time.process_time() - c


# ---------------------------------------------------------------- measurements

def naive_predict(model: Any, spec: Any, images: list[np.ndarray]) -> np.ndarray:
    """Train-style inference: eval model, no_grad, float32 NCHW, default threads, no TTA."""
    import torch

    with torch.no_grad():
        return softmax(model(torch.from_numpy(batch_array(images, spec))).float().numpy())


def fast_forward(predictor: Any, images: list[np.ndarray]) -> np.ndarray:
    """The naive baseline's work (preprocessing, one forward, softmax; no TTA) on the predictor's fast path."""
    return softmax(predictor.forward(batch_array(images, predictor.spec)))


def _in_process_load_s(model: Any) -> float:
    """Time to rebuild the architecture and load a state dict (no file I/O)."""
    from mrivision.model.zoo import create_model

    state = {k: v.clone() for k, v in model.state_dict().items()}
    t = time.perf_counter()
    m = create_model(model.spec, pretrained=False)
    m.load_state_dict(state)
    return time.perf_counter() - t


def _subprocess_load_s(source: str) -> float:
    code = ("import time; from mrivision.inference.predictor import load_model; t = time.perf_counter(); "
            f"load_model({source!r}); print(time.perf_counter() - t)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=child_env(), check=True)
    return float(out.stdout.strip().splitlines()[-1])


def bench_model(predictor: Any, runs: int = 50, *, load_s: float | None = None, source: str | None = None,
                load_method: str | None = None) -> dict[str, Any]:
    """Latency, throughput and memory of `predictor` (fast path) and of its naive eager baseline.

    `load_s`: a load time measured by the caller; else `source` (a shipped name or path) is
    loaded in a fresh subprocess; else the architecture is rebuilt in process from the model's
    state dict. Returns the ``"bench"`` dict a card can store.
    """
    import torch

    runs = max(1, int(runs))
    model, spec = predictor.model, predictor.spec
    size = tuple(spec.input_size)
    img = brain_slice(size, seed=0)
    batch = [brain_slice(size, seed=i) for i in range(32)]
    reps32 = max(2, min(10, runs // 10))

    # Naive phase (its own peak RSS).
    can_reset = reset_peak_rss()
    for _ in range(3):
        naive_predict(model, spec, [img])
    naive_predict(model, spec, batch)
    naive_b32 = [timed(lambda: naive_predict(model, spec, batch))[0] for _ in range(reps32)]
    naive_peak = peak_rss_mb()

    # Fast phase: build (timed), warm up, batch 32.
    reset_peak_rss()
    t = time.perf_counter()
    predictor.warm_up()  # builds the in-memory engine when the model has no engine file
    build_s = time.perf_counter() - t
    for _ in range(3):
        predictor.predict_proba([img])
    predictor.predict_proba(batch)
    fast_forward(predictor, batch)
    fast_b32 = [timed(lambda: fast_forward(predictor, batch))[0] for _ in range(reps32)]
    predict_b32 = [timed(lambda: predictor.predict_proba(batch))[0] for _ in range(reps32)]

    # Batch-1 latency, interleaved (rotating order) so all three see the same machine load.
    fw, fc, nw, nc, sw, sc = [], [], [], [], [], []
    for i in range(runs):
        calls = [(fw, fc, lambda: predictor.predict_proba([img])), (nw, nc, lambda: naive_predict(model, spec, [img])),
                 (sw, sc, lambda: fast_forward(predictor, [img]))]
        for wall, cpu, fn in calls[i % 3:] + calls[:i % 3]:  # rotated: each goes first, second, third
            a, b = timed(fn)
            wall.append(a)
            cpu.append(b)

    # Predict + Grad-CAM (eager model, gradients).
    cam_ms: float | None = None
    cam_error = None
    try:
        def predict_and_explain() -> None:
            predictor.predict(img)
            predictor.explain(img, method="gradcam")

        predict_and_explain()
        cam_ms = pct([timed(predict_and_explain)[0] for _ in range(max(3, runs // 5))], 50) * 1e3
    except Exception as exc:  # noqa: BLE001  (report, do not lose the other numbers)
        cam_error = f"{type(exc).__name__}: {exc}"
    peak = peak_rss_mb()

    if load_s is None:
        if source is not None:
            load_s, load_method = _subprocess_load_s(source), load_method or "load_model in a fresh process"
        else:
            load_s, load_method = _in_process_load_s(model), load_method or "in-process rebuild (no file I/O)"

    def ms(v: float) -> float:
        return round(v * 1e3, 3)

    p50, n50 = pct(fw, 50), pct(nw, 50)
    c50, nc50 = pct(fc, 50), pct(nc, 50)
    s50, sc50 = pct(sw, 50), pct(sc, 50)
    tp, ntp, ptp = 32 / pct(fast_b32, 50), 32 / pct(naive_b32, 50), 32 / pct(predict_b32, 50)
    info = predictor.engine_info()
    try:
        import onnxruntime

        ort_version: str | None = onnxruntime.__version__
    except ImportError:
        ort_version = None
    out: dict[str, Any] = {
        "name": predictor.name,
        "parameters": int(sum(p.numel() for p in model.parameters())),
        "input_size": list(size),
        "load_s": round(float(load_s), 4),
        "load_method": load_method,
        "fast_backend": info["backend"],
        "fast_build_s": round(build_s, 3),
        "fast_max_abs_diff": info["max_abs_diff"],
        "fast_notes": info["notes"],
        "tta": bool(predictor.tta),
        "predict_ms_p50": ms(p50),
        "predict_ms_p95": ms(pct(fw, 95)),
        "predict_cpu_ms_p50": ms(c50),
        "naive_ms_p50": ms(n50),
        "naive_ms_p95": ms(pct(nw, 95)),
        "naive_cpu_ms_p50": ms(nc50),
        "forward_ms_p50": ms(s50),
        "forward_ms_p95": ms(pct(sw, 95)),
        "forward_cpu_ms_p50": ms(sc50),
        "speedup": round(n50 / s50, 3),
        "speedup_cpu": round(nc50 / sc50, 3) if sc50 > 0 else None,
        "predict_speedup": round(n50 / p50, 3),
        "predict_cam_ms_p50": round(cam_ms, 3) if cam_ms is not None else None,
        "throughput_b32": round(tp, 2),
        "naive_throughput_b32": round(ntp, 2),
        "throughput_speedup": round(tp / ntp, 3),
        "predict_throughput_b32": round(ptp, 2),
        "peak_rss_mb": round(peak, 1),
        "naive_peak_rss_mb": round(naive_peak, 1),
        "peak_rss_reset": can_reset,
        "runs": runs,
        "threads": torch.get_num_threads(),
        "cpu": cpu_name(),
        "cpu_count": cpu_count(),
        "load_avg_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "torch": torch.__version__,
        "onnxruntime": ort_version,
    }
    if cam_error:
        out["cam_error"] = cam_error
    return out


