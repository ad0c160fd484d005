"""Measure how slice predictions should become a scan's stage, on the test/ scans (7 slices each).

    python scripts/scan_aggregation.py [MODEL ...]     (default: the shipped four-stage models)

Reads each model's predictions file (`weights/NAME.predictions.csv`, written with its card) and
prints scan-level accuracy and balanced accuracy for every rule in `mrivision.inference.scan.AGGREGATIONS`.
"""
from __future__ import annotations

import sys

import numpy as np
import pandas as pd

from mrivision.model.card import ModelCard, list_shipped, resolve
from mrivision.constants import CLASS_NAMES
from mrivision.evaluation.metrics import evaluate_predictions
from mrivision.inference.scan import AGGREGATIONS


def main(argv: list[str]) -> int:
    names = argv or [n for n in list_shipped() if ModelCard.read(resolve(n)[1]).class_names == CLASS_NAMES]
    print("| model | " + " | ".join(f"{a} acc. / bal. acc." for a in AGGREGATIONS) + " |")
    print("|---|" + "---|" * len(AGGREGATIONS))
    for name in names:
        csv = resolve(name)[0].with_suffix(".predictions.csv")
        if not csv.is_file():
            continue
        table = pd.read_csv(csv)
        probs = table[[f"p_{c}" for c in CLASS_NAMES]].to_numpy()
        cells = []
        for rule in AGGREGATIONS.values():
            scans = [(CLASS_NAMES.index(g["true"].iloc[0]), rule(probs[g.index])) for _, g in table.groupby("group")]
            y = [t for t, _ in scans]
            p = np.stack([q for _, q in scans])
            r = evaluate_predictions(y, p / p.sum(1, keepdims=True), CLASS_NAMES, n_boot=0)["slice"]
            cells.append(f"{r['accuracy']:.3f} / {r['balanced_accuracy']:.3f}")
        print(f"| `{name}` | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
