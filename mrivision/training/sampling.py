"""Which training slices each step sees: class-balanced draws, shared out over the processes.

Every process draws the same global batch from the training side of the subject split (the same
seeded generator on every rank) and keeps its own contiguous share, so N processes with batch
B/N each see exactly the batches one process with batch B sees, and their averaged gradients
are that process's gradient (up to batch-norm statistics and float rounding).
"""
from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np
import torch

from mrivision.training.distributed import SINGLE, Dist


def sampler_weights(labels: np.ndarray, mode: str, n_classes: int) -> np.ndarray:
    counts = np.bincount(labels, minlength=n_classes).astype(float)
    power = {"none": 0.0, "sqrt": 0.5, "inverse": 1.0}[mode]
    w = 1.0 / np.maximum(counts, 1) ** power
    return w[labels] / w[labels].sum()


class DistributedSubjectSampler(torch.utils.data.Sampler[np.ndarray]):
    """Per-process index batches for one epoch of `steps` steps, drawn with replacement from the
    training indices (never a validation subject: the split is made and checked before) with
    probabilities `weights`. `set_epoch` reseeds; `rng` is the epoch's generator, which a single
    process also uses for augmentation (so its random stream is what it always was)."""

    def __init__(self, train_idx: Sequence[int], weights: np.ndarray, batch_size: int, steps: int, seed: int,
                 dist: Dist = SINGLE) -> None:
        self.train_idx, self.weights = np.asarray(train_idx, np.int64), weights
        self.batch_size, self.steps, self.seed, self.dist = batch_size, steps, seed, dist
        self.per_process = dist.per_process(batch_size)
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        self.rng = np.random.default_rng(self.seed * 1000 + epoch)

    def __len__(self) -> int:
        return self.steps

    def __iter__(self) -> Iterator[np.ndarray]:
        lo = self.dist.rank * self.per_process
        for _ in range(self.steps):
            batch = self.train_idx[self.rng.choice(len(self.train_idx), size=self.batch_size, p=self.weights)]
            yield batch[lo:lo + self.per_process]
