"""Shipping a trained model: the one card builder (`build_card`, used by `train` and `cv`) and
`ship`, which writes weights + card and evaluates what ships into the card's metrics."""
from __future__ import annotations

import dataclasses
import os
import platform
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import torch

from mrivision.bench.system import peak_rss_mb
from mrivision.inputs.datasets import Sample, fingerprint
from mrivision.model.card import ModelCard, Preprocessing, Training

if TYPE_CHECKING:
    from mrivision.model.zoo import MRINet
    from mrivision.training.config import TrainConfig


def code_version() -> str:
    """`git describe` of the code that trained the model ("unknown" outside a checkout)."""
    try:
        return subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True, text=True,
                              cwd=Path(__file__).parent, timeout=5).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def hardware() -> str:
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__}, {gpu}"


def build_card(cfg: TrainConfig, model: MRINet, samples: Sequence[Sample], *, temperature: float, split: str,
               n_train: int, seconds: float, feature_cache_seconds: float, trainable_parameters: int,
               ood: Mapping[str, Any], description: str | None = None, metrics: Mapping[str, Any] | None = None,
               **run: Any) -> ModelCard:
    """The card of a model trained by `cfg` on `samples` (before its weights are written: `ship`).

    `seconds`: the training time; `run`: the run-specific `Training` fields (`epochs_run`,
    `best_epoch`, `best_val`, `history`, `n_val` of one run; `ensemble_of`, `per_fold` of a CV ensemble)."""
    spec = model.spec
    training = Training(config=dataclasses.asdict(cfg), split=split, n_train=n_train, seconds=round(seconds),
                        feature_cache_seconds=round(feature_cache_seconds), hardware=hardware(),
                        peak_rss_mb=round(peak_rss_mb()), monitor=cfg.monitor, **run)
    return ModelCard(spec=spec, description=spec.description if description is None else description,
                     temperature=float(temperature), preprocessing=Preprocessing(tta_hflip=cfg.tta_hflip),
                     training=training, data={"train": fingerprint(samples)},
                     parameters=sum(p.numel() for p in model.parameters()),
                     trainable_parameters=trainable_parameters, code_version=code_version(),
                     metrics=metrics or {}, ood=ood)


def ship(model: MRINet, card: ModelCard, cfg: TrainConfig, out_dir: Path,
         log: Callable[[str], None] = print) -> ModelCard:
    """Save the model and its card; evaluate what ships (the fp16 weights) on the literature's test
    split and on the external cohort (where given and present) into `metrics.test`/`metrics.external`."""
    from mrivision.evaluation.tables import format_report
    from mrivision.evaluation.run import evaluate_model
    from mrivision.inference.predictor import Predictor
    from mrivision.model.weights import load_weights, save_model

    weights = save_model(model, card, out_dir)
    model16, card = load_weights(weights)
    predictor = Predictor(model16, card)
    metrics = dict(card.metrics)
    if cfg.test_data and Path(cfg.test_data).exists():
        result = evaluate_model(predictor, cfg.test_data, out_csv=out_dir / f"{card.name}.predictions.csv")
        metrics.update(test=result, test_data={"path": cfg.test_data, **result["data"]})
        log("literature test split:\n" + format_report(result))
    if cfg.external_data and Path(cfg.external_data).exists():
        result = evaluate_model(predictor, cfg.external_data)
        metrics.update(external=result, external_data={"path": cfg.external_data, **result["data"]})
        log("external cohort:\n" + format_report(result))
    if metrics.keys() != card.metrics.keys():
        card = card.replace(metrics=metrics)
        card.write(weights.with_suffix(".json"))
    return card
