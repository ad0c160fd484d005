"""Model cards: `ModelCard` (what a model is, how it was trained and how well it does), and the
model files on disk (where a model's weights and card are, checksums, the default model).

No torch here: the torch-free inference path (`mrivision.inference.engine_file`) reads cards too.
A card on disk is JSON; `ModelCard.read` brings every older layout to the current one
(`mrivision.model.card_migrate`), `ModelCard.write` replaces a card atomically.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from mrivision.constants import CLASS_NAMES, weights_dir
from mrivision.errors import ModelLoadError
from mrivision.model.card_migrate import CARD_VERSION, SPEC_FIELDS, CardVersionError, migrate
from mrivision.model.card_sections import Preprocessing, Training, freeze, thaw
from mrivision.model.spec import ModelSpec

FRAMING_TEXT = {"canonical": "canonical framing (brain found, cropped, placed; intensities mapped)",
                "letterbox": "keep aspect, pad black"}


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


_SECTIONS = ("metrics", "data", "ood", "faithfulness", "bench", "cam", "fusion", "leakage_lesson")  # free-form, read-only


@dataclass(frozen=True)
class ModelCard:
    """Everything that travels with a model's weights. Read with `ModelCard.read(path)`, write with
    `card.write(path)`; change with `card.replace(...)` (frozen). The spec holds the name, class
    names, input size, normalisation and framing; nothing is stored twice.

    `metrics` (`test`, `external`, `cv`, ...; see `mrivision.evaluation.metrics`), `ood`
    (`mrivision.inference.ood`), `faithfulness`, `bench` (`mrivision.bench.latency`), `cam`, `fusion`, `data`
    (training-data fingerprints) and `leakage_lesson` are read-only mappings as the code that
    measured them wrote them; `metric`, `binary_auc`, `bench_value`, `selection_score` read them.
    """

    spec: ModelSpec
    description: str = ""
    temperature: float = 1.0  # calibration: logits are divided by it before the softmax
    preprocessing: Preprocessing = Preprocessing()
    training: Training | None = None
    data: Mapping[str, Any] | None = None
    parameters: int | None = None
    trainable_parameters: int | None = None
    code_version: str | None = None
    weights_file: str = ""
    weights_sha256: str = ""  # checked whenever the weights are loaded
    storage_dtype: str = "float16"
    default: bool = False  # marked as the default model (else `pick_default` chooses)
    metrics: Mapping[str, Any] = field(default_factory=dict)
    ood: Mapping[str, Any] | None = None
    faithfulness: Mapping[str, Any] | None = None
    bench: Mapping[str, Any] | None = None
    cam: Mapping[str, Any] | None = None  # the CAM method and layer chosen by scripts/select_cam.py
    fusion: Mapping[str, Any] | None = None  # a fusion model on these weights (`mrivision.inference.fusion`)
    leakage_lesson: Mapping[str, Any] | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)  # keys this code does not know, kept as they are
    card_version: int = CARD_VERSION

    def __post_init__(self) -> None:
        for f in (*_SECTIONS, "extra"):
            object.__setattr__(self, f, freeze(getattr(self, f)))

    # --- names the spec holds ---------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def class_names(self) -> tuple[str, ...]:
        return tuple(self.spec.class_names)

    @property
    def tta_hflip(self) -> bool:
        return self.preprocessing.tta_hflip

    def preprocessing_summary(self) -> dict[str, Any]:
        """Everything done to a slice before the network, for display."""
        return {"framing": FRAMING_TEXT.get(self.spec.framing, self.spec.framing),
                "input_size": list(self.spec.input_size), "mean": self.spec.mean, "std": self.spec.std,
                "tta_hflip": self.preprocessing.tta_hflip}

    # --- reading the measured sections --------------------------------------------------------
    def metrics_for(self, group: str) -> Mapping[str, Any] | None:
        """The result dict of `metrics[group]` ("test", "external", "cv", "test_data", ...), if any."""
        value = self.metrics.get(group)
        return value if isinstance(value, Mapping) else None

    def metric(self, group: str, name: str, level: str = "slice") -> float | None:
        """`metrics[group][level][name]`: group "cv", "external" or "test"; level "slice" or "scan"
        ("scan" is the subject level for cross-validation)."""
        result = self.metrics_for(group) or {}
        values = result.get(level)
        return _number(values.get(name)) if isinstance(values, Mapping) else None

    def test_metric(self, name: str, level: str = "slice") -> float | None:
        """A metric on the literature's test split."""
        return self.metric("test", name, level)

    def binary_auc(self, group: str, level: str = "scan") -> float | None:
        """Impaired-vs-NonDemented AUC of `metrics[group]` at `level`."""
        aucs = (self.metrics_for(group) or {}).get("binary_auc")
        return _number(aucs.get(level)) if isinstance(aucs, Mapping) else None

    def bench_value(self, *keys: str) -> float | None:
        """The first numeric `bench[key]` among `keys` (see `mrivision.bench.latency`)."""
        for key in keys:
            value = _number((self.bench or {}).get(key))
            if value is not None:
                return value
        return None

    @property
    def heatmap_method(self) -> str:
        """The heatmap method the card's `cam` section chose (`scripts/select_cam.py`), else Grad-CAM."""
        return str((self.cam or {}).get("method") or "gradcam")

    @property
    def is_lesson(self) -> bool:
        """A model kept only to show a lesson (trained on a leaky random re-split): never a clinical choice."""
        return self.training is not None and "random" in self.training.split.lower()

    @property
    def selection_score(self) -> tuple[float, float] | None:
        """How the default is chosen: subject-level CV balanced accuracy without ModerateDemented (2
        subjects must not decide a selection), tie-break impaired-vs-NonDemented AUC; None without CV."""
        primary = self.metric("cv", "balanced_accuracy_excl_last", "scan")
        if primary is None:
            return None
        return primary, self.binary_auc("cv", "scan") or 0.0

    # --- building, reading and writing --------------------------------------------------------
    def replace(self, **changes: Any) -> "ModelCard":
        return dataclasses.replace(self, **changes)

    @classmethod
    def for_spec(cls, spec: ModelSpec) -> "ModelCard":
        """The card of an untrained model: no calibration, no TTA, nothing measured."""
        return cls(spec=spec, description=spec.description)

    def to_dict(self) -> dict[str, Any]:
        """The card as JSON-ready data in the current layout (`from_dict` gives the card back)."""
        d: dict[str, Any] = {"card_version": self.card_version, "description": self.description,
                             "temperature": self.temperature,
                             "preprocessing": dataclasses.asdict(self.preprocessing)}
        if self.training is not None:
            d["training"] = self.training.to_dict()
        for key in ("data", "parameters", "trainable_parameters", "code_version", "ood"):
            if getattr(self, key) is not None:
                d[key] = thaw(getattr(self, key))
        d.update(spec=self.spec.to_dict(), weights_file=self.weights_file, weights_sha256=self.weights_sha256,
                 storage_dtype=self.storage_dtype, default=self.default)
        for key in ("metrics", *(k for k in _SECTIONS if k not in d and k != "metrics")):
            if getattr(self, key) is not None:
                d[key] = thaw(getattr(self, key))
        return {**d, **thaw(self.extra)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ModelCard":
        """A card from its JSON data in any layout (older ones migrated). Raises ModelLoadError."""
        try:
            d = migrate(d)
            spec = d.pop("spec")
            if not isinstance(spec, Mapping):
                raise ValueError(f"the spec must be an object, not {spec!r}")
            missing = [k for k in SPEC_FIELDS if k not in spec]
            if missing:
                raise ValueError(f"the spec lacks {missing}")
            temperature = _number(d.pop("temperature"))
            if temperature is None or temperature <= 0:
                raise ValueError("temperature must be a positive number")
            for key in ("weights_file", "weights_sha256", "storage_dtype", "description"):
                if not isinstance(d.get(key), str):
                    raise ValueError(f"{key} must be text")
            if not isinstance(d.get("default"), bool):
                raise ValueError("default must be true or false")
            training = d.pop("training", None)
            known = {f.name for f in dataclasses.fields(cls)} - {"extra"}
            return cls(spec=ModelSpec.from_dict(dict(spec)), temperature=temperature,
                       preprocessing=Preprocessing.from_dict(d.pop("preprocessing")),
                       training=None if training is None else Training.from_dict(training),
                       extra={k: v for k, v in d.items() if k not in known},
                       **{k: v for k, v in d.items() if k in known})
        except (CardVersionError, KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ModelLoadError(f"the model card is unusable: {exc}") from exc

    @classmethod
    def read(cls, path: str | Path) -> "ModelCard":
        """Read a card file (any layout). Raises ModelLoadError naming the file."""
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ModelLoadError(f"model card {path} is unreadable: {exc}") from exc
        if not isinstance(data, dict):
            raise ModelLoadError(f"model card {path} is unreadable: not a JSON object")
        try:
            return cls.from_dict(data)
        except ModelLoadError as exc:
            raise ModelLoadError(f"model card {path}: {exc}") from exc

    def write(self, path: str | Path) -> None:
        """Write the card (current layout) atomically: the old file stays whole if anything fails."""
        write_json_atomic(Path(path), self.to_dict())


def write_json_atomic(path: Path, data: Mapping[str, Any]) -> None:
    """Write JSON to a temporary file beside `path`, then rename it over `path` (never half a file)."""
    text = json.dumps(data, indent=2)  # fails before anything is written
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verify_weights(weights: Path, card: ModelCard) -> None:
    """Raise ModelLoadError unless `weights` hash to the SHA-256 the card records (if it records one)."""
    if card.weights_sha256 and sha256_file(weights) != card.weights_sha256:
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
    card = base.with_suffix(".json")
    weights = weights_of(card) if card.is_file() else base.with_suffix(".safetensors")
    for f in (weights, card):
        if not f.is_file():
            raise ModelLoadError(f"model file {f} not found (shipped models: {', '.join(list_shipped()) or 'none'})")
    return weights, card


def weights_of(card_path: Path) -> Path:
    """The weights file of a card: its own `.safetensors`, else the file its `weights_file` names in
    the same folder (a JSON-only card on another model's weights, e.g. a fusion model)."""
    own = card_path.with_suffix(".safetensors")
    if own.is_file():
        return own
    try:
        named = json.loads(card_path.read_text()).get("weights_file")
    except (OSError, UnicodeDecodeError, ValueError, AttributeError):
        return own
    return card_path.parent / Path(named).name if isinstance(named, str) and named else own


def list_shipped(directory: Path | None = None) -> list[str]:
    directory = weights_dir() if directory is None else directory
    return sorted(p.stem for p in directory.glob("*.json") if weights_of(p).is_file())


def pick_default(cards: Mapping[str, ModelCard]) -> str | None:
    """The key of the card marked `default`, else the four-stage model with the best
    `selection_score` (subject-level cross-validation; never the test split), else the first
    four-stage model that is not a lesson, else the first key."""
    for key, card in cards.items():
        if card.default:
            return key
    clinical = {k: c for k, c in cards.items() if not c.is_lesson}
    staged = {k: c for k, c in clinical.items() if c.class_names == CLASS_NAMES}
    scored = {k: score for k, c in staged.items() if (score := c.selection_score) is not None}
    if scored:
        return max(scored, key=scored.__getitem__)
    return next(iter(staged or clinical or cards), None)


def default_shipped(directory: Path | None = None) -> str | None:
    """The name of the shipped model the app and CLI use by default (cards that cannot be read are skipped)."""
    directory = weights_dir() if directory is None else directory
    cards = {}
    for name in list_shipped(directory):
        try:
            cards[name] = ModelCard.read(directory / f"{name}.json")
        except ModelLoadError:
            continue
    return pick_default(cards)
