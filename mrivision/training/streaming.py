"""Training on a Parquet data set larger than memory (`stream: true`, `mrivision train --stream`).

The images are never all in memory: each epoch every process reads its own row groups
(`ParquetStream.shard`, a fresh order each epoch) through a shuffle buffer of `stream_buffer`
row groups, decodes and frames a batch, and runs the frozen prefix live (no feature cache).
Only the small columns (label, group, row name) of the whole data set are held.

Class balance: where the in-memory loop draws batches with probabilities `sampler_weights`, a
stream keeps each training row with probability weight / max weight (the same class mix in
expectation). Every process takes the same number of steps (the fewest kept rows of any process,
in whole batches), so DDP's collectives stay in step.
"""
from __future__ import annotations

import itertools
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from mrivision.inputs.datasets import Sample
from mrivision.inputs.image import load_image
from mrivision.inputs.streaming import ParquetStream
from mrivision.inputs.transforms import Augment, frame
from mrivision.model.card import ModelCard
from mrivision.model.spec import ModelSpec
from mrivision.model.zoo import MRINet, create_model
from mrivision.training.config import TrainConfig
from mrivision.training.distributed import SINGLE, Dist
from mrivision.training.features import Batches, model_inputs
from mrivision.training.finish import finish
from mrivision.training.loop import fit
from mrivision.training.sampling import sampler_weights
from mrivision.training.splits import split

OOD_IMAGES = 2000  # training slices the OOD detector is fitted on (`ood.fit_ood`'s own cap)


class StreamSource:
    """The trainable part's inputs read from a `ParquetStream` (the interface of `FeatureSource`)."""

    def __init__(self, model: MRINet, stream: ParquetStream, cfg: TrainConfig, dist: Dist = SINGLE) -> None:
        self.model, self.stream, self.cfg, self.device = model, stream, cfg, dist.device
        self.augment = Augment(**cfg.augment_params) if cfg.augment else None

    def canvases(self, blobs: Sequence[bytes]) -> list[np.ndarray]:
        return [frame(load_image(b), self.model.spec)[0] for b in blobs]

    def inputs(self, blobs: Sequence[bytes], rng: np.random.Generator, train: bool) -> torch.Tensor:
        return model_inputs(self.model, self.canvases(blobs), self.augment if train else None, rng, self.device)

    def train_batches(self, tr_idx: np.ndarray, labels: np.ndarray, epoch: int, dist: Dist = SINGLE) -> tuple[int, Batches]:
        """One epoch of this process's batches from its row groups (see the module's note on balance)."""
        cfg, stream = self.cfg, self.stream
        per = dist.per_process(cfg.batch_size)
        shared = np.random.default_rng(cfg.seed * 1000 + epoch)  # the same draws on every process
        order = shared.permutation(len(stream.row_groups))
        w = sampler_weights(labels[tr_idx], cfg.balance, self.model.spec.num_classes)
        keep = np.zeros(stream.num_rows, bool)
        keep[tr_idx] = shared.random(len(tr_idx)) < w / w.max()
        starts = [rg.first_row for rg in stream.row_groups]
        per_group = np.add.reduceat(keep.astype(np.int64), starts) if starts else np.zeros(0, int)
        counts = [int(per_group[stream.shard(r, dist.world_size, order)].sum()) for r in range(dist.world_size)]
        steps = min(counts) // per
        if steps == 0:
            raise ValueError(f"a process has {min(counts)} training rows this epoch, fewer than its batch of {per}: "
                             f"use smaller row groups, fewer processes or a smaller batch")
        rng = np.random.default_rng((cfg.seed * 1000 + epoch, dist.rank))

        def batches() -> Batches:
            rows = stream.rows(stream.shard(dist.rank, dist.world_size, order), keep, cfg.stream_buffer, rng)
            for _ in range(steps):
                chunk = list(itertools.islice(rows, per))
                idx = np.array([i for i, _ in chunk])
                yield self.inputs([b for _, b in chunk], rng, True), torch.from_numpy(labels[idx]).to(self.device), rng
            rows.close()

        return steps, batches()

    def logits(self, part: nn.Module, idx: Sequence[int], dist: Dist = SINGLE, batch_size: int = 128) -> np.ndarray:
        """Logits for the clean inputs of rows `idx` (in that order): each process scores the rows in
        its row groups, and all of them get every logit."""
        part.eval()
        idx = np.asarray(idx, np.int64)
        wanted = np.zeros(self.stream.num_rows, bool)
        wanted[idx] = True
        rows = self.stream.rows(self.stream.shard(dist.rank, dist.world_size), wanted, self.cfg.stream_buffer)
        got, out = [], []
        rng = np.random.default_rng(0)
        with torch.inference_mode():
            while chunk := list(itertools.islice(rows, batch_size)):
                got += [i for i, _ in chunk]
                out.append(part(self.inputs([b for _, b in chunk], rng, False)).float().cpu().numpy())
        shares = [s for s in dist.all_gather((got, np.concatenate(out) if out else None)) if s[1] is not None]
        if not shares:
            return np.zeros((0, 0), np.float32)
        where = {r: k for k, r in enumerate(r for g, _ in shares for r in g)}
        return np.concatenate([lg for _, lg in shares])[[where[i] for i in idx]]

    def ood_canvases(self, tr_idx: Sequence[int], n: int = OOD_IMAGES) -> list[np.ndarray]:
        """Framed canvases of (at most `n`, a seeded random subset of) the training rows."""
        chosen = np.random.default_rng(self.cfg.seed).permutation(np.asarray(tr_idx))[:n]
        wanted = np.zeros(self.stream.num_rows, bool)
        wanted[chosen] = True
        return self.canvases([b for _, b in self.stream.rows(range(len(self.stream.row_groups)), wanted)])


