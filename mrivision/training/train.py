"""`mrivision train`: one run from a config to a shipped model.

`train(config)` reads the data, makes the subject-level split (`splits`), caches the frozen
prefix's features (`features`), runs the loop (`loop`: a checkpoint every epoch, `--resume`
continues from it) and ships `weights/NAME.safetensors` + `NAME.json` (`shipping`). Under
`torchrun` the same call trains on every process (`distributed`); rank 0 alone writes.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import numpy as np

from mrivision.inputs.transforms import frame
from mrivision.model.card import ModelCard
from mrivision.model.zoo import create_model
from mrivision.training.config import TrainConfig, start_run
from mrivision.training.distributed import Dist, process_group, quiet
from mrivision.training.features import FeatureSource
from mrivision.training.finish import finish
from mrivision.training.loop import fit
from mrivision.training.splits import prepare_data
from mrivision.training.streaming import train_streaming


def train(cfg: TrainConfig, resume: bool = False, log: Callable[[str], None] = print) -> ModelCard:
    """Train, checkpoint every epoch, keep the best epoch, write weights and card; returns the card
    (on every rank of a distributed run)."""
    with process_group() as dist:
        return _train(cfg, resume, log if dist.is_main else quiet, dist)


def _train(cfg: TrainConfig, resume: bool, log: Callable[[str], None], dist: Dist) -> ModelCard:
    spec = start_run(cfg)
    run_dir = Path(cfg.run_dir) / cfg.run_name
    started = time.time()
    if cfg.stream:
        return train_streaming(cfg, spec, resume, log, dist)

    samples, images, tr_idx, va_idx = prepare_data(cfg, spec.class_names, dist)
    labels = np.array([s.label for s in samples])
    n_groups = {c: len({s.group for s in samples if s.label == k}) for k, c in enumerate(spec.class_names)}
    log(f"{len(tr_idx)} training / {len(va_idx)} validation slices; scan groups per class {n_groups}"
        f"{' (ignored: random split)' if cfg.random_split else ''}"
        f"{f'; {dist.world_size} processes ({dist.backend})' if dist.enabled else ''}")

    model = create_model(spec, pretrained=True).to(dist.device)
    canvases = [frame(im, spec)[0] for im in images]
    t0 = time.time()
    source = FeatureSource(model, canvases, cfg, dist)
    cache_s = time.time() - t0
    result = fit(model, source, labels, tr_idx, va_idx, cfg, run_dir, resume, log, dist)
    split = ("random slices (leaky)" if cfg.random_split else
             f"{cfg.chain_end_val} slices at each end of every pseudo-scan's slice chain (as test/ was built)"
             if cfg.chain_end_val else "pseudo-scan groups from train/")
    return finish(cfg, model, samples, labels, tr_idx, va_idx, result, lambda: [canvases[i] for i in tr_idx],
                  split=split, seconds=time.time() - started, cache_seconds=cache_s, log=log, dist=dist)
