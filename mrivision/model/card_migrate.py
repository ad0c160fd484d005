"""Older model-card layouts -> the current one (`CARD_VERSION`): the one place a missing field is filled in.

Versions (a card without `card_version` is 1 or 2, told apart by its spec):

1. the first cards: the spec has no `framing` (they were trained on letterboxed slices), nor
   `output` (softmax) and `ensemble` (0: one model) where it predates them; `name`
   and `class_names` sit beside the spec as well as in it, and `preprocessing` repeats the
   spec's `input_size`, `mean` and `std` with a `resize` sentence.
2. the same with `framing` in the spec (and repeated in `preprocessing`).
3. every field in one place: the spec holds name, class names, input size, normalisation and
   framing; `preprocessing` holds only what the spec does not (`tta_hflip`); `metrics` and
   `default` are always present; an explanation of an earlier default (`default_reason`) is gone.
"""
from __future__ import annotations

import copy
from typing import Any, Mapping

CARD_VERSION = 3

_REPEATED = ("input_size", "mean", "std", "resize", "framing")  # v1/v2 `preprocessing` copies of the spec
_V1_SPEC = {"framing": "letterbox", "output": "softmax", "ensemble": 0}  # what the first cards' models did
SPEC_FIELDS = ("name", "family", "arch", "head", "input_size", "mean", "std", "class_names", "init", "pretrained_file",
               "train_from", "target_layer", "head_dropout", "output", "ensemble", "framing", "description", "extra")
_STALE = ("default_reason",)  # said why a model was once the default; `pick_default` decides today


class CardVersionError(ValueError):
    """The card's layout is unknown (newer than this code, or not a card)."""


def card_version(d: Mapping[str, Any]) -> int:
    """The layout version of a card dict."""
    if "card_version" in d:
        version = d["card_version"]
        if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= CARD_VERSION:
            raise CardVersionError(f"card_version {version!r} is not one this code reads (1 to {CARD_VERSION})")
        return version
    spec = d.get("spec")
    return 2 if isinstance(spec, Mapping) and "framing" in spec else 1


def migrate(d: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of card `d` in the current layout (a current card comes back unchanged)."""
    out = copy.deepcopy(dict(d))
    version = card_version(out)
    if version < 2:
        out = _v1_to_v2(out)
    if version < 3:
        out = _v2_to_v3(out)
    return out


def _v1_to_v2(d: dict[str, Any]) -> dict[str, Any]:
    """Cards written before canonical framing existed were trained on letterboxed slices, before
    ordinal outputs and fold ensembles existed."""
    spec = d.get("spec")
    if not isinstance(spec, dict):
        raise CardVersionError("the card has no spec")
    for key, value in _V1_SPEC.items():
        spec.setdefault(key, value)
    return d


def _v2_to_v3(d: dict[str, Any]) -> dict[str, Any]:
    spec = d.get("spec")
    if not isinstance(spec, dict):
        raise CardVersionError("the card has no spec")
    if "name" in d:  # the card's name is the one every reader used (`Predictor.name`)
        spec["name"] = d.pop("name")
    names = d.pop("class_names", None)
    if names is not None and list(names) != list(spec.get("class_names", names)):
        raise CardVersionError(f"the card's class names {list(names)} differ from its spec's {spec.get('class_names')}")
    if names is not None:
        spec.setdefault("class_names", list(names))
    pre = d.get("preprocessing")
    if isinstance(pre, dict):
        for key in _REPEATED:
            pre.pop(key, None)
    for key in _STALE:
        d.pop(key, None)
    d.setdefault("metrics", {})
    d.setdefault("default", False)
    d["card_version"] = 3
    return d
