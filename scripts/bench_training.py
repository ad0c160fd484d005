#!/usr/bin/env python
"""Training speed: cached frozen-prefix features vs running the frozen prefix every step.

    python scripts/bench_training.py configs/effnet_probe.yaml configs/neurostagenet_native.yaml [--steps 20]

For each config, times optimiser steps through the real training code (`FeatureSource`,
`train_step`) on real slices in three modes: cached features (what `train` does), the frozen
prefix run on freshly augmented images every step (`cache_views: 0`), and the whole network
trained end to end. Prints images/s, the implied epoch time over the config's training set and
the one-off caching cost. Run on an otherwise idle machine.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mrivision.inputs.datasets import load_dataset, read_sample  # noqa: E402
from mrivision.model.zoo import create_model, get_spec  # noqa: E402
from mrivision.training.config import TrainConfig  # noqa: E402
from mrivision.training.features import FeatureSource  # noqa: E402
from mrivision.training.loop import make_optimizer, train_step  # noqa: E402

N_TRAIN = 4378  # slices in the training part of the pseudo-scan split of train/ (epoch times exclude validation)


def images_per_second(cfg: TrainConfig, images: list[np.ndarray], labels: np.ndarray, train_from: str | None,
                      cache_views: int, steps: int) -> tuple[float, float]:
    """(training images/s after one warm-up step, seconds spent caching features)."""
    torch.manual_seed(0)
    spec = get_spec(cfg.model).replace(**{**cfg.spec, "train_from": train_from})
    model = create_model(spec, pretrained=True)
    t0 = time.perf_counter()
    source = FeatureSource(model, images, dataclasses.replace(cfg, cache_views=cache_views), train=True)
    cache_s = time.perf_counter() - t0
    part = model.trainable_part().train()
    model.frozen_part().eval()
    opt = make_optimizer(cfg, [p for p in part.parameters() if p.requires_grad])
    loss_fn = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    rng = np.random.default_rng(0)
    for step in range(steps + 1):
        if step == 1:
            t0 = time.perf_counter()
        idx = rng.integers(0, len(images), cfg.batch_size)
        train_step(part, source.batch(idx, rng), torch.from_numpy(labels[idx]), opt, loss_fn, cfg.mixup, rng)
    return steps * cfg.batch_size / (time.perf_counter() - t0), cache_s


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("configs", nargs="+", type=Path)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--images", type=int, default=256, help="slices to cache (the per-image cost scales)")
    args = ap.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; epoch = {N_TRAIN} slices")
    print("| config | trainable from | mode | images/s | epoch (s) | one-off caching (s) | config's max epochs (s) |")
    print("|---|---|---|---|---|---|---|")
    for path in args.configs:
        cfg = TrainConfig.from_yaml(path)
        samples = load_dataset(cfg.data if isinstance(cfg.data, str) else cfg.data[0],
                               get_spec(cfg.model).class_names)
        pick = np.random.default_rng(0).choice(len(samples), args.images, replace=False)
        images = [read_sample(samples[i]) for i in pick]
        labels = np.array([samples[i].label for i in pick])
        train_from = get_spec(cfg.model).replace(**cfg.spec).train_from
        views = max(cfg.cache_views, 1)
        modes = [(f"cached features ({views} views)", train_from, views), ("frozen prefix every step", train_from, 0),
                 ("whole network", None, 0)]
        for mode, start, cache_views in modes:
            ips, cache_s = images_per_second(cfg, images, labels, start, cache_views, args.steps)
            caching = cache_s * N_TRAIN / len(images)
            epoch = N_TRAIN / ips
            print(f"| {path.stem} | {start or 'input'} | {mode} | {ips:.0f} | {epoch:.0f} | {caching:.0f} | "
                  f"{caching + cfg.epochs * epoch:.0f} ({cfg.epochs}) |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
