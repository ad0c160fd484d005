"""`TrainConfig`: one training run, every field settable in the YAML config."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mrivision.model.spec import ModelSpec
from mrivision.model.zoo import get_spec


@dataclass
class TrainConfig:
    """One training run; every field can be set in the YAML config."""

    model: str
    data: str | list[str] = "../shared/data/alzheimer-4class/train"  # a list is pooled
    test_data: str | None = "../shared/data/alzheimer-4class/test"
    label_names: list[str] | None = None  # names of integer labels 0, 1, ... (Parquet/CSV without names)
    spec: dict[str, Any] = field(default_factory=dict)  # overrides of the registered ModelSpec
    name: str | None = None  # shipped name (default: the spec's name)
    epochs: int = 10
    batch_size: int = 32  # the global batch: split evenly over the processes of a distributed run
    optimizer: str = "adamw"
    lr: float = 1e-3
    weight_decay: float = 1e-4
    label_smoothing: float = 0.1
    balance: str = "sqrt"  # sampler weights: "none" | "sqrt" (1/sqrt(freq)) | "inverse" (1/freq)
    augment: bool = True
    augment_params: dict[str, float] = field(default_factory=dict)  # overrides of `transforms.Augment`
    mixup: float = 0.0  # Beta(a, a) mixup strength; 0 disables
    persist_cache: bool = False  # keep cached features on disk (run_dir/feature_cache) for later runs of the same prefix
    cache_views: int = 3  # views per image cached through the frozen prefix (view 0 is clean); 0: no cache,
    # the frozen prefix runs on freshly augmented images every step (slower; the reference for the cache)
    val_fraction: float = 0.15
    group_threshold: float = 0.97
    random_split: bool = False  # the leakage lesson: split slices at random, ignoring scans
    chain_end_val: int = 0  # > 0: validate on this many slices at each end of every scan's slice chain (mirrors
    # how test/ was built: other slices of the training subjects, next to the training range); for the literature split
    monitor: str = "macro_f1"  # validation metric for early stopping and LR plateau
    patience: int = 5
    lr_patience: int = 2
    seed: int = 0
    tta_hflip: bool = True
    threads: int = 0
    out_dir: str = "weights"
    run_dir: str = "runs"
    limit: int = 0  # use only this many training images (smoke tests)
    folds: int = 5  # subject-level cross-validation (`mrivision cv`)
    external_data: str | None = "../shared/data/oasis2-external-val/manifest.csv"  # validation only
    stream: bool = False  # read `data` (a Parquet file or folder of shards) a row group at a time (`streaming.py`)
    stream_buffer: int = 4  # row groups shuffled together while streaming (the memory ceiling scales with it)

    @classmethod
    def from_yaml(cls, path: str | Path) -> "TrainConfig":
        raw = yaml.safe_load(Path(path).read_text()) or {}
        unknown = set(raw) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"{path}: unknown config keys {sorted(unknown)}")
        return cls(**raw)

    @property
    def run_name(self) -> str:
        return self.name or self.model


def build_spec(cfg: TrainConfig) -> ModelSpec:
    """The registered spec with the config's overrides (and shipped name)."""
    return get_spec(cfg.model).replace(**cfg.spec, **({"name": cfg.name} if cfg.name else {}))


def start_run(cfg: TrainConfig) -> ModelSpec:
    """What `train` and `cv` do first: the thread count, the seeds, and the run's spec."""
    import numpy as np
    import torch

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    return build_spec(cfg)
