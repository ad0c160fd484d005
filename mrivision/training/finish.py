"""The end of a training run: calibrate on validation, fit the OOD detector, ship weights + card."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from mrivision.evaluation.calibration import fit_temperature
from mrivision.inputs.datasets import Sample
from mrivision.model.card import ModelCard
from mrivision.model.zoo import MRINet
from mrivision.training.config import TrainConfig
from mrivision.training.distributed import Dist
from mrivision.training.loop import FitResult
from mrivision.training.shipping import build_card, ship


def distributed_fields(cfg: TrainConfig, dist: Dist) -> dict[str, object]:
    """What the card's `training` records about the processes."""
    return {"world_size": dist.world_size, "backend": dist.backend,
            "per_process_batch_size": dist.per_process(cfg.batch_size)}


def finish(cfg: TrainConfig, model: MRINet, samples: Sequence[Sample], labels: np.ndarray, tr_idx: Sequence[int],
           va_idx: Sequence[int], result: FitResult, ood_images: Callable[[], list[np.ndarray]], *, split: str,
           seconds: float, cache_seconds: float, log: Callable[[str], None], dist: Dist) -> ModelCard:
    """Calibrate, fit the OOD detector on (framed) training slices and ship weights + card: rank 0
    writes, every rank returns the card."""
    card_path = Path(cfg.out_dir) / f"{model.spec.name}.json"
    if dist.is_main:
        from mrivision.inference.ood import fit_ood

        state = result.state
        temperature = fit_temperature(result.val_logits, labels[va_idx])
        model.cpu().eval()
        card = build_card(cfg, model, samples, temperature=temperature, seconds=seconds,
                          feature_cache_seconds=cache_seconds, trainable_parameters=result.trainable_parameters,
                          ood=fit_ood(ood_images(), framing=model.spec.framing), split=split,
                          n_train=len(tr_idx), n_val=len(va_idx), epochs_run=state["epoch"],
                          best_epoch=state["best_epoch"], best_val=state["history"][state["best_epoch"] - 1],
                          history=state["history"], **distributed_fields(cfg, dist))
        card = ship(model, card, cfg, Path(cfg.out_dir), log)
    dist.barrier()  # rank 0 has written the card
    return card if dist.is_main else ModelCard.read(card_path)
