#!/usr/bin/env python
"""Re-evaluate every shipped model on the data its card names and compare with the card.

    python scripts/check_cards.py [--models a,b] [--tolerance 0.005]

Prints one row per model and metric (slice and scan accuracy, balanced accuracy, macro-F1) and
exits 1 if any fresh number differs from the card by more than the tolerance.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mrivision.evaluation.run import evaluate_model  # noqa: E402
from mrivision.inference.predictor import Predictor, list_models  # noqa: E402

METRICS = ("accuracy", "balanced_accuracy", "macro_f1")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", help="comma-separated shipped names (default: all)")
    ap.add_argument("--tolerance", type=float, default=0.005)
    args = ap.parse_args()
    failed = False
    print("| model | level | metric | card | fresh | ok |\n|---|---|---|---|---|---|")
    for name in args.models.split(",") if args.models else list_models():
        predictor = Predictor.load(name)
        metrics = predictor.card.metrics
        if "test" not in metrics or "path" not in metrics.get("test_data", {}):
            print(f"| {name} | – | – | no test metrics in the card | – | – |")
            continue
        path = metrics["test_data"]["path"]
        data = path if Path(path).is_absolute() else ROOT / path
        fresh = evaluate_model(predictor, data, n_boot=10)
        if fresh["data"] != {k: metrics["test_data"].get(k) for k in fresh["data"]}:
            print(f"| {name} | – | – | the data at {path} is not the data the card was evaluated on | – | NO |")
            failed = True
            continue
        for level in ("slice", "scan"):
            for key in METRICS:
                card, now = metrics["test"][level][key], fresh[level][key]
                ok = abs(card - now) <= args.tolerance
                failed |= not ok
                print(f"| {name} | {level} | {key} | {card:.4f} | {now:.4f} | {'yes' if ok else 'NO'} |", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
