"""The model zoo: one spec per system we reproduce, plus our own; `create_model` builds any of them."""
from __future__ import annotations

from mrivision.constants import BINARY_CLASS_NAMES
from mrivision.model import backbones  # noqa: F401  (registers the builders)
from mrivision.model.network import MRINet
from mrivision.model.registry import ModelSpec, create_model, get_spec, list_specs, register_spec

register_spec(ModelSpec(
    name="convnext_probe", family="convnext", arch="convnext_base", head="linear", input_size=(224, 224),
    init="imagenet", train_from="head", target_layer="stage3", head_dropout=0.0,
    description="ConvNeXt-Base ImageNet backbone, frozen; only the linear layer trains (needs a local "
                "ImageNet weights file: pretrained_file).",
))
register_spec(ModelSpec(
    name="effnet_probe", family="efficientnet", arch="tf_efficientnet_lite0", head="linear", input_size=(208, 176),
    init="imagenet", train_from="head", target_layer="bn2", head_dropout=0.0,
    description="Linear probe on a frozen ImageNet EfficientNet-Lite0 (the probe recipe with the backbone "
                "whose weights install offline).",
))
register_spec(ModelSpec(
    name="neurostagenet", family="efficientnet", arch="tf_efficientnet_lite0", head="neurostage",
    input_size=(128, 128), init="imagenet", train_from="block5", target_layer="head.block", head_dropout=0.3,
    description="Gray 128x128 -> learnable 1->3 stem -> ImageNet EfficientNet-Lite0 fine-tuned from a late block "
                "-> SE-residual separable block (256) -> GAP||GMP -> Dense 1024 -> Dense 512.",
))
register_spec(ModelSpec(
    name="convnext_scratch", family="convnext", arch="convnext_atto", head="linear", input_size=(128, 128),
    class_names=BINARY_CLASS_NAMES, init="scratch", target_layer="stage3", head_dropout=0.2,
    description="ConvNeXt trained from scratch, binary NonDemented vs Demented, light augmentation.",
))
register_spec(ModelSpec(
    name="resnet_frozen", family="resnet", arch="resnet50", head="dense", input_size=(128, 128),
    init="imagenet", train_from="head", target_layer="layer4", head_dropout=0.3,
    description="Frozen ImageNet ResNet-50 + Dense 512 head (needs a local ImageNet weights file: pretrained_file).",
))
register_spec(ModelSpec(
    name="altzcnn", family="altzcnn", head="linear", input_size=(128, 128), init="scratch",
    target_layer="block3", head_dropout=0.3,
    description="Small custom CNN from scratch: stride-2 stem, four double-conv blocks (24-48-96-192) with "
                "max-pooling, GAP, linear.",
))

__all__ = ["MRINet", "ModelSpec", "create_model", "get_spec", "list_specs", "register_spec"]
