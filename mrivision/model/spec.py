"""`ModelSpec`: what travels with a model (input size, normalisation, class names, CAM layer, ...).

Plain data with no torch import, so that a card's spec can be read by the torch-free inference
path (`mrivision.inference.engine_file`); `mrivision.model` builds networks from it.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from mrivision.constants import CLASS_NAMES


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
    output: str = "softmax"  # "softmax" | "ordinal" (cumulative link over the ordered classes)
    ensemble: int = 0  # > 1: that many trainable parts (the K fold models) on one shared frozen prefix
    framing: str = "canonical"  # "canonical" (brain found, cropped, placed, intensities mapped) | "letterbox"
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
