"""`MRINet`: a backbone unrolled into named stages plus a head, so training can freeze a prefix
and cache its output, and CAM can pick any stage by name."""
from __future__ import annotations

import copy
from collections import OrderedDict

import torch
from torch import nn

from mrivision.model.spec import ModelSpec


class GrayToRGB(nn.Conv2d):
    """1x1 conv mapping our normalised gray slice to an ImageNet-normalised RGB image.

    Initialised so that the output equals the pretrained network's expected input for a gray
    image; it is learnable (the NeuroStageNet stem) when training reaches it.
    """

    def __init__(self, gray_mean: float, gray_std: float, rgb_mean: tuple[float, ...], rgb_std: tuple[float, ...]) -> None:
        super().__init__(1, 3, kernel_size=1, bias=True)
        with torch.no_grad():
            for c in range(3):
                # x_norm = (g - gm)/gs ; want (g - m_c)/s_c = x_norm * gs/s_c + (gm - m_c)/s_c
                self.weight[c, 0, 0, 0] = gray_std / rgb_std[c]
                self.bias[c] = (gray_mean - rgb_mean[c]) / rgb_std[c]


class MRINet(nn.Module):
    """Named stages applied in order; `spec` travels with the model."""

    def __init__(self, spec: ModelSpec, stages: "OrderedDict[str, nn.Module]") -> None:
        super().__init__()
        self.spec = spec
        self.body = nn.Sequential(stages)

    @property
    def stage_names(self) -> list[str]:
        return [name for name, _ in self.body.named_children()]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def split_index(self) -> int:
        """Index of the first trainable stage (0: everything trains; an ensemble's members)."""
        if "members" in self.stage_names:
            return self.stage_names.index("members")
        if not self.spec.train_from:
            return 0
        names = self.stage_names
        if self.spec.train_from not in names:
            raise ValueError(f"train_from {self.spec.train_from!r} is not a stage of {self.spec.name}: {names}")
        return names.index(self.spec.train_from)

    def frozen_part(self) -> nn.Sequential:
        return self.body[: self.split_index()]

    def trainable_part(self) -> nn.Sequential:
        return self.body[self.split_index():]

    def freeze_prefix(self) -> None:
        """Stop gradients into the frozen stages and keep their BatchNorm statistics fixed."""
        for p in self.frozen_part().parameters():
            p.requires_grad_(False)

    def train(self, mode: bool = True) -> "MRINet":
        super().train(mode)
        if mode:
            self.frozen_part().eval()
        return self

    def target_layer(self) -> nn.Module:
        """The module whose activations CAM methods use (an ensemble: its first member's)."""
        return self.target_layers()[0]

    def target_layers(self, name: str | None = None) -> list[nn.Module]:
        """CAM target modules (`name`, default the spec's `target_layer`): one, or the same layer of
        every member of an ensemble when the layer is inside the members."""
        target = name or self.spec.target_layer
        if self.spec.ensemble and target.split(".")[0] not in self.stage_names:
            return [m.get_submodule(target) for m in self.body.get_submodule("members").members]
        return [self.body.get_submodule(target)]


class MemberMean(nn.Module):
    """K trained copies of a model's trainable part on one shared frozen prefix: mean logits (for
    softmax outputs a normalised geometric mean of the members' probabilities)."""

    def __init__(self, part: nn.Module, k: int) -> None:
        super().__init__()
        self.members = nn.ModuleList(copy.deepcopy(part) for _ in range(k))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([m(x) for m in self.members]).mean(0)


def as_ensemble(model: MRINet) -> MRINet:
    """`model` with its trainable part replaced by `spec.ensemble` copies (the fold models of CV)."""
    spec = model.spec
    stages = list(model.body.named_children())
    split = [name for name, _ in stages].index(spec.train_from) if spec.train_from else 0
    members = MemberMean(nn.Sequential(OrderedDict(stages[split:])), spec.ensemble)
    net = MRINet(spec, OrderedDict([*stages[:split], ("members", members)]))
    net.freeze_prefix()
    return net
