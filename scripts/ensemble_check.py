#!/usr/bin/env python
"""Would averaging shipped models help? Decided on the new-subject validation split, never on test.

    python scripts/ensemble_check.py [--config configs/neurostagenet.yaml] [--models a,b,c] [--test DIR]

Rebuilds the validation split of the config (pseudo-scan groups carved from train/, as training
does), runs every shipped four-stage model on it and prints slice accuracy, balanced accuracy and
macro-F1 (`evaluation.metrics.evaluate_predictions`) for each model and for the average of the probabilities of every subset, next to the
majority-class rate. `--test DIR` adds the same columns on test data, for the record only.
Models trained on another split are skipped. The same validation slices also chose each model's
epoch and temperature, so the scores flatter every row a little; they serve a relative choice.
"""
from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mrivision.constants import CLASS_NAMES  # noqa: E402
from mrivision.evaluation.metrics import evaluate_predictions  # noqa: E402
from mrivision.inputs.datasets import load_dataset, read_sample  # noqa: E402
from mrivision.inference.predictor import Predictor, list_models  # noqa: E402
from mrivision.training.config import TrainConfig  # noqa: E402
from mrivision.training.splits import prepare_data  # noqa: E402


def scores(y: np.ndarray, probs: np.ndarray) -> str:
    """Slice accuracy, balanced accuracy and macro-F1 of the evaluation protocol."""
    s = evaluate_predictions(y, probs, CLASS_NAMES, n_boot=0)["slice"]
    return f"{s['accuracy']:.3f} | {s['balanced_accuracy']:.3f} | {s['macro_f1']:.3f}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", type=Path, default=ROOT / "configs" / "neurostagenet.yaml")
    ap.add_argument("--models", help="comma-separated shipped names (default: every four-stage model)")
    ap.add_argument("--test", help="also score on this test data (for the record, not for the decision)")
    args = ap.parse_args()
    cfg = TrainConfig.from_yaml(args.config)
    samples, images, _, va_idx = prepare_data(cfg, CLASS_NAMES)
    y_val = np.array([samples[i].label for i in va_idx])
    val_images = [images[i] for i in va_idx]
    test = load_dataset(args.test) if args.test else []
    y_test, test_images = np.array([s.label for s in test]), [read_sample(s) for s in test]

    names = args.models.split(",") if args.models else list_models()
    probs: dict[str, tuple[np.ndarray, np.ndarray | None]] = {}
    same_split = ("data", "val_fraction", "group_threshold", "seed", "random_split", "limit")
    for name in names:
        predictor = Predictor.load(name)
        trained = predictor.card.training.config if predictor.card.training else {}
        if predictor.class_names != CLASS_NAMES or trained.get("random_split"):
            continue  # binary models and the leaky random-split model are not comparable here
        if any(trained.get(k) != getattr(cfg, k) for k in same_split):
            print(f"skipping {name}: trained on another split than {args.config.name}")
            continue
        probs[name] = (predictor.predict_proba(val_images),
                       predictor.predict_proba(test_images) if test else None)

    counts = np.bincount(y_val, minlength=len(CLASS_NAMES))
    print(f"validation: {len(y_val)} slices from {len({samples[i].group for i in va_idx})} pseudo-scans, "
          f"per class {dict(zip(CLASS_NAMES, counts.tolist()))}; majority-class rate {counts.max() / len(y_val):.3f}")
    head = "| models | val acc | val bal. acc | val macro-F1 |" + (" test acc | test bal. acc | test macro-F1 |" if test else "")
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for r in range(1, len(probs) + 1):
        for combo in itertools.combinations(probs, r):
            val = np.mean([probs[n][0] for n in combo], 0)
            line = f"| {' + '.join(combo)} | {scores(y_val, val)} |"
            if test:
                line += f" {scores(y_test, np.mean([probs[n][1] for n in combo], 0))} |"
            print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
