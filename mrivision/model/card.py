"""Model files on disk: where a model's weights and card are, reading a card, checksums.

No torch here: the torch-free inference path (`mrivision.inference.engine_file`) reads cards too.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Mapping

from mrivision.constants import CLASS_NAMES, weights_dir
from mrivision.errors import ModelLoadError


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
        base = weights_dir() / str(name_or_path)
    weights, card = base.with_suffix(".safetensors"), base.with_suffix(".json")
    for f in (weights, card):
        if not f.is_file():
            raise ModelLoadError(f"model file {f} not found (shipped models: {', '.join(list_shipped()) or 'none'})")
    return weights, card


def write_json_atomic(path: Path, data: Mapping[str, Any]) -> None:
    """Write JSON to a temporary file beside `path`, then rename it over `path` (never half a card)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)


def read_card(card_path: Path) -> dict[str, Any]:
    try:
        card = json.loads(card_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"model card {card_path} is unreadable: {exc}") from exc
    if not isinstance(card, dict):
        raise ModelLoadError(f"model card {card_path} is unreadable: not a JSON object")
    return card


def list_shipped(directory: Path | None = None) -> list[str]:
    directory = weights_dir() if directory is None else directory
    return sorted(p.stem for p in directory.glob("*.safetensors") if p.with_suffix(".json").is_file())


def metric(card: Mapping[str, Any], group: str, name: str, level: str = "slice") -> float | None:
    """A metric of the card's `metrics[group]` ("cv", "external" or "test") at `level` ("slice" or
    "scan"; "scan" is the subject level for cross-validation), if it has one."""
    value = (((card.get("metrics") or {}).get(group) or {}).get(level) or {}).get(name)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def test_metric(card: Mapping[str, Any], name: str, level: str = "slice") -> float | None:
    """A metric on the original test split from the card (`level`: "slice" or "scan"), if it has one."""
    return metric(card, "test", name, level)


def is_lesson(card: Mapping[str, Any]) -> bool:
    """A model kept only to show a lesson (trained on a leaky random re-split): never a clinical choice."""
    return "random" in str((card.get("training") or {}).get("split", "")).lower()


def selection_score(card: Mapping[str, Any]) -> tuple[float, float] | None:
    """How the default is chosen: subject-level CV balanced accuracy without ModerateDemented (2
    subjects must not decide a selection), tie-break impaired-vs-NonDemented AUC; None without CV."""
    cv = (card.get("metrics") or {}).get("cv") or {}
    primary = metric(card, "cv", "balanced_accuracy_excl_last", "scan")
    if primary is None:
        return None
    auc = (cv.get("binary_auc") or {}).get("scan")
    return primary, float(auc) if isinstance(auc, (int, float)) else 0.0


def pick_default(cards: Mapping[str, Mapping[str, Any]]) -> str | None:
    """The key of the card marked `"default": true`, else the four-stage model with the best
    `selection_score` (subject-level cross-validation; never the test split), else the first
    four-stage model that is not a lesson, else the first key."""
    for key, card in cards.items():
        if card.get("default") is True:
            return key
    clinical = {k: c for k, c in cards.items() if not is_lesson(c)}
    staged = {k: c for k, c in clinical.items() if tuple(c.get("class_names") or ()) == CLASS_NAMES}
    scored = {k: score for k, c in staged.items() if (score := selection_score(c)) is not None}
    if scored:
        return max(scored, key=scored.__getitem__)
    return next(iter(staged or clinical or cards), None)


def default_shipped(directory: Path | None = None) -> str | None:
    """The name of the shipped model the app and CLI use by default (cards that cannot be read are skipped)."""
    directory = weights_dir() if directory is None else directory
    cards = {}
    for name in list_shipped(directory):
        try:
            cards[name] = read_card(directory / f"{name}.json")
        except ModelLoadError:
            continue
    return pick_default(cards)