def stream_split(cfg: TrainConfig, stream: ParquetStream, class_names: Sequence[str],
                 dist: Dist) -> tuple[list[Sample], np.ndarray, np.ndarray, np.ndarray]:
    """Rows (as image-less samples), their labels, and the training / validation row indices: made by
    rank 0 from the group column, taken by every process, checked to agree."""
    if cfg.chain_end_val:
        raise ValueError("a chain-end split orders each scan's slices by their images; it cannot stream")
    labels = stream.labels(class_names, cfg.label_names)
    samples = [Sample(b"", int(y), g, n) for y, g, n in zip(labels, stream.groups(), stream.names())]
    rows = np.arange(len(samples))
    if cfg.limit:
        rows = np.sort(np.random.default_rng(cfg.seed).permutation(len(samples))[: cfg.limit])
    made = None
    if dist.is_main:
        tr, va = split(cfg, [samples[i] for i in rows])
        made = (rows[tr], rows[va])
    tr_idx, va_idx = dist.broadcast(made)
    dist.check_same("the streamed rows and their subject split", ([s.name for s in samples], tr_idx, va_idx))
    return samples, labels, tr_idx, va_idx


def train_streaming(cfg: TrainConfig, spec: ModelSpec, resume: bool, log: Callable[[str], None],
                    dist: Dist) -> ModelCard:
    """`train` for `stream: true`: the same loop, checkpoints and card, reading the data in row groups."""
    if not isinstance(cfg.data, str):
        raise ValueError("streaming reads one Parquet file or one folder of Parquet shards, not a list")
    started = time.time()
    stream = ParquetStream(cfg.data)
    samples, labels, tr_idx, va_idx = stream_split(cfg, stream, spec.class_names, dist)
    log(f"streaming {stream.num_rows} rows in {len(stream.row_groups)} row groups of {len(stream.files)} file(s): "
        f"{len(tr_idx)} training / {len(va_idx)} validation rows"
        f"{f'; {dist.world_size} processes ({dist.backend})' if dist.enabled else ''}")
    model = create_model(spec, pretrained=True).to(dist.device)
    source = StreamSource(model, stream, cfg, dist)
    result = fit(model, source, labels, tr_idx, va_idx, cfg, Path(cfg.run_dir) / cfg.run_name, resume, log, dist)
    used = np.sort(np.concatenate([tr_idx, va_idx]))
    return finish(cfg, model, [samples[i] for i in used], labels, tr_idx, va_idx, result,
                  lambda: source.ood_canvases(tr_idx), split="scan groups (the group column), streamed",
                  seconds=time.time() - started, cache_seconds=0.0, log=log, dist=dist)
