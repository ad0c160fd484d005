"""Model specs and the one entry point that builds them (after timm's registry/factory).

A `ModelSpec` travels with the model: input size, normalisation, class names, CAM target
layer, how the backbone is initialised and where training starts. `create_model` turns a
spec (or a registered name) into an `MRINet`.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable

from ..constants import CLASS_NAMES

_SPECS: dict[str, "ModelSpec"] = {}
_BUILDERS: dict[str, Callable[..., Any]] = {}


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to rebuild a model and feed it correctly."""

    name: str
    family: str  # key of a builder registered with `register_builder`
    arch: str = ""  # timm architecture (or "" for custom)
    head: str = "linear"  # "linear" | "dense" | "neurostage"
    input_size: tuple[int, int] = (128, 128)  # (height, width) fed to the network
    mean: float = 0.5  # gray-level normalisation applied to the [0,1] slice
    std: float = 0.25
    class_names: tuple[str, ...] = CLASS_NAMES
    init: str = "scratch"  # "scratch" | "imagenet" (from an installed package or a local file)
    pretrained_file: str = ""  # local ImageNet weights for backbones with no installable package
    train_from: str = ""  # first trainable stage; stages before it are frozen (and cacheable)
    target_layer: str = ""  # stage used by CAM methods
    head_dropout: float = 0.3
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def replace(self, **changes: Any) -> "ModelSpec":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["input_size"] = list(self.input_size)
        d["class_names"] = list(self.class_names)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModelSpec":
        known = {f.name for f in dataclasses.fields(cls)}
        d = {k: v for k, v in d.items() if k in known}
        d["input_size"] = tuple(d.get("input_size", (128, 128)))
        d["class_names"] = tuple(d.get("class_names", CLASS_NAMES))
        return cls(**d)


def register_spec(spec: ModelSpec) -> ModelSpec:
    if spec.name in _SPECS:
        raise ValueError(f"model spec {spec.name!r} is already registered")
    _SPECS[spec.name] = spec
    return spec


def register_builder(family: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        _BUILDERS[family] = fn
        return fn

    return wrap


def list_specs() -> list[str]:
    return sorted(_SPECS)


def get_spec(name: str) -> ModelSpec:
    try:
        return _SPECS[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; registered: {', '.join(list_specs())}") from None


def create_model(spec: ModelSpec | str, *, pretrained: bool = True, **overrides: Any):
    """Build the network for `spec`. `pretrained=False` skips ImageNet weights (for loading a checkpoint)."""
    if isinstance(spec, str):
        spec = get_spec(spec)
    if overrides:
        spec = spec.replace(**overrides)
    try:
        builder = _BUILDERS[spec.family]
    except KeyError:
        raise KeyError(f"no builder for model family {spec.family!r}") from None
    return builder(spec, pretrained=pretrained)

