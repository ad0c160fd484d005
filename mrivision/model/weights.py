"""Shipped weights: `<name>.safetensors` + `<name>.json` card, with a SHA-256 checked at load."""
from __future__ import annotations

from pathlib import Path

from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from mrivision.model.card import ModelCard, resolve, sha256_file, verify_weights
from mrivision.errors import ModelLoadError
from mrivision.model.zoo import MRINet, create_model


def save_model(model: MRINet, card: ModelCard, out_dir: Path, half: bool = True) -> Path:
    """Write the weights (fp16 by default) and the card (with the model's spec), which records the file's SHA-256."""
    out_dir.mkdir(parents=True, exist_ok=True)
    name = model.spec.name
    weights = out_dir / f"{name}.safetensors"
    state = {k: (v.half() if half and v.is_floating_point() else v).contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(weights), metadata={"name": name})
    card.replace(spec=model.spec, weights_file=weights.name, weights_sha256=sha256_file(weights),
                 storage_dtype="float16" if half else "float32").write(out_dir / f"{name}.json")
    return weights


def load_weights(name_or_path: str | Path) -> tuple[MRINet, ModelCard]:
    """Build the model from its card and load verified weights (float32 in memory)."""
    weights, card_path = resolve(name_or_path)
    card = ModelCard.read(card_path)
    verify_weights(weights, card)
    try:
        model = create_model(card.spec, pretrained=False)
        state = load_file(str(weights))
        model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    except (KeyError, TypeError, ValueError, AttributeError, RuntimeError, SafetensorError) as exc:
        raise ModelLoadError(f"{weights} could not be loaded as {card.name}: {_brief(exc)}") from exc
    model.eval()
    return model, card


def _brief(exc: BaseException, limit: int = 200) -> str:
    """The first line of an exception's message, shortened: torch lists every mismatched tensor."""
    lines = str(exc).strip().splitlines()
    text = lines[0].strip() if lines else type(exc).__name__
    text = text.rstrip(":") + (" (and more)" if len(lines) > 1 else "")
    return text if len(text) <= limit else text[:limit - 1] + "…"
