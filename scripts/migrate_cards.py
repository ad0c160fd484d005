"""Rewrite model cards in the current layout (`ModelCard`, card_version 3); the weights are never touched.

    python scripts/migrate_cards.py [weights/NAME.json ...]   (default: every card in weights/)

Each card is read (older layouts migrated), its weights file is checked against the card's
SHA-256, the fields the old layout stored twice are checked to agree with the spec, and the card
is written back atomically. Prints one line per card; exits 1 if any card could not be migrated.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from mrivision.constants import weights_dir
from mrivision.errors import ModelLoadError
from mrivision.model.card import ModelCard, sha256_file
from mrivision.model.card_migrate import CARD_VERSION, card_version


def duplicates_agree(old: dict, card: ModelCard) -> list[str]:
    """The fields an old card stored twice that disagree with the spec (empty: nothing is lost)."""
    pre, spec = old.get("preprocessing") or {}, card.spec
    wanted = {"input_size": list(spec.input_size), "mean": spec.mean, "std": spec.std, "framing": spec.framing,
              "class_names": list(spec.class_names), "name": spec.name}
    found = {**{k: pre[k] for k in ("input_size", "mean", "std", "framing") if k in pre},
             **{k: old[k] for k in ("class_names", "name") if k in old}}
    return [f"{k}: {v!r} != {wanted[k]!r}" for k, v in found.items() if v != wanted[k]]


def migrate_file(path: Path) -> str:
    old = json.loads(path.read_text())
    card = ModelCard.read(path)
    weights = path.with_name(card.weights_file)
    if not weights.is_file() or sha256_file(weights) != card.weights_sha256:
        raise ModelLoadError(f"{weights.name} is missing or does not match the card's SHA-256")
    disagree = duplicates_agree(old, card)
    if disagree:
        raise ModelLoadError(f"fields stored twice disagree: {'; '.join(disagree)}")
    before = card_version(old)
    card.write(path)
    if ModelCard.read(path) != card:
        raise ModelLoadError("the rewritten card does not read back equal")
    dropped = sorted(set(old) - set(card.to_dict()) - {"name", "class_names"})
    return f"v{before} -> v{CARD_VERSION}, weights SHA-256 ok" + (f", dropped {dropped}" if dropped else "")


def main(argv: list[str]) -> int:
    paths = [Path(p) for p in argv] or sorted(weights_dir().glob("*.json"))
    failed = 0
    for path in paths:
        try:
            print(f"{path.name}: {migrate_file(path)}")
        except (ModelLoadError, OSError, ValueError) as exc:
            print(f"{path.name}: NOT migrated: {exc}", file=sys.stderr)
            failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
