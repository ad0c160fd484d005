"""The registry of model specs and the one entry point that builds them (after timm's
registry/factory): `register_spec` names a `ModelSpec` (mrivision.model.spec), `register_builder` a
model family, and `create_model` turns a spec (or a registered name) into an `MRINet`.
"""
from __future__ import annotations

from typing import Any, Callable

from mrivision.model.spec import ModelSpec

_SPECS: dict[str, "ModelSpec"] = {}
_BUILDERS: dict[str, Callable[..., Any]] = {}


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
    model = builder(spec, pretrained=pretrained)
    if spec.ensemble:
        from mrivision.model.network import as_ensemble

        model = as_ensemble(model)
    return model

