"""The typed parts of a model card (`mrivision.model.card.ModelCard`): preprocessing, training,
and read-only views of the free-form sections (`freeze`/`thaw`). No torch."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Mapping


def freeze(value: Any) -> Any:
    """A read-only copy of JSON-like data: dicts -> MappingProxyType, lists -> tuples."""
    if isinstance(value, Mapping):
        return MappingProxyType({str(k): freeze(v) for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        return tuple(freeze(v) for v in value)
    return value


def thaw(value: Any) -> Any:
    """Plain JSON-ready data again (the inverse of `freeze`)."""
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [thaw(v) for v in value]
    return value


@dataclass(frozen=True)
class Preprocessing:
    """What is done to a slice beyond the spec's framing, size and normalisation."""

    tta_hflip: bool = False  # average the logits over a horizontal flip

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Preprocessing":
        if not isinstance(d, Mapping) or not isinstance(d.get("tta_hflip"), bool):
            raise ValueError(f"preprocessing must be an object with a true/false tta_hflip, not {d!r}")
        return cls(tta_hflip=d["tta_hflip"])


_TRAINING_REQUIRED = ("config", "split", "n_train", "seconds", "hardware", "peak_rss_mb", "monitor")
_TRAINING_ORDER = ("config", "epochs_run", "best_epoch", "monitor", "best_val", "history", "ensemble_of", "per_fold",
                   "seconds", "feature_cache_seconds", "hardware", "peak_rss_mb", "split", "n_train", "n_val",
                   "world_size", "backend", "per_process_batch_size")


@dataclass(frozen=True)
class Training:
    """How the model was trained. The optional fields exist for one kind of run only (a single
    run's epochs and history, or a cross-validation ensemble's folds)."""

    config: Mapping[str, Any]  # the TrainConfig, as run
    split: str  # how validation data was held out ("random" in it: the leaky lesson)
    n_train: int
    seconds: int
    hardware: str
    peak_rss_mb: int
    monitor: str
    feature_cache_seconds: int | None = None
    n_val: int | None = None
    epochs_run: int | None = None
    best_epoch: int | None = None
    best_val: Mapping[str, Any] | None = None
    history: tuple[Mapping[str, Any], ...] | None = None
    ensemble_of: str | None = None
    per_fold: tuple[Mapping[str, Any], ...] | None = None
    world_size: int | None = None  # processes of a `torchrun` run (1: a single process)
    backend: str | None = None  # their process group: "gloo" (CPU), "nccl" (CUDA) or "none" (one process)
    per_process_batch_size: int | None = None  # each process's share of `config.batch_size`

    def __post_init__(self) -> None:
        for f in ("config", "best_val", "history", "per_fold"):
            object.__setattr__(self, f, freeze(getattr(self, f)))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Training":
        if not isinstance(d, Mapping):
            raise ValueError(f"training must be an object, not {d!r}")
        known = {f.name for f in dataclasses.fields(cls)}
        missing = [k for k in _TRAINING_REQUIRED if k not in d]
        unknown = sorted(set(d) - known)
        if missing or unknown:
            raise ValueError(f"training section: missing {missing}, unknown {unknown}")
        return cls(**d)

    def to_dict(self) -> dict[str, Any]:
        return {k: thaw(getattr(self, k)) for k in _TRAINING_ORDER if getattr(self, k) is not None}
