"""Time `mrivision report FILE` as a user runs it: a fresh process each time, wall clock, and whether
PyTorch was imported. Prints one line per run and the median.

    python scripts/time_report.py VOLUME [--model NAME] [--runs 3] [--heatmap]
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROBE = ("import sys; sys.argv = ['mrivision', *sys.argv[1:]]; from mrivision.cli import main; code = main(); "
         "print('torch imported:', 'torch' in sys.modules); sys.exit(code)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file")
    parser.add_argument("--model", default="default")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--heatmap", action="store_true")
    args = parser.parse_args()
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "case.pdf"
        command = [sys.executable, "-c", PROBE, "report", args.file, "--out", str(out), "--model", args.model,
                   *(["--heatmap"] if args.heatmap else [])]
        for run in range(args.runs):
            start = time.perf_counter()
            done = subprocess.run(command, capture_output=True, text=True)
            times.append(time.perf_counter() - start)
            last = (done.stdout.strip().splitlines() or [done.stderr.strip()])[-1]
            print(f"run {run + 1}: {times[-1]:.2f} s (exit {done.returncode}; {last})")
    print(f"median {statistics.median(times):.2f} s over {len(times)} runs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
