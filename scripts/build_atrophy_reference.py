"""Build the atrophy reference table shipped with the package (`mrivision/anatomy/atrophy_reference.json`):
each measure's subject means over the NonDemented subjects of `train/` (pseudo-scan groups).

    .venv/bin/python scripts/build_atrophy_reference.py [--train PATH] [--slices /tmp/x/train_slices.csv]

`--slices`: a per-slice table to reuse (read if it exists, else written), shared with
`measure_atrophy_auc.py` so the slow pass over `train/` runs once.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from mrivision.anatomy.atrophy import MEASURES, REFERENCE_FILE, REFERENCE_GROUP
from mrivision.evaluation.atrophy_cohort import read_cohort, slice_table, subject_means
from mrivision.inputs.datasets import fingerprint, load_dataset

DIGITS = 5


def train_slices(train: str, cache: str | None) -> pd.DataFrame:
    """The per-slice measures of `train` (read from / written to `cache` when given)."""
    if cache and Path(cache).exists():
        return pd.read_csv(cache)
    start = time.perf_counter()
    with threadpool_limits(1):
        table = slice_table(*read_cohort(train))
    print(f"measured {len(table)} slices in {time.perf_counter() - start:.0f} s")
    if cache:
        Path(cache).parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(cache, index=False)
    return table


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train", default="../shared/data/alzheimer-4class/train")
    ap.add_argument("--slices", default=None, help="per-slice table to reuse or write (CSV, outside the repo)")
    args = ap.parse_args()
    table = train_slices(args.train, args.slices)
    subjects = subject_means(table)
    normal = subjects[subjects["label"] == 0]
    out = {"reference_group": REFERENCE_GROUP,
           "data": {"path": "train/", **fingerprint(load_dataset(args.train))},
           "n_subjects": int(len(normal)), "n_slices": int(normal["n_slices"].sum()),
           "slices_without_brain": int(table[list(MEASURES)].isna().any(axis=1).sum()),
           "subject_means": {m: [round(float(v), DIGITS) for v in np.sort(normal[m].to_numpy())] for m in MEASURES}}
    REFERENCE_FILE.write_text(json.dumps(out, indent=1) + "\n")
    print(f"{len(normal)} NonDemented subjects ({out['n_slices']} slices) -> {REFERENCE_FILE} "
          f"({REFERENCE_FILE.stat().st_size / 1024:.1f} KB)")
    for m in MEASURES:
        q = np.percentile(normal[m], [5, 50, 95])
        print(f"  {m:20s} 5% {q[0]:.4f}  median {q[1]:.4f}  95% {q[2]:.4f}")


if __name__ == "__main__":
    main()
