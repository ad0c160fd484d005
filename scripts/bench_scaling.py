#!/usr/bin/env python
"""Latency and peak memory against input size and batch size, fast path and naive eager.

    python scripts/bench_scaling.py                  # the default shipped model (else neurostagenet, untrained)
    python scripts/bench_scaling.py --model altzcnn  # a shipped name, a weights path or a spec name
    python scripts/bench_scaling.py --quick          # tiny settings: proves the script works

Prints one row per (input size, batch size) and writes a plot (default docs/bench_scaling.png).
Convolutional models accept any input size, so a model trained at one size is rebuilt at each
size with the same weights: the numbers show cost, not accuracy. Peak memory is the process's
peak RSS (VmHWM) during that configuration, reset before it where the kernel allows; run on an
otherwise idle machine for numbers worth quoting.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mrivision.bench.latency import UNTRAINED, brain_slice  # noqa: E402
from mrivision.bench.system import cpu_count, cpu_name, peak_rss_mb, reset_peak_rss  # noqa: E402
from mrivision.model.card import default_shipped, list_shipped  # noqa: E402
from mrivision.inference.in_memory import optimize_for_inference  # noqa: E402


def load_at_size(source: str, size: int):
    """(model at size x size, label): shipped weights loaded into the rebuilt architecture, or untrained."""
    from mrivision.model.zoo import create_model, list_specs
    from mrivision.model.weights import load_weights

    if source in list_specs() and source not in list_shipped() and not Path(source).exists():
        return create_model(source, pretrained=False, input_size=(size, size)).eval(), UNTRAINED
    model, card = load_weights(source)
    resized = create_model(model.spec, pretrained=False, input_size=(size, size))
    resized.load_state_dict(model.state_dict())
    return resized.eval(), card.name


def measure(fn, model, size: int, batch: int, runs: int, path: str, backend: str) -> dict:
    """p50 latency of `fn` on a batch, and the peak RSS while running it (peak reset first)."""
    x = torch.from_numpy(np.stack([(brain_slice((size, size), seed=i) - model.spec.mean) / model.spec.std
                                   for i in range(batch)])[:, None].astype(np.float32))
    reset_peak_rss()
    fn(x)  # warm-up
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - t)
    return {"size": size, "batch": batch, "path": path, "backend": backend,
            "ms_p50": float(np.median(times) * 1e3), "ms_per_image": float(np.median(times) * 1e3 / batch),
            "peak_rss_mb": peak_rss_mb()}


def naive(model):
    def fn(x):
        with torch.no_grad():
            return model(x)
    return fn


def plot(rows: list[dict], title: str, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    sizes = sorted({r["size"] for r in rows})
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, s in enumerate(sizes):
        for path, style in (("fast", "-o"), ("naive", "--x")):
            rs = sorted((r for r in rows if r["size"] == s and r["path"] == path), key=lambda r: r["batch"])
            if not rs:
                continue
            b = [r["batch"] for r in rs]
            kw = dict(color=colours[i % len(colours)], label=f"{s}px {path}")
            axes[0].plot(b, [r["ms_p50"] for r in rs], style, **kw)
            axes[1].plot(b, [r["ms_per_image"] for r in rs], style, **kw)
            axes[2].plot(b, [r["peak_rss_mb"] for r in rs], style, **kw)
    for ax, ylabel in zip(axes, ("latency per batch, p50 (ms)", "latency per image (ms)", "peak RSS (MB)")):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("batch size")
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
    axes[0].set_yscale("log")
    axes[0].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", help="shipped name, weights path or spec name (default: the app's default model, else neurostagenet)")
    p.add_argument("--sizes", default="128,176,224", help="square input sizes")
    p.add_argument("--batches", default="1,8,32,64")
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--no-naive", action="store_true", help="fast path only")
    p.add_argument("--out", help="plot path (default docs/bench_scaling.png; with --quick, in the temp folder)")
    p.add_argument("--json", help="also write the rows here")
    p.add_argument("--quick", action="store_true", help="tiny settings (sizes 64,96; batches 1,4; 2 runs; altzcnn)")
    a = p.parse_args(argv)
    if a.quick:
        a.sizes, a.batches, a.runs = "64,96", "1,4", 2
        a.model = a.model or "altzcnn"
    if a.out is None:
        import tempfile

        a.out = str(Path(tempfile.gettempdir()) / "bench_scaling_quick.png" if a.quick else ROOT / "docs" / "bench_scaling.png")
    source = a.model or default_shipped() or "neurostagenet"
    sizes = [int(s) for s in a.sizes.split(",")]
    batches = [int(b) for b in a.batches.split(",")]
    rows = []
    label = source
    print(f"{'size':>5} {'batch':>5} {'path':>6} {'backend':>20} {'ms p50':>10} {'ms/img':>8} {'peak MB':>8}")
    for size in sizes:
        model, label = load_at_size(source, size)
        fast = optimize_for_inference(model)  # built once per input size (its shape is fixed)
        paths = [("fast", fast, fast.backend)] + ([] if a.no_naive else [("naive", naive(model), "eager no_grad")])
        for batch in batches:
            for path, fn, backend in paths:
                r = measure(fn, model, size, batch, a.runs, path, backend)
                rows.append(r)
                print(f"{size:5d} {batch:5d} {r['path']:>6} {r['backend']:>20} {r['ms_p50']:10.1f} "
                      f"{r['ms_per_image']:8.2f} {r['peak_rss_mb']:8.0f}", flush=True)
    title = (f"{source} ({label}) on {cpu_name()}, {cpu_count()} cores, {torch.get_num_threads()} threads, "
             f"{a.runs} runs")
    plot(rows, title, Path(a.out))
    print(f"plot written to {a.out}")
    if a.json:
        Path(a.json).write_text(json.dumps({"model": source, "label": label, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
