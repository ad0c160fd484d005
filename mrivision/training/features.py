"""The inputs of a model's trainable part: cached frozen-prefix features, or live images.

A model whose first layers are frozen needs them run only once per image (and per augmented
view): `FeatureSource` caches those features in memory (fp16), optionally on disk
(`run_dir/feature_cache`, keyed by the prefix, the augmentation and the images) for later runs.
In a distributed run rank 0 computes the cache once and the other ranks read it from that file.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path
from typing import Iterator, Protocol, Sequence

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from mrivision.inputs.transforms import Augment, normalise
from mrivision.model.zoo import MRINet
from mrivision.training.config import TrainConfig
from mrivision.training.distributed import SINGLE, Dist, shared_file
from mrivision.training.sampling import DistributedSubjectSampler, sampler_weights

Batches = Iterator[tuple[torch.Tensor, torch.Tensor, np.random.Generator]]  # (inputs, labels, the step's generator)


class TrainingSource(Protocol):
    """What `loop.fit` reads: this process's batches of an epoch, and logits for any samples
    (`FeatureSource` in memory, `streaming.StreamSource` from Parquet row groups)."""

    def train_batches(self, tr_idx: np.ndarray, labels: np.ndarray, epoch: int, dist: Dist = SINGLE) -> tuple[int, Batches]:
        ...

    def logits(self, part: nn.Module, idx: Sequence[int], dist: Dist = SINGLE, batch_size: int = 128) -> np.ndarray:
        ...


def model_inputs(model: MRINet, canvases: Sequence[np.ndarray], augment: Augment | None, rng: np.random.Generator,
                 device: torch.device | str) -> torch.Tensor:
    """What the trainable part of `model` takes for these framed slices: augmented (when `augment`),
    normalised, then through the frozen prefix (no gradients)."""
    ims = [augment(im, rng) for im in canvases] if augment is not None else list(canvases)
    x = torch.from_numpy(normalise(ims, model.spec)).to(device)
    if model.split_index() == 0:
        return x
    with torch.no_grad():
        return model.frozen_part()(x)


class FeatureSource:
    """Inputs to the trainable part for any subset of framed canvases: cached frozen features
    (view 0 clean, the others augmented), or (augmented) canvases run through the frozen prefix."""

    def __init__(self, model: MRINet, canvases: list[np.ndarray], cfg: TrainConfig, dist: Dist = SINGLE) -> None:
        self.model, self.canvases, self.cfg, self.device = model, canvases, cfg, dist.device
        self.augment = Augment(**cfg.augment_params) if cfg.augment else None
        self.cached: torch.Tensor | None = None
        if model.split_index() > 0 and cfg.cache_views > 0:
            views = cfg.cache_views if self.augment else 1
            if dist.enabled:  # built once by rank 0, shared through the file
                path = self._disk_path(views)
                self.cached = shared_file(dist, path, lambda: self._cache(views))
                if dist.is_main and not cfg.persist_cache:
                    path.unlink(missing_ok=True)
                    with contextlib.suppress(OSError):
                        path.parent.rmdir()  # when no persisted cache is kept beside it
                return
            path = self._disk_path(views) if cfg.persist_cache else None
            if path is not None and path.is_file():
                self.cached = torch.load(path, map_location="cpu", weights_only=True)
            else:
                self.cached = self._cache(views)
                if path is not None:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    torch.save(self.cached, path.with_suffix(".tmp"))
                    os.replace(path.with_suffix(".tmp"), path)

    def _disk_path(self, views: int) -> Path:
        """Where these features are kept: keyed by the frozen prefix, the augmentation and the canvases."""
        spec = self.model.spec
        prefix = {k: v for k, v in spec.to_dict().items() if k in ("family", "arch", "input_size", "mean", "std", "init",
                                                                    "pretrained_file", "train_from", "framing", "extra")}
        digest = hashlib.sha256(json.dumps([prefix, self.cfg.augment_params, self.cfg.augment, views, self.cfg.seed],
                                           sort_keys=True).encode())
        for c in self.canvases:
            digest.update(np.ascontiguousarray(c).tobytes())
        return Path(self.cfg.run_dir) / "feature_cache" / f"{digest.hexdigest()[:24]}.pt"

    def _cache(self, views: int) -> torch.Tensor:
        frozen = self.model.frozen_part().eval()
        rng = np.random.default_rng(self.cfg.seed + 1)
        out = []
        with torch.inference_mode():
            for v in range(views):
                feats = []
                for i in tqdm(range(0, len(self.canvases), 64), desc=f"caching frozen features (view {v + 1}/{views})",
                              leave=False, mininterval=2):
                    ims = self.canvases[i:i + 64]
                    if v > 0:
                        ims = [self.augment(im, rng) for im in ims]
                    x = torch.from_numpy(normalise(ims, self.model.spec)).to(self.device)
                    feats.append(frozen(x).half().cpu())
                out.append(torch.cat(feats))
        return torch.stack(out)  # (views, N, C, H, W)

    def batch(self, idx: np.ndarray, rng: np.random.Generator, train: bool) -> torch.Tensor:
        """Inputs for samples `idx` (on the run's device): augmented when `train`, clean otherwise."""
        if self.cached is not None:
            views = rng.integers(0, self.cached.shape[0], size=len(idx)) if train else np.zeros(len(idx), int)
            return self.cached[torch.from_numpy(views), torch.from_numpy(np.asarray(idx))].float().to(self.device)
        return model_inputs(self.model, [self.canvases[i] for i in idx], self.augment if train else None, rng,
                            self.device)

    def train_batches(self, tr_idx: np.ndarray, labels: np.ndarray, epoch: int, dist: Dist = SINGLE) -> tuple[int, Batches]:
        """One epoch of this process's training batches (class-balanced draws, `sampling`): their
        number and the batches, each with the generator its step may draw from (mixup)."""
        cfg = self.cfg
        steps = max(1, len(tr_idx) // cfg.batch_size)
        sampler = DistributedSubjectSampler(tr_idx, sampler_weights(labels[tr_idx], cfg.balance, self.model.spec.num_classes),
                                            cfg.batch_size, steps, cfg.seed, dist)
        sampler.set_epoch(epoch)
        # one process keeps its single random stream; several draw their own augmentations
        rng = sampler.rng if dist.world_size == 1 else np.random.default_rng((cfg.seed * 1000 + epoch, dist.rank))

        def batches() -> Batches:
            for idx in sampler:
                yield self.batch(idx, rng, train=True), torch.from_numpy(labels[idx]).to(self.device), rng

        return steps, batches()

    def logits(self, part: nn.Module, idx: Sequence[int], dist: Dist = SINGLE, batch_size: int = 128) -> np.ndarray:
        """Logits of the trainable part for the clean inputs of samples `idx`; in a distributed run each
        process scores its share and all of them get every logit, in the order of `idx`."""
        part.eval()
        mine = np.array_split(np.asarray(idx, dtype=np.int64), dist.world_size)[dist.rank]
        out = []
        rng = np.random.default_rng(0)
        with torch.inference_mode():
            for i in range(0, len(mine), batch_size):
                out.append(part(self.batch(mine[i:i + batch_size], rng, train=False)).float().cpu().numpy())
        shares = [s for s in dist.all_gather(np.concatenate(out) if out else None) if s is not None]
        return np.concatenate(shares) if shares else np.zeros((0, 0), np.float32)
