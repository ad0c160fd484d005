"""`mrivision bench`: CPU latency, throughput and memory of models, fast path against a naive baseline.

Each model is measured in a fresh subprocess (so the load time is a cold process's and the
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

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from mrivision.inputs.transforms import batch_array

UNTRAINED = "untrained (architecture only)"
TRAINED = "trained"


# ---------------------------------------------------------------- inputs and system facts

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


def _status_kb(field: str) -> float | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return float(line.split()[1])
    except OSError:
        pass
    return None


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far (VmHWM; ru_maxrss where /proc is missing)."""
    kb = _status_kb("VmHWM")
    if kb is None:
        import resource

        kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1024 if sys.platform == "darwin" else 1)
    return kb / 1024


def reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux); False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _pct(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=np.float64), q)) if values else float("nan")


def _timed(fn: Callable[[], Any]) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) of one call."""
    w, c = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w, time.process_time() - c


# ---------------------------------------------------------------- measurements

def naive_predict(model: Any, spec: Any, images: list[np.ndarray]) -> np.ndarray:
    """Train-style inference: eval model, no_grad, float32 NCHW, default threads, no TTA."""
    import torch

    from mrivision.inference.predictor import softmax

    with torch.no_grad():
        return softmax(model(torch.from_numpy(batch_array(images, spec))).float().numpy())


def fast_forward(predictor: Any, images: list[np.ndarray]) -> np.ndarray:
    """The naive baseline's work (preprocessing, one forward, softmax; no TTA) on the predictor's fast path."""
    from mrivision.inference.predictor import softmax

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
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_child_env(), check=True)
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
    naive_b32 = [_timed(lambda: naive_predict(model, spec, batch))[0] for _ in range(reps32)]
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
    fast_b32 = [_timed(lambda: fast_forward(predictor, batch))[0] for _ in range(reps32)]
    predict_b32 = [_timed(lambda: predictor.predict_proba(batch))[0] for _ in range(reps32)]

    # Batch-1 latency, interleaved (rotating order) so all three see the same machine load.
    fw, fc, nw, nc, sw, sc = [], [], [], [], [], []
    for i in range(runs):
        calls = [(fw, fc, lambda: predictor.predict_proba([img])), (nw, nc, lambda: naive_predict(model, spec, [img])),
                 (sw, sc, lambda: fast_forward(predictor, [img]))]
        for wall, cpu, fn in calls[i % 3:] + calls[:i % 3]:  # rotated: each goes first, second, third
            a, b = _timed(fn)
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
        cam_ms = _pct([_timed(predict_and_explain)[0] for _ in range(max(3, runs // 5))], 50) * 1e3
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

    p50, n50 = _pct(fw, 50), _pct(nw, 50)
    c50, nc50 = _pct(fc, 50), _pct(nc, 50)
    s50, sc50 = _pct(sw, 50), _pct(sc, 50)
    tp, ntp, ptp = 32 / _pct(fast_b32, 50), 32 / _pct(naive_b32, 50), 32 / _pct(predict_b32, 50)
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
        "predict_ms_p95": ms(_pct(fw, 95)),
        "predict_cpu_ms_p50": ms(c50),
        "naive_ms_p50": ms(n50),
        "naive_ms_p95": ms(_pct(nw, 95)),
        "naive_cpu_ms_p50": ms(nc50),
        "forward_ms_p50": ms(s50),
        "forward_ms_p95": ms(_pct(sw, 95)),
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


# ---------------------------------------------------------------- one model in a fresh process

def _worker(source: str, runs: int, untrained: bool) -> dict[str, Any]:
    t = time.perf_counter()
    from mrivision.model.zoo import create_model
    from mrivision.inference.predictor import Predictor, load_model

    import_s = time.perf_counter() - t
    t = time.perf_counter()
    if untrained:
        predictor = Predictor(create_model(source, pretrained=False), {"name": source})
        method = "create_model(pretrained=False) in a fresh process"
    else:
        predictor = load_model(source)
        method = "load_model in a fresh process"
    load_s = time.perf_counter() - t
    result = bench_model(predictor, runs, load_s=load_s, load_method=method)
    result.update(source=source, status=UNTRAINED if untrained else TRAINED, import_s=round(import_s, 3))
    return result


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.setdefault("HF_HUB_OFFLINE", "1")
    return env


def classify(source: str) -> str:
    """TRAINED for a shipped name or an existing weights/card path, UNTRAINED for a registered spec."""
    from mrivision.model.zoo import list_specs
    from mrivision.model.card import list_shipped, resolve

    if source in list_shipped():
        return TRAINED
    if source in list_specs() and not Path(source).exists():
        return UNTRAINED
    resolve(source)  # raises ModelLoadError (message lists the shipped models) when it is neither
    return TRAINED


def bench_in_subprocess(source: str, runs: int, untrained: bool) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "mrivision.bench.latency", "--worker", source, "--runs", str(runs)]
    if untrained:
        cmd.append("--untrained")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=_child_env())
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        return {"name": source, "source": source, "status": UNTRAINED if untrained else TRAINED,
                "error": " | ".join(tail) or f"exit code {proc.returncode}"}
    return json.loads(lines[-1])


# ---------------------------------------------------------------- CLI

COLUMNS = [  # (header, key, format)
    ("model", "name", "{}"), ("weights", "status", "{}"), ("params", "parameters", "{:,}"),
    ("load s", "load_s", "{:.2f}"), ("backend", "fast_backend", "{}"),
    ("p50 ms", "predict_ms_p50", "{:.1f}"), ("p95 ms", "predict_ms_p95", "{:.1f}"),
    ("naive p50", "naive_ms_p50", "{:.1f}"), ("fwd p50", "forward_ms_p50", "{:.1f}"), ("speedup", "speedup", "{:.2f}x"),
    ("cpu speedup", "speedup_cpu", "{:.2f}x"), ("+CAM p50", "predict_cam_ms_p50", "{:.1f}"),
    ("b32 img/s", "throughput_b32", "{:.1f}"), ("naive b32", "naive_throughput_b32", "{:.1f}"),
    ("RSS MB", "peak_rss_mb", "{:.0f}"), ("naive RSS", "naive_peak_rss_mb", "{:.0f}"),
]


def format_table(results: list[dict[str, Any]]) -> str:
    rows = [[h for h, _, _ in COLUMNS]]
    for r in results:
        if "error" in r:
            rows.append([r["name"], r.get("status", ""), "error: " + r["error"]] + [""] * (len(COLUMNS) - 3))
            continue
        row = []
        for _, key, fmt in COLUMNS:
            v = r.get(key)
            row.append("-" if v is None else fmt.format(v))
        rows.append(row)
    widths = [max(len(row[i]) for row in rows if len(row[i]) < 40 or row is rows[0]) for i in range(len(COLUMNS))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    ok = [r for r in results if "error" not in r]
    if ok:
        r = ok[0]
        lines.append("")
        lines.append(f"CPU: {r['cpu']} ({r['cpu_count']} cores), torch threads {r['threads']}, "
                     f"{r['runs']} runs, load average {r['load_avg_1m']}. Latencies are wall clock "
                     "(batch 1, preprocessing included); p50 = predict as the app runs it (with the card's "
                     "flip TTA: the slice and its mirror image as one batch of two); fwd p50 = the fast engine doing the naive baseline's work (one "
                     "forward); speedup = naive p50 / fwd p50, in the same run; cpu speedup is the same ratio in "
                     "CPU time, less sensitive to other load. b32 img/s: one forward per image, fast and naive.")
    return "\n".join(lines)


def bench_scan(predictor: Any, runs: int = 10, n_slices: int = 30) -> dict[str, float]:
    """p50 seconds of `predict_scan` on an `n_slices` volume, of the case report's PDF alone, and of a
    report with its Grad-CAM heatmap (what `mrivision report` does after loading the model)."""
    from mrivision.report import case_report

    volume = np.stack([brain_slice(predictor.spec.input_size, seed=i) for i in range(n_slices)])
    result = predictor.predict_scan(volume)  # warm: engine, CAM imports
    img = volume[result.slices_used[0]]
    heat = predictor.explain(img)
    scan = [_timed(lambda: predictor.predict_scan(volume))[0] for _ in range(runs)]
    pdf = [_timed(lambda: case_report(predictor, result, img, heat))[0] for _ in range(runs)]
    full = [_timed(lambda: case_report(predictor, result, img, predictor.explain(img)))[0] for _ in range(runs)]
    return {"slices": n_slices, "predict_scan_s_p50": _pct(scan, 50), "report_pdf_s_p50": _pct(pdf, 50),
            "report_with_gradcam_s_p50": _pct(full, 50)}


def run_bench(args: argparse.Namespace) -> int:
    from mrivision.model.zoo import list_specs
    from mrivision.model.card import list_shipped

    runs = int(getattr(args, "runs", 50) or 50)
    if runs < 1:
        raise ValueError("--runs must be at least 1")
    as_json = bool(getattr(args, "json", False))
    if getattr(args, "scan", False):
        from mrivision.inference.predictor import load_model

        names = [s.strip() for s in args.models.split(",")] if getattr(args, "models", None) else ["default"]
        out = {name: bench_scan(load_model(name), runs=min(runs, 10)) for name in names}
        print(json.dumps(out, indent=2) if as_json else "\n".join(
            f"{n}: {r['slices']}-slice volume predicted in {r['predict_scan_s_p50']:.3f} s (p50); case report "
            f"{r['report_pdf_s_p50']:.3f} s, with its Grad-CAM {r['report_with_gradcam_s_p50']:.3f} s" for n, r in out.items()))
        return 0
    sources = [s.strip() for s in args.models.split(",") if s.strip()] if getattr(args, "models", None) else list_shipped()
    if not sources:
        message = ("no shipped models in weights/. Pass --models with paths, or with registered spec names "
                   f"to bench an untrained architecture ({', '.join(list_specs())}).")
        print(json.dumps({"models": [], "message": message}, indent=2) if as_json else message)
        return 0
    kinds = {s: classify(s) for s in sources}  # unknown names fail here, before any slow work
    results = []
    for s in sources:
        print(f"benchmarking {s} ({kinds[s]}) ...", file=sys.stderr, flush=True)
        results.append(bench_in_subprocess(s, runs, kinds[s] == UNTRAINED))
    if as_json:
        print(json.dumps({"models": results}, indent=2))
    else:
        print(format_table(results))
    return 1 if any("error" in r for r in results) else 0


def _main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m mrivision.bench.latency", description="bench one model (worker process)")
    p.add_argument("--worker", required=True, help="shipped name, weights path, or spec name with --untrained")
    p.add_argument("--runs", type=int, default=50)
    p.add_argument("--untrained", action="store_true")
    a = p.parse_args(argv)
    print(json.dumps(_worker(a.worker, a.runs, a.untrained)))
    return 0


if __name__ == "__main__":
    sys.exit(_main())
