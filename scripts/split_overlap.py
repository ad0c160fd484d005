"""Measure how close the original test split is to train/: for each test slice position, the
median correlation with its nearest train slice and the label accuracy of that nearest neighbour.

    python scripts/split_overlap.py ../shared/data/alzheimer-4class
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np

from mrivision.inputs.datasets import load_dataset, pseudo_scan_groups, read_sample, thumbnails


def main(root: str) -> int:
    train, test = load_dataset(Path(root) / "train"), load_dataset(Path(root) / "test")
    train_imgs = [read_sample(s) for s in train]
    groups = pseudo_scan_groups(train_imgs, [s.label for s in train])
    per_class = {c: len({g for g, s in zip(groups, train) if s.label == c}) for c in range(4)}
    print(f"train/: {len(train)} slices in {len(set(groups))} pseudo-scans {per_class}; "
          f"test/: {len(test)} slices in {len({s.group for s in test})} scans")
    sims = thumbnails([read_sample(s) for s in test]) @ thumbnails(train_imgs).T
    best, nearest = sims.max(1), sims.argmax(1)
    hit = np.array([train[j].label == s.label for j, s in zip(nearest, test)])
    position = np.array([int(re.match(r"\d+", s.name.split("/")[1]).group()) for s in test])
    print("slice | test slices | median corr. to nearest train slice | 1-NN label accuracy")
    for k in sorted(set(position)):
        m = position == k
        print(f"{k:5d} | {m.sum():11d} | {np.median(best[m]):35.4f} | {hit[m].mean():.3f}")
    print(f"all   | {len(test):11d} | {np.median(best):35.4f} | {hit.mean():.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/alzheimer-4class"))
