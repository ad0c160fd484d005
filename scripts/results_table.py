"""Regenerate the README results table from the model cards in weights/ (never hand-typed)."""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"


def _ci(metrics: dict, level: str, key: str) -> str:
    value = metrics[level].get(key)
    lo, hi = (metrics.get("ci") or {}).get(level, {}).get(key, [None, None])
    if value is None:
        return "–"
    return f"{value:.3f} [{lo:.3f}, {hi:.3f}]" if lo is not None else f"{value:.3f}"


def row(card: dict) -> str:
    test = card.get("metrics", {}).get("test")
    train = card.get("training", {})
    bench = card.get("bench", {})
    latency = f"{bench['predict_ms_p50']:.0f} ms" if "predict_ms_p50" in bench else "–"
    cells = [f"`{card['name']}`", card["spec"].get("arch") or card["spec"]["family"],
             f"{card['spec']['input_size'][0]}x{card['spec']['input_size'][1]}", str(len(card["class_names"]))]
    if test:
        cells += [_ci(test, "slice", "accuracy"), _ci(test, "slice", "macro_f1"),
                  f"{test['slice'].get('roc_auc_macro') or 0:.3f}", _ci(test, "scan", "accuracy")]
    else:
        cells += ["–"] * 4
    val = train.get("best_val", {})
    cells.append(f"{val['val_accuracy']:.3f}" if "val_accuracy" in val else "–")
    cells += [f"{card.get('parameters', 0) / 1e6:.1f} M", f"{train.get('seconds', 0) / 60:.0f} min", latency,
              train.get("hardware", "?").split(",")[1].strip() if "," in train.get("hardware", "") else "?"]
    return "| " + " | ".join(cells) + " |"


def table(weights: Path) -> str:
    cards = [json.loads(p.read_text()) for p in sorted(weights.glob("*.json"))]
    head = ("| model | backbone | input | classes | slice accuracy [95% CI] | slice macro-F1 [95% CI] | OvR AUC "
            "| scan accuracy [95% CI] | new-subject val. accuracy | params | train time | CPU latency | trained on |\n"
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    return "\n".join([head] + [row(c) for c in cards if "spec" in c])


def main() -> int:
    readme = ROOT / "README.md"
    text = readme.read_text()
    new = re.sub(f"{re.escape(BEGIN)}.*?{re.escape(END)}", f"{BEGIN}\n{table(ROOT / 'weights')}\n{END}", text, flags=re.S)
    readme.write_text(new)
    print(table(ROOT / "weights"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
