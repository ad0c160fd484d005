"""Measure where the training slices have the brain (the constants of `mrivision.inputs.framing`).

    python scripts/measure_framing.py ../shared/data/alzheimer-4class/train [--n 300]
"""
from __future__ import annotations

import argparse

import numpy as np

from mrivision.inputs.datasets import load_dataset, read_sample
from mrivision.inputs.framing import background_level, brain_mask


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data")
    ap.add_argument("--n", type=int, default=300)
    args = ap.parse_args()
    samples = load_dataset(args.data)
    rng = np.random.default_rng(0)
    rows = []
    for i in rng.choice(len(samples), min(args.n, len(samples)), replace=False):
        img = read_sample(samples[i])
        bg = background_level(img)
        mask = brain_mask(img, bg)
        ys, xs = np.nonzero(mask)
        h, w = img.shape
        rows.append(((ys.max() + 1 - ys.min()) / h, (xs.max() + 1 - xs.min()) / w,
                     (ys.max() + 1 + ys.min()) / 2 / h, (xs.max() + 1 + xs.min()) / 2 / w,
                     np.percentile(img[mask], 99), mask.mean(), bg))
    names = ("BRAIN_HEIGHT", "BRAIN_WIDTH", "centre row", "centre column", "BRAIN_P99", "mask fraction", "background")
    for name, col in zip(names, np.array(rows).T):
        print(f"{name:14s} median {np.median(col):.3f}  p10 {np.percentile(col, 10):.3f}  p90 {np.percentile(col, 90):.3f}")


if __name__ == "__main__":
    main()
