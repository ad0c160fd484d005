"""Which slices train and which validate: scan groups, subject-level splits and the leakage check.

Adjacent slices of a scan are near-duplicates, so validation is carved by scan group (pseudo-scans
found by image similarity when the file names do not say), and a split that puts one subject on
both sides is refused (`check_disjoint`). The random split exists only as the leakage lesson, and
the chain-end split mirrors how the literature's test split was built.
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np
from tqdm import tqdm

from mrivision.inputs.datasets import Sample, group_split, load_dataset, pseudo_scan_groups, read_sample, thumbnails
from mrivision.training.config import TrainConfig
from mrivision.training.distributed import SINGLE, Dist


def load_images(samples: Sequence[Sample], desc: str) -> list[np.ndarray]:
    return [read_sample(s) for s in tqdm(samples, desc=desc, leave=False, mininterval=2)]


def assign_groups(samples: list[Sample], images: list[np.ndarray], threshold: float) -> list[Sample]:
    """Tree data without scan names gets pseudo-scan groups from image similarity."""
    if len({s.group for s in samples}) < len(samples):
        return samples
    groups = pseudo_scan_groups(images, [s.label for s in samples], threshold)
    return [dataclasses.replace(s, group=g) for s, g in zip(samples, groups)]


def check_disjoint(samples: Sequence[Sample], train_idx: Sequence[int], held_idx: Sequence[int]) -> None:
    """Refuse a split where a subject (or, without subjects, a scan group) appears on both sides."""
    shared = {samples[i].subject or samples[i].group for i in train_idx} & \
             {samples[i].subject or samples[i].group for i in held_idx}
    if shared:
        raise ValueError(f"{len(shared)} subject(s) on both sides of a split, e.g. {sorted(shared)[:3]}")


def split(cfg: TrainConfig, samples: list[Sample], images: Sequence[np.ndarray] | None = None) -> tuple[list[int], list[int]]:
    """Indices of training and validation samples."""
    if cfg.chain_end_val:
        if images is None:
            raise ValueError("a chain-end split needs the images (to order each scan's slices)")
        return chain_end_split(samples, images, cfg.chain_end_val)
    if cfg.random_split:
        rng = np.random.default_rng(cfg.seed)
        order = rng.permutation(len(samples))
        n_val = round(len(samples) * cfg.val_fraction)
        return sorted(order[n_val:].tolist()), sorted(order[:n_val].tolist())
    tr, va = group_split(samples, cfg.val_fraction, cfg.seed)
    index = {s.name: i for i, s in enumerate(samples)}
    tr_idx, va_idx = [index[s.name] for s in tr], [index[s.name] for s in va]
    check_disjoint(samples, tr_idx, va_idx)
    return tr_idx, va_idx


def chain_end_split(samples: Sequence[Sample], images: Sequence[np.ndarray], k: int) -> tuple[list[int], list[int]]:
    """Hold out the `k` slices at each end of every scan's slice chain (scans with at least 2k + 3
    slices). A scan's slices are ordered by the spectral (Fiedler) ordering of their thumbnail
    correlations: neighbouring slices correlate most, so the order follows the slice levels."""
    by_group: dict[str, list[int]] = {}
    for i, s in enumerate(samples):
        by_group.setdefault(s.group, []).append(i)
    val: list[int] = []
    for idx in by_group.values():
        if len(idx) < 2 * k + 3:
            continue
        t = thumbnails([images[i] for i in idx])
        w = np.clip(t @ t.T, 0, None)
        laplacian = np.diag(w.sum(1)) - w
        order = np.argsort(np.linalg.eigh(laplacian)[1][:, 1])
        val += [idx[j] for j in (*order[:k], *order[-k:])]
    held = set(val)
    return [i for i in range(len(samples)) if i not in held], sorted(val)


def load_samples(cfg: TrainConfig, class_names: Sequence[str]) -> list[Sample]:
    """The config's samples (pooled over its data sets; `limit` of them for smoke tests)."""
    samples = [s for path in ([cfg.data] if isinstance(cfg.data, str) else cfg.data)
               for s in load_dataset(path, class_names, cfg.label_names)]
    if cfg.limit:
        samples = [samples[i] for i in np.random.default_rng(cfg.seed).permutation(len(samples))[: cfg.limit]]
    return samples


def prepare_data(cfg: TrainConfig, class_names: Sequence[str],
                 dist: Dist = SINGLE) -> tuple[list[Sample], list[np.ndarray], list[int], list[int]]:
    """The config's samples (with scan groups), their images, and training / validation indices.
    Distributed: rank 0 alone finds the groups and makes the split, every rank takes it, and the
    ranks check that they hold the same samples and split (refusing to train otherwise)."""
    samples = load_samples(cfg, class_names)
    images = load_images(samples, "reading images")
    made = None
    if dist.is_main:
        samples = assign_groups(samples, images, cfg.group_threshold)
        made = ([s.group for s in samples], *split(cfg, samples, images))
    groups, tr_idx, va_idx = dist.broadcast(made)
    if not dist.is_main:
        samples = [dataclasses.replace(s, group=g) for s, g in zip(samples, groups)]
    dist.check_same("the samples and their subject split", ([s.name for s in samples], groups, tr_idx, va_idx))
    return samples, images, tr_idx, va_idx
