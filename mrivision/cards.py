"""Model files on disk: where a model's weights and card are, reading a card, checksums.

No torch here: the torch-free inference path (`mrivision.onnx_engine`) reads cards too.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Mapping

from .constants import CLASS_NAMES, WEIGHTS_DIR
from .errors import ModelLoadError


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verify_weights(weights: Path, card: Mapping[str, Any]) -> None:
    """Raise ModelLoadError unless `weights` hash to the SHA-256 the card records (if it records one)."""
    expected = card.get("weights_sha256")
    if expected and sha256_file(weights) != expected:
        raise ModelLoadError(f"{weights} does not match the SHA-256 in its card: the file is corrupted or was replaced")


DEFAULT_NAME = "default"  # stands for the shipped default model (`pick_default`)


def resolve(name_or_path: str | Path) -> tuple[Path, Path]:
    """A shipped name (or "default"), a `.safetensors` path or a `.json` card path -> (weights, card)."""
    if str(name_or_path) == DEFAULT_NAME and not Path(DEFAULT_NAME).exists():
        name_or_path = default_shipped() or DEFAULT_NAME
    p = Path(name_or_path)
    if p.suffix in (".safetensors", ".json"):
        base = p.with_suffix("")
    elif p.parent != Path(".") or p.exists():
        base = p
    else:
        base = WEIGHTS_DIR / str(name_or_path)
    weights, card = base.with_suffix(".safetensors"), base.with_suffix(".json")
    for f in (weights, card):
        if not f.is_file():
            raise ModelLoadError(f"model file {f} not found (shipped models: {', '.join(list_shipped()) or 'none'})")
    return weights, card


def read_card(card_path: Path) -> dict[str, Any]:
    try:
        card = json.loads(card_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"model card {card_path} is unreadable: {exc}") from exc
    if not isinstance(card, dict):
        raise ModelLoadError(f"model card {card_path} is unreadable: not a JSON object")
    return card


def list_shipped(directory: Path = WEIGHTS_DIR) -> list[str]:
    return sorted(p.stem for p in directory.glob("*.safetensors") if p.with_suffix(".json").is_file())


def test_metric(card: Mapping[str, Any], metric: str, level: str = "slice") -> float | None:
    """A metric on the original test split from the card (`level`: "slice" or "scan"), if it has one."""
    value = (((card.get("metrics") or {}).get("test") or {}).get(level) or {}).get(metric)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def pick_default(cards: Mapping[str, Mapping[str, Any]]) -> str | None:
    """The key of the card marked `"default": true`, else the four-stage model with the best test
    macro-F1 (a two-class model's macro-F1 is not comparable), else the first key."""
    for key, card in cards.items():
        if card.get("default") is True:
            return key
    staged = {k: c for k, c in cards.items() if tuple(c.get("class_names") or ()) == CLASS_NAMES}
    scored = {k: f1 for k, c in (staged or cards).items() if (f1 := test_metric(c, "macro_f1")) is not None}
    if scored:
        return max(scored, key=scored.__getitem__)
    return next(iter(cards), None)


def default_shipped(directory: Path = WEIGHTS_DIR) -> str | None:
    """The name of the shipped model the app and CLI use by default (cards that cannot be read are skipped)."""
    cards = {}
    for name in list_shipped(directory):
        try:
            cards[name] = read_card(directory / f"{name}.json")
        except ModelLoadError:
            continue
    return pick_default(cards)
