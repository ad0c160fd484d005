"""`mrivision bench`: each model measured in a fresh worker process (`bench_model`), as a table or JSON.

`python -m mrivision.bench.cli --worker SOURCE` is the worker: it prints one JSON line.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from mrivision.bench.latency import TRAINED, UNTRAINED, bench_model
from mrivision.bench.system import child_env


# ---------------------------------------------------------------- one model in a fresh process

def _worker(source: str, runs: int, untrained: bool) -> dict[str, Any]:
    t = time.perf_counter()
    from mrivision.model.zoo import create_model
    from mrivision.inference.predictor import Predictor, load_model

    import_s = time.perf_counter() - t
    t = time.perf_counter()
    if untrained:
        predictor = Predictor(create_model(source, pretrained=False))
        method = "create_model(pretrained=False) in a fresh process"
    else:
        predictor = load_model(source)
        method = "load_model in a fresh process"
    load_s = time.perf_counter() - t
    result = bench_model(predictor, runs, load_s=load_s, load_method=method)
    result.update(source=source, status=UNTRAINED if untrained else TRAINED, import_s=round(import_s, 3))
    return result


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
    cmd = [sys.executable, "-m", "mrivision.bench.cli", "--worker", source, "--runs", str(runs)]
    if untrained:
        cmd.append("--untrained")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=child_env())
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


def run_bench(args: argparse.Namespace) -> int:
    from mrivision.model.zoo import list_specs
    from mrivision.model.card import list_shipped

    runs = int(getattr(args, "runs", 50) or 50)
    if runs < 1:
        raise ValueError("--runs must be at least 1")
    as_json = bool(getattr(args, "json", False))
    if getattr(args, "scan", False):
        from mrivision.bench.scan import bench_scan, format_scan_bench
        from mrivision.inference.predictor import load_model

        names = [s.strip() for s in args.models.split(",")] if getattr(args, "models", None) else ["default"]
        out = {name: bench_scan(load_model(name), runs=min(runs, 10)) for name in names}
        print(json.dumps(out, indent=2) if as_json else "\n".join(format_scan_bench(n, r) for n, r in out.items()))
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
    p = argparse.ArgumentParser(prog="python -m mrivision.bench.cli", description="bench one model (worker process)")
    p.add_argument("--worker", required=True, help="shipped name, weights path, or spec name with --untrained")
    p.add_argument("--runs", type=int, default=50)
    p.add_argument("--untrained", action="store_true")
    a = p.parse_args(argv)
    print(json.dumps(_worker(a.worker, a.runs, a.untrained)))
    return 0


if __name__ == "__main__":
    sys.exit(_main())
