"""Print the table (docs/recipes.md) of cross-validated recipes from their cards (shipped or not).

    python scripts/recipes_table.py runs/weights/*.json weights/NAME.json runs/NAME/cv/metrics.json ...

One row per card with `metrics.cv`: subject-level CV, the external cohort, the literature split,
and what the recipe cost (CV wall time on this machine: the folds plus computing the cached features).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from mrivision.evaluation.tables import binary_auc_with_ci, value_with_ci
from mrivision.model.card import ModelCard


def _v(metrics: dict | None, level: str, key: str) -> str:
    return value_with_ci(metrics, level, key, "–")


def _auc(metrics: dict | None) -> str:
    return binary_auc_with_ci(metrics, missing="–")


def main(paths: list[str]) -> int:
    print("| recipe (card) | CV subject bal. acc. | CV bal. acc. w/o Moderate | CV impaired AUC | CV QWK "
          "| external bal. acc. | external impaired AUC | test/ slice acc. | test/ macro-F1 | CV wall time |")
    print("|---" * 10 + "|")
    for path in paths:
        raw = json.loads(Path(path).read_text())
        if "per_fold" in raw:  # a CV run's metrics.json (runs/NAME/cv/): a recipe that was not shipped
            name, m = Path(path).parent.parent.name, {"cv": raw}
        else:
            card = ModelCard.from_dict(raw)
            name, m = card.name, card.metrics
        cv = m.get("cv")
        if not cv:
            continue
        minutes = (cv.get("seconds") or 0) / 60
        cost = f"{minutes:.0f} min" if any(f.get("seconds") for f in cv.get("per_fold", [])) else "see text"
        print(f"| `{name}` | {_v(cv, 'scan', 'balanced_accuracy')} "
              f"| {_v(cv, 'scan', 'balanced_accuracy_excl_last')} | {_auc(cv)} | {_v(cv, 'scan', 'quadratic_kappa')} "
              f"| {_v(m.get('external'), 'scan', 'balanced_accuracy')} | {_auc(m.get('external'))} "
              f"| {_v(m.get('test'), 'slice', 'accuracy')} | {_v(m.get('test'), 'slice', 'macro_f1')} | {cost} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
