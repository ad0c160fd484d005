"""Which models there are: the weights folder's models with their cards, the default, the one
number that labels each model, and card facts the pages show (speed, validation split)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import streamlit as st

from mrivision import ModelLoadError
from mrivision.constants import WEIGHTS_ENV, weights_dir as package_weights_dir
from mrivision.model.card import ModelCard, list_shipped, pick_default, weights_of

from ui.text import fmt

NUMBER_LABEL = "new-patient balanced accuracy"  # what model_number is, in words
NUMBER_HELP = ("Balanced accuracy per subject on new patients (subject-level cross-validation over train/); "
               "\"not measured\" where the model was not cross-validated.")
__all__ = ["WEIGHTS_ENV", "ModelEntry", "list_models", "clinical_models", "default_model", "model_label"]


@dataclass(frozen=True)
class ModelEntry:
    """A model found in the weights folder: its key (file stem), weights path and card."""

    key: str
    path: Path
    card: ModelCard
    mtime_ns: int

    @property
    def name(self) -> str:
        return self.card.name or self.key

    @property
    def cache_key(self) -> str:
        return f"{self.path}:{self.mtime_ns}"

    @property
    def predictions_csv(self) -> Path:
        return self.path.with_name(f"{self.key}.predictions.csv")

    def test_metric(self, name: str, level: str = "slice") -> float | None:
        return self.card.test_metric(name, level)


def weights_dir() -> Path:
    """The folder holding `NAME.safetensors` + `NAME.json`: $MRIVISION_WEIGHTS_DIR, else the package's."""
    return package_weights_dir()


def _signature(directory: Path) -> tuple[tuple[str, int], ...]:
    """Names and modification times of the model files, so caches notice new or retrained models."""
    try:
        files = [p for p in directory.iterdir() if p.suffix in (".safetensors", ".json") and p.is_file()]
    except OSError:
        return ()
    return tuple(sorted((p.name, p.stat().st_mtime_ns) for p in files))


@st.cache_resource(show_spinner=False, max_entries=8)  # cards are frozen: shared, never copied
def _scan_models(directory: str, signature: tuple) -> tuple[list[ModelEntry], list[str]]:
    found, problems = [], []
    for name in list_shipped(Path(directory)):  # a JSON-only card (on another model's weights) counts too
        card_path = Path(directory) / f"{name}.json"
        weights = weights_of(card_path)
        try:
            card = ModelCard.read(card_path)
        except ModelLoadError as exc:
            problems.append(f"The model card {card_path.name} could not be read ({exc}).")
            continue
        found.append(ModelEntry(name, weights if weights.stem == name else card_path, card, weights.stat().st_mtime_ns))
    return found, problems


def list_models() -> list[ModelEntry]:
    """Every model with a card in `weights_dir()`, sorted by file name."""
    directory = weights_dir()
    return list(_scan_models(str(directory), _signature(directory))[0])


def clinical_models() -> list[ModelEntry]:
    """The models a user may pick: all but the leakage lesson (never a clinical choice)."""
    return [m for m in list_models() if not m.card.is_lesson]


def model_problems() -> list[str]:
    directory = weights_dir()
    return _scan_models(str(directory), _signature(directory))[1]


def default_model(models: Sequence[ModelEntry]) -> ModelEntry | None:
    """The card marked `"default": true`, else the best subject-level CV score, else the first."""
    key = pick_default({m.key: m.card for m in models})
    return next((m for m in models if m.key == key), None)


def model_number(m: ModelEntry) -> float | None:
    """The one number that compares models: subject-level CV balanced accuracy (None if not measured)."""
    return m.card.metric("cv", "balanced_accuracy", "scan")


def model_label(m: ModelEntry) -> str:
    """The model's name and its one number, e.g. "neurostagenet_cv · 0.329" or "altzcnn · not measured"."""
    return f"{m.name} · {fmt(model_number(m))}"


def split_label(card: ModelCard) -> str:
    """How the model's validation split was made (flags the deliberately leaky random split)."""
    return card.training.split if card.training else ""
