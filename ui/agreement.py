"""How far the models' answers for one image agree, in neutral words: the shipped models were
trained on the same data, so their agreement is not independent evidence."""
from __future__ import annotations

from collections import Counter
from typing import Sequence

from mrivision.constants import CLASS_NAMES

SHARED_DATA = ("The models were trained on the same data set, so their agreement is not independent "
               "evidence; it says the answer does not hinge on one architecture.")


def agreement(labels_by_model: Sequence[tuple[str, Sequence[str]]]) -> list[tuple[str, str]]:
    """Agreement summary lines (level "info" or "warning", text) for (predicted label, model class names) pairs.

    Models are compared within the same class set; when models with different class sets are
    present, every prediction is also folded to NonDemented vs any dementia stage.
    """
    lines: list[tuple[str, str]] = []
    groups: dict[tuple[str, ...], list[str]] = {}
    for label, names in labels_by_model:
        groups.setdefault(tuple(names), []).append(label)

    def summary(labels: list[str], what: str) -> tuple[str, str]:
        votes = Counter(labels).most_common()
        if len(labels) == 1:
            return "info", f"{what}: one model, predicting {votes[0][0]}."
        if len(votes) == 1:
            return "info", f"{what}: all {len(labels)} models predict {votes[0][0]}."
        split = ", ".join(f"{label}: {n}" for label, n in votes)
        return "warning", f"{what}: the {len(labels)} models disagree ({split})."

    for names, labels in groups.items():
        what = "Four-stage models" if names == CLASS_NAMES else f"Models with classes {' / '.join(names)}"
        lines.append(summary(labels, what))
    if len(groups) > 1:
        folded = ["NonDemented" if label == "NonDemented" else "Demented" for label, _ in labels_by_model]
        lines.append(summary(folded, "NonDemented vs any dementia stage, all models"))
    return lines
