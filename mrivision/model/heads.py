"""Classifier heads that sit on a backbone's last feature map."""
from __future__ import annotations

import torch
from torch import nn


class LinearHead(nn.Sequential):
    """Global average pooling + one linear layer (the linear-probe head)."""

    def __init__(self, in_ch: int, num_classes: int, dropout: float = 0.0) -> None:
        super().__init__(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(in_ch, num_classes))


class DenseHead(nn.Sequential):
    """Global average pooling + Dense 512 + ReLU + dropout + classifier (frozen-ResNet system)."""

    def __init__(self, in_ch: int, num_classes: int, dropout: float = 0.3, hidden: int = 512) -> None:
        super().__init__(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(in_ch, hidden), nn.ReLU(inplace=True),
            nn.Dropout(dropout), nn.Linear(hidden, num_classes),
        )


class SeparableConv(nn.Sequential):
    """Depthwise 3x3 followed by pointwise 1x1 (Keras SeparableConv2D)."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__(
            nn.Conv2d(in_ch, in_ch, 3, padding=1, groups=in_ch, bias=False), nn.Conv2d(in_ch, out_ch, 1, bias=False)
        )


class SqueezeExcite(nn.Module):
    def __init__(self, ch: int, reduction: int = 16) -> None:
        super().__init__()
        self.fc = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Conv2d(ch, ch // reduction, 1), nn.SiLU(inplace=True),
            nn.Conv2d(ch // reduction, ch, 1), nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.fc(x)


class SEResidualBlock(nn.Module):
    """SeparableConv+BN+Swish twice with squeeze-excitation and a projected shortcut."""

    def __init__(self, in_ch: int, out_ch: int = 256) -> None:
        super().__init__()
        self.body = nn.Sequential(
            SeparableConv(in_ch, out_ch), nn.BatchNorm2d(out_ch), nn.SiLU(inplace=True),
            SeparableConv(out_ch, out_ch), nn.BatchNorm2d(out_ch), SqueezeExcite(out_ch),
        )
        self.shortcut = nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, bias=False), nn.BatchNorm2d(out_ch))
        self.act = nn.SiLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(x) + self.shortcut(x))


class AvgMaxPool(nn.Module):
    """Concatenate global average and global max pooling (GAP || GMP)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x.mean(dim=(2, 3)), x.amax(dim=(2, 3))], dim=1)


class NeuroStageHead(nn.Module):
    """SE-residual refinement (256) -> GAP||GMP -> Dense 1024 -> Dense 512 -> classes."""

    def __init__(self, in_ch: int, num_classes: int, dropout: float = 0.3, width: int = 256) -> None:
        super().__init__()
        self.block = SEResidualBlock(in_ch, width)
        self.classifier = nn.Sequential(
            AvgMaxPool(), nn.Linear(2 * width, 1024), nn.SiLU(inplace=True), nn.Dropout(dropout),
            nn.Linear(1024, 512), nn.SiLU(inplace=True), nn.Dropout(dropout), nn.Linear(512, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.block(x))


class CumulativeLink(nn.Module):
    """Ordinal output (cumulative-link model): one severity score s per image and ordered cut
    points t_1 < ... < t_{K-1}; P(stage <= k) = sigmoid(t_k - s). Returns log class probabilities,
    so the rest of the code (softmax, temperature, cross-entropy) treats them as logits."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.first = nn.Parameter(torch.tensor(-1.0))
        self.gaps = nn.Parameter(torch.ones(num_classes - 2))

    def forward(self, score: torch.Tensor) -> torch.Tensor:
        cuts = torch.cat([self.first.reshape(1), self.first + torch.cumsum(nn.functional.softplus(self.gaps), 0)])
        cdf = torch.sigmoid(cuts[None, :] - score)  # (N, K-1)
        ones, zeros = torch.ones_like(score), torch.zeros_like(score)
        probs = torch.cat([cdf, ones], 1) - torch.cat([zeros, cdf], 1)
        return torch.log(probs.clamp_min(1e-7))


class OrdinalHead(nn.Module):
    """A head with one output (the severity score) followed by the cumulative link. The inner
    head's layers keep their names (`head.block` stays a CAM target)."""

    def __init__(self, head: nn.Module, num_classes: int) -> None:
        super().__init__()
        for name, child in head.named_children():
            self.add_module(name, child)
        object.__setattr__(self, "_score", head)  # not registered twice: its children are ours
        self.link = CumulativeLink(num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.link(self._score(x))


HEADS = {"linear": LinearHead, "dense": DenseHead, "neurostage": NeuroStageHead}


def make_head(kind: str, in_ch: int, num_classes: int, dropout: float, output: str = "softmax") -> nn.Module:
    """The named head; `output="ordinal"` ends it in a cumulative link over the ordered classes."""
    try:
        cls = HEADS[kind]
    except KeyError:
        raise KeyError(f"unknown head {kind!r}; one of {', '.join(HEADS)}") from None
    if output == "ordinal" and num_classes > 2:
        return OrdinalHead(cls(in_ch, 1, dropout=dropout), num_classes)
    if output not in ("softmax", "ordinal"):
        raise ValueError(f"unknown output {output!r} (softmax or ordinal)")
    return cls(in_ch, num_classes, dropout=dropout)
